package lock

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Event kinds a Watcher emits (the audit log stores them under these names).
const (
	KindAcquired      = "lock_acquired"       // our command took the lock
	KindReleased      = "lock_released"       // our command's lock went away
	KindWait          = "lock_wait"           // someone else holds the lock while our command waits for it
	KindWaitEnd       = "lock_wait_end"       // that wait ended (released, or our command ended)
	KindContention    = "lock_contention"     // terraform reported "Error acquiring the state lock"
	KindOrphaned      = "lock_orphaned"       // our command exited and its lock is still there
	KindReleaseFailed = "lock_release_failed" // terraform reported "Error releasing the state lock"
	KindStaleInfo     = "lock_stale_info"     // a local .lock.info with no holder: not a lock
	KindProblem       = "lock_observation_problem"
	// KindObserved closes every watched command: how often the lock was
	// read, so that a reviewer can judge an "inferred" acquisition.
	KindObserved = "lock_observed"
)

// Sources of a lock fact.
const (
	SourceBackend  = "backend"  // read where the lock lives
	SourceInferred = "inferred" // the command succeeded with locking on, but the lock was never seen
	SourceOutput   = "output"   // terraform's diagnostic
)

// Event is one lock transition seen while a command ran.
type Event struct {
	Kind   string    `json:"-"`
	At     time.Time `json:"-"` // when tfsh saw it
	LockID string    `json:"-"`

	Source     string      `json:"source,omitempty"`
	Mechanisms []Mechanism `json:"mechanisms,omitempty"`
	Where      string      `json:"where,omitempty"`
	Info       *Info       `json:"info,omitempty"` // the lock's LockInfo (ours, or the holder's)
	// PID names a local holder process; Args is its command line, which the
	// caller fills in (redacted) for processes other than its own.
	PID  int      `json:"pid,omitempty"`
	Args []string `json:"args,omitempty"`
	// DetectionDelayMS is how long after the lock's Created tfsh saw it.
	DetectionDelayMS *float64 `json:"detection_delay_ms,omitempty"`
	HeldMS           int64    `json:"held_ms,omitempty"`
	WaitedMS         int64    `json:"waited_ms,omitempty"`
	// Ended says how a wait ended: released, command ended.
	Ended string `json:"ended,omitempty"`
	// Message is terraform's "Error message:" text, for contention and
	// release failures.
	Message string `json:"message,omitempty"`
	// Backend cross-checks a contention diagnostic with the backend:
	// confirmed, released since, different lock, not held, not observed.
	Backend string `json:"backend,omitempty"`
	Note    string `json:"note,omitempty"`
	// Polls, Requests and WatchedMS summarise a lock_observed event.
	Polls     int   `json:"polls,omitempty"`
	Requests  int   `json:"requests,omitempty"`
	WatchedMS int64 `json:"watched_ms,omitempty"`
}

// Diagnostic is a lock fact from terraform's output, mapped by the caller
// from the output scanner.
type Diagnostic struct {
	Contention    bool // "Error acquiring the state lock"
	ReleaseFailed bool // "Error releasing the state lock"
	Interrupts    int  // "Interrupt received." / "Two interrupts received" (2)
	Message       string
	Holder        *Info // the Lock Info block; nil when terraform printed none
}

// WatchSpec describes one command to watch.
type WatchSpec struct {
	// Open returns the state's observer; it runs in the watcher's goroutine
	// so that setting up clients never delays the command. An
	// *UnsupportedError means only diagnostics are recorded; other errors
	// are recorded as an observation problem.
	Open    func(ctx context.Context) (Observer, error)
	Backend string
	// Subcommand, Who and Start tell our lock from someone else's on remote
	// backends (local ones tell by PID): ours has our Who, an operation our
	// subcommand records, a Created not before Start, and an ID nobody held
	// before.
	Subcommand string
	Who        string
	Start      time.Time
	// Waits: the command waits for a held lock (-lock-timeout above 0), so
	// a lock held by someone else is a lock_wait.
	Waits bool
	// Polling sets how often the lock is read; zero means DefaultPolling.
	Polling Polling
	Now     func() time.Time
	// Emit records an event. It is called from one goroutine at a time.
	Emit func(Event)
}

