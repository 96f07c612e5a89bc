package auditgen

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// Version changes whenever the same Options would generate a different
// log; caches are keyed by it.
const Version = 1

// DefaultEnd is when generated logs end unless Options.End says otherwise.
var DefaultEnd = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

// Options says what to generate. Zero fields take the defaults.
type Options struct {
	// Events is how many events to write, exactly (default 10,000).
	Events int
	// End and Span place the log in time: sessions start in the Span
	// (default 30 days) before End (default DefaultEnd); the last ones may
	// end a few minutes after it.
	End  time.Time
	Span time.Duration
	// Users is how many people and CI runners run tfsh (default 40; a
	// fifth of them CI runners, with CI metadata).
	Users int
	// StateKeys is how many states they work on (default 50; one in six a
	// person's local sandbox, the rest S3 keys bucket/env/app/terraform.tfstate).
	StateKeys int
	// Seed makes a log: the same options and seed give the same events
	// (apart from IDs, which are random ULIDs as tfsh writes them).
	Seed uint64
	// Contention is the share of episodes with lock trouble (default
	// 0.03; negative for none): commands that meet a lock held by someone
	// else and wait for it, fail at once or give up; killed applies whose
	// orphaned lock is force-unlocked and checked; holds; crashed sessions.
	Contention float64
	// Output is the share of commands whose output is stored (default
	// 0.1; negative for none). Output costs generation time and space, and
	// the chain covers only its digest.
	Output float64
}

func (o *Options) defaults() {
	if o.Events <= 0 {
		o.Events = 10_000
	}
	if o.End.IsZero() {
		o.End = DefaultEnd
	}
	if o.Span <= 0 {
		o.Span = 30 * 24 * time.Hour
	}
	if o.Users <= 0 {
		o.Users = 40
	}
	if o.Users < 2 {
		o.Users = 2
	}
	if o.StateKeys <= 0 {
		o.StateKeys = 50
	}
	if o.Contention == 0 {
		o.Contention = 0.03
	}
	if o.Output == 0 {
		o.Output = 0.1
	}
}

// Stats says what was written.
type Stats struct {
	Events   int            `json:"events"`
	Sessions int            `json:"sessions"`
	Commands int            `json:"commands"`
	Kinds    map[string]int `json:"kinds"`
	// Episodes by what happened in them (plan, apply, pipeline,
	// contention, orphan, hold, crash, refused, idle).
	Episodes map[string]int `json:"episodes"`
	First    time.Time      `json:"first"`
	Last     time.Time      `json:"last"`
	Elapsed  time.Duration  `json:"elapsed"`
}

// Generate writes a log of opt.Events events into db, through the same
// calls tfsh makes (StartSession, StartCommand, AppendAt, Later, End), with
// db.Now replaced by a simulated clock for the duration. It is meant for an
// empty log: the crash detection of StartSession runs as usual, and would
// close live sessions of the generated hosts it found there.
//
// Crash detection asks the real machine whether a session's process is
// alive: the generated PIDs carry start tokens no real process has, so on
// Linux they are always found dead and generation is deterministic.
func Generate(ctx context.Context, db *audit.DB, opt Options) (Stats, error) {
	opt.defaults()
	start := time.Now()
	g := &gen{ctx: ctx, db: db, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x7f5a_1e3d_9c2b_4a61)),
		stats: Stats{Kinds: map[string]int{}, Episodes: map[string]int{}}}
	g.actors, g.keys = newWorld(g.rng, opt.Users, opt.StateKeys)
	g.begin = opt.End.Add(-opt.Span)
	g.clock.Store(g.begin.UnixNano())
	saved := db.Now
	db.Now = func() time.Time { return time.Unix(0, g.clock.Load()).UTC() }
	defer func() { db.Now = saved }()

	before, err := head(ctx, db)
	if err != nil {
		return g.stats, err
	}
	err = g.run()
	g.stats.Elapsed = time.Since(start)
	if err != nil {
		return g.stats, err
	}
	after, err := head(ctx, db)
	if err != nil {
		return g.stats, err
	}
	g.stats.Events = int(after - before)
	if g.stats.Events != g.planned {
		return g.stats, fmt.Errorf("auditgen: wrote %d events, planned %d", g.stats.Events, g.planned)
	}
	return g.stats, nil
}

type gen struct {
	ctx    context.Context
	db     *audit.DB
	opt    Options
	rng    *rand.Rand
	clock  atomic.Int64
	begin  time.Time
	actors []*actor
	keys   []*stateKey

	ops     opHeap
	nops    uint64
	planned int // events of the episodes committed so far
	stats   Stats
	perEp   float64 // running mean of events per episode
	eps     int
	fill    bool // planning only small sessions, to end on the exact count
}

// op is one call into the audit API at a simulated time.
type op struct {
	at int64
	n  uint64
	fn func() error
}

type opHeap []op

