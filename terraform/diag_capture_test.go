package terraform_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dyntypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/creack/pty"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

var capture = flag.Bool("capture", false, "regenerate testdata/diag/*.txt from real terraform and tofu runs (a fixture generator, not a test)")

// diagFixtureDir holds the captured streams and their hand-written expectations.
const diagFixtureDir = "testdata/diag"

// TestCaptureDiagFixtures regenerates the raw streams in testdata/diag by running terraform 1.5.7
// and OpenTofu 1.10.10 against the lab into every situation the lock-diagnostic scanner must
// read. It never writes a *.want.json: after a capture, read each changed fixture and edit its
// want file by hand (the IDs, Who and Created times change with every capture).
func TestCaptureDiagFixtures(t *testing.T) {
	if !*capture {
		t.Skip("fixture generator: regenerate testdata/diag with `go test ./terraform -run TestCaptureDiagFixtures -capture`, then update every *.want.json by hand")
	}
	if err := os.MkdirAll(diagFixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s3srv := labtest.S3(t)
	dyn := labtest.Dynamo(t)
	products := []capProduct{
		{name: "terraform-" + lab.TerraformVersion, bin: labtest.Terraform(t)},
		{name: "tofu-" + lab.TofuVersion, bin: labtest.Tofu(t), tofu: true},
	}
	for _, p := range products {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			t.Run("local", func(t *testing.T) { t.Parallel(); captureLocalHeld(t, p) })
			t.Run("local-noinfo", func(t *testing.T) { t.Parallel(); captureLocalNoInfo(t, p) })
			t.Run("acquiring", func(t *testing.T) { t.Parallel(); captureAcquiring(t, p) })
			t.Run("interrupt", func(t *testing.T) { t.Parallel(); captureInterrupts(t, p, 1) })
			t.Run("twointerrupts", func(t *testing.T) { t.Parallel(); captureInterrupts(t, p, 2) })
			t.Run("s3dynamodb", func(t *testing.T) {
				t.Parallel()
				captureRemoteHeld(t, newCapDir(t, p, "s3-dynamodb", s3srv, dyn, nil))
			})
			t.Run("releaseerror", func(t *testing.T) { t.Parallel(); captureReleaseError(t, p, s3srv, dyn) })
			t.Run("releasing", func(t *testing.T) { t.Parallel(); captureReleasing(t, p, s3srv, dyn) })
			if p.tofu {
				t.Run("s3lockfile", func(t *testing.T) {
					t.Parallel()
					captureRemoteHeld(t, newCapDir(t, p, "s3-lockfile", s3srv, nil, nil))
				})
			}
		})
	}
}

// captureLocalHeld: lock errors while a real apply holds the local lock (so terraform prints the
// Lock Info block), in colour, -no-color, plan -json, and on a pty.
func captureLocalHeld(t *testing.T, p capProduct) {
	d := newCapDir(t, p, "local", nil, nil, nil)
	ctx := capContext(t)
	holder, _ := d.hold(ctx, t, 25)
	d.save(t, "lockerror-color", d.run(ctx, t, "apply", "-auto-approve", "-input=false"), 1, "stderr", "Error acquiring the state lock")
	d.save(t, "lockerror-plain", d.run(ctx, t, "apply", "-auto-approve", "-input=false", "-no-color"), 1, "stderr", "Error acquiring the state lock")
	d.save(t, "lockerror-json", d.run(ctx, t, "plan", "-input=false", "-json"), 1, "stdout", `"summary":"Error acquiring the state lock"`)
	d.savePTY(t, "lockerror", d.runPTY(ctx, t, "apply", "-auto-approve", "-input=false"), 1, "Error acquiring the state lock")
	if holder.exited() {
		t.Fatalf("the holder finished before the contenders did: hold too short for this machine")
	}
	holder.wantExit(t, 0)
}

