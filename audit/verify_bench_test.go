package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
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
	db, _ := copyOf1M(b)
	var res *audit.VerifyResult
	var err error
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

// BenchmarkVerify1MAnchors is BenchmarkVerify1M with an anchor, signed
// with ed25519, for every session end of the log (as tfsh writes them),
// read from the anchor file and checked: signatures, hashes, and that the
// log reaches the newest one.
func BenchmarkVerify1MAnchors(b *testing.B) {
	ctx := context.Background()
	db, path := copyOf1M(b)
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	var lines []byte
	err = db.Events(ctx, audit.EventFilter{Kinds: []string{audit.KindSessionEnd}}, func(e audit.Event) error {
		a := audit.Anchor{Seq: e.Seq, Hash: e.Hash, At: e.At, Session: e.SessionID}
		a.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, a.SignedBytes()))
		line, err := json.Marshal(a)
		lines = append(append(lines, line...), '\n')
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	anchors := audit.FileAnchors{Path: audit.AnchorPath(path)}
	if err := os.WriteFile(anchors.Path, lines, 0o600); err != nil {
		b.Fatal(err)
	}
	var res *audit.VerifyResult
	for b.Loop() {
		if res, err = db.VerifyWith(ctx, audit.VerifyOptions{Anchors: anchors, PublicKey: pub}); err != nil {
			b.Fatal(err)
		}
	}
	if !res.OK() || res.Events != 1_000_000 || res.Anchors == 0 {
		b.Fatalf("verify: %d events, %d anchors, problems %+v", res.Events, res.Anchors, res.Problems)
	}
	b.ReportMetric(float64(res.Events), "events")
	b.ReportMetric(float64(res.Anchors), "anchors")
}

// copyOf1M opens a copy of the generated log of 1,000,000 events: the
// cached file is never opened for writing.
func copyOf1M(b *testing.B) (*audit.DB, string) {
	b.Helper()
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
	b.Cleanup(func() { db.Close() })
	return db, path
}
