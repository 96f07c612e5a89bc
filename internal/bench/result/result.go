// Package result is the machine-readable form of the benchmark figures:
// records that internal/bench and `go test -bench` runs leave in a results
// directory, and the rendering of those records into the marked regions of
// BENCHMARKS.md.
//
// A results directory holds:
//
//	*.jsonl     one Record per line (internal/bench -results DIR, or any
//	            other tool: a new kind of figure is a new file)
//	*.gobench   the output of `go test -bench`, its first line
//	            "# command: THE COMMAND"
//	header.json the Header (machine, versions, load before the run)
package result

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stat is one measured quantity of a Record: its median, extremes and 95th
// percentile over N samples, in Unit.
type Stat struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit,omitempty"`
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	P95    float64 `json:"p95"`
}

// Of summarises samples. An empty sample gives a Stat with N 0.
func Of(name, unit string, xs []float64) Stat {
	st := Stat{Name: name, Unit: unit, N: len(xs)}
	if len(xs) == 0 {
		return st
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	st.Min, st.Max = s[0], s[n-1]
	if n%2 == 1 {
		st.Median = s[n/2]
	} else {
		st.Median = (s[n/2-1] + s[n/2]) / 2
	}
	st.P95 = s[min(n-1, int(math.Ceil(0.95*float64(n)))-1)]
	return st
}

// MedianCI95 is a distribution-free confidence interval of at least 95 %
// for the median of xs: the order statistics k and n+1−k, with k the
// largest for which Binomial(n, ½) ≤ k−1 has probability at most 2.5 %.
// It holds whatever the shape of the noise. With fewer than 6 samples it
// is the range (which then covers less).
func MedianCI95(xs []float64) (lo, hi float64) {
	n := len(xs)
	if n == 0 {
		return 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k, cdf, term := 0, 0.0, math.Pow(0.5, float64(n)) // term: P(X = j)
	for j := 0; j < n && cdf+term <= 0.025; j++ {
		cdf += term
		k = j + 1
		term *= float64(n-j) / float64(j+1)
	}
	if k < 1 {
		k = 1
	}
	return s[k-1], s[n-k]
}

// One is a Stat of a single value (a count, a share).
func One(name, unit string, x float64) Stat { return Of(name, unit, []float64{x}) }

// Record is one row of a figure's table: Kind names the figure (the
// region bench:KIND of BENCHMARKS.md), Row the row within it, Params what
// the row was measured at (resources, events, sessions), Stats its values
// in column order, Command the exact command that produced it.
type Record struct {
	Kind    string            `json:"kind"`
	Row     string            `json:"row"`
	Params  map[string]string `json:"params,omitempty"`
	Stats   []Stat            `json:"stats"`
	Command string            `json:"command"`
	At      time.Time         `json:"at"`
	Load    string            `json:"load,omitempty"` // the load average when it was written
}

// Stat returns the record's Stat of that name.
func (r Record) Stat(name string) (Stat, bool) {
	for _, s := range r.Stats {
		if s.Name == name {
			return s, true
		}
	}
	return Stat{}, false
}

// Append adds rec as one line to dir/file.
func Append(dir, file string, rec Record) error {
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	if rec.Load == "" {
		rec.Load = LoadAvg()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadDir reads every record of a results directory: the *.jsonl files and
// the *.gobench outputs, in file name order.
func ReadDir(dir string) ([]Record, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Record
	for _, name := range names {
		switch filepath.Ext(name) {
		case ".jsonl":
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, err
			}
			for i, line := range strings.Split(string(b), "\n") {
				if strings.TrimSpace(line) == "" {
					continue
				}
				var r Record
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
				}
				out = append(out, r)
			}
		case ".gobench":
			f, err := os.Open(name)
			if err != nil {
				return nil, err
			}
			recs, err := ParseGoBench(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, recs...)
		}
	}
	return out, nil
}

// ParseGoBench reads `go test -bench` output: one record of kind "gobench"
// per benchmark (its name without the -GOMAXPROCS suffix), one Stat per
// metric over the runs of -count. Lines "# command: …" and "# load: …"
// before the output are the records' Command and Load.
func ParseGoBench(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	command, load := "", ""
	type acc struct {
		order []string
		vals  map[string][]float64
	}
	accs := map[string]*acc{}
	var names []string
	for sc.Scan() {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "# command: "); ok && command == "" {
			command = strings.TrimSpace(c)
			continue
		}
		if l, ok := strings.CutPrefix(line, "# load: "); ok && load == "" {
			load = strings.TrimSpace(l)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		a := accs[name]
		if a == nil {
			a = &acc{vals: map[string][]float64{}}
			accs[name] = a
			names = append(names, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if _, ok := a.vals[unit]; !ok {
				a.order = append(a.order, unit)
			}
			a.vals[unit] = append(a.vals[unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []Record
	for _, name := range names {
		a := accs[name]
		rec := Record{Kind: "gobench", Row: name, Command: command, Load: load}
		for _, unit := range a.order {
			rec.Stats = append(rec.Stats, Of(unit, unit, a.vals[unit]))
		}
		out = append(out, rec)
	}
	return out, nil
}
