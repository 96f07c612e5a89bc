package audit

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
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
	// Resize is a change of the size of the terminal a command ran on (a
	// pty), as "COLSxROWS"; the size it started with is command_start's
	// term.
	Resize Stream = 5
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
	case Resize:
		return "resize"
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
// chunkQueue chunks are waiting. Call End to flush. After Withhold, the
// writer only counts bytes.
func (c *Command) Output(s Stream) io.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.withheld != "" {
		return &c.withheldBytes
	}
	if c.out == nil {
		c.out = newOutputRecorder(c)
	}
	w := &streamWriter{rec: c.out, stream: s, red: streamRedactor{r: c.red}}
	c.out.mu.Lock()
	c.out.writers = append(c.out.writers, w)
	c.out.mu.Unlock()
	return w
}

// Withhold stops the command's output from being stored, for a reason
// recorded in command_end (output that shows values from state, debug logs
// that carry credentials). Only its length is recorded. Call it before
// Output.
func (c *Command) Withhold(reason string) {
	c.mu.Lock()
	c.withheld = reason
	c.mu.Unlock()
}

// byteCounter counts what is written to it.
type byteCounter struct{ n atomic.Int64 }

func (b *byteCounter) Write(p []byte) (int, error) {
	b.n.Add(int64(len(p)))
	return len(p), nil
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
	notes   bool // only tfsh's own notes
}

type outputRecorder struct {
	c       *Command
	mu      sync.Mutex // guards everything below but err
	writers []*streamWriter
	buf     bytes.Buffer
	bufAt   time.Time
	// bufOther: buf holds more than tfsh's notes.
	bufOther bool
	startNS  int64
	seq      int
	total    int64
	digest   hash.Hash
	closed   bool
	sending  sync.WaitGroup // chunks cut but not yet queued
	queue    chan chunk
	warm     chan struct{} // closed when the compressor is worth making now
	warmed   sync.Once
	free     chan []byte // stored chunks' buffers, for the next chunks
	stop     chan struct{}
	done     chan struct{}

	errMu sync.Mutex
	err   error // first storage error
}

func newOutputRecorder(c *Command) *outputRecorder {
	r := &outputRecorder{c: c, digest: sha256.New(), queue: make(chan chunk, chunkQueue), warm: make(chan struct{}),
		free: make(chan []byte, chunkQueue+1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.store()
	go r.age()
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
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.buf.Len() == 0 {
		r.bufAt = now
		r.startNS = int64(off)
	}
	r.buf.Write(hdr[:n])
	r.buf.Write(data)
	r.total += int64(len(data))
	if s != Note {
		r.bufOther = true
		r.warmUp()
	}
	var ch *chunk
	if r.buf.Len() >= chunkMaxBytes || now.Sub(r.bufAt) >= chunkMaxAge {
		ch = r.cutLocked()
	}
	r.mu.Unlock()
	r.send(ch)
}

// age stores a quiet buffer once it is chunkMaxAge old, so that output is
// on disk within about a second even when nothing more is written (tfsh may
// be killed during a long silent apply).
func (r *outputRecorder) age() {
	t := time.NewTicker(chunkMaxAge / 4)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.mu.Lock()
			var ch *chunk
			if !r.closed && r.buf.Len() > 0 && r.c.s.db.Now().Sub(r.bufAt) >= chunkMaxAge {
				ch = r.cutLocked()
			}
			r.mu.Unlock()
			r.send(ch)
		}
	}
}

// cutLocked takes the current buffer as the next chunk. The digest is
// written here, under the lock, so it follows chunk order; the chunk itself
// is queued by send, outside the lock (a full queue must not stop writers).
// The buffer goes with the chunk, and the next one starts in a stored
// chunk's buffer when there is one: copying each chunk made as much garbage
// as the output itself.
func (r *outputRecorder) cutLocked() *chunk {
	if r.buf.Len() == 0 {
		return nil
	}
	raw := r.buf.Bytes()
	var next []byte
	select {
	case next = <-r.free:
	default:
		next = make([]byte, 0, chunkMaxBytes+4<<10)
	}
	r.buf = *bytes.NewBuffer(next[:0])
	r.digest.Write(raw)
	ch := &chunk{seq: r.seq, startNS: r.startNS, raw: raw, notes: !r.bufOther}
	r.bufOther = false
	r.seq++
	r.sending.Add(1)
	return ch
}

func (r *outputRecorder) send(ch *chunk) {
	if ch == nil {
		return
	}
	r.queue <- *ch
	r.sending.Done()
}

// warmUp has the compressor made now, in the background, when terraform's
// output starts: its chunks are compressed, and the time after terraform
// exits, when the last one is stored, is what the user waits for.
func (r *outputRecorder) warmUp() {
	r.warmed.Do(func() { close(r.warm) })
}

