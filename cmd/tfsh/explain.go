package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/shell"
)

const explainUsage = `Usage:
  tfsh explain [--state KEY] [--since T] [--until T] [--json] [--color auto|always|never] [REF]

Explains every lock contention, wait, timeout, orphan and force-unlock as a chain: who held the
lock (user@host, CI run, session, command), since when and for how long, who waited and for how
long, and how it ended. Ends with the time each state was blocked, and by whom.

  REF          a lock ID, an event ID, a session ID (or unique prefix, or last) or a command ID:
               the incidents of that lock, session or command, whenever they were
  --state KEY  only this state (as tfsh locks and audit show name it: bucket/key, or the file),
               or the one state whose key contains KEY (--state prod/payments)
  --since T    from T: RFC3339, a date (2006-01-02), or a duration back from now (2h, "2h ago");
               default 24h ago when no REF is given
  --until T    up to T (same forms); default now
  --json       the chains and totals as JSON
  --audit-db P the audit log to read
`

// explainCommand is tfsh explain.
func explainCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runExplain(ctx, args, stdout, time.Now())
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, explainUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	return 0
}

func runExplain(ctx context.Context, args []string, stdout io.Writer, now time.Time) error {
	fs := newFlagSet("explain")
	dbPath := fs.String("audit-db", "", "audit log path")
	state := fs.String("state", "", "only this state key")
	since := fs.String("since", "", "from")
	until := fs.String("until", "", "up to")
	asJSON := fs.Bool("json", false, "JSON output")
	color := fs.String("color", "auto", "auto, always or never")
	refs, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError("explain", err)
	}
	if len(refs) > 1 {
		return &usageError{"explain takes at most one lock, event, session or command ID (see tfsh explain --help)"}
	}
	q := audit.ExplainQuery{StateKey: *state}
	if len(refs) == 1 {
		q.Ref = refs[0]
	}
	if q.Since, err = parseTime("--since", *since, now); err != nil {
		return err
	}
	if q.Until, err = parseTime("--until", *until, now); err != nil {
		return err
	}
	if q.Ref == "" && q.Since.IsZero() {
		q.Since = now.Add(-24 * time.Hour)
	}
	if q.Ref == "" && q.Until.IsZero() {
		q.Until = now
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return &usageError{"--until must be after --since"}
	}
	useColor, err := colorWanted(*color, stdout)
	if err != nil {
		return err
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if q.StateKey, err = resolveState(ctx, db, q.StateKey); err != nil {
		return err
	}
	x, err := db.Explain(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, x)
	}
	return renderExplanation(stdout, x, useColor)
}

// colorWanted decides whether to colour: auto colours a terminal unless
// NO_COLOR is set or TERM is dumb.
func colorWanted(mode string, w io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		f, ok := w.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb", nil
	}
	return false, &usageError{fmt.Sprintf("--color %q: give auto, always or never", mode)}
}

// painter colours text when asked to.
type painter bool

func (p painter) paint(code, s string) string {
	if !p || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p painter) bold(s string) string   { return p.paint("1", s) }
func (p painter) dim(s string) string    { return p.paint("2", s) }
func (p painter) red(s string) string    { return p.paint("31", s) }
func (p painter) green(s string) string  { return p.paint("32", s) }
func (p painter) yellow(s string) string { return p.paint("33", s) }

// dur is a duration as a reader wants it: milliseconds below a second,
// tenths of seconds below a minute, whole seconds beyond.
func dur(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }

