package auditgen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
)

func generate(t *testing.T, opt auditgen.Options) (*audit.DB, auditgen.Stats) {
	t.Helper()
	ctx := context.Background()
	db, err := audit.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := auditgen.Generate(ctx, db, opt)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return db, st
}

// small is a log with much trouble in it, so that every kind shows up.
var small = auditgen.Options{Events: 5000, Seed: 7, Contention: 0.4, Users: 12, StateKeys: 12}

func TestGeneratedLogVerifiesAndHasEveryKind(t *testing.T) {
	ctx := context.Background()
	db, st := generate(t, small)
	if st.Events != small.Events {
		t.Fatalf("Events=%d, want %d", st.Events, small.Events)
	}
	res, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Events != int64(small.Events) {
		t.Fatalf("verify: %d events, problems %+v", res.Events, res.Problems)
	}
	kinds := map[string]int{}
	statuses := map[string]int{}
	var holdExpired, ciSessions int
	err = db.Events(ctx, audit.EventFilter{}, func(e audit.Event) error {
		kinds[e.Kind]++
		var d struct {
			Status  string            `json:"status"`
			Expired bool              `json:"expired"`
			CI      map[string]string `json:"ci"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("event %d: %v", e.Seq, err)
		}
		switch e.Kind {
		case audit.KindSessionEnd, audit.KindCommandEnd:
			statuses[e.Kind+":"+d.Status]++
		case "hold_released":
			if d.Expired {
				holdExpired++
			}
		case audit.KindSessionStart:
			if d.CI["provider"] != "" && d.CI["run_id"] != "" {
				ciSessions++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"session_start", "session_end", "command_start", "policy_decision", "command_end",
		"lock_acquired", "lock_released", "lock_wait", "lock_wait_end", "lock_contention", "lock_orphaned",
		"lock_observed", "force_unlock", "integrity_check", "hold_placed", "hold_released"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event (kinds: %v)", k, kinds)
		}
		if kinds[k] != st.Kinds[k] {
			t.Errorf("%s: %d in the log, Stats says %d", k, kinds[k], st.Kinds[k])
		}
	}
	for _, s := range []string{"session_end:crashed", "command_end:unknown", "command_end:refused", "command_end:killed", "command_end:failed", "session_end:ok"} {
		if statuses[s] == 0 {
			t.Errorf("no %s (have %v)", s, statuses)
		}
	}
	if holdExpired == 0 {
		t.Errorf("no hold released after its time")
	}
	if ciSessions == 0 {
		t.Errorf("no session with CI metadata")
	}
	if kinds["session_start"] != st.Sessions || kinds["command_start"] != st.Commands {
		t.Errorf("Stats: %d sessions, %d commands; log: %d, %d", st.Sessions, st.Commands, kinds["session_start"], kinds["command_start"])
	}
	if first, last := st.First, st.Last; !first.Before(last) || first.Before(auditgen.DefaultEnd.AddDate(0, 0, -30)) {
		t.Errorf("events from %s to %s", first, last)
	}
}

var ulidRE = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)

// sequence is the log with its random IDs (ULIDs) numbered in order of
// appearance, so that two generations can be compared.
func sequence(t *testing.T, db *audit.DB) []string {
	t.Helper()
	ids := map[string]string{}
	norm := func(s string) string {
		return ulidRE.ReplaceAllStringFunc(s, func(id string) string {
			if _, ok := ids[id]; !ok {
				ids[id] = fmt.Sprintf("<id%d>", len(ids))
			}
			return ids[id]
		})
	}
	var out []string
	err := db.Events(context.Background(), audit.EventFilter{}, func(e audit.Event) error {
		out = append(out, norm(fmt.Sprintf("%d %s %s %s %s %s %s %s", e.Seq, e.At.Format("2006-01-02T15:04:05.000000000"),
			e.SessionID, e.CommandID, e.Kind, e.StateKey, e.LockID, e.Data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerationIsDeterministic(t *testing.T) {
	opt := small
	opt.Events = 3000
	a, _ := generate(t, opt)
	b, _ := generate(t, opt)
	sa, sb := sequence(t, a), sequence(t, b)
	if len(sa) != len(sb) {
		t.Fatalf("%d events, then %d", len(sa), len(sb))
	}
	for i := range sa {
		if sa[i] != sb[i] {
			t.Fatalf("event %d differs:\n%s\n%s", i+1, sa[i], sb[i])
		}
	}
	opt.Seed++
	c, _ := generate(t, opt)
	sc := sequence(t, c)
	same := 0
	for i := range sc {
		if i < len(sa) && sc[i] == sa[i] {
			same++
		}
	}
	if same > len(sa)/10 {
		t.Fatalf("another seed gave %d of %d events the same", same, len(sa))
	}
}
