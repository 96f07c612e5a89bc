package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestSimulate runs examples/ci/simulate.sh for real, with terraform 1.5.7 and this tfsh (the
// test binary): tfsh lab up, three CI jobs at once against one S3 + DynamoDB state, plan and
// apply -lock=false, explain, lab down. It checks what the script claims, from its output and
// from the audit log it leaves: every job succeeded, jobs waited for each other's lock and
// explain names them, apply -lock=false was refused, and no lab process is left.
func TestSimulate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three CI jobs against the lab")
	}
	tf := labtest.Terraform(t)
	if why := lab.DynamoMissing(); why != "" {
		labtest.Dynamo(t) // terraform 1.5 needs DynamoDB: skips, or fails under TFSH_LAB_REQUIRED
	}
	tfsh, err := exec.LookPath("tfsh") // this test binary (TestMain)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "examples", "ci", "simulate.sh"))
	cmd.Env = append(withoutCI(os.Environ()), "TFSH="+tfsh, "TFSH_TERRAFORM="+tf, "SIMULATE_DIR="+work, "HOLD_SECONDS=4")
	b, err := cmd.CombinedOutput()
	out := string(b)
	t.Cleanup(func() {
		// Whatever happened, no lab server outlives the test.
		c := exec.Command(tfsh, "lab", "down")
		c.Env = append(os.Environ(), lab.EnvLabDir+"="+filepath.Join(work, "lab"))
		c.Run()
	})
	if err != nil {
		t.Fatalf("simulate.sh: %v\n%s", err, out)
	}
	defer func() {
		if t.Failed() {
			t.Logf("simulate.sh output:\n%s", out)
		}
	}()

	// Every job succeeded, step by step.
	for n := 1; n <= 3; n++ {
		row := regexp.MustCompile(`(?m)^  deploy-` + strconv.Itoa(n) + `\s+\w+\s+0\s+exit 0 [0-9.]+s\s+exit 0 [0-9.]+s\s+added -lock-timeout=5m`)
		if !row.MatchString(out) {
			t.Errorf("job deploy-%d did not succeed, or tfsh added no -lock-timeout:\n%s", n, out)
		}
	}
	for _, want := range []string{
		"OK: 3 jobs, 0 failed",
		`tfsh: warning from rule "unlocked-read" (built-in): plan runs without the state lock`,
		`tfsh: refused by rule "no-unlocked-writes" (built-in): apply writes state, and -lock=false turns its state lock off`,
		"exit 3 (3: refused by policy; terraform never started)",
		"=== tfsh explain --since 10m",
		"held by    ",
		"waited     ",
		"tfsh lab: stopped (pid ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("simulate.sh did not print %q", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The audit log it kept: waits were recorded, and explain tells them as chains whose
	// holders and waiters are the CI jobs.
	db := filepath.Join(work, "audit.db")
	waits := 0
	adb, err := audit.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	err = adb.Events(context.Background(), audit.EventFilter{Kinds: []string{"lock_wait"}}, func(audit.Event) error { waits++; return nil })
	adb.Close()
	if err != nil || waits == 0 {
		t.Fatalf("%d lock_wait events (%v): the jobs did not contend\n%s", waits, err, out)
	}
	x := explainLog(t, db, audit.ExplainQuery{})
	ownHosts := strings.Contains(out, "Each job runs on a host of its own")
	waiters := 0
	for _, c := range x.Chains {
		// A plan holds its lock for a few milliseconds: its own watcher can miss it while a
		// waiter sees it (docs/locks.md, "Inferred acquisitions"), and the holder is then known
		// only from the lock record. Every holder tfsh recorded is a CI job.
		if c.Holder.Recorded && (c.Holder.CI == nil || c.Holder.CI.Provider != "github" || !strings.HasPrefix(c.Holder.CI.Job, "deploy-")) {
			t.Errorf("chain %s: holder is not a CI job: %+v", c.LockID, c.Holder)
		}
		for _, w := range c.Waiters {
			if w.CI == nil || !strings.HasPrefix(w.CI.Job, "deploy-") {
				t.Errorf("chain %s: waiter is not a CI job: %+v", c.LockID, w)
			}
			if w.Outcome == "acquired" {
				waiters++
			}
		}
		if !ownHosts {
			continue
		}
		// With a host per job, every lock is attributed to the job that took it (runner-N
		// runs deploy-N), and none is taken for an orphan: each was released, seen released,
		// or (a short lock nobody saw go) unknown.
		if c.Holder.CI != nil && !strings.HasSuffix(c.Holder.Who, "@runner-"+strings.TrimPrefix(c.Holder.CI.Job, "deploy-")) {
			t.Errorf("chain %s: holder %s is job %s", c.LockID, c.Holder.Who, c.Holder.CI.Job)
		}
		if !regexp.MustCompile(`^root@runner-[123]$`).MatchString(c.Holder.Who) {
			t.Errorf("chain %s: holder %q is none of the runners", c.LockID, c.Holder.Who)
		}
		if c.Ending.How == "orphaned" || c.Ending.Orphaned != nil {
			t.Errorf("chain %s: a lock of the jobs reported orphaned: %+v", c.LockID, c.Ending)
		}
	}
	if waiters == 0 {
		t.Fatalf("explain found no waiter that got the lock")
	}

	// The lab is down: its server and dynalite are gone, and so is its state file.
	for _, re := range []string{`\(gofakes3 in the server, pid (\d+);`, `\(dynalite, pid (\d+);`} {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("simulate.sh did not show %s:\n%s", re, out)
		}
		pid, _ := strconv.Atoi(m[1])
		if (&lab.State{PID: pid}).Running() {
			t.Errorf("pid %s (%s) still runs after simulate.sh", m[1], re)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "lab", "lab.json")); !os.IsNotExist(err) {
		t.Errorf("the lab's state file is still there: %v", err)
	}
}

