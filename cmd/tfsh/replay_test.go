package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

// fakeWait is one wait the player asked its clock for.
type fakeWait struct {
	d    time.Duration
	out  string // what had been written when it began
	fire chan time.Time
}

// fakeClock gives the player a clock it controls: in auto mode each wait
// ends at once (and the clock moves on by it); otherwise each wait is sent
// to waits for the test to end, or not.
type fakeClock struct {
	now   time.Time
	auto  bool
	waits chan fakeWait
	got   []fakeWait
	out   *bytes.Buffer
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, out: c.out.String(), fire: make(chan time.Time, 1)}
	if c.auto {
		c.now = c.now.Add(d)
		w.fire <- c.now
		c.got = append(c.got, w)
		return w.fire
	}
	c.waits <- w
	return w.fire
}

func newTestPlayer(speed float64, tl timeline, keys chan byte) (*player, *fakeClock) {
	var out bytes.Buffer
	clk := &fakeClock{now: audittest.Base, out: &out, waits: make(chan fakeWait), auto: keys == nil}
	p := &player{out: bufio.NewWriter(&out), timed: true, speed: speed, tl: tl, after: clk.after, now: func() time.Time { return clk.now }}
	if keys != nil {
		p.keys = keys
	}
	return p, clk
}

// pieces are one-byte pieces at offsets in ms, named a, b, c, ...
func pieces(ms ...int) []piece {
	out := make([]piece, len(ms))
	for i, m := range ms {
		out[i] = piece{offset: time.Duration(m) * time.Millisecond, data: []byte{byte('a' + i)}}
	}
	return out
}

func playAll(ctx context.Context, p *player, ps []piece) error {
	for _, pc := range ps {
		if err := p.play(ctx, pc); err != nil {
			return err
		}
	}
	return p.out.Flush()
}

func TestPlayerTiming(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		speed    float64
		tl       timeline
		offsets  []int
		waits    []time.Duration
		outFirst string // written when the first wait began
	}{
		{name: "recorded gaps", speed: 1, offsets: []int{0, 1000, 3000}, waits: []time.Duration{1000 * ms, 2000 * ms}, outFirst: "a"},
		{name: "speed 2 halves the waits", speed: 2, offsets: []int{0, 1000, 3000}, waits: []time.Duration{500 * ms, 1000 * ms}, outFirst: "a"},
		{name: "speed 0.5 doubles them", speed: 0.5, offsets: []int{0, 1000}, waits: []time.Duration{2000 * ms}, outFirst: "a"},
		{name: "max-wait caps each gap", speed: 1, tl: timeline{maxWait: 1500 * ms}, offsets: []int{0, 1000, 61000, 62000},
			waits: []time.Duration{1000 * ms, 1500 * ms, 1000 * ms}, outFirst: "a"},
		{name: "max-wait before speed", speed: 2, tl: timeline{maxWait: 1000 * ms}, offsets: []int{0, 5000}, waits: []time.Duration{500 * ms}, outFirst: "a"},
		{name: "from writes what is before it at once", speed: 1, tl: timeline{from: 2500 * ms}, offsets: []int{0, 1000, 2000, 3000, 3500},
			waits: []time.Duration{500 * ms, 500 * ms}, outFirst: "abc"},
		{name: "from past a long gap", speed: 1, tl: timeline{from: 10000 * ms, maxWait: 2000 * ms}, offsets: []int{0, 1000, 30000},
			waits: []time.Duration{2000 * ms}, outFirst: "ab"},
		{name: "short gaps add up", speed: 1, offsets: []int{0, 1, 2, 3, 4, 5}, waits: []time.Duration{2 * ms, 2 * ms}, outFirst: "ab"},
		{name: "offsets that go back wait nothing", speed: 1, offsets: []int{0, 1000, 500, 1500}, waits: []time.Duration{1000 * ms, 500 * ms}, outFirst: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clk := newTestPlayer(tt.speed, tt.tl, nil)
			if err := playAll(context.Background(), p, pieces(tt.offsets...)); err != nil {
				t.Fatal(err)
			}
			var got []time.Duration
			for _, w := range clk.got {
				got = append(got, w.d)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.waits) {
				t.Fatalf("waits %v, want %v", got, tt.waits)
			}
			if len(clk.got) > 0 && clk.got[0].out != tt.outFirst {
				t.Fatalf("written before the first wait: %q, want %q", clk.got[0].out, tt.outFirst)
			}
			if want := "abcdefghij"[:len(tt.offsets)]; clk.out.String() != want {
				t.Fatalf("output %q, want %q", clk.out.String(), want)
			}
		})
	}
}

