package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// Interactive reads commands from the terminal, one line at a time, until
// exit, quit, Ctrl-D or SIGTERM/SIGHUP. (The go-prompt shell replaces this
// plain prompt.) Ctrl-C at the prompt clears the line.
func (s *Session) Interactive(ctx context.Context, in *os.File) Outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lr, err := newLineReader(in)
	if err != nil {
		s.errorf("%v", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "failed"}
	}
	defer lr.close()
	var terminated bool
	var tmu sync.Mutex
	s.OnIdleSignal(func(sig os.Signal) {
		if sig == os.Interrupt {
			lr.discard()
			// The terminal already echoed ^C and dropped the half-typed line.
			fmt.Fprint(s.cfg.Out, "\n"+s.Prompt())
			return
		}
		tmu.Lock()
		terminated = true
		tmu.Unlock()
		cancel()
	})
	fmt.Fprintf(s.cfg.Out, "tfsh: %s %s in %s. Type terraform commands without \"terraform\" (plan, apply, state list); help for more; exit or Ctrl-D to leave.\n",
		s.cfg.Binary.Name, s.cfg.Binary.Version, s.dir)
	last := 0
	for {
		fmt.Fprint(s.cfg.Out, s.Prompt())
		line, err := lr.next(ctx)
		if err != nil {
			tmu.Lock()
			t := terminated
			tmu.Unlock()
			if t {
				fmt.Fprintln(s.cfg.Out)
				return Outcome{ExitCode: last, Status: "terminated"}
			}
			if errors.Is(err, io.EOF) {
				fmt.Fprintln(s.cfg.Out)
				return Outcome{ExitCode: last, Status: "ok"}
			}
			s.errorf("read from terminal: %v", err)
			return Outcome{ExitCode: ExitCannotRun, Status: "failed"}
		}
		s.remember(line)
		out, done := s.Execute(ctx, line)
		if done {
			return Outcome{ExitCode: out.ExitCode, Status: "ok"}
		}
		last = out.ExitCode
	}
}

// Script runs one command per line from f, stopping at the first failure
// unless keepGoing. Blank lines and # comments are skipped. The exit code is
// the first failure's (with keepGoing, the last failure's). A command that
// exits 2 under -detailed-exitcode has not failed.
func (s *Session) Script(ctx context.Context, f *os.File, name string, keepGoing bool) Outcome {
	lr, err := newLineReader(f)
	if err != nil {
		s.errorf("%v", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "failed"}
	}
	defer lr.close()
	failed := Outcome{Status: "ok"}
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			return Outcome{ExitCode: ExitInterrupted, Status: "interrupted"}
		}
		line, err := lr.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return Outcome{ExitCode: ExitInterrupted, Status: "interrupted"}
			}
			s.errorf("read %s: %v", name, err)
			return Outcome{ExitCode: ExitCannotRun, Status: "failed"}
		}
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		s.remember(line)
		out, done := s.Execute(ctx, line)
		if done {
			return Outcome{ExitCode: out.ExitCode, Status: "ok"}
		}
		if !out.OK() {
			if !keepGoing {
				s.errorf("%s:%d: stopped: the command exited %d (use -k to keep going)", name, n, out.ExitCode)
				return Outcome{ExitCode: out.ExitCode, Status: "failed"}
			}
			failed = Outcome{ExitCode: out.ExitCode, Status: "failed"}
		}
	}
	return failed
}

