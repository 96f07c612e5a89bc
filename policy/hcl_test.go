package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// mustLoad loads policy sources given as (layer, content) and fails the
// test on any error diagnostic.
func mustLoad(t *testing.T, files ...Source) *Policy {
	t.Helper()
	p, fs, diags := Load(files)
	if diags.HasErrors() {
		var b strings.Builder
		WriteDiagnostics(&b, fs, diags)
		t.Fatalf("load: %s", b.String())
	}
	return p
}

func org(src string) Source { return Source{Path: "org.hcl", Layer: LayerOrg, Src: []byte(src)} }
func project(src string) Source {
	return Source{Path: "project.hcl", Layer: LayerProject, Src: []byte(src)}
}
func user(src string) Source { return Source{Path: "user.hcl", Layer: LayerUser, Src: []byte(src)} }

var applyIn = Input{Command: "apply", Known: true, WritesState: true, Locks: "always", AcceptsLock: true, AcceptsLockTimeout: true, LockTimeoutHonoured: true,
	Workspace: "default", User: "ann", Host: "laptop", Time: time.Date(2026, 1, 7, 12, 0, 0, 0, time.UTC)}

func TestRuleEvaluation(t *testing.T) {
	tests := []struct {
		name   string
		rule   string
		in     func(Input) Input
		action Action
		msg    string
	}{
		{"command name and workspace", `when = command.name == "apply" && workspace == "prod"`,
			func(i Input) Input { i.Workspace = "prod"; return i }, Deny, ""},
		{"not matching", `when = command.name == "apply" && workspace == "prod"`,
			func(i Input) Input { return i }, Allow, ""},
		{"message template", `when = true
		 message = "${user}@${host} runs ${command.name} in ${workspace}"`,
			func(i Input) Input { return i }, Deny, "ann@laptop runs apply in default"},
		{"hours in the policy's zone", `when = time.hour >= 18 || time.hour < 8`,
			func(i Input) Input { i.Time = time.Date(2026, 1, 7, 17, 30, 0, 0, time.UTC); return i }, Deny, ""}, // 18:30 in Berlin
		{"not the machine's zone", `when = time.hour >= 18 || time.hour < 8`,
			func(i Input) Input { i.Time = time.Date(2026, 1, 7, 16, 30, 0, 0, time.UTC); return i }, Allow, ""},
		{"fractional seconds compare as hcl does", `when = command.lock_timeout_seconds == 0.1 && command.lock_timeout_seconds <= 0.1`,
			func(i Input) Input { i.LockTimeoutSet, i.LockTimeout = true, 100*time.Millisecond; return i }, Deny, ""},
		{"every rule reading an unreadable lock denies", `when = !lock.held
		 message = "lock free"`,
			func(i Input) Input {
				i.Lock = func() (LockState, error) { return LockState{}, errors.New("unreachable") }
				return i
			}, Deny, "could not"},
		{"weekday", `when = time.weekday == "Wednesday" && !time.weekend`,
			func(i Input) Input { return i }, Deny, ""},
		{"effective lock timeout includes the default", `when = command.lock_timeout_seconds < duration("5m")`,
			func(i Input) Input { return i }, Allow, ""},
		{"explicit short timeout", `when = command.lock_timeout_seconds < duration("5m")
		 message = "timeout ${command.lock_timeout}"`,
			func(i Input) Input { i.LockTimeoutSet, i.LockTimeout = true, 30*time.Second; return i }, Deny, "timeout 30s"},
		{"ci metadata", `when = ci.enabled && ci.provider == "github" && startswith(ci.actor, "dependabot")`,
			func(i Input) Input { i.CI = CI{Provider: "github", Actor: "dependabot[bot]"}; return i }, Deny, ""},
		{"env read by name", `when = env.DEPLOY_ENV == "prod" && env["TF_IN_AUTOMATION"] == ""`,
			func(i Input) Input {
				i.Getenv = func(k string) string { return map[string]string{"DEPLOY_ENV": "prod"}[k] }
				return i
			}, Deny, ""},
		{"targets and contains", `when = contains(command.targets, "module.db") || contains(join(" ", command.args), "-replace")`,
			func(i Input) Input { i.Targets = []string{"module.db"}; return i }, Deny, ""},
		{"matches is false, not an error", `when = matches(state_key, "^prod/")`,
			func(i Input) Input { i.StateKey = "dev/app.tfstate"; return i }, Allow, ""},
		{"destroy and plan file", `when = command.destroy || command.has_plan_file`,
			func(i Input) Input { i.Destroy = true; return i }, Deny, ""},
		{"lock read only when asked", `when = lock.held && lock.age_seconds > duration("1h")
		 message = "held by ${lock.who} for ${lock.age}"`,
			func(i Input) Input {
				i.Lock = func() (LockState, error) {
					return LockState{Held: true, Who: "bob@ci", Created: i.Time.Add(-2 * time.Hour)}, nil
				}
				return i
			}, Deny, "held by bob@ci for 2h"},
		{"unreadable lock fails closed", `when = lock.held`,
			func(i Input) Input {
				i.Lock = func() (LockState, error) { return LockState{}, errors.New("unreachable") }
				return i
			}, Deny, "could not"},
		{"runtime error fails closed", `when = regex("^x", workspace) == ""`,
			func(i Input) Input { return i }, Deny, "could not be evaluated"},
		{"try and can", `when = can(regex("^[0-9]+$", workspace))`,
			func(i Input) Input { i.Workspace = "123"; return i }, Deny, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, org(`settings { timezone = "Europe/Berlin" }
rule "r" {
  action = "deny"
  `+tt.rule+`
}`))
			d := p.Decide(tt.in(applyIn))
			if d.Action != tt.action {
				t.Fatalf("action = %s, want %s (%+v)", d.Action, tt.action, d.Findings)
			}
			if tt.msg != "" && !strings.Contains(d.Deciding().Message, tt.msg) {
				t.Fatalf("message %q does not contain %q", d.Deciding().Message, tt.msg)
			}
			if f := d.Deciding(); f != nil && f.Source != "org.hcl:2" {
				t.Fatalf("source = %q, want org.hcl:2", f.Source)
			}
		})
	}
}

