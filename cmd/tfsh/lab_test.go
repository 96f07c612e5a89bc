package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// labHarness runs tfsh lab with a lab dir of its own ($TFSH_LAB_DIR), and takes the lab down
// when the test ends, whatever happened.
type labHarness struct {
	t   *testing.T
	dir string // the lab dir
	env []string
}

func newLabHarness(t *testing.T, extraEnv ...string) *labHarness {
	t.Helper()
	l := &labHarness{t: t, dir: filepath.Join(t.TempDir(), "lab")}
	l.env = lab.Env(os.Environ(), append([]string{lab.EnvLabDir + "=" + l.dir}, extraEnv...)...)
	t.Cleanup(func() {
		if r := l.run("lab", "down"); r.code != 0 {
			t.Errorf("tfsh lab down at cleanup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	return l
}

func (l *labHarness) run(args ...string) result {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tfsh", args...)
	cmd.Env = l.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		l.t.Fatalf("tfsh %q: %v", args, err)
	}
	return r
}

func (l *labHarness) must(args ...string) result {
	l.t.Helper()
	r := l.run(args...)
	if r.code != 0 {
		l.t.Fatalf("tfsh %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func (l *labHarness) report(args ...string) (labReport, result) {
	l.t.Helper()
	r := l.run(append(args, "--json")...)
	var rep labReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		l.t.Fatalf("tfsh %q --json: %v\nstdout:\n%s\nstderr:\n%s", args, err, r.stdout, r.stderr)
	}
	return rep, r
}

// withoutDynalite makes DynamoDB missing for the lab: quick S3-only labs.
var withoutDynalite = lab.EnvDynalite + "=/nonexistent/dynalite/cli.js"

// runWithLabEnv runs binary in dir with the environment a user gets from the lab's env.sh.
func runWithLabEnv(t *testing.T, dir, envFile string, binary string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `. "$0" && exec "$@"`, envFile, binary}, args...)...)
	cmd.Dir = dir
	cmd.Env = lab.Env(os.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(binary), args, err, out)
	}
	return string(out)
}

