package result

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Figure is one row of the summary table: the goal of a figure and where
// its measured value comes from. The records that match Kind, Row (a
// prefix; empty for any) and Params are read for Stat; with several, the
// one farthest from the goal is shown (the worst backend, the worst run).
type Figure struct {
	Name   string
	Kind   string
	Row    string
	Params map[string]string
	Stat   string
	P95    bool    // read the 95th percentile rather than the median
	Scale  float64 // multiply the stored value by this to show it in Unit (0: 1)
	Unit   string
	// Goal, in Unit; zero means none. AtLeast: the goal is a floor.
	Goal    float64
	AtLeast bool
	Note    string // shown beside "not measured" when nothing matched
	// Reach, if set, explains a missed goal that the record itself shows
	// to be out of reach on this machine (and names the nearest figure
	// that is not); "" when it is within reach.
	Reach func(Record) string
}

// AddedCI is the overhead record's parameter that holds the 95 %
// confidence interval of the median added time, "LO to HI" in ms.
const AddedCI = "added, 95 % CI (ms)"

// noiseReach is Reach for the overhead's added time: a median above the
// goal whose 95 % confidence interval still includes it is within this
// machine's noise, and the row says so with the interval (the interval
// itself is in the overhead table).
func noiseReach(goal float64) func(Record) string {
	return func(rec Record) string {
		var lo, hi float64
		if _, err := fmt.Sscanf(rec.Params[AddedCI], "%g to %g", &lo, &hi); err != nil || lo > goal {
			return ""
		}
		return fmt.Sprintf("within noise: the median's 95 %% confidence interval, %s to %s ms, includes %s ms", Num(lo), Num(hi), goalNum(goal))
	}
}

// ratioReach is Reach for the overhead ratios: the goal is out of reach
// when tfsh's fixed cost (a refused command: start, policy, the record,
// exit; no terraform), measured in the same run, is already more than the
// goal's share of plain terraform's time.
func ratioReach(goal float64) func(Record) string {
	return func(rec Record) string {
		fixed, ok1 := rec.Stat("refused command")
		plain, ok2 := rec.Stat("terraform")
		if !ok1 || !ok2 || plain.Median <= 0 || fixed.Median <= (goal-1)*plain.Median {
			return ""
		}
		return fmt.Sprintf("out of reach: tfsh's fixed cost (%s ms, a refused command) is %s %% of this %s ms plan, more than %s %%; nearest: %s",
			Num(fixed.Median), Num(100*fixed.Median/plain.Median), Num(plain.Median), goalNum(math.Round(1000*(goal-1))/10), Num(1+fixed.Median/plain.Median)+" x")
	}
}

