package shell

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// observers caches one lock observer per state and backend configuration
// for the session: AWS clients are set up once, not per command.
type observers struct {
	mu sync.Mutex
	m  map[string]observerResult
}

type observerResult struct {
	obs lock.Observer
	err error
}

func (o *observers) open(ctx context.Context, ref lock.StateRef, getenv lock.Getenv) (lock.Observer, error) {
	keys := make([]string, 0, len(ref.Config))
	for k := range ref.Config {
		keys = append(keys, k+"="+ref.Config[k])
	}
	sort.Strings(keys)
	key := ref.Backend + "\x00" + ref.Key + "\x00" + strings.Join(keys, "\x00")
	o.mu.Lock()
	defer o.mu.Unlock()
	if r, ok := o.m[key]; ok {
		return r.obs, r.err
	}
	obs, err := lock.NewObserver(ctx, ref, getenv)
	if o.m == nil {
		o.m = map[string]observerResult{}
	}
	o.m[key] = observerResult{obs, err}
	return obs, err
}

// LockWho is how terraform names the lock holder on this machine
// (LockInfo.Who): user@hostname.
func LockWho() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// takesLock reports whether the command, as terraform will run it, takes
// the state lock: a known locking command with locking on.
func takesLock(inv *terraform.Invocation) bool {
	return inv.Spec != nil && inv.Spec.Locks != terraform.LockNever && !inv.LockDisabled && inv.Err == nil
}

// locksForSure reports whether every successful run of the command took
// the lock: not so for init or workspace new (conditional), which lock only
// when migrating or creating remotely. Only these may be inferred.
func locksForSure(inv *terraform.Invocation) bool {
	return takesLock(inv) && (inv.Spec.Locks == terraform.LockAlways || inv.Spec.Locks == terraform.LockSession)
}

// lockWatch ties one command's lock watcher (and tfsh's own wait before
// terraform starts) to its audit record and to the output scanners.
type lockWatch struct {
	s        *Session
	c        *audit.Command
	ref      lock.StateRef
	getenv   lock.Getenv
	ch       *commandHooks
	holders  *holderCache
	w        *lock.Watcher
	scanners []*terraform.DiagScanner
	child    atomic.Int64 // terraform's PID
	ending   atomic.Bool  // terraform exited: events go with command_end
	// releasing: an expired hold the command waits on is being released.
	releasing atomic.Bool
	// say shows and records a message; while terraform runs on a pty it
	// ends lines with \r\n (our terminal is raw).
	say func(string)
	// report shows a wait for someone else's lock while it lasts.
	report atomic.Pointer[waitReport]
	// held is the output held back while the run may be a lost race; our
	// lock seen releases it.
	held atomic.Pointer[heldOutput]
	// lockErr is the last lock failure terraform reported ("Error
	// acquiring the state lock"), nil if none.
	lockErr atomic.Pointer[terraform.LockDiag]
}

// started is RunSpec.Started.
func (lw *lockWatch) started(pid int) {
	if lw == nil {
		return
	}
	lw.child.Store(int64(pid))
	lw.w.Started(pid)
}

// newLockWatch prepares to record the lock events of a command that takes
// the lock; nil for one that does not.
func (s *Session) newLockWatch(c *audit.Command, inv *terraform.Invocation, ref lock.StateRef, getenv lock.Getenv, say func(string), ch *commandHooks) *lockWatch {
	if !takesLock(inv) {
		return nil
	}
	lw := &lockWatch{s: s, c: c, ref: ref, getenv: getenv, ch: ch, holders: newHolderCache(s.cfg.Audit), say: say}
	if s.cfg.PTY {
		// While terraform runs on the pty our terminal is raw: end lines
		// with \r\n, or they staircase.
		lw.say = func(msg string) {
			if lw.child.Load() != 0 && !lw.ending.Load() {
				msg += "\r"
			}
			say(msg)
		}
	}
	return lw
}

// note records a message of tfsh's in the command's output (stream 4)
// without showing it: what a live line showed in place.
func (lw *lockWatch) note(msg string) {
	lw.c.Output(audit.Note).Write([]byte("tfsh: " + msg + "\n"))
}

// waitRecord is a lock_wait's data: the event, and who took the lock as
// the audit log knows it.
type waitRecord struct {
	lock.Event
	Holder *audit.Party `json:"holder,omitempty"`
}

