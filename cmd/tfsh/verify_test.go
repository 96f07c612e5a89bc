package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

// recordedLog writes one recorded session to a new log and returns its path.
func recordedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.RecordSession(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAuditVerify(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := auditCommand(context.Background(), append([]string{"verify"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerify(t *testing.T) {
	path := recordedLog(t)
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != 0 || !strings.Contains(out, ": intact: ") || !strings.Contains(out, ", 1 anchors checked") {
		t.Fatalf("intact log: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER events_append_only_update`,
		`UPDATE events SET data = data || ' ' WHERE seq = 2`} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	raw.Close()
	code, out, _ = runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, "BROKEN: first at event") || !strings.Contains(out, "edited") {
		t.Fatalf("edited log: exit %d, stdout %q", code, out)
	}
	code, out, _ = runAuditVerify(t, "--audit-db", path, "--json")
	var res audit.VerifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitLogBroken || res.First == nil || res.First.Kind != audit.ProblemEdited {
		t.Fatalf("--json: exit %d, err %v, stdout %q", code, err, out)
	}

	code, _, errs = runAuditVerify(t, "--audit-db", filepath.Join(t.TempDir(), "none.db"))
	if code != exitCannotRun || !strings.Contains(errs, "no audit log") {
		t.Fatalf("missing log: exit %d, stderr %q", code, errs)
	}
}

func TestAuditVerifyAnchors(t *testing.T) {
	path := recordedLog(t)
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER events_append_only_delete`,
		`DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)`} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	raw.Close()
	if code, out, errs := runAuditVerify(t, "--audit-db", path, "--anchors=false"); code != 0 {
		t.Fatalf("--anchors=false: exit %d, stdout %q, stderr %q (the chain alone cannot see a cut tail)", code, out, errs)
	}
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, ": truncated: the log ends at event") {
		t.Fatalf("truncated log: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	code, out, _ = runAuditVerify(t, "--audit-db", path, "--pubkey", pub)
	if code != exitLogBroken || !strings.Contains(out, "is not signed") {
		t.Fatalf("--pubkey with unsigned anchors: exit %d, stdout %q", code, out)
	}
	if code, _, errs := runAuditVerify(t, "--audit-db", path, "--pubkey", "nonsense"); code != exitCannotRun || !strings.Contains(errs, "--pubkey") {
		t.Fatalf("bad --pubkey: exit %d, stderr %q", code, errs)
	}
}

func TestAnchorKeyFromEnvironment(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	setupAnchors(db, func(k string) string {
		if k == "TFSH_ANCHOR_KEY" {
			return base64.StdEncoding.EncodeToString(seed)
		}
		return ""
	}, &warn)
	audittest.RecordSession(t, db)
	db.Close()
	if warn.Len() > 0 {
		t.Fatalf("warnings: %s", warn.String())
	}
	code, out, errs := runAuditVerify(t, "--audit-db", path, "--pubkey", base64.StdEncoding.EncodeToString(pub))
	if code != 0 {
		t.Fatalf("signed anchors: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	db.AnchorKey = nil
	setupAnchors(db, func(string) string { return "short" }, &warn)
	if !strings.Contains(warn.String(), "TFSH_ANCHOR_KEY") || db.AnchorKey != nil {
		t.Fatalf("bad key: warning %q, key %v", warn.String(), db.AnchorKey)
	}
}