func TestLockReadOnlyWhenARuleAsks(t *testing.T) {
	reads := 0
	in := applyIn
	in.Lock = func() (LockState, error) { reads++; return LockState{}, nil }
	mustLoad(t, org(`rule "a" {
  when = workspace == "prod"
  action = "deny"
}`)).Decide(in)
	if reads != 0 {
		t.Fatalf("lock read %d times by a policy that never reads lock.*", reads)
	}
	p := mustLoad(t, org(`rule "a" {
  when = lock.held
  action = "warn"
}
rule "b" {
  when = lock.who == "x"
  action = "warn"
}`))
	if !p.UsesLock() {
		t.Fatal("UsesLock = false for a policy reading lock.held")
	}
	p.Decide(in)
	if reads != 1 {
		t.Fatalf("lock read %d times, want once per decision", reads)
	}
}

func TestActionsRankAndReasons(t *testing.T) {
	p := mustLoad(t, org(`
rule "w" {
  when = true
  action = "warn"
}
rule "c" {
  when = true
  action = "confirm"
}
rule "r" {
  when = true
  action = "require_reason"
  reason_pattern = "^(INC|CHG)-[0-9]+"
}`))
	d := p.Decide(applyIn)
	if d.Action != RequireReason || d.Deciding().Rule != "r" {
		t.Fatalf("action = %s by %+v, want require_reason by r", d.Action, d.Deciding())
	}
	if bad := d.CheckReason("INC-12 restore"); len(bad) != 0 {
		t.Fatalf("a matching reason failed: %+v", bad)
	}
	if bad := d.CheckReason("because"); len(bad) != 1 || bad[0].Rule != "r" {
		t.Fatalf("a non-matching reason passed: %+v", bad)
	}
	if bad := d.CheckReason("  "); len(bad) != 1 {
		t.Fatalf("an empty reason passed")
	}
	if len(d.With(Confirm)) != 1 || len(d.With(Warn)) != 1 {
		t.Fatalf("findings = %+v", d.Findings)
	}
	if got := strings.Join(d.Args(), " "); got != "-lock-timeout=5m" {
		t.Fatalf("added %q", got)
	}
}

