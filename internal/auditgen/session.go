package auditgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
)

// episode collects the calls of one episode before it is committed: an
// episode that would overshoot the event count is dropped whole.
type episode struct {
	g      *gen
	ops    []op
	events int
	kinds  []string
}

// at schedules fn at t.
func (e *episode) at(t time.Time, fn func() error) {
	e.g.nops++
	e.ops = append(e.ops, op{at: t.UnixNano(), n: e.g.nops, fn: fn})
}

// add counts an event the episode writes.
func (e *episode) add(kind string) {
	e.events++
	e.kinds = append(e.kinds, kind)
}

// sess is a session being planned; h is set when it has been written.
type sess struct {
	ep    *episode
	a     *actor
	info  audit.SessionInfo
	start time.Time
	h     *audit.Session
	cmds  int
	t     time.Time // the time of the latest planned call
}

// session plans StartSession at t for actor a.
func (e *episode) session(a *actor, mode string, t time.Time, k *stateKey, args []string) *sess {
	r := e.g.rng
	pid := a.nextPID(r)
	a.ticks += int64(1 + r.IntN(100_000))
	s := &sess{ep: e, a: a, start: t, t: t}
	s.info = audit.SessionInfo{
		Mode:             mode,
		User:             a.user,
		Host:             a.host,
		PID:              pid,
		PIDStart:         strconv.FormatInt(a.ticks, 10),
		PIDNS:            "pid:[4026531836]",
		CWD:              a.workdir(k),
		TfshVersion:      "0.4.2",
		Terraform:        k.tool.path,
		TerraformName:    k.tool.name,
		TerraformVersion: k.tool.version,
		Args:             args,
	}
	if a.ci {
		s.info.CI = a.ciInfo(r)
	}
	e.add(audit.KindSessionStart)
	e.at(t, func() error {
		h, _, err := e.g.db.StartSession(e.g.ctx, s.info, nil)
		if err != nil {
			return fmt.Errorf("start session: %w", err)
		}
		s.h = h
		e.g.stats.Sessions++
		return nil
	})
	if t.After(a.busyUntil) {
		a.busyUntil = t
	}
	return s
}

// workdir is where the actor runs terraform on k.
func (a *actor) workdir(k *stateKey) string {
	if k.backend == "local" {
		return k.dir
	}
	return a.home + "/" + k.dir
}

// ciInfo is what internal/ci records for the runner's current job.
func (a *actor) ciInfo(r interface{ IntN(int) int }) map[string]string {
	m := map[string]string{"provider": a.provider}
	commit := fmt.Sprintf("%08x%08x%08x%08x%08x", r.IntN(1<<31), r.IntN(1<<31), r.IntN(1<<31), r.IntN(1<<31), r.IntN(1<<31))
	actor := people[r.IntN(len(people))]
	switch a.provider {
	case "gitlab":
		run := strconv.Itoa(400000 + r.IntN(600000))
		m["run_id"], m["workflow"], m["job"], m["actor"], m["commit"] = run, "acme/infra", "terraform", actor, commit
		m["url"] = gitServer + "/acme/infra/-/pipelines/" + run
	default:
		run := strconv.Itoa(8_000_000_000 + r.IntN(1_000_000_000))
		m["run_id"], m["workflow"], m["job"], m["actor"], m["commit"] = run, "terraform", "plan", actor, commit
		m["url"] = gitServer + "/acme/infra/actions/runs/" + run
	}
	return m
}

// end plans Session.End at t.
func (s *sess) end(t time.Time, status string, exit int) {
	s.ep.add(audit.KindSessionEnd)
	n := &s.cmds
	s.ep.at(t, func() error {
		return s.h.End(s.ep.g.ctx, audit.SessionEnd{Status: status, ExitCode: exit, Commands: *n})
	})
	s.t = t
	if t.After(s.a.busyUntil) {
		s.a.busyUntil = t
	}
}

// appendEvent plans Session.Append (an event of the session, such as an
// integrity check); data may be a func() any, evaluated when written.
func (s *sess) appendEvent(t time.Time, kind, stateKey, lockID string, data any) {
	s.ep.add(kind)
	s.ep.at(t, func() error { return s.h.Append(s.ep.g.ctx, kind, stateKey, lockID, resolve(data)) })
	s.t = t
}

func resolve(data any) any {
	if f, ok := data.(func() any); ok {
		return f()
	}
	return data
}

// cmd is a command being planned.
type cmd struct {
	s     *sess
	k     *stateKey
	info  audit.CommandInfo
	h     *audit.Command
	later []laterEvent
	start time.Time
	pid   int // terraform's
}

type laterEvent struct {
	at           time.Time
	kind, lockID string
	data         any
}

// spec describes a command line.
type spec struct {
	typed    []string // as typed
	added    []string // what the policy adds
	decision audit.Decision
	output   string // what terraform printed (when output is stored)
	note     string
	noOutput bool // never store output (a command whose tfsh is killed)
}

