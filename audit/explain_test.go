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
