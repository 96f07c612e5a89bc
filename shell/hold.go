package shell

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// HoldOperation is the Operation of a change-freeze hold's lock record:
// what plain terraform and tofu users see in the Lock Info of their error.
const HoldOperation = lock.HoldOperation

// Audit events of holds.
const (
	KindHoldPlaced   = "hold_placed"
	KindHoldReleased = "hold_released"
)

// HoldRecord is the data of hold_placed and hold_released events.
type HoldRecord struct {
	Who    string     `json:"who"`
	Reason string     `json:"reason,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
	Info   *lock.Info `json:"info"`
	Where  []string   `json:"where"`
	// Expired: released because its time was up, by the tfsh that saw it.
	Expired bool `json:"expired,omitempty"`
}

// Hold places a change-freeze hold on the state of dir: a lock record in
// the backend, so that plain terraform and tofu are refused and show the
// reason; with release, it removes the hold (only a hold, and only the one
// read). It is a command of the session: the policy decides (command.name
// "hold" or "hold release"), and it is recorded.
func (s *Session) Hold(ctx context.Context, dir string, dur time.Duration, release bool) Outcome {
	s.count++
	getenv := terraform.EnvLookup(s.cfg.Env)
	name := "hold"
	if release {
		name = "hold release"
	}
	ref, derr := lock.Discover(dir, lock.Getenv(getenv))
	pol, err := s.policyFor(dir)
	if err != nil {
		s.errorf("%v", err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	in := policy.Input{Command: name, Known: true, Workspace: ref.Workspace, Backend: ref.Backend, StateKey: ref.Key,
		User: s.user, Host: s.host, CI: policy.CI(s.ci), Getenv: getenv, Time: s.cfg.Now(), Lock: s.lockState(ctx, ref, lock.Getenv(getenv))}
	dec := pol.Decide(in)
	if !release && len(dec.With(policy.RequireReason)) == 0 {
		// A hold's reason is what everyone it stops will read.
		dec.Findings = append(dec.Findings, policy.Finding{Rule: "hold-reason", Source: policy.BuiltIn, Action: policy.RequireReason,
			Message: "a hold needs a reason: it is what terraform users see when the hold refuses them"})
		if dec.Action != policy.Deny {
			dec.Action = policy.RequireReason
		}
	}
	sigs, giveBack := s.takeSignals()
	defer giveBack()
	asked := s.resolveWithSignals(ctx, dec, sigs)
	// From here a Ctrl-C cancels the backend calls.
	ctx, stopSignals := untilSignal(ctx, sigs)
	defer stopSignals()
	info := audit.CommandInfo{Typed: []string{"tfsh", name}, Subcommand: name, Known: true, Workdir: dir,
		Workspace: ref.Workspace, Backend: ref.Backend, StateKey: ref.Key, Interactive: s.cfg.PTY}
	if derr != nil {
		info.Note = "backend discovery: " + derr.Error()
	}
	c, err := s.rec.StartCommand(ctx, info, auditDecision(pol, dec, asked))
	if err != nil {
		s.errorf("audit log %s cannot be written (%v): not placing or releasing anything unrecorded", s.cfg.Audit.Path(), err)
		return Outcome{ExitCode: ExitCannotRun, Status: "error"}
	}
	say := func(msg string) {
		line := "tfsh: " + msg + "\n"
		s.cfg.Err.Write([]byte(line))
		c.Output(audit.Note).Write([]byte(line))
	}
	if dec.Action == policy.Deny {
		f := dec.Deciding()
		say(fmt.Sprintf("refused by rule %q (%s): %s", f.Rule, f.Source, f.Message))
		return s.end(c, audit.CommandEnd{Status: "refused", ExitCode: ExitRefused, Reason: f.Rule})
	}
	if asked.interrupted {
		return s.end(c, audit.CommandEnd{Status: "interrupted", ExitCode: ExitInterrupted, Reason: "interrupted while the policy asked"})
	}
	if asked.refused != nil {
		say(fmt.Sprintf("refused by rule %q (%s): %s", asked.refused.Rule, asked.refused.Source, asked.why))
		return s.end(c, audit.CommandEnd{Status: "refused", ExitCode: ExitRefused, Reason: asked.refused.Rule})
	}
	fail := func(msg string) Outcome {
		say(msg)
		return s.end(c, audit.CommandEnd{Status: "failed", ExitCode: 1, Reason: msg})
	}
	if ref.Backend != "s3" {
		return fail(fmt.Sprintf("holds live in a remote lock table: the %s backend's lock exists only while a process holds it, so there is nothing to place", orNone(ref.Backend)))
	}
	ed, err := lock.NewEditor(ctx, ref, lock.Getenv(getenv))
	if err != nil {
		return fail("cannot read the lock: " + err.Error())
	}
	recs, err := ed.Records(ctx)
	if err != nil {
		return fail("cannot read the lock: " + err.Error())
	}
	released, err := s.releaseExpired(ctx, c, ed, recs, say)
	if err != nil {
		return fail(err.Error())
	}
	if released {
		if release {
			return s.end(c, audit.CommandEnd{Status: "ok"})
		}
		recs = nil
	}
	if release {
		if len(recs) == 0 {
			return fail(fmt.Sprintf("%s has no hold to release", ref.Key))
		}
		for _, r := range recs {
			if r.Info.Operation != HoldOperation || r.Info.ID != recs[0].Info.ID {
				return fail(fmt.Sprintf("the lock at %s is not the hold (%s by %s): releasing nothing; tfsh unlock removes other locks", r.Where, lock.OperationName(r.Info.Operation), r.Info.Who))
			}
		}
		var where []string
		for _, r := range recs {
			if _, err := ed.Remove(ctx, r); err != nil && !errors.Is(err, lock.ErrGone) {
				return fail(fmt.Sprintf("could not release the hold at %s: %v", r.Where, err))
			}
			where = append(where, r.Where)
		}
		say(fmt.Sprintf("released the hold on %s (%s, placed by %s)", ref.Key, recs[0].Info.Info, recs[0].Info.Who))
		appendEvent(c, KindHoldReleased, recs[0].Info.ID, HoldRecord{Who: s.who, Reason: asked.reason, Info: recs[0].Info, Where: where})
		return s.end(c, audit.CommandEnd{Status: "ok"})
	}
	if len(recs) > 0 {
		i := recs[0].Info
		if i.Operation == HoldOperation {
			return fail(fmt.Sprintf("%s is already held: %s (by %s)", ref.Key, i.Info, i.Who))
		}
		return fail(fmt.Sprintf("%s is locked by %s (%s): a hold is placed on a free state; wait for it, or see tfsh locks", ref.Key, i.Who, lock.OperationName(i.Operation)))
	}
	text := asked.reason
	var until *time.Time
	if dur > 0 {
		u := s.cfg.Now().Add(dur).UTC().Truncate(time.Second)
		until = &u
		text += " (tfsh hold until " + u.Format(time.RFC3339) + ")"
	}
	li := lock.NewInfo(HoldOperation, text, s.who, "tfsh", ref.Key, s.cfg.Now())
	placed, err := ed.Place(ctx, li)
	switch {
	case errors.Is(err, lock.ErrHeld):
		return fail(fmt.Sprintf("%s was locked by someone else just now: no hold placed", ref.Key))
	case err != nil:
		return fail("could not place the hold: " + err.Error())
	}
	var where []string
	for _, r := range placed {
		where = append(where, r.Where)
	}
	msg := fmt.Sprintf("placed a hold on %s: %s", ref.Key, asked.reason)
	if until != nil {
		msg += fmt.Sprintf(" (until %s)", until.Local().Format(time.RFC3339))
	}
	say(msg + "; terraform and tofu are refused until tfsh hold --release")
	appendEvent(c, KindHoldPlaced, li.ID, HoldRecord{Who: s.who, Reason: asked.reason, Until: until, Info: &li, Where: where})
	return s.end(c, audit.CommandEnd{Status: "ok", Reason: li.ID})
}

// releaseExpired removes a hold whose time is up (compare-and-delete) and
// records it: the next tfsh that sees an expired hold releases it.
func (s *Session) releaseExpired(ctx context.Context, c *audit.Command, ed lock.Editor, recs []lock.Record, say func(string)) (bool, error) {
	until, where, released, err := lock.ReleaseExpiredHold(ctx, ed, recs, s.cfg.Now())
	if err != nil || !released {
		return false, err
	}
	say(fmt.Sprintf("released an expired hold (%s, by %s)", recs[0].Info.Info, recs[0].Info.Who))
	appendEvent(c, KindHoldReleased, recs[0].Info.ID, HoldRecord{Who: s.who, Info: recs[0].Info, Until: &until, Where: where, Expired: true})
	return true, nil
}

// releaseExpiredAfter looks, after a locking command failed on the S3
// backend, for an expired hold in the way, releases it, and says to run the
// command again.
func (s *Session) releaseExpiredAfter(ctx context.Context, c *audit.Command, ref lock.StateRef, getenv lock.Getenv, say func(string)) {
	if ref.Backend != "s3" {
		return
	}
	ed, err := lock.NewEditor(ctx, ref, getenv)
	if err != nil {
		return
	}
	recs, err := ed.Records(ctx)
	if err != nil {
		return
	}
	if released, err := s.releaseExpired(ctx, c, ed, recs, say); err != nil {
		say(err.Error())
	} else if released {
		say("the command was refused by that hold: run it again")
	}
}

func orNone(s string) string {
	if s == "" {
		return "local"
	}
	return s
}
