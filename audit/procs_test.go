package audit_test

// Tests with real tfsh-like processes on one audit log: the test binary
// re-executes itself as a helper (TFSH_AUDIT_HELPER) that appends commands
// through this package the way the pipeline does. The subject is the audit
// log (SQLite locking across processes, crash safety), so no terraform is
// involved.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("TFSH_AUDIT_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

// helperMain appends commands to $TFSH_AUDIT_DB: $TFSH_AUDIT_COMMANDS of
// them, or until killed if that is 0. After each command's command_end is
// committed it prints "committed <command ID> <µs it took>" on stdout; errors go to
// stderr with exit status 1.
func helperMain(mode string) int {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv("TFSH_AUDIT_COMMANDS"))
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %d: %v\n", os.Getpid(), err)
		return 1
	}
	db, err := audit.Open(ctx, os.Getenv("TFSH_AUDIT_DB"))
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("session %s\n", s.ID)
	for i := 0; n == 0 || i < n; i++ {
		t0 := time.Now()
		id, err := helperCommand(ctx, s, i)
		if err != nil {
			return fail(err)
		}
		fmt.Printf("committed %s %d\n", id, time.Since(t0).Microseconds())
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok", Commands: n}); err != nil {
		return fail(err)
	}
	return 0
}

// helperCommand records one command as the pipeline does: command_start
// and policy_decision, the lock seen taken, output, and the lock's release
// written with command_end.
func helperCommand(ctx context.Context, s *audit.Session, i int) (string, error) {
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply", WritesState: true, StateKey: "terraform.tfstate"},
		audit.Decision{Action: "allow", Added: []string{"-lock-timeout=5m"}})
	if err != nil {
		return "", err
	}
	lockID := fmt.Sprintf("lock-%d-%d", os.Getpid(), i)
	if err := c.AppendAt(ctx, time.Time{}, "lock_acquired", lockID, map[string]any{"who": "helper"}); err != nil {
		return "", err
	}
	w := c.Output(audit.Stdout)
	for j := 0; j < 3; j++ {
		fmt.Fprintf(w, "process %d command %d: resource %d applied\n", os.Getpid(), i, j)
	}
	c.Later(time.Time{}, "lock_released", lockID, map[string]any{"held_ms": 1})
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		return "", err
	}
	return c.ID, nil
}

func helperCmd(t *testing.T, path string, commands int) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TFSH_AUDIT_HELPER=append", "TFSH_AUDIT_DB="+path, "TFSH_AUDIT_COMMANDS="+strconv.Itoa(commands))
	return cmd
}

