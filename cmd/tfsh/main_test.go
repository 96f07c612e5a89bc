package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestMain lets the test binary act as tfsh (testscript puts it on PATH as
// "tfsh"), so scripts and integration tests run the real entry point, built
// with the same flags (-race included) as the tests.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tfsh": func() { os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestScripts runs testdata/script/*.txtar. Each script starts in $WORK
// with a copy of examples/lab in $WORK/lab, its own audit log
// ($TFSH_AUDIT_DB) and terraform 1.5.7 as $TFSH_TERRAFORM.
func TestScripts(t *testing.T) {
	tf := labtest.Terraform(t)
	root := repoRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			for _, kv := range lab.Env(nil) {
				k, v, _ := cut(kv)
				e.Setenv(k, v)
			}
			e.Setenv("TFSH_TERRAFORM", tf)
			e.Setenv("TFSH_AUDIT_DB", filepath.Join(e.WorkDir, "audit.db"))
			e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, ".cache"))
			e.Setenv("XDG_STATE_HOME", filepath.Join(e.WorkDir, ".state"))
			return copyDir(filepath.Join(root, "examples", "lab"), filepath.Join(e.WorkDir, "lab"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exits N cmd args...: run cmd and require exit code N.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exits N command args...")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				if (got == want) == neg {
					ts.Fatalf("exit code %d, want %s%d", got, map[bool]string{true: "not ", false: ""}[neg], want)
				}
			},
		},
	})
}

func cut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// copyDir copies a directory of plain files (an example), skipping what a
// previous run may have left behind.
func copyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		base := filepath.Base(p)
		if fi.IsDir() && (base == ".terraform") || base == "terraform.tfstate" || base == "terraform.tfstate.backup" || base == ".terraform.lock.hcl" {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}
