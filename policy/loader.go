package policy

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// Loader finds and loads the policy in effect for a directory, and keeps
// it until one of its files changes: a session reads the policy before
// every command, so an edit takes effect at the next command, at the cost
// of a few stat calls.
type Loader struct {
	// Base is the directory paths are shown relative to.
	Base   string
	Getenv func(string) string

	mu    sync.Mutex
	key   string
	cache *Loaded
}

// Loaded is a policy and what it was loaded from.
type Loaded struct {
	Policy  *Policy
	Sources []Source
	Files   Files
	Diags   hcl.Diagnostics
}

// Err returns the loading problems as one error whose message is the
// rendered diagnostics, or nil when the policy can be used.
func (l *Loaded) Err() error {
	if !l.Diags.HasErrors() {
		return nil
	}
	return &InvalidError{Files: l.Files, Diags: l.Diags}
}

// InvalidError is a policy that cannot be used: tfsh runs nothing rather
// than run unguarded.
type InvalidError struct {
	Files Files
	Diags hcl.Diagnostics
}

func (e *InvalidError) Error() string {
	var b bytes.Buffer
	n := 0
	for _, d := range e.Diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	fmt.Fprintf(&b, "the policy is invalid (%d %s), so tfsh runs nothing:\n\n", n, plural(n, "problem", "problems"))
	WriteDiagnostics(&b, e.Files, e.Diags)
	return strings.TrimRight(b.String(), "\n")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// For returns the policy in effect for commands run in dir. A file that
// cannot be found or read, or an invalid file, is in the result's Diags or
// the error; the caller must not run anything then.
func (l *Loader) For(dir string) (*Loaded, error) {
	getenv := l.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	sources, err := Find(dir, l.Base, getenv)
	if err != nil {
		return nil, err
	}
	var key strings.Builder
	for _, s := range sources {
		fi, err := os.Stat(s.Path)
		if err != nil {
			return nil, fmt.Errorf("policy file %s: %w", s.name(), err)
		}
		fmt.Fprintf(&key, "%s\x00%d\x00%s\x00", s.Path, s.Layer, FileVersion(fi))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cache != nil && l.key == key.String() {
		return l.cache, nil
	}
	p, files, diags := Load(sources)
	l.key, l.cache = key.String(), &Loaded{Policy: p, Sources: sources, Files: files, Diags: diags}
	return l.cache, nil
}

// FileVersion names the version of a file for caches: size, modification
// and change times, inode. An edit that keeps the size within one
// modification-time tick still changes the change time or, when an editor
// replaces the file, the inode.
func FileVersion(fi os.FileInfo) string {
	v := fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v += fmt.Sprintf("/%d/%d.%d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return v
}
