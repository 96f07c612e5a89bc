package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tfsh/tfsh/audit"
)

// exitLogBroken is audit verify's exit status when the log is not what was
// written.
const exitLogBroken = 1

// errLogBroken is returned by auditVerify once it has reported problems.
var errLogBroken = errors.New("audit log is broken")

func auditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit verify")
	dbPath := fs.String("audit-db", "", "audit log path")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := fs.Parse(args); err != nil {
		return flagError("audit verify", err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit verify takes no arguments (%q)", fs.Arg(0))}
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Verify(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	} else {
		renderVerify(stdout, db.Path(), res)
	}
	if !res.OK() {
		return errLogBroken
	}
	return nil
}

func renderVerify(w io.Writer, path string, res *audit.VerifyResult) {
	if res.OK() {
		fmt.Fprintf(w, "%s: intact: %d events (head %d, %.12s…), %d command outputs checked\n",
			path, res.Events, res.HeadSeq, res.Head, res.Commands)
		return
	}
	f := res.First
	fmt.Fprintf(w, "%s: BROKEN: first at event %d: %s: %s\n", path, f.Seq, f.Kind, f.Detail)
	fmt.Fprintf(w, "%d events, %d command outputs checked; %d problems:\n",
		res.Events, res.Commands, len(res.Problems)+res.More)
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  %8d  %-16s %s\n", p.Seq, p.Kind, esc(p.Detail))
	}
	if res.More > 0 {
		fmt.Fprintf(w, "  … and %d more\n", res.More)
	}
}
