package anchor_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/anchor"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

func TestDynamoAnchors(t *testing.T) {
	ctx := context.Background()
	srv := labtest.Dynamo(t)
	c := srv.Client()
	if err := anchor.CreateTable(ctx, c, "anchors"); err != nil {
		t.Fatal(err)
	}
	sink := &anchor.Dynamo{Client: c, Table: "anchors", Prefix: "prod"}
	other := &anchor.Dynamo{Client: c, Table: "anchors", Prefix: "dev"}
	want := testAnchors()
	for _, a := range want {
		if err := sink.WriteAnchor(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.WriteAnchor(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	if err := sink.WriteAnchor(ctx, want[1]); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second write of an anchor: err = %v, want it refused", err)
	}
	got, err := sink.ReadAnchors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b audit.Anchor) int { return int(a.Seq - b.Seq) })
	if len(got) != len(want) {
		t.Fatalf("read %d anchors, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || !got[i].At.Equal(want[i].At) || got[i].Sig != want[i].Sig {
			t.Fatalf("anchor %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
