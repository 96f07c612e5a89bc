// Package labtest gives tests the lab's parts (package lab): the terraform and tofu builds, the
// loopback S3 and DynamoDB servers, Chromium, and working copies of the examples/lab configurations.
//
// A missing part skips the test, except in CI (the CI environment variable is non-empty) or when
// TFSH_LAB_REQUIRED is set (scripts/test.sh sets it after installing the lab), where it fails it.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
)

// Terraform returns the path of the lab's terraform 1.5.7 (lab.FindTerraform).
func Terraform(t testing.TB) string {
	t.Helper()
	p, err := lab.FindTerraform()
	if err != nil {
		missing(t, err)
	}
	return p
}

// Tofu returns the path of the lab's OpenTofu 1.10.10 (lab.FindTofu).
func Tofu(t testing.TB) string {
	t.Helper()
	p, err := lab.FindTofu()
	if err != nil {
		missing(t, err)
	}
	return p
}

// Chromium returns the path of the Chromium the browser tests run headless (lab.FindChromium).
func Chromium(t testing.TB) string {
	t.Helper()
	p, err := lab.FindChromium()
	if err != nil {
		missing(t, err)
	}
	return p
}

// Required reports whether a missing lab part must fail a test rather than
// skip it: in CI, and whenever TFSH_LAB_REQUIRED is set.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("TFSH_LAB_REQUIRED") != ""
}

func missing(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("lab part missing (run scripts/setup-lab.sh, or make test): %v", err)
	}
	t.Skipf("lab part missing, skipping: %v", err)
}

