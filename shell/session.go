package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/hooks"
	"github.com/tfsh/tfsh/internal/ci"
	"github.com/tfsh/tfsh/internal/secret"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// Exit codes beyond terraform's own 0, 1 and 2.
const (
	ExitRefused     = 3   // refused by policy
	ExitCannotRun   = 4   // tfsh could not run the command (bad input, audit log unavailable)
	ExitInterrupted = 130 // interrupted before terraform started
)

// Config is everything a session needs; I/O is passed in, never global.
type Config struct {
	Binary terraform.Binary
	// Policies finds the policy for each command's directory; when nil,
	// Policy is used for every command (the built-in one if that is nil).
	Policies *policy.Loader
	Policy   *policy.Policy
	Audit    *audit.DB
	Env      []string
	Dir      string

	// Stdin is given to terraform (its prompts read it). Out and Err are
	// where terraform's output and tfsh's own messages go.
	Stdin *os.File
	Out   io.Writer
	Err   io.Writer

	// PTY runs commands on a pseudo-terminal (stdin and stdout are a TTY).
	PTY bool

	// Ask asks the person at the terminal (confirm and require_reason
	// rules); nil when there is no terminal: confirmations are then refused
	// and reasons come from Reason or TFSH_REASON.
	Ask func(ctx context.Context, prompt string) (string, error)
	// Reason is the --reason given to tfsh.
	Reason string
	// Yes is tfsh --yes: the confirmation a force-unlock asks for, given
	// without a terminal (terraform's own -force gives it too).
	Yes bool

	// Unrecorded: Audit is a throwaway log, because the real one could not
	// be opened and the policy where tfsh started does not require it.
	// Commands whose policy requires the log are refused.
	Unrecorded bool

	// Readers are tfsh's own commands that read the audit log back
	// (explain, replay), offered as builtins at the prompt: each takes its
	// arguments as on the command line and returns an exit code.
	Readers map[string]func(ctx context.Context, args []string) int

	// Signals are the signals tfsh receives; the session routes them to
	// the running command or to the prompt.
	Signals <-chan os.Signal

	Now func() time.Time
}

// Session runs commands through the one pipeline: tokenize, interpret,
// discover, decide, record, run, record.
type Session struct {
	cfg   Config
	rec   *audit.Session
	dir   string
	count int

	mu      sync.Mutex
	running chan os.Signal // the running command's signals, nil at the prompt
	onIdle  func(os.Signal)
	early   []os.Signal // signals that came before anyone could take them
	stop    chan struct{}
	shown   map[string]bool // messages shown once per session

	who       string // LockInfo.Who of locks this session's commands take
	user      string
	host      string
	ci        ci.Info
	observers observers
	hooks     hooksCache
	history   *History      // nil: lines typed are not kept
	waitEvery time.Duration // how often a wait for a lock is reported in lines
}

// SetHistory keeps the lines typed at the prompt in h (redacted).
func (s *Session) SetHistory(h *History) { s.history = h }

// NewSession writes session_start (after closing sessions that crashed on
// this host) and starts routing signals. info.Args must already be redacted. An audit failure is returned: the
// caller must not run anything unrecorded.
func NewSession(ctx context.Context, cfg Config, info audit.SessionInfo) (*Session, []audit.CrashedSession, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy == nil {
		cfg.Policy = policy.Default()
	}
	red := audit.NewRedactor(secret.EnvValues(cfg.Env)...)
	rec, crashed, err := cfg.Audit.StartSession(ctx, info, red)
	if err != nil {
		return nil, nil, fmt.Errorf("audit log %s cannot be written: %w", cfg.Audit.Path(), err)
	}
	s := &Session{cfg: cfg, rec: rec, dir: cfg.Dir, stop: make(chan struct{}), who: LockWho(),
		user: info.User, host: info.Host, ci: ci.Detect(terraform.EnvLookup(cfg.Env)), waitEvery: waitEvery(terraform.EnvLookup(cfg.Env))}
	if cfg.Signals != nil {
		go s.route()
	}
	return s, crashed, nil
}

// ID is the audit session ID.
func (s *Session) ID() string { return s.rec.ID }

// Dir is the session's working directory.
func (s *Session) Dir() string { return s.dir }

