package shell

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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	prompt "github.com/c-bata/go-prompt"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// maxSuggestions bounds what the shell hands go-prompt per keystroke: it
// measures the width of every suggestion on each render, and nobody
// scrolls through 10,000 addresses; typing more narrows them.
const maxSuggestions = 1000

// CanPrompt reports whether the go-prompt shell can run on in: a terminal
// that understands VT100 (not TERM=dumb) and a controlling terminal that
// go-prompt can open. Otherwise the plain line prompt (Interactive) runs.
func CanPrompt(in *os.File, getenv func(string) string) bool {
	if !term.IsTerminal(int(in.Fd())) || getenv("TERM") == "dumb" || getenv("TERM") == "" {
		return false
	}
	f, err := os.OpenFile("/dev/tty", os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Shell runs the interactive shell on go-prompt: completion, history,
// the live lock state in the prompt. Every line goes through Execute, the
// same pipeline as tfsh -c. It returns on exit/quit, Ctrl-D on an empty
// line, or SIGTERM/SIGHUP; the terminal is restored on every path.
//
// What go-prompt v0.2.6 lacks is wrapped, not patched: its Run calls
// os.Exit on signals, so the loop here calls Input for one line at a time
// with tfsh's own input parser, which restores the terminal state it
// saved, tells Ctrl-D from an empty Enter, and can be woken to end the
// prompt on a signal.
func (s *Session) Shell(ctx context.Context, in *os.File) Outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parser := &ttyParser{fd: int(in.Fd())}
	bg := newBackground(s)
	defer bg.stop()
	var terminated atomic.Bool
	s.OnIdleSignal(func(sig os.Signal) {
		if sig == os.Interrupt {
			return // at the prompt Ctrl-C is a key (raw mode): it clears the line
		}
		terminated.Store(true)
		cancel()
		parser.wake()
	})
	var hist []string
	if s.history != nil {
		hist = s.history.Entries()
	}
	p := prompt.New(func(string) {}, func(d prompt.Document) []prompt.Suggest {
		// go-prompt asks for the prefix twice per render: change what it
		// shows only here, between renders, or the two disagree and the
		// line is drawn out of place.
		bg.latch()
		sugg, word := Complete(d.TextBeforeCursor(), bg.sources())
		// go-prompt replaces only the text after the last space or "=";
		// Complete's word may begin earlier (a value holding "="): keep
		// what go-prompt will not delete out of the suggestions.
		if gw := d.GetWordBeforeCursorUntilSeparator(" ="); len(word) > len(gw) && strings.HasSuffix(word, gw) {
			head := word[:len(word)-len(gw)]
			for i := range sugg {
				sugg[i].Text = strings.TrimPrefix(sugg[i].Text, head)
			}
		}
		if len(sugg) > maxSuggestions {
			sugg = sugg[:maxSuggestions] // go-prompt formats every one on each key
		}
		out := make([]prompt.Suggest, len(sugg))
		for i, x := range sugg {
			out[i] = prompt.Suggest{Text: x.Text, Description: x.Description}
		}
		return out
	},
		prompt.OptionParser(parser),
		prompt.OptionLivePrefix(func() (string, bool) { return bg.shownPrefix(), true }),
		prompt.OptionHistory(hist),
		prompt.OptionCompletionWordSeparator(" ="),
		prompt.OptionMaxSuggestion(10),
		prompt.OptionTitle("tfsh"),
		prompt.OptionWriter(colourWriter{prompt.NewStdoutWriter(), terraform.EnvLookup(s.cfg.Env)("NO_COLOR") != ""}),
	)
	fmt.Fprintf(s.cfg.Out, "tfsh: %s %s in %s. Type terraform commands without \"terraform\" (plan, apply, state list); Tab completes; help for more; exit or Ctrl-D to leave.\n",
		s.cfg.Binary.Name, s.cfg.Binary.Version, s.dir)
	last := 0
	bg.waitFirst(30 * time.Millisecond) // a local lock is read by then; a remote one shows "lock ?" until the next key
	for {
		parser.sawEOF = false
		bg.latch()
		line := p.Input()
		if terminated.Load() || parser.hungUp.Load() || ctx.Err() != nil {
			fmt.Fprintln(s.cfg.Out)
			return Outcome{ExitCode: last, Status: "terminated"}
		}
		if line == "" && parser.sawEOF {
			return Outcome{ExitCode: last, Status: "ok"}
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		s.remember(line)
		out, done := s.Execute(ctx, line)
		if done {
			return Outcome{ExitCode: out.ExitCode, Status: "ok"}
		}
		last = out.ExitCode
		bg.afterCommand(line)
	}
}

// colourWriter is go-prompt's writer with NO_COLOR honoured: go-prompt
// sets some colours outside its options (the completion menu's base,
// the too-small-window notice), so they are dropped here, keeping bold
// (the selected suggestion stays visible).
type colourWriter struct {
	prompt.ConsoleWriter
	noColour bool
}

func (w colourWriter) SetColor(fg, bg prompt.Color, bold bool) {
	if w.noColour {
		fg, bg = prompt.DefaultColor, prompt.DefaultColor
	}
	w.ConsoleWriter.SetColor(fg, bg, bold)
}

// ttyParser is go-prompt's ConsoleParser for tfsh: raw mode with the saved
// state restored exactly, non-blocking reads, Ctrl-D noticed, and a wake-up
// that makes the current Input return.
type ttyParser struct {
	fd       int
	saved    *term.State
	sawEOF   bool
	woken    atomic.Bool
	hungUp   atomic.Bool // the terminal is gone: end the shell
	sent     int         // keys sent since woken
	pending  []byte      // read from the terminal, not yet given as keys
	lineDone bool        // Enter was handed out: the rest waits for the next line
}

// Setup saves the terminal state and sets go-prompt's raw mode: no echo,
// no line editing, no signals from keys, but output processing kept on
// (OPOST), so that the newline go-prompt writes after a line returns the
// carriage (x/term's MakeRaw turns it off, and output staircases).
//
// The descriptor is never made non-blocking: it is the terminal stdout,
// stderr and the user's own shell share, and O_NONBLOCK is a property of
// the open file, not of tfsh's descriptor. Read polls with a timeout
// instead.
func (t *ttyParser) Setup() error {
	t.lineDone = false
	if t.saved == nil {
		st, err := term.GetState(t.fd)
		if err != nil {
			return err
		}
		t.saved = st
	}
	tio, err := unix.IoctlGetTermios(t.fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(t.fd, unix.TCSETS, tio)
}

// TearDown restores the terminal as it was when the shell started (saved
// once, so that a command that left it raw does not become the state
// restored at exit).
func (t *ttyParser) TearDown() error {
	if t.saved == nil {
		return nil
	}
	return term.Restore(t.fd, t.saved)
}

func (t *ttyParser) GetWinSize() *prompt.WinSize {
	ws, err := unix.IoctlGetWinsize(t.fd, unix.TIOCGWINSZ)
	if err != nil || ws.Row == 0 || ws.Col == 0 {
		// A fresh pty or a serial console reports 0x0, on which go-prompt
		// divides by zero.
		return &prompt.WinSize{Row: 24, Col: 80}
	}
	return &prompt.WinSize{Row: ws.Row, Col: ws.Col}
}

// wake ends the current Input: Ctrl-C drops a half-typed line (never run
// it), then Ctrl-D on the empty line returns.
func (t *ttyParser) wake() { t.woken.Store(true) }

func (t *ttyParser) Read() ([]byte, error) {
	if t.woken.Load() {
		t.sent++
		if t.sent == 1 {
			return []byte{0x03}, nil
		}
		t.sawEOF = true
		return []byte{0x04}, nil
	}
	if t.lineDone {
		// go-prompt drops what it read after Enter when Input returns:
		// keep the rest of a paste for the next line.
		return nil, syscall.EAGAIN
	}
	if len(t.pending) == 0 {
		fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0) // go-prompt sleeps 10 ms between reads
		if err != nil || n == 0 {
			return nil, syscall.EAGAIN
		}
		buf := make([]byte, 1024)
		n, err = syscall.Read(t.fd, buf)
		if err != nil && (errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)) {
			return nil, syscall.EAGAIN
		}
		if err != nil || n == 0 {
			// The terminal hung up: end the shell the way a signal does.
			t.hungUp.Store(true)
			t.wake()
			return nil, syscall.EAGAIN
		}
		t.pending = buf[:n]
	}
	// One key per read: go-prompt takes each read as one key, so text
	// typed fast or pasted ("exit\r") would otherwise become one unknown
	// key inserted as text, Enter included.
	n := keyLen(t.pending)
	k := t.pending[:n:n]
	t.pending = t.pending[n:]
	t.sawEOF = len(k) == 1 && k[0] == 0x04 // only when it is the last key
	if len(k) == 1 && (k[0] == '\r' || k[0] == '\n') {
		t.lineDone = true
	}
	return k, nil
}

func printable(c byte) bool { return c >= 0x20 && c != 0x7f }

// keyLen is the length of the first key in b: a run of text, an escape sequence (CSI or
// SS3, as arrow and function keys send), ESC and one rune (Alt+key), or
// one UTF-8 rune.
func keyLen(b []byte) int {
	if printable(b[0]) {
		// A run of text is one insert for go-prompt; only control keys
		// must come alone.
		n := 0
		for n < len(b) && printable(b[n]) {
			n++
		}
		for n < len(b) && b[n] >= 0x80 && !utf8.Valid(b[:n]) { // never split a rune, never take a control key
			n++
		}
		return n
	}
	if b[0] != 0x1b || len(b) == 1 {
		_, n := utf8.DecodeRune(b)
		return max(n, 1)
	}
	switch b[1] {
	case '[':
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
		}
		return len(b)
	case 'O':
		return min(3, len(b))
	}
	_, n := utf8.DecodeRune(b[1:])
	return 1 + max(n, 1)
}

