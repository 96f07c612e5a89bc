package terraform

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindOrder(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(m map[string]string) Getenv { return func(k string) string { return m[k] } }

	t.Setenv("PATH", t.TempDir())
	if _, err := Find("", env(nil)); !errors.Is(err, ErrNoBinary) {
		t.Fatalf("Find with nothing on PATH = %v, want ErrNoBinary", err)
	}

	t.Setenv("PATH", dir)
	tofu := mk("tofu")
	if got, err := Find("", env(nil)); err != nil || got != tofu {
		t.Fatalf("Find = %q, %v; want tofu %q when it is the only one", got, err, tofu)
	}
	tf := mk("terraform")
	if got, _ := Find("", env(nil)); got != tf {
		t.Fatalf("Find = %q, want terraform before tofu", got)
	}
	other := mk("my-terraform")
	if got, _ := Find("", env(map[string]string{"TFSH_TERRAFORM": other})); got != other {
		t.Fatalf("Find = %q, want $TFSH_TERRAFORM", got)
	}
	if got, _ := Find(tofu, env(map[string]string{"TFSH_TERRAFORM": other})); got != tofu {
		t.Fatalf("Find = %q, want the explicit flag first", got)
	}
	if _, err := Find(filepath.Join(dir, "missing"), env(nil)); err == nil {
		t.Fatal("Find accepted a missing explicit binary")
	}
}