// s3Workdir is a copy of examples/lab/s3-dynamodb: the lab workload with an empty backend "s3" {}.
func s3Workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(labtest.ExamplesDir(t), "s3-dynamodb")
	for _, f := range []string{"main.tf", "variables.tf", "outputs.tf", "backend.tf"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLabUpStatusDown: tfsh lab up starts S3 and DynamoDB that outlive it; a second up says
// so and changes nothing; status tells what runs; terraform 1.5.7 and OpenTofu 1.10.10 init
// and apply with the backend files and environment up printed; down stops the server and
// dynalite; a second down and status say the lab is not running.
func TestLabUpStatusDown(t *testing.T) {
	if why := lab.DynamoMissing(); why != "" {
		labtest.Dynamo(t) // skips, or fails under TFSH_LAB_REQUIRED, saying what is missing
	}
	tf, tofu := labtest.Terraform(t), labtest.Tofu(t)
	l := newLabHarness(t)

	r := l.must("lab", "up")
	for _, want := range []string{
		"tfsh lab: started (pid ",
		"export AWS_ACCESS_KEY_ID=" + lab.AccessKeyID,
		"terraform init -backend-config=" + filepath.Join(l.dir, "terraform-1.5.tfbackend"),
		"tofu init -backend-config=" + filepath.Join(l.dir, "s3-dynamodb.tfbackend"),
		"tofu init -backend-config=" + filepath.Join(l.dir, "s3-lockfile.tfbackend"),
		"dynamodb_endpoint           = \"http://127.0.0.1:",
		"endpoints = {",
		"use_lockfile = true",
		"Stop it with: tfsh lab down",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lab up does not print %q:\n%s", want, r.stdout)
		}
	}
	st, err := lab.ReadState(l.dir)
	if err != nil || st == nil {
		t.Fatalf("state after up: %v %v", st, err)
	}
	if st.DynamoDBPID == 0 || !(&lab.State{PID: st.DynamoDBPID, PIDStart: st.DynamoDBPIDStart}).Running() {
		t.Fatalf("dynalite not running: %+v", st)
	}

	// The servers outlived tfsh lab up; a second up finds them.
	rep, _ := l.report("lab", "up")
	if rep.Status != "already running" || rep.Lab == nil || rep.Lab.PID != st.PID || rep.Lab.S3URL != st.S3URL {
		t.Fatalf("second up: %+v", rep)
	}
	if r := l.must("lab", "up"); !strings.Contains(r.stdout, "tfsh lab: already running (pid "+strconv.Itoa(st.PID)) {
		t.Fatalf("second up:\n%s", r.stdout)
	}
	rep, r = l.report("lab", "status")
	if r.code != 0 || rep.Status != "running" || rep.S3 == nil || !rep.S3.Answering || rep.DynamoDB == nil || !rep.DynamoDB.Answering ||
		rep.UptimeSeconds <= 0 || rep.Lab.Bucket != lab.DefaultBucket || rep.Lab.Table != lab.DefaultTable || len(rep.Lab.Backends) != 3 {
		t.Fatalf("status --json (exit %d): %s", r.code, r.stdout)
	}

	// What users do: the printed environment and backend file, plain terraform and tofu.
	for _, c := range []struct{ binary, backend string }{
		{tf, "terraform-1.5"}, {tofu, "s3-dynamodb"}, {tofu, "s3-lockfile"},
	} {
		dir := s3Workdir(t)
		out := runWithLabEnv(t, dir, st.EnvFile, c.binary, "init", "-input=false", "-no-color",
			"-backend-config="+filepath.Join(l.dir, c.backend+".tfbackend"), "-backend-config=key="+c.backend+"/terraform.tfstate")
		if !strings.Contains(out, "successfully initialized") {
			t.Fatalf("%s init with %s:\n%s", c.binary, c.backend, out)
		}
		out = runWithLabEnv(t, dir, st.EnvFile, c.binary, "apply", "-input=false", "-no-color", "-auto-approve", "-var", "run_id="+c.backend)
		if !strings.Contains(out, "Apply complete!") || !strings.Contains(out, `run_id = "`+c.backend+`"`) {
			t.Fatalf("%s apply with %s:\n%s", c.binary, c.backend, out)
		}
		// The state went to the lab: a fresh copy reads it back.
		fresh := s3Workdir(t)
		runWithLabEnv(t, fresh, st.EnvFile, c.binary, "init", "-input=false", "-no-color",
			"-backend-config="+filepath.Join(l.dir, c.backend+".tfbackend"), "-backend-config=key="+c.backend+"/terraform.tfstate")
		if out := runWithLabEnv(t, fresh, st.EnvFile, c.binary, "output", "-raw", "run_id"); out != c.backend {
			t.Fatalf("%s output from a fresh init with %s = %q", c.binary, c.backend, out)
		}
	}

	r = l.must("lab", "down")
	if !strings.Contains(r.stdout, "tfsh lab: stopped (pid "+strconv.Itoa(st.PID)) {
		t.Fatalf("down:\n%s", r.stdout)
	}
	if st.Running() || (&lab.State{PID: st.DynamoDBPID, PIDStart: st.DynamoDBPIDStart}).Running() {
		t.Fatalf("the server (pid %d) or dynalite (pid %d) is still running after down", st.PID, st.DynamoDBPID)
	}
	if s3Err, dynErr := st.Check(context.Background()); s3Err == nil || dynErr == nil {
		t.Fatalf("servers still answer after down: %v, %v", s3Err, dynErr)
	}
	if r := l.must("lab", "down"); !strings.Contains(r.stdout, "tfsh lab: not running (nothing to stop in "+l.dir+")") {
		t.Fatalf("second down:\n%s", r.stdout)
	}
	if rep, r := l.report("lab", "down"); r.code != 0 || rep.Status != "not running" || rep.Lab != nil {
		t.Fatalf("down --json when down: exit %d %s", r.code, r.stdout)
	}
	if r := l.run("lab", "status"); r.code != 1 || !strings.Contains(r.stdout, "tfsh lab: not running (no lab in "+l.dir) {
		t.Fatalf("status when down: exit %d\n%s", r.code, r.stdout)
	}
}

