package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/shell"
)

const replayUsage = `Usage: tfsh replay [flags] SESSION|COMMAND|last

Plays a recorded session (or one command of it) back with its original
timing: the output as it was shown, a prompt line for each command, and
the lock events, policy decisions and results as annotations.

Flags:
  --speed N        play N times as fast (default 1)
  --max-wait D     wait at most D between two things shown (default 2s; 0: no limit)
  --from OFFSET    show everything before OFFSET at once, play from there (1m30s, 90, +1m02.345s)
  --no-timing      write everything at once (for files and diffs)
  --cast FILE      write an asciicast v2 recording to FILE (- for stdout) instead of playing
  --json           one JSON object per item (NDJSON), at once
  --audit-db PATH  audit log

Keys, on a terminal: space pauses and resumes, + and - double and halve the
speed, Enter skips the current wait, q stops. Ctrl-C stops too (exit 130).
`

// Defaults of replay's flags.
const (
	defaultMaxWait = 2 * time.Second
	minSpeed       = 1.0 / 64
	maxSpeed       = 64.0
)

// errReplayStopped is q pressed during a replay.
var errReplayStopped = errors.New("replay stopped")

// replayCommand is `tfsh replay`, and the entry point for the shell's
// replay: it plays a recorded session or command to stdout, with the
// keys read from stdin when both are terminals. It returns the exit code:
// 0 when the replay ran to its end or q stopped it, 130 when a signal
// (Ctrl-C) stopped it, 4 when it could not run.
func replayCommand(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	return runReplay(ctx, args, replayIO{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv})
}

type replayIO struct {
	stdin          *os.File // may be nil
	stdout, stderr io.Writer
	getenv         func(string) string
}

type replayFlags struct {
	dbPath   string
	speed    float64
	maxWait  time.Duration
	from     time.Duration
	noTiming bool
	cast     string
	asJSON   bool
	ref      string
}

