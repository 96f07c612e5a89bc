package result

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const doc = `# Benchmarks

Prose before, kept.

<!-- bench:header -->
old header
<!-- /bench:header -->

<!-- bench:summary -->
| figure | measured | goal | met? |
| old row | 99 ms | ≤ 15 ms | yes |
<!-- /bench:summary -->

## Overhead

Reasoning that stays.

<!-- bench:overhead -->
| stale | 1.48 |
<!-- /bench:overhead -->

<!-- bench:gobench:BenchmarkDecide -->
stale decide table
<!-- /bench:gobench:BenchmarkDecide -->

History below, kept.
`

const gobench = `# command: go test ./policy -run XXX -bench Decide -count 3
# load: 0.50 0.40 0.30
goos: linux
BenchmarkDecide50-2        	   30000	     34000 ns/op	  9000 B/op	     278 allocs/op
BenchmarkDecide50-2        	   30000	     36000 ns/op	  9000 B/op	     278 allocs/op
BenchmarkDecide50-2        	   30000	     60000 ns/op	  9000 B/op	     278 allocs/op
BenchmarkDecide50Quiet-2   	  100000	     12000 ns/op
PASS
`

func TestRender(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.gobench"), []byte(gobench), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Append(dir, "overhead.jsonl", Record{Kind: "overhead", Row: "plan", Params: map[string]string{"resources": "300"},
		Stats: []Stat{Of("ratio", "x", []float64{1.02, 1.01, 1.05}), Of("added", "ms", []float64{5, 4, 9.5})}, Command: "go run ./internal/bench -resources 300"})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (overhead, Decide50, Decide50Quiet): %+v", len(recs), recs)
	}
	h := Header{Start: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 26, 6, 20, 0, 0, time.UTC), CPUs: 2, Command: "make bench", LoadBefore: "1.00 1.00 1.00", LoadAfter: "2.00 2.00 2.00"}
	got, err := Render(doc, recs, h)
	if err != nil {
		t.Fatal(err)
	}
	// Text outside the regions is untouched.
	for _, keep := range []string{"Prose before, kept.\n", "Reasoning that stays.\n", "History below, kept.\n", "## Overhead\n"} {
		if !strings.Contains(got, keep) {
			t.Errorf("lost %q", keep)
		}
	}
	strip := func(s string) string { return regionRE.ReplaceAllString(s, "") }
	if strip(got) != strip(doc) {
		t.Errorf("outside the regions:\n%s\nwant\n%s", strip(got), strip(doc))
	}
	// Stale content is gone; the regions hold the new tables.
	for _, stale := range []string{"old header", "old row", "| stale |", "stale decide table"} {
		if strings.Contains(got, stale) {
			t.Errorf("stale %q still there", stale)
		}
	}
	for _, want := range []string{
		"| plan | 300 | 1.02 (1.01–1.05) | 5 (4–9.50) |",
		"Command: `go run ./internal/bench -resources 300` (load average ",
		"| benchmark | µs/op | B/op | allocs/op |",
		"| BenchmarkDecide50 | 36 (34–60) |",
		"Command: `go run ./policy",
		"| policy evaluation, 50 rules (17 matching) | 36 µs (34–60) | ≤ 50 µs | yes |",
		"| wrapper overhead, added by tfsh (`plan`, 300 resources) | 5 ms (4–9.50) | ≤ 15 ms | yes |",
		"2026-11-26 06:00 to 06:20 UTC, 20m0s",
		"1.00 1.00 1.00 before, 2.00 2.00 2.00 after",
	} {
		if want == "Command: `go run ./policy" {
			want = "Command: `go test ./policy -run XXX -bench Decide -count 3` (load average 0.50 0.40 0.30)"
		}
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	// A figure with no result says so instead of keeping a number.
	for _, want := range []string{
		"| wrapper overhead, ratio (`plan` of the 1-resource lab) | not measured | ≤ 1.03 x | |",
		"| pull of 100k events from the shared table (dynalite) | not measured | ≤ 10 s | |",
		"| tfsh RSS while streaming 100 MB of output | not measured | ≤ 40 MB | |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	// Rendering again from no results empties every table.
	again, err := Render(got, nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(again, "36,000") || !strings.Contains(again, "<!-- bench:overhead -->\nNot measured in this run.\n<!-- /bench:overhead -->") {
		t.Errorf("results left after rendering with none:\n%s", again)
	}
}

func TestRenderMismatchedRegion(t *testing.T) {
	_, err := Render("<!-- bench:a -->\nx\n<!-- /bench:b -->\n", nil, Header{})
	if err == nil {
		t.Fatal("no error for a region closed by another name")
	}
}

func TestMissedGoal(t *testing.T) {
	recs := []Record{{Kind: "overhead", Row: "plan", Params: map[string]string{"resources": "300"}, Stats: []Stat{Of("ratio", "x", []float64{1.10, 1.08, 1.2})}}}
	got := Summary(recs)
	if !strings.Contains(got, "| 1.10 x (1.08–1.20) | ≤ 1.03 x | **no** |") {
		t.Fatalf("missed goal not flagged:\n%s", got)
	}
}

// A missed ratio is out of reach when the same run's refused command (the
// fixed cost) is itself more than the goal's share of the plan; the row
// says so and names the nearest ratio. When the fixed cost fits, a miss is
// a plain miss.
func TestMissedGoalOutOfReach(t *testing.T) {
	rec := func(plain, fixed float64) Record {
		return Record{Kind: "overhead", Row: "plan", Params: map[string]string{"resources": "300"}, Stats: []Stat{
			Of("terraform", "ms", []float64{plain}), Of("refused command", "ms", []float64{fixed, fixed}),
			Of("ratio", "x", []float64{1.10, 1.08, 1.2})}}
	}
	got := Summary([]Record{rec(190, 12)})
	want := "| ≤ 1.03 x | **no**, out of reach: tfsh's fixed cost (12 ms, a refused command) is 6.32 % of this 190 ms plan, more than 3 %; nearest: 1.06 x |"
	if !strings.Contains(got, want) {
		t.Fatalf("missing %q in\n%s", want, got)
	}
	got = Summary([]Record{rec(1000, 12)})
	if !strings.Contains(got, "| 1.10 x (1.08–1.20) | ≤ 1.03 x | **no** |") {
		t.Fatalf("a reachable miss is not a plain miss:\n%s", got)
	}
}

func TestWorstOfSeveral(t *testing.T) {
	recs := []Record{
		{Kind: "detect", Row: "terraform, local", Params: map[string]string{"backend": "local"}, Stats: []Stat{Of("delay", "ms", []float64{1, 2, 3}), One("seen", "%", 100)}},
		{Kind: "detect", Row: "tofu, local", Params: map[string]string{"backend": "local"}, Stats: []Stat{Of("delay", "ms", []float64{1, 2, 200}), One("seen", "%", 90)}},
	}
	got := Summary(recs)
	for _, want := range []string{"p95 200 ms; median 2 (1–200), tofu, local | ≤ 150 ms | **no** |", "| 90 % (one run), tofu, local | ≥ 95 % | **no** |"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// A missed added time whose confidence interval includes the goal is
// within noise, and says so with the interval; one whose interval is above
// the goal is a plain miss.
func TestMissedGoalWithinNoise(t *testing.T) {
	rec := func(ci string) Record {
		return Record{Kind: "overhead", Row: "plan", Params: map[string]string{"resources": "1000", AddedCI: ci}, Stats: []Stat{
			Of("added", "ms", []float64{-40, 23, 90})}}
	}
	got := Summary([]Record{rec("4.5 to 41.2")})
	if want := "**no**, within noise: the median's 95 % confidence interval, 4.50 to 41.2 ms, includes 15 ms |"; !strings.Contains(got, want) {
		t.Fatalf("missing %q in\n%s", want, got)
	}
	got = Summary([]Record{rec("16.2 to 41.2")})
	if !strings.Contains(got, "| ≤ 15 ms | **no** |") {
		t.Fatalf("a miss outside the interval is not a plain miss:\n%s", got)
	}
}

func TestMedianCI95(t *testing.T) {
	xs := make([]float64, 30)
	for i := range xs {
		xs[29-i] = float64(i + 1) // 30 .. 1, unsorted
	}
	if lo, hi := MedianCI95(xs); lo != 10 || hi != 21 {
		t.Fatalf("MedianCI95(1..30) = %v, %v; want 10, 21 (P(X ≤ 9) = 2.1 %% for Binomial(30, ½))", lo, hi)
	}
	if lo, hi := MedianCI95([]float64{3, 1, 2}); lo != 1 || hi != 3 {
		t.Fatalf("three samples: %v, %v; want the range", lo, hi)
	}
}
