package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a fake observer for the watcher's transition logic: each
// Observe returns the next step's views (the last one repeats). The real
// observers are tested against real servers in observe_test.go.
type scripted struct {
	mu    sync.Mutex
	steps [][]View
	n     int
	mechs []Mechanism
}

func (s *scripted) Observe(ctx context.Context) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.n
	if i >= len(s.steps) {
		i = len(s.steps) - 1
	}
	s.n++
	return s.steps[i]
}

func (s *scripted) Mechanisms() []Mechanism { return s.mechs }

// waitSteps blocks until the observer has served every step once.
func (s *scripted) waitSteps(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := s.n
		s.mu.Unlock()
		if n >= len(s.steps) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer served %d of %d steps", n, len(s.steps))
		}
		time.Sleep(time.Millisecond)
	}
}

type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) emit(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, e := range r.evs {
		if e.Kind == KindObserved {
			continue
		}
		s := strings.TrimPrefix(e.Kind, "lock_")
		if e.LockID != "" {
			s += "(" + e.LockID + ")"
		}
		if e.Source == SourceInferred {
			s += "[inferred]"
		}
		k = append(k, s)
	}
	return strings.Join(k, " ")
}

func (r *recorder) find(kind string) *Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.evs {
		if r.evs[i].Kind == kind {
			return &r.evs[i]
		}
	}
	return nil
}

var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

func remote(id, who, op string, created time.Time) View {
	return View{Mechanism: DynamoDB, Where: "dynamodb://locks/b/k", Held: true, Info: &Info{ID: id, Who: who, Operation: op, Created: created}}
}

var freeRemote = View{Mechanism: DynamoDB, Where: "dynamodb://locks/b/k"}

func watchScript(t *testing.T, steps [][]View, spec WatchSpec) (*Watcher, *scripted, *recorder) {
	t.Helper()
	obs := &scripted{steps: steps, mechs: []Mechanism{DynamoDB}}
	rec := &recorder{}
	if spec.Who == "" {
		spec.Who = "me@here"
	}
	if spec.Start.IsZero() {
		spec.Start = t0
	}
	if spec.Subcommand == "" {
		spec.Subcommand = "apply"
	}
	spec.Open = func(context.Context) (Observer, error) { return obs, nil }
	spec.Polling = Polling{Held: time.Millisecond, Fast: time.Millisecond, Idle: time.Millisecond}
	spec.Now = func() time.Time { return t0.Add(time.Second) }
	spec.Emit = rec.emit
	w := Watch(spec)
	w.Started(1)
	return w, obs, rec
}

