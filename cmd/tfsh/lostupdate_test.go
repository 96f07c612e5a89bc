package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// lostUpdateHold is how long the first apply works on its resource (its provisioner sleeps)
// after it has read the state: the second apply runs from start to end inside it.
const lostUpdateHold = 8

// TestLostUpdate is the interleaving docs/locking.md describes, done on purpose with plain
// terraform 1.5.7 and no tfsh, then with the lock kept on.
//
// Two applies change two independent resources of one state (-target=terraform_data.a and
// -target=terraform_data.b). With -lock=false:
//
//  1. A reads the state (neither resource), plans a, and starts creating it (its provisioner
//     takes lostUpdateHold seconds);
//  2. B reads the same state, creates b and writes the state: {b};
//  3. A finishes and writes the state it holds in memory, {a}, over B's.
//
// Both say "Apply complete!" and exit 0, both resources exist (infra/a, infra/b), and the state
// knows only a: b is lost, and the next plan wants to create it again. With the lock on, B
// fails at once on plain terraform (-lock-timeout defaults to 0s); through tfsh, B's
// -lock=false is refused, and B without it waits for A's lock (tfsh adds -lock-timeout=5m),
// then reads A's state and adds b to it: both are kept.
func TestLostUpdate(t *testing.T) {
	tf := labtest.Terraform(t)

	t.Run("lock=false loses an update", func(t *testing.T) {
		dir := lostUpdateConfig(t)
		plainTF(t, dir, tf, "init", "-input=false", "-no-color")
		a, aout, adone := startTF(t, dir, tf, "apply", "-lock=false", "-auto-approve", "-input=false", "-no-color",
			"-target=terraform_data.a", "-var", "hold_seconds="+strconv.Itoa(lostUpdateHold))
		waitOutput(t, a, aout, "terraform_data.a: Provisioning with 'local-exec'")
		// A has read the state and is creating a. B does its whole apply now.
		bout := plainTF(t, dir, tf, "apply", "-lock=false", "-auto-approve", "-input=false", "-no-color", "-target=terraform_data.b")
		select {
		case <-adone:
			t.Fatalf("A ended before B did: the interleaving did not happen (raise lostUpdateHold)\nA:\n%s", aout.String())
		default:
		}
		if !strings.Contains(bout, "Apply complete! Resources: 1 added") {
			t.Fatalf("B:\n%s", bout)
		}
		if stateList(t, dir, tf) != "terraform_data.b" {
			t.Fatalf("after B the state is %q, want terraform_data.b", stateList(t, dir, tf))
		}
		if err := wait(t, adone, aout); err != nil || !strings.Contains(aout.String(), "Apply complete! Resources: 1 added") {
			t.Fatalf("A: %v\n%s", err, aout.String())
		}

		// Both applies succeeded and both resources exist, but the state lost b.
		if got := infra(t, dir); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("infra = %v, want both a and b created", got)
		}
		if got := stateList(t, dir, tf); got != "terraform_data.a" {
			t.Fatalf("state after both applies = %q, want only terraform_data.a (b's update lost)", got)
		}
		// The next plan wants to create b again: a duplicate of what exists.
		out, code := runTF(t, dir, tf, "plan", "-input=false", "-no-color", "-detailed-exitcode")
		if code != 2 || !strings.Contains(out, "terraform_data.b will be created") || !strings.Contains(out, "Plan: 1 to add, 0 to change, 0 to destroy.") {
			t.Fatalf("plan after the lost update (exit %d):\n%s", code, out)
		}
	})

	t.Run("locked keeps both", func(t *testing.T) {
		dir := lostUpdateConfig(t)
		h := newHarness(t, dir, tf)
		h.must("run", "--", "init", "-input=false", "-no-color")
		a, aout, adone := h.start("run", "--", "apply", "-auto-approve", "-input=false", "-no-color",
			"-target=terraform_data.a", "-var", "hold_seconds="+strconv.Itoa(lostUpdateHold))
		waitOutput(t, a, aout, "terraform_data.a: Provisioning with 'local-exec'")

		// Plain terraform with the lock on and its default -lock-timeout=0s: B fails at once.
		out, code := runTF(t, dir, tf, "apply", "-auto-approve", "-input=false", "-no-color", "-target=terraform_data.b")
		if code != 1 || !strings.Contains(out, "Error acquiring the state lock") {
			t.Fatalf("plain terraform apply while A holds the lock: exit %d\n%s", code, out)
		}
		// tfsh refuses B's -lock=false before terraform starts.
		r := h.run(nil, "run", "--", "apply", "-lock=false", "-auto-approve", "-input=false", "-no-color", "-target=terraform_data.b")
		if r.code != exitRefused || !strings.Contains(r.stderr, `refused by rule "no-unlocked-writes"`) {
			t.Fatalf("tfsh run -- apply -lock=false: exit %d\n%s", r.code, r.stderr)
		}
		// Without it, B waits for A's lock and then applies on top of A's state.
		r = h.run(nil, "run", "--", "apply", "-auto-approve", "-input=false", "-no-color", "-target=terraform_data.b")
		if r.code != 0 || !strings.Contains(r.stderr, "added -lock-timeout=5m") || !strings.Contains(r.stdout, "Apply complete! Resources: 1 added") {
			t.Fatalf("tfsh run -- apply (B): exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		select {
		case err := <-adone:
			if err != nil {
				t.Fatalf("A: %v\n%s", err, aout.String())
			}
		default:
			t.Fatalf("B finished while A was still running: B did not wait for A's lock\nB:\n%s", r.stdout)
		}
		if got := infra(t, dir); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("infra = %v", got)
		}
		if got := stateList(t, dir, tf); got != "terraform_data.a\nterraform_data.b" {
			t.Fatalf("state = %q, want both resources", got)
		}
		if waits := only(h.lockEvents(), "lock_wait", "apply"); len(waits) == 0 {
			t.Fatalf("no lock_wait recorded for B: %v", h.lockEvents())
		}
	})
}

// lostUpdateConfig copies testdata/lostupdate into a temporary dir.
func lostUpdateConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "lostupdate", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tfCommand(ctx context.Context, dir, tf string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tf, args...)
	cmd.Dir = dir
	cmd.Env = lab.Env(os.Environ())
	return cmd
}

// runTF runs plain terraform and returns its output and exit code.
func runTF(t *testing.T, dir, tf string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := tfCommand(ctx, dir, tf, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("terraform %q: %v", args, err)
	}
	return string(out), 0
}

// plainTF runs plain terraform and requires exit 0.
func plainTF(t *testing.T, dir, tf string, args ...string) string {
	t.Helper()
	out, code := runTF(t, dir, tf, args...)
	if code != 0 {
		t.Fatalf("terraform %q: exit %d\n%s", args, code, out)
	}
	return out
}

// startTF runs plain terraform in the background.
func startTF(t *testing.T, dir, tf string, args ...string) (*exec.Cmd, *lockedBuffer, chan error) {
	t.Helper()
	cmd := tfCommand(context.Background(), dir, tf, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, out, done
}

// stateList is what the state knows, one address a line.
func stateList(t *testing.T, dir, tf string) string {
	t.Helper()
	return strings.TrimSpace(plainTF(t, dir, tf, "state", "list"))
}

// infra is what the provisioners created: the names in dir/infra, sorted.
func infra(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "infra"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
