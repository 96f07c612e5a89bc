package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchRuleKinds are the shapes of the rules in a generated policy, each a
// when condition and a message; %d is the rule's number, so that no two
// rules are the same. They cover what real policies read (command,
// workspace, ci, time, env, lock) and call (startswith, contains, matches,
// duration).
var benchRuleKinds = []struct{ action, when, message string }{
	{"deny", `command.destroy && startswith(workspace, "prod-%d")`,
		`${command.name} would destroy ${workspace}: run it from the release pipeline`},
	{"warn", `command.writes_state && contains(command.targets, "module.app%d.aws_instance.web")`,
		`targeting ${join(", ", command.targets)} in ${workspace} leaves the rest of the state behind`},
	{"confirm", `command.name == "apply" && matches(state_key, "^env/(prod|stage)/svc%d/")`,
		`apply to ${state_key} (${backend}) as ${user}@${host}`},
	{"deny", `duration(command.lock_timeout) > duration("%dm") && ci.enabled`,
		`CI must not wait ${command.lock_timeout} for the lock (rule %d)`},
	{"warn", `ci.enabled && ci.provider == "github" && !startswith(ci.workflow, "deploy-%d")`,
		`${command.name} from workflow ${ci.workflow} (${ci.url})`},
	{"confirm", `command.writes_state && (time.hour >= 20 || time.hour < 7 || time.weekend) && workspace != "sandbox-%d"`,
		`it is ${time.weekday} ${time.hour}h: ${command.name} on ${workspace} out of hours`},
	{"warn", `env.TF_IN_AUTOMATION != "1" && command.name == "apply" && !command.has_plan_file && %d >= 0`,
		`apply without a saved plan in ${workspace}: run plan -out first`},
	{"deny", `command.writes_state && !command.lock && contains(["prod", "prod-%d"], workspace)`,
		`${command.name} with the lock off on ${workspace}`},
	{"require_reason", `command.name == "apply" && endswith(workspace, "-%d") && length(command.args) > 0`,
		`give a ticket for ${command.name} on ${workspace}`},
	{"warn", `lower(user) == "root%d" || contains(lower(host), "bastion")`,
		`${user} on ${host} runs ${command.name}`},
}

