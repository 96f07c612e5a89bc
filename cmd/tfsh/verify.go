package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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
	anchors := fs.Bool("anchors", false, "check the anchors too")
	pubkey := fs.String("pubkey", os.Getenv("TFSH_ANCHOR_PUBKEY"), "ed25519 public key (base64) anchors are signed with")
	if err := fs.Parse(args); err != nil {
		return flagError("audit verify", err)
	}
	var opt audit.VerifyOptions
	if *pubkey != "" {
		pub, err := audit.ParseAnchorPublicKey(*pubkey)
		if err != nil {
			return &usageError{fmt.Sprintf("--pubkey: %v", err)}
		}
		opt.PublicKey = pub
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit verify takes no arguments (%q)", fs.Arg(0))}
	}
	db, err := openAuditForReading(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	anchorFile := audit.AnchorPath(db.Path())
	anchorsGiven := false
	fs.Visit(func(f *flag.Flag) { anchorsGiven = anchorsGiven || f.Name == "anchors" })
	switch {
	case *anchors && !fileExists(anchorFile):
		return fmt.Errorf("no anchors at %s: tfsh writes them at the end of every session", anchorFile)
	case *anchors || (!anchorsGiven && fileExists(anchorFile)):
		opt.Anchors = audit.FileAnchors{Path: anchorFile}
	}
	res, err := db.VerifyWith(ctx, opt)
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
		fmt.Fprintf(w, "%s: intact: %d events (head %d, %.12s…), %d command outputs, %d anchors checked\n",
			path, res.Events, res.HeadSeq, res.Head, res.Commands, res.Anchors)
		return
	}
	f := res.First
	fmt.Fprintf(w, "%s: BROKEN: first at event %d: %s: %s\n", path, f.Seq, f.Kind, f.Detail)
	fmt.Fprintf(w, "%d events, %d command outputs, %d anchors checked; %d problems:\n",
		res.Events, res.Commands, res.Anchors, len(res.Problems)+res.More)
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  %8d  %-16s %s\n", p.Seq, p.Kind, esc(p.Detail))
	}
	if res.More > 0 {
		fmt.Fprintf(w, "  … and %d more\n", res.More)
	}
}

// setupAnchors signs the session's anchors with $TFSH_ANCHOR_KEY, if set,
// and warns of an anchor that could not be written. Neither stops the
// session: it is recorded all the same.
func setupAnchors(db *audit.DB, getenv func(string) string, stderr io.Writer) {
	db.OnAnchorError = func(err error) {
		fmt.Fprintf(stderr, "tfsh: warning: the session is recorded, but its anchor was not kept: %v\n", err)
	}
	if k := getenv("TFSH_ANCHOR_KEY"); k != "" {
		key, err := audit.ParseAnchorKey(k)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: warning: TFSH_ANCHOR_KEY: %v: anchors are written unsigned\n", err)
			return
		}
		db.AnchorKey = key
	}
}
