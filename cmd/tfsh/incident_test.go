package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// The incident: the seed's scenarios recorded for real with terraform 1.5.7
// on S3 + DynamoDB in one audit log, then read back by explain, replay and
// report. The recording is kept as testdata/incident/log.jsonl so that the
// golden files of what tfsh prints are exact; the live test checks that a
// new recording still has the fixture's shape.

var record = flag.Bool("record", false, "re-record testdata/incident/log.jsonl from a live run")

const incidentFixture = "testdata/incident/log.jsonl"

// ciEnv is a GitHub Actions job's environment, as a runner gives it.
var ciEnv = []string{"GITHUB_ACTIONS=true", "GITHUB_RUN_ID=1234", "GITHUB_WORKFLOW=deploy", "GITHUB_JOB=plan",
	"GITHUB_ACTOR=bob", "GITHUB_SHA=0123456789abcdef", "GITHUB_SERVER_URL=https://github.example", "GITHUB_REPOSITORY=acme/infra"}

// withoutCI drops the CI variables of the machine the tests run on, so that
// only the sessions the test means to be CI jobs are.
func withoutCI(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "CI" || k == "JENKINS_URL" || k == "BUILDKITE" || k == "CIRCLECI" || k == "GITLAB_CI" || strings.HasPrefix(k, "GITHUB_")
	})
}