// keyedPlay plays pieces in a goroutine with keys; the test drives it
// through the waits it asks for.
type keyedPlay struct {
	t    *testing.T
	p    *player
	clk  *fakeClock
	keys chan byte
	done chan error
}

func startKeyed(t *testing.T, speed float64, offsets ...int) *keyedPlay {
	keys := make(chan byte)
	p, clk := newTestPlayer(speed, timeline{}, keys)
	k := &keyedPlay{t: t, p: p, clk: clk, keys: keys, done: make(chan error, 1)}
	go func() { k.done <- playAll(context.Background(), p, pieces(offsets...)) }()
	return k
}

// wait returns the next wait the player asks for.
func (k *keyedPlay) wait() fakeWait {
	k.t.Helper()
	select {
	case w := <-k.clk.waits:
		return w
	case err := <-k.done:
		k.t.Fatalf("the replay ended (%v), want a wait", err)
	case <-time.After(10 * time.Second):
		k.t.Fatal("no wait asked for")
	}
	return fakeWait{}
}

func (k *keyedPlay) key(b byte) {
	k.t.Helper()
	select {
	case k.keys <- b:
	case w := <-k.clk.waits:
		k.t.Fatalf("the player asked for a wait of %v, want it to read key %q", w.d, b)
	case <-time.After(10 * time.Second):
		k.t.Fatalf("key %q not read", b)
	}
}

func (k *keyedPlay) end() error {
	k.t.Helper()
	select {
	case err := <-k.done:
		return err
	case w := <-k.clk.waits:
		k.t.Fatalf("the player asked for a wait of %v, want the end", w.d)
	case <-time.After(10 * time.Second):
		k.t.Fatal("the replay did not end")
	}
	return nil
}

