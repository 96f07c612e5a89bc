package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// LocksOptions says what `tfsh locks` (and the locks builtin) shows.
type LocksOptions struct {
	Dir  string
	Env  []string
	All  bool // every lock of the table, bucket or local workspaces
	JSON bool
	Now  func() time.Time
	// Audit, when set, names the holder of a lock a tfsh session with
	// this log took: its CI run and command.
	Audit *audit.DB
}

// LockReport is `tfsh locks --json`.
type LockReport struct {
	State struct {
		Dir       string `json:"dir"`
		Backend   string `json:"backend"`
		Workspace string `json:"workspace"`
		Key       string `json:"key"`
	} `json:"state"`
	// Held is true when any mechanism shows the lock held.
	Held  bool         `json:"held"`
	Views []ReportView `json:"views"`
	// Disagree: with both S3 mechanisms, they show different locks.
	Disagree bool `json:"disagree,omitempty"`
	// All lists every lock in the backend (--all).
	All  []ReportView `json:"all,omitempty"`
	Note string       `json:"note,omitempty"`
}

// ReportView is one mechanism's view, ready to show.
type ReportView struct {
	lock.View
	AgeSeconds float64  `json:"age_seconds,omitempty"`
	Alive      *bool    `json:"alive,omitempty"` // local holder process alive
	Args       []string `json:"args,omitempty"`  // local holder's command line, redacted
	Problem    string   `json:"problem,omitempty"`
	// Holder is who took the lock, when the audit log recorded it: the
	// session (user@host, CI run) and the command.
	Holder *audit.Party `json:"holder,omitempty"`
}

// errLocksProblem makes `tfsh locks` exit 4 after printing what it could.
var errLocksProblem = errors.New("the lock could not be read")

// Locks reports the lock of the state in opts.Dir.
func Locks(ctx context.Context, opts LocksOptions, out io.Writer) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	getenv := lock.Getenv(terraform.EnvLookup(opts.Env))
	ref, err := lock.Discover(opts.Dir, getenv)
	if err != nil {
		return err
	}
	var rep LockReport
	rep.State.Dir, rep.State.Backend, rep.State.Workspace, rep.State.Key = ref.Dir, ref.Backend, ref.Workspace, ref.Key
	obs, err := lock.NewObserver(ctx, ref, getenv)
	var ue *lock.UnsupportedError
	switch {
	case errors.As(err, &ue):
		rep.Note = ue.Error()
	case err != nil:
		return err
	}
	problem := false
	holders := newHolderCache(opts.Audit)
	reportView := func(v lock.View, now time.Time) ReportView {
		rv := reportView(v, now)
		if v.Held && v.Info != nil {
			rv.Holder = holders.get(ctx, v.Info.ID)
		}
		return rv
	}
	if obs != nil {
		for _, v := range obs.Observe(ctx) {
			rv := reportView(v, opts.Now())
			problem = problem || v.Err != nil
			rep.Held = rep.Held || v.Held
			rep.Views = append(rep.Views, rv)
		}
		if len(rep.Views) == 2 {
			a, b := rep.Views[0], rep.Views[1]
			rep.Disagree = a.Err == nil && b.Err == nil && (a.Held != b.Held || a.Info != nil && b.Info != nil && a.Info.ID != b.Info.ID)
		}
		if opts.All {
			if l, ok := obs.(lock.Lister); ok {
				all, err := l.List(ctx)
				for _, v := range all {
					rep.All = append(rep.All, reportView(v, opts.Now()))
				}
				if err != nil {
					problem = true
					rep.Note = strings.TrimSpace(rep.Note + " " + err.Error())
				}
			}
		}
	}
	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		renderLocks(out, rep, opts.All)
	}
	if problem {
		return errLocksProblem
	}
	return nil
}

func reportView(v lock.View, now time.Time) ReportView {
	rv := ReportView{View: v}
	if v.Err != nil {
		rv.Problem = v.Err.Error()
	}
	if v.Info != nil && !v.Info.Created.IsZero() {
		rv.AgeSeconds = now.Sub(v.Info.Created).Seconds()
	}
	if v.Mechanism == lock.Local && v.Held {
		alive := lock.ProcessAlive(v.PID)
		rv.Alive = &alive
		if lock.IsTerraform(v.PID) {
			rv.Args = terraform.RedactArgs(lock.ProcessArgs(v.PID))
		}
	}
	return rv
}

