package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/ci"
	"github.com/tfsh/tfsh/internal/teamlog"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/shell"
	"github.com/tfsh/tfsh/terraform"
)

// Exit codes (README "Exit codes").
const (
	exitRefused   = shell.ExitRefused
	exitCannotRun = shell.ExitCannotRun
)

// usageError is a mistake in how tfsh was called: one line, exit 4.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Main is tfsh's entry point, shared by the binary and the tests.
func Main(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runCommand(ctx, args[1:], stdin, stdout, stderr)
		case "audit":
			return auditCommand(ctx, args[1:], stdout, stderr)
		case "explain":
			return explainCommand(ctx, args[1:], stdout, stderr)
		case "report":
			return reportCommand(ctx, args[1:], stdout, stderr)
		case "replay":
			return replayCommand(ctx, args[1:], stdin, stdout, stderr)
		case "locks":
			return locksCommand(ctx, args[1:], stdout, stderr)
		case "policy":
			return policyCommand(ctx, args[1:], stdout, stderr)
		case "unlock":
			return unlockCommand(ctx, args[1:], stdin, stdout, stderr)
		case "hold":
			return holdCommand(ctx, args[1:], stdin, stdout, stderr)
		case "lab":
			return labCommand(ctx, args[1:], stdout, stderr)
		case "watch":
			return watchCommand(ctx, args[1:], stdout, stderr)
		case "version":
			fmt.Fprintf(stdout, "tfsh %s\n", tfshVersion())
			return 0
		case "help":
			io.WriteString(stdout, usage)
			return 0
		}
	}
	return shellCommand(ctx, args, stdin, stdout, stderr)
}

const usage = `tfsh: a shell for terraform and tofu that keeps state locking honest.

Usage:
  tfsh [flags]                     interactive shell in the current directory (or a script on stdin)
  tfsh [flags] -c 'LINE'           run one command line, e.g. tfsh -c 'apply -auto-approve'
  tfsh [flags] -f FILE [-k]        run a script, one command per line; -k keeps going after a failure
  tfsh run [flags] [--json] -- ARGS...
                                   the CI form: terraform's arguments given directly; --json ends
                                   stderr with a summary (decision, exit, lock held, waits)
  tfsh locks [--all] [--json]      the lock of this directory's state, read where it lives
  tfsh policy [show|check|explain|test]  the lock policy in effect; for policy authors (tfsh policy help)
  tfsh hold --reason R [--for 2h] [--dir D]   a change-freeze hold: terraform and tofu are refused
  tfsh hold --release [--dir D]                release it
  tfsh unlock [--yes] [--reason R] [--dir D] [ID]
                                   guarded force-unlock of the state's lock (the current one if no ID)
  tfsh audit sessions [--json] [--user U] [--host H] [--state KEY] [--command REGEX]
                      [--kind K] [--since T] [--until T] [--limit N]
                                   recorded sessions: the newest that match (tfsh audit help)
  tfsh audit show [--json] ID|last show a session: commands, decisions, exit codes, output
  tfsh audit verify [--json] [--anchors] [--pubkey KEY]
                                   recompute the chain, the output digests and the anchors (exit 1 if broken)
  tfsh audit pull --from dynamodb://TABLE [--since T] [--until T] [--state KEY] [--session ID] [--json]
                                   merge the team's events from the shared table into the local log
  tfsh audit push [--to dynamodb://TABLE]
                                   ship this log's queued events to the shared table now
  tfsh audit init-table [--table NAME] [--ttl-days N]
                                   create the shared table (default tfsh-audit)
  tfsh explain [--since T] [--state KEY] [--json] [LOCK|EVENT|SESSION|COMMAND]
                                   who held the lock, who waited, how it ended (default: the last 24h)
  tfsh report --html FILE [--since T] [--until T] [--state KEY]
                                   one self-contained HTML file: a lock timeline per state and the incidents
  tfsh replay [--speed N] [--max-wait D] [--from OFFSET] [--no-timing] [--cast FILE] ID|last
                                   play a session or command back with its timing and lock events
  tfsh watch [--table NAME] [--bucket NAME [--prefix P]] [--interval 1s] [--once] [--json]
                                   record every lock anyone takes on a lock table or bucket, plain
                                   terraform included; release expired holds (tfsh watch --help)
  tfsh lab up|status|down [--dir D] [--json]
                                   loopback S3 and DynamoDB for trying remote state and locks offline
  tfsh version

Flags:
  --terraform PATH   terraform or tofu binary (default: $TFSH_TERRAFORM, else terraform, then tofu on PATH)
  --audit-db PATH    audit log (default: $TFSH_AUDIT_DB, else $XDG_STATE_HOME/tfsh/audit.db)
  --reason TEXT      the reason a require_reason rule asks for, when there is no terminal
                     to ask at (default: $TFSH_REASON); recorded with the command
  --yes              confirm a force-unlock without a terminal (terraform's -force does too)

Exit codes: terraform's own (0, 1, 2), 3 refused by policy, 4 tfsh could not run the
command, 130 interrupted before terraform started.
`