func TestPlayerKeys(t *testing.T) {
	ms := time.Millisecond
	t.Run("Enter skips a wait", func(t *testing.T) {
		k := startKeyed(t, 1, 0, 10000, 11000)
		if w := k.wait(); w.d != 10000*ms || w.out != "a" {
			t.Fatalf("first wait %v after %q, want 10s after \"a\"", w.d, w.out)
		}
		k.key('\r')
		w := k.wait()
		if w.d != 1000*ms || w.out != "ab" {
			t.Fatalf("second wait %v after %q, want 1s after \"ab\"", w.d, w.out)
		}
		w.fire <- k.clk.now
		if err := k.end(); err != nil || k.clk.out.String() != "abc" {
			t.Fatalf("end: %v, output %q", err, k.clk.out.String())
		}
	})
	t.Run("space pauses until space again, and keeps what is left of the wait", func(t *testing.T) {
		k := startKeyed(t, 1, 0, 1000)
		k.wait()
		k.clk.now = k.clk.now.Add(300 * ms)
		k.key(' ')
		k.key('+')                           // keys still work while paused
		k.clk.now = k.clk.now.Add(time.Hour) // paused: the time away does not count
		k.key(' ')
		w := k.wait()
		if w.d != 350*ms || w.out != "a" {
			t.Fatalf("wait after the pause %v after %q, want (1s-300ms)/2 after \"a\"", w.d, w.out)
		}
		w.fire <- k.clk.now
		if err := k.end(); err != nil || k.clk.out.String() != "ab" {
			t.Fatalf("end: %v, output %q", err, k.clk.out.String())
		}
	})
	t.Run("+ and - change the speed of the wait under way and the next", func(t *testing.T) {
		k := startKeyed(t, 1, 0, 1000, 2000, 3000)
		k.wait()
		k.clk.now = k.clk.now.Add(200 * ms)
		k.key('+')
		w := k.wait()
		if w.d != 400*ms {
			t.Fatalf("wait after + %v, want (1s-200ms)/2", w.d)
		}
		w.fire <- k.clk.now
		if w = k.wait(); w.d != 500*ms {
			t.Fatalf("next wait %v, want 1s/2", w.d)
		}
		k.key('-')
		if w = k.wait(); w.d != 1000*ms {
			t.Fatalf("wait after - %v, want 500ms*2", w.d)
		}
		k.key('-')
		if w = k.wait(); w.d != 2000*ms {
			t.Fatalf("wait after - - %v, want 1s*2", w.d)
		}
		w.fire <- k.clk.now
		if w = k.wait(); w.d != 2000*ms {
			t.Fatalf("next wait %v, want 1s at half speed", w.d)
		}
		w.fire <- k.clk.now
		if err := k.end(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("q stops", func(t *testing.T) {
		k := startKeyed(t, 1, 0, 1000, 2000)
		k.wait()
		k.key('q')
		if err := k.end(); !errors.Is(err, errReplayStopped) || k.clk.out.String() != "a" {
			t.Fatalf("end: %v, output %q; want errReplayStopped after \"a\"", err, k.clk.out.String())
		}
		if k.p.at != 0 {
			t.Fatalf("stopped at %v, want 0", k.p.at)
		}
	})
	t.Run("stdin closed: no more keys, the replay goes on", func(t *testing.T) {
		k := startKeyed(t, 1, 0, 1000)
		w := k.wait()
		close(k.keys)
		if w = k.wait(); w.d != 1000*ms {
			t.Fatalf("wait %v, want 1s again", w.d)
		}
		w.fire <- k.clk.now
		if err := k.end(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a cancelled context stops a wait", func(t *testing.T) {
		p, clk := newTestPlayer(1, timeline{}, make(chan byte))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- playAll(ctx, p, pieces(0, 1000)) }()
		<-clk.waits
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("end: %v, want context.Canceled", err)
		}
	})
}

func TestFmtOffset(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "+0.000s"},
		{12345 * time.Millisecond, "+12.345s"},
		{62345 * time.Millisecond, "+1m02.345s"},
		{time.Hour + 2*time.Minute + 3456*time.Millisecond, "+1h02m03.456s"},
		{1499 * time.Microsecond, "+0.001s"},
	}
	for _, tt := range tests {
		got := fmtOffset(tt.d)
		if got != tt.want {
			t.Fatalf("fmtOffset(%v) = %q, want %q", tt.d, got, tt.want)
		}
		// --from reads what annotations show.
		if back, err := parseOffset(got); err != nil || back != tt.d.Round(time.Millisecond) {
			t.Fatalf("parseOffset(%q) = %v, %v, want %v", got, back, err, tt.d.Round(time.Millisecond))
		}
	}
}

// replayFixture records the audittest session in a fresh log.
func replayFixture(t *testing.T) (string, audittest.Fixture) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	fx := audittest.RecordSession(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, fx
}

// runReplayTest runs tfsh replay with no terminal and the environment
// given, returning the exit code, stdout and stderr.
func runReplayTest(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runReplay(context.Background(), args, replayIO{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }})
	return code, stdout.String(), stderr.String()
}

// sanitize replaces the fixture's random IDs with names.
func sanitize(s string, fx audittest.Fixture) string {
	s = strings.ReplaceAll(s, fx.SessionID, "SESSION")
	for i, c := range fx.Commands {
		s = strings.ReplaceAll(s, c, fmt.Sprintf("COMMAND%d", i+1))
	}
	return s
}

