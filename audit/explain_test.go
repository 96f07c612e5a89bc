package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// incidentLog writes sessions and commands at chosen times, as the
// pipeline would, for explain's tests.
type incidentLog struct {
	t   *testing.T
	db  *audit.DB
	now time.Time
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func newIncidentLog(t *testing.T) *incidentLog {
	l := &incidentLog{t: t, db: MustOpenDB(t), now: t0}
	l.db.Now = func() time.Time { return l.now }
	return l
}

func (l *incidentLog) at(offset time.Duration) { l.now = t0.Add(offset) }

type cmdRec struct {
	s *audit.Session
	c *audit.Command
}

// command starts a session of user@host (ci: CI metadata) with one command.
func (l *incidentLog) command(offset time.Duration, who string, ci map[string]string, state, line string) cmdRec {
	l.t.Helper()
	l.at(offset)
	user, host, _ := strings.Cut(who, "@")
	ctx := context.Background()
	s, _, err := l.db.StartSession(ctx, audit.SessionInfo{Mode: "run", User: user, Host: host, CI: ci}, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	argv := strings.Fields(line)
	c, err := s.StartCommand(ctx, audit.CommandInfo{Line: line, Typed: argv, Effective: argv, Subcommand: argv[0], StateKey: state}, audit.Decision{Action: "allow"})
	if err != nil {
		l.t.Fatal(err)
	}
	return cmdRec{s, c}
}

func (l *incidentLog) event(r cmdRec, offset time.Duration, kind, lockID, data string) {
	l.t.Helper()
	l.at(offset)
	if err := r.c.AppendAt(context.Background(), l.now, kind, lockID, jsonRaw(data)); err != nil {
		l.t.Fatal(err)
	}
}

func (l *incidentLog) end(r cmdRec, offset time.Duration, status string, exit int, signal string) {
	l.t.Helper()
	l.at(offset)
	ctx := context.Background()
	if err := r.c.End(ctx, audit.CommandEnd{Status: status, ExitCode: exit, Signal: signal}); err != nil {
		l.t.Fatal(err)
	}
	if err := r.s.End(ctx, audit.SessionEnd{Status: status, ExitCode: exit}); err != nil {
		l.t.Fatal(err)
	}
}

type jsonRaw string

func (j jsonRaw) MarshalJSON() ([]byte, error) { return []byte(j), nil }

func info(id, op, who string, created time.Duration) string {
	return fmt.Sprintf(`{"info":{"ID":%q,"Operation":%q,"Who":%q,"Created":%q}}`, id, op, who, t0.Add(created).Format(time.RFC3339Nano))
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func explain(t *testing.T, db *audit.DB, q audit.ExplainQuery) *audit.Explanation {
	t.Helper()
	x, err := db.Explain(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// A lock held by someone tfsh did not record (plain terraform): its holder
// comes from the lock record, its end from the waiter who saw it go.
func TestExplainUnrecordedHolder(t *testing.T) {
	l := newIncidentLog(t)
	const lock = "aaaa-1"
	alice := l.command(0, "alice@laptop", nil, "b/prod", "apply -lock-timeout=10m")
	l.event(alice, time.Second, "lock_wait", lock, info(lock, "OperationTypeApply", "carol@ws", -time.Minute))
	bob := l.command(10*time.Second, "bob@ci-7", map[string]string{"provider": "github", "run_id": "77", "job": "deploy", "actor": "bob"}, "b/prod", "plan -lock-timeout=0s")
	l.event(bob, 11*time.Second, "lock_contention", lock, info(lock, "OperationTypeApply", "carol@ws", -time.Minute))
	l.end(bob, 11*time.Second, "failed", 1, "")
	l.event(alice, 31*time.Second, "lock_wait_end", lock, `{"ended":"released","waited_ms":30000}`)
	l.event(alice, 32*time.Second, "lock_acquired", "own-1", info("own-1", "OperationTypeApply", "alice@laptop", 31*time.Second))
	l.event(alice, 40*time.Second, "lock_released", "own-1", `{"held_ms":8000}`)
	l.end(alice, 40*time.Second, "ok", 0, "")

	x := explain(t, l.db, audit.ExplainQuery{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 {
		t.Fatalf("chains = %d, want 1 (alice's own lock kept no one waiting): %+v", len(x.Chains), x.Chains)
	}
	c := x.Chains[0]
	if c.LockID != lock || c.Holder.Who != "carol@ws" || c.Holder.Recorded || c.Holder.Operation != "apply" {
		t.Fatalf("holder = %+v, want carol@ws's apply, not recorded", c.Holder)
	}
	if !c.Start.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("start = %v, want the lock's Created", c.Start)
	}
	if c.Ending.How != "released" || c.Ending.SeenBy != "alice@laptop" || !c.Ending.At.Equal(t0.Add(31*time.Second)) {
		t.Fatalf("ending = %+v, want released at +31s, seen by alice", c.Ending)
	}
	if len(c.Waiters) != 2 {
		t.Fatalf("waiters = %+v", c.Waiters)
	}
	a, b := c.Waiters[0], c.Waiters[1]
	// alice saw the lock go at +31s and took her own at +32s: blocked
	// until then, 1s of it on a free lock.
	if a.Who != "alice@laptop" || a.Outcome != "acquired" || a.BlockedMS != 31000 || a.AfterFreeMS != 1000 || !a.FreeAt.Equal(t0.Add(31*time.Second)) || a.LockTimeout != "10m" {
		t.Fatalf("alice = %+v, want acquired after 31s (1s after the lock was free) with -lock-timeout=10m", a)
	}
	if b.Outcome != "failed" || b.BlockedMS != 0 || b.CI == nil || b.CI.RunID != "77" || b.CI.Actor != "bob" || b.Status != "failed" || *b.ExitCode != 1 {
		t.Fatalf("bob = %+v (ci %+v), want failed at once from GitHub run 77", b, b.CI)
	}
	if c.BlockedMS != 31000 || c.HeldMS != ms(91*time.Second) {
		t.Fatalf("blocked %d held %d, want 31s and 91s", c.BlockedMS, c.HeldMS)
	}
	if len(x.States) != 1 || x.States[0].BlockedMS != 31000 || x.States[0].ByHolder[0].Who != "carol@ws" {
		t.Fatalf("states = %+v", x.States)
	}
}

// Overlapping waits count once in the blocked time and in full in the
// waited time; waits on a change-freeze hold name the hold and its reason.
func TestExplainOverlapsAndHolds(t *testing.T) {
	l := newIncidentLog(t)
	const hold = "hold-1"
	dave := l.command(0, "dave@ops", nil, "b/prod", "hold")
	l.event(dave, 0, "hold_placed", hold, `{"who":"dave@ops","reason":"freeze for the release",`+info(hold, "tfsh-hold", "dave@ops", 0)[1:])
	l.end(dave, time.Second, "ok", 0, "")
	w1 := l.command(10*time.Second, "ann@a", nil, "b/prod", "apply -lock-timeout=30s")
	l.event(w1, 10*time.Second, "lock_wait", hold, info(hold, "tfsh-hold", "dave@ops", 0))
	w2 := l.command(20*time.Second, "ben@b", nil, "b/prod", "apply -lock-timeout=1m")
	l.event(w2, 20*time.Second, "lock_wait", hold, info(hold, "tfsh-hold", "dave@ops", 0))
	l.event(w1, 40*time.Second, "lock_contention", hold, info(hold, "tfsh-hold", "dave@ops", 0))
	l.event(w1, 40*time.Second, "lock_wait_end", hold, `{"ended":"command ended"}`)
	l.end(w1, 40*time.Second, "failed", 1, "")
	l.event(w2, 50*time.Second, "lock_wait_end", hold, `{"ended":"command ended"}`)
	l.end(w2, 50*time.Second, "interrupted", 130, "interrupt")
	dave2 := l.command(60*time.Second, "dave@ops", nil, "b/prod", "hold --release")
	l.event(dave2, 60*time.Second, "hold_released", hold, `{"who":"dave@ops"}`)
	l.end(dave2, 60*time.Second, "ok", 0, "")

	x := explain(t, l.db, audit.ExplainQuery{Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 {
		t.Fatalf("chains = %+v", x.Chains)
	}
	c := x.Chains[0]
	if c.Holder.Who != "dave@ops" || c.Holder.Hold != "freeze for the release" || !c.Holder.Recorded {
		t.Fatalf("holder = %+v, want dave's hold with its reason", c.Holder)
	}
	if c.Ending.How != "hold released" || !c.Ending.At.Equal(t0.Add(60*time.Second)) {
		t.Fatalf("ending = %+v", c.Ending)
	}
	if got := []string{c.Waiters[0].Outcome, c.Waiters[1].Outcome}; got[0] != "timed out" || got[1] != "ended" {
		t.Fatalf("outcomes = %v, want timed out, ended", got)
	}
	if c.Waiters[1].Status != "interrupted" {
		t.Fatalf("ben = %+v", c.Waiters[1])
	}
	// ann 10s..40s, ben 20s..50s: 40s of wall clock, 60s of waiting.
	if c.BlockedMS != 40000 || c.WaitedMS != 60000 {
		t.Fatalf("blocked %d waited %d, want 40000 and 60000", c.BlockedMS, c.WaitedMS)
	}
}

// An orphan: the killed apply's cause, the force-unlock by someone else
// with its reason, and the verdict of the check that followed.
func TestExplainOrphanForceUnlocked(t *testing.T) {
	l := newIncidentLog(t)
	const lock = "orph-1"
	a := l.command(0, "alice@laptop", nil, "b/stage", "apply")
	l.event(a, time.Second, "lock_acquired", lock, info(lock, "OperationTypeApply", "alice@laptop", time.Second))
	l.event(a, 5*time.Second, "lock_orphaned", lock, info(lock, "OperationTypeApply", "alice@laptop", time.Second))
	l.end(a, 5*time.Second, "killed", 137, "killed")
	w := l.command(10*time.Second, "bob@desk", nil, "b/stage", "plan -lock-timeout=5m")
	l.event(w, 10*time.Second, "lock_wait", lock, info(lock, "OperationTypeApply", "alice@laptop", time.Second))
	u := l.command(100*time.Second, "carol@desk", nil, "b/stage", "force-unlock -force orph-1")
	l.event(u, 100*time.Second, "force_unlock", lock, `{"who":"carol@desk","reason":"INC-9 killed apply","method":"conditional delete"}`)
	l.end(u, 100*time.Second, "ok", 0, "")
	l.at(101 * time.Second)
	if err := u.s.Append(context.Background(), "integrity_check", "b/stage", lock, jsonRaw(`{"verdict":"state consistent"}`)); err != nil {
		t.Fatal(err)
	}
	l.event(w, 101*time.Second, "lock_wait_end", lock, `{"ended":"released"}`)
	l.end(w, 102*time.Second, "ok", 0, "")

	x := explain(t, l.db, audit.ExplainQuery{StateKey: "b/stage", Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 {
		t.Fatalf("chains = %+v", x.Chains)
	}
	c := x.Chains[0]
	e := c.Ending
	if e.How != "force-unlocked" || e.Orphaned == nil || e.Orphaned.Cause != "terraform was killed by SIGKILL" || !e.Orphaned.At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("ending = %+v (orphaned %+v)", e, e.Orphaned)
	}
	if fu := e.ForceUnlock; fu == nil || fu.By != "carol@desk" || fu.Reason != "INC-9 killed apply" || fu.Verified != "state consistent" || !fu.At.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("force-unlock = %+v", e.ForceUnlock)
	}
	// Orphaned 5s..100s; bob waited 10s..101s.
	if c.OrphanedMS != 95000 || c.WaitedMS != 91000 || c.BlockedMS != 96000 || c.HeldMS != 99000 {
		t.Fatalf("orphaned %d waited %d blocked %d held %d", c.OrphanedMS, c.WaitedMS, c.BlockedMS, c.HeldMS)
	}
	if c.Waiters[0].Outcome != "acquired" {
		t.Fatalf("bob = %+v", c.Waiters[0])
	}
	// The same chain, found from each party's session and from the lock.
	for _, ref := range []string{lock, a.s.ID, w.s.ID, u.s.ID, w.c.ID, u.c.ID[:20]} {
		x := explain(t, l.db, audit.ExplainQuery{Ref: ref})
		if len(x.Chains) != 1 || x.Chains[0].LockID != lock {
			t.Fatalf("explain %s: %+v", ref, x.Chains)
		}
	}
	// Other states and other days have nothing.
	for _, q := range []audit.ExplainQuery{
		{StateKey: "b/prod", Since: t0, Until: t0.Add(time.Hour)},
		{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour)},
		{Since: t0.Add(-time.Hour), Until: t0},
	} {
		if x := explain(t, l.db, q); len(x.Chains) != 0 {
			t.Fatalf("%+v: chains %+v", q, x.Chains)
		}
	}
	if _, err := l.db.Explain(context.Background(), audit.ExplainQuery{Ref: "nothing-like-it"}); err == nil || !strings.Contains(err.Error(), "no lock ID, event, session or command") {
		t.Fatalf("unknown ref: %v", err)
	}
}

// A holder whose command has not ended, a waiter still waiting.
func TestExplainStillHeld(t *testing.T) {
	l := newIncidentLog(t)
	a := l.command(0, "alice@laptop", nil, "b/dev", "apply")
	l.event(a, time.Second, "lock_acquired", "h-1", info("h-1", "OperationTypeApply", "alice@laptop", time.Second))
	w := l.command(2*time.Second, "bob@desk", nil, "b/dev", "plan")
	l.event(w, 2*time.Second, "lock_wait", "h-1", info("h-1", "OperationTypeApply", "alice@laptop", time.Second))
	x := explain(t, l.db, audit.ExplainQuery{Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 || x.Chains[0].Ending.How != "still held" || x.Chains[0].Waiters[0].Outcome != "waiting" {
		t.Fatalf("chains = %+v", x.Chains)
	}
}

// tfsh killed while its apply held the lock: the next tfsh closes the
// session as crashed, and a later force-unlock ends the lock. The chain
// says the lock was left behind when tfsh died.
func TestExplainHolderCrashed(t *testing.T) {
	l := newIncidentLog(t)
	a := l.command(0, "alice@laptop", nil, "b/dev", "apply")
	l.event(a, time.Second, "lock_acquired", "c-1", info("c-1", "OperationTypeApply", "alice@laptop", time.Second))
	l.at(10 * time.Second)
	ctx := context.Background()
	// What the next tfsh writes for a crashed session's open command.
	if err := a.c.End(ctx, audit.CommandEnd{Status: "unknown", Reason: "tfsh was killed"}); err != nil {
		t.Fatal(err)
	}
	u := l.command(60*time.Second, "bob@desk", nil, "b/dev", "force-unlock -force c-1")
	l.event(u, 60*time.Second, "force_unlock", "c-1", `{"who":"bob@desk","reason":"INC-3"}`)
	l.end(u, 60*time.Second, "ok", 0, "")
	x := explain(t, l.db, audit.ExplainQuery{Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 {
		t.Fatalf("chains = %+v", x.Chains)
	}
	e := x.Chains[0].Ending
	if e.How != "force-unlocked" || e.Orphaned == nil || e.Orphaned.Cause != "tfsh was killed" || !e.Orphaned.At.Equal(t0.Add(10*time.Second)) || x.Chains[0].OrphanedMS != 50000 {
		t.Fatalf("ending = %+v (orphaned %+v, %d ms)", e, e.Orphaned, x.Chains[0].OrphanedMS)
	}
}

// A waiter that meets two holders in turn: its time on the first ends when
// the lock passes to the second, and the state's blocked time counts the
// wall clock once.
func TestExplainTwoHoldersInTurn(t *testing.T) {
	l := newIncidentLog(t)
	alice := l.command(0, "alice@a", nil, "b/k", "apply")
	l.event(alice, 0, "lock_acquired", "L1", info("L1", "OperationTypeApply", "alice@a", 0))
	bob := l.command(time.Second, "bob@b", nil, "b/k", "apply -lock-timeout=5m")
	l.event(bob, time.Second, "lock_wait", "L1", info("L1", "OperationTypeApply", "alice@a", 0))
	carol := l.command(2*time.Second, "carol@c", nil, "b/k", "apply -lock-timeout=5m")
	l.event(carol, 2*time.Second, "lock_wait", "L1", info("L1", "OperationTypeApply", "alice@a", 0))
	l.event(alice, 10*time.Second, "lock_released", "L1", `{"held_ms":10000}`)
	l.end(alice, 10*time.Second, "ok", 0, "")
	// carol gets it first; bob, who saw L1 go, meets carol's L2.
	l.event(carol, 10100*time.Millisecond, "lock_wait_end", "L1", `{"ended":"released"}`)
	l.event(carol, 10100*time.Millisecond, "lock_acquired", "L2", info("L2", "OperationTypeApply", "carol@c", 10100*time.Millisecond))
	l.event(bob, 10200*time.Millisecond, "lock_wait_end", "L1", `{"ended":"released"}`)
	l.event(bob, 10300*time.Millisecond, "lock_wait", "L2", info("L2", "OperationTypeApply", "carol@c", 10100*time.Millisecond))
	l.event(carol, 20*time.Second, "lock_released", "L2", `{}`)
	l.end(carol, 20*time.Second, "ok", 0, "")
	l.event(bob, 20100*time.Millisecond, "lock_wait_end", "L2", `{"ended":"released"}`)
	l.event(bob, 21*time.Second, "lock_acquired", "L3", info("L3", "OperationTypeApply", "bob@b", 21*time.Second))
	l.event(bob, 25*time.Second, "lock_released", "L3", `{}`)
	l.end(bob, 25*time.Second, "ok", 0, "")

	x := explain(t, l.db, audit.ExplainQuery{Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 2 {
		t.Fatalf("chains = %+v", x.Chains)
	}
	l1, l2 := x.Chains[0], x.Chains[1]
	got := map[string]string{}
	for _, w := range l1.Waiters {
		got[w.Who] = fmt.Sprintf("%s %dms", w.Outcome, w.BlockedMS)
	}
	if got["bob@b"] != "passed 9200ms" || got["carol@c"] != "acquired 8100ms" {
		t.Fatalf("waiters on L1 = %v, want bob passed over after 9.2s, carol acquired after 8.1s", got)
	}
	if w := l2.Waiters; len(w) != 1 || w[0].Who != "bob@b" || w[0].Outcome != "acquired" || w[0].BlockedMS != 10700 || w[0].AfterFreeMS != 900 {
		t.Fatalf("waiters on L2 = %+v", l2.Waiters)
	}
	// Wall clock: someone waited from 1s to 10.2s, and from 10.3s to 21s.
	if st := x.States[0]; st.BlockedMS != 9200+10700 || st.WaitedMS != 9200+8100+10700 {
		t.Fatalf("state total = %+v", st)
	}
}

// Incidents under way when the range starts are in it: a wait begun
// before, an orphan left before and never removed (blocked to the end of
// the range), and not one that ended before the range.
func TestExplainIncidentsUnderWayAtTheStart(t *testing.T) {
	l := newIncidentLog(t)
	a := l.command(0, "alice@a", nil, "b/k", "apply")
	l.event(a, 0, "lock_acquired", "L1", info("L1", "OperationTypeApply", "alice@a", 0))
	w := l.command(10*time.Minute, "bob@b", nil, "b/k", "plan -lock-timeout=30m")
	l.event(w, 10*time.Minute, "lock_wait", "L1", info("L1", "OperationTypeApply", "alice@a", 0))
	l.event(a, 25*time.Minute, "lock_released", "L1", `{}`)
	l.end(a, 25*time.Minute, "ok", 0, "")
	l.event(w, 25*time.Minute, "lock_wait_end", "L1", `{"ended":"released"}`)
	l.end(w, 26*time.Minute, "ok", 0, "")

	o := l.command(30*time.Minute, "carol@c", nil, "b/o", "apply")
	l.event(o, 30*time.Minute, "lock_acquired", "O1", info("O1", "OperationTypeApply", "carol@c", 30*time.Minute))
	l.event(o, 31*time.Minute, "lock_orphaned", "O1", info("O1", "OperationTypeApply", "carol@c", 30*time.Minute))
	l.end(o, 31*time.Minute, "killed", 137, "killed")

	x := explain(t, l.db, audit.ExplainQuery{Since: t0.Add(20 * time.Minute), Until: t0.Add(29 * time.Minute)})
	if len(x.Chains) != 1 || x.Chains[0].LockID != "L1" {
		t.Fatalf("from 20m: chains %+v, want L1's wait (begun at 10m, ended at 25m)", x.Chains)
	}
	x = explain(t, l.db, audit.ExplainQuery{Since: t0.Add(40 * time.Minute), Until: t0.Add(2 * time.Hour)})
	if len(x.Chains) != 1 || x.Chains[0].LockID != "O1" {
		t.Fatalf("from 40m: chains %+v, want the orphan O1 only", x.Chains)
	}
	c := x.Chains[0]
	if o := c.Ending.Orphaned; o == nil || !o.Open || !o.Until.Equal(t0.Add(2*time.Hour)) || c.OrphanedMS != ms(89*time.Minute) {
		t.Fatalf("orphan %+v (%d ms), want open to the end of the range, 89m", c.Ending.Orphaned, c.OrphanedMS)
	}
	// Someone takes a new lock on b/o: the orphan was gone by then.
	n := l.command(3*time.Hour, "dave@d", nil, "b/o", "apply")
	l.event(n, 3*time.Hour, "lock_acquired", "N1", info("N1", "OperationTypeApply", "dave@d", 3*time.Hour))
	l.event(n, 3*time.Hour+time.Second, "lock_released", "N1", `{}`)
	l.end(n, 3*time.Hour+time.Second, "ok", 0, "")
	x = explain(t, l.db, audit.ExplainQuery{Ref: "O1"})
	c = x.Chains[0]
	if o := c.Ending.Orphaned; o == nil || o.Open || o.GoneBy != "next lock" || !o.Until.Equal(t0.Add(3*time.Hour)) || c.OrphanedMS != ms(149*time.Minute) {
		t.Fatalf("orphan %+v (%d ms), want gone by the next lock at 3h", c.Ending.Orphaned, c.OrphanedMS)
	}
	// Before any of it: nothing.
	if x := explain(t, l.db, audit.ExplainQuery{Since: t0.Add(-time.Hour), Until: t0}); len(x.Chains) != 0 {
		t.Fatalf("before: %+v", x.Chains)
	}
}

// Contentions without a lock ID are one chain per command; two failures
// of one command without a wait stay "failed".
func TestExplainWithoutLockID(t *testing.T) {
	l := newIncidentLog(t)
	a := l.command(0, "alice@a", nil, "b/k", "plan -lock-timeout=0s")
	l.event(a, time.Second, "lock_contention", "", `{"message":"2 errors occurred"}`)
	l.event(a, 2*time.Second, "lock_contention", "", `{"message":"2 errors occurred"}`)
	l.end(a, 2*time.Second, "failed", 1, "")
	x := explain(t, l.db, audit.ExplainQuery{Since: t0, Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 || len(x.Chains[0].Waiters) != 1 || x.Chains[0].Waiters[0].Outcome != "failed" || x.Chains[0].Holder.Recorded {
		t.Fatalf("chains = %+v", x.Chains)
	}
}
