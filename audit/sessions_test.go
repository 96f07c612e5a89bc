package audit_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/auditgen"
)

// sessionLog is a small log of seven sessions, ten minutes apart from t0,
// written with the real API and a clock the test moves.
type sessionLog struct {
	db  *audit.DB
	t0  time.Time
	ids []string // S1..S7
}

const (
	keyA = "acme-tfstate-prod/prod/app/terraform.tfstate"
	keyB = "acme-tfstate-dev/dev/app/terraform.tfstate"
	keyC = "/home/carol/sandbox/terraform.tfstate"
)

func newSessionLog(t *testing.T) *sessionLog {
	t.Helper()
	ctx := context.Background()
	db := MustOpenDB(t)
	l := &sessionLog{db: db, t0: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	now := l.t0
	db.Now = func() time.Time { return now }
	type cmd struct {
		typed []string
		sub   string
		key   string
		kinds []string // events appended while it runs
	}
	session := func(i int, user, host, mode string, cmds ...cmd) {
		now = l.t0.Add(time.Duration(i-1) * 10 * time.Minute)
		s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: mode, User: user, Host: host, PID: os.Getpid(), PIDNS: audit.PIDNamespace()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			now = now.Add(time.Minute)
			cm, err := s.StartCommand(ctx, audit.CommandInfo{Typed: c.typed, Subcommand: c.sub, StateKey: c.key}, audit.Decision{Action: "allow"})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range c.kinds {
				if err := cm.AppendAt(ctx, time.Time{}, k, "lock-1", map[string]string{"source": "backend"}); err != nil {
					t.Fatal(err)
				}
			}
			now = now.Add(30 * time.Second)
			if err := cm.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(time.Second)
		if err := s.End(ctx, audit.SessionEnd{Status: "ok", Commands: len(cmds)}); err != nil {
			t.Fatal(err)
		}
		l.ids = append(l.ids, s.ID)
	}
	session(1, "alice", "laptop", "command", cmd{[]string{"plan"}, "plan", keyA, []string{"lock_acquired", "lock_released"}})
	session(2, "bob", "ci-1", "run", cmd{[]string{"apply", "-input=false", "tfplan"}, "apply", keyB, []string{"lock_acquired", "lock_released"}})
	session(3, "alice", "laptop", "interactive",
		cmd{[]string{"plan"}, "plan", keyB, []string{"lock_contention"}},
		cmd{[]string{"apply", "-auto-approve"}, "apply", keyA, []string{"lock_acquired", "lock_released"}})
	session(4, "carol", "box", "command", cmd{[]string{"-chdir=infra", "apply"}, "apply", keyC, []string{"lock_acquired", "lock_orphaned"}})
	session(5, "bob", "laptop2", "interactive",
		cmd{[]string{"state", "list"}, "state list", keyA, nil},
		cmd{[]string{"force-unlock", "lock-1"}, "force-unlock", keyA, []string{"force_unlock"}})
	session(6, "alice", "ci-1", "interactive")
	session(7, "dave", "laptop", "command", cmd{[]string{"apply", "-lock=false"}, "apply", keyB, nil})
	return l
}

// s returns the IDs of sessions S<n>.
func (l *sessionLog) s(ns ...int) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, l.ids[n-1])
	}
	return out
}

