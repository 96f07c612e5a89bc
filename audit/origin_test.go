package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/audit"
)

// copyLog imports every own event and output chunk of from into to.
func copyLog(t *testing.T, from, to *audit.DB) (added, skipped int) {
	t.Helper()
	ctx := context.Background()
	evs, err := from.LocalEvents(ctx, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []audit.OutputChunk
	for i := range evs {
		evs[i].OriginSeq = evs[i].Seq
		if evs[i].Kind == audit.KindCommandEnd {
			cs, err := from.OutputChunks(ctx, evs[i].CommandID)
			if err != nil {
				t.Fatal(err)
			}
			chunks = append(chunks, cs...)
		}
	}
	origin, err := from.LogID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	added, skipped, err = to.Import(ctx, origin, evs, chunks)
	if err != nil {
		t.Fatal(err)
	}
	return added, skipped
}

func mustVerify(t *testing.T, db *audit.DB) *audit.VerifyResult {
	t.Helper()
	res, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestImportInterleaved pulls another log's events between this log's own,
// twice, then appends more of both: both chains verify, the second pull
// adds nothing, and this log's own events chain past the pulled rows.
func TestImportInterleaved(t *testing.T) {
	ctx := context.Background()
	a, b := MustOpenDB(t), MustOpenDB(t)
	idA, _ := a.LogID(ctx)
	idB, _ := b.LogID(ctx)
	if idA == idB || len(idA) != 32 {
		t.Fatalf("log IDs %q and %q: want two different 32-character IDs", idA, idB)
	}
	record(t, a, nil, "from a\n")
	record(t, b, nil, "from b\n")
	if added, skipped := copyLog(t, a, b); added != 5 || skipped != 0 {
		t.Fatalf("first import: added %d, skipped %d; want 5, 0", added, skipped)
	}
	if added, skipped := copyLog(t, a, b); added != 0 || skipped != 5 {
		t.Fatalf("second import: added %d, skipped %d; want 0, 5", added, skipped)
	}
	// Own events coming back are skipped whole.
	if added, _ := copyLog(t, b, b); added != 0 {
		t.Fatalf("importing a log into itself added %d", added)
	}
	record(t, b, nil, "b again\n") // chains after b's own first session, past a's rows
	record(t, a, nil, "a again\n")
	if added, skipped := copyLog(t, a, b); added != 5 || skipped != 5 {
		t.Fatalf("third import: added %d, skipped %d; want 5, 5", added, skipped)
	}
	res := mustVerify(t, b)
	if !res.OK() {
		t.Fatalf("verify after imports: %+v", res.Problems)
	}
	if res.Events != 20 || res.HeadSeq != 15 || res.Commands != 4 {
		t.Fatalf("events %d, head seq %d, commands %d; want 20, 15, 4", res.Events, res.HeadSeq, res.Commands)
	}
	if len(res.Origins) != 1 || res.Origins[0].LogID != idA || res.Origins[0].Events != 10 || res.Origins[0].FromSeq != 1 || res.Origins[0].HeadSeq != 10 {
		t.Fatalf("origins = %+v, want a's 10 events 1..10", res.Origins)
	}
	// A pulled session reads back like a local one.
	var sessions []string
	if err := b.Events(ctx, audit.EventFilter{Kinds: []string{audit.KindSessionStart}}, func(e audit.Event) error {
		sessions = append(sessions, e.Origin)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(sessions, ",") != ",,"+idA+","+idA && strings.Join(sessions, ",") != ","+idA+","+","+idA {
		t.Fatalf("session origins in seq order = %q", sessions)
	}
}

// TestImportRejectsEditedEvent: an event changed in transit is refused, and
// nothing of its batch is added.
func TestImportRejectsEditedEvent(t *testing.T) {
	ctx := context.Background()
	a, b := MustOpenDB(t), MustOpenDB(t)
	record(t, a, nil, "x\n")
	evs, err := a.LocalEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].OriginSeq = evs[i].Seq
	}
	evs[2].Data = []byte(`{"action":"deny"}`)
	_, _, err = b.Import(ctx, "0123456789abcdef0123456789abcdef", evs, nil)
	var fe *audit.ForeignHashError
	if !errors.As(err, &fe) || fe.OriginSeq != 3 {
		t.Fatalf("import of an edited event: err = %v, want a ForeignHashError for seq 3", err)
	}
	if res := mustVerify(t, b); res.Events != 0 {
		t.Fatalf("%d events imported from a refused batch", res.Events)
	}
}

// TestVerifyNamesTheOrigin edits, deletes and breaks pulled rows: each is
// reported with the log it came from, and this log's own chain stays
// intact (a pulled row between two own rows is not a deletion).
func TestVerifyNamesTheOrigin(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, stmt, kind string
	}{
		{"edited", `UPDATE events SET data = '{"status":"ok","exit_code":0}' WHERE origin IS NOT NULL AND kind = 'command_end'`, audit.ProblemEdited},
		{"moved", `UPDATE events SET origin_seq = CASE origin_seq WHEN 3 THEN 4 ELSE 3 END WHERE origin IS NOT NULL AND origin_seq IN (3, 4)`, audit.ProblemReordered},
		{"output changed", `DELETE FROM output_chunks WHERE command_id IN (SELECT command_id FROM events WHERE origin IS NOT NULL)`, audit.ProblemOutput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := MustOpenDB(t), MustOpenDB(t)
			idA, _ := a.LogID(ctx)
			record(t, a, nil, "apply output\n")
			record(t, b, nil, "b\n")
			copyLog(t, a, b)
			record(t, b, nil, "b again\n")
			if res := mustVerify(t, b); !res.OK() {
				t.Fatalf("before tampering: %+v", res.Problems)
			}
			tamper(t, b, tc.stmt)
			res := mustVerify(t, b)
			var found bool
			for _, p := range res.Problems {
				if p.Kind == tc.kind && p.Origin == idA {
					found = true
				}
			}
			if !found {
				t.Fatalf("problems = %+v, want a %q one naming log %s", res.Problems, tc.kind, idA)
			}
		})
	}
}

