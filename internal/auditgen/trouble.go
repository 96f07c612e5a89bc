package auditgen

import (
	"fmt"
	"strings"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/shell"
)

// contentionMessage is terraform's "Error message:" for a lock held by
// someone else, by mechanism (captured from the real binaries, see
// terraform/testdata/diag).
func contentionMessage(k *stateKey) string {
	switch k.mechs[0] {
	case lock.Local:
		return "resource temporarily unavailable"
	case lock.S3Lockfile:
		return "operation error S3: PutObject, https response error StatusCode: 412, RequestID: 0000000000000039, api error PreconditionFailed: The object already exists"
	}
	if k.tool.name == "tofu" {
		return "operation error DynamoDB: PutItem, https response error StatusCode: 400, ConditionalCheckFailedException: The conditional request failed"
	}
	return "ConditionalCheckFailedException: The conditional request failed"
}

func lockErrorOutput(k *stateKey, holder *lock.Info) string {
	return fmt.Sprintf("╷\n│ Error: Error acquiring the state lock\n│\n│ Error message: %s\n│ Lock Info:\n│   ID:        %s\n│   Path:      %s\n│   Operation: %s\n│   Who:       %s\n│   Version:   %s\n│   Created:   %s\n│\n│ Terraform acquires a state lock to protect the state from being written\n│ by multiple users at the same time.\n╵\n",
		contentionMessage(k), holder.ID, holder.Path, holder.Operation, holder.Who, holder.Version, holder.Created.Format("2006-01-02 15:04:05.999999999 -0700 MST"))
}

// freeActorFor picks someone who works on k and is free from t.
func (g *gen) freeActorFor(k *stateKey, t time.Time, except []*actor) *actor {
	var people, runners []*actor
	for _, a := range g.actors {
		if a.busyUntil.After(t) || containsActor(except, a) {
			continue
		}
		has := a.ci
		for _, x := range a.keys {
			has = has || x == k
		}
		if !has {
			continue
		}
		if a.ci {
			runners = append(runners, a)
		} else {
			people = append(people, a)
		}
	}
	if len(people) > 0 && (len(runners) == 0 || g.rng.Float64() < 0.6) {
		return people[g.rng.IntN(len(people))]
	}
	if len(runners) > 0 {
		return runners[g.rng.IntN(len(runners))]
	}
	return nil
}

func containsActor(as []*actor, a *actor) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// sessionFor starts the session of a one-command run: tfsh run in CI,
// tfsh -c for a person.
func (e *episode) sessionFor(a *actor, t time.Time, k *stateKey, line []string) *sess {
	if a.ci {
		return e.session(a, "run", t, k, append([]string{"run", "--"}, line...))
	}
	return e.session(a, "command", t, k, []string{"-c", strings.Join(line, " ")})
}

// held is someone's lock on a state from from until until (zero: until
// removed by hand, beyond any waiter's patience).
type held struct {
	info        *lock.Info
	pid         int // a local holder's process
	from, until time.Time
	expires     bool // a hold whose time is up at until: the waiter releases it
}

// at returns the hold covering t, if any.
func holdAt(hs []held, t time.Time) (int, bool) {
	for i, h := range hs {
		// An expired hold stays until someone releases it.
		if !t.Before(h.from) && (h.until.IsZero() || h.expires || t.Before(h.until)) {
			return i, true
		}
	}
	return 0, false
}

