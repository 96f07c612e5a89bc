// Command tfsh is a shell that stands in for terraform and tofu and keeps
// state locking honest. See README.md.
package main

import (
	"context"
	"os"
	"runtime/pprof"
)

func main() {
	os.Exit(profiled(os.Getenv("TFSH_CPUPROFILE"), func() int {
		return Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	}))
}

// profiled runs main, with a CPU profile written to path when it is set
// (TFSH_CPUPROFILE: for measuring tfsh itself, see BENCHMARKS.md; profiles
// of many short runs are merged with go tool pprof BIN FILES...).
func profiled(path string, main func() int) int {
	if path == "" {
		return main()
	}
	if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	return main()
}
