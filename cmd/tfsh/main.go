// Command tfsh is a shell that stands in for terraform and tofu and keeps
// state locking honest. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
)

func main() {
	os.Exit(profiled(os.Getenv("TFSH_CPUPROFILE"), os.Getenv("TFSH_RUSAGE"), func() int {
		return Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	}))
}

// profiled runs main, with a CPU profile written to path when it is set
// (TFSH_CPUPROFILE: for measuring tfsh itself, see BENCHMARKS.md; profiles
// of many short runs are merged with go tool pprof BIN FILES...).
func profiled(path, rusage string, main func() int) int {
	if rusage != "" {
		defer writeRusage(rusage)
	}
	if path == "" {
		return main()
	}
	if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	return main()
}

// writeRusage appends tfsh's own CPU time and peak RSS, without its
// children's, to path as one JSON line (TFSH_RUSAGE: what the benchmarks
// use to tell tfsh's cost from terraform's, which the parent's wait4
// cannot).
func writeRusage(path string) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "{\"user_us\":%d,\"sys_us\":%d,\"maxrss_kb\":%d}\n",
		ru.Utime.Nano()/1000, ru.Stime.Nano()/1000, ru.Maxrss)
}
