package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// waitFor waits until what was written, from offset from, matches re, and
// returns the offset just past the match.
func (s *lockedBuffer) waitFor(t *testing.T, from int, re string) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		text := s.String()
		if loc := rx.FindStringIndex(text[from:]); loc != nil {
			return from + loc[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("screen never matched %q; it shows:\n%s", re, s.String()[from:])
	return 0
}

// TestInteractivePrompt types into tfsh on a real pseudo-terminal: commands
// run on a pty of their own (terraform's approval prompt works), Ctrl-C at
// the prompt clears the line, and the terminal is restored afterwards.
func TestInteractivePrompt(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)

	cmd := exec.Command("tfsh")
	cmd.Dir = dir
	cmd.Env = append(h.env, "TERM=dumb")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	before, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var scr lockedBuffer
	go func() { _, _ = copyUntilEOF(&scr, ptmx) }()
	type_ := func(s string) {
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	prompt := `tfsh [^ ]+ \[default · local\]> `

	at := scr.waitFor(t, 0, `Type terraform commands`)
	at = scr.waitFor(t, at, prompt)
	type_("init -input=false\n")
	at = scr.waitFor(t, at, `successfully initialized`)
	at = scr.waitFor(t, at, prompt)

	// terraform asks for approval on its own terminal; the answer goes through.
	type_("apply\n")
	at = scr.waitFor(t, at, `added -lock-timeout=5m \(built-in rule lock-timeout-default\)`)
	at = scr.waitFor(t, at, `Enter a value:`)
	type_("yes\r")
	at = scr.waitFor(t, at, `Apply complete! Resources: 1 added`)
	at = scr.waitFor(t, at, prompt)

	// Ctrl-C at the prompt drops the half-typed line.
	type_("apply -lock=fal")
	type_("\x03")
	at = scr.waitFor(t, at, `\^C\r?\n`+prompt)
	type_("apply -lock=false\n")
	at = scr.waitFor(t, at, `refused by rule "no-unlocked-writes"`)
	at = scr.waitFor(t, at, prompt)

	// Ctrl-C during a command reaches terraform exactly once, through the
	// command's own terminal: a graceful stop, never "Two interrupts".
	type_("apply -auto-approve -var hold_seconds=30 -var run_id=ctrl-c\n")
	at = scr.waitFor(t, at, `Provisioning with 'local-exec'`)
	type_("\x03")
	at = scr.waitFor(t, at, `Interrupt received`)
	scr.waitFor(t, at, prompt)
	if strings.Contains(scr.String(), "Two interrupts") {
		t.Fatalf("terraform got Ctrl-C twice:\n%s", scr.String())
	}

	// The terminal changes size while a command runs: terraform's terminal
	// follows, and the change is recorded for replay --cast.
	type_("apply -auto-approve -var hold_seconds=3 -var run_id=resize\n")
	at = scr.waitFor(t, at, `Provisioning with 'local-exec'`)
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	at = scr.waitFor(t, at, `Apply complete!`)
	at = scr.waitFor(t, at, prompt)

	// History: what was typed, -var values redacted, the builtin included.
	type_("history 2\n")
	at = scr.waitFor(t, at, `\d+  apply -auto-approve -var hold_seconds=\[redacted\] -var run_id=\[redacted\]\r?\n +\d+  history 2`)
	scr.waitFor(t, at, prompt)

	type_("exit\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tfsh exited with %v; screen:\n%s", err, scr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tfsh did not exit; screen:\n%s", scr.String())
	}
	if r := h.run(nil, "audit", "show", "last", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"stream": "resize",`) || !strings.Contains(r.stdout, `"text": "100x30"`) {
		t.Errorf("the resize is not in the record (exit %d):\n%s", r.code, r.stdout)
	}
	if r := h.run(nil, "replay", "--cast", "-", "last"); r.code != 0 || !strings.Contains(r.stdout, `"r", "100x30"]`) {
		t.Errorf("replay --cast has no resize event (exit %d):\n%s", r.code, r.stdout)
	}
	after, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Fatalf("terminal not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x",
			before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
	}
	hist, err := os.ReadFile(filepath.Join(h.stateHome(), "tfsh", "history"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(hist), "ctrl-c") || strings.Contains(string(hist), "apply -lock=fal\n") || !strings.Contains(string(hist), "apply -lock=false\n") {
		t.Fatalf("history file:\n%s", hist)
	}
	if fi, _ := os.Stat(filepath.Join(h.stateHome(), "tfsh", "history")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("history mode %v", fi.Mode().Perm())
	}
	// The session was recorded as interactive, with its commands.
	r := h.must("audit", "sessions")
	if !regexp.MustCompile(`interactive +5 +ok`).MatchString(r.stdout) {
		t.Fatalf("audit sessions:\n%s", r.stdout)
	}
	show := h.must("audit", "show", "last")
	if !strings.Contains(show.stdout, "Apply complete!") {
		t.Fatalf("the pty output was not recorded:\n%s", show.stdout)
	}
	// So was the terminal the commands drew on, for replay.
	js := h.must("audit", "show", "--json", "--no-output", "last")
	if !strings.Contains(js.stdout, `"term": {
          "cols": 120,
          "rows": 40,
          "type": "dumb"
        }`) {
		t.Fatalf("no terminal size recorded:\n%s", js.stdout)
	}
}

func copyUntilEOF(dst *lockedBuffer, src *os.File) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			dst.Write(buf[:k])
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}