// Polling is how often a watcher reads the lock.
type Polling struct {
	// Held applies while a lock is held or ours was seen: a release is
	// also settled by the read after terraform exits, so it can be slow.
	Held time.Duration
	// Fast applies while our command may be about to take the lock (ours
	// not seen, nobody else holding it), for FastFor after the command
	// starts or after someone else's lock goes; Idle after that. A short
	// plan holds its lock for milliseconds.
	Fast, FastFor, Idle time.Duration
}

// DefaultPolling returns the polling for a state's mechanisms: a local read
// costs a system call, a remote one a request.
func DefaultPolling(m []Mechanism) Polling {
	if slices.Contains(m, Local) {
		return Polling{Held: 20 * time.Millisecond, Fast: time.Millisecond, FastFor: 3 * time.Second, Idle: 5 * time.Millisecond}
	}
	return Polling{Held: 200 * time.Millisecond, Fast: 2 * time.Millisecond, FastFor: 3 * time.Second, Idle: 25 * time.Millisecond}
}

// Watcher follows one command's lock. Create it with Watch, tell it the
// child's PID with Started, feed it diagnostics, end it with Finish.
type Watcher struct {
	spec WatchSpec

	mu        sync.Mutex
	pid       int
	ours      map[string]*seen // by lock ID
	foreign   map[string]*seen
	current   map[string]View // IDs held at the last observation
	localOurs *seen           // our local lock, seen before its .lock.info
	stale     map[string]bool
	problems  map[string]bool
	interrupt int
	released  bool // a release failure was reported
	polls     int
	fastFrom  time.Time // when fast polling (re)started

	obs    Observer      // set once Open succeeded
	opened chan struct{} // closed when Open has returned
	start  sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	checks sync.WaitGroup
}

type seen struct {
	info      *Info
	first     time.Time
	gone      bool
	waitNoted bool
	pid       int
}

// Watch prepares to watch a command; polling starts with Started.
func Watch(spec WatchSpec) *Watcher {
	if spec.Now == nil {
		spec.Now = time.Now
	}
	if spec.Polling.Held <= 0 {
		spec.Polling = DefaultPolling(nil)
	}
	w := &Watcher{
		spec:     spec,
		ours:     map[string]*seen{},
		foreign:  map[string]*seen{},
		current:  map[string]View{},
		stale:    map[string]bool{},
		problems: map[string]bool{},
		done:     make(chan struct{}),
		opened:   make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// observer returns the observer once Open succeeded, else nil.
func (w *Watcher) observer() Observer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.obs
}

// Started tells the watcher the PID of the command's process and starts
// polling. The process needs far longer to reach its lock than the first
// observation takes, so that first observation is a baseline: what is held
// then is someone else's.
func (w *Watcher) Started(pid int) {
	w.mu.Lock()
	w.pid = pid
	w.fastFrom = w.spec.Now()
	w.mu.Unlock()
	w.start.Do(func() { go w.poll(w.ctx) })
}

// Polls is the number of observations made so far.
func (w *Watcher) Polls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls
}

func (w *Watcher) poll(ctx context.Context) {
	defer close(w.done)
	if w.spec.Open == nil {
		close(w.opened)
		return
	}
	obs, err := w.spec.Open(ctx)
	w.mu.Lock()
	w.obs = obs
	w.mu.Unlock()
	close(w.opened)
	var ue *UnsupportedError
	switch {
	case errors.As(err, &ue):
		return
	case err != nil:
		w.mu.Lock()
		w.problem(View{Where: w.spec.Backend}, err)
		w.mu.Unlock()
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		views := obs.Observe(ctx)
		if ctx.Err() != nil {
			return
		}
		w.apply(views)
		timer.Reset(w.nextInterval())
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// nextInterval follows Polling.
func (w *Watcher) nextInterval() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.spec.Polling
	switch {
	case w.localOurs != nil && w.spec.Now().Sub(w.localOurs.first) < 100*time.Millisecond:
		// Our terraform holds the local lock and writes .lock.info next:
		// a plan may hold it for a few milliseconds in all, so read again
		// at once rather than miss the ID.
		return 100 * time.Microsecond
	case len(w.current) > 0 || w.localOurs != nil || len(w.ours) > 0:
		return p.Held
	case w.spec.Now().Sub(w.fastFrom) < p.FastFor:
		return p.Fast
	default:
		return p.Idle
	}
}

// apply turns one observation into transitions.
func (w *Watcher) apply(views []View) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	now := w.spec.Now()
	held := map[string]View{}
	mechs := map[string][]Mechanism{}
	ok := true
	for _, v := range views {
		if v.Err != nil {
			ok = false
			w.problem(v, v.Err)
			continue
		}
		if v.Mechanism == Local {
			w.applyLocal(v, now, held)
			continue
		}
		if v.Held && v.Info != nil {
			mechs[v.Info.ID] = append(mechs[v.Info.ID], v.Mechanism)
			if prev, dup := held[v.Info.ID]; dup {
				prev.Where += " " + v.Where
				held[v.Info.ID] = prev
				continue
			}
			held[v.Info.ID] = v
		}
	}
	if !ok {
		// A failed read says nothing about release: keep what was held.
		for id, v := range w.current {
			if _, still := held[id]; !still {
				held[id] = v
			}
		}
	}
	for id, v := range held {
		if _, known := w.current[id]; known {
			continue
		}
		m := mechs[id]
		if m == nil {
			m = []Mechanism{v.Mechanism}
		}
		w.appeared(id, v, m, now)
	}
	for id := range w.current {
		if _, still := held[id]; !still {
			w.disappeared(id, now, "")
		}
	}
	w.current = held
}

