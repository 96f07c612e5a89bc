package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestUnlockLocal: terraform cannot force-unlock local state. tfsh unlock
// names a live holder and removes nothing; a stale .lock.info left by a
// killed run is called harmless and removed, with a reason and a
// confirmation, and recorded.
func TestUnlockLocal(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")

	// A live holder.
	holder, out, done := h.start("-c", "apply -auto-approve -var hold_seconds=4 -var run_id=unlock")
	h.waitEvent("the holder's acquisition", holder, out, func(e lockEvent) bool { return e.Kind == "lock_acquired" && e.Sub == "apply" })
	r := h.run(nil, "unlock", "--yes", "--reason", "INC-3 testing", "any-id")
	if r.code != 1 || !strings.Contains(r.stderr, "which is running: local locks are released only by their process") || !strings.Contains(r.stderr, "terraform") {
		t.Fatalf("unlock with a live holder: exit %d\n%s", r.code, r.stderr)
	}
	if err := wait(t, done, out); err != nil {
		t.Fatalf("the holder was disturbed: %v\n%s", err, out.String())
	}

	// A stale .lock.info, as a kill -9 leaves it.
	info := filepath.Join(dir, ".terraform.tfstate.lock.info")
	stale := `{"ID":"5ca1ab1e-0000-4000-8000-000000000001","Operation":"OperationTypeApply","Info":"","Who":"bob@old","Version":"1.5.7","Created":"2026-11-25T20:25:11Z","Path":"terraform.tfstate"}`
	if err := os.WriteFile(info, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	r = h.run(nil, "--yes", "--reason", "INC-3", "-c", "force-unlock 5ca1ab1e-wrong")
	if r.code != 1 || !strings.Contains(r.stderr, "5ca1ab1e-wrong is not the lock here") {
		t.Fatalf("a wrong ID on local state: exit %d\n%s", r.code, r.stderr)
	}
	if r := h.run(nil, "unlock", "--yes", "--reason", "INC-3"); r.code != 4 || !strings.Contains(r.stderr, "without a terminal, give the ID") {
		t.Fatalf("unlock without an ID and without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	r = h.run(nil, "unlock", "--reason", "INC-3 stale info", "5ca1ab1e-0000-4000-8000-000000000001")
	if r.code != 1 || !strings.Contains(r.stderr, "needs a confirmation") {
		t.Fatalf("unlock without --yes and without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(info); err != nil {
		t.Fatalf("removed without a confirmation: %v", err)
	}
	r = h.run(nil, "unlock", "--yes", "--reason", "INC-3 stale info", "5ca1ab1e-0000-4000-8000-000000000001")
	if r.code != 0 ||
		!strings.Contains(r.stderr, "is a stale leftover, harmless") || !strings.Contains(r.stderr, "removed "+info) {
		t.Fatalf("unlock of a stale .lock.info: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(info); !os.IsNotExist(err) {
		t.Fatalf("the stale .lock.info is still there: %v", err)
	}
	if show := h.must("audit", "show", "--json", "last").stdout; !strings.Contains(show, `"kind": "force_unlock"`) || !strings.Contains(show, `"stale": true`) || !strings.Contains(show, `"reason": "INC-3 stale info"`) {
		t.Fatalf("the removal is not recorded:\n%s", show)
	}
	if r := h.run(nil, "unlock", "--yes", "--reason", "INC-3", "5ca1ab1e-0000-4000-8000-000000000001"); r.code != 1 || !strings.Contains(r.stderr, "no lock is held") {
		t.Fatalf("unlock with nothing locked: exit %d\n%s", r.code, r.stderr)
	}
}