func TestLayering(t *testing.T) {
	orgSrc := `
settings {
  lock_timeout_max = "30m"
  audit_required = true
  enforced = true
}
rule "no-prod-destroy" {
  when = command.destroy && workspace == "prod"
  action = "deny"
  enforced = true
}
rule "warn-targets" {
  when = length(command.targets) > 0
  action = "warn"
}
rule "no-unlocked-writes" {
  enforced = true
}`
	t.Run("lower layers change what is not enforced", func(t *testing.T) {
		p := mustLoad(t, org(orgSrc), project(`
settings { lock_timeout_default = "10m" }
rule "warn-targets" {
  action = "deny"
  message = "no -target here"
}
rule "unlocked-read" {
  enabled = false
}`), user(`
settings { lock_timeout_max = "20m" }`))
		in := applyIn
		in.Targets = []string{"a.b"}
		d := p.Decide(in)
		if d.Action != Deny || d.Deciding().Rule != "warn-targets" || d.Deciding().Source != "project.hcl:3" || d.Deciding().Message != "no -target here" {
			t.Fatalf("decision = %+v", d)
		}
		if p.Settings.LockTimeoutDefault != 10*time.Minute || p.Settings.Source["lock_timeout_default"] != "project.hcl:2" {
			t.Fatalf("settings = %+v", p.Settings)
		}
		if p.Settings.LockTimeoutMax != 20*time.Minute {
			t.Fatalf("a stricter maximum was not taken: %v", p.Settings.LockTimeoutMax)
		}
		for _, r := range p.Rules {
			if r.Name == RuleUnlockedRead {
				t.Fatal("unlocked-read was disabled but is still in effect")
			}
		}
		if len(p.Disabled) != 1 || p.Disabled[0].Source != "project.hcl:7" {
			t.Fatalf("disabled = %+v", p.Disabled)
		}
		if len(p.Files) != 3 || p.Files[0].Layer != LayerOrg || p.Files[2].Layer != LayerUser {
			t.Fatalf("files = %+v", p.Files)
		}
	})
	t.Run("a deny anywhere wins", func(t *testing.T) {
		p := mustLoad(t, org(`rule "o" {
  when = true
  action = "warn"
}`), user(`rule "u" {
  when = command.name == "apply"
  action = "deny"
}`))
		if d := p.Decide(applyIn); d.Action != Deny || d.Deciding().Rule != "u" {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("a second organisation file cannot undo the first's enforcement", func(t *testing.T) {
		org2 := Source{Path: "org2.hcl", Layer: LayerOrg, Src: []byte(`rule "lock-timeout-max" {
  enabled = false
}`)}
		_, fs, diags := Load([]Source{org(orgSrc), org2})
		var b strings.Builder
		WriteDiagnostics(&b, fs, diags)
		if !strings.Contains(b.String(), "org2.hcl:1:1: error: Cannot change an enforced rule") {
			t.Fatalf("diagnostics:\n%s", b.String())
		}
	})
	for _, tt := range []struct{ name, lower, want string }{
		{"redefine enforced rule", `rule "no-prod-destroy" {
  when = false
  action = "warn"
}`, `Rule "no-prod-destroy" is enforced by the organisation policy (org.hcl:7)`},
		{"disable enforced rule", `rule "no-prod-destroy" {
  enabled = false
}`, "cannot redefine, adjust or disable it"},
		{"disable an enforced built-in", `rule "no-unlocked-writes" {
  enabled = false
}`, `enforced by the organisation policy (org.hcl:16)`},
		{"raise an enforced maximum", `settings { lock_timeout_max = "2h" }`, "lock_timeout_max is enforced by org.hcl:3"},
		{"remove an enforced maximum", `settings { lock_timeout_max = "0" }`, "raises the maximum"},
		{"turn off an enforced audit", `settings { audit_required = false }`, "lets commands run unrecorded"},
		{"disable the rule that applies an enforced maximum", `rule "lock-timeout-max" {
  enabled = false
}`, "lock_timeout_max"},
		{"weaken the rule that applies an enforced maximum", `rule "lock-timeout-max" {
  action = "warn"
}`, "Cannot change an enforced rule"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, fs, diags := Load([]Source{org(orgSrc), project(tt.lower)})
			var b strings.Builder
			WriteDiagnostics(&b, fs, diags)
			if !diags.HasErrors() || !strings.Contains(b.String(), tt.want) || !strings.Contains(b.String(), "project.hcl:1:") {
				t.Fatalf("diagnostics:\n%s\nwant an error at project.hcl:1 containing %q", b.String(), tt.want)
			}
		})
	}
}

func TestClampAndRefuseAboveMax(t *testing.T) {
	in := applyIn
	in.LockTimeoutSet, in.LockTimeout = true, time.Hour
	p := mustLoad(t, org(`settings { lock_timeout_max = "15m" }`))
	if d := p.Decide(in); d.Action != Deny || d.Deciding().Rule != RuleLockTimeoutMax || !strings.Contains(d.Deciding().Message, "org.hcl:1") {
		t.Fatalf("refuse: %+v", d)
	}
	p = mustLoad(t, org(`settings {
  lock_timeout_max = "15m"
  lock_timeout_over_max = "clamp"
}`))
	d := p.Decide(in)
	if d.Action != Allow || strings.Join(d.Args(), " ") != "-lock-timeout=15m" {
		t.Fatalf("clamp: %+v", d)
	}
	if got := p.Settings.EffectiveLockTimeout(in); got != 15*time.Minute {
		t.Fatalf("effective timeout = %v", got)
	}
}

func TestExplainSaysWhy(t *testing.T) {
	p := mustLoad(t, org(`rule "prod-hours" {
  when = command.name == "apply" && workspace == "prod" && time.hour >= 18
  action = "deny"
}
rule "any" {
  when = true
  action = "warn"
}
rule "unlocked-read" {
  enabled = false
}`))
	ex := p.Explain(applyIn)
	got := map[string]RuleResult{}
	for _, r := range ex.Rules {
		got[r.Rule] = r
	}
	if r := got["prod-hours"]; r.Matched || r.Why != `workspace == "prod" is false (workspace = "default")` || r.Layer != "organisation" {
		t.Fatalf("prod-hours: %+v", r)
	}
	if r := got["any"]; !r.Matched || !strings.HasPrefix(r.Why, "when is true") {
		t.Fatalf("any: %+v", r)
	}
	if r := got[RuleLockTimeoutDefault]; len(r.Added) != 1 || r.Why == "" {
		t.Fatalf("lock-timeout-default: %+v", r)
	}
	if r := got[RuleUnlockedRead]; !r.Disabled {
		t.Fatalf("unlocked-read: %+v", r)
	}
	var b strings.Builder
	WriteExplanation(&b, ex)
	for _, want := range []string{"decision: warn", `no  prod-hours [deny, organisation] org.hcl:1`, "off unlocked-read"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("explanation lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRunTests(t *testing.T) {
	p := mustLoad(t, org(`settings { timezone = "UTC" }
rule "night" {
  when = workspace == "prod" && time.hour >= 18
  action = "require_reason"
  reason_pattern = "INC-[0-9]+"
}`))
	r := "INC-7"
	bad := "later"
	cases := []TestCase{
		{Name: "day", Workspace: "prod", Time: TestTime, Expect: Allow, ExpectArgs: []string{"-lock-timeout=5m"}},
		{Name: "night", Workspace: "prod", Time: TestTime.Add(8 * time.Hour), Expect: RequireReason, ExpectRule: "night"},
		{Name: "night with reason", Workspace: "prod", Time: TestTime.Add(8 * time.Hour), Reason: &r, Expect: Allow},
		{Name: "night with bad reason", Workspace: "prod", Time: TestTime.Add(8 * time.Hour), Reason: &bad, Expect: Deny, ExpectRule: "night"},
		{Name: "fails", Workspace: "prod", Time: TestTime.Add(8 * time.Hour), Expect: Allow},
	}
	res := p.RunTests(cases, func(tc TestCase) (Input, error) { i := applyIn; i.Workspace = ""; return tc.Fill(i), nil })
	for i, r := range res[:4] {
		if !r.Pass {
			t.Errorf("case %d (%s) failed: got %s by %q", i, r.Case.Name, r.Got, r.GotRule)
		}
	}
	if res[4].Pass {
		t.Fatal("a wrong expectation passed")
	}
	var b strings.Builder
	if n := WriteTestResults(&b, res); n != 1 || !strings.Contains(b.String(), "want:    allow") || !strings.Contains(b.String(), `got:     require_reason by rule "night" (org.hcl:2)`) {
		t.Fatalf("failed=%d\n%s", n, b.String())
	}
}

func TestLayerEdgeCases(t *testing.T) {
	t.Run("a later layer turns a disabled rule back on", func(t *testing.T) {
		p := mustLoad(t, org(`rule "nights" {
  when    = time.hour >= 20
  action  = "confirm"
  enabled = false
}`), project(`rule "nights" {
  enabled = true
}`))
		in := applyIn
		in.Time = time.Date(2026, 1, 7, 21, 0, 0, 0, time.UTC)
		p.Settings.Location = time.UTC
		if d := p.Decide(in); d.Action != Confirm || d.Deciding().Source != "project.hcl:1" {
			t.Fatalf("decision = %+v", d)
		}
		if len(p.Disabled) != 0 {
			t.Fatalf("still listed as disabled: %+v", p.Disabled)
		}
	})
	for _, tt := range []struct{ name, org, project, want string }{
		{"a rule disabled and enforced stays off", `rule "nights" {
  when     = time.hour >= 20
  action   = "confirm"
  enabled  = false
  enforced = true
}`, `rule "nights" {
  when   = true
  action = "warn"
}`, "Cannot change an enforced rule"},
		{"a built-in that adds arguments cannot get a when", ``, `rule "lock-timeout-default" {
  when   = true
  action = "warn"
}`, "Built-in rule cannot be redefined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, fs, diags := Load([]Source{org(tt.org), project(tt.project)})
			var b strings.Builder
			WriteDiagnostics(&b, fs, diags)
			if !strings.Contains(b.String(), tt.want) || !strings.Contains(b.String(), "project.hcl:") {
				t.Fatalf("diagnostics:\n%s\nwant %q in project.hcl", b.String(), tt.want)
			}
		})
	}
}

func TestConditionsShortCircuit(t *testing.T) {
	// regex fails on a string it does not match; behind a false guard it
	// is never evaluated, as people read &&.
	p := mustLoad(t, org(`rule "guarded" {
  when   = workspace == "prod" && regex("^x", workspace) == "x"
  action = "deny"
}
rule "either" {
  when   = workspace != "prod" || regex("^x", workspace) == "x"
  action = "warn"
}
rule "lists" {
  when   = anytrue([workspace == "prod", command.destroy]) || alltrue([!command.destroy, workspace == "staging"])
  action = "confirm"
}`))
	d := p.Decide(applyIn)
	if d.Action != Warn || d.Deciding().Rule != "either" {
		t.Fatalf("decision = %+v", d)
	}
	in := applyIn
	in.Workspace = "prod"
	if d := p.Decide(in); d.Action != Deny || !strings.Contains(d.Deciding().Message, "could not be evaluated") {
		t.Fatalf("an error past a true guard must deny: %+v", d)
	}
	in.Workspace = "staging"
	if d := p.Decide(in); d.Action != Confirm || d.Deciding().Rule != "lists" {
		t.Fatalf("anytrue/alltrue: %+v", d)
	}
}

// TestFastPathsAgreeWithHCL checks the evaluator's direct readings
// (comparisons, string tests, templates, folded literals) against hcl's own
// evaluation of the same expressions, on several inputs.
func TestFastPathsAgreeWithHCL(t *testing.T) {
	conds := []string{
		`workspace == "prod"`, `workspace != "prod"`, `"prod" == workspace`, `command.writes_state`,
		`time.hour >= 18`, `time.hour < 9`, `time.hour == 12`, `time.weekday_number > 5`, `time.minute <= 30`,
		`command.lock_timeout_seconds < duration("5m")`, `command.lock_timeout_seconds >= duration("1m30s")`,
		`startswith(workspace, "prod")`, `endswith(state_key, ".tfstate")`, `contains(workspace, "eu")`,
		`contains(command.targets, "module.db")`, `contains(command.args, "-auto-approve")`,
		`matches(state_key, "^env/(prod|stage)/")`, `matches(user, "^(alice|bob)$")`,
		`ci.provider == "github"`, `lower(workspace) == "prod"`, `length(command.targets) > 0`,
		`!command.lock`, `command.destroy || command.has_plan_file`,
		`contains(["prod", "stage"], workspace)`, `contains(["prod", 1], workspace)`, `upper(workspace) == "PROD-EU"`,
		`length(command.args) > 1`, `duration(command.lock_timeout) > duration("1m")`, `length(["a", "b"]) == 2`,
		`command.lock_timeout_seconds == 0.1`, `command.lock_timeout_seconds <= 0.1`, `command.lock_timeout_seconds >= 0.1`,
		`command.lock_timeout_seconds != 90`, `command.lock_timeout_seconds > 89.99`, `duration("1.5s") == 1.5`,
	}
	msgs := []string{
		`"${command.name} in ${workspace} at ${time.hour}h, ${command.lock_timeout_seconds}s, lock ${command.lock}"`,
		`"plain text"`, `"${user}"`, `"hour ${time.hour + 1}"`,
	}
	inputs := []func(Input) Input{
		func(i Input) Input { return i },
		func(i Input) Input {
			i.Workspace, i.StateKey, i.User = "prod-eu", "env/prod/app.tfstate", "alice"
			i.Targets, i.Args = []string{"module.db"}, []string{"-auto-approve", "-target=module.db"}
			i.Time = time.Date(2026, 1, 10, 19, 45, 0, 0, time.UTC)
			i.LockTimeoutSet, i.LockTimeout = true, 90*time.Second
			i.CI = CI{Provider: "github"}
			return i
		},
		func(i Input) Input {
			i.Command, i.WritesState, i.LockDisabled, i.Destroy = "plan", false, true, true
			i.Time = time.Date(2026, 1, 5, 8, 59, 0, 0, time.UTC)
			return i
		},
		func(i Input) Input {
			i.LockTimeoutSet, i.LockTimeout = true, 100*time.Millisecond
			return i
		},
	}
	for _, c := range conds {
		for _, m := range msgs {
			p := mustLoad(t, org(`settings { timezone = "UTC" }
rule "r" {
  when    = `+c+`
  action  = "warn"
  message = `+m+`
}`))
			r := &p.Rules[len(p.Rules)-1]
			for n, mk := range inputs {
				in := mk(applyIn)
				ev := p.newEval(in)
				ctx := ev.context()
				fast, err := ev.cond(r.when)
				if err != nil {
					t.Fatalf("%s: %v", c, err)
				}
				// hcl on the source as written: the loader folds literals
				// into r.when, which must not change what it means.
				orig, diags := hclsyntax.ParseExpression([]byte(c), "cond.hcl", hcl.InitialPos)
				if diags.HasErrors() {
					t.Fatalf("%s: %v", c, diags)
				}
				v, diags := orig.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("%s: hcl: %v", c, diags)
				}
				if fast != v.True() {
					t.Errorf("input %d: %s: fast %v, hcl %v", n, c, fast, v.True())
				}
				origMsg, diags := hclsyntax.ParseExpression([]byte(m), "msg.hcl", hcl.InitialPos)
				if diags.HasErrors() {
					t.Fatalf("%s: %v", m, diags)
				}
				want, diags := origMsg.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("%s: hcl: %v", m, diags)
				}
				if got := ev.message(r, ""); got != want.AsString() {
					t.Errorf("input %d: message %s = %q, hcl %q", n, m, got, want.AsString())
				}
			}
		}
	}
}

func TestUnreadableLockDeniesEveryRuleThatReadsIt(t *testing.T) {
	p := mustLoad(t, org(`rule "a" {
  when   = lock.held
  action = "warn"
}
rule "b" {
  when   = !lock.held
  action = "warn"
}
rule "c" {
  when   = true
  action = "warn"
}`))
	reads := 0
	in := applyIn
	in.Lock = func() (LockState, error) { reads++; return LockState{}, errors.New("unreachable") }
	d := p.Decide(in)
	got := map[string]Action{}
	for _, f := range d.Findings {
		got[f.Rule] = f.Action
	}
	if got["a"] != Deny || got["b"] != Deny || got["c"] != Warn || reads != 1 {
		t.Fatalf("findings %v after %d reads; want a and b denied, c warned, one read", got, reads)
	}
	reads = 0
	ex := p.Explain(in)
	if reads != 1 {
		t.Fatalf("explain read the lock %d times, want once", reads)
	}
	for _, r := range ex.Rules {
		if (r.Rule == "a" || r.Rule == "b") && !strings.Contains(r.Why, "could not read the lock") {
			t.Errorf("%s: why = %q", r.Rule, r.Why)
		}
	}
}

func TestOldCommandNamesThroughIndex(t *testing.T) {
	// command["name"] is command.name; neither may crash the check.
	_, _, diags := Load([]Source{org(`rule "r" {
  when   = command["name"] == "env delete" || command["args"] == ["x"]
  action = "deny"
}`)})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "Old command name") {
		t.Fatalf("diags = %v", diags)
	}
}

