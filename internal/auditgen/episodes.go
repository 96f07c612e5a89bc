package auditgen

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
)

// Policy as the generated team has it: the organisation's file (updated
// twice in the month), the built-in rules, and the example rules of
// examples/policies/org.hcl.
const (
	orgPolicy    = "/etc/tfsh/policy.hcl"
	builtIn      = "built-in"
	msgUnlocked  = "apply writes state, and -lock=false turns its state lock off: two runs at once could overwrite each other's state; drop the flag and let tfsh wait for the lock instead"
	msgUnlockWhy = "force-unlock removes a lock that another run may still hold: say why (the reason is recorded)"
	msgTicket    = "force-unlock removes a lock another run may still hold: give the incident or change ticket (INC-123, CHG-456) in the reason"
	msgHold      = "a hold needs a reason: it is what terraform users see when the hold refuses them"
	msgTargets   = "-target applies part of the configuration and skips what depends on it; follow up with a full apply"
	holdOp       = "tfsh-hold"
)

func (g *gen) policyFiles(t time.Time) []audit.PolicyFile {
	sum := "6c1f0b8e2a9d4e7f3b5a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"
	switch {
	case t.After(g.begin.Add(g.opt.Span * 2 / 3)):
		sum = "fba9b74a03b1238c56a2ba9dfae8f116368504790ef26e3f674a11a0ba742bbb"
	case t.After(g.begin.Add(g.opt.Span / 3)):
		sum = "0d4c2b1a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060f5e"
	}
	return []audit.PolicyFile{{Layer: "organisation", Path: orgPolicy, SHA256: sum}}
}

// allowAdded is the usual decision: allowed, -lock-timeout=5m added.
func (g *gen) allowAdded(t time.Time) (audit.Decision, []string) {
	added := []string{"-lock-timeout=5m"}
	return audit.Decision{Action: "allow", Rule: "lock-timeout-default", Source: builtIn, Added: added, Policy: g.policyFiles(t)}, added
}

func (g *gen) allow(t time.Time) audit.Decision {
	return audit.Decision{Action: "allow", Policy: g.policyFiles(t)}
}

// dur draws a duration around median, with a long tail, within [lo, hi].
func (g *gen) dur(median time.Duration, sigma float64, lo, hi time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(g.rng.NormFloat64()*sigma))
	return max(lo, min(hi, d))
}

func (g *gen) ms(lo, hi int) time.Duration {
	return time.Duration(lo+g.rng.IntN(hi-lo+1)) * time.Millisecond
}

// uuid is a lock ID as terraform makes them.
func (g *gen) uuid() string {
	r := g.rng
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
}

