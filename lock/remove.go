package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Record is one lock record exactly as read: what a compare-and-delete
// must find unchanged to remove it.
type Record struct {
	Mechanism Mechanism
	Where     string
	Info      *Info
	raw       string // the DynamoDB Info attribute, or the .tflock body
	etag      string // the .tflock object's ETag
}

// Errors of Remove and Place.
var (
	// ErrChanged: the record is not the one that was read; it was left
	// untouched (someone released and someone took the lock in between).
	ErrChanged = errors.New("the lock changed since it was read")
	// ErrGone: there is no record any more (it was released, or removed by
	// someone else).
	ErrGone = errors.New("the lock is gone")
	// ErrHeld: Place found a lock already there.
	ErrHeld = errors.New("the state is locked")
)

// Method says how a record was removed.
type Method string

const (
	// Conditional: the server deleted only if the record was unchanged.
	Conditional Method = "conditional delete"
	// ReadCompareDelete: the server cannot delete conditionally (it ignores
	// If-Match on DELETE), so tfsh read the record, compared it, deleted it
	// and read again. A lock taken in the instant between the read and the
	// delete would be removed with it, undetected; the re-read only makes
	// sure the record is gone.
	ReadCompareDelete Method = "read, compare, delete, re-check"
)

// Editor reads lock records and removes or places them conditionally:
// force-unlock that cannot delete a lock taken a moment ago, and holds
// that cannot overwrite one.
type Editor interface {
	// Records reads the records of every mechanism; a free mechanism has
	// none.
	Records(ctx context.Context) ([]Record, error)
	// Remove deletes rec only if it is unchanged: ErrChanged or ErrGone
	// otherwise, and nothing is touched.
	Remove(ctx context.Context, rec Record) (Method, error)
	// Place creates a lock record with info on every mechanism, only where
	// none exists: ErrHeld if one does (records placed before that are
	// removed again).
	Place(ctx context.Context, info Info) ([]Record, error)
}

// The AWS calls an Editor makes beyond an observer's reads.
type dynamoWriter interface {
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

type s3Writer interface {
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// NewEditor returns the editor of ref's lock. Local state has none:
// terraform's local lock is an fcntl lock that lives and dies with its
// process (see UnsupportedError).
func NewEditor(ctx context.Context, ref StateRef, getenv Getenv) (Editor, error) {
	if ref.Backend != "s3" {
		return nil, &UnsupportedError{Backend: ref.Backend, Reason: "tfsh removes and places lock records on the S3 backend's DynamoDB table and lockfile only"}
	}
	o, err := newS3Observer(ctx, ref, getenv)
	if err != nil {
		return nil, err
	}
	return &s3Editor{o: o}, nil
}

type s3Editor struct {
	o *s3Observer

	mu          sync.Mutex
	conditional *bool // whether the S3 server honours If-Match on DELETE; nil until probed
}

func (e *s3Editor) Records(ctx context.Context) ([]Record, error) {
	var out []Record
	if e.o.object != "" {
		r, err := e.readObject(ctx)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	if e.o.table != "" {
		r, err := e.readItem(ctx)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

func (e *s3Editor) itemKey() map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: e.o.lockID}}
}

func (e *s3Editor) readItem(ctx context.Context) (*Record, error) {
	where := "dynamodb://" + e.o.table + "/" + e.o.lockID
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := e.o.dynamo.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.o.table), Key: e.itemKey(), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read lock item %s: %w", where, awsProblem(err))
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	s, ok := out.Item["Info"].(*dtypes.AttributeValueMemberS)
	if !ok {
		return nil, &InfoError{Where: where, Err: errors.New("no string Info attribute")}
	}
	info, err := ParseInfo(where, []byte(s.Value))
	if err != nil {
		return nil, err
	}
	return &Record{Mechanism: DynamoDB, Where: where, Info: info, raw: s.Value}, nil
}

func (e *s3Editor) readObject(ctx context.Context) (*Record, error) {
	where := "s3://" + e.o.bucket + "/" + e.o.object
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := e.o.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(e.o.object)})
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock object %s: %w", where, awsProblem(err))
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read lock object %s: %w", where, err)
	}
	info, err := ParseInfo(where, data)
	if err != nil {
		return nil, err
	}
	return &Record{Mechanism: S3Lockfile, Where: where, Info: info, raw: string(data), etag: aws.ToString(out.ETag)}, nil
}

