// Command bench measures tfsh against plain terraform on examples/lab and
// prints the Markdown rows recorded in BENCHMARKS.md. Run it through
// scripts/bench.sh (make bench), which builds what it needs.
//
// Comparisons are paired: each round runs plain terraform and tfsh back to
// back, in a random order, so drift in the machine's load hits both sides.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tfsh/tfsh/internal/bench/result"
	"github.com/tfsh/tfsh/internal/lab"
)

func main() {
	if os.Getenv("TFSH_BENCH_HELPER") == "commit" {
		commitHelper()
		return
	}
	tfsh := flag.String("tfsh", "bin/tfsh", "tfsh binary")
	tf := flag.String("terraform", "", "terraform binary")
	example := flag.String("example", "examples/lab", "configuration to plan")
	rounds := flag.Int("rounds", 30, "paired rounds")
	baseline := flag.String("baseline", "", "another tfsh binary (an earlier build) measured in the same rounds as -tfsh, for a paired before/after")
	resources := flag.Int("resources", 0, "add this many terraform_data resources to the configuration (a larger, more realistic plan)")
	detectN := flag.Int("detect", 0, "instead: measure lock detection over this many plans per backend (needs -tofu too, and the lab's dynalite)")
	detectLevels := flag.String("detect-sessions", "", "with -detect N: instead, N plans in each of this many concurrent sessions, each on its own state, one audit log (comma-separated, e.g. 1,4,8; local and S3 + DynamoDB, terraform only)")
	tofu := flag.String("tofu", "", "tofu binary, for -detect")
	promptN := flag.Int("prompt", 0, "instead: measure the go-prompt shell over this many starts per backend")
	policyN := flag.Int("policy", 0, "instead: measure what loading policy files adds to a start, over this many paired rounds")
	auditN := flag.Int("audit", 0, "instead: measure tfsh audit sessions, explain and report end to end on generated logs (-audit-events), this many runs per case (no terraform needed)")
	promptEvents := flag.String("prompt-events", "", "with -prompt: also start on copies of generated logs of these sizes, comma-separated")
	auditEvents := flag.String("audit-events", "1000000", "with -audit: the sizes of the generated logs, comma-separated")
	backends := flag.String("backends", "", "with -handoff: only these lab examples, comma-separated (., s3-dynamodb, s3-lockfile)")
	rssSizes := flag.String("rss", "", "instead: measure tfsh's peak RSS while `tfsh run -- plan` streams these many MB of output (comma-separated, e.g. 1,10,100), -rounds times each, through a fake terraform built from internal/bench/faketf")
	procs := flag.String("procs", "", "instead: measure audit commits from this many concurrent processes on one log (comma-separated, e.g. 1,2,4,8), -rounds times each (no terraform needed)")
	flag.StringVar(&resultsDir, "results", "", "also write each row as a JSON record (internal/bench/result) into this directory")
	handoffWaitersList := flag.String("handoff-waiters", "", "with -handoff N: instead, N rounds of a holder with this many waiters queued behind it, comma-separated (local and S3 + DynamoDB)")
	handoffN := flag.Int("handoff", 0, "instead: measure lock handoff (release to next acquisition), this many handoffs per waiter and backend, plain terraform against tfsh (-tofu adds the S3 lockfile; needs the lab's dynalite)")
	watchN := flag.Int("watch", 0, "instead: measure tfsh watch's requests per poll for 1, 10 and 100 states, this many polls at 1s per row (needs the lab's dynalite; no terraform)")
	flag.Parse()
	if *watchN > 0 {
		watchBench(*watchN)
		return
	}
	if *auditN > 0 {
		a, err := filepath.Abs(*tfsh)
		if err != nil {
			fail(err.Error())
		}
		tfPath := *tf
		if tfPath != "" {
			if tfPath, err = filepath.Abs(tfPath); err != nil {
				fail(err.Error())
			}
		}
		auditBench(a, tfPath, *auditN, counts("-audit-events", *auditEvents, "numbers of events, like 100000,1000000"))
		return
	}
	if *procs != "" {
		procsBench(*procs, *rounds)
		return
	}
	if *rssSizes != "" {
		a, err := filepath.Abs(*tfsh)
		if err != nil {
			fail(err.Error())
		}
		rssBench(a, *rssSizes, *rounds)
		return
	}
	if *tf == "" {
		fail("give -terraform")
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fail(err.Error())
		}
		return a
	}
	*tfsh, *tf = abs(*tfsh), abs(*tf)
	if *handoffN > 0 && *handoffWaitersList != "" {
		handoffWaiters(*tfsh, *tf, abs(*example), *handoffN, counts("-handoff-waiters", *handoffWaitersList, "numbers of waiters, like 1,2,4"))
		return
	}
	if *handoffN > 0 {
		if *tofu != "" {
			*tofu = abs(*tofu)
		}
		handoffBench(*tfsh, *tf, *tofu, abs(*example), *handoffN, *backends)
		return
	}
	if *policyN > 0 {
		policyBench(*tfsh, *tf, abs(*example), *policyN)
		return
	}
	if *promptN > 0 {
		var sizes []int
		if *promptEvents != "" {
			sizes = counts("-prompt-events", *promptEvents, "numbers of events, like 100000,1000000")
		}
		promptBench(*tfsh, *tf, abs(*example), *promptN, sizes)
		return
	}
	if *detectN > 0 && *detectLevels != "" {
		detectSessions(*tfsh, *tf, abs(*example), *detectN, counts("-detect-sessions", *detectLevels, "numbers of sessions, like 1,4,8"))
		return
	}
	if *detectN > 0 {
		if *tofu != "" {
			*tofu = abs(*tofu)
		}
		detect(*tfsh, *tf, *tofu, abs(*example), *detectN)
		return
	}

	work, err := os.MkdirTemp("", "tfsh-bench-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "lab")
	copyConfig(abs(*example), dir)
	if *resources > 0 {
		var b strings.Builder
		for i := 0; i < *resources; i++ {
			fmt.Fprintf(&b, "resource \"terraform_data\" \"r%d\" {\n  input = \"value-%d\"\n}\n", i, i)
		}
		if err := os.WriteFile(filepath.Join(dir, "bench_resources.tf"), []byte(b.String()), 0o644); err != nil {
			fail(err.Error())
		}
	}
	env := benchEnv(work, *tf)
	run(env, dir, *tf, "init", "-input=false")
	run(env, dir, *tf, "apply", "-auto-approve", "-input=false")

	plain := []string{*tf, "plan", "-input=false"}
	wrapped := []string{*tfsh, "run", "--", "plan", "-input=false"}
	refused := []string{*tfsh, "-c", "apply -lock=false -auto-approve"}
	var before []string
	if *baseline != "" {
		before = []string{abs(*baseline), "run", "--", "plan", "-input=false"}
	}
	// Warm each (page cache, tfsh's version cache, audit log creation).
	for i := 0; i < 3; i++ {
		timed(env, dir, plain)
		timed(env, dir, wrapped)
		if before != nil {
			timed(env, dir, before)
		}
	}

	// Each round runs every arm once, in a random order. tfsh's own CPU
	// time (TFSH_RUSAGE: without terraform's) is the figure that noise on
	// a shared machine moves least.
	var pt, wt, ratios, added, bt, bratios, gain []float64
	cpuFile := [3]string{"", filepath.Join(work, "rusage-tfsh.jsonl"), filepath.Join(work, "rusage-baseline.jsonl")}
	for i := 0; i < *rounds; i++ {
		arms := []int{0, 1}
		if before != nil {
			arms = append(arms, 2)
		}
		rand.Shuffle(len(arms), func(i, j int) { arms[i], arms[j] = arms[j], arms[i] })
		var d [3]time.Duration
		for _, arm := range arms {
			armEnv := env
			if cpuFile[arm] != "" {
				armEnv = append(slices.Clip(env), "TFSH_RUSAGE="+cpuFile[arm])
			}
			d[arm] = timed(armEnv, dir, [][]string{plain, wrapped, before}[arm])
		}
		pt = append(pt, ms(d[0]))
		wt = append(wt, ms(d[1]))
		ratios = append(ratios, float64(d[1])/float64(d[0]))
		added = append(added, ms(d[1]-d[0]))
		if before != nil {
			bt = append(bt, ms(d[2]))
			bratios = append(bratios, float64(d[2])/float64(d[0]))
			gain = append(gain, ms(d[2]-d[1]))
		}
	}
	var rt []float64
	for i := 0; i < *rounds; i++ {
		rt = append(rt, ms(timedExpect(env, dir, refused, 3)))
	}
	if resultsDir != "" {
		// One more plan with a CPU profile of tfsh, kept with the results
		// (go tool pprof bin/tfsh FILE) rather than in git.
		prof := filepath.Join(resultsDir, fmt.Sprintf("overhead-%d.pprof", *resources))
		if err := os.MkdirAll(resultsDir, 0o755); err != nil {
			fail(err.Error())
		}
		timed(append(slices.Clip(env), "TFSH_CPUPROFILE="+prof), dir, wrapped)
	}

	host, _ := os.Hostname()
	fmt.Printf("Machine: %s, %d CPUs, %s/%s, %s. Date: %s. %s. %d paired rounds. Configuration: %s plus %d terraform_data resources.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02"), version(env, *tf), *rounds, *example, *resources)
	fmt.Println("| figure | median | min | max | goal |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| `terraform plan` (ms) | %.1f | %.1f | %.1f | |\n", median(pt), minOf(pt), maxOf(pt))
	fmt.Printf("| `tfsh run -- plan` (ms) | %.1f | %.1f | %.1f | |\n", median(wt), minOf(wt), maxOf(wt))
	fmt.Printf("| ratio tfsh / terraform | %.3f | %.3f | %.3f | ≤ 1.03 |\n", median(ratios), minOf(ratios), maxOf(ratios))
	fmt.Printf("| added by tfsh (ms) | %.1f | %.1f | %.1f | ≤ 15 |\n", median(added), minOf(added), maxOf(added))
	fmt.Printf("| refused command, `tfsh -c 'apply -lock=false'` (ms) | %.1f | %.1f | %.1f | |\n", median(rt), minOf(rt), maxOf(rt))
	cpu, bcpu := rusageMS(cpuFile[1]), rusageMS(cpuFile[2])
	if len(cpu) > 0 {
		fmt.Printf("| tfsh's own CPU time, user + system (ms) | %.1f | %.1f | %.1f | |\n", median(cpu), minOf(cpu), maxOf(cpu))
	}
	if before != nil {
		fmt.Printf("| baseline `%s run -- plan` (ms) | %.1f | %.1f | %.1f | |\n", *baseline, median(bt), minOf(bt), maxOf(bt))
		if len(bcpu) > 0 {
			fmt.Printf("| baseline's own CPU time (ms) | %.1f | %.1f | %.1f | |\n", median(bcpu), minOf(bcpu), maxOf(bcpu))
		}
		fmt.Printf("| baseline ratio / terraform | %.3f | %.3f | %.3f | |\n", median(bratios), minOf(bratios), maxOf(bratios))
		fmt.Printf("| baseline − tfsh, paired (ms; > 0: tfsh is faster) | %.1f | %.1f | %.1f | |\n", median(gain), minOf(gain), maxOf(gain))
		emit("overhead-baseline", result.Record{Kind: "overhead-baseline", Row: "`plan`, " + filepath.Base(*example) + ", against " + *baseline,
			Params: map[string]string{"resources": strconv.Itoa(*resources), "rounds": strconv.Itoa(*rounds)},
			Stats: []result.Stat{result.Of("terraform", "ms", pt), result.Of("baseline", "ms", bt), result.Of("tfsh", "ms", wt),
				result.Of("baseline ratio", "x", bratios), result.Of("tfsh ratio", "x", ratios), result.Of("baseline − tfsh", "ms", gain)}})
	}
	lo, hi := result.MedianCI95(added)
	fmt.Printf("\nThe median added is %.1f ms; its 95 %% confidence interval (order statistics of the %d paired rounds) is %.1f to %.1f ms.\n", median(added), len(added), lo, hi)
	emit("overhead", result.Record{Kind: "overhead", Row: "`plan`, " + filepath.Base(*example),
		Params: map[string]string{"resources": strconv.Itoa(*resources), "rounds": strconv.Itoa(*rounds),
			result.AddedCI: fmt.Sprintf("%s to %s", result.Num(lo), result.Num(hi))},
		Stats: append([]result.Stat{result.Of("terraform", "ms", pt), result.Of("tfsh", "ms", wt), result.Of("ratio", "x", ratios),
			result.Of("added", "ms", added), result.Of("refused command", "ms", rt)}, cpuStats("tfsh CPU", cpu)...)})
}