// common holds the flags every running mode shares.
type common struct {
	terraform string
	auditDB   string
	reason    string
	yes       bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.terraform, "terraform", "", "terraform or tofu binary")
	fs.StringVar(&c.auditDB, "audit-db", "", "audit log path")
	fs.StringVar(&c.reason, "reason", "", "reason for require_reason rules")
	fs.BoolVar(&c.yes, "yes", false, "confirm a force-unlock without a terminal")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (audit show last --json), up to "--", after which
// everything is positional. It returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		dashes := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"
		if len(rest) == 0 || dashes {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// flagError turns flag's error into one line that says what to do.
func flagError(cmd string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "flag provided but not defined: ") {
		f := strings.TrimPrefix(msg, "flag provided but not defined: ")
		hint := "see tfsh " + cmd + " --help"
		if strings.HasPrefix(cmd, "policy") {
			hint = "see tfsh policy help"
		}
		if cmd == "tfsh" {
			hint = fmt.Sprintf("tfsh flags go before the command; to pass %s to terraform, write it inside -c '...' or after tfsh run --", f)
		}
		return &usageError{fmt.Sprintf("unknown tfsh flag %s: %s", f, hint)}
	}
	if strings.HasPrefix(cmd, "policy") {
		return &usageError{msg + " (see tfsh policy help)"}
	}
	return &usageError{msg + " (see tfsh help)"}
}

func shellCommand(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := newFlagSet("tfsh")
	var c common
	c.register(fs)
	line := fs.String("c", "", "run one command line")
	file := fs.String("f", "", "run a script file")
	keep := fs.Bool("k", false, "keep going after a failing script line")
	showVersion := fs.Bool("version", false, "print tfsh's version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("tfsh", err))
		return exitCannotRun
	}
	if *showVersion {
		fmt.Fprintf(stdout, "tfsh %s\n", tfshVersion())
		return 0
	}
	if fs.NArg() > 0 {
		w := fs.Arg(0)
		fmt.Fprintf(stderr, "tfsh: %q is not a tfsh command: to run terraform's, use tfsh -c '%s' or tfsh run -- %s (see tfsh help)\n",
			w, shell.Quote(fs.Args()), shell.Quote(fs.Args()))
		return exitCannotRun
	}
	isSet := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { isSet[f.Name] = true })
	if isSet["c"] && isSet["f"] {
		fmt.Fprintln(stderr, "tfsh: give either -c or -f, not both")
		return exitCannotRun
	}

	mode := "script"
	interactive := term.IsTerminal(int(stdin.Fd()))
	switch {
	case isSet["c"]:
		mode = "command"
	case isSet["f"]:
		mode = "script"
	case interactive:
		mode = "interactive"
	}
	var script *os.File
	scriptName := "stdin"
	if isSet["f"] {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: cannot read script: %v\n", err)
			return exitCannotRun
		}
		defer f.Close()
		script, scriptName = f, *file
	} else if mode == "script" {
		script = stdin
	}

	// A script read from stdin is not terraform's input: a prompt must see
	// end of file rather than eat the next lines of the script.
	childIn := stdin
	if mode == "script" && !isSet["f"] {
		childIn = nil
	}
	// Questions (confirm, require_reason) need a terminal that is not the
	// script being read.
	var ask *os.File
	if interactive && !(mode == "script" && !isSet["f"]) {
		ask = stdin
	}
	env, err := setup(ctx, c, mode, args, childIn, ask, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	defer env.close()
	sess := env.session

	var out shell.Outcome
	switch mode {
	case "command":
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sess.OnIdleSignal(func(os.Signal) { cancel() })
		out, _ = sess.Execute(ctx, *line)
		out.Status = sessionStatus(out)
	case "interactive":
		if path, err := shell.DefaultHistoryPath(); err == nil {
			if h, err := shell.OpenHistory(path); err == nil {
				sess.SetHistory(h)
			} else {
				fmt.Fprintf(stderr, "tfsh: %v; this session keeps no history\n", err)
			}
		}
		if shell.CanPrompt(stdin, os.Getenv) {
			out = sess.Shell(ctx, stdin)
		} else {
			out = sess.Interactive(ctx, stdin) // TERM=dumb: the plain line prompt
		}
	default:
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sess.OnIdleSignal(func(os.Signal) { cancel() })
		out = sess.Script(ctx, script, scriptName, *keep)
	}
	env.end(out)
	return out.ExitCode
}

