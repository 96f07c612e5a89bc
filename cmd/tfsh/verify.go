package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/anchor"
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
	if *anchors || !anchorsGiven {
		var srcs []audit.AnchorSource
		if fileExists(anchorFile) {
			srcs = append(srcs, audit.FileAnchors{Path: anchorFile})
		}
		stores, err := anchor.FromEnv(ctx, os.Getenv)
		if err != nil {
			return err
		}
		for _, s := range stores {
			srcs = append(srcs, s)
		}
		if *anchors && len(srcs) == 0 {
			return fmt.Errorf("no anchors at %s, and neither TFSH_ANCHOR_S3 nor TFSH_ANCHOR_DYNAMODB is set: tfsh writes anchors at the end of every session", anchorFile)
		}
		if len(srcs) > 0 {
			opt.Anchors = anchor.All(srcs...)
		}
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
		head := fmt.Sprintf("head %d, %.12s…", res.HeadSeq, res.Head)
		if res.HeadSeq == 0 && len(res.Origins) > 0 {
			head = "none of its own"
		}
		fmt.Fprintf(w, "%s: intact: %d events (%s), %d command outputs, %d anchors checked\n",
			path, res.Events, head, res.Commands, res.Anchors)
		renderOrigins(w, res)
		return
	}
	defer renderOrigins(w, res)
	f := res.First
	fmt.Fprintf(w, "%s: BROKEN: first at event %d: %s: %s\n", path, f.Seq, f.Kind, esc(f.Detail))
	fmt.Fprintf(w, "%d events, %d command outputs, %d anchors checked; %d problems:\n",
		res.Events, res.Commands, res.Anchors, len(res.Problems)+res.More)
	for _, p := range res.Problems {
		if p.Origin != "" {
			fmt.Fprintf(w, "  %8d  %-16s log %s: %s\n", p.Seq, p.Kind, p.Origin, esc(p.Detail))
			continue
		}
		fmt.Fprintf(w, "  %8d  %-16s %s\n", p.Seq, p.Kind, esc(p.Detail))
	}
	if res.More > 0 {
		fmt.Fprintf(w, "  … and %d more\n", res.More)
	}
}

// renderOrigins lists the other logs whose events were pulled into this
// one, each chain checked on its own.
func renderOrigins(w io.Writer, res *audit.VerifyResult) {
	for _, o := range res.Origins {
		state := "intact"
		if o.Problems > 0 {
			state = fmt.Sprintf("%d %s", o.Problems, plural(o.Problems, "problem", "problems"))
		}
		from := ""
		if o.FromSeq > 1 {
			from = fmt.Sprintf(" (from seq %d, its prev_hash taken as given)", o.FromSeq)
		}
		fmt.Fprintf(w, "  pulled from log %s: %s: %d events up to seq %d%s\n", o.LogID, state, o.Events, o.HeadSeq, from)
		for _, g := range o.Gaps {
			fmt.Fprintf(w, "    not here: its events after seq %d and before seq %d (not pulled; tfsh audit pull fetches them)\n", g.After, g.Before)
		}
	}
}

// setupAnchors signs the session's anchors with $TFSH_ANCHOR_KEY, if set,
// adds the stores $TFSH_ANCHOR_S3 and $TFSH_ANCHOR_DYNAMODB name (not for
// a scratch log: its anchors would not match the real one), and warns of
// an anchor that could not be written. None of it stops the session: it is
// recorded all the same.
func setupAnchors(ctx context.Context, db *audit.DB, remote bool, getenv func(string) string, stderr io.Writer) {
	db.OnAnchorError = func(err error) {
		fmt.Fprintf(stderr, "tfsh: warning: the session is recorded, but its anchor was not kept: %v\n", err)
	}
	if k := getenv("TFSH_ANCHOR_KEY"); k != "" {
		key, err := audit.ParseAnchorKey(k)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: warning: TFSH_ANCHOR_KEY: %v: anchors are written unsigned\n", err)
		} else {
			db.AnchorKey = key
		}
	}
	if !remote {
		return
	}
	stores, err := anchor.FromEnv(ctx, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: warning: %v: anchors are kept beside the log only\n", err)
		return
	}
	for _, s := range stores {
		db.Anchors = append(db.Anchors, s)
	}
}
