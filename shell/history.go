package shell

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tfsh/tfsh/terraform"
)

// historyMax is how many entries the history file keeps.
const historyMax = 10000

// History is the prompt's persisted command history: one line per entry in
// a 0600 file, appended as commands are typed (O_APPEND, so several tfsh at
// once interleave whole lines), de-duplicated when read (a repeated line
// keeps only its latest place), secrets redacted before they are written.
type History struct {
	path string

	mu      sync.Mutex
	entries []string
}

// DefaultHistoryPath is $XDG_STATE_HOME/tfsh/history, else
// ~/.local/state/tfsh/history.
func DefaultHistoryPath() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tfsh", "history"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the history file: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tfsh", "history"), nil
}

// OpenHistory reads the history at path (creating nothing until the first
// Add). A file grown past historyMax entries is rewritten, de-duplicated.
func OpenHistory(path string) (*History, error) {
	h := &History{path: path}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	defer f.Close()
	var raw []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" {
			raw = append(raw, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	h.entries = dedupe(raw)
	if len(h.entries) > historyMax {
		h.entries = h.entries[len(h.entries)-historyMax:]
	}
	if len(raw) > historyMax {
		if err := h.rewrite(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// dedupe keeps the last occurrence of each line, in order.
func dedupe(lines []string) []string {
	last := make(map[string]int, len(lines))
	for i, l := range lines {
		last[l] = i
	}
	out := make([]string, 0, len(last))
	for i, l := range lines {
		if last[l] == i {
			out = append(out, l)
		}
	}
	return out
}

// Entries returns the history, oldest first.
func (h *History) Entries() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.entries...)
}

// HistoryLine is what history stores of a typed line: its arguments with
// -var values and secret -backend-config settings redacted, quoted back
// into one line, then the session's known secret values redacted. A line
// that cannot be split is not stored.
func HistoryLine(line string, redact func(string) string) (string, bool) {
	toks, err := Tokenize(line)
	if err != nil || len(toks) == 0 {
		return "", false
	}
	if k, _, ok := strings.Cut(toks[0], "="); ok && k != "" && !strings.HasPrefix(k, "-") {
		return "", false // NAME=value before a command (refused): the value may be a secret
	}
	toks = terraform.RedactArgs(toks)
	if redact != nil {
		for i := range toks { // before quoting, which would change how a secret is spelled
			toks[i] = redact(toks[i])
		}
	}
	return Quote(toks), true
}

// Add appends an already redacted line (see HistoryLine), unless it repeats
// the last entry.
func (h *History) Add(line string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if line == "" || len(h.entries) > 0 && h.entries[len(h.entries)-1] == line {
		return nil
	}
	for i, e := range h.entries {
		if e == line {
			h.entries = append(h.entries[:i], h.entries[i+1:]...)
			break
		}
	}
	h.entries = append(h.entries, line)
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		f.Chmod(0o600) // tighten a file created by something else
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("write history %s: %w", h.path, err)
	}
	return nil
}

// rewrite replaces the file with the entries, atomically.
func (h *History) rewrite() error {
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(h.entries, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("rewrite history: %w", err)
	}
	// A stale temporary file keeps its mode through WriteFile.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("rewrite history: %w", err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("rewrite history: %w", err)
	}
	return nil
}