// waiter plans a command by a that meets the locks hs on k from tw: it
// waits (each release seen, and the next holder), takes the lock when it
// is free, or gives up at its -lock-timeout (at once with 0s). It returns
// when the session ended and the lock it took (zero held if none), or
// false when tw finds the state free (the caller plans no waiter then).
func (g *gen) waiter(ep *episode, a *actor, k *stateKey, tw time.Time, hs []held, timeout time.Duration) (time.Time, held, bool) {
	t0 := tw.Add(g.ms(5, 40))
	tl := t0.Add(g.ms(500, 2500)) // terraform asks for the lock
	first, ok := holdAt(hs, tl)
	if !ok {
		return time.Time{}, held{}, false
	}
	var line []string
	switch {
	case a.ci:
		line = []string{"plan", "-input=false", "-out=tfplan"}
	case g.rng.Float64() < 0.7:
		line = []string{"plan"}
	default:
		line = []string{"apply", "-auto-approve"}
	}
	explicit := timeout != 5*time.Minute
	if explicit {
		line = append(line, "-lock-timeout="+map[time.Duration]string{0: "0s", 2 * time.Minute: "2m", 10 * time.Minute: "10m"}[timeout])
	}
	sub, _ := subcommand(line)
	deadline := tl.Add(timeout)
	// Which lock the waiter ends on: one still held at its deadline (it
	// gives up), or the last before it takes the lock.
	last := first
	for timeout > 0 {
		h := hs[last]
		if h.until.IsZero() || h.until.After(deadline) || h.expires || last+1 == len(hs) || hs[last+1].from.After(h.until.Add(5*time.Second)) {
			break
		}
		last++
	}
	fails := timeout == 0 || hs[last].until.IsZero() || hs[last].until.After(deadline)
	if fails && timeout == 0 {
		last = first
	}
	s := ep.sessionFor(a, tw, k, line)
	var dec audit.Decision
	var added []string
	if explicit {
		dec = g.allow(tw)
	} else {
		dec, added = g.allowAdded(tw)
	}
	out := output(sub, false)
	if fails {
		out = lockErrorOutput(k, hs[last].info)
	}
	c := s.command(t0, k, spec{typed: line, added: added, decision: dec, output: out})
	c.pid = a.nextPID(g.rng)
	where := k.where[0]
	pidOf := func(h held) int {
		if k.backend == "local" {
			return h.pid
		}
		return 0
	}
	if timeout == 0 {
		// -lock-timeout=0s: terraform fails at once.
		h := hs[first]
		te := tl.Add(g.ms(20, 200))
		c.queue(tl, lock.KindContention, h.info.ID, lock.Event{Source: lock.SourceOutput, Mechanisms: k.mechs, Where: where,
			Info: h.info, PID: pidOf(h), Message: contentionMessage(k), Backend: "confirmed"})
		c.queueObserved(te)
		c.end(te, audit.CommandEnd{Status: "failed", ExitCode: 1})
		s.end(te.Add(g.ms(1, 5)), "failed", 1)
		return te, held{}, true
	}
	seen := tl.Add(g.ms(2, 200))
	for j := first; ; j++ {
		h := hs[j]
		c.append(seen, lock.KindWait, h.info.ID, lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Where: where, Info: h.info, PID: pidOf(h)})
		if h.expires && !h.until.After(deadline) {
			// The hold's time is up: the waiting tfsh releases it, and
			// terraform's next retry takes the lock.
			rel := maxTime(seen, h.until).Add(g.ms(30, 300))
			until := h.until
			c.append(rel, shell.KindHoldReleased, h.info.ID, shell.HoldRecord{Who: a.who(), Info: h.info, Until: &until, Where: k.where, Expired: true})
			h.until = rel
		}
		if h.until.IsZero() || h.until.After(deadline) {
			// Gives up: terraform reports the lock as held.
			c.append(deadline, lock.KindContention, h.info.ID, lock.Event{Source: lock.SourceOutput, Mechanisms: k.mechs, Where: where,
				Info: h.info, PID: pidOf(h), Message: contentionMessage(k), Backend: "confirmed"})
			te := deadline.Add(g.ms(20, 200))
			c.queue(te, lock.KindWaitEnd, h.info.ID, lock.Event{Source: lock.SourceBackend, Info: h.info, PID: pidOf(h),
				WaitedMS: te.Sub(seen).Milliseconds(), Ended: "command ended"})
			c.queueObserved(te)
			c.end(te, audit.CommandEnd{Status: "failed", ExitCode: 1})
			s.end(te.Add(g.ms(1, 5)), "failed", 1)
			return te, held{}, true
		}
		gone := h.until.Add(g.ms(5, 200))
		c.append(gone, lock.KindWaitEnd, h.info.ID, lock.Event{Source: lock.SourceBackend, Info: h.info, PID: pidOf(h),
			WaitedMS: gone.Sub(seen).Milliseconds(), Ended: "released"})
		if j+1 < len(hs) && !hs[j+1].from.After(h.until.Add(5*time.Second)) {
			// Someone else's retry came first.
			seen = maxTime(gone, hs[j+1].from).Add(g.ms(2, 200))
			continue
		}
		ta := h.until.Add(g.ms(300, 3000)) // terraform's retry
		if !ta.After(gone) {
			ta = gone.Add(time.Millisecond)
		}
		var d time.Duration
		if sub == "plan" {
			d = g.dur(12*time.Second, 0.6, 2*time.Second, 3*time.Minute)
		} else {
			d = g.dur(50*time.Second, 0.8, 6*time.Second, 10*time.Minute)
		}
		tr := ta.Add(d)
		te := tr.Add(g.ms(20, 300))
		id := c.lockRun(ta, tr, te, operation(sub))
		c.end(te, audit.CommandEnd{Status: "ok"})
		s.end(te.Add(g.ms(1, 5)), "ok", 0)
		if id == "" {
			return te, held{}, true
		}
		return te, held{info: c.lockInfo(id, operation(sub), ta), pid: c.pid, from: ta, until: tr}, true
	}
}

