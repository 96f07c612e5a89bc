package shell

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "tfsh", "history")
	h, err := OpenHistory(path)
	if err != nil || len(h.Entries()) != 0 {
		t.Fatalf("OpenHistory on no file = %v, %v", h.Entries(), err)
	}
	redact := func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }
	for _, typed := range []string{
		"plan",
		"apply -var 'db_password=s3cr3t value' -auto-approve",
		"plan",
		"init -backend-config=secret_key=AKIASECRET",
		"state list | grep x",   // cannot be split: not stored
		"TF_VAR_pw=s3cr3t plan", // an environment assignment (refused): not stored
		"apply -var-file=prod.tfvars",
		"plan -var x=hunter2",
		"apply -var-file=prod.tfvars", // moves to the end
		"apply -var-file=prod.tfvars", // repeats the last entry: nothing
	} {
		line, ok := HistoryLine(typed, redact)
		if !ok {
			continue
		}
		if err := h.Add(line); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"apply -var db_password=[redacted] -auto-approve",
		"plan",
		"init -backend-config=secret_key=[redacted]",
		"plan -var x=[redacted]",
		"apply -var-file=prod.tfvars",
	}
	if got := h.Entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries = %q\nwant %q", got, want)
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{"s3cr3t", "AKIASECRET", "hunter2"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("history file holds %q:\n%s", secret, raw)
		}
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, _ := os.Stat(p)
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Fatalf("%s mode %v, want no group or other access", p, perm)
		}
	}
	// Read back: de-duplicated, last place kept.
	h2, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := h2.Entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read back = %q\nwant %q", got, want)
	}
}

func TestHistoryTrims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	var b strings.Builder
	for i := range historyMax + 500 {
		fmt.Fprintf(&b, "plan -var n=%d\n", i)
	}
	os.WriteFile(path, []byte(b.String()), 0o600)
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	e := h.Entries()
	if len(e) != historyMax || e[0] != "plan -var n=500" {
		t.Fatalf("%d entries, first %q", len(e), e[0])
	}
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), "\n"); n != historyMax {
		t.Fatalf("file has %d lines after trimming, want %d", n, historyMax)
	}
}

// TestHistoryRewriteIsPrivate: the trimmed file is 0600 even over a stale
// world-readable temporary file, with umask 0.
func TestHistoryRewriteIsPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "history")
	var b strings.Builder
	for i := range historyMax + 1 {
		fmt.Fprintf(&b, "plan -var n=%d\n", i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	os.WriteFile(path+".tmp", nil, 0o666)
	if _, err := OpenHistory(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("history mode %v after rewrite, want 0600", perm)
	}
}
