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
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
)

const labUsage = `Usage:
  tfsh lab up     [--dir D] [--bucket B] [--table T] [--timeout 60s] [--json]
  tfsh lab status [--dir D] [--json]
  tfsh lab down   [--dir D] [--json]
  tfsh lab serve  [--dir D] [--bucket B] [--table T]

Loopback S3 (gofakes3) and DynamoDB (dynalite, on Node.js) on 127.0.0.1, in memory, for
trying terraform, tofu and tfsh with remote state and real locks, offline.

  up      start the servers in the background, with the bucket (default tfsh-lab) and the
          lock table (default tfsh-locks) ready, and print the endpoints, the environment to
          export and the S3 backend settings for terraform 1.5 and for OpenTofu and
          terraform >= 1.6 (also written to D/*.tfbackend, for init -backend-config=FILE).
          When the lab is up already, it says so and prints the same. Without Node.js >= 20
          and dynalite, S3 still starts and up says what is missing; lock with the S3
          lockfile then (OpenTofu >= 1.10, terraform >= 1.10).
  status  whether the lab runs and answers, its endpoints and uptime
  down    stop the servers (SIGTERM, then wait for them)
  serve   run the servers in the foreground until SIGINT or SIGTERM (what up starts)

  --dir D      the lab's own dir: lab.json (its state), lab.log, env.sh, *.tfbackend
               (default: $TFSH_LAB_DIR, else $XDG_STATE_HOME/tfsh/lab, else ~/.local/state/tfsh/lab)
  --json       the lab's state as JSON

Exit codes: 0 done (up: running; down: stopped, or was not running); 1 status: not running, or
not answering; 4 it could not be done.
`

// labReport is what tfsh lab up, status and down print with --json.
type labReport struct {
	// Status: up: "started" or "already running"; status: "running", "not answering",
	// "not running" or "stale" (its server is gone); down: "stopped", "not running", "stale".
	Status string `json:"status"`
	Dir    string `json:"dir"`
	Note   string `json:"note,omitempty"`
	// UptimeSeconds, S3 and DynamoDB: status only.
	UptimeSeconds float64    `json:"uptime_seconds,omitempty"`
	S3            *labCheck  `json:"s3,omitempty"`
	DynamoDB      *labCheck  `json:"dynamodb,omitempty"`
	Lab           *lab.State `json:"lab"`
}

// labCheck is whether one server answered, with its bucket or table.
type labCheck struct {
	Answering bool   `json:"answering"`
	Error     string `json:"error,omitempty"`
}

func labCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		io.WriteString(stdout, labUsage)
		return 0
	}
	sub := args[0]
	fs := newFlagSet("lab " + sub)
	dirFlag := fs.String("dir", "", "the lab's dir")
	asJSON := fs.Bool("json", false, "JSON output")
	opts := lab.Options{}
	timeout := 60 * time.Second
	readyFD := 0
	switch sub {
	case "up", "serve":
		fs.StringVar(&opts.Bucket, "bucket", lab.DefaultBucket, "the S3 bucket to create")
		fs.StringVar(&opts.Table, "table", lab.DefaultTable, "the DynamoDB lock table to create")
		if sub == "up" {
			fs.DurationVar(&timeout, "timeout", timeout, "how long to wait for the servers")
		} else {
			fs.IntVar(&readyFD, "ready-fd", 0, "report readiness on this file descriptor (tfsh lab up)")
		}
	case "status", "down":
	default:
		fmt.Fprintf(stderr, "tfsh: lab: unknown command %q: use up, status, down or serve (see tfsh lab help)\n", sub)
		return exitCannotRun
	}
	rest, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, labUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("lab", err))
		return exitCannotRun
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "tfsh: lab %s takes no arguments (see tfsh lab help)\n", sub)
		return exitCannotRun
	}
	dir := *dirFlag
	if dir == "" {
		if dir, err = lab.DefaultDir(); err != nil {
			fmt.Fprintf(stderr, "tfsh: lab: %v\n", err)
			return exitCannotRun
		}
	}
	opts.Dir = dir
	l := &labCmd{dir: dir, json: *asJSON, stdout: stdout, stderr: stderr, now: time.Now}
	switch sub {
	case "up":
		return l.up(ctx, opts, timeout)
	case "status":
		return l.status(ctx)
	case "down":
		return l.down(ctx)
	default:
		return l.serve(ctx, opts, readyFD)
	}
}

type labCmd struct {
	dir            string
	json           bool
	stdout, stderr io.Writer
	now            func() time.Time
}

func (l *labCmd) fail(err error) int {
	fmt.Fprintf(l.stderr, "tfsh: lab: %v\n", err)
	return exitCannotRun
}