// Figures is the summary table of BENCHMARKS.md, in its order. A figure
// that another tool measures is plugged in by adding it here and writing
// its records (any *.jsonl file) into the results directory; until a
// record exists its row reads "not measured".
var Figures = []Figure{
	{Name: "wrapper overhead, ratio (`plan` of the 1-resource lab)", Kind: "overhead", Params: map[string]string{"resources": "0"}, Stat: "ratio", Unit: "x", Goal: 1.03, Reach: ratioReach(1.03)},
	{Name: "wrapper overhead, added by tfsh (`plan` of the 1-resource lab)", Kind: "overhead", Params: map[string]string{"resources": "0"}, Stat: "added", Unit: "ms", Goal: 15, Reach: noiseReach(15)},
	{Name: "wrapper overhead, ratio tfsh / terraform (`plan`, 300 resources)", Kind: "overhead", Params: map[string]string{"resources": "300"}, Stat: "ratio", Unit: "x", Goal: 1.03, Reach: ratioReach(1.03)},
	{Name: "wrapper overhead, added by tfsh (`plan`, 300 resources)", Kind: "overhead", Params: map[string]string{"resources": "300"}, Stat: "added", Unit: "ms", Goal: 15, Reach: noiseReach(15)},
	{Name: "wrapper overhead, ratio tfsh / terraform (`plan`, 1000 resources)", Kind: "overhead", Params: map[string]string{"resources": "1000"}, Stat: "ratio", Unit: "x", Goal: 1.03, Reach: ratioReach(1.03)},
	{Name: "wrapper overhead, added by tfsh (`plan`, 1000 resources)", Kind: "overhead", Params: map[string]string{"resources": "1000"}, Stat: "added", Unit: "ms", Goal: 15, Reach: noiseReach(15)},
	{Name: "wrapper overhead, ratio tfsh / terraform (`plan`, 3000 resources)", Kind: "overhead", Params: map[string]string{"resources": "3000"}, Stat: "ratio", Unit: "x", Goal: 1.03, Reach: ratioReach(1.03)},
	{Name: "wrapper overhead, added by tfsh (`plan`, 3000 resources)", Kind: "overhead", Params: map[string]string{"resources": "3000"}, Stat: "added", Unit: "ms", Goal: 15, Reach: noiseReach(15)},
	{Name: "tfsh's own CPU time per `plan`, 3000 resources (user + system)", Kind: "overhead", Params: map[string]string{"resources": "3000"}, Stat: "tfsh CPU", Unit: "ms"},
	{Name: "start to prompt (local state)", Kind: "prompt", Row: "local", Stat: "start", Unit: "ms", Goal: 50},
	{Name: "completion, 10k resources (one keystroke)", Kind: "gobench", Row: "BenchmarkCompleteAddresses/resources=10000", Stat: "ns/op", Scale: 1e-6, Unit: "ms", Goal: 20},
	{Name: "lock detection delay p95, local (worst of terraform/tofu)", Kind: "detect", Row: "", Params: map[string]string{"backend": "local"}, Stat: "delay", P95: true, Unit: "ms", Goal: 150},
	{Name: "lock detection delay p95, DynamoDB / S3 (worst)", Kind: "detect", Params: map[string]string{"backend": "remote"}, Stat: "delay", P95: true, Unit: "ms", Goal: 300},
	{Name: "acquisitions seen (not inferred), worst backend", Kind: "detect", Stat: "seen", Unit: "%", Goal: 95, AtLeast: true},
	{Name: "lock detection delay p95, local, 8 concurrent sessions", Kind: "detect-sessions", Params: map[string]string{"backend": "local", "sessions": "8"}, Stat: "delay", P95: true, Unit: "ms", Goal: 150},
	{Name: "lock detection delay p95, S3 + DynamoDB, 8 concurrent sessions", Kind: "detect-sessions", Params: map[string]string{"backend": "remote", "sessions": "8"}, Stat: "delay", P95: true, Unit: "ms", Goal: 300},
	{Name: "acquisitions seen, 8 concurrent sessions (worst backend)", Kind: "detect-sessions", Params: map[string]string{"sessions": "8"}, Stat: "seen", Unit: "%", Goal: 95, AtLeast: true},
	{Name: "handoff p95 (tfsh, worst backend)", Kind: "handoff", Row: "`tfsh", Stat: "handoff", P95: true, Unit: "ms", Goal: 500},
	{Name: "handoff p95, ratio tfsh / terraform (worst backend)", Kind: "handoff", Row: "ratio", Stat: "p95 ratio", Unit: "x"},
	{Name: "handoff p95, 4 waiters queued (tfsh, worst backend)", Kind: "handoff-waiters", Row: "tfsh,", Params: map[string]string{"waiters": "4"}, Stat: "handoff", P95: true, Unit: "ms", Goal: 500},
	{Name: "policy evaluation, 50 rules (17 matching)", Kind: "gobench", Row: "BenchmarkDecide50", Stat: "ns/op", Scale: 1e-3, Unit: "µs", Goal: 50},
	{Name: "audit append, batches of 100 (synchronous=NORMAL)", Kind: "gobench", Row: "BenchmarkAppendBatch/sync=NORMAL", Stat: "events/s", Unit: "events/s", Goal: 20000, AtLeast: true},
	{Name: "audit commit of one command (NORMAL)", Kind: "gobench", Row: "BenchmarkCommandCommit/sync=NORMAL", Stat: "ns/op", Scale: 1e-6, Unit: "ms", Goal: 2},
	{Name: "explain a day on 1M events, in process", Kind: "gobench", Row: "BenchmarkExplain1M/explain/day", Stat: "ns/op", Scale: 1e-6, Unit: "ms", Goal: 100},
	{Name: "`tfsh explain` a day on 1M events, end to end", Kind: "audit", Row: "`tfsh explain`", Params: map[string]string{"span": "day", "events": "1000000"}, Stat: "time", Unit: "ms", Goal: 100},
	{Name: "`tfsh audit sessions` on 1M events, end to end (slowest filter)", Kind: "audit", Row: "sessions", Params: map[string]string{"events": "1000000"}, Stat: "time", Unit: "ms", Goal: 100},
	{Name: "verify 1M events, in process", Kind: "gobench", Row: "BenchmarkVerify1M", Params: nil, Stat: "ns/op", Scale: 1e-9, Unit: "s", Goal: 5},
	{Name: "tfsh RSS while streaming 100 MB of output", Kind: "rss", Params: map[string]string{"output_mb": "100"}, Stat: "rss", Unit: "MB", Goal: 40},
	{Name: "verify 1M events with 108k signed anchors, in process", Kind: "gobench", Row: "BenchmarkVerify1MAnchors", Stat: "ns/op", Scale: 1e-9, Unit: "s"},
	{Name: "pull of 100k events from the shared table (dynalite)", Kind: "gobench", Row: "BenchmarkPull/events=100000", Stat: "s-pull", Unit: "s", Goal: 10},
	{Name: "shipping to the shared table, added to a command (median)", Kind: "gobench", Row: "BenchmarkShipCost", Stat: "ms-added-p50", Unit: "ms", Goal: 2},
	{Name: "`tfsh watch` requests/s per state (table, 100 states, 1 s interval)", Kind: "watch", Row: "table", Params: map[string]string{"states": "100"}, Stat: "requests/s per state", Unit: "req/s"},
}