func runCommand(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := newFlagSet("run")
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "a JSON summary as the last line of stderr")
	summaryFile := fs.String("summary-file", "", "write the JSON summary to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, "Usage: tfsh run [--terraform PATH] [--audit-db PATH] [--reason TEXT] [--json] [--summary-file FILE] -- <terraform arguments>\n")
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("run", err))
		return exitCannotRun
	}
	tfArgs := fs.Args()
	// flag stops at "--" and drops it; a missing "--" is fine when the first
	// terraform argument is not a flag.
	if len(tfArgs) == 0 {
		fmt.Fprintln(stderr, "tfsh: run needs terraform's arguments after --, e.g. tfsh run -- plan")
		return exitCannotRun
	}
	// tfsh run never asks: it is for pipelines (confirm rules refuse,
	// require_reason takes --reason or TFSH_REASON).
	env, err := setup(ctx, c, "run", append([]string{"run"}, args...), stdin, nil, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	defer env.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env.session.OnIdleSignal(func(os.Signal) { cancel() })
	out := env.session.Run(ctx, tfArgs, "")
	env.end(shell.Outcome{ExitCode: out.ExitCode, Status: sessionStatus(out)})
	if *asJSON || *summaryFile != "" {
		writeSummary(env, out, *asJSON, *summaryFile, stderr)
	}
	return out.ExitCode
}

// writeSummary gives a pipeline the command's summary, read back from the
// audit log: the decision, the exit code, the lock it held and what it
// waited for. It never changes the exit code; a summary that cannot be
// written is said on stderr.
func writeSummary(env *runEnv, out shell.Outcome, toStderr bool, file string, stderr io.Writer) {
	var v any = struct {
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
	}{out.Status, out.ExitCode}
	if out.CommandID != "" {
		s, err := env.db.Summary(context.Background(), out.CommandID)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: could not read the command's record for its summary: %v\n", err)
		} else {
			v = s
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: summary: %v\n", err)
		return
	}
	b = append(b, '\n')
	if toStderr {
		stderr.Write(b)
	}
	if file != "" {
		if err := os.WriteFile(file, b, 0o644); err != nil {
			fmt.Fprintf(stderr, "tfsh: could not write the summary: %v\n", err)
		}
	}
}