// freeActor picks someone free at t: people mostly in working hours.
func (g *gen) freeActor(t time.Time, except ...*actor) *actor {
	wantCI := g.rng.Float64() >= 0.55*activity(t)
	free := func(a *actor) bool {
		for _, x := range except {
			if x == a {
				return false
			}
		}
		return !a.busyUntil.After(t)
	}
	var cands []*actor
	for _, a := range g.actors {
		if free(a) && a.ci == wantCI {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		for _, a := range g.actors {
			if free(a) {
				cands = append(cands, a)
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[g.rng.IntN(len(cands))]
}

// freeKey picks one of a's states that nobody uses at t.
func (g *gen) freeKey(a *actor, t time.Time, shared bool) *stateKey {
	i := pick(g.rng, a.weights, func(i int) bool {
		k := a.keys[i]
		return !k.busyUntil.After(t) && (!shared || k.owner == nil)
	})
	if i < 0 {
		return nil
	}
	return a.keys[i]
}

// episode plans one episode at t into ep and says what kind it was, or ""
// when nobody (or no state) was free.
func (g *gen) episode(ep *episode, t time.Time) string {
	x := g.rng.Float64()
	if x < g.opt.Contention {
		y := g.rng.Float64()
		switch {
		case y < 0.62:
			return ok(g.contention(ep, t), "contention")
		case y < 0.78:
			return ok(g.orphan(ep, t), "orphan")
		case y < 0.90:
			return ok(g.hold(ep, t), "hold")
		default:
			return ok(g.crash(ep, t), "crash")
		}
	}
	a := g.freeActor(t)
	if a == nil {
		return ""
	}
	y := g.rng.Float64()
	if a.ci {
		if y < 0.03 {
			return ok(g.refusedCI(ep, a, t), "refused")
		}
		return ok(g.pipeline(ep, a, t), "pipeline")
	}
	switch {
	case y < 0.45:
		return ok(g.interactive(ep, a, t), "interactive")
	case y < 0.47:
		return ok(g.refusedHuman(ep, a, t), "refused")
	case y < 0.49:
		return ok(g.idleSession(ep, t), "idle")
	}
	return ok(g.oneCommand(ep, a, t), "command")
}

func ok(b bool, kind string) string {
	if b {
		return kind
	}
	return ""
}

// ---- commands ----

// lockRun plans the lock events of a locking command that succeeded:
// acquired while it runs, released, observed, with command_end at te.
// It returns the lock's ID.
func (c *cmd) lockRun(ta, tr, te time.Time, operation string) string {
	g := c.s.ep.g
	k := c.k
	id := g.uuid()
	info := c.lockInfo(id, operation, ta)
	seen := ta.Add(c.detection())
	d := float64(seen.Sub(ta).Microseconds()) / 1000
	if g.rng.Float64() < 0.004 {
		// Held and gone between two reads: inferred at the end.
		c.queueObserved(te)
		note := "the command succeeded with locking on, so it took and released the lock, but no observation caught it"
		c.queue(c.start, lock.KindAcquired, "", lock.Event{Source: lock.SourceInferred, Note: note})
		c.queue(te, lock.KindReleased, "", lock.Event{Source: lock.SourceInferred, Note: note})
		return ""
	}
	c.append(seen, lock.KindAcquired, id, lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Where: k.where[0],
		Info: info, PID: c.pid, DetectionDelayMS: &d})
	rel := lock.Event{Source: lock.SourceBackend, Mechanisms: k.mechs, Info: info, HeldMS: tr.Sub(ta).Milliseconds()}
	if k.backend == "local" && g.rng.Float64() < 0.5 {
		rel.Note = "terraform exited; the operating system released its lock"
	}
	c.queue(tr, lock.KindReleased, id, rel)
	c.queueObserved(te)
	return id
}

// detection is how long after the lock's Created tfsh saw it.
func (c *cmd) detection() time.Duration {
	g := c.s.ep.g
	if c.k.backend == "local" {
		return time.Duration(1000+g.rng.IntN(2500)) * time.Microsecond
	}
	return time.Duration(2000+g.rng.IntN(30000)) * time.Microsecond
}

// queueObserved plans the lock_observed that closes every watched command.
func (c *cmd) queueObserved(te time.Time) {
	watched := te.Sub(c.start)
	fast := min(watched, 3*time.Second)
	var polls int
	if c.k.backend == "local" {
		polls = int(fast/(2500*time.Microsecond)) + int((watched-fast)/(20*time.Millisecond))
	} else {
		polls = int(fast/(12*time.Millisecond)) + int((watched-fast)/(200*time.Millisecond))
	}
	polls++
	c.queue(te, lock.KindObserved, "", lock.Event{Source: lock.SourceBackend, Mechanisms: c.k.mechs, Polls: polls,
		Requests: polls * len(c.k.mechs), WatchedMS: watched.Milliseconds()})
}

// operation is the LockInfo operation of a subcommand.
func operation(sub string) string {
	switch sub {
	case "plan":
		return "OperationTypePlan"
	case "apply", "destroy":
		return "OperationTypeApply"
	case "refresh":
		return "OperationTypeRefresh"
	}
	return "OperationTypeInvalid"
}

// output is a little of what terraform prints, for commands whose output
// is stored.
func output(sub string, changes bool) string {
	switch sub {
	case "plan":
		if changes {
			return "terraform_data.hold: Refreshing state...\n\nTerraform will perform the following actions:\n\n  # terraform_data.hold must be replaced\n\nPlan: 1 to add, 0 to change, 1 to destroy.\n"
		}
		return "terraform_data.hold: Refreshing state...\n\nNo changes. Your infrastructure matches the configuration.\n"
	case "apply":
		return "terraform_data.hold: Destroying...\nterraform_data.hold: Creation complete after 2s\n\nApply complete! Resources: 1 added, 0 changed, 1 destroyed.\n"
	case "init":
		return "Initializing the backend...\n\nTerraform has been successfully initialized!\n"
	case "state list":
		return "terraform_data.hold\nmodule.app.aws_iam_role.this\n"
	case "validate":
		return "Success! The configuration is valid.\n"
	}
	return ""
}

// simple plans a command that runs without meeting anyone's lock, from t;
// it returns when it ended.
func (s *sess) simple(t time.Time, k *stateKey, typed []string) time.Time {
	g := s.ep.g
	sub, f := subcommand(typed)
	takesLock := f.locks == "always" && !contains(typed, "-lock=false")
	var dec audit.Decision
	var added []string
	if (f.locks == "always" || f.locks == "conditional") && !hasPrefix(typed, "-lock-timeout=") {
		dec, added = g.allowAdded(t)
	} else {
		dec = g.allow(t)
	}
	if hasPrefix(typed, "-target=") && sub != "plan" {
		dec.Action = "warn"
		dec.Rule, dec.Source, dec.Message = "targets-are-exceptional", orgPolicy+":84", msgTargets
		dec.Findings = []audit.Finding{{Rule: "targets-are-exceptional", Source: orgPolicy + ":84", Action: "warn", Message: msgTargets}}
	}
	changes := g.rng.Float64() < 0.35
	c := s.command(t, k, spec{typed: typed, added: added, decision: dec, output: output(sub, changes)})
	c.pid = s.a.nextPID(g.rng)
	var d time.Duration
	switch sub {
	case "plan":
		d = g.dur(12*time.Second, 0.7, 2*time.Second, 4*time.Minute)
	case "apply", "destroy":
		d = g.dur(50*time.Second, 0.9, 6*time.Second, 20*time.Minute)
	case "init":
		d = g.dur(6*time.Second, 0.6, time.Second, time.Minute)
	case "refresh", "import", "state rm", "state mv":
		d = g.dur(8*time.Second, 0.6, time.Second, 2*time.Minute)
	default:
		d = g.dur(1500*time.Millisecond, 0.6, 200*time.Millisecond, 20*time.Second)
	}
	te := t.Add(d)
	end := audit.CommandEnd{Status: "ok"}
	switch {
	case takesLock:
		ta := t.Add(g.ms(600, 3000))
		if ta.After(te) {
			ta = t.Add(d / 4)
		}
		tr := te.Add(-g.ms(20, 300))
		c.lockRun(ta, tr, te, operation(sub))
	case f.locks == "conditional":
		c.queueObserved(te)
	}
	if sub == "plan" && changes && contains(typed, "-detailed-exitcode") {
		end.ExitCode = 2
	}
	if takesLock && g.rng.Float64() < 0.04 {
		// terraform's own failure: a provider error, a bad variable.
		end.Status, end.ExitCode = "failed", 1
	}
	if sub == "output" || sub == "show" || sub == "state pull" {
		end.OutputWithheld = sub + " prints values from state, which may be secret"
	}
	c.end(te, end)
	if te.After(k.busyUntil) {
		k.busyUntil = te
	}
	return te
}

func contains(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func hasPrefix(args []string, p string) bool {
	for _, x := range args {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}

// ---- episodes of one person or runner ----

var humanLines = [][]string{
	{"plan"}, {"plan"}, {"plan"}, {"plan"}, {"plan", "-out=tfplan"}, {"plan", "-detailed-exitcode"},
	{"apply"}, {"apply", "-auto-approve"}, {"apply", "tfplan"},
	{"state", "list"}, {"validate"}, {"output"}, {"init"}, {"init", "-upgrade"},
	{"plan", "-target=module.app"}, {"apply", "-target=module.app"}, {"state", "show", "terraform_data.hold"},
	{"refresh"}, {"fmt", "-check"}, {"plan", "-refresh-only"}, {"import", "aws_s3_bucket.logs", "acme-logs"},
	{"state", "rm", "module.old"}, {"workspace", "show"}, {"providers"}, {"plan", "-var-file=prod.tfvars"},
}

func (g *gen) humanLine() []string {
	l := humanLines[g.rng.IntN(len(humanLines))]
	return append([]string(nil), l...)
}

// oneCommand: tfsh -c 'LINE'.
func (g *gen) oneCommand(ep *episode, a *actor, t time.Time) bool {
	k := g.freeKey(a, t, false)
	if k == nil {
		return false
	}
	line := g.humanLine()
	if g.rng.Float64() < 0.5 {
		line = []string{"plan"}
	}
	s := ep.session(a, "command", t, k, []string{"-c", strings.Join(line, " ")})
	te := s.simple(t.Add(g.ms(5, 40)), k, line)
	status, exit := "ok", 0
	s.end(te.Add(g.ms(1, 5)), status, exit)
	return true
}

// interactive: the shell, a few commands with pauses between them.
func (g *gen) interactive(ep *episode, a *actor, t time.Time) bool {
	k := g.freeKey(a, t, false)
	if k == nil {
		return false
	}
	s := ep.session(a, "interactive", t, k, nil)
	n := 1 + g.rng.IntN(8)
	at := t.Add(g.dur(8*time.Second, 0.8, time.Second, 2*time.Minute))
	for i := 0; i < n; i++ {
		line := g.humanLine()
		if i == 0 && g.rng.Float64() < 0.5 {
			line = []string{"plan"}
		}
		at = s.simple(at, k, line)
		at = at.Add(g.dur(40*time.Second, 1, 2*time.Second, 15*time.Minute))
	}
	s.end(at, "ok", 0)
	return true
}

// pipeline: a CI run, one tfsh run session per step on the same runner.
func (g *gen) pipeline(ep *episode, a *actor, t time.Time) bool {
	k := g.freeKey(a, t, true)
	if k == nil {
		return false
	}
	steps := [][]string{{"init", "-input=false"}, {"plan", "-input=false", "-out=tfplan"}}
	if g.rng.Float64() < 0.4 {
		steps = append(steps, []string{"apply", "-input=false", "tfplan"})
	}
	at := t
	for _, st := range steps {
		s := ep.session(a, "run", at, k, append([]string{"run", "--"}, st...))
		te := s.simple(at.Add(g.ms(5, 40)), k, st)
		s.end(te.Add(g.ms(1, 5)), "ok", 0)
		at = te.Add(g.dur(4*time.Second, 0.5, time.Second, 30*time.Second))
	}
	return true
}

// refusedCI: a pipeline step that would not wait for the lock, refused by
// the organisation's policy.
func (g *gen) refusedCI(ep *episode, a *actor, t time.Time) bool {
	k := g.freeKey(a, t, true)
	if k == nil {
		return false
	}
	line := []string{"plan", "-input=false", "-lock-timeout=30s"}
	s := ep.session(a, "run", t, k, append([]string{"run", "--"}, line...))
	msg := "in CI, plan must wait at least 5m for the state lock (it would wait 30s): use -lock-timeout=5m or more"
	src := orgPolicy + ":65"
	dec := audit.Decision{Action: "deny", Rule: "ci-waits-for-locks", Source: src, Message: msg,
		Findings: []audit.Finding{{Rule: "ci-waits-for-locks", Source: src, Action: "deny", Message: msg}}, Policy: g.policyFiles(t)}
	c := s.command(t.Add(g.ms(5, 40)), k, spec{typed: line, decision: dec})
	te := c.start.Add(g.ms(0, 2))
	c.end(te, audit.CommandEnd{Status: "refused", ExitCode: 3, Reason: "ci-waits-for-locks"})
	s.end(te.Add(g.ms(1, 3)), "failed", 3)
	return true
}

// refusedHuman: apply -lock=false, refused by the built-in rule.
func (g *gen) refusedHuman(ep *episode, a *actor, t time.Time) bool {
	k := g.freeKey(a, t, false)
	if k == nil {
		return false
	}
	line := []string{"apply", "-lock=false", "-auto-approve"}
	s := ep.session(a, "command", t, k, []string{"-c", strings.Join(line, " ")})
	dec := audit.Decision{Action: "deny", Rule: "no-unlocked-writes", Source: builtIn, Message: msgUnlocked,
		Findings: []audit.Finding{{Rule: "no-unlocked-writes", Source: builtIn, Action: "deny", Message: msgUnlocked}}, Policy: g.policyFiles(t)}
	c := s.command(t.Add(g.ms(5, 40)), k, spec{typed: line, decision: dec})
	te := c.start.Add(g.ms(0, 2))
	c.end(te, audit.CommandEnd{Status: "refused", ExitCode: 3, Reason: "no-unlocked-writes"})
	s.end(te.Add(g.ms(1, 3)), "failed", 3)
	return true
}

// quickSession: tfsh -c 'state list' (5 events), for the exact end.
func (g *gen) quickSession(ep *episode, t time.Time) bool {
	a := g.freeActor(t)
	if a == nil {
		return false
	}
	k := g.freeKey(a, t, false)
	if k == nil {
		return false
	}
	line := []string{"state", "list"}
	s := ep.sessionFor(a, t, k, line)
	te := s.simple(t.Add(g.ms(5, 40)), k, line)
	s.end(te.Add(g.ms(1, 5)), "ok", 0)
	return true
}

// idleSession: the shell opened and left without a command (2 events).
func (g *gen) idleSession(ep *episode, t time.Time) bool {
	a := g.freeActor(t)
	if a == nil || a.ci {
		a = nil
		for _, x := range g.actors {
			if !x.ci && !x.busyUntil.After(t) {
				a = x
				break
			}
		}
	}
	if a == nil {
		return false
	}
	k := a.keys[0]
	s := ep.session(a, "interactive", t, k, nil)
	s.end(t.Add(g.dur(20*time.Second, 1, time.Second, 10*time.Minute)), "ok", 0)
	return true
}
