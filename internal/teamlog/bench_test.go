package teamlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
	"github.com/tfsh/tfsh/internal/teamlog"
)

// BenchmarkPull ships a generated log of 10,000 or 100,000 events
// (internal/auditgen: 30 days of a team's sessions, a tenth of the
// commands with output) to dynalite, then pulls the table into a fresh
// log, and appends one session there (the first own append after the
// pulled rows). Run it with -benchtime 1x: one iteration is the whole
// round trip.
func BenchmarkPull(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) { benchPull(b, n) })
	}
}

func benchPull(b *testing.B, events int) {
	ctx := context.Background()
	cached, err := auditgen.Cached(ctx, auditgen.Options{Events: events})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		c, name := table(b)
		path := filepath.Join(b.TempDir(), "audit.db")
		if err := auditgen.CopyFile(cached, path); err != nil {
			b.Fatal(err)
		}
		src, err := audit.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := (&teamlog.Shipper{DB: src, Client: c, Table: name, Concurrency: 32}).Ship(ctx)
		if err != nil || res.Shipped != events {
			b.Fatalf("ship: %+v, %v", res, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-ship")
		src.Close()
		into := openDB(b)
		b.StartTimer()
		start = time.Now()
		pr, err := (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, into, teamlog.PullFilter{})
		if err != nil || len(pr.Origins) != 1 || pr.Origins[0].Added != events {
			b.Fatalf("pull: %+v, %v", pr, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-pull")
		b.ReportMetric(float64(pr.Items), "items")
		b.StopTimer()
		start = time.Now()
		if _, _, err := into.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "u", Host: "h", PID: 1}, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms-first-append")
		start = time.Now()
		v, err := into.Verify(ctx)
		if err != nil || !v.OK() {
			b.Fatalf("verify: %v %+v", err, v)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-verify")
		b.StartTimer()
	}
}

// BenchmarkShipCost measures what shipping adds to a command: the time to
// record a command (command_start and policy_decision, output, command_end:
// its commits) on a log with the background shipper running against
// dynalite, and on one without, in turns. It reports the median and the
// 95th percentile of each, in milliseconds.
func BenchmarkShipCost(b *testing.B) {
	ctx := context.Background()
	c, name := table(b)
	plain, shipped := openDB(b), openDB(b)
	r := &teamlog.Runner{Shipper: &teamlog.Shipper{DB: shipped, Client: c, Table: name}}
	shipped.AfterCommit = r.Kick
	r.Start()
	sp, _, err := plain.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "u", Host: "h", PID: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ss, _, err := shipped.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "u", Host: "h", PID: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	command := func(s *audit.Session) time.Duration {
		start := time.Now()
		cmd, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"plan"}, Subcommand: "plan", StateKey: "lab/terraform.tfstate"}, audit.Decision{Action: "allow"})
		if err != nil {
			b.Fatal(err)
		}
		cmd.Output(audit.Stdout).Write([]byte("No changes. Your infrastructure matches the configuration.\n"))
		if err := cmd.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var tp, ts []time.Duration
	for b.Loop() {
		tp = append(tp, command(sp))
		ts = append(ts, command(ss))
		time.Sleep(5 * time.Millisecond) // a command's own time: the ship runs in it
	}
	b.StopTimer()
	if left, err := r.Close(10 * time.Second); left != 0 || err != nil {
		b.Fatalf("%d left to ship: %v", left, err)
	}
	q := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(tp, 0.5), "ms-plain-p50")
	b.ReportMetric(q(ts, 0.5), "ms-shipping-p50")
	b.ReportMetric(q(ts, 0.5)-q(tp, 0.5), "ms-added-p50")
	b.ReportMetric(q(tp, 0.95), "ms-plain-p95")
	b.ReportMetric(q(ts, 0.95), "ms-shipping-p95")
}
