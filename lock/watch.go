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
	SourceWatch    = "watch"    // tfsh watch saw it in the lock table or bucket, outside any command
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
	// confirmed (it shows that lock now), different lock, not held
	// (released since), not observed.
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
	At            time.Time
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
	// subcommand records, and a Created not before Start; an ID terraform
	// reports as the holder in a contention is someone else's.
	Subcommand string
	Who        string
	Start      time.Time
	// Waits: the command waits for a held lock (a -lock-timeout above 0
	// that it honours), so a lock held by someone else is a lock_wait.
	Waits bool
	// Conditional: the command takes the lock only in some cases (init
	// migrating state): it is read at the Held rate only, never fast.
	Conditional bool
	// Polling sets how often the lock is read; zero means DefaultPolling.
	Polling Polling
	Now     func() time.Time
	// Emit records an event. It is called from one goroutine at a time,
	// never from the caller of Diagnostic.
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
// costs a system call, a remote one a request (a consistent DynamoDB read
// is one read capacity unit; at 2 ms the rate is bounded by the round trip).
func DefaultPolling(m []Mechanism) Polling {
	if slices.Contains(m, Local) {
		return Polling{Held: 20 * time.Millisecond, Fast: 2 * time.Millisecond, FastFor: 3 * time.Second, Idle: 10 * time.Millisecond}
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
	foreign   map[string]*seen // by lock ID, or "pid:N" for a local holder
	current   map[string]held  // held at the last observation
	byMech    map[Mechanism]map[string]held
	failed    bool  // the last observation had a failed read
	localOurs *seen // our local lock, seen before its .lock.info
	stale     map[string]bool
	problems  map[string]bool
	interrupt int
	final     []View // the read after terraform exited
	polls     int
	fastFrom  time.Time // when fast polling (re)started

	obs    Observer      // set once Open succeeded
	opened chan struct{} // closed when Open has returned
	start  sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Diagnostics are queued, never handled on the caller's goroutine
	// (terraform's output copy must not wait on the watcher or the log).
	dmu     sync.Mutex
	diags   chan Diagnostic
	dclosed bool
	dropped int
	ddone   chan struct{}
}

// held is one lock an observation shows.
type held struct {
	View
	mechs []Mechanism
}

type seen struct {
	info      *Info
	first     time.Time
	gone      bool
	waitNoted bool
	pid       int
	mechs     []Mechanism
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
		current:  map[string]held{},
		byMech:   map[Mechanism]map[string]held{},
		stale:    map[string]bool{},
		problems: map[string]bool{},
		done:     make(chan struct{}),
		opened:   make(chan struct{}),
		diags:    make(chan Diagnostic, 64),
		ddone:    make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.diagnostics()
	return w
}

// observer returns the observer once Open succeeded, else nil.
func (w *Watcher) observer() Observer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.obs
}

// Started tells the watcher the PID of the command's process and starts
// polling. Anything held at the first read that is not ours by the rules
// of WatchSpec is someone else's.
func (w *Watcher) Started(pid int) {
	w.mu.Lock()
	w.pid = pid
	w.fastFrom = w.spec.Now()
	w.mu.Unlock()
	w.start.Do(func() { go w.poll(w.ctx) })
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
	case w.spec.Conditional || len(w.current) > 0 || w.localOurs != nil || len(w.ours) > 0:
		return p.Held
	case w.spec.Now().Sub(w.fastFrom) < p.FastFor:
		return p.Fast
	default:
		return p.Idle
	}
}

// apply turns one observation into transitions. A mechanism whose read
// failed keeps what it showed last: a failed read is not a release.
func (w *Watcher) apply(views []View) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	now := w.spec.Now()
	w.failed = false
	for _, v := range views {
		if v.Err != nil && !(v.Mechanism == Local && v.Held && v.PID != 0) {
			w.failed = true
			w.problem(v, v.Err)
			continue
		}
		if v.Err != nil {
			w.problem(v, v.Err) // a local lock held by a known process, its record unreadable
		}
		m := map[string]held{}
		if v.Mechanism == Local {
			w.applyLocal(v, now, m)
		} else if v.Held && v.Info != nil {
			m[v.Info.ID] = held{View: v}
		}
		w.byMech[v.Mechanism] = m
	}
	all := map[string]held{}
	for mech, m := range w.byMech {
		for id, h := range m {
			if prev, dup := all[id]; dup {
				prev.mechs = append(prev.mechs, mech)
				all[id] = prev
				continue
			}
			h.mechs = []Mechanism{mech}
			all[id] = h
		}
	}
	for id, h := range all {
		slices.Sort(h.mechs)
		if s := w.ours[id]; s != nil {
			s.mechs = union(s.mechs, h.mechs)
		}
		if s := w.foreign[id]; s != nil && s.info == nil && h.Info != nil {
			s.info = h.Info // a local holder's .lock.info, written after its lock
		}
		if _, known := w.current[id]; !known {
			w.appeared(id, h, now)
		}
	}
	for id := range w.current {
		if _, still := all[id]; !still {
			w.disappeared(id, now, "")
		}
	}
	w.current = all
}

