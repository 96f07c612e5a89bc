package audit_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
)

// BenchmarkVerify1M recomputes the chain and every output digest of a
// generated log of 1,000,000 events (internal/auditgen), on a copy: the
// cached file is never opened for writing.
func BenchmarkVerify1M(b *testing.B) {
	ctx := context.Background()
	cached, err := auditgen.Cached(ctx, auditgen.Options{Events: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "audit.db")
	if err := auditgen.CopyFile(cached, path); err != nil {
		b.Fatal(err)
	}
	db, err := audit.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var res *audit.VerifyResult
	for b.Loop() {
		if res, err = db.Verify(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if !res.OK() || res.Events != 1_000_000 {
		b.Fatalf("verify: %d events, problems %+v", res.Events, res.Problems)
	}
	b.ReportMetric(float64(res.Events), "events")
	b.ReportMetric(float64(res.Commands), "outputs")
}
