package audit_test

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
)

// sessionQueries are the `tfsh audit sessions` filters measured on the
// generated log (BENCHMARKS.md, "Audit queries on 1,000,000 events").
func sessionQueries() []struct {
	Name string
	Q    audit.SessionQuery
} {
	end := auditgen.DefaultEnd
	// The busiest state (15,000 commands), and one of alice's.
	hot := "acme-tfstate-prod/prod/network/terraform.tfstate"
	dns := "acme-tfstate-prod/prod/dns/terraform.tfstate"
	apply := regexp.MustCompile(`^apply`)
	return []struct {
		Name string
		Q    audit.SessionQuery
	}{
		{"newest", audit.SessionQuery{}},
		{"user", audit.SessionQuery{User: "alice"}},
		{"user+since=24h", audit.SessionQuery{User: "alice", Since: end.Add(-24 * time.Hour)}},
		{"host", audit.SessionQuery{Host: "gha-runner-01"}},
		{"since+until=1h", audit.SessionQuery{Since: end.Add(-7 * 24 * time.Hour), Until: end.Add(-7*24*time.Hour + time.Hour)}},
		{"state", audit.SessionQuery{State: hot}},
		{"kind=lock_contention", audit.SessionQuery{Kinds: []string{"lock_contention"}}},
		{"kind=force_unlock,lock_orphaned", audit.SessionQuery{Kinds: []string{"force_unlock", "lock_orphaned"}}},
		{"command=^apply", audit.SessionQuery{Command: apply}},
		{"command=^import", audit.SessionQuery{Command: regexp.MustCompile(`^import`)}},
		{"user+state", audit.SessionQuery{User: "alice", State: dns}},
		{"state+kind=lock_wait", audit.SessionQuery{State: hot, Kinds: []string{"lock_wait"}}},
		{"kind=lock_acquired+command=^apply+since=7d", audit.SessionQuery{Kinds: []string{"lock_acquired"}, Command: apply, Since: end.Add(-7 * 24 * time.Hour)}},
	}
}

// auditBenchEvents are the log sizes BenchmarkSessions1M and
// BenchmarkExplain1M run on (scripts/bench.sh gives 100000,1000000 for the
// scaling table). A size other than a million prefixes the sub-benchmarks
// with events=N, so the million's names stay as BENCHMARKS.md quotes them.
var auditBenchEvents = flag.String("audit-bench-events", "1000000", "log sizes (events, comma-separated) for BenchmarkSessions1M and BenchmarkExplain1M")

// benchLogs runs f on the generated log of each size of -audit-bench-events,
// under a sub-benchmark prefix (empty for a million).
func benchLogs(b *testing.B, f func(b *testing.B, db *audit.DB, prefix string)) {
	ctx := context.Background()
	for _, field := range strings.Split(*auditBenchEvents, ",") {
		events, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || events <= 0 {
			b.Fatalf("-audit-bench-events %q: give event counts, like 100000,1000000", *auditBenchEvents)
		}
		path, err := auditgen.Cached(ctx, auditgen.Options{Events: events})
		if err != nil {
			b.Fatal(err)
		}
		db, err := audit.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		prefix := ""
		if events != 1_000_000 {
			prefix = fmt.Sprintf("events=%d/", events)
		}
		f(b, db, prefix)
		db.Close()
	}
}

// BenchmarkSessions1M lists the newest 50 sessions that match each filter
// in a generated log of 1,000,000 events (internal/auditgen; generated
// once, a minute or two, then cached under $TFSH_CACHE/bench).
func BenchmarkSessions1M(b *testing.B) {
	ctx := context.Background()
	benchLogs(b, func(b *testing.B, db *audit.DB, prefix string) { benchSessions(ctx, b, db, prefix) })
}

func benchSessions(ctx context.Context, b *testing.B, db *audit.DB, prefix string) {
	for _, c := range sessionQueries() {
		b.Run(prefix+c.Name, func(b *testing.B) {
			q := c.Q
			q.Limit = 50
			n := 0
			for b.Loop() {
				list, err := db.Sessions(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				n = len(list)
			}
			b.ReportMetric(float64(n), "sessions")
		})
	}
}
