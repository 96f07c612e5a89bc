package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Input describes a command as terraform will see it, and the world it runs
// in. The pipeline fills it from terraform.Invocation and the backend it
// discovered; policy never parses argv itself.
type Input struct {
	Command string // "apply", "state mv"; the unknown word for commands tfsh does not know
	Known   bool   // the command is in tfsh's catalog
	// Help: terraform will only print help (a -h/-help/--help flag).
	Help bool
	// ParseError is set when terraform will reject the arguments itself and
	// run nothing. Nothing is added then; a disabled lock is still refused.
	ParseError string

	// Args are the command's arguments after the subcommand as terraform
	// will see them (TF_CLI_ARGS* included), redacted.
	Args        []string
	Targets     []string // -target values
	HasPlanFile bool     // apply given a saved plan
	Destroy     bool     // destroy, or plan/apply -destroy

	WritesState         bool
	Locks               string // never, always, conditional, session, unknown
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

	Workspace string
	Backend   string // "s3", "local", ...
	StateKey  string
	User      string
	Host      string
	CI        CI
	// Getenv reads the environment; rules see only the variables they name.
	Getenv func(string) string
	// Time is when the command runs; the zero time means now.
	Time time.Time
	// Lock reads the state's lock as it is now. It is called at most once
	// per decision, and only when a rule reads lock.*; nil means unknown
	// (lock.held is false).
	Lock func() (LockState, error)
}

// CI describes the pipeline a command runs in, if any.
type CI struct {
	Provider string // github, gitlab, jenkins, buildkite, circleci, or "ci" for a generic CI=true
	RunID    string
	Workflow string
	Job      string
	Actor    string
	Commit   string
	URL      string
}

// LockState is the state's lock before the command starts.
type LockState struct {
	Held      bool
	ID        string
	Who       string
	Operation string
	Created   time.Time
}

// Action is what a rule asks for.
type Action string

const (
	Allow         Action = "allow"
	Warn          Action = "warn"
	Confirm       Action = "confirm"
	RequireReason Action = "require_reason"
	Deny          Action = "deny"
)

// Actions are the actions a rule can take, weakest first.
var Actions = []Action{Warn, Confirm, RequireReason, Deny}