// command plans StartCommand at t (command_start and policy_decision).
func (s *sess) command(t time.Time, k *stateKey, sp spec) *cmd {
	g := s.ep.g
	sub, facts := subcommand(sp.typed)
	run := append(append([]string(nil), sp.typed...), sp.added...)
	info := audit.CommandInfo{
		Typed:       sp.typed,
		Run:         run,
		Effective:   run,
		Subcommand:  sub,
		Known:       facts.known,
		WritesState: facts.writes,
		Locks:       facts.locks,
		Workdir:     s.info.CWD,
		Workspace:   "default",
		Backend:     k.backend,
		StateKey:    k.key,
		Interactive: s.info.Mode == "interactive",
		Terraform:   k.tool.name + " " + k.tool.version,
		Note:        sp.note,
	}
	if s.info.Mode != "run" {
		info.Line = strings.Join(sp.typed, " ")
	}
	for _, a := range sp.typed {
		if v, ok := strings.CutPrefix(a, "-lock="); ok {
			b := v == "true"
			info.Lock, info.LockFrom = &b, "the command line"
		}
	}
	c := &cmd{s: s, k: k, info: info, start: t}
	s.cmds++
	withOutput := g.rng.Float64() < g.opt.Output && !sp.noOutput
	var note string
	for _, a := range sp.added {
		note += fmt.Sprintf("tfsh: added %s (built-in rule lock-timeout-default)\n", a)
	}
	if sp.decision.Action == "deny" {
		note += fmt.Sprintf("tfsh: refused by rule %q (%s): %s\n", sp.decision.Rule, sp.decision.Source, sp.decision.Message)
	}
	out := sp.output
	dec := sp.decision
	s.ep.add(audit.KindCommandStart)
	s.ep.add(audit.KindPolicyDecision)
	s.ep.at(t, func() error {
		h, err := s.h.StartCommand(g.ctx, c.info, dec)
		if err != nil {
			return fmt.Errorf("start command: %w", err)
		}
		c.h = h
		g.stats.Commands++
		if withOutput && (note != "" || out != "") {
			// One write per stream, at one simulated instant, so that the
			// chunking (and so command_end) is the same on every run.
			if note != "" {
				h.Output(audit.Note).Write([]byte(note))
			}
			if out != "" {
				h.Output(audit.Stdout).Write([]byte(out))
			}
		}
		return nil
	})
	s.t = t
	return c
}

// append plans Command.AppendAt at t: a fact recorded while terraform runs.
func (c *cmd) append(t time.Time, kind, lockID string, data any) {
	g := c.s.ep.g
	c.s.ep.add(kind)
	c.s.ep.at(t, func() error { return c.h.AppendAt(g.ctx, t, kind, lockID, resolve(data)) })
	c.s.t = t
}

// queue plans Command.Later: a fact settled as the command ends, written
// with command_end.
func (c *cmd) queue(t time.Time, kind, lockID string, data any) {
	c.s.ep.add(kind)
	c.later = append(c.later, laterEvent{t, kind, lockID, data})
}

// end plans Command.End at t, with the queued events.
func (c *cmd) end(t time.Time, end audit.CommandEnd) {
	g := c.s.ep.g
	later := c.later
	c.later = nil
	c.s.ep.add(audit.KindCommandEnd)
	c.s.ep.at(t, func() error {
		for _, l := range later {
			c.h.Later(l.at, l.kind, l.lockID, resolve(l.data))
		}
		return c.h.End(g.ctx, end)
	})
	c.s.t = t
}

// facts are the catalog's facts about a subcommand that command_start
// records.
type facts struct {
	known, writes bool
	locks         string
}

func subcommand(typed []string) (string, facts) {
	var words []string
	for _, a := range typed {
		if strings.HasPrefix(a, "-") {
			if len(words) > 0 {
				break
			}
			continue
		}
		words = append(words, a)
		if len(words) == 2 || words[0] != "state" && words[0] != "workspace" && words[0] != "providers" {
			break
		}
	}
	sub := strings.Join(words, " ")
	switch sub {
	case "plan":
		return sub, facts{true, false, "always"}
	case "apply", "destroy", "refresh", "import", "taint", "untaint", "state rm", "state mv", "state push":
		return sub, facts{true, true, "always"}
	case "init":
		return sub, facts{true, true, "conditional"}
	case "console":
		return sub, facts{true, false, "session"}
	case "force-unlock", "output", "show", "validate", "fmt", "state list", "state show", "state pull",
		"providers", "version", "workspace show", "workspace list", "graph", "get":
		return sub, facts{true, false, "never"}
	}
	return sub, facts{false, false, "unknown"}
}

// lockInfo is the LockInfo terraform writes for c at t.
func (c *cmd) lockInfo(id, operation string, t time.Time) *lock.Info {
	return &lock.Info{ID: id, Operation: operation, Who: c.s.a.who(), Version: c.k.tool.version, Created: t.UTC(), Path: c.k.path}
}