func (w *Watcher) applyLocal(v View, now time.Time, held map[string]View) {
	switch {
	case v.Held && v.PID == w.pid && w.pid != 0:
		// terraform writes .lock.info just after taking the lock and
		// removes it just before releasing it (reference §5): a current
		// info has our ID; around it, the info is missing or a stale one
		// (Created before we started).
		if v.Info != nil && !v.Info.Created.Before(w.spec.Start) {
			held[v.Info.ID] = v
			w.localOurs = nil
			return
		}
		for id, cur := range w.current {
			if cur.Mechanism == Local && cur.PID == w.pid {
				held[id] = cur // still ours, info already removed: releasing
				return
			}
		}
		if w.localOurs == nil {
			w.localOurs = &seen{first: now, pid: v.PID}
		}
	case v.Held:
		id := "pid:" + strconv.Itoa(v.PID)
		if v.Info != nil {
			id = v.Info.ID
		}
		held[id] = v
	case v.Stale != nil:
		key := v.Stale.ID + "|" + v.Stale.Created.String()
		if !w.stale[key] {
			w.stale[key] = true
			w.emit(Event{Kind: KindStaleInfo, At: now, LockID: v.Stale.ID, Source: SourceBackend, Mechanisms: []Mechanism{Local}, Where: InfoPath(v.Where), Info: v.Stale,
				Note: "a .lock.info with no process holding the lock: left by a terraform that was killed; harmless, the next lock overwrites it"})
		}
	}
	if !v.Held && w.localOurs != nil {
		// Held and gone before its ID could be read.
		w.emit(Event{Kind: KindAcquired, At: w.localOurs.first, Source: SourceBackend, Mechanisms: []Mechanism{Local}, Where: v.Where, PID: w.localOurs.pid,
			Note: "held by our terraform process; released before its .lock.info could be read"})
		w.emit(Event{Kind: KindReleased, At: now, Source: SourceBackend, Mechanisms: []Mechanism{Local}, Where: v.Where, HeldMS: now.Sub(w.localOurs.first).Milliseconds()})
		w.ours[""] = &seen{first: w.localOurs.first, gone: true}
		w.localOurs = nil
	}
}

func (w *Watcher) isOurs(id string, v View) bool {
	if v.Mechanism == Local {
		return v.PID == w.pid && w.pid != 0
	}
	if _, f := w.foreign[id]; f {
		return false
	}
	in := v.Info
	if in.Created.Before(w.spec.Start) || w.spec.Who != "" && in.Who != w.spec.Who {
		return false
	}
	if ops := Operations(w.spec.Subcommand); ops != nil && !slices.Contains(ops, in.Operation) {
		return false
	}
	return true
}

func mechanismsOf(v View) []Mechanism { return []Mechanism{v.Mechanism} }

func (w *Watcher) appeared(id string, v View, mechs []Mechanism, now time.Time) {
	if s, ok := w.ours[id]; ok && !s.gone {
		return
	}
	if w.isOurs(id, v) {
		s := &seen{info: v.Info, first: now}
		w.ours[id] = s
		ev := Event{Kind: KindAcquired, At: now, LockID: id, Source: SourceBackend, Mechanisms: mechs, Where: v.Where, Info: v.Info, PID: w.pid}
		if v.Info != nil && !v.Info.Created.IsZero() {
			d := float64(now.Sub(v.Info.Created).Microseconds()) / 1000
			ev.DetectionDelayMS = &d
		}
		w.emit(ev)
		return
	}
	s, known := w.foreign[id]
	if !known {
		s = &seen{info: v.Info, first: now, pid: v.PID}
		w.foreign[id] = s
	}
	s.gone = false
	if w.spec.Waits && !s.waitNoted {
		s.waitNoted = true
		lockID := id
		if v.Info == nil {
			lockID = ""
		}
		w.emit(Event{Kind: KindWait, At: now, LockID: lockID, Source: SourceBackend, Mechanisms: mechs, Where: v.Where, Info: v.Info, PID: v.PID})
	}
}