// background keeps what the prompt shows and completes from, refreshed
// off the prompt's path: rendering and completing only read it.
type background struct {
	s      *Session
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	first      chan struct{} // closed after the first lock read
	shown      string        // the prefix go-prompt draws
	dir        string
	ref        lock.StateRef
	lockLine   string
	lockID     string
	addresses  []string
	workspaces []string
	refresh    chan struct{}
	lockPoke   chan struct{}
	lockSeq    atomic.Int64 // readings of the lock so far
}

func newBackground(s *Session) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{s: s, ctx: ctx, cancel: cancel, refresh: make(chan struct{}, 1), lockPoke: make(chan struct{}, 1), lockLine: "lock ?", first: make(chan struct{})}
	b.discover()
	b.wg.Add(2)
	go b.lockLoop()
	go b.listLoop()
	return b
}

func (b *background) stop() {
	b.cancel()
	b.wg.Wait()
}

func (b *background) discover() {
	getenv := lock.Getenv(terraform.EnvLookup(b.s.cfg.Env))
	ref, err := lock.Discover(b.s.dir, getenv)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dir = b.s.dir
	if err == nil {
		b.ref = ref
	}
}

// latch takes the current prompt (directory, workspace, backend, lock
// state) as the one to draw until the next latch.
func (b *background) latch() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shown = fmt.Sprintf("tfsh %s [%s · %s · %s]> ", filepath.Base(b.dir), b.ref.Workspace, b.ref.Backend, b.lockLine)
}