// recordIncident runs the scenarios and returns the harness whose log
// holds them.
func recordIncident(t *testing.T) *harness {
	s3srv := labtest.S3(t)
	dyn := labtest.Dynamo(t)
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, "s3-dynamodb", tf, s3srv, dyn)
	h := newHarness(t, dir, tf)
	h.env = withoutCI(h.env)
	h.must("run", "--", "init", "-input=false", "-backend-config=backend.hcl")
	run := 0
	apply := func(hold int) (*exec.Cmd, *lockedBuffer, chan error) {
		run++
		return h.start("run", "--", "apply", "-auto-approve", "-input=false",
			"-var", fmt.Sprintf("hold_seconds=%d", hold), "-var", fmt.Sprintf("run_id=incident-%d", run))
	}

	// 1. An apply holds the lock; a plan fails at once on it, a CI job's
	// plan waits and gets it, a plan with a short timeout gives up.
	a, aout, adone := apply(8)
	first := h.waitEvent("the apply's lock_acquired", a, aout, acquiredBy("apply"))
	ci, ciout, cidone := h.startEnv(ciEnv, "run", "--", "plan", "-input=false", "-lock-timeout=60s")
	if r := h.run(nil, "run", "--", "plan", "-input=false", "-lock-timeout=0s"); r.code != 1 {
		t.Fatalf("plan -lock-timeout=0s = %d, want 1:\n%s", r.code, r.stderr)
	}
	if r := h.run(nil, "run", "--", "plan", "-input=false", "-lock-timeout=2s"); r.code != 1 {
		t.Fatalf("plan -lock-timeout=2s = %d, want 1:\n%s", r.code, r.stderr)
	}
	if err := wait(t, adone, aout); err != nil {
		t.Fatalf("apply: %v\n%s", err, aout.String())
	}
	if err := wait(t, cidone, ciout); err != nil {
		t.Fatalf("CI plan: %v\n%s", err, ciout.String())
	}
	_ = ci

	// 2. An apply is killed (kill -9 of terraform): its lock is orphaned,
	// then force-unlocked with a reason, and the state verified.
	k, kout, kdone := apply(60)
	acq := h.waitEvent("the second apply's lock_acquired", k, kout, func(e lockEvent) bool {
		return acquiredBy("apply")(e) && e.LockID != first.LockID
	})
	if err := syscall.Kill(acq.Data.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(t, kdone, kout)
	verify := filepath.Join(t.TempDir(), "org.hcl")
	if err := os.WriteFile(verify, []byte("settings { after_unlock = \"verify\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.run([]string{"TFSH_ORG_POLICY=" + verify}, "--reason", "INC-7 apply killed by the runner", "-c", "force-unlock -force "+acq.LockID); r.code != 0 {
		t.Fatalf("force-unlock = %d:\n%s", r.code, r.stderr)
	}
	return h
}

// shape is what must stay the same between recordings: per chain, the
// holder's operation, the waiters' outcomes and CI providers, and the end.
func shape(x *audit.Explanation) []string {
	var out []string
	for _, c := range x.Chains {
		var ws []string
		for _, w := range c.Waiters {
			s := w.Outcome + ":" + w.Operation
			if w.CI != nil {
				s += ":" + w.CI.Provider + "/" + w.CI.RunID
			}
			ws = append(ws, s)
		}
		slices.Sort(ws)
		end := c.Ending.How
		if o := c.Ending.Orphaned; o != nil {
			end += " orphaned(" + o.Cause + ")"
		}
		if fu := c.Ending.ForceUnlock; fu != nil {
			end += fmt.Sprintf(" force-unlock(reason=%q verified=%s)", fu.Reason, fu.Verified)
		}
		out = append(out, fmt.Sprintf("held by %s (recorded=%v) waiters=%v end=%s", c.Holder.Operation, c.Holder.Recorded, ws, end))
	}
	return out
}

func explainLog(t *testing.T, dbPath string, q audit.ExplainQuery) *audit.Explanation {
	t.Helper()
	db, err := audit.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x, err := db.Explain(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestIncidentRecording records the incident for real and checks that
// explain tells its story: the same shape as the fixture the golden files
// are made from.
func TestIncidentRecording(t *testing.T) {
	h := recordIncident(t)
	h.verify()
	live := explainLog(t, h.db, audit.ExplainQuery{})
	got := shape(live)
	want := []string{
		`held by apply (recorded=true) waiters=[acquired:plan:github/1234 failed:plan timed out:plan] end=released`,
		`held by apply (recorded=true) waiters=[] end=force-unlocked orphaned(terraform was killed by SIGKILL) force-unlock(reason="INC-7 apply killed by the runner" verified=state consistent with the infrastructure (no drift); the configuration still has changes to apply (see the plan above))`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("explain of the live recording:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if *record {
		dumpLog(t, h.db, incidentFixture)
		t.Logf("recorded %s", incidentFixture)
	}
	fixture := loadLog(t, incidentFixture)
	if f := shape(explainLog(t, fixture, audit.ExplainQuery{})); strings.Join(f, "\n") != strings.Join(got, "\n") {
		t.Fatalf("the fixture %s no longer has the shape of a live recording (re-record with -record):\nfixture:\n%s\nlive:\n%s",
			incidentFixture, strings.Join(f, "\n"), strings.Join(got, "\n"))
	}
}

// logRow is one row of a dumped audit log: an event, or an output chunk.
type logRow struct {
	Table string `json:"table"`
	// events
	Seq       int64  `json:"seq,omitempty"`
	ID        string `json:"id,omitempty"`
	At        int64  `json:"at,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`
	Kind      string `json:"kind,omitempty"`
	StateKey  string `json:"state_key,omitempty"`
	LockID    string `json:"lock_id,omitempty"`
	Data      string `json:"data,omitempty"`
	PrevHash  string `json:"prev_hash,omitempty"`
	Hash      string `json:"hash,omitempty"`
	// output_chunks
	ChunkSeq int    `json:"chunk_seq,omitempty"`
	StartNS  int64  `json:"start_ns,omitempty"`
	RawLen   int    `json:"raw_len,omitempty"`
	Frames   []byte `json:"frames,omitempty"`
}

// dumpLog writes every row of a log, exactly as stored, as JSON lines.
func dumpLog(t *testing.T, dbPath, out string) {
	t.Helper()
	db, err := audit.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	rows, err := db.SQL().Query(`SELECT seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data, prev_hash, hash FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		r := logRow{Table: "events"}
		if err := rows.Scan(&r.Seq, &r.ID, &r.At, &r.SessionID, &r.CommandID, &r.Kind, &r.StateKey, &r.LockID, &r.Data, &r.PrevHash, &r.Hash); err != nil {
			t.Fatal(err)
		}
		enc.Encode(r)
	}
	rows.Close()
	rows, err = db.SQL().Query(`SELECT command_id, seq, start_ns, raw_len, frames FROM output_chunks ORDER BY command_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		r := logRow{Table: "output_chunks"}
		if err := rows.Scan(&r.CommandID, &r.ChunkSeq, &r.StartNS, &r.RawLen, &r.Frames); err != nil {
			t.Fatal(err)
		}
		enc.Encode(r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// loadLog makes a new audit log holding a dumped one's rows, and returns
// its path. The chain is as recorded, so it verifies.
func loadLog(t *testing.T, fixture string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	ctx := context.Background()
	db, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatalf("%v (record it with go test -run TestIncidentRecording -args -record)", err)
	}
	defer f.Close()
	tx, err := db.SQL().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	for sc.Scan() {
		var r logRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
		switch r.Table {
		case "events":
			_, err = tx.Exec(`INSERT INTO events (seq, id, at, session_id, command_id, kind, state_key, lock_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.Seq, r.ID, r.At, r.SessionID, null(r.CommandID), r.Kind, null(r.StateKey), null(r.LockID), r.Data, r.PrevHash, r.Hash)
		case "output_chunks":
			_, err = tx.Exec(`INSERT INTO output_chunks (command_id, seq, start_ns, raw_len, frames) VALUES (?, ?, ?, ?, ?)`, r.CommandID, r.ChunkSeq, r.StartNS, r.RawLen, r.Frames)
		default:
			err = fmt.Errorf("unknown table %q", r.Table)
		}
		if err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	res, err := db.Verify(ctx)
	if err != nil || !res.OK() {
		t.Fatalf("the fixture's chain does not verify: %v %+v", err, res)
	}
	return path
}

// TestLoadFixtureForDev writes the fixture as an audit log to
// $TFSH_FIXTURE_OUT, to look at by hand (tfsh --audit-db ...).
func TestLoadFixtureForDev(t *testing.T) {
	out := os.Getenv("TFSH_FIXTURE_OUT")
	if out == "" {
		t.Skip("TFSH_FIXTURE_OUT not set")
	}
	p := loadLog(t, incidentFixture)
	b, _ := os.ReadFile(p)
	os.WriteFile(out, b, 0o600)
}

// TestExplainGolden: what tfsh explain prints of the recorded incident, in
// every form, exactly.
func TestExplainGolden(t *testing.T) {
	db := loadLog(t, incidentFixture)
	h := &harness{t: t, dir: t.TempDir(), db: db, env: withoutCI(append(os.Environ(), "TZ=UTC", "TFSH_AUDIT_DB="+db, "NO_COLOR="))}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"day.txt", []string{"explain", "--since", "2026-11-26T00:00:00Z", "--until", "2026-11-27T00:00:00Z"}},
		{"day.json", []string{"explain", "--since", "2026-11-26T00:00:00Z", "--until", "2026-11-27T00:00:00Z", "--json"}},
		{"day-color.txt", []string{"explain", "--since", "2026-11-26T00:00:00Z", "--until", "2026-11-27T00:00:00Z", "--color", "always"}},
		{"orphan-lock.txt", []string{"explain", "69f67001-f720-a5a5-2de6-9a5172e63d50"}},
		{"ci-session.json", []string{"explain", "--json", "01M8AWR62481"}},
		{"empty.txt", []string{"explain", "--since", "2026-11-20T00:00:00Z", "--until", "2026-11-21T00:00:00Z"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.run(nil, c.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("tfsh %q = %d:\n%s", c.args, r.code, r.stderr)
			}
			golden(t, "explain/"+c.name, r.stdout)
		})
	}
}

// TestReplayIncidentGolden: the recorded incident played back without
// timing, exactly; and as an asciicast, which must be valid: a header,
// then events whose every line parses and whose times never go back.
func TestReplayIncidentGolden(t *testing.T) {
	db := loadLog(t, incidentFixture)
	h := &harness{t: t, dir: t.TempDir(), db: db, env: withoutCI(append(os.Environ(), "TZ=UTC", "TFSH_AUDIT_DB="+db))}
	for name, session := range map[string]string{
		"timed-out-plan.golden": "01M8AWR64PWG", // waited 2s on the apply's lock and gave up
		"killed-apply.golden":   "01M8AWRMT1HZ", // terraform killed: the lock orphaned
		"force-unlock.golden":   "01M8AWRMXS4G", // the guarded force-unlock and its verification
	} {
		t.Run(name, func(t *testing.T) {
			r := h.run(nil, "replay", "--no-timing", session)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("replay = %d:\n%s", r.code, r.stderr)
			}
			golden(t, "replay/incident-"+name, r.stdout)

			cast := filepath.Join(t.TempDir(), "s.cast")
			if r := h.run(nil, "replay", "--cast", cast, session); r.code != 0 {
				t.Fatalf("replay --cast = %d:\n%s", r.code, r.stderr)
			}
			b, err := os.ReadFile(cast)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			var hdr struct {
				Version, Width, Height int
				Timestamp              int64
			}
			if err := json.Unmarshal([]byte(lines[0]), &hdr); err != nil || hdr.Version != 2 || hdr.Width <= 0 || hdr.Height <= 0 || hdr.Timestamp == 0 {
				t.Fatalf("header %q: %v %+v", lines[0], err, hdr)
			}
			last, markers := -1.0, 0
			for i, l := range lines[1:] {
				var ev []any
				if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 {
					t.Fatalf("line %d %q: %v", i+2, l, err)
				}
				ts, ok1 := ev[0].(float64)
				code, ok2 := ev[1].(string)
				_, ok3 := ev[2].(string)
				if !ok1 || !ok2 || !ok3 || (code != "o" && code != "m") || ts < last {
					t.Fatalf("line %d %q: want [time ≥ %v, \"o\"|\"m\", text]", i+2, l, last)
				}
				last = ts
				if code == "m" {
					markers++
				}
			}
			if markers == 0 {
				t.Fatalf("no lock markers in the cast:\n%s", b)
			}
		})
	}
}