// TestLabStaleState: the state file of a server that is gone is reported by status and down,
// and replaced by up; a corrupt one stops up with the path.
func TestLabStaleState(t *testing.T) {
	l := newLabHarness(t, withoutDynalite)
	gone := exec.Command("/bin/sh", "-c", "exit 0")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := `{"dir":"` + l.dir + `","pid":` + strconv.Itoa(gone.Process.Pid) + `,"started_at":"2026-01-01T00:00:00Z","s3_url":"http://127.0.0.1:9","bucket":"tfsh-lab","key":"k"}`
	if err := os.WriteFile(filepath.Join(l.dir, "lab.json"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	r := l.run("lab", "status")
	if r.code != 1 || !strings.Contains(r.stdout, "its server (pid "+strconv.Itoa(gone.Process.Pid)+") is gone: tfsh lab up starts a new one") {
		t.Fatalf("status of a stale lab: exit %d\n%s", r.code, r.stdout)
	}
	if rep, r := l.report("lab", "status"); r.code != 1 || rep.Status != "stale" {
		t.Fatalf("status --json of a stale lab: exit %d %s", r.code, r.stdout)
	}
	r = l.must("lab", "up")
	if !strings.Contains(r.stderr, "replaced the state of a lab server that is gone (pid "+strconv.Itoa(gone.Process.Pid)) {
		t.Fatalf("up over a stale state does not say so:\n%s", r.stderr)
	}
	st, _ := lab.ReadState(l.dir)
	if st == nil || !st.Running() || st.S3URL == "http://127.0.0.1:9" {
		t.Fatalf("state after up: %+v", st)
	}
	// Without dynalite: S3 runs, DynamoDB is reported missing with what to do.
	if !strings.Contains(r.stdout, "DynamoDB  not running: dynalite is not installed") || !strings.Contains(r.stdout, "scripts/setup-lab.sh --only dynalite") {
		t.Errorf("up without dynalite does not say what is missing:\n%s", r.stdout)
	}
	l.must("lab", "down")

	if err := os.WriteFile(filepath.Join(l.dir, "lab.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := l.run("lab", "up"); r.code != exitCannotRun || !strings.Contains(r.stderr, filepath.Join(l.dir, "lab.json")) {
		t.Fatalf("up over a corrupt state: exit %d\n%s", r.code, r.stderr)
	}
	os.Remove(filepath.Join(l.dir, "lab.json"))
}

// TestLabWithoutNode: with no node on PATH, up starts S3 alone, says exactly what is missing
// and what to do, and offers the S3 lockfile, with which OpenTofu locks and applies.
func TestLabWithoutNode(t *testing.T) {
	tofu := labtest.Tofu(t)
	// A PATH with what the workload's provisioner needs (sleep) and no node.
	bin := t.TempDir()
	for _, p := range []string{"/bin/sleep", "/usr/bin/sleep"} {
		if _, err := os.Stat(p); err == nil {
			if err := os.Symlink(p, filepath.Join(bin, "sleep")); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	l := newLabHarness(t, "PATH="+bin)
	r := l.must("lab", "up")
	for _, want := range []string{
		"DynamoDB  not running: node is not on PATH: install Node.js >= 20 and run scripts/setup-lab.sh --only dynalite",
		"terraform 1.5 cannot lock state on S3 without DynamoDB",
		"tofu init -backend-config=" + filepath.Join(l.dir, "s3-lockfile.tfbackend"),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("up without node does not print %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "terraform-1.5.tfbackend") || strings.Contains(r.stdout, "dynamodb_endpoint") {
		t.Errorf("up without DynamoDB offers DynamoDB settings:\n%s", r.stdout)
	}
	rep, _ := l.report("lab", "status")
	if rep.Status != "running" || rep.DynamoDB != nil || rep.Lab.DynamoDBMissing == "" || len(rep.Lab.Backends) != 1 {
		t.Fatalf("status --json without DynamoDB: %+v", rep)
	}
	dir := s3Workdir(t)
	runWithLabEnv(t, dir, rep.Lab.EnvFile, tofu, "init", "-input=false", "-no-color", "-backend-config="+rep.Lab.Backends[0].File)
	if out := runWithLabEnv(t, dir, rep.Lab.EnvFile, tofu, "apply", "-input=false", "-no-color", "-auto-approve"); !strings.Contains(out, "Apply complete!") {
		t.Fatalf("tofu apply with the lockfile:\n%s", out)
	}
}

// TestLabServeForeground: tfsh lab serve runs in the foreground, is seen by status, and stops
// cleanly on SIGINT, removing its files.
func TestLabServeForeground(t *testing.T) {
	l := newLabHarness(t, withoutDynalite)
	cmd := exec.Command("tfsh", "lab", "serve")
	cmd.Env = l.env
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, cmd, &out, "Serving in the foreground")
	rep, r := l.report("lab", "status")
	if r.code != 0 || rep.Lab == nil || rep.Lab.PID != cmd.Process.Pid {
		t.Fatalf("status of a foreground lab: exit %d %s", r.code, r.stdout)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGINT: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("serve did not log that it stopped:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(l.dir, "lab.json")); !os.IsNotExist(err) {
		t.Fatalf("state file left after serve stopped: %v", err)
	}
}

// TestLabUsage: tfsh lab alone prints its usage; an unknown subcommand is a usage error.
func TestLabUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"lab"}, os.Stdin, &out, &errb); code != 0 || !strings.Contains(out.String(), "tfsh lab up") {
		t.Fatalf("tfsh lab: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"lab", "start"}, os.Stdin, &out, &errb); code != exitCannotRun || !strings.Contains(errb.String(), `unknown command "start"`) {
		t.Fatalf("tfsh lab start: exit %d\n%s", code, errb.String())
	}
}

// TestLabUpTwiceAtOnce: two tfsh lab up at the same moment in one dir start one server.
func TestLabUpTwiceAtOnce(t *testing.T) {
	l := newLabHarness(t, withoutDynalite)
	reps := make(chan labReport, 2)
	for range 2 {
		go func() {
			cmd := exec.Command("tfsh", "lab", "up", "--json")
			cmd.Env = l.env
			out, err := cmd.Output()
			var rep labReport
			if err != nil || json.Unmarshal(out, &rep) != nil {
				t.Errorf("tfsh lab up --json: %v\n%s", err, out)
			}
			reps <- rep
		}()
	}
	a, b := <-reps, <-reps
	if a.Lab == nil || b.Lab == nil || a.Lab.PID != b.Lab.PID {
		t.Fatalf("two servers (or none): %+v / %+v", a.Lab, b.Lab)
	}
	if got := a.Status + "+" + b.Status; got != "started+already running" && got != "already running+started" {
		t.Fatalf("statuses %s", got)
	}
}
