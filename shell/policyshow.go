package shell

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tfsh/tfsh/internal/ci"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// ShowPolicy writes the policy in effect: its files by layer, its settings
// and where each was set, and every rule with its layer, source and
// whether it is enforced.
func ShowPolicy(w io.Writer, p *policy.Policy) {
	fmt.Fprintln(w, "files (highest authority first; a deny anywhere wins)")
	if len(p.Files) == 0 {
		fmt.Fprintln(w, "  none: the built-in rules and settings only")
	}
	for _, f := range p.Files {
		fmt.Fprintf(w, "  %-12s %s\n", f.Layer, f.Path)
	}
	s := p.Settings
	max, over := "none", ""
	if s.LockTimeoutMax > 0 {
		max, over = policy.FormatDuration(s.LockTimeoutMax), string(s.OverMax)
	}
	loc := "local time"
	if s.Location != nil && s.Location != time.Local {
		loc = s.Location.String()
	}
	fmt.Fprintln(w, "\nsettings")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, value string) {
		enf := ""
		if by, ok := s.Enforced[name]; ok {
			enf = "enforced"
			if by != s.Source[name] {
				enf += " (" + by + ")"
			}
		}
		if enf == "" {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, value, s.Source[name])
			return
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", name, value, s.Source[name], enf)
	}
	row("lock_timeout_default", policy.FormatDuration(s.LockTimeoutDefault))
	row("lock_timeout_max", max)
	if over != "" {
		row("lock_timeout_over_max", string(s.OverMax))
	}
	row("audit_required", fmt.Sprint(s.AuditRequired))
	row("timezone", loc)
	row("after_unlock", s.AfterUnlock)
	alert := "off"
	if s.LockHeldAlert > 0 {
		alert = policy.FormatDuration(s.LockHeldAlert)
	}
	row("lock_held_alert", alert)
	if s.AuditTable != "" { // shared audit log (docs/audit.md); TFSH_AUDIT_DYNAMODB_TABLE overrides it
		row("audit.dynamodb_table", s.AuditTable)
		row("audit.ship_timeout", policy.FormatDuration(s.AuditShipTimeout))
		if s.AuditTTLDays > 0 {
			row("audit.ttl_days", fmt.Sprint(s.AuditTTLDays))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nrules")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range p.Rules {
		action := string(r.Action)
		switch {
		case r.Add != nil && r.Match == nil:
			action = "add"
		case r.Name == policy.RuleLockTimeoutMax && p.Settings.OverMax == policy.OverMaxClamp:
			action = "lower"
		}
		enf := ""
		switch {
		case r.Enforced:
			enf = "enforced"
		case p.EnforcedThrough(r) != "":
			enf = "enforced (through " + p.EnforcedThrough(r) + ")"
		}
		src := r.Source
		if src == policy.BuiltIn {
			src = "" // the layer says it
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.Name, action, r.Layer, src, enf, r.Description)
	}
	for _, r := range p.Disabled {
		fmt.Fprintf(tw, "  %s\toff\t%s\t%s\t\tdisabled here\n", r.Name, r.Layer, r.Source)
	}
	tw.Flush()
}

// ExplainOptions sets the world of an explained command; zero values are
// read from the machine (workspace from the directory, user, time now).
type ExplainOptions struct {
	Dir       string
	Env       []string
	Product   string // terraform or tofu
	Workspace string
	User      string
	Host      string
	Time      time.Time
}

// CommandDir is the directory argv runs in from dir (its -chdir): the one
// whose policy decides.
func CommandDir(dir string, argv []string, product string, env []string) string {
	return commandDir(dir, terraform.ParseFor(product, argv, terraform.EnvLookup(env)).Chdir)
}

// ExplainInput builds the policy input tfsh would build for argv in dir.
func ExplainInput(ctx context.Context, argv []string, o ExplainOptions) policy.Input {
	getenv := terraform.EnvLookup(o.Env)
	inv := terraform.ParseFor(o.Product, argv, getenv)
	dir := commandDir(o.Dir, inv.Chdir)
	ref, _ := commandState(dir, inv, getenv)
	ws := ref.Workspace
	if o.Workspace != "" {
		ws = o.Workspace
	}
	s := &Session{}
	return PolicyInput(inv, World{
		Workspace: ws, Backend: ref.Backend, StateKey: ref.Key, User: o.User, Host: o.Host,
		CI: ci.Detect(getenv), Getenv: getenv, Time: o.Time, Lock: s.lockState(ctx, ref, lock.Getenv(getenv)),
	})
}

// TestInput is how `tfsh policy test` turns a test case into an input: the
// command line is tokenized and parsed as the shell would.
func TestInput(tc policy.TestCase) (policy.Input, error) {
	toks, err := Tokenize(tc.Command)
	if err != nil {
		return policy.Input{}, fmt.Errorf("command %q: %v", tc.Command, err)
	}
	if len(toks) > 0 && (toks[0] == "terraform" || toks[0] == "tofu") {
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return policy.Input{}, fmt.Errorf("command is empty")
	}
	product := tc.Product
	if product == "" {
		product = "terraform"
	}
	getenv := func(k string) string { return tc.Env[k] }
	inv := terraform.ParseFor(product, toks, getenv)
	return tc.Fill(PolicyInput(inv, World{})), nil
}

// commandDir is where a command runs: -chdir taken from the session's
// directory.
func commandDir(base, chdir string) string {
	switch {
	case chdir == "":
		return base
	case !filepath.IsAbs(chdir):
		chdir = base + string(filepath.Separator) + chdir
	}
	// As the kernel resolves it when terraform changes into it: link/..
	// is the parent of where link points, not base.
	if real, err := filepath.EvalSymlinks(chdir); err == nil {
		return real
	}
	return filepath.Clean(chdir)
}