// captureLocalNoInfo: the local lock held with fcntl but no .terraform.tfstate.lock.info, as in
// the instant between terraform taking the lock and writing its info: no Lock Info block.
func captureLocalNoInfo(t *testing.T, p capProduct) {
	d := newCapDir(t, p, "local", nil, nil, nil)
	ctx := capContext(t)
	f, err := os.OpenFile(filepath.Join(d.dir, "terraform.tfstate"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatalf("fcntl lock terraform.tfstate: %v", err)
	}
	d.save(t, "lockerror-noinfo-color", d.run(ctx, t, "apply", "-auto-approve", "-input=false"), 1, "stderr", "Error acquiring the state lock")
	d.save(t, "lockerror-noinfo-plain", d.run(ctx, t, "apply", "-auto-approve", "-input=false", "-no-color"), 1, "stderr", "Error acquiring the state lock")
}

// captureAcquiring: plans with -lock-timeout that wait more than 400ms for a short apply's lock,
// so terraform prints its "Acquiring state lock" progress line, then get the lock and succeed.
func captureAcquiring(t *testing.T, p capProduct) {
	d := newCapDir(t, p, "local", nil, nil, nil)
	ctx := capContext(t)
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"acquiring", "Acquiring state lock", []string{"plan", "-input=false", "-lock-timeout=30s"}},
		{"acquiring-json", `"type":"state_lock_acquire"`, []string{"plan", "-input=false", "-lock-timeout=30s", "-json"}},
	} {
		holder, _ := d.hold(ctx, t, 3)
		d.save(t, c.name, d.run(ctx, t, c.args...), 0, "stdout", c.want)
		holder.wantExit(t, 0)
	}
}

// captureInterrupts: SIGINT (once or twice) to the apply that holds the lock, sent to the
// child process only, while its provisioner sleeps.
func captureInterrupts(t *testing.T, p capProduct, n int) {
	d := newCapDir(t, p, "local", nil, nil, nil)
	ctx := capContext(t)
	for _, jsonView := range []bool{false, true} {
		name, stream, want := "interrupt", "stdout", "Interrupt received."
		if n == 2 {
			name, stream, want = "twointerrupts", "stderr", "Two interrupts received."
		}
		var extra []string
		if jsonView {
			name, stream, want, extra = name+"-json", "stdout", strings.TrimSuffix(want, "."), []string{"-json"}
		}
		var res capResult
		for attempt := 1; ; attempt++ {
			res = d.interrupt(ctx, t, n, extra...)
			if capStream(res, stream, want) || attempt == 5 {
				break
			}
			// Two SIGINTs race terraform's exit after the first (it kills the provisioner's
			// sleep and is gone within ~100ms), or merge when they come too close: try again.
			t.Logf("%s %s attempt %d: no %q on %s (exit %d), again", p.name, name, attempt, want, stream, res.code)
		}
		d.save(t, name, res, res.code, stream, want)
	}
}

// interrupt starts an apply that holds the lock and sends it n SIGINTs (to the child process
// only) while its provisioner sleeps.
func (d *capDir) interrupt(ctx context.Context, t *testing.T, n int, extra ...string) capResult {
	t.Helper()
	// A process that exits at once leaves its .lock.info behind; the hold must not mistake it
	// for its own lock.
	_ = os.Remove(filepath.Join(d.dir, ".terraform.tfstate.lock.info"))
	holder, _ := d.hold(ctx, t, 10, extra...)
	holder.waitOutput(ctx, t, "Provisioning with 'local-exec'")
	time.Sleep(300 * time.Millisecond) // into the sleep
	for i := range n {
		if i > 0 {
			time.Sleep(3 * time.Millisecond)
		}
		if err := holder.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Logf("SIGINT %d to the holder: %v", i+1, err)
		}
	}
	res := holder.wait()
	if res.code == 0 {
		t.Fatalf("apply interrupted %d times exited 0\nstdout:\n%s\nstderr:\n%s", n, res.stdout, res.stderr)
	}
	return res
}

// captureRemoteHeld: lock errors while a real apply holds a remote lock (DynamoDB item or S3
// lockfile), in colour, -no-color and plan -json.
func captureRemoteHeld(t *testing.T, d *capDir) {
	ctx := capContext(t)
	holder, _ := d.hold(ctx, t, 20)
	d.save(t, "lockerror-color", d.run(ctx, t, "apply", "-auto-approve", "-input=false"), 1, "stderr", "Error acquiring the state lock")
	d.save(t, "lockerror-plain", d.run(ctx, t, "apply", "-auto-approve", "-input=false", "-no-color"), 1, "stderr", "Error acquiring the state lock")
	d.save(t, "lockerror-json", d.run(ctx, t, "plan", "-input=false", "-json"), 1, "stdout", `"summary":"Error acquiring the state lock"`)
	if holder.exited() {
		t.Fatalf("the holder finished before the contenders did: hold too short for this machine")
	}
	holder.wantExit(t, 0)
}