func TestWatchTransitions(t *testing.T) {
	mine := remote("OURS", "me@here", "OperationTypeApply", t0.Add(100*time.Millisecond))
	theirs := remote("THEIRS", "bob@ci", "OperationTypeApply", t0.Add(-time.Minute))
	sameWhoEarlier := remote("OLD", "me@here", "OperationTypeApply", t0.Add(-time.Second))
	otherOp := remote("PLAN", "me@here", "OperationTypePlan", t0.Add(time.Millisecond))
	tests := []struct {
		name  string
		steps [][]View
		waits bool
		exit  Exit
		want  string
	}{
		{name: "acquired and released", steps: [][]View{{freeRemote}, {mine}, {mine}, {freeRemote}},
			exit: Exit{OK: true, Locked: true}, want: "acquired(OURS) released(OURS)"},
		{name: "held by someone else, then ours", steps: [][]View{{theirs}, {theirs}, {freeRemote}, {mine}, {freeRemote}}, waits: true,
			exit: Exit{OK: true, Locked: true}, want: "wait(THEIRS) wait_end(THEIRS) acquired(OURS) released(OURS)"},
		{name: "someone else's without -lock-timeout is no wait", steps: [][]View{{theirs}, {freeRemote}},
			exit: Exit{Locked: true}, want: ""},
		{name: "same user, created before we started, is not ours", steps: [][]View{{sameWhoEarlier}, {freeRemote}}, waits: true,
			exit: Exit{Locked: true}, want: "wait(OLD) wait_end(OLD)"},
		{name: "an operation our command does not record is not ours", steps: [][]View{{otherOp}, {freeRemote}}, waits: true,
			exit: Exit{Locked: true}, want: "wait(PLAN) wait_end(PLAN)"},
		{name: "still held after exit is orphaned", steps: [][]View{{freeRemote}, {mine}},
			exit: Exit{Locked: true}, want: "acquired(OURS) orphaned(OURS)"},
		{name: "never seen but succeeded is inferred", steps: [][]View{{freeRemote}},
			exit: Exit{OK: true, Locked: true}, want: "acquired[inferred] released[inferred]"},
		{name: "never seen and failed infers nothing", steps: [][]View{{freeRemote}},
			exit: Exit{Locked: true}, want: ""},
		{name: "wait still going when the command ends", steps: [][]View{{theirs}}, waits: true,
			exit: Exit{Locked: true}, want: "wait(THEIRS) wait_end(THEIRS)"},
		{name: "a failed read is not a release", steps: [][]View{{freeRemote}, {mine}, {{Mechanism: DynamoDB, Err: errors.New("timeout")}}, {mine}, {freeRemote}},
			exit: Exit{OK: true, Locked: true}, want: "acquired(OURS) observation_problem released(OURS)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, obs, rec := watchScript(t, tt.steps, WatchSpec{Waits: tt.waits})
			obs.waitSteps(t)
			w.Finish(context.Background(), tt.exit)
			if got := rec.kinds(); got != tt.want {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWatchDetails(t *testing.T) {
	mine := remote("OURS", "me@here", "OperationTypeApply", t0.Add(100*time.Millisecond))
	w, obs, rec := watchScript(t, [][]View{{freeRemote}, {mine}, {freeRemote}}, WatchSpec{})
	obs.waitSteps(t)
	w.Finish(context.Background(), Exit{OK: true, Locked: true})
	acq := rec.find(KindAcquired)
	if acq == nil || acq.DetectionDelayMS == nil || *acq.DetectionDelayMS != 900 {
		t.Fatalf("lock_acquired = %+v, want a detection delay of 900 ms (seen at t0+1s, created t0+100ms)", acq)
	}
	if acq.Info.Who != "me@here" || acq.Source != SourceBackend || len(acq.Mechanisms) != 1 || acq.Mechanisms[0] != DynamoDB {
		t.Fatalf("lock_acquired = %+v", acq)
	}
	if rel := rec.find(KindReleased); rel == nil || rel.HeldMS != 900 {
		t.Fatalf("lock_released = %+v, want held 900 ms", rel)
	}
	if o := rec.find(KindObserved); o == nil || o.Polls < 4 || o.Requests != o.Polls || o.WatchedMS != 1000 {
		t.Fatalf("lock_observed = %+v, want at least the 3 polls and the final one, one request each", o)
	}
}

func TestWatchBothS3Mechanisms(t *testing.T) {
	in := &Info{ID: "OURS", Who: "me@here", Operation: "OperationTypeApply", Created: t0.Add(time.Millisecond)}
	file := View{Mechanism: S3Lockfile, Where: "s3://b/k.tflock", Held: true, Info: in}
	item := View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Held: true, Info: in}
	free := []View{{Mechanism: S3Lockfile}, {Mechanism: DynamoDB}}
	w, obs, rec := watchScript(t, [][]View{free, {file, item}, {file, {Mechanism: DynamoDB}}, free}, WatchSpec{})
	obs.waitSteps(t)
	w.Finish(context.Background(), Exit{OK: true, Locked: true})
	if got := rec.kinds(); got != "acquired(OURS) released(OURS)" {
		t.Fatalf("events = %q: one lock held in two places is one acquisition, released when both are gone", got)
	}
	if m := rec.find(KindAcquired).Mechanisms; fmt.Sprint(m) != "[dynamodb s3-lockfile]" {
		t.Fatalf("mechanisms = %v", m)
	}
}

func TestWatchContention(t *testing.T) {
	theirs := remote("THEIRS", "bob@ci", "OperationTypeApply", t0.Add(-time.Minute))
	tests := []struct {
		name    string
		view    View
		holder  *Info
		backend string
		lockID  string
	}{
		{name: "confirmed by the backend", view: theirs, holder: theirs.Info, backend: "confirmed", lockID: "THEIRS"},
		{name: "released since: not held", view: freeRemote, holder: &Info{ID: "GONE"}, backend: "not held", lockID: "GONE"},
		{name: "another lock now", view: theirs, holder: &Info{ID: "OTHER"}, backend: "different lock", lockID: "OTHER"},
		{name: "no Lock Info block: holder from the backend", view: theirs, holder: nil, backend: "confirmed", lockID: "THEIRS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, obs, rec := watchScript(t, [][]View{{tt.view}}, WatchSpec{})
			obs.waitSteps(t)
			w.Diagnostic(Diagnostic{Contention: true, Message: "resource temporarily unavailable", Holder: tt.holder})
			w.Finish(context.Background(), Exit{Locked: true})
			ev := rec.find(KindContention)
			if ev == nil {
				t.Fatalf("no lock_contention in %q", rec.kinds())
			}
			if ev.Backend != tt.backend || ev.LockID != tt.lockID || ev.Message != "resource temporarily unavailable" {
				t.Fatalf("lock_contention = backend %q, ID %q, message %q; want %q, %q", ev.Backend, ev.LockID, ev.Message, tt.backend, tt.lockID)
			}
			if ev.Info == nil {
				t.Fatalf("lock_contention without the holder")
			}
		})
	}
}

func TestWatchUnsupportedBackend(t *testing.T) {
	rec := &recorder{}
	w := Watch(WatchSpec{Backend: "gcs", Start: t0, Emit: rec.emit,
		Open: func(context.Context) (Observer, error) { return nil, &UnsupportedError{Backend: "gcs"} }})
	w.Started(1)
	w.Diagnostic(Diagnostic{Contention: true, Holder: &Info{ID: "X", Who: "bob@ci"}})
	w.Finish(context.Background(), Exit{OK: true, Locked: true})
	if got := rec.kinds(); got != "contention(X) acquired[inferred] released[inferred]" {
		t.Fatalf("events = %q", got)
	}
	if ev := rec.find(KindContention); ev.Backend != "not observed" || !strings.Contains(ev.Note, "gcs") {
		t.Fatalf("contention on an unreadable backend = %+v", ev)
	}
	if ev := rec.find(KindAcquired); !strings.Contains(ev.Note, "gcs") {
		t.Fatalf("inferred acquisition note %q does not say the backend cannot be read", ev.Note)
	}
}

func TestWatchProblemsOnce(t *testing.T) {
	bad := View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Err: errors.New("connection refused")}
	garbage := View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Held: true, Err: &InfoError{Where: "x", Err: errors.New("bad json 1")}}
	garbage2 := View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Held: true, Err: &InfoError{Where: "x", Err: errors.New("bad json 2")}}
	w, obs, rec := watchScript(t, [][]View{{bad}, {bad}, {garbage}, {garbage2}, {bad}}, WatchSpec{})
	obs.waitSteps(t)
	w.Finish(context.Background(), Exit{})
	if got := rec.kinds(); got != "observation_problem observation_problem" {
		t.Fatalf("events = %q, want each problem once", got)
	}
}