// waiters plans one to three commands by others that arrive between from
// and to and meet the locks hs (more holds are added as waiters take the
// lock in turn). It returns when the last one ended (at least last), and
// marks the state busy until then.
func (g *gen) waiters(ep *episode, k *stateKey, holder *actor, hs []held, from, to, last time.Time) time.Time {
	n := 1 + g.rng.IntN(3)
	arrivals := make([]time.Time, n)
	for i := range arrivals {
		arrivals[i] = from.Add(time.Duration(g.rng.Float64() * float64(to.Sub(from))))
	}
	sortTimes(arrivals)
	except := []*actor{holder}
	for _, tw := range arrivals {
		w := g.freeActorFor(k, tw, except)
		if w == nil {
			continue
		}
		end, took, ok := g.waiter(ep, w, k, tw, hs, g.waitTimeout(w))
		if !ok {
			continue
		}
		except = append(except, w)
		if took.info != nil {
			hs = append(hs, took)
		}
		last = maxTime(last, end)
	}
	if last.After(k.busyUntil) {
		k.busyUntil = last
	}
	return last
}

func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// waitTimeout draws a waiter's -lock-timeout: mostly the policy's 5m.
func (g *gen) waitTimeout(a *actor) time.Duration {
	x := g.rng.Float64()
	switch {
	case !a.ci && x < 0.3:
		return 0
	case x < 0.85:
		return 5 * time.Minute
	case x < 0.93:
		return 2 * time.Minute
	}
	return 10 * time.Minute
}

// contention: a long apply holds the lock; others wait for it and get it,
// fail at once, or give up.
func (g *gen) contention(ep *episode, t time.Time) bool {
	holder := g.freeActor(t)
	if holder == nil {
		return false
	}
	k := g.freeKey(holder, t, true)
	if k == nil {
		return false
	}
	line := []string{"apply", "-auto-approve"}
	if holder.ci {
		line = []string{"apply", "-input=false", "tfplan"}
	}
	s := ep.sessionFor(holder, t, k, line)
	dec, added := g.allowAdded(t)
	t0 := t.Add(g.ms(5, 40))
	c := s.command(t0, k, spec{typed: line, added: added, decision: dec, output: output("apply", true)})
	c.pid = holder.nextPID(g.rng)
	ta := t0.Add(g.ms(800, 3000))
	tr := ta.Add(g.dur(3*time.Minute, 0.6, 40*time.Second, 20*time.Minute))
	te := tr.Add(g.ms(20, 300))
	id := c.lockRun(ta, tr, te, "OperationTypeApply")
	c.end(te, audit.CommandEnd{Status: "ok"})
	s.end(te.Add(g.ms(1, 5)), "ok", 0)
	info := c.lockInfo(id, "OperationTypeApply", ta)
	if id == "" {
		return false
	}
	g.waiters(ep, k, holder, []held{{info: info, pid: c.pid, from: ta, until: tr}}, ta, ta.Add(tr.Sub(ta)*8/10), te)
	return true
}

