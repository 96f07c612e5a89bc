package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tfsh/tfsh/internal/bench/result"
	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// handoffBench measures lock handoff: the time from a holder's release of
// the state lock to the next command's acquisition, when that command
// started while the lock was held. Per backend, n handoffs for plain
// `terraform plan -lock-timeout=60s` and n for `tfsh run -- plan
// -lock-timeout=60s`, interleaved in a random order per round, against the
// same holders (a plain terraform apply holding the lock 1 to 3 s). Both
// times are read where the lock lives, by this program, polling the lock
// (every 0.2 ms locally, every 2 ms remotely): the same measurement for
// both cases. It then measures what the pre-check read adds to a command
// when the lock is free.
func handoffBench(tfsh, tf, tofu, examples string, n int, only string) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "tfsh-bench-handoff-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)

	type kase struct {
		name, binary, example string
		dir                   string
		env                   []string
		obs                   lock.Observer
	}
	cases := []*kase{
		{name: "terraform 1.5.7, local", binary: tf, example: "."},
		{name: "terraform 1.5.7, S3 + DynamoDB", binary: tf, example: "s3-dynamodb"},
		{name: "tofu 1.10.10, S3 lockfile", binary: tofu, example: "s3-lockfile"},
	}
	host, _ := os.Hostname()
	fmt.Printf("Machine: %s, %d CPUs (shared), %s. Date: %s. %s; %s. %d handoffs per case and backend.\n\n",
		host, runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"), version(nil, tf), versionIf(tofu), n)
	fmt.Println("| backend | waiter | handoffs | median (ms) | p95 (ms) | min (ms) | max (ms) | goal |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	var costs []string
	for i, c := range cases {
		if c.binary == "" || only != "" && !slices.Contains(strings.Split(only, ","), c.example) {
			continue
		}
		// Servers of its own for each remote case, started when it starts:
		// a long local case before it leaves them idle for minutes.
		var s3srv *lab.S3
		var dyn *lab.Dynamo
		if c.example != "." {
			if s3srv, err = lab.StartS3(ctx); err != nil {
				fail(err.Error())
			}
			if dyn, err = lab.StartDynamo(ctx); err != nil {
				fail(err.Error())
			}
			labDynamo = dyn
		}
		c.dir, c.env, _ = prepareCase(ctx, s3srv, dyn, work, examples, 100+i, c.binary, c.example)
		initArgs := []string{c.binary, "init", "-input=false"}
		if c.example != "." {
			initArgs = append(initArgs, "-backend-config=backend.hcl")
		}
		run(c.env, c.dir, initArgs...)
		run(c.env, c.dir, c.binary, "apply", "-auto-approve", "-input=false")
		getenv := lock.Getenv(terraform.EnvLookup(c.env))
		ref, err := lock.Discover(c.dir, getenv)
		if err != nil {
			fail(err.Error())
		}
		if c.obs, err = lock.NewObserver(ctx, ref, getenv); err != nil {
			fail(err.Error())
		}
		every := 2 * time.Millisecond
		if c.example == "." {
			every = 200 * time.Microsecond
		}
		plain := []string{c.binary, "plan", "-input=false", "-lock-timeout=60s"}
		wrapped := []string{tfsh, "run", "--", "plan", "-input=false", "-lock-timeout=60s"}
		var pt, wt []float64
		missed := map[string]int{}
		for r := range n {
			// The holder holds 1 to 3 s and the waiter starts 0.1 to 0.6 s
			// into it, so terraform's backoff (retries 1, 3, 7 s after its
			// first try) meets the release at different phases.
			hold := 1 + float64(r%5)*0.5
			offset := time.Duration(100+rand.IntN(500)) * time.Millisecond
			for _, w := range inRandomOrder(plain, wrapped) {
				who, argv := w.who, w.argv
				d, ok := oneHandoff(c.obs, every, c.env, c.dir, c.binary, argv, hold, offset, fmt.Sprintf("h%d-%s", r, who))
				if !ok {
					missed[who]++
					continue
				}
				if who == "tfsh" {
					wt = append(wt, ms(d))
				} else {
					pt = append(pt, ms(d))
				}
			}
		}
		row := func(who string, xs []float64, goal string) {
			if len(xs) == 0 {
				fmt.Printf("| %s | %s | 0 (%d missed) | | | | | %s |\n", c.name, who, missed[who], goal)
				return
			}
			count := strconv.Itoa(len(xs))
			if missed[who] > 0 {
				count += fmt.Sprintf(" (%d missed)", missed[who])
			}
			fmt.Printf("| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %s |\n", c.name, who, count, median(xs), pct(xs, 95), minOf(xs), maxOf(xs), goal)
			emit("handoff", result.Record{Kind: "handoff", Row: who + ", " + c.name, Params: map[string]string{"missed": strconv.Itoa(missed[who])},
				Stats: []result.Stat{result.Of("handoff", "ms", xs)}})
		}
		tool := "terraform"
		if strings.Contains(filepath.Base(c.binary), "tofu") {
			tool = "tofu"
		}
		row("`"+tool+" plan -lock-timeout=60s`", pt, "")
		row("`tfsh run -- plan -lock-timeout=60s`", wt, "p95 ≤ 500 ms")
		if len(pt) > 0 && len(wt) > 0 {
			fmt.Printf("| %s | ratio tfsh / terraform | | %.3f | %.3f | | | |\n", c.name, median(wt)/median(pt), pct(wt, 95)/pct(pt, 95))
			emit("handoff", result.Record{Kind: "handoff", Row: "ratio tfsh / " + tool + ", " + c.name,
				Stats: []result.Stat{result.One("median ratio", "x", median(wt)/median(pt)), result.One("p95 ratio", "x", pct(wt, 95)/pct(pt, 95))}})
		}
		costs = append(costs, precheckCost(ctx, c.name, c.obs, ref, getenv, c.env, c.dir, tfsh, c.binary, n))
		if s3srv != nil {
			s3srv.Close()
			dyn.Close()
			labDynamo = nil
		}
	}
	fmt.Println()
	fmt.Println("| backend | one read of the lock, in process: median (µs) | setting up the reader (µs) | `tfsh run -- plan`, lock free: -lock-timeout=0s (no pre-check), median (ms) | -lock-timeout=60s (pre-check), median (ms) | tfsh 60s − 0s, median of paired differences (ms) | plain terraform 60s − 0s, the same (ms) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, c := range costs {
		fmt.Println(c)
	}
}

// labDynamo is the running case's DynamoDB server, for diagnostics.
var labDynamo *lab.Dynamo

// oneHandoff starts a holder apply, waits until its lock is seen, starts
// the waiter offset later, and returns the time between the holder's
// release and the next acquisition, both seen by polling obs. ok is false
// when the poll missed the waiter's lock (held between two reads).
func oneHandoff(obs lock.Observer, every time.Duration, env []string, dir, binary string, waiter []string, hold float64, offset time.Duration, runID string) (time.Duration, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &trace{done: make(chan struct{})}
	go tr.poll(ctx, obs, every)
	var holderOut bytes.Buffer
	holder := start(&holderOut, env, dir, binary, "apply", "-auto-approve", "-input=false",
		"-var", "hold_seconds="+strconv.FormatFloat(hold, 'f', -1, 64), "-var", "run_id="+runID)
	first := tr.waitHeld(time.Minute)
	if first == "" {
		holder.Process.Kill()
		holder.Wait()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		msg := fmt.Sprintf("the holder's lock was never seen (%d reads, last problem: %v); the holder said:\n%s", tr.reads, tr.problem, holderOut.String())
		if labDynamo != nil {
			msg += "\ndynalite said:\n" + labDynamo.Output()
		}
		fail(msg)
	}
	time.Sleep(offset)
	var waiterOut bytes.Buffer
	w := start(&waiterOut, env, dir, waiter[0], waiter[1:]...)
	if err := w.Wait(); err != nil {
		fail(fmt.Sprintf("%s: %v\n%s", strings.Join(waiter, " "), err, waiterOut.String()))
	}
	if err := holder.Wait(); err != nil {
		fail(fmt.Sprintf("holder apply: %v\n%s", err, holderOut.String()))
	}
	cancel()
	<-tr.done
	return tr.handoff(first)
}

func start(out *bytes.Buffer, env []string, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
	if err := cmd.Start(); err != nil {
		fail(err.Error())
	}
	return cmd
}

// trace is what a poll of the lock saw: each change of its holders.
type trace struct {
	mu      sync.Mutex
	steps   []step
	done    chan struct{}
	reads   int
	problem error // the last failed read
}

type step struct {
	at   time.Time
	keys map[string]bool // holders: a remote lock's ID, a local lock's "pid:N"
}

func (t *trace) poll(ctx context.Context, obs lock.Observer, every time.Duration) {
	defer close(t.done)
	var last string
	for ctx.Err() == nil {
		views := obs.Observe(ctx)
		at := time.Now()
		keys := map[string]bool{}
		bad := false
		for _, v := range views {
			switch {
			case v.Err != nil && !(v.Held && v.PID != 0):
				bad = true
				t.mu.Lock()
				t.problem = v.Err
				t.mu.Unlock()
			case v.Held && v.Mechanism == lock.Local:
				keys["pid:"+strconv.Itoa(v.PID)] = true
			case v.Held && v.Info != nil:
				keys[v.Info.ID] = true
			}
		}
		if !bad {
			var ks []string
			for k := range keys {
				ks = append(ks, k)
			}
			sig := strings.Join(ks, ",")
			t.mu.Lock()
			t.reads++
			if sig != last || len(t.steps) == 0 {
				t.steps = append(t.steps, step{at: at, keys: keys})
				last = sig
			}
			t.mu.Unlock()
		}
		time.Sleep(every)
	}
}

// waitHeld returns the first holder seen.
func (t *trace) waitHeld(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		for _, s := range t.steps {
			for k := range s.keys {
				t.mu.Unlock()
				return k
			}
		}
		t.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return ""
}

// handoff is from the first read that no longer shows the holder to the
// first read after it that shows another.
func (t *trace) handoff(holder string) (time.Duration, bool) {
	<-t.done
	var held bool
	var released time.Time
	for _, s := range t.steps {
		switch {
		case !held:
			held = s.keys[holder]
		case released.IsZero() && !s.keys[holder] && len(s.keys) == 0:
			released = s.at
		case released.IsZero() && !s.keys[holder]:
			return 0, false // taken over between two reads: no release seen
		case !released.IsZero() && len(s.keys) > 0:
			return s.at.Sub(released), true
		}
	}
	return 0, false
}

// precheckCost measures what the pre-check read adds when the lock is
// free: one read in process (and setting the reader up), and end to end,
// paired runs of tfsh run -- plan without a pre-check (-lock-timeout=0s)
// and with one (-lock-timeout=60s).
func precheckCost(ctx context.Context, name string, obs lock.Observer, ref lock.StateRef, getenv lock.Getenv, env []string, dir, tfsh, binary string, n int) string {
	var reads []float64
	for range 200 {
		t0 := time.Now()
		obs.Observe(ctx)
		reads = append(reads, float64(time.Since(t0).Microseconds()))
	}
	setup := func() []float64 {
		var out []float64
		for range 20 {
			t0 := time.Now()
			if _, err := lock.NewObserver(ctx, ref, getenv); err != nil {
				fail(err.Error())
			}
			out = append(out, float64(time.Since(t0).Microseconds()))
		}
		return out
	}
	setups := setup()
	// The AWS SDK parses AWS_CA_BUNDLE (the process's own environment) on
	// every client it sets up; some machines set it.
	bare := setups
	if ca, ok := os.LookupEnv("AWS_CA_BUNDLE"); ok {
		os.Unsetenv("AWS_CA_BUNDLE")
		bare = setup()
		os.Setenv("AWS_CA_BUNDLE", ca)
	}
	// Paired: the same command with -lock-timeout=0s (no pre-check) and
	// -lock-timeout=60s (pre-check), through tfsh and, to see what the
	// flag changes in terraform itself, plain.
	paired := func(without, with []string) (a, b, diff []float64) {
		for range 3 {
			timed(env, dir, without)
			timed(env, dir, with)
		}
		for range n {
			var x, y time.Duration
			if rand.IntN(2) == 0 {
				x = timed(env, dir, without)
				y = timed(env, dir, with)
			} else {
				y = timed(env, dir, with)
				x = timed(env, dir, without)
			}
			a, b, diff = append(a, ms(x)), append(b, ms(y)), append(diff, ms(y-x))
		}
		return a, b, diff
	}
	a, b, diff := paired([]string{tfsh, "run", "--", "plan", "-input=false", "-lock-timeout=0s"}, []string{tfsh, "run", "--", "plan", "-input=false", "-lock-timeout=60s"})
	_, _, tdiff := paired([]string{binary, "plan", "-input=false", "-lock-timeout=0s"}, []string{binary, "plan", "-input=false", "-lock-timeout=60s"})
	return fmt.Sprintf("| %s | %.0f | %.0f (%.0f without AWS_CA_BUNDLE) | %.1f | %.1f | %.1f | %.1f |", name, median(reads), median(setups), median(bare), median(a), median(b), median(diff), median(tdiff))
}

func versionIf(bin string) string {
	if bin == "" {
		return "no tofu"
	}
	return version(nil, bin)
}
