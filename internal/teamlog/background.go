package teamlog

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrWrittenAfter is Close's reason when events were written after its
// last ship (by another process on the same log).
var ErrWrittenAfter = errors.New("written after the last ship")

// Runner ships in the background: Kick (cheap, never blocks) asks for a
// ship after a commit; one ship runs at a time, and kicks during a ship
// make one more afterwards. Commands never wait for it; Close waits for it
// at most a bound.
type Runner struct {
	Shipper *Shipper
	// OnConflict hears of the first conflict (later ships meet it again;
	// once is enough on stderr).
	OnConflict func(error)

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	wanted   uint64        // kicks so far
	shipped  uint64        // the kicks the last finished ship covered
	progress chan struct{} // closed and replaced when a ship finishes
	lastErr  error
	conflict bool
}

// Start starts the runner's goroutine and a first ship (the backlog of
// earlier commands).
func (r *Runner) Start() {
	r.kick = make(chan struct{}, 1)
	r.stop = make(chan struct{})
	r.done = make(chan struct{})
	r.progress = make(chan struct{})
	r.Kick()
	go r.loop()
}

// Kick asks for a ship soon.
func (r *Runner) Kick() {
	r.mu.Lock()
	r.wanted++
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Runner) loop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		r.mu.Lock()
		covers := r.wanted
		r.mu.Unlock()
		_, err := r.Shipper.Ship(ctx)
		r.mu.Lock()
		r.shipped, r.lastErr = covers, err
		var ce *ConflictError
		report := errors.As(err, &ce) && !r.conflict
		r.conflict = r.conflict || report
		close(r.progress)
		r.progress = make(chan struct{})
		r.mu.Unlock()
		if report && r.OnConflict != nil {
			r.OnConflict(err)
		}
	}
}

// Close asks for a last ship (of the session's end), waits at most timeout
// for it, then stops the runner. It returns how many own events are still
// to ship and, if any are, why: the last ship's error, or
// context.DeadlineExceeded if it did not end in time.
func (r *Runner) Close(timeout time.Duration) (left int64, err error) {
	r.Kick()
	r.mu.Lock()
	target := r.wanted
	r.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	why := error(nil)
	for why == nil {
		r.mu.Lock()
		if r.shipped >= target {
			why = r.lastErr
			r.mu.Unlock()
			break
		}
		progress := r.progress
		r.mu.Unlock()
		select {
		case <-progress:
		case <-deadline.C:
			why = context.DeadlineExceeded
		}
	}
	close(r.stop)
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cursor, err := r.Shipper.DB.ShipCursor(ctx, r.Shipper.Sink())
	if err != nil {
		return 0, err
	}
	if left, err = r.Shipper.DB.CountLocalAfter(ctx, cursor); err != nil || left == 0 {
		return left, err
	}
	if why == nil {
		why = ErrWrittenAfter
	}
	return left, why
}
