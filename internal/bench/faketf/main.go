// Command faketf stands in for terraform in the streaming-memory benchmark
// (internal/bench -rss): it answers `version` as terraform 1.5.7 does and,
// for any other command, writes TFSH_BENCH_OUTPUT_MB megabytes of plan-like
// text to stdout and exits 0. A real terraform printing that much (a
// local-exec provisioner) would be measured with it: wait4 reports the
// largest resident set of the child and of the children it waited for, so
// terraform's own memory would hide tfsh's. This one stays small.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		if len(os.Args) > 2 && os.Args[2] == "-json" {
			fmt.Println(`{"terraform_version":"1.5.7","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}`)
		} else {
			fmt.Println("Terraform v1.5.7\non linux_amd64")
		}
		return
	}
	mb, _ := strconv.Atoi(os.Getenv("TFSH_BENCH_OUTPUT_MB"))
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	total := int64(mb) << 20
	var n int64
	for i := 0; n < total; i++ {
		k, err := fmt.Fprintf(w, "  # terraform_data.r%d will be created\n  + resource \"terraform_data\" \"r%d\" {\n      + id     = (known after apply)\n      + input  = \"value-%d\"\n      + output = (known after apply)\n    }\n\n", i, i, i)
		if err != nil {
			os.Exit(1)
		}
		n += int64(k)
	}
	fmt.Fprintf(w, "Plan: %d to add, 0 to change, 0 to destroy.\n", n/200)
	if err := w.Flush(); err != nil {
		os.Exit(1)
	}
}