// unlockCommand is the guarded force-unlock as a command of its own: the
// same as force-unlock ID in the shell, but with no ID it offers the
// current lock.
func unlockCommand(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := newFlagSet("unlock")
	var c common
	c.register(fs)
	dir := fs.String("dir", "", "working directory")
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, "Usage: tfsh unlock [--yes] [--reason TEXT] [--dir DIR] [LOCK-ID]\n")
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("unlock", err))
		return exitCannotRun
	}
	if len(ids) > 1 {
		fmt.Fprintln(stderr, "tfsh: unlock takes at most one lock ID")
		return exitCannotRun
	}
	env, ctx, ask, err := ownSession(ctx, c, "unlock", args, stdin, stdout, stderr)
	if err != nil {
		return exitCannotRun
	}
	defer env.close()
	argv := []string{"force-unlock"}
	if *dir != "" {
		argv = []string{"-chdir=" + *dir, "force-unlock"}
	}
	id := ""
	if len(ids) == 1 {
		id = ids[0]
	} else if ask == nil {
		// Without someone to read which lock it is, "whatever is locked
		// now" could be a lock taken a moment ago.
		fmt.Fprintln(stderr, "tfsh: without a terminal, give the ID of the lock to remove (tfsh locks shows it)")
		env.end(shell.Outcome{ExitCode: exitCannotRun, Status: "failed"})
		return exitCannotRun
	} else {
		target := env.session.Dir()
		if *dir != "" {
			target = shell.CommandDir(target, argv, "terraform", nil)
		}
		if id, err = env.session.CurrentLockID(ctx, target); err != nil {
			fmt.Fprintf(stderr, "tfsh: cannot read the lock: %v\n", err)
			env.end(shell.Outcome{ExitCode: exitCannotRun, Status: "failed"})
			return exitCannotRun
		}
		if id == "" {
			fmt.Fprintln(stderr, "tfsh: no lock is held on this state: nothing to unlock")
			env.end(shell.Outcome{ExitCode: 1, Status: "failed"})
			return 1
		}
		fmt.Fprintf(stderr, "tfsh: the current lock is %s\n", id)
	}
	out := env.session.Run(ctx, append(argv, id), "")
	env.end(shell.Outcome{ExitCode: out.ExitCode, Status: sessionStatus(out)})
	return out.ExitCode
}

// ownSession starts the session of one of tfsh's own commands (unlock,
// hold): questions go to stdin when it is a terminal (returned as ask, nil
// otherwise), and a signal while no command runs cancels the returned
// context. An error has been printed; the caller exits 4.
func ownSession(ctx context.Context, c common, name string, args []string, stdin *os.File, stdout, stderr io.Writer) (*runEnv, context.Context, *os.File, error) {
	var ask *os.File
	if term.IsTerminal(int(stdin.Fd())) {
		ask = stdin
	}
	env, err := setup(ctx, c, name, append([]string{name}, args...), stdin, ask, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	env.cancel = cancel
	env.session.OnIdleSignal(func(os.Signal) { cancel() })
	return env, ctx, ask, nil
}

// holdCommand places or releases a change-freeze hold.
func holdCommand(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := newFlagSet("hold")
	var c common
	c.register(fs)
	dir := fs.String("dir", "", "working directory")
	dur := fs.Duration("for", 0, "how long the hold lasts (default: until released)")
	release := fs.Bool("release", false, "release the hold")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, "Usage: tfsh hold --reason TEXT [--for DURATION] [--dir DIR]\n       tfsh hold --release [--dir DIR]\n")
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("hold", err))
		return exitCannotRun
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "tfsh: hold takes no arguments (the reason goes in --reason)\n")
		return exitCannotRun
	}
	forSet := false
	fs.Visit(func(f *flag.Flag) { forSet = forSet || f.Name == "for" })
	switch {
	case forSet && *release:
		fmt.Fprintln(stderr, "tfsh: --for is for placing a hold, not --release")
		return exitCannotRun
	case forSet && *dur <= 0:
		fmt.Fprintln(stderr, "tfsh: --for takes a positive duration, like 2h (leave it out for a hold until released)")
		return exitCannotRun
	}
	env, ctx, _, err := ownSession(ctx, c, "hold", args, stdin, stdout, stderr)
	if err != nil {
		return exitCannotRun
	}
	defer env.close()
	target := env.session.Dir()
	if *dir != "" {
		target = shell.CommandDir(target, []string{"-chdir=" + *dir, "plan"}, "terraform", nil)
	}
	out := env.session.Hold(ctx, target, *dur, *release)
	env.end(shell.Outcome{ExitCode: out.ExitCode, Status: sessionStatus(out)})
	return out.ExitCode
}

// sessionStatus is the session_end status of a one-command session.
func sessionStatus(o shell.Outcome) string {
	switch {
	case o.OK():
		return "ok"
	case o.Status == "interrupted":
		return "interrupted"
	}
	return "failed"
}

// runEnv is a running session and what must be released after it.
type runEnv struct {
	session *shell.Session
	db      *audit.DB
	sigs    chan os.Signal
	stderr  io.Writer
	// scratch is a throwaway audit log used when the real one cannot be
	// opened and the policy does not require it; removed at the end.
	scratch string
	cancel  context.CancelFunc // of ownSession's context, if any
	// shipper sends the events to the shared table, if one is set.
	shipper *teamlog.Runner
	sink    sharedSink
}

