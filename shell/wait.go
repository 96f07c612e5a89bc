package shell

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// defaultWaitEvery is how often a wait for someone else's lock is reported
// as a line of its own (CI logs); TFSH_WAIT_REPORT_INTERVAL changes it, for
// tests.
const defaultWaitEvery = 30 * time.Second

// waitEvery reads TFSH_WAIT_REPORT_INTERVAL (a Go duration), documented as
// a knob for tests: a wait's lines come that often instead of every 30 s.
func waitEvery(getenv func(string) string) time.Duration {
	if d, err := time.ParseDuration(getenv("TFSH_WAIT_REPORT_INTERVAL")); err == nil && d > 0 {
		return d
	}
	return defaultWaitEvery
}

// holderCache says who took a lock, as this session's audit log knows it:
// one indexed query per lock ID, kept for the command.
type holderCache struct {
	db *audit.DB
	mu sync.Mutex
	m  map[string]*audit.Party
}

func newHolderCache(db *audit.DB) *holderCache {
	return &holderCache{db: db, m: map[string]*audit.Party{}}
}

// get returns the holder of lock id when the log recorded its taking, nil
// otherwise (plain terraform, another log, a read error).
func (h *holderCache) get(ctx context.Context, id string) *audit.Party {
	if h == nil || h.db == nil || id == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.m[id]; ok {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out *audit.Party
	if p, _, found, err := h.db.LockHolder(ctx, id); err == nil && found {
		out = &p
	}
	h.m[id] = out
	return out
}

// describeHolder says who holds a lock, for a person: what the audit log
// knows of its taking when it recorded it ("bob via GitHub run 1234, job
// deploy (root@runner-7): apply -auto-approve, 3m12s"), else the lock's own
// record ("bob@ci-7: apply, 3m12s"), else the local process holding it.
func describeHolder(info *lock.Info, pid int, args []string, p *audit.Party, now time.Time) string {
	age := ""
	if a := info.Age(now); a > 0 {
		age = ", " + a.Round(time.Second).String()
	}
	switch {
	case p != nil:
		return p.Line() + age
	case info != nil:
		s := audit.Party{Who: info.Who, Operation: lock.OperationName(info.Operation)}.Line()
		if info.Operation == HoldOperation {
			s = audit.Party{Who: info.Who, Operation: "change-freeze hold (" + info.Info + ")"}.Line()
		}
		s += age
		if pid != 0 {
			s += fmt.Sprintf(" (pid %d)", pid)
		}
		return s
	case pid != 0:
		s := fmt.Sprintf("process %d", pid)
		if len(args) > 0 {
			s += " (" + audit.Party{Who: Quote(args)}.Line() + ")"
		}
		return s
	}
	return "someone (the lock's record is unreadable)"
}

// waitReport shows a wait for someone else's lock while it lasts. In lines
// (CI logs, or while terraform runs): one when the wait starts, one every
// `every`, one when the lock is free. Live (tfsh's own pre-wait at a
// terminal, while nothing else writes to it): one line updated in place
// every second; the lines above are still recorded as tfsh notes.
type waitReport struct {
	key     string        // the state
	timeout time.Duration // the command's -lock-timeout, 0 if unknown
	every   time.Duration
	now     func() time.Time
	// line prints "tfsh: msg" and records it; note only records it.
	line func(msg string)
	note func(msg string)
	live *liveLine // nil: lines only

	mu      sync.Mutex
	waits   map[string]*shownWait
	order   []string
	since   time.Time // the first wait's start
	lastOut time.Time // the last line printed or recorded
	stop    chan struct{}
	done    chan struct{}
}

type shownWait struct{ desc func(now time.Time) string }

func (r *waitReport) message(now time.Time) string {
	w := r.waits[r.order[len(r.order)-1]]
	msg := "waiting for lock on " + r.key + " held by " + w.desc(now)
	if waited := now.Sub(r.since).Round(time.Second); waited > 0 {
		msg += "; waited " + waited.String()
		if r.timeout > 0 {
			msg += " of " + r.timeout.String()
		}
	}
	return msg
}

// waitKey matches a lock_wait_end to its lock_wait: a local holder by its
// process (its .lock.info may be read only later), else by ID.
func waitKey(ev lock.Event) string {
	if ev.PID != 0 {
		return "pid:" + strconv.Itoa(ev.PID)
	}
	return ev.LockID
}

// started shows a lock_wait.
func (r *waitReport) started(ev lock.Event, holder *audit.Party) {
	if r == nil {
		return
	}
	info, pid, args := ev.Info, ev.PID, ev.Args
	desc := func(now time.Time) string { return describeHolder(info, pid, args, holder, now) }
	r.mu.Lock()
	defer r.mu.Unlock()
	key := waitKey(ev)
	if _, ok := r.waits[key]; !ok {
		r.order = append(r.order, key)
	}
	r.waits[key] = &shownWait{desc: desc}
	now := r.now()
	if len(r.order) == 1 {
		r.since = ev.At
		if r.since.IsZero() || r.since.After(now) {
			r.since = now
		}
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.tick(r.stop, r.done)
	}
	r.out(now)
}

// out shows the current state as a line (and a live redraw); r.mu held.
func (r *waitReport) out(now time.Time) {
	msg := r.message(now)
	r.lastOut = now
	if r.live != nil {
		r.note(msg)
		r.live.draw("tfsh: " + msg)
		return
	}
	r.line(msg)
}

func (r *waitReport) tick(stop, done chan struct{}) {
	defer close(done)
	every := r.every
	if every <= 0 {
		every = defaultWaitEvery
	}
	step := every
	if r.live != nil {
		step = min(step, time.Second)
	}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if len(r.order) > 0 {
			now := r.now()
			switch {
			case now.Sub(r.lastOut) >= every-step/2:
				r.out(now)
			case r.live != nil:
				r.live.draw("tfsh: " + r.message(now))
			}
		}
		r.mu.Unlock()
	}
}