func (e *s3Editor) Remove(ctx context.Context, rec Record) (Method, error) {
	switch rec.Mechanism {
	case DynamoDB:
		return Conditional, e.removeItem(ctx, rec)
	case S3Lockfile:
		return e.removeObject(ctx, rec)
	}
	return "", fmt.Errorf("remove %s: unknown mechanism %q", rec.Where, rec.Mechanism)
}

// removeItem deletes the item only if its Info is, byte for byte, the one
// read: terraform's own force-unlock reads, then deletes unconditionally.
func (e *s3Editor) removeItem(ctx context.Context, rec Record) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := e.o.dynamo.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(e.o.table),
		Key:                       e.itemKey(),
		ConditionExpression:       aws.String("#info = :info"),
		ExpressionAttributeNames:  map[string]string{"#info": "Info"},
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":info": &dtypes.AttributeValueMemberS{Value: rec.raw}},
	})
	if conditionFailed(err) {
		now, rerr := e.readItem(ctx)
		switch {
		case rerr != nil:
			return fmt.Errorf("the lock item %s did not match, and re-reading it failed: %w", rec.Where, rerr)
		case now == nil:
			return ErrGone
		}
		return ErrChanged
	}
	if err != nil {
		return fmt.Errorf("delete lock item %s: %w", rec.Where, awsProblem(err))
	}
	return nil
}

func (e *s3Editor) removeObject(ctx context.Context, rec Record) (Method, error) {
	cond, err := e.deletesConditionally(ctx)
	if err != nil {
		return "", err
	}
	if cond {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		_, err := e.o.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(e.o.object), IfMatch: aws.String(rec.etag)})
		switch {
		case conditionFailed(err):
			return Conditional, ErrChanged
		case notFound(err):
			return Conditional, ErrGone
		case err != nil:
			return Conditional, fmt.Errorf("delete lock object %s: %w", rec.Where, awsProblem(err))
		}
		return Conditional, nil
	}
	now, err := e.readObject(ctx)
	switch {
	case err != nil:
		return ReadCompareDelete, err
	case now == nil:
		return ReadCompareDelete, ErrGone
	case now.raw != rec.raw || (rec.etag != "" && now.etag != rec.etag):
		return ReadCompareDelete, ErrChanged
	}
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := e.o.s3.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(e.o.object)}); err != nil {
		return ReadCompareDelete, fmt.Errorf("delete lock object %s: %w", rec.Where, awsProblem(err))
	}
	// Re-check: the record must be gone (a new one, someone's lock taken
	// just after, is theirs).
	if after, err := e.readObject(ctx); err == nil && after != nil && after.raw == rec.raw && after.etag == rec.etag {
		return ReadCompareDelete, fmt.Errorf("delete lock object %s: the server answered, but the record is still there", rec.Where)
	}
	return ReadCompareDelete, nil
}

// deletesConditionally finds out, once, whether the S3 server honours
// If-Match on DELETE (AWS does; some compatible servers ignore it and
// delete anyway): it writes a probe object beside the lock and asks to
// delete it with an ETag that cannot match. Only a clear answer is kept:
// an error leaves the question open for the next call.
func (e *s3Editor) deletesConditionally(ctx context.Context) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conditional != nil {
		return *e.conditional, nil
	}
	w := e.o.s3
	probe, err := e.putProbe(ctx)
	if err != nil {
		return false, err
	}
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err = w.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(probe), IfMatch: aws.String(`"00000000000000000000000000000000"`)})
	cond := conditionFailed(err)
	if cond || err != nil {
		w.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(probe)})
	}
	if err != nil && !cond {
		return false, fmt.Errorf("probe conditional deletes on s3://%s: %w", e.o.bucket, awsProblem(err))
	}
	e.conditional = &cond
	return cond, nil
}

// putProbe writes a probe object beside the lock and returns its key.
func (e *s3Editor) putProbe(ctx context.Context) (string, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	probe := e.o.object + ".tfsh-probe-" + hex.EncodeToString(nonce[:])
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := e.o.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(probe), Body: strings.NewReader("probe")}); err != nil {
		return "", fmt.Errorf("probe s3://%s/%s: %w", e.o.bucket, probe, awsProblem(err))
	}
	return probe, nil
}

