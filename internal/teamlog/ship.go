package teamlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
)

// API is what shipping and pulling use of a DynamoDB client.
type API interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Shipper sends this log's own events (and their commands' output) to the
// table, after the log's ship cursor for the table, and moves the cursor.
type Shipper struct {
	DB     *audit.DB
	Client API
	// Connect, if Client is nil, makes the client at the first Ship: the
	// SDK's set-up (reading ~/.aws) then happens in the background, not
	// in a session's start.
	Connect func(context.Context) (API, error)
	Table   string
	// TTL, if set, makes shipped items expire this long after their
	// event (the table's expiry must be on: init-table --ttl-days).
	TTL time.Duration
	// Concurrency bounds the puts in flight (default 16).
	Concurrency int
	// Batch is how many events are read from the log at a time (default 1000).
	Batch int

	logID string
}

// Sink is the name of the table as the ship cursor knows it.
func (s *Shipper) Sink() string { return Scheme + s.Table }

// KindConflict is the audit event a session writes when shipping meets a
// conflict (data: ConflictError's fields).
const KindConflict = "audit_conflict"

// ConflictError reports an event whose key in the table holds another
// event: a copied log shipping under the same ID, or a forged item.
// Shipping stops before it; the cursor never passes it.
type ConflictError struct {
	Table  string `json:"table"`
	Key    string `json:"key"`
	Seq    int64  `json:"seq"`
	Have   string `json:"ours"`   // our event's hash
	Stored string `json:"stored"` // the table's item's hash
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("dynamodb://%s already holds a different item at %s (event %d: ours hashes to %.12s…, the table's to %.12s…): shipping stops there; is this log a copy of another (same log ID)? see docs/audit.md \"Conflicts\"",
		e.Table, e.Key, e.Seq, e.Have, e.Stored)
}

// ShipResult counts what one Ship did.
type ShipResult struct {
	Shipped int   // events put
	Already int   // events the table held already (identical)
	Chunks  int   // output chunks put or already there
	Cursor  int64 // the cursor afterwards
	Left    int64 // own events still to ship
}

// Ship sends every own event after the cursor, in batches, puts in
// parallel. The cursor moves to the end of each batch that went through
// whole; at the first failure the cursor stays before it, and the error
// (a *ConflictError for a conflict) is returned with the counts so far.
func (s *Shipper) Ship(ctx context.Context) (res ShipResult, err error) {
	if s.Client == nil {
		if s.Connect == nil {
			return res, errors.New("shipper without a client")
		}
		if s.Client, err = s.Connect(ctx); err != nil {
			return res, err
		}
	}
	if s.logID == "" {
		id, err := s.DB.LogID(ctx)
		if err != nil {
			return res, err
		}
		s.logID = id
	}
	cursor, err := s.DB.ShipCursor(ctx, s.Sink())
	if err != nil {
		return res, err
	}
	res.Cursor = cursor
	batch := s.Batch
	if batch <= 0 {
		batch = 1000
	}
	defer func() {
		if n, cerr := s.DB.CountLocalAfter(context.WithoutCancel(ctx), res.Cursor); cerr == nil {
			res.Left = n
		}
	}()
	for {
		evs, err := s.DB.LocalEvents(ctx, res.Cursor, batch)
		if err != nil {
			return res, err
		}
		if len(evs) == 0 {
			return res, nil
		}
		done, err := s.shipBatch(ctx, evs, &res)
		if done > 0 {
			if cerr := s.DB.AdvanceShipCursor(context.WithoutCancel(ctx), s.Sink(), evs[done-1].Seq); cerr != nil && err == nil {
				err = cerr
			}
			res.Cursor = evs[done-1].Seq
		}
		if err != nil {
			return res, err
		}
	}
}

