package lock

import (
	"context"
	"slices"
	"strconv"
	"time"
)

// WaitSpec describes tfsh's own wait for a lock held by someone else,
// before it starts terraform (the pre-wait): terraform retries on a backoff
// (1, 2, 4, 8, 16 s, reference §7), so a lock freed just after a retry
// sits unused for up to 16 s; tfsh polls where the lock lives instead and
// starts terraform as soon as it is free.
type WaitSpec struct {
	// Interval is how often the lock is read while it is held.
	Interval time.Duration
	// Deadline is when the command's -lock-timeout runs out.
	Deadline time.Time
	// First is the read already made (the pre-check), if any: it is used
	// as the first observation.
	First []View
	// MaxFailures is how many reads in a row may fail before the wait is
	// given up and terraform's own retry decides (default 3).
	MaxFailures int
	Now         func() time.Time
	// Emit records lock_wait when a holder is first seen and lock_wait_end
	// when it goes or the wait stops; called on the caller's goroutine.
	Emit func(Event)
}

// WaitOutcome says how a pre-wait ended.
type WaitOutcome string

// Pre-wait outcomes.
const (
	WaitFree        WaitOutcome = "free"         // free at the first read: no wait at all
	WaitReleased    WaitOutcome = "released"     // held, then free: start terraform now
	WaitTimedOut    WaitOutcome = "timed out"    // still held at the deadline
	WaitInterrupted WaitOutcome = "interrupted"  // ctx ended (Ctrl-C, SIGTERM)
	WaitUnobserved  WaitOutcome = "not observed" // reads failed: terraform's own retry decides
	// WaitUnreadable: a local holder whose .lock.info stays unreadable.
	// terraform fails at once on such a lock, without retrying (reference
	// §1), so tfsh does not wait either.
	WaitUnreadable WaitOutcome = "holder unreadable"
)

// WaitResult is how a pre-wait went.
type WaitResult struct {
	Outcome WaitOutcome
	// Reads is how many observations the wait made (First included).
	Reads int
	// Waited is from the first read that showed someone else's lock to the
	// end of the wait; 0 when the lock was free at once.
	Waited time.Duration
}

// preHolder is one holder the pre-wait saw.
type preHolder struct {
	info  *Info
	pid   int
	where string
	mechs []Mechanism
	first time.Time
	noted bool // lock_wait emitted
}

// localInfoWait bounds how long a local holder whose .lock.info is not
// written yet is re-read for its ID before its wait is recorded without
// one (terraform writes the file just after taking the lock).
const localInfoWait = 100 * time.Millisecond

