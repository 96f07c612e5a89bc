package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
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

// Strings redacts each element of a copy of ss.
func (r *Redactor) Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.String(s)
	}
	return out
}

// JSON redacts an encoded JSON document by redacting every string in it
// (keys included) and encoding it again, so the result is always valid JSON
// whatever the secrets contain. Numbers keep their exact text.
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
	out, err := json.Marshal(r.walk(v))
	if err != nil {
		return r.Bytes(b)
	}
	return out
}

func (r *Redactor) walk(v any) any {
	switch t := v.(type) {
	case string:
		return r.String(t)
	case []any:
		for i := range t {
			t[i] = r.walk(t[i])
		}
		return t
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[r.String(k)] = r.walk(x)
		}
		return m
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
	keep := r.maxLen - 1
	if keep > len(tail) {
		keep = len(tail)
	}
	out = append(out, tail[:len(tail)-keep]...)
	return out, append([]byte(nil), tail[len(tail)-keep:]...)
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

// RedactWriter returns a writer that redacts into w; Close flushes what it
// held back (it does not close w).
func (r *Redactor) RedactWriter(w io.Writer) io.WriteCloser {
	return &redactWriter{w: w, s: streamRedactor{r: r}}
}

type redactWriter struct {
	w io.Writer
	s streamRedactor
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	if _, err := rw.w.Write(rw.s.push(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (rw *redactWriter) Close() error {
	_, err := rw.w.Write(rw.s.flush())
	return err
}

// SecretEnvValues returns the values of environment entries ("K=V") that
// are secret by name: TF_VAR_*, cloud credentials and tokens.
func SecretEnvValues(env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && v != "" && SecretEnvName(k) {
			out = append(out, v)
		}
	}
	return out
}

// SecretEnvName reports whether an environment variable holds a secret by
// its name alone.
func SecretEnvName(k string) bool {
	u := strings.ToUpper(k)
	if strings.HasPrefix(u, "TF_VAR_") || strings.HasPrefix(u, "TF_TOKEN_") {
		return true
	}
	switch u {
	case "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
		"ARM_CLIENT_SECRET", "ARM_ACCESS_KEY", "ARM_SAS_TOKEN", "ARM_CLIENT_CERTIFICATE_PASSWORD",
		"GOOGLE_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "CONSUL_HTTP_TOKEN", "VAULT_TOKEN",
		"PG_CONN_STR", "TF_HTTP_PASSWORD", "TF_HTTP_LOCK_PASSWORD", "KUBE_TOKEN", "GITHUB_TOKEN",
		"ALICLOUD_SECRET_KEY", "TENCENTCLOUD_SECRET_KEY":
		return true
	}
	for _, frag := range []string{"SECRET", "PASSWORD", "PASSWD", "TOKEN", "PRIVATE_KEY", "CREDENTIAL"} {
		if strings.Contains(u, frag) {
			return true
		}
	}
	return false
}