func parseReplayFlags(args []string) (replayFlags, error) {
	var f replayFlags
	fs := newFlagSet("replay")
	fs.StringVar(&f.dbPath, "audit-db", "", "audit log path")
	fs.Float64Var(&f.speed, "speed", 1, "speed")
	fs.DurationVar(&f.maxWait, "max-wait", defaultMaxWait, "longest wait")
	from := fs.String("from", "", "start offset")
	fs.BoolVar(&f.noTiming, "no-timing", false, "no timing")
	fs.StringVar(&f.cast, "cast", "", "asciicast file")
	fs.BoolVar(&f.asJSON, "json", false, "NDJSON")
	refs, err := parseInterspersed(fs, args)
	if err != nil {
		return f, flagError("replay", err)
	}
	switch {
	case len(refs) > 1:
		return f, &usageError{"replay takes one session or command ID (or last)"}
	case math.IsNaN(f.speed) || f.speed < minSpeed || f.speed > maxSpeed:
		return f, &usageError{fmt.Sprintf("--speed %v: give a number from %v to %v", f.speed, minSpeed, maxSpeed)}
	case f.maxWait < 0:
		return f, &usageError{"--max-wait takes a duration of 0 (no limit) or more, like 2s"}
	case f.cast != "" && f.asJSON:
		return f, &usageError{"give --cast or --json, not both"}
	case f.cast != "" && f.noTiming:
		return f, &usageError{"--no-timing is for playing; a --cast recording keeps the timing (use --max-wait to shorten the waits)"}
	}
	if len(refs) == 1 {
		f.ref = refs[0]
	}
	if *from != "" {
		if f.from, err = parseOffset(*from); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseOffset reads --from: a duration (1m30s, as annotations show
// offsets: +1m02.345s) or a number of seconds.
func parseOffset(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, &usageError{fmt.Sprintf("--from %q: give an offset such as 1m30s or 90 (seconds)", s)}
		}
		if secs > float64(math.MaxInt64/int64(time.Second)) {
			return 0, &usageError{fmt.Sprintf("--from %q: longer than any recording can be", s)}
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, &usageError{fmt.Sprintf("--from %q: the offset cannot be negative", s)}
	}
	return d, nil
}

func runReplay(ctx context.Context, args []string, rio replayIO) int {
	f, err := parseReplayFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(rio.stdout, replayUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(rio.stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	db, err := openAuditForReading(ctx, f.dbPath)
	if err != nil {
		fmt.Fprintf(rio.stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	defer db.Close()
	target, err := db.ResolveReplay(ctx, f.ref)
	if err != nil {
		if errors.Is(err, audit.ErrNotFound) {
			err = fmt.Errorf("%w (tfsh audit sessions lists the sessions; tfsh audit show SESSION their commands)", err)
		}
		fmt.Fprintf(rio.stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}

	// A signal stops the replay cleanly (the terminal restored) rather
	// than killing tfsh.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signalled := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			close(signalled)
			cancel()
		case <-ctx.Done():
		}
	}()

	outFile, _ := rio.stdout.(*os.File)
	outTTY := outFile != nil && term.IsTerminal(int(outFile.Fd()))
	noColor := rio.getenv("NO_COLOR") != ""
	var run func(context.Context, *audit.DB, audit.ReplayTarget) (time.Duration, error)
	switch {
	case f.asJSON:
		run = func(ctx context.Context, db *audit.DB, t audit.ReplayTarget) (time.Duration, error) {
			return replayJSON(ctx, db, t, rio.stdout)
		}
	case f.cast != "":
		run = func(ctx context.Context, db *audit.DB, t audit.ReplayTarget) (time.Duration, error) {
			return replayCast(ctx, db, t, f, !noColor, rio.stdout)
		}
	default:
		run = func(ctx context.Context, db *audit.DB, t audit.ReplayTarget) (time.Duration, error) {
			return replayPlay(ctx, db, t, f, rio, outTTY && !noColor)
		}
	}
	at, err := run(ctx, db, target)
	stopped := errors.Is(err, errReplayStopped)
	interrupted := false
	select {
	case <-signalled:
		interrupted = true
	default:
		// The shell cancels its builtins' context on a signal of its own.
		interrupted = errors.Is(err, context.Canceled) && ctx.Err() != nil
	}
	if interrupted {
		stopped, err = true, nil
	}
	if stopped {
		if outTTY {
			io.WriteString(rio.stdout, "\x1b[0m\r\n") // the recording may have stopped inside a colour
		}
		fmt.Fprintf(rio.stderr, "tfsh: replay stopped at %s; tfsh replay --from %s %s goes on from there\n",
			fmtOffset(at), strings.TrimPrefix(fmtOffset(at), "+"), replayRef(target))
		if errors.Is(err, errReplayStopped) {
			return 0
		}
		return shell.ExitInterrupted
	}
	if err != nil {
		fmt.Fprintf(rio.stderr, "tfsh: replay: %v\n", err)
		return exitCannotRun
	}
	if f.from > at && !f.asJSON {
		fmt.Fprintf(rio.stderr, "tfsh: --from %s is past the end of the recording (%s): all of it was shown at once\n",
			strings.TrimPrefix(fmtOffset(f.from), "+"), fmtOffset(at))
	}
	return 0
}

func replayRef(t audit.ReplayTarget) string {
	if t.CommandID != "" {
		return t.CommandID
	}
	return t.SessionID
}

// replayPlay plays to the output with timing (unless --no-timing), with
// keys when stdin and stdout are terminals. It returns the offset reached.
func replayPlay(ctx context.Context, db *audit.DB, t audit.ReplayTarget, f replayFlags, rio replayIO, color bool) (time.Duration, error) {
	out := bufio.NewWriterSize(rio.stdout, 64<<10)
	p := &player{out: out, timed: !f.noTiming, speed: f.speed, tl: timeline{from: f.from, maxWait: f.maxWait},
		after: time.After, now: time.Now}
	outFile, _ := rio.stdout.(*os.File)
	if p.timed && rio.stdin != nil && outFile != nil && term.IsTerminal(int(rio.stdin.Fd())) && term.IsTerminal(int(outFile.Fd())) {
		fd := int(rio.stdin.Fd())
		restore, err := cbreak(fd)
		if err == nil {
			defer restore()
			keys, stop, err := readKeys(fd)
			if err == nil {
				defer stop()
				p.keys = keys
			}
		}
	}
	r := &replayRenderer{color: color}
	err := db.Replay(ctx, t, func(it audit.ReplayItem) error {
		return r.render(it, func(pc piece) error { return p.play(ctx, pc) })
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write the replay: %w", ferr)
	}
	return p.at, err
}

// piece is one thing a replay shows at an offset: recorded output (its
// stream), or tfsh's own text (stream 0): the session line, a command's
// prompt line, an annotation.
type piece struct {
	offset time.Duration
	stream audit.Stream
	data   []byte
	// marker labels a lock annotation: an asciicast marker.
	marker string
	// command starts a command: streams start afresh.
	command bool
}

// replayRenderer turns replay items into what is shown: recorded output
// as it was written (it is terminal output), tfsh's own lines on a line
// of their own.
type replayRenderer struct {
	color   bool
	self    string // user@host of the session
	midLine bool   // what was shown last did not end a line
	buf     []byte
}

// Styles of tfsh's own lines on a terminal.
const (
	styleNote   = "\x1b[2;36m" // annotations: dim cyan
	stylePrompt = "\x1b[1m"    // command lines: bold
	styleReset  = "\x1b[0m"
)

func (r *replayRenderer) render(it audit.ReplayItem, emit func(piece) error) error {
	switch it.Kind {
	case audit.ReplaySession:
		r.self = it.Session.Info.User + "@" + it.Session.Info.Host
		return r.line(it.Offset, styleNote, decorate(annotate(it.Offset, describeReplayStart(it.Session))), "", false, emit)
	case audit.ReplayCommand:
		return r.line(it.Offset, stylePrompt, promptLine(it.Command), "", true, emit)
	case audit.ReplayOutput:
		if len(it.Frame.Data) == 0 {
			return nil
		}
		r.midLine = it.Frame.Data[len(it.Frame.Data)-1] != '\n'
		return emit(piece{offset: it.Offset, stream: it.Frame.Stream, data: it.Frame.Data})
	case audit.ReplayEvent:
		body, marker, show := describeReplayEvent(it.Event, r.self)
		if !show {
			return nil
		}
		text := annotate(it.Offset, body)
		label := ""
		if marker {
			label = strings.TrimSpace(text)
		}
		return r.line(it.Offset, styleNote, decorate(text), label, false, emit)
	}
	return nil
}

// line shows one of tfsh's own lines, starting a line first if the output
// left one open.
func (r *replayRenderer) line(off time.Duration, style, text, marker string, command bool, emit func(piece) error) error {
	b := r.buf[:0]
	if r.midLine {
		b = append(b, '\n')
	}
	if r.color {
		b = append(b, style...)
	}
	b = append(b, text...)
	if r.color {
		b = append(b, styleReset...)
	}
	b = append(b, '\n')
	r.buf = b
	r.midLine = false
	return emit(piece{offset: off, data: b, marker: marker, command: command})
}

// decorate sets an annotation apart from the recorded output around it.
func decorate(text string) string { return "── tfsh " + text + " ──" }

// annotate puts the offset before an annotation's text.
func annotate(off time.Duration, body string) string {
	return fmtOffset(off) + " " + body
}

// fmtOffset shows an offset to the millisecond, in a form --from reads:
// +12.345s, +1m02.345s, +1h02m03.456s.
func fmtOffset(d time.Duration) string {
	d = d.Round(time.Millisecond)
	h, m := d/time.Hour, d%time.Hour/time.Minute
	s := float64(d%time.Minute) / float64(time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("+%dh%02dm%06.3fs", h, m, s)
	case m > 0:
		return fmt.Sprintf("+%dm%06.3fs", m, s)
	}
	return fmt.Sprintf("+%.3fs", s)
}

// utcClock shows a time of day in UTC, so that a replay reads the same
// everywhere (its golden files too).
func utcClock(t time.Time) string { return t.UTC().Format("15:04:05") + " UTC" }

func describeReplayStart(h *audit.ReplayHeader) string {
	i := h.Info
	line := fmt.Sprintf("session %s %s@%s, %s, in %s", h.ID, esc(i.User), esc(i.Host), esc(i.Mode), esc(i.CWD))
	if i.TerraformName != "" {
		line += fmt.Sprintf(", %s %s", esc(i.TerraformName), esc(i.TerraformVersion))
	}
	if h.Command != nil {
		line += fmt.Sprintf("; command %d of %d (%s)", h.Command.N, h.Of, h.Command.ID)
	} else {
		line += "; " + fmt.Sprintf("%d %s", h.Commands, plural(h.Commands, "command", "commands"))
	}
	return line + ", from " + h.From.UTC().Format("2006-01-02 15:04:05 UTC")
}

// promptLine is a command as the shell's prompt showed it: tfsh, the
// directory, workspace and backend, then the line typed.
func promptLine(c *audit.ReplayedCommand) string {
	typed := c.Info.Line
	if typed == "" {
		typed = shell.Quote(c.Info.Typed)
	}
	where := filepath.Base(c.Info.Workdir)
	if c.Info.Workdir == "" {
		where = "?"
	}
	p := "tfsh " + where
	if c.Info.Workspace != "" || c.Info.Backend != "" {
		p += fmt.Sprintf(" [%s · %s]", c.Info.Workspace, c.Info.Backend)
	}
	return esc(p + "> " + typed)
}

// isLockKind says which events a cast marks: lock transitions, force-unlocks,
// holds and the integrity checks after them.
func isLockKind(kind string) bool {
	switch kind {
	case shell.KindForceUnlock, shell.KindIntegrityCheck, shell.KindHoldPlaced, shell.KindHoldReleased:
		return true
	}
	return strings.HasPrefix(kind, "lock_")
}

// describeReplayEvent is an event's annotation: its kind and what a
// reader needs of it, in one line with control characters escaped. It
// says whether the event is shown at all (a plain allow, how often the
// lock was read: not) and whether it is a lock event (a cast marker).
func describeReplayEvent(ev audit.Event, self string) (text string, marker, show bool) {
	body, show := replayEventBody(ev, self)
	return esc(ev.Kind) + body, isLockKind(ev.Kind), show
}

func replayEventBody(ev audit.Event, self string) (string, bool) {
	switch ev.Kind {
	case lock.KindObserved:
		return "", false
	case audit.KindPolicyDecision:
		var d audit.Decision
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return " " + esc(string(ev.Data)), true
		}
		if d.Action == "allow" && d.Rule == "" && len(d.Added) == 0 && d.Reason == "" && d.Confirmed == nil && d.Refused == "" {
			return "", false
		}
		line := " " + esc(d.Action)
		if d.Rule != "" {
			line += fmt.Sprintf(" by rule %q (%s)", d.Rule, esc(d.Source))
		}
		if d.Message != "" {
			line += ": " + esc(d.Message)
		}
		if len(d.Added) > 0 {
			line += "; added " + esc(shell.Quote(d.Added))
		}
		if d.Reason != "" {
			line += fmt.Sprintf("; reason %q", d.Reason)
		}
		if d.Confirmed != nil {
			line += "; confirmed " + map[bool]string{true: "yes", false: "no"}[*d.Confirmed]
		}
		if d.Refused != "" {
			line += "; refused: " + esc(d.Refused)
		}
		return line, true
	case audit.KindCommandEnd:
		var e audit.CommandEnd
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return " " + esc(string(ev.Data)), true
		}
		line := " " + esc(describeCommandEnd(e))
		if e.OutputWithheld != "" {
			line += fmt.Sprintf("; output withheld: %s (%d bytes)", esc(e.OutputWithheld), e.OutputBytes)
		}
		return line, true
	case audit.KindSessionEnd:
		var e struct {
			Status     string `json:"status"`
			ExitCode   int    `json:"exit_code"`
			DurationMS int64  `json:"duration_ms"`
			Commands   int    `json:"commands"`
			DetectedBy string `json:"detected_by"`
		}
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return " " + esc(string(ev.Data)), true
		}
		line := fmt.Sprintf(" %s, exit %d, %s", esc(e.Status), e.ExitCode, fmt.Sprintf("%d %s", e.Commands, plural(e.Commands, "command", "commands")))
		if e.DetectedBy != "" {
			line += ", noticed by session " + esc(e.DetectedBy)
		}
		return line, true
	case shell.KindHookRun:
		return " " + esc(describeHookRun(ev)), true
	case shell.KindForceUnlock, shell.KindHoldPlaced, shell.KindHoldReleased:
		var r struct {
			Who     string     `json:"who"`
			Reason  string     `json:"reason"`
			Until   *time.Time `json:"until"`
			Info    *lock.Info `json:"info"`
			Expired bool       `json:"expired"`
			Stale   bool       `json:"stale"`
		}
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return " " + esc(string(ev.Data)), true
		}
		line := ""
		if ev.LockID != "" {
			line += " " + esc(ev.LockID)
		}
		if r.Who != "" {
			line += " by " + esc(r.Who)
		}
		if i := r.Info; ev.Kind == shell.KindForceUnlock && i != nil && i.Who != "" {
			line += fmt.Sprintf(", held by %s (%s", esc(i.Who), esc(lock.OperationName(i.Operation)))
			if !i.Created.IsZero() {
				line += " since " + utcClock(i.Created)
			}
			line += ")"
		}
		if r.Stale {
			line += ", a stale lock record"
		}
		if r.Until != nil {
			line += " until " + r.Until.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		if r.Expired {
			line += ", expired"
		}
		if r.Reason != "" {
			line += fmt.Sprintf("; reason %q", r.Reason)
		}
		return line, true
	case shell.KindIntegrityCheck:
		var r struct {
			Verdict     string `json:"verdict"`
			RefreshExit int    `json:"refresh_exit"`
			PlanExit    int    `json:"plan_exit"`
		}
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return " " + esc(string(ev.Data)), true
		}
		line := ""
		if ev.LockID != "" {
			line += " " + esc(ev.LockID)
		}
		return line + fmt.Sprintf(": %s (refresh-only plan exit %d, plan exit %d)", esc(r.Verdict), r.RefreshExit, r.PlanExit), true
	}
	if strings.HasPrefix(ev.Kind, "lock_") {
		return esc(lockEventDetail(ev, utcClock, self)), true
	}
	return "", true
}

// timeline maps recorded offsets to waits: nothing before --from, then
// the recorded gaps, each at most --max-wait (0: no limit).
type timeline struct {
	from, maxWait time.Duration
	last          time.Duration
}

// advance returns how long (in recorded time) to wait before showing what
// was recorded at off.
func (t *timeline) advance(off time.Duration) time.Duration {
	prev := max(t.last, t.from)
	t.last = max(t.last, off)
	gap := off - prev
	if gap <= 0 {
		return 0
	}
	if t.maxWait > 0 && gap > t.maxWait {
		gap = t.maxWait
	}
	return gap
}

// minSleep is the shortest wait the player sleeps: shorter gaps add up
// until they reach it, so a burst of frames costs no timer each.
const minSleep = 2 * time.Millisecond

// player writes pieces with their timing and obeys keys. Its clock
// (after, now) and keys are injected so that the timing is tested without
// a terminal or real waits.
type player struct {
	out   *bufio.Writer
	timed bool
	tl    timeline
	speed float64
	keys  <-chan byte // nil: no keys
	after func(time.Duration) <-chan time.Time
	now   func() time.Time

	paused  bool
	pending time.Duration // recorded time not yet waited (below minSleep)
	at      time.Duration // offset of the last piece shown
}

func (p *player) play(ctx context.Context, pc piece) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if pc.stream == audit.Resize {
		return nil // the terminal replayed on keeps its size
	}
	gap := p.tl.advance(pc.offset)
	if p.timed {
		p.pending += gap
		if err := p.poll(ctx); err != nil {
			return err
		}
		if p.wall(p.pending) >= minSleep {
			if err := p.out.Flush(); err != nil {
				return fmt.Errorf("write the replay: %w", err)
			}
			wait := p.pending
			p.pending = 0
			if err := p.wait(ctx, wait); err != nil {
				return err
			}
		}
	}
	p.at = pc.offset
	if _, err := p.out.Write(pc.data); err != nil {
		return fmt.Errorf("write the replay: %w", err)
	}
	return nil
}

// wall is how long recorded time d takes at the current speed.
func (p *player) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) / p.speed)
}

