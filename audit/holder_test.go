package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockHolder(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	red := NewRedactor()
	s, _, err := db.StartSession(ctx, SessionInfo{Mode: "run", User: "root", Host: "runner-7", PID: 1, CWD: "/w",
		CI: map[string]string{"provider": "github", "run_id": "1234", "job": "deploy", "actor": "bob"}}, red)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, CommandInfo{Line: "apply -auto-approve", Typed: []string{"apply", "-auto-approve"}, Subcommand: "apply"}, Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 20, 25, 49, 0, time.UTC)
	acquired := map[string]any{"source": "backend", "info": map[string]any{"ID": "lock-1", "Operation": "OperationTypeApply", "Who": "root@runner-7"}}
	if err := c.AppendAt(ctx, at, kindLockAcquired, "lock-1", acquired); err != nil {
		t.Fatal(err)
	}
	// A later command of another session that took the same ID for its own
	// (the same user, host and operation) does not change the answer.
	if err := c.AppendAt(ctx, at.Add(time.Minute), kindLockAcquired, "lock-1", acquired); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, kindHoldPlaced, "b/k", "hold-1", map[string]any{"reason": "CHG-9 freeze"}); err != nil {
		t.Fatal(err)
	}

	p, seen, found, err := db.LockHolder(ctx, "lock-1")
	if err != nil || !found {
		t.Fatalf("LockHolder = %v, %v", found, err)
	}
	if got, want := p.Line(), "bob via GitHub run 1234, job deploy (root@runner-7): apply -auto-approve"; got != want {
		t.Fatalf("Line = %q, want %q", got, want)
	}
	if !seen.Equal(at) || p.SessionID != s.ID || p.CommandID != c.ID || p.Operation != "apply" || !p.Recorded {
		t.Fatalf("holder = %+v at %v", p, seen)
	}
	p, _, found, err = db.LockHolder(ctx, "hold-1")
	if err != nil || !found || p.Operation != "hold" || p.Hold != "CHG-9 freeze" || p.Line() != "bob via GitHub run 1234, job deploy (root@runner-7): hold" {
		t.Fatalf("hold holder = %+v (%q), %v, %v", p, p.Line(), found, err)
	}
	if _, _, found, err := db.LockHolder(ctx, "never-seen"); found || err != nil {
		t.Fatalf("unknown lock: found %v, %v", found, err)
	}
	if _, _, found, err := db.LockHolder(ctx, ""); found || err != nil {
		t.Fatalf("empty ID: found %v, %v", found, err)
	}

	// One statement, through the indexes: never a scan of the log.
	rows, err := db.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+holderQuery, "lock-1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	all := strings.Join(plan, "\n")
	for _, p := range plan {
		if strings.HasPrefix(p, "SCAN") && !strings.Contains(p, "USING INDEX") && !strings.Contains(p, "USING COVERING INDEX") {
			t.Errorf("the holder query scans the log:\n%s", all)
		}
	}
	// The session's start by one of its session indexes: (session_id,
	// seq), or (kind, session_id) since migration 4.
	for _, idx := range []string{"events_lock", "events_command", "session_id=?"} {
		if !strings.Contains(all, idx) {
			t.Errorf("the holder query does not search by %s:\n%s", idx, all)
		}
	}
	t.Logf("plan:\n%s", all)
}

func TestPartyLineQuotesControlCharacters(t *testing.T) {
	p := Party{Who: "root@runner", CI: &CIRun{Provider: "gitlab", RunID: "7\x1b[2J"}, Command: "plan"}
	if got, want := p.Line(), `root@runner via GitLab run 7\x1b[2J: plan`; got != want {
		t.Fatalf("Line = %q, want %q", got, want)
	}
}