// match reports whether rec is one of the figure's records.
func (f Figure) match(rec Record) bool {
	if rec.Kind != f.Kind || !strings.HasPrefix(rec.Row, f.Row) {
		return false
	}
	// A benchmark's prefix must not match its longer siblings
	// (BenchmarkVerify1M against BenchmarkVerify1MAnchors).
	if f.Kind == "gobench" && rec.Row != f.Row && !strings.HasPrefix(rec.Row, f.Row+"/") {
		return false
	}
	for k, v := range f.Params {
		if rec.Params[k] != v {
			return false
		}
	}
	_, ok := rec.Stat(f.Stat)
	return ok
}

func (f Figure) value(s Stat) float64 {
	v := s.Median
	if f.P95 {
		v = s.P95
	}
	return v * f.scale()
}

func (f Figure) scale() float64 {
	if f.Scale == 0 {
		return 1
	}
	return f.Scale
}

// Summary renders the summary table from recs.
func Summary(recs []Record) string {
	var b strings.Builder
	b.WriteString("| figure | measured: median (min–max) | goal | met? |\n|---|---|---|---|\n")
	for _, f := range Figures {
		var best *Stat
		var bestRec Record
		for _, rec := range recs {
			if !f.match(rec) {
				continue
			}
			s, _ := rec.Stat(f.Stat)
			if s.N == 0 {
				continue
			}
			worse := best == nil || (f.AtLeast && f.value(s) < f.value(*best)) || (!f.AtLeast && f.value(s) > f.value(*best))
			if worse {
				s := s
				best, bestRec = &s, rec
			}
		}
		goal := ""
		if f.Goal != 0 {
			op := "≤"
			if f.AtLeast {
				op = "≥"
			}
			goal = op + " " + goalNum(f.Goal) + " " + f.Unit
		}
		if best == nil {
			note := "not measured"
			if f.Note != "" {
				note += " (" + f.Note + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | |\n", f.Name, note, goal)
			continue
		}
		sc := f.scale()
		measured := fmt.Sprintf("%s %s (%s–%s)", Num(best.Median*sc), f.Unit, Num(best.Min*sc), Num(best.Max*sc))
		if f.P95 {
			measured = fmt.Sprintf("p95 %s %s; median %s (%s–%s)", Num(best.P95*sc), f.Unit, Num(best.Median*sc), Num(best.Min*sc), Num(best.Max*sc))
		}
		if best.N == 1 {
			measured = Num(f.value(*best)) + " " + f.Unit + " (one run)"
		}
		if bestRec.Kind != "gobench" && bestRec.Row != "" && len(recsMatching(recs, f)) > 1 {
			measured += ", " + bestRec.Row
		}
		met := ""
		if f.Goal != 0 {
			v := f.value(*best)
			switch {
			case (f.AtLeast && v >= f.Goal) || (!f.AtLeast && v <= f.Goal):
				met = "yes"
			case f.Reach != nil && f.Reach(bestRec) != "":
				met = "**no**, " + f.Reach(bestRec)
			default:
				met = "**no**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Name, measured, goal, met)
	}
	return b.String()
}

func recsMatching(recs []Record, f Figure) []Record {
	var out []Record
	for _, r := range recs {
		if f.match(r) {
			out = append(out, r)
		}
	}
	return out
}

// Table renders the records selected by a region name: "KIND" or
// "KIND:ROWPREFIX" (gobench:BenchmarkDecide). Columns: the row, each
// parameter, each stat as "median (min–max)"; the commands follow the
// table. No record gives "not measured in this run".
func Table(recs []Record, region string) string {
	kind, prefix, _ := strings.Cut(region, ":")
	var sel []Record
	for _, r := range recs {
		if r.Kind == kind && strings.HasPrefix(r.Row, prefix) {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		return "Not measured in this run.\n"
	}
	var params, stats []string
	units := map[string]string{}
	for _, r := range sel {
		for k := range r.Params {
			if !slices.Contains(params, k) {
				params = append(params, k)
			}
		}
		for _, s := range r.Stats {
			if !slices.Contains(stats, s.Name) {
				stats = append(stats, s.Name)
				units[s.Name] = s.Unit
			}
		}
	}
	sort.Strings(params)
	// Nanoseconds per op read better in the largest unit every row has.
	scale := map[string]float64{}
	for _, name := range stats {
		if units[name] != "ns/op" {
			continue
		}
		low := math.Inf(1)
		for _, r := range sel {
			if st, ok := r.Stat(name); ok && st.N > 0 {
				low = min(low, st.Median)
			}
		}
		switch {
		case low >= 1e6:
			scale[name], units[name] = 1e-6, "ms/op"
		case low >= 1e3:
			scale[name], units[name] = 1e-3, "µs/op"
		}
	}
	var b strings.Builder
	b.WriteString("| " + firstColumn(kind))
	for _, p := range params {
		b.WriteString(" | " + p)
	}
	for _, s := range stats {
		h := s
		if u := units[s]; u != "" && u != s {
			h += " (" + u + ")"
		}
		if _, ok := scale[s]; ok {
			h = units[s]
		}
		b.WriteString(" | " + h)
	}
	b.WriteString(" |\n|---" + strings.Repeat("|---", len(params)+len(stats)) + "|\n")
	var commands []string
	loads := map[string][]string{}
	for _, r := range sel {
		b.WriteString("| " + r.Row)
		for _, p := range params {
			b.WriteString(" | " + r.Params[p])
		}
		for _, name := range stats {
			s, ok := r.Stat(name)
			b.WriteString(" | ")
			if ok {
				if k, scaled := scale[name]; scaled {
					s.Median, s.Min, s.Max, s.P95 = s.Median*k, s.Min*k, s.Max*k, s.P95*k
				}
				b.WriteString(cell(s))
			}
		}
		b.WriteString(" |\n")
		if r.Command != "" && !slices.Contains(commands, r.Command) {
			commands = append(commands, r.Command)
		}
		if r.Load != "" && !slices.Contains(loads[r.Command], r.Load) {
			loads[r.Command] = append(loads[r.Command], r.Load)
		}
	}
	if len(commands) > 0 {
		b.WriteString("\n")
		for _, c := range commands {
			b.WriteString("Command: `" + c + "`")
			switch l := loads[c]; len(l) {
			case 0:
			case 1, 2:
				b.WriteString(" (load average " + strings.Join(l, "; ") + ")")
			default:
				b.WriteString(" (load average " + l[0] + " at the start, " + l[len(l)-1] + " at the end)")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func firstColumn(kind string) string {
	switch kind {
	case "gobench":
		return "benchmark"
	case "prompt-log":
		return "audit log"
	}
	return kind
}

// cell shows a stat: one value, or median (min–max), with the p95 when
// there are enough samples for one to mean something.
func cell(s Stat) string {
	switch {
	case s.N == 0:
		return "–"
	case s.N == 1 || s.Min == s.Max:
		return Num(s.Median)
	case s.N >= 10:
		return fmt.Sprintf("%s (%s–%s, p95 %s)", Num(s.Median), Num(s.Min), Num(s.Max), Num(s.P95))
	}
	return fmt.Sprintf("%s (%s–%s)", Num(s.Median), Num(s.Min), Num(s.Max))
}

func goalNum(x float64) string {
	if x >= 10000 {
		return Num(x)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// Num formats a figure to about three significant digits (whole numbers
// without decimals), with thousands separated.
func Num(x float64) string {
	a := x
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 10000:
		s := fmt.Sprintf("%.0f", a)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		if x < 0 {
			s = "-" + s
		}
		return s
	case a >= 100 || x == float64(int64(x)):
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.3f", x)
}

var regionRE = regexp.MustCompile(`(?s)(<!-- bench:([^ ]+) -->\n).*?(<!-- /bench:([^ ]+) -->)`)

// Render replaces the content of every marked region of doc:
//
//	<!-- bench:NAME -->
//	…
//	<!-- /bench:NAME -->
//
// "header" gets the run's header, "summary" the summary table, any other
// NAME the Table of that name. Text outside the regions is kept as it is.
func Render(doc string, recs []Record, h Header) (string, error) {
	var err error
	out := regionRE.ReplaceAllStringFunc(doc, func(m string) string {
		sub := regionRE.FindStringSubmatch(m)
		name := sub[2]
		if sub[4] != name {
			err = fmt.Errorf("region bench:%s closed by /bench:%s", name, sub[4])
			return m
		}
		var body string
		switch name {
		case "header":
			body = h.Markdown()
		case "summary":
			body = Summary(recs)
		default:
			body = Table(recs, name)
		}
		return sub[1] + body + sub[3]
	})
	return out, err
}