// OnIdleSignal sets what happens to a signal that arrives while no command
// runs (the prompt clears its line on SIGINT, ends on SIGTERM). Signals that
// arrived before it was set are delivered to it at once.
func (s *Session) OnIdleSignal(fn func(os.Signal)) {
	s.mu.Lock()
	s.onIdle = fn
	early := s.early
	s.early = nil
	s.mu.Unlock()
	for _, sig := range early {
		fn(sig)
	}
}

func (s *Session) route() {
	for {
		select {
		case <-s.stop:
			return
		case sig := <-s.cfg.Signals:
			s.mu.Lock()
			ch, idle := s.running, s.onIdle
			if ch == nil && idle == nil {
				s.early = append(s.early, sig)
			}
			s.mu.Unlock()
			switch {
			case ch != nil:
				select {
				case ch <- sig:
				default:
				}
			case idle != nil:
				idle(sig)
			}
		}
	}
}

// Close writes session_end.
func (s *Session) Close(ctx context.Context, status string, exitCode int) error {
	close(s.stop)
	return s.rec.End(ctx, audit.SessionEnd{Status: status, ExitCode: exitCode, Commands: s.count})
}

// Record writes an event of the session that belongs to no command (a
// fact tfsh learned beside the pipeline, such as a conflict in the shared
// audit table).
func (s *Session) Record(ctx context.Context, kind string, data any) error {
	return s.rec.Append(ctx, kind, "", "", data)
}

func (s *Session) errorf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Err, "tfsh: "+format+"\n", args...)
}

// Outcome is how a command, or a session's loop, ended.
type Outcome struct {
	ExitCode int
	// Status is ok, failed, refused, killed, error, interrupted (commands)
	// or terminated (a session ended by a signal).
	Status string
	// CommandID is the audit record of the command, when one was written.
	CommandID string
}

// OK reports success: exit 0, or 2 from a command run with
// -detailed-exitcode (changes present).
func (o Outcome) OK() bool { return o.Status == "ok" }

