package terraform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// RunSpec says how to run one terraform process. Argv only: nothing is
// ever given to a shell.
type RunSpec struct {
	Path string
	Args []string
	Dir  string
	Env  []string

	// Stdin, Stdout and Stderr are the user's streams. In PTY mode Stdin and
	// Stdout must be the terminal.
	Stdin  *os.File
	Stdout io.Writer
	Stderr io.Writer

	// Record receives a copy of the output: stream "stdout"/"stderr" in pipe
	// mode, "tty" in PTY mode. Its writers must not block for long.
	Record func(stream string) io.Writer

	// PTY runs the child on a pseudo-terminal with our terminal in raw mode.
	PTY bool

	// Typed, if set, receives each line the user types to the child in PTY
	// mode: an answer at terraform's variable prompt may be a secret, and
	// the terminal echoes it. While a line is being typed, the recording of
	// the output is held back; Typed gets the line before the held output
	// (its echo, and whatever terraform printed meanwhile) reaches Record's
	// writer.
	Typed func(line string)

	// Signals delivers the signals tfsh receives while the command runs.
	// Each is passed on once, SIGHUP as SIGTERM (terraform handles only
	// INT and TERM; HUP would kill it and leak a remote lock). SIGINT is not
	// passed on when the terminal already delivered it: in PTY mode, and when
	// stdin is a terminal (then the child stays in tfsh's foreground process
	// group, so that it may read the terminal). Otherwise the child has its
	// own process group and gets signals only from tfsh.
	Signals <-chan os.Signal

	// Resized, if set, hears the terminal's new size each time it changes
	// while a command runs on a pty (the child has been told already).
	Resized func(cols, rows int)

	// Started, if set, is called with the child's PID as soon as it runs
	// (lock observers compare it with the holder of a local lock).
	Started func(pid int)
}

// Result is how a run ended.
type Result struct {
	Started  bool
	ExitCode int    // terraform's exit code; 128+N when killed by signal N; -1 if it never ran
	Signal   string // the signal that killed the child, if any
	// Forwarded lists the signals tfsh passed on.
	Forwarded []string
	// Input is how many bytes of tfsh's stdin were passed to the child
	// (without a terminal; 0 on a pty).
	Input    int64
	Duration time.Duration
	Err      error // tfsh could not run the command at all
}

// Run starts the child, copies its streams and waits for it. ctx cancels a
// run that has not started; once it runs, only signals stop it, so that
// terraform always gets to release its lock.
func Run(ctx context.Context, spec RunSpec) Result {
	if err := ctx.Err(); err != nil {
		return Result{Err: err, ExitCode: -1}
	}
	if spec.PTY {
		return runPTY(spec)
	}
	return runPipes(spec)
}

func command(spec RunSpec) *exec.Cmd {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	return cmd
}

// tee writes to the user and to the recorder; a failing user stream (a
// closed pipe) never stops the recording nor the child's output.
type tee struct {
	user   io.Writer
	rec    io.Writer
	broken bool
}

func (t *tee) Write(p []byte) (int, error) {
	if t.user != nil && !t.broken {
		if _, err := t.user.Write(p); err != nil {
			t.broken = true
		}
	}
	if t.rec != nil {
		t.rec.Write(p)
	}
	return len(p), nil
}

func recorder(spec RunSpec, stream string) io.Writer {
	if spec.Record == nil {
		return nil
	}
	return spec.Record(stream)
}

// forward maps a signal tfsh received to what the child should get, or nil.
func forward(sig os.Signal, terminalSentInterrupt bool) os.Signal {
	switch sig {
	case os.Interrupt:
		if terminalSentInterrupt {
			return nil
		}
		return sig
	case syscall.SIGHUP:
		return syscall.SIGTERM
	}
	return sig
}

