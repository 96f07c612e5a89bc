package policy

import (
	"fmt"
	"strings"
	"time"
)

// Input describes a command as terraform will see it. The pipeline fills it
// from terraform.Invocation; policy never parses argv itself.
type Input struct {
	Command string // "apply", "state mv"; the unknown word for commands tfsh does not know
	Known   bool   // the command is in tfsh's catalog
	// Help: terraform will only print help (a -h/-help/--help flag).
	Help bool
	// ParseError is set when terraform will reject the arguments itself and
	// run nothing. Nothing is added then; a disabled lock is still refused.
	ParseError string

	WritesState         bool
	Locks               string // never, always, conditional, session
	AcceptsLock         bool
	AcceptsLockTimeout  bool
	LockTimeoutHonoured bool

	// LockDisabled: the effective -lock is false (last occurrence wins,
	// TF_CLI_ARGS* included).
	LockDisabled bool
	LockSpelling string // the argument as written, e.g. "--lock=F"
	LockOrigin   string // "the command line", "TF_CLI_ARGS", "TF_CLI_ARGS_apply"
	// LockUncertain: an unknown flag made the walk ambiguous and some reading
	// of the arguments disables the lock.
	LockUncertain bool

	LockTimeoutSet bool
	LockTimeout    time.Duration
}

// Action is what a rule asks for.
type Action string

const (
	Allow Action = "allow"
	Warn  Action = "warn"
	Deny  Action = "deny"
)

// Settings are policy values that rules read.
type Settings struct {
	// LockTimeoutDefault is added as -lock-timeout where terraform accepts
	// and honours it and the user gave none.
	LockTimeoutDefault time.Duration
}

// Rule is one named check. Match returns a message when the rule applies.
// A rule with Add contributes arguments instead of (or besides) a finding.
type Rule struct {
	Name        string
	Source      string // "built-in", later "file:line"
	Action      Action
	Description string // what it checks, for people reading the policy
	Match       func(in Input, s Settings) (message string, ok bool)
	Add         func(in Input, s Settings) []string
}

// Policy is an ordered list of rules and their settings.
type Policy struct {
	Rules    []Rule
	Settings Settings
}

// Finding is a rule that matched.
type Finding struct {
	Rule    string
	Source  string
	Action  Action
	Message string
}

// Addition is an argument a rule adds to the command.
type Addition struct {
	Arg    string
	Rule   string
	Source string
}

// Decision is the outcome for one command: deny if any rule denies (a deny
// anywhere wins), else warn if any warns, else allow.
type Decision struct {
	Action   Action
	Findings []Finding
	Add      []Addition
}

// Deciding returns the finding that set the action (the first deny, else
// the first warning), or nil when the command is simply allowed.
func (d Decision) Deciding() *Finding {
	for _, want := range []Action{Deny, Warn} {
		for i := range d.Findings {
			if d.Findings[i].Action == want {
				return &d.Findings[i]
			}
		}
	}
	return nil
}

// Args returns the arguments to add, in rule order.
func (d Decision) Args() []string {
	out := make([]string, 0, len(d.Add))
	for _, a := range d.Add {
		out = append(out, a.Arg)
	}
	return out
}

// Decide evaluates every rule. Additions are dropped when the command is
// denied: nothing will run.
func (p *Policy) Decide(in Input) Decision {
	d := Decision{Action: Allow}
	for _, r := range p.Rules {
		if r.Match != nil {
			if msg, ok := r.Match(in, p.Settings); ok {
				d.Findings = append(d.Findings, Finding{Rule: r.Name, Source: r.Source, Action: r.Action, Message: msg})
				if rank(r.Action) > rank(d.Action) {
					d.Action = r.Action
				}
			}
		}
		if r.Add != nil {
			for _, a := range r.Add(in, p.Settings) {
				d.Add = append(d.Add, Addition{Arg: a, Rule: r.Name, Source: r.Source})
			}
		}
	}
	if d.Action == Deny {
		d.Add = nil
	}
	return d
}

func rank(a Action) int {
	switch a {
	case Deny:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// Built-in rule names.
const (
	RuleNoUnlockedWrites   = "no-unlocked-writes"
	RuleUnlockedRead       = "unlocked-read"
	RuleLockTimeoutDefault = "lock-timeout-default"
)

// BuiltIn is the source of the rules tfsh applies with no policy file.
const BuiltIn = "built-in"

// Default returns the built-in policy: refuse lock disabling on anything that
// writes state, warn on unlocked reads, add -lock-timeout=5m where terraform
// accepts and honours it and none is given.
func Default() *Policy {
	return &Policy{
		Settings: Settings{LockTimeoutDefault: 5 * time.Minute},
		Rules: []Rule{
			{Name: RuleNoUnlockedWrites, Source: BuiltIn, Action: Deny, Match: noUnlockedWrites,
				Description: "refuse a command that writes state with its lock off (-lock=false in any spelling, TF_CLI_ARGS* included)"},
			{Name: RuleUnlockedRead, Source: BuiltIn, Action: Warn, Match: unlockedRead,
				Description: "warn when a command that only reads state runs with its lock off"},
			{Name: RuleLockTimeoutDefault, Source: BuiltIn, Action: Allow, Add: lockTimeoutDefault,
				Description: "add -lock-timeout (the default setting) where terraform accepts and honours it and none is given"},
		},
	}
}

func runs(in Input) bool { return !in.Help && in.ParseError == "" }

func describeLock(in Input) string {
	s := in.LockSpelling
	if s == "" {
		s = "-lock=false"
	}
	if in.LockOrigin != "" && in.LockOrigin != OriginCommandLine {
		s += " (from " + in.LockOrigin + ")"
	}
	return s
}

// OriginCommandLine is the LockOrigin of an argument the user typed.
const OriginCommandLine = "the command line"

func noUnlockedWrites(in Input, _ Settings) (string, bool) {
	// A parse error does not stop this rule: terraform would refuse the
	// command anyway, so refusing costs nothing, and it covers the case
	// where tfsh predicts an error that terraform does not make.
	if in.Help || !in.LockDisabled || !in.WritesState {
		return "", false
	}
	what := in.Command + " writes state"
	if !in.Known {
		what = fmt.Sprintf("tfsh does not know %q, so it assumes it writes state", in.Command)
	}
	msg := fmt.Sprintf("%s, and %s turns its state lock off: two runs at once could overwrite each other's state", what, describeLock(in))
	if in.LockUncertain {
		msg += " (an argument tfsh does not know makes this ambiguous, so it assumes the worst)"
	}
	if strings.HasPrefix(in.LockOrigin, "TF_CLI_ARGS") {
		msg += "; unset " + in.LockOrigin + " or remove the flag from it"
	} else {
		msg += "; drop the flag and let tfsh wait for the lock instead"
	}
	return msg, true
}

func unlockedRead(in Input, _ Settings) (string, bool) {
	if !runs(in) || !in.LockDisabled || in.WritesState {
		return "", false
	}
	return fmt.Sprintf("%s runs without the state lock (%s): it writes no state, but may read one that another run is changing", in.Command, describeLock(in)), true
}

func lockTimeoutDefault(in Input, s Settings) []string {
	if !runs(in) || !in.Known || !in.AcceptsLockTimeout || !in.LockTimeoutHonoured || in.LockTimeoutSet || in.LockDisabled || s.LockTimeoutDefault <= 0 {
		return nil
	}
	return []string{"-lock-timeout=" + FormatDuration(s.LockTimeoutDefault)}
}

// FormatDuration writes a duration the way people write -lock-timeout:
// 5m rather than 5m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