func union(a, b []Mechanism) []Mechanism {
	for _, m := range b {
		if !slices.Contains(a, m) {
			a = append(a, m)
		}
	}
	slices.Sort(a)
	return a
}

func (w *Watcher) applyLocal(v View, now time.Time, m map[string]held) {
	switch {
	case v.Held && w.ourProcess(v.PID):
		// terraform writes .lock.info just after taking the lock and
		// removes it just before releasing it (reference §5): a current
		// info has our ID; around it, the info is missing or a stale one
		// (Created before we started).
		if v.Info != nil && !v.Info.Created.Before(w.spec.Start) {
			m[v.Info.ID] = held{View: v}
			w.localOurs = nil
			return
		}
		for id, cur := range w.current {
			if cur.Mechanism == Local && w.ourProcess(cur.PID) {
				m[id] = cur // still ours, info already removed: releasing
				return
			}
		}
		if w.localOurs == nil {
			w.localOurs = &seen{first: now, pid: v.PID}
		}
	case v.Held:
		// Someone else's, keyed by its process: its .lock.info may come
		// and go around its lock, the process holds it throughout.
		m["pid:"+strconv.Itoa(v.PID)] = held{View: v}
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

// ourProcess reports whether a local lock holder is our terraform or a
// process it started (a wrapper such as a version manager may fork the
// real binary rather than exec it).
func (w *Watcher) ourProcess(pid int) bool {
	if w.pid == 0 || pid <= 0 {
		return false
	}
	return pid == w.pid || descendsFrom(pid, w.pid)
}

func (w *Watcher) isOurs(id string, h held) bool {
	if h.Mechanism == Local {
		return w.ourProcess(h.PID)
	}
	if _, f := w.foreign[id]; f {
		return false
	}
	in := h.Info
	if in.Created.Before(w.spec.Start) || w.spec.Who != "" && in.Who != w.spec.Who {
		return false
	}
	if ops := Operations(w.spec.Subcommand); ops != nil && !slices.Contains(ops, in.Operation) {
		return false
	}
	return true
}

func (w *Watcher) appeared(id string, h held, now time.Time) {
	if s, ok := w.ours[id]; ok && !s.gone {
		return
	}
	lockID := id
	if h.Info == nil || h.Info.ID != id {
		lockID = ""
		if h.Info != nil {
			lockID = h.Info.ID
		}
	}
	if w.isOurs(id, h) {
		s := &seen{info: h.Info, first: now, mechs: h.mechs}
		w.ours[id] = s
		ev := Event{Kind: KindAcquired, At: now, LockID: lockID, Source: SourceBackend, Mechanisms: h.mechs, Where: h.Where, Info: h.Info, PID: w.pid}
		if h.Info != nil && !h.Info.Created.IsZero() {
			d := float64(now.Sub(h.Info.Created).Microseconds()) / 1000
			ev.DetectionDelayMS = &d
		}
		w.emit(ev)
		return
	}
	s, known := w.foreign[id]
	if !known {
		s = &seen{info: h.Info, first: now, pid: h.PID}
		w.foreign[id] = s
	}
	if s.info == nil {
		s.info = h.Info
	}
	s.gone = false
	if w.spec.Waits && !s.waitNoted {
		s.waitNoted = true
		w.emit(Event{Kind: KindWait, At: now, LockID: lockID, Source: SourceBackend, Mechanisms: h.mechs, Where: h.Where, Info: h.Info, PID: h.PID})
	}
}

func (w *Watcher) disappeared(id string, now time.Time, note string) {
	if s, ok := w.ours[id]; ok {
		if s.gone {
			return
		}
		s.gone = true
		ev := Event{Kind: KindReleased, At: now, LockID: id, Source: SourceBackend, Mechanisms: s.mechs, Info: s.info, Note: note}
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
			w.emit(Event{Kind: KindWaitEnd, At: now, LockID: infoID(s.info), Source: SourceBackend, Info: s.info, PID: s.pid,
				WaitedMS: now.Sub(s.first).Milliseconds(), Ended: "released"})
		}
	}
}

func infoID(in *Info) string {
	if in == nil {
		return ""
	}
	return in.ID
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
		ev.Mechanisms = []Mechanism{v.Mechanism}
	}
	w.emit(ev)
}

