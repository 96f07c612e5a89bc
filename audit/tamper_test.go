package audit_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// rawEvents reads every row as stored, in seq order.
func rawEvents(t *testing.T, raw *sql.DB) []audit.Event {
	t.Helper()
	rows, err := raw.Query(`SELECT seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data, prev_hash, hash FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var at int64
		var data string
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.SessionID, &e.CommandID, &e.Kind, &e.StateKey, &e.LockID, &data, &e.PrevHash, &e.Hash); err != nil {
			t.Fatal(err)
		}
		e.At = time.Unix(0, at).UTC()
		e.Data = json.RawMessage(data)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rechain recomputes every row's prev_hash and hash, as someone rewriting
// the whole log would.
func rechain(t *testing.T, raw *sql.DB) {
	t.Helper()
	prev := audit.GenesisHash
	for _, e := range rawEvents(t, raw) {
		h := audit.RowHash(prev, &e)
		if _, err := raw.Exec(`UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
}

// rawTamper opens the log beside db with the append-only triggers dropped.
func rawTamper(t *testing.T, db *audit.DB, fn func(raw *sql.DB)) {
	t.Helper()
	tamper(t, db) // drops the triggers
	raw, err := sql.Open("sqlite3", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fn(raw)
}

func sqlExec(t *testing.T, raw *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestVerifyTamper makes each kind of change to a log of two sessions (events
// 1..5 and 6..10, anchored at 5 and 10; the first command's command_end is
// event 4) and checks that Verify reports it, with and without the anchors.
// A rewrite is reported at the first anchor after the change: the anchors
// say that the log changed before there, not where.
func TestVerifyTamper(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, raw *sql.DB)
		seq     int64
		kind    string
		anchors bool // found only with anchors
	}{
		{"edit a row's data", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `UPDATE events SET data = replace(data, '"allow"', '"deny"') WHERE seq = 3`)
		}, 3, audit.ProblemEdited, false},
		{"delete a row", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `DELETE FROM events WHERE seq = 3`)
		}, 4, audit.ProblemDeleted, false},
		{"delete a row and renumber", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `DELETE FROM events WHERE seq = 3`,
				`UPDATE events SET seq = -seq WHERE seq > 3`, `UPDATE events SET seq = -seq - 1 WHERE seq < 0`)
		}, 3, audit.ProblemDeleted, false},
		{"insert a row", func(t *testing.T, raw *sql.DB) {
			evs := rawEvents(t, raw)
			sqlExec(t, raw, `UPDATE events SET seq = -seq WHERE seq >= 3`, `UPDATE events SET seq = -seq + 1 WHERE seq < 0`)
			e := evs[2] // a copy of event 3, placed after event 2 with a valid hash
			e.ID += "x"
			e.Data = json.RawMessage(`{"action":"allow","note":"made up"}`)
			e.PrevHash = evs[1].Hash
			e.Hash = audit.RowHash(e.PrevHash, &e)
			if _, err := raw.Exec(`INSERT INTO events (seq, id, at, session_id, command_id, kind, state_key, lock_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.Seq, e.ID, e.At.UnixNano(), e.SessionID, e.CommandID, e.Kind, e.StateKey, nil, string(e.Data), e.PrevHash, e.Hash); err != nil {
				t.Fatal(err)
			}
		}, 3, audit.ProblemInserted, false},
		{"swap two rows", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `UPDATE events SET seq = 100 WHERE seq = 2`, `UPDATE events SET seq = 2 WHERE seq = 3`, `UPDATE events SET seq = 3 WHERE seq = 100`)
		}, 2, audit.ProblemReordered, false},
		{"change an output chunk", func(t *testing.T, raw *sql.DB) {
			// The first command's output becomes the second's (same length).
			sqlExec(t, raw, `UPDATE output_chunks SET frames = (SELECT o.frames FROM output_chunks o WHERE o.command_id != output_chunks.command_id)
				WHERE command_id = (SELECT command_id FROM events WHERE seq = 4)`)
		}, 4, audit.ProblemOutput, false},
		{"truncate the tail", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `DELETE FROM events WHERE seq > 5`)
		}, 10, audit.ProblemTruncated, true},
		{"rewrite everything and recompute the chain", func(t *testing.T, raw *sql.DB) {
			sqlExec(t, raw, `UPDATE events SET data = replace(data, '"allow"', '"deny"') WHERE seq = 3`)
			rechain(t, raw)
		}, 5, audit.ProblemRewritten, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := MustOpenDB(t)
			db.OnAnchorError = func(err error) { t.Errorf("anchor: %v", err) }
			record(t, db, nil, "some output\n")
			record(t, db, nil, "more output\n")
			rawTamper(t, db, func(raw *sql.DB) { tt.tamper(t, raw) })

			res, err := db.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tt.anchors {
				// The limit of the chain alone: a consistent rewrite, or a
				// cut at the end, leaves a valid chain.
				if !res.OK() {
					t.Fatalf("without anchors: problems %+v, want none (the chain alone cannot see this)", res.Problems)
				}
			} else if res.OK() || res.First.Seq != tt.seq || res.First.Kind != tt.kind {
				t.Fatalf("without anchors: first problem %+v, want seq %d kind %q (all: %+v)", res.First, tt.seq, tt.kind, res.Problems)
			}

			res, err = db.VerifyWith(ctx, audit.VerifyOptions{Anchors: audit.FileAnchors{Path: audit.AnchorPath(db.Path())}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Anchors != 2 {
				t.Fatalf("checked %d anchors, want 2", res.Anchors)
			}
			if res.OK() {
				t.Fatal("with anchors: found nothing")
			}
			if tt.anchors && (res.First.Seq != tt.seq || res.First.Kind != tt.kind) {
				t.Fatalf("with anchors: first problem %+v, want seq %d kind %q (all: %+v)", res.First, tt.seq, tt.kind, res.Problems)
			}
		})
	}
}

func TestAnchorSignatures(t *testing.T) {
	ctx := context.Background()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	key, err := audit.ParseAnchorKey(base64.StdEncoding.EncodeToString(seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParseAnchorPublicKey(base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	db := MustOpenDB(t)
	db.OnAnchorError = func(err error) { t.Errorf("anchor: %v", err) }
	db.AnchorKey = key
	record(t, db, nil, "signed\n")
	db.AnchorKey = nil
	record(t, db, nil, "unsigned\n")
	path := audit.AnchorPath(db.Path())
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("anchor file: %v, %v, want mode 0600", fi, err)
	}
	res, err := db.VerifyWith(ctx, audit.VerifyOptions{Anchors: audit.FileAnchors{Path: path}, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 1 || res.First.Kind != audit.ProblemAnchor || res.First.Seq != 10 {
		t.Fatalf("problems %+v, want the second (unsigned) anchor only", res.Problems)
	}

	// Someone who rewrites the log and its anchor file without the key.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(b), `"seq":5,"hash":"`, `"seq":5,"hash":"0`, 1)
	if err := os.WriteFile(path, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = db.VerifyWith(ctx, audit.VerifyOptions{Anchors: audit.FileAnchors{Path: path}, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.First.Kind != audit.ProblemAnchor || !strings.Contains(res.First.Detail, "bad signature") {
		t.Fatalf("forged anchor: problems %+v, want a bad signature", res.Problems)
	}
}

func TestAnchorFailureKeepsTheSession(t *testing.T) {
	db := MustOpenDB(t)
	db.Anchors = []audit.AnchorSink{audit.FileAnchors{Path: filepath.Join(t.TempDir(), "missing", "x.anchors")}}
	var warned []error
	db.OnAnchorError = func(err error) { warned = append(warned, err) }
	s, _ := record(t, db, nil, "x\n") // record fails the test if End returns an error
	if len(warned) != 1 {
		t.Fatalf("warnings %v, want one", warned)
	}
	rec, err := db.Session(context.Background(), s.ID)
	if err != nil || rec.Status != "ok" {
		t.Fatalf("session %+v (%v): want it ended", rec, err)
	}
}

// TestAnchorAfterCrashedSessions: closing a crashed session anchors its end.
func TestAnchorAfterCrashedSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	dead := testInfo()
	dead.PID = deadPID(t)
	if _, _, err := db.StartSession(ctx, dead, nil); err != nil {
		t.Fatal(err)
	}
	_, crashed, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil || len(crashed) != 1 {
		t.Fatalf("crashed sessions %v (%v), want one", crashed, err)
	}
	as, err := audit.FileAnchors{Path: audit.AnchorPath(db.Path())}.ReadAnchors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.VerifyWith(ctx, audit.VerifyOptions{Anchors: audit.FileAnchors{Path: audit.AnchorPath(db.Path())}})
	if err != nil || !res.OK() {
		t.Fatalf("verify: %+v (%v)", res, err)
	}
	if len(as) != 1 || as[0].Seq != res.HeadSeq || as[0].Hash != res.Head {
		t.Fatalf("anchors %+v, want one at the head (%d, %s)", as, res.HeadSeq, res.Head)
	}
}