// Run sends argv (terraform's arguments, without the binary) through the
// pipeline. line is what the user typed, if anything, for the record.
func (s *Session) Run(ctx context.Context, argv []string, line string) Outcome {
	s.count++
	env := s.cfg.Env
	getenv := terraform.EnvLookup(env)
	product := s.cfg.Binary.Name
	inv := terraform.ParseFor(product, argv, getenv)

	dir := commandDir(s.dir, inv.Chdir)
	ref, derr := commandState(dir, inv, getenv)
	// A command that may wait for the lock reads it once, beside the
	// policy and the audit record (see preWait).
	pre := s.startPrecheck(ctx, inv, ref, lock.Getenv(getenv))
	defer pre.stop()

	pol, perr := s.policyFor(dir)
	if perr != nil {
		return s.refuseInvalid(ctx, argv, runInfo{inv: inv, ref: ref, dir: dir, line: line}, perr)
	}
	if pol.Settings.AuditRequired && s.cfg.Unrecorded {
		// The session runs unrecorded because the policy where it started
		// allowed that; this directory's policy does not.
		s.errorf("the audit log cannot be written, and the policy for %s requires it (audit_required, %s): not running the command", dir, pol.Settings.Source["audit_required"])
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	hr, herr := s.hooksFor(dir)
	if herr != nil {
		return s.refuseInvalid(ctx, argv, runInfo{inv: inv, ref: ref, dir: dir, line: line}, herr)
	}
	in := PolicyInput(inv, World{
		Workspace: ref.Workspace, Backend: ref.Backend, StateKey: ref.Key, User: s.user, Host: s.host, CI: s.ci,
		Getenv: getenv, Time: s.cfg.Now(), Lock: s.lockState(ctx, ref, lock.Getenv(getenv)),
	})
	dec := pol.Decide(in)
	if canonicalCommand(inv.Command) == "force-unlock" && inv.Err == nil && !inv.Help && !editable(ref) && !hasFlag(inv, "force") {
		// terraform removes this lock itself, after tfsh's confirmation:
		// it must not ask again.
		dec.Add = append(dec.Add, policy.Addition{Arg: "-force", Rule: "force-unlock", Source: "tfsh"})
	}
	var notes []string
	notAdded := ""
	runArgv, placed := inv.Argv(dec.Args()...)
	final := inv // what terraform will make of runArgv
	if len(dec.Add) > 0 && placed {
		// What terraform will make of the final arguments must be what was
		// decided on, with the addition in effect; otherwise run what the
		// user typed.
		final = terraform.ParseFor(product, runArgv, getenv)
		placed = sameMeaning(inv, final, dec.Args())
	}
	if len(dec.Add) > 0 && !placed {
		notAdded = fmt.Sprintf("did not add %s: no place in these arguments where terraform would read it without changing the rest",
			strings.Join(dec.Args(), " "))
		notes = append(notes, notAdded)
		if overMax(dec) {
			// A clamp that cannot be placed leaves the timeout above the
			// maximum: refuse rather than run it.
			dec.Action = policy.Deny
			dec.Findings = append(dec.Findings, policy.Finding{Rule: policy.RuleLockTimeoutMax, Source: pol.Settings.Source["lock_timeout_max"], Action: policy.Deny,
				Message: "-lock-timeout is above the policy's maximum, and tfsh found no place to lower it: give a -lock-timeout within the maximum"})
		}
		dec.Add = nil
		runArgv = append([]string(nil), argv...)
		final = inv
	}

	// From here on, signals go to the command (or stop a question); one
	// that came just before is seen through ctx and stops it before it
	// starts.
	sigs, release := s.takeSignals()
	defer release()
	asked := s.resolveWithSignals(ctx, dec, sigs)

	secrets := terraform.ArgSecrets(final.EffectiveArgv())
	secrets = append(secrets, terraform.VarFileSecrets(dir, final)...)
	secrets = append(secrets, terraform.BackendConfigSecrets(dir, final)...)
	secrets = append(secrets, ref.Secrets...)
	secrets = append(secrets, hookSecrets(hr, getenv)...)

	info := audit.CommandInfo{
		Typed:       terraform.RedactArgs(argv),
		Run:         terraform.RedactArgs(runArgv),
		Effective:   terraform.RedactArgs(final.EffectiveArgv()),
		Subcommand:  inv.Command,
		Known:       inv.Spec != nil,
		WritesState: in.WritesState,
		Locks:       in.Locks,
		Workdir:     dir,
		Workspace:   ref.Workspace,
		Backend:     ref.Backend,
		StateKey:    ref.Key,
		Env:         relevantEnv(env, final),
		Interactive: s.cfg.PTY,
		Terraform:   s.cfg.Binary.Name + " " + s.cfg.Binary.Version,
	}
	if s.cfg.PTY {
		info.Term = termInfo(s.cfg.Stdin, getenv)
	}
	if line != "" {
		if toks, err := Tokenize(line); err == nil {
			info.Line = Quote(terraform.RedactArgs(toks))
		}
	}
	if inv.Lock.Set {
		v := !inv.LockDisabled
		info.Lock = &v
		info.LockFrom = originName(inv.Lock.From)
	}
	if inv.Err != nil {
		notes = append(notes, inv.Err.Error())
	}
	if canonicalCommand(inv.Command) == "force-unlock" && inv.Err == nil && !inv.Help && editable(ref) {
		notes = append(notes, "tfsh removes this lock itself (compare-and-delete); terraform does not run")
	}
	if derr != nil {
		notes = append(notes, "backend discovery: "+derr.Error())
	}
	info.Note = strings.Join(notes, "; ")

	c, err := s.rec.StartCommand(ctx, info, auditDecision(pol, dec, asked), secrets...)
	if err != nil {
		s.errorf("audit log %s cannot be written (%v): not running the command unrecorded", s.cfg.Audit.Path(), err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	if reason := withholdReason(final, env); reason != "" {
		c.Withhold(reason)
	}
	// A wait for the lock before terraform starts is one line updated in
	// place at a terminal; other messages go above it.
	live := newLiveLine(s.cfg.Err, getenv)
	say := func(msg string) {
		line := "tfsh: " + msg + "\n"
		live.interrupt(func() { io.WriteString(s.cfg.Err, line) })
		c.Output(audit.Note).Write([]byte(line))
	}
	ch := s.newCommandHooks(hr, c, info, say)
	for _, f := range dec.Findings {
		if f.Action == policy.Warn {
			say(fmt.Sprintf("warning from rule %q (%s): %s", f.Rule, f.Source, f.Message))
		}
	}
	if dec.Action == policy.Deny {
		f := dec.Deciding()
		say(fmt.Sprintf("refused by rule %q (%s): %s", f.Rule, f.Source, f.Message))
		ch.runStoppable(ctx, sigs, hooks.PolicyDenied, map[string]any{"rule": f.Rule, "source": f.Source, "message": f.Message})
		return s.end(c, audit.CommandEnd{Status: "refused", ExitCode: ExitRefused, Reason: f.Rule})
	}
	if asked.interrupted {
		return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Reason: "interrupted while the policy asked"})
	}
	if asked.refused != nil {
		f := asked.refused
		say(fmt.Sprintf("refused by rule %q (%s): %s", f.Rule, f.Source, asked.why))
		ch.runStoppable(ctx, sigs, hooks.PolicyDenied, map[string]any{"rule": f.Rule, "source": f.Source, "message": asked.why})
		return s.end(c, audit.CommandEnd{Status: "refused", ExitCode: ExitRefused, Reason: f.Rule})
	}
	if asked.reason != "" && len(dec.With(policy.RequireReason)) > 0 {
		say("reason recorded: " + asked.reason)
	}
	for _, a := range dec.Add {
		say(fmt.Sprintf("added %s (%s rule %s)", a.Arg, a.Source, a.Rule))
	}
	if notAdded != "" {
		say(notAdded)
	}

	if ch != nil && hr.Wants(hooks.BeforeCommand, ch.command) {
		hctx, stop := untilSignal(ctx, sigs)
		results := ch.run(hctx, hooks.BeforeCommand, map[string]any{"decision": auditDecision(pol, dec, asked)})
		if stop() {
			return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Reason: "interrupted while before_command hooks ran"})
		}
		if r, refused := hooks.Refusal(results); refused {
			say(fmt.Sprintf("refused by hook %q (%s): it %s%s", r.Hook, r.Source, hookVerdict(r), outputTail(r.Output)))
			return s.end(c, audit.CommandEnd{Status: "refused", ExitCode: ExitRefused, Reason: "hook " + r.Hook})
		}
	}
	if ctx.Err() != nil {
		return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Reason: "interrupted before terraform started"})
	}
	if canonicalCommand(inv.Command) == "force-unlock" && inv.Err == nil && !inv.Help {
		uctx, stop := untilSignal(ctx, sigs)
		end, handled := s.guardedUnlock(uctx, c, inv, ref, lock.Getenv(getenv), asked.reason, say)
		if stop() && end.Status != "ok" {
			return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Reason: "interrupted during force-unlock"})
		}
		if handled {
			ch.end()
			ch.runStoppable(ctx, sigs, hooks.AfterCommand, map[string]any{"status": end.Status, "exit_code": end.ExitCode})
			if end.Status == "ok" {
				ch.runStoppable(ctx, sigs, hooks.ForceUnlock, map[string]any{"lock_id": end.Reason, "reason": asked.reason})
			}
			out := s.end(c, end)
			if end.Status == "ok" {
				s.afterUnlock(ctx, sigs, pol.Settings.AfterUnlock, inv, ref, end.Reason, c.ID)
			}
			return out
		}
	}
	// A run that loses the race for the lock (another waiter took it
	// first, or terraform could not read the holder and gave up) is run
	// again when output is not on a terminal: its output is held back
	// until it has the lock, and a lost run's is recorded, not shown. At a
	// terminal, terraform waits on its own as the user sees it.
	guard := !s.cfg.PTY
	decidedArgv, decided := runArgv, final
	var (
		ranArgv    []string // the arguments, when tfsh's own wait changed them
		lw         *lockWatch
		res        terraform.Result
		resized    io.Writer // the Resize stream, from the first change of size
		at         waitAttempt
		attempts   int
		freeLosses int // lost runs in a row that found the lock free first
	)
	for {
		attempts++
		lw = s.newLockWatch(c, decided, ref, lock.Getenv(getenv), say, ch)
		runArgv, final, ranArgv = decidedArgv, decided, nil
		var pw preWaitResult
		if pre != nil {
			at.guard = guard
			wctx, stop := untilSignal(ctx, sigs)
			pw = s.preWait(wctx, lw, pre, decided, ref, say, live, at)
			pre.stop()
			if stop() || pw.interrupted || ctx.Err() != nil {
				ch.end()
				hctx, stop := untilSignal(context.WithoutCancel(ctx), sigs)
				ch.wait(hctx)
				stop()
				reason := "interrupted while waiting for the lock, before terraform started"
				if attempts > 1 {
					reason = "interrupted while waiting for the lock, after terraform lost the race for it"
				}
				return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Attempts: multiple(attempts), Reason: reason})
			}
			if pw.argv != nil {
				runArgv, final, ranArgv = pw.argv, pw.inv, terraform.RedactArgs(pw.argv)
			}
		}
		lw.watch(final, s.cfg.Now())
		stdout, stderr := s.cfg.Out, s.cfg.Err
		var held *heldOutput
		if guard && !pw.deadline.IsZero() {
			held = newHeldOutput()
			lw.held.Store(held)
			stdout, stderr = held.wrap(stdout), held.wrap(stderr)
		}
		res = s.runTerraform(ctx, c, lw, runArgv, env, stdout, stderr, sigs, &resized)
		if held != nil {
			// A diagnostic the output ended inside is reported at the
			// scanners' close: before deciding whether the run lost.
			lw.closeScanners()
		}
		if held != nil && s.lostRace(res, lw, pw.deadline) && ctx.Err() == nil && attempts < maxAttempts {
			if pw.waited {
				freeLosses = 0
			} else if freeLosses++; freeLosses >= 3 {
				held.flush()
				say(fmt.Sprintf("terraform failed on the lock on %s %d times in a row although tfsh read it free each time: not running it again (does tfsh read the lock terraform takes? see tfsh locks)", ref.Key, freeLosses))
				break
			}
			shown := held.drop()
			lw.finishLost()
			left := pw.deadline.Sub(s.cfg.Now()).Truncate(time.Millisecond)
			msg := fmt.Sprintf("terraform lost the race for the lock on %s to %s: tfsh waits for it and runs terraform again (attempt %d, %s left of -lock-timeout=%s)",
				ref.Key, raceWinner(lw.lockErr.Load()), attempts+1, left, decided.LockTimeout.Value)
			if !shown {
				msg += "; the lost run's output is in the audit record"
			}
			say(msg)
			at = waitAttempt{deadline: pw.deadline, again: true}
			pre = s.startPrecheck(ctx, decided, ref, lock.Getenv(getenv))
			continue
		}
		held.flush()
		break
	}

	end := audit.CommandEnd{ExitCode: res.ExitCode, Signal: res.Signal, Run: ranArgv, Attempts: multiple(attempts)}
	switch {
	case !res.Started && errors.Is(res.Err, context.Canceled):
		end.Status, end.ExitCode, end.Reason = "interrupted", ExitInterrupted, "interrupted before terraform started"
	case !res.Started:
		end.Status, end.ExitCode = "error", ExitCannotRun
		end.Error = res.Err.Error()
		s.errorf("%v", res.Err)
	case res.Signal != "":
		end.Status = "killed"
	case res.ExitCode == 0, res.ExitCode == 2 && detailed(final):
		end.Status = "ok"
	default:
		end.Status = "failed"
	}
	if len(res.Forwarded) > 0 {
		end.Reason = "tfsh forwarded " + strings.Join(res.Forwarded, ", ")
	}
	ch.end()
	lw.finish(end.Status == "ok", locksForSure(final))
	unlocked := end.Status == "ok" && canonicalCommand(inv.Command) == "force-unlock" && len(inv.Positional) == 1
	if unlocked {
		// terraform removed a lock tfsh cannot read (the backend's own
		// force-unlock): recorded like tfsh's own removals, without the
		// compare.
		id := inv.Positional[0].Value
		method := "terraform force-unlock, confirmed at terraform's prompt (not compared)"
		if hasFlag(final, "force") {
			method = "terraform force-unlock -force (not compared)"
		}
		c.Later(time.Time{}, KindForceUnlock, id, ForceUnlockRecord{Who: s.who, Reason: asked.reason, Where: orNone(ref.Backend) + " backend", Method: method, Resolve: s.resolves(ctx, id)})
	}
	if end.Status == "failed" && takesLock(final) {
		// An expired change-freeze hold in the way is released by the
		// first tfsh that meets it.
		s.releaseExpiredAfter(context.WithoutCancel(ctx), c, ref, lock.Getenv(getenv), say)
	}
	if ch != nil {
		// The command is over, but its hooks may still run: a Ctrl-C now
		// stops them (terraform has exited, the signal is for us).
		hctx, stop := untilSignal(context.WithoutCancel(ctx), sigs)
		ch.wait(hctx)
		ch.run(hctx, hooks.AfterCommand, map[string]any{"status": end.Status, "exit_code": end.ExitCode, "signal": end.Signal})
		if end.Status == "ok" && inv.Command == "force-unlock" && len(inv.Positional) > 0 {
			ch.run(hctx, hooks.ForceUnlock, map[string]any{"lock_id": inv.Positional[0].Value, "reason": asked.reason})
		}
		stop()
	}
	out := s.end(c, end)
	if unlocked {
		s.afterUnlock(ctx, sigs, pol.Settings.AfterUnlock, inv, ref, inv.Positional[0].Value, c.ID)
	}
	return out
}