// emit records a lock event, fires its hooks and shows what it means. It
// serves the watcher and tfsh's own wait before terraform starts.
func (lw *lockWatch) emit(ev lock.Event) {
	s, c, ref := lw.s, lw.c, lw.ref
	if ev.PID != 0 && int64(ev.PID) != lw.child.Load() && lock.IsTerraform(ev.PID) {
		// Only a terraform's command line, redacted like ours: the
		// PID of an unrelated process (NFS, reuse) says nothing here.
		ev.Args = terraform.RedactArgs(lock.ProcessArgs(ev.PID))
	}
	var data any = ev
	var holder *audit.Party
	if ev.Kind == lock.KindWait {
		if holder = lw.holders.get(context.Background(), ev.LockID); holder != nil {
			data = waitRecord{Event: ev, Holder: holder}
		}
	}
	if lw.ending.Load() {
		c.Later(ev.At, ev.Kind, ev.LockID, data)
	} else if err := appendNow(c, ev.At, ev.Kind, ev.LockID, data); err != nil {
		s.sayOnce("audit:"+err.Error(), lw.say, fmt.Sprintf("could not record %s in %s: %v", ev.Kind, s.cfg.Audit.Path(), err))
	}
	if name := lockHookEvent(ev.Kind); name != "" {
		lw.ch.async(name, map[string]any{"lock": data})
	}
	switch ev.Kind {
	case lock.KindAcquired:
		// Only a lock the kernel names our terraform's holder of: a remote
		// lock is taken for ours by who and when, which another run of
		// the same user on the same host also matches (until terraform's
		// contention says otherwise); there the hold lasts its 2 s.
		if ev.Source == lock.SourceBackend && ev.PID != 0 && slices.Contains(ev.Mechanisms, lock.Local) {
			lw.held.Load().release()
		}
	case lock.KindWait:
		lw.report.Load().started(ev, holder)
	case lock.KindWaitEnd:
		lw.report.Load().ended(ev)
	}
	if ev.Kind == lock.KindWait && ref.Backend == "s3" {
		// Waiting on a change-freeze hold whose time is up: release it
		// now, and terraform's next retry (or tfsh's own wait) takes the
		// lock.
		if until, ok := lock.HoldExpiry(ev.Info); ok && !s.cfg.Now().Before(until) && lw.releasing.CompareAndSwap(false, true) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if ed, err := lock.NewEditor(ctx, ref, lw.getenv); err == nil {
					if recs, err := ed.Records(ctx); err == nil {
						if _, err := s.releaseExpired(ctx, c, ed, recs, lw.say); err != nil {
							lw.say(err.Error())
						}
					}
				}
			}()
		}
	}
	switch ev.Kind {
	case lock.KindOrphaned:
		if strings.HasPrefix(ev.Note, "unknown") {
			lw.say(fmt.Sprintf("could not check whether lock %s was released (the last read failed): run tfsh locks", ev.LockID))
		} else {
			lw.say(fmt.Sprintf("lock %s is still held after terraform exited (orphaned): once nothing uses the state, run: %s", ev.LockID, unlockLine(lw.ref.Dir, ev.LockID)))
		}
	case lock.KindProblem:
		s.sayOnce("problem:"+ev.Note, lw.say, "cannot observe the state lock: "+ev.Note+" (terraform runs unaffected)")
	}
}

// watch starts observing the command's state lock when terraform starts.
// It never delays the command: clients are set up in the watcher's
// goroutine, and every problem is recorded and shown once. A wait for
// someone else's lock while terraform runs is shown in lines.
func (lw *lockWatch) watch(inv *terraform.Invocation, start time.Time) {
	if lw == nil {
		return
	}
	s, ref := lw.s, lw.ref
	timeout, ok := inv.LockTimeoutValue()
	waits := ok && timeout > 0 && inv.Spec.LockTimeoutHonoured
	spec := lock.WatchSpec{
		Open: func(ctx context.Context) (lock.Observer, error) {
			return s.observers.open(ctx, ref, lw.getenv)
		},
		Backend:     ref.Backend,
		Subcommand:  inv.Command,
		Who:         s.who,
		Start:       start,
		Waits:       waits,
		Conditional: inv.Spec.Locks == terraform.LockConditional,
		Now:         s.cfg.Now,
		Emit:        lw.emit,
	}
	mechs := []lock.Mechanism{lock.Local}
	if ref.Backend != "local" {
		mechs = nil
	}
	spec.Polling = lock.DefaultPolling(mechs)
	if waits {
		lw.report.Store(&waitReport{key: ref.Key, timeout: timeout, every: s.waitEvery, now: s.cfg.Now, line: lw.say,
			note: lw.note, waits: map[string]*shownWait{}})
	}
	lw.w = lock.Watch(spec)
}

