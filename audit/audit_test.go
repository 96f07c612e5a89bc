package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
)

// MustOpenDB opens a fresh audit log in a temp dir.
func MustOpenDB(t testing.TB) *audit.DB {
	t.Helper()
	db, err := audit.Open(context.Background(), filepath.Join(t.TempDir(), "state", "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testInfo() audit.SessionInfo {
	return audit.SessionInfo{Mode: "command", User: "alice", Host: "box", PID: os.Getpid(), PIDNS: audit.PIDNamespace(), CWD: "/tmp", TfshVersion: "test"}
}

// record writes a small session with one command and some output.
func record(t testing.TB, db *audit.DB, red *audit.Redactor, out string) (*audit.Session, *audit.Command) {
	t.Helper()
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), red)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply", StateKey: "terraform.tfstate"},
		audit.Decision{Action: "allow", Added: []string{"-lock-timeout=5m"}})
	if err != nil {
		t.Fatal(err)
	}
	w := c.Output(audit.Stdout)
	for _, part := range strings.SplitAfter(out, "\n") {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	old := syscallUmask(0)
	defer syscallUmask(old)
	db := MustOpenDB(t)
	record(t, db, nil, "hello\n")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(db.Path() + suffix)
		if err != nil {
			t.Fatalf("stat %s: %v", suffix, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Fatalf("mode of audit.db%s = %v, want 0600", suffix, got)
		}
	}
	fi, err := os.Stat(filepath.Dir(db.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Fatalf("mode of audit dir = %v, want 0700", got)
	}
}

func TestChainVerifiesAndOutputRoundTrips(t *testing.T) {
	db := MustOpenDB(t)
	_, c := record(t, db, nil, "line one\nline two\n")
	res, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Events != 5 || res.Commands != 1 {
		t.Fatalf("verify = %+v, want OK with 5 events and 1 command", res)
	}
	var got bytes.Buffer
	if err := db.Frames(context.Background(), c.ID, func(f audit.Frame) error {
		if f.Stream != audit.Stdout {
			t.Fatalf("stream = %v, want stdout", f.Stream)
		}
		got.Write(f.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got.String() != "line one\nline two\n" {
		t.Fatalf("output = %q", got.String())
	}
}

// tamper opens the file behind the log's back, as an attacker with write
// access would, drops the append-only triggers and runs stmt.
func tamper(t *testing.T, db *audit.DB, stmts ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite3", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range append([]string{
		`DROP TRIGGER events_append_only_update`, `DROP TRIGGER events_append_only_delete`,
		`DROP TRIGGER output_append_only_update`, `DROP TRIGGER output_append_only_delete`,
	}, stmts...) {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		stmt    string
		wantSeq int64
		kind    string
	}{
		{"edit data", `UPDATE events SET data = replace(data, '"allow"', '"deny"') WHERE seq = 3`, 3, "edited"},
		{"edit kind", `UPDATE events SET kind = 'session_end' WHERE seq = 2`, 2, "edited"},
		{"edit time", `UPDATE events SET at = at + 1 WHERE seq = 4`, 4, "edited"},
		{"edit state key", `UPDATE events SET state_key = 'other' WHERE seq = 2`, 2, "edited"},
		{"white space in data", `UPDATE events SET data = data || ' ' WHERE seq = 3`, 3, "edited"},
		{"delete", `DELETE FROM events WHERE seq = 3`, 4, "deleted"},
		{"reorder", `UPDATE events SET seq = 100 WHERE seq = 2; UPDATE events SET seq = 2 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 100`, 2, "reordered"},
		{"output length", `UPDATE output_chunks SET raw_len = raw_len - 1`, 4, "output unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpenDB(t)
			record(t, db, nil, "some output\n")
			tamper(t, db, tt.stmt)
			res, err := db.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() {
				t.Fatalf("verify found nothing after %s", tt.stmt)
			}
			p := res.Problems[0]
			if p.Seq != tt.wantSeq || !strings.HasPrefix(p.Kind, tt.kind) {
				t.Fatalf("first problem = %+v, want seq %d kind %q", p, tt.wantSeq, tt.kind)
			}
		})
	}
}

func TestEventsAreAppendOnly(t *testing.T) {
	db := MustOpenDB(t)
	record(t, db, nil, "x\n")
	for _, stmt := range []string{`UPDATE events SET kind = 'x'`, `DELETE FROM events`, `DELETE FROM output_chunks`} {
		if _, err := db.SQL().Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: err = %v, want append-only refusal", stmt, err)
		}
	}
}