// partyLine is who, from where, running what: "bob via GitHub run 1234,
// job deploy (root@runner-7): plan".
func partyLine(p audit.Party) string {
	s := p.Line()
	switch {
	case p.Watcher:
		s += " (seen by tfsh watch, not run through tfsh: from the lock's own record)"
	case !p.Recorded:
		s += " (not recorded by tfsh: from the lock's own record)"
	}
	return s
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// seg is a piece of a line of explain's story, with its tone: "" (plain),
// bold, dim, red, green or yellow. The terminal paints tones as colours, the
// HTML report as classes.
type seg struct{ text, tone string }

// storyLine is one labelled line of a chain: "held by", "waited", "ended".
type storyLine struct {
	label string
	segs  []seg
}

func line(label string, segs ...seg) storyLine { return storyLine{label, segs} }

// segs renders segments in the painter's colours.
func (p painter) segs(ss []seg) string {
	var b strings.Builder
	for _, s := range ss {
		switch s.tone {
		case "bold":
			b.WriteString(p.bold(s.text))
		case "dim":
			b.WriteString(p.dim(s.text))
		case "red":
			b.WriteString(p.red(s.text))
		case "green":
			b.WriteString(p.green(s.text))
		case "yellow":
			b.WriteString(p.yellow(s.text))
		default:
			b.WriteString(s.text)
		}
	}
	return b.String()
}

func renderExplanation(w io.Writer, x *audit.Explanation, color bool) error {
	p := painter(color)
	switch {
	case x.RefKind != "":
		fmt.Fprintf(w, "Lock incidents of %s %s", x.RefKind, esc(x.RefID))
	case x.Since != nil && x.Until != nil:
		fmt.Fprintf(w, "Lock incidents from %s to %s", x.Since.Local().Format("2006-01-02 15:04:05 MST"), x.Until.Local().Format("2006-01-02 15:04:05 MST"))
	default:
		fmt.Fprint(w, "Lock incidents")
	}
	if len(x.Chains) == 0 {
		fmt.Fprintln(w, ": none.")
		if x.Ref == "" {
			fmt.Fprintln(w, "Nobody waited for a lock, failed on one, or left one behind in that time (--since goes further back).")
		}
		return nil
	}
	fmt.Fprintf(w, ": %d\n", len(x.Chains))
	for _, c := range x.Chains {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s  %s  %s\n", p.bold(chainState(c)), p.dim("lock "+chainLock(c)), p.dim(c.Start.Local().Format("2006-01-02 MST")))
		lines := holderLines(c)
		for _, wt := range c.Waiters {
			lines = append(lines, waiterLines(wt)...)
		}
		lines = append(lines, endingLines(c)...)
		lines = append(lines, line("blocked", seg{blockedText(c), "bold"}))
		for _, l := range lines {
			fmt.Fprintf(w, "  %-10s %s\n", l.label, p.segs(l.segs))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, p.bold("Blocked time by state"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STATE\tBLOCKED\tWAITING\tORPHANED\tINCIDENTS\tHELD BY")
	for _, s := range x.States {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", esc(s.StateKey), dur(s.BlockedMS), dur(s.WaitedMS), dur(s.OrphanedMS), s.Chains, heldByText(s))
	}
	return tw.Flush()
}

// chainState is a chain's state key as a reader sees it.
func chainState(c audit.Chain) string {
	if c.StateKey == "" {
		return "(state unknown)"
	}
	return esc(c.StateKey)
}

// chainLock is a chain's lock ID as a reader sees it.
func chainLock(c audit.Chain) string {
	if c.LockID == "" {
		return "ID unknown"
	}
	return esc(c.LockID)
}

// heldByText is who blocked a state, and for how long: "root@vm 8.1s".
func heldByText(s audit.StateTotal) string {
	var by []string
	for _, h := range s.ByHolder {
		by = append(by, fmt.Sprintf("%s %s", esc(h.Who), dur(h.BlockedMS)))
	}
	return strings.Join(by, ", ")
}

// holderLines tell who held the lock, since when and for how long.
func holderLines(c audit.Chain) []storyLine {
	h := c.Holder
	who := partyLine(h)
	if c.LockID == "" && !h.Recorded {
		who = "unknown: terraform named no holder (the lock's record was unreadable or missing)"
	}
	lines := []storyLine{line("held by", seg{who, ""})}
	if h.Hold != "" {
		lines = append(lines, line("", seg{"a change-freeze hold: " + esc(h.Hold), ""}))
	}
	held := "since " + clock(c.Start)
	if c.Ending.At != nil {
		held += ", for " + dur(c.HeldMS)
	}
	l := line("", seg{held, ""})
	if h.SessionID != "" {
		l.segs = append(l.segs, seg{fmt.Sprintf("  (session %s, command %s)", short(h.SessionID), short(h.CommandID)), "dim"})
	}
	return append(lines, l)
}

// waiterOutcome is how a wait ended, as explain says it: its label
// (waited, failed, timed out, ended), the words and their tone, and the
// command's status when it did not get the lock.
func waiterOutcome(wt audit.Waiter) (label, what, tone, status string) {
	label = "waited"
	switch wt.Outcome {
	case "acquired":
		what, tone = "then got the lock", "green"
		if wt.AfterFreeMS >= 100 {
			what += fmt.Sprintf(", %s after it was free (terraform's retry backoff)", dur(wt.AfterFreeMS))
		}
	case "passed":
		what, tone = "then another took the lock first", "yellow"
	case "failed":
		label = "failed"
		to := wt.LockTimeout
		if to == "" {
			to = "0s, terraform's default"
		}
		what, tone = "gave up at once (-lock-timeout="+esc(to)+")", "red"
		if d, err := time.ParseDuration(to); err == nil && d > 0 {
			// terraform does not retry when it cannot read the holder's
			// record; or the wait was shorter than tfsh's poll.
			what = "failed without a wait tfsh saw (-lock-timeout=" + esc(to) + ")"
		}
	case "timed out":
		label = "timed out"
		what, tone = "gave up after -lock-timeout="+esc(wt.LockTimeout), "red"
	case "ended":
		label = "stopped"
		what, tone = "the command ended while waiting", "yellow"
	default:
		what, tone = "still waiting at the end of the log", "yellow"
	}
	if wt.Status != "" && wt.Outcome != "acquired" {
		status = fmt.Sprintf(" (%s, exit %d)", esc(wt.Status), deref(wt.ExitCode))
	}
	return label, what, tone, status
}

// waiterLines tell who waited, from when to when, and how it ended.
func waiterLines(wt audit.Waiter) []storyLine {
	label, what, tone, status := waiterOutcome(wt)
	span := clock(wt.From)
	if wt.BlockedMS > 0 {
		span += " → " + clock(wt.Until) + ", " + dur(wt.BlockedMS)
	}
	return []storyLine{
		line(label, seg{partyLine(wt.Party), ""}),
		line("", seg{span + ", ", ""}, seg{what, tone}, seg{status, ""}, seg{fmt.Sprintf("  (session %s)", short(wt.SessionID)), "dim"}),
	}
}

// blockedText is how long the chain kept the state blocked, and why.
func blockedText(c audit.Chain) string {
	blocked := dur(c.BlockedMS)
	var parts []string
	if n := len(c.Waiters); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s, %s waiting in all", n, plural(n, "waiter", "waiters"), dur(c.WaitedMS)))
	}
	if c.OrphanedMS > 0 {
		parts = append(parts, "orphaned "+dur(c.OrphanedMS))
	}
	if len(parts) > 0 {
		blocked += " (" + strings.Join(parts, "; ") + ")"
	}
	return blocked
}

// endingLines tell how the lock ended.
func endingLines(c audit.Chain) []storyLine {
	var lines []storyLine
	e := c.Ending
	at := ""
	if e.At != nil {
		at = " at " + clock(*e.At)
	}
	if e.ReleaseFailed != "" {
		lines = append(lines, line("ended", seg{"terraform could not release it: " + esc(e.ReleaseFailed), "red"}))
	}
	switch e.How {
	case "released":
		text := "released normally" + at
		if e.SeenBy == audit.SeenByWatcher {
			text = "released" + at + " (seen gone by tfsh watch, within one interval)"
		} else if e.SeenBy != "" {
			text = "released" + at + " (seen by " + esc(e.SeenBy) + ", who was waiting)"
		}
		lines = append(lines, line("ended", seg{text, "green"}))
	case "orphaned", "force-unlocked":
		if o := e.Orphaned; o != nil {
			text := "orphaned at " + clock(o.At)
			if o.Cause != "" {
				text += ": " + esc(o.Cause)
			}
			lines = append(lines, line("ended", seg{text, "red"}))
		}
		if fu := e.ForceUnlock; fu != nil {
			label := "ended"
			if e.Orphaned != nil {
				label = ""
			}
			text := fmt.Sprintf("force-unlocked at %s by %s", clock(fu.At), esc(fu.By))
			if fu.Reason != "" {
				text += fmt.Sprintf(", reason %q", fu.Reason)
			}
			// The verdict as the unlock printed it points at the plan it
			// had just shown; here there is none.
			text += ", verified: " + esc(strings.TrimSuffix(fu.Verified, " (see the plan above)"))
			lines = append(lines, line(label, seg{text, "yellow"}, seg{fmt.Sprintf("  (session %s)", short(fu.SessionID)), "dim"}))
		} else if o := e.Orphaned; o != nil && o.GoneBy == "next lock" && o.Until != nil {
			lines = append(lines, line("", seg{"gone by " + clock(*o.Until) + ", when the next lock on the state was taken (removed where tfsh could not see, or it went with its process)", "yellow"}))
		} else if o != nil && o.Open {
			lines = append(lines, line("", seg{"still there at the end of the range: " + esc(shell.Quote([]string{"tfsh", "unlock", c.LockID})), "red"}))
		}
	case "release failed":
	case "still held":
		lines = append(lines, line("ended", seg{"not yet: the holder's command has not ended in the log", "yellow"}))
	case "unknown":
		lines = append(lines, line("ended", seg{"not recorded: no release was seen (tfsh locks shows the lock now)", "yellow"}))
	default:
		lines = append(lines, line("ended", seg{esc(e.How) + at, ""}))
	}
	return lines
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// resolveState turns --state into a state key the log knows: the key
// itself, or the one key that contains what was given (prod/payments for
// bucket/prod/payments/terraform.tfstate). Several or none is a usage
// error that names them.
func resolveState(ctx context.Context, db *audit.DB, part string) (string, error) {
	if part == "" {
		return "", nil
	}
	key, err := db.ResolveStateKey(ctx, part)
	if err != nil {
		return "", &usageError{"--state: " + err.Error()}
	}
	return key, nil
}
