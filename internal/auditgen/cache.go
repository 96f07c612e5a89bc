package auditgen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab"
)

// CachePath is where Cached keeps the log for opt: under
// $TFSH_CACHE/bench (default ${XDG_CACHE_HOME:-~/.cache}/tfsh/bench), named
// by the generator's Version, the audit schema and the options, so that a
// change to any of them makes a new file.
func CachePath(opt Options) string {
	return cachePath(opt, audit.SchemaVersion)
}

func cachePath(opt Options, schema int) string {
	opt.defaults()
	b, _ := json.Marshal(opt)
	sum := sha256.Sum256(b)
	name := fmt.Sprintf("audit-%d-events-g%d-s%d-%s.db", opt.Events, Version, schema, hex.EncodeToString(sum[:6]))
	return filepath.Join(lab.CacheDir(), "bench", name)
}

// Cached returns the path of a generated log for opt, generating it first
// if it is not cached yet (a million events take two to four minutes), or
// migrating a copy of the same log cached at an older schema (as tfsh
// migrates a user's log). The file is written under a temporary name and
// renamed when complete, so an interrupted generation leaves nothing
// half-made behind. Callers may read it; writing to it changes what the
// next caller gets.
func Cached(ctx context.Context, opt Options) (string, error) {
	path := CachePath(opt)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".gen-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "audit.db")
	older := ""
	for v := audit.SchemaVersion - 1; v > 0 && older == ""; v-- {
		if p := cachePath(opt, v); fileExists(p) {
			older = p
		}
	}
	if older != "" {
		if err := CopyFile(older, file); err != nil {
			return "", err
		}
	}
	db, err := audit.Open(ctx, file) // migrates an older copy
	if err != nil {
		return "", err
	}
	if older == "" {
		if _, err := Generate(ctx, db, opt); err != nil {
			db.Close()
			return "", fmt.Errorf("generate %s: %w", path, err)
		}
	}
	// One file, no WAL beside it: checkpoint and leave WAL mode.
	if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		db.Close()
		return "", err
	}
	if err := db.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(file, path); err != nil {
		return "", err
	}
	return path, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// CopyFile copies a log to a new file (mode 0600) that must not exist: a
// benchmark that may write works on a copy, never on the cached log. The
// copy is on disk when it returns: one still being written back (a
// gigabyte for the 1M log) would slow every fsync a timed command makes.
func CopyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
