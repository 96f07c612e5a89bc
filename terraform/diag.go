package terraform

// This file is the one place tfsh parses terraform's human output: the state-lock diagnostics
// ("Error acquiring the state lock", "Error releasing the state lock"), the lock progress lines
// and the interrupt notices. Everything it matches was checked against the real binaries: the
// fixtures in testdata/diag are streams captured from terraform 1.5.7 and OpenTofu 1.10.10
// (diag_capture_test.go), and FuzzDiagScanner feeds it everything else.

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// DiagKind names what the scanner recognised in terraform's output.
type DiagKind string

// The kinds of LockDiag.
const (
	DiagLockError     DiagKind = "lock_error"     // "Error acquiring the state lock"
	DiagReleaseError  DiagKind = "release_error"  // "Error releasing the state lock"
	DiagAcquiring     DiagKind = "acquiring"      // "Acquiring state lock. This may take a few moments..." (or -json {"type":"state_lock_acquire"})
	DiagReleasing     DiagKind = "releasing"      // "Releasing state lock. ..." (or {"type":"state_lock_release"})
	DiagInterrupt     DiagKind = "interrupt"      // "Interrupt received."
	DiagTwoInterrupts DiagKind = "two_interrupts" // "Two interrupts received. Exiting immediately..."
)

// DiagLockInfo is the "Lock Info:" block as printed (strings as printed, trimmed).
type DiagLockInfo struct {
	ID, Path, Operation, Who, Version, Created, Info string
	// CreatedTime is parsed from Created (Go time.Time.String() layout,
	// "2006-01-02 15:04:05.999999999 -0700 MST"); zero if unparseable.
	CreatedTime time.Time
}

// LockDiag is one recognised diagnostic or progress line.
type LockDiag struct {
	Kind DiagKind
	// Message is, for lock and release errors, the "Error message:" text with wrapped lines
	// joined by single spaces and a "2 errors occurred:" bullet list joined with "; "
	// ("2 errors occurred: a; b"); "" otherwise.
	Message string
	Info    *DiagLockInfo // the Lock Info block; nil when absent
	JSON    bool          // came from a -json line on stdout
}

// maxDiagLine caps the bytes kept of one line; the rest of a longer line is dropped.
const maxDiagLine = 64 << 10

// afterMessageSlack is how many unrecognised lines a lock diagnostic waits through, after its
// Error message paragraph, for its Lock Info block or closing paragraph.
const afterMessageSlack = 32

// DiagScanner reads one output stream (stdout, stderr, or the merged pty stream) and calls emit
// for each LockDiag, in order, as soon as it is complete. It is an io.Writer that never fails
// and never blocks (beyond a concurrent Write or Close, or emit itself); memory is bounded (a
// line is kept up to 64 KiB, the rest of it dropped).
//
// It reads plain (-no-color) and coloured output (ANSI escape sequences and the diagnostic
// frame ╷ │ ╵ are ignored), LF and CRLF line ends, and -json lines. It matches whole lines
// only: a diagnostic counts when its header line is exactly "Error: Error acquiring the state
// lock" (or "... releasing ...") once colour and frame are removed, followed by a blank line
// and "Error message:"; in -json output only a "diagnostic" object with that summary counts.
//
// A DiagScanner is safe for concurrent use; emit is called with its lock held and must not
// call back into the scanner.
type DiagScanner struct {
	mu     sync.Mutex
	emit   func(LockDiag)
	line   []byte    // the line being read, at most maxDiagLine bytes
	over   bool      // the line being read was longer: the rest of it is dropped
	body   *diagBody // the human diagnostic being read; nil if none
	closed bool
}

// NewDiagScanner returns a scanner that calls emit for each LockDiag it reads.
func NewDiagScanner(emit func(LockDiag)) *DiagScanner {
	return &DiagScanner{emit: emit}
}