func (w *Watcher) disappeared(id string, now time.Time, note string) {
	if s, ok := w.ours[id]; ok {
		if s.gone {
			return
		}
		s.gone = true
		ev := Event{Kind: KindReleased, At: now, LockID: id, Source: SourceBackend, Info: s.info, Note: note}
		if s.info != nil && !s.info.Created.IsZero() {
			ev.HeldMS = now.Sub(s.info.Created).Milliseconds()
		} else {
			ev.HeldMS = now.Sub(s.first).Milliseconds()
		}
		w.emit(ev)
		return
	}
	if s, ok := w.foreign[id]; ok && !s.gone {
		s.gone = true
		w.fastFrom = now // our command may take the lock any moment now
		if s.waitNoted {
			lockID := id
			if s.info == nil {
				lockID = ""
			}
			w.emit(Event{Kind: KindWaitEnd, At: now, LockID: lockID, Source: SourceBackend, Info: s.info, PID: s.pid,
				WaitedMS: now.Sub(s.first).Milliseconds(), Ended: "released"})
		}
	}
}

func (w *Watcher) problem(v View, err error) {
	msg := err.Error()
	var ie *InfoError
	key := string(v.Mechanism) + ":" + msg
	if errors.As(err, &ie) {
		key = string(v.Mechanism) + ":unreadable"
	}
	if w.problems[key] {
		return
	}
	w.problems[key] = true
	ev := Event{Kind: KindProblem, At: w.spec.Now(), Where: v.Where, Note: msg}
	if v.Mechanism != "" {
		ev.Mechanisms = mechanismsOf(v)
	}
	w.emit(ev)
}

func (w *Watcher) emit(ev Event) { w.spec.Emit(ev) }

// Diagnostic records a lock fact from terraform's output. A contention is
// cross-checked with the backend at once.
func (w *Watcher) Diagnostic(d Diagnostic) {
	now := w.spec.Now()
	switch {
	case d.Interrupts > 0:
		w.mu.Lock()
		if d.Interrupts > w.interrupt {
			w.interrupt = d.Interrupts
		}
		w.mu.Unlock()
	case d.ReleaseFailed:
		w.mu.Lock()
		w.released = true
		var id string
		var info *Info
		for oid, s := range w.ours {
			if oid != "" {
				id, info = oid, s.info
			}
		}
		w.emit(Event{Kind: KindReleaseFailed, At: now, LockID: id, Source: SourceOutput, Info: info, Message: d.Message,
			Note: "terraform could not release its lock: it may be orphaned"})
		w.mu.Unlock()
	case d.Contention:
		w.checks.Add(1)
		go func() {
			defer w.checks.Done()
			w.contention(d, now)
		}()
	}
}

func (w *Watcher) contention(d Diagnostic, at time.Time) {
	var views []View
	select { // a fast failure can come before the clients are set up
	case <-w.opened:
	case <-time.After(requestTimeout):
	}
	obs := w.observer()
	if obs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		views = obs.Observe(ctx)
		cancel()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := Event{Kind: KindContention, At: at, Source: SourceOutput, Info: d.Holder, Message: d.Message}
	if d.Holder != nil {
		ev.LockID = d.Holder.ID
	}
	if obs == nil {
		ev.Backend = "not observed"
		ev.Note = "tfsh cannot read locks of the " + w.spec.Backend + " backend"
	} else {
		ev.Backend = "not held"
		for _, v := range views {
			ev.Mechanisms = append(ev.Mechanisms, v.Mechanism)
			switch {
			case v.Err != nil && !(v.Held && v.PID != 0):
				ev.Backend = "not observed"
				ev.Note = v.Err.Error()
			case v.Held && v.Info != nil && d.Holder != nil && v.Info.ID == d.Holder.ID:
				ev.Backend = "confirmed"
				ev.Where = v.Where
			case v.Held:
				if v.Err != nil {
					ev.Note = v.Err.Error() // held by a known process, its record unreadable
				}
				if d.Holder == nil {
					ev.Backend = "confirmed"
					ev.Info = v.Info
					if v.Info != nil {
						ev.LockID = v.Info.ID
					}
				} else if ev.Backend != "confirmed" {
					ev.Backend = "different lock"
				}
				ev.PID, ev.Where = v.PID, v.Where
			}
		}
		if ev.Backend == "not held" && d.Holder != nil {
			if _, ok := w.foreign[d.Holder.ID]; ok {
				ev.Backend = "released since"
			}
		}
	}
	if ev.LockID != "" {
		if _, ok := w.foreign[ev.LockID]; !ok {
			w.foreign[ev.LockID] = &seen{info: ev.Info, first: at, gone: ev.Backend != "confirmed"}
		}
	}
	w.emit(ev)
}

