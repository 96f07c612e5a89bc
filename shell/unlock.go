package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

// KindForceUnlock is the audit event of a lock tfsh removed.
const KindForceUnlock = "force_unlock"

// ForceUnlockRecord is the data of a force_unlock event (internal/auditgen
// writes its generated logs with this same definition).
type ForceUnlockRecord struct {
	Who     string     `json:"who"`
	Reason  string     `json:"reason,omitempty"`
	Where   string     `json:"where"`
	Info    *lock.Info `json:"info,omitempty"`
	Method  string     `json:"method"`
	Stale   bool       `json:"stale,omitempty"` // a local .lock.info no process held
	Resolve []string   `json:"resolves,omitempty"`
}

// guardedUnlock is force-unlock done safely, in place of terraform's,
// where tfsh can read the lock: it shows the lock and what the audit log
// knows of it, refuses an ID that is not the current lock's, asks for a
// confirmation (given by -force or --yes without a terminal), and removes
// the lock with compare-and-delete, so that a lock someone took a moment
// ago is never removed. handled is false for backends whose locks tfsh
// cannot edit: after tfsh's confirmation, terraform's own force-unlock runs
// then, with -force. A successful end carries the removed lock's ID as its
// Reason.
func (s *Session) guardedUnlock(ctx context.Context, c *audit.Command, inv *terraform.Invocation, ref lock.StateRef, getenv lock.Getenv, reason string, say func(string)) (end audit.CommandEnd, handled bool) {
	fail := func(msg string) audit.CommandEnd {
		say(msg)
		return audit.CommandEnd{Status: "failed", ExitCode: 1, Reason: msg}
	}
	if len(inv.Positional) != 1 || strings.TrimSpace(inv.Positional[0].Value) == "" {
		// As terraform: exactly one lock ID. An empty one (an unset
		// variable in a script) must never mean "whatever is locked now".
		return fail("force-unlock needs the ID of the lock to remove, as terraform does (tfsh unlock with no ID names the current lock at a terminal)"), true
	}
	want := inv.Positional[0].Value
	confirmed := s.cfg.Yes || hasFlag(inv, "force")
	// tfsh's confirmation stands in for terraform's prompt where terraform
	// does the removal (backends tfsh cannot edit): it then runs with -force.
	confirm := func(what string) (audit.CommandEnd, bool) {
		if confirmed {
			return audit.CommandEnd{}, true
		}
		if s.cfg.Ask == nil {
			return fail("removing a lock needs a confirmation: add -force (terraform's) or tfsh --yes, or run it at a terminal"), false
		}
		answer, err := s.cfg.Ask(ctx, "remove "+what+"? type yes to go on: ")
		if err != nil || !isYes(answer) {
			return fail("not confirmed: nothing removed"), false
		}
		return audit.CommandEnd{}, true
	}
	fallback := func() (audit.CommandEnd, bool) {
		say(fmt.Sprintf("tfsh cannot read %s locks itself: terraform's force-unlock removes lock %s, without checking that it is still the same lock", orNone(ref.Backend), want))
		if end, ok := confirm("lock " + want); !ok {
			return end, true
		}
		return audit.CommandEnd{Status: "fallback"}, false
	}
	switch ref.Backend {
	case "local", "":
		return s.unlockLocal(ctx, c, ref, getenv, want, confirmed, reason, say, fail), true
	case "s3":
	default:
		return fallback()
	}
	ed, err := lock.NewEditor(ctx, ref, getenv)
	var ue *lock.UnsupportedError
	if errors.As(err, &ue) {
		return fallback()
	}
	if err != nil {
		return fail("cannot read the lock: " + err.Error()), true
	}
	recs, err := ed.Records(ctx)
	if err != nil {
		return fail("cannot read the lock: " + err.Error()), true
	}
	if len(recs) == 0 {
		return fail(fmt.Sprintf("no lock is held on %s: nothing to unlock", ref.Key)), true
	}
	current := recs[0].Info.ID
	for _, r := range recs {
		say(describeRecord(r, s.cfg.Now()))
	}
	for _, line := range s.lockHistory(ctx, current) {
		say("  " + line)
	}
	if want != current {
		return fail(fmt.Sprintf("%s is not the current lock: %s is locked by %s; nothing removed (check the ID, or run force-unlock %s if that is the one to remove)", want, ref.Key, current, current)), true
	}
	for _, r := range recs[1:] {
		if r.Info.ID != current {
			return fail(fmt.Sprintf("the lock's records disagree (%s has %s, %s has %s): nothing removed; look at both first", recs[0].Where, current, r.Where, r.Info.ID)), true
		}
	}
	if recs[0].Info.Operation == HoldOperation {
		return fail(fmt.Sprintf("lock %s is a change-freeze hold (%s, by %s): release it with tfsh hold --release, where the policy decides who may", current, recs[0].Info.Info, recs[0].Info.Who)), true
	}
	if end, ok := confirm("lock " + current); !ok {
		return end, true
	}
	// Confirmed: the removal runs to its end, so that a Ctrl-C cannot leave
	// one mechanism's record removed and the other's not.
	ctx = context.WithoutCancel(ctx)
	resolves := s.resolves(ctx, current)
	removed := 0
	for _, r := range recs {
		method, err := ed.Remove(ctx, r)
		switch {
		case errors.Is(err, lock.ErrChanged):
			now, _ := ed.Records(ctx)
			held := "someone else"
			if len(now) > 0 {
				held = describeRecord(now[0], s.cfg.Now())
			}
			return fail(fmt.Sprintf("the lock changed since it was shown (now: %s): nothing more removed", held)), true
		case errors.Is(err, lock.ErrGone):
			say(fmt.Sprintf("lock %s at %s is already gone: someone removed or released it first", current, r.Where))
			continue
		case err != nil:
			return fail(fmt.Sprintf("could not remove lock %s at %s: %v", current, r.Where, err)), true
		}
		removed++
		msg := fmt.Sprintf("removed lock %s from %s (%s)", current, r.Where, method)
		if method == lock.ReadCompareDelete {
			msg += ": this server cannot delete conditionally, so a lock taken in the instant between the check and the delete would have gone too"
		}
		say(msg)
		rec := ForceUnlockRecord{Who: s.who, Reason: reason, Where: r.Where, Info: r.Info, Method: string(method), Resolve: resolves}
		if err := appendEvent(c, KindForceUnlock, current, rec); err != nil {
			say("could not record the unlock in the audit log: " + err.Error())
		}
	}
	if removed == 0 {
		return audit.CommandEnd{Status: "failed", ExitCode: 1, Reason: "lock " + current + " was gone before tfsh could remove it"}, true
	}
	return audit.CommandEnd{Status: "ok", Reason: current}, true
}