// counts parses a flag's comma-separated list of positive numbers.
func counts(name, list, want string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Sprintf("%s %q: give %s", name, list, want))
		}
		out = append(out, n)
	}
	return out
}

// startLab starts the lab's S3 and DynamoDB servers and a work directory;
// stop ends all three.
func startLab(prefix string) (s3srv *lab.S3, dyn *lab.Dynamo, work string, stop func()) {
	ctx := context.Background()
	s3srv, err := lab.StartS3(ctx)
	if err != nil {
		fail(err.Error())
	}
	dyn, err = lab.StartDynamo(ctx)
	if err != nil {
		s3srv.Close()
		fail(err.Error())
	}
	work, err = os.MkdirTemp("", prefix)
	if err != nil {
		s3srv.Close()
		dyn.Close()
		fail(err.Error())
	}
	return s3srv, dyn, work, func() {
		os.RemoveAll(work)
		dyn.Close()
		s3srv.Close()
	}
}

// rusageMS reads the lines TFSH_RUSAGE appended: tfsh's user + system CPU
// time per run, in ms.
func rusageMS(path string) []float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []float64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ru struct {
			User int64 `json:"user_us"`
			Sys  int64 `json:"sys_us"`
		}
		if json.Unmarshal([]byte(line), &ru) == nil {
			out = append(out, float64(ru.User+ru.Sys)/1000)
		}
	}
	return out
}

