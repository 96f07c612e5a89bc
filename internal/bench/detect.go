package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/bench/result"
	"github.com/tfsh/tfsh/internal/lab"
)

// detect measures lock observation: over n short locking commands (plan)
// per backend, how many acquisitions tfsh saw in the backend with their ID
// rather than inferred, how long after the lock's Created it saw them, and
// how many reads that cost per second of command.
func detect(tfsh, tf, tofu, examples string, n int) {
	ctx := context.Background()
	s3srv, dyn, work, stop := startLab("tfsh-bench-detect-")
	defer stop()

	type kase struct{ name, binary, example string }
	cases := []kase{
		{"terraform 1.5.7, local", tf, "."},
		{"terraform 1.5.7, S3 + DynamoDB", tf, "s3-dynamodb"},
		{"tofu 1.10.10, local", tofu, "."},
		{"tofu 1.10.10, S3 + DynamoDB", tofu, "s3-dynamodb"},
		{"tofu 1.10.10, S3 lockfile", tofu, "s3-lockfile"},
	}
	fmt.Printf("| backend | commands | seen in the backend | inferred | delay p50 (ms) | delay p95 (ms) | delay max (ms) | reads/s during the plans | reads/s during a 5 s apply | goal |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for i, c := range cases {
		if c.binary == "" {
			continue
		}
		dir, env, initArgs := prepareCase(ctx, s3srv, dyn, work, examples, i, c.binary, c.example)
		run(env, dir, initArgs...)
		run(env, dir, c.binary, "apply", "-auto-approve", "-input=false")
		for range n {
			timed(env, dir, []string{tfsh, "run", "--", "plan", "-input=false"})
		}
		seen, inferred, delays, rate := detectResults(ctx, filepath.Join(dir, "audit.db"))
		// The steady cost: a command that holds the lock for seconds.
		applyEnv := append(append([]string(nil), env...), "TFSH_AUDIT_DB="+filepath.Join(dir, "apply.db"))
		timed(applyEnv, dir, []string{tfsh, "run", "--", "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=5", "-var", "run_id=bench"})
		_, _, _, applyRate := detectResults(ctx, filepath.Join(dir, "apply.db"))
		goal := "≥ 95% seen, p95 ≤ 300 ms"
		if c.example == "." {
			goal = "≥ 95% seen, p95 ≤ 150 ms"
		}
		fmt.Printf("| %s | %d | %d (%.0f%%) | %d | %.1f | %.1f | %.1f | %.0f | %.0f | %s |\n", c.name, seen+inferred, seen,
			100*float64(seen)/float64(max(1, seen+inferred)), inferred, pct(delays, 50), pct(delays, 95), pct(delays, 100), rate, applyRate, goal)
		where := "remote"
		if c.example == "." {
			where = "local"
		}
		emit("detect", result.Record{Kind: "detect", Row: c.name, Params: map[string]string{"backend": where, "commands": strconv.Itoa(seen + inferred)},
			Stats: []result.Stat{result.One("seen", "%", 100*float64(seen)/float64(max(1, seen+inferred))), result.One("inferred", "", float64(inferred)),
				result.Of("delay", "ms", delays), result.One("reads/s during the plans", "", rate), result.One("reads/s during a 5 s apply", "", applyRate)}})
	}
}

