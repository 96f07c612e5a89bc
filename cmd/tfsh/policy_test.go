package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tfsh/tfsh/hooks"
	"github.com/tfsh/tfsh/internal/lab/labtest"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/shell"
)

// TestPolicyAsksAtTheTerminal drives confirm and require_reason rules in
// the go-prompt shell on a real pseudo-terminal: a refused confirmation
// runs nothing, a yes runs the command, a reason that does not match the
// pattern refuses, one that matches runs and is recorded, and Ctrl-C at a
// question interrupts the command rather than refusing it.
func TestPolicyAsksAtTheTerminal(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := `rule "confirm-plan" {
  when    = command.name == "plan"
  action  = "confirm"
  message = "plan in ${workspace}"
}
rule "apply-ticket" {
  when           = command.name == "apply"
  action         = "require_reason"
  reason_pattern = "^INC-[0-9]+"
  message        = "apply needs an incident"
}
`
	if err := os.WriteFile(filepath.Join(dir, ".tfsh", "policy.hcl"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	h.must("run", "--", "init", "-input=false")

	cmd := exec.Command("tfsh")
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), h.env...), "TERM=xterm", "TFSH_REASON=")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	scr := &lockedBuffer{}
	go func() { _, _ = copyUntilEOF(scr, ptmx) }()
	typeLine := func(s string) {
		t.Helper()
		for _, r := range s {
			if _, err := ptmx.Write([]byte(string(r))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(15 * time.Millisecond)
		}
	}
	prompt := `tfsh [^ ]+ \[default · local · free\]> `
	at := scr.waitText(t, 0, prompt)

	typeLine("plan\r")
	at = scr.waitText(t, at, `rule "confirm-plan" \(.tfsh/policy.hcl:1\) asks for confirmation: plan in default`)
	at = scr.waitText(t, at, `run it\? type yes to go on: `)
	typeLine("no\r")
	at = scr.waitText(t, at, `refused by rule "confirm-plan" \(.tfsh/policy.hcl:1\): plan in default: not confirmed`)
	at = scr.waitText(t, at, prompt)

	typeLine("plan\r")
	at = scr.waitText(t, at, `type yes to go on: `)
	typeLine("yes\r")
	at = scr.waitText(t, at, `Plan: 1 to add`)
	at = scr.waitText(t, at, prompt)

	typeLine("apply -auto-approve\r")
	at = scr.waitText(t, at, `rule "apply-ticket" \(.tfsh/policy.hcl:6\) needs a reason: apply needs an incident \(the reason must match \^INC-\[0-9\]\+\)`)
	at = scr.waitText(t, at, `reason: `)
	typeLine("later\r")
	at = scr.waitText(t, at, `refused by rule "apply-ticket" .*: the reason "later" does not match`)
	at = scr.waitText(t, at, prompt)

	typeLine("apply -auto-approve\r")
	at = scr.waitText(t, at, `reason: `)
	ptmx.Write([]byte{3}) // Ctrl-C at the question
	at = scr.waitText(t, at, prompt)

	typeLine("apply -auto-approve\r")
	at = scr.waitText(t, at, `reason: `)
	typeLine("INC-77 restore the lab\r")
	at = scr.waitText(t, at, `reason recorded: INC-77 restore the lab`)
	at = scr.waitText(t, at, `Apply complete! Resources: 1 added`)
	scr.waitText(t, at, prompt)
	typeLine("exit\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tfsh did not exit; screen:\n%s", stripANSI(scr.String()))
	}

	// What the log says about each command.
	var show struct {
		Commands []struct {
			Info struct {
				Subcommand string `json:"subcommand"`
			} `json:"command"`
			End struct {
				Status string `json:"status"`
			} `json:"end"`
			Decision struct {
				Action    string `json:"action"`
				Reason    string `json:"reason"`
				Confirmed *bool  `json:"confirmed"`
				Refused   string `json:"refused"`
				Policy    []struct {
					Layer, Path, SHA256 string
				} `json:"policy"`
			} `json:"decision"`
		} `json:"command_list"`
	}
	out := h.must("audit", "show", "--json", "last")
	if err := json.Unmarshal([]byte(out.stdout), &show); err != nil {
		t.Fatalf("audit show: %v\n%s", err, out.stdout)
	}
	type row struct{ sub, status, action, reason, refused string }
	var got []row
	confirmed := []string{}
	for _, c := range show.Commands {
		got = append(got, row{c.Info.Subcommand, c.End.Status, c.Decision.Action, c.Decision.Reason, c.Decision.Refused})
		if c.Decision.Confirmed != nil {
			confirmed = append(confirmed, map[bool]string{true: "yes", false: "no"}[*c.Decision.Confirmed])
		}
	}
	want := []row{
		{"plan", "refused", "confirm", "", "confirm-plan: plan in default: not confirmed"},
		{"plan", "ok", "confirm", "", ""},
		{"apply", "refused", "require_reason", "later", `apply-ticket: apply needs an incident: the reason "later" does not match ^INC-[0-9]+`},
		{"apply", "interrupted", "require_reason", "", "apply-ticket: no reason given (interrupted)"},
		{"apply", "ok", "require_reason", "INC-77 restore the lab", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("commands = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(confirmed) != 2 || confirmed[0] != "no" || confirmed[1] != "yes" {
		t.Errorf("confirmations = %v, want [no yes]", confirmed)
	}
	sum := sha256.Sum256([]byte(pol))
	for _, c := range show.Commands {
		p := c.Decision.Policy
		if len(p) != 1 || p[0].Layer != "project" || p[0].Path != ".tfsh/policy.hcl" || p[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("policy files recorded: %+v, want the project file with SHA-256 %x", p, sum)
		}
	}
}

// TestExamplePolicies runs the shipped organisation policy's own tests:
// tfsh policy check and tfsh policy test must both pass on it, as a
// security team would run them before installing it. The example hooks
// file must load too.
func TestExamplePolicies(t *testing.T) {
	// Whatever policy this machine has must not change the result.
	home := t.TempDir()
	t.Setenv("TFSH_ORG_POLICY", "")
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	// An organisation policy that conflicts with the example (it enforces
	// a rule the example redefines): given paths are read alone, so it
	// must not matter.
	old := policy.SystemPolicy
	policy.SystemPolicy = filepath.Join(home, "org.hcl")
	t.Cleanup(func() { policy.SystemPolicy = old })
	conflict := "rule \"ci-waits-for-locks\" {\n  when     = false\n  action   = \"warn\"\n  enforced = true\n}\n"
	if err := os.WriteFile(policy.SystemPolicy, []byte(conflict), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(t), "examples", "policies")
	for _, args := range [][]string{
		{"policy", "check", filepath.Join(dir, "org.hcl"), "--layer", "org"},
		{"policy", "test", dir},
	} {
		var out, errb strings.Builder
		if code := Main(context.Background(), args, nil, &out, &errb); code != 0 {
			t.Fatalf("tfsh %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		if args[1] == "test" && (!strings.Contains(out.String(), " passed, 0 failed") || strings.Contains(out.String(), "\n0 passed")) {
			t.Fatalf("tfsh policy test:\n%s", out.String())
		}
	}
	cfg, diags := hooks.Load(filepath.Join(repoRoot(t), "examples", "hooks", "hooks.hcl"))
	if diags.HasErrors() || len(cfg.Hooks) != 3 {
		t.Fatalf("examples/hooks/hooks.hcl: %v", diags)
	}
}

// TestPolicyReadsTheLock runs a rule on lock.* against a real held lock:
// while one tfsh applies (holding the local state's lock), another's plan
// is warned with the holder's Who, operation and age, read from the lock
// itself before terraform starts.
func TestPolicyReadsTheLock(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := `rule "busy" {
  when    = lock.held && command.name == "plan"
  action  = "warn"
  message = "the state is locked by ${lock.who} (${lock.operation}, held ${lock.age}, since ${lock.created})"
}
`
	if err := os.WriteFile(filepath.Join(dir, ".tfsh", "policy.hcl"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	h.must("run", "--", "init", "-input=false")
	// Free: no warning.
	if r := h.must("-c", "plan -lock=false"); strings.Contains(r.stderr, `rule "busy"`) {
		t.Fatalf("warned with the lock free:\n%s", r.stderr)
	}
	holder, out, done := h.start("-c", "apply -auto-approve -var hold_seconds=5 -var run_id=busy")
	h.waitEvent("the holder's acquisition", holder, out, func(e lockEvent) bool { return e.Kind == "lock_acquired" && e.Sub == "apply" })
	time.Sleep(1100 * time.Millisecond) // so that the age is at least 1s
	r := h.run(nil, "-c", "plan -lock=false")
	want := regexp.MustCompile(`warning from rule "busy" \(.tfsh/policy.hcl:1\): the state is locked by ` + regexp.QuoteMeta(shell.LockWho()) +
		` \(OperationTypeApply, held ([1-9][0-9]*)s, since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)`)
	m := want.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("plan while the lock is held: exit %d\n%s", r.code, r.stderr)
	}
	created, _ := time.Parse(time.RFC3339, m[2])
	if age := time.Since(created); age < time.Second || age > time.Minute {
		t.Fatalf("lock created %s, %s ago", m[2], age)
	}
	if err := wait(t, done, out); err != nil {
		t.Fatalf("holder: %v\n%s", err, out.String())
	}
}

// TestAuditShowEscapes: what a user types reaches rule messages and the
// record; a newline in it must not show as a line of the record.
func TestAuditShowEscapes(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := "rule \"no-targets\" {\n  when    = length(command.targets) > 0\n  action  = \"deny\"\n  message = \"no targets: ${join(\",\", command.targets)}\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, ".tfsh", "policy.hcl"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	forged := "x\n    result     ok, exit 0"
	if r := h.run(nil, "run", "--", "plan", "-target="+forged); r.code != 3 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	show := h.must("audit", "show", "last").stdout
	if regexp.MustCompile(`(?m)^    result     ok`).MatchString(show) || !strings.Contains(show, `no targets: x\n    result     ok, exit 0`) {
		t.Fatalf("audit show:\n%s", show)
	}
}
