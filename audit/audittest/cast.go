package audittest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/tfsh/tfsh/audit"
)

// CastEvent is one event line of an asciicast v2 recording.
type CastEvent struct {
	Time float64
	Code string // "o" or "m"
	Text string
}

// ParseCast checks an asciicast v2 recording as a player reads it: every
// line is valid UTF-8 and parses as JSON; the first is a header of version
// 2 with a width, a height and a timestamp; every other line is an array
// of a number, "o" or "m", and a string; times never decrease.
func ParseCast(data []byte) (audit.CastHeader, []CastEvent, error) {
	var h audit.CastHeader
	var evs []CastEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	n := 0
	last := 0.0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if !utf8.Valid(line) {
			return h, nil, fmt.Errorf("line %d is not valid UTF-8: %q", n, line)
		}
		if n == 1 {
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(line, &raw); err != nil {
				return h, nil, fmt.Errorf("header: %v: %s", err, line)
			}
			for _, k := range []string{"version", "width", "height", "timestamp"} {
				if _, ok := raw[k]; !ok {
					return h, nil, fmt.Errorf("header has no %s: %s", k, line)
				}
			}
			if err := json.Unmarshal(line, &h); err != nil {
				return h, nil, fmt.Errorf("header: %v: %s", err, line)
			}
			if h.Version != 2 || h.Width <= 0 || h.Height <= 0 || h.Timestamp <= 0 {
				return h, nil, fmt.Errorf("header: version %d, %dx%d, timestamp %d: want version 2 and positive sizes and time", h.Version, h.Width, h.Height, h.Timestamp)
			}
			continue
		}
		var ev []json.RawMessage
		if err := json.Unmarshal(line, &ev); err != nil || len(ev) != 3 {
			return h, nil, fmt.Errorf("line %d is not a 3-element array (%v): %s", n, err, line)
		}
		var e CastEvent
		if err := json.Unmarshal(ev[0], &e.Time); err != nil {
			return h, nil, fmt.Errorf("line %d: time: %v: %s", n, err, line)
		}
		if err := json.Unmarshal(ev[1], &e.Code); err != nil || e.Code != "o" && e.Code != "m" {
			return h, nil, fmt.Errorf("line %d: code %s, want \"o\" or \"m\"", n, ev[1])
		}
		if err := json.Unmarshal(ev[2], &e.Text); err != nil {
			return h, nil, fmt.Errorf("line %d: data: %v: %s", n, err, line)
		}
		if e.Time < last || e.Time < 0 {
			return h, nil, fmt.Errorf("line %d: time %v after %v", n, e.Time, last)
		}
		last = e.Time
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return h, nil, err
	}
	if n == 0 {
		return h, nil, fmt.Errorf("empty recording")
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		return h, nil, fmt.Errorf("the last line has no newline")
	}
	return h, evs, nil
}

// CastText is the text of a recording's "o" events, concatenated.
func CastText(evs []CastEvent) string {
	var b bytes.Buffer
	for _, e := range evs {
		if e.Code == "o" {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}
