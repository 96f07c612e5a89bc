package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tfsh/tfsh/internal/bench/result"
)

// rssBench measures tfsh's own memory while a command streams a lot of
// output through it: `tfsh run -- plan` with internal/bench/faketf as
// terraform, writing each size of sizesMB megabytes to a pipe that the
// benchmark drains, rounds times each. Two readings of tfsh's peak
// resident set: wait4's ru_maxrss, and the last VmHWM read from
// /proc/PID/status while it runs (every 5 ms). wait4's figure is the
// largest of tfsh and the children it waited for, and a child's counts
// the parent's pages it had at fork (Linux keeps the peak across exec), so
// it cannot be below tfsh's own; VmHWM is tfsh's alone.
func rssBench(tfsh, sizesMB string, rounds int) {
	work, err := os.MkdirTemp("", "tfsh-bench-rss-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	fake := filepath.Join(work, "terraform")
	build := exec.Command("go", "build", "-o", fake, "./internal/bench/faketf")
	if out, err := build.CombinedOutput(); err != nil {
		fail(fmt.Sprintf("build faketf: %v\n%s", err, out))
	}
	dir := filepath.Join(work, "cfg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err.Error())
	}
	os.WriteFile(filepath.Join(dir, "main.tf"), []byte("resource \"terraform_data\" \"a\" {}\n"), 0o644)
	env := benchEnv(work, fake)
	fmt.Println("| output through `tfsh run -- plan` | tfsh max RSS (wait4), median (MB) | min | max | tfsh VmHWM, median (MB) | wall (s) | goal |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, mb := range counts("-rss", sizesMB, "sizes in MB, like 1,10,100") {
		var rss, hwm, wall []float64
		for r := range rounds {
			runEnv := append(append([]string(nil), env...), "TFSH_BENCH_OUTPUT_MB="+strconv.Itoa(mb),
				"TFSH_AUDIT_DB="+filepath.Join(work, fmt.Sprintf("audit-%d-%d.db", mb, r)))
			cmd := exec.Command(tfsh, "run", "--", "plan", "-input=false")
			cmd.Dir, cmd.Env = dir, runEnv
			out, err := cmd.StdoutPipe()
			if err != nil {
				fail(err.Error())
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				fail(err.Error())
			}
			done := make(chan float64)
			go func() { done <- watchHWM(cmd.Process.Pid) }()
			n, _ := io.Copy(io.Discard, out)
			if err := cmd.Wait(); err != nil {
				fail(fmt.Sprintf("tfsh run -- plan (%d MB): %v\n%s", mb, err, stderr.String()))
			}
			wall = append(wall, time.Since(start).Seconds())
			if n < int64(mb)<<20 {
				fail(fmt.Sprintf("%d MB run: read %d bytes", mb, n))
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			rss = append(rss, float64(ru.Maxrss)/1024)
			hwm = append(hwm, <-done)
			os.Remove(filepath.Join(work, fmt.Sprintf("audit-%d-%d.db", mb, r)))
		}
		goal := ""
		if mb == 100 {
			goal = "≤ 40 MB"
		}
		fmt.Printf("| %d MB | %.1f | %.1f | %.1f | %.1f | %.2f | %s |\n", mb, median(rss), minOf(rss), maxOf(rss), median(hwm), median(wall), goal)
		emit("rss", result.Record{Kind: "rss", Row: fmt.Sprintf("%d MB of output", mb), Params: map[string]string{"output_mb": strconv.Itoa(mb)},
			Stats: []result.Stat{result.Of("rss", "MB", rss), result.Of("VmHWM", "MB", hwm), result.Of("wall", "s", wall)}})
	}
}

// watchHWM reads /proc/PID/status every 5 ms until the process is gone,
// and returns the last VmHWM (its peak resident set so far), in MB.
func watchHWM(pid int) float64 {
	last := 0.0
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return last
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				last, found = kb/1024, true
			}
		}
		if !found { // a zombie: its memory is gone
			return last
		}
		time.Sleep(5 * time.Millisecond)
	}
}
