package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// Summary reads a command's record back: decision, end, its own lock, and
// each wait with the holder as the lock record and the log name it.
func TestSummary(t *testing.T) {
	l := newIncidentLog(t)
	w := l.command(0, "bob@b", nil, "b/k", "apply -lock-timeout=5m")
	l.event(w, time.Second, "lock_wait", "L1", `{"info":{"ID":"L1","Operation":"OperationTypeApply","Who":"root@runner-7"},"holder":{"who":"root@runner-7","ci":{"provider":"github","run_id":"1234","job":"deploy","actor":"alice"},"command":"apply -auto-approve","recorded":true}}`)
	l.event(w, 5*time.Second, "lock_wait_end", "L1", `{"ended":"released","waited_ms":4000}`)
	l.event(w, 5*time.Second, "lock_acquired", "L2", info("L2", "OperationTypeApply", "bob@b", 5*time.Second))
	l.event(w, 9*time.Second, "lock_released", "L2", `{"held_ms":4000}`)
	l.end(w, 9*time.Second, "ok", 0, "")
	s, err := l.db.Summary(context.Background(), w.c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Command != "apply -lock-timeout=5m" || s.Decision.Action != "allow" || s.Status != "ok" || s.StateKey != "b/k" {
		t.Fatalf("summary %+v", s)
	}
	if s.Lock == nil || s.Lock.ID != "L2" || s.Lock.End != "released" || s.Lock.HeldMS != 4000 {
		t.Fatalf("lock %+v", s.Lock)
	}
	if len(s.Waited) != 1 || s.WaitedMS != 4000 || s.Waited[0].Holder.Who != "root@runner-7" || s.Waited[0].Ended != "released" ||
		s.Waited[0].By == nil || s.Waited[0].By.CI == nil || s.Waited[0].By.CI.RunID != "1234" || s.Waited[0].By.Command != "apply -auto-approve" {
		t.Fatalf("waited %+v (by %+v)", s.Waited, s.Waited[0].By)
	}
	if _, err := l.db.Summary(context.Background(), "nope"); err == nil {
		t.Fatal("a command that is not there has a summary")
	}
	_ = audit.ErrNotFound
}
