package lock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestEditor removes and places lock records on the lab's DynamoDB and S3
// servers: only the record that was read is removed, never one taken in
// between; two removals of one record, exactly one succeeds; a placed
// record never overwrites a lock.
func TestEditor(t *testing.T) {
	dyn, srv := labtest.Dynamo(t), labtest.S3(t)
	ctx := context.Background()
	s := func(v string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: v} }
	noenv := func(string) string { return "" }

	for _, mech := range []Mechanism{DynamoDB, S3Lockfile} {
		t.Run(string(mech), func(t *testing.T) {
			var ref StateRef
			var bucket, table string
			if mech == DynamoDB {
				ref, bucket, table = s3Ref(t, dyn, srv, false, false)
			} else {
				ref, bucket, _ = s3Ref(t, nil, srv, true, true)
			}
			put := func(id string) {
				if mech == DynamoDB {
					putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s(infoFor(id))})
				} else {
					putObject(t, srv, bucket, "app/terraform.tfstate.tflock", infoFor(id))
				}
			}
			ed, err := NewEditor(ctx, ref, noenv)
			if err != nil {
				t.Fatal(err)
			}
			read := func() []Record {
				t.Helper()
				recs, err := ed.Records(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return recs
			}
			if recs := read(); len(recs) != 0 {
				t.Fatalf("free: %+v", recs)
			}

			// Removed when unchanged.
			put("A")
			recs := read()
			if len(recs) != 1 || recs[0].Info.ID != "A" || recs[0].Mechanism != mech {
				t.Fatalf("records = %+v", recs)
			}
			method, err := ed.Remove(ctx, recs[0])
			if err != nil {
				t.Fatal(err)
			}
			wantMethod := Conditional
			if mech == S3Lockfile {
				wantMethod = ReadCompareDelete // gofakes3 ignores If-Match on DELETE, and the probe says so
			}
			if method != wantMethod {
				t.Fatalf("method = %q, want %q", method, wantMethod)
			}
			if recs := read(); len(recs) != 0 {
				t.Fatalf("after remove: %+v", recs)
			}

			// Released and taken by someone else between the read and the
			// removal: refused, the new lock untouched.
			put("A")
			old := read()[0]
			put("B")
			if _, err := ed.Remove(ctx, old); !errors.Is(err, ErrChanged) {
				t.Fatalf("remove of a replaced lock: %v, want ErrChanged", err)
			}
			if now := read(); len(now) != 1 || now[0].Info.ID != "B" {
				t.Fatalf("the new lock was touched: %+v", now)
			}

			// Two removals of the same record: exactly one succeeds, the
			// other finds it gone.
			rec := read()[0]
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() { defer wg.Done(); _, errs[i] = ed.Remove(ctx, rec) }()
			}
			wg.Wait()
			ok, gone := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrGone), errors.Is(err, ErrChanged) && mech == S3Lockfile:
					gone++
				default:
					t.Fatalf("concurrent remove: %v", err)
				}
			}
			if mech == DynamoDB && (ok != 1 || gone != 1) {
				t.Fatalf("concurrent removes: %d succeeded, %d found it gone; want exactly one of each (%v)", ok, gone, errs)
			}
			if recs := read(); len(recs) != 0 {
				t.Fatalf("after concurrent removes: %+v", recs)
			}

			// Place: only where no lock is.
			hold := NewInfo("tfsh-hold", "change freeze", "ann@laptop", "tfsh", "app/terraform.tfstate", time.Now())
			placed, err := ed.Place(ctx, hold)
			if err != nil || len(placed) != 1 {
				t.Fatalf("Place = %+v, %v", placed, err)
			}
			if now := read(); len(now) != 1 || now[0].Info.ID != hold.ID || now[0].Info.Operation != "tfsh-hold" || now[0].Info.Info != "change freeze" {
				t.Fatalf("placed record reads back as %+v", now)
			}
			if _, err := ed.Place(ctx, NewInfo("tfsh-hold", "again", "bob", "tfsh", "", time.Now())); !errors.Is(err, ErrHeld) {
				t.Fatalf("Place over a lock: %v, want ErrHeld", err)
			}
			if now := read(); now[0].Info.ID != hold.ID {
				t.Fatalf("a second Place overwrote the hold: %+v", now)
			}
			if _, err := ed.Remove(ctx, placed[0]); err != nil {
				t.Fatalf("release the hold: %v", err)
			}
			if mech == S3Lockfile {
				out, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out.Contents {
					if strings.Contains(aws.ToString(o.Key), "tfsh-probe") {
						t.Fatalf("the probe object was left behind: %s", aws.ToString(o.Key))
					}
				}
			}
		})
	}

	t.Run("both mechanisms: a hold is all or nothing", func(t *testing.T) {
		ref, bucket, table := s3Ref(t, dyn, srv, true, true)
		ed, err := NewEditor(ctx, ref, noenv)
		if err != nil {
			t.Fatal(err)
		}
		// Someone holds the DynamoDB lock (terraform 1.10 with both).
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s(infoFor("X"))})
		if _, err := ed.Place(ctx, NewInfo("tfsh-hold", "freeze", "ann", "tfsh", "", time.Now())); !errors.Is(err, ErrHeld) {
			t.Fatalf("Place = %v, want ErrHeld", err)
		}
		recs, err := ed.Records(ctx)
		if err != nil || len(recs) != 1 || recs[0].Mechanism != DynamoDB || recs[0].Info.ID != "X" {
			t.Fatalf("records after a refused Place = %+v, %v: the lockfile part must be undone", recs, err)
		}
		if _, err := dyn.Client().DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: map[string]dtypes.AttributeValue{"LockID": s(bucket + "/app/terraform.tfstate")}}); err != nil {
			t.Fatal(err)
		}
		placed, err := ed.Place(ctx, NewInfo("tfsh-hold", "freeze", "ann", "tfsh", "", time.Now()))
		if err != nil || len(placed) != 2 {
			t.Fatalf("Place on both = %+v, %v", placed, err)
		}
	})
	t.Run("local state has no editor", func(t *testing.T) {
		ref, _ := localRef(t)
		var ue *UnsupportedError
		if _, err := NewEditor(ctx, ref, noenv); !errors.As(err, &ue) {
			t.Fatalf("NewEditor(local) = %v, want UnsupportedError", err)
		}
	})
}