// unlockLocal handles local state: its lock is an fcntl lock that lives
// and dies with the process holding it, so there is nothing to remove but
// a stale .lock.info.
func (s *Session) unlockLocal(ctx context.Context, c *audit.Command, ref lock.StateRef, getenv lock.Getenv, want string, confirmed bool, reason string, say func(string), fail func(string) audit.CommandEnd) audit.CommandEnd {
	obs, err := s.observers.open(ctx, ref, getenv)
	if err != nil {
		return fail("cannot read the lock: " + err.Error())
	}
	views := obs.Observe(ctx)
	if len(views) == 0 || views[0].Err != nil {
		return fail(fmt.Sprintf("cannot read the lock: %v", views))
	}
	v := views[0]
	switch {
	case v.Held:
		who := fmt.Sprintf("process %d", v.PID)
		if args := terraform.RedactArgs(lock.ProcessArgs(v.PID)); len(args) > 0 && lock.IsTerraform(v.PID) {
			who += " (" + Quote(args) + ")"
		}
		return fail(fmt.Sprintf("the local state %s is locked by %s, which is running: local locks are released only by their process, and terraform cannot force-unlock them; stop that process (it releases the lock as it exits)", v.Where, who))
	case v.Stale != nil && v.Stale.ID != want:
		return fail(fmt.Sprintf("%s is not the lock here: %s holds a stale %s; nothing removed", want, v.Where, v.Stale.ID))
	case v.Stale != nil:
		info := lock.InfoPath(v.Where)
		say(fmt.Sprintf("no process holds the lock of %s; %s (lock %s, %s by %s) is a stale leftover, harmless: terraform ignores it", v.Where, info, v.Stale.ID, v.Stale.Operation, v.Stale.Who))
		if !confirmed {
			if s.cfg.Ask == nil {
				return fail("removing it needs a confirmation: add -force or tfsh --yes, or run it at a terminal")
			}
			answer, err := s.cfg.Ask(ctx, "remove "+info+"? type yes to go on: ")
			if err != nil || !isYes(answer) {
				return fail("not confirmed: nothing removed")
			}
		}
		// Look again: a terraform that started while we asked has taken
		// the lock, and the .lock.info is its own now.
		if again := obs.Observe(ctx); len(again) == 0 || again[0].Held || again[0].Stale == nil || again[0].Stale.ID != v.Stale.ID {
			return fail("the lock changed while tfsh asked: nothing removed; run tfsh locks")
		}
		if err := os.Remove(info); err != nil {
			return fail("could not remove " + info + ": " + err.Error())
		}
		say("removed " + info)
		if err := appendEvent(c, KindForceUnlock, v.Stale.ID, ForceUnlockRecord{Who: s.who, Reason: reason, Where: info, Info: v.Stale, Method: "remove stale .lock.info", Stale: true}); err != nil {
			say("could not record the removal in the audit log: " + err.Error())
		}
		return audit.CommandEnd{Status: "ok", Reason: v.Stale.ID}
	}
	return fail(fmt.Sprintf("no lock is held on %s: nothing to unlock", v.Where))
}