// commandKinds counts each command's events by kind.
func commandKinds(t *testing.T, db *audit.DB) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	err := db.Events(context.Background(), audit.EventFilter{}, func(e audit.Event) error {
		if e.CommandID == "" {
			return nil
		}
		if out[e.CommandID] == nil {
			out[e.CommandID] = map[string]int{}
		}
		out[e.CommandID][e.Kind]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkSeq checks that seq runs 1..n without gaps.
func checkSeq(t *testing.T, db *audit.DB) int64 {
	t.Helper()
	var n, lo, hi int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM events`).Scan(&n, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if n > 0 && (lo != 1 || hi != n) {
		t.Fatalf("seq runs %d..%d over %d events: not contiguous", lo, hi, n)
	}
	return n
}

// TestConcurrentProcessesKeepOneChain: 8 processes × 200 commands on one
// new log, started at once: no process sees an error ("database is
// locked"), no command is lost, and the chain is one and valid.
func TestConcurrentProcessesKeepOneChain(t *testing.T) {
	procs, commands := 8, 200
	if testing.Short() {
		procs, commands = 4, 20
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[string]bool{}
	var durations []time.Duration
	var failures []string
	for p := 0; p < procs; p++ {
		cmd := helperCmd(t, path, commands)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			var ids []string
			var took []time.Duration
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
					id, us, _ := strings.Cut(rest, " ")
					n, _ := strconv.ParseInt(us, 10, 64)
					ids = append(ids, id)
					took = append(took, time.Duration(n)*time.Microsecond)
				}
			}
			err := cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				committed[id] = true
			}
			durations = append(durations, took...)
			if err != nil || stderr.Len() > 0 {
				failures = append(failures, fmt.Sprintf("%v: %s", err, stderr.String()))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(failures) > 0 {
		t.Fatalf("%d of %d processes failed:\n%s", len(failures), procs, strings.Join(failures, "\n"))
	}
	if len(committed) != procs*commands {
		t.Fatalf("%d commands reported committed, want %d", len(committed), procs*commands)
	}
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Per session: start, end; per command: start, decision, 2 lock events, end.
	want := int64(procs * (2 + commands*5))
	if !res.OK() || res.Events != want || res.Commands != procs*commands {
		t.Fatalf("verify = %+v, want OK with %d events and %d commands", res, want, procs*commands)
	}
	checkSeq(t, db)
	kinds := commandKinds(t, db)
	for id := range committed {
		k := kinds[id]
		if k[audit.KindCommandStart] != 1 || k[audit.KindPolicyDecision] != 1 || k["lock_acquired"] != 1 || k["lock_released"] != 1 || k[audit.KindCommandEnd] != 1 {
			t.Fatalf("command %s has events %v", id, k)
		}
	}
	slices.Sort(durations)
	q := func(p float64) time.Duration { return durations[int(p*float64(len(durations)-1))] }
	t.Logf("%d processes × %d commands: %d events in %v (%.0f commands/s); one command's 4 transactions took %v median, %v p99, %v max",
		procs, commands, res.Events, elapsed.Round(time.Millisecond), float64(procs*commands)/elapsed.Seconds(),
		q(0.5), q(0.99), durations[len(durations)-1])
}

// TestKilledProcessesLoseNothingCommitted kills helper processes with
// SIGKILL at random points, 200 times, each kill's successor opening the
// same log while two other writers keep appending: those writers see no
// error, the chain stays valid, every command whose command_end was
// reported committed is present with all its events, no command ends
// without a start, and every command left open is closed as crashed by a
// later session.
func TestKilledProcessesLoseNothingCommitted(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 20
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TFSH_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (TFSH_CRASH_SEED=%d to repeat)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	path := filepath.Join(t.TempDir(), "audit.db")
	committed := map[string]bool{}
	sessions := map[string]bool{}
	// Kill at a random point between start and maxDelay: about half the
	// runs die before or while opening the log, the rest inside commands.
	const maxDelay = 60 * time.Millisecond
	// Meanwhile two writers append without pause, each a new process
	// every 50 commands: a kill in the middle of a transaction, and the
	// recovery of the WAL after it, must never reach them as an error.
	stop := make(chan struct{})
	writers := make(chan error, 2)
	var wmu sync.Mutex
	for w := 0; w < 2; w++ {
		go func() {
			for {
				select {
				case <-stop:
					writers <- nil
					return
				default:
				}
				cmd := helperCmd(t, path, 50)
				out, err := cmd.Output()
				if err != nil {
					var stderr []byte
					if ee, ok := err.(*exec.ExitError); ok {
						stderr = ee.Stderr
					}
					writers <- fmt.Errorf("writer beside the kills: %v: %s", err, stderr)
					return
				}
				wmu.Lock()
				for _, l := range strings.Split(string(out), "\n") {
					if rest, ok := strings.CutPrefix(l, "committed "); ok {
						id, _, _ := strings.Cut(rest, " ")
						committed[id] = true
					}
				}
				wmu.Unlock()
			}
		}()
	}
	for k := 0; k < kills; k++ {
		cmd := helperCmd(t, path, 0)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string)
		go func() {
			var got []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			lines <- got
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(maxDelay))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wmu.Lock()
		for _, l := range <-lines {
			if rest, ok := strings.CutPrefix(l, "committed "); ok {
				id, _, _ := strings.Cut(rest, " ")
				committed[id] = true
			}
			if id, ok := strings.CutPrefix(l, "session "); ok {
				sessions[id] = true
			}
		}
		wmu.Unlock()
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("helper %d ended by itself (%v): %s", k, err, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Fatalf("helper %d: %s", k, stderr.String())
		}
	}
	close(stop)
	for w := 0; w < 2; w++ {
		if err := <-writers; err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	db, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// This session notices whatever the last helpers left open.
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	res, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("verify after %d kills: %+v", kills, res.Problems)
	}
	checkSeq(t, db)
	kinds := commandKinds(t, db)
	for id := range committed {
		k := kinds[id]
		if k[audit.KindCommandStart] != 1 || k[audit.KindPolicyDecision] != 1 || k["lock_acquired"] != 1 || k["lock_released"] != 1 || k[audit.KindCommandEnd] != 1 {
			t.Fatalf("committed command %s has events %v", id, k)
		}
	}
	crashedCommands := 0
	for id, k := range kinds {
		if k[audit.KindCommandStart] != 1 || k[audit.KindPolicyDecision] != 1 || k[audit.KindCommandEnd] != 1 {
			t.Fatalf("command %s has events %v: half-written or never closed", id, k)
		}
		if !committed[id] {
			crashedCommands++
		}
	}
	var open, crashed int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM events s WHERE s.kind = 'session_start' AND NOT EXISTS (
		SELECT 1 FROM events e WHERE e.session_id = s.session_id AND e.kind = 'session_end')`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM events WHERE kind = 'session_end' AND json_extract(data, '$.status') = 'crashed'`).Scan(&crashed); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Fatalf("%d sessions left open", open)
	}
	if crashed < len(sessions) {
		t.Fatalf("%d sessions closed as crashed, but %d helpers reported a session", crashed, len(sessions))
	}
	t.Logf("%d kills: %d sessions (%d closed as crashed), %d commands committed, %d closed as unknown, %d events, chain OK",
		kills, len(sessions), crashed, len(committed), crashedCommands, res.Events)
}
