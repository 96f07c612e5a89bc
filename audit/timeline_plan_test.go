package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The timeline must not read the whole log: each of its queries goes
// through an index (SQLite plans the same without statistics whatever the
// log's size, and tfsh never runs ANALYZE).
func TestTimelineQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	until := since.Add(24 * time.Hour)
	type query struct {
		name  string
		sql   string
		args  []any
		index string // or events_state_at, as good when a state is asked for
	}
	var qs []query
	for _, state := range []string{"", "b/k"} {
		q, a := rangeQuery(timelineKinds, since, until, state)
		qs = append(qs, query{"range " + state, q, a, "events_kind_at"})
		q, a = heldAtQuery(since, 0, state)
		qs = append(qs, query{"held at " + state, q, a, "events_lock"})
	}
	for _, q := range qs {
		rows, err := db.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		for _, p := range plan {
			if strings.HasPrefix(p, "SCAN") && !strings.Contains(p, "USING INDEX") && !strings.Contains(p, "USING COVERING INDEX") {
				t.Errorf("%s scans the log:\n%s", q.name, all)
			}
		}
		if !strings.Contains(all, q.index) && !strings.Contains(all, "events_state_at (state_key=? AND at>? AND at<?)") {
			t.Errorf("%s does not use %s:\n%s", q.name, q.index, all)
		}
		t.Logf("%s:\n%s", q.name, all)
	}
}