// shipBatch puts the events (and, before each command_end, its output) in
// parallel and returns how many from the start of evs are in the table.
func (s *Shipper) shipBatch(ctx context.Context, evs []audit.Event, res *ShipResult) (int, error) {
	workers := s.Concurrency
	if workers <= 0 {
		workers = 16
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(evs))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for w := 0; w < workers && w < len(evs); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(evs) || ctx.Err() != nil {
					return
				}
				already, chunks, err := s.shipEvent(ctx, &evs[i])
				mu.Lock()
				switch {
				case err != nil:
					errs[i] = err
					cancel() // the rest waits for the next try
				case already:
					res.Already++
				default:
					res.Shipped++
				}
				res.Chunks += chunks
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// The cursor stops at the first event that failed, for whatever
	// reason; the error reported is the one that stopped the others.
	done, cause := -1, error(nil)
	for i, err := range errs {
		if err == nil {
			continue
		}
		if done < 0 {
			done = i
		}
		if cause == nil && !errors.Is(err, context.Canceled) {
			cause = err
		}
		if cause == nil && i == len(errs)-1 {
			cause = err
		}
	}
	if done >= 0 {
		if cause == nil {
			cause = errs[done]
		}
		return done, cause
	}
	// Cancelled before every event was tried: only the ones before the
	// first untried are known to be there.
	if next < len(evs) {
		return 0, ctx.Err()
	}
	return len(evs), nil
}

func (s *Shipper) expires(at time.Time) int64 {
	if s.TTL <= 0 {
		return 0
	}
	return at.Add(s.TTL).Unix()
}

// shipEvent puts one event, after its command's output if it is a
// command_end.
func (s *Shipper) shipEvent(ctx context.Context, e *audit.Event) (already bool, chunks int, err error) {
	if e.Kind == audit.KindCommandEnd {
		cs, err := s.DB.OutputChunks(ctx, e.CommandID)
		if err != nil {
			return false, 0, err
		}
		for i := range cs {
			it := chunkItem(s.logID, e, &cs[i], s.expires(e.At))
			if _, err := s.put(ctx, it, func(stored map[string]types.AttributeValue) bool {
				b, ok := stored["frames"].(*types.AttributeValueMemberB)
				return ok && bytes.Equal(b.Value, cs[i].Frames)
			}); err != nil {
				return false, chunks, err
			}
			chunks++
		}
	}
	it, err := eventItem(s.logID, e, s.expires(e.At))
	if err != nil {
		return false, chunks, err
	}
	already, err = s.put(ctx, it, func(stored map[string]types.AttributeValue) bool {
		h, ok := stored["hash"].(*types.AttributeValueMemberS)
		return ok && h.Value == e.Hash
	})
	var ce *ConflictError
	if errors.As(err, &ce) {
		ce.Seq, ce.Have = e.Seq, e.Hash
	}
	return already, chunks, err
}

// put writes an item only where there is none. If there is one, same says
// whether it is this one (already shipped: fine); if not, that is a
// conflict.
func (s *Shipper) put(ctx context.Context, it map[string]types.AttributeValue, same func(map[string]types.AttributeValue) bool) (already bool, err error) {
	_, err = s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.Table),
		Item:                     it,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	})
	key := it[attrPK].(*types.AttributeValueMemberS).Value + "/" + it[attrSK].(*types.AttributeValueMemberS).Value
	var cf *types.ConditionalCheckFailedException
	if err == nil {
		return false, nil
	}
	if !errors.As(err, &cf) {
		return false, fmt.Errorf("put %s in dynamodb://%s: %w", key, s.Table, err)
	}
	got, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.Table),
		Key:            map[string]types.AttributeValue{attrPK: it[attrPK], attrSK: it[attrSK]},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, fmt.Errorf("read back %s from dynamodb://%s: %w", key, s.Table, err)
	}
	if same(got.Item) {
		return true, nil
	}
	stored := ""
	if h, ok := got.Item["hash"].(*types.AttributeValueMemberS); ok {
		stored = h.Value
	}
	return false, &ConflictError{Table: s.Table, Key: key, Stored: stored}
}
