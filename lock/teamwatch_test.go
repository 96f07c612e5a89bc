package lock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// fakeTeam is an in-memory lock table and bucket for the diff logic; the
// integration tests use the real SDK against the lab's servers.
type fakeTeam struct {
	items              map[string]string // LockID → Info
	objects            map[string]string // key → body
	etags              map[string]int
	failScan, failList bool
	failGet            map[string]bool
	gets               int
	pageSize           int
}

func newFakeTeam() *fakeTeam {
	return &fakeTeam{items: map[string]string{}, objects: map[string]string{}, etags: map[string]int{}, failGet: map[string]bool{}, pageSize: 2}
}

func (f *fakeTeam) put(key, body string) { f.objects[key] = body; f.etags[key]++ }

func (f *fakeTeam) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if f.failScan {
		return nil, errors.New("connection refused")
	}
	var ids []string
	for id := range f.items {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	startAfter := ""
	if k, ok := in.ExclusiveStartKey["LockID"].(*dtypes.AttributeValueMemberS); ok {
		startAfter = k.Value
	}
	out := &dynamodb.ScanOutput{}
	for _, id := range ids {
		if startAfter != "" && id <= startAfter {
			continue
		}
		if len(out.Items) == f.pageSize {
			out.LastEvaluatedKey = map[string]dtypes.AttributeValue{"LockID": out.Items[len(out.Items)-1]["LockID"]}
			break
		}
		item := map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: id}}
		if strings.HasSuffix(id, "-md5") {
			item["Digest"] = &dtypes.AttributeValueMemberS{Value: f.items[id]}
		} else {
			item["Info"] = &dtypes.AttributeValueMemberS{Value: f.items[id]}
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

func (f *fakeTeam) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeTeam) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeTeam) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("not used")
}

func (f *fakeTeam) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if f.failList {
		return nil, errors.New("connection refused")
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for k, body := range f.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), ETag: aws.String(fmt.Sprintf(`"%d"`, f.etags[k])), Size: aws.Int64(int64(len(body))), LastModified: aws.Time(time.Unix(1, 0))})
		}
	}
	return out, nil
}

func (f *fakeTeam) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.gets++
	k := aws.ToString(in.Key)
	if f.failGet[k] {
		return nil, errors.New("timed out")
	}
	body, ok := f.objects[k]
	if !ok {
		return nil, &s3types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader([]byte(body))), ETag: aws.String(fmt.Sprintf(`"%d"`, f.etags[k]))}, nil
}
func (f *fakeTeam) DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeTeam) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, errors.New("not used")
}

func infoJSON(id, who string, created time.Time) string {
	s, _ := Info{ID: id, Operation: "OperationTypeApply", Who: who, Version: "1.5.7", Created: created, Path: "b/k"}.JSON()
	return s
}