// unlockLine is the command that removes an orphaned lock, to be copied
// and run as it is from anywhere (the guarded force-unlock asks for the
// reason and the confirmation at a terminal).
func unlockLine(dir, lockID string) string {
	return Quote([]string{"tfsh", "unlock", "--dir", dir, lockID})
}

// appendNow records a lock event while terraform runs: at once, so that it
// survives if tfsh is killed.
func appendNow(c *audit.Command, at time.Time, kind, lockID string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.AppendAt(ctx, at, kind, lockID, data)
}

// sayOnce shows a message the first time its key comes up in the session.
func (s *Session) sayOnce(key string, say func(string), msg string) {
	s.mu.Lock()
	if s.shown == nil {
		s.shown = map[string]bool{}
	}
	seen := s.shown[key]
	s.shown[key] = true
	s.mu.Unlock()
	if !seen {
		say(msg)
	}
}

// scan wraps a recorder so that the output scanner reads the same bytes.
func (lw *lockWatch) scan(rec io.Writer) io.Writer {
	if lw == nil {
		return rec
	}
	sc := terraform.NewDiagScanner(func(d terraform.LockDiag) {
		if d.Kind == terraform.DiagLockError {
			lw.lockErr.Store(&d)
		}
		lw.w.Diagnostic(diagnostic(d))
	})
	lw.scanners = append(lw.scanners, sc)
	return io.MultiWriter(rec, sc)
}

// finish flushes the scanners and records what the command left behind.
func (lw *lockWatch) finish(ok, locked bool) {
	if lw == nil {
		return
	}
	lw.settle(ok, locked, true)
}

// finishLost ends the watch of a run that lost the race for the lock and
// will be run again: its events (the contention above all) are written at
// once, before the next run's, not deferred to command_end.
func (lw *lockWatch) finishLost() {
	lw.settle(false, true, false)
}

// settle flushes the scanners and has the watcher record how the run
// left the lock; with deferred, events from then on go with command_end.
func (lw *lockWatch) settle(ok, locked, deferred bool) {
	lw.closeScanners()
	if deferred {
		lw.ending.Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lw.w.Finish(ctx, lock.Exit{OK: ok, Locked: locked})
	lw.report.Swap(nil).close()
	if views, n := lw.w.AfterExit(); n >= 2 && views != nil && lw.say != nil {
		// terraform exited at once: say where the lock stands (an orphan
		// has already been named with the force-unlock line to run).
		line, _ := lockSummary(views, time.Now())
		lw.say("after two interrupts the state's lock is " + line)
	}
}

// diagnostic maps the scanner's finding to the watcher's input.
func diagnostic(d terraform.LockDiag) lock.Diagnostic {
	out := lock.Diagnostic{Message: d.Message}
	switch d.Kind {
	case terraform.DiagLockError:
		out.Contention = true
	case terraform.DiagReleaseError:
		out.ReleaseFailed = true
	case terraform.DiagInterrupt:
		out.Interrupts = 1
	case terraform.DiagTwoInterrupts:
		out.Interrupts = 2
	}
	if i := d.Info; i != nil {
		out.Holder = &lock.Info{ID: i.ID, Operation: i.Operation, Info: i.Info, Who: i.Who, Version: i.Version, Created: i.CreatedTime, Path: i.Path}
	}
	return out
}

// stateFlags returns the effective -state and -state-out values.
func stateFlags(inv *terraform.Invocation) (state, stateOut string) {
	for _, f := range inv.Flags {
		switch f.Name {
		case "state":
			state = f.Value
		case "state-out":
			stateOut = f.Value
		}
	}
	return state, stateOut
}

// closeScanners flushes the output scanners: a diagnostic still open is
// reported now. Closing twice is harmless.
func (lw *lockWatch) closeScanners() {
	for _, sc := range lw.scanners {
		sc.Close()
	}
}
