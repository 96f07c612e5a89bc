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
	"syscall"
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
	// AfterCommit, if set, is called after every transaction that wrote
	// events commits (a shipper's signal that there is more to ship). It
	// runs on the writer's goroutine, so it must not block.
	AfterCommit func()
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

// Open opens the audit log at path, creating it (mode 0600, directory 0700;
// 0660 and 0770 with TFSH_AUDIT_SHARED=group) if it does not exist, and
// applies pending migrations. A file that is not an SQLite database, one
// from a newer tfsh, or one owned by another user (see ForeignOwnerError) is
// an error and is left as is.
func Open(ctx context.Context, path string) (*DB, error) {
	shared, err := sharedMode()
	if err != nil {
		return nil, err
	}
	if err := prepareFile(path, shared); err != nil {
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
		if fi, err := os.Stat(path + suffix); err == nil && fi.Mode().Perm()&^shared.perm() != 0 {
			_ = os.Chmod(path+suffix, fi.Mode().Perm()&shared.perm())
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

// synchronous is SQLite's synchronous setting. NORMAL is durable against
// process crashes (kill -9) in WAL mode; see docs/design.md "Audit
// durability". Benchmarks change it to measure FULL.
var synchronous = "NORMAL"

func dsn(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=" + synchronous
}

// Sharing says who may use an audit log besides its owner.
type Sharing int

const (
	// Private, the default: files 0600, directory 0700, and a log owned
	// by another user is refused.
	Private Sharing = iota
	// Group (TFSH_AUDIT_SHARED=group): files 0660, directory 0770, and a
	// log owned by another user is used if its group is one of ours: one
	// log for the engineers of a shared bastion.
	Group
)

// sharedMode reads $TFSH_AUDIT_SHARED: unset or empty for Private, "group"
// for Group; anything else is an error rather than a guess.
func sharedMode() (Sharing, error) {
	switch v := os.Getenv("TFSH_AUDIT_SHARED"); v {
	case "":
		return Private, nil
	case "group":
		return Group, nil
	default:
		return Private, fmt.Errorf(`TFSH_AUDIT_SHARED=%q: the only shared mode is "group" (unset it for a private audit log)`, v)
	}
}

// perm is the widest mode the log's files may have.
func (s Sharing) perm() fs.FileMode {
	if s == Group {
		return 0o660
	}
	return 0o600
}

func (s Sharing) dirPerm() fs.FileMode {
	if s == Group {
		return 0o770
	}
	return 0o700
}

// ForeignOwnerError reports an audit log owned by another user. Writing to
// it would leave files its owner cannot open (SQLite's -wal and -shm) and
// mix two people's sessions in one chain, so it takes an explicit
// TFSH_AUDIT_SHARED=group.
type ForeignOwnerError struct {
	Path     string
	UID, GID int
	Shared   Sharing
}

func (e *ForeignOwnerError) Error() string {
	if e.Shared == Group {
		return fmt.Sprintf("audit log %s belongs to uid %d and group %d, which is not one of your groups: a shared log must be in a group of every user of it", e.Path, e.UID, e.GID)
	}
	return fmt.Sprintf("audit log %s belongs to another user (uid %d, you are %d): point --audit-db at your own log, or set TFSH_AUDIT_SHARED=group to share it through its group (gid %d)", e.Path, e.UID, os.Geteuid(), e.GID)
}

// checkOwner refuses a file owned by another user, unless it is shared
// through one of our groups.
func checkOwner(path string, fi fs.FileInfo, shared Sharing) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // no owners to compare on this system
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if uid == os.Geteuid() {
		return nil
	}
	if shared == Group && inGroup(gid) {
		return nil
	}
	return &ForeignOwnerError{Path: path, UID: uid, GID: gid, Shared: shared}
}

func inGroup(gid int) bool {
	if gid == os.Getegid() {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// prepareFile creates the directory and an empty file (0600, or 0660 when
// shared), or checks that an existing file is ours (or shared with us) and
// looks like SQLite before SQLite touches it.
func prepareFile(path string, shared Sharing) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, shared.dirPerm()); err != nil {
		return fmt.Errorf("create audit log directory %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, shared.perm())
	if err == nil {
		defer f.Close()
		// The umask may have taken group bits a shared log needs.
		if err := f.Chmod(shared.perm()); err != nil {
			return fmt.Errorf("set the mode of audit log %s: %w", path, err)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create audit log %s: %w", path, err)
	}
	// Stat before opening: a FIFO or another user's file is refused
	// without touching it.
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat audit log %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit log %s is not a regular file", path)
	}
	if err := checkOwner(path, fi, shared); err != nil {
		return err
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	defer f.Close()
	if fi.Size() == 0 {
		return nil
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return &CorruptError{Path: path, Err: errors.New("no SQLite header")}
	}
	if fi.Mode().Perm()&^shared.perm() != 0 {
		// Tighten, never loosen.
		if err := f.Chmod(fi.Mode().Perm() & shared.perm()); err != nil {
			return fmt.Errorf("restrict audit log %s to %v: %w", path, shared.perm(), err)
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
