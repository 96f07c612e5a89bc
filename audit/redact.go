package audit

import (
	"bytes"
	"encoding/json"
	"sort"
)

// Redacted replaces every secret value before anything is stored.
const Redacted = "[redacted]"

// MinSecretLen is the shortest value redacted from free text (output and
// event data). Shorter values would blank out ordinary words; they are still
// redacted structurally wherever tfsh knows a value is secret (argv, env).
const MinSecretLen = 4

// Redactor replaces known secret values with [redacted]. The zero value and
// a nil *Redactor redact nothing. A Redactor is immutable once built.
type Redactor struct {
	secrets [][]byte // longest first, so a secret containing another wins
	maxLen  int
}

// NewRedactor returns a redactor for the given secret values. Values shorter
// than MinSecretLen are ignored. JSON-escaped forms are added so that a
// secret inside JSON that terraform prints (-json output) is caught too.
func NewRedactor(secrets ...string) *Redactor {
	return (*Redactor)(nil).With(secrets...)
}

// With returns a redactor for r's secrets plus more.
func (r *Redactor) With(more ...string) *Redactor {
	seen := map[string]bool{}
	var list []string
	add := func(s string) {
		if len(s) < MinSecretLen || seen[s] {
			return
		}
		seen[s] = true
		list = append(list, s)
	}
	if r != nil {
		for _, s := range r.secrets {
			add(string(s))
		}
	}
	for _, s := range more {
		add(s)
		if b, err := json.Marshal(s); err == nil {
			add(string(b[1 : len(b)-1]))
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	out := &Redactor{}
	for _, s := range list {
		out.secrets = append(out.secrets, []byte(s))
		if len(s) > out.maxLen {
			out.maxLen = len(s)
		}
	}
	return out
}

// Empty reports whether r redacts nothing.
func (r *Redactor) Empty() bool { return r == nil || len(r.secrets) == 0 }

// Bytes returns b with every secret replaced. It does not modify b.
func (r *Redactor) Bytes(b []byte) []byte {
	if r.Empty() {
		return b
	}
	out, rest := r.scan(b, true)
	return append(out, rest...)
}

// String is Bytes for strings.
func (r *Redactor) String(s string) string {
	if r.Empty() || s == "" {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// JSON redacts the string values of an encoded JSON document and encodes
// it again, so the result is always valid JSON whatever the secrets contain.
// Keys are never changed, nor the values of structural fields (status,
// kind, exit codes, ...): a -var value that happens to equal "deny" or
// "status" must not rewrite the record. Numbers keep their exact text.
func (r *Redactor) JSON(b []byte) []byte {
	if r.Empty() {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		// Not JSON after all: redact it as text rather than store it raw.
		return r.Bytes(b)
	}
	out, err := json.Marshal(r.walk(v, ""))
	if err != nil {
		return r.Bytes(b)
	}
	return out
}

// structuralKeys name fields whose values tfsh itself chose from a fixed
// set or computed; they carry no user text and are never redacted.
var structuralKeys = map[string]bool{
	"status": true, "action": true, "mode": true, "kind": true, "locks": true,
	"stream": true, "source": true, "rule": true, "subcommand": true,
	"terraform_name": true, "terraform_version": true, "tfsh_version": true,
	"output_sha256": true, "output_withheld": true, "signal": true, "pid_start": true, "pidns": true,
	"detected_by": true, "open_commands": true, "lock_from": true, "backend": true,
}

func (r *Redactor) walk(v any, key string) any {
	switch t := v.(type) {
	case string:
		if structuralKeys[key] {
			return t
		}
		return r.String(t)
	case []any:
		for i := range t {
			t[i] = r.walk(t[i], key)
		}
		return t
	case map[string]any:
		for k, x := range t {
			t[k] = r.walk(x, k)
		}
		return t
	default:
		return v
	}
}

// scan replaces secrets in b. With final=false it keeps back the last
// maxLen-1 bytes that could be the start of a secret split across writes.
func (r *Redactor) scan(b []byte, final bool) (out, rest []byte) {
	i := 0
	for i < len(b) {
		at, n := r.next(b[i:])
		if at < 0 {
			break
		}
		out = append(out, b[i:i+at]...)
		out = append(out, Redacted...)
		i += at + n
	}
	tail := b[i:]
	if final {
		return out, tail
	}
	keep := r.partial(tail)
	out = append(out, tail[:len(tail)-keep]...)
	return out, append([]byte(nil), tail[len(tail)-keep:]...)
}

// partial returns the length of the longest suffix of b that is a proper
// prefix of some secret: the only bytes that must wait for the next write.
// Holding back less keeps output in order and loses less on a crash.
func (r *Redactor) partial(b []byte) int {
	keep := 0
	for _, s := range r.secrets {
		for k := min(len(s)-1, len(b)); k > keep; k-- {
			if bytes.Equal(b[len(b)-k:], s[:k]) {
				keep = k
				break
			}
		}
	}
	return keep
}

// next finds the earliest secret in b (the longest at that position).
func (r *Redactor) next(b []byte) (at, n int) {
	at = -1
	for _, s := range r.secrets {
		j := bytes.Index(b, s)
		if j >= 0 && (at < 0 || j < at || (j == at && len(s) > n)) {
			at, n = j, len(s)
		}
	}
	return at, n
}

// streamRedactor redacts a byte stream whose secrets may be split between
// writes. Flush must be called at the end.
type streamRedactor struct {
	r       *Redactor
	pending []byte
}

// push returns the bytes that are safe to store now.
func (s *streamRedactor) push(p []byte) []byte {
	if s.r.Empty() {
		return p
	}
	buf := append(s.pending, p...)
	out, rest := s.r.scan(buf, false)
	s.pending = rest
	return out
}

// flush returns what was held back, redacted.
func (s *streamRedactor) flush() []byte {
	if len(s.pending) == 0 {
		return nil
	}
	out, rest := s.r.scan(s.pending, true)
	s.pending = nil
	return append(out, rest...)
}
