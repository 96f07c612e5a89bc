package shell

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/terraform"
)

// orderedSink records which stream each write went to, in order.
type orderedSink struct {
	name string
	log  *[]string
}

func (o orderedSink) Write(p []byte) (int, error) {
	*o.log = append(*o.log, o.name+":"+string(p))
	return len(p), nil
}

func TestHeldOutput(t *testing.T) {
	t.Run("held until released, then in order, then straight through", func(t *testing.T) {
		var log []string
		h := newHeldOutput()
		out, errw := h.wrap(orderedSink{"out", &log}), h.wrap(orderedSink{"err", &log})
		out.Write([]byte("a"))
		errw.Write([]byte("b"))
		out.Write([]byte("c"))
		if len(log) != 0 {
			t.Fatalf("shown while held: %q", log)
		}
		h.release()
		errw.Write([]byte("d"))
		if got, want := strings.Join(log, " "), "out:a err:b out:c err:d"; got != want {
			t.Fatalf("shown %q, want %q", got, want)
		}
	})
	t.Run("dropped: nothing shown, then or later", func(t *testing.T) {
		var log []string
		h := newHeldOutput()
		w := h.wrap(orderedSink{"err", &log})
		w.Write([]byte("Error acquiring the state lock"))
		if shown := h.drop(); shown || len(log) != 0 {
			t.Fatalf("drop shown=%v, log %q", shown, log)
		}
		w.Write([]byte("late"))
		h.flush()
		if len(log) != 0 {
			t.Fatalf("shown after drop: %q", log)
		}
	})
	t.Run("released with nothing more written: flush shows it", func(t *testing.T) {
		var log []string
		h := newHeldOutput()
		h.wrap(orderedSink{"out", &log}).Write([]byte("a"))
		h.release()
		if len(log) != 0 {
			t.Fatalf("release wrote %q itself", log)
		}
		h.flush()
		if got := strings.Join(log, " "); got != "out:a" {
			t.Fatalf("flush showed %q", got)
		}
	})
	t.Run("more than heldMax is let through", func(t *testing.T) {
		var buf bytes.Buffer
		h := newHeldOutput()
		w := h.wrap(&buf)
		w.Write(bytes.Repeat([]byte("x"), heldMax))
		if buf.Len() != 0 {
			t.Fatalf("%d bytes shown at the limit", buf.Len())
		}
		w.Write([]byte("y"))
		if buf.Len() != heldMax+1 {
			t.Fatalf("%d bytes shown past the limit, want %d", buf.Len(), heldMax+1)
		}
		if shown := h.drop(); !shown {
			t.Fatal("drop after the output was shown says it was not")
		}
	})
}

func TestLostRace(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := &Session{cfg: Config{Now: func() time.Time { return now }}}
	withErr := func(info *terraform.DiagLockInfo) *lockWatch {
		lw := &lockWatch{}
		lw.lockErr.Store(&terraform.LockDiag{Kind: terraform.DiagLockError, Info: info})
		return lw
	}
	later := now.Add(time.Minute)
	for _, c := range []struct {
		name     string
		res      terraform.Result
		lw       *lockWatch
		deadline time.Time
		want     bool
	}{
		{"lost to a holder, time left", terraform.Result{Started: true, ExitCode: 1}, withErr(&terraform.DiagLockInfo{ID: "x"}), later, true},
		{"holder unreadable (no Lock Info), time left", terraform.Result{Started: true, ExitCode: 1}, withErr(nil), later, true},
		{"no lock error", terraform.Result{Started: true, ExitCode: 1}, &lockWatch{}, later, false},
		{"another exit code", terraform.Result{Started: true, ExitCode: 2}, withErr(nil), later, false},
		{"killed", terraform.Result{Started: true, ExitCode: 1, Signal: "interrupt"}, withErr(nil), later, false},
		{"given a signal", terraform.Result{Started: true, ExitCode: 1, Forwarded: []string{"interrupt"}}, withErr(nil), later, false},
		{"read tfsh's input", terraform.Result{Started: true, ExitCode: 1, Input: 4}, withErr(nil), later, false},
		{"at the deadline", terraform.Result{Started: true, ExitCode: 1}, withErr(nil), now.Add(lostRaceMargin), false},
		{"terraform waits on its own", terraform.Result{Started: true, ExitCode: 1}, withErr(nil), time.Time{}, false},
	} {
		if got := s.lostRace(c.res, c.lw, c.deadline); got != c.want {
			t.Errorf("%s: lostRace=%v, want %v", c.name, got, c.want)
		}
	}
	if got := raceWinner(&terraform.LockDiag{Info: &terraform.DiagLockInfo{ID: "93c5", Who: "root@vm"}}); got != "root@vm (lock 93c5)" {
		t.Errorf("raceWinner=%q", got)
	}
	if got := raceWinner(&terraform.LockDiag{}); !strings.Contains(got, "could not read its holder") {
		t.Errorf("raceWinner without Lock Info=%q", got)
	}
}