func TestSessionFilters(t *testing.T) {
	l := newSessionLog(t)
	at := func(m int) time.Time { return l.t0.Add(time.Duration(m) * time.Minute) }
	re := regexp.MustCompile
	tests := []struct {
		name string
		q    audit.SessionQuery
		want []int
	}{
		{"none", audit.SessionQuery{}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"user", audit.SessionQuery{User: "alice"}, []int{1, 3, 6}},
		{"user nobody", audit.SessionQuery{User: "mallory"}, nil},
		{"host", audit.SessionQuery{Host: "ci-1"}, []int{2, 6}},
		{"host is exact", audit.SessionQuery{Host: "laptop"}, []int{1, 3, 7}},
		{"state A", audit.SessionQuery{State: keyA}, []int{1, 3, 5}},
		{"state B", audit.SessionQuery{State: keyB}, []int{2, 3, 7}},
		{"state C", audit.SessionQuery{State: keyC}, []int{4}},
		{"state is exact", audit.SessionQuery{State: "terraform.tfstate"}, nil},
		{"command ^apply (typed or subcommand)", audit.SessionQuery{Command: re(`^apply`)}, []int{2, 3, 4, 7}},
		{"command flag", audit.SessionQuery{Command: re(`-auto-approve|-lock=false`)}, []int{3, 7}},
		{"command subcommand with a space", audit.SessionQuery{Command: re(`^state (list|mv)$`)}, []int{5}},
		{"command nothing", audit.SessionQuery{Command: re(`^destroy`)}, nil},
		{"kind", audit.SessionQuery{Kinds: []string{"lock_contention"}}, []int{3}},
		{"kinds: any of", audit.SessionQuery{Kinds: []string{"lock_orphaned", "force_unlock"}}, []int{4, 5}},
		{"kind of every command", audit.SessionQuery{Kinds: []string{"command_start"}}, []int{1, 2, 3, 4, 5, 7}},
		{"since", audit.SessionQuery{Since: at(25)}, []int{4, 5, 6, 7}},
		{"since is inclusive", audit.SessionQuery{Since: at(30)}, []int{4, 5, 6, 7}},
		{"until is exclusive", audit.SessionQuery{Until: at(30)}, []int{1, 2, 3}},
		{"since and until", audit.SessionQuery{Since: at(5), Until: at(41)}, []int{2, 3, 4, 5}},
		{"limit: the newest", audit.SessionQuery{Limit: 2}, []int{6, 7}},
		{"limit after filters", audit.SessionQuery{User: "alice", Limit: 2}, []int{3, 6}},
		{"limit: state", audit.SessionQuery{State: keyA, Limit: 2}, []int{3, 5}},
		{"limit: kind", audit.SessionQuery{Kinds: []string{"lock_acquired"}, Limit: 3}, []int{2, 3, 4}},
		{"limit: command", audit.SessionQuery{Command: re(`^apply`), Limit: 1}, []int{7}},
		{"limit: host and since", audit.SessionQuery{Host: "laptop", Since: at(5), Limit: 1}, []int{7}},
		{"limit: more than match", audit.SessionQuery{State: keyC, Limit: 10}, []int{4}},
		{"user and state", audit.SessionQuery{User: "alice", State: keyA}, []int{1, 3}},
		{"user and kind", audit.SessionQuery{User: "alice", Kinds: []string{"lock_contention"}}, []int{3}},
		{"host and command", audit.SessionQuery{Host: "ci-1", Command: re(`^apply`)}, []int{2}},
		{"state, command and since", audit.SessionQuery{State: keyB, Command: re(`^apply`), Since: at(15)}, []int{3, 7}},
		{"state and kind in different commands", audit.SessionQuery{State: keyA, Kinds: []string{"lock_contention"}}, []int{3}},
		{"user and state: none", audit.SessionQuery{User: "bob", State: keyC}, nil},
		{"everything", audit.SessionQuery{User: "alice", Host: "laptop", State: keyB, Command: re(`^plan$`), Kinds: []string{"lock_contention"},
			Since: at(0), Until: at(60), Limit: 5}, []int{3}},
	}
	// Every search path gives the same answers: the smallest filter
	// drives (the log is small), every filter counts as large and the
	// newest sessions are checked in turn, and that check stops after the
	// newest two, the rest found through the smallest filter.
	for _, path := range []struct {
		name        string
		drive, scan int
	}{{"drive", 20_000, 5_000}, {"scan", 0, 5_000}, {"scan then drive", 0, 2}} {
		t.Run(path.name, func(t *testing.T) {
			defer audit.SetSearchLimits(path.drive, path.scan)()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					list, err := l.db.Sessions(context.Background(), tt.q)
					if err != nil {
						t.Fatal(err)
					}
					got := []string{}
					for _, s := range list {
						got = append(got, s.ID)
					}
					if want := l.s(tt.want...); !slices.Equal(got, want) {
						t.Fatalf("sessions=%v, want %v (S%v)", got, want, tt.want)
					}
				})
			}
		})
	}
}