func (l *labCmd) up(ctx context.Context, opts lab.Options, timeout time.Duration) int {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unlock, err := lab.LockDir(lctx, l.dir)
	if err != nil {
		return l.fail(err)
	}
	defer unlock()
	st, err := lab.ReadState(l.dir)
	if err != nil {
		return l.fail(fmt.Errorf("%w (if no lab server runs, remove it)", err))
	}
	rep := labReport{Status: "started", Dir: l.dir}
	if st != nil && st.Running() {
		rep.Status = "already running"
		if (opts.Bucket != st.Bucket) || (st.Table != "" && opts.Table != st.Table) {
			rep.Note = fmt.Sprintf("it runs with bucket %s and table %s: tfsh lab down first to change them", st.Bucket, tableOrNone(st.Table))
		}
	} else {
		if st != nil {
			if err := lab.RemoveStale(st); err != nil {
				return l.fail(err)
			}
			rep.Note = fmt.Sprintf("replaced the state of a lab server that is gone (pid %d, started %s)", st.PID, st.StartedAt.Format(time.RFC3339))
		}
		exe, err := os.Executable()
		if err != nil {
			return l.fail(fmt.Errorf("find tfsh's own binary to start the server: %w", err))
		}
		argv := []string{exe, "lab", "serve", "--dir", l.dir, "--bucket", opts.Bucket, "--table", opts.Table,
			"--ready-fd", strconv.Itoa(lab.ReadyFD)}
		if st, err = lab.Launch(lctx, l.dir, argv); err != nil {
			return l.fail(err)
		}
	}
	rep.Lab = st
	if l.json {
		return l.printJSON(rep, 0)
	}
	if rep.Note != "" {
		fmt.Fprintf(l.stderr, "tfsh: lab: %s\n", rep.Note)
	}
	printLab(l.stdout, st, rep.Status, l.now())
	return 0
}

func (l *labCmd) status(ctx context.Context) int {
	st, err := lab.ReadState(l.dir)
	if err != nil {
		return l.fail(err)
	}
	rep := labReport{Status: "not running", Dir: l.dir, Lab: st}
	switch {
	case st == nil:
		rep.Note = "no lab in " + l.dir + ": tfsh lab up starts one"
	case !st.Running():
		rep.Status = "stale"
		rep.Note = fmt.Sprintf("its server (pid %d) is gone: tfsh lab up starts a new one", st.PID)
	default:
		rep.Status = "running"
		rep.UptimeSeconds = st.Uptime(l.now()).Seconds()
		s3Err, dynErr := st.Check(ctx)
		rep.S3 = check(s3Err)
		if st.DynamoDBURL != "" {
			rep.DynamoDB = check(dynErr)
		}
		if s3Err != nil || dynErr != nil {
			rep.Status = "not answering"
			rep.Note = "its server runs but does not answer as it should: tfsh lab down, then up"
		}
	}
	code := 1
	if rep.Status == "running" {
		code = 0
	}
	if l.json {
		return l.printJSON(rep, code)
	}
	if st == nil || rep.Status == "stale" {
		fmt.Fprintf(l.stdout, "tfsh lab: not running (%s)\n", rep.Note)
		return code
	}
	printLab(l.stdout, st, rep.Status, l.now())
	for _, c := range []struct {
		name string
		c    *labCheck
	}{{"S3", rep.S3}, {"DynamoDB", rep.DynamoDB}} {
		if c.c != nil && !c.c.Answering {
			fmt.Fprintf(l.stdout, "%s is not answering: %s\n", c.name, c.c.Error)
		}
	}
	if rep.Note != "" {
		fmt.Fprintln(l.stdout, rep.Note)
	}
	return code
}

func check(err error) *labCheck {
	if err != nil {
		return &labCheck{Error: err.Error()}
	}
	return &labCheck{Answering: true}
}

func (l *labCmd) down(ctx context.Context) int {
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	unlock, err := lab.LockDir(lctx, l.dir)
	if err != nil {
		return l.fail(err)
	}
	defer unlock()
	st, err := lab.ReadState(l.dir)
	if err != nil {
		return l.fail(err)
	}
	rep := labReport{Dir: l.dir, Lab: st}
	switch {
	case st == nil:
		rep.Status = "not running"
		rep.Note = "nothing to stop in " + l.dir
	case !st.Running():
		if err := lab.RemoveStale(st); err != nil {
			return l.fail(err)
		}
		rep.Status = "stale"
		rep.Note = fmt.Sprintf("its server (pid %d) was gone already; removed its state", st.PID)
	default:
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := lab.Stop(sctx, st); err != nil {
			return l.fail(err)
		}
		rep.Status = "stopped"
	}
	if l.json {
		return l.printJSON(rep, 0)
	}
	if rep.Status == "stopped" {
		fmt.Fprintf(l.stdout, "tfsh lab: stopped (pid %d, up %s)\n", st.PID, st.Uptime(l.now()).Round(time.Second))
	} else {
		fmt.Fprintf(l.stdout, "tfsh lab: not running (%s)\n", rep.Note)
	}
	return 0
}

