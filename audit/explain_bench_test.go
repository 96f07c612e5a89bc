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
func BenchmarkExplain1M(b *testing.B) {
	ctx := context.Background()
	path, err := auditgen.Cached(ctx, auditgen.Options{Events: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	db, err := audit.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	end := auditgen.DefaultEnd
	for _, c := range []struct {
		name string
		span time.Duration
	}{{"day", 24 * time.Hour}, {"week", 7 * 24 * time.Hour}} {
		b.Run("explain/"+c.name, func(b *testing.B) {
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
	b.Run("timeline/day", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Timeline(ctx, audit.TimelineQuery{Since: end.Add(-24 * time.Hour), Until: end}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