// PreWait waits until no one holds the lock, reading it every
// spec.Interval, for at most until spec.Deadline. Before terraform starts,
// every lock held is someone else's. Each holder is one lock_wait, and its
// going one lock_wait_end (ended: released); a wait that stops for another
// reason ends with the outcome's name (timed out, interrupted, not
// observed). A local holder whose .lock.info cannot be read within 100 ms
// ends the wait at once (holder unreadable): terraform does not wait on
// such a lock either. It never takes, holds or removes the lock.
func PreWait(ctx context.Context, obs Observer, spec WaitSpec) WaitResult {
	if spec.Now == nil {
		spec.Now = time.Now
	}
	if spec.MaxFailures <= 0 {
		spec.MaxFailures = 3
	}
	if spec.Interval <= 0 {
		spec.Interval = 100 * time.Millisecond
	}
	var res WaitResult
	holders := map[string]*preHolder{}
	var waitFrom time.Time
	failures := 0
	emitEnd := func(now time.Time, ended string) {
		for _, key := range sortedKeys(holders) {
			h := holders[key]
			if h.noted {
				spec.Emit(Event{Kind: KindWaitEnd, At: now, LockID: infoID(h.info), Source: SourceBackend, Mechanisms: h.mechs, Where: h.where,
					Info: h.info, PID: h.pid, WaitedMS: now.Sub(h.first).Milliseconds(), Ended: ended, Polls: res.Reads, Note: preWaitNote})
			}
		}
	}
	finish := func(o WaitOutcome) WaitResult {
		res.Outcome = o
		if !waitFrom.IsZero() {
			res.Waited = spec.Now().Sub(waitFrom)
		}
		return res
	}
	views := spec.First
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if views == nil {
			views = obs.Observe(ctx)
		}
		res.Reads++
		now := spec.Now()
		if ctx.Err() != nil {
			emitEnd(now, string(WaitInterrupted))
			return finish(WaitInterrupted)
		}
		cur, ok := heldNow(views)
		views = nil
		next := spec.Interval
		switch {
		case !ok && res.Reads == 1:
			return finish(WaitUnobserved)
		case !ok:
			// A failed read is not a release: keep the holders, read again.
			failures++
			if failures >= spec.MaxFailures {
				emitEnd(now, string(WaitUnobserved))
				return finish(WaitUnobserved)
			}
		default:
			failures = 0
			for _, key := range sortedKeys(holders) {
				if _, still := cur[key]; !still {
					h := holders[key]
					if h.noted {
						spec.Emit(Event{Kind: KindWaitEnd, At: now, LockID: infoID(h.info), Source: SourceBackend, Mechanisms: h.mechs, Where: h.where,
							Info: h.info, PID: h.pid, WaitedMS: now.Sub(h.first).Milliseconds(), Ended: "released", Polls: res.Reads, Note: preWaitNote})
					}
					delete(holders, key)
				}
			}
			if len(cur) == 0 {
				if res.Reads == 1 {
					return finish(WaitFree)
				}
				return finish(WaitReleased)
			}
			if waitFrom.IsZero() {
				waitFrom = now
			}
			for _, key := range sortedKeys(cur) {
				c := cur[key]
				h, known := holders[key]
				if !known {
					h = c
					h.first = now
					holders[key] = h
				} else {
					h.mechs = union(h.mechs, c.mechs)
					if h.info == nil {
						h.info = c.info
					}
				}
				if h.noted {
					continue
				}
				if h.info == nil && now.Sub(h.first) < localInfoWait && now.Before(spec.Deadline) {
					next = time.Millisecond // its .lock.info comes next
					continue
				}
				if h.info == nil {
					emitEnd(now, string(WaitUnreadable))
					return finish(WaitUnreadable)
				}
				h.noted = true
				spec.Emit(Event{Kind: KindWait, At: h.first, LockID: infoID(h.info), Source: SourceBackend, Mechanisms: h.mechs, Where: h.where,
					Info: h.info, PID: h.pid, Note: preWaitNote})
			}
		}
		if !now.Before(spec.Deadline) {
			emitEnd(now, string(WaitTimedOut))
			return finish(WaitTimedOut)
		}
		timer.Reset(min(next, spec.Deadline.Sub(now)))
		select {
		case <-ctx.Done():
			emitEnd(spec.Now(), string(WaitInterrupted))
			return finish(WaitInterrupted)
		case <-timer.C:
		}
	}
}

// preWaitNote marks the events of tfsh's own wait, before terraform started.
const preWaitNote = "tfsh waited for the lock before starting terraform"

// heldNow turns one observation into its holders, keyed as the watcher
// keys them: a remote lock by its ID (both S3 mechanisms showing one ID
// are one holder), a local one by its process. ok is false when a read
// failed.
func heldNow(views []View) (map[string]*preHolder, bool) {
	out := map[string]*preHolder{}
	for _, v := range views {
		if v.Err != nil && !(v.Mechanism == Local && v.Held && v.PID != 0) {
			return nil, false
		}
		if !v.Held {
			continue
		}
		key := ""
		switch {
		case v.Mechanism == Local:
			key = "pid:" + strconv.Itoa(v.PID)
		case v.Info != nil:
			key = v.Info.ID
		default:
			return nil, false // a remote record without LockInfo: unreadable
		}
		if h, ok := out[key]; ok {
			h.mechs = union(h.mechs, []Mechanism{v.Mechanism})
			continue
		}
		out[key] = &preHolder{info: v.Info, pid: v.PID, where: v.Where, mechs: []Mechanism{v.Mechanism}}
	}
	return out, true
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// PreWaitPolling is how often the pre-wait reads a lock held by someone
// else: a local read is a system call and a small file (a few µs), a
// remote one a request (one consistent DynamoDB read or S3 GET). The
// handoff, from the release to the next terraform's acquisition, is at
// most this plus terraform's start (BENCHMARKS.md, "Lock handoff").
func PreWaitPolling(m []Mechanism) time.Duration {
	if slices.Contains(m, Local) {
		return 20 * time.Millisecond
	}
	return 100 * time.Millisecond
}
