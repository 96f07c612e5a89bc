package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// SchemaVersion is the newest schema this build knows.
var SchemaVersion = func() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		panic(fmt.Sprintf("audit: bad embedded migrations: %v", err))
	}
	return ms[len(ms)-1].version
}()

// DB is an open audit log. It is safe for concurrent use, and several tfsh
// processes may append to the same file: every append runs in an IMMEDIATE
// transaction, so the chain never forks.
type DB struct {
	db   *sql.DB
	path string
	// Now is the clock used for event times; tests inject it.
	Now func() time.Time
	// Anchors receive the chain head at every session end; Open sets the
	// file beside the log (FileAnchors at AnchorPath). Nil writes none.
	Anchors []AnchorSink
	// AnchorKey, when set, signs every anchor.
	AnchorKey ed25519.PrivateKey
	// OnAnchorError hears of an anchor that could not be written; the
	// session is recorded all the same.
	OnAnchorError func(error)
}

// NewerSchemaError reports an audit log written by a newer tfsh.
type NewerSchemaError struct {
	Path       string
	Have, Know int
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("audit log %s is newer (schema %d) than this tfsh (schema %d): upgrade tfsh", e.Path, e.Have, e.Know)
}

// CorruptError reports a file that is not a readable tfsh audit log. tfsh
// never recreates it: the user decides what happens to the evidence.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("audit log %s is not a readable SQLite database (%v): move it aside to keep it as evidence, or point --audit-db elsewhere", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// DefaultPath is $TFSH_AUDIT_DB, else $XDG_STATE_HOME/tfsh/audit.db, else
// ~/.local/state/tfsh/audit.db.
func DefaultPath() (string, error) {
	if p := os.Getenv("TFSH_AUDIT_DB"); p != "" {
		return p, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tfsh", "audit.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory for the audit log: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tfsh", "audit.db"), nil
}

var sqliteHeader = []byte("SQLite format 3\x00")

// Open opens the audit log at path, creating it (mode 0600, directory 0700)
// if it does not exist, and applies pending migrations. A file that is not an
// SQLite database, or one from a newer tfsh, is an error and is left as is.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	d := &DB{db: db, path: path, Now: time.Now, Anchors: []AnchorSink{FileAnchors{Path: AnchorPath(path)}}}
	// Several tfsh starting at once on a new file race to switch it to WAL,
	// which SQLite answers with SQLITE_BUSY at once, past busy_timeout: try
	// again rather than show "database is locked".
	for attempt := 0; ; attempt++ {
		err = d.migrate(ctx)
		var se sqlite3.Error
		if err == nil || attempt == 100 || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(10+attempt) * time.Millisecond):
		}
	}
	if err != nil {
		db.Close()
		return nil, classify(path, err)
	}
	// SQLite creates -wal and -shm with the database's mode; make sure of it
	// even if they pre-existed with wider permissions.
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(path+suffix, 0o600)
		}
	}
	return d, nil
}

// Path returns the file the log lives in.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// SQL exposes the underlying handle for read-only tooling and tests.
func (d *DB) SQL() *sql.DB { return d.db }

func dsn(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	// NORMAL is durable against process crashes (kill -9) in WAL mode; see
	// docs/design.md "Audit durability".
	return "file:" + esc + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
}

// prepareFile creates the directory and an empty 0600 file, or checks that
// an existing file looks like SQLite before SQLite touches it.
func prepareFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create audit log directory %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create audit log %s: %w", path, err)
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat audit log %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit log %s is not a regular file", path)
	}
	if fi.Size() == 0 {
		return nil
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return &CorruptError{Path: path, Err: errors.New("no SQLite header")}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Tighten, never loosen; a shared-log mode is a later, explicit choice.
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("restrict audit log %s to 0600: %w", path, err)
		}
	}
	return nil
}

func classify(path string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return &CorruptError{Path: path, Err: err}
	}
	var ne *NewerSchemaError
	if errors.As(err, &ne) {
		return err
	}
	return fmt.Errorf("open audit log %s: %w", path, err)
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must be 1..n without gaps", m.name)
		}
	}
	return out, nil
}

func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(ms) {
		return &NewerSchemaError{Path: d.path, Have: have, Know: len(ms)}
	}
	for _, m := range ms[have:] {
		if err := d.apply(ctx, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, m migration) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Another process may have applied it while we waited for the lock.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	return tx.Commit()
}