// TestSimulateWorkflowExample: examples/ci/github-actions.yml is valid YAML with the shape of
// a GitHub Actions workflow, and every terraform command in it goes through tfsh run, none
// with -lock=false; the plan job saves the plan and the apply job applies it.
func TestSimulateWorkflowExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "ci", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		Name string            `yaml:"name"`
		Uses string            `yaml:"uses"`
		Run  string            `yaml:"run"`
		With map[string]string `yaml:"with"`
	}
	var wf struct {
		Name        string            `yaml:"name"`
		Concurrency map[string]string `yaml:"concurrency"`
		Env         map[string]string `yaml:"env"`
		Jobs        map[string]struct {
			Needs          string `yaml:"needs"`
			RunsOn         string `yaml:"runs-on"`
			TimeoutMinutes int    `yaml:"timeout-minutes"`
			Steps          []step `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("github-actions.yml: %v", err)
	}
	// YAML 1.1 (yaml.v2) reads the key "on" as true; GitHub reads it as "on".
	var top map[any]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if top[true] == nil && top["on"] == nil {
		t.Errorf("no on: triggers")
	}
	if wf.Name == "" || wf.Concurrency["group"] == "" || wf.Concurrency["cancel-in-progress"] == "" {
		t.Errorf("workflow without a name or a concurrency group: %+v", wf)
	}
	plan, apply := wf.Jobs["plan"], wf.Jobs["apply"]
	if plan.RunsOn == "" || apply.RunsOn == "" || apply.Needs != "plan" {
		t.Fatalf("jobs plan and apply (needs plan) expected: %+v", wf.Jobs)
	}
	runs := map[string][]string{}
	for name, job := range wf.Jobs {
		if job.TimeoutMinutes <= 5 {
			t.Errorf("job %s: timeout-minutes %d is not above tfsh's -lock-timeout=5m", name, job.TimeoutMinutes)
		}
		for _, s := range job.Steps {
			if s.Uses == "" && s.Run == "" {
				t.Errorf("job %s: a step with neither uses nor run: %+v", name, s)
			}
			for _, line := range strings.Split(strings.TrimSpace(s.Run), "\n") {
				if line == "" {
					continue
				}
				runs[name] = append(runs[name], line)
				if f := strings.Fields(line); f[0] == "terraform" || f[0] == "tofu" {
					t.Errorf("job %s runs terraform without tfsh: %q", name, line)
				}
				if strings.Contains(line, "-lock=false") {
					t.Errorf("job %s: %q", name, line)
				}
			}
		}
	}
	for job, want := range map[string][]string{
		"plan":  {"tfsh run -- init -input=false", "tfsh run -- plan -input=false -out=tfplan"},
		"apply": {"tfsh run -- init -input=false", "tfsh run -- apply -input=false tfplan"},
	} {
		for _, w := range want {
			if !slices.Contains(runs[job], w) {
				t.Errorf("job %s does not run %q: %q", job, w, runs[job])
			}
		}
	}
}