// poll handles the keys pressed since the last piece, and waits while
// paused.
func (p *player) poll(ctx context.Context) error {
	for {
		if p.paused {
			if err := p.out.Flush(); err != nil {
				return fmt.Errorf("write the replay: %w", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case k, ok := <-p.keys:
				if err := p.key(k, ok, nil); err != nil {
					return err
				}
			}
			continue
		}
		select {
		case k, ok := <-p.keys:
			if err := p.key(k, ok, nil); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// wait waits recorded time d at the current speed, obeying keys: a pause
// keeps what is left of the wait, a speed change rescales it, Enter ends
// it.
func (p *player) wait(ctx context.Context, d time.Duration) error {
	left := p.wall(d)
	for left > 0 || p.paused {
		if p.paused {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case k, ok := <-p.keys:
				if err := p.key(k, ok, &left); err != nil {
					return err
				}
			}
			continue
		}
		began := p.now()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.after(left):
			return nil
		case k, ok := <-p.keys:
			left -= p.now().Sub(began)
			if err := p.key(k, ok, &left); err != nil {
				return err
			}
		}
	}
	return nil
}

// key obeys one key; left is what is left of the current wait, if any.
func (p *player) key(k byte, ok bool, left *time.Duration) error {
	if !ok { // no more keys (stdin closed)
		p.keys, p.paused = nil, false
		return nil
	}
	switch k {
	case ' ':
		p.paused = !p.paused
	case '+', '=':
		p.setSpeed(p.speed*2, left)
	case '-', '_':
		p.setSpeed(p.speed/2, left)
	case '\r', '\n':
		if left != nil {
			*left = 0
		}
	case 'q', 'Q', 3: // 3: Ctrl-C, should the terminal pass it as a key
		return errReplayStopped
	}
	return nil
}

func (p *player) setSpeed(s float64, left *time.Duration) {
	s = min(max(s, minSpeed), maxSpeed)
	if left != nil {
		*left = time.Duration(float64(*left) * p.speed / s)
	}
	p.speed = s
}

// replayCast writes the replay as an asciicast v2 recording; nothing is
// played. Waits are those a replay at --speed with --max-wait and --from
// would make. It returns the offset reached.
func replayCast(ctx context.Context, db *audit.DB, t audit.ReplayTarget, f replayFlags, color bool, stdout io.Writer) (reached time.Duration, err error) {
	var w io.Writer = stdout
	if f.cast != "-" {
		// Written beside and renamed into place when whole: a replay
		// stopped half way leaves no truncated recording.
		file, ferr := createAtomic(f.cast)
		if ferr != nil {
			return 0, ferr
		}
		defer func() {
			if err == nil {
				err = file.commit()
			}
			file.abort()
		}()
		w = file
	}
	var cw *audit.CastWriter
	tl := timeline{from: f.from, maxWait: f.maxWait}
	var at time.Duration
	r := &replayRenderer{color: color}
	err = db.Replay(ctx, t, func(it audit.ReplayItem) error {
		if cw == nil {
			var err error
			if cw, err = audit.NewCastWriter(w, castHeader(it.Session)); err != nil {
				return err
			}
		}
		return r.render(it, func(pc piece) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			reached = pc.offset
			at += time.Duration(float64(tl.advance(pc.offset)) / f.speed)
			if pc.command {
				if err := cw.EndStreams(at); err != nil {
					return err
				}
			}
			if pc.marker != "" {
				if err := cw.Marker(at, pc.marker); err != nil {
					return err
				}
			}
			if pc.stream == audit.Resize {
				return cw.Resize(at, string(pc.data))
			}
			return cw.Output(at, pc.stream, pc.data)
		})
	})
	if cw != nil {
		if cerr := cw.Close(); err == nil {
			err = cerr
		}
	}
	return reached, err
}

// Size of the terminal a recording is drawn on when no command recorded
// one (they ran on pipes, or before tfsh recorded sizes).
const (
	defaultCastWidth  = 80
	defaultCastHeight = 24
)

func castHeader(h *audit.ReplayHeader) audit.CastHeader {
	c := audit.CastHeader{Width: defaultCastWidth, Height: defaultCastHeight, Timestamp: h.From.Unix()}
	if h.Term != nil {
		c.Width, c.Height = h.Term.Cols, h.Term.Rows
		if h.Term.Type != "" {
			c.Env = map[string]string{"TERM": h.Term.Type}
		}
	}
	i := h.Info
	c.Command = "tfsh"
	if len(i.Args) > 0 {
		c.Command += " " + shell.Quote(i.Args)
	}
	c.Title = fmt.Sprintf("tfsh session %s %s@%s", h.ID, i.User, i.Host)
	if h.Command != nil {
		line := h.Command.Info.Line
		if line == "" {
			line = shell.Quote(h.Command.Info.Typed)
		}
		c.Command = line
		c.Title += fmt.Sprintf(", command %d of %d", h.Command.N, h.Of)
	}
	return c
}

// replayedJSON is one line of replay --json.
type replayedJSON struct {
	OffsetMS   float64         `json:"offset_ms"`
	At         time.Time       `json:"at"`
	Type       string          `json:"type"` // session, command, output, event
	SessionID  string          `json:"session_id,omitempty"`
	CommandID  string          `json:"command_id,omitempty"`
	Line       string          `json:"line,omitempty"` // a command as typed
	Stream     string          `json:"stream,omitempty"`
	Text       string          `json:"text,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	LockID     string          `json:"lock_id,omitempty"`
	Annotation string          `json:"annotation,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// replayJSON writes each item as one JSON object per line, at once. It
// returns the offset reached.
func replayJSON(ctx context.Context, db *audit.DB, t audit.ReplayTarget, stdout io.Writer) (time.Duration, error) {
	var reached time.Duration
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	self := ""
	err := db.Replay(ctx, t, func(it audit.ReplayItem) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		reached = it.Offset
		j := replayedJSON{OffsetMS: float64(it.Offset) / 1e6, At: it.At, Type: it.Kind.String()}
		if it.Command != nil {
			j.CommandID = it.Command.ID
		}
		switch it.Kind {
		case audit.ReplaySession:
			self = it.Session.Info.User + "@" + it.Session.Info.Host
			j.SessionID = it.Session.ID
			j.Annotation = describeReplayStart(it.Session)
		case audit.ReplayCommand:
			j.Line = it.Command.Info.Line
			if j.Line == "" {
				j.Line = shell.Quote(it.Command.Info.Typed)
			}
		case audit.ReplayOutput:
			j.Stream, j.Text = it.Frame.Stream.String(), string(it.Frame.Data)
		case audit.ReplayEvent:
			j.Kind, j.LockID, j.Data = it.Event.Kind, it.Event.LockID, it.Event.Data
			if text, _, show := describeReplayEvent(it.Event, self); show {
				j.Annotation = text
			}
		}
		return enc.Encode(j)
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	return reached, err
}

// cbreak turns off line editing and echo on the terminal fd, so that keys
// arrive one by one and do not show, and returns what restores it.
// Output processing stays on (recorded output from pipes has bare LFs)
// and so do signals (Ctrl-C stops the replay through SIGINT).
func cbreak(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal settings: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, fmt.Errorf("set terminal: %w", err)
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// readKeys sends the bytes read from fd to the returned channel, closed
// at end of file. stop ends the reading and returns only once nothing
// reads fd any more, so that whatever reads the terminal next (the
// shell's prompt) gets every key typed after the replay.
func readKeys(fd int) (<-chan byte, func(), error) {
	wakeR, wakeW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("read keys: %w", err)
	}
	keys := make(chan byte, 16)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(keys)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wakeR.Fd()), Events: unix.POLLIN}}
		buf := make([]byte, 16)
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
			if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) == 0 {
				continue
			}
			n, err := unix.Read(fd, buf)
			for _, b := range buf[:max(n, 0)] {
				select {
				case keys <- b:
				case <-quit:
					return
				}
			}
			if n == 0 && err == nil || err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				return
			}
		}
	}()
	stop := func() {
		close(quit)
		wakeW.Write([]byte{0})
		<-done
		wakeR.Close()
		wakeW.Close()
	}
	return keys, stop, nil
}