func (e *runEnv) end(out shell.Outcome) {
	ctx := context.Background()
	if err := e.session.Close(ctx, out.Status, out.ExitCode); err != nil {
		fmt.Fprintf(e.stderr, "tfsh: could not record the end of the session: %v\n", err)
	}
}

func (e *runEnv) close() {
	if e.cancel != nil {
		e.cancel()
	}
	signal.Stop(e.sigs)
	if e.shipper != nil {
		stopShipping(e.shipper, e.sink, e.stderr)
	}
	e.db.Close()
	if e.scratch != "" {
		os.RemoveAll(e.scratch)
	}
}

// setup loads the policy, finds terraform, opens the audit log and starts
// the session. Any failure means nothing runs (exit 4): tfsh never runs a
// command unguarded, and never one it cannot record unless the policy says
// the audit log is not required. ask is the terminal questions go to, nil
// when there is none.
func setup(ctx context.Context, c common, mode string, args []string, stdin, ask *os.File, stdout, stderr io.Writer) (*runEnv, error) {
	// Start-up allocates a few megabytes at once (parsing the policy, the
	// SDKs' set-up) and keeps little of it: collecting in the middle of that
	// costs more than the memory. The collector runs again afterwards.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	getenv := os.Getenv
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the working directory: %w", err)
	}
	// The policy and hooks files are read while terraform is identified and
	// the audit log opened (two cores hide most of the parsing); nothing
	// runs before both are known to be valid.
	policies := &policy.Loader{Base: cwd, Getenv: getenv}
	pch := make(chan loadResult, 1)
	go func() {
		loaded, err := policies.For(cwd)
		if err == nil {
			err = loaded.Err()
		}
		if err == nil {
			_, err = shell.LoadHooks(cwd, cwd, os.Environ())
		}
		pch <- loadResult{loaded, err}
	}()
	dbPath := c.auditDB
	if dbPath == "" {
		if dbPath, err = audit.DefaultPath(); err != nil {
			return nil, firstErr(pch, err)
		}
	}
	// The log is opened while terraform is identified and the session's
	// facts gathered: each is a fraction of a millisecond of system calls.
	type opened struct {
		db  *audit.DB
		err error
	}
	och := make(chan opened, 1)
	go func() {
		db, err := audit.Open(ctx, dbPath)
		och <- opened{db, err}
	}()
	closeLog := func() {
		if o := <-och; o.db != nil {
			o.db.Close()
		}
	}
	path, err := terraform.Find(c.terraform, getenv)
	if err != nil {
		closeLog()
		return nil, firstErr(pch, err)
	}
	bin, err := terraform.Identify(ctx, path, cacheDir())
	if err != nil {
		closeLog()
		return nil, firstErr(pch, err)
	}
	host, _ := os.Hostname()
	info := audit.SessionInfo{
		Mode:             mode,
		User:             userName(),
		Host:             host,
		PID:              os.Getpid(),
		PIDStart:         audit.ProcessStart(os.Getpid()),
		PIDNS:            audit.PIDNamespace(),
		CWD:              cwd,
		TfshVersion:      tfshVersion(),
		Terraform:        bin.Path,
		TerraformName:    bin.Name,
		TerraformVersion: bin.Version,
		Args:             redactOwnArgs(args),
		CI:               ci.Detect(getenv).Map(),
	}
	scratch := ""
	o := <-och
	db, dbErr := o.db, o.err
	pr := <-pch
	if pr.err != nil {
		if db != nil {
			db.Close()
		}
		return nil, pr.err
	}
	sink, err := sinkFrom(pr.loaded.Policy.Settings, getenv)
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, err
	}
	if dbErr != nil {
		settings := pr.loaded.Policy.Settings
		if settings.AuditRequired {
			return nil, fmt.Errorf("%w (the policy requires the audit log: audit_required, %s)", dbErr, settings.Source["audit_required"])
		}
		fmt.Fprintf(stderr, "tfsh: %v\ntfsh: the policy does not require the audit log (audit_required = false, %s): running, but this session is not recorded\n",
			dbErr, settings.Source["audit_required"])
		if scratch, err = os.MkdirTemp("", "tfsh-unrecorded-"); err != nil {
			return nil, err
		}
		if db, err = audit.Open(ctx, filepath.Join(scratch, "audit.db")); err != nil {
			os.RemoveAll(scratch)
			return nil, err
		}
	}
	setupAnchors(ctx, db, scratch == "", getenv, stderr)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	outFile, _ := stdout.(*os.File)
	pty := stdin != nil && outFile != nil && term.IsTerminal(int(stdin.Fd())) && term.IsTerminal(int(outFile.Fd()))
	var askFn func(context.Context, string) (string, error)
	if ask != nil {
		askFn = shell.TerminalAsk(ask, stderr)
	}
	sess, crashed, err := shell.NewSession(ctx, shell.Config{
		Ask:        askFn,
		Binary:     bin,
		Policies:   policies,
		Reason:     c.reason,
		Yes:        c.yes,
		Unrecorded: scratch != "",
		Audit:      db,
		Env:        os.Environ(),
		Dir:        cwd,
		Stdin:      stdin,
		Out:        stdout,
		Err:        stderr,
		PTY:        pty,
		Signals:    sigs,
		Readers:    readers(dbPath, stdin, stdout, stderr),
	}, info)
	if err != nil {
		signal.Stop(sigs)
		db.Close()
		if scratch != "" {
			os.RemoveAll(scratch)
		}
		return nil, err
	}
	// Shipping starts with the session: its first ship sends the backlog
	// (earlier sessions' events, session_start) at once.
	var shipper *teamlog.Runner
	if sink.table != "" && scratch == "" {
		shipper = startShipping(db, sess.Record, sink, stderr)
	}
	for _, cs := range crashed {
		fmt.Fprintf(stderr, "tfsh: session %s (pid %d) ended without closing (tfsh was killed); recorded it as crashed", cs.SessionID, cs.PID)
		switch {
		case cs.LockID != "":
			fmt.Fprintf(stderr, "; its last command held lock %s on state %s, which may be orphaned: run tfsh locks where it ran", cs.LockID, cs.StateKey)
		case cs.StateKey != "":
			fmt.Fprintf(stderr, "; its last command used state %s: check its lock", cs.StateKey)
		}
		fmt.Fprintln(stderr)
	}
	return &runEnv{session: sess, db: db, sigs: sigs, stderr: stderr, scratch: scratch, shipper: shipper, sink: sink}, nil
}