func runPipes(spec RunSpec) Result {
	cmd := command(spec)
	foreground := false
	if spec.Stdin != nil {
		cmd.Stdin = spec.Stdin
		foreground = term.IsTerminal(int(spec.Stdin.Fd()))
	}
	gate := &typedGate{typed: spec.Typed}
	rl, out, err := newRelay(
		&tee{user: spec.Stdout, rec: gate.output(recorder(spec, "stdout"))},
		&tee{user: spec.Stderr, rec: gate.output(recorder(spec, "stderr"))})
	if err != nil {
		return Result{Err: err, ExitCode: -1}
	}
	cmd.Stdout, cmd.Stderr = out[0], out[1]
	// Input may answer terraform's prompts: it goes through the gate like
	// typing on a pty, so that the answer is known before terraform can
	// print it. That holds for a terminal on stdin too (its output piped,
	// as in `tfsh -c plan | tee log`): tfsh reads the terminal, which stays
	// in its usual line mode (the terminal echoes, erases and ends lines
	// itself), and hands each line on. Reading a line ahead is not possible:
	// the copy polls and stops when the child exits, so what is typed after
	// that stays in the terminal for the next reader.
	var input *pipedInput
	if spec.Stdin != nil && spec.Typed != nil {
		var err error
		if input, err = pipeInput(spec.Stdin, gate); err != nil {
			closeFiles(out)
			rl.closeFDs()
			return Result{Err: err, ExitCode: -1}
		}
		cmd.Stdin = input.r
		defer input.stop()
	}
	// Without a terminal on stdin, the child gets its own process group:
	// signals reach it only through tfsh, exactly once. With one, it stays
	// in the foreground group: Ctrl-C at the terminal reaches it as it
	// would plain terraform, and without Typed it reads the terminal
	// itself, which from another group would stop it with SIGTTIN while it
	// holds the lock.
	// Pdeathsig: if tfsh dies, terraform gets the graceful stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !foreground, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	err = cmd.Start()
	closeFiles(out) // the child has its own copies
	if err != nil {
		rl.closeFDs()
		return Result{Err: fmt.Errorf("start %s: %w", spec.Path, err), ExitCode: -1}
	}
	go rl.run()
	if spec.Started != nil {
		spec.Started(cmd.Process.Pid)
	}
	stop := make(chan struct{})
	var fwd []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	if spec.Signals != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case sig := <-spec.Signals:
					to := forward(sig, foreground)
					if to != nil && cmd.Process.Signal(to) == nil {
						mu.Lock()
						fwd = append(fwd, to.String())
						mu.Unlock()
					}
				}
			}
		}()
	}
	err = cmd.Wait()
	// A provisioner's background process may keep the output pipes open
	// after terraform exits; do not wait for it forever.
	rl.finish(relayGrace)
	close(stop)
	wg.Wait()
	res := exitResult(cmd, err, start, fwd)
	if input != nil {
		input.stop()
		res.Input = input.n.Load()
	}
	gate.close()
	return res
}

// pipedInput copies tfsh's non-terminal stdin to the child through a pipe,
// telling the gate what passes.
type pipedInput struct {
	r, w    *os.File
	wake    *os.File
	wakeW   *os.File
	done    chan struct{}
	stopped bool
	n       atomic.Int64 // bytes passed to the child
}

func pipeInput(in *os.File, gate *typedGate) (*pipedInput, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe terraform's input: %w", err)
	}
	wake, wakeW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("pipe terraform's input: %w", err)
	}
	p := &pipedInput{r: r, w: w, wake: wake, wakeW: wakeW, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// Polls, so that it stops when the child is gone instead of
		// blocking in read; closing w at EOF gives the child its EOF.
		copyInput(&gatedInput{gate: gate, pty: w, n: &p.n}, int(in.Fd()), int(wake.Fd()))
		w.Close()
	}()
	return p, nil
}

// stop ends the copy once the child has exited; a copy blocked on a full
// pipe ends when the read end closes.
func (p *pipedInput) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.r.Close()
	p.wakeW.Write([]byte{0})
	<-p.done
	p.wake.Close()
	p.wakeW.Close()
}

// exitResult is how a started child ended.
func exitResult(cmd *exec.Cmd, err error, start time.Time, forwarded []string) Result {
	res := Result{Started: true, Duration: time.Since(start), Forwarded: forwarded}
	if cmd.ProcessState == nil {
		res.Err = err
		res.ExitCode = -1
		return res
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		res.Signal = ws.Signal().String()
		res.ExitCode = 128 + int(ws.Signal())
	default:
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		res.Err = err
	}
	return res
}

func runPTY(spec RunSpec) Result {
	cmd := command(spec)
	inFd := int(spec.Stdin.Fd())
	size, err := pty.GetsizeFull(spec.Stdin)
	if err != nil {
		size = nil
	}
	start := time.Now()
	ptmx, err := pty.StartWithAttrs(cmd, size, &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGTERM})
	if err != nil {
		return Result{Err: fmt.Errorf("start %s on a terminal: %w", spec.Path, err), ExitCode: -1}
	}
	defer ptmx.Close()
	if spec.Started != nil {
		spec.Started(cmd.Process.Pid)
	}

	// Raw mode for the duration, restored on every path out of here
	// (including panics: deferred).
	if old, err := term.MakeRaw(inFd); err == nil {
		defer term.Restore(inFd, old)
	}

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	wake, wakeW, err := os.Pipe()
	if err != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		return Result{Err: err, ExitCode: -1}
	}
	defer wake.Close()
	defer wakeW.Close()

	gate := &typedGate{typed: spec.Typed}
	rec := gate.output(recorder(spec, "tty"))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyInput(&gatedInput{gate: gate, pty: ptmx}, inFd, int(wake.Fd()))
	}()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		// Ends with EIO once the child and its descendants close the pty.
		io.Copy(&tee{user: spec.Stdout, rec: rec}, ptmx)
	}()

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var fwd []string
	var werr error