// captureReleaseError: the DynamoDB lock item deleted under a running apply, whose unlock then
// fails with "Error releasing the state lock".
func captureReleaseError(t *testing.T, p capProduct, s3srv *lab.S3, dyn *lab.Dynamo) {
	d := newCapDir(t, p, "s3-dynamodb", s3srv, dyn, nil)
	ctx := capContext(t)
	b := labtest.BackendOf(t, d.dir)
	for _, c := range []struct {
		name, stream, want string
		extra              []string
	}{
		{"releaseerror", "stderr", "Error releasing the state lock", nil},
		{"releaseerror-json", "stdout", `"summary":"Error releasing the state lock"`, []string{"-json"}},
	} {
		holder, _ := d.hold(ctx, t, 3, c.extra...)
		_, err := b.Dynamo.Client().DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(b.Table),
			Key:       map[string]dyntypes.AttributeValue{"LockID": &dyntypes.AttributeValueMemberS{Value: b.LockID()}},
		})
		if err != nil {
			t.Fatalf("delete lock item %s: %v", b.LockID(), err)
		}
		res := holder.wait()
		d.save(t, c.name, res, 1, c.stream, c.want)
	}
}

// captureReleasing: the DynamoDB endpoint slowed down (600ms a request) while an apply holds
// the lock, so its unlock takes more than 400ms and terraform prints "Releasing state lock".
func captureReleasing(t *testing.T, p capProduct, s3srv *lab.S3, dyn *lab.Dynamo) {
	target, err := url.Parse(dyn.URL())
	if err != nil {
		t.Fatal(err)
	}
	var slow atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(600 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	d := newCapDir(t, p, "s3-dynamodb", s3srv, dyn, func(hcl string) string {
		return strings.ReplaceAll(hcl, `"`+dyn.URL()+`"`, `"`+proxy.URL+`"`)
	})
	ctx := capContext(t)
	for _, c := range []struct {
		name, want, started string
		extra               []string
	}{
		{"releasing", "Releasing state lock", "Provisioning with 'local-exec'", nil},
		{"releasing-json", `"type":"state_lock_release"`, `"type":"provision_start"`, []string{"-json"}},
	} {
		slow.Store(false)
		holder, _ := d.hold(ctx, t, 2, c.extra...)
		holder.waitOutput(ctx, t, c.started)
		slow.Store(true)
		res := holder.wait()
		slow.Store(false)
		d.save(t, c.name, res, 0, "stdout", c.want)
	}
}

type capProduct struct {
	name string // "terraform-1.5.7": the fixtures' name prefix
	bin  string
	tofu bool
}

// capDir is one working copy of a lab example, initialised.
type capDir struct {
	p       capProduct
	dir     string
	backend string                                // the fixtures' backend part: local, s3dynamodb, s3lockfile
	lockID  func(context.Context) (string, error) // the ID of the lock held now, "" if none
}

var capSeq atomic.Int64

func capContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newCapDir copies the example and runs init; edit, if not nil, rewrites backend.hcl first.
func newCapDir(t *testing.T, p capProduct, example string, s3srv *lab.S3, dyn *lab.Dynamo, edit func(string) string) *capDir {
	t.Helper()
	d := &capDir{p: p, dir: labtest.Example(t, example, p.bin, s3srv, dyn)}
	args := []string{"init", "-input=false", "-no-color"}
	switch example {
	case "local":
		d.backend = "local"
		d.lockID = labtest.LocalLock(d.dir)
	default:
		b := labtest.BackendOf(t, d.dir)
		d.backend = strings.ReplaceAll(example, "-", "")
		args = append(args, "-backend-config=backend.hcl")
		d.lockID = b.Lock()
		if edit != nil {
			path := filepath.Join(d.dir, "backend.hcl")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(edit(string(data))), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := capContext(t)
	if res := d.run(ctx, t, args...); res.code != 0 {
		t.Fatalf("%s init: exit %d\nstdout:\n%s\nstderr:\n%s", p.name, res.code, res.stdout, res.stderr)
	}
	return d
}

type capResult struct {
	stdout, stderr string
	code           int
}

func (d *capDir) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.p.bin, args...)
	cmd.Dir = d.dir
	cmd.Env = lab.Env(os.Environ())
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (d *capDir) run(ctx context.Context, t *testing.T, args ...string) capResult {
	t.Helper()
	cmd := d.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := capExitCode(t, cmd.Run())
	return capResult{stdout.String(), stderr.String(), code}
}

// runPTY runs the command on a pseudo-terminal (80x24) and returns what the terminal got:
// stdout and stderr merged, with the terminal's CRLF line ends.
func (d *capDir) runPTY(ctx context.Context, t *testing.T, args ...string) capResult {
	t.Helper()
	cmd := d.command(ctx, args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatalf("start on a pty: %v", err)
	}
	defer f.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, f) // ends with EIO once the child and its children close the terminal
	return capResult{stdout: out.String(), code: capExitCode(t, cmd.Wait())}
}

func capExitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("running terraform: %v", err)
		return -1
	}
}

