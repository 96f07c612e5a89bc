package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tfsh/tfsh/internal/bench/result"
)

// policyBench measures what loading policy files adds to a tfsh start: a
// refused command (tfsh starts, loads the policy, records the refusal and
// exits; terraform never runs) in a directory without policy files, against
// the same with the example organisation policy (TFSH_ORG_POLICY) and a
// 50-rule project policy. Rounds are paired and shuffled.
func policyBench(tfsh, tf, examples string, rounds int) {
	work, err := os.MkdirTemp("", "tfsh-bench-policy-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	bare := filepath.Join(work, "bare")
	withPolicy := filepath.Join(work, "policy")
	copyConfig(examples, bare)
	copyConfig(examples, withPolicy)
	if err := os.MkdirAll(filepath.Join(withPolicy, ".tfsh"), 0o755); err != nil {
		fail(err.Error())
	}
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "rule \"r%02d\" {\n  when    = command.writes_state && startswith(workspace, \"prod-%d\") && (time.hour < 8 || ci.enabled)\n  action  = \"warn\"\n  message = \"${command.name} on ${workspace} (rule %d)\"\n}\n\n", i, i, i)
	}
	if err := os.WriteFile(filepath.Join(withPolicy, ".tfsh", "policy.hcl"), []byte(b.String()), 0o644); err != nil {
		fail(err.Error())
	}
	org, err := filepath.Abs(filepath.Join(examples, "..", "policies", "org.hcl"))
	if err != nil {
		fail(err.Error())
	}
	env := benchEnv(work, tf)
	withEnv := append(append([]string(nil), env...), "TFSH_ORG_POLICY="+org)
	refused := []string{tfsh, "-c", "apply -lock=false -auto-approve"}
	for range 3 { // warm: page cache, tfsh's version cache, the audit log
		timedExpect(env, bare, refused, 3)
		timedExpect(withEnv, withPolicy, refused, 3)
	}
	var plain, loaded, diff []float64
	for range rounds {
		var a, p float64
		if rand.IntN(2) == 0 {
			a = ms(timedExpect(env, bare, refused, 3))
			p = ms(timedExpect(withEnv, withPolicy, refused, 3))
		} else {
			p = ms(timedExpect(withEnv, withPolicy, refused, 3))
			a = ms(timedExpect(env, bare, refused, 3))
		}
		plain, loaded, diff = append(plain, a), append(loaded, p), append(diff, p-a)
	}
	fmt.Printf("| start with policy files (refused command, %d paired rounds) | median | min | max |\n|---|---|---|---|\n", rounds)
	fmt.Printf("| no policy files (built-in rules) | %.1f ms | %.1f | %.1f |\n", median(plain), minOf(plain), maxOf(plain))
	fmt.Printf("| organisation example (8 rules) + 50-rule project policy | %.1f ms | %.1f | %.1f |\n", median(loaded), minOf(loaded), maxOf(loaded))
	fmt.Printf("| **added by loading the policy** (paired difference) | **%.1f ms** | %.1f | %.1f |\n", median(diff), minOf(diff), maxOf(diff))
	emit("policy", result.Record{Kind: "policy", Row: "refused command, 8 + 50 rules against none", Params: map[string]string{"rounds": strconv.Itoa(rounds)},
		Stats: []result.Stat{result.Of("no policy files", "ms", plain), result.Of("with the policy files", "ms", loaded), result.Of("added by loading", "ms", diff)}})
}