// killed plans an apply whose terraform is killed at tk, leaving its lock
// behind; it returns the lock.
func (g *gen) killed(ep *episode, a *actor, k *stateKey, t time.Time) (*lock.Info, time.Time) {
	line := []string{"apply", "-auto-approve"}
	if a.ci {
		line = []string{"apply", "-input=false", "tfplan"}
	}
	s := ep.sessionFor(a, t, k, line)
	dec, added := g.allowAdded(t)
	t0 := t.Add(g.ms(5, 40))
	c := s.command(t0, k, spec{typed: line, added: added, decision: dec, output: output("apply", true)})
	c.pid = a.nextPID(g.rng)
	ta := t0.Add(g.ms(800, 3000))
	id := g.uuid()
	info := c.lockInfo(id, "OperationTypeApply", ta)
	seen := ta.Add(c.detection())
	d := float64(seen.Sub(ta).Microseconds()) / 1000
	c.append(seen, lock.KindAcquired, id, lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Where: k.where[0],
		Info: info, PID: c.pid, DetectionDelayMS: &d})
	tk := ta.Add(g.dur(2*time.Minute, 0.8, 10*time.Second, 30*time.Minute))
	te := tk.Add(g.ms(200, 2000))
	var end audit.CommandEnd
	var note string
	if a.ci || g.rng.Float64() < 0.5 {
		// The pipeline was cancelled: two interrupts, terraform exits at once.
		end = audit.CommandEnd{Status: "failed", ExitCode: 1, Reason: "tfsh forwarded interrupt, interrupt"}
		note = "terraform exited at once after two interrupts, leaving its lock: once nothing uses the state, run tfsh -c 'force-unlock " + id + "' where it was taken"
	} else {
		end = audit.CommandEnd{Status: "killed", ExitCode: 137, Signal: "killed"}
		note = "our terraform exited and its lock is still held: once nothing uses the state, run tfsh -c 'force-unlock " + id + "' where it was taken"
	}
	c.queue(te, lock.KindOrphaned, id, lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Where: k.where[0], Info: info, Note: note})
	c.queueObserved(te)
	c.end(te, end)
	s.end(te.Add(g.ms(1, 5)), "failed", end.ExitCode)
	return info, te
}

var unlockReasons = []string{
	"INC-%d pipeline cancelled mid-apply, lock left behind",
	"INC-%d runner OOM-killed during apply",
	"CHG-%d stale lock from a cancelled deploy, checked nobody is running",
	"INC-%d laptop lost network during apply",
}

