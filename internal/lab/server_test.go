package lab_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// TestLabRenderBackends: the backend files are the examples' templates filled in, nothing
// left to fill, and without DynamoDB only the lockfile settings are offered.
func TestLabRenderBackends(t *testing.T) {
	dir := t.TempDir()
	all, err := lab.RenderBackends(dir, "http://127.0.0.1:1", "b", "http://127.0.0.1:2", "t", "k/s.tfstate")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range all {
		names = append(names, b.Name)
		if strings.Contains(b.Config, "${") {
			t.Errorf("%s: placeholder left:\n%s", b.Name, b.Config)
		}
		if b.File != filepath.Join(dir, b.Name+".tfbackend") {
			t.Errorf("%s: File = %q", b.Name, b.File)
		}
		for _, want := range []string{`bucket`, `"b"`, `"k/s.tfstate"`, `"http://127.0.0.1:1"`, "init -backend-config=" + b.File} {
			if !strings.Contains(b.Config, want) {
				t.Errorf("%s: no %s in:\n%s", b.Name, want, b.Config)
			}
		}
	}
	if got := strings.Join(names, " "); got != "terraform-1.5 s3-dynamodb s3-lockfile" {
		t.Fatalf("backends = %s", got)
	}
	// The settings are the examples' own, line for line.
	tmpl, err := os.ReadFile(filepath.Join(labtest.ExamplesDir(t), "s3-dynamodb", "terraform.tfbackend.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(tmpl), "\n") {
		if strings.HasPrefix(line, "#") || strings.Contains(line, "${") {
			continue
		}
		if !strings.Contains(all[0].Config, line) {
			t.Errorf("terraform-1.5 lacks the template's line %q", line)
		}
	}
	if !regexp.MustCompile(`(?m)^dynamodb_endpoint\s+= "http://127.0.0.1:2"$`).MatchString(all[0].Config) {
		t.Errorf("terraform-1.5 has no dynamodb_endpoint:\n%s", all[0].Config)
	}

	only, err := lab.RenderBackends(dir, "http://127.0.0.1:1", "b", "", "", "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 1 || only[0].Name != "s3-lockfile" || !strings.Contains(only[0].Config, "use_lockfile = true") {
		t.Fatalf("without DynamoDB: %+v", only)
	}
}

// TestLabServer starts a lab in this process: the state file says where everything is, the
// servers answer with the bucket and table, and Close stops them and removes the files.
func TestLabServer(t *testing.T) {
	withDynamo := lab.DynamoMissing() == ""
	if !withDynamo {
		labtest.Dynamo(t) // skips, or fails under TFSH_LAB_REQUIRED, saying what is missing
	}
	dir := filepath.Join(t.TempDir(), "lab")
	ctx := context.Background()
	srv, err := lab.StartServer(ctx, lab.Options{Dir: dir, Bucket: "bkt", Table: "tbl"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := lab.ReadState(dir)
	if err != nil || st == nil {
		t.Fatalf("ReadState: %v, %v", st, err)
	}
	if st.PID != os.Getpid() || !st.Running() || st.Bucket != "bkt" || st.Table != "tbl" || st.Key != lab.DefaultKey {
		t.Fatalf("state: %+v", st)
	}
	if st.DynamoDBURL == "" || st.DynamoDBPID == 0 || st.DynamoDBMissing != "" {
		t.Fatalf("DynamoDB in state: %+v", st)
	}
	if s3Err, dynErr := st.Check(ctx); s3Err != nil || dynErr != nil {
		t.Fatalf("Check: %v, %v", s3Err, dynErr)
	}
	files := []string{filepath.Join(dir, "lab.json"), st.EnvFile}
	for _, b := range st.Backends {
		files = append(files, b.File)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	env, _ := os.ReadFile(st.EnvFile)
	if !strings.Contains(string(env), "export AWS_ACCESS_KEY_ID="+lab.AccessKeyID+"\n") || !strings.Contains(string(env), "unset AWS_PROFILE") {
		t.Errorf("env file:\n%s", env)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close: %v", f, err)
		}
	}
	if s3Err, dynErr := st.Check(ctx); s3Err == nil || dynErr == nil {
		t.Errorf("servers still answer after Close: %v, %v", s3Err, dynErr)
	}
}

// TestLabServerRefusesARunningLab: a live server recorded in the dir (here a sleep standing in
// for it) is not replaced; a dead one is.
func TestLabServerRefusesARunningLab(t *testing.T) {
	sleeper := exec.Command(lookSleep(t), "60")
	t.Setenv("PATH", "/nonexistent") // no node: S3 only, quick
	t.Setenv(lab.EnvDynalite, "")
	t.Setenv(lab.EnvCache, t.TempDir())
	dir := t.TempDir()
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	writeState(t, dir, sleeper.Process.Pid)
	if _, err := lab.StartServer(context.Background(), lab.Options{Dir: dir}); !errors.Is(err, lab.ErrRunning) {
		t.Fatalf("StartServer over a live server: %v, want ErrRunning", err)
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	srv, err := lab.StartServer(context.Background(), lab.Options{Dir: dir})
	if err != nil {
		t.Fatalf("StartServer over a dead server's state: %v", err)
	}
	defer srv.Close()
	st := srv.State()
	if !strings.Contains(st.DynamoDBMissing, "Node.js >= 20") || !strings.Contains(st.DynamoDBMissing, "scripts/setup-lab.sh --only dynalite") {
		t.Errorf("DynamoDBMissing = %q, want what is missing and what to do", st.DynamoDBMissing)
	}
	if len(st.Backends) != 1 || st.Backends[0].Name != "s3-lockfile" {
		t.Errorf("backends without DynamoDB: %+v", st.Backends)
	}
}

func lookSleep(t *testing.T) string {
	for _, p := range []string{"/bin/sleep", "/usr/bin/sleep"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no sleep binary")
	return ""
}

func writeState(t *testing.T, dir string, pid int) {
	t.Helper()
	data := `{"dir":"` + dir + `","pid":` + strconv.Itoa(pid) + `,"started_at":"2026-01-01T00:00:00Z","s3_url":"http://127.0.0.1:1","bucket":"b","key":"k"}`
	if err := os.WriteFile(filepath.Join(dir, "lab.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLabRunning: a PID that exited (and was reaped), a zombie, and a reused PID (another
// start time) are not a running server.
func TestLabRunning(t *testing.T) {
	self := &lab.State{PID: os.Getpid()}
	if !self.Running() {
		t.Fatal("this process is not running?")
	}
	done := exec.Command(lookSleep(t), "0")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	if (&lab.State{PID: done.Process.Pid}).Running() {
		t.Errorf("a reaped process counts as running")
	}
	zombie := exec.Command(lookSleep(t), "0")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	time.Sleep(300 * time.Millisecond) // it exits; nobody reaps it yet
	if (&lab.State{PID: zombie.Process.Pid}).Running() {
		t.Errorf("a zombie counts as running")
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if (&lab.State{PID: os.Getpid(), PIDStart: "1"}).Running() {
			t.Errorf("a PID with another start time (reused) counts as running")
		}
	}
}

// TestLabStopKillsAStubbornServer: a server that ignores SIGTERM is killed when Stop's
// context ends, and Stop says so; its files are removed.
func TestLabStopKillsAStubbornServer(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := make(chan struct{})
	go func() { cmd.Wait(); close(reaped) }() // reap it once killed, as init would
	defer func() { cmd.Process.Kill(); <-reaped }()
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	writeState(t, dir, cmd.Process.Pid)
	st, err := lab.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = lab.Stop(ctx, st)
	if err == nil || !strings.Contains(err.Error(), "did not stop on SIGTERM: killed it") {
		t.Fatalf("Stop = %v, want it to say it had to kill", err)
	}
	if st.Running() {
		t.Fatal("still running after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "lab.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

// TestLabDynamoMissingWithoutNode: what is missing, and what to do, in one line.
func TestLabDynamoMissingWithoutNode(t *testing.T) {
	labtest.Dynamo(t) // needs dynalite installed, so that node is what is missing
	t.Setenv("PATH", t.TempDir())
	got := lab.DynamoMissing()
	if !strings.HasPrefix(got, "node is not on PATH: install Node.js >= 20 and run scripts/setup-lab.sh --only dynalite") {
		t.Fatalf("DynamoMissing() = %q", got)
	}
}
