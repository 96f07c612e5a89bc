package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
	"github.com/tfsh/tfsh/internal/bench/result"
)

// auditBench measures `tfsh audit sessions`, `explain` and `report` end
// to end (start, open the log, query, print) on generated logs of each
// size (internal/auditgen, cached under $TFSH_CACHE/bench), rounds runs
// per case, and prints the Markdown tables. With tf, it also measures a
// refused command (the per-command path: open, record, close) on a new
// log and on a copy of each generated one.
func auditBench(tfsh, tf string, rounds int, sizes []int) {
	if tf != "" {
		refusedBench(tfsh, tf, rounds, "", 0)
	}
	for _, n := range sizes {
		path := auditBenchLog(tfsh, rounds, n)
		if tf != "" {
			refusedBench(tfsh, tf, rounds, path, n)
		}
	}
}

// refusedBench times `tfsh -c 'apply -lock=false'` (refused: no terraform
// runs) recording into a copy of the log at path, or a new log.
func refusedBench(tfsh, tf string, rounds int, path string, events int) {
	work, err := os.MkdirTemp("", "tfsh-bench-refused-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	db := filepath.Join(work, "audit.db")
	if path != "" {
		if err := auditgen.CopyFile(path, db); err != nil {
			fail(err.Error())
		}
	}
	env := append(benchEnv(work, tf), "TFSH_AUDIT_DB="+db)
	argv := []string{tfsh, "-c", "apply -lock=false -auto-approve"}
	for range 3 { // warm: the page cache, tfsh's version cache, a new log's creation
		timedExpect(env, work, argv, 3)
	}
	var ts []float64
	for range rounds {
		ts = append(ts, ms(timedExpect(env, work, argv, 3)))
	}
	on := fmt.Sprintf("a copy of the log of %d events", events)
	if path == "" {
		on = "a new log"
	}
	fmt.Printf("\nA refused command (`tfsh -c 'apply -lock=false'`: start, record, exit) on %s, %d runs: %.1f ms (%.1f–%.1f)\n", on, rounds, median(ts), minOf(ts), maxOf(ts))
	emit("audit", result.Record{Kind: "audit", Row: "refused command `tfsh -c 'apply -lock=false'`", Params: map[string]string{"events": strconv.Itoa(events)},
		Stats: []result.Stat{result.Of("time", "ms", ts)}})
}

func auditBenchLog(tfsh string, rounds, size int) string {
	ctx := context.Background()
	start := time.Now()
	path, err := auditgen.Cached(ctx, auditgen.Options{Events: size})
	if err != nil {
		fail(err.Error())
	}
	if d := time.Since(start); d > time.Second {
		fmt.Fprintf(os.Stderr, "bench: generated %s in %s\n", path, d.Round(time.Second))
	}
	// Migrations, if any, are applied here, not in the first round.
	db, err := audit.Open(ctx, path)
	if err != nil {
		fail(err.Error())
	}
	var events int64
	db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&events)
	db.Close()

	day := auditgen.DefaultEnd.Add(-24 * time.Hour).Format(time.RFC3339)
	week := auditgen.DefaultEnd.Add(-7 * 24 * time.Hour).Format(time.RFC3339)
	cases := [][]string{
		nil,
		{"--user", "alice", "--since", day},
		{"--host", "gha-runner-01"},
		{"--state", "prod/network"},
		{"--kind", "lock_contention"},
		{"--kind", "force_unlock,lock_orphaned"},
		{"--command", "^apply"},
		{"--command", "^import"},
		{"--user", "alice", "--state", "prod/dns"},
		{"--state", "prod/network", "--kind", "lock_wait"},
		{"--kind", "lock_acquired", "--command", "^apply", "--since", week},
	}
	fmt.Printf("`tfsh audit sessions` (newest 50 that match) on a generated log of %d events, %d runs each:\n\n", events, rounds)
	fmt.Println("| filters | sessions | median (ms) | min | max | goal |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, args := range cases {
		argv := append([]string{tfsh, "audit", "sessions", "--audit-db", path}, args...)
		n := countSessions(argv)
		var ts []float64
		for range 2 { // warm the page cache
			timedExpect(os.Environ(), "", argv, 0)
		}
		for range rounds {
			ts = append(ts, ms(timedExpect(os.Environ(), "", argv, 0)))
		}
		shown := "(none)"
		if len(args) > 0 {
			shown = "`" + shellJoin(args) + "`"
		}
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | ≤ 100 |\n", shown, n, median(ts), minOf(ts), maxOf(ts))
		emit("audit", result.Record{Kind: "audit", Row: "sessions " + shown, Params: map[string]string{"events": strconv.FormatInt(events, 10)},
			Stats: []result.Stat{result.One("sessions", "", float64(n)), result.Of("time", "ms", ts)}})
	}

	// Reading incidents back: explain over a day and a week, one lock,
	// and the report of a day, end to end.
	end := auditgen.DefaultEnd.Format(time.RFC3339)
	lockID := ""
	db, err = audit.Open(ctx, path)
	if err != nil {
		fail(err.Error())
	}
	db.SQL().QueryRowContext(ctx, `SELECT lock_id FROM events WHERE kind = 'lock_orphaned' AND at < ? ORDER BY at DESC LIMIT 1`, auditgen.DefaultEnd.UnixNano()).Scan(&lockID)
	db.Close()
	report := os.TempDir() + "/tfsh-bench-report.html"
	defer os.Remove(report)
	fmt.Printf("\n`tfsh explain` and `tfsh report` on the same log, %d runs each:\n\n", rounds)
	fmt.Println("| command | incidents | median (ms) | min | max | goal |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, c := range []struct {
		args       []string
		goal, span string
	}{
		{[]string{"explain", "--since", day, "--until", end}, "≤ 100", "day"},
		{[]string{"explain", "--since", week, "--until", end}, "", "week"},
		{[]string{"explain", lockID}, "", "one lock"},
		{[]string{"report", "--html", report, "--since", day, "--until", end}, "", "day"},
	} {
		argv := append([]string{tfsh, c.args[0], "--audit-db", path}, c.args[1:]...)
		n := "-"
		if c.args[0] == "explain" {
			n = fmt.Sprint(countChains(argv))
		}
		var ts []float64
		for range 2 {
			timedExpect(os.Environ(), "", argv, 0)
		}
		for range rounds {
			ts = append(ts, ms(timedExpect(os.Environ(), "", argv, 0)))
		}
		shown := strings.ReplaceAll(shellJoin(c.args), report, "FILE")
		fmt.Printf("| `tfsh %s` | %s | %.1f | %.1f | %.1f | %s |\n", shown, n, median(ts), minOf(ts), maxOf(ts), c.goal)
		emit("audit", result.Record{Kind: "audit", Row: "`tfsh " + c.args[0] + "`", Params: map[string]string{"events": strconv.FormatInt(events, 10), "span": c.span, "incidents": n},
			Stats: []result.Stat{result.Of("time", "ms", ts)}})
	}
	return path
}

// countChains runs explain with --json and counts the chains.
func countChains(argv []string) int {
	cmd := exec.Command(argv[0], append(argv[1:], "--json")...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		fail(fmt.Sprintf("%s: %v", strings.Join(argv, " "), err))
	}
	var x struct{ Chains []json.RawMessage }
	if err := json.Unmarshal(out.Bytes(), &x); err != nil {
		fail(fmt.Sprintf("%s --json: %v", strings.Join(argv, " "), err))
	}
	return len(x.Chains)
}

// countSessions runs argv with --json and counts the sessions listed.
func countSessions(argv []string) int {
	cmd := exec.Command(argv[0], append(argv[1:], "--json")...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		fail(fmt.Sprintf("%s: %v", strings.Join(argv, " "), err))
	}
	var list []json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		fail(fmt.Sprintf("%s --json: %v", strings.Join(argv, " "), err))
	}
	return len(list)
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^*$ ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
