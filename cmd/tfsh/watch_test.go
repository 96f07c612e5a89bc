package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// watchProc is a running tfsh watch.
type watchProc struct {
	t   *testing.T
	cmd *exec.Cmd
	out *lockedBuffer
}

// startWatch runs tfsh watch in h's directory with h's audit log. The lab's
// endpoints reach it only through the AWS SDK's own environment variables.
func startWatch(t *testing.T, h *harness, b labtest.Backend, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command("tfsh", append([]string{"watch"}, args...)...)
	cmd.Dir = h.dir
	cmd.Env = append(append([]string(nil), h.env...), "AWS_ENDPOINT_URL_S3="+b.S3.URL())
	if b.Dynamo != nil {
		cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL_DYNAMODB="+b.Dynamo.URL())
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watchProc{t: t, cmd: cmd, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitOutput(t, cmd, out, "watching ") // the start line, in text or JSON
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *watchProc) stop() string {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("tfsh watch after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("tfsh watch did not stop on SIGTERM\n%s", p.out.String())
	}
	return p.out.String()
}

// watchEvent is a lock event tfsh watch recorded.
type watchEvent struct {
	audit.Event
	Source string `json:"source"`
	Info   *struct {
		ID, Operation, Who string
		Created            time.Time
	} `json:"info"`
	Since   time.Time `json:"since"`
	HeldMS  int64     `json:"held_ms"`
	Expired bool      `json:"expired"`
}

// watchEvents reads the events of tfsh watch's sessions, and checks that
// each of them ended.
func (h *harness) watchEvents() []watchEvent {
	h.t.Helper()
	watchSessions := map[string]bool{}
	ended := map[string]bool{}
	var out []watchEvent
	err := h.events(audit.EventFilter{}, func(e audit.Event) error {
		switch e.Kind {
		case audit.KindSessionStart:
			var info audit.SessionInfo
			json.Unmarshal(e.Data, &info)
			watchSessions[e.SessionID] = info.Mode == "watch"
		case audit.KindSessionEnd:
			ended[e.SessionID] = true
		}
		if !watchSessions[e.SessionID] || e.Kind == audit.KindSessionStart || e.Kind == audit.KindSessionEnd {
			return nil
		}
		w := watchEvent{}
		if err := json.Unmarshal(e.Data, &w); err != nil {
			return err
		}
		w.Event = e // the data's own "kind" (a hook's) is not the event's
		out = append(out, w)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(watchSessions) == 0 {
		h.t.Fatal("no tfsh watch session in the log")
	}
	for id, w := range watchSessions {
		if w && !ended[id] {
			h.t.Fatalf("tfsh watch session %s has no session_end", id)
		}
	}
	return out
}

// plainRun runs terraform or tofu itself, without tfsh.
func plainRun(t *testing.T, bin string, h *harness, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = h.dir, h.env
	return cmd
}

// TestWatchSeesPlainTerraform: a plain terraform apply (DynamoDB) and a
// plain tofu apply (S3 lockfile), run without tfsh, are recorded by the
// watcher within two intervals, with their ID, Who and Operation, and so are
// their releases. SIGTERM ends the watcher with exit 0 and a session_end.
func TestWatchSeesPlainTerraform(t *testing.T) {
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	for _, tc := range []struct{ name, bin, example, flag string }{
		{"terraform-dynamodb", labtest.Terraform(t), "s3-dynamodb", "--table"},
		{"tofu-lockfile", labtest.Tofu(t), "s3-lockfile", "--bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := labtest.Example(t, tc.example, tc.bin, s3srv, dyn)
			b := labtest.BackendOf(t, dir)
			h := newHarness(t, dir, tc.bin)
			if out, err := plainRun(t, tc.bin, h, "init", "-input=false", "-no-color", "-backend-config=backend.hcl").CombinedOutput(); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			target := b.Table
			if tc.flag == "--bucket" {
				target = b.Bucket
			}
			const interval = time.Second
			w := startWatch(t, h, b, tc.flag, target, "--interval", interval.String(), "--path-style")

			apply := plainRun(t, tc.bin, h, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "hold_seconds=4", "-var", "run_id=watched")
			var out bytes.Buffer
			apply.Stdout, apply.Stderr = &out, &out
			if err := apply.Start(); err != nil {
				t.Fatal(err)
			}
			// The lock's ID, read where it lives while the apply sleeps.
			var id string
			for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				id, _ = b.Lock()(context.Background())
			}
			if id == "" {
				t.Fatalf("never saw the apply's lock\n%s", out.String())
			}
			if err := apply.Wait(); err != nil {
				t.Fatalf("apply: %v\n%s", err, out.String())
			}
			appliedAt := time.Now()
			time.Sleep(2*interval + 500*time.Millisecond)
			log := w.stop()

			var acquired, released *watchEvent
			evs := h.watchEvents()
			for i, e := range evs {
				if e.LockID != id {
					continue
				}
				switch e.Kind {
				case "lock_acquired":
					acquired = &evs[i]
				case "lock_released":
					released = &evs[i]
				}
			}
			if acquired == nil || released == nil {
				t.Fatalf("lock %s: acquired %v, released %v; events %+v\nwatch log:\n%s", id, acquired != nil, released != nil, evs, log)
			}
			who, _ := os.Hostname()
			if acquired.Source != "watch" || acquired.Info == nil || acquired.Info.ID != id || acquired.Info.Operation != "OperationTypeApply" ||
				!strings.HasSuffix(acquired.Info.Who, "@"+who) || acquired.StateKey != b.LockID() || acquired.CommandID != "" {
				t.Fatalf("lock_acquired = %+v (info %+v), want source watch, the apply's ID, Who and Operation on %s", acquired.Event, acquired.Info, b.LockID())
			}
			if d := acquired.At.Sub(acquired.Info.Created); d > 2*interval+500*time.Millisecond {
				t.Fatalf("lock_acquired at %v, %v after Created: more than two intervals", acquired.At, d)
			}
			if !acquired.Since.Equal(acquired.Info.Created) {
				t.Fatalf("since = %v, want Created %v", acquired.Since, acquired.Info.Created)
			}
			if d := released.At.Sub(appliedAt); d > 2*interval+500*time.Millisecond {
				t.Fatalf("lock_released at %v, %v after the apply exited: more than two intervals", released.At, d)
			}
			if released.HeldMS < 3000 {
				t.Fatalf("held_ms = %d, want the apply's 4s sleep", released.HeldMS)
			}
			for _, want := range []string{"acquired " + b.LockID() + " lock " + id, "released " + b.LockID() + " lock " + id, "SIGTERM", "session"} {
				if !strings.Contains(log, want) && !strings.Contains(log, strings.ReplaceAll(want, "SIGTERM", "terminated")) {
					t.Fatalf("watch log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

// TestWatchWithTfsh: a lock tfsh itself took while the watcher ran is one
// hold in the timeline, tfsh's, though both recorded it.
func TestWatchWithTfsh(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	w := startWatch(t, h, b, "--table", b.Table, "--interval", "500ms")
	h.must("run", "--", "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=3", "-var", "run_id=both")
	time.Sleep(1500 * time.Millisecond)
	w.stop()

	apply := h.lastCommand("apply")
	acq := apply.only("lock_acquired")
	if len(acq) != 1 || acq[0].LockID == "" {
		t.Fatalf("tfsh's apply recorded %d acquisitions: %+v", len(acq), acq)
	}
	id := acq[0].LockID
	var seen []string
	for _, e := range h.watchEvents() {
		if e.LockID == id {
			seen = append(seen, e.Kind)
		}
	}
	if strings.Join(seen, " ") != "lock_acquired lock_released" {
		t.Fatalf("the watcher recorded %v for tfsh's lock %s, want its acquisition and release", seen, id)
	}
	db, err := audit.Open(context.Background(), h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tl, err := db.Timeline(context.Background(), audit.TimelineQuery{StateKey: b.LockID(), Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var holds []audit.Hold
	for _, st := range tl.States {
		holds = append(holds, st.Holds...)
	}
	if len(holds) != 1 || holds[0].LockID != id || !holds[0].Holder.Recorded || holds[0].Holder.CommandID != apply.id {
		t.Fatalf("holds = %+v, want one: tfsh's apply", holds)
	}
	r := h.must("explain", "--json", id)
	if strings.Contains(r.stdout, `"watcher": true`) {
		t.Fatalf("explain names the watcher as the holder of tfsh's own lock:\n%s", r.stdout)
	}
}

// TestWatchReleasesExpiredHoldAndAlerts: the watcher releases a hold whose
// time is up, and fires lock_held_long once for a lock held past the
// policy's lock_held_alert.
func TestWatchReleasesExpiredHoldAndAlerts(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")

	// An expired hold: one poll releases it.
	h.must("hold", "--reason", "short freeze", "--for", "1s")
	time.Sleep(1500 * time.Millisecond)
	w := startWatch(t, h, b, "--table", b.Table, "--once", "--json")
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("tfsh watch --once: %v\n%s", err, w.out.String())
	}
	var jsonEvents []string
	for _, line := range strings.Split(strings.TrimSpace(w.out.String()), "\n") {
		var l struct{ Time, Event, Msg string }
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Time == "" {
			t.Fatalf("--json log line %q: %v", line, err)
		}
		jsonEvents = append(jsonEvents, l.Event)
	}
	if got := strings.Join(jsonEvents, " "); got != "start held_at_start hold_expired end" {
		t.Fatalf("--json log events: %s\n%s", got, w.out.String())
	}
	if id, err := b.Lock()(context.Background()); err != nil || id != "" {
		t.Fatalf("after the watcher: lock %q (%v), want the expired hold released", id, err)
	}
	if !strings.Contains(w.out.String(), `"msg":"released the expired hold on `+b.LockID()+" (short freeze") {
		t.Fatalf("watch log:\n%s", w.out.String())
	}
	var kinds []string
	for _, e := range h.watchEvents() {
		if e.Kind == "hold_released" && e.Source == "watch" && e.Expired {
			kinds = append(kinds, e.Kind)
		}
	}
	if len(kinds) != 1 {
		t.Fatalf("hold_released by the watcher: %v", kinds)
	}

	// A plain terraform apply holding its lock past lock_held_alert: the
	// hook runs once. A hold held as long does not fire it.
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tfsh", "policy.hcl"), []byte("settings {\n  lock_held_alert = \"1s\"\n}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".tfsh", "hooks.hcl"), []byte(`hook "held" {
  on   = ["lock_held_long"]
  exec { argv = ["sh", "-c", "cat >> held.jsonl; echo >> held.jsonl"] }
}
`), 0o644)
	h.must("hold", "--reason", "long freeze")
	w = startWatch(t, h, b, "--table", b.Table, "--interval", "200ms")
	time.Sleep(1500 * time.Millisecond)
	h.must("hold", "--release")
	apply := plainRun(t, tf, h, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "hold_seconds=3", "-var", "run_id=long")
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	log := w.stop()
	data, err := os.ReadFile(filepath.Join(dir, "held.jsonl"))
	if err != nil {
		t.Fatalf("the hook did not run: %v\n%s", err, log)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 {
		t.Fatalf("the hook ran %d times, want once:\n%s", len(lines), data)
	}
	var got struct {
		Event string
		Data  struct {
			StateKey string `json:"state_key"`
			LockID   string `json:"lock_id"`
			Info     struct{ Operation, Info string }
			HeldMS   int64 `json:"held_ms"`
		}
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != "lock_held_long" || got.Data.StateKey != b.LockID() || got.Data.Info.Operation != "OperationTypeApply" || got.Data.HeldMS < 1000 {
		t.Fatalf("hook payload: %s", lines[0])
	}
	var held, runs int
	for _, e := range h.watchEvents() {
		switch e.Kind {
		case "lock_held_long":
			held++
		case "hook_run":
			runs++
		}
	}
	if held != 1 || runs != 1 {
		t.Fatalf("lock_held_long events %d, hook_run events %d: want 1 and 1\n%s", held, runs, log)
	}
}

// TestWatchOutage: when the lock table stops answering, the watcher logs
// the problem, keeps going, and records no release: a failed scan is not
// every lock released. It still stops cleanly on SIGTERM.
func TestWatchOutage(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	h.must("hold", "--reason", "outage test")
	w := startWatch(t, h, b, "--table", b.Table, "--interval", "200ms")
	waitOutput(t, w.cmd, w.out, "held at start "+b.LockID())
	dyn.Close()
	waitOutput(t, w.cmd, w.out, "scan lock table "+b.Table)
	time.Sleep(time.Second)
	log := w.stop()
	if strings.Count(log, "scan lock table") != 1 {
		t.Fatalf("the problem should be logged once while it lasts:\n%s", log)
	}
	var kinds []string
	for _, e := range h.watchEvents() {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, " ") != "lock_acquired" {
		t.Fatalf("watcher events %v, want only the hold held at start (no release while the table was down)\n%s", kinds, log)
	}
	// The watcher's session reads back like any other; tfsh's hold and
	// the watcher's sight of it are one hold in the report.
	if rp := h.run(nil, "replay", "--no-timing", "last"); rp.code != 0 || !strings.Contains(rp.stdout, "lock_acquired") {
		t.Fatalf("replay of the watch session: exit %d\n%s%s", rp.code, rp.stdout, rp.stderr)
	}
	if rep := h.run(nil, "report", "--html", filepath.Join(t.TempDir(), "r.html")); rep.code != 0 || !strings.Contains(rep.stdout+rep.stderr, "1 hold,") {
		t.Fatalf("report: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
	r := h.must("audit", "show", "last")
	t.Log(r.stdout)
	if !strings.Contains(r.stdout, b.LockID()+" acquired ") || !strings.Contains(r.stdout, "held by ") {
		t.Fatalf("audit show of the watch session:\n%s", r.stdout)
	}
	// --once against the dead table: exit 1, for a cron job to notice.
	once := exec.Command("tfsh", "watch", "--once", "--table", b.Table)
	once.Dir, once.Env = h.dir, append(append([]string(nil), h.env...), "AWS_ENDPOINT_URL_DYNAMODB="+b.Dynamo.URL())
	out, err := once.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "scan lock table") {
		t.Fatalf("watch --once with the table down: %v\n%s", err, out)
	}
}

func TestWatchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "watch needs --table"},
		{[]string{"--prefix", "x", "--table", "t"}, "--prefix is a key prefix in --bucket"},
		{[]string{"--table", "t", "--interval", "10ms"}, "--interval 10ms is too short"},
		{[]string{"--table", "t", "extra"}, "watch takes no arguments"},
	} {
		cmd := exec.Command("tfsh", append([]string{"watch"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), tc.want) {
			t.Errorf("tfsh watch %q: %v\n%s\nwant exit 4 and %q", tc.args, err, out, tc.want)
		}
	}
}

// TestWatchNamesPlainHolderInExplain: a tfsh plan waits on a plain
// terraform apply's lock while the watcher runs; explain names the holder
// the watcher saw, with its times.
func TestWatchNamesPlainHolderInExplain(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	w := startWatch(t, h, b, "--table", b.Table, "--interval", "500ms")
	apply := plainRun(t, tf, h, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "hold_seconds=4", "-var", "run_id=plain")
	var out bytes.Buffer
	apply.Stdout, apply.Stderr = &out, &out
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		id, _ = b.Lock()(context.Background())
	}
	if id == "" {
		t.Fatalf("never saw the apply's lock\n%s", out.String())
	}
	h.must("run", "--", "plan", "-input=false", "-lock-timeout=60s")
	if err := apply.Wait(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	time.Sleep(time.Second)
	w.stop()
	r := h.must("explain", "--json", id)
	var x audit.Explanation
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(x.Chains) != 1 {
		t.Fatalf("chains: %s", r.stdout)
	}
	c := x.Chains[0]
	host, _ := os.Hostname()
	if !c.Holder.Watcher || c.Holder.Recorded || !strings.HasSuffix(c.Holder.Who, "@"+host) || c.Holder.Operation != "apply" {
		t.Fatalf("holder = %+v, want the plain apply seen by the watcher", c.Holder)
	}
	if c.Ending.How != "released" || c.Ending.At == nil || c.HeldMS < 3000 || len(c.Waiters) != 1 || c.Waiters[0].Operation != "plan" {
		t.Fatalf("chain = %+v", c)
	}
	text := h.must("explain", id).stdout
	t.Log(text)
	if !strings.Contains(text, "seen by tfsh watch, not run through tfsh") {
		t.Fatalf("explain:\n%s", text)
	}
}

// TestWatchAuditLogBusy: an event the audit log cannot take (another
// process holds its write lock past the busy timeout) is kept and written
// once the log is free again.
func TestWatchAuditLogBusy(t *testing.T) {
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", labtest.Terraform(t), s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h := newHarness(t, dir, labtest.Terraform(t))
	w := startWatch(t, h, b, "--table", b.Table, "--interval", "200ms")

	raw, err := sql.Open("sqlite3", h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	info := `{"ID":"busy-1","Operation":"OperationTypeApply","Who":"ci@runner-3","Version":"1.5.7","Created":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","Path":"x"}`
	if _, err := dyn.Client().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(b.Table), Item: map[string]dtypes.AttributeValue{
		"LockID": &dtypes.AttributeValueMemberS{Value: b.LockID()}, "Info": &dtypes.AttributeValueMemberS{Value: info}}}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, w.cmd, w.out, "audit log: ")
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	time.Sleep(time.Second)
	log := w.stop()
	var got []string
	for _, e := range h.watchEvents() {
		got = append(got, e.Kind+" "+e.LockID)
	}
	if strings.Join(got, ", ") != "lock_acquired busy-1" {
		t.Fatalf("events %v, want the acquisition written after the log was free\n%s", got, log)
	}
}

// TestWatchShipsToTheSharedLog: with the shared audit log configured, what
// the watcher records of a plain terraform apply ships like any session's
// events, and another engineer's log gets it by pulling.
func TestWatchShipsToTheSharedLog(t *testing.T) {
	tf := labtest.Terraform(t)
	s3srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	b := labtest.BackendOf(t, dir)
	h, reviewer := newHarness(t, dir, tf), newHarness(t, dir, tf)
	for _, x := range []*harness{h, reviewer} {
		x.env = append(x.env, "TFSH_AUDIT_DYNAMODB_TABLE=tfsh-audit", "AWS_ENDPOINT_URL_DYNAMODB="+dyn.URL())
	}
	h.must("audit", "init-table")
	if out, err := plainRun(t, tf, h, "init", "-input=false", "-no-color", "-backend-config=backend.hcl").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	w := startWatch(t, h, b, "--table", b.Table, "--interval", "500ms")
	if out, err := plainRun(t, tf, h, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "hold_seconds=2", "-var", "run_id=shipped").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	time.Sleep(1500 * time.Millisecond) // two intervals: the release is seen
	if log := w.stop(); !strings.Contains(log, "shipping the audit log to dynamodb://tfsh-audit (TFSH_AUDIT_DYNAMODB_TABLE)") || strings.Contains(log, "queued") {
		t.Fatalf("the watcher's log:\n%s", log)
	}
	var local []string
	for _, e := range h.watchEvents() {
		if e.Kind == "lock_acquired" || e.Kind == "lock_released" {
			local = append(local, e.Kind+" "+e.LockID)
		}
	}
	if len(local) != 2 {
		t.Fatalf("the watcher recorded %v, want the apply's acquisition and release", local)
	}
	reviewer.must("audit", "pull", "--from", "dynamodb://tfsh-audit")
	var pulled []string
	for _, e := range reviewer.watchEvents() {
		if e.Kind == "lock_acquired" || e.Kind == "lock_released" {
			pulled = append(pulled, e.Kind+" "+e.LockID)
		}
	}
	if !slices.Equal(pulled, local) {
		t.Fatalf("pulled %v, want the watcher's %v", pulled, local)
	}
}
