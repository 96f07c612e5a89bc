package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestHold places a change-freeze hold in the lab's DynamoDB lock table:
// plain terraform (no tfsh) is refused and shows the reason; releasing it
// restores normal work; an expired hold is released by the next tfsh that
// meets it; local state cannot be held.
func TestHold(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	plain := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(tf, args...)
		cmd.Dir, cmd.Env = dir, h.env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}

	if r := h.run(nil, "hold"); r.code != 3 || !strings.Contains(r.stderr, "a hold needs a reason") {
		t.Fatalf("hold without a reason: exit %d\n%s", r.code, r.stderr)
	}
	r := h.must("hold", "--reason", "CHG-9 release freeze")
	if !strings.Contains(r.stderr, "placed a hold on") {
		t.Fatalf("hold: %s", r.stderr)
	}
	if r := h.run(nil, "hold", "--reason", "again"); r.code != 1 || !strings.Contains(r.stderr, "is already held: CHG-9 release freeze") {
		t.Fatalf("a second hold: exit %d\n%s", r.code, r.stderr)
	}
	code, out := plain("apply", "-auto-approve", "-input=false", "-no-color")
	if code == 0 || !strings.Contains(out, "Error acquiring the state lock") || !strings.Contains(out, "CHG-9 release freeze") || !strings.Contains(out, "tfsh-hold") {
		t.Fatalf("plain terraform apply under a hold: exit %d\n%s", code, out)
	}
	h.must("hold", "--release")
	if code, out := plain("apply", "-auto-approve", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("plain terraform apply after the release: exit %d\n%s", code, out)
	}
	if r := h.run(nil, "hold", "--release"); r.code != 1 || !strings.Contains(r.stderr, "no hold to release") {
		t.Fatalf("release without a hold: exit %d\n%s", r.code, r.stderr)
	}

	if r := h.run(nil, "hold", "--reason", "x", "--for", "0s"); r.code != 4 || !strings.Contains(r.stderr, "--for takes a positive duration") {
		t.Fatalf("hold --for 0s: exit %d\n%s", r.code, r.stderr)
	}
	// hold --release of an expired hold releases it, and that is success.
	h.must("hold", "--reason", "gone soon", "--for", "1s")
	time.Sleep(1500 * time.Millisecond)
	if r := h.run(nil, "hold", "--release"); r.code != 0 || !strings.Contains(r.stderr, "released an expired hold (gone soon") {
		t.Fatalf("release of an expired hold: exit %d\n%s", r.code, r.stderr)
	}

	// A command that waits on an expired hold releases it, and takes the
	// lock on terraform's next retry: no need to run it again.
	h.must("hold", "--reason", "freeze over", "--for", "1s")
	time.Sleep(1500 * time.Millisecond)
	if r := h.run(nil, "-c", "plan -input=false -lock-timeout=30s"); r.code != 0 || !strings.Contains(r.stderr, "released an expired hold (freeze over") {
		t.Fatalf("plan waiting on an expired hold: exit %d\n%s", r.code, r.stderr)
	}

	// An expired hold: the next tfsh that meets it releases it.
	h.must("hold", "--reason", "short freeze", "--for", "1s")
	time.Sleep(1500 * time.Millisecond)
	r = h.run(nil, "-c", "plan -input=false -lock-timeout=0s")
	if !strings.Contains(r.stderr, "released an expired hold (short freeze") {
		t.Fatalf("plan over an expired hold: exit %d\n%s", r.code, r.stderr)
	}
	h.must("-c", "plan -input=false")
	var kinds []string
	h.events(audit.EventFilter{Kinds: []string{"hold_placed", "hold_released"}}, func(e audit.Event) error {
		var d struct{ Expired bool }
		json.Unmarshal(e.Data, &d)
		kinds = append(kinds, fmt.Sprintf("%s/%v", e.Kind, d.Expired))
		return nil
	})
	if got := strings.Join(kinds, " "); got != "hold_placed/false hold_released/false hold_placed/false hold_released/true hold_placed/false hold_released/true hold_placed/false hold_released/true" {
		t.Fatalf("hold events: %s", got)
	}

	// Local state cannot be held.
	local := labtest.Example(t, ".", tf, nil, nil)
	hl := newHarness(t, local, tf)
	if r := hl.run(nil, "hold", "--reason", "x"); r.code != 1 || !strings.Contains(r.stderr, "holds live in a remote lock table") {
		t.Fatalf("hold on local state: exit %d\n%s", r.code, r.stderr)
	}
}

// TestHoldLockfile: a hold on the S3 lockfile (If-None-Match: *) refuses a
// plain tofu apply, with the reason in its Lock Info.
func TestHoldLockfile(t *testing.T) {
	tofu := labtest.Tofu(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-lockfile", tofu, s3srv, dyn)
	h := newHarness(t, dir, tofu)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	h.must("hold", "--reason", "CHG-11 lockfile freeze")
	cmd := exec.Command(tofu, "apply", "-auto-approve", "-input=false", "-no-color")
	cmd.Dir, cmd.Env = dir, h.env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CHG-11 lockfile freeze") || !strings.Contains(string(out), "tfsh-hold") {
		t.Fatalf("plain tofu apply under a lockfile hold: %v\n%s", err, out)
	}
	h.must("hold", "--release")
	cmd = exec.Command(tofu, "apply", "-auto-approve", "-input=false", "-no-color")
	cmd.Dir, cmd.Env = dir, h.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plain tofu apply after the release: %v\n%s", err, out)
	}
}