// ended shows a lock_wait_end: when no wait is left, the lock is free (or
// the wait stopped, which the caller explains).
func (r *waitReport) ended(ev lock.Event) {
	if r == nil {
		return
	}
	r.mu.Lock()
	key := waitKey(ev)
	if _, ok := r.waits[key]; !ok {
		r.mu.Unlock()
		return
	}
	delete(r.waits, key)
	for i, k := range r.order {
		if k == key {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
	now := r.now()
	if len(r.order) > 0 {
		r.out(now) // still held, by another
		r.mu.Unlock()
		return
	}
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	since := r.since
	r.mu.Unlock()
	close(stop)
	<-done
	r.live.clear()
	if ev.Ended == "released" {
		r.line(fmt.Sprintf("lock on %s free after %s", r.key, now.Sub(since).Round(100*time.Millisecond)))
	}
}

// close ends the report: a wait still shown stops being updated.
func (r *waitReport) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.waits, r.order = map[string]*shownWait{}, nil
	r.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	r.live.clear()
}

// liveLine is one line of a terminal updated in place: carriage return,
// erase to the end of the line, the text cut to the terminal's width (a
// wrapped line cannot be redrawn by a carriage return).
type liveLine struct {
	w     io.Writer
	width func() int

	mu    sync.Mutex
	text  string
	drawn bool
}

// newLiveLine returns a live line on w when w is a terminal that can take
// one, else nil.
func newLiveLine(w io.Writer, getenv func(string) string) *liveLine {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || getenv("TERM") == "dumb" {
		return nil
	}
	return &liveLine{w: w, width: func() int {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
		return 80
	}}
}

func (l *liveLine) draw(text string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = text
	l.render()
}

func (l *liveLine) render() {
	text := l.text
	if w := l.width() - 1; w > 0 && utf8.RuneCountInString(text) > w {
		r := []rune(text)
		text = string(r[:w-1]) + "…"
	}
	io.WriteString(l.w, "\r\x1b[K"+text)
	l.drawn = true
}

// clear erases the line and forgets it.
func (l *liveLine) clear() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn {
		io.WriteString(l.w, "\r\x1b[K")
	}
	l.drawn, l.text = false, ""
}