// benchPolicy writes a policy of n rules drawn from benchRuleKinds, with a
// settings block, as a project might. 17 of 50 rules match benchApply, so
// a decision renders messages, not only conditions.
func benchPolicy(n int) []byte {
	var b strings.Builder
	b.WriteString("settings {\n  lock_timeout_default = \"5m\"\n  lock_timeout_max     = \"30m\"\n  timezone             = \"Europe/Berlin\"\n}\n")
	for i := range n {
		k := benchRuleKinds[i%len(benchRuleKinds)]
		fmt.Fprintf(&b, "\nrule \"r%02d\" {\n", i)
		fmt.Fprintf(&b, "  description = %q\n", fmt.Sprintf("generated rule %d", i))
		fmt.Fprintf(&b, "  when        = %s\n", fmt.Sprintf(k.when, i))
		fmt.Fprintf(&b, "  action      = %q\n", k.action)
		msg := k.message
		if strings.Contains(msg, "%d") {
			msg = fmt.Sprintf(msg, i)
		}
		fmt.Fprintf(&b, "  message     = \"%s\"\n", msg) // a template: %q would escape its quotes
		if k.action == "require_reason" {
			b.WriteString("  reason_pattern = \"^OPS-[0-9]+\"\n")
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// benchApply is an apply as the pipeline would describe it: in CI, on a
// production workspace, in the evening.
func benchApply() Input {
	env := map[string]string{"TF_IN_AUTOMATION": "", "HOME": "/home/ci"}
	return Input{
		Command: "apply", Known: true, WritesState: true, Locks: "always",
		AcceptsLock: true, AcceptsLockTimeout: true, LockTimeoutHonoured: true,
		Args:      []string{"-target=module.app3.aws_instance.web", "-var=env=prod"},
		Targets:   []string{"module.app3.aws_instance.web"},
		Workspace: "prod-eu-7", Backend: "s3", StateKey: "env/prod/svc2/terraform.tfstate",
		User: "deploy", Host: "runner-42",
		CI:     CI{Provider: "github", RunID: "123", Workflow: "nightly", Job: "apply", Actor: "alice", URL: "https://ci.example/123"},
		Getenv: func(k string) string { return env[k] },
		Time:   time.Date(2026, time.January, 7, 21, 30, 0, 0, time.UTC),
	}
}

func benchLoad(tb testing.TB, srcs ...Source) *Policy {
	tb.Helper()
	p, files, diags := Load(srcs)
	if diags.HasErrors() {
		var b strings.Builder
		_ = WriteDiagnostics(&b, files, diags)
		tb.Fatalf("policy does not load:\n%s", b.String())
	}
	return p
}

// TestBenchPolicy: the generated policy loads, and matches benchApply as
// it did when BenchmarkDecide50 was first measured: if this changes, old
// and new numbers no longer measure the same work.
func TestBenchPolicy(t *testing.T) {
	p := benchLoad(t, Source{Path: "policy.hcl", Layer: LayerProject, Src: benchPolicy(50)})
	if got := len(p.Rules); got != 50+len(builtInRules()) {
		t.Fatalf("%d rules, want %d", got, 50+len(builtInRules()))
	}
	d := p.Decide(benchApply())
	if len(d.Findings) != 17 || d.Action != Deny {
		t.Fatalf("%s with %d findings, want deny with 17: %+v", d.Action, len(d.Findings), d.Findings)
	}
	for _, f := range d.Findings {
		if strings.Contains(f.Message, "could not") || strings.HasPrefix(f.Message, "matched rule") {
			t.Errorf("rule %s: message %q, want its template rendered", f.Rule, f.Message)
		}
	}
}

// BenchmarkDecide50: one decision against 50 file rules and the built-in
// ones (goal: 50 µs).
func BenchmarkDecide50(b *testing.B) {
	p := benchLoad(b, Source{Path: "policy.hcl", Layer: LayerProject, Src: benchPolicy(50)})
	in := benchApply()
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(in); len(d.Findings) == 0 {
			b.Fatal("nothing matched")
		}
	}
}

// BenchmarkDecide50Quiet: the same policy deciding a plan on a dev
// workspace at noon, outside CI, which no file rule matches: the cost of
// the conditions alone.
func BenchmarkDecide50Quiet(b *testing.B) {
	p := benchLoad(b, Source{Path: "policy.hcl", Layer: LayerProject, Src: benchPolicy(50)})
	in := benchApply()
	in.Command, in.WritesState, in.Args, in.Targets = "plan", false, nil, nil
	in.Workspace, in.StateKey, in.CI = "dev", "env/dev/terraform.tfstate", CI{}
	in.Time = time.Date(2026, time.January, 7, 11, 0, 0, 0, time.UTC)
	if d := p.Decide(in); d.Action != Allow {
		b.Fatalf("%s: %+v", d.Action, d.Findings)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Decide(in)
	}
}

// BenchmarkDecideBuiltIn: one decision with no policy file.
func BenchmarkDecideBuiltIn(b *testing.B) {
	p := benchLoad(b)
	in := benchApply()
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(in); len(d.Add) == 0 {
			b.Fatal("no -lock-timeout added")
		}
	}
}

// BenchmarkLoad: parse, check and merge the 50-rule file from bytes (goal:
// 5 ms).
func BenchmarkLoad(b *testing.B) {
	src := Source{Path: "policy.hcl", Layer: LayerProject, Src: benchPolicy(50)}
	b.SetBytes(int64(len(src.Src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, diags := Load([]Source{src}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// BenchmarkLoadFromDisk: what a session pays before each command to find
// the policy for a directory. Cold is a new Loader (find, stat, read,
// parse, merge); warm is the same Loader with nothing changed (find and
// stat only).
func BenchmarkLoadFromDisk(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ProjectPolicy), benchPolicy(50), 0o644); err != nil {
		b.Fatal(err)
	}
	// Only the project file: neither this machine's organisation policy nor
	// the user's file takes part.
	defer func(p string) { SystemPolicy = p }(SystemPolicy)
	SystemPolicy = filepath.Join(dir, "no-such-org-policy.hcl")
	env := map[string]string{"HOME": filepath.Join(dir, "home")}
	getenv := func(k string) string { return env[k] }
	check := func(b *testing.B, l *Loaded, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Err(); err != nil {
			b.Fatal(err)
		}
		if len(l.Sources) != 1 {
			b.Fatalf("sources %+v, want the project file alone", l.Sources)
		}
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l := &Loader{Base: dir, Getenv: getenv}
			loaded, err := l.For(dir)
			check(b, loaded, err)
		}
	})
	b.Run("warm", func(b *testing.B) {
		l := &Loader{Base: dir, Getenv: getenv}
		first, err := l.For(dir)
		check(b, first, err)
		b.ReportAllocs()
		for b.Loop() {
			loaded, err := l.For(dir)
			check(b, loaded, err)
			if loaded != first {
				b.Fatal("warm load parsed the file again")
			}
		}
	})
}