func (r *outputRecorder) store() {
	defer close(r.done)
	var z chunkCompressor
	warm := r.warm
	for {
		var ch chunk
		select {
		case <-warm:
			// Made while the command runs rather than after it, when the
			// last chunk is stored: making one costs about 1 ms (its
			// tables are freshly mapped memory), and the time after
			// terraform exits is what the user waits for.
			warm = nil
			z.init()
			continue
		case c, ok := <-r.queue:
			if !ok {
				return
			}
			ch = c
		}
		if err := r.c.s.db.storeChunk(r.c.ID, ch, &z); err != nil {
			r.errMu.Lock()
			if r.err == nil {
				r.err = err
			}
			r.errMu.Unlock()
		}
		select {
		case r.free <- ch.raw:
		default:
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
	if r.closed {
		r.mu.Unlock()
		<-r.done
	} else {
		r.closed = true
		ch := r.cutLocked()
		r.mu.Unlock()
		close(r.stop)
		r.send(ch)
		r.sending.Wait()
		close(r.queue)
		<-r.done
	}
	r.mu.Lock()
	sum, total, seq := hex.EncodeToString(r.digest.Sum(nil)), r.total, r.seq
	r.mu.Unlock()
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return sum, total, seq, r.err
}

// chunkCompressor deflates one command's chunks, one after the other, with
// one compressor. A new flate writer allocates about 1 MB of tables;
// after a command's output, that was on the path of every command's end
// (0.4 ms before compressing a byte), and a stream of output made one per
// 64 KiB chunk. BestSpeed: on terraform's output it is about ten times
// faster than the default level for 4 % more bytes.
//
// The writer is made only for terraform's output (warmUp, when it starts).
// A chunk of tfsh's own notes alone, up to storedMax, is one stored
// deflate block: a refused command then allocates no tables at all, which
// was about 1 ms of CPU and a garbage collection in every refusal.
type chunkCompressor struct {
	buf bytes.Buffer
	w   *flate.Writer
}

// storedMax is the largest chunk of notes stored without compression: a
// few of tfsh's lines, where deflate saves a few hundred bytes.
const storedMax = 4 << 10

func (z *chunkCompressor) init() {
	if z.w == nil {
		z.w, _ = flate.NewWriter(&z.buf, flate.BestSpeed)
	}
}

func (z *chunkCompressor) compress(raw []byte, notes bool) ([]byte, error) {
	z.buf.Reset()
	if notes && len(raw) <= storedMax {
		// RFC 1951 §3.2.4: BFINAL=1 and BTYPE=00 in the first byte, then
		// LEN and its complement NLEN, little-endian, then the bytes.
		n := uint16(len(raw))
		z.buf.Write([]byte{1, byte(n), byte(n >> 8), ^byte(n), ^byte(n >> 8)})
		z.buf.Write(raw)
		return z.buf.Bytes(), nil
	}
	z.init()
	z.w.Reset(&z.buf)
	z.w.Write(raw)
	if err := z.w.Close(); err != nil {
		return nil, err
	}
	return z.buf.Bytes(), nil
}

func (d *DB) storeChunk(commandID string, ch chunk, z *chunkCompressor) error {
	frames, err := z.compress(ch.raw, ch.notes)
	if err != nil {
		return err
	}
	// Chunks are not part of the chain themselves; they must outlive a
	// cancelled command context, so they use their own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = d.db.ExecContext(ctx, `INSERT INTO output_chunks (command_id, seq, start_ns, raw_len, frames) VALUES (?, ?, ?, ?, ?)`,
		commandID, ch.seq, ch.startNS, len(ch.raw), frames)
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
func (d *DB) OutputDigest(ctx context.Context, commandID string) (string, int64, int, error) {
	return outputDigest(ctx, d.db, commandID)
}

func outputDigest(ctx context.Context, q querier, commandID string) (string, int64, int, error) {
	h := sha256.New()
	var n int64
	chunks := 0
	err := readChunks(ctx, q, commandID, func(raw []byte) error {
		chunks++
		h.Write(raw)
		return decodeFrames(raw, func(f Frame) error { n += int64(len(f.Data)); return nil })
	})
	return hex.EncodeToString(h.Sum(nil)), n, chunks, err
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (d *DB) chunks(ctx context.Context, commandID string, fn func(raw []byte) error) error {
	return readChunks(ctx, d.db, commandID, fn)
}

func readChunks(ctx context.Context, q querier, commandID string, fn func(raw []byte) error) error {
	rows, err := q.QueryContext(ctx, `SELECT seq, raw_len, frames FROM output_chunks WHERE command_id = ? ORDER BY seq`, commandID)
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
		raw, err := inflateChunk(commandID, seq, rawLen, z)
		if err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	return rows.Err()
}

// inflateChunk decompresses a stored chunk and checks its length.
func inflateChunk(commandID string, seq, rawLen int, z []byte) ([]byte, error) {
	var in inflater
	return in.chunk(commandID, seq, rawLen, z)
}

// inflater decompresses chunks one after the other into one buffer, with
// one decompressor: what it returns is valid until the next chunk.
type inflater struct {
	fr  io.ReadCloser
	buf bytes.Buffer
	z   bytes.Reader
}

func (in *inflater) chunk(commandID string, seq, rawLen int, z []byte) ([]byte, error) {
	in.z.Reset(z)
	if in.fr == nil {
		in.fr = flate.NewReader(&in.z)
	} else if err := in.fr.(flate.Resetter).Reset(&in.z, nil); err != nil {
		return nil, fmt.Errorf("output chunk %d of %s: %w", seq, commandID, err)
	}
	// Sized from the header (within reason: the header could be wrong),
	// so that reading a chunk does not grow the buffer over and over.
	in.buf.Reset()
	in.buf.Grow(min(max(rawLen, 0), 16<<20) + bytes.MinRead)
	if _, err := in.buf.ReadFrom(io.LimitReader(in.fr, int64(rawLen)+1)); err != nil {
		return nil, fmt.Errorf("output chunk %d of %s: %w", seq, commandID, err)
	}
	raw := in.buf.Bytes()
	if len(raw) != rawLen {
		return nil, fmt.Errorf("output chunk %d of %s: %d bytes, header says %d", seq, commandID, len(raw), rawLen)
	}
	return raw, nil
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
