package lock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPreWait(t *testing.T) {
	a := &Info{ID: "lock-a", Operation: "OperationTypeApply", Who: "bob@ci"}
	c := &Info{ID: "lock-c", Operation: "OperationTypePlan", Who: "carol@laptop"}
	dyn := func(in *Info) View {
		return View{Mechanism: DynamoDB, Where: "dynamodb://t/b/k", Held: in != nil, Info: in}
	}
	file := func(in *Info) View {
		return View{Mechanism: S3Lockfile, Where: "s3://b/k.tflock", Held: in != nil, Info: in}
	}
	local := func(pid int, in *Info) View {
		return View{Mechanism: Local, Where: "terraform.tfstate", Held: pid != 0, PID: pid, Info: in}
	}
	failed := View{Mechanism: DynamoDB, Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name    string
		steps   [][]View
		timeout time.Duration
		want    WaitOutcome
		events  string
	}{
		{"free at once", [][]View{{dyn(nil)}}, time.Minute, WaitFree, ""},
		{"held then released", [][]View{{dyn(a)}, {dyn(a)}, {dyn(a)}, {dyn(nil)}}, time.Minute, WaitReleased,
			"wait(lock-a) wait_end(lock-a released)"},
		{"both mechanisms are one holder", [][]View{{dyn(a), file(a)}, {dyn(a), file(nil)}, {dyn(nil), file(nil)}}, time.Minute, WaitReleased,
			"wait(lock-a) wait_end(lock-a released)"},
		{"another waiter got it first: a wait per holder", [][]View{{dyn(a)}, {dyn(c)}, {dyn(nil)}}, time.Minute, WaitReleased,
			"wait(lock-a) wait_end(lock-a released) wait(lock-c) wait_end(lock-c released)"},
		{"a failed read is not a release", [][]View{{dyn(a)}, {failed}, {dyn(a)}, {dyn(nil)}}, time.Minute, WaitReleased,
			"wait(lock-a) wait_end(lock-a released)"},
		{"reads keep failing: terraform decides", [][]View{{dyn(a)}, {failed}}, time.Minute, WaitUnobserved,
			"wait(lock-a) wait_end(lock-a not observed)"},
		{"the first read fails: no wait", [][]View{{failed}}, time.Minute, WaitUnobserved, ""},
		{"deadline", [][]View{{dyn(a)}}, 30 * time.Millisecond, WaitTimedOut,
			"wait(lock-a) wait_end(lock-a timed out)"},
		{"a local holder whose .lock.info stays unreadable: terraform fails at once, tfsh does not wait", [][]View{{{Mechanism: Local, Held: true, PID: 42, Err: errors.New("lock info is unreadable")}}}, time.Minute, WaitUnreadable, ""},
		{"a local holder is waited for with its ID", [][]View{{local(42, nil)}, {local(42, nil)}, {local(42, a)}, {local(0, nil)}}, time.Minute, WaitReleased,
			"wait(lock-a) wait_end(lock-a released)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &scripted{steps: tc.steps}
			var rec recorder
			res := PreWait(context.Background(), obs, WaitSpec{Interval: time.Millisecond, Deadline: time.Now().Add(tc.timeout), Emit: rec.emit})
			if res.Outcome != tc.want {
				t.Fatalf("outcome %q, want %q", res.Outcome, tc.want)
			}
			if got := waitKinds(&rec); got != tc.events {
				t.Fatalf("events %q, want %q", got, tc.events)
			}
			if tc.want == WaitFree && res.Reads != 1 {
				t.Fatalf("a free lock took %d reads, want 1", res.Reads)
			}
			for _, e := range rec.evs {
				if e.Note != preWaitNote || e.Source != SourceBackend || e.Info == nil {
					t.Fatalf("event %+v: want the holder's LockInfo, from the backend, marked as the pre-wait's", e)
				}
			}
		})
	}
}

// The pre-check's read is the first observation: a free lock costs no
// second read.
func TestPreWaitUsesThePrecheck(t *testing.T) {
	obs := &scripted{steps: [][]View{{{Mechanism: Local, Held: true, PID: 7}}}}
	res := PreWait(context.Background(), obs, WaitSpec{First: []View{{Mechanism: Local}}, Deadline: time.Now().Add(time.Minute), Emit: func(Event) {}})
	if res.Outcome != WaitFree || obs.n != 0 {
		t.Fatalf("outcome %q after %d reads of the observer, want free and none", res.Outcome, obs.n)
	}
}

func TestPreWaitInterrupted(t *testing.T) {
	in := &Info{ID: "lock-a", Who: "bob@ci"}
	obs := &scripted{steps: [][]View{{{Mechanism: DynamoDB, Held: true, Info: in}}}}
	ctx, cancel := context.WithCancel(context.Background())
	var rec recorder
	done := make(chan WaitResult)
	go func() {
		done <- PreWait(ctx, obs, WaitSpec{Interval: time.Millisecond, Deadline: time.Now().Add(time.Minute), Emit: rec.emit})
	}()
	obs.waitSteps(t)
	cancel()
	select {
	case res := <-done:
		if res.Outcome != WaitInterrupted || res.Waited <= 0 {
			t.Fatalf("result %+v, want interrupted after a wait", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PreWait did not return when its context ended")
	}
	if got := waitKinds(&rec); got != "wait(lock-a) wait_end(lock-a interrupted)" {
		t.Fatalf("events %q", got)
	}
}

func waitKinds(r *recorder) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		s := strings.TrimPrefix(e.Kind, "lock_") + "(" + e.LockID
		if e.Ended != "" {
			s += " " + e.Ended
		}
		out = append(out, s+")")
	}
	return strings.Join(out, " ")
}