// takeSignals routes the session's signals to the returned channel (the
// command that runs now) until release.
func (s *Session) takeSignals() (chan os.Signal, func()) {
	sigs := make(chan os.Signal, 4)
	s.mu.Lock()
	s.running = sigs
	s.mu.Unlock()
	return sigs, func() {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}
}

// sameMeaning reports whether b (a with arguments added) keeps a's
// command, lock, positional arguments and error status, with the added
// arguments (-lock-timeout, -force) in effect.
func sameMeaning(a, b *terraform.Invocation, added []string) bool {
	if a.Command != b.Command || a.LockDisabled != b.LockDisabled || (a.Err == nil) != (b.Err == nil) {
		return false
	}
	for _, arg := range added {
		if v, ok := strings.CutPrefix(arg, "-lock-timeout="); ok && (!b.LockTimeout.Set || b.LockTimeout.Value != v) {
			return false
		}
		if arg == "-force" && !hasFlag(b, "force") {
			return false
		}
	}
	if len(a.Positional) != len(b.Positional) {
		return false
	}
	for i := range a.Positional {
		if a.Positional[i].Value != b.Positional[i].Value {
			return false
		}
	}
	return true
}

// overMax reports a decision that lowers an explicit -lock-timeout.
func overMax(d policy.Decision) bool {
	for _, a := range d.Add {
		if a.Rule == policy.RuleLockTimeoutMax {
			return true
		}
	}
	return false
}

