package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/bench/result"
)

// procsCommands is how many commands each process records in procsBench.
const procsCommands = 200

// procsBench measures audit commits from concurrent processes on one log:
// for each count P of procsList, P processes (this program again, as a
// helper) started at once each record procsCommands commands the way the
// pipeline does (command_start and decision, lock_acquired, output, the
// release with command_end: 4 transactions), back to back, on a new log;
// rounds times. Reported: commands per second over all processes, and the
// time of one command's transactions (median, p95, max).
func procsBench(procsList string, rounds int) {
	work, err := os.MkdirTemp("", "tfsh-bench-procs-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	exe, err := os.Executable()
	if err != nil {
		fail(err.Error())
	}
	fmt.Printf("| processes | commands | commands/s, all processes (median) | one command: median (ms) | p95 | max |\n|---|---|---|---|---|---|\n")
	for _, p := range counts("-procs", procsList, "process counts, like 1,2,4,8") {
		var rates, per []float64
		for r := range max(1, rounds) {
			path := filepath.Join(work, fmt.Sprintf("procs-%d-%d.db", p, r))
			db, err := audit.Open(context.Background(), path) // created and migrated before the clock starts
			if err != nil {
				fail(err.Error())
			}
			db.Close()
			var wg sync.WaitGroup
			var mu sync.Mutex
			start := time.Now()
			for range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(exe)
					cmd.Env = append(os.Environ(), "TFSH_BENCH_HELPER=commit", "TFSH_AUDIT_DB="+path)
					out, err := cmd.Output()
					if err != nil {
						fail(fmt.Sprintf("commit helper: %v", err))
					}
					mu.Lock()
					defer mu.Unlock()
					sc := bufio.NewScanner(strings.NewReader(string(out)))
					for sc.Scan() {
						if us, err := strconv.ParseFloat(sc.Text(), 64); err == nil {
							per = append(per, us/1000)
						}
					}
				}()
			}
			wg.Wait()
			rates = append(rates, float64(p*procsCommands)/time.Since(start).Seconds())
			os.Remove(path)
		}
		fmt.Printf("| %d | %d × %d | %.0f | %.2f | %.2f | %.1f |\n", p, p, procsCommands, median(rates), median(per), pct(per, 95), maxOf(per))
		emit("procs", result.Record{Kind: "procs", Row: fmt.Sprintf("%d × %d commands", p, procsCommands), Params: map[string]string{"processes": strconv.Itoa(p)},
			Stats: []result.Stat{result.Of("commands/s", "", rates), result.Of("one command", "ms", per)}})
	}
}

// commitHelper is the process procsBench starts: procsCommands commands
// on $TFSH_AUDIT_DB, printing each one's time in µs.
func commitHelper() {
	ctx := context.Background()
	db, err := audit.Open(ctx, os.Getenv("TFSH_AUDIT_DB"))
	if err != nil {
		fail(err.Error())
	}
	defer db.Close()
	host, _ := os.Hostname()
	s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "bench", Host: host, PID: os.Getpid(), PIDNS: audit.PIDNamespace(), CWD: "/tmp", TfshVersion: "bench"}, nil)
	if err != nil {
		fail(err.Error())
	}
	w := bufio.NewWriter(os.Stdout)
	for i := range procsCommands {
		t0 := time.Now()
		c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply", WritesState: true, StateKey: "terraform.tfstate"},
			audit.Decision{Action: "allow", Added: []string{"-lock-timeout=5m"}})
		if err != nil {
			fail(err.Error())
		}
		lockID := fmt.Sprintf("lock-%d-%d", os.Getpid(), i)
		if err := c.AppendAt(ctx, time.Time{}, "lock_acquired", lockID, map[string]any{"who": "bench"}); err != nil {
			fail(err.Error())
		}
		out := c.Output(audit.Stdout)
		for j := range 3 {
			fmt.Fprintf(out, "process %d command %d: resource %d applied\n", os.Getpid(), i, j)
		}
		c.Later(time.Time{}, "lock_released", lockID, map[string]any{"held_ms": 1})
		if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
			fail(err.Error())
		}
		fmt.Fprintf(w, "%d\n", time.Since(t0).Microseconds())
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok", Commands: procsCommands}); err != nil {
		fail(err.Error())
	}
	w.Flush()
}