loop:
	for {
		select {
		case werr = <-waitErr:
			break loop
		case <-winch:
			pty.InheritSize(spec.Stdin, ptmx)
			if spec.Resized != nil {
				if ws, err := pty.GetsizeFull(spec.Stdin); err == nil {
					spec.Resized(int(ws.Cols), int(ws.Rows))
				}
			}
		case sig := <-spec.Signals:
			if to := forward(sig, true); to != nil && cmd.Process.Signal(to) == nil {
				fwd = append(fwd, to.String())
			}
		}
	}
	// Let the output drain, but do not hang on a grandchild that keeps the
	// pty open: then close it, so that nothing writes after we return.
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
		ptmx.Close()
		<-outDone
	}
	wakeW.Write([]byte{0})
	wg.Wait()
	gate.close()
	return exitResult(cmd, werr, start, fwd)
}

// typedGate stands between a child's output and its recorders. While the
// user has typed part of a line, the output (which includes the terminal's
// echo of it) is held; when the line ends, the line goes to typed first and
// the held output to the recorders after, so that a redactor that learns
// the line from typed removes it from the echo and from what terraform
// prints with it. Lines are edited as the terminal's line discipline would
// for the common keys (erase, kill, interrupt), and a line given up with ^C
// or ^U counts as typed too: its echo is on the screen.
type typedGate struct {
	typed func(string)

	mu   sync.Mutex
	line []byte // typed since the last end of line
	outs []*gatedOutput
}

// output returns a writer to rec (nil: nothing is recorded) that holds what
// is written while a line is being typed.
func (g *typedGate) output(rec io.Writer) io.Writer {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := &gatedOutput{g: g, rec: rec}
	g.outs = append(g.outs, o)
	return o
}

func (g *typedGate) input(p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range p {
		switch b {
		case '\r', '\n', 0x03, 0x15, 0x04: // end of line, ^C, ^U, ^D
			g.endLine()
		case 0x7f, '\b':
			// Erase one character: drop UTF-8 continuation bytes with it.
			n := len(g.line)
			for n > 0 && g.line[n-1]&0xc0 == 0x80 {
				n--
			}
			if n > 0 {
				n--
			}
			g.line = g.line[:n]
		default:
			g.line = append(g.line, b)
		}
	}
}

// endLine passes on the line, then the output held while it was typed.
func (g *typedGate) endLine() {
	if len(g.line) > 0 && g.typed != nil {
		g.typed(string(g.line))
	}
	g.line = g.line[:0]
	for _, o := range g.outs {
		if len(o.held) > 0 {
			o.rec.Write(o.held)
		}
		o.held = nil
	}
}

// close ends an unfinished line, as if it were entered.
func (g *typedGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endLine()
}

type gatedOutput struct {
	g    *typedGate
	rec  io.Writer
	held []byte
}

func (o *gatedOutput) Write(p []byte) (int, error) {
	o.g.mu.Lock()
	defer o.g.mu.Unlock()
	switch {
	case o.rec == nil:
	case len(o.g.line) > 0:
		o.held = append(o.held, p...)
	default:
		o.rec.Write(p)
	}
	return len(p), nil
}

// gatedInput tells the gate what the user types before the child gets it,
// so that the echo can never reach the recorder first.
type gatedInput struct {
	gate *typedGate
	pty  io.Writer
	n    *atomic.Int64 // bytes passed on, when counted
}

func (w *gatedInput) Write(p []byte) (int, error) {
	w.gate.input(p)
	if w.n != nil {
		w.n.Add(int64(len(p)))
	}
	return w.pty.Write(p)
}

// copyInput copies the terminal to the pty until wake becomes readable. It
// polls instead of blocking in read, so that it never swallows what the user
// types after the command ends.
func copyInput(dst io.Writer, in, wake int) {
	buf := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			n, err := unix.Read(in, buf)
			if n > 0 {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) || n == 0 && err == nil {
				return
			}
		}
	}
}