func TestAfterUnlockSetting(t *testing.T) {
	p := mustLoad(t)
	if p.Settings.AfterUnlock != "offer" {
		t.Fatalf("default after_unlock = %q, want offer", p.Settings.AfterUnlock)
	}
	p = mustLoad(t, org(`settings { after_unlock = "verify" }`))
	if p.Settings.AfterUnlock != "verify" {
		t.Fatalf("after_unlock = %q", p.Settings.AfterUnlock)
	}
	_, _, diags := Load([]Source{org(`settings {
  after_unlock = "verify"
  enforced     = true
}`), project(`settings { after_unlock = "off" }`)})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "checks less after an unlock") {
		t.Fatalf("loosening an enforced after_unlock: %v", diags)
	}
	if _, _, diags := Load([]Source{org(`settings { after_unlock = "sometimes" }`)}); !diags.HasErrors() {
		t.Fatal("an invalid after_unlock loaded")
	}
}

func TestLockHeldAlertSetting(t *testing.T) {
	if p := mustLoad(t); p.Settings.LockHeldAlert != 0 {
		t.Fatalf("default lock_held_alert = %v, want off", p.Settings.LockHeldAlert)
	}
	p := mustLoad(t, org(`settings { lock_held_alert = "30m" }`))
	if p.Settings.LockHeldAlert != 30*time.Minute || !strings.HasSuffix(p.Settings.Source["lock_held_alert"], ":1") {
		t.Fatalf("lock_held_alert = %v (%s)", p.Settings.LockHeldAlert, p.Settings.Source["lock_held_alert"])
	}
	_, _, diags := Load([]Source{org(`settings {
  lock_held_alert = "30m"
  enforced        = true
}`), project(`settings { lock_held_alert = "2h" }`)})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "alerts later, or never") {
		t.Fatalf("loosening an enforced lock_held_alert: %v", diags)
	}
	_, _, diags = Load([]Source{org("settings {\n  lock_held_alert = \"soon\"\n}")})
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("an invalid lock_held_alert: %v", diags)
	}
}