func appendEvent(c *audit.Command, kind, lockID string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.AppendAt(ctx, time.Time{}, kind, lockID, data)
}

// describeRecord is one line about a lock record as it is now.
func describeRecord(r lock.Record, now time.Time) string {
	i := r.Info
	age := ""
	if !i.Created.IsZero() {
		age = ", " + now.Sub(i.Created).Round(time.Second).String() + " old"
	}
	return fmt.Sprintf("lock %s at %s: %s by %s, created %s%s", i.ID, r.Where, lock.OperationName(i.Operation), i.Who, i.Created.Local().Format(time.RFC3339), age)
}

// lockHistory says what the audit log knows of a lock: which tfsh session
// and command took it, whether that process is alive, whether it was
// recorded as orphaned.
func (s *Session) lockHistory(ctx context.Context, id string) []string {
	var out []string
	found := false
	err := s.cfg.Audit.Events(ctx, audit.EventFilter{LockID: id}, func(e audit.Event) error {
		switch e.Kind {
		case lock.KindAcquired:
			found = true
			var d struct {
				PID int `json:"pid"`
			}
			json.Unmarshal(e.Data, &d)
			line := fmt.Sprintf("the audit log: taken at %s by session %s", e.At.Local().Format(time.RFC3339), e.SessionID)
			if rec, err := s.cfg.Audit.Session(ctx, e.SessionID); err == nil {
				line += fmt.Sprintf(" (%s@%s, %s)", rec.Info.User, rec.Info.Host, rec.Status)
				for _, cmd := range rec.CommandList {
					if cmd.ID == e.CommandID {
						typed := cmd.Info.Line
						if typed == "" {
							typed = Quote(cmd.Info.Typed)
						}
						line += ", command: " + typed
					}
				}
				if host, _ := os.Hostname(); d.PID > 0 && rec.Info.Host == host {
					if lock.ProcessAlive(d.PID) && lock.IsTerraform(d.PID) {
						line += fmt.Sprintf("; its terraform (pid %d) is still running", d.PID)
					} else {
						line += fmt.Sprintf("; its terraform (pid %d) is gone", d.PID)
					}
				}
			}
			out = append(out, line)
		case lock.KindOrphaned:
			out = append(out, fmt.Sprintf("the audit log: recorded as orphaned at %s (its command ended and left it)", e.At.Local().Format(time.RFC3339)))
		case KindForceUnlock:
			out = append(out, fmt.Sprintf("the audit log: force-unlocked before, at %s", e.At.Local().Format(time.RFC3339)))
		case KindHoldPlaced:
			found = true
			out = append(out, fmt.Sprintf("the audit log: placed as a hold at %s by session %s", e.At.Local().Format(time.RFC3339), e.SessionID))
		}
		return nil
	})
	if err != nil {
		return []string{"the audit log could not be read: " + err.Error()}
	}
	if !found {
		out = append([]string{"the audit log has no record of this lock being taken: plain terraform, or tfsh with another log"}, out...)
	}
	return out
}

// resolves lists the IDs of the events a force-unlock resolves: the lock's
// acquisition and its orphaning, when recorded.
func (s *Session) resolves(ctx context.Context, id string) []string {
	var out []string
	s.cfg.Audit.Events(ctx, audit.EventFilter{LockID: id, Kinds: []string{lock.KindAcquired, lock.KindOrphaned}}, func(e audit.Event) error {
		out = append(out, e.ID)
		return nil
	})
	return out
}

// KindIntegrityCheck is the audit event of the check after an unlock.
const KindIntegrityCheck = "integrity_check"

// IntegrityRecord is the data of an integrity_check event.
type IntegrityRecord struct {
	LockID         string `json:"lock_id"`
	UnlockCommand  string `json:"unlock_command"`
	RefreshCommand string `json:"refresh_command,omitempty"`
	RefreshExit    int    `json:"refresh_exit"`
	PlanCommand    string `json:"plan_command,omitempty"`
	PlanExit       int    `json:"plan_exit"`
	Verdict        string `json:"verdict"`
}

