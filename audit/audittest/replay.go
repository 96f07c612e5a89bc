// Package audittest records deterministic audit logs, through the real
// audit API with an injected clock, for tests of what reads them back
// (replay, its asciicast export).
package audittest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
)

// Clock is a settable clock for audit.DB.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the time last set.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Base is when the fixture session starts; the fixture's times are
// offsets from it.
var Base = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// Lock IDs in the fixture.
const (
	OurLock   = "93c5d63a-1b2c-4d5e-8f90-000000000001"
	TheirLock = "7f1e0b9c-3d4e-4f5a-9b6c-000000000002"
)

// Fixture is a recorded session and what a test needs to find it.
type Fixture struct {
	SessionID string
	Commands  []string // command IDs, in order
}

// RecordSession writes one session of two commands into db, every fact at
// a known offset from Base:
//
//	+0       session_start (alice@box, interactive)
//	+1s      command 1: apply -auto-approve on a 120x40 pty; policy adds -lock-timeout=5m
//	+1.001   tfsh note; +1.100 tty output
//	+1.150   lock_acquired OurLock (written at +1.300, as the watcher does)
//	+1.400, +2.000 tty output; +2.100 and +2.200 split "é" across two frames
//	+2.300   tty output with no newline at the end
//	+2.400   lock_released OurLock (queued with Later)
//	+2.500   command_end ok
//	+4s      command 2: plan, on pipes; policy warns
//	+4.001   tfsh note; +4.200 stdout
//	+4.300   lock_wait TheirLock held by bob@ci-7
//	+10.250  stderr, then lock_contention at the same instant
//	+10.300  lock_wait_end (written before lock_contention)
//	+10.400  lock_observed (hidden by players)
//	+10.500  command_end failed, exit 1
//	+11s     integrity_check (a session event)
//	+12s     session_end
func RecordSession(tb testing.TB, db *audit.DB) Fixture {
	tb.Helper()
	ctx := context.Background()
	clk := &Clock{t: Base}
	db.Now = clk.Now
	at := func(ms int) time.Time { return Base.Add(time.Duration(ms) * time.Millisecond) }
	set := func(ms int) { clk.Set(at(ms)) }
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	write := func(c *audit.Command, s audit.Stream, ms int, text string) {
		tb.Helper()
		set(ms)
		_, err := c.Output(s).Write([]byte(text))
		must(err)
	}

	s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: "interactive", User: "alice", Host: "box", PID: 4242,
		CWD: "/work/lab", TfshVersion: "test", TerraformName: "terraform", TerraformVersion: "1.5.7"}, nil)
	must(err)
	fx := Fixture{SessionID: s.ID}

	set(1000)
	yes := true
	c1, err := s.StartCommand(ctx, audit.CommandInfo{
		Line: "apply -auto-approve", Typed: []string{"apply", "-auto-approve"},
		Run: []string{"apply", "-auto-approve", "-lock-timeout=5m"}, Effective: []string{"apply", "-auto-approve", "-lock-timeout=5m"},
		Subcommand: "apply", Known: true, WritesState: true, Locks: "always", Lock: &yes,
		Workdir: "/work/lab", Workspace: "default", Backend: "s3", StateKey: "s3://tfsh-lab/lab.tfstate",
		Interactive: true, Term: &audit.TermInfo{Cols: 120, Rows: 40, Type: "xterm-256color"}, Terraform: "terraform 1.5.7",
	}, audit.Decision{Action: "allow", Added: []string{"-lock-timeout=5m"}})
	must(err)
	fx.Commands = append(fx.Commands, c1.ID)
	write(c1, audit.Note, 1001, "tfsh: added -lock-timeout=5m (built-in)\n")
	write(c1, audit.TTY, 1100, "Acquiring state lock. This may take a few moments...\r\n")
	set(1300)
	delay := 10.0
	must(c1.AppendAt(ctx, at(1150), lock.KindAcquired, OurLock, lock.Event{Source: lock.SourceBackend,
		Mechanisms: []lock.Mechanism{lock.DynamoDB}, Where: "dynamodb://tfsh-locks/tfsh-lab/lab.tfstate",
		Info: &lock.Info{ID: OurLock, Operation: "OperationTypeApply", Who: "alice@box", Version: "1.5.7", Created: at(1140)},
		PID:  5151, DetectionDelayMS: &delay}))
	write(c1, audit.TTY, 1400, "terraform_data.pause: Creating...\r\n")
	write(c1, audit.TTY, 2000, "\x1b[1m\x1b[32mApply complete! Resources: 1 added, 0 changed, 0 destroyed.\x1b[0m\r\n")
	write(c1, audit.TTY, 2100, "caf\xc3")
	write(c1, audit.TTY, 2200, "\xa9 \u2713\r\n")
	write(c1, audit.TTY, 2300, "Releasing state lock. This may take a few moments...")
	c1.Later(at(2400), lock.KindReleased, OurLock, lock.Event{Source: lock.SourceBackend, Mechanisms: []lock.Mechanism{lock.DynamoDB},
		Info: &lock.Info{ID: OurLock, Operation: "OperationTypeApply", Who: "alice@box", Created: at(1140)}, HeldMS: 1260})
	set(2500)
	must(c1.End(ctx, audit.CommandEnd{Status: "ok"}))

	set(4000)
	c2, err := s.StartCommand(ctx, audit.CommandInfo{
		Line: "plan", Typed: []string{"plan"}, Run: []string{"plan", "-lock-timeout=5m"}, Effective: []string{"plan", "-lock-timeout=5m"},
		Subcommand: "plan", Known: true, Locks: "always", Workdir: "/work/lab", Workspace: "default", Backend: "s3",
		StateKey: "s3://tfsh-lab/lab.tfstate", Terraform: "terraform 1.5.7",
	}, audit.Decision{Action: "warn", Rule: "evening-plans", Source: ".tfsh/policy.hcl:3", Message: "plans after 18:00 are\nreviewed",
		Added: []string{"-lock-timeout=5m"}})
	must(err)
	fx.Commands = append(fx.Commands, c2.ID)
	write(c2, audit.Note, 4001, "tfsh: warning from rule \"evening-plans\" (.tfsh/policy.hcl:3): plans after 18:00 are reviewed\n")
	write(c2, audit.Stdout, 4200, "Acquiring state lock. This may take a few moments...\n")
	theirs := &lock.Info{ID: TheirLock, Operation: "OperationTypeApply", Who: "bob@ci-7", Version: "1.5.7", Created: Base.Add(-30 * time.Second)}
	set(4300)
	must(c2.AppendAt(ctx, at(4300), lock.KindWait, TheirLock, lock.Event{Source: lock.SourceBackend,
		Mechanisms: []lock.Mechanism{lock.DynamoDB}, Where: "dynamodb://tfsh-locks/tfsh-lab/lab.tfstate", Info: theirs}))
	write(c2, audit.Stderr, 10250, "\nError: Error acquiring the state lock\n")
	set(10300)
	must(c2.AppendAt(ctx, at(10300), lock.KindWaitEnd, TheirLock, lock.Event{Source: lock.SourceBackend, Info: theirs,
		WaitedMS: 6000, Ended: "command ended"}))
	// The diagnostic's time is when the scanner saw it; it is written
	// after the wait's end, which the watcher saw on its own.
	set(10350)
	must(c2.AppendAt(ctx, at(10250), lock.KindContention, TheirLock, lock.Event{Source: lock.SourceOutput, Info: theirs,
		Message: "ConditionalCheckFailedException: The conditional request failed", Backend: "confirmed"}))
	set(10400)
	must(c2.AppendAt(ctx, at(10400), lock.KindObserved, "", lock.Event{Source: lock.SourceBackend, Polls: 31, Requests: 31, WatchedMS: 6400}))
	set(10500)
	must(c2.End(ctx, audit.CommandEnd{Status: "failed", ExitCode: 1}))

	set(11000)
	must(s.Append(ctx, "integrity_check", "s3://tfsh-lab/lab.tfstate", OurLock, map[string]any{
		"lock_id": OurLock, "unlock_command": c1.ID, "refresh_exit": 0, "plan_exit": 0, "verdict": "clean"}))
	set(12000)
	must(s.End(ctx, audit.SessionEnd{Status: "failed", ExitCode: 1, Commands: 2}))
	return fx
}
