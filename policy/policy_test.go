package policy

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicy(t *testing.T) {
	apply := Input{Command: "apply", Known: true, WritesState: true, Locks: "always", AcceptsLock: true, AcceptsLockTimeout: true, LockTimeoutHonoured: true}
	tests := []struct {
		name     string
		in       func(Input) Input
		action   Action
		rule     string
		add      string
		contains string
	}{
		{"plain apply gets a timeout", func(i Input) Input { return i }, Allow, "", "-lock-timeout=5m", ""},
		{"explicit timeout is kept", func(i Input) Input { i.LockTimeoutSet = true; i.LockTimeout = time.Second; return i }, Allow, "", "", ""},
		{"unlocked apply is denied", func(i Input) Input {
			i.LockDisabled = true
			i.LockSpelling = "-lock=F"
			i.LockOrigin = OriginCommandLine
			return i
		},
			Deny, RuleNoUnlockedWrites, "", "-lock=F turns its state lock off"},
		{"env origin is named", func(i Input) Input {
			i.LockDisabled = true
			i.LockSpelling = "-lock=0"
			i.LockOrigin = "TF_CLI_ARGS_apply"
			return i
		}, Deny, RuleNoUnlockedWrites, "", "(from TF_CLI_ARGS_apply)"},
		{"unlocked plan warns", func(i Input) Input {
			i.Command, i.WritesState, i.LockDisabled, i.LockSpelling = "plan", false, true, "-lock=false"
			return i
		}, Warn, RuleUnlockedRead, "", "writes no state"},
		{"unknown command assumed to write", func(Input) Input {
			return Input{Command: "frobnicate", LockDisabled: true, WritesState: true, LockUncertain: true}
		}, Deny, RuleNoUnlockedWrites, "", "does not know"},
		{"parse error: nothing added", func(i Input) Input { i.ParseError = "invalid boolean"; return i }, Allow, "", "", ""},
		{"parse error does not excuse -lock=false", func(i Input) Input { i.LockDisabled = true; i.ParseError = "flag needs an argument"; return i },
			Deny, RuleNoUnlockedWrites, "", "turns its state lock off"},
		{"help runs nothing", func(i Input) Input { i.LockDisabled = true; i.Help = true; return i }, Allow, "", "", ""},
		{"ignored timeout is not added", func(i Input) Input {
			i.Command, i.LockTimeoutHonoured = "workspace delete", false
			return i
		}, Allow, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Default().Decide(tt.in(apply))
			if d.Action != tt.action {
				t.Fatalf("action = %s, want %s (%+v)", d.Action, tt.action, d)
			}
			if f := d.Deciding(); tt.rule != "" && (f == nil || f.Rule != tt.rule || f.Source != BuiltIn) {
				t.Fatalf("deciding = %+v, want rule %s", f, tt.rule)
			} else if tt.contains != "" && !strings.Contains(f.Message, tt.contains) {
				t.Fatalf("message %q does not contain %q", f.Message, tt.contains)
			}
			if got := strings.Join(d.Args(), " "); got != tt.add {
				t.Fatalf("added %q, want %q", got, tt.add)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", 90 * time.Second: "1m30s", time.Hour: "1h", 500 * time.Millisecond: "500ms"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
