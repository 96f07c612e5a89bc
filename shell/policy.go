package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/ci"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// policyFor is the policy for a command run in dir: the loader's (reread
// when a file changed), or the fixed one the session was given.
func (s *Session) policyFor(dir string) (*policy.Policy, error) {
	if s.cfg.Policies == nil {
		return s.cfg.Policy, nil
	}
	l, err := s.cfg.Policies.For(dir)
	if err != nil {
		return nil, err
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return l.Policy, nil
}

// PolicyInput describes a command for the policy: what terraform will make
// of its arguments and the world it runs in. The lock is read only if a
// rule asks.
func PolicyInput(inv *terraform.Invocation, w World) policy.Input {
	in := policy.Input{
		Command:       canonicalCommand(inv.Command),
		Known:         inv.Spec != nil,
		Help:          inv.Help,
		LockDisabled:  inv.LockDisabled,
		LockUncertain: inv.Uncertain && inv.LockDisabled,
		Args:          commandArgs(inv),
		Workspace:     w.Workspace,
		Backend:       w.Backend,
		StateKey:      w.StateKey,
		User:          w.User,
		Host:          w.Host,
		CI:            policy.CI(w.CI),
		Getenv:        w.Getenv,
		Time:          w.Time,
		Lock:          w.Lock,
	}
	if inv.Err != nil {
		var ae *terraform.ArgError
		if errors.As(inv.Err, &ae) {
			in.ParseError = ae.Msg
		} else {
			in.ParseError = inv.Err.Error()
		}
	}
	if inv.Lock.Set {
		in.LockSpelling = inv.Lock.Spelling
		in.LockOrigin = originName(inv.Lock.From)
	}
	if d, ok := inv.LockTimeoutValue(); ok {
		in.LockTimeoutSet, in.LockTimeout = true, d
	}
	for _, f := range inv.Flags {
		switch f.Name {
		case "target":
			in.Targets = append(in.Targets, f.Value)
		case "destroy":
			b, err := strconv.ParseBool(f.Value)
			in.Destroy = err != nil || b // a value terraform will reject counts as the worse reading
		}
	}
	in.Destroy = in.Destroy || inv.Command == "destroy"
	if t := deleteTarget(inv); t != "" {
		in.Workspace = t // the workspace whose state it deletes
	}
	in.HasPlanFile = inv.Command == "apply" && len(inv.Positional) > 0
	if sp := inv.Spec; sp != nil {
		in.WritesState = sp.WritesState
		in.Locks = sp.Locks.String()
		in.AcceptsLock = sp.LockFlag
		in.AcceptsLockTimeout = sp.LockTimeoutFlag
		in.LockTimeoutHonoured = sp.LockTimeoutHonoured
	} else {
		// Unknown to tfsh: assume the worst.
		in.WritesState = true
		in.Locks = "unknown"
	}
	return in
}

// commandState is the state a command works on: the backend discovered in
// dir, its -state/-state-out, and for workspace delete NAME (env delete
// too) the state of NAME, not the current workspace's.
func commandState(dir string, inv *terraform.Invocation, getenv func(string) string) (lock.StateRef, error) {
	ref, err := lock.Discover(dir, lock.Getenv(getenv))
	ref = ref.WithStatePath(stateFlags(inv))
	if t := deleteTarget(inv); t != "" {
		ref = ref.ForWorkspace(t)
	}
	return ref, err
}

// deleteTarget is the workspace a workspace delete removes.
func deleteTarget(inv *terraform.Invocation) string {
	if canonicalCommand(inv.Command) == "workspace delete" && len(inv.Positional) > 0 {
		return inv.Positional[len(inv.Positional)-1].Value
	}
	return ""
}

// World is what a policy knows about a command beyond its arguments.
type World struct {
	Workspace, Backend, StateKey, User, Host string
	CI                                       ci.Info
	Getenv                                   func(string) string
	Time                                     time.Time
	Lock                                     func() (policy.LockState, error)
}

// commandArgs are the arguments after the subcommand words, as terraform
// will see them (TF_CLI_ARGS* included), redacted.
func commandArgs(inv *terraform.Invocation) []string {
	args := terraform.RedactArgs(inv.EffectiveArgv())
	for _, w := range strings.Fields(inv.Command) {
		if len(args) > 0 && args[0] == w {
			args = args[1:]
		}
	}
	return args
}

// lockState reads the state's lock for a rule that asks, within a bound.
func (s *Session) lockState(ctx context.Context, ref lock.StateRef, getenv lock.Getenv) func() (policy.LockState, error) {
	return func() (policy.LockState, error) {
		obs, err := s.observers.open(ctx, ref, getenv)
		if err != nil {
			return policy.LockState{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var st policy.LockState
		for _, v := range obs.Observe(ctx) {
			if v.Err != nil {
				return policy.LockState{}, fmt.Errorf("%s: %w", v.Where, v.Err)
			}
			if v.Held && !st.Held {
				st.Held = true
				if v.Info != nil {
					st.ID, st.Who, st.Operation, st.Created = v.Info.ID, v.Info.Who, v.Info.Operation, v.Info.Created
				}
			}
		}
		return st, nil
	}
}

// resolution is what the person running a command answered to the rules
// that ask: a reason, a confirmation, or a refusal.
type resolution struct {
	reason    string
	confirmed *bool
	// refused is the rule the command could not satisfy, with why.
	refused *policy.Finding
	why     string
	// interrupted: a signal ended the question.
	interrupted bool
}

// resolve asks for what confirm and require_reason rules need: at a
// terminal it asks; without one a reason comes from --reason or
// TFSH_REASON, and a confirmation cannot be given (fail closed).
func (s *Session) resolve(ctx context.Context, dec policy.Decision) resolution {
	var r resolution
	if dec.Action == policy.Deny {
		return r
	}
	if need := dec.With(policy.RequireReason); len(need) > 0 {
		given := s.cfg.Reason
		if given == "" {
			given = strings.TrimSpace(terraform.EnvLookup(s.cfg.Env)("TFSH_REASON"))
		}
		r.reason = given
		if s.cfg.Ask != nil {
			for _, f := range need {
				s.errorf("rule %q (%s) needs a reason: %s%s", f.Rule, f.Source, f.Message, patternHint(f))
			}
			prompt := "reason: "
			if given != "" {
				prompt = fmt.Sprintf("reason [%s]: ", given)
			}
			answer, err := s.cfg.Ask(ctx, prompt)
			if err != nil {
				r.refused, r.why = &need[0], "no reason given ("+err.Error()+")"
				return r
			}
			if answer = strings.TrimSpace(answer); answer != "" {
				r.reason = answer
			}
		}
		if strings.ContainsFunc(r.reason, unsafeInText) {
			r.refused, r.why = &need[0], "the reason must be one line of plain text (it has control characters)"
			r.reason = strconv.Quote(r.reason)
			return r
		}
		if bad := dec.CheckReason(r.reason); len(bad) > 0 {
			f := bad[0]
			r.refused = &f
			switch {
			case strings.TrimSpace(r.reason) == "" && s.cfg.Ask == nil:
				r.why = f.Message + ": it needs a reason, and there is no terminal to ask at; give one with tfsh --reason '…' or TFSH_REASON" + patternHint(f)
			case strings.TrimSpace(r.reason) == "":
				r.why = f.Message + ": it needs a reason, and none was given"
			default:
				r.why = fmt.Sprintf("%s: the reason %q does not match %s", f.Message, r.reason, f.ReasonPattern)
			}
			return r
		}
	}
	if need := dec.With(policy.Confirm); len(need) > 0 {
		no := false
		if s.cfg.Ask == nil {
			f := need[0]
			r.refused, r.confirmed = &f, &no
			r.why = f.Message + ": it needs a confirmation, which only a person at a terminal can give (--reason and TFSH_REASON answer require_reason rules, not confirm), and there is none here: refused (tfsh fails closed)"
			return r
		}
		for _, f := range need {
			s.errorf("rule %q (%s) asks for confirmation: %s", f.Rule, f.Source, f.Message)
		}
		answer, err := s.cfg.Ask(ctx, "run it? type yes to go on: ")
		yes := err == nil && isYes(answer)
		r.confirmed = &yes
		if !yes {
			f := need[0]
			r.refused = &f
			r.why = f.Message + ": not confirmed"
			return r
		}
	}
	return r
}

func patternHint(f policy.Finding) string {
	if f.ReasonPattern == nil {
		return ""
	}
	return fmt.Sprintf(" (the reason must match %s)", f.ReasonPattern)
}

func isYes(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes":
		return true
	}
	return false
}

// TerminalAsk asks at a terminal: it writes the prompt and reads one line
// from tty, in the terminal's normal (cooked) mode. ctx ends the wait (a
// Ctrl-C reaches the session as a signal and cancels it).
func TerminalAsk(tty *os.File, out io.Writer) func(ctx context.Context, prompt string) (string, error) {
	return func(ctx context.Context, prompt string) (string, error) {
		fmt.Fprint(out, prompt)
		lr, err := newLineReader(tty)
		if err != nil {
			return "", err
		}
		defer lr.close()
		line, err := lr.next(ctx)
		if err != nil {
			fmt.Fprintln(out)
			if errors.Is(err, context.Canceled) {
				return "", errors.New("interrupted")
			}
			return "", err
		}
		return line, nil
	}
}

// resolveWithSignals is resolve with a signal (Ctrl-C at the question)
// ending the wait: the command is then interrupted, not refused.
func (s *Session) resolveWithSignals(ctx context.Context, dec policy.Decision, sigs <-chan os.Signal) resolution {
	if s.cfg.Ask == nil || (len(dec.With(policy.Confirm)) == 0 && len(dec.With(policy.RequireReason)) == 0) {
		return s.resolve(ctx, dec)
	}
	askCtx, stop := untilSignal(ctx, sigs)
	r := s.resolve(askCtx, dec)
	// A signal at the question interrupts the command, whatever was
	// answered: it was meant for what the person was doing.
	r.interrupted = stop()
	return r
}

// untilSignal is ctx, cancelled when a signal arrives on sigs (the signal
// is taken: it was meant for what the context stops). stop ends the watch
// and reports whether a signal came.
func untilSignal(ctx context.Context, sigs <-chan os.Signal) (context.Context, func() bool) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	got := make(chan bool, 1)
	go func() {
		select {
		case <-sigs:
			cancel()
			got <- true
		case <-done:
			got <- false
		}
	}()
	return ctx, func() bool {
		close(done)
		cancel()
		return <-got
	}
}

// runInfo is what is known of a command when it is refused early.
type runInfo struct {
	inv  *terraform.Invocation
	ref  lock.StateRef
	dir  string
	line string
}

// refuseInvalid records and reports a command that cannot run because
// its policy or hooks file is invalid: tfsh never runs a command unguarded.
func (s *Session) refuseInvalid(ctx context.Context, argv []string, ri runInfo, perr error) Outcome {
	info := audit.CommandInfo{
		Typed: terraform.RedactArgs(argv), Subcommand: ri.inv.Command, Known: ri.inv.Spec != nil,
		Workdir: ri.dir, Workspace: ri.ref.Workspace, Backend: ri.ref.Backend, StateKey: ri.ref.Key,
		Interactive: s.cfg.PTY, Terraform: s.cfg.Binary.Name + " " + s.cfg.Binary.Version,
	}
	if toks, err := Tokenize(ri.line); err == nil && ri.line != "" {
		info.Line = Quote(terraform.RedactArgs(toks))
	}
	msg := perr.Error()
	rule := "policy-invalid"
	var he *HooksInvalidError
	if errors.As(perr, &he) {
		rule = "hooks-invalid"
	}
	c, err := s.rec.StartCommand(ctx, info, audit.Decision{Action: string(policy.Deny), Rule: rule, Message: msg})
	s.errorf("%s", msg)
	if err != nil {
		s.errorf("audit log %s cannot be written (%v)", s.cfg.Audit.Path(), err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	return s.end(c, audit.CommandEnd{Status: "error", ExitCode: ExitCannotRun, Error: msg, Reason: rule})
}

// unsafeInText: characters that could make a recorded reason display as
// something else: controls (newlines, escapes), format characters (bidi
// overrides, zero-width) and the Unicode line and paragraph separators.
func unsafeInText(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