func TestWatchOpenFails(t *testing.T) {
	rec := &recorder{}
	w := Watch(WatchSpec{Backend: "s3", Start: t0, Emit: rec.emit,
		Open: func(context.Context) (Observer, error) { return nil, errors.New("no credentials") }})
	w.Started(1)
	w.Finish(context.Background(), Exit{OK: true, Locked: true})
	if got := rec.kinds(); got != "observation_problem acquired[inferred] released[inferred]" {
		t.Fatalf("events = %q", got)
	}
}

func TestWatchLocal(t *testing.T) {
	const pid = 4242
	info := &Info{ID: "L1", Who: "me@here", Operation: "OperationTypeApply", Created: t0.Add(10 * time.Millisecond)}
	staleOld := &Info{ID: "DEAD", Who: "me@here", Operation: "OperationTypeApply", Created: t0.Add(-time.Hour)}
	free := View{Mechanism: Local, Where: "/s/terraform.tfstate"}
	staleView := View{Mechanism: Local, Where: "/s/terraform.tfstate", Stale: staleOld}
	oursNoInfo := View{Mechanism: Local, Where: "/s/terraform.tfstate", Held: true, PID: pid}
	oursOverStale := View{Mechanism: Local, Where: "/s/terraform.tfstate", Held: true, PID: pid, Info: staleOld}
	ours := View{Mechanism: Local, Where: "/s/terraform.tfstate", Held: true, PID: pid, Info: info}
	foreignNoInfo := View{Mechanism: Local, Where: "/s/terraform.tfstate", Held: true, PID: 99}
	killedOurs := View{Mechanism: Local, Where: "/s/terraform.tfstate", Stale: info}
	tests := []struct {
		name  string
		steps [][]View
		exit  Exit
		want  string
	}{
		{name: "stale info at start, then ours", steps: [][]View{{staleView}, {oursOverStale}, {ours}, {free}},
			exit: Exit{OK: true, Locked: true}, want: "stale_info(DEAD) acquired(L1) released(L1)"},
		{name: "ours before its info, then gone", steps: [][]View{{free}, {oursNoInfo}, {free}},
			exit: Exit{OK: true, Locked: true}, want: "acquired released"},
		{name: "info removed just before the release is still the same lock", steps: [][]View{{free}, {oursNoInfo}, {ours}, {oursNoInfo}, {free}},
			exit: Exit{OK: true, Locked: true}, want: "acquired(L1) released(L1)"},
		{name: "killed: the OS released it, the info stays", steps: [][]View{{free}, {ours}, {killedOurs}},
			exit: Exit{}, want: "acquired(L1) stale_info(L1) released(L1)"},
		{name: "held by another process without info", steps: [][]View{{foreignNoInfo}, {free}},
			exit: Exit{}, want: "wait wait_end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &scripted{steps: tt.steps}
			rec := &recorder{}
			w := Watch(WatchSpec{Start: t0, Who: "me@here", Subcommand: "apply", Waits: true, Emit: rec.emit,
				Open:    func(context.Context) (Observer, error) { return obs, nil },
				Polling: Polling{Held: time.Millisecond, Fast: time.Millisecond, Idle: time.Millisecond},
				Now:     func() time.Time { return t0.Add(time.Second) }})
			w.Started(pid)
			obs.waitSteps(t)
			w.Finish(context.Background(), tt.exit)
			if got := rec.kinds(); got != tt.want {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

// A command that fails at once can report contention before the observer's
// clients are set up: the cross-check waits for them.
func TestWatchContentionBeforeOpen(t *testing.T) {
	theirs := remote("THEIRS", "bob@ci", "OperationTypeApply", t0.Add(-time.Minute))
	obs := &scripted{steps: [][]View{{theirs}}, mechs: []Mechanism{DynamoDB}}
	rec := &recorder{}
	w := Watch(WatchSpec{Backend: "s3", Start: t0, Emit: rec.emit, Who: "me@here", Subcommand: "plan",
		Open: func(context.Context) (Observer, error) { time.Sleep(100 * time.Millisecond); return obs, nil }})
	w.Started(1)
	w.Diagnostic(Diagnostic{Contention: true, Holder: theirs.Info})
	w.Finish(context.Background(), Exit{Locked: true})
	if ev := rec.find(KindContention); ev == nil || ev.Backend != "confirmed" {
		t.Fatalf("contention = %+v, want it confirmed once the observer is ready", ev)
	}
}

// The review's cases: failed reads, a lock wrongly taken for ours, a local
// holder whose info comes late, diagnostics while the log is slow.
func TestWatchReviewCases(t *testing.T) {
	mine := remote("OURS", "me@here", "OperationTypeApply", t0.Add(100*time.Millisecond))
	failing := View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Err: errors.New("i/o timeout")}

	t.Run("a failed final read is not an orphan", func(t *testing.T) {
		w, obs, rec := watchScript(t, [][]View{{freeRemote}, {mine}, {failing}}, WatchSpec{})
		obs.waitSteps(t)
		w.Finish(context.Background(), Exit{OK: true, Locked: true})
		ev := rec.find(KindOrphaned)
		if ev == nil || !strings.Contains(ev.Note, "unknown") || !strings.Contains(ev.Note, "tfsh locks") {
			t.Fatalf("want the end marked unknown, not a plain orphan: %q %+v", rec.kinds(), ev)
		}
	})
	t.Run("one mechanism failing throughout does not hide the other's release", func(t *testing.T) {
		in := &Info{ID: "OURS", Who: "me@here", Operation: "OperationTypeApply", Created: t0.Add(time.Millisecond)}
		file := View{Mechanism: S3Lockfile, Where: "s3://b/k.tflock", Held: true, Info: in}
		noFile := View{Mechanism: S3Lockfile, Where: "s3://b/k.tflock"}
		w, obs, rec := watchScript(t, [][]View{{noFile, failing}, {file, failing}, {noFile, failing}}, WatchSpec{})
		obs.waitSteps(t)
		w.Finish(context.Background(), Exit{OK: true, Locked: true})
		if got := rec.kinds(); got != "observation_problem acquired(OURS) released(OURS)" {
			t.Fatalf("events = %q", got)
		}
	})
	t.Run("contention on a lock taken for ours corrects it", func(t *testing.T) {
		sameUser := remote("OTHER", "me@here", "OperationTypeApply", t0.Add(time.Millisecond))
		w, obs, rec := watchScript(t, [][]View{{freeRemote}, {sameUser}}, WatchSpec{})
		obs.waitSteps(t)
		w.Diagnostic(Diagnostic{Contention: true, Holder: sameUser.Info, Message: "ConditionalCheckFailedException"})
		w.Finish(context.Background(), Exit{Locked: true})
		if got := rec.kinds(); got != "acquired(OTHER) contention(OTHER)" {
			t.Fatalf("events = %q: no orphan, no unlock advice for someone else's lock", got)
		}
		if ev := rec.find(KindContention); !strings.Contains(ev.Note, "was not ours") || ev.Backend != "confirmed" {
			t.Fatalf("contention = %+v", ev)
		}
	})
	t.Run("a local holder whose info comes late is one wait", func(t *testing.T) {
		info := &Info{ID: "F1", Who: "bob@here", Operation: "OperationTypeApply", Created: t0}
		noInfo := View{Mechanism: Local, Where: "/s/t", Held: true, PID: 99}
		withInfo := View{Mechanism: Local, Where: "/s/t", Held: true, PID: 99, Info: info}
		free := View{Mechanism: Local, Where: "/s/t"}
		obs := &scripted{steps: [][]View{{noInfo}, {withInfo}, {noInfo}, {free}}, mechs: []Mechanism{Local}}
		rec := &recorder{}
		w := Watch(WatchSpec{Start: t0, Who: "me@here", Subcommand: "plan", Waits: true, Emit: rec.emit,
			Open:    func(context.Context) (Observer, error) { return obs, nil },
			Polling: Polling{Held: time.Millisecond, Fast: time.Millisecond, Idle: time.Millisecond},
			Now:     func() time.Time { return t0.Add(time.Second) }})
		w.Started(4242)
		obs.waitSteps(t)
		w.Finish(context.Background(), Exit{})
		if got := rec.kinds(); got != "wait wait_end(F1)" {
			t.Fatalf("events = %q, want one wait for one holder", got)
		}
	})
	t.Run("a local lock of ours is released when the final read fails", func(t *testing.T) {
		info := &Info{ID: "L1", Who: "me@here", Operation: "OperationTypeApply", Created: t0.Add(time.Millisecond)}
		ours := View{Mechanism: Local, Where: "/s/t", Held: true, PID: 4242, Info: info}
		bad := View{Mechanism: Local, Where: "/s/t", Err: errors.New("stale NFS handle")}
		obs := &scripted{steps: [][]View{{ours}, {bad}}, mechs: []Mechanism{Local}}
		rec := &recorder{}
		w := Watch(WatchSpec{Start: t0, Who: "me@here", Subcommand: "apply", Emit: rec.emit,
			Open:    func(context.Context) (Observer, error) { return obs, nil },
			Polling: Polling{Held: time.Millisecond, Fast: time.Millisecond, Idle: time.Millisecond},
			Now:     func() time.Time { return t0.Add(time.Second) }})
		w.Started(4242)
		obs.waitSteps(t)
		w.Finish(context.Background(), Exit{OK: true, Locked: true})
		if got := rec.kinds(); got != "acquired(L1) observation_problem released(L1)" {
			t.Fatalf("events = %q", got)
		}
	})
	t.Run("diagnostics never wait for a slow log", func(t *testing.T) {
		block := make(chan struct{})
		var once sync.Once
		obs := &scripted{steps: [][]View{{mine}}, mechs: []Mechanism{DynamoDB}}
		w := Watch(WatchSpec{Start: t0, Who: "me@here", Subcommand: "apply",
			Open:    func(context.Context) (Observer, error) { return obs, nil },
			Polling: Polling{Held: time.Millisecond, Fast: time.Millisecond, Idle: time.Millisecond},
			Now:     func() time.Time { return t0.Add(time.Second) },
			Emit:    func(Event) { once.Do(func() { <-block }) }}) // the first record hangs
		w.Started(1)
		obs.waitSteps(t)
		done := make(chan struct{})
		go func() {
			for range 100 {
				w.Diagnostic(Diagnostic{Interrupts: 1})
				w.Diagnostic(Diagnostic{ReleaseFailed: true, Message: "x"})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Diagnostic blocked while the watcher was recording")
		}
		close(block)
		w.Finish(context.Background(), Exit{})
	})
}

func TestWatchTwoInterrupts(t *testing.T) {
	mine := remote("OURS", "me@here", "OperationTypeApply", t0.Add(100*time.Millisecond))
	w, obs, rec := watchScript(t, [][]View{{freeRemote}, {mine}}, WatchSpec{})
	obs.waitSteps(t)
	w.Diagnostic(Diagnostic{Interrupts: 1})
	w.Diagnostic(Diagnostic{Interrupts: 2})
	w.Finish(context.Background(), Exit{Locked: true})
	views, n := w.AfterExit()
	if n != 2 || len(views) != 1 || !views[0].Held {
		t.Fatalf("AfterExit = %+v, %d", views, n)
	}
	if ev := rec.find(KindOrphaned); ev == nil || !strings.Contains(ev.Note, "two interrupts") || !strings.Contains(ev.Note, "tfsh unlock OURS") {
		t.Fatalf("orphan after two interrupts = %+v", ev)
	}
}
