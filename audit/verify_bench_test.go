package audit_test

import (
	"context"
	"io"
	"os"
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
	if err := copyFile(cached, path); err != nil {
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

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
