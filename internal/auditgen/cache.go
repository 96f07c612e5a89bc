package auditgen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	opt.defaults()
	b, _ := json.Marshal(opt)
	sum := sha256.Sum256(b)
	name := fmt.Sprintf("audit-%d-events-g%d-s%d-%s.db", opt.Events, Version, audit.SchemaVersion, hex.EncodeToString(sum[:6]))
	return filepath.Join(lab.CacheDir(), "bench", name)
}

// Cached returns the path of a generated log for opt, generating it first
// if it is not cached yet (a million events take a minute or two). The
// file is written under a temporary name and renamed when complete, so an
// interrupted generation leaves nothing half-made behind. Callers may read
// it; writing to it changes what the next caller gets.
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
	db, err := audit.Open(ctx, file)
	if err != nil {
		return "", err
	}
	if _, err := Generate(ctx, db, opt); err != nil {
		db.Close()
		return "", fmt.Errorf("generate %s: %w", path, err)
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