// TestVerifyGapInPulledChain: a stretch of another log's chain that was
// not pulled (a --session or --state pull) is listed as a gap, not a
// problem: verify checks what is held, and a pull fetches the rest. A
// pulled row removed from this copy afterwards is a problem all the same:
// it leaves a hole in this log's own seq.
func TestVerifyGapInPulledChain(t *testing.T) {
	ctx := context.Background()
	a, b := MustOpenDB(t), MustOpenDB(t)
	idA, _ := a.LogID(ctx)
	record(t, a, nil, "apply output\n")
	evs, err := a.LocalEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var some []audit.Event
	for _, e := range evs {
		e.OriginSeq = e.Seq
		if e.Seq != 3 && e.Kind != audit.KindCommandEnd { // no output: no command_end to check
			some = append(some, e)
		}
	}
	if _, _, err := b.Import(ctx, idA, some, nil); err != nil {
		t.Fatal(err)
	}
	res := mustVerify(t, b)
	if !res.OK() || len(res.Origins) != 1 || res.Origins[0].LogID != idA {
		t.Fatalf("verify = %+v, %+v; want OK with one origin", res.Problems, res.Origins)
	}
	next := some[2].OriginSeq // the first held after the stretch not pulled
	if got := res.Origins[0].Gaps; len(got) == 0 || got[0] != (audit.Gap{After: 2, Before: next}) {
		t.Fatalf("gaps = %+v, want the first after seq 2, before %d", got, next)
	}
	tamper(t, b, `DELETE FROM events WHERE origin IS NOT NULL AND origin_seq = 2`)
	if res := mustVerify(t, b); res.OK() || res.Problems[0].Kind != audit.ProblemDeleted {
		t.Fatalf("a pulled row removed: problems %+v, want it deleted", res.Problems)
	}
}
