package shell

import (
	"io"
	"sync"
	"time"
)

// heldOutput holds terraform's output back from the user while the run may
// still turn out to be a lost race for the lock, which tfsh hides and
// runs again (see Session.Run). It is released, in the order written, as
// soon as the run is known to have the lock, when it has held heldMax
// bytes or heldFor, or when the caller decides after terraform exits;
// from then on writes pass straight through. What it holds is recorded
// all the same: the recorder sits beside it, not behind it.
type heldOutput struct {
	mu      sync.Mutex
	holding bool
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
	// heldFor: terraform tries the lock within a second of starting, on a
	// remote backend too; output is never kept from the user longer.
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
	defer h.mu.Unlock()
	if h.holding && h.size+len(p) <= heldMax {
		h.frames = append(h.frames, heldFrame{hw.w, append([]byte(nil), p...)})
		h.size += len(p)
		return len(p), nil
	}
	h.flushLocked()
	return hw.w.Write(p)
}

// release shows what was held and lets the rest through.
func (h *heldOutput) release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushLocked()
}

func (h *heldOutput) flushLocked() {
	if !h.holding {
		return
	}
	h.holding = false
	h.timer.Stop()
	for _, f := range h.frames {
		f.w.Write(f.data)
	}
	h.frames, h.size = nil, 0
}

// drop discards what was held, and reports whether anything had already
// been shown (the hold was released before the run ended).
func (h *heldOutput) drop() (shown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer.Stop()
	shown = !h.holding
	h.holding = false
	h.frames, h.size = nil, 0
	return shown
}
