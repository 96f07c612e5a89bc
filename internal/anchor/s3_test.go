package anchor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/anchor"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

func testAnchors() []audit.Anchor {
	at := time.Date(2026, 11, 26, 4, 0, 0, 123, time.UTC)
	return []audit.Anchor{
		{Seq: 5, Hash: strings.Repeat("a", 64), At: at, Session: "s1"},
		{Seq: 12, Hash: strings.Repeat("b", 64), At: at.Add(time.Second), Session: "s2", Sig: "c2ln"},
	}
}

func TestS3Anchors(t *testing.T) {
	ctx := context.Background()
	srv := labtest.S3(t)
	if err := srv.CreateBucket(ctx, "anchors"); err != nil {
		t.Fatal(err)
	}
	sink := &anchor.S3{Client: srv.Client(), Bucket: "anchors", Prefix: "tfsh/prod"}
	want := testAnchors()
	for _, a := range want {
		if err := sink.WriteAnchor(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// Never overwritten: the same anchor again is refused.
	if err := sink.WriteAnchor(ctx, want[0]); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second write of an anchor: err = %v, want it refused", err)
	}
	got, err := sink.ReadAnchors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d anchors, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || !got[i].At.Equal(want[i].At) || got[i].Sig != want[i].Sig {
			t.Fatalf("anchor %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