// cpuStats is the stat of tfsh's CPU times, none when there are none.
func cpuStats(name string, ms []float64) []result.Stat {
	if len(ms) == 0 {
		return nil
	}
	return []result.Stat{result.Of(name, "ms", ms)}
}

// resultsDir is -results: where emit writes records.
var resultsDir string

// emit writes rec into resultsDir/NAME.jsonl, with the command that made
// it, when -results is given.
func emit(name string, rec result.Record) {
	if resultsDir == "" {
		return
	}
	if rec.Command == "" {
		rec.Command = commandLine()
	}
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		fail(err.Error())
	}
	if err := result.Append(resultsDir, name+".jsonl", rec); err != nil {
		fail(err.Error())
	}
}

// commandLine is how this run was started, as `go run` from the
// repository, without -results and with the home directory as ~.
func commandLine() string {
	args := []string{"go", "run", "./internal/bench"}
	home, _ := os.UserHomeDir()
	skip := false
	for _, a := range os.Args[1:] {
		switch {
		case skip:
			skip = false
			continue
		case a == "-results" || a == "--results":
			skip = true
			continue
		case strings.HasPrefix(a, "-results=") || strings.HasPrefix(a, "--results="):
			continue
		}
		if home != "" && strings.HasPrefix(a, home+"/") {
			a = "~" + a[len(home):]
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func benchEnv(work, tf string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "TF_CLI_CONFIG_FILE" || strings.HasPrefix(k, "TF_LOG") || strings.HasPrefix(k, "TF_CLI_ARGS") || strings.HasPrefix(k, "TFSH_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"CHECKPOINT_DISABLE=1",
		"TFSH_TERRAFORM="+tf,
		"TFSH_AUDIT_DB="+filepath.Join(work, "audit.db"),
		"XDG_CACHE_HOME="+filepath.Join(work, "cache"),
	)
}

func run(env []string, dir string, argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		fail(fmt.Sprintf("%s: %v\n%s", strings.Join(argv, " "), err, out))
	}
}

func timed(env []string, dir string, argv []string) time.Duration {
	return timedExpect(env, dir, argv, 0)
}

func timedExpect(env []string, dir string, argv []string, code int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if got := cmd.ProcessState.ExitCode(); got != code {
		fail(fmt.Sprintf("%s: exit %d (%v), want %d\n%s", strings.Join(argv, " "), got, err, code, out.String()))
	}
	return d
}

func version(env []string, tf string) string {
	cmd := exec.Command(tf, "version")
	cmd.Env = env
	out, _ := cmd.Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

func copyConfig(src, dst string) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		fail(err.Error())
	}
	files, _ := filepath.Glob(filepath.Join(src, "*.tf"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err.Error())
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			fail(err.Error())
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}
