//go:build unix

package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable /bin/sh script and returns its path.
func script(t *testing.T, path, body string) string {
	t.Helper()
	mkfile(t, path, "#!/bin/sh\n"+body+"\n")
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func execHook(name, event, onFailure string, timeout time.Duration, argv ...string) Hook {
	return Hook{Name: name, Source: "hooks.hcl:1", On: []string{event}, OnFailure: onFailure,
		Exec: &Exec{Argv: argv, Timeout: timeout}}
}

func TestExecPayload(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script(t, filepath.Join(dir, "scripts", "hook.sh"), `cat > "$OUT"
printf '%s\n' "$TFSH_EVENT" "$TFSH_HOOK" "$(pwd -P)" > "$OUT.env"
for a in "$@"; do printf '%s\n' "$a"; done > "$OUT.args"`)

	argv := []string{"./scripts/hook.sh", "; rm -rf /", "$HOME", "a b", "`id`"}
	r := &Runner{
		Config: &Config{Dir: dir, Hooks: []Hook{execHook("record", "before_command", "refuse", time.Minute, argv...)}},
		Env:    []string{"OUT=" + out, "PATH=/usr/bin:/bin", "TFSH_EVENT=stale", "TFSH_HOOK=stale"},
	}
	results := r.Run(context.Background(), Event{Name: "before_command", Command: "apply", At: at,
		Payload: map[string]any{"argv": []string{"apply", "-auto-approve"}, "user": "ana"}})
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	res := results[0]
	want := Result{Hook: "record", Source: "hooks.hcl:1", Event: "before_command", Kind: "exec", Status: "ok", Duration: res.Duration}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Result = %+v, want %+v", res, want)
	}

	stdin := readFile(t, out)
	wantStdin := `{"event":"before_command","at":"2025-03-04T05:06:07.000000089Z","hook":"record","command":"apply","data":{"argv":["apply","-auto-approve"],"user":"ana"}}` + "\n"
	if stdin != wantStdin {
		t.Errorf("stdin = %q, want %q", stdin, wantStdin)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, out+".env"), "before_command\nrecord\n"+realDir+"\n"; got != want {
		t.Errorf("TFSH_EVENT, TFSH_HOOK, working directory = %q, want %q", got, want)
	}
	if got, want := readFile(t, out+".args"), strings.Join(argv[1:], "\n")+"\n"; got != want {
		t.Errorf("arguments = %q, want them verbatim: %q", got, want)
	}
}

