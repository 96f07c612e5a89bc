package teamlog

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
)

// PullFilter chooses what Pull reads; the zero value reads the whole
// table.
type PullFilter struct {
	Since, Until time.Time // at in [Since, Until); zero for open
	StateKey     string    // the sessions with an event on this state
	SessionID    string    // one session
}

// OriginCount is what Pull added of one log's events.
type OriginCount struct {
	LogID   string `json:"log_id"`
	Added   int    `json:"added"`
	Skipped int    `json:"skipped"`
	Chunks  int    `json:"output_chunks"`
}

// PullResult is what Pull read and added, per origin (sorted by log ID).
type PullResult struct {
	Items   int           `json:"items"`
	Origins []OriginCount `json:"origins"`
}

// Puller reads events from the table into a local log.
type Puller struct {
	Client API
	Table  string
	// Parallel bounds the queries in flight (default 8).
	Parallel int
	// Now is the clock for an open Until (default time.Now).
	Now func() time.Time
}

// importBatch is how many events go into one transaction.
const importBatch = 5000

// Pull reads the items f selects and imports them into db (audit.Import:
// deduplicated by event ID). An item tfsh did not write, or an event
// whose hash does not cover it, stops the pull with an error.
func (p *Puller) Pull(ctx context.Context, db *audit.DB, f PullFilter) (*PullResult, error) {
	items, err := p.read(ctx, f)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Items: len(items), Origins: []OriginCount{}}
	evs := map[string][]audit.Event{}
	chunks := map[string][]audit.OutputChunk{}
	for _, it := range items {
		d, err := decodeItem(it)
		if err != nil {
			return res, fmt.Errorf("pull from dynamodb://%s: %w", p.Table, err)
		}
		if d.event != nil {
			evs[d.origin] = append(evs[d.origin], *d.event)
		} else {
			chunks[d.origin] = append(chunks[d.origin], *d.chunk)
		}
	}
	origins := make([]string, 0, len(evs)+len(chunks))
	for o := range evs {
		origins = append(origins, o)
	}
	for o := range chunks {
		if _, ok := evs[o]; !ok {
			origins = append(origins, o)
		}
	}
	sort.Strings(origins)
	for _, o := range origins {
		es := evs[o]
		sort.Slice(es, func(i, j int) bool { return es[i].OriginSeq < es[j].OriginSeq })
		oc := OriginCount{LogID: o, Chunks: len(chunks[o])}
		cs := chunks[o]
		for i := 0; i < len(es) || cs != nil; i += importBatch {
			part := es[min(i, len(es)):min(i+importBatch, len(es))]
			added, skipped, err := db.Import(ctx, o, part, cs)
			if err != nil {
				return res, err
			}
			cs = nil
			oc.Added += added
			oc.Skipped += skipped
		}
		res.Origins = append(res.Origins, oc)
	}
	return res, nil
}

// read runs the queries f needs, in parallel, and returns every item
// once.
func (p *Puller) read(ctx context.Context, f PullFilter) ([]map[string]types.AttributeValue, error) {
	lo, hi := "", "~"
	if !f.Since.IsZero() {
		lo = fmt.Sprintf("%020d", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		hi = fmt.Sprintf("%020d", f.Until.UnixNano())
	}
	var queries []*dynamodb.QueryInput
	query := func(index, attr, value string) *dynamodb.QueryInput {
		return &dynamodb.QueryInput{
			TableName:                aws.String(p.Table),
			IndexName:                aws.String(index),
			KeyConditionExpression:   aws.String("#h = :h AND #r BETWEEN :lo AND :hi"),
			ExpressionAttributeNames: map[string]string{"#h": attr, "#r": attrAtID},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":h": s(value), ":lo": s(lo), ":hi": s(hi),
			},
		}
	}
	switch {
	case f.SessionID != "":
		queries = append(queries, query(IndexBySession, attrSessionID, f.SessionID))
	case f.StateKey != "":
		// Whole sessions: the state's events, then every session they
		// belong to (its start says who and where).
		items, err := p.run(ctx, []*dynamodb.QueryInput{query(IndexByState, attrStateKey, f.StateKey)})
		if err != nil {
			return nil, err
		}
		return p.wholeSessions(ctx, items, func(map[string]bool, string) bool { return true }, query)
	case !f.Since.IsZero():
		until := f.Until
		if until.IsZero() {
			now := time.Now
			if p.Now != nil {
				now = p.Now
			}
			until = now().Add(24 * time.Hour) // clocks disagree a little
		}
		for d := f.Since.UTC().Truncate(24 * time.Hour); d.Before(until); d = d.Add(24 * time.Hour) {
			queries = append(queries, query(IndexByDay, attrDay, day(d)))
		}
		items, err := p.run(ctx, queries)
		if err != nil {
			return nil, err
		}
		// A session that began before Since comes whole: its events then
		// arrive in their order, whatever was pulled before.
		return p.wholeSessions(ctx, items, func(started map[string]bool, id string) bool { return !started[id] }, query)
	default:
		return p.scan(ctx)
	}
	return p.run(ctx, queries)
}