// Write scans p. It always returns len(p), nil. Writes after Close are ignored.
func (s *DiagScanner) Write(p []byte) (int, error) {
	n := len(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !s.over {
			if room := maxDiagLine - len(s.line); len(chunk) > room {
				s.line = append(s.line, chunk[:room]...)
				s.over = true
			} else {
				s.line = append(s.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		s.endLine()
		p = p[i+1:]
	}
	return n, nil
}

// Close scans a last line that had no newline, then emits a lock or release error still being
// read when the output ended, provided its "Error message:" line was seen. Later calls do
// nothing.
func (s *DiagScanner) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.line) > 0 || s.over {
		s.endLine()
	}
	s.flush()
	s.closed = true
	s.line = nil
}

func (s *DiagScanner) endLine() {
	line := s.line
	if s.over {
		line = trimPartialRune(line)
	}
	s.scanLine(line)
	s.line = s.line[:0]
	s.over = false
}

// trimPartialRune cuts a UTF-8 sequence that truncation left incomplete at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// flush ends the human diagnostic being read, emitting it if it got as far as its message.
func (s *DiagScanner) flush() {
	if b := s.body; b != nil {
		s.body = nil
		if b.confirmed {
			s.emit(b.diag())
		}
	}
}

func (s *DiagScanner) scanLine(raw []byte) {
	raw = bytes.TrimRight(raw, "\r")
	if ev, ok := parseJSONEvent(raw); ok {
		s.flush() // a -json event: no human diagnostic goes on past it
		if ev != nil {
			s.emit(*ev)
		}
		return
	}
	visible := stripEscapes(raw)
	var line string
	if s.body == nil {
		// Outside a diagnostic the line is only compared (a frame mark,
		// a header, a status line), never kept: read it in place rather
		// than copy every line of output (the copies were as much garbage
		// as the output itself). Inside one, feed may keep it.
		line = unsafe.String(unsafe.SliceData(visible), len(visible))
	} else {
		line = string(visible)
	}
	text, framed, mark := visibleLine(line)
	if mark != frameNone {
		s.flush() // ╷ begins the next diagnostic, ╵ ends this one
		return
	}
	if kind, ok := diagHeader(text); ok {
		s.flush()
		s.body = &diagBody{kind: kind, state: expectBlank}
		return
	}
	if s.body != nil {
		switch s.body.feed(text, framed) {
		case bodyMore:
			return
		case bodyDone:
			s.flush()
			return
		case bodyEnded:
			s.flush()
		case bodyNot:
			s.body = nil
		}
	}
	if !framed {
		if kind, ok := statusLine(text); ok {
			s.emit(LockDiag{Kind: kind})
		}
	}
}

type frameMark int

const (
	frameNone  frameMark = iota
	frameStart           // ╷
	frameEnd             // ╵
)

// visibleLine returns a line without escape sequences (stripEscapes) as a terminal shows it: without the
// left rule of a diagnostic frame ("│ "), telling whether it had one; a line that is only "╷"
// or "╵" is reported as a mark.
func visibleLine(line string) (text string, framed bool, mark frameMark) {
	text = strings.TrimRight(line, "\r")
	switch strings.TrimRight(text, " ") {
	case "╷":
		return "", false, frameStart
	case "╵":
		return "", false, frameEnd
	}
	if rest, ok := strings.CutPrefix(text, "│"); ok {
		return strings.TrimPrefix(rest, " "), true, frameNone
	}
	return text, false, frameNone
}

// stripEscapes removes ECMA-48 escape sequences from one line: CSI (ESC [ parameters
// intermediates final), OSC (ESC ] ... up to BEL or ESC \; any other ESC ends it), and
// two-byte or nF sequences (ESC, intermediates 0x20-0x2F, a final 0x30-0x7E). A sequence cut
// short by the end of the line is dropped; a byte that cannot continue one is kept.
func stripEscapes(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	in := func(i int, lo, hi byte) bool { return i < len(b) && b[i] >= lo && b[i] <= hi }
	for i := 0; i < len(b); {
		if b[i] != 0x1b {
			out = append(out, b[i])
			i++
			continue
		}
		i++
		switch {
		case i < len(b) && b[i] == '[':
			i++
			for in(i, 0x30, 0x3f) {
				i++
			}
			for in(i, 0x20, 0x2f) {
				i++
			}
			if in(i, 0x40, 0x7e) {
				i++
			}
		case i < len(b) && b[i] == ']':
			i++
			for i < len(b) && b[i] != 0x07 && b[i] != 0x1b {
				i++
			}
			if i < len(b) && b[i] == 0x07 {
				i++
			} else if i+1 < len(b) && b[i] == 0x1b && b[i+1] == '\\' {
				i += 2
			}
		default:
			for in(i, 0x20, 0x2f) {
				i++
			}
			if in(i, 0x30, 0x7e) {
				i++
			}
		}
	}
	return out
}

const (
	summaryLockError    = "Error acquiring the state lock"
	summaryReleaseError = "Error releasing the state lock"
	acquiringLine       = "Acquiring state lock. This may take a few moments..."
	releasingLine       = "Releasing state lock. This may take a few moments..."
	interruptLine       = "Interrupt received."
	twoInterruptsLine   = "Two interrupts received."
	twoInterruptsRest   = " Exiting immediately. Note that data loss may have occurred."
)

// diagHeader recognises the first line of a lock or release error diagnostic.
func diagHeader(text string) (DiagKind, bool) {
	switch strings.TrimRight(text, " \t") {
	case "Error: " + summaryLockError:
		return DiagLockError, true
	case "Error: " + summaryReleaseError:
		return DiagReleaseError, true
	}
	return "", false
}

// statusLine recognises the one-line notices: the lock progress lines and the interrupt
// notices. terraform word-wraps the two-interrupts notice to the terminal, so any line made of
// its start and a prefix of the rest counts.
func statusLine(text string) (DiagKind, bool) {
	t := strings.TrimRight(text, " \t")
	switch t {
	case acquiringLine:
		return DiagAcquiring, true
	case releasingLine:
		return DiagReleasing, true
	case interruptLine:
		return DiagInterrupt, true
	}
	if rest, ok := strings.CutPrefix(t, twoInterruptsLine); ok && strings.HasPrefix(twoInterruptsRest, rest) {
		return DiagTwoInterrupts, true
	}
	return "", false
}

// isClosingParagraph recognises the first line of the paragraph terraform ends both lock
// diagnostics with ("Terraform acquires a state lock to protect...", "OpenTofu acquires a
// lock when accessing your state...").
func isClosingParagraph(text string) bool {
	return strings.HasPrefix(text, "Terraform acquires a ") || strings.HasPrefix(text, "OpenTofu acquires a ")
}

type bodyState int

const (
	expectBlank   bodyState = iota // after the header
	expectMessage                  // after the blank line under the header
	inMessage                      // reading the Error message paragraph
	afterMessage                   // past it, waiting for Lock Info or the closing paragraph
	inLockInfo                     // reading the Lock Info block
)

type feedResult int

const (
	bodyMore  feedResult = iota // line consumed, diagnostic goes on
	bodyDone                    // line consumed, diagnostic complete
	bodyEnded                   // diagnostic complete before this line, which is not part of it
	bodyNot                     // not a diagnostic after all; the line is not part of it
)

// diagBody reads the lines of one lock or release error after its header line.
type diagBody struct {
	kind      DiagKind
	state     bodyState
	json      bool // from a -json detail: no header or blank line to check
	confirmed bool // the Error message line was seen
	head      string
	bullets   []string
	info      *DiagLockInfo
	slack     int // unrecognised lines seen after the message
}

func (b *diagBody) feed(text string, framed bool) feedResult {
	blank := strings.TrimSpace(text) == ""
	switch b.state {
	case expectBlank:
		if !blank {
			return bodyNot
		}
		b.state = expectMessage
		return bodyMore
	case expectMessage:
		if rest, ok := strings.CutPrefix(text, "Error message:"); ok {
			b.head = strings.TrimSpace(rest)
		} else if !b.json {
			return bodyNot
		} else if blank {
			return bodyMore
		} else {
			b.head = strings.TrimSpace(text)
		}
		b.confirmed = true
		b.state = inMessage
		return bodyMore
	case inMessage:
		switch {
		case blank:
			b.state = afterMessage
		case strings.TrimSpace(text) == "Lock Info:":
			b.info, b.state = &DiagLockInfo{}, inLockInfo
		case isClosingParagraph(text):
			return bodyDone
		default:
			b.addMessageLine(text)
		}
		return bodyMore
	case afterMessage:
		switch {
		case blank:
			return bodyMore
		case strings.TrimSpace(text) == "Lock Info:":
			b.info, b.state = &DiagLockInfo{}, inLockInfo
			return bodyMore
		case isClosingParagraph(text):
			return bodyDone
		}
		if _, status := statusLine(text); status && !framed {
			return bodyEnded
		}
		if b.slack++; b.slack > afterMessageSlack {
			return bodyEnded
		}
		return bodyMore
	case inLockInfo:
		key, value, ok := strings.Cut(strings.TrimSpace(text), ":")
		if !ok || !b.info.set(key, strings.TrimSpace(value)) {
			return bodyEnded
		}
		if key == "Info" { // the last line of the block
			return bodyDone
		}
		return bodyMore
	}
	return bodyNot
}

// addMessageLine adds one line of the Error message paragraph: a continuation of a wrapped
// line, or an item of a "2 errors occurred:" list ("\t* ..."), itself possibly wrapped.
func (b *diagBody) addMessageLine(text string) {
	t := strings.TrimSpace(text)
	indented := text != "" && (text[0] == ' ' || text[0] == '\t')
	if item, ok := strings.CutPrefix(t, "* "); ok && indented {
		b.bullets = append(b.bullets, strings.TrimSpace(item))
		return
	}
	if n := len(b.bullets); n > 0 {
		b.bullets[n-1] = joinSpace(b.bullets[n-1], t)
		return
	}
	b.head = joinSpace(b.head, t)
}

func joinSpace(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

func (b *diagBody) diag() LockDiag {
	msg := b.head
	if len(b.bullets) > 0 {
		msg = joinSpace(msg, strings.Join(b.bullets, "; "))
	}
	return LockDiag{Kind: b.kind, Message: msg, Info: b.info, JSON: b.json}
}

// set records one "  Key:   value" line of the Lock Info block, reporting whether key is one
// of its fields.
func (li *DiagLockInfo) set(key, value string) bool {
	switch key {
	case "ID":
		li.ID = value
	case "Path":
		li.Path = value
	case "Operation":
		li.Operation = value
	case "Who":
		li.Who = value
	case "Version":
		li.Version = value
	case "Created":
		li.Created = value
		li.CreatedTime = parseCreated(value)
	case "Info":
		li.Info = value
	default:
		return false
	}
	return true
}

// parseCreated parses time.Time.String() output, dropping a monotonic clock reading
// (" m=+1.5") if one was printed.
func parseCreated(s string) time.Time {
	if i := strings.Index(s, " m="); i >= 0 {
		s = s[:i]
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// jsonEvent is the part of a -json output line the scanner reads. The names are those
// terraform 1.5.7 and OpenTofu 1.10.10 print.
type jsonEvent struct {
	Type       string `json:"type"`
	Message    string `json:"@message"`
	Diagnostic *struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
	} `json:"diagnostic"`
}

// parseJSONEvent reads a -json line. ok is false if line is not a JSON object with a "type";
// ev is nil for an event that is none of the scanner's.
func parseJSONEvent(line []byte) (ev *LockDiag, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"type"`)) {
		return nil, false
	}
	var e jsonEvent
	if json.Unmarshal(line, &e) != nil || e.Type == "" {
		return nil, false
	}
	switch e.Type {
	case "state_lock_acquire":
		return &LockDiag{Kind: DiagAcquiring, JSON: true}, true
	case "state_lock_release":
		return &LockDiag{Kind: DiagReleasing, JSON: true}, true
	case "log":
		// "\nInterrupt received.\nPlease wait for ...": the notice is the first line.
		first, _, _ := strings.Cut(strings.TrimSpace(e.Message), "\n")
		if kind, ok := statusLine(first); ok && (kind == DiagInterrupt || kind == DiagTwoInterrupts) {
			return &LockDiag{Kind: kind, JSON: true}, true
		}
	case "diagnostic":
		d := e.Diagnostic
		if d == nil || d.Severity != "error" {
			break
		}
		var kind DiagKind
		switch d.Summary {
		case summaryLockError:
			kind = DiagLockError
		case summaryReleaseError:
			kind = DiagReleaseError
		default:
			return nil, true
		}
		b := &diagBody{kind: kind, state: expectMessage, json: true}
		for _, l := range strings.Split(d.Detail, "\n") {
			text := strings.TrimRight(string(stripEscapes([]byte(l))), "\r")
			if r := b.feed(text, false); r != bodyMore {
				break
			}
		}
		diag := b.diag()
		return &diag, true
	}
	return nil, true
}