// createsConditionally finds out whether the S3 server honours
// If-None-Match: * on PUT. Without it a placed record could overwrite a
// lock, so Place refuses on such a server.
func (e *s3Editor) createsConditionally(ctx context.Context) error {
	probe, err := e.putProbe(ctx)
	if err != nil {
		return err
	}
	defer e.o.s3.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(probe)})
	pctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err = e.o.s3.PutObject(pctx, &s3.PutObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(probe), Body: strings.NewReader("again"), IfNoneMatch: aws.String("*")})
	switch {
	case conditionFailed(err):
		return nil
	case err != nil:
		return fmt.Errorf("probe conditional writes on s3://%s: %w", e.o.bucket, awsProblem(err))
	}
	return fmt.Errorf("the S3 server of s3://%s ignores If-None-Match: a placed lock could overwrite someone else's, so tfsh places none there", e.o.bucket)
}

// Place writes info as the lock on every mechanism, each only if none is
// there (DynamoDB attribute_not_exists, S3 If-None-Match: *), so that it
// never overwrites a lock: what plain terraform will then find and refuse
// on.
func (e *s3Editor) Place(ctx context.Context, info Info) ([]Record, error) {
	body, err := info.JSON()
	if err != nil {
		return nil, err
	}
	var placed []Record
	// undo removes what was placed before a refusal; what it cannot remove
	// is said, with the error that stopped the placing.
	undo := func(cause error) error {
		for _, r := range placed {
			if _, err := e.Remove(context.WithoutCancel(ctx), r); err != nil {
				return fmt.Errorf("%w; and the record placed at %s could not be removed again (%v): remove it by hand", cause, r.Where, err)
			}
		}
		return cause
	}
	if e.o.object != "" {
		if err := e.createsConditionally(ctx); err != nil {
			return nil, err
		}
		where := "s3://" + e.o.bucket + "/" + e.o.object
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		out, err := e.o.s3.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String(e.o.bucket), Key: aws.String(e.o.object),
			Body: strings.NewReader(body), IfNoneMatch: aws.String("*"), ContentType: aws.String("application/json")})
		cancel()
		if conditionFailed(err) {
			return nil, ErrHeld
		}
		if err != nil {
			return nil, fmt.Errorf("place lock object %s: %w", where, awsProblem(err))
		}
		i := info
		placed = append(placed, Record{Mechanism: S3Lockfile, Where: where, Info: &i, raw: body, etag: aws.ToString(out.ETag)})
	}
	if e.o.table != "" {
		where := "dynamodb://" + e.o.table + "/" + e.o.lockID
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := e.o.dynamo.PutItem(cctx, &dynamodb.PutItemInput{
			TableName: aws.String(e.o.table),
			Item: map[string]dtypes.AttributeValue{
				"LockID": &dtypes.AttributeValueMemberS{Value: e.o.lockID},
				"Info":   &dtypes.AttributeValueMemberS{Value: body},
			},
			ConditionExpression: aws.String("attribute_not_exists(LockID)"),
		})
		cancel()
		if conditionFailed(err) {
			return nil, undo(ErrHeld)
		}
		if err != nil {
			return nil, undo(fmt.Errorf("place lock item %s: %w", where, awsProblem(err)))
		}
		i := info
		placed = append(placed, Record{Mechanism: DynamoDB, Where: where, Info: &i, raw: body})
	}
	return placed, nil
}

// conditionFailed reports a condition the server checked and found false:
// DynamoDB's ConditionalCheckFailed, S3's 412 PreconditionFailed (and 409
// ConditionalRequestConflict).
func conditionFailed(err error) bool {
	if err == nil {
		return false
	}
	var ccf *dtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ConditionalCheckFailedException", "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

// NewInfo is a LockInfo as terraform writes it, for a record tfsh places
// (a hold): a fresh ID, now as Created.
func NewInfo(operation, info, who, version, path string, now time.Time) Info {
	var b [16]byte
	rand.Read(b[:])
	id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	return Info{ID: id, Operation: operation, Info: info, Who: who, Version: version, Created: now.UTC(), Path: path}
}
