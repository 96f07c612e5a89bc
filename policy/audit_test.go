package policy

import (
	"strings"
	"testing"
	"time"
)

func TestAuditBlock(t *testing.T) {
	config := func(src string) Source {
		return Source{Path: ".tfsh/config.hcl", Layer: LayerProject, Src: []byte(src), Config: true}
	}
	t.Run("defaults", func(t *testing.T) {
		p := mustLoad(t)
		if p.Settings.AuditTable != "" || p.Settings.AuditShipTimeout != 2*time.Second {
			t.Fatalf("default audit settings = %q, %v", p.Settings.AuditTable, p.Settings.AuditShipTimeout)
		}
	})
	t.Run("project config file", func(t *testing.T) {
		p := mustLoad(t, config(`
audit {
  dynamodb_table = "tfsh-audit"
  ship_timeout   = "3s"
  ttl_days       = 400
}`))
		s := p.Settings
		if s.AuditTable != "tfsh-audit" || s.AuditShipTimeout != 3*time.Second || s.AuditTTLDays != 400 || s.Source["audit.dynamodb_table"] != ".tfsh/config.hcl:3" {
			t.Fatalf("settings = %q %v %d from %q", s.AuditTable, s.AuditShipTimeout, s.AuditTTLDays, s.Source["audit.dynamodb_table"])
		}
	})
	t.Run("enforced by the organisation", func(t *testing.T) {
		_, _, diags := Load([]Source{org(`
audit {
  dynamodb_table = "org-audit"
  enforced       = true
}`), config(`
audit { dynamodb_table = "" }`)})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "audit.dynamodb_table is enforced by org.hcl:3") {
			t.Fatalf("diags = %v, want the enforced table kept", diags)
		}
	})
	t.Run("bad values name the place", func(t *testing.T) {
		_, _, diags := Load([]Source{project(`
audit {
  dynamodb_table = "a b"
  ship_timeout   = "soon"
}`)})
		var got string
		for _, d := range diags {
			got += d.Error() + "\n"
		}
		if !strings.Contains(got, "project.hcl:3,20-25: Invalid table name") || !strings.Contains(got, "project.hcl:4,20-26: Invalid duration") {
			t.Fatalf("diags = %v", got)
		}
	})
	t.Run("config file holds no rules", func(t *testing.T) {
		_, _, diags := Load([]Source{config(`rule "x" { action = "deny" }`)})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), `Blocks of type "rule" are not expected here`) {
			t.Fatalf("diags = %v", diags)
		}
	})
}

func TestNameChecks(t *testing.T) {
	long := strings.Repeat("a", 255)
	for _, c := range []struct {
		name        string
		table, rule bool
	}{
		{"", false, false},
		{"ab", false, true},
		{"abc", true, true},
		{"tfsh-audit.v2_x", true, true},
		{long, true, true},
		{long + "a", false, true},
		{"-abc", true, false},
		{"_abc", true, false},
		{".abc", true, false},
		{"9abc", true, true},
		{"a b c", false, false},
		{"abc/d", false, false},
		{"abcé", false, false},
	} {
		if got := validTableName(c.name); got != c.table {
			t.Errorf("validTableName(%q)=%v, want %v", c.name, got, c.table)
		}
		if got := validRuleName(c.name); got != c.rule {
			t.Errorf("validRuleName(%q)=%v, want %v", c.name, got, c.rule)
		}
	}
}