func (w *Watcher) emit(ev Event) { w.spec.Emit(ev) }

// Diagnostic records a lock fact from terraform's output. It never blocks:
// the fact is queued for the watcher's own goroutine (and dropped, counted,
// if 64 are already waiting), which cross-checks a contention with the
// backend.
func (w *Watcher) Diagnostic(d Diagnostic) {
	if d.At.IsZero() {
		d.At = w.spec.Now()
	}
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if w.dclosed {
		return
	}
	select {
	case w.diags <- d:
	default:
		w.dropped++
	}
}

func (w *Watcher) diagnostics() {
	defer close(w.ddone)
	for d := range w.diags {
		switch {
		case d.Interrupts > 0:
			w.mu.Lock()
			w.interrupt = max(w.interrupt, d.Interrupts)
			w.mu.Unlock()
		case d.ReleaseFailed:
			w.mu.Lock()
			var id string
			var info *Info
			var latest time.Time
			for oid, s := range w.ours {
				if oid != "" && !s.first.Before(latest) {
					id, info, latest = oid, s.info, s.first
				}
			}
			w.emit(Event{Kind: KindReleaseFailed, At: d.At, LockID: id, Source: SourceOutput, Info: info, Message: d.Message,
				Note: "terraform could not release its lock: it may be orphaned"})
			w.mu.Unlock()
		case d.Contention:
			w.contention(d)
		}
	}
}

// contention records terraform's lock error with what the backend shows
// now. Precedence across mechanisms: confirmed, then different lock, then
// not observed, then not held.
func (w *Watcher) contention(d Diagnostic) {
	select { // a fast failure can come before the clients are set up
	case <-w.opened:
	case <-time.After(requestTimeout):
	}
	var views []View
	obs := w.observer()
	if obs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		views = obs.Observe(ctx)
		cancel()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := Event{Kind: KindContention, At: d.At, Source: SourceOutput, Info: d.Holder, Message: d.Message}
	if d.Holder != nil {
		ev.LockID = d.Holder.ID
	}
	rank := map[string]int{"not held": 0, "not observed": 1, "different lock": 2, "confirmed": 3}
	set := func(b string) {
		if ev.Backend == "" || rank[b] > rank[ev.Backend] {
			ev.Backend = b
		}
	}
	if obs == nil {
		set("not observed")
		ev.Note = "tfsh cannot read locks of the " + w.spec.Backend + " backend"
	}
	for _, v := range views {
		ev.Mechanisms = append(ev.Mechanisms, v.Mechanism)
		switch {
		case v.Err != nil && !(v.Held && v.PID != 0):
			set("not observed")
			ev.Note = v.Err.Error()
		case v.Held && v.Info != nil && d.Holder != nil && v.Info.ID == d.Holder.ID:
			set("confirmed")
			ev.Where = v.Where
		case v.Held:
			if v.Err != nil {
				ev.Note = v.Err.Error() // held by a known process, its record unreadable
			}
			if d.Holder == nil {
				set("confirmed")
				ev.Info = v.Info
				if v.Info != nil {
					ev.LockID = v.Info.ID
				}
			} else {
				set("different lock")
			}
			ev.PID, ev.Where = v.PID, v.Where
		default:
			set("not held")
		}
	}
	if ev.LockID != "" {
		if s, ok := w.ours[ev.LockID]; ok {
			// terraform says someone else holds it: what was taken for
			// ours (same user, host and operation) was not.
			delete(w.ours, ev.LockID)
			s.waitNoted = false
			w.foreign[ev.LockID] = s
			ev.Note = "this lock was recorded as acquired by this command (same user, host and operation); terraform reports it as held by someone else, so it was not ours"
		} else if _, ok := w.foreign[ev.LockID]; !ok {
			w.foreign[ev.LockID] = &seen{info: ev.Info, first: d.At, gone: ev.Backend != "confirmed"}
		}
	}
	w.emit(ev)
}

