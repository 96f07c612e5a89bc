package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CastHeader is the first line of an asciicast v2 recording.
type CastHeader struct {
	Version   int               `json:"version"` // always 2
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"` // Unix seconds of the start
	Command   string            `json:"command,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"` // TERM, SHELL
}

// CastWriter encodes an asciicast v2 recording: the header line, then one
// JSON array per line, [time, "o", text] for output, [time, "m", label]
// for markers and [time, "r", "COLSxROWS"] for resizes, time in seconds
// from the start.
//
// Every line is valid JSON of valid UTF-8, whatever the recorded bytes:
// a character split across two frames of one stream is carried over and
// written whole with the next frame of that stream; bytes that are not
// UTF-8 become U+FFFD. Times never decrease: an event given an earlier
// time than the one before takes that one's time. The writer holds at
// most a few bytes per stream between calls.
type CastWriter struct {
	w       *bufio.Writer
	last    time.Duration
	carry   map[Stream][]byte // the start of a character split across frames
	afterCR map[Stream]bool   // the stream's last byte was CR
	line    []byte
	err     error
}

// NewCastWriter writes the header and returns the writer; Close flushes
// what is buffered.
func NewCastWriter(w io.Writer, h CastHeader) (*CastWriter, error) {
	h.Version = 2
	c := &CastWriter{w: bufio.NewWriterSize(w, 64<<10), carry: map[Stream][]byte{}, afterCR: map[Stream]bool{}}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("write asciicast header: %w", err)
	}
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("write asciicast header: %w", err)
	}
	return c, nil
}

// Output writes data shown at t. s keys the carrying of split characters,
// and says how lines end: a TTY frame is written as it is (the pty already
// turned LF into CR LF), any other stream (pipes, tfsh's own lines, which
// a terminal showed with its LF-to-CR-LF translation) gets CR before each
// LF that has none.
func (c *CastWriter) Output(t time.Duration, s Stream, data []byte) error {
	if c.err != nil || len(data) == 0 {
		return c.err
	}
	buf := data
	if carried := c.carry[s]; len(carried) > 0 {
		buf = append(carried, data...)
	}
	// Keep an incomplete character at the end for the next frame.
	keep := 0
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				keep = len(buf) - i
			}
			break
		}
	}
	out := buf[:len(buf)-keep]
	c.carry[s] = append(c.carry[s][:0:0], buf[len(buf)-keep:]...)
	if len(c.carry[s]) == 0 {
		delete(c.carry, s)
	}
	return c.output(t, s, out)
}

func (c *CastWriter) output(t time.Duration, s Stream, out []byte) error {
	if len(out) == 0 {
		return nil
	}
	text := validUTF8(out)
	if s != TTY && len(text) > 0 {
		if bytes.IndexByte(text, '\n') >= 0 {
			var b []byte
			cr := c.afterCR[s]
			for _, ch := range text {
				if ch == '\n' && !cr {
					b = append(b, '\r')
				}
				b = append(b, ch)
				cr = ch == '\r'
			}
			text = b
		}
		c.afterCR[s] = text[len(text)-1] == '\r'
	}
	return c.event(t, "o", text)
}

// EndStreams writes, at t, what is carried over of each stream as U+FFFD:
// the stream ended in the middle of a character. Call it when the frames
// that follow belong to other streams (the next command).
func (c *CastWriter) EndStreams(t time.Duration) error {
	for _, s := range slices.Sorted(maps.Keys(c.carry)) {
		b := c.carry[s]
		delete(c.carry, s)
		if err := c.output(t, s, b); err != nil {
			return err
		}
	}
	clear(c.afterCR)
	return c.err
}

// Marker writes a marker (a point a viewer can jump to) with a label.
func (c *CastWriter) Marker(t time.Duration, label string) error {
	return c.event(t, "m", validUTF8([]byte(label)))
}

// Resize writes [time, "r", "COLSxROWS"]: the terminal changed size. A
// size not of that form is not written.
func (c *CastWriter) Resize(t time.Duration, size string) error {
	cols, rows, ok := strings.Cut(size, "x")
	if a, err := strconv.Atoi(cols); !ok || err != nil || a <= 0 {
		return nil
	}
	if b, err := strconv.Atoi(rows); err != nil || b <= 0 {
		return nil
	}
	return c.event(t, "r", []byte(size))
}

// validUTF8 returns b with every byte that is not UTF-8 replaced by U+FFFD
// (b itself when it is valid).
func validUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// Close writes what is carried over and flushes; it does not close the
// underlying writer.
func (c *CastWriter) Close() error {
	if err := c.EndStreams(c.last); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write asciicast: %w", err)
	}
	return nil
}

// event writes one event line; text must be valid UTF-8.
func (c *CastWriter) event(t time.Duration, code string, text []byte) error {
	if c.err != nil {
		return c.err
	}
	t = max(t, c.last)
	c.last = t
	l := c.line[:0]
	l = append(l, '[')
	l = strconv.AppendFloat(l, t.Seconds(), 'f', 6, 64)
	l = append(l, ", \""...)
	l = append(l, code...)
	l = append(l, "\", "...)
	l = appendJSONString(l, text)
	l = append(l, "]\n"...)
	c.line = l
	if _, err := c.w.Write(l); err != nil {
		c.err = fmt.Errorf("write asciicast: %w", err)
	}
	return c.err
}

// appendJSONString appends s, valid UTF-8, as a JSON string: what JSON
// requires escaped (quote, backslash, control characters) is, the rest is
// copied. encoding/json would copy the text three times more; a long
// session's output goes through here.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, ch := range s {
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch == '\n':
			b = append(b, '\\', 'n')
		case ch == '\r':
			b = append(b, '\\', 'r')
		case ch == '\t':
			b = append(b, '\\', 't')
		case ch < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}
