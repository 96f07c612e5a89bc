package audit

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMigrateFromSchema1: a log written by the first release (schema 1,
// live_sessions without pidns) opens with this tfsh, is migrated in place,
// keeps verifying, and its crashed sessions are still found.
func TestMigrateFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := prepareFile(path, Private); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{db: raw, path: path}
	if _, err := raw.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := old.apply(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	// A session of schema 1 whose process is gone.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO live_sessions (session_id, host, pid, pid_start, started_at) VALUES ('OLD', 'box', ?, '', 1)`, dead.Process.Pid); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a schema-1 log: %v", err)
	}
	defer db.Close()
	var v int
	if err := db.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema %d (%v), want %d", v, err, SchemaVersion)
	}
	s, crashed, err := db.StartSession(ctx, SessionInfo{Host: "box", PID: os.Getpid(), PIDNS: PIDNamespace()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(crashed) != 1 || crashed[0].SessionID != "OLD" {
		t.Fatalf("crashed = %+v, want the schema-1 session", crashed)
	}
	if res, err := db.Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify after migration = %+v, %v", res, err)
	}
	// The indexes that finding sessions names exist.
	list, err := db.Sessions(ctx, SessionQuery{Host: "box", Kinds: []string{KindSessionStart}, Limit: 5})
	if err != nil || len(list) != 1 || list[0].ID != s.ID || list[0].Status != "running" {
		t.Fatalf("sessions after migration = %+v, %v", list, err)
	}
}