// S3 starts an in-memory S3 server for the test and stops it when the test ends.
func S3(t testing.TB) *lab.S3 {
	t.Helper()
	s, err := lab.StartS3(context.Background())
	if err != nil {
		t.Fatalf("starting lab S3: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Dynamo starts an in-memory DynamoDB server (dynalite) for the test and stops it when the test
// ends. A missing dynalite or node skips the test (fails it in CI).
func Dynamo(t testing.TB) *lab.Dynamo {
	t.Helper()
	if _, err := lab.FindDynalite(); err != nil {
		missing(t, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, fmt.Errorf("node not on PATH: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := lab.StartDynamo(ctx)
	if err != nil {
		t.Fatalf("starting lab DynamoDB: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Backend describes the remote state an Example was configured for.
type Backend struct {
	Kind     string // "terraform" or "tofu": the binary the backend.hcl was written for
	Bucket   string // S3 bucket, created on the S3 server
	Key      string // state object key
	Table    string // DynamoDB lock table, created on the DynamoDB server; "" if none
	Lockfile bool   // use_lockfile = true: the lock is the object Key+".tflock"
	S3       *lab.S3
	Dynamo   *lab.Dynamo
}

// LockID is the DynamoDB lock item's key for the default workspace: "<bucket>/<key>".
func (b Backend) LockID() string { return b.Bucket + "/" + b.Key }

// LockfileKey is the S3 lockfile's key for the default workspace: "<key>.tflock".
func (b Backend) LockfileKey() string { return b.Key + ".tflock" }

// StateKey is the state object key every example uses.
const StateKey = "lab/terraform.tfstate"

var (
	exampleSeq   atomic.Int64
	backendsMu   sync.Mutex
	backendsByWD = map[string]Backend{}
)

// Example copies the lab configuration examples/lab/<name> ("local", "" or "." for the
// local-backend one at examples/lab itself; "s3-dynamodb"; "s3-lockfile") into a temporary dir
// and returns its path. For an S3 example it creates a bucket (and, with DynamoDB, a lock table)
// on the given servers and writes backend.hcl there from the example's <kind>.tfbackend.tmpl,
// kind being "terraform" or "tofu" according to binary; run init with -backend-config=backend.hcl.
// BackendOf tells the names it chose.
//
// Only the example's own files are copied: no subdirs, and no .terraform, state, plan or
// backend.hcl files that running it by hand may have left.
func Example(t testing.TB, name, binary string, s3 *lab.S3, dyn *lab.Dynamo) string {
	t.Helper()
	src := ExamplesDir(t)
	if name == "" || name == "local" {
		name = "."
	}
	if fi, err := os.Stat(filepath.Join(src, name)); err != nil || !fi.IsDir() {
		t.Fatalf("labtest.Example: no example %q in %s", name, src)
	}
	dir := filepath.Join(t.TempDir(), filepath.Base(filepath.Join("lab", name)))
	if err := copyExample(filepath.Join(src, name), dir); err != nil {
		t.Fatalf("labtest.Example: copying example %q: %v", name, err)
	}

	tmpls, _ := filepath.Glob(filepath.Join(dir, "*.tfbackend.tmpl"))
	if len(tmpls) == 0 {
		return dir // local backend: nothing to configure
	}
	kind, err := BinaryKind(binary)
	if err != nil {
		t.Fatalf("labtest.Example: %v", err)
	}
	tmplPath := filepath.Join(dir, kind+".tfbackend.tmpl")
	tmpl, err := os.ReadFile(tmplPath)
	if err != nil {
		t.Fatalf("labtest.Example: example %q has no backend configuration for %s (%s): %v", name, kind, filepath.Base(tmplPath), err)
	}
	n := exampleSeq.Add(1)
	b := Backend{Kind: kind, Key: StateKey, S3: s3, Dynamo: dyn}
	vars := map[string]string{"KEY": StateKey}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_0-9]+)\}`).FindAllStringSubmatch(string(tmpl), -1) {
		used[m[1]] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if used["S3_ENDPOINT"] || used["BUCKET"] {
		if s3 == nil {
			t.Fatalf("labtest.Example: example %q needs an S3 server", name)
		}
		b.Bucket = fmt.Sprintf("tfsh-lab-%d", n)
		if err := s3.CreateBucket(ctx, b.Bucket); err != nil {
			t.Fatalf("labtest.Example: %v", err)
		}
		vars["S3_ENDPOINT"], vars["BUCKET"] = s3.URL(), b.Bucket
	}
	if used["DYNAMODB_ENDPOINT"] || used["TABLE"] {
		if dyn == nil {
			t.Fatalf("labtest.Example: example %q needs a DynamoDB server", name)
		}
		b.Table = fmt.Sprintf("tfsh-locks-%d", n)
		if err := dyn.CreateLockTable(ctx, b.Table); err != nil {
			t.Fatalf("labtest.Example: %v", err)
		}
		vars["DYNAMODB_ENDPOINT"], vars["TABLE"] = dyn.URL(), b.Table
	}
	var unknown []string
	out := os.Expand(string(tmpl), func(k string) string {
		v, ok := vars[k]
		if !ok {
			unknown = append(unknown, k)
		}
		return v
	})
	if len(unknown) > 0 {
		t.Fatalf("labtest.Example: %s uses unknown placeholders %v", tmplPath, unknown)
	}
	b.Lockfile = regexp.MustCompile(`(?m)^\s*use_lockfile\s*=\s*true\b`).MatchString(out)
	if err := os.WriteFile(filepath.Join(dir, "backend.hcl"), []byte(out), 0o600); err != nil {
		t.Fatalf("labtest.Example: %v", err)
	}
	backendsMu.Lock()
	backendsByWD[dir] = b
	backendsMu.Unlock()
	return dir
}

// BackendOf returns what Example configured in dir; it fails the test for a dir Example did
// not configure with a remote backend.
func BackendOf(t testing.TB, dir string) Backend {
	t.Helper()
	backendsMu.Lock()
	b, ok := backendsByWD[dir]
	backendsMu.Unlock()
	if !ok {
		t.Fatalf("labtest.BackendOf: %s is not an S3 example made by labtest.Example", dir)
	}
	return b
}

// BinaryKind tells whether binary is terraform or OpenTofu: by its file name when that says so,
// else by running `binary version`.
func BinaryKind(binary string) (string, error) {
	base := strings.ToLower(filepath.Base(binary))
	switch {
	case strings.Contains(base, "tofu"):
		return "tofu", nil
	case strings.Contains(base, "terraform"):
		return "terraform", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "version")
	cmd.Env = lab.Env(os.Environ())
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", binary, err)
	}
	switch first, _, _ := strings.Cut(string(out), "\n"); {
	case strings.HasPrefix(first, "OpenTofu "):
		return "tofu", nil
	case strings.HasPrefix(first, "Terraform "):
		return "terraform", nil
	default:
		return "", fmt.Errorf("%s version: neither terraform nor tofu: %q", binary, first)
	}
}

// ExamplesDir returns the repository's examples/lab dir, found from the working directory (go test
// runs in the package's dir) or from this file's location.
func ExamplesDir(t testing.TB) string {
	t.Helper()
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
				regexp.MustCompile(`(?m)^module\s+github\.com/tfsh/tfsh\s*$`).Match(data) {
				if fi, err := os.Stat(filepath.Join(d, "examples", "lab")); err == nil && fi.IsDir() {
					return filepath.Join(d, "examples", "lab")
				}
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	t.Fatalf("labtest: cannot find examples/lab of module github.com/tfsh/tfsh above %v", starts)
	return ""
}

// copyExample copies the configuration files of one example dir (not its subdirs), leaving out
// what running terraform in it by hand may have left behind.
func copyExample(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || skipExampleFile(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func skipExampleFile(name string) bool {
	return name == "backend.hcl" || name == ".terraform.lock.hcl" ||
		strings.HasPrefix(name, "terraform.tfstate") || strings.HasPrefix(name, ".terraform.tfstate") ||
		strings.HasSuffix(name, ".tfplan")
}
