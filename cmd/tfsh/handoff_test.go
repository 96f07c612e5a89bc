package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// commandEvents are one command's events, in log order.
type commandEvents struct {
	id, session string
	start       audit.CommandInfo
	end         *audit.CommandEnd
	events      []audit.Event
}

// kinds lists the command's lock events (lock_observed aside).
func (c *commandEvents) kinds() string {
	var out []string
	for _, e := range c.events {
		if strings.HasPrefix(e.Kind, "lock_") && e.Kind != "lock_observed" {
			out = append(out, e.Kind)
		}
	}
	return strings.Join(out, " ")
}

func (c *commandEvents) only(kind string) []audit.Event {
	var out []audit.Event
	for _, e := range c.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// commandsOf reads every command of the harness's log, in order.
func (h *harness) commandsOf() []*commandEvents {
	h.t.Helper()
	var order []*commandEvents
	byID := map[string]*commandEvents{}
	err := h.events(audit.EventFilter{}, func(e audit.Event) error {
		if e.CommandID == "" {
			return nil
		}
		c := byID[e.CommandID]
		if c == nil {
			c = &commandEvents{id: e.CommandID, session: e.SessionID}
			byID[e.CommandID] = c
			order = append(order, c)
		}
		switch e.Kind {
		case audit.KindCommandStart:
			if err := json.Unmarshal(e.Data, &c.start); err != nil {
				return err
			}
		case audit.KindCommandEnd:
			c.end = new(audit.CommandEnd)
			if err := json.Unmarshal(e.Data, c.end); err != nil {
				return err
			}
		}
		c.events = append(c.events, e)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return order
}

// lastCommand is the last command of the log with the subcommand.
func (h *harness) lastCommand(sub string) *commandEvents {
	h.t.Helper()
	cmds := h.commandsOf()
	for i := len(cmds) - 1; i >= 0; i-- {
		if cmds[i].start.Subcommand == sub {
			return cmds[i]
		}
	}
	h.t.Fatalf("no %s command in the log", sub)
	return nil
}

// waitData is the part of lock_wait and lock_wait_end data the test reads.
type waitData struct {
	Ended  string `json:"ended"`
	Note   string `json:"note"`
	Holder *struct {
		SessionID string `json:"session_id"`
		CommandID string `json:"command_id"`
		Command   string `json:"command"`
		CI        *struct {
			RunID string `json:"run_id"`
		} `json:"ci"`
	} `json:"holder"`
	Info *struct{ ID string } `json:"info"`
}

func eventData(t *testing.T, e audit.Event) waitData {
	t.Helper()
	var d waitData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFastHandoff: a command that finds the lock held waits for it in
// tfsh, reading it where it lives, and starts terraform as soon as it is
// free with what is left of its -lock-timeout. Real terraform 1.5.7 and
// tofu 1.10.10, local state, S3 + DynamoDB and the S3 lockfile. The
// latency itself is measured in BENCHMARKS.md; here, the order of what
// happened, what was recorded and what the user saw.
func TestFastHandoff(t *testing.T) {
	s3srv := labtest.S3(t)
	dyn := labtest.Dynamo(t)
	tf, tofu := labtest.Terraform(t), labtest.Tofu(t)
	// A, the holder, runs in a GitHub Actions job: B names it so.
	ciEnv := []string{"GITHUB_ACTIONS=true", "GITHUB_RUN_ID=1234", "GITHUB_JOB=deploy", "GITHUB_ACTOR=bob",
		"GITHUB_WORKFLOW=release", "GITHUB_REPOSITORY=acme/infra", "GITHUB_SERVER_URL=https://example.invalid"}
	waitEnv := []string{"TFSH_WAIT_REPORT_INTERVAL=1s"}
	for _, c := range []struct{ binary, example string }{
		{tf, "."}, {tf, "s3-dynamodb"}, {tofu, "."}, {tofu, "s3-dynamodb"}, {tofu, "s3-lockfile"},
	} {
		t.Run(filepath.Base(c.binary)+"/"+c.example, func(t *testing.T) {
			t.Parallel()
			dir := labtest.Example(t, c.example, c.binary, s3srv, dyn)
			h := newHarness(t, dir, c.binary)
			initArgs := []string{"run", "--", "init", "-input=false"}
			if c.example != "." {
				initArgs = append(initArgs, "-backend-config=backend.hcl")
			}
			h.must(initArgs...)
			run := 0
			// holdFor starts A, an apply that holds the lock for seconds,
			// and returns once A's tfsh has seen its lock taken; done waits
			// for A to end.
			holdFor := func(seconds int) (a *commandEvents, done func()) {
				run++
				seen := map[string]bool{}
				for _, e := range only(h.lockEvents(), "lock_acquired", "apply") {
					seen[e.ID] = true
				}
				cmd, out, adone := h.startEnv(ciEnv, "run", "--", "apply", "-auto-approve", "-input=false",
					"-var", fmt.Sprintf("hold_seconds=%d", seconds), "-var", fmt.Sprintf("run_id=%s-%d", t.Name(), run))
				h.waitEvent("A's lock_acquired", cmd, out, func(e lockEvent) bool { return acquiredBy("apply")(e) && !seen[e.ID] })
				return h.lastCommand("apply"), func() {
					if err := wait(t, adone, out); err != nil {
						t.Fatalf("A: %v\n%s", err, out.String())
					}
				}
			}

			t.Run("handoff", func(t *testing.T) {
				_, done := holdFor(4)
				b := h.run(waitEnv, "run", "--", "plan", "-input=false", "-lock-timeout=60s")
				if b.code != 0 {
					t.Fatalf("B = %d:\n%s%s", b.code, b.stdout, b.stderr)
				}
				done()
				a := h.lastCommand("apply")
				bc := h.lastCommand("plan")
				if got := bc.kinds(); got != "lock_wait lock_wait_end lock_acquired lock_released" {
					t.Fatalf("B's lock events %q, want one wait, its end, then its own acquisition and release", got)
				}
				acqA, relA := a.only("lock_acquired")[0], a.only("lock_released")
				w, we, acqB := bc.only("lock_wait")[0], bc.only("lock_wait_end")[0], bc.only("lock_acquired")[0]
				wd, wed := eventData(t, w), eventData(t, we)
				if w.LockID != acqA.LockID || wd.Holder == nil || wd.Holder.SessionID != a.session || wd.Holder.CommandID != a.id ||
					wd.Holder.CI == nil || wd.Holder.CI.RunID != "1234" || !strings.HasPrefix(wd.Holder.Command, "apply -auto-approve") {
					t.Fatalf("B's lock_wait %s, want A's lock %s with A's session, command and CI run as the holder", w.Data, acqA.LockID)
				}
				if wed.Ended != "released" || we.LockID != acqA.LockID {
					t.Fatalf("B's lock_wait_end %s, want A's lock released", we.Data)
				}
				// The order, from where the lock lives: B saw A's lock go,
				// then B's terraform took its own. (A's own tfsh may see its
				// release later than B does: it reads a held lock less often.
				// Timings are in BENCHMARKS.md.)
				if len(relA) != 1 || we.At.After(acqB.At) || acqB.LockID == acqA.LockID {
					t.Fatalf("A released %v (%v); B saw it free at %v and took %q at %v", relA, acqA.LockID, we.At, acqB.LockID, acqB.At)
				}
				t.Logf("handoff: B saw the lock free %s after A's tfsh saw it released, and took its own %s after seeing it free",
					we.At.Sub(relA[0].At), acqB.At.Sub(we.At))

				// What B showed: the holder by its CI run, a line every
				// second (the injected interval), the end; and terraform
				// started with -lock-timeout=0s (a race lost to another
				// waiter would end at once, and tfsh would wait again),
				// with the rest of the timeout said.
				waiting := regexp.MustCompile(`(?m)^tfsh: waiting for lock on \S+ held by bob via GitHub run 1234, job deploy \([^)]*\): apply -auto-approve[^\n]*$`)
				if n := len(waiting.FindAllString(b.stderr, -1)); n < 2 {
					t.Fatalf("B showed %d waiting lines, want one at the start and one a second:\n%s", n, b.stderr)
				}
				if !regexp.MustCompile(`(?m)^tfsh: lock on \S+ free after [0-9.ms]+s$`).MatchString(b.stderr) {
					t.Fatalf("B did not say the lock was free:\n%s", b.stderr)
				}
				added := regexp.MustCompile(`(?m)^tfsh: added -lock-timeout=0s after tfsh's wait: if another run takes the lock first, tfsh waits for it again \((\S+) left of -lock-timeout=60s\)$`).FindStringSubmatch(b.stderr)
				if added == nil {
					t.Fatalf("B did not say it started terraform with -lock-timeout=0s and what is left of the timeout:\n%s", b.stderr)
				}
				left, err := time.ParseDuration(added[1])
				if err != nil || left <= 0 || left >= 60*time.Second {
					t.Fatalf("remaining timeout %q", added[1])
				}
				if got, want := strings.Join(bc.start.Run, " "), "plan -input=false -lock-timeout=60s"; got != want {
					t.Fatalf("command_start run %q, want %q", got, want)
				}
				if bc.end == nil || strings.Join(bc.end.Run, " ") != "plan -input=false -lock-timeout=60s -lock-timeout=0s" || bc.end.Attempts != 0 {
					t.Fatalf("command_end %+v, want run with -lock-timeout=0s last, one attempt", bc.end)
				}

				if show := h.run(nil, "audit", "show", bc.session); !strings.Contains(show.stdout, "    then ran   plan -input=false -lock-timeout=60s -lock-timeout=0s (tfsh waited") {
					t.Fatalf("tfsh audit show does not say what terraform was started with:\n%s%s", show.stdout, show.stderr)
				}

				// explain reads the handoff as before: B waited on A's lock,
				// it was released, B acquired its own shortly after.
				ex := h.run(nil, "explain", "--json", bc.id)
				var x audit.Explanation
				if err := json.Unmarshal([]byte(ex.stdout), &x); err != nil || ex.code != 0 {
					t.Fatalf("explain: %d %v\n%s%s", ex.code, err, ex.stdout, ex.stderr)
				}
				var found bool
				for _, ch := range x.Chains {
					for _, wt := range ch.Waiters {
						if wt.CommandID != bc.id {
							continue
						}
						found = true
						if ch.LockID != acqA.LockID || ch.Holder.CommandID != a.id || wt.Outcome != "acquired" || wt.FreeAt == nil || ch.Ending.How != "released" {
							t.Fatalf("explain: chain %+v, waiter %+v", ch, wt)
						}
						t.Logf("explain: B blocked %d ms, acquired %d ms after the lock was free", wt.BlockedMS, wt.AfterFreeMS)
					}
				}
				if !found {
					t.Fatalf("explain does not show B waiting:\n%s", ex.stdout)
				}
				h.verify()
			})

			t.Run("timeout and Ctrl-C", func(t *testing.T) {
				a, done := holdFor(12)
				defer done()
				// tfsh locks names the holder as the log knows it.
				locks := h.run(nil, "locks")
				if locks.code != 0 || !regexp.MustCompile(`(?m)^ *held by +bob via GitHub run 1234, job deploy \([^)]*\): apply -auto-approve .*, \d+s$`).MatchString(locks.stdout) ||
					!strings.Contains(locks.stdout, "session "+a.session+", command "+a.id) {
					t.Fatalf("tfsh locks does not name A by its CI run and command:\n%s%s", locks.stdout, locks.stderr)
				}
				var rep struct {
					Views []struct {
						Holder *struct {
							CommandID string `json:"command_id"`
						} `json:"holder"`
					} `json:"views"`
				}
				if lj := h.run(nil, "locks", "--json"); json.Unmarshal([]byte(lj.stdout), &rep) != nil || len(rep.Views) == 0 || rep.Views[0].Holder == nil || rep.Views[0].Holder.CommandID != a.id {
					t.Fatalf("tfsh locks --json does not name A's command:\n%s%s", lj.stdout, lj.stderr)
				}
				b := h.run(waitEnv, "run", "--", "plan", "-input=false", "-lock-timeout=2s")
				if b.code != 1 || !strings.Contains(b.stderr, "Error acquiring the state lock") {
					t.Fatalf("B = %d, want terraform's own lock error:\n%s%s", b.code, b.stdout, b.stderr)
				}
				if !strings.Contains(b.stderr, "is still held after 2s, the -lock-timeout: starting terraform with -lock-timeout=0s") {
					t.Fatalf("B did not say why terraform gives up at once:\n%s", b.stderr)
				}
				bc := h.lastCommand("plan")
				if got := bc.kinds(); got != "lock_wait lock_wait_end lock_contention" {
					t.Fatalf("B's lock events %q, want a wait that timed out, then terraform's contention", got)
				}
				if d := eventData(t, bc.only("lock_wait_end")[0]); d.Ended != "timed out" {
					t.Fatalf("B's wait ended %q, want timed out", d.Ended)
				}
				if cont := bc.only("lock_contention")[0]; cont.LockID != a.only("lock_acquired")[0].LockID {
					t.Fatalf("B's contention names %s, want A's lock", cont.LockID)
				}
				if bc.end == nil || bc.end.ExitCode != 1 || strings.Join(bc.end.Run, " ") != "plan -input=false -lock-timeout=2s -lock-timeout=0s" {
					t.Fatalf("B's command_end %+v", bc.end)
				}
				ex := h.run(nil, "explain", "--json", bc.id)
				if !strings.Contains(ex.stdout, `"outcome": "timed out"`) {
					t.Fatalf("explain does not say B timed out:\n%s%s", ex.stdout, ex.stderr)
				}

				// Ctrl-C while tfsh waits: nothing was started, exit 130.
				c, cout, cdone := h.startEnv(waitEnv, "run", "--", "plan", "-input=false", "-lock-timeout=60s")
				waitOutput(t, c, cout, "tfsh: waiting for lock on ")
				if err := c.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				wait(t, cdone, cout)
				if code := c.ProcessState.ExitCode(); code != 130 || !strings.Contains(cout.String(), "terraform did not start") {
					t.Fatalf("interrupted B = %d, want 130:\n%s", code, cout.String())
				}
				cc := h.lastCommand("plan")
				if got := cc.kinds(); got != "lock_wait lock_wait_end" || eventData(t, cc.only("lock_wait_end")[0]).Ended != "interrupted" {
					t.Fatalf("interrupted B's lock events %q, want a wait ended by the interrupt", got)
				}
				if cc.end == nil || cc.end.Status != "interrupted" || cc.end.ExitCode != 130 || len(cc.only("lock_observed")) != 0 {
					t.Fatalf("interrupted B's end %+v, or terraform was watched (started)", cc.end)
				}
			})
		})
	}
}

// TestWaitLineAtTerminal: at a terminal, tfsh's own wait is one line
// redrawn in place (carriage return, erase line) while terraform has not
// started; it is erased when the lock is free. The record keeps lines, not
// the redraws, so that a replay shows the wait.
func TestWaitLineAtTerminal(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")
	holder := exec.Command(tf, "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=4", "-var", "run_id=terminal")
	holder.Dir, holder.Env = dir, h.env
	var hout lockedBuffer
	holder.Stdout, holder.Stderr = &hout, &hout
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	waitOutput(t, holder, &hout, "Provisioning with 'local-exec'")

	cmd := exec.Command("tfsh", "-c", "plan -input=false -lock-timeout=60s")
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), h.env...), "TERM=xterm", "TFSH_WAIT_REPORT_INTERVAL=1h")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var scr lockedBuffer
	go func() { _, _ = copyUntilEOF(&scr, ptmx) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tfsh: %v\n%q", err, scr.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("tfsh did not finish:\n%q", scr.String())
	}
	screen := scr.String()
	redraw := regexp.MustCompile(`\r\x1b\[Ktfsh: waiting for lock on \S+ held by [^\r\n]+: apply, \d+s \(pid \d+\)`)
	if n := len(redraw.FindAllString(screen, -1)); n < 2 {
		t.Fatalf("the wait was drawn %d times in place, want it redrawn each second:\n%q", n, screen)
	}
	if !regexp.MustCompile(`\r\x1b\[Ktfsh: lock on \S+ free after [0-9.]+s\r\n`).MatchString(screen) {
		t.Fatalf("the live line was not erased and replaced by the end of the wait:\n%q", screen)
	}
	// The record: the line once (the interval is an hour), no redraws.
	rp := h.run(nil, "replay", "--no-timing", "last")
	if n := strings.Count(rp.stdout, "tfsh: waiting for lock on "); n != 1 || strings.Contains(rp.stdout, "\x1b[K") || !strings.Contains(rp.stdout, "tfsh: lock on ") {
		t.Fatalf("replay shows the wait %d times (want once, without redraws, then its end):\n%s%s", n, rp.stdout, rp.stderr)
	}
}

// TestLostRaceRunsAgain: a command that waited for the lock starts
// terraform with -lock-timeout=0s the moment it is free; when another run
// takes the lock in between (here: C, a real terraform apply that the
// wrapper standing in for terraform starts, on the first plan only, and
// waits for until it holds the lock), terraform fails at once on C's lock,
// tfsh keeps that failure from the user (it is in the record), waits for C
// and runs terraform again, which succeeds. Without tfsh, terraform would
// sit in its own 1, 2, 4 s backoff.
func TestLostRaceRunsAgain(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")
	mark := filepath.Join(t.TempDir(), "first-plan")
	wrapper := filepath.Join(t.TempDir(), "terraform")
	script := `#!/bin/sh
if [ "$1" = plan ] && mkdir "$MARK" 2>/dev/null; then
  ( "$REAL" apply -auto-approve -input=false -var hold_seconds=2 -var run_id=winner >"$MARK/c.log" 2>&1 & )
  i=0
  while [ ! -s .terraform.tfstate.lock.info ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
fi
exec "$REAL" "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// A holds the lock, so that B waits in tfsh first.
	seen := map[string]bool{}
	for _, e := range only(h.lockEvents(), "lock_acquired", "apply") {
		seen[e.ID] = true
	}
	cmd, out, adone := h.startEnv(nil, "run", "--", "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=2", "-var", "run_id=holder")
	h.waitEvent("A's lock_acquired", cmd, out, func(e lockEvent) bool { return acquiredBy("apply")(e) && !seen[e.ID] })
	b := h.run([]string{"TFSH_TERRAFORM=" + wrapper, "MARK=" + mark, "REAL=" + tf}, "run", "--", "plan", "-input=false", "-lock-timeout=60s")
	if err := wait(t, adone, out); err != nil {
		t.Fatalf("A: %v\n%s", err, out.String())
	}
	if b.code != 0 {
		t.Fatalf("B = %d, want 0 (run again after the lost race):\n%s%s", b.code, b.stdout, b.stderr)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the wrapper never started C: %v", err)
	}
	cLog, _ := os.ReadFile(filepath.Join(mark, "c.log"))
	if !strings.Contains(string(cLog), "Apply complete!") {
		t.Fatalf("C did not apply:\n%s", cLog)
	}
	lost := regexp.MustCompile(`(?m)^tfsh: terraform lost the race for the lock on \S+ to \S+ \(lock ([0-9a-f-]{36})\): tfsh waits for it and runs terraform again \(attempt 2, \S+ left of -lock-timeout=60s\); the lost run's output is in the audit record$`).FindStringSubmatch(b.stderr)
	if lost == nil {
		t.Fatalf("B did not say it lost the race and runs terraform again:\n%s", b.stderr)
	}
	if strings.Contains(b.stdout+b.stderr, "Error acquiring the state lock") {
		t.Fatalf("B showed the lost run's lock error:\n%s%s", b.stdout, b.stderr)
	}
	if !strings.Contains(b.stdout, "Plan:") && !strings.Contains(b.stdout, "No changes") {
		t.Fatalf("B did not show the plan of its second run:\n%s", b.stdout)
	}
	bc := h.lastCommand("plan")
	if bc.end == nil || bc.end.Attempts != 2 || bc.end.ExitCode != 0 || strings.Join(bc.end.Run, " ") != "plan -input=false -lock-timeout=60s -lock-timeout=0s" {
		t.Fatalf("B's command_end %+v, want 2 attempts, exit 0, run with -lock-timeout=0s", bc.end)
	}
	// The record: A's lock waited for, C's lock lost to (terraform's
	// contention), C's lock waited for, then B's own.
	if got, want := bc.kinds(), "lock_wait lock_wait_end lock_contention lock_wait lock_wait_end lock_acquired lock_released"; got != want {
		t.Fatalf("B's lock events %q, want %q", got, want)
	}
	if c := bc.only("lock_contention")[0]; c.LockID != lost[1] || bc.only("lock_wait")[1].LockID != lost[1] {
		t.Fatalf("B's contention on %s and second wait on %s, want C's lock %s", c.LockID, bc.only("lock_wait")[1].LockID, lost[1])
	}
	// The lost run's output is in the record, with the note B showed.
	db, err := audit.Open(context.Background(), h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rec strings.Builder
	if err := db.Frames(context.Background(), bc.id, func(f audit.Frame) error {
		rec.Write(f.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.String(), "Error acquiring the state lock") || !strings.Contains(rec.String(), "terraform lost the race") {
		t.Fatalf("the record lacks the lost run's lock error or tfsh's note:\n%s", rec.String())
	}
	if show := h.run(nil, "audit", "show", bc.session); !strings.Contains(show.stdout, "    attempts   2 (terraform lost the race for the lock 1 times") {
		t.Fatalf("tfsh audit show does not give the attempts:\n%s%s", show.stdout, show.stderr)
	}
	// explain: B waited on C's lock and acquired after it (the lost race
	// is not B's failure).
	ex := h.run(nil, "explain", "--json", bc.id)
	var x audit.Explanation
	if err := json.Unmarshal([]byte(ex.stdout), &x); err != nil || ex.code != 0 {
		t.Fatalf("explain: %d %v\n%s%s", ex.code, err, ex.stdout, ex.stderr)
	}
	found := false
	for _, ch := range x.Chains {
		for _, w := range ch.Waiters {
			if w.CommandID == bc.id && ch.LockID == lost[1] {
				found = true
				if w.Outcome != "acquired" {
					t.Fatalf("explain: B on C's lock %+v, want acquired\n%s", w, ex.stdout)
				}
			}
		}
	}
	if !found {
		t.Fatalf("explain does not show B waiting on C's lock %s:\n%s", lost[1], ex.stdout)
	}
	h.verify()
}