func (b *background) shownPrefix() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.shown
}

func (b *background) waitFirst(d time.Duration) {
	select {
	case <-b.first:
	case <-time.After(d):
	}
}

func (b *background) sources() CompletionSources {
	b.mu.Lock()
	defer b.mu.Unlock()
	addrs, wss, id := b.addresses, b.workspaces, b.lockID
	return CompletionSources{
		Product:    b.s.cfg.Binary.Name,
		Version:    b.s.cfg.Binary.Version,
		Dir:        b.dir,
		Addresses:  func() []string { return addrs },
		Workspaces: func() []string { return wss },
		LockID:     func() string { return id },
	}
}

// afterCommand re-reads what a command may have changed: the directory
// (cd), the backend and workspace, the state's addresses.
func (b *background) afterCommand(string) {
	b.discover()
	select {
	case b.refresh <- struct{}{}:
	default:
	}
	// The command may have taken or freed the lock: read it now, and let
	// the next prompt show it if that takes under 50 ms (a local read
	// does); otherwise the prompt shows the last reading until the next key.
	seq := b.lockSeq.Load()
	select {
	case b.lockPoke <- struct{}{}:
	default:
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for b.lockSeq.Load() == seq && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// lockLoop reads the state's lock every 2 s while the prompt waits (a
// slow or unreachable backend only delays this loop, never the prompt).
func (b *background) lockLoop() {
	defer b.wg.Done()
	getenv := lock.Getenv(terraform.EnvLookup(b.s.cfg.Env))
	var once sync.Once
	for {
		b.mu.Lock()
		ref := b.ref
		b.mu.Unlock()
		line, id := "no lock reader", ""
		obs, err := b.s.observers.open(b.ctx, ref, getenv)
		if err == nil {
			ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
			line, id = lockSummary(obs.Observe(ctx), time.Now())
			cancel()
		}
		b.mu.Lock()
		b.lockLine, b.lockID = line, id
		b.mu.Unlock()
		b.lockSeq.Add(1)
		once.Do(func() { close(b.first) })
		select {
		case <-b.ctx.Done():
			return
		case <-b.lockPoke:
		case <-time.After(2 * time.Second):
		}
	}
}

// lockSummary is the prompt's lock word: free, or who holds it.
func lockSummary(views []lock.View, now time.Time) (string, string) {
	for _, v := range views {
		switch {
		case v.Err != nil:
			return "lock unknown", ""
		case v.Held && v.Info != nil:
			return fmt.Sprintf("held by %s %s %s", v.Info.Who, lock.OperationName(v.Info.Operation), v.Info.Age(now).Round(time.Second)), v.Info.ID
		case v.Held:
			return fmt.Sprintf("held by pid %d", v.PID), ""
		}
	}
	return "free", ""
}

// listLoop refreshes the state's addresses and the workspaces by running
// terraform's own read-only listings (state list, workspace list) in the
// background, at start and after each command.
func (b *background) listLoop() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		dir := b.dir
		b.mu.Unlock()
		addrs := b.list(dir, "state", "list")
		wss := b.list(dir, "workspace", "list")
		for i, w := range wss {
			wss[i] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(w), "*"))
		}
		b.mu.Lock()
		if addrs != nil || len(b.addresses) == 0 {
			b.addresses = addrs
		}
		if wss != nil {
			b.workspaces = wss
		}
		b.mu.Unlock()
		select {
		case <-b.ctx.Done():
			return
		case <-b.refresh:
		}
	}
}

// list runs a read-only terraform listing in dir, argv only, without
// TF_CLI_ARGS (which could carry flags that listing refuses); nil on
// failure.
func (b *background) list(dir string, args ...string) []string {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.s.cfg.Binary.Path, args...)
	cmd.Dir = dir
	cmd.WaitDelay = time.Second // a grandchild holding the pipe must not hang the shell
	for _, kv := range b.s.cfg.Env {
		if !strings.HasPrefix(kv, "TF_CLI_ARGS") && !strings.HasPrefix(kv, "TF_LOG") {
			cmd.Env = append(cmd.Env, kv) // not into the user's debug log either
		}
	}
	cmd.Env = append(cmd.Env, "TF_IN_AUTOMATION=1", "TF_INPUT=0")
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