func (h opHeap) Len() int { return len(h) }
func (h opHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].n < h[j].n
}
func (h opHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *opHeap) Push(x any)   { *h = append(*h, x.(op)) }
func (h *opHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// run plans episodes in order of their start and executes every call in
// order of its time, so that the chain is in time order as tfsh's is.
func (g *gen) run() error {
	next := g.begin
	for {
		for g.planned < g.opt.Events && (g.ops.Len() == 0 || next.UnixNano() <= g.ops[0].at) {
			next = g.plan(next)
		}
		if g.ops.Len() == 0 {
			return nil
		}
		o := heap.Pop(&g.ops).(op)
		if o.at > g.clock.Load() {
			g.clock.Store(o.at)
		}
		at := time.Unix(0, o.at).UTC()
		if g.stats.First.IsZero() {
			g.stats.First = at
		}
		g.stats.Last = at
		if err := o.fn(); err != nil {
			return err
		}
		if err := g.ctx.Err(); err != nil {
			return err
		}
	}
}

// plan plans one episode starting at or after t and returns when the next
// one starts.
func (g *gen) plan(t time.Time) time.Time {
	remaining := g.opt.Events - g.planned
	const reserve = 300 // more than any episode writes
	if !g.fill && remaining <= reserve {
		g.fill = true
	}
	if g.fill {
		return g.planFill(t, remaining)
	}
	for {
		ep := &episode{g: g}
		kind := g.episode(ep, t)
		if kind == "" || g.planned+ep.events > g.opt.Events-reserve/2 {
			// Nobody free, or too large to leave room for the exact end:
			// try again a little later.
			if kind != "" && g.planned+ep.events > g.opt.Events-reserve/2 {
				g.fill = true
				return t
			}
			t = t.Add(time.Duration(1+g.rng.IntN(60)) * time.Second)
			continue
		}
		g.commit(ep, kind)
		return g.after(t)
	}
}

// after returns the start of the next episode: arrivals thin out at night
// and at weekends, and the pace adapts so that the events end near End.
func (g *gen) after(t time.Time) time.Time {
	remaining := float64(g.opt.Events - g.planned)
	left := g.opt.End.Sub(t).Seconds()
	if left < 60 {
		left = 60
	}
	per := g.perEp
	if per == 0 {
		per = 12
	}
	episodes := math.Max(1, remaining/per)
	mean := left / episodes * meanActivity
	for {
		t = t.Add(time.Duration(g.rng.ExpFloat64() * mean * float64(time.Second)))
		if g.rng.Float64() < activity(t) {
			return t
		}
	}
}

// activity is how busy the team is at t, between 0 and 1.
func activity(t time.Time) float64 {
	h := t.Hour() // UTC; the team works 08:00 to 18:00 UTC or so
	wd := t.Weekday()
	weekend := wd == time.Saturday || wd == time.Sunday
	switch {
	case weekend:
		return 0.08
	case h >= 8 && h < 18:
		return 1
	case h >= 6 && h < 21:
		return 0.35
	}
	return 0.1
}

// meanActivity is activity averaged over a week.
var meanActivity = func() float64 {
	sum := 0.0
	base := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	for h := 0; h < 7*24; h++ {
		sum += activity(base.Add(time.Duration(h) * time.Hour))
	}
	return sum / (7 * 24)
}()

func (g *gen) commit(ep *episode, kind string) {
	for _, o := range ep.ops {
		heap.Push(&g.ops, o)
	}
	g.planned += ep.events
	for _, k := range ep.kinds {
		g.stats.Kinds[k]++
	}
	g.stats.Episodes[kind]++
	g.eps++
	g.perEp += (float64(ep.events) - g.perEp) / float64(g.eps)
}

// planFill ends the log on the exact count with small sessions.
func (g *gen) planFill(t time.Time, remaining int) time.Time {
	if remaining <= 0 {
		return t
	}
	for {
		ep := &episode{g: g}
		var ok bool
		switch {
		case remaining >= 9 || remaining == 5 || remaining == 7:
			ok = g.quickSession(ep, t) // 5 events
		default:
			ok = g.idleSession(ep, t) // 2 events
		}
		if ok {
			g.commit(ep, map[bool]string{true: "quick", false: "idle"}[ep.events == 5])
			// Spread what is left over the time that is left.
			left := g.opt.End.Sub(t)
			gap := time.Duration(float64(left) / math.Max(1, float64(remaining-ep.events)/4))
			return t.Add(time.Duration(g.rng.ExpFloat64() * float64(max(gap, 10*time.Second))))
		}
		t = t.Add(time.Duration(1+g.rng.IntN(60)) * time.Second)
	}
}

// head is the sequence number of the newest event (0 for an empty log).
func head(ctx context.Context, db *audit.DB) (int64, error) {
	var n int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the audit log's head: %w", err)
	}
	return n, nil
}
