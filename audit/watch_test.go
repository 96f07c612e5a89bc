package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// watcher starts a tfsh watch session.
func (l *incidentLog) watcher(offset time.Duration) *audit.Session {
	l.t.Helper()
	l.at(offset)
	s, _, err := l.db.StartSession(context.Background(), audit.SessionInfo{Mode: "watch", User: "tfsh", Host: "watcher-1"}, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	return s
}

// watched writes a lock event as tfsh watch does: no command, source
// watch, the lock's record and when the watcher reckons it was taken.
func (l *incidentLog) watched(s *audit.Session, offset time.Duration, kind, state, lockID, who string, since time.Duration) {
	l.t.Helper()
	l.at(offset)
	data := fmt.Sprintf(`{"source":"watch","info":{"ID":%q,"Operation":"OperationTypeApply","Who":%q,"Created":%q},"since":%q}`,
		lockID, who, t0.Add(since).Format(time.RFC3339Nano), t0.Add(since).Format(time.RFC3339Nano))
	if err := s.AppendAt(context.Background(), l.now, kind, state, lockID, jsonRaw(data)); err != nil {
		l.t.Fatal(err)
	}
}

func timeline(t *testing.T, db *audit.DB) *audit.Timeline {
	t.Helper()
	tl, err := db.Timeline(context.Background(), audit.TimelineQuery{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// A lock only the watcher saw (plain terraform): one hold, its holder the
// lock's record, marked as seen by the watcher, with the watcher's times.
func TestWatcherOnlyHold(t *testing.T) {
	l := newIncidentLog(t)
	w := l.watcher(0)
	l.watched(w, 2*time.Second, "lock_acquired", "b/prod", "tf-1", "carol@ws", time.Second)
	l.watched(w, 12*time.Second, "lock_released", "b/prod", "tf-1", "carol@ws", time.Second)
	tl := timeline(t, l.db)
	if len(tl.States) != 1 || len(tl.States[0].Holds) != 1 {
		t.Fatalf("timeline = %+v, want one hold", tl.States)
	}
	h := tl.States[0].Holds[0]
	if h.Holder.Who != "carol@ws" || h.Holder.Recorded || !h.Holder.Watcher || h.Holder.Operation != "apply" || h.Holder.SessionID != "" {
		t.Fatalf("holder = %+v, want carol@ws's apply seen by the watcher", h.Holder)
	}
	if !h.Start.Equal(t0.Add(time.Second)) || h.End == nil || !h.End.Equal(t0.Add(12*time.Second)) || h.Ending != "released" {
		t.Fatalf("hold %v – %v (%s), want +1s – +12s released", h.Start, h.End, h.Ending)
	}
	// No command of this log took it: the lock's own record names it.
	if _, _, found, err := l.db.LockHolder(context.Background(), "tf-1"); err != nil || found {
		t.Fatalf("LockHolder found=%v err=%v, want not found", found, err)
	}
}

// A lock tfsh took while the watcher ran: counted once, as tfsh's, however
// the two records interleave.
func TestWatcherAndTfshCountedOnce(t *testing.T) {
	l := newIncidentLog(t)
	w := l.watcher(0)
	alice := l.command(time.Second, "alice@laptop", nil, "b/prod", "apply -auto-approve")
	// The watcher writes first: its poll came before tfsh's record.
	l.watched(w, 2100*time.Millisecond, "lock_acquired", "b/prod", "own-1", "alice@laptop", 2*time.Second)
	l.event(alice, 2200*time.Millisecond, "lock_acquired", "own-1", `{"source":"backend",`+info("own-1", "OperationTypeApply", "alice@laptop", 2*time.Second)[1:])
	l.event(alice, 9*time.Second, "lock_released", "own-1", `{"source":"backend","held_ms":7000}`)
	l.watched(w, 10*time.Second, "lock_released", "b/prod", "own-1", "alice@laptop", 2*time.Second)
	l.end(alice, 9*time.Second, "ok", 0, "")

	tl := timeline(t, l.db)
	if len(tl.States) != 1 || len(tl.States[0].Holds) != 1 {
		t.Fatalf("timeline = %+v, want one hold", tl.States)
	}
	h := tl.States[0].Holds[0]
	if h.Holder.Who != "alice@laptop" || !h.Holder.Recorded || h.Holder.Watcher || h.Subcommand != "apply" || h.Holder.CommandID != alice.c.ID {
		t.Fatalf("holder = %+v (%s), want alice's recorded apply", h.Holder, h.Subcommand)
	}
	if h.End == nil || !h.End.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("end = %v, want tfsh's release at +9s", h.End)
	}
	p, _, found, err := l.db.LockHolder(context.Background(), "own-1")
	if err != nil || !found || p.CommandID != alice.c.ID {
		t.Fatalf("LockHolder = %+v found=%v err=%v, want alice's command", p, found, err)
	}
}

// A tfsh user waits on a lock plain terraform holds: explain names the
// holder the watcher saw, with its since and until, and the totals are
// those of the wait.
func TestWaiterBlockedByWatchedHolder(t *testing.T) {
	l := newIncidentLog(t)
	const lock = "tf-9"
	w := l.watcher(0)
	l.watched(w, 1500*time.Millisecond, "lock_acquired", "b/prod", lock, "carol@ws", time.Second)
	alice := l.command(5*time.Second, "alice@laptop", nil, "b/prod", "apply -lock-timeout=10m")
	l.event(alice, 6*time.Second, "lock_wait", lock, info(lock, "OperationTypeApply", "carol@ws", time.Second))
	l.event(alice, 36*time.Second, "lock_wait_end", lock, `{"ended":"released","waited_ms":30000}`)
	l.watched(w, 36500*time.Millisecond, "lock_released", "b/prod", lock, "carol@ws", time.Second)
	l.event(alice, 37*time.Second, "lock_acquired", "own-2", info("own-2", "OperationTypeApply", "alice@laptop", 36*time.Second))
	l.event(alice, 40*time.Second, "lock_released", "own-2", `{"held_ms":3000}`)
	l.end(alice, 40*time.Second, "ok", 0, "")

	x := explain(t, l.db, audit.ExplainQuery{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)})
	if len(x.Chains) != 1 {
		t.Fatalf("chains = %d, want 1: %+v", len(x.Chains), x.Chains)
	}
	c := x.Chains[0]
	if c.Holder.Who != "carol@ws" || !c.Holder.Watcher || c.Holder.Recorded || c.Holder.Operation != "apply" {
		t.Fatalf("holder = %+v, want carol@ws seen by the watcher", c.Holder)
	}
	// The waiter polls more often than the watcher: its sight of the
	// release is the better time.
	if !c.Start.Equal(t0.Add(time.Second)) || c.Ending.How != "released" || c.Ending.At == nil || !c.Ending.At.Equal(t0.Add(36*time.Second)) || c.Ending.SeenBy != "alice@laptop" {
		t.Fatalf("held %v until %+v, want +1s until alice saw it go at +36s", c.Start, c.Ending)
	}
	if len(c.Waiters) != 1 || c.Waiters[0].Who != "alice@laptop" || c.WaitedMS != ms(31*time.Second) {
		t.Fatalf("waiters = %+v (waited %d ms), want alice, 31s to her own lock", c.Waiters, c.WaitedMS)
	}
	if len(x.States) != 1 || x.States[0].ByHolder[0].Who != "carol@ws" || x.States[0].BlockedMS != ms(31*time.Second) {
		t.Fatalf("totals = %+v", x.States)
	}
	// And the timeline draws carol's hold once.
	var holds []string
	for _, h := range timeline(t, l.db).States[0].Holds {
		holds = append(holds, h.Holder.Who)
	}
	if fmt.Sprint(holds) != "[carol@ws alice@laptop]" {
		t.Fatalf("holds = %v", holds)
	}
}

// A lock the watcher saw taken and not released is still held while the
// watcher runs; once it stopped, its end is unknown.
func TestWatcherOnlyHoldStillHeld(t *testing.T) {
	l := newIncidentLog(t)
	w := l.watcher(0)
	l.watched(w, 2*time.Second, "lock_acquired", "b/prod", "tf-2", "carol@ws", time.Second)
	if h := timeline(t, l.db).States[0].Holds[0]; h.Ending != "still held" || !h.Open {
		t.Fatalf("while the watcher runs: %+v", h)
	}
	l.at(5 * time.Second)
	if err := w.End(context.Background(), audit.SessionEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if h := timeline(t, l.db).States[0].Holds[0]; h.Ending != "unknown" {
		t.Fatalf("after the watcher stopped: %+v", h)
	}
}
