package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// ansiEscape matches the terminal escapes go-prompt writes (CSI, OSC,
// index and reverse index).
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[DM])`)

// stripANSI leaves the text of the screen, to be searched.
func stripANSI(s string) string { return ansiEscape.ReplaceAllString(s, "") }

// waitText is waitFor on the screen's text without escapes; offsets are
// in that text.
func (s *lockedBuffer) waitText(t *testing.T, from int, re string) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		text := stripANSI(s.String())
		if from <= len(text) {
			if loc := rx.FindStringIndex(text[from:]); loc != nil {
				return from + loc[1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("screen never matched %q; it shows:\n%s", re, stripANSI(s.String()))
	return 0
}

// TestPromptShell drives the go-prompt shell on a real pseudo-terminal with
// TERM=xterm: completion of commands, nested commands, flags, addresses and
// the lock ID of another session's lock; every line through the pipeline;
// the terminal restored after exit and after SIGTERM.
func TestPromptShell(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")
	h.must("run", "--", "apply", "-auto-approve", "-input=false")

	start := func() (*exec.Cmd, *os.File, *lockedBuffer, unix.Termios) {
		cmd := exec.Command("tfsh")
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), h.env...), "TERM=xterm")
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
		if err != nil {
			t.Fatal(err)
		}
		before, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		scr := &lockedBuffer{}
		go func() { _, _ = copyUntilEOF(scr, ptmx) }()
		scr.waitText(t, 0, `Tab completes`)
		return cmd, ptmx, scr, *before
	}
	key := func(ptmx *os.File, s string) {
		t.Helper()
		for _, r := range s { // one key at a time, as typed
			if _, err := ptmx.Write([]byte(string(r))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	restored := func(ptmx *os.File, before unix.Termios, cmd *exec.Cmd, scr *lockedBuffer) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("tfsh did not exit; screen:\n%s", stripANSI(scr.String()))
		}
		after, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if after.Lflag&(unix.ECHO|unix.ICANON) != before.Lflag&(unix.ECHO|unix.ICANON) || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
			t.Fatalf("terminal not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x", before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
		}
	}

	cmd, ptmx, scr, before := start()
	defer ptmx.Close()
	prompt := `tfsh [^ ]+ \[default · local · free\]> `
	at := scr.waitText(t, 0, prompt)
	// At the prompt: raw input (no echo, no line editing by the terminal),
	// but output processing on, or the newline after a line does not
	// return the carriage and the command's output starts at the right edge.
	if tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS); err != nil || tio.Lflag&(unix.ECHO|unix.ICANON) != 0 || tio.Oflag&unix.OPOST == 0 {
		t.Fatalf("terminal at the prompt: %+v, %v; want ECHO and ICANON off, OPOST on", tio, err)
	}

	// Nested commands and their descriptions.
	key(ptmx, "state m")
	at = scr.waitText(t, at, `mv +move or rename an address in the state`)
	key(ptmx, "\x03") // Ctrl-C clears the line
	// Addresses from the real state.
	key(ptmx, "state rm ")
	key(ptmx, "\t")
	at = scr.waitText(t, at, `terraform_data\.hold +in state`)
	key(ptmx, "\x03")
	// A flag completed, then run: the line goes through the pipeline.
	key(ptmx, "plan -lock-t\t")
	at = scr.waitText(t, at, `-lock-timeout=`)
	key(ptmx, "30s -input=false\r")
	at = scr.waitText(t, at, `No changes`)
	at = scr.waitText(t, at, prompt)

	// Another session holds the lock: the prompt shows it, and
	// force-unlock completes its ID.
	other := newHarness(t, dir, tf) // its own log: the only apply in it is this one
	holder, hout, hdone := other.start("run", "--", "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=30", "-var", "run_id=held")
	acq := other.waitEvent("the other session's lock", holder, hout, acquiredBy("apply"))
	time.Sleep(2500 * time.Millisecond) // the prompt reads the lock every 2 s
	key(ptmx, "force-unlock \t")
	scr.waitText(t, at, regexp.QuoteMeta(acq.LockID)+` +the lock held now`)
	if !strings.Contains(stripANSI(scr.String()), "held by "+acq.Data.Info.Who+" apply") {
		t.Fatalf("the prompt does not show the holder:\n%s", stripANSI(scr.String()))
	}
	key(ptmx, "\x03")
	holder.Process.Signal(syscall.SIGINT)
	wait(t, hdone, hout)

	// A real apply, answered yes on terraform's own prompt through the
	// shell; a refused one; Ctrl-C during a long one reaches terraform once.
	key(ptmx, "apply -var run_id=yes-through-the-shell\r")
	at = scr.waitText(t, at, `Enter a value:`)
	key(ptmx, "yes\r")
	at = scr.waitText(t, at, `Apply complete! Resources: 1 added, 0 changed, 1 destroyed`)
	at = scr.waitText(t, at, prompt)
	key(ptmx, "apply -lock=false -auto-approve\r")
	at = scr.waitText(t, at, `refused by rule "no-unlocked-writes" \(built-in\)`)
	at = scr.waitText(t, at, prompt)
	key(ptmx, "apply -auto-approve -var hold_seconds=30 -var run_id=ctrl-c\r")
	at = scr.waitText(t, at, `Provisioning with 'local-exec'`)
	time.Sleep(300 * time.Millisecond)
	key(ptmx, "\x03")
	at = scr.waitText(t, at, `Interrupt received`)
	scr.waitText(t, at, prompt)
	if strings.Contains(stripANSI(scr.String()), "Two interrupts") {
		t.Fatalf("terraform got Ctrl-C twice:\n%s", stripANSI(scr.String()))
	}

	key(ptmx, "exit\r")
	restored(ptmx, before, cmd, scr)
	// The interrupted apply released its lock, as recorded.
	var released bool
	for _, e := range h.lockEvents() {
		released = released || e.Kind == "lock_released" && e.Sub == "apply" && e.LockID != ""
	}
	if !released {
		t.Fatalf("no lock_released for the interrupted apply: %v", h.lockEvents())
	}

	// The plan typed through completion was recorded with its argv.
	sessions := h.must("audit", "sessions", "--json")
	var ss []struct {
		Session struct{ Mode string } `json:"session"`
		Status  string                `json:"status"`
	}
	if err := json.Unmarshal([]byte(sessions.stdout), &ss); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range ss {
		found = found || s.Session.Mode == "interactive" && s.Status == "ok"
	}
	if !found {
		t.Fatalf("no interactive session ended ok:\n%s", sessions.stdout)
	}
	hist, _ := os.ReadFile(filepath.Join(h.stateHome(), "tfsh", "history"))
	if !strings.Contains(string(hist), "plan -lock-timeout=30s -input=false\n") {
		t.Fatalf("history:\n%s", hist)
	}

	// SIGTERM or SIGHUP at the prompt, with a half-typed line: it is not
	// run, the session ends, the terminal is restored. So does Ctrl-D.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, 0} {
		cmd, ptmx2, scr2, before2 := start()
		scr2.waitText(t, 0, prompt)
		if sig == 0 {
			key(ptmx2, "\x04")
		} else {
			key(ptmx2, "apply -auto-approve")
			cmd.Process.Signal(sig)
		}
		restored(ptmx2, before2, cmd, scr2)
		if strings.Contains(stripANSI(scr2.String()), "Apply complete") {
			t.Fatalf("%v: the half-typed line ran:\n%s", sig, stripANSI(scr2.String()))
		}
		ptmx2.Close()
	}

	// NO_COLOR: the prompt and the menu come without colours.
	h.env = append(h.env, "NO_COLOR=1")
	cmd, ptmx3, scr3, before3 := start()
	at = scr3.waitText(t, 0, prompt)
	key(ptmx3, "sta")
	scr3.waitText(t, at, `state +group of advanced state management commands`)
	if m := regexp.MustCompile(`\x1b\[[0-9;]*;(9[0-7]|3[0-7]|4[0-7]|10[0-7])m`).FindString(scr3.String()); m != "" {
		t.Fatalf("NO_COLOR, yet a colour: %q", m)
	}
	key(ptmx3, "\x03\x04")
	restored(ptmx3, before3, cmd, scr3)
	ptmx3.Close()
}
