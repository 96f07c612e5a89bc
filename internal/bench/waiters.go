package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/tfsh/tfsh/internal/bench/result"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// handoffWaiters measures lock handoff as the queue behind a holder grows:
// for each level K, a holder apply holds the lock 2 s and K waiters start
// 0.1 to 0.6 s into it, all plain `terraform plan -lock-timeout=60s` or all
// `tfsh run -- plan -lock-timeout=60s`. Every release of the lock while
// the queue drains is a handoff, from the read that shows it free to the
// read that shows the next holder (K per round). Terraform on local state
// and on S3 + DynamoDB; n rounds per level and waiter kind, in a random
// order.
func handoffWaiters(tfsh, tf, examples string, n int, levels []int) {
	ctx := context.Background()
	s3srv, dyn, work, stop := startLab("tfsh-bench-waiters-")
	defer stop()
	labDynamo = dyn
	defer func() { labDynamo = nil }()
	fmt.Printf("Handoffs while K waiters queue behind a holder (2 s hold; each round, every release to the next acquisition; %d rounds per row):\n\n", n)
	fmt.Println("| backend | waiters | waiter | handoffs | median (ms) | p95 (ms) | max (ms) | queue drained, median (s) | goal |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i, example := range []string{".", "s3-dynamodb"} {
		name := "terraform 1.5.7, local"
		every := 200 * time.Microsecond
		if example != "." {
			name, every = "terraform 1.5.7, S3 + DynamoDB", 2*time.Millisecond
		}
		dir, env, initArgs := prepareCase(ctx, s3srv, dyn, work, examples, 200+i, tf, example)
		run(env, dir, initArgs...)
		run(env, dir, tf, "apply", "-auto-approve", "-input=false")
		getenv := lock.Getenv(terraform.EnvLookup(env))
		ref, err := lock.Discover(dir, getenv)
		if err != nil {
			fail(err.Error())
		}
		obs, err := lock.NewObserver(ctx, ref, getenv)
		if err != nil {
			fail(err.Error())
		}
		plain := []string{tf, "plan", "-input=false", "-lock-timeout=60s"}
		wrapped := []string{tfsh, "run", "--", "plan", "-input=false", "-lock-timeout=60s"}
		for _, k := range levels {
			got := map[string][]float64{}
			drained := map[string][]float64{}
			missed := map[string]int{}
			for r := range n {
				for _, w := range inRandomOrder(plain, wrapped) {
					who, argv := w.who, w.argv
					hs, drain, miss := queueHandoffs(obs, every, env, dir, tf, argv, k, fmt.Sprintf("q%d-%d-%s", k, r, who))
					got[who] = append(got[who], hs...)
					drained[who] = append(drained[who], drain.Seconds())
					missed[who] += miss
				}
			}
			for _, who := range []string{"terraform", "tfsh"} {
				xs := got[who]
				label := "`terraform plan -lock-timeout=60s`"
				goal := ""
				if who == "tfsh" {
					label, goal = "`tfsh run -- plan -lock-timeout=60s`", "p95 ≤ 500 ms"
				}
				count := strconv.Itoa(len(xs))
				if missed[who] > 0 {
					count += fmt.Sprintf(" (%d missed)", missed[who])
				}
				if len(xs) == 0 {
					fmt.Printf("| %s | %d | %s | %s | | | | | %s |\n", name, k, label, count, goal)
					continue
				}
				fmt.Printf("| %s | %d | %s | %s | %.0f | %.0f | %.0f | %.2f | %s |\n", name, k, label, count, median(xs), pct(xs, 95), maxOf(xs), median(drained[who]), goal)
				emit("handoff-waiters", result.Record{Kind: "handoff-waiters", Row: who + ", " + name,
					Params: map[string]string{"waiters": strconv.Itoa(k), "missed": strconv.Itoa(missed[who])},
					Stats:  []result.Stat{result.Of("handoff", "ms", xs), result.Of("queue drained", "s", drained[who])}})
			}
		}
	}
}

// queueHandoffs runs one round: a holder apply, k waiters started while it
// holds the lock, and returns every handoff seen until all have finished,
// the time from the holder's release to the last waiter's, and how many
// handoffs the poll missed (one holder to the next between two reads).
func queueHandoffs(obs lock.Observer, every time.Duration, env []string, dir, tf string, waiter []string, k int, runID string) ([]float64, time.Duration, int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &trace{done: make(chan struct{})}
	go tr.poll(ctx, obs, every)
	var holderOut bytes.Buffer
	holder := start(&holderOut, env, dir, tf, "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=2", "-var", "run_id="+runID)
	first := tr.waitHeld(time.Minute)
	if first == "" {
		holder.Process.Kill()
		holder.Wait()
		fail("the holder's lock was never seen; the holder said:\n" + holderOut.String())
	}
	type proc struct {
		out  *bytes.Buffer
		wait func() error
	}
	var ws []proc
	for range k {
		time.Sleep(time.Duration(100+rand.IntN(500)/k) * time.Millisecond)
		var out bytes.Buffer
		cmd := start(&out, env, dir, waiter[0], waiter[1:]...)
		ws = append(ws, proc{&out, cmd.Wait})
	}
	for _, w := range ws {
		if err := w.wait(); err != nil {
			fail(fmt.Sprintf("%s: %v\n%s", strings.Join(waiter, " "), err, w.out.String()))
		}
	}
	if err := holder.Wait(); err != nil {
		fail(fmt.Sprintf("holder apply: %v\n%s", err, holderOut.String()))
	}
	// A few more reads of the free lock: the last release must be seen
	// whole, not cut short by the cancel.
	time.Sleep(20 * every)
	cancel()
	<-tr.done
	return tr.handoffs(first, k)
}

// handoffs reads the trace after the first holder: each read that shows
// the lock free after a holder starts a handoff, ended by the first read
// that shows a holder again. A read that shows another holder with no free
// read between is a missed handoff. It counts at most k handoffs.
func (t *trace) handoffs(first string, k int) (hs []float64, drained time.Duration, missed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var seenFirst bool
	var released, firstRelease, lastRelease time.Time
	prev := map[string]bool{}
	for _, s := range t.steps {
		if !seenFirst {
			seenFirst = s.keys[first]
			prev = s.keys
			continue
		}
		switch {
		case len(s.keys) == 0 && len(prev) > 0:
			released = s.at
			if firstRelease.IsZero() {
				firstRelease = s.at
			}
			lastRelease = s.at
		case len(s.keys) > 0 && len(prev) == 0 && !released.IsZero():
			hs = append(hs, ms(s.at.Sub(released)))
			released = time.Time{}
		case len(s.keys) > 0 && len(prev) > 0 && !sameKeys(s.keys, prev):
			missed++
		}
		prev = s.keys
	}
	if len(hs) > k {
		hs = hs[:k]
	}
	return hs, lastRelease.Sub(firstRelease), missed
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for key := range a {
		if !b[key] {
			return false
		}
	}
	return true
}

// waiterRun is one kind of waiter of a round: plain terraform or tfsh.
type waiterRun struct {
	who  string // "terraform" or "tfsh"
	argv []string
}

// inRandomOrder gives a round's two waiter kinds in a random order, so
// that load drift hits both alike.
func inRandomOrder(plain, wrapped []string) []waiterRun {
	runs := []waiterRun{{"terraform", plain}, {"tfsh", wrapped}}
	if rand.IntN(2) == 0 {
		runs[0], runs[1] = runs[1], runs[0]
	}
	return runs
}
