package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/teamlog"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/shell"
)

const auditUsage = `Usage:
  tfsh audit sessions [--json] [--limit N] [FILTERS]
  tfsh audit show [--json] [--no-output] SESSION|last
  tfsh audit verify [--json] [--anchors] [--pubkey KEY]
  tfsh audit pull --from dynamodb://TABLE [--since T] [--until T] [--state KEY] [--session ID] [--json]
  tfsh audit push [--to dynamodb://TABLE]
  tfsh audit init-table [--table NAME] [--ttl-days N]

audit sessions lists the newest sessions that match every filter given:
  --user USER        started by USER (exactly)
  --host HOST        started on HOST (exactly)
  --state KEY        with a command on this state: its key as recorded (bucket/key for S3,
                     the state file for local state) or any part of it that names one state
  --command REGEX    with a command whose words as typed ("apply -auto-approve") or whose
                     subcommand ("state mv") match REGEX (Go syntax; ^apply, -target=)
  --kind KIND        with an event of this kind (lock_contention, lock_wait, lock_orphaned,
                     force_unlock, integrity_check, hold_placed, ...); repeat it or give a
                     comma-separated list for any of several
  --since TIME       started at or after TIME: RFC3339 (2026-11-25T14:00:00Z), a date or
                     date and time in local time (2026-11-25, 2026-11-25T14:00), or how long
                     ago (2h, 90m ago, 3d, 1w)
  --until TIME       started before TIME (same forms)
  --limit N          the newest N that match (default 50; 0 for all), listed oldest first
  --json             JSON instead of the table

audit verify recomputes the hash chain and every command's output digest and reports
the first broken place and its kind (edited, deleted, inserted, reordered, truncated,
rewritten, output changed), then every problem found. It exits 0 when the log is intact,
1 when it is not, 4 when it cannot be read.
  --anchors          also check the log against its anchors (AUDIT_DB.anchors, and the stores
                     $TFSH_ANCHOR_S3 and $TFSH_ANCHOR_DYNAMODB name): catches a truncated
                     tail and a whole rewrite with a recomputed chain (default: on when there
                     are any; --anchors=false to skip them)
  --pubkey KEY       ed25519 public key (base64) the anchors must be signed with (default
                     $TFSH_ANCHOR_PUBKEY); unsigned or badly signed anchors are problems
  --json             JSON instead of text
  Events pulled from other logs are checked per log (origin): their own chain, from
  the first one held here.

Sharing the log (docs/audit.md "Sharing the audit log"): with audit { dynamodb_table = "T" }
in .tfsh/config.hcl or a policy file (or TFSH_AUDIT_DYNAMODB_TABLE=T), every tfsh also ships
its events to the DynamoDB table T in the background; the endpoint, region and credentials
are the AWS SDK's own (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, ...).

audit pull merges everyone's events from the table into the local log (each event once, by
its ID), so that explain, report and replay see the team's sessions, then verifies them.
It exits 1 if a pulled chain does not verify.
  --from dynamodb://TABLE   the table (required)
  --since T, --until T      only events in this window (same forms as audit sessions)
  --state KEY               the whole sessions that touched this state key
  --session ID              one session
  --json                    JSON: per origin added and skipped, and the verify result

audit push ships this log's own events the table does not have yet, now, and reports the
counts (--to dynamodb://TABLE, default: the configured table).

audit init-table creates the table (on-demand billing, indexes by_day, by_state and
by_session) and waits until it is active; an existing table with the right keys is fine.
  --table NAME              default tfsh-audit
  --ttl-days N              turn on expiry by the attribute expires (writers set
                            audit { ttl_days = N } to stamp it)
`

func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		io.WriteString(stderr, auditUsage)
		return exitCannotRun
	}
	var err error
	switch args[0] {
	case "sessions":
		err = auditSessions(ctx, args[1:], stdout)
	case "show":
		err = auditShow(ctx, args[1:], stdout)
	case "verify":
		err = auditVerify(ctx, args[1:], stdout)
		if errors.Is(err, errLogBroken) {
			return exitLogBroken
		}
	case "pull":
		err = auditPull(ctx, args[1:], stdout)
		if errors.Is(err, errLogBroken) {
			return exitLogBroken
		}
	case "push":
		err = auditPush(ctx, args[1:], stdout)
	case "init-table":
		err = auditInitTable(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		io.WriteString(stdout, auditUsage)
		return 0
	default:
		err = &usageError{fmt.Sprintf("unknown audit command %q (sessions, show, verify, pull, push, init-table)", args[0])}
	}
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, auditUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	return 0
}