// interrupt writes something else (a whole line) to the terminal: the live
// line is erased first and drawn again below it.
func (l *liveLine) interrupt(write func()) {
	if l == nil {
		write()
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn {
		io.WriteString(l.w, "\r\x1b[K")
	}
	write()
	if l.drawn {
		l.render()
	}
}

// precheck is the one read of the lock a command that may wait for it
// makes before terraform starts. It starts as soon as the state is known,
// beside the policy and the audit record, so that on a free lock it adds
// almost nothing.
type precheck struct {
	done   chan struct{}
	cancel context.CancelFunc
	obs    lock.Observer
	views  []lock.View
	at     time.Time
}

// mayPreWait reports whether a command could wait for the lock in tfsh:
// it always takes the lock and honours -lock-timeout, the timeout (as
// typed; the policy may add one) is not 0, and tfsh reads this backend's
// locks.
func mayPreWait(inv *terraform.Invocation, ref lock.StateRef) bool {
	if !locksForSure(inv) || !inv.Spec.LockTimeoutHonoured || (ref.Backend != "local" && ref.Backend != "s3") {
		return false
	}
	d, ok := inv.LockTimeoutValue()
	return !inv.LockTimeout.Set || ok && d > 0
}

// startPrecheck reads the lock in the background; nil when the command
// cannot wait for it.
func (s *Session) startPrecheck(ctx context.Context, inv *terraform.Invocation, ref lock.StateRef, getenv lock.Getenv) *precheck {
	if !mayPreWait(inv, ref) {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &precheck{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		// The observer is kept for the session: setting it up must not be
		// cut short (and its failure cached) by this command ending.
		obs, err := s.observers.open(context.WithoutCancel(ctx), ref, getenv)
		if err != nil {
			return
		}
		p.obs = obs
		p.views = obs.Observe(ctx)
		p.at = s.cfg.Now()
	}()
	return p
}

func (p *precheck) stop() {
	if p != nil {
		p.cancel()
	}
}

// precheckFresh is how old the pre-check's read may be and still be used:
// a policy question may have kept the command for minutes.
const precheckFresh = time.Second

// preWaitResult is what the pre-wait decided about running terraform.
type preWaitResult struct {
	interrupted bool
	argv        []string              // nil: run as decided before
	inv         *terraform.Invocation // what terraform makes of argv
	// deadline is the end of the -lock-timeout when tfsh read the lock and
	// manages the wait (a run that loses the race before it may be run
	// again); zero when terraform waits on its own.
	deadline time.Time
	waited   bool // the lock was held at the first read
}

// waitAttempt is what one pre-wait knows of the runs before it.
type waitAttempt struct {
	// deadline ends the wait; zero for a command's first, which ends at
	// its -lock-timeout from now.
	deadline time.Time
	// guard: tfsh runs terraform again if it loses the race for the lock
	// (output is not on a terminal), so after a wait it starts terraform
	// with -lock-timeout=0s rather than with what is left: a lost race
	// then ends at once, not in terraform's 1, 2, 4 s backoff.
	guard bool
	// again: a wait after a lost race; terraform starts with
	// -lock-timeout=0s even when the lock is free at the first read.
	again bool
}

// preWait is tfsh's own wait for a lock someone else holds, before it
// starts terraform: terraform's retry backoff (1, 2, 4, 8, 16 s) can leave
// a freed lock unused for up to 16 s, so tfsh reads the lock where it lives
// and starts terraform as soon as it is free: with -lock-timeout=0s when
// tfsh runs terraform again after a lost race (at.guard; see Session.Run),
// else with what is left of the -lock-timeout (a race with another waiter
// then ends in terraform's own retry). At the deadline terraform starts
// with -lock-timeout=0s, so that the failure is terraform's own
// diagnostic, recorded as contention. With a free lock at the pre-check,
// terraform starts at once.
func (s *Session) preWait(ctx context.Context, lw *lockWatch, pre *precheck, final *terraform.Invocation, ref lock.StateRef, say func(string), live *liveLine, at waitAttempt) preWaitResult {
	timeout, ok := final.LockTimeoutValue()
	if pre == nil || lw == nil || !ok || timeout <= 0 || !mayPreWait(final, ref) {
		return preWaitResult{}
	}
	getenv := terraform.EnvLookup(s.cfg.Env)
	if probe, placed := final.Argv("-lock-timeout=1s"); !placed || !sameMeaning(final, terraform.ParseFor(s.cfg.Binary.Name, probe, getenv), []string{"-lock-timeout=1s"}) {
		// No place where terraform would read the remaining timeout: it
		// waits as typed, on its own.
		return preWaitResult{}
	}
	start := s.cfg.Now()
	select {
	case <-pre.done:
	case <-ctx.Done():
		return preWaitResult{interrupted: true}
	}
	if pre.obs == nil {
		return preWaitResult{} // the backend cannot be read: terraform's own retry
	}
	spec := lock.WaitSpec{
		Interval: lock.PreWaitPolling(pre.obs.Mechanisms()),
		Deadline: start.Add(timeout),
		Now:      s.cfg.Now,
		Emit:     lw.emit,
	}
	if !at.deadline.IsZero() {
		spec.Deadline = at.deadline
	}
	if !pre.at.IsZero() && start.Sub(pre.at) < precheckFresh {
		spec.First = pre.views
	}
	rep := &waitReport{key: ref.Key, timeout: timeout, every: s.waitEvery, now: s.cfg.Now, line: say,
		note: lw.note, live: live, waits: map[string]*shownWait{}}
	lw.report.Store(rep)
	res := lock.PreWait(ctx, pre.obs, spec)
	lw.report.Store(nil)
	rep.close()
	with := func(timeout string) preWaitResult {
		argv, _ := final.Argv("-lock-timeout=" + timeout)
		inv := terraform.ParseFor(s.cfg.Binary.Name, argv, getenv)
		if !sameMeaning(final, inv, []string{"-lock-timeout=" + timeout}) {
			say("did not change -lock-timeout after the wait: terraform would read these arguments differently; it waits its full -lock-timeout again")
			return preWaitResult{}
		}
		return preWaitResult{argv: argv, inv: inv, waited: res.Outcome == lock.WaitReleased}
	}
	switch {
	case res.Outcome == lock.WaitInterrupted:
		say(fmt.Sprintf("interrupted while waiting for the lock on %s: terraform did not start", ref.Key))
		return preWaitResult{interrupted: true}
	case res.Outcome == lock.WaitUnreadable:
		// terraform fails at once on a lock whose holder it cannot read,
		// without retrying: as typed, it does so now.
		return preWaitResult{}
	case res.Outcome == lock.WaitTimedOut:
		out := with("0s")
		if out.argv != nil {
			say(fmt.Sprintf("the lock on %s is still held after %s, the -lock-timeout: starting terraform with -lock-timeout=0s, which reports the holder", ref.Key, timeout))
		}
		return out
	case at.guard && (res.Outcome == lock.WaitReleased || at.again && res.Outcome == lock.WaitFree):
		// Only when tfsh saw the lock free: after failed reads
		// (WaitUnobserved) terraform keeps its own retry, with what is
		// left of the timeout, and is not run again.
		left := max(spec.Deadline.Sub(s.cfg.Now()).Truncate(time.Millisecond), time.Millisecond)
		out := with("0s")
		if out.argv != nil {
			out.deadline = spec.Deadline
			if res.Waited > 0 {
				say(fmt.Sprintf("added -lock-timeout=0s after tfsh's wait: if another run takes the lock first, tfsh waits for it again (%s left of -lock-timeout=%s)", left, final.LockTimeout.Value))
			}
		}
		return out
	case res.Waited > 0:
		// Free (or no longer readable, when terraform's own retry goes on
		// waiting): terraform gets what is left of the timeout.
		left := max(spec.Deadline.Sub(s.cfg.Now()).Truncate(time.Millisecond), time.Millisecond)
		out := with(left.String())
		if out.argv != nil {
			say(fmt.Sprintf("added -lock-timeout=%s (what is left of -lock-timeout=%s after tfsh's wait)", left, final.LockTimeout.Value))
		}
		return out
	}
	if res.Outcome != lock.WaitFree {
		return preWaitResult{}
	}
	return preWaitResult{deadline: spec.Deadline}
}

// lostRaceMargin is the least time left of the -lock-timeout for which a
// run that lost the race is run again: less, and the next run would only
// report the same holder.
const lostRaceMargin = 100 * time.Millisecond

// maxAttempts bounds the runs of one command; the -lock-timeout bounds
// them first in all but a pathological case.
const maxAttempts = 100

// lostRace reports a run that failed on the lock it found held (or could
// not read: terraform gives up at once then) while time is left: terraform
// did nothing else, so running it again once the lock is free is what the
// -lock-timeout asked for. Not a run that was given a signal (terraform
// stops its wait on one) or that read any of tfsh's input (a second run
// would not get it again).
func (s *Session) lostRace(res terraform.Result, lw *lockWatch, deadline time.Time) bool {
	return res.Started && res.Signal == "" && len(res.Forwarded) == 0 && res.Input == 0 && res.ExitCode == 1 &&
		lw.lockErr.Load() != nil && !deadline.IsZero() && deadline.Sub(s.cfg.Now()) > lostRaceMargin
}
