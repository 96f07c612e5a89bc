package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
)

// BenchmarkExplain1M explains the incidents of a day and of a week, and
// draws the timeline of a day (tfsh report), on the generated log of a
// million events (BENCHMARKS.md, "Explain and report on 1,000,000 events").
//
// -audit-bench-events runs it on other log sizes too.
func BenchmarkExplain1M(b *testing.B) {
	ctx := context.Background()
	benchLogs(b, func(b *testing.B, db *audit.DB, prefix string) { benchExplain(ctx, b, db, prefix) })
}

func benchExplain(ctx context.Context, b *testing.B, db *audit.DB, prefix string) {
	end := auditgen.DefaultEnd
	for _, c := range []struct {
		name string
		span time.Duration
	}{{"day", 24 * time.Hour}, {"week", 7 * 24 * time.Hour}} {
		b.Run(prefix+"explain/"+c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				x, err := db.Explain(ctx, audit.ExplainQuery{Since: end.Add(-c.span), Until: end})
				if err != nil {
					b.Fatal(err)
				}
				n = len(x.Chains)
			}
			b.ReportMetric(float64(n), "chains")
		})
	}
	b.Run(prefix+"timeline/day", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Timeline(ctx, audit.TimelineQuery{Since: end.Add(-24 * time.Hour), Until: end}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