// afterUnlock checks the state after a force-unlock, as the policy's
// after_unlock says: a refresh-only plan (does the state still describe
// the infrastructure, or did the killed run leave it behind?), then a plan
// (what the configuration would still change). Each runs as a command of
// its own, through the pipeline; the verdict is an integrity_check event
// linking the three.
func (s *Session) afterUnlock(ctx context.Context, sigs <-chan os.Signal, mode string, inv *terraform.Invocation, ref lock.StateRef, lockID, unlockCmd string) {
	if mode == "off" {
		return
	}
	var prefix []string
	if inv.Chdir != "" {
		prefix = []string{"-chdir=" + inv.Chdir}
	}
	refreshArgs := append(append([]string(nil), prefix...), "plan", "-refresh-only", "-detailed-exitcode", "-input=false")
	planArgs := append(append([]string(nil), prefix...), "plan", "-detailed-exitcode", "-input=false")
	if mode == "offer" {
		if s.cfg.Ask == nil {
			s.errorf("to check the state after the unlock, run: %s, then %s", Quote(refreshArgs), Quote(planArgs))
			return
		}
		actx, stop := untilSignal(ctx, sigs)
		answer, err := s.cfg.Ask(actx, "check the state now (a refresh-only plan, then a plan)? type yes to go on: ")
		if stop() {
			err = errors.New("interrupted")
		}
		if err != nil || !isYes(answer) {
			s.errorf("not checked; to check later, run: %s, then %s", Quote(refreshArgs), Quote(planArgs))
			return
		}
	}
	s.errorf("checking the state after the unlock: %s", Quote(refreshArgs))
	rec := IntegrityRecord{LockID: lockID, UnlockCommand: unlockCmd}
	r := s.Run(ctx, refreshArgs, "")
	rec.RefreshCommand, rec.RefreshExit = r.CommandID, r.ExitCode
	if r.ExitCode == 0 || r.ExitCode == 2 {
		s.errorf("checking what the configuration would change: %s", Quote(planArgs))
		p := s.Run(ctx, planArgs, "")
		rec.PlanCommand, rec.PlanExit = p.CommandID, p.ExitCode
	}
	switch {
	case r.Status == "interrupted" || rec.PlanCommand != "" && rec.PlanExit == ExitInterrupted:
		rec.Verdict = "interrupted: the state is not verified"
	case rec.RefreshExit != 0 && rec.RefreshExit != 2, rec.PlanCommand != "" && rec.PlanExit != 0 && rec.PlanExit != 2:
		rec.Verdict = "check failed: terraform could not plan (see its errors above); the state is not verified"
	case rec.RefreshExit == 2:
		rec.Verdict = "drift: the infrastructure differs from the state (the run that held the lock may have changed resources it did not record); review the refresh-only plan above, then apply -refresh-only or fix by hand"
	case rec.PlanExit == 2:
		rec.Verdict = "state consistent with the infrastructure (no drift); the configuration still has changes to apply (see the plan above)"
	default:
		rec.Verdict = "state consistent, no drift: the state matches the infrastructure and the configuration"
	}
	s.errorf("integrity check: %s", rec.Verdict)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.rec.Append(actx, KindIntegrityCheck, ref.Key, lockID, rec); err != nil {
		s.errorf("could not record the integrity check: %v", err)
	}
}

// CurrentLockID is the ID of the lock on the state of commands run in dir
// (a stale local .lock.info's too), "" when it is free. It is what tfsh
// unlock offers when no ID is given.
func (s *Session) CurrentLockID(ctx context.Context, dir string) (string, error) {
	getenv := terraform.EnvLookup(s.cfg.Env)
	ref, err := lock.Discover(dir, lock.Getenv(getenv))
	if err != nil {
		return "", err
	}
	if ref.Backend == "s3" {
		ed, err := lock.NewEditor(ctx, ref, lock.Getenv(getenv))
		if err != nil {
			return "", err
		}
		recs, err := ed.Records(ctx)
		if err != nil || len(recs) == 0 {
			return "", err
		}
		return recs[0].Info.ID, nil
	}
	obs, err := s.observers.open(ctx, ref, lock.Getenv(getenv))
	if err != nil {
		return "", err
	}
	for _, v := range obs.Observe(ctx) {
		switch {
		case v.Err != nil:
			return "", v.Err
		case v.Info != nil:
			return v.Info.ID, nil
		case v.Stale != nil:
			return v.Stale.ID, nil
		case v.Held:
			return "(held, no ID yet)", nil
		}
	}
	return "", nil
}

// editable reports whether tfsh removes this state's locks itself: local
// state, and the S3 backend's DynamoDB item or lockfile.
func editable(ref lock.StateRef) bool {
	switch ref.Backend {
	case "local", "":
		return true
	case "s3":
		return ref.Config["bucket"] != "" && ref.Config["key"] != "" &&
			(ref.Config["dynamodb_table"] != "" || ref.Config["use_lockfile"] == "true")
	}
	return false
}
