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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
		// [root]: the script may give files to other users.
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// chown UID:GID FILE (numbers; GID "egid" is ours).
			"chown": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: chown UID:GID FILE")
				}
				u, g, _ := strings.Cut(args[0], ":")
				uid, err := strconv.Atoi(u)
				ts.Check(err)
				gid := os.Getegid()
				if g != "egid" {
					gid, err = strconv.Atoi(g)
					ts.Check(err)
				}
				ts.Check(os.Chown(ts.MkAbs(args[1]), uid, gid))
			},
			// holdlock FILE: this test process takes FILE's fcntl lock, as
			// terraform's local backend does, and writes its .lock.info
			// (ID 11111111-2222-3333-4444-555555555555, apply, by
			// someone@elsewhere); releaselock lets it go.
			"holdlock":    holdLock,
			"releaselock": releaseLock,
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

var (
	heldMu sync.Mutex
	held   = map[*testscript.TestScript]*os.File{}
)

func holdLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdlock FILE")
	}
	path := ts.MkAbs(args[0])
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	ts.Check(err)
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	ts.Check(syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
	info := fmt.Sprintf(`{"ID":"11111111-2222-3333-4444-555555555555","Operation":"OperationTypeApply","Info":"","Who":"someone@elsewhere","Version":"1.5.7","Created":%q,"Path":%q}`,
		time.Now().UTC().Format(time.RFC3339Nano), args[0])
	ts.Check(os.WriteFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock.info"), []byte(info), 0o600))
	heldMu.Lock()
	held[ts] = f
	heldMu.Unlock()
	ts.Defer(func() { releaseLock(ts, false, nil) })
}

func releaseLock(ts *testscript.TestScript, neg bool, args []string) {
	heldMu.Lock()
	f := held[ts]
	delete(held, ts)
	heldMu.Unlock()
	if f == nil {
		return
	}
	os.Remove(filepath.Join(filepath.Dir(f.Name()), "."+filepath.Base(f.Name())+".lock.info"))
	f.Close() // closing drops the fcntl lock
}