func renderLocks(out io.Writer, rep LockReport, all bool) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "state\t%s (%s backend, workspace %s)\n", rep.State.Key, rep.State.Backend, rep.State.Workspace)
	switch {
	case len(rep.Views) == 0:
		fmt.Fprintf(tw, "lock\tunknown\n")
	case rep.Held:
		fmt.Fprintf(tw, "lock\tHELD\n")
	default:
		fmt.Fprintf(tw, "lock\tfree\n")
	}
	for _, v := range rep.Views {
		renderView(tw, v, len(rep.Views) > 1)
	}
	if rep.Disagree {
		fmt.Fprintf(tw, "warning\tthe S3 lockfile and the DynamoDB item disagree: a client configured with only one of them (during a migration, say) is not excluded by the other\n")
	}
	if rep.Note != "" {
		fmt.Fprintf(tw, "note\t%s\n", rep.Note)
	}
	if all {
		fmt.Fprintf(tw, "\nall locks\t%d\n", len(rep.All))
		for _, v := range rep.All {
			renderView(tw, v, true)
		}
	}
	tw.Flush()
}

func renderView(tw io.Writer, v ReportView, named bool) {
	label := "  "
	if named {
		fmt.Fprintf(tw, "%s\t%s\n", v.Mechanism, v.Where)
	}
	switch {
	case v.Problem != "":
		fmt.Fprintf(tw, "%sproblem\t%s\n", label, v.Problem)
	case v.Held:
		if named {
			fmt.Fprintf(tw, "%sheld\tyes\n", label)
		}
		if i := v.Info; i != nil {
			fmt.Fprintf(tw, "%sID\t%s\n", label, i.ID)
			fmt.Fprintf(tw, "%swho\t%s\n", label, i.Who)
			fmt.Fprintf(tw, "%soperation\t%s\n", label, lock.OperationName(i.Operation))
			fmt.Fprintf(tw, "%screated\t%s\n", label, i.Created.Local().Format(time.RFC3339))
			age := time.Duration(v.AgeSeconds * float64(time.Second)).Round(time.Second).String()
			fmt.Fprintf(tw, "%sage\t%s\n", label, age)
			if h := v.Holder; h != nil {
				fmt.Fprintf(tw, "%sheld by\t%s, %s\n", label, h.Line(), age)
				fmt.Fprintf(tw, "%srecorded\tsession %s, command %s (tfsh audit show %s)\n", label, h.SessionID, h.CommandID, h.SessionID)
			}
			if i.Path != "" {
				fmt.Fprintf(tw, "%spath\t%s\n", label, i.Path)
			}
		} else {
			fmt.Fprintf(tw, "%sinfo\tnot written yet\n", label)
		}
		if v.PID != 0 {
			state := "alive"
			if v.Alive != nil && !*v.Alive {
				state = "not running here (another PID namespace or host)"
			}
			fmt.Fprintf(tw, "%sholder\tpid %d, %s\n", label, v.PID, state)
			if len(v.Args) > 0 {
				fmt.Fprintf(tw, "%scommand\t%s\n", label, Quote(v.Args))
			}
		}
	default:
		if named {
			fmt.Fprintf(tw, "%sheld\tno\n", label)
		}
		if s := v.Stale; s != nil && s.ID == "" {
			fmt.Fprintf(tw, "%sstale\t%s is left behind and unreadable (%s); no process holds the lock, so it is harmless\n", label, lock.InfoPath(v.Where), s.Info)
		} else if s != nil {
			fmt.Fprintf(tw, "%sstale\t%s is left from %s %s (ID %s, %s): no process holds the lock, so it is harmless\n",
				label, lock.InfoPath(v.Where), s.Who, lock.OperationName(s.Operation), s.ID, s.Created.Local().Format(time.RFC3339))
		}
	}
}
