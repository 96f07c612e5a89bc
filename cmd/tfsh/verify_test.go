package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
	"github.com/tfsh/tfsh/internal/anchor"
	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// recordedLog writes one recorded session to a new log and returns its path.
func recordedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.RecordSession(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAuditVerify(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := auditCommand(context.Background(), append([]string{"verify"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerify(t *testing.T) {
	path := recordedLog(t)
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != 0 || !strings.Contains(out, ": intact: ") || !strings.Contains(out, ", 1 anchors checked") {
		t.Fatalf("intact log: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER events_append_only_update`,
		`UPDATE events SET data = data || ' ' WHERE seq = 2`} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	raw.Close()
	code, out, _ = runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, "BROKEN: first at event") || !strings.Contains(out, "edited") {
		t.Fatalf("edited log: exit %d, stdout %q", code, out)
	}
	code, out, _ = runAuditVerify(t, "--audit-db", path, "--json")
	var res audit.VerifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitLogBroken || res.First == nil || res.First.Kind != audit.ProblemEdited {
		t.Fatalf("--json: exit %d, err %v, stdout %q", code, err, out)
	}

	code, _, errs = runAuditVerify(t, "--audit-db", filepath.Join(t.TempDir(), "none.db"))
	if code != exitCannotRun || !strings.Contains(errs, "no audit log") {
		t.Fatalf("missing log: exit %d, stderr %q", code, errs)
	}
}

func TestAuditVerifyAnchors(t *testing.T) {
	path := recordedLog(t)
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER events_append_only_delete`,
		`DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)`} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	raw.Close()
	if code, out, errs := runAuditVerify(t, "--audit-db", path, "--anchors=false"); code != 0 {
		t.Fatalf("--anchors=false: exit %d, stdout %q, stderr %q (the chain alone cannot see a cut tail)", code, out, errs)
	}
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, ": truncated: the log ends at event") {
		t.Fatalf("truncated log: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	code, out, _ = runAuditVerify(t, "--audit-db", path, "--pubkey", pub)
	if code != exitLogBroken || !strings.Contains(out, "is not signed") {
		t.Fatalf("--pubkey with unsigned anchors: exit %d, stdout %q", code, out)
	}
	if code, _, errs := runAuditVerify(t, "--audit-db", path, "--pubkey", "nonsense"); code != exitCannotRun || !strings.Contains(errs, "--pubkey") {
		t.Fatalf("bad --pubkey: exit %d, stderr %q", code, errs)
	}
}

func TestAnchorKeyFromEnvironment(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	setupAnchors(context.Background(), db, true, func(k string) string {
		if k == "TFSH_ANCHOR_KEY" {
			return base64.StdEncoding.EncodeToString(seed)
		}
		return ""
	}, &warn)
	audittest.RecordSession(t, db)
	db.Close()
	if warn.Len() > 0 {
		t.Fatalf("warnings: %s", warn.String())
	}
	code, out, errs := runAuditVerify(t, "--audit-db", path, "--pubkey", base64.StdEncoding.EncodeToString(pub))
	if code != 0 {
		t.Fatalf("signed anchors: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	db.AnchorKey = nil
	setupAnchors(context.Background(), db, true, func(k string) string {
		if k == "TFSH_ANCHOR_KEY" {
			return "short"
		}
		return ""
	}, &warn)
	if !strings.Contains(warn.String(), "TFSH_ANCHOR_KEY") || db.AnchorKey != nil {
		t.Fatalf("bad key: warning %q, key %v", warn.String(), db.AnchorKey)
	}
}

// TestAuditVerifyRemoteAnchors: anchors written through the environment's
// settings to S3 and to DynamoDB (the latter reached through the SDK's own
// AWS_ENDPOINT_URL_DYNAMODB) catch a rewrite of the whole log with the
// anchor file beside it gone.
func TestAuditVerifyRemoteAnchors(t *testing.T) {
	ctx := context.Background()
	for _, store := range []string{"s3", "dynamodb"} {
		t.Run(store, func(t *testing.T) {
			env := map[string]string{
				"AWS_ACCESS_KEY_ID":     lab.AccessKeyID,
				"AWS_SECRET_ACCESS_KEY": lab.SecretAccessKey,
				"AWS_REGION":            lab.Region,
			}
			switch store {
			case "s3":
				srv := labtest.S3(t)
				if err := srv.CreateBucket(ctx, "anchors"); err != nil {
					t.Fatal(err)
				}
				env["TFSH_ANCHOR_S3"] = "s3://anchors/box/audit"
				env["TFSH_ANCHOR_S3_ENDPOINT"] = srv.URL()
			case "dynamodb":
				srv := labtest.Dynamo(t)
				if err := anchor.CreateTable(ctx, srv.Client(), "anchors"); err != nil {
					t.Fatal(err)
				}
				env["TFSH_ANCHOR_DYNAMODB"] = "anchors/box"
				env["AWS_ENDPOINT_URL_DYNAMODB"] = srv.URL()
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			verifyRewriteCaught(t)
		})
	}
}

// verifyRewriteCaught records a session with the anchor stores the
// environment names, removes the local anchor file, rewrites the whole log
// with a recomputed chain, and requires verify to find the rewrite.
func verifyRewriteCaught(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	setupAnchors(ctx, db, true, os.Getenv, &warn)
	audittest.RecordSession(t, db)
	db.Close()
	if warn.Len() > 0 {
		t.Fatalf("warnings: %s", warn.String())
	}
	if err := os.Remove(audit.AnchorPath(path)); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runAuditVerify(t, "--audit-db", path, "--anchors"); code != 0 || !strings.Contains(out, "1 anchors checked") {
		t.Fatalf("intact, remote anchors: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`DROP TRIGGER events_append_only_update`, `UPDATE events SET data = data || ' ' WHERE seq = 2`}
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	rows, err := raw.Query(`SELECT seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for rows.Next() {
		var e audit.Event
		var at int64
		var data string
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.SessionID, &e.CommandID, &e.Kind, &e.StateKey, &e.LockID, &data); err != nil {
			t.Fatal(err)
		}
		e.At, e.Data = time.Unix(0, at), json.RawMessage(data)
		evs = append(evs, e)
	}
	rows.Close()
	prev := audit.GenesisHash
	for _, e := range evs {
		h := documentedHash(prev, &e)
		if _, err := raw.Exec(`UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	raw.Close()
	if code, out, _ := runAuditVerify(t, "--audit-db", path, "--anchors=false"); code != 0 {
		t.Fatalf("rewritten log without anchors: exit %d, stdout %q (the chain alone cannot see it)", code, out)
	}
	code, out, errs := runAuditVerify(t, "--audit-db", path)
	if code != exitLogBroken || !strings.Contains(out, ": rewritten: ") {
		t.Fatalf("rewritten log, remote anchors: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// documentedHash is a row's hash as docs/audit.md ("Integrity") defines it,
// written from the documentation: what someone rewriting the log would do.
func documentedHash(prev string, e *audit.Event) string {
	var b []byte
	for _, f := range []string{strconv.FormatInt(e.Seq, 10), e.ID, strconv.FormatInt(e.At.UnixNano(), 10),
		e.SessionID, e.CommandID, e.Kind, e.StateKey, e.LockID, string(e.Data)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(append([]byte(prev), b...))
	return hex.EncodeToString(sum[:])
}