// withholdReason says why a command's output must not be stored: it shows
// values from state (which may be sensitive, and which tfsh cannot know to
// redact), or it carries terraform's debug log, which can hold credentials.
func withholdReason(inv *terraform.Invocation, env []string) string {
	switch inv.Command {
	case "output", "show", "state pull", "state show", "console":
		return inv.Command + " prints values from state, which may be secret"
	}
	getenv := terraform.EnvLookup(env)
	if lvl := strings.ToLower(getenv("TF_LOG")); lvl != "" && lvl != "off" && getenv("TF_LOG_PATH") == "" {
		return "TF_LOG sends terraform's debug log, which can carry credentials, to the output"
	}
	return ""
}

func (s *Session) end(c *audit.Command, end audit.CommandEnd) Outcome {
	// Recording the end must survive a cancelled command context.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.End(ctx, end); err != nil {
		s.errorf("could not record the end of the command in %s: %v", s.cfg.Audit.Path(), err)
	}
	return Outcome{ExitCode: end.ExitCode, Status: end.Status, CommandID: c.ID}
}

// hasFlag reports a bool flag set (not to false) in the arguments.
func hasFlag(inv *terraform.Invocation, name string) bool {
	set := false
	for _, f := range inv.Flags {
		if f.Name == name {
			// As terraform reads a bool flag: the last occurrence wins, and
			// a value it cannot read is not true.
			b, err := strconv.ParseBool(f.Value)
			set = err == nil && b
		}
	}
	return set
}

