package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/shell"
)

const locksUsage = `Usage:
  tfsh locks [--all] [--json] [--dir DIR] [--audit-db PATH]

Shows the lock of the state DIR (default: the current directory) uses, read where
it lives: the local state file's fcntl lock and .lock.info, the S3 backend's
DynamoDB item and/or .tflock object. When the audit log (--audit-db, else
$TFSH_AUDIT_DB, else $XDG_STATE_HOME/tfsh/audit.db) recorded the lock being
taken, the holder is named as it knows it: the CI run and the command. --all
lists every lock of the DynamoDB table and the bucket (or every local
workspace). Exit 0 when the lock was read (held or free), 4 when it could not be.
`

func locksCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("locks")
	opts := shell.LocksOptions{Env: os.Environ()}
	fs.BoolVar(&opts.All, "all", false, "every lock of the table, bucket or workspaces")
	fs.BoolVar(&opts.JSON, "json", false, "JSON output")
	fs.StringVar(&opts.Dir, "dir", "", "working directory")
	dbPath := fs.String("audit-db", "", "audit log path")
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
	// The holder as the audit log knows it: without a log, or with one
	// that cannot be read, the lock is still shown.
	path := *dbPath
	if path == "" {
		path, _ = audit.DefaultPath()
	}
	if path != "" && fileExists(path) {
		if db, err := audit.Open(ctx, path); err == nil {
			defer db.Close()
			opts.Audit = db
		} else {
			fmt.Fprintf(stderr, "tfsh: locks: holders are not named from the audit log: %v\n", err)
		}
	}
	if err := shell.Locks(ctx, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "tfsh: locks: %v\n", err)
		return exitCannotRun
	}
	return 0
}
