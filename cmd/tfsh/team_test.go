package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// sessionsOf lists the sessions recorded in h's own log.
func (h *harness) sessionsOf() []string {
	h.t.Helper()
	var out []string
	if err := h.events(audit.EventFilter{Kinds: []string{audit.KindSessionStart}}, func(e audit.Event) error {
		if e.Origin == "" {
			out = append(out, e.SessionID)
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestSharedLogIncident: two people's tfsh (two audit logs) contend for
// one local state with real terraform while both ship to the shared table;
// a third log pulls it and explains ONE chain with the holder from the
// first log and the waiter from the second, and replays a session it did
// not record. A fourth tfsh with the table unreachable runs without delay
// and its backlog ships with audit push.
func TestSharedLogIncident(t *testing.T) {
	dyn := labtest.Dynamo(t)
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, "local", tf, nil, nil)
	shared := []string{"TFSH_AUDIT_DYNAMODB_TABLE=tfsh-audit", "AWS_ENDPOINT_URL_DYNAMODB=" + dyn.URL()}
	a, b, c, d := newHarness(t, dir, tf), newHarness(t, dir, tf), newHarness(t, dir, tf), newHarness(t, dir, tf)
	for _, h := range []*harness{a, b, c, d} {
		h.env = append(h.env, shared...)
	}
	if r := c.must("audit", "init-table"); !strings.Contains(r.stdout, "created table tfsh-audit") {
		t.Fatalf("init-table: %s", r.stdout)
	}
	a.must("run", "--", "init", "-input=false")
	hold, holdOut, holdDone := a.start("run", "--", "apply", "-auto-approve", "-input=false", "-var", "hold_seconds=4", "-var", "run_id=team-1")
	a.waitEvent("the apply's lock_acquired", hold, holdOut, acquiredBy("apply"))
	if r := b.run(nil, "run", "--", "plan", "-input=false", "-lock-timeout=60s"); r.code != 0 || strings.Contains(r.stderr, "queued") {
		t.Fatalf("waiting plan = %d:\n%s", r.code, r.stderr)
	}
	if err := wait(t, holdDone, holdOut); err != nil || strings.Contains(holdOut.String(), "queued") {
		t.Fatalf("apply: %v\n%s", err, holdOut.String())
	}

	// Unreachable: the command is not held up, and its events wait.
	start := time.Now()
	r := d.run([]string{"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:1"}, "-c", "output run_id")
	if took := time.Since(start); r.code != 0 || took > 8*time.Second || !strings.Contains(r.stderr, "audit events queued for dynamodb://tfsh-audit (unreachable: ") {
		t.Fatalf("with the table unreachable: exit %d after %v:\n%s", r.code, took, r.stderr)
	}
	push := d.must("audit", "push")
	if !strings.Contains(push.stdout, " events shipped, 0 already there") || !strings.HasSuffix(push.stdout, "; 0 left\n") {
		t.Fatalf("push: %s", push.stdout)
	}
	// Unreachable again; then the next command, with the table back,
	// ships that backlog before it ends.
	if r := d.run([]string{"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:1"}, "-c", "output run_id"); r.code != 0 || !strings.Contains(r.stderr, "queued") {
		t.Fatalf("second unreachable run: exit %d:\n%s", r.code, r.stderr)
	}
	if r := d.must("-c", "output run_id"); strings.Contains(r.stderr, "queued") {
		t.Fatalf("the next command left events queued:\n%s", r.stderr)
	}
	if push := d.must("audit", "push"); !strings.HasPrefix(push.stdout, "dynamodb://tfsh-audit: 0 events shipped") || !strings.HasSuffix(push.stdout, "; 0 left\n") {
		t.Fatalf("push after the next command: %s", push.stdout)
	}

	pull := c.must("audit", "pull", "--from", "dynamodb://tfsh-audit", "--json")
	var pr struct {
		Origins []struct {
			LogID string `json:"log_id"`
			Added int    `json:"added"`
		} `json:"origins"`
		Verify audit.VerifyResult `json:"verify"`
	}
	if err := json.Unmarshal([]byte(pull.stdout), &pr); err != nil {
		t.Fatalf("pull --json: %v\n%s", err, pull.stdout)
	}
	if len(pr.Origins) != 3 || !pr.Verify.OK() || len(pr.Verify.Origins) != 3 {
		t.Fatalf("pull: %s", pull.stdout)
	}
	// Everything each log recorded arrived, once.
	for _, h := range []*harness{a, b, d} {
		res := h.verify()
		found := false
		for _, o := range pr.Verify.Origins {
			if o.Events == res.Events && o.HeadSeq == res.HeadSeq && o.Head == res.Head {
				found = true
			}
		}
		if !found {
			t.Errorf("no origin of the pull has %d events up to %d (%s): %+v", res.Events, res.HeadSeq, res.Head, pr.Verify.Origins)
		}
	}
	again := c.must("audit", "pull", "--from", "dynamodb://tfsh-audit", "--since", "1h")
	if !strings.Contains(again.stdout, ": 0 events added") {
		t.Fatalf("second pull: %s", again.stdout)
	}

	// Two --session pulls, with a session of that log between them not
	// pulled: the pull notes the stretch; verify lists it, and passes.
	dSessions := d.sessionsOf()
	partial := filepath.Join(t.TempDir(), "partial.db")
	c.must("audit", "pull", "--from", "dynamodb://tfsh-audit", "--audit-db", partial, "--session", dSessions[0])
	r = c.must("audit", "pull", "--from", "dynamodb://tfsh-audit", "--audit-db", partial, "--session", dSessions[2])
	if !strings.Contains(r.stdout, ": intact: ") || !strings.Contains(r.stdout, "note: 1 stretch of the pulled logs' chains is not here") {
		t.Fatalf("second --session pull:\n%s", r.stdout)
	}
	if r := c.run(nil, "audit", "verify", "--audit-db", partial); r.code != 0 || !regexp.MustCompile(`not here: its events after seq \d+ and before seq \d+ \(not pulled`).MatchString(r.stdout) {
		t.Fatalf("verify after --session pulls: exit %d\n%s", r.code, r.stdout)
	}

	out := c.must("explain", "--json")
	var x audit.Explanation
	if err := json.Unmarshal([]byte(out.stdout), &x); err != nil {
		t.Fatal(err)
	}
	aSessions, bSessions := a.sessionsOf(), b.sessionsOf()
	var contended []audit.Chain
	for _, ch := range x.Chains {
		if len(ch.Waiters) > 0 {
			contended = append(contended, ch)
		}
	}
	if len(contended) != 1 {
		t.Fatalf("%d chains with waiters, want 1:\n%s", len(contended), out.stdout)
	}
	ch := contended[0]
	if !slices.Contains(aSessions, ch.Holder.SessionID) || !ch.Holder.Recorded || ch.Holder.Operation != "apply" {
		t.Errorf("holder %+v: want the apply of the first log's sessions %v", ch.Holder, aSessions)
	}
	if w := ch.Waiters[0]; !slices.Contains(bSessions, w.SessionID) {
		t.Errorf("waiter %+v: want the plan of the second log's sessions %v", w, bSessions)
	}
	replay := c.must("replay", "--no-timing", ch.Holder.SessionID)
	if !strings.Contains(replay.stdout, "Apply complete!") {
		t.Fatalf("replay of the pulled session:\n%s", replay.stdout)
	}
	// A pulled row edited afterwards: verify names the log it came from.
	aDB, err := audit.Open(context.Background(), a.db)
	if err != nil {
		t.Fatal(err)
	}
	aID, _ := aDB.LogID(context.Background())
	aDB.Close()
	raw, err := sql.Open("sqlite3", c.db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER events_append_only_update`,
		`UPDATE events SET data = replace(data, '"status":"ok"', '"status":"failed"') WHERE origin = '` + aID + `' AND kind = 'command_end'`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	if r := c.run(nil, "audit", "verify"); r.code != exitLogBroken || !strings.Contains(r.stdout, "edited           log "+aID+": command_end event (seq") ||
		!strings.Contains(r.stdout, "pulled from log "+aID+": ") {
		t.Fatalf("verify after editing a pulled row: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	html := filepath.Join(t.TempDir(), "report.html")
	c.must("report", "--html", html)
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), ch.Holder.SessionID) || !strings.Contains(string(page), ch.Waiters[0].SessionID) {
		t.Fatalf("the report does not name both sessions (%v)", err)
	}
}

// TestSharedLogConflict: an item already in the table at one of this
// log's keys, with other content: the session says so on stderr and
// records it; audit push fails naming it.
func TestSharedLogConflict(t *testing.T) {
	dyn := labtest.Dynamo(t)
	tf := labtest.Terraform(t)
	h := newHarness(t, labtest.Example(t, "local", tf, nil, nil), tf)
	h.env = append(h.env, "AWS_ENDPOINT_URL_DYNAMODB="+dyn.URL())
	h.must("audit", "init-table")
	h.must("-c", "version") // not shared yet
	db, err := audit.Open(context.Background(), h.db)
	if err != nil {
		t.Fatal(err)
	}
	id, err := db.LogID(context.Background())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Client().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("tfsh-audit"), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "ev#" + id}, "sk": &types.AttributeValueMemberS{Value: "00000000000000000002"},
		"hash": &types.AttributeValueMemberS{Value: strings.Repeat("0", 64)},
	}}); err != nil {
		t.Fatal(err)
	}
	r := h.run([]string{"TFSH_AUDIT_DYNAMODB_TABLE=tfsh-audit"}, "-c", "version")
	if r.code != 0 || !strings.Contains(r.stderr, "tfsh: AUDIT CONFLICT: dynamodb://tfsh-audit already holds a different item at ev#"+id+"/00000000000000000002 (event 2") ||
		!strings.Contains(r.stderr, "audit events queued for dynamodb://tfsh-audit") {
		t.Fatalf("session meeting a conflict: exit %d\n%s", r.code, r.stderr)
	}
	n := 0
	if err := h.events(audit.EventFilter{Kinds: []string{"audit_conflict"}}, func(e audit.Event) error {
		n++
		if !strings.Contains(string(e.Data), `"key":"ev#`+id+`/00000000000000000002"`) {
			t.Errorf("audit_conflict data %s", e.Data)
		}
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("%d audit_conflict events (%v), want 1", n, err)
	}
	if r := h.run(nil, "audit", "push", "--to", "dynamodb://tfsh-audit"); r.code != 4 || !strings.Contains(r.stderr, "already holds a different item") {
		t.Fatalf("push over a conflict: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
