package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// holdSeconds is how long the holding apply keeps the lock; the contender runs inside it.
const holdSeconds = 4

// TestExampleConfigsAgree keeps the copies of the lab workload identical, so every example
// has the same resources, variables and outputs and only the backend differs.
func TestExampleConfigsAgree(t *testing.T) {
	root := labtest.ExamplesDir(t)
	for _, f := range []string{"main.tf", "variables.tf", "outputs.tf"} {
		want, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range []string{"s3-dynamodb", "s3-lockfile"} {
			got, err := os.ReadFile(filepath.Join(root, ex, f))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("examples/lab/%s/%s differs from examples/lab/%s", ex, f, f)
			}
		}
	}
}

// TestExamplesWithPlainBinaries runs the lab examples with the real terraform 1.5.7 and
// OpenTofu 1.10.10 against the loopback servers: init, plan and apply work, and a second apply
// while a first one holds the lock fails with the lock diagnostic, the lock being visible where
// it lives (local .lock.info, DynamoDB item, S3 .tflock object) with the ID the diagnostic names.
func TestExamplesWithPlainBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform and tofu against the lab servers")
	}
	s3srv := labtest.S3(t)
	var dyn *lab.Dynamo // shared by the DynamoDB cases; nil if dynalite is not installed
	if _, err := lab.FindDynalite(); err == nil {
		dyn = labtest.Dynamo(t)
	}

	for _, tc := range []struct{ binary, example string }{
		{"terraform", "local"},
		{"tofu", "local"},
		{"terraform", "s3-dynamodb"},
		{"tofu", "s3-dynamodb"},
		{"tofu", "s3-lockfile"},
	} {
		t.Run(tc.binary+"/"+tc.example, func(t *testing.T) {
			t.Parallel()
			bin := labtest.Tofu
			if tc.binary == "terraform" {
				bin = labtest.Terraform
			}
			r := runner{bin: bin(t)}
			var d *lab.Dynamo
			if tc.example == "s3-dynamodb" {
				if dyn == nil {
					labtest.Dynamo(t) // skips, or fails in CI, saying what is missing
				}
				d = dyn
			}
			var s *lab.S3
			if tc.example != "local" {
				s = s3srv
			}
			r.dir = labtest.Example(t, tc.example, r.bin, s, d)

			var observe func(context.Context) (string, error)
			initArgs := []string{"init", "-input=false", "-no-color"}
			if tc.example == "local" {
				observe = labtest.LocalLock(r.dir)
			} else {
				b := labtest.BackendOf(t, r.dir)
				initArgs = append(initArgs, "-backend-config=backend.hcl")
				if b.Lockfile {
					observe = b.LockfileLock()
				} else {
					observe = b.DynamoLock()
				}
			}

			r.mustRun(t, initArgs...)
			r.mustRun(t, "plan", "-input=false", "-no-color")
			r.mustRun(t, "apply", "-auto-approve", "-input=false", "-no-color")

			// The holder: replacing terraform_data.hold runs `sleep holdSeconds` under the lock.
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			holder := r.start(ctx, t, "apply", "-auto-approve", "-input=false", "-no-color",
				fmt.Sprintf("-var=hold_seconds=%d", holdSeconds), "-var=run_id=hold", "-var=db_password=hunter2")
			heldID := waitForLock(ctx, t, observe, holder)

			// The contender: plain apply, no -lock-timeout, colours on as by default.
			res := r.run(ctx, "apply", "-auto-approve", "-input=false")
			if holder.exited() {
				t.Fatalf("the holder finished before the contender did: hold too short for this machine")
			}
			plain := stripTerm(res.stderr)
			if res.code != 1 || !strings.Contains(res.stderr, "Error acquiring the state lock") {
				t.Fatalf("second apply during the hold: exit %d, want 1 with \"Error acquiring the state lock\" on stderr\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, plain)
			}
			if m := regexp.MustCompile(`(?m)^\s*ID:\s+(\S+)`).FindStringSubmatch(plain); m == nil || m[1] != heldID {
				t.Errorf("lock diagnostic names ID %v, the lock seen where it lives has %q\n%s", m, heldID, plain)
			}

			hres := holder.wait()
			if hres.code != 0 || !strings.Contains(hres.stdout, "Apply complete!") {
				t.Fatalf("holding apply: exit %d\nstdout:\n%s\nstderr:\n%s", hres.code, hres.stdout, hres.stderr)
			}
			if strings.Contains(hres.stdout+hres.stderr, "hunter2") {
				t.Errorf("the sensitive db_password value appeared in terraform's output")
			}
			if id, err := observe(ctx); err != nil || id != "" {
				t.Errorf("after the holding apply: lock %q, %v; want none", id, err)
			}
		})
	}
}

// waitForLock polls until the lock appears, failing if the holder exits first.
func waitForLock(ctx context.Context, t *testing.T, observe func(context.Context) (string, error), holder *proc) string {
	t.Helper()
	start := time.Now()
	for {
		id, err := observe(ctx)
		if err != nil {
			t.Fatalf("observing the lock: %v", err)
		}
		if id != "" {
			t.Logf("lock %s seen %v after the holder started", id, time.Since(start).Round(time.Millisecond))
			return id
		}
		if holder.exited() {
			res := holder.wait()
			t.Fatalf("holder exited (%d) before its lock was seen\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lock never seen: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// stripTerm removes colour codes and the diagnostic frame (│ ╷ ╵) terraform adds by default.
func stripTerm(s string) string {
	s = ansiRE.ReplaceAllString(s, "")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		l = strings.TrimPrefix(l, "│ ")
		if l == "│" || l == "╷" || l == "╵" {
			l = ""
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

type runner struct{ bin, dir string }

type result struct {
	code           int
	stdout, stderr string
}

func (r runner) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = lab.Env(os.Environ())
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func (r runner) run(ctx context.Context, args ...string) result {
	cmd, stdout, stderr := r.command(ctx, args...)
	err := cmd.Run()
	return result{exitCode(err), stdout.String(), stderr.String()}
}

func (r runner) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res := r.run(ctx, args...)
	if res.code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", filepath.Base(r.bin), strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	t.Logf("%s %s: %v", filepath.Base(r.bin), args[0], time.Since(start).Round(time.Millisecond))
	return res
}

type proc struct {
	done   chan struct{}
	result result
}

func (r runner) start(ctx context.Context, t *testing.T, args ...string) *proc {
	t.Helper()
	cmd, stdout, stderr := r.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.result = result{exitCode(err), stdout.String(), stderr.String()}
		close(p.done)
	}()
	t.Cleanup(func() { <-p.done })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) wait() result { <-p.done; return p.result }

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		return -1
	}
}
