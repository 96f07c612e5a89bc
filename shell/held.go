package shell

import (
	"io"
	"sync"
	"time"
)

// heldOutput holds terraform's output back from the user while the run may
// still turn out to be a lost race for the lock, which tfsh hides and
// runs again (see Session.Run). What it holds is recorded all the same: the
// recorder sits beside it, not behind it.
//
// It is let go (release) when the run is known to have the lock, after
// heldFor, or at heldMax bytes: what was held is then shown, in the order
// written, before the next write; flush shows what is left once the run
// has ended. drop discards it all, and what comes after. Output reaches the
// user only from the writer's goroutine or from flush, never under the
// mutex, so a user's stdout that stops reading stalls the relay as it
// would without the hold, and nothing else.
type heldOutput struct {
	mu      sync.Mutex
	holding bool // writes are kept
	dropped bool // a lost run: writes are discarded
	writing bool // a write to the user is under way
	shown   bool // something reached the user
	frames  []heldFrame
	size    int
	timer   *time.Timer
}

type heldFrame struct {
	w    io.Writer
	data []byte
}

const (
	// heldMax: a lost race is a short diagnostic; more output than this is
	// a run that got past the lock.
	heldMax = 64 << 10
	// heldFor: terraform tries the lock within a second or two of
	// starting, on a remote backend too; output is not kept from the user
	// longer.
	heldFor = 2 * time.Second
)

func newHeldOutput() *heldOutput {
	h := &heldOutput{holding: true}
	h.timer = time.AfterFunc(heldFor, h.release)
	return h
}

// wrap returns a writer to w that goes through the hold.
func (h *heldOutput) wrap(w io.Writer) io.Writer { return heldWriter{h, w} }

type heldWriter struct {
	h *heldOutput
	w io.Writer
}

func (hw heldWriter) Write(p []byte) (int, error) {
	h := hw.h
	h.mu.Lock()
	if h.dropped {
		h.mu.Unlock()
		return len(p), nil
	}
	if h.holding && h.size+len(p) <= heldMax {
		h.frames = append(h.frames, heldFrame{hw.w, append([]byte(nil), p...)})
		h.size += len(p)
		h.mu.Unlock()
		return len(p), nil
	}
	frames := h.take()
	h.writing, h.shown = true, true
	h.mu.Unlock()
	for _, f := range frames {
		f.w.Write(f.data)
	}
	n, err := hw.w.Write(p)
	h.mu.Lock()
	h.writing = false
	h.mu.Unlock()
	return n, err
}

// take ends the hold and returns what it kept; h.mu is held.
func (h *heldOutput) take() []heldFrame {
	h.holding = false
	frames := h.frames
	h.frames, h.size = nil, 0
	return frames
}

// release lets output through from the next write on. It never writes
// itself: it is called from the lock watcher and a timer.
func (h *heldOutput) release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.holding = false
	h.mu.Unlock()
}

// flush shows what is still held, once the run has ended; not while a write
// to the user is stuck (the relay left it behind), which would stall tfsh
// too.
func (h *heldOutput) flush() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.timer.Stop()
	if h.dropped || h.writing {
		h.mu.Unlock()
		return
	}
	frames := h.take()
	if len(frames) > 0 {
		h.writing, h.shown = true, true
	}
	h.mu.Unlock()
	for _, f := range frames {
		f.w.Write(f.data)
	}
	h.mu.Lock()
	h.writing = false
	h.mu.Unlock()
}

// drop discards what is held and anything written later, and reports
// whether some of the run's output had already been shown.
func (h *heldOutput) drop() (shown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer.Stop()
	h.take()
	h.dropped = true
	return h.shown
}
