package audit_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// syncModes are SQLite's synchronous settings measured: NORMAL is what
// tfsh uses, FULL what it would cost to survive power loss too
// (docs/design.md, "Audit durability").
var syncModes = []string{"NORMAL", "FULL"}

// cpuTime is the user and system CPU time this process has used: on a
// shared machine, the cost of an append apart from waiting for the CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSession(b *testing.B, mode string) (*audit.DB, *audit.Session) {
	b.Helper()
	restore := audit.SetSynchronous(mode)
	db := MustOpenDB(b)
	restore()
	s, _, err := db.StartSession(context.Background(), testInfo(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return db, s
}

// BenchmarkAppendBatch appends events chained in batches of 100 per
// transaction (99 queued with Command.Later, written with command_end),
// after the command's start; events/s counts every event written.
func BenchmarkAppendBatch(b *testing.B) {
	const batch = 100
	ctx := context.Background()
	for _, mode := range syncModes {
		b.Run("sync="+mode, func(b *testing.B) {
			_, s := benchSession(b, mode)
			data := map[string]any{"lock_id": "0f6a2c1e-4b1d-4f7a-9d2e-1c3b5a7e9f00", "who": "alice@box", "operation": "OperationTypeApply"}
			events := 0
			cpu0 := cpuTime()
			for b.Loop() {
				c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "apply", StateKey: "terraform.tfstate"}, audit.Decision{Action: "allow"})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < batch-1; i++ {
					c.Later(time.Time{}, "lock_contention", "lock", data)
				}
				if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
					b.Fatal(err)
				}
				events += 2 + batch
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(events)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
		})
	}
}

// BenchmarkCommandCommit records one command's events as the pipeline
// does for a locking apply: command_start and policy_decision in one
// transaction, lock_acquired when seen, then lock_released and one more
// lock event with command_end: 3 transactions, 6 events (no output).
func BenchmarkCommandCommit(b *testing.B) {
	ctx := context.Background()
	for _, mode := range syncModes {
		b.Run("sync="+mode, func(b *testing.B) {
			_, s := benchSession(b, mode)
			cpu0 := cpuTime()
			n := 0
			for b.Loop() {
				n++
				c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply", WritesState: true, StateKey: "terraform.tfstate"},
					audit.Decision{Action: "allow", Added: []string{"-lock-timeout=5m"}})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.AppendAt(ctx, time.Time{}, "lock_acquired", "lock", map[string]any{"who": "alice@box"}); err != nil {
					b.Fatal(err)
				}
				c.Later(time.Time{}, "lock_released", "lock", map[string]any{"held_ms": 1200})
				c.Later(time.Time{}, "lock_observed", "lock", map[string]any{"polls": 3})
				if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/op")
		})
	}
}