func TestReplayNoTimingGolden(t *testing.T) {
	path, fx := replayFixture(t)
	tests := []struct {
		name string
		args []string
	}{
		{"session", []string{"--audit-db", path, "--no-timing", "last"}},
		{"command", []string{"--audit-db", path, "--no-timing", strings.ToLower(fx.Commands[1][:22])}},
		{"json", []string{"--audit-db", path, "--json", fx.SessionID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runReplayTest(t, nil, tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden(t, "replay/"+tt.name+".golden", sanitize(out, fx))
			// The same log replays the same, byte for byte.
			if _, again, _ := runReplayTest(t, nil, tt.args...); again != out {
				t.Fatalf("a second replay differs:\n%s\n---\n%s", again, out)
			}
		})
	}
}

func TestReplayCast(t *testing.T) {
	path, fx := replayFixture(t)
	noColor := map[string]string{"NO_COLOR": "1"}
	_, played, _ := runReplayTest(t, noColor, "--audit-db", path, "--no-timing", fx.SessionID)
	castPath := filepath.Join(t.TempDir(), "session.cast")
	if code, out, errOut := runReplayTest(t, noColor, "--audit-db", path, "--cast", castPath, fx.SessionID); code != 0 || out != "" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and nothing shown", code, out, errOut)
	}
	data, err := os.ReadFile(castPath)
	if err != nil {
		t.Fatal(err)
	}
	h, evs, err := audittest.ParseCast(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	wantTitle := "tfsh session " + fx.SessionID + " alice@box"
	if h.Width != 120 || h.Height != 40 || h.Timestamp != audittest.Base.Unix() || h.Command != "tfsh" || h.Title != wantTitle || h.Env["TERM"] != "xterm-256color" {
		t.Fatalf("header %+v, want 120x40 at %d, command tfsh, title %q, TERM", h, audittest.Base.Unix(), wantTitle)
	}
	// The text is what replay --no-timing shows, with the CR a terminal
	// adds before a bare LF.
	crlf := strings.NewReplacer("\r\n", "\n")
	if got := crlf.Replace(audittest.CastText(evs)); got != crlf.Replace(played) {
		t.Fatalf("cast text differs from replay --no-timing:\n--- cast\n%q\n--- replay\n%q", got, played)
	}
	for _, e := range evs {
		if e.Code == "o" && strings.Contains(e.Text, "\n") && !strings.Contains(e.Text, "\r\n") {
			t.Fatalf("a bare LF in %q", e.Text)
		}
	}
	var split bool
	for _, e := range evs {
		split = split || e.Code == "o" && strings.HasPrefix(e.Text, "é ✓")
	}
	if !split {
		t.Fatalf("no event starts with the character split across two frames, whole")
	}
	// Markers: the lock events, at the recorded times with the waits over
	// 2s (--max-wait's default) cut to 2s.
	var marks []string
	for _, e := range evs {
		if e.Code == "m" {
			kind := strings.Fields(e.Text)[1]
			marks = append(marks, fmt.Sprintf("%.3f %s", e.Time, kind))
		}
	}
	want := []string{"1.150 lock_acquired", "2.400 lock_released", "4.300 lock_wait", "6.300 lock_contention", "6.350 lock_wait_end", "7.050 integrity_check"}
	if strings.Join(marks, "\n") != strings.Join(want, "\n") {
		t.Fatalf("markers:\n%s\nwant:\n%s", strings.Join(marks, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range evs {
		if e.Code == "m" {
			if want := "+1.150s lock_acquired " + audittest.OurLock + " held by alice@box (apply)"; !strings.HasPrefix(e.Text, want) {
				t.Fatalf("marker label %q: want the annotation without decoration, %q...", e.Text, want)
			}
			break
		}
	}

	t.Run("from, speed, max-wait, stdout", func(t *testing.T) {
		_, out, errOut := runReplayTest(t, nil, "--audit-db", path, "--cast", "-", "--from", "4.3", "--speed", "2", "--max-wait", "1s", fx.Commands[1])
		_, evs, err := audittest.ParseCast([]byte(out))
		if err != nil || errOut != "" {
			t.Fatalf("%v, stderr %q\n%s", err, errOut, out)
		}
		var marks []string
		for _, e := range evs {
			if e.Code == "m" {
				marks = append(marks, fmt.Sprintf("%.3f %s", e.Time, strings.Fields(e.Text)[1]))
			}
		}
		// What is before +4.3s at once, then at twice the speed with
		// gaps cut to 1s.
		want := []string{"0.000 lock_wait", "0.500 lock_contention", "0.525 lock_wait_end"}
		if strings.Join(marks, "\n") != strings.Join(want, "\n") {
			t.Fatalf("markers:\n%s\nwant:\n%s", strings.Join(marks, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(out, `"command":"plan"`) || !strings.Contains(out, `"width":80,"height":24`) {
			t.Fatalf("header of a command on pipes: %s", strings.SplitN(out, "\n", 2)[0])
		}
		if !strings.Contains(out, `\u001b[2;36m── tfsh`) {
			t.Fatalf("annotations are not coloured without NO_COLOR")
		}
	})
}

func TestReplayUsageErrors(t *testing.T) {
	path, _ := replayFixture(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--audit-db", path, "--speed", "0", "last"}, "--speed 0: give a number from 0.015625 to 64"},
		{[]string{"--audit-db", path, "--max-wait", "-1s", "last"}, "--max-wait takes a duration"},
		{[]string{"--audit-db", path, "--from", "soon", "last"}, `--from "soon": give an offset`},
		{[]string{"--audit-db", path, "--from", "-3s", "last"}, "cannot be negative"},
		{[]string{"--audit-db", path, "--from", "1e10", "last"}, "longer than any recording can be"},
		{[]string{"--audit-db", path, "a", "b"}, "replay takes one session or command ID"},
		{[]string{"--audit-db", path, "--cast", "x", "--json", "last"}, "give --cast or --json, not both"},
		{[]string{"--audit-db", path, "--cast", "x", "--no-timing", "last"}, "--no-timing is for playing"},
		{[]string{"--audit-db", path, "ZZZZ"}, `no session or command "ZZZZ": not found (tfsh audit sessions lists the sessions`},
		{[]string{"--audit-db", path, "0"}, "is ambiguous"},
		{[]string{"--audit-db", filepath.Join(t.TempDir(), "none.db"), "last"}, "no audit log at"},
		{[]string{"--bogus"}, "unknown tfsh flag -bogus"},
		{[]string{"--audit-db", path, "--cast", filepath.Join(t.TempDir(), "no", "such.cast"), "last"}, "tfsh: replay: create "},
		{[]string{"--audit-db", path, "--cast", t.TempDir(), "last"}, "is a directory: give a file name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[min(2, len(tt.args)-1):], " "), func(t *testing.T) {
			code, out, errOut := runReplayTest(t, nil, tt.args...)
			if code != exitCannotRun || out != "" || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 4 and %q", code, out, errOut, tt.want)
			}
		})
	}
	if code, out, errOut := runReplayTest(t, nil, "--audit-db", path, "--no-timing", "--from", "100h", "last"); code != 0 || out == "" || !strings.Contains(errOut, "is past the end of the recording") {
		t.Fatalf("--from past the end: exit %d, stdout %.80q, stderr %q; want it all shown, and said", code, out, errOut)
	}
	if code, out, _ := runReplayTest(t, nil, "--help"); code != 0 || !strings.Contains(out, "Usage: tfsh replay") {
		t.Fatalf("--help: exit %d, %q", code, out)
	}
}

// TestReplayOnTerminal plays a replay on a real pseudo-terminal: keys
// arrive one by one without echo (q stops without Enter), Ctrl-C stops
// with 130, and the terminal is restored either way.
func TestReplayOnTerminal(t *testing.T) {
	path, fx := replayFixture(t)
	tests := []struct {
		key  string
		code int
	}{
		{"q", 0},
		{"\x03", 130},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.key), func(t *testing.T) {
			// From +4s on, with no limit on waits: after the lock_wait
			// annotation (+4.3s) the recording is silent for 5.95s.
			cmd := exec.Command("tfsh", "replay", "--audit-db", path, "--from", "4s", "--max-wait", "0", fx.SessionID)
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
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
			at := scr.waitFor(t, 0, `lock_wait `+audittest.TheirLock)
			if _, err := ptmx.Write([]byte(tt.key)); err != nil {
				t.Fatal(err)
			}
			scr.waitFor(t, at, `tfsh: replay stopped at \+4\.300s; tfsh replay --from 4\.300s `+fx.SessionID+` goes on from there`)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var ee *exec.ExitError
				code := 0
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code != tt.code {
					t.Fatalf("exit %d, want %d; screen:\n%s", code, tt.code, scr.String())
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("replay did not exit; screen:\n%s", scr.String())
			}
			if s := scr.String(); strings.Contains(s, "Error acquiring") || strings.Contains(s[at:], "q") || strings.Contains(s[at:], "^C") {
				t.Fatalf("the replay went on, or the key was echoed:\n%q", s[at:])
			}
			after, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
				t.Fatalf("terminal not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x",
					before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
			}
		})
	}
}