// Execute runs one line typed by the user or read from a script: a builtin,
// or terraform's arguments through the pipeline. done is true for exit/quit.
func (s *Session) Execute(ctx context.Context, line string) (out Outcome, done bool) {
	ok := Outcome{Status: "ok"}
	argv, err := Tokenize(line)
	if err != nil {
		s.errorf("cannot read that line: %v; nothing was run", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}, false
	}
	if len(argv) == 0 {
		return ok, false
	}
	if k, _, isAssign := strings.Cut(argv[0], "="); isAssign && k != "" && !strings.HasPrefix(k, "-") {
		// A shell habit (TF_VAR_pw=secret plan): tfsh sets no environment
		// per command, and the value must not be kept anywhere.
		s.errorf("tfsh does not take NAME=value before a command; set %s before starting tfsh", k)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}, false
	}
	for _, a := range argv {
		if strings.Contains(a, terraform.RedactedValue) {
			// A line recalled from history, where secrets were replaced:
			// running it would pass the marker as the value.
			s.errorf("this line holds %s where history removed a secret value: type the value again; nothing was run", terraform.RedactedValue)
			return Outcome{ExitCode: ExitCannotRun, Status: "error"}, false
		}
	}
	switch argv[0] {
	case "exit", "quit":
		code := 0
		if len(argv) > 1 {
			n, err := strconv.Atoi(argv[1])
			if err != nil {
				s.errorf("exit takes a number, not %q", argv[1])
				return Outcome{ExitCode: ExitCannotRun, Status: "error"}, false
			}
			code = n
		}
		return Outcome{ExitCode: code, Status: "ok"}, true
	case "help":
		if len(argv) == 1 {
			io.WriteString(s.cfg.Out, helpText)
			return ok, false
		}
		// terraform has no help command: "help state mv" is "state mv -help".
		return s.Run(ctx, append(argv[1:], "-help"), line), false
	case "cd":
		return s.cd(argv[1:]), false
	case "pwd":
		fmt.Fprintln(s.cfg.Out, s.dir)
		return ok, false
	case "locks":
		return s.locks(ctx, argv[1:]), false
	case "history":
		return s.showHistory(argv[1:]), false
	case "policy":
		return s.policyBuiltin(ctx, argv[1:]), false
	case "explain", "replay":
		f := s.cfg.Readers[argv[0]]
		if f == nil {
			s.errorf("%s reads the audit log, which this session cannot offer", argv[0])
			return Outcome{ExitCode: ExitCannotRun, Status: "error"}, false
		}
		if code := f(ctx, argv[1:]); code != 0 {
			return Outcome{ExitCode: code, Status: "error"}, false
		}
		return ok, false
	}
	if argv[0] == "terraform" || argv[0] == "tofu" {
		// Typing the binary out of habit is harmless: drop it.
		argv = argv[1:]
		if len(argv) == 0 {
			return ok, false
		}
	}
	return s.Run(ctx, argv, line), false
}

func (s *Session) cd(args []string) Outcome {
	if len(args) != 1 {
		s.errorf("cd takes one directory")
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	dir := args[0]
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(s.dir, dir)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		s.errorf("cd: %s is not a directory", dir)
		return Outcome{ExitCode: 1, Status: "failed"}
	}
	s.dir = filepath.Clean(dir)
	return Outcome{Status: "ok"}
}

