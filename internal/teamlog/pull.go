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
// whose hash does not cover it, stops the pull with an error. Items are
// decoded as their pages arrive; what is kept until the import is the
// events and chunks themselves.
func (p *Puller) Pull(ctx context.Context, db *audit.DB, f PullFilter) (*PullResult, error) {
	items, err := p.read(ctx, f)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Items: len(items), Origins: []OriginCount{}}
	evs := map[string][]audit.Event{}
	chunks := map[string][]audit.OutputChunk{}
	for _, d := range items {
		if d.event != nil {
			evs[d.origin] = append(evs[d.origin], *d.event)
		} else {
			chunks[d.origin] = append(chunks[d.origin], *d.chunk)
		}
	}
	items = nil
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
		delete(evs, o)
		delete(chunks, o)
	}
	return res, nil
}

// read runs the queries f needs, in parallel, and returns every item
// once, decoded.
func (p *Puller) read(ctx context.Context, f PullFilter) ([]decoded, error) {
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
	seen := &sync.Map{}
	switch {
	case f.SessionID != "":
		queries = append(queries, query(IndexBySession, attrSessionID, f.SessionID))
	case f.StateKey != "":
		// Whole sessions: the state's events, then every session they
		// belong to (its start says who and where).
		items, err := p.run(ctx, []*dynamodb.QueryInput{query(IndexByState, attrStateKey, f.StateKey)}, seen)
		if err != nil {
			return nil, err
		}
		return p.wholeSessions(ctx, items, seen, func(map[string]bool, string) bool { return true }, query)
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
		items, err := p.run(ctx, queries, seen)
		if err != nil {
			return nil, err
		}
		// A session that began before Since comes whole: its events then
		// arrive in their order, whatever was pulled before.
		return p.wholeSessions(ctx, items, seen, func(started map[string]bool, id string) bool { return !started[id] }, query)
	default:
		// No start: the whole table, up to Until if given.
		return p.scan(ctx, hi)
	}
	return p.run(ctx, queries, seen)
}

// wholeSessions adds to items every item of the sessions that want
// chooses among those the items belong to (started: the sessions whose
// session_start is among them).
func (p *Puller) wholeSessions(ctx context.Context, items []decoded, seen *sync.Map, want func(started map[string]bool, id string) bool,
	query func(index, attr, value string) *dynamodb.QueryInput) ([]decoded, error) {
	started := map[string]bool{}
	for _, d := range items {
		if d.event != nil && d.event.Kind == audit.KindSessionStart {
			started[d.session] = true
		}
	}
	asked := map[string]bool{}
	queries := []*dynamodb.QueryInput{}
	for _, d := range items {
		if d.session == "" || asked[d.session] || !want(started, d.session) {
			continue
		}
		asked[d.session] = true
		q := query(IndexBySession, attrSessionID, d.session)
		q.ExpressionAttributeValues[":lo"], q.ExpressionAttributeValues[":hi"] = s(""), s("~")
		queries = append(queries, q)
	}
	more, err := p.run(ctx, queries, seen)
	if err != nil {
		return nil, err
	}
	return append(items, more...), nil
}

// run pages through the queries, Parallel at a time, and returns their
// items decoded, each once (seen: the keys already returned).
func (p *Puller) run(ctx context.Context, queries []*dynamodb.QueryInput, seen *sync.Map) ([]decoded, error) {
	par := p.Parallel
	if par <= 0 {
		par = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   []decoded
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	for _, q := range queries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pg := dynamodb.NewQueryPaginator(p.Client, q)
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				if err != nil {
					fail(fmt.Errorf("query dynamodb://%s (%s): %w", p.Table, aws.ToString(q.IndexName), err))
					return
				}
				ds, err := p.decodePage(page.Items, seen)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				out = append(out, ds...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, first
}

// decodePage decodes a page's items, leaving out those already seen.
func (p *Puller) decodePage(items []map[string]types.AttributeValue, seen *sync.Map) ([]decoded, error) {
	out := make([]decoded, 0, len(items))
	for _, it := range items {
		d, err := decodeItem(it)
		if err != nil {
			return nil, fmt.Errorf("pull from dynamodb://%s: %w", p.Table, err)
		}
		if seen != nil {
			if _, dup := seen.LoadOrStore(d.key(), true); dup {
				continue
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// scanSegments splits a whole-table read.
const scanSegments = 4

// scan reads the whole table, in parallel segments (a scan returns each
// item once), keeping the items whose at_id is before hi.
func (p *Puller) scan(ctx context.Context, hi string) ([]decoded, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   []decoded
		first error
		wg    sync.WaitGroup
	)
	for seg := int32(0); seg < scanSegments; seg++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &dynamodb.ScanInput{
				TableName: aws.String(p.Table), Segment: aws.Int32(seg), TotalSegments: aws.Int32(scanSegments),
			}
			if hi != "~" {
				in.FilterExpression = aws.String("#r < :hi")
				in.ExpressionAttributeNames = map[string]string{"#r": attrAtID}
				in.ExpressionAttributeValues = map[string]types.AttributeValue{":hi": s(hi)}
			}
			pg := dynamodb.NewScanPaginator(p.Client, in)
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				if err == nil {
					var ds []decoded
					if ds, err = p.decodePage(page.Items, nil); err == nil {
						mu.Lock()
						out = append(out, ds...)
						mu.Unlock()
						continue
					}
				} else {
					err = fmt.Errorf("scan dynamodb://%s: %w", p.Table, err)
				}
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	return out, first
}