// serve runs the lab in the foreground. Started by up, it reports on readyFD and logs to its
// stderr (the lab's log); started by hand, it prints what up prints and runs until Ctrl-C.
func (l *labCmd) serve(ctx context.Context, opts lab.Options, readyFD int) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var ready *os.File
	if readyFD > 0 {
		// dynalite must not inherit it: Launch reads up to the first line, but a child
		// holding the pipe open would keep it from ever seeing the server die.
		syscall.CloseOnExec(readyFD)
		ready = os.NewFile(uintptr(readyFD), "ready")
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(l.stderr, "%s tfsh lab serve[%d]: %s\n", time.Now().UTC().Format(time.RFC3339), os.Getpid(), fmt.Sprintf(format, a...))
	}
	err := lab.Serve(ctx, opts, func(st lab.State) {
		dyn := "DynamoDB not running: " + st.DynamoDBMissing
		if st.DynamoDBURL != "" {
			dyn = fmt.Sprintf("DynamoDB %s table %s (dynalite pid %d)", st.DynamoDBURL, st.Table, st.DynamoDBPID)
		}
		logf("serving S3 %s bucket %s; %s", st.S3URL, st.Bucket, dyn)
		if ready != nil {
			if err := lab.WriteReady(ready, &st, nil); err != nil {
				logf("could not report readiness: %v", err)
			}
			return
		}
		printLab(l.stdout, &st, "started", l.now())
		fmt.Fprintln(l.stdout, "Serving in the foreground: Ctrl-C (or tfsh lab down) stops it.")
	})
	if err != nil {
		if ready != nil {
			_ = lab.WriteReady(ready, nil, err)
		}
		logf("%v", err)
		fmt.Fprintf(l.stderr, "tfsh: lab serve: %v\n", err)
		return exitCannotRun
	}
	logf("stopped")
	return 0
}

func (l *labCmd) printJSON(rep labReport, code int) int {
	enc := json.NewEncoder(l.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return l.fail(err)
	}
	return code
}

func tableOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// printLab prints a running lab: endpoints, environment, backend settings.
func printLab(w io.Writer, st *lab.State, status string, now time.Time) {
	fmt.Fprintf(w, "tfsh lab: %s (pid %d, up %s since %s); its files are in %s\n\n", status, st.PID,
		st.Uptime(now).Round(time.Second), st.StartedAt.Local().Format("15:04:05"), st.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  S3\t%s\tbucket %s\t(gofakes3 in the server, pid %d; in memory)\n", st.S3URL, st.Bucket, st.PID)
	if st.DynamoDBURL != "" {
		fmt.Fprintf(tw, "  DynamoDB\t%s\ttable %s\t(dynalite, pid %d; in memory)\n", st.DynamoDBURL, st.Table, st.DynamoDBPID)
	}
	fmt.Fprintf(tw, "  state key\t%s\t\t(another: -backend-config=key=OTHER at init)\n", st.Key)
	fmt.Fprintf(tw, "  log\t%s\n", st.Log)
	tw.Flush()
	if st.DynamoDBMissing != "" {
		fmt.Fprintf(w, "  DynamoDB  not running: %s\n", st.DynamoDBMissing)
		fmt.Fprintln(w, "            Without it, lock with the S3 lockfile (OpenTofu >= 1.10, terraform >= 1.10: s3-lockfile below);")
		fmt.Fprintln(w, "            terraform 1.5 cannot lock state on S3 without DynamoDB.")
	}

	fmt.Fprintf(w, "\nEnvironment (or: . %s):\n", st.EnvFile)
	for _, v := range st.Env {
		fmt.Fprintf(w, "  export %s=%s\n", v.Name, v.Value)
	}
	fmt.Fprintf(w, "  unset %s\n", strings.Join(st.Unset, " "))

	fmt.Fprintln(w, "\nBackend settings, for a configuration with an empty backend \"s3\" {} block (examples/lab/s3-dynamodb):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, b := range st.Backends {
		bin := "tofu"
		if strings.HasPrefix(b.Name, "terraform") {
			bin = "terraform"
		}
		fmt.Fprintf(tw, "  %s\tlock in %s\t%s init -backend-config=%s\n", b.For, b.Locking, bin, b.File)
	}
	tw.Flush()
	for _, b := range st.Backends {
		fmt.Fprintf(w, "\n--- %s\n%s", b.File, b.Config)
	}
	fmt.Fprintln(w, "\nStop it with: tfsh lab down")
}