// rank orders actions: a decision takes the strongest of its findings.
func rank(a Action) int {
	switch a {
	case Deny:
		return 4
	case RequireReason:
		return 3
	case Confirm:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// OverMax is what happens to an explicit -lock-timeout above the maximum.
type OverMax string

const (
	OverMaxRefuse OverMax = "refuse"
	OverMaxClamp  OverMax = "clamp"
)

// Settings are policy values that rules and the pipeline read.
type Settings struct {
	// LockTimeoutDefault is added as -lock-timeout where terraform accepts
	// and honours it and the user gave none.
	LockTimeoutDefault time.Duration
	// LockTimeoutMax bounds an explicit -lock-timeout; zero means no bound.
	LockTimeoutMax time.Duration
	// OverMax says whether a -lock-timeout above the maximum is refused or
	// lowered to it.
	OverMax OverMax
	// AuditRequired: a command whose audit record cannot be written does
	// not run (fail closed).
	AuditRequired bool
	// Location is the time zone of time.* in rules.
	Location *time.Location
	// AfterUnlock says what follows a force-unlock: "verify" runs the
	// integrity check, "offer" asks at a terminal (and says what to run
	// without one), "off" does nothing.
	AfterUnlock string
	// LockHeldAlert is how long a lock may be held (by its Created) before
	// tfsh watch fires the lock_held_long hook; zero is never.
	LockHeldAlert time.Duration
	// AuditTable is the DynamoDB table every event is also shipped to
	// (audit { dynamodb_table }), "" for none; AuditShipTimeout bounds
	// the wait for shipping at exit; AuditTTLDays, if not 0, makes shipped
	// events expire from the table after that many days.
	AuditTable       string
	AuditShipTimeout time.Duration
	AuditTTLDays     int

	// Source says where each setting was last set ("built-in" or file:line).
	Source map[string]string
	// Enforced says where each enforced setting was enforced.
	Enforced map[string]string
}

// Rule is one named check. A built-in rule's Match returns a message when
// the rule applies; a rule from a policy file has a When expression and a
// message template instead. A rule with Add contributes arguments instead
// of (or besides) a finding.
type Rule struct {
	Name        string
	Source      string // "built-in", or file:line of the rule block
	Layer       Layer
	Action      Action
	Description string
	// Enforced: a later file may not redefine, adjust or disable the rule.
	Enforced bool
	// enforcedIn is the file (by reading order, from 1) that enforced it.
	enforcedIn int
	// EnforcedBy is where enforcement was declared, when not at Source.
	EnforcedBy string
	// ReasonPattern, for require_reason: the reason must match it.
	ReasonPattern *regexp.Regexp

	Match func(in Input, s Settings) (message string, ok bool)
	Add   func(in Input, s Settings) []string

	when      hcl.Expression
	message   hcl.Expression // a template; for a built-in rule, replaces its message
	readsLock bool           // when or message reads lock.*; set by Load
}

// Policy is an ordered list of rules and their settings.
type Policy struct {
	Rules    []Rule
	Settings Settings
	// Files are the policy files in effect, highest authority first.
	Files []File
	// Disabled are rules a layer turned off (enabled = false), with the
	// source of the block that did it.
	Disabled []Rule
	// envNames are the environment variables the rules read; usesLock
	// says whether any rule reads lock.*.
	envNames []string
	usesLock bool
	files    Files                  // the parsed files, for explanations
	leafID   map[hcl.Expression]int // condition leaves, the same id for the same text
	leaves   int
}

// File is one policy file in effect.
type File struct {
	Path  string `json:"path"`
	Layer Layer  `json:"layer"`
	// SHA256 is the file's digest as read: the audit log records which
	// version of each file decided a command.
	SHA256 string `json:"sha256"`
}

// Finding is a rule that matched.
type Finding struct {
	Rule    string
	Source  string
	Action  Action
	Message string
	// ReasonPattern is the pattern a require_reason rule's reason must match.
	ReasonPattern *regexp.Regexp
}

// Addition is an argument a rule adds to the command.
type Addition struct {
	Arg    string
	Rule   string
	Source string
}

// Decision is the outcome for one command: its action is the strongest of
// its findings (deny > require_reason > confirm > warn > allow): a deny
// anywhere wins.
type Decision struct {
	Action   Action
	Findings []Finding
	Add      []Addition
}

// Deciding returns the finding that set the action (the first of the
// strongest), or nil when the command is simply allowed.
func (d Decision) Deciding() *Finding {
	if d.Action == Allow {
		return nil
	}
	for i := range d.Findings {
		if d.Findings[i].Action == d.Action {
			return &d.Findings[i]
		}
	}
	return nil
}

// With returns the findings with action a.
func (d Decision) With(a Action) []Finding {
	var out []Finding
	for _, f := range d.Findings {
		if f.Action == a {
			out = append(out, f)
		}
	}
	return out
}

// Args returns the arguments to add, in rule order.
func (d Decision) Args() []string {
	out := make([]string, 0, len(d.Add))
	for _, a := range d.Add {
		out = append(out, a.Arg)
	}
	return out
}

// CheckReason reports which require_reason findings reason fails: empty
// reasons fail all of them, and a rule with a pattern needs a match.
func (d Decision) CheckReason(reason string) []Finding {
	var bad []Finding
	reason = strings.TrimSpace(reason)
	for _, f := range d.With(RequireReason) {
		if reason == "" || (f.ReasonPattern != nil && !f.ReasonPattern.MatchString(reason)) {
			bad = append(bad, f)
		}
	}
	return bad
}

// Decide evaluates every rule. Additions are dropped when the command is
// denied: nothing will run. A file rule that cannot be evaluated denies
// (fail closed) and says why.
func (p *Policy) Decide(in Input) Decision {
	return p.decide(p.newEval(in))
}

func (p *Policy) decide(ev *eval) Decision {
	in := ev.in
	d := Decision{Action: Allow}
	for i := range p.Rules {
		r := &p.Rules[i]
		msg, ok := ev.match(r)
		if ok {
			f := Finding{Rule: r.Name, Source: r.Source, Action: r.Action, Message: msg, ReasonPattern: r.ReasonPattern}
			if ev.err != nil {
				f.Action, f.Message = Deny, ev.err.Error()
				ev.err = nil
			}
			d.Findings = append(d.Findings, f)
			if rank(f.Action) > rank(d.Action) {
				d.Action = f.Action
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

// Built-in rule names.
const (
	RuleNoUnlockedWrites   = "no-unlocked-writes"
	RuleUnlockedRead       = "unlocked-read"
	RuleLockTimeoutDefault = "lock-timeout-default"
	RuleLockTimeoutMax     = "lock-timeout-max"
	RuleForceUnlockReason  = "force-unlock-reason"
)

// BuiltIn is the source of the rules and settings tfsh applies with no
// policy file.
const BuiltIn = "built-in"

// DefaultSettings are the built-in settings.
func DefaultSettings() Settings {
	return Settings{
		LockTimeoutDefault: 5 * time.Minute,
		OverMax:            OverMaxRefuse,
		AuditRequired:      true,
		Location:           time.Local,
		AfterUnlock:        "offer",
		AuditShipTimeout:   2 * time.Second,
		Source: map[string]string{
			"lock_timeout_default": BuiltIn, "lock_timeout_max": BuiltIn, "lock_timeout_over_max": BuiltIn,
			"audit_required": BuiltIn, "timezone": BuiltIn, "after_unlock": BuiltIn, "lock_held_alert": BuiltIn,
			"audit.dynamodb_table": BuiltIn, "audit.ship_timeout": BuiltIn, "audit.ttl_days": BuiltIn,
		},
		Enforced: map[string]string{},
	}
}

// Default returns the built-in policy: refuse lock disabling on anything that
// writes state, warn on unlocked reads, add -lock-timeout=5m where terraform
// accepts and honours it and none is given, hold an explicit timeout to the
// maximum when one is set, and ask why before a force-unlock.
func Default() *Policy {
	return &Policy{Settings: DefaultSettings(), Rules: builtInRules()}
}

func builtInRules() []Rule {
	return []Rule{
		{Name: RuleNoUnlockedWrites, Source: BuiltIn, Action: Deny, Match: noUnlockedWrites,
			Description: "refuse a command that writes state with its lock off (-lock=false in any spelling, TF_CLI_ARGS* included)"},
		{Name: RuleUnlockedRead, Source: BuiltIn, Action: Warn, Match: unlockedRead,
			Description: "warn when a command that only reads state runs with its lock off"},
		{Name: RuleLockTimeoutDefault, Source: BuiltIn, Action: Allow, Add: lockTimeoutDefault,
			Description: "add -lock-timeout (the lock_timeout_default setting) where terraform accepts and honours it and none is given"},
		{Name: RuleLockTimeoutMax, Source: BuiltIn, Action: Deny, Match: lockTimeoutOverMax, Add: lockTimeoutClamp,
			Description: "refuse, or lower to the maximum, an explicit -lock-timeout above the lock_timeout_max setting"},
		{Name: RuleForceUnlockReason, Source: BuiltIn, Action: RequireReason, Match: forceUnlockReason,
			Description: "ask for a reason before removing a state lock (force-unlock)"},
	}
}

func runs(in Input) bool { return !in.Help && in.ParseError == "" }

func forceUnlockReason(in Input, _ Settings) (string, bool) {
	if !runs(in) || in.Command != "force-unlock" {
		return "", false
	}
	return "force-unlock removes a lock that another run may still hold: say why (the reason is recorded)", true
}

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

func addsDefaultTimeout(in Input, s Settings) bool {
	return runs(in) && in.Known && in.AcceptsLockTimeout && in.LockTimeoutHonoured && !in.LockTimeoutSet && !in.LockDisabled && s.LockTimeoutDefault > 0
}

func lockTimeoutDefault(in Input, s Settings) []string {
	if !addsDefaultTimeout(in, s) {
		return nil
	}
	return []string{"-lock-timeout=" + FormatDuration(s.LockTimeoutDefault)}
}

func overMax(in Input, s Settings) bool {
	return runs(in) && in.LockTimeoutSet && s.LockTimeoutMax > 0 && in.LockTimeout > s.LockTimeoutMax && in.LockTimeoutHonoured
}

func lockTimeoutOverMax(in Input, s Settings) (string, bool) {
	if !overMax(in, s) || s.OverMax == OverMaxClamp {
		return "", false
	}
	return fmt.Sprintf("-lock-timeout=%s is above the policy's maximum of %s (%s): give %s or less",
		FormatDuration(in.LockTimeout), FormatDuration(s.LockTimeoutMax), s.Source["lock_timeout_max"], FormatDuration(s.LockTimeoutMax)), true
}

func lockTimeoutClamp(in Input, s Settings) []string {
	if !overMax(in, s) || s.OverMax != OverMaxClamp || !in.AcceptsLockTimeout {
		return nil
	}
	return []string{"-lock-timeout=" + FormatDuration(s.LockTimeoutMax)}
}

// EffectiveLockTimeout is the -lock-timeout terraform will use after the
// policy's additions: the user's (lowered to the maximum when clamped), the
// default where it is added, else zero.
func (s Settings) EffectiveLockTimeout(in Input) time.Duration {
	switch {
	case overMax(in, s) && s.OverMax == OverMaxClamp:
		return s.LockTimeoutMax
	case in.LockTimeoutSet:
		return in.LockTimeout
	case addsDefaultTimeout(in, s):
		return s.LockTimeoutDefault
	}
	return 0
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
