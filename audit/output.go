package audit

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
)

// Stream names where a frame of output came from.
type Stream byte

const (
	Stdout Stream = 1
	Stderr Stream = 2
	// TTY is the merged output of a command run on a pseudo-terminal.
	TTY Stream = 3
	// Note is a line tfsh itself printed about the command (decisions, added
	// arguments), recorded so replay shows what the user saw.
	Note Stream = 4
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case TTY:
		return "tty"
	case Note:
		return "tfsh"
	}
	return fmt.Sprintf("stream%d", byte(s))
}

// Frame is one write of output, at an offset from the command's start.
type Frame struct {
	Offset time.Duration
	Stream Stream
	Data   []byte
}

// Chunk limits: a chunk is stored when it holds this much, or when it is
// this old, so a crash loses at most about a second of output and memory
// stays bounded however long the output is.
const (
	chunkMaxBytes = 64 << 10
	chunkMaxAge   = time.Second
	chunkQueue    = 8
)

// Output returns a writer that records what is written to it as frames of
// stream s. Writes are redacted, timed and stored in compressed chunks by a
// background goroutine; a slow database applies back-pressure only after
// chunkQueue chunks are waiting. Call End to flush.
func (c *Command) Output(s Stream) io.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		c.out = newOutputRecorder(c)
	}
	w := &streamWriter{rec: c.out, stream: s, red: streamRedactor{r: c.red}}
	c.out.mu.Lock()
	c.out.writers = append(c.out.writers, w)
	c.out.mu.Unlock()
	return w
}

type streamWriter struct {
	rec    *outputRecorder
	stream Stream
	mu     sync.Mutex
	red    streamRedactor
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	data := w.red.push(p)
	w.mu.Unlock()
	if len(data) > 0 {
		w.rec.frame(w.stream, data)
	}
	return len(p), nil
}

type chunk struct {
	seq     int
	startNS int64
	raw     []byte
}

type outputRecorder struct {
	c       *Command
	mu      sync.Mutex
	writers []*streamWriter
	buf     bytes.Buffer
	bufAt   time.Time
	startNS int64
	seq     int
	total   int64
	digest  hash.Hash
	closed  bool
	queue   chan chunk
	done    chan struct{}
	err     error // first storage error, guarded by mu
}

func newOutputRecorder(c *Command) *outputRecorder {
	r := &outputRecorder{c: c, digest: sha256.New(), queue: make(chan chunk, chunkQueue), done: make(chan struct{})}
	go r.store()
	return r
}

func (r *outputRecorder) frame(s Stream, data []byte) {
	now := r.c.s.db.Now()
	off := now.Sub(r.c.Start)
	if off < 0 {
		off = 0
	}
	var hdr [2*binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(hdr[:], uint64(off))
	hdr[n] = byte(s)
	n++
	n += binary.PutUvarint(hdr[n:], uint64(len(data)))

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.buf.Len() == 0 {
		r.bufAt = now
		r.startNS = int64(off)
	}
	r.buf.Write(hdr[:n])
	r.buf.Write(data)
	r.total += int64(len(data))
	if r.buf.Len() >= chunkMaxBytes || now.Sub(r.bufAt) >= chunkMaxAge {
		r.cutLocked()
	}
}

// cutLocked hands the current buffer to the storing goroutine.
func (r *outputRecorder) cutLocked() {
	if r.buf.Len() == 0 {
		return
	}
	raw := bytes.Clone(r.buf.Bytes())
	r.buf.Reset()
	r.digest.Write(raw)
	ch := chunk{seq: r.seq, startNS: r.startNS, raw: raw}
	r.seq++
	// Sending under the lock keeps chunks in order; the queue bounds memory.
	r.queue <- ch
}

func (r *outputRecorder) store() {
	defer close(r.done)
	for ch := range r.queue {
		if err := r.c.s.db.storeChunk(r.c.ID, ch); err != nil {
			r.mu.Lock()
			if r.err == nil {
				r.err = err
			}
			r.mu.Unlock()
		}
	}
}

// close flushes held-back bytes and the last chunk, waits for storage and
// returns the digest of every frame, the bytes recorded and the chunk count.
func (r *outputRecorder) close() (string, int64, int, error) {
	r.mu.Lock()
	ws := r.writers
	r.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		data := w.red.flush()
		w.mu.Unlock()
		if len(data) > 0 {
			r.frame(w.stream, data)
		}
	}
	r.mu.Lock()
	if !r.closed {
		r.cutLocked()
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return hex.EncodeToString(r.digest.Sum(nil)), r.total, r.seq, r.err
}

func (d *DB) storeChunk(commandID string, ch chunk) error {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.DefaultCompression)
	fw.Write(ch.raw)
	if err := fw.Close(); err != nil {
		return err
	}
	// Chunks are not part of the chain themselves; they must outlive a
	// cancelled command context, so they use their own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.db.ExecContext(ctx, `INSERT INTO output_chunks (command_id, seq, start_ns, raw_len, frames) VALUES (?, ?, ?, ?, ?)`,
		commandID, ch.seq, ch.startNS, len(ch.raw), z.Bytes())
	if err != nil {
		return fmt.Errorf("store output chunk %d of command %s: %w", ch.seq, commandID, err)
	}
	return nil
}

// Frames calls fn for each recorded frame of a command in order, reading one
// chunk at a time.
func (d *DB) Frames(ctx context.Context, commandID string, fn func(Frame) error) error {
	return d.chunks(ctx, commandID, func(raw []byte) error {
		return decodeFrames(raw, fn)
	})
}

// OutputDigest recomputes the SHA-256 of a command's stored frames.
func (d *DB) OutputDigest(ctx context.Context, commandID string) (string, int64, error) {
	h := sha256.New()
	var n int64
	err := d.chunks(ctx, commandID, func(raw []byte) error {
		h.Write(raw)
		return decodeFrames(raw, func(f Frame) error { n += int64(len(f.Data)); return nil })
	})
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func (d *DB) chunks(ctx context.Context, commandID string, fn func(raw []byte) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, raw_len, frames FROM output_chunks WHERE command_id = ? ORDER BY seq`, commandID)
	if err != nil {
		return fmt.Errorf("read output of %s: %w", commandID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, rawLen int
		var z []byte
		if err := rows.Scan(&seq, &rawLen, &z); err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(z)), int64(rawLen)+1))
		if err != nil {
			return fmt.Errorf("output chunk %d of %s: %w", seq, commandID, err)
		}
		if len(raw) != rawLen {
			return fmt.Errorf("output chunk %d of %s: %d bytes, header says %d", seq, commandID, len(raw), rawLen)
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	return rows.Err()
}

var errBadFrame = errors.New("malformed output frame")

func decodeFrames(raw []byte, fn func(Frame) error) error {
	for len(raw) > 0 {
		off, n := binary.Uvarint(raw)
		if n <= 0 || len(raw) < n+1 {
			return errBadFrame
		}
		raw = raw[n:]
		s := Stream(raw[0])
		raw = raw[1:]
		l, n := binary.Uvarint(raw)
		if n <= 0 || uint64(len(raw)-n) < l {
			return errBadFrame
		}
		raw = raw[n:]
		if err := fn(Frame{Offset: time.Duration(off), Stream: s, Data: raw[:l:l]}); err != nil {
			return err
		}
		raw = raw[l:]
	}
	return nil
}
