package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TeamSpec says what a TableWatcher reads: a DynamoDB lock table, the
// .tflock objects under a prefix of a bucket, or both.
type TeamSpec struct {
	Table  string // DynamoDB lock table; "" for none
	Bucket string // S3 bucket of .tflock objects; "" for none
	Prefix string // key prefix within Bucket; "" for the whole bucket
	// PathStyle addresses the bucket in the path (loopback and most
	// S3-compatible servers); AWS itself takes either.
	PathStyle bool
}

// The consumer-owned slices of the AWS clients a TableWatcher uses: reads,
// and the deletes of an expired hold's release.
type teamDynamo interface {
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	dynamoWriter
}

type teamS3 interface {
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	s3Writer
}

// TeamLock is one lock a TableWatcher sees: one lock ID on one state,
// however many mechanisms show it.
type TeamLock struct {
	StateKey   string      // bucket/key, as StateRef.Key names the state
	ID         string      // the LockInfo ID
	Info       *Info       // the LockInfo, from the first mechanism read
	Mechanisms []Mechanism // where it was seen
	Where      []string    // dynamodb://table/LockID, s3://bucket/key.tflock
	FirstSeen  time.Time   // the poll that first saw it
	LastSeen   time.Time   // the last poll that saw it
	// Since is the best estimate of when it was taken: its Created, unless
	// that is older than the last poll that did not see it (terraform
	// writes Created once, when it first tries; a command that waited took
	// the lock later), then FirstSeen. For a lock present at the first
	// poll, Created.
	Since time.Time
	// AtStart: present when the watcher started (at the first poll that
	// read every mechanism, or before it), so when it was taken is known
	// only from Created.
	AtStart bool
}

// TeamEvent is one transition a poll saw.
type TeamEvent struct {
	Kind string // TeamAcquired, TeamReleased or TeamHeldAtStart
	Lock TeamLock
	At   time.Time // the poll that saw it
	// Replaced: a release or acquisition where another lock ID took the
	// state between two polls (a release and an acquisition together).
	Replaced bool
}

// Kinds of TeamEvent.
const (
	TeamAcquired    = "acquired"
	TeamReleased    = "released"
	TeamHeldAtStart = "held at start"
)

// TableWatcher polls a lock table and a bucket's .tflock objects for every
// lock anyone takes: tfsh, plain terraform and tofu, CI runners. It only
// reads, except ReleaseExpired. It is not safe for concurrent use.
type TableWatcher struct {
	spec   TeamSpec
	dynamo teamDynamo
	s3     teamS3
	now    func() time.Time

	requests atomic.Int64
	primed   bool      // a poll has read every mechanism
	lastGood time.Time // the last poll that read every mechanism
	// The last good reading of each mechanism: a failed read keeps it.
	items   map[string]record   // by DynamoDB LockID
	objects map[string]s3Cached // by object key
	locks   map[lockKey]*TeamLock
}

type lockKey struct{ state, id string }

type record struct {
	stateKey string
	where    string
	info     *Info
	err      error // unreadable record: not a lock tfsh can name
}

type s3Cached struct {
	etag string
	mod  time.Time
	size int64
	rec  record
}

// NewTableWatcher builds the watcher's clients from the AWS SDK's own
// configuration: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB,
// AWS_ENDPOINT_URL_S3, profiles, regions and the credential chain. It does
// not contact any server.
func NewTableWatcher(ctx context.Context, spec TeamSpec, getenv Getenv) (*TableWatcher, error) {
	if spec.Table == "" && spec.Bucket == "" {
		return nil, errors.New("nothing to watch: give a lock table, a bucket, or both")
	}
	c := map[string]string{}
	if spec.PathStyle {
		c["use_path_style"] = "true"
	}
	set := awsSettings(c, getenv)
	cfg, err := awsConfig(ctx, set, nil, getenv)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	w := newTableWatcher(spec, nil, nil)
	if spec.Table != "" {
		w.dynamo = newDynamo(cfg, set)
	}
	if spec.Bucket != "" {
		w.s3 = newS3(cfg, set)
	}
	return w, nil
}

func newTableWatcher(spec TeamSpec, d teamDynamo, s teamS3) *TableWatcher {
	return &TableWatcher{spec: spec, dynamo: d, s3: s, now: time.Now,
		items: map[string]record{}, objects: map[string]s3Cached{}, locks: map[lockKey]*TeamLock{}}
}

// Requests is how many requests the watcher has sent.
func (w *TableWatcher) Requests() int64 { return w.requests.Load() }