// unlock plans tfsh unlock --reason R ID by a, then the integrity check
// (a refresh-only plan, then a plan). It returns when the session ended.
func (g *gen) unlock(ep *episode, a *actor, k *stateKey, t time.Time, info *lock.Info) time.Time {
	reason := fmt.Sprintf(unlockReasons[g.rng.IntN(len(unlockReasons))], 1000+g.rng.IntN(9000))
	id := info.ID
	s := ep.session(a, "unlock", t, k, []string{"unlock", "--reason", reason, id})
	src := orgPolicy + ":44"
	dec := audit.Decision{Action: "require_reason", Rule: "force-unlock-reason", Source: builtIn, Message: msgUnlockWhy,
		Findings: []audit.Finding{{Rule: "force-unlock-reason", Source: builtIn, Action: "require_reason", Message: msgUnlockWhy},
			{Rule: "force-unlock-needs-ticket", Source: src, Action: "require_reason", Message: msgTicket}},
		Reason: reason, Policy: g.policyFiles(t)}
	line := []string{"force-unlock", id}
	out := fmt.Sprintf("tfsh: removed lock %s from %s (conditional delete)\n", id, k.where[0])
	c := s.command(t.Add(g.ms(5, 40)), k, spec{typed: line, decision: dec, output: out,
		note: "tfsh removes this lock itself (compare-and-delete); terraform does not run"})
	c.info.Line = ""
	at := c.start.Add(g.ms(100, 800))
	for _, w := range k.where {
		rec := shell.ForceUnlockRecord{Who: a.who(), Reason: reason, Where: w, Info: info, Method: "conditional delete"}
		db := g.db
		c.append(at, shell.KindForceUnlock, id, func() any {
			ev := rec
			db.Events(g.ctx, audit.EventFilter{LockID: id, Kinds: []string{lock.KindAcquired, lock.KindOrphaned}}, func(e audit.Event) error {
				ev.Resolve = append(ev.Resolve, e.ID)
				return nil
			})
			return ev
		})
		at = at.Add(g.ms(20, 120))
	}
	c.end(at, audit.CommandEnd{Status: "ok", Reason: id})
	// after_unlock: the state is checked, each check a command of its own.
	refresh := []string{"plan", "-refresh-only", "-detailed-exitcode", "-input=false"}
	rc := g.checkCommand(s, k, at.Add(g.ms(50, 300)), refresh, g.rng.Float64() < 0.2)
	plan := []string{"plan", "-detailed-exitcode", "-input=false"}
	pc := g.checkCommand(s, k, rc.end.Add(g.ms(50, 300)), plan, g.rng.Float64() < 0.4)
	rec := shell.IntegrityRecord{LockID: id, RefreshExit: rc.exit, PlanExit: pc.exit}
	switch {
	case rc.exit == 2:
		rec.Verdict = "drift: the infrastructure differs from the state (the run that held the lock may have changed resources it did not record); review the refresh-only plan above, then apply -refresh-only or fix by hand"
	case pc.exit == 2:
		rec.Verdict = "state consistent with the infrastructure (no drift); the configuration still has changes to apply (see the plan above)"
	default:
		rec.Verdict = "state consistent, no drift: the state matches the infrastructure and the configuration"
	}
	tc := pc.end.Add(g.ms(1, 20))
	s.appendEvent(tc, shell.KindIntegrityCheck, k.key, id, func() any {
		r := rec
		r.UnlockCommand, r.RefreshCommand, r.PlanCommand = c.h.ID, rc.c.h.ID, pc.c.h.ID
		return r
	})
	s.end(tc.Add(g.ms(1, 5)), "ok", 0)
	return tc
}

type checked struct {
	c    *cmd
	end  time.Time
	exit int
}

// checkCommand is one command of the integrity check (line not typed:
// tfsh runs it).
func (g *gen) checkCommand(s *sess, k *stateKey, t time.Time, line []string, changes bool) checked {
	dec, added := g.allowAdded(t)
	c := s.command(t, k, spec{typed: line, added: added, decision: dec, output: output("plan", changes)})
	c.info.Line = ""
	c.pid = s.a.nextPID(g.rng)
	ta := t.Add(g.ms(600, 2500))
	tr := ta.Add(g.dur(10*time.Second, 0.5, 2*time.Second, 2*time.Minute))
	te := tr.Add(g.ms(20, 300))
	c.lockRun(ta, tr, te, "OperationTypePlan")
	exit := 0
	if changes {
		exit = 2
	}
	c.end(te, audit.CommandEnd{Status: "ok", ExitCode: exit})
	return checked{c, te, exit}
}

