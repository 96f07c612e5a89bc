package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tfsh/tfsh/audit"
)

const reportUsage = `Usage:
  tfsh report --html FILE [--since T] [--until T] [--state KEY] [--title TEXT] [--audit-db P]

Writes one self-contained HTML file (no network: styles, script and drawings inline) with a
timeline per state: every lock held, coloured by operation; every wait, hatched; markers for
contentions, orphans, force-unlocks, holds and failed releases, with details on hover; and below
it explain's chains and the time each state was blocked. See docs/report.md.

  --html FILE  where to write it (- for stdout); the file is created 0600, like the audit log
  --since T    from T: RFC3339, a date (2006-01-02), or a duration back from now (2h); default 24h ago
  --until T    up to T (same forms); default now
  --state KEY  only this state
  --title TEXT the report's title
  --audit-db P the audit log to read
`

//go:embed report.html
var reportHTML string

// reportTemplate is parsed when a report is written, not at every start
// (about 0.3 ms).
var reportTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Parse(reportHTML))
})

// reportCommand is tfsh report.
func reportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runReport(ctx, args, stdout, time.Now())
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, reportUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	return 0
}

func runReport(ctx context.Context, args []string, stdout io.Writer, now time.Time) error {
	fs := newFlagSet("report")
	dbPath := fs.String("audit-db", "", "audit log path")
	out := fs.String("html", "", "output file")
	state := fs.String("state", "", "only this state key")
	since := fs.String("since", "", "from")
	until := fs.String("until", "", "up to")
	title := fs.String("title", "", "title")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError("report", err)
	}
	if len(rest) > 0 {
		return &usageError{fmt.Sprintf("report takes no arguments, got %q (see tfsh report --help)", rest[0])}
	}
	if *out == "" {
		return &usageError{"report needs --html FILE (or --html - for stdout; see tfsh report --help)"}
	}
	var from, to time.Time
	if from, err = parseTime("--since", *since, now); err != nil {
		return err
	}
	if to, err = parseTime("--until", *until, now); err != nil {
		return err
	}
	if from.IsZero() {
		from = now.Add(-24 * time.Hour)
	}
	if to.IsZero() {
		to = now
	}
	if !to.After(from) {
		return &usageError{"--until must be after --since"}
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if *state, err = resolveState(ctx, db, *state); err != nil {
		return err
	}
	tl, err := db.Timeline(ctx, audit.TimelineQuery{Since: from, Until: to, StateKey: *state})
	if err != nil {
		return err
	}
	x, err := db.Explain(ctx, audit.ExplainQuery{Since: from, Until: to, StateKey: *state})
	if err != nil {
		return err
	}
	v := buildReport(tl, x, reportMeta{title: *title, since: from, until: to, state: *state, now: now})
	var buf bytes.Buffer
	if err := reportTemplate().Execute(&buf, v); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if *out == "-" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s\n", *out, v.Counts)
	return nil
}

// writeFileAtomic writes a whole new file or nothing: a report that failed
// half way never replaces the previous one.
func writeFileAtomic(path string, b []byte) error {
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer f.abort()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.commit()
}

// atomicFile is a new file written beside its final name (mode 0600) and
// renamed over it only once whole: a failed or interrupted write leaves
// whatever was there before.
type atomicFile struct {
	*os.File
	path string
	done bool
}

func createAtomic(path string) (*atomicFile, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: give a file name", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &atomicFile{File: f, path: path}, nil
}

