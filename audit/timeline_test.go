package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// logBuilder writes a deterministic log through the real API, with the
// clock set before each write.
type logBuilder struct {
	t   testing.TB
	db  *audit.DB
	now time.Time
}

func newLogBuilder(t testing.TB) *logBuilder {
	b := &logBuilder{t: t, db: MustOpenDB(t)}
	b.db.Now = func() time.Time { return b.now }
	return b
}

func (b *logBuilder) session(at time.Time, user string) *audit.Session {
	b.t.Helper()
	b.now = at
	info := testInfo()
	info.User = user
	s, _, err := b.db.StartSession(context.Background(), info, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *logBuilder) command(s *audit.Session, at time.Time, state, line string) *audit.Command {
	b.t.Helper()
	b.now = at
	argv := strings.Fields(line)
	c, err := s.StartCommand(context.Background(), audit.CommandInfo{Line: line, Typed: argv, Effective: argv, Subcommand: argv[0], StateKey: state},
		audit.Decision{Action: "allow"})
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

// lockInfo is a lock event's data: terraform's LockInfo of lock id.
func lockInfo(id, op, who string, created time.Time) map[string]any {
	return map[string]any{"source": "backend", "info": map[string]any{"ID": id, "Operation": "OperationType" + op, "Who": who, "Created": created}}
}

func (b *logBuilder) event(c *audit.Command, at time.Time, kind, lockID string, data any) {
	b.t.Helper()
	if err := c.AppendAt(context.Background(), at, kind, lockID, data); err != nil {
		b.t.Fatal(err)
	}
}

func (b *logBuilder) end(c *audit.Command, at time.Time, end audit.CommandEnd) {
	b.t.Helper()
	b.now = at
	if err := c.End(context.Background(), end); err != nil {
		b.t.Fatal(err)
	}
}

func (b *logBuilder) endSession(s *audit.Session, at time.Time) {
	b.t.Helper()
	b.now = at
	if err := s.End(context.Background(), audit.SessionEnd{Status: "ok"}); err != nil {
		b.t.Fatal(err)
	}
}

// A day of lock activity on two states, around a range [T0+10m, T0+70m).
func timelineLog(t *testing.T) (*audit.DB, time.Time) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	b := newLogBuilder(t)
	const k, other = "b/k", "b/other"

	// Long before the range: a lock taken and released (not drawn), and a
	// lock orphaned and never removed (held across the whole range).
	s := b.session(at(-25*time.Hour), "old")
	c := b.command(s, at(-25*time.Hour), k, "apply")
	b.event(c, at(-25*time.Hour), "lock_acquired", "L0", lockInfo("L0", "Apply", "old@box", at(-25*time.Hour)))
	b.event(c, at(-25*time.Hour+time.Minute), "lock_released", "L0", nil)
	b.end(c, at(-25*time.Hour+time.Minute), audit.CommandEnd{Status: "ok"})
	c = b.command(s, at(-24*time.Hour), other, "apply")
	b.event(c, at(-24*time.Hour), "lock_acquired", "L5", lockInfo("L5", "Apply", "old@box", at(-24*time.Hour)))
	b.event(c, at(-24*time.Hour+time.Minute), "lock_orphaned", "L5", lockInfo("L5", "Apply", "old@box", at(-24*time.Hour)))
	b.end(c, at(-24*time.Hour+time.Minute), audit.CommandEnd{Status: "killed", ExitCode: -1, Signal: "killed"})
	b.endSession(s, at(-24*time.Hour+time.Minute))

	// An apply taken before the range, released in it; a plan waits for
	// it and then takes its own lock; a plan gives up at once.
	a := b.session(at(0), "alice")
	ac := b.command(a, at(0), k, "apply -auto-approve")
	b.event(ac, at(0), "lock_acquired", "L1", lockInfo("L1", "Apply", "alice@box", at(0)))
	bob := b.session(at(12*time.Minute), "bob")
	bc := b.command(bob, at(12*time.Minute), k, "plan -lock-timeout=10m")
	b.event(bc, at(12*time.Minute), "lock_wait", "L1", lockInfo("L1", "Apply", "alice@box", at(0)))
	carol := b.session(at(15*time.Minute), "carol")
	cc := b.command(carol, at(15*time.Minute), k, "plan")
	b.event(cc, at(15*time.Minute), "lock_contention", "L1", lockInfo("L1", "Apply", "alice@box", at(0)))
	b.end(cc, at(15*time.Minute), audit.CommandEnd{Status: "failed", ExitCode: 1})
	b.endSession(carol, at(15*time.Minute))
	b.event(ac, at(20*time.Minute), "lock_released", "L1", nil)
	b.end(ac, at(20*time.Minute), audit.CommandEnd{Status: "ok"})
	b.endSession(a, at(20*time.Minute))
	b.event(bc, at(20*time.Minute+time.Second), "lock_wait_end", "L1", map[string]any{"ended": "released"})
	// terraform wrote the plan's LockInfo when it first tried, at 12m.
	b.event(bc, at(21*time.Minute), "lock_acquired", "L2", lockInfo("L2", "Plan", "bob@box", at(12*time.Minute)))
	b.event(bc, at(22*time.Minute), "lock_released", "L2", nil)
	b.end(bc, at(22*time.Minute), audit.CommandEnd{Status: "ok"})
	b.endSession(bob, at(22*time.Minute))

	// An apply killed: orphaned, then force-unlocked with a reason.
	d := b.session(at(30*time.Minute), "dave")
	dc := b.command(d, at(30*time.Minute), k, "apply")
	b.event(dc, at(30*time.Minute), "lock_acquired", "L3", lockInfo("L3", "Apply", "dave@box", at(30*time.Minute)))
	b.event(dc, at(31*time.Minute), "lock_orphaned", "L3", lockInfo("L3", "Apply", "dave@box", at(30*time.Minute)))
	b.end(dc, at(31*time.Minute), audit.CommandEnd{Status: "killed", ExitCode: -1, Signal: "killed"})
	b.endSession(d, at(31*time.Minute))
	e := b.session(at(40*time.Minute), "erin")
	ec := b.command(e, at(40*time.Minute), k, "force-unlock -force L3")
	fu := lockInfo("L3", "Apply", "dave@box", at(30*time.Minute))
	fu["reason"], fu["who"], fu["method"] = "INC-1 <script>", "erin@box", "conditional delete"
	b.event(ec, at(40*time.Minute), "force_unlock", "L3", fu)
	b.end(ec, at(40*time.Minute), audit.CommandEnd{Status: "ok"})
	b.now = at(41 * time.Minute)
	if err := e.Append(context.Background(), "integrity_check", k, "L3", map[string]any{"verdict": "no drift"}); err != nil {
		t.Fatal(err)
	}
	b.endSession(e, at(41*time.Minute))

	// A change-freeze hold, placed and released.
	f := b.session(at(50*time.Minute), "frank")
	fc := b.command(f, at(50*time.Minute), k, "hold")
	b.event(fc, at(50*time.Minute), "hold_placed", "H1", map[string]any{"who": "frank@box", "reason": "freeze", "info": map[string]any{"ID": "H1", "Operation": "tfsh-hold", "Who": "frank@box", "Created": at(50 * time.Minute)}})
	b.event(fc, at(55*time.Minute), "hold_released", "H1", map[string]any{"who": "frank@box", "reason": "freeze"})
	b.end(fc, at(55*time.Minute), audit.CommandEnd{Status: "ok"})
	b.endSession(f, at(55*time.Minute))

	// An apply still running at the range's end.
	g := b.session(at(65*time.Minute), "gina")
	gc := b.command(g, at(65*time.Minute), k, "apply")
	b.event(gc, at(65*time.Minute), "lock_acquired", "L4", lockInfo("L4", "Apply", "gina@box", at(65*time.Minute)))
	return b.db, t0
}

func TestTimeline(t *testing.T) {
	db, t0 := timelineLog(t)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	since, until := at(10*time.Minute), at(70*time.Minute)
	tl, err := db.Timeline(context.Background(), audit.TimelineQuery{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.States) != 2 || tl.States[0].StateKey != "b/k" || tl.States[1].StateKey != "b/other" {
		t.Fatalf("states = %+v, want b/k and b/other", tl.States)
	}
	k, other := tl.States[0], tl.States[1]

	rel := func(tm time.Time) string { return tm.Sub(t0).String() }
	var holds []string
	for _, h := range k.Holds {
		s := fmt.Sprintf("%s %s(%s) %s-%s %s", h.LockID, h.Holder.Operation, h.Holder.Who, rel(h.From), rel(h.Until), h.Ending)
		if h.StartsBefore {
			s += " starts-before"
		}
		if h.EndsAfter {
			s += " ends-after"
		}
		if h.OrphanedAt != nil {
			s += " orphaned@" + rel(*h.OrphanedAt)
		}
		holds = append(holds, s)
	}
	want := []string{
		"L1 apply(alice@box) 10m0s-20m0s released starts-before",
		"L2 plan(bob@box) 21m0s-22m0s released", // taken when seen, not at its stale Created
		"L3 apply(dave@box) 30m0s-40m0s force-unlocked orphaned@31m0s",
		"H1 hold(frank@box) 50m0s-55m0s hold released",
		"L4 apply(gina@box) 1h5m0s-1h10m0s still held ends-after",
	}
	if got := strings.Join(holds, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("holds on b/k:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if h := k.Holds[0]; !h.Start.Equal(t0) || h.End == nil || !h.End.Equal(at(20*time.Minute)) || !h.Holder.Recorded || h.Subcommand != "apply" {
		t.Fatalf("L1 keeps its real start and end and its command: %+v", h)
	}
	if h := k.Holds[4]; !h.Open || h.End != nil {
		t.Fatalf("L4 is open: %+v", h)
	}

	var waits []string
	for _, w := range k.Waits {
		waits = append(waits, fmt.Sprintf("%s %s %s-%s %s held by %s", w.LockID, w.Waiter.Who, rel(w.From), rel(w.Until), w.Waiter.Outcome, w.Holder))
	}
	want = []string{
		"L1 bob@box 12m0s-21m0s acquired held by alice@box", // until it took its own lock (L2)
		"L1 carol@box 15m0s-15m0s failed held by alice@box",
	}
	if got := strings.Join(waits, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("waits on b/k:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	var markers []string
	for _, m := range k.Markers {
		markers = append(markers, fmt.Sprintf("%s %s %s by %s outcome=%q reason=%q detail=%q verified=%q holder=%s", rel(m.At), m.Kind, m.LockID, m.By.Who, m.Outcome, m.Reason, m.Detail, m.Verified, m.Holder))
	}
	want = []string{
		`15m0s contention L1 by carol@box outcome="failed" reason="" detail="" verified="" holder=alice@box`,
		`31m0s orphaned L3 by dave@box outcome="" reason="" detail="terraform was killed by SIGKILL" verified="" holder=dave@box`,
		`40m0s force-unlock L3 by erin@box outcome="" reason="INC-1 <script>" detail="conditional delete" verified="no drift" holder=dave@box`,
		`50m0s hold-placed H1 by frank@box outcome="" reason="freeze" detail="" verified="" holder=frank@box`,
		`55m0s hold-released H1 by frank@box outcome="" reason="freeze" detail="" verified="" holder=`,
	}
	if got := strings.Join(markers, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("markers on b/k:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// Nothing in the range names L5: it is found as held at the start.
	if len(other.Holds) != 1 || len(other.Waits)+len(other.Markers) != 0 {
		t.Fatalf("b/other = %+v, want only L5's hold", other)
	}
	if h := other.Holds[0]; h.LockID != "L5" || !h.From.Equal(since) || !h.Until.Equal(until) || !h.StartsBefore || !h.EndsAfter || !h.Open ||
		h.Ending != "orphaned" || h.OrphanedAt == nil || !h.OrphanedAt.Equal(at(-24*time.Hour+time.Minute)) {
		t.Fatalf("L5 = %+v, want orphaned, drawn across the whole range", h)
	}

	// One state; and a lookback shorter than L5's age does not find it.
	tl, err = db.Timeline(context.Background(), audit.TimelineQuery{Since: since, Until: until, StateKey: "b/other", Lookback: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.States) != 0 {
		t.Fatalf("b/other with a 1h lookback = %+v, want nothing", tl.States)
	}
	tl, err = db.Timeline(context.Background(), audit.TimelineQuery{Since: since, Until: until, StateKey: "b/other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.States) != 1 || tl.States[0].StateKey != "b/other" {
		t.Fatalf("--state b/other = %+v", tl.States)
	}

	// A range with nothing in it.
	tl, err = db.Timeline(context.Background(), audit.TimelineQuery{Since: at(-20 * time.Hour), Until: at(-19 * time.Hour), StateKey: "b/k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.States) != 0 {
		t.Fatalf("empty range = %+v", tl.States)
	}
}
