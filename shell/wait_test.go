package shell

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/terraform"
)

func TestDescribeHolder(t *testing.T) {
	now := time.Date(2026, 11, 25, 20, 29, 1, 0, time.UTC)
	info := &lock.Info{ID: "3f0e", Operation: "OperationTypeApply", Who: "root@runner-7", Created: now.Add(-3*time.Minute - 12*time.Second)}
	recorded := &audit.Party{Who: "root@runner-7", CI: &audit.CIRun{Provider: "github", RunID: "1234", Job: "deploy", Actor: "bob"}, Command: "apply -auto-approve", Recorded: true}
	for _, tc := range []struct {
		name string
		info *lock.Info
		pid  int
		args []string
		p    *audit.Party
		want string
	}{
		{"recorded by tfsh, in CI", info, 0, nil, recorded, "bob via GitHub run 1234, job deploy (root@runner-7): apply -auto-approve, 3m12s"},
		{"the lock's own record", info, 0, nil, nil, "root@runner-7: apply, 3m12s"},
		{"a local holder", info, 4242, nil, nil, "root@runner-7: apply, 3m12s (pid 4242)"},
		{"a local holder before its .lock.info", nil, 4242, []string{"terraform", "apply", "-var", "x=[redacted]"}, nil, "process 4242 (terraform apply -var x=[redacted])"},
		{"a hold", &lock.Info{ID: "h", Operation: HoldOperation, Who: "ann@laptop", Info: "CHG-9 (tfsh hold until 2026-11-26T13:00:00Z)", Created: now.Add(-time.Hour)}, 0, nil, nil,
			"ann@laptop: change-freeze hold (CHG-9 (tfsh hold until 2026-11-26T13:00:00Z)), 1h0m0s"},
		{"escape sequences stay off the terminal", &lock.Info{ID: "x", Operation: "OperationTypePlan", Who: "eve\x1b[2J@host"}, 0, nil, nil, `eve\x1b[2J@host: plan`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeHolder(tc.info, tc.pid, tc.args, tc.p, now); got != tc.want {
				t.Fatalf("describeHolder = %q, want %q", got, tc.want)
			}
		})
	}
}

// lines collects what a report says.
type lines struct {
	mu    sync.Mutex
	said  []string
	noted []string
}

func (l *lines) say(msg string) { l.mu.Lock(); l.said = append(l.said, msg); l.mu.Unlock() }
func (l *lines) note(msg string) {
	l.mu.Lock()
	l.noted = append(l.noted, msg)
	l.mu.Unlock()
}

func (l *lines) get() (said, noted []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.said...), append([]string(nil), l.noted...)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// In lines (CI logs, and while terraform runs): one when the wait starts,
// one every interval, one when the lock is free.
func TestWaitReportLines(t *testing.T) {
	var l lines
	r := &waitReport{key: "b/prod.tfstate", timeout: 5 * time.Minute, every: 20 * time.Millisecond, now: time.Now, line: l.say, note: l.note, waits: map[string]*shownWait{}}
	info := &lock.Info{ID: "lock-a", Operation: "OperationTypeApply", Who: "bob@ci-7", Created: time.Now().Add(-time.Minute)}
	r.started(lock.Event{Kind: lock.KindWait, At: time.Now(), LockID: "lock-a", Info: info}, nil)
	waitFor(t, "three lines", func() bool { s, _ := l.get(); return len(s) >= 3 })
	r.ended(lock.Event{Kind: lock.KindWaitEnd, LockID: "lock-a", Ended: "released"})
	said, noted := l.get()
	if len(noted) != 0 {
		t.Fatalf("lines mode records through its lines (say), not notes: %q", noted)
	}
	if !regexp.MustCompile(`^waiting for lock on b/prod\.tfstate held by bob@ci-7: apply, 1m0s$`).MatchString(said[0]) {
		t.Fatalf("first line %q", said[0])
	}
	if !strings.HasPrefix(said[1], "waiting for lock on b/prod.tfstate held by bob@ci-7: apply, 1m0s") {
		t.Fatalf("second line %q", said[1])
	}
	if last := said[len(said)-1]; !regexp.MustCompile(`^lock on b/prod\.tfstate free after [0-9.]+m?s$`).MatchString(last) {
		t.Fatalf("last line %q, want the lock free", last)
	}
	n := len(said)
	time.Sleep(50 * time.Millisecond)
	if s, _ := l.get(); len(s) != n {
		t.Fatalf("lines after the wait ended: %q", s[n:])
	}
}

// Live, at a terminal during tfsh's own wait: the line is redrawn in place
// (the notes keep the lines for replay), and a message from elsewhere goes
// above it.
func TestWaitReportLive(t *testing.T) {
	var l lines
	var term bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return term.Write(p) })
	live := &liveLine{w: w, width: func() int { return 60 }}
	r := &waitReport{key: "terraform.tfstate", every: time.Hour, now: time.Now, line: l.say, note: l.note, live: live, waits: map[string]*shownWait{}}
	info := &lock.Info{ID: "lock-a", Operation: "OperationTypeApply", Who: "bob@ci-7", Created: time.Now()}
	r.started(lock.Event{Kind: lock.KindWait, LockID: "lock-a", Info: info}, nil)
	live.interrupt(func() { w.Write([]byte("tfsh: a hook failed\n")) })
	r.ended(lock.Event{Kind: lock.KindWaitEnd, LockID: "lock-a", Ended: "released"})
	mu.Lock()
	screen := term.String()
	mu.Unlock()
	said, noted := l.get()
	if len(noted) != 1 || !strings.HasPrefix(noted[0], "waiting for lock on terraform.tfstate held by bob@ci-7") {
		t.Fatalf("notes %q, want the start line", noted)
	}
	if len(said) != 1 || !strings.HasPrefix(said[0], "lock on terraform.tfstate free after ") {
		t.Fatalf("said %q, want only the end line", said)
	}
	// Drawn cut to the width, erased for the other message, drawn again,
	// erased at the end.
	want := "\r\x1b[Ktfsh: waiting for lock on terraform.tfstate held by bob@ci…" +
		"\r\x1b[Ktfsh: a hook failed\n" +
		"\r\x1b[Ktfsh: waiting for lock on terraform.tfstate held by bob@ci…" +
		"\r\x1b[K"
	if screen != want {
		t.Fatalf("terminal got %q,\nwant %q", screen, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestMayPreWait(t *testing.T) {
	local := lock.StateRef{Backend: "local"}
	for _, tc := range []struct {
		args []string
		ref  lock.StateRef
		want bool
	}{
		{[]string{"apply", "-lock-timeout=5m"}, local, true},
		{[]string{"plan"}, local, true}, // the policy adds its default
		{[]string{"plan", "-lock-timeout=0s"}, local, false},
		{[]string{"plan", "-lock=false"}, local, false},
		{[]string{"plan", "-lock-timeout=5m"}, lock.StateRef{Backend: "s3"}, true},
		{[]string{"plan", "-lock-timeout=5m"}, lock.StateRef{Backend: "gcs"}, false},
		{[]string{"init", "-lock-timeout=5m"}, local, false},                     // locks only when migrating
		{[]string{"workspace", "delete", "-lock-timeout=5m", "w"}, local, false}, // accepts it, ignores it
		{[]string{"state", "list"}, local, false},
	} {
		inv := terraform.Parse(tc.args, func(string) string { return "" })
		if got := mayPreWait(inv, tc.ref); got != tc.want {
			t.Errorf("mayPreWait(%q, %s) = %v, want %v", tc.args, tc.ref.Backend, got, tc.want)
		}
	}
}