// commit closes the file and puts it in place.
func (f *atomicFile) commit() error {
	f.done = true
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := os.Rename(f.Name(), f.path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// abort removes the file unless it was committed.
func (f *atomicFile) abort() {
	if !f.done {
		f.Close()
		os.Remove(f.Name())
	}
}

type reportMeta struct {
	title        string
	since, until time.Time
	state        string
	now          time.Time
}

// The drawing's geometry, in SVG user units (the SVG scales to the page).
const (
	chartW     = 1340.0
	gutterW    = 92.0 // lane labels
	rightPad   = 28.0
	axisH      = 46.0
	headerH    = 30.0
	markerStep = 17.0
	holdLaneH  = 26.0
	holdBarH   = 20.0
	waitLaneH  = 16.0
	waitBarH   = 11.0
	stateGap   = 18.0
	minBarW    = 2.0
	// maxCloseUps is how many incidents get a chart of their own.
	maxCloseUps = 30
	tickRoom    = 30.0 // no tick label this close to the plot's left edge
	maxWho      = 40   // characters of a holder's name in a bar's label
	maxTicks    = 10
)

type reportView struct {
	Title     string
	Range     string
	Zone      string
	Generated string
	Version   string
	State     string
	Counts    string
	Empty     bool
	Cards     []reportCard
	Chart     chartView
	Chains    []chainView
	Totals    []totalView
}

type reportCard struct{ Label, Value, Tone string }

type chartView struct {
	ID, ClipID          string
	W, H                string
	PlotX, PlotW, PlotR string
	PlotTop, PlotBottom string
	ClipY, ClipH        string
	D0, D1              string // the axis's domain, Unix milliseconds
	TZOffset            int    // minutes east of UTC, for the script's axis
	AxisNote, AxisZone  string
	Ticks               []tickView
	Rows                []rowView
}

type tickView struct {
	X, Label, Date string
}

type rowView struct {
	PlotX, PlotR, W   string // the chart's, for the row's template
	ClipID            string
	Header            bool
	StateKey, Summary string
	Y, TextY, Bottom  string
	Band              bool // alternate rows are shaded
	BandY, BandH      string
	Lanes             []laneLabel
	Holds             []barView
	Orphans           []barView
	Waits             []barView
	Markers           []markerView
	Arrows            []arrowView
}

type laneLabel struct{ Y, Text string }

type barView struct {
	X, Y, W, H, T0, T1 string
	Class              string
	Kind, Lock, Op     string
	Who, From, Until   string
	Outcome, Ending    string
	Continues          string
	Tip                string
	Label, LabelY      string
	LabelT1            string // where the label's room ends
	LabelFits          bool
}

type markerView struct {
	Kind, Symbol, Lock, At, T0 string
	Outcome                    string
	X, Y, StemY1, StemY2       string
	Tip                        string
}

type arrowView struct {
	Side, T0, X, Y, Lock string
}

type chainView struct {
	State, Lock, LockShort, Start string
	T0, T1                        string
	Ending                        string
	Holder                        []storyLine
	Waiters                       [][]storyLine
	End                           []storyLine
	Blocked, BlockedWhy           string
	Waits                         int
	CloseUp                       *chartView
}

type totalView struct {
	State, Blocked, Waiting, Orphaned, HeldBy string
	Chains                                    int
}

// Lines and segments for the template.
func (l storyLine) Label() string { return l.label }
func (l storyLine) Segs() []seg   { return l.segs }
func (s seg) Text() string        { return s.text }
func (s seg) Tone() string        { return s.tone }

// scale maps times to x in the drawing.
type scale struct {
	d0, d1      time.Time
	x0, w       float64
	multipleDay bool
}

func (s scale) x(t time.Time) float64 {
	span := s.d1.Sub(s.d0)
	if span <= 0 {
		return s.x0
	}
	return s.x0 + float64(t.Sub(s.d0))/float64(span)*s.w
}

// when is a time in a tooltip: the clock, with the date when the drawing
// spans several days.
func (s scale) when(t time.Time) string {
	if s.multipleDay {
		return t.Local().Format("Jan 2 ") + clock(t)
	}
	return clock(t)
}

func px(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

func ms(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e6, 'f', 3, 64)
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// zoneName names the local time zone: "UTC", "CET (UTC+01:00)".
func zoneName(t time.Time) string {
	name, off := t.Local().Zone()
	offs := t.Local().Format("-07:00")
	if off == 0 && (name == "UTC" || name == "GMT" || name == "") {
		return "UTC"
	}
	if name == "" || strings.HasPrefix(name, "+") || strings.HasPrefix(name, "-") {
		return "UTC" + offs
	}
	return name + " (UTC" + offs + ")"
}

func buildReport(tl *audit.Timeline, x *audit.Explanation, m reportMeta) *reportView {
	v := &reportView{
		Title:     m.title,
		Range:     m.since.Local().Format("2006-01-02 15:04:05") + " → " + m.until.Local().Format("2006-01-02 15:04:05"),
		Zone:      zoneName(m.since),
		Generated: m.now.Local().Format("2006-01-02 15:04:05 MST"),
		Version:   tfshVersion(),
		State:     m.state,
	}
	if v.Title == "" {
		v.Title = "Lock report"
		if m.state != "" {
			v.Title += ": " + m.state
		}
	}
	var holds, waits, orphans, unlocks, contentions int
	for _, st := range tl.States {
		holds += len(st.Holds)
		for _, w := range st.Waits {
			if w.Waiter.Outcome != "failed" {
				waits++
			}
		}
		for _, mk := range st.Markers {
			switch mk.Kind {
			case audit.MarkerOrphaned:
				orphans++
			case audit.MarkerForceUnlock:
				unlocks++
			case audit.MarkerContention:
				contentions++
			}
		}
	}
	var blocked int64
	for _, s := range x.States {
		blocked += s.BlockedMS
	}
	v.Counts = fmt.Sprintf("%d %s, %d %s, %d %s, %d %s", len(tl.States), plural(len(tl.States), "state", "states"), holds, plural(holds, "hold", "holds"),
		waits, plural(waits, "wait", "waits"), len(x.Chains), plural(len(x.Chains), "incident", "incidents"))
	tone := func(n int, bad string) string {
		if n > 0 {
			return bad
		}
		return ""
	}
	v.Cards = []reportCard{
		{"states", strconv.Itoa(len(tl.States)), ""},
		{"locks held", strconv.Itoa(holds), ""},
		{"waits", strconv.Itoa(waits), tone(waits, "warn")},
		{"contentions", strconv.Itoa(contentions), tone(contentions, "warn")},
		{"orphaned", strconv.Itoa(orphans), tone(orphans, "bad")},
		{"force-unlocks", strconv.Itoa(unlocks), tone(unlocks, "bad")},
		{"incidents", strconv.Itoa(len(x.Chains)), tone(len(x.Chains), "warn")},
		{"blocked", dur(blocked), tone(int(blocked), "warn")},
	}
	if len(tl.States) == 0 {
		v.Empty = true
		return v
	}
	v.Chart = buildChart(tl, "timeline", true)
	// Close-ups for the incidents that blocked longest only: a week of a
	// busy team has hundreds, and each is a chart.
	closeUps := map[int]bool{}
	order := make([]int, len(x.Chains))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return x.Chains[order[a]].BlockedMS > x.Chains[order[b]].BlockedMS })
	for _, i := range order[:min(len(order), maxCloseUps)] {
		closeUps[i] = true
	}
	for i, c := range x.Chains {
		cv := chainView{State: chainState(c), Lock: chainLock(c), LockShort: short(chainLock(c)), Start: c.Start.Local().Format("2006-01-02 15:04:05"),
			T0: ms(c.Start), T1: ms(c.End), Ending: c.Ending.How, Holder: holderLines(c), End: endingLines(c), Waits: len(c.Waiters)}
		cv.Blocked, cv.BlockedWhy, _ = strings.Cut(blockedText(c), " (")
		cv.BlockedWhy = strings.TrimSuffix(cv.BlockedWhy, ")")
		for _, w := range c.Waiters {
			cv.Waiters = append(cv.Waiters, waiterLines(w))
		}
		if sub := closeUp(tl, c); sub != nil && closeUps[i] {
			ch := buildChart(sub, fmt.Sprintf("closeup-%d", i+1), false)
			cv.CloseUp = &ch
		}
		v.Chains = append(v.Chains, cv)
	}
	for _, s := range x.States {
		v.Totals = append(v.Totals, totalView{State: esc(s.StateKey), Blocked: dur(s.BlockedMS), Waiting: dur(s.WaitedMS), Orphaned: dur(s.OrphanedMS),
			Chains: s.Chains, HeldBy: heldByText(s)})
	}
	return v
}

// span is the time the drawing shows: the first to the last activity,
// with a margin, inside the range asked for.
func span(tl *audit.Timeline) (time.Time, time.Time) {
	var lo, hi time.Time
	see := func(t time.Time) {
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	for _, st := range tl.States {
		for _, h := range st.Holds {
			see(h.From)
			see(h.Until)
		}
		for _, w := range st.Waits {
			see(w.From)
			see(w.Until)
		}
		for _, m := range st.Markers {
			see(m.At)
		}
	}
	pad := hi.Sub(lo) / 30
	if pad == 0 {
		pad = time.Second
	}
	lo, hi = lo.Add(-pad), hi.Add(pad)
	if tl.Since != nil && lo.Before(*tl.Since) {
		lo = *tl.Since
	}
	if hi.After(tl.Until) {
		hi = tl.Until
	}
	return lo, hi
}

// buildChart draws a timeline: the whole report's (header rows name the
// states), or an incident's close-up (one row, no header).
func buildChart(tl *audit.Timeline, id string, header bool) chartView {
	d0, d1 := span(tl)
	s := scale{d0: d0, d1: d1, x0: gutterW, w: chartW - gutterW - rightPad}
	s.multipleDay = d0.Local().Format("2006-01-02") != d1.Local().Format("2006-01-02")
	_, off := d0.Local().Zone()
	cv := chartView{
		ID: id, ClipID: id + "-clip",
		W: px(chartW), PlotX: px(s.x0), PlotW: px(s.w), PlotR: px(s.x0 + s.w), D0: ms(d0), D1: ms(d1), TZOffset: off / 60,
		AxisZone: zoneName(d0),
	}
	cv.AxisNote = d0.Local().Format("Mon 2 Jan 2006 15:04:05.000") + " → " + s.when(d1)
	y := axisH
	cv.PlotTop = px(y)
	for i, st := range tl.States {
		r := buildRow(s, st, &y, i%2 == 1, header)
		r.PlotX, r.PlotR, r.W, r.ClipID = cv.PlotX, cv.PlotR, cv.W, cv.ClipID
		cv.Rows = append(cv.Rows, r)
	}
	cv.PlotBottom = px(y)
	cv.ClipY, cv.ClipH = px(axisH-2), px(y-axisH+4)
	cv.H = px(y + 6)
	cv.Ticks = ticks(s)
	return cv
}

// closeUp is the part of a state's timeline about one chain: its lock's
// hold, waits and markers (or, without a lock ID, its events').
func closeUp(tl *audit.Timeline, c audit.Chain) *audit.Timeline {
	events := map[string]bool{}
	for _, id := range c.Events {
		events[id] = true
	}
	commands := map[string]bool{}
	for _, w := range c.Waiters {
		commands[w.CommandID] = true
	}
	for _, st := range tl.States {
		if st.StateKey != c.StateKey {
			continue
		}
		sub := audit.StateTimeline{StateKey: st.StateKey}
		for _, h := range st.Holds {
			if c.LockID != "" && h.LockID == c.LockID {
				sub.Holds = append(sub.Holds, h)
			}
		}
		for _, w := range st.Waits {
			if w.LockID == c.LockID && (c.LockID != "" || commands[w.Waiter.CommandID]) {
				sub.Waits = append(sub.Waits, w)
			}
		}
		for _, m := range st.Markers {
			if (c.LockID != "" && m.LockID == c.LockID) || events[m.EventID] {
				sub.Markers = append(sub.Markers, m)
			}
		}
		if len(sub.Holds)+len(sub.Waits)+len(sub.Markers) == 0 {
			return nil
		}
		return &audit.Timeline{Since: tl.Since, Until: tl.Until, States: []audit.StateTimeline{sub}}
	}
	return nil
}

// tickSteps are the axis's possible steps, smallest first.
var tickSteps = []time.Duration{
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour,
}

// ticks are round local times across the drawing, at most maxTicks. The
// script in report.html draws the same ticks when it zooms.
func ticks(s scale) []tickView {
	spanD := s.d1.Sub(s.d0)
	step := tickSteps[len(tickSteps)-1]
	for _, st := range tickSteps {
		if spanD/st <= maxTicks {
			step = st
			break
		}
	}
	_, off := s.d0.Local().Zone()
	offD := time.Duration(off) * time.Second
	local := s.d0.UnixNano() + int64(offD)
	first := (local + int64(step) - 1) / int64(step) * int64(step)
	var out []tickView
	prevDay := ""
	for t := time.Unix(0, first-int64(offD)); !t.After(s.d1); t = t.Add(step) {
		lt := t.Local()
		var label string
		switch {
		case step < time.Second:
			label = lt.Format("15:04:05.000")
		case step < time.Minute:
			label = lt.Format("15:04:05")
		case step < 24*time.Hour:
			label = lt.Format("15:04")
		default:
			label = lt.Format("Jan 2")
		}
		x := s.x(t)
		if x < s.x0+tickRoom {
			// Too close to the axis's caption: the grid line only; its
			// date goes to the next tick.
			out = append(out, tickView{X: px(x)})
			continue
		}
		tv := tickView{X: px(x), Label: label}
		if day := lt.Format("Mon 2 Jan"); day != prevDay {
			if step < 24*time.Hour {
				tv.Date = day
			}
			prevDay = day
		}
		out = append(out, tv)
	}
	return out
}

// opClass is the colour of a hold: apply, plan, refresh, state, hold or
// other.
func opClass(h audit.Hold) string {
	op, sub := h.Holder.Operation, h.Subcommand
	switch {
	case op == "hold":
		return "hold"
	case op == "apply" || sub == "apply" || sub == "destroy":
		return "apply"
	case op == "refresh" || sub == "refresh" || strings.Contains(h.Holder.Command, "-refresh-only"):
		return "refresh"
	case op == "plan" || sub == "plan":
		return "plan"
	case strings.HasPrefix(sub, "state") || strings.HasPrefix(op, "state"):
		return "state"
	}
	return "other"
}

// opLabel is what a hold was doing, for its label: the subcommand as
// typed, else terraform's operation.
func opLabel(h audit.Hold) string {
	switch {
	case h.Holder.Operation == "hold":
		return "hold"
	case h.Subcommand != "" && opClass(h) == "refresh" && h.Subcommand == "plan":
		return "plan -refresh-only"
	case h.Subcommand != "":
		return h.Subcommand
	case h.Holder.Operation != "":
		return h.Holder.Operation
	}
	return "lock"
}

// lanes packs spans into as few rows as possible without overlap (2 units
// apart at least); it returns the lane of each and their number.
func lanes(spans [][2]float64) ([]int, int) {
	var ends []float64
	out := make([]int, len(spans))
	for i, sp := range spans {
		placed := false
		for l, e := range ends {
			if sp[0] >= e {
				out[i], ends[l], placed = l, sp[1], true
				break
			}
		}
		if !placed {
			out[i] = len(ends)
			ends = append(ends, sp[1])
		}
	}
	return out, len(ends)
}

func buildRow(s scale, st audit.StateTimeline, y *float64, band, header bool) rowView {
	top := *y
	key := st.StateKey
	if key == "" {
		key = "(state unknown)"
	}
	r := rowView{StateKey: esc(key), Y: px(top), TextY: px(top + 19), Band: band, Header: header}
	var waits int
	for _, w := range st.Waits {
		if w.From.Before(w.Until) {
			waits++
		}
	}
	r.Summary = fmt.Sprintf("%d %s · %d %s · %d %s", len(st.Holds), plural(len(st.Holds), "lock held", "locks held"),
		waits, plural(waits, "wait", "waits"), len(st.Markers), plural(len(st.Markers), "event", "events"))
	if header {
		*y += headerH
	} else {
		*y += 6
	}

	// Markers, stacked where they would touch.
	mx := make([][2]float64, len(st.Markers))
	for i, m := range st.Markers {
		x := s.x(m.At)
		mx[i] = [2]float64{x - 8, x + 8}
	}
	mlane, mlanes := lanes(mx)
	markerTop := *y
	if mlanes > 0 {
		r.Lanes = append(r.Lanes, laneLabel{Y: px(markerTop + float64(mlanes)*markerStep/2 + 4), Text: "events"})
		*y += float64(mlanes)*markerStep + 4
	}

	// Holds: one lane unless something odd overlaps.
	hx := make([][2]float64, len(st.Holds))
	ht := make([][2]float64, len(st.Holds))
	for i, h := range st.Holds {
		x := s.x(h.From)
		hx[i] = [2]float64{x, math.Max(s.x(h.Until), x+minBarW)}
		ht[i] = [2]float64{float64(h.From.UnixNano()), float64(h.Until.UnixNano())}
	}
	// Lanes by real overlap in time: holds one after another share a lane
	// even when their bars touch at this scale (stacked bars would read as
	// concurrent holders).
	hlane, hlanes := lanes(ht)
	if hlanes == 0 {
		hlanes = 1
	}
	holdTop := *y
	r.Lanes = append(r.Lanes, laneLabel{Y: px(holdTop + float64(hlanes)*holdLaneH/2 + 4), Text: "locks"})
	*y += float64(hlanes) * holdLaneH
	for i, h := range st.Holds {
		by := holdTop + float64(hlane[i])*holdLaneH + (holdLaneH-holdBarH)/2
		r.Holds = append(r.Holds, holdBar(s, h, hx[i], by))
		if h.OrphanedAt != nil && h.OrphanedAt.Before(h.Until) {
			from := *h.OrphanedAt
			if from.Before(h.From) {
				from = h.From
			}
			ox := s.x(from)
			r.Orphans = append(r.Orphans, barView{X: px(ox), Y: px(by), W: px(math.Max(hx[i][1]-ox, minBarW)), H: px(holdBarH), T0: ms(from), T1: ms(h.Until),
				Class: "orphan-span", Kind: "orphan-span", Lock: h.LockID, Tip: fmt.Sprintf("orphaned: no one held lock %s from %s to %s (%s)%s",
					h.LockID, s.when(from), s.when(h.Until), dur(h.Until.Sub(from).Milliseconds()), map[bool]string{true: ", and still at the end of the range", false: ""}[h.Open])})
		}
		if h.StartsBefore {
			r.Arrows = append(r.Arrows, arrowView{Side: "left", T0: ms(h.From), X: px(hx[i][0]), Y: px(by), Lock: h.LockID})
		}
		if h.EndsAfter {
			r.Arrows = append(r.Arrows, arrowView{Side: "right", T0: ms(h.Until), X: px(hx[i][1]), Y: px(by), Lock: h.LockID})
		}
	}

	// Waits with a length; one that failed at once is its contention
	// marker.
	var ws []audit.Wait
	var wx, wt [][2]float64
	for _, w := range st.Waits {
		if !w.From.Before(w.Until) {
			continue
		}
		x := s.x(w.From)
		ws = append(ws, w)
		wx = append(wx, [2]float64{x, math.Max(s.x(w.Until), x+minBarW)})
		wt = append(wt, [2]float64{float64(w.From.UnixNano()), float64(w.Until.UnixNano())})
	}
	wlane, wlanes := lanes(wt)
	waitTop := *y
	if wlanes > 0 {
		r.Lanes = append(r.Lanes, laneLabel{Y: px(waitTop + float64(wlanes)*waitLaneH/2 + 4), Text: "waits"})
		*y += float64(wlanes)*waitLaneH + 4
	}
	for i, w := range ws {
		wy := waitTop + 2 + float64(wlane[i])*waitLaneH + (waitLaneH-waitBarH)/2
		r.Waits = append(r.Waits, waitBar(s, w, wx[i], wy))
	}
	bottom := *y
	for i, m := range st.Markers {
		my := markerTop + float64(mlane[i])*markerStep + markerStep/2 + 1
		r.Markers = append(r.Markers, markerView{Kind: m.Kind, Symbol: "sym-" + m.Kind, Lock: m.LockID, At: rfc(m.At), T0: ms(m.At), Outcome: m.Outcome,
			X: px(s.x(m.At)), Y: px(my), StemY1: px(my + 7), StemY2: px(bottom), Tip: markerTip(s, m)})
	}
	*y += stateGap
	r.Bottom = px(*y)
	r.BandY, r.BandH = px(top), px(*y-top)
	return r
}

func holdBar(s scale, h audit.Hold, x [2]float64, y float64) barView {
	op := opClass(h)
	class := "hold op-" + op
	if !h.Holder.Recorded {
		class += " unrecorded"
	}
	if h.Inferred {
		class += " inferred"
	}
	b := barView{X: px(x[0]), Y: px(y), W: px(x[1] - x[0]), H: px(holdBarH), T0: ms(h.From), T1: ms(h.Until), Class: class,
		Kind: "hold", Lock: h.LockID, Op: op, Who: h.Holder.Who, From: rfc(h.From), Until: rfc(h.Until), Ending: h.Ending}
	switch {
	case h.StartsBefore && h.EndsAfter:
		b.Continues = "both"
	case h.StartsBefore:
		b.Continues = "before"
	case h.EndsAfter:
		b.Continues = "after"
	}
	who := h.Holder.Who
	if h.Holder.CI != nil && h.Holder.CI.Actor != "" {
		who = h.Holder.CI.Actor + " (CI)"
	}
	if r := []rune(esc(who)); len(r) > maxWho {
		who = string(r[:maxWho-1]) + "…"
	}
	b.Label, b.LabelY = esc(opLabel(h))+" · "+esc(who), px(y+holdBarH/2+4)
	// The label stays on the part of the bar where the lock was held;
	// about 6.6 units a character at its size (the script measures it).
	end := x[1]
	b.LabelT1 = b.T1
	if h.OrphanedAt != nil && h.OrphanedAt.Before(h.Until) && h.OrphanedAt.After(h.From) {
		b.LabelT1, end = ms(*h.OrphanedAt), s.x(*h.OrphanedAt)
	}
	b.LabelFits = float64(len([]rune(b.Label)))*6.6 <= end-x[0]-10

	var tip []string
	what := "lock held"
	if h.Holder.Operation == "hold" {
		what = "change-freeze hold"
	}
	tip = append(tip, what+" by "+partyLine(h.Holder))
	if h.Holder.Hold != "" {
		tip = append(tip, "reason: "+esc(h.Holder.Hold))
	}
	if h.LockID != "" {
		tip = append(tip, "lock "+esc(h.LockID))
	}
	span := s.when(h.Start) + " → "
	if h.End != nil {
		span += s.when(*h.End) + " (" + dur(h.End.Sub(h.Start).Milliseconds()) + ")"
	} else if h.Open {
		span += "still held at the end of the range"
	} else {
		span += "? (its end is not in the log; drawn to the last fact about it)"
	}
	tip = append(tip, span)
	if h.StartsBefore {
		tip = append(tip, "taken before the range: drawn from its start")
	}
	if h.End != nil && h.EndsAfter {
		tip = append(tip, "let go after the range: drawn to its end")
	}
	ending := "ended: " + h.Ending
	if h.OrphanedAt != nil {
		ending += " (orphaned at " + s.when(*h.OrphanedAt) + ")"
	}
	tip = append(tip, ending)
	if h.Inferred {
		tip = append(tip, "inferred: the command succeeded with locking on, but tfsh never saw the lock")
	}
	if h.Holder.SessionID != "" {
		tip = append(tip, fmt.Sprintf("session %s, command %s", h.Holder.SessionID, h.Holder.CommandID))
	}
	b.Tip = strings.Join(tip, "\n")
	return b
}

func waitBar(s scale, w audit.Wait, x [2]float64, y float64) barView {
	outcome := w.Waiter.Outcome
	b := barView{X: px(x[0]), Y: px(y), W: px(x[1] - x[0]), H: px(waitBarH), T0: ms(w.From), T1: ms(w.Until),
		Class: "wait w-" + strings.ReplaceAll(outcome, " ", "-"), Kind: "wait", Lock: w.LockID, Who: w.Waiter.Who,
		From: rfc(w.From), Until: rfc(w.Until), Outcome: outcome}
	if w.EndsAfter {
		b.Continues = "after"
	}
	tip := []string{"waited: " + partyLine(w.Waiter.Party)}
	if w.LockID != "" {
		tip = append(tip, "for lock "+esc(w.LockID)+" held by "+esc(w.Holder))
	}
	tip = append(tip, s.when(w.Waiter.From)+" → "+s.when(w.Waiter.Until)+" ("+dur(w.Waiter.BlockedMS)+")")
	_, what, _, status := waiterOutcome(w.Waiter)
	tip = append(tip, "outcome: "+outcome+": "+what+status)
	if w.Waiter.SessionID != "" {
		tip = append(tip, fmt.Sprintf("session %s, command %s", w.Waiter.SessionID, w.Waiter.CommandID))
	}
	b.Tip = strings.Join(tip, "\n")
	return b
}

func markerTip(s scale, m audit.Marker) string {
	var tip []string
	holder := ""
	if m.Holder != "" {
		holder = esc(m.Holder)
		if m.Operation != "" {
			holder += " (" + esc(m.Operation) + ")"
		}
	}
	switch m.Kind {
	case audit.MarkerContention:
		tip = append(tip, "contention: "+partyLine(m.By)+" could not take the lock")
		if holder != "" {
			tip = append(tip, "held by "+holder)
		}
		switch m.Outcome {
		case "failed":
			tip = append(tip, "gave up at once")
		case "timed out":
			tip = append(tip, "gave up at its -lock-timeout")
		}
		if m.Detail != "" {
			tip = append(tip, "terraform: "+esc(m.Detail))
		}
	case audit.MarkerOrphaned:
		tip = append(tip, "orphaned: the holder's command ended and left its lock")
		tip = append(tip, "holder: "+partyLine(m.By))
		if m.Detail != "" {
			tip = append(tip, esc(m.Detail))
		}
	case audit.MarkerForceUnlock:
		tip = append(tip, "force-unlock by "+partyLine(m.By))
		if holder != "" {
			tip = append(tip, "the lock was "+holder+"'s")
		}
		tip = append(tip, "reason: "+orNone(m.Reason))
		if m.Detail != "" {
			tip = append(tip, "method: "+esc(m.Detail))
		}
		if m.Verified != "" {
			tip = append(tip, "verified: "+esc(strings.TrimSuffix(m.Verified, " (see the plan above)")))
		}
	case audit.MarkerHoldPlaced:
		tip = append(tip, "change-freeze hold placed by "+partyLine(m.By), "reason: "+orNone(m.Reason))
	case audit.MarkerHoldReleased:
		what := "released"
		if m.Detail == "expired" {
			what = "released after it expired"
		}
		tip = append(tip, "change-freeze hold "+what+" by "+partyLine(m.By))
		if m.Reason != "" {
			tip = append(tip, "reason: "+esc(m.Reason))
		}
	case audit.MarkerReleaseFailed:
		tip = append(tip, "release failed: terraform could not release its lock", "holder: "+partyLine(m.By))
		if m.Detail != "" {
			tip = append(tip, "terraform: "+esc(m.Detail))
		}
	}
	if m.LockID != "" {
		tip = append(tip, "lock "+esc(m.LockID))
	}
	tip = append(tip, "at "+s.when(m.At))
	return strings.Join(tip, "\n")
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return esc(s)
}