// Exit is how the watched command ended.
type Exit struct {
	// OK: the command succeeded (exit 0, or 2 with -detailed-exitcode).
	OK bool
	// Locked: the command takes the state lock with locking on, so a
	// success without a seen lock is an inferred acquisition.
	Locked bool
}

// Finish stops polling, observes once more and records what the command
// left behind: released, orphaned, or (local) a stale .lock.info. It waits
// for pending contention checks.
func (w *Watcher) Finish(ctx context.Context, exit Exit) {
	w.cancel()
	w.start.Do(func() { close(w.done); close(w.opened) }) // never started: the command did not run
	<-w.done
	w.checks.Wait()
	if obs := w.observer(); obs != nil {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		views := obs.Observe(ctx)
		cancel()
		w.apply(views)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.spec.Now()
	if w.localOurs != nil {
		w.emit(Event{Kind: KindAcquired, At: w.localOurs.first, Source: SourceBackend, Mechanisms: []Mechanism{Local}, PID: w.localOurs.pid,
			Note: "held by our terraform process; its .lock.info was never readable"})
		w.emit(Event{Kind: KindReleased, At: now, Source: SourceBackend, Mechanisms: []Mechanism{Local}, HeldMS: now.Sub(w.localOurs.first).Milliseconds(),
			Note: "the process exited; the operating system released the lock"})
		w.ours[""] = &seen{gone: true}
		w.localOurs = nil
	}
	ids := make([]string, 0, len(w.ours))
	for id := range w.ours {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := w.ours[id]
		if s.gone {
			continue
		}
		v := w.current[id]
		if v.Mechanism == Local {
			continue // cannot happen: the process is gone, so is its fcntl lock
		}
		note := "our terraform exited and its lock is still held: run `tfsh unlock " + id + "` where it was taken once nothing uses the state"
		if w.interrupt >= 2 {
			note = "terraform exited at once after two interrupts, leaving its lock: run `tfsh unlock " + id + "` once nothing uses the state"
		}
		w.emit(Event{Kind: KindOrphaned, At: now, LockID: id, Source: SourceBackend, Mechanisms: mechanismsOf(v), Where: v.Where, Info: s.info, Note: note})
		s.gone = true
	}
	for id, s := range w.foreign {
		if s.waitNoted && !s.gone {
			lockID := id
			if s.info == nil {
				lockID = ""
			}
			w.emit(Event{Kind: KindWaitEnd, At: now, LockID: lockID, Source: SourceBackend, Info: s.info, PID: s.pid,
				WaitedMS: now.Sub(s.first).Milliseconds(), Ended: "command ended"})
			s.gone = true
		}
	}
	if w.obs != nil {
		w.emit(Event{Kind: KindObserved, At: now, Source: SourceBackend, Mechanisms: w.obs.Mechanisms(),
			Polls: w.polls, Requests: w.polls * len(w.obs.Mechanisms()), WatchedMS: now.Sub(w.spec.Start).Milliseconds()})
	}
	if exit.OK && exit.Locked && len(w.ours) == 0 {
		note := "the command succeeded with locking on, so it took and released the lock, but no observation caught it"
		if w.obs == nil {
			note = "the command succeeded with locking on; tfsh cannot read locks of the " + w.spec.Backend + " backend"
		}
		w.emit(Event{Kind: KindAcquired, At: w.spec.Start, Source: SourceInferred, Note: note})
		w.emit(Event{Kind: KindReleased, At: now, Source: SourceInferred, Note: note})
	}
}