// detailed reports -detailed-exitcode, under which 2 means "changes".
func detailed(inv *terraform.Invocation) bool {
	return hasFlag(inv, "detailed-exitcode")
}

func originName(from string) string {
	if from == "" {
		return policy.OriginCommandLine
	}
	return from
}

func auditDecision(p *policy.Policy, d policy.Decision, r resolution) audit.Decision {
	out := audit.Decision{Action: string(d.Action), Added: d.Args(), Reason: r.reason, Confirmed: r.confirmed}
	for _, f := range p.Files {
		out.Policy = append(out.Policy, audit.PolicyFile{Layer: f.Layer.String(), Path: f.Path, SHA256: f.SHA256})
	}
	if r.refused != nil {
		out.Refused = r.refused.Rule + ": " + r.why
	}
	if f := d.Deciding(); f != nil {
		out.Rule, out.Source, out.Message = f.Rule, f.Source, f.Message
	}
	for _, f := range d.Findings {
		out.Findings = append(out.Findings, audit.Finding{Rule: f.Rule, Source: f.Source, Action: string(f.Action), Message: f.Message})
	}
	for _, a := range d.Add {
		if out.Rule == "" {
			out.Rule, out.Source = a.Rule, a.Source
		}
	}
	return out
}

// relevantEnv picks the environment that changes what terraform does with
// state. TF_CLI_ARGS* are recorded as terraform splits them, redacted;
// TF_VAR_* by name only.
func relevantEnv(env []string, inv *terraform.Invocation) map[string]string {
	out := map[string]string{}
	for _, ea := range inv.EnvArgs {
		out[ea.Name] = Quote(terraform.RedactArgs(ea.Args))
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case k == "TF_WORKSPACE", k == "TF_DATA_DIR", k == "TF_IN_AUTOMATION", k == "TF_INPUT", k == "TF_LOG", k == "TF_LOG_PATH":
			out[k] = v
		case strings.HasPrefix(k, "TF_VAR_"):
			out[k] = terraform.RedactedValue
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// termInfo is the terminal an interactive command draws on (the pty
// terraform runs on gets its size), recorded so that a replay can draw the
// output at the same size; nil when in is not a terminal.
func termInfo(in *os.File, getenv func(string) string) *audit.TermInfo {
	if in == nil {
		return nil
	}
	cols, rows, err := term.GetSize(int(in.Fd()))
	if err != nil || cols <= 0 || rows <= 0 {
		return nil
	}
	return &audit.TermInfo{Cols: cols, Rows: rows, Type: getenv("TERM")}
}

// runTerraform runs terraform once for command c, recording its output
// through lw's scanners; resized keeps the Resize stream across runs.
func (s *Session) runTerraform(ctx context.Context, c *audit.Command, lw *lockWatch, argv, env []string, stdout, stderr io.Writer, sigs chan os.Signal, resized *io.Writer) terraform.Result {
	return terraform.Run(ctx, terraform.RunSpec{
		Path:    s.cfg.Binary.Path,
		Args:    argv,
		Dir:     s.dir,
		Env:     env,
		Stdin:   s.cfg.Stdin,
		Stdout:  stdout,
		Stderr:  stderr,
		PTY:     s.cfg.PTY,
		Signals: sigs,
		Started: lw.started,
		// An answer at terraform's prompt may be a secret (a variable's
		// value): every typed line is redacted from the command's record.
		Typed: func(line string) { c.AddSecrets(line, strings.TrimSpace(line)) },
		// Sizes go into the record, so that a replay exported as asciicast
		// changes size where the user's terminal did.
		Resized: func(cols, rows int) {
			if *resized == nil {
				*resized = c.Output(audit.Resize)
			}
			fmt.Fprintf(*resized, "%dx%d", cols, rows)
		},
		Record: func(stream string) io.Writer {
			switch stream {
			case "stderr":
				return lw.scan(c.Output(audit.Stderr))
			case "tty":
				return lw.scan(c.Output(audit.TTY))
			}
			return lw.scan(c.Output(audit.Stdout))
		},
	})
}

// multiple is n when a command ran terraform more than once, else 0 (not
// recorded).
func multiple(n int) int {
	if n > 1 {
		return n
	}
	return 0
}

// raceWinner names the holder a lost run reported.
func raceWinner(d *terraform.LockDiag) string {
	if d == nil || d.Info == nil {
		return "another run (terraform could not read its holder)"
	}
	who := d.Info.Who
	if who == "" {
		who = "another run"
	}
	return fmt.Sprintf("%s (lock %s)", who, d.Info.ID)
}