func TestRedactionReachesNothingStored(t *testing.T) {
	db := MustOpenDB(t)
	secret := "hunter2secret"
	red := audit.NewRedactor(secret, "s3cr3tvalue")
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), red)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply", "-var", "pw=" + secret}, Note: "x s3cr3tvalue y"},
		audit.Decision{Action: "allow", Message: "said " + secret}, "anothersecret")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Output(audit.Stdout)
	// Split every secret across writes to exercise the held-back tail.
	for _, part := range []string{"pass: hun", "ter2sec", "ret\nanother", "secret\ns3", "cr3tvalue"} {
		w.Write([]byte(part))
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	db.Frames(ctx, c.ID, func(f audit.Frame) error { out.Write(f.Data); return nil })
	if want := "pass: [redacted]\n[redacted]\n[redacted]"; out.String() != want {
		t.Fatalf("recorded output = %q, want %q", out.String(), want)
	}
	db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(db.Path() + suffix)
		if err != nil {
			continue
		}
		for _, sec := range []string{secret, "s3cr3tvalue", "anothersecret"} {
			if bytes.Contains(b, []byte(sec)) {
				t.Fatalf("%q found in audit.db%s", sec, suffix)
			}
		}
	}
}

func TestRedactorEdgeCases(t *testing.T) {
	r := audit.NewRedactor("abc", "password1", "password12", `qu"ote`)
	tests := []struct{ in, want string }{
		{"abc stays: too short", "abc stays: too short"},
		{"x password12 y", "x [redacted] y"},
		{"password1password12", "[redacted][redacted]"},
		{`{"v":"qu\"ote"}`, `{"v":"[redacted]"}`},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := string(r.JSON([]byte(`{"a":"x qu\"ote","n":12345678901234567890}`))); got != `{"a":"x [redacted]","n":12345678901234567890}` {
		t.Errorf("JSON = %s", got)
	}
}

func TestNewerSchemaAndCorruptFilesAreRefused(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	if _, err := db.SQL().Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := audit.Open(ctx, db.Path())
	var ne *audit.NewerSchemaError
	if !errors.As(err, &ne) || ne.Have != 99 {
		t.Fatalf("err = %v, want NewerSchemaError for schema 99", err)
	}
	if !strings.Contains(err.Error(), "upgrade tfsh") {
		t.Fatalf("message %q does not say what to do", err)
	}

	junk := filepath.Join(t.TempDir(), "audit.db")
	content := []byte("this is not a database, but it is someone's evidence\n")
	os.WriteFile(junk, content, 0o600)
	_, err = audit.Open(ctx, junk)
	var ce *audit.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want CorruptError", err)
	}
	if b, _ := os.ReadFile(junk); !bytes.Equal(b, content) {
		t.Fatalf("corrupt file was modified")
	}

	// A real SQLite header with a damaged body.
	broken := filepath.Join(t.TempDir(), "audit.db")
	good := MustOpenDB(t)
	record(t, good, nil, "x\n")
	good.Close()
	b, _ := os.ReadFile(good.Path())
	for i := 100; i < len(b) && i < 4096; i++ {
		b[i] ^= 0xA5
	}
	os.WriteFile(broken, b, 0o600)
	if _, err := audit.Open(ctx, broken); err == nil {
		t.Fatalf("opening a damaged database succeeded")
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	ctx := context.Background()
	const writers, commands = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate handles stand for separate tfsh processes.
			db, err := audit.Open(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			s, _, err := db.StartSession(ctx, testInfo(), nil)
			if err != nil {
				errs <- err
				return
			}
			for j := 0; j < commands; j++ {
				c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "plan"}, audit.Decision{Action: "allow"})
				if err != nil {
					errs <- err
					return
				}
				fmt.Fprintf(c.Output(audit.Stdout), "writer %d command %d\n", i, j)
				if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- s.End(ctx, audit.SessionEnd{Status: "ok"})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(writers * (2 + commands*3)); !res.OK() || res.Events != want {
		t.Fatalf("verify = %+v, want OK with %d events", res, want)
	}
}

func TestCloseCrashedSessions(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
	dead := testInfo()
	dead.PID = deadPID(t)
	s, _, err := db.StartSession(ctx, dead, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "apply", StateKey: "terraform.tfstate"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	// More than a chunk, so some output is stored before the crash.
	c.Output(audit.Stdout).Write(bytes.Repeat([]byte("Applying...\n"), 7000))
	waitChunks(t, db, c.ID, 1)
	other := testInfo()
	other.Host = "elsewhere"
	other.PID = dead.PID
	if _, crashed, err := db.StartSession(ctx, other, nil); err != nil || len(crashed) != 0 { // other host: cannot tell
		t.Fatalf("a session on another host closed %v (%v)", crashed, err)
	}
	container := testInfo()
	container.PIDNS = "pid:[1]"
	if _, crashed, err := db.StartSession(ctx, container, nil); err != nil || len(crashed) != 0 { // same name, other PID namespace
		t.Fatalf("a session in another PID namespace closed %v (%v)", crashed, err)
	}
	// Starting a session on the same host notices the dead one.
	_, crashed, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(crashed) != 1 || crashed[0].SessionID != s.ID || len(crashed[0].OpenCommands) != 1 || crashed[0].StateKey != "terraform.tfstate" {
		t.Fatalf("crashed = %+v, want only %s with its open command", crashed, s.ID)
	}
	if _, again, err := db.StartSession(ctx, testInfo(), nil); err != nil || len(again) != 0 {
		t.Fatalf("a second new session closed %v (%v); want nothing", again, err)
	}
	rec, err := db.Session(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != "crashed" || rec.CommandList[0].End == nil || rec.CommandList[0].End.Status != "unknown" {
		t.Fatalf("session after crash = %+v", rec)
	}
	// The output stored before the crash is under the chain.
	sum, _, _, err := db.OutputDigest(ctx, c.ID)
	if err != nil || rec.CommandList[0].End.OutputSHA256 != sum {
		t.Fatalf("crash command_end digest %q, stored output hashes to %q (%v)", rec.CommandList[0].End.OutputSHA256, sum, err)
	}
	if res, err := db.Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify after crash closing = %+v, %v", res, err)
	}
}

// waitChunks waits until a command has at least n stored chunks.
func waitChunks(t *testing.T, db *audit.DB, commandID string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, chunks, err := db.OutputDigest(context.Background(), commandID)
		if err != nil {
			t.Fatal(err)
		}
		if chunks >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks stored, want %d", chunks, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQuietOutputIsStored: output followed by silence reaches the database
// within about a second, without another write or End.
func TestQuietOutputIsStored(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "apply"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	c.Output(audit.Stdout).Write([]byte("terraform_data.hold: Creating...\n"))
	waitChunks(t, db, c.ID, 1)
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if res, err := db.Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}

func TestWithheldOutputIsNotStored(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "state pull"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	c.Withhold("shows values from state")
	c.Output(audit.Stdout).Write([]byte(`{"password":"from-state-1234"}`))
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	rec, err := db.Session(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	end := rec.CommandList[0].End
	if end.OutputWithheld != "shows values from state" || end.OutputBytes != 30 || end.OutputChunks != 0 {
		t.Fatalf("command_end = %+v", end)
	}
	db.Close()
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(db.Path() + suffix)
		if bytes.Contains(b, []byte("from-state-1234")) {
			t.Fatalf("withheld output stored in audit.db%s", suffix)
		}
	}
}

// TestRedactionKeepsRecordsIntact: a secret equal to a field name or to a
// structural value (a -var value "status" or "deny") must not rewrite them.
func TestRedactionKeepsRecordsIntact(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	red := audit.NewRedactor("exit_code", "status", "deny", "failed")
	s, _, err := db.StartSession(ctx, testInfo(), red)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "plan", Typed: []string{"plan", "-var", "x=status"}},
		audit.Decision{Action: "deny", Rule: "r", Message: "deny because status"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "failed", ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	rec, err := db.Session(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	cmd := rec.CommandList[0]
	if cmd.End.Status != "failed" || cmd.End.ExitCode != 1 || cmd.Decision.Action != "deny" {
		t.Fatalf("structural fields were redacted: end %+v decision %+v", cmd.End, cmd.Decision)
	}
	if cmd.Info.Typed[2] != "x=[redacted]" || cmd.Decision.Message != "[redacted] because [redacted]" {
		t.Fatalf("free text was not redacted: typed %q message %q", cmd.Info.Typed, cmd.Decision.Message)
	}
}

// Events queued with Later are written with command_end, just before it, in
// chain order and with their own times; AppendAt keeps its time too.
func TestLaterAndAppendAt(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "apply", StateKey: "b/k"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 11, 25, 20, 0, 0, 123, time.UTC)
	if err := c.AppendAt(ctx, seen, "lock_acquired", "ID-1", map[string]string{"source": "backend"}); err != nil {
		t.Fatal(err)
	}
	c.Later(seen.Add(time.Second), "lock_released", "ID-1", nil)
	c.Later(seen.Add(2*time.Second), "lock_observed", "", nil)
	var kinds []string
	db.Events(ctx, audit.EventFilter{CommandID: c.ID}, func(e audit.Event) error { kinds = append(kinds, e.Kind); return nil })
	if got := strings.Join(kinds, " "); got != "command_start policy_decision lock_acquired" {
		t.Fatalf("before End: %s (Later events must wait for command_end)", got)
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	db.Events(ctx, audit.EventFilter{CommandID: c.ID}, func(e audit.Event) error { evs = append(evs, e); return nil })
	kinds = kinds[:0]
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, " "); got != "command_start policy_decision lock_acquired lock_released lock_observed command_end" {
		t.Fatalf("after End: %s", got)
	}
	if !evs[2].At.Equal(seen) || evs[2].LockID != "ID-1" || evs[2].StateKey != "b/k" || !evs[3].At.Equal(seen.Add(time.Second)) {
		t.Fatalf("times or columns not kept: %+v %+v", evs[2], evs[3])
	}
	if res, err := db.Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

// TestAddSecretsWhileRunning: a secret learned while the command runs (a
// line typed at terraform's prompt) is redacted from output written after
// it is added, from what was still held back, and from later events.
func TestAddSecretsWhileRunning(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"plan"}}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	w := c.Output(audit.TTY)
	w.Write([]byte("Enter a value: "))
	c.AddSecrets("typed-s3cret")
	w.Write([]byte("typed-s3cret\r\nticket = \"typed-s3cret\"\r\n"))
	if err := c.AppendAt(ctx, time.Time{}, "lock_observed", "", map[string]string{"note": "saw typed-s3cret"}); err != nil {
		t.Fatal(err)
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok", Error: "typed-s3cret"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	db.Frames(ctx, c.ID, func(f audit.Frame) error { out.Write(f.Data); return nil })
	if want := "Enter a value: [redacted]\r\nticket = \"[redacted]\"\r\n"; out.String() != want {
		t.Fatalf("recorded output = %q, want %q", out.String(), want)
	}
	// The session keeps it: a later command that shows the value (output,
	// console) and the session's own end are redacted of it too.
	c2, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"output", "ticket"}, Note: "ticket typed-s3cret"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	c2.Output(audit.Stdout).Write([]byte("\"typed-s3cret\"\n"))
	if err := c2.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "note", "", "", map[string]string{"x": "typed-s3cret"}); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if got := s.Redactor().String("a typed-s3cret b"); got != "a [redacted] b" {
		t.Fatalf("session redactor left %q", got)
	}
	out.Reset()
	db.Frames(ctx, c2.ID, func(f audit.Frame) error { out.Write(f.Data); return nil })
	if want := "\"[redacted]\"\n"; out.String() != want {
		t.Fatalf("later command's output = %q, want %q", out.String(), want)
	}
	db.Events(ctx, audit.EventFilter{SessionID: s.ID}, func(e audit.Event) error {
		if bytes.Contains(e.Data, []byte("typed-s3cret")) {
			t.Fatalf("%s event holds the secret: %s", e.Kind, e.Data)
		}
		return nil
	})
}

// TestNotesAloneAreNotCompressed: a command with only tfsh's notes (a
// refusal) stores them as one stored deflate block, without making a
// compressor; terraform's output is compressed. Both read back the same.
func TestNotesAloneAreNotCompressed(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	note := "tfsh: refused by rule \"no-unlocked-writes\" (built-in): apply writes state\n"
	plan := strings.Repeat("terraform_data.r: Refreshing state...\n", 20)
	frames := map[string][]byte{}
	for _, c := range []struct {
		name   string
		stream audit.Stream
		data   string
	}{{"notes", audit.Note, note}, {"terraform", audit.Stdout, plan}} {
		cmd, err := s.StartCommand(ctx, audit.CommandInfo{Subcommand: "apply"}, audit.Decision{Action: "allow"})
		if err != nil {
			t.Fatal(err)
		}
		cmd.Output(c.stream).Write([]byte(c.data))
		if err := cmd.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
			t.Fatal(err)
		}
		var z []byte
		var rawLen int
		if err := db.SQL().QueryRowContext(ctx, `SELECT frames, raw_len FROM output_chunks WHERE command_id = ?`, cmd.ID).Scan(&z, &rawLen); err != nil {
			t.Fatal(err)
		}
		frames[c.name] = z
		var got strings.Builder
		if err := db.Frames(ctx, cmd.ID, func(f audit.Frame) error { got.Write(f.Data); return nil }); err != nil || got.String() != c.data {
			t.Fatalf("%s read back %q, %v", c.name, got.String(), err)
		}
		if c.name == "notes" && (z[0] != 1 || len(z) != rawLen+5) {
			t.Fatalf("notes stored as %d bytes starting %#x, want a stored block of %d", len(z), z[0], rawLen+5)
		}
		if c.name == "terraform" && len(z) >= rawLen/2 {
			t.Fatalf("terraform's output stored as %d bytes of %d, want compressed", len(z), rawLen)
		}
	}
	if res, err := db.Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}