// Locks returns the locks the last poll saw, by state key then ID.
func (w *TableWatcher) Locks() []TeamLock {
	out := make([]TeamLock, 0, len(w.locks))
	for _, l := range w.locks {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].StateKey != out[j].StateKey {
			return out[i].StateKey < out[j].StateKey
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Poll reads every mechanism once and returns the transitions since the
// last poll, and the problems met. A mechanism (or an object) that could
// not be read keeps what it showed last: a failed read is never a release.
// Records that cannot be read as LockInfo are problems, not locks.
func (w *TableWatcher) Poll(ctx context.Context) ([]TeamEvent, []error) {
	now := w.now()
	var problems []error
	if w.spec.Table != "" {
		items, err := w.scanTable(ctx)
		if err != nil {
			problems = append(problems, err)
		} else {
			w.items = items
		}
	}
	if w.spec.Bucket != "" {
		problems = append(problems, w.listObjects(ctx)...)
	}
	// Until one poll has read everything, what is there was there at
	// start; and Created is judged against the last poll that read
	// everything, not one that missed a mechanism.
	readAll := len(problems) == 0
	first := !w.primed
	seen := map[lockKey]*TeamLock{}
	add := func(m Mechanism, r record) {
		if r.info == nil {
			return
		}
		k := lockKey{r.stateKey, r.info.ID}
		l := seen[k]
		if l == nil {
			l = &TeamLock{StateKey: r.stateKey, ID: r.info.ID, Info: r.info}
			seen[k] = l
		}
		l.Mechanisms = append(l.Mechanisms, m)
		l.Where = append(l.Where, r.where)
	}
	for _, r := range w.items {
		if r.err != nil {
			problems = append(problems, r.err)
		}
		add(DynamoDB, r)
	}
	for _, o := range w.objects {
		if o.rec.err != nil {
			problems = append(problems, o.rec.err)
		}
		add(S3Lockfile, o.rec)
	}

	var evs []TeamEvent
	// Releases first: on a state whose lock changed hands between two
	// polls, the release comes before the acquisition.
	goneAt := map[string]bool{} // states where a lock ID went
	for k := range w.locks {
		if seen[k] == nil {
			goneAt[k.state] = true
		}
	}
	replaced := map[string]bool{}
	for k := range seen {
		if _, ok := w.locks[k]; !ok && goneAt[k.state] {
			replaced[k.state] = true
		}
	}
	var gone []lockKey
	for k := range w.locks {
		if seen[k] == nil {
			gone = append(gone, k)
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		return gone[i].state < gone[j].state || gone[i].state == gone[j].state && gone[i].id < gone[j].id
	})
	for _, k := range gone {
		evs = append(evs, TeamEvent{Kind: TeamReleased, Lock: *w.locks[k], At: now, Replaced: replaced[k.state]})
	}
	var fresh []lockKey
	for k, l := range seen {
		prev, ok := w.locks[k]
		if ok {
			// Where it was seen over its life: terraform ≥1.10 with both
			// mechanisms lets go of one a moment before the other.
			l.Mechanisms = union(l.Mechanisms, prev.Mechanisms)
			for _, wh := range prev.Where {
				if !slices.Contains(l.Where, wh) {
					l.Where = append(l.Where, wh)
				}
			}
		}
		sort.Slice(l.Mechanisms, func(i, j int) bool { return l.Mechanisms[i] < l.Mechanisms[j] })
		sort.Strings(l.Where)
		if ok {
			l.FirstSeen, l.Since, l.AtStart = prev.FirstSeen, prev.Since, prev.AtStart
			l.LastSeen = now
			continue
		}
		l.FirstSeen, l.LastSeen, l.AtStart = now, now, first
		l.Since = now
		switch created := l.Info.Created; {
		case created.IsZero():
		case first, !created.Before(w.lastGood.Add(-staleCreatedSlack)):
			l.Since = created
		}
		fresh = append(fresh, k)
	}
	sort.Slice(fresh, func(i, j int) bool {
		return fresh[i].state < fresh[j].state || fresh[i].state == fresh[j].state && fresh[i].id < fresh[j].id
	})
	for _, k := range fresh {
		kind := TeamAcquired
		if first {
			kind = TeamHeldAtStart
		}
		evs = append(evs, TeamEvent{Kind: kind, Lock: *seen[k], At: now, Replaced: replaced[k.state]})
	}
	w.locks = seen
	if readAll {
		w.primed, w.lastGood = true, now
	}
	return evs, problems
}

// staleCreatedSlack allows for clocks: a Created a little before the last
// poll that did not see the lock is still when it was taken.
const staleCreatedSlack = 2 * time.Second

// scanTable reads every item of the lock table (paginated, consistent);
// LockIDs ending in -md5 are state digests, not locks.
func (w *TableWatcher) scanTable(ctx context.Context) (map[string]record, error) {
	out := map[string]record{}
	var start map[string]dtypes.AttributeValue
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		w.requests.Add(1)
		page, err := w.dynamo.Scan(rctx, &dynamodb.ScanInput{TableName: aws.String(w.spec.Table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("scan lock table %s: %w", w.spec.Table, awsProblem(err))
		}
		for _, item := range page.Items {
			id, _ := item["LockID"].(*dtypes.AttributeValueMemberS)
			if id == nil || strings.HasSuffix(id.Value, "-md5") {
				continue
			}
			r := record{stateKey: id.Value, where: "dynamodb://" + w.spec.Table + "/" + id.Value}
			if s, ok := item["Info"].(*dtypes.AttributeValueMemberS); ok {
				r.info, r.err = ParseInfo(r.where, []byte(s.Value))
			} else {
				r.err = &InfoError{Where: r.where, Err: errors.New("no string Info attribute")}
			}
			out[id.Value] = r
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// listObjects lists the bucket's .tflock objects under the prefix and reads
// the new or changed ones (by ETag, LastModified and size). A failed
// listing keeps the last one; a failed read keeps that object's last
// reading.
func (w *TableWatcher) listObjects(ctx context.Context) []error {
	var problems []error
	listed := map[string]s3Cached{}
	var token *string
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		w.requests.Add(1)
		page, err := w.s3.ListObjectsV2(rctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.spec.Bucket), Prefix: aws.String(w.spec.Prefix), ContinuationToken: token})
		cancel()
		if err != nil {
			return append(problems, fmt.Errorf("list s3://%s/%s: %w", w.spec.Bucket, w.spec.Prefix, awsProblem(err)))
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if !strings.HasSuffix(key, ".tflock") {
				continue
			}
			listed[key] = s3Cached{etag: aws.ToString(obj.ETag), mod: aws.ToTime(obj.LastModified), size: aws.ToInt64(obj.Size)}
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		token = page.NextContinuationToken
	}
	next := map[string]s3Cached{}
	for key, l := range listed {
		if old, ok := w.objects[key]; ok && old.etag == l.etag && old.mod.Equal(l.mod) && old.size == l.size {
			next[key] = old
			continue
		}
		rec, etag, err := w.readObject(ctx, key)
		switch {
		case errors.Is(err, errNoObject):
			continue // released between the listing and the read
		case err != nil:
			problems = append(problems, err)
			if old, ok := w.objects[key]; ok {
				next[key] = old
			}
			continue
		}
		if etag != "" {
			l.etag = etag
		}
		l.rec = rec
		next[key] = l
	}
	w.objects = next
	return problems
}

var errNoObject = errors.New("no such object")

func (w *TableWatcher) readObject(ctx context.Context, key string) (record, string, error) {
	r := record{stateKey: w.spec.Bucket + "/" + strings.TrimSuffix(key, ".tflock"), where: "s3://" + w.spec.Bucket + "/" + key}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	w.requests.Add(1)
	out, err := w.s3.GetObject(rctx, &s3.GetObjectInput{Bucket: aws.String(w.spec.Bucket), Key: aws.String(key)})
	if notFound(err) {
		return r, "", errNoObject
	}
	if err != nil {
		return r, "", fmt.Errorf("read lock object %s: %w", r.where, awsProblem(err))
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return r, "", fmt.Errorf("read lock object %s: %w", r.where, err)
	}
	r.info, r.err = ParseInfo(r.where, data)
	return r, aws.ToString(out.ETag), nil
}

// ReleaseExpired releases l when it is a change-freeze hold whose time is
// up at now, with the compare-and-delete tfsh hold uses: the records are
// read again, and removed only if unchanged. released is false, with no
// error, when l is no expired hold (any more).
func (w *TableWatcher) ReleaseExpired(ctx context.Context, l TeamLock, now time.Time) (until time.Time, where []string, released bool, err error) {
	if until, ok := HoldExpiry(l.Info); !ok || now.Before(until) {
		return until, nil, false, nil
	}
	o := &s3Observer{bucket: w.spec.Bucket, lockID: l.StateKey}
	for _, m := range l.Mechanisms {
		switch m {
		case DynamoDB:
			o.table, o.dynamo = w.spec.Table, &countingDynamo{w.dynamo, &w.requests}
		case S3Lockfile:
			o.object = strings.TrimPrefix(l.StateKey, w.spec.Bucket+"/") + ".tflock"
			o.s3 = &countingS3{w.s3, &w.requests}
		}
	}
	ed := &s3Editor{o: o}
	recs, err := ed.Records(ctx)
	if err != nil {
		return until, nil, false, err
	}
	return ReleaseExpiredHold(ctx, ed, recs, now)
}

// countingDynamo and countingS3 count an editor's requests into the
// watcher's total, and give it the observer interfaces it expects.
type countingDynamo struct {
	c teamDynamo
	n *atomic.Int64
}

func (c *countingDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, f ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.n.Add(1)
	return c.c.GetItem(ctx, in, f...)
}
func (c *countingDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, f ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.n.Add(1)
	return c.c.Scan(ctx, in, f...)
}
func (c *countingDynamo) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, f ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.n.Add(1)
	return c.c.DeleteItem(ctx, in, f...)
}
func (c *countingDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, f ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.n.Add(1)
	return c.c.PutItem(ctx, in, f...)
}

type countingS3 struct {
	c teamS3
	n *atomic.Int64
}

func (c *countingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, f ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.n.Add(1)
	return c.c.GetObject(ctx, in, f...)
}
func (c *countingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, f ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.n.Add(1)
	return c.c.ListObjectsV2(ctx, in, f...)
}
func (c *countingS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, f ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	c.n.Add(1)
	return c.c.DeleteObject(ctx, in, f...)
}
func (c *countingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, f ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.n.Add(1)
	return c.c.PutObject(ctx, in, f...)
}