// detectResults reads the lock events of every plan in an audit log.
func detectResults(ctx context.Context, path string) (seen, inferred int, delays []float64, rate float64) {
	db, err := audit.Open(ctx, path)
	if err != nil {
		fail(err.Error())
	}
	defer db.Close()
	var reads, ms float64
	err = db.Events(ctx, audit.EventFilter{Kinds: []string{"lock_acquired", "lock_observed"}}, func(e audit.Event) error {
		var d struct {
			Source           string   `json:"source"`
			DetectionDelayMS *float64 `json:"detection_delay_ms"`
			Requests         int      `json:"requests"`
			WatchedMS        int64    `json:"watched_ms"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		switch {
		case e.Kind == "lock_observed":
			reads += float64(d.Requests)
			ms += float64(d.WatchedMS)
		case d.Source == "inferred":
			inferred++
		case e.LockID != "" && d.DetectionDelayMS != nil:
			seen++
			delays = append(delays, *d.DetectionDelayMS)
		default:
			inferred++ // seen held, but without its ID: not what the goal counts
		}
		return nil
	})
	if err != nil {
		fail(err.Error())
	}
	if ms > 0 {
		rate = reads / (ms / 1000)
	}
	return seen, inferred, delays, rate
}

// pct is the p-th percentile (nearest rank); 100 is the maximum.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// prepareCase copies a lab example (".", "s3-dynamodb", "s3-lockfile") to a
// directory of its own, with its own audit log and, for S3, its own bucket
// and lock table on the lab servers; it returns the directory, the
// environment and the init command to run there.
func prepareCase(ctx context.Context, s3srv *lab.S3, dyn *lab.Dynamo, work, examples string, i int, binary, example string) (dir string, env, initArgs []string) {
	dir = filepath.Join(work, fmt.Sprintf("case%d", i))
	copyConfig(filepath.Join(examples, example), dir)
	kind := "terraform"
	if strings.Contains(filepath.Base(binary), "tofu") {
		kind = "tofu"
	}
	env = lab.Env(benchEnv(work, binary), "TFSH_AUDIT_DB="+filepath.Join(dir, "audit.db"))
	initArgs = []string{binary, "init", "-input=false"}
	if example != "." {
		tmpl, err := os.ReadFile(filepath.Join(examples, example, kind+".tfbackend.tmpl"))
		if err != nil {
			fail(err.Error())
		}
		bucket, table := fmt.Sprintf("bench-%d", i), fmt.Sprintf("bench-locks-%d", i)
		if err := s3srv.CreateBucket(ctx, bucket); err != nil {
			fail(err.Error())
		}
		if err := dyn.CreateLockTable(ctx, table); err != nil {
			fail(err.Error())
		}
		vars := map[string]string{"BUCKET": bucket, "KEY": "lab/terraform.tfstate", "TABLE": table, "S3_ENDPOINT": s3srv.URL(), "DYNAMODB_ENDPOINT": dyn.URL()}
		hcl := os.Expand(string(tmpl), func(k string) string { return vars[k] })
		if err := os.WriteFile(filepath.Join(dir, "backend.hcl"), []byte(hcl), 0o600); err != nil {
			fail(err.Error())
		}
		initArgs = append(initArgs, "-backend-config=backend.hcl")
	}
	return dir, env, initArgs
}

// detectSessions measures lock detection as concurrent sessions grow: for
// each level K, K sessions run n plans each at the same time, each on its
// own state (as K pipelines on one runner), all recording into one audit
// log; terraform on local state, then on S3 + DynamoDB (one lab server).
func detectSessions(tfsh, tf, examples string, n int, levels []int) {
	ctx := context.Background()
	s3srv, dyn, work, stop := startLab("tfsh-bench-detect-sessions-")
	defer stop()
	most := slices.Max(levels)
	fmt.Printf("| backend | sessions | commands | seen in the backend | delay p50 (ms) | delay p95 (ms) | delay max (ms) |\n|---|---|---|---|---|---|---|\n")
	for b, example := range []string{".", "s3-dynamodb"} {
		name, where := "terraform 1.5.7, local", "local"
		if example != "." {
			name, where = "terraform 1.5.7, S3 + DynamoDB", "remote"
		}
		// One state per session, made once for the largest level.
		dirs := make([]string, most)
		envs := make([][]string, most)
		for i := range most {
			dir, env, initArgs := prepareCase(ctx, s3srv, dyn, work, examples, 100*(b+1)+i, tf, example)
			run(env, dir, initArgs...)
			run(env, dir, tf, "apply", "-auto-approve", "-input=false")
			dirs[i], envs[i] = dir, env
		}
		for _, k := range levels {
			db := filepath.Join(work, fmt.Sprintf("sessions-%d-%d.db", b, k))
			var wg sync.WaitGroup
			for i := range k {
				env := append(slices.Clip(envs[i]), "TFSH_AUDIT_DB="+db)
				wg.Go(func() {
					for range n {
						timed(env, dirs[i], []string{tfsh, "run", "--", "plan", "-input=false"})
					}
				})
			}
			wg.Wait()
			seen, inferred, delays, _ := detectResults(ctx, db)
			share := 100 * float64(seen) / float64(max(1, seen+inferred))
			fmt.Printf("| %s | %d | %d | %d (%.0f%%) | %.1f | %.1f | %.1f |\n", name, k, seen+inferred, seen, share, pct(delays, 50), pct(delays, 95), pct(delays, 100))
			emit("detect-sessions", result.Record{Kind: "detect-sessions", Row: name,
				Params: map[string]string{"backend": where, "sessions": strconv.Itoa(k), "commands": strconv.Itoa(seen + inferred)},
				Stats:  []result.Stat{result.One("seen", "%", share), result.Of("delay", "ms", delays)}})
		}
	}
}
