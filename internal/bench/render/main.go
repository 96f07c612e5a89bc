// Command render rewrites the marked regions of BENCHMARKS.md from a
// results directory (see package internal/bench/result), and writes the
// header of a run before it starts.
//
//	go run ./internal/bench/render -probe -results DIR -terraform TF -tofu TOFU -command 'make bench'
//	go run ./internal/bench/render -results DIR [-doc BENCHMARKS.md] [-out FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tfsh/tfsh/internal/bench/result"
)

func main() {
	dir := flag.String("results", "", "results directory")
	doc := flag.String("doc", "BENCHMARKS.md", "the document whose regions are rewritten")
	out := flag.String("out", "", "write the rendered document here instead of over -doc")
	probe := flag.Bool("probe", false, "instead: write DIR/header.json (machine, versions, load now) before a run")
	tf := flag.String("terraform", "", "with -probe: terraform binary")
	tofu := flag.String("tofu", "", "with -probe: tofu binary")
	command := flag.String("command", "scripts/bench.sh", "with -probe: the command of the run")
	quick := flag.Bool("quick", false, "with -probe: the run is a quick one")
	flag.Parse()
	if *dir == "" {
		fail("give -results DIR")
	}
	if *probe {
		h := result.Probe(".", *tf, *tofu)
		h.Command, h.Quick = *command, *quick
		if err := h.Save(*dir); err != nil {
			fail(err.Error())
		}
		return
	}
	h, err := result.LoadHeader(*dir)
	if err != nil {
		fail(err.Error())
	}
	if h.End.IsZero() {
		h.End, h.LoadAfter = time.Now().UTC(), result.LoadAvg()
		if err := h.Save(*dir); err != nil {
			fail(err.Error())
		}
	}
	// scripts/bench.sh lists the steps that failed, one a line.
	if b, err := os.ReadFile(filepath.Join(*dir, "failed.txt")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				h.Failed = append(h.Failed, line)
			}
		}
	}
	recs, err := result.ReadDir(*dir)
	if err != nil {
		fail(err.Error())
	}
	src, err := os.ReadFile(*doc)
	if err != nil {
		fail(err.Error())
	}
	rendered, err := result.Render(string(src), recs, h)
	if err != nil {
		fail(err.Error())
	}
	if *out == "" {
		*out = *doc
	}
	if err := os.WriteFile(*out, []byte(rendered), 0o644); err != nil {
		fail(err.Error())
	}
	fmt.Fprintf(os.Stderr, "render: %d records from %s into %s\n", len(recs), *dir, *out)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "render:", msg)
	os.Exit(1)
}