func TestSessionSummaries(t *testing.T) {
	l := newSessionLog(t)
	list, err := l.db.Sessions(context.Background(), audit.SessionQuery{User: "alice", Host: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d sessions, want 2", len(list))
	}
	s := list[1]
	if s.ID != l.ids[2] || s.Commands != 2 || s.Status != "ok" || s.ExitCode == nil || *s.ExitCode != 0 ||
		!s.Start.Equal(l.t0.Add(20*time.Minute)) || s.End == nil || s.Info.Mode != "interactive" || s.Info.User != "alice" {
		t.Fatalf("summary = %+v", s)
	}
}

func TestResolveStateKey(t *testing.T) {
	l := newSessionLog(t)
	ctx := context.Background()
	for _, tt := range []struct{ give, want, err string }{
		{give: keyA, want: keyA},
		{give: "sandbox", want: keyC},
		{give: "dev/app", want: keyB},
		{give: "prod/app/terraform.tfstate", want: keyA},
		{give: "terraform.tfstate", err: `"terraform.tfstate" is part of 3 states (` + keyC + ", " + keyB + ", " + keyA + "): give more of the key"},
		{give: "staging", err: `no state in the audit log is "staging" or contains it`},
	} {
		got, err := l.db.ResolveStateKey(ctx, tt.give)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("ResolveStateKey(%q) = %q, %v; want error %q", tt.give, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ResolveStateKey(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
	keys, err := l.db.StateKeys(ctx)
	if err != nil || strings.Join(keys, " ") != keyC+" "+keyB+" "+keyA {
		t.Fatalf("StateKeys = %v, %v", keys, err)
	}
	kinds, err := l.db.Kinds(ctx)
	if err != nil || !slices.Contains(kinds, "force_unlock") || !slices.Contains(kinds, "session_start") || len(kinds) != 10 {
		t.Fatalf("Kinds = %v, %v", kinds, err)
	}
}

// TestSessionsAgreeWithAFullScan compares Sessions, on each search path,
// with the answer read from every event, on a generated log.
func TestSessionsAgreeWithAFullScan(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	if _, err := auditgen.Generate(ctx, db, auditgen.Options{Events: 12_000, Seed: 3, Users: 10, StateKeys: 12, Contention: 0.2}); err != nil {
		t.Fatal(err)
	}
	type facts struct {
		id, user, host string
		start          time.Time
		states, kinds  map[string]bool
		commands       []string // words as typed, and subcommands
	}
	var all []*facts
	byID := map[string]*facts{}
	err := db.Events(ctx, audit.EventFilter{}, func(e audit.Event) error {
		f := byID[e.SessionID]
		if f == nil {
			f = &facts{id: e.SessionID, states: map[string]bool{}, kinds: map[string]bool{}}
			byID[e.SessionID] = f
			all = append(all, f)
		}
		f.kinds[e.Kind] = true
		var d struct {
			User, Host, Subcommand string
			Typed                  []string
		}
		json.Unmarshal(e.Data, &d)
		switch e.Kind {
		case audit.KindSessionStart:
			f.user, f.host, f.start = d.User, d.Host, e.At
		case audit.KindCommandStart:
			f.states[e.StateKey] = true
			f.commands = append(f.commands, strings.Join(d.Typed, " "), d.Subcommand)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *facts) int { return strings.Compare(a.id, b.id) })
	want := func(q audit.SessionQuery) []string {
		out := []string{}
		for i := len(all) - 1; i >= 0 && (q.Limit == 0 || len(out) < q.Limit); i-- {
			f := all[i]
			ok := (q.User == "" || f.user == q.User) && (q.Host == "" || f.host == q.Host) &&
				(q.State == "" || f.states[q.State]) && (q.Since.IsZero() || !f.start.Before(q.Since)) &&
				(q.Until.IsZero() || f.start.Before(q.Until))
			if ok && len(q.Kinds) > 0 {
				ok = slices.ContainsFunc(q.Kinds, func(k string) bool { return f.kinds[k] })
			}
			if ok && q.Command != nil {
				ok = slices.ContainsFunc(f.commands, func(c string) bool { return c != "" && q.Command.MatchString(c) })
			}
			if ok {
				out = append(out, f.id)
			}
		}
		slices.Reverse(out)
		return out
	}
	keys, _ := db.StateKeys(ctx)
	first, last := all[0].start, all[len(all)-1].start
	mid := first.Add(last.Sub(first) / 2)
	var qs []audit.SessionQuery
	for i, k := range keys {
		qs = append(qs, audit.SessionQuery{State: k, Limit: 1 + i%3*20})
	}
	for _, f := range all[:40:40] {
		qs = append(qs, audit.SessionQuery{User: f.user, Limit: 10}, audit.SessionQuery{Host: f.host, Since: mid},
			audit.SessionQuery{User: f.user, State: keys[len(f.id)%len(keys)]})
	}
	for _, k := range []string{"lock_contention", "lock_wait", "lock_orphaned", "force_unlock", "hold_placed", "integrity_check", "lock_acquired", "command_end"} {
		qs = append(qs, audit.SessionQuery{Kinds: []string{k}, Limit: 7}, audit.SessionQuery{Kinds: []string{k, "hold_released"}, Until: mid, Limit: 50},
			audit.SessionQuery{Kinds: []string{k}, Command: regexp.MustCompile(`^(plan|apply)`), Since: first.Add(time.Hour)})
	}
	for _, re := range []string{`^apply`, `^plan -input=false`, `tfplan$`, `^state (list|rm)`, `^hold`, `-lock-timeout=0s`, `^force-unlock`, `nothing-matches`} {
		qs = append(qs, audit.SessionQuery{Command: regexp.MustCompile(re), Limit: 25}, audit.SessionQuery{Command: regexp.MustCompile(re), State: keys[0]},
			audit.SessionQuery{Command: regexp.MustCompile(re), Since: mid, Until: mid.Add(48 * time.Hour)})
	}
	qs = append(qs, audit.SessionQuery{}, audit.SessionQuery{Limit: 50}, audit.SessionQuery{Since: mid, Limit: 3}, audit.SessionQuery{Until: mid})
	for _, path := range []struct{ drive, scan int }{{20_000, 5_000}, {40, 5_000}, {0, 30}, {0, 1}} {
		restore := audit.SetSearchLimits(path.drive, path.scan)
		for _, q := range qs {
			list, err := db.Sessions(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, s := range list {
				got = append(got, s.ID)
			}
			if w := want(q); !slices.Equal(got, w) {
				t.Errorf("limits %v, query %+v: %d sessions, want %d\n got %v\nwant %v", path, q, len(got), len(w), got, w)
			}
		}
		restore()
	}
}
