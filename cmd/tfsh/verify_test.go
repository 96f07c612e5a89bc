package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

// recordedLog writes one recorded session to a new log and returns its path.
func recordedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.RecordSession(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAuditVerify(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := auditCommand(context.Background(), append([]string{"verify"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerify(t *testing.T) {
	path := recordedLog(t)
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != 0 || !strings.Contains(out, ": intact: ") {
		t.Fatalf("intact log: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER events_append_only_update`,
		`UPDATE events SET data = data || ' ' WHERE seq = 2`} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	raw.Close()
	code, out, _ = runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, "BROKEN: first at event") || !strings.Contains(out, "edited") {
		t.Fatalf("edited log: exit %d, stdout %q", code, out)
	}
	code, out, _ = runAuditVerify(t, "--audit-db", path, "--json")
	var res audit.VerifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitLogBroken || res.First == nil || res.First.Kind != audit.ProblemEdited {
		t.Fatalf("--json: exit %d, err %v, stdout %q", code, err, out)
	}

	code, _, errs = runAuditVerify(t, "--audit-db", filepath.Join(t.TempDir(), "none.db"))
	if code != exitCannotRun || !strings.Contains(errs, "no audit log") {
		t.Fatalf("missing log: exit %d, stderr %q", code, errs)
	}
}