// policyBuiltin shows the policy in effect for the working directory, or
// explains what it decides for a command line ("policy explain apply").
func (s *Session) policyBuiltin(ctx context.Context, args []string) Outcome {
	dir := s.dir
	var argv []string
	if len(args) > 1 && args[0] == "explain" {
		argv = args[1:]
		if argv[0] == "--" {
			argv = argv[1:]
		}
		dir = CommandDir(s.dir, argv, s.cfg.Binary.Name, s.cfg.Env) // the policy of the directory it runs in
	}
	p, err := s.policyFor(dir)
	if err != nil {
		s.errorf("%v", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	switch {
	case len(args) == 0, len(args) == 1 && args[0] == "show":
		ShowPolicy(s.cfg.Out, p)
	case len(argv) > 0:
		in := ExplainInput(ctx, argv, ExplainOptions{Dir: s.dir, Env: s.cfg.Env, Product: s.cfg.Binary.Name, User: s.user, Host: s.host, Time: s.cfg.Now()})
		policy.WriteExplanation(s.cfg.Out, p.Explain(in))
	default:
		s.errorf("policy takes no arguments, show, or explain <command line> (tfsh policy check and test are for policy authors)")
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	return Outcome{Status: "ok"}
}

// remember keeps a typed line in the history, redacted like the audit.
func (s *Session) remember(line string) {
	if s.history == nil {
		return
	}
	if l, ok := HistoryLine(line, s.rec.Redactor().String); ok {
		if err := s.history.Add(l); err != nil {
			s.sayOnceErr("history:"+err.Error(), err)
		}
	}
}

func (s *Session) sayOnceErr(key string, err error) {
	s.sayOnce(key, func(m string) { s.errorf("%s", m) }, err.Error()+"; carrying on without saving history")
}

// showHistory prints the history, numbered; "history N" the last N.
func (s *Session) showHistory(args []string) Outcome {
	if s.history == nil {
		s.errorf("this session keeps no history (only the interactive prompt does)")
		return Outcome{ExitCode: 1, Status: "failed"}
	}
	e := s.history.Entries()
	first := 0
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			s.errorf("history takes a count, not %q", args[0])
			return Outcome{ExitCode: ExitCannotRun, Status: "error"}
		}
		first = max(0, len(e)-n)
	} else if len(args) > 1 {
		s.errorf("history takes at most one count")
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	for i := first; i < len(e); i++ {
		fmt.Fprintf(s.cfg.Out, "%5d  %s\n", i+1, e[i])
	}
	return Outcome{Status: "ok"}
}

func (s *Session) locks(ctx context.Context, args []string) Outcome {
	opts := LocksOptions{Dir: s.dir, Env: s.cfg.Env, Now: s.cfg.Now, Audit: s.cfg.Audit}
	for _, a := range args {
		switch a {
		case "--all", "-all":
			opts.All = true
		case "--json", "-json":
			opts.JSON = true
		default:
			s.errorf("locks takes --all and --json, not %q", a)
			return Outcome{ExitCode: ExitCannotRun, Status: "error"}
		}
	}
	if err := Locks(ctx, opts, s.cfg.Out); err != nil {
		s.errorf("locks: %v", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	return Outcome{Status: "ok"}
}

// Prompt renders the plain prompt: directory, workspace and backend.
func (s *Session) Prompt() string {
	ref, err := lock.Discover(s.dir, lock.Getenv(terraform.EnvLookup(s.cfg.Env)))
	where := filepath.Base(s.dir)
	if err != nil {
		return fmt.Sprintf("tfsh %s> ", where)
	}
	return fmt.Sprintf("tfsh %s [%s · %s]> ", where, ref.Workspace, ref.Backend)
}

const helpText = `tfsh runs terraform (or tofu) commands through lock policy and an audit log.

  plan, apply, state mv A B, ...   any terraform subcommand, typed without "terraform"
  help <subcommand>                terraform's own help for it
  locks [--all] [--json]           the state's lock where it lives: free, or who holds it
  history [N]                      the lines typed at the prompt (redacted), or the last N
  policy                           the lock policy in effect: files, settings, rules, where each comes from
  policy explain <command>         which rules a command line matches, which not and why
  cd DIR, pwd                      change or show the working directory
  exit [N], quit, Ctrl-D           leave

Lock rules (built-in): commands that write state may not run with -lock=false;
-lock-timeout=5m is added where terraform accepts it and none is given. Security
teams add rules in HCL (/etc/tfsh/policy.hcl, .tfsh/policy.hcl): see docs/policy.md.
Every command, decision and its output is recorded: see "tfsh audit sessions".
`

// lineReader reads lines from a file descriptor with poll, so that a read
// can be abandoned (SIGTERM at the prompt) and so that it never holds on to
// input while a command owns the terminal.
type lineReader struct {
	fd    int
	buf   []byte
	wakeR *os.File
	wakeW *os.File
	mu    sync.Mutex
	drop  bool
}

func newLineReader(f *os.File) (*lineReader, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &lineReader{fd: int(f.Fd()), wakeR: r, wakeW: w}, nil
}

func (l *lineReader) close() {
	l.wakeR.Close()
	l.wakeW.Close()
}

// discard drops a partly read line (Ctrl-C at the prompt).
func (l *lineReader) discard() {
	l.mu.Lock()
	l.drop = true
	l.mu.Unlock()
	l.wakeW.Write([]byte{1})
}

func (l *lineReader) next(ctx context.Context) (string, error) {
	stop := context.AfterFunc(ctx, func() { l.wakeW.Write([]byte{0}) })
	defer stop()
	tmp := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.wakeR.Fd()), Events: unix.POLLIN}}
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			line := string(l.buf[:i])
			l.buf = l.buf[i+1:]
			return strings.TrimSuffix(line, "\r"), nil
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return "", err
		}
		if fds[1].Revents != 0 {
			var b [16]byte
			l.wakeR.Read(b[:])
			l.mu.Lock()
			if l.drop {
				l.buf = l.buf[:0]
				l.drop = false
			}
			l.mu.Unlock()
			continue
		}
		n, err := syscall.Read(l.fd, tmp)
		if n > 0 {
			l.buf = append(l.buf, tmp[:n]...)
			continue
		}
		if err != nil && (errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)) {
			continue
		}
		if err != nil {
			return "", err
		}
		// EOF: a last line without a newline still counts.
		if len(l.buf) > 0 {
			line := string(l.buf)
			l.buf = nil
			return line, nil
		}
		return "", io.EOF
	}
}