// AfterExit returns the read made after terraform exited (nil if none) and
// how many interrupts terraform reported. Call it after Finish.
func (w *Watcher) AfterExit() ([]View, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.final, w.interrupt
}

// Exit is how the watched command ended.
type Exit struct {
	// OK: the command succeeded (exit 0, or 2 with -detailed-exitcode).
	OK bool
	// Locked: the command always takes the state lock and ran with locking
	// on, so a success without a seen lock is an inferred acquisition.
	Locked bool
}

// Finish stops polling, observes once more and records what the command
// left behind: released, orphaned, or (local) a stale .lock.info. The
// caller must have stopped sending diagnostics.
func (w *Watcher) Finish(ctx context.Context, exit Exit) {
	w.cancel()
	w.start.Do(func() { close(w.done); close(w.opened) }) // never started: the command did not run
	<-w.done
	w.dmu.Lock()
	if !w.dclosed {
		w.dclosed = true
		close(w.diags)
	}
	w.dmu.Unlock()
	<-w.ddone
	if obs := w.observer(); obs != nil {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		views := obs.Observe(ctx)
		cancel()
		w.apply(views)
		w.mu.Lock()
		w.final = views
		w.mu.Unlock()
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
		s.gone = true
		h := w.current[id]
		switch {
		case h.Mechanism == Local:
			// Our process is gone, and with it its fcntl lock, whatever
			// the last read said.
			w.emit(Event{Kind: KindReleased, At: now, LockID: id, Source: SourceBackend, Mechanisms: s.mechs, Info: s.info,
				Note: "terraform exited; the operating system released its lock"})
		case w.failed:
			w.emit(Event{Kind: KindOrphaned, At: now, LockID: id, Source: SourceBackend, Mechanisms: s.mechs, Where: h.Where, Info: s.info,
				Note: "unknown: the read after terraform exited failed, so tfsh cannot tell whether this lock was released; check with tfsh locks"})
		default:
			note := "our terraform exited and its lock is still held: once nothing uses the state, remove it with tfsh unlock " + id + " where it was taken"
			if w.interrupt >= 2 {
				note = "terraform exited at once after two interrupts, leaving its lock: once nothing uses the state, remove it with tfsh unlock " + id + " where it was taken"
			}
			w.emit(Event{Kind: KindOrphaned, At: now, LockID: id, Source: SourceBackend, Mechanisms: s.mechs, Where: h.Where, Info: s.info, Note: note})
		}
	}
	for _, s := range w.foreign {
		if s.waitNoted && !s.gone {
			w.emit(Event{Kind: KindWaitEnd, At: now, LockID: infoID(s.info), Source: SourceBackend, Info: s.info, PID: s.pid,
				WaitedMS: now.Sub(s.first).Milliseconds(), Ended: "command ended"})
			s.gone = true
		}
	}
	if w.obs != nil {
		ev := Event{Kind: KindObserved, At: now, Source: SourceBackend, Mechanisms: w.obs.Mechanisms(),
			Polls: w.polls, Requests: w.polls * len(w.obs.Mechanisms()), WatchedMS: now.Sub(w.spec.Start).Milliseconds()}
		if w.dropped > 0 {
			ev.Note = strconv.Itoa(w.dropped) + " diagnostics from terraform's output were dropped (more than 64 waiting)"
		}
		w.emit(ev)
	}
	if exit.OK && exit.Locked && len(w.ours) == 0 {
		note := "the command succeeded with locking on, so it took and released the lock, but no observation caught it"
		switch {
		case w.obs == nil:
			note = "the command succeeded with locking on; tfsh could not read locks of the " + w.spec.Backend + " backend"
		case w.polls > 0 && len(w.problems) > 0:
			note = "the command succeeded with locking on; tfsh's reads of the lock failed (see the observation problems)"
		}
		w.emit(Event{Kind: KindAcquired, At: w.spec.Start, Source: SourceInferred, Note: note})
		w.emit(Event{Kind: KindReleased, At: now, Source: SourceInferred, Note: note})
	}
}