// openAuditForReading opens the log; reading never creates one.
func openAuditForReading(ctx context.Context, path string) (*audit.DB, error) {
	if path == "" {
		var err error
		if path, err = audit.DefaultPath(); err != nil {
			return nil, err
		}
	}
	if !fileExists(path) {
		return nil, fmt.Errorf("no audit log at %s yet: run a command through tfsh first, or give --audit-db", path)
	}
	return audit.Open(ctx, path)
}

// parseTime reads the value of a time flag (--since, --until): an RFC3339
// time, a date or a date and time without a zone (local time), or a
// duration back from now ("2h", "90m ago", "3d", "1w"). Nonsense is a usage
// error that says what is accepted.
func parseTime(flagName, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, &usageError{fmt.Sprintf("%s %q: give an RFC3339 time (2026-11-25T14:00:00Z), a date (2026-11-25, local time) or how long ago (2h, 90m ago, 3d)", flagName, s)}
}

// parseAgo reads a duration back from now: Go's units (h, m, s, ...) plus
// d (24h) and w (7d), optionally followed by "ago".
func parseAgo(s string) (time.Duration, bool) {
	s = strings.TrimSpace(strings.TrimSuffix(s, "ago"))
	if s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, false
	}
	var total time.Duration
	for s != "" {
		i := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
		if i <= 0 {
			return 0, false
		}
		j := strings.IndexFunc(s[i:], func(r rune) bool { return r == '.' || r >= '0' && r <= '9' })
		if j < 0 {
			j = len(s) - i
		}
		num, unit := s[:i], s[i:i+j]
		s = s[i+j:]
		var day float64
		switch unit {
		case "d":
			day = 24
		case "w":
			day = 7 * 24
		default:
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, false
			}
			total += d
			continue
		}
		n, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(n * day * float64(time.Hour))
	}
	return total, true
}

// kindsFlag collects --kind values, repeated or comma-separated.
type kindsFlag []string

func (k *kindsFlag) String() string { return strings.Join(*k, ",") }

func (k *kindsFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*k = append(*k, p)
		}
	}
	return nil
}

// eventKinds are the kinds of event this tfsh writes (docs/audit.md).
var eventKinds = []string{
	audit.KindSessionStart, audit.KindSessionEnd, audit.KindCommandStart, audit.KindPolicyDecision, audit.KindCommandEnd,
	lock.KindAcquired, lock.KindReleased, lock.KindWait, lock.KindWaitEnd, lock.KindContention, lock.KindReleaseFailed,
	lock.KindOrphaned, lock.KindStaleInfo, lock.KindProblem, lock.KindObserved,
	shell.KindForceUnlock, shell.KindIntegrityCheck, shell.KindHoldPlaced, shell.KindHoldReleased, shell.KindHookRun,
	teamlog.KindConflict,
}

