package audit_test

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
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
		{"user and state", audit.SessionQuery{User: "alice", State: keyA}, []int{1, 3}},
		{"user and kind", audit.SessionQuery{User: "alice", Kinds: []string{"lock_contention"}}, []int{3}},
		{"host and command", audit.SessionQuery{Host: "ci-1", Command: re(`^apply`)}, []int{2}},
		{"state, command and since", audit.SessionQuery{State: keyB, Command: re(`^apply`), Since: at(15)}, []int{3, 7}},
		{"state and kind in different commands", audit.SessionQuery{State: keyA, Kinds: []string{"lock_contention"}}, []int{3}},
		{"user and state: none", audit.SessionQuery{User: "bob", State: keyC}, nil},
		{"everything", audit.SessionQuery{User: "alice", Host: "laptop", State: keyB, Command: re(`^plan$`), Kinds: []string{"lock_contention"},
			Since: at(0), Until: at(60), Limit: 5}, []int{3}},
	}
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