// wholeSessions adds to items every event of the sessions want chooses
// among those items belong to (started: the sessions whose
// session_start is among them).
func (p *Puller) wholeSessions(ctx context.Context, items []map[string]types.AttributeValue, want func(started map[string]bool, id string) bool,
	query func(index, attr, value string) *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	started := map[string]bool{}
	for _, it := range items {
		k, _ := it["kind"].(*types.AttributeValueMemberS)
		id, _ := it[attrSessionID].(*types.AttributeValueMemberS)
		if k != nil && id != nil && k.Value == audit.KindSessionStart {
			started[id.Value] = true
		}
	}
	seen := map[string]bool{}
	queries := []*dynamodb.QueryInput{}
	for _, it := range items {
		id, ok := it[attrSessionID].(*types.AttributeValueMemberS)
		if !ok || seen[id.Value] || !want(started, id.Value) {
			continue
		}
		seen[id.Value] = true
		q := query(IndexBySession, attrSessionID, id.Value)
		q.ExpressionAttributeValues[":lo"], q.ExpressionAttributeValues[":hi"] = s(""), s("~")
		queries = append(queries, q)
	}
	more, err := p.run(ctx, queries)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(items))
	for _, it := range items {
		have[keyOf(it)] = true
	}
	for _, it := range more {
		if !have[keyOf(it)] {
			items = append(items, it)
		}
	}
	return items, nil
}

// run pages through the queries, Parallel at a time, and returns their
// items, each key once.
func (p *Puller) run(ctx context.Context, queries []*dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	par := p.Parallel
	if par <= 0 {
		par = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   []map[string]types.AttributeValue
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
		seen  = map[string]bool{}
	)
	for _, q := range queries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pg := dynamodb.NewQueryPaginator(p.Client, q)
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				mu.Lock()
				if err != nil {
					if first == nil {
						first = fmt.Errorf("query dynamodb://%s (%s): %w", p.Table, aws.ToString(q.IndexName), err)
						cancel()
					}
					mu.Unlock()
					return
				}
				for _, it := range page.Items {
					k := keyOf(it)
					if !seen[k] {
						seen[k] = true
						out = append(out, it)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, first
}

func keyOf(it map[string]types.AttributeValue) string {
	pk, _ := it[attrPK].(*types.AttributeValueMemberS)
	sk, _ := it[attrSK].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return ""
	}
	return pk.Value + "\x00" + sk.Value
}

// scanSegments splits a whole-table read.
const scanSegments = 4

// scan reads the whole table, in parallel segments.
func (p *Puller) scan(ctx context.Context) ([]map[string]types.AttributeValue, error) {
	var (
		mu    sync.Mutex
		out   []map[string]types.AttributeValue
		first error
		wg    sync.WaitGroup
	)
	for seg := int32(0); seg < scanSegments; seg++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pg := dynamodb.NewScanPaginator(p.Client, &dynamodb.ScanInput{
				TableName: aws.String(p.Table), Segment: aws.Int32(seg), TotalSegments: aws.Int32(scanSegments),
			})
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				mu.Lock()
				if err != nil {
					if first == nil {
						first = fmt.Errorf("scan dynamodb://%s: %w", p.Table, err)
					}
					mu.Unlock()
					return
				}
				out = append(out, page.Items...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, first
}