func TestExecOutcomes(t *testing.T) {
	dir := t.TempDir()
	proj := filepath.Join(dir, "proj")
	bin := filepath.Join(dir, "bin")
	script(t, filepath.Join(proj, "fail.sh"), `echo "checking ticket"; echo "oops: no ticket" >&2; exit 3`)
	script(t, filepath.Join(proj, "noisy.sh"), `i=0; while [ $i -lt 1000 ]; do echo "line $i of noise"; i=$((i+1)); done; echo END`)
	script(t, filepath.Join(proj, "kill.sh"), `kill -KILL $$`)
	script(t, filepath.Join(bin, "onpath"), `echo from path`)
	script(t, filepath.Join(dir, "up.sh"), `echo up`)
	mkfile(t, filepath.Join(proj, "notexec.sh"), "#!/bin/sh\n")

	tests := []struct {
		name       string
		argv       []string
		status     string
		exitCode   int
		errorHas   string
		outputHas  []string
		outputSize int // at most, when set
	}{
		{name: "exit code", argv: []string{"./fail.sh"}, status: "failed", exitCode: 3, errorHas: "exit status 3",
			outputHas: []string{"checking ticket\n", "oops: no ticket\n"}},
		{name: "output tail", argv: []string{"./noisy.sh"}, status: "ok",
			outputHas: []string{"[tfsh: first ", " bytes of output cut]\n", "line 999 of noise\nEND\n"}, outputSize: outputLimit + 64},
		{name: "killed by a signal", argv: []string{"./kill.sh"}, status: "failed", exitCode: -1, errorHas: "killed"},
		{name: "bare name through PATH", argv: []string{"onpath"}, status: "ok", outputHas: []string{"from path\n"}},
		{name: "parent directory", argv: []string{"../up.sh"}, status: "ok", outputHas: []string{"up\n"}},
		{name: "absolute path", argv: []string{filepath.Join(dir, "up.sh")}, status: "ok", outputHas: []string{"up\n"}},
		{name: "missing relative program", argv: []string{"./nope.sh"}, status: "error", exitCode: -1, errorHas: "start ./nope.sh: no such file or directory"},
		{name: "missing bare program", argv: []string{"no-such-hook-program"}, status: "error", exitCode: -1, errorHas: "no-such-hook-program: not found in PATH"},
		{name: "not executable", argv: []string{"./notexec.sh"}, status: "error", exitCode: -1, errorHas: "permission denied"},
		// "." in PATH never finds a program in the project root.
		{name: "dot in PATH is skipped", argv: []string{"fail.sh"}, status: "error", exitCode: -1, errorHas: "not found in PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{
				Config: &Config{Dir: proj, Hooks: []Hook{execHook("h", "after_command", "refuse", time.Minute, tt.argv...)}},
				Env:    []string{"PATH=.:" + bin + ":/usr/bin:/bin"},
			}
			res := r.Run(context.Background(), Event{Name: "after_command", At: at})[0]
			if res.Status != tt.status || res.ExitCode != tt.exitCode {
				t.Errorf("Status=%q ExitCode=%d, want %q %d (Error %q, Output %q)", res.Status, res.ExitCode, tt.status, tt.exitCode, res.Error, res.Output)
			}
			if !strings.Contains(res.Error, tt.errorHas) || (tt.errorHas == "") != (res.Error == "") {
				t.Errorf("Error = %q, want it to hold %q", res.Error, tt.errorHas)
			}
			for _, s := range tt.outputHas {
				if !strings.Contains(res.Output, s) {
					t.Errorf("Output = %q, want it to hold %q", res.Output, s)
				}
			}
			if tt.outputSize > 0 && len(res.Output) > tt.outputSize {
				t.Errorf("len(Output) = %d, want at most %d", len(res.Output), tt.outputSize)
			}
			if res.Refuses {
				t.Error("an after_command hook refuses")
			}
		})
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		// The group gets SIGTERM and goes.
		{name: "terminates", script: `sleep 100 & echo $! > "$OUT"; wait`},
		// Nothing in the group listens to SIGTERM: SIGKILL after the grace.
		{name: "ignores SIGTERM", script: `trap '' TERM; sleep 100 & echo $! > "$OUT"; wait; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "pid")
			script(t, filepath.Join(dir, "hang.sh"), tt.script)
			r := &Runner{
				Config:    &Config{Dir: dir, Hooks: []Hook{execHook("hang", "before_command", "continue", 500*time.Millisecond, "./hang.sh")}},
				Env:       []string{"OUT=" + out, "PATH=/usr/bin:/bin"},
				killGrace: 300 * time.Millisecond,
			}
			start := time.Now()
			res := r.Run(context.Background(), Event{Name: "before_command", Command: "apply", At: at})[0]
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("Run took %s with a 500ms timeout", elapsed)
			}
			if res.Status != "timeout" || res.Refuses || !strings.Contains(res.Error, "no exit within 500ms") {
				t.Errorf("Status=%q Refuses=%v Error=%q, want timeout, false (on_failure continue)", res.Status, res.Refuses, res.Error)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, out)))
			if err != nil {
				t.Fatalf("the script wrote no child pid: %v", err)
			}
			waitGone(t, pid)
		})
	}
}

func TestRefuses(t *testing.T) {
	dir := t.TempDir()
	script(t, filepath.Join(dir, "ok.sh"), `exit 0`)
	script(t, filepath.Join(dir, "no.sh"), `echo "no ticket in branch name" >&2; exit 1`)
	r := &Runner{Config: &Config{Dir: dir, Hooks: []Hook{
		execHook("ok-refuse", "before_command", "refuse", time.Minute, "./ok.sh"),
		execHook("fail-continue", "before_command", "continue", time.Minute, "./no.sh"),
		execHook("fail-refuse", "before_command", "refuse", time.Minute, "./no.sh"),
		execHook("missing-default", "before_command", "", time.Minute, "./missing.sh"),
		execHook("after-refuse", "after_command", "refuse", time.Minute, "./no.sh"),
	}}}
	var got []string
	for _, ev := range []string{"before_command", "after_command"} {
		for _, res := range r.Run(context.Background(), Event{Name: ev, At: at}) {
			got = append(got, res.Hook+" "+res.Status+" "+strconv.FormatBool(res.Refuses))
		}
	}
	want := []string{
		"ok-refuse ok false",
		"fail-continue failed false",
		"fail-refuse failed true",
		"missing-default error true",
		"after-refuse failed false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if res, ok := Refusal(r.Run(context.Background(), Event{Name: "before_command", At: at})); !ok || res.Hook != "fail-refuse" {
		t.Errorf("Refusal = %q, %v, want fail-refuse", res.Hook, ok)
	}
}

func TestRunCancelled(t *testing.T) {
	dir := t.TempDir()
	script(t, filepath.Join(dir, "slow.sh"), `sleep 100`)
	r := &Runner{Config: &Config{Dir: dir, Hooks: []Hook{
		execHook("slow", "before_command", "refuse", time.Minute, "./slow.sh"),
		execHook("next", "before_command", "continue", time.Minute, "./slow.sh"),
	}}, killGrace: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	results := r.Run(ctx, Event{Name: "before_command", At: at})
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	if res := results[0]; res.Status != "error" || !res.Refuses || !strings.Contains(res.Error, "interrupted") {
		t.Errorf("running hook: Status=%q Refuses=%v Error=%q, want error, true, interrupted", res.Status, res.Refuses, res.Error)
	}
	if res := results[1]; res.Status != "error" || res.Refuses || !strings.Contains(res.Error, "not run") {
		t.Errorf("next hook: Status=%q Refuses=%v Error=%q, want error, false, not run", res.Status, res.Refuses, res.Error)
	}
}

type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("boom") }

func TestRunBadPayload(t *testing.T) {
	r := &Runner{Config: &Config{Hooks: []Hook{execHook("h", "after_command", "refuse", time.Minute, "true")}}}
	for _, p := range []any{make(chan int), panicky{}} {
		res := r.Run(context.Background(), Event{Name: "after_command", Payload: p})
		if len(res) != 1 || res[0].Status != "error" || !strings.Contains(res[0].Error, "encode event") {
			t.Errorf("payload %T: %+v, want one error result", p, res)
		}
	}
	if res := (&Runner{}).Run(context.Background(), Event{Name: "after_command"}); res != nil {
		t.Errorf("Runner without Config: %+v", res)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{limit: 8}
	for _, s := range []string{"abc", "defgh", "ij", "0123456789xyz"} {
		_, _ = tb.Write([]byte(s))
	}
	if got, want := tb.String(), "[tfsh: first 15 bytes of output cut]\n56789xyz"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	tb = &tailBuffer{limit: 4}
	_, _ = tb.Write([]byte("aé€")) // a, 2 bytes, 3 bytes: the tail starts inside é
	if got, want := tb.String(), "[tfsh: first 3 bytes of output cut]\n€"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitGone fails unless the process exits (or is a zombie) within seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d of the hook's group is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMarshalEnvelope(t *testing.T) {
	// The JSON has exactly the documented fields; "command" only when set.
	b, _ := json.Marshal(envelope{Event: "lock_orphaned", At: "x", Hook: "h", Data: json.RawMessage("null")})
	if got, want := string(b), `{"event":"lock_orphaned","at":"x","hook":"h","data":null}`; got != want {
		t.Errorf("envelope = %s, want %s", got, want)
	}
}

// TestExecWithoutDir: a Config from Parse alone runs hooks in the current
// directory, and "./x" is that directory's x, never a PATH lookup.
func TestExecWithoutDir(t *testing.T) {
	dir := t.TempDir()
	script(t, filepath.Join(dir, "here.sh"), `pwd -P`)
	t.Chdir(dir)
	r := &Runner{Config: &Config{Hooks: []Hook{execHook("h", "after_command", "", time.Minute, "./here.sh")}}}
	res := r.Run(context.Background(), Event{Name: "after_command", At: at})[0]
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "ok" || res.Output != realDir+"\n" {
		t.Errorf("Status=%q Output=%q Error=%q, want ok in %s", res.Status, res.Output, res.Error, realDir)
	}
}