// save checks the result (exit code, and want in stream) and only then writes both streams as
// fixtures <product>-<backend>-<kase>-{stdout,stderr}.txt.
func (d *capDir) save(t *testing.T, kase string, res capResult, code int, stream, want string) {
	t.Helper()
	if res.code != code || !capStream(res, stream, want) {
		t.Errorf("%s %s: exit %d, want %d with %q on %s; not saved\nstdout:\n%s\nstderr:\n%s", d.p.name, kase, res.code, code, want, stream, res.stdout, res.stderr)
		return
	}
	base := fmt.Sprintf("%s-%s-%s", d.p.name, d.backend, kase)
	writeFixture(t, base+"-stdout.txt", res.stdout)
	writeFixture(t, base+"-stderr.txt", res.stderr)
}

// capStream reports whether the stream ("stdout" or "stderr") of res contains want.
func capStream(res capResult, stream, want string) bool {
	if stream == "stderr" {
		return strings.Contains(res.stderr, want)
	}
	return strings.Contains(res.stdout, want)
}

func (d *capDir) savePTY(t *testing.T, kase string, res capResult, code int, want string) {
	t.Helper()
	if res.code != code || !strings.Contains(res.stdout, want) || !strings.Contains(res.stdout, "\r\n") {
		t.Errorf("%s %s on a pty: exit %d, want %d with %q and CRLF; not saved\n%q", d.p.name, kase, res.code, code, want, res.stdout)
		return
	}
	writeFixture(t, fmt.Sprintf("%s-%s-%s-pty.txt", d.p.name, d.backend, kase), res.stdout)
}

func writeFixture(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(diagFixtureDir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", name, len(data))
}

// hold starts an apply that keeps the lock for seconds (its provisioner sleeps) and returns
// once the lock is seen where it lives.
func (d *capDir) hold(ctx context.Context, t *testing.T, seconds int, extra ...string) (*capProc, string) {
	t.Helper()
	args := append([]string{"apply", "-auto-approve", "-input=false",
		fmt.Sprintf("-var=hold_seconds=%d", seconds), fmt.Sprintf("-var=run_id=capture-%d", capSeq.Add(1))}, extra...)
	cmd := d.command(ctx, args...)
	p := &capProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		code := -1
		if err == nil {
			code = 0
		} else if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		p.res = capResult{p.stdout.String(), p.stderr.String(), code}
		close(p.done)
	}()
	t.Cleanup(func() { <-p.done })
	for {
		id, err := d.lockID(ctx)
		if err != nil {
			t.Fatalf("observing the lock: %v", err)
		}
		if id != "" {
			return p, id
		}
		if p.exited() {
			res := p.wait()
			t.Fatalf("holder exited (%d) before its lock was seen\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lock never seen: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type capProc struct {
	cmd            *exec.Cmd
	stdout, stderr capBuffer
	done           chan struct{}
	res            capResult
}

func (p *capProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *capProc) wait() capResult { <-p.done; return p.res }

func (p *capProc) wantExit(t *testing.T, code int) {
	t.Helper()
	if res := p.wait(); res.code != code {
		t.Fatalf("holder: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, code, res.stdout, res.stderr)
	}
}

// waitOutput waits until the process printed s on stdout.
func (p *capProc) waitOutput(ctx context.Context, t *testing.T, s string) {
	t.Helper()
	for !strings.Contains(p.stdout.String(), s) {
		if p.exited() {
			res := p.wait()
			t.Fatalf("holder exited (%d) before printing %q\nstdout:\n%s\nstderr:\n%s", res.code, s, res.stdout, res.stderr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("holder never printed %q: %v", s, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// capBuffer is a bytes.Buffer safe to read while the child writes to it.
type capBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