func auditSessions(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit sessions")
	dbPath := fs.String("audit-db", "", "audit log path")
	asJSON := fs.Bool("json", false, "JSON output")
	limit := fs.Int("limit", 50, "newest N sessions (0: all)")
	user := fs.String("user", "", "only this user's sessions")
	host := fs.String("host", "", "only sessions on this host")
	state := fs.String("state", "", "only sessions with a command on this state")
	command := fs.String("command", "", "only sessions with a command that matches this regular expression")
	var kinds kindsFlag
	fs.Var(&kinds, "kind", "only sessions with an event of this kind")
	since := fs.String("since", "", "only sessions started since")
	until := fs.String("until", "", "only sessions started before")
	if err := fs.Parse(args); err != nil {
		return flagError("audit sessions", err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit sessions takes no arguments (%q): filters are flags, see tfsh audit help", fs.Arg(0))}
	}
	now := time.Now()
	q := audit.SessionQuery{User: *user, Host: *host, Kinds: kinds, Limit: *limit}
	var err error
	if q.Since, err = parseTime("--since", *since, now); err != nil {
		return err
	}
	if q.Until, err = parseTime("--until", *until, now); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return &usageError{fmt.Sprintf("--since (%s) is not before --until (%s): nothing can match", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))}
	}
	if *limit < 0 {
		return &usageError{fmt.Sprintf("--limit %d: give how many of the newest sessions to show, or 0 for all", *limit)}
	}
	if *command != "" {
		if q.Command, err = regexp.Compile(*command); err != nil {
			return &usageError{fmt.Sprintf("--command %q is not a regular expression (Go syntax): %v", *command, regexpProblem(err))}
		}
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(kinds) > 0 {
		if err := checkKinds(ctx, db, kinds); err != nil {
			return err
		}
	}
	if *state != "" {
		if q.State, err = db.ResolveStateKey(ctx, *state); err != nil {
			return &usageError{"--state: " + err.Error()}
		}
	}
	list, err := db.Sessions(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []audit.SessionSummary{}
		}
		return writeJSON(stdout, list)
	}
	if len(list) == 0 {
		if *user != "" || *host != "" || *state != "" || *command != "" || len(kinds) > 0 || *since != "" || *until != "" {
			fmt.Fprintln(stdout, "no sessions match")
		} else {
			fmt.Fprintln(stdout, "no sessions recorded")
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTARTED\tDURATION\tUSER@HOST\tMODE\tCOMMANDS\tSTATUS\tDIRECTORY")
	for _, s := range list {
		dur := "-"
		if s.End != nil {
			dur = s.End.Sub(s.Start).Round(time.Millisecond).String()
		}
		status := s.Status
		if s.ExitCode != nil && *s.ExitCode != 0 {
			status = fmt.Sprintf("%s (%d)", status, *s.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s@%s\t%s\t%d\t%s\t%s\n", s.ID, s.Start.Local().Format("2006-01-02 15:04:05"), dur,
			esc(s.Info.User), esc(s.Info.Host), s.Info.Mode, s.Commands, status, esc(s.Info.CWD))
	}
	return tw.Flush()
}

// regexpProblem is the part of a regexp error that says what is wrong
// (the error repeats the expression).
func regexpProblem(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s in %q", se.Code, se.Expr)
	}
	return err.Error()
}

// checkKinds refuses an event kind that neither this tfsh writes nor the
// log holds: a typo would otherwise match nothing, silently.
func checkKinds(ctx context.Context, db *audit.DB, kinds []string) error {
	var unknown []string
	for _, k := range kinds {
		if !slices.Contains(eventKinds, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	inLog, err := db.Kinds(ctx)
	if err != nil {
		return err
	}
	for _, k := range unknown {
		if !slices.Contains(inLog, k) {
			known := slices.Clone(eventKinds)
			sort.Strings(known)
			return &usageError{fmt.Sprintf("--kind %q: no such event kind (kinds: %s)", k, strings.Join(known, ", "))}
		}
	}
	return nil
}

// shownCommand is a command with its output, for --json.
type shownCommand struct {
	audit.CommandRecord
	Output []shownFrame `json:"output,omitempty"`
}

type shownFrame struct {
	OffsetMS float64 `json:"offset_ms"`
	Stream   string  `json:"stream"`
	Text     string  `json:"text"`
}

func auditShow(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit show")
	dbPath := fs.String("audit-db", "", "audit log path")
	asJSON := fs.Bool("json", false, "JSON output")
	noOutput := fs.Bool("no-output", false, "leave out the recorded output")
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError("audit show", err)
	}
	if len(ids) > 1 {
		return &usageError{"audit show takes one session ID (or last)"}
	}
	first := ""
	if len(ids) == 1 {
		first = ids[0]
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	id, err := db.ResolveSession(ctx, first)
	if err != nil {
		return err
	}
	rec, err := db.Session(ctx, id)
	if err != nil {
		return err
	}
	frames := func(cmdID string) ([]audit.Frame, error) {
		var out []audit.Frame
		if *noOutput {
			return nil, nil
		}
		err := db.Frames(ctx, cmdID, func(f audit.Frame) error { out = append(out, f); return nil })
		return out, err
	}
	if *asJSON {
		doc := struct {
			audit.SessionSummary
			Commands []shownCommand `json:"command_list"`
		}{SessionSummary: rec.SessionSummary, Commands: []shownCommand{}}
		for _, c := range rec.CommandList {
			sc := shownCommand{CommandRecord: c}
			fr, err := frames(c.ID)
			if err != nil {
				return err
			}
			for _, f := range fr {
				sc.Output = append(sc.Output, shownFrame{OffsetMS: float64(f.Offset) / 1e6, Stream: f.Stream.String(), Text: string(f.Data)})
			}
			doc.Commands = append(doc.Commands, sc)
		}
		return writeJSON(stdout, doc)
	}
	return renderSession(stdout, rec, frames)
}

func renderSession(w io.Writer, rec *audit.SessionRecord, frames func(string) ([]audit.Frame, error)) error {
	i := rec.Info
	fmt.Fprintf(w, "session %s  %s  %s@%s  pid %d\n", rec.ID, i.Mode, esc(i.User), esc(i.Host), i.PID)
	fmt.Fprintf(w, "  started  %s", rec.Start.Local().Format(time.RFC3339))
	if rec.End != nil {
		fmt.Fprintf(w, ", ended after %s: %s", rec.End.Sub(rec.Start).Round(time.Millisecond), rec.Status)
		if rec.ExitCode != nil {
			fmt.Fprintf(w, " (exit %d)", *rec.ExitCode)
		}
	} else {
		fmt.Fprintf(w, ", still running or killed without a trace yet")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  cwd      %s\n", esc(i.CWD))
	if i.Terraform != "" {
		fmt.Fprintf(w, "  tfsh %s, %s %s (%s)\n", i.TfshVersion, i.TerraformName, i.TerraformVersion, i.Terraform)
	} else {
		fmt.Fprintf(w, "  tfsh %s\n", i.TfshVersion)
	}
	if len(rec.Events) > 0 {
		fmt.Fprintln(w)
	}
	for _, ev := range rec.Events {
		at := ev.At.Local().Format("15:04:05.000")
		switch {
		case ev.Kind == shell.KindHookRun:
			fmt.Fprintf(w, "  hook       %s %s\n", at, esc(describeHookRun(ev)))
		case strings.HasPrefix(ev.Kind, "lock_"):
			// What tfsh watch saw: the holder is the lock's own record.
			fmt.Fprintf(w, "  lock       %s %s %s\n", at, esc(ev.StateKey), esc(strings.ReplaceAll(strings.TrimPrefix(ev.Kind, "lock_"), "_", " ")+lockEventDetail(ev, localClock, "unknown")))
		default:
			fmt.Fprintf(w, "  %-10s %s %s %s\n", ev.Kind, at, esc(ev.StateKey), esc(string(ev.Data)))
		}
	}
	for n, c := range rec.CommandList {
		fmt.Fprintln(w)
		typed := c.Info.Line
		if typed == "" {
			typed = shell.Quote(c.Info.Typed)
		}
		fmt.Fprintf(w, "[%d] %s  %s\n", n+1, c.Start.Local().Format("15:04:05.000"), esc(typed))
		if ran := shell.Quote(c.Info.Run); len(c.Info.Run) > 0 && ran != shell.Quote(c.Info.Typed) {
			fmt.Fprintf(w, "    ran        %s\n", esc(ran))
		}
		if e := c.End; e != nil && len(e.Run) > 0 {
			// tfsh waited for the lock itself, then gave terraform the rest
			// of its -lock-timeout, or 0s when it runs terraform again
			// after a lost race.
			why := "tfsh waited for the lock, then gave terraform the rest of its -lock-timeout"
			if lastLockTimeout(e.Run) == "0s" {
				why = "tfsh waited for the lock itself: -lock-timeout=0s at the deadline reports the holder, and before it ends a race lost to another waiter at once"
			}
			fmt.Fprintf(w, "    then ran   %s (%s)\n", esc(shell.Quote(e.Run)), why)
		}
		if e := c.End; e != nil && e.Attempts > 1 {
			fmt.Fprintf(w, "    attempts   %d (terraform lost the race for the lock %d times; the lost runs' output is in the record)\n", e.Attempts, e.Attempts-1)
		}
		if eff := shell.Quote(c.Info.Effective); len(c.Info.Env) > 0 {
			fmt.Fprintf(w, "    effective  %s\n", esc(eff))
			for k, v := range c.Info.Env {
				fmt.Fprintf(w, "    env        %s=%s\n", esc(k), esc(v))
			}
		}
		fmt.Fprintf(w, "    where      %s (workspace %s, backend %s)\n", esc(c.Info.Workdir), esc(c.Info.Workspace), esc(c.Info.Backend))
		if c.StateKey != "" {
			fmt.Fprintf(w, "    state      %s\n", esc(c.StateKey))
		}
		if d := c.Decision; d != nil {
			line := d.Action
			if d.Rule != "" {
				line += fmt.Sprintf(" by rule %q (%s)", d.Rule, d.Source)
			}
			if d.Message != "" {
				line += ": " + d.Message
			}
			fmt.Fprintf(w, "    decision   %s\n", esc(line))
			if len(d.Added) > 0 {
				fmt.Fprintf(w, "    added      %s\n", esc(strings.Join(d.Added, " ")))
			}
			if d.Reason != "" {
				fmt.Fprintf(w, "    reason     %s\n", esc(d.Reason))
			}
			if d.Confirmed != nil {
				fmt.Fprintf(w, "    confirmed  %s\n", map[bool]string{true: "yes", false: "no"}[*d.Confirmed])
			}
			if d.Refused != "" {
				fmt.Fprintf(w, "    refused    %s\n", esc(d.Refused))
			}
		}
		if c.Info.Note != "" {
			fmt.Fprintf(w, "    note       %s\n", esc(c.Info.Note))
		}
		if e := c.End; e != nil {
			fmt.Fprintf(w, "    result     %s\n", esc(describeCommandEnd(*e)))
		} else {
			fmt.Fprintf(w, "    result     none recorded (still running, or tfsh was killed)\n")
		}
		for _, ev := range c.Events {
			if ev.Kind == shell.KindHookRun {
				fmt.Fprintf(w, "    hook       %s %s\n", ev.At.Local().Format("15:04:05.000"), esc(describeHookRun(ev)))
				continue
			}
			if !strings.HasPrefix(ev.Kind, "lock_") {
				fmt.Fprintf(w, "    %-10s %s %s\n", ev.Kind, ev.At.Local().Format("15:04:05.000"), esc(string(ev.Data)))
				continue
			}
			if ev.Kind == lock.KindObserved {
				continue // how often the lock was read: in --json
			}
			fmt.Fprintf(w, "    lock       %s %s\n", ev.At.Local().Format("15:04:05.000"), esc(describeLockEvent(ev)))
		}
		if c.End != nil && c.End.OutputWithheld != "" {
			fmt.Fprintf(w, "    output     withheld: %s (%d bytes)\n", esc(c.End.OutputWithheld), c.End.OutputBytes)
		}
		fr, err := frames(c.ID)
		if err != nil {
			return err
		}
		var text bytes.Buffer
		for _, f := range fr {
			if f.Stream != audit.Resize {
				text.Write(f.Data)
			}
		}
		if text.Len() > 0 {
			fmt.Fprintln(w, "    output:")
			for _, l := range strings.Split(strings.TrimRight(text.String(), "\n"), "\n") {
				fmt.Fprintf(w, "      │ %s\n", strings.TrimRight(l, "\r"))
			}
		}
	}
	return nil
}

// describeCommandEnd is a command's result for a reader: status, exit
// code, signal, duration, why.
func describeCommandEnd(e audit.CommandEnd) string {
	line := fmt.Sprintf("%s, exit %d", e.Status, e.ExitCode)
	if e.Signal != "" {
		line += ", signal " + e.Signal
	}
	line += fmt.Sprintf(", %s", (time.Duration(e.DurationMS) * time.Millisecond).String())
	if e.Reason != "" {
		line += " (" + e.Reason + ")"
	}
	if e.Error != "" {
		line += ": " + e.Error
	}
	return line
}

// esc shows what a recorded field really holds: a field with a control,
// format or line-separator character (a newline in a reason, an argument,
// a rule's message) could otherwise display as another line of the record.
func esc(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	}) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// describeHookRun is one line about a hook run for a reader.
func describeHookRun(ev audit.Event) string {
	var r struct {
		Event, Hook, Source, Kind, Status, Error string
		DurationMS                               int64 `json:"duration_ms"`
		ExitCode                                 *int  `json:"exit_code"`
		HTTPStatus                               int   `json:"http_status"`
		Refused                                  bool
	}
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return string(ev.Data)
	}
	line := fmt.Sprintf("%q (%s %s) on %s: %s in %s", r.Hook, r.Kind, r.Source, r.Event, r.Status, time.Duration(r.DurationMS)*time.Millisecond)
	switch {
	case r.ExitCode != nil && r.Status != "ok":
		line += fmt.Sprintf(", exit %d", *r.ExitCode)
	case r.HTTPStatus != 0 && r.Status != "ok":
		line += fmt.Sprintf(", HTTP %d", r.HTTPStatus)
	}
	if r.Error != "" && (r.ExitCode == nil || r.Error != fmt.Sprintf("exit status %d", *r.ExitCode)) {
		line += ": " + r.Error
	}
	if r.Refused {
		line += " (refused the command)"
	}
	return line
}

// describeLockEvent is one line about a lock event for a reader.
func describeLockEvent(ev audit.Event) string {
	kind := strings.TrimPrefix(ev.Kind, "lock_")
	return strings.ReplaceAll(kind, "_", " ") + lockEventDetail(ev, localClock, "")
}

// localClock shows a time of day as the reader's clock does.
func localClock(t time.Time) string { return t.Local().Format("15:04:05") }

// lockEventDetail is what is said about a lock event after its kind: the
// lock ID, who holds it, the holder process, how long, where. Times of
// day are shown by clock. self, when not empty, is the holder named for
// our own lock (acquired, released, orphaned) when its record names none;
// when empty, our own lock's holder is not named.
func lockEventDetail(ev audit.Event, clock func(time.Time) string, self string) string {
	var d lock.Event
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return " " + string(ev.Data)
	}
	var b strings.Builder
	if ev.LockID != "" {
		b.WriteString(" " + ev.LockID)
	}
	ours := ev.Kind == lock.KindAcquired || ev.Kind == lock.KindReleased || ev.Kind == lock.KindOrphaned
	switch i := d.Info; {
	case i != nil && i.Who != "" && !ours:
		fmt.Fprintf(&b, " held by %s (%s", i.Who, lock.OperationName(i.Operation))
		if !i.Created.IsZero() {
			fmt.Fprintf(&b, " since %s", clock(i.Created))
		}
		b.WriteString(")")
	case ours && self != "":
		who, op := self, ""
		if i != nil && i.Who != "" {
			who, op = i.Who, lock.OperationName(i.Operation)
		}
		b.WriteString(" held by " + who)
		if op != "" {
			b.WriteString(" (" + op + ")")
		}
	}
	var recorded struct {
		Holder *audit.Party `json:"holder"`
	}
	if json.Unmarshal(ev.Data, &recorded) == nil && recorded.Holder != nil {
		// A lock_wait names who took the lock, as the log knew it.
		b.WriteString(", taken by " + recorded.Holder.Line())
	}
	if d.PID != 0 && ev.Kind != lock.KindAcquired {
		fmt.Fprintf(&b, " pid %d", d.PID)
		if len(d.Args) > 0 {
			fmt.Fprintf(&b, " (%s)", shell.Quote(d.Args))
		}
	}
	if d.DetectionDelayMS != nil {
		fmt.Fprintf(&b, ", seen %.0f ms after it was taken", *d.DetectionDelayMS)
	}
	if d.HeldMS > 0 {
		fmt.Fprintf(&b, ", held %s", time.Duration(d.HeldMS)*time.Millisecond)
	}
	if d.WaitedMS > 0 {
		fmt.Fprintf(&b, ", waited %s", time.Duration(d.WaitedMS)*time.Millisecond)
	}
	if d.Ended != "" {
		b.WriteString(", " + d.Ended)
	}
	if len(d.Mechanisms) > 0 {
		ms := make([]string, len(d.Mechanisms))
		for i, m := range d.Mechanisms {
			ms[i] = string(m)
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(ms, ", "))
	}
	if d.Source == lock.SourceInferred {
		b.WriteString(" [inferred]")
	}
	if d.Backend != "" {
		b.WriteString("; backend: " + d.Backend)
	}
	if d.Message != "" {
		b.WriteString("; terraform: " + d.Message)
	}
	if d.Note != "" {
		b.WriteString("; " + d.Note)
	}
	return b.String()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lastLockTimeout is the value of the last -lock-timeout in argv (the one
// terraform uses), "" if none.
func lastLockTimeout(argv []string) string {
	v := ""
	for _, a := range argv {
		if a == "--" {
			break
		}
		if x, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "lock-timeout="); ok && strings.HasPrefix(a, "-") {
			v = x
		}
	}
	return v
}
