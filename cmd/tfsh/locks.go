package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tfsh/tfsh/shell"
)

const locksUsage = `Usage:
  tfsh locks [--all] [--json] [--dir DIR]

Shows the lock of the state DIR (default: the current directory) uses, read where
it lives: the local state file's fcntl lock and .lock.info, the S3 backend's
DynamoDB item and/or .tflock object. --all lists every lock of the DynamoDB
table and the bucket (or every local workspace). Exit 0 when the lock was read
(held or free), 4 when it could not be.
`

func locksCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("locks")
	opts := shell.LocksOptions{Env: os.Environ()}
	fs.BoolVar(&opts.All, "all", false, "every lock of the table, bucket or workspaces")
	fs.BoolVar(&opts.JSON, "json", false, "JSON output")
	fs.StringVar(&opts.Dir, "dir", "", "working directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, locksUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("locks", err))
		return exitCannotRun
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tfsh: locks takes no arguments (see tfsh locks --help)\n")
		return exitCannotRun
	}
	if opts.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: %v\n", err)
			return exitCannotRun
		}
		opts.Dir = wd
	}
	if err := shell.Locks(ctx, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "tfsh: locks: %v\n", err)
		return exitCannotRun
	}
	return 0
}