// events renders a poll's transitions as "kind state id [mechanisms]".
func events(evs []TeamEvent) string {
	var out []string
	for _, e := range evs {
		s := fmt.Sprintf("%s %s %s %v", e.Kind, e.Lock.StateKey, e.Lock.ID, e.Lock.Mechanisms)
		if e.Replaced {
			s += " replaced"
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestTableWatcherTransitions(t *testing.T) {
	f := newFakeTeam()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := newTableWatcher(TeamSpec{Table: "locks", Bucket: "b", Prefix: "env/"}, f, f)
	w.now = func() time.Time { return now }
	tick := func() ([]TeamEvent, []error) { now = now.Add(time.Second); return w.Poll(context.Background()) }

	// At start: one lock in the table (and its digest item, skipped), one
	// in both mechanisms, which is one lock.
	f.items["b/env/a.tfstate"] = infoJSON("A", "alice@h", now.Add(-time.Hour))
	f.items["b/env/a.tfstate-md5"] = "0123"
	f.items["b/env/both.tfstate"] = infoJSON("B", "bob@h", now.Add(-time.Minute))
	f.put("env/both.tfstate.tflock", infoJSON("B", "bob@h", now.Add(-time.Minute)))
	f.put("other/x.tfstate.tflock", infoJSON("X", "x@h", now)) // outside the prefix
	evs, probs := tick()
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if got, want := events(evs), "held at start b/env/a.tfstate A [dynamodb]; held at start b/env/both.tfstate B [dynamodb s3-lockfile]"; got != want {
		t.Fatalf("first poll: %s, want %s", got, want)
	}
	if got := evs[0].Lock.Since; !got.Equal(now.Add(-time.Hour - time.Second)) {
		t.Fatalf("held at start: Since=%v, want its Created", got)
	}
	gets := f.gets

	// Nothing changed: no events, and the unchanged object is not read again.
	if evs, _ := tick(); len(evs) != 0 {
		t.Fatalf("unchanged: %s", events(evs))
	}
	if f.gets != gets {
		t.Fatalf("an unchanged .tflock was read again (%d reads, want %d)", f.gets, gets)
	}

	// A failed scan and a failed listing are no releases.
	f.failScan, f.failList = true, true
	delete(f.items, "b/env/a.tfstate")
	evs, probs = tick()
	if len(evs) != 0 || len(probs) != 2 {
		t.Fatalf("failed reads: events %q, problems %v", events(evs), probs)
	}
	f.failScan, f.failList = false, false

	// Now the release is seen; a lock whose ID changed between two polls
	// is a release and an acquisition.
	f.items["b/env/both.tfstate"] = infoJSON("C", "carol@h", now.Add(time.Second))
	f.put("env/both.tfstate.tflock", infoJSON("C", "carol@h", now.Add(time.Second)))
	evs, probs = tick()
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if got, want := events(evs), "released b/env/a.tfstate A [dynamodb]; released b/env/both.tfstate B [dynamodb s3-lockfile] replaced; acquired b/env/both.tfstate C [dynamodb s3-lockfile] replaced"; got != want {
		t.Fatalf("after changes: %s\nwant %s", got, want)
	}
	if l := evs[2].Lock; !l.Since.Equal(now) || l.AtStart {
		t.Fatalf("fresh lock: Since=%v AtStart=%v, want Created %v", l.Since, l.AtStart, now)
	}

	// One mechanism lets go first (terraform ≥1.10 with both): still held.
	delete(f.items, "b/env/both.tfstate")
	if evs, _ := tick(); len(evs) != 0 {
		t.Fatalf("half released: %s", events(evs))
	}
	// A failed read of a changed object keeps what it showed.
	f.put("env/both.tfstate.tflock", infoJSON("C", "carol@h", now))
	f.failGet["env/both.tfstate.tflock"] = true
	if evs, probs := tick(); len(evs) != 0 || len(probs) != 1 {
		t.Fatalf("failed object read: events %q, problems %v", events(evs), probs)
	}
	delete(f.failGet, "env/both.tfstate.tflock")
	delete(f.objects, "env/both.tfstate.tflock")
	if got, want := events(must(tick())), "released b/env/both.tfstate C [dynamodb s3-lockfile]"; got != want {
		t.Fatalf("released: %s, want %s", got, want)
	}

	// An old Created on a fresh lock (terraform waited, then took it): the
	// time it was first seen.
	f.items["b/env/a.tfstate"] = infoJSON("D", "dave@h", now.Add(-time.Hour))
	evs = must(tick())
	if len(evs) != 1 || !evs[0].Lock.Since.Equal(now) {
		t.Fatalf("stale Created: %s, Since %v, want %v", events(evs), evs[0].Lock.Since, now)
	}
	// An unreadable record is a problem, not a lock (and not a release).
	f.items["b/env/a.tfstate"] = "{not json"
	evs, probs = tick()
	if got := events(evs); got != "released b/env/a.tfstate D [dynamodb]" || len(probs) != 1 {
		t.Fatalf("unreadable: %s, %v", got, probs)
	}
	if w.Requests() == 0 {
		t.Fatal("no requests counted")
	}
}

func must(evs []TeamEvent, probs []error) []TeamEvent {
	if len(probs) > 0 {
		panic(fmt.Sprint(probs))
	}
	return evs
}

func TestTableWatcherPaginates(t *testing.T) {
	f := newFakeTeam()
	for i := range 5 {
		f.items[fmt.Sprintf("b/k%d", i)] = infoJSON(fmt.Sprint(i), "w", time.Now())
	}
	w := newTableWatcher(TeamSpec{Table: "locks"}, f, nil)
	evs := must(w.Poll(context.Background()))
	if len(evs) != 5 {
		t.Fatalf("got %d locks, want 5: %s", len(evs), events(evs))
	}
	if got := w.Requests(); got != 3 {
		t.Fatalf("requests=%d, want 3 (pages of 2)", got)
	}
}

// TestTableWatcherEnvOnly: the AWS SDK's own environment (AWS_ENDPOINT_URL_DYNAMODB,
// AWS_ENDPOINT_URL_S3, keys, region) is enough to reach the lab's dynalite and gofakes3;
// a lock in both mechanisms is one lock, under the state key tfsh's commands use
// (workspace prefix included).
func TestTableWatcherEnvOnly(t *testing.T) {
	dyn, srv := labtest.Dynamo(t), labtest.S3(t)
	ctx := context.Background()
	ref, bucket, table := s3Ref(t, dyn, srv, true, true)
	ref.Workspace = "stage"
	ref.Key = stateKey(ref)
	env := map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": dyn.URL(), "AWS_ENDPOINT_URL_S3": srv.URL(),
		"AWS_ACCESS_KEY_ID": lab.AccessKeyID, "AWS_SECRET_ACCESS_KEY": lab.SecretAccessKey, "AWS_REGION": "us-east-1",
	}
	for k, v := range env {
		t.Setenv(k, v) // the SDK reads the process environment itself
	}
	w, err := NewTableWatcher(ctx, TeamSpec{Table: table, Bucket: bucket}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if evs, probs := w.Poll(ctx); len(evs) != 0 || len(probs) != 0 {
		t.Fatalf("empty: %s %v", events(evs), probs)
	}
	putItem(t, dyn, table, ref.Key, map[string]dtypes.AttributeValue{"Info": &dtypes.AttributeValueMemberS{Value: infoFor("WS-1")}})
	putObject(t, srv, bucket, strings.TrimPrefix(ref.Key, bucket+"/")+".tflock", infoFor("WS-1"))
	evs, probs := w.Poll(ctx)
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	if got, want := events(evs), "acquired "+ref.Key+" WS-1 [dynamodb s3-lockfile]"; got != want {
		t.Fatalf("poll: %s, want %s", got, want)
	}
}

// A watcher whose first polls fail has seen no start yet: what it first
// reads was there at start, not taken then.
func TestTableWatcherFailedStart(t *testing.T) {
	f := newFakeTeam()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := newTableWatcher(TeamSpec{Table: "locks"}, f, nil)
	w.now = func() time.Time { return now }
	f.failScan = true
	if evs, probs := w.Poll(context.Background()); len(evs) != 0 || len(probs) != 1 {
		t.Fatalf("failed first poll: %s %v", events(evs), probs)
	}
	f.failScan = false
	f.items["b/k"] = infoJSON("OLD", "a@h", now.Add(-time.Hour))
	now = now.Add(time.Second)
	evs := must(w.Poll(context.Background()))
	if len(evs) != 1 || evs[0].Kind != TeamHeldAtStart || !evs[0].Lock.Since.Equal(now.Add(-time.Hour-time.Second)) {
		t.Fatalf("first good poll: %s, since %v", events(evs), evs[0].Lock.Since)
	}
}