// loadResult is the policy (and hooks) check done while tfsh starts.
type loadResult struct {
	loaded *policy.Loaded
	err    error
}

// firstErr reports an invalid policy before any other start-up problem: it
// is the one tfsh would stop on anyway.
func firstErr(pch <-chan loadResult, err error) error {
	if pr := <-pch; pr.err != nil {
		return pr.err
	}
	return err
}

func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tfsh")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tfsh")
	}
	return ""
}

// readers are explain and replay at the prompt, on the session's own log.
func readers(dbPath string, stdin *os.File, stdout, stderr io.Writer) map[string]func(context.Context, []string) int {
	withDB := func(args []string) []string { return append([]string{"--audit-db", dbPath}, args...) }
	return map[string]func(context.Context, []string) int{
		"explain": func(ctx context.Context, args []string) int { return explainCommand(ctx, withDB(args), stdout, stderr) },
		"replay": func(ctx context.Context, args []string) int {
			return replayCommand(ctx, withDB(args), stdin, stdout, stderr)
		},
	}
}

func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

func tfshVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

// redactOwnArgs redacts tfsh's own argv for session_start: terraform
// arguments (after run --) and the line given to -c, which carries them
// inside one string.
func redactOwnArgs(args []string) []string {
	out := terraform.RedactArgs(args)
	redactLine := func(line string) string {
		toks, err := shell.Tokenize(line)
		if err != nil {
			toks = strings.Fields(line)
		}
		return shell.Quote(terraform.RedactArgs(toks))
	}
	for i := 0; i < len(out); i++ {
		switch a := out[i]; {
		case (a == "-c" || a == "--c") && i+1 < len(out):
			i++
			out[i] = redactLine(out[i])
		case strings.HasPrefix(a, "-c=") || strings.HasPrefix(a, "--c="):
			flag, line, _ := strings.Cut(a, "=")
			out[i] = flag + "=" + redactLine(line)
		}
	}
	return out
}
