package shell

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
	"github.com/tfsh/tfsh/terraform"
)

// unlockLab is an S3 backend with DynamoDB locking on the lab servers, a
// working directory initialised for it, and an audit log.
type unlockLab struct {
	dyn        *lab.Dynamo
	dir, table string
	lockID     string
	db         *audit.DB
	newSession func(ask func(context.Context, string) (string, error), yes bool) *Session
	item       func(id string)
	held       func() string
}

func newUnlockLab(t *testing.T) *unlockLab {
	t.Helper()
	dyn, srv := labtest.Dynamo(t), labtest.S3(t)
	ctx := context.Background()
	u := &unlockLab{dyn: dyn, dir: t.TempDir()}
	bucket := fmt.Sprintf("b-%d", time.Now().UnixNano())
	u.table = fmt.Sprintf("t-%d", time.Now().UnixNano())
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	if err := dyn.CreateLockTable(ctx, u.table); err != nil {
		t.Fatal(err)
	}
	u.lockID = bucket + "/app/terraform.tfstate"
	state := map[string]any{"version": 3, "backend": map[string]any{"type": "s3", "config": map[string]any{
		"bucket": bucket, "key": "app/terraform.tfstate", "region": "us-east-1", "dynamodb_table": u.table,
		"endpoint": srv.URL(), "dynamodb_endpoint": dyn.URL(), "force_path_style": true,
		"access_key": lab.AccessKeyID, "secret_key": lab.SecretAccessKey,
	}}}
	data, _ := json.Marshal(state)
	os.MkdirAll(filepath.Join(u.dir, ".terraform"), 0o755)
	if err := os.WriteFile(filepath.Join(u.dir, ".terraform", "terraform.tfstate"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u.db = db
	key := map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: u.lockID}}
	u.item = func(id string) {
		info := `{"ID":"` + id + `","Operation":"OperationTypeApply","Info":"","Who":"bob@ci","Version":"1.5.7","Created":"2026-11-25T20:25:11Z","Path":"x"}`
		_, err := dyn.Client().PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(u.table), Item: map[string]dtypes.AttributeValue{
			"LockID": key["LockID"], "Info": &dtypes.AttributeValueMemberS{Value: info}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	u.held = func() string {
		out, err := dyn.Client().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(u.table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Item) == 0 {
			return ""
		}
		var i struct{ ID string }
		json.Unmarshal([]byte(out.Item["Info"].(*dtypes.AttributeValueMemberS).Value), &i)
		return i.ID
	}
	u.newSession = func(ask func(context.Context, string) (string, error), yes bool) *Session {
		s, _, err := NewSession(ctx, Config{
			Binary: terraform.Binary{Name: "terraform", Path: "/nonexistent/terraform", Version: "1.5.7"},
			Audit:  db, Dir: u.dir, Env: []string{"TFSH_REASON=INC-1 runner died"},
			Out: &strings.Builder{}, Err: &strings.Builder{}, Ask: ask, Yes: yes,
		}, audit.SessionInfo{Mode: "command", User: "ann", Host: "laptop"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return u
}

// TestGuardedUnlock runs force-unlock through the pipeline against a real
// DynamoDB lock table: terraform never runs (its path does not exist); tfsh
// removes the lock itself, only the one it showed.
func TestGuardedUnlock(t *testing.T) {
	u := newUnlockLab(t)
	ctx := context.Background()
	errOf := func(s *Session) string { return s.cfg.Err.(*strings.Builder).String() }

	t.Run("a wrong ID is refused, the lock untouched", func(t *testing.T) {
		u.item("A")
		s := u.newSession(nil, true)
		if out := s.Run(ctx, []string{"force-unlock", "-force", "Z"}, ""); out.OK() || u.held() != "A" {
			t.Fatalf("outcome %+v, lock %q\n%s", out, u.held(), errOf(s))
		}
		if !strings.Contains(errOf(s), "Z is not the current lock") {
			t.Fatalf("stderr:\n%s", errOf(s))
		}
	})
	t.Run("no ID, or an empty one, removes nothing", func(t *testing.T) {
		u.item("A")
		for _, argv := range [][]string{{"force-unlock", "-force"}, {"force-unlock", "-force", ""}} {
			s := u.newSession(nil, true)
			if out := s.Run(ctx, argv, ""); out.OK() || u.held() != "A" {
				t.Fatalf("%q: outcome %+v, lock %q\n%s", argv, out, u.held(), errOf(s))
			}
		}
	})
	t.Run("-force spelt false does not confirm", func(t *testing.T) {
		u.item("A")
		for _, f := range []string{"-force=false", "-force=0", "-force=F", "-force -force=false"} {
			s := u.newSession(nil, false)
			argv := append(append([]string{"force-unlock"}, strings.Fields(f)...), "A")
			if out := s.Run(ctx, argv, ""); out.OK() || u.held() != "A" {
				t.Fatalf("%s: outcome %+v, lock %q\n%s", f, out, u.held(), errOf(s))
			}
		}
	})
	t.Run("a hold is not force-unlocked", func(t *testing.T) {
		u.item("A")
		s := u.newSession(nil, true)
		// Make the record a hold.
		info := `{"ID":"H","Operation":"tfsh-hold","Info":"freeze","Who":"ann@x","Version":"tfsh","Created":"2026-11-25T20:25:11Z","Path":"x"}`
		_, err := u.dyn.Client().PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(u.table), Item: map[string]dtypes.AttributeValue{
			"LockID": &dtypes.AttributeValueMemberS{Value: u.lockID}, "Info": &dtypes.AttributeValueMemberS{Value: info}}})
		if err != nil {
			t.Fatal(err)
		}
		if out := s.Run(ctx, []string{"force-unlock", "-force", "H"}, ""); out.OK() || u.held() != "H" || !strings.Contains(errOf(s), "is a change-freeze hold") {
			t.Fatalf("outcome %+v, lock %q\n%s", out, u.held(), errOf(s))
		}
	})
	t.Run("released and re-taken between show and confirm: refused", func(t *testing.T) {
		u.item("A")
		ask := func(_ context.Context, prompt string) (string, error) {
			if strings.HasPrefix(prompt, "remove lock A?") {
				u.item("B") // someone released A and took the lock as B
			}
			return "yes", nil
		}
		s := u.newSession(ask, false)
		if out := s.Run(ctx, []string{"force-unlock", "A"}, ""); out.OK() || u.held() != "B" {
			t.Fatalf("outcome %+v, lock %q\n%s", out, u.held(), errOf(s))
		}
		if !strings.Contains(errOf(s), "the lock changed since it was shown") {
			t.Fatalf("stderr:\n%s", errOf(s))
		}
	})
	t.Run("without a terminal, only -force or --yes confirms", func(t *testing.T) {
		u.item("C")
		s := u.newSession(nil, false)
		if out := s.Run(ctx, []string{"force-unlock", "C"}, ""); out.OK() || u.held() != "C" || !strings.Contains(errOf(s), "needs a confirmation") {
			t.Fatalf("outcome %+v, lock %q\n%s", out, u.held(), errOf(s))
		}
	})
	t.Run("two at once: exactly one removes it, the other finds it gone", func(t *testing.T) {
		u.item("D")
		var wg sync.WaitGroup
		outs := make([]Outcome, 2)
		sessions := []*Session{u.newSession(nil, true), u.newSession(nil, true)}
		for i := range outs {
			wg.Add(1)
			go func() { defer wg.Done(); outs[i] = sessions[i].Run(ctx, []string{"force-unlock", "-force", "D"}, "") }()
		}
		wg.Wait()
		ok := 0
		for _, o := range outs {
			if o.OK() {
				ok++
			}
		}
		if ok != 1 || u.held() != "" {
			t.Fatalf("%d succeeded (%+v), lock %q\n%s\n%s", ok, outs, u.held(), errOf(sessions[0]), errOf(sessions[1]))
		}
	})
	t.Run("recorded: who, reason, the lock removed", func(t *testing.T) {
		var got []string
		u.db.Events(ctx, audit.EventFilter{Kinds: []string{KindForceUnlock}}, func(e audit.Event) error {
			var d ForceUnlockRecord
			json.Unmarshal(e.Data, &d)
			got = append(got, fmt.Sprintf("%s %s %s %s", e.LockID, d.Reason, d.Info.Who, d.Method))
			return nil
		})
		if len(got) != 1 || got[0] != "D INC-1 runner died bob@ci conditional delete" {
			t.Fatalf("force_unlock events = %q", got)
		}
	})
}

// TestUnlockFallback: on a backend tfsh cannot edit, tfsh says so, asks
// for the confirmation itself, and runs terraform's force-unlock with
// -force (terraform must not ask again).
func TestUnlockFallback(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".terraform"), 0o755)
	state := `{"version":3,"backend":{"type":"consul","config":{"path":"tf/app","address":"127.0.0.1:1"}}}`
	if err := os.WriteFile(filepath.Join(dir, ".terraform", "terraform.tfstate"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := audit.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run := func(yes bool) (Outcome, string) {
		var errb strings.Builder
		s, _, err := NewSession(ctx, Config{
			Binary: terraform.Binary{Name: "terraform", Path: "/nonexistent/terraform", Version: "1.5.7"},
			Audit:  db, Dir: dir, Env: []string{"TFSH_REASON=INC-2"}, Out: &strings.Builder{}, Err: &errb, Yes: yes,
		}, audit.SessionInfo{Mode: "command"})
		if err != nil {
			t.Fatal(err)
		}
		return s.Run(ctx, []string{"force-unlock", "ABC"}, ""), errb.String()
	}
	if out, stderr := run(false); out.OK() || !strings.Contains(stderr, "tfsh cannot read consul locks itself") || !strings.Contains(stderr, "needs a confirmation") {
		t.Fatalf("without --yes: %+v\n%s", out, stderr)
	}
	out, stderr := run(true)
	if out.Status != "error" { // terraform's path does not exist: it was about to run
		t.Fatalf("with --yes: %+v\n%s", out, stderr)
	}
	var ran []string
	db.Events(ctx, audit.EventFilter{CommandID: out.CommandID, Kinds: []string{audit.KindCommandStart}}, func(e audit.Event) error {
		var d struct{ Run []string }
		json.Unmarshal(e.Data, &d)
		ran = d.Run
		return nil
	})
	if strings.Join(ran, " ") != "force-unlock -force ABC" {
		t.Fatalf("terraform was to run %q, want force-unlock -force ABC", ran)
	}
}