// orphan: an apply killed mid-way leaves its lock; others run into it;
// someone force-unlocks it with a reason, and the state is checked.
func (g *gen) orphan(ep *episode, t time.Time) bool {
	a := g.freeActor(t)
	if a == nil {
		return false
	}
	k := g.freeKey(a, t, true)
	if k == nil {
		return false
	}
	info, tk := g.killed(ep, a, k, t)
	tu := tk.Add(g.dur(40*time.Minute, 1, 5*time.Minute, 8*time.Hour))
	if last := g.waiters(ep, k, a, []held{{info: info, from: tk}}, tk, tk.Add(tu.Sub(tk)*7/10), tk); last.After(tu) {
		tu = last.Add(g.dur(5*time.Minute, 0.5, time.Minute, time.Hour))
	}
	u := g.onCall(k, tu, nil)
	if u == nil {
		return false
	}
	k.busyUntil = g.unlock(ep, u, k, tu, info)
	return true
}

// onCall picks a person to handle an incident on k at t (who works on it,
// or anyone).
func (g *gen) onCall(k *stateKey, t time.Time, except []*actor) *actor {
	var cands []*actor
	for _, a := range g.actors {
		if a.ci || a.busyUntil.After(t) || containsActor(except, a) {
			continue
		}
		for _, x := range a.keys {
			if x == k {
				cands = append(cands, a)
			}
		}
	}
	if len(cands) == 0 {
		for _, a := range g.actors {
			if !a.ci && !a.busyUntil.After(t) && !containsActor(except, a) {
				cands = append(cands, a)
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[g.rng.IntN(len(cands))]
}

var holdReasons = []string{
	"CHG-%d database migration in progress, do not apply",
	"CHG-%d change freeze for the release",
	"INC-%d investigating drift, hands off",
	"CHG-%d network maintenance window",
}

// hold: a change-freeze hold; those who run into it are refused by the
// backend (or release it once its time is up); it is released.
func (g *gen) hold(ep *episode, t time.Time) bool {
	a := g.onCall(nil, t, nil)
	if a == nil {
		return false
	}
	k := g.freeKey(a, t, true)
	if k == nil || k.backend != "s3" {
		return false
	}
	reason := fmt.Sprintf(holdReasons[g.rng.IntN(len(holdReasons))], 1000+g.rng.IntN(9000))
	var dur time.Duration
	args := []string{"hold", "--reason", reason}
	if g.rng.Float64() < 0.6 {
		dur = time.Duration(1+g.rng.IntN(4)) * time.Hour
		args = append(args, "--for", dur.String())
	}
	s := ep.session(a, "hold", t, k, args)
	dec := audit.Decision{Action: "require_reason", Rule: "hold-reason", Source: builtIn, Message: msgHold,
		Findings: []audit.Finding{{Rule: "hold-reason", Source: builtIn, Action: "require_reason", Message: msgHold}},
		Reason:   reason, Policy: g.policyFiles(t)}
	tp := t.Add(g.ms(5, 40))
	c := s.ownCommand(tp, k, "hold", dec)
	placed := tp.Add(g.ms(50, 400))
	text := reason
	var until *time.Time
	if dur > 0 {
		u := placed.Add(dur).UTC().Truncate(time.Second)
		until = &u
		text += " (tfsh hold until " + u.Format(time.RFC3339) + ")"
	}
	info := &lock.Info{ID: g.uuid(), Operation: holdOp, Info: text, Who: a.who(), Version: "tfsh", Created: placed.UTC(), Path: k.key}
	c.append(placed, shell.KindHoldPlaced, info.ID, shell.HoldRecord{Who: a.who(), Reason: reason, Until: until, Info: info, Where: k.where})
	done := placed.Add(g.ms(1, 20))
	c.end(done, audit.CommandEnd{Status: "ok", Reason: info.ID})
	s.end(done.Add(g.ms(1, 5)), "ok", 0)
	a.busyUntil = done

	// Released by hand, or, for a hold with a time, by whoever meets it
	// after its time.
	release := done.Add(g.dur(90*time.Minute, 0.6, 10*time.Minute, 6*time.Hour))
	expires := until != nil && g.rng.Float64() < 0.5
	if expires {
		release = *until
	} else if until != nil && release.After(*until) {
		release = until.Add(-time.Duration(g.rng.IntN(600)) * time.Second)
	}
	last := g.waiters(ep, k, a, []held{{info: info, from: placed}}, done, done.Add(release.Sub(done)*9/10), release)
	if expires {
		// The first who comes after its time releases it.
		tv := release.Add(g.dur(20*time.Minute, 1, time.Minute, 3*time.Hour))
		if w := g.freeActorFor(k, tv, nil); w != nil {
			if end, _, ok := g.waiter(ep, w, k, tv, []held{{info: info, from: placed, until: release, expires: true}}, 5*time.Minute); ok {
				k.busyUntil = maxTime(last, end)
				return true
			}
		}
		// Nobody came: released by hand after all.
	}
	tr := maxTime(release, last).Add(g.ms(1000, 60000))
	r := a
	if a.busyUntil.After(tr) || g.rng.Float64() < 0.3 {
		if o := g.onCall(k, tr, nil); o != nil {
			r = o
		}
	}
	if r.busyUntil.After(tr) {
		tr = r.busyUntil.Add(time.Second)
	}
	rs := ep.session(r, "hold", tr, k, []string{"hold", "--release"})
	rc := rs.ownCommand(tr.Add(g.ms(5, 40)), k, "hold release", g.allow(tr))
	gone := rc.start.Add(g.ms(50, 400))
	rc.append(gone, shell.KindHoldReleased, info.ID, shell.HoldRecord{Who: r.who(), Info: info, Where: k.where})
	end := gone.Add(g.ms(1, 20))
	rc.end(end, audit.CommandEnd{Status: "ok"})
	rs.end(end.Add(g.ms(1, 5)), "ok", 0)
	k.busyUntil = end
	return true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ownCommand plans one of tfsh's own commands (hold, hold release), whose
// command_start carries what shell/hold.go records.
func (s *sess) ownCommand(t time.Time, k *stateKey, name string, dec audit.Decision) *cmd {
	c := s.command(t, k, spec{typed: []string{"tfsh", name}, decision: dec})
	c.info = audit.CommandInfo{Typed: []string{"tfsh", name}, Subcommand: name, Known: true, Workdir: s.info.CWD,
		Workspace: "default", Backend: k.backend, StateKey: k.key}
	return c
}

// crash: tfsh is killed during an apply (the laptop died); the next tfsh
// on that machine closes the session as crashed. On S3 the lock stays,
// and that next session unlocks it.
func (g *gen) crash(ep *episode, t time.Time) bool {
	a := g.onCall(nil, t, nil)
	if a == nil {
		return false
	}
	k := g.freeKey(a, t, false)
	if k == nil {
		return false
	}
	line := []string{"apply", "-auto-approve"}
	s := ep.sessionFor(a, t, k, line)
	dec, added := g.allowAdded(t)
	t0 := t.Add(g.ms(5, 40))
	c := s.command(t0, k, spec{typed: line, added: added, decision: dec, noOutput: true})
	c.pid = a.nextPID(g.rng)
	ta := t0.Add(g.ms(800, 3000))
	id := g.uuid()
	info := c.lockInfo(id, "OperationTypeApply", ta)
	seen := ta.Add(c.detection())
	d := float64(seen.Sub(ta).Microseconds()) / 1000
	c.append(seen, lock.KindAcquired, id, lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Where: k.where[0],
		Info: info, PID: c.pid, DetectionDelayMS: &d})
	// Nothing more: tfsh and its terraform are gone.
	next := seen.Add(g.dur(20*time.Minute, 1, 2*time.Minute, 5*time.Hour))
	a.busyUntil = next
	// The next session's start writes command_end and session_end of
	// this one (crash detection).
	ep.add(audit.KindCommandEnd)
	ep.add(audit.KindSessionEnd)
	if k.backend == "local" {
		ns := ep.session(a, "command", next, k, []string{"-c", "plan"})
		te := ns.simple(next.Add(g.ms(5, 40)), k, []string{"plan"})
		ns.end(te.Add(g.ms(1, 5)), "ok", 0)
		return true
	}
	k.busyUntil = g.unlock(ep, a, k, next, info)
	return true
}
