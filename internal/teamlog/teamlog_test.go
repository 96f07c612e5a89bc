package teamlog_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
	"github.com/tfsh/tfsh/internal/teamlog"
)

// env points the AWS SDK's own configuration at the lab server: the
// shared log takes its endpoint and credentials the way the SDK does.
func env(t testing.TB, d *lab.Dynamo) {
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", d.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", lab.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", lab.SecretAccessKey)
	t.Setenv("AWS_REGION", lab.Region)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// table starts dynalite, creates the shared table through a client built
// from the environment alone (AWS_ENDPOINT_URL_DYNAMODB), and returns it.
func table(t testing.TB) (*dynamodb.Client, string) {
	t.Helper()
	d := labtest.Dynamo(t)
	env(t, d)
	c, err := teamlog.NewClient(context.Background(), teamlog.Foreground)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := teamlog.InitTable(context.Background(), c, teamlog.DefaultTable, false); err != nil {
		t.Fatal(err)
	}
	return c, teamlog.DefaultTable
}

func openDB(t testing.TB) *audit.DB {
	t.Helper()
	db, err := audit.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// write records a session of n events: session_start, a command with its
// output, n-5 integrity checks, session_end.
func write(t testing.TB, db *audit.DB, n int) {
	t.Helper()
	if err := writeSession(db, n); err != nil {
		t.Fatal(err)
	}
}

// writeSession is write for goroutines other than the test's.
func writeSession(db *audit.DB, n int) error {
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "u", Host: "h", PID: 1}, nil)
	if err != nil {
		return err
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply", StateKey: "lab/terraform.tfstate"}, audit.Decision{Action: "allow"})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Output(audit.Stdout), "Apply complete! %s\n", s.ID)
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		return err
	}
	for i := 0; i < n-5; i++ {
		if err := s.Append(ctx, "integrity_check", "", "", map[string]int{"i": i}); err != nil {
			return err
		}
	}
	return s.End(ctx, audit.SessionEnd{Status: "ok"})
}

func TestInitTable(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	// dynalite has no expiry: that is said, and the table is ready.
	created, err := teamlog.InitTable(ctx, c, name, true)
	if !errors.Is(err, teamlog.ErrNoExpiry) || created {
		t.Fatalf("second init-table, with expiry: created %v, err %v; want an existing table accepted, expiry unsupported", created, err)
	}
	// Shipped items carry it.
	db := openDB(t)
	write(t, db, 5)
	if _, err := (&teamlog.Shipper{DB: db, Client: c, Table: name, TTL: 24 * time.Hour}).Ship(ctx); err != nil {
		t.Fatal(err)
	}
	items, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(name)})
	if err != nil || len(items.Items) != 6 {
		t.Fatalf("scan: %d items, %v; want 5 events and a chunk", len(items.Items), err)
	}
	for _, it := range items.Items {
		exp, ok := it["expires"].(*types.AttributeValueMemberN)
		if !ok || exp.Value < fmt.Sprint(time.Now().Add(23*time.Hour).Unix()) {
			t.Fatalf("item %v: expires %v, want a day from now", it["pk"], it["expires"])
		}
	}
	if _, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("locks"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("LockID"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("LockID"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	_, err = teamlog.InitTable(ctx, c, "locks", false)
	var se *teamlog.SchemaError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "its key is (LockID hash), want (pk hash, sk range)") || !strings.Contains(err.Error(), "no index by_day") {
		t.Fatalf("init-table on a lock table: err = %v, want a schema error naming the key and indexes", err)
	}
}

// TestConcurrentWriters: 50 logs write 100 events each at once, each
// shipping in the background as it goes; a fresh log pulls the table: every
// event once, every chain verifies; a second pull adds nothing.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	const writers, perWriter = 50, 100
	var wg sync.WaitGroup
	ids := make([]string, writers)
	errs := make(chan error, 2*writers)
	for w := 0; w < writers; w++ {
		db := openDB(t)
		ids[w], _ = db.LogID(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &teamlog.Runner{Shipper: &teamlog.Shipper{DB: db, Client: c, Table: name, Concurrency: 4}}
			db.AfterCommit = r.Kick
			r.Start()
			if err := writeSession(db, perWriter); err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
			if left, err := r.Close(30 * time.Second); left != 0 || err != nil {
				errs <- fmt.Errorf("writer %d: %d events left to ship: %v", w, left, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	into := openDB(t)
	p := &teamlog.Puller{Client: c, Table: name}
	res, err := p.Pull(ctx, into, teamlog.PullFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Origins) != writers {
		t.Fatalf("pulled %d origins, want %d", len(res.Origins), writers)
	}
	for _, o := range res.Origins {
		if o.Added != perWriter || o.Skipped != 0 || o.Chunks != 1 {
			t.Errorf("origin %s: added %d, skipped %d, chunks %d; want %d, 0, 1", o.LogID, o.Added, o.Skipped, o.Chunks, perWriter)
		}
	}
	v, err := into.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Events != writers*perWriter || len(v.Origins) != writers || v.Commands != writers {
		t.Fatalf("verify: ok %v, %d events, %d origins, %d commands; problems %+v", v.OK(), v.Events, len(v.Origins), v.Commands, v.Problems)
	}
	for _, o := range v.Origins {
		if o.Events != perWriter || o.FromSeq != 1 || o.HeadSeq != perWriter {
			t.Errorf("origin %+v: want events 1..%d", o, perWriter)
		}
	}
	// Again, by day: nothing new.
	res, err = p.Pull(ctx, into, teamlog.PullFilter{Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Origins {
		if o.Added != 0 || o.Skipped != perWriter {
			t.Errorf("second pull, origin %s: added %d, skipped %d; want 0, %d", o.LogID, o.Added, o.Skipped, perWriter)
		}
	}
}

// TestUnreachable: with the table unreachable, writing goes on and Close
// returns within its bound with the backlog counted; once it is reachable,
// one Ship sends everything.
func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
	dead, err := teamlog.NewClient(ctx, teamlog.Background)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t)
	r := &teamlog.Runner{Shipper: &teamlog.Shipper{DB: db, Client: dead, Table: name}}
	db.AfterCommit = r.Kick
	r.Start()
	write(t, db, 20)
	start := time.Now()
	left, err := r.Close(2 * time.Second)
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("Close took %v, want at most its 2s bound", took)
	}
	if left != 20 || err == nil {
		t.Fatalf("unreachable: %d left, err %v; want 20 and why", left, err)
	}
	s := &teamlog.Shipper{DB: db, Client: c, Table: name}
	res, err := s.Ship(ctx)
	if err != nil || res.Shipped != 20 || res.Left != 0 {
		t.Fatalf("ship once reachable: %+v, %v", res, err)
	}
	into := openDB(t)
	pr, err := (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, into, teamlog.PullFilter{})
	if err != nil || len(pr.Origins) != 1 || pr.Origins[0].Added != 20 {
		t.Fatalf("pull: %+v, %v", pr, err)
	}
}

// TestConflict: an item already at one of our events' keys, with other
// content, stops shipping there, loudly; the cursor stays before it.
func TestConflict(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	db := openDB(t)
	write(t, db, 10)
	id, _ := db.LogID(ctx)
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "ev#" + id}, "sk": &types.AttributeValueMemberS{Value: "00000000000000000007"},
		"hash": &types.AttributeValueMemberS{Value: strings.Repeat("f", 64)},
	}}); err != nil {
		t.Fatal(err)
	}
	s := &teamlog.Shipper{DB: db, Client: c, Table: name}
	res, err := s.Ship(ctx)
	var ce *teamlog.ConflictError
	if !errors.As(err, &ce) || ce.Seq != 7 || !strings.Contains(err.Error(), "already holds a different item") {
		t.Fatalf("ship over a conflicting item: err = %v, want a conflict at event 7", err)
	}
	// Puts run in parallel: events before 7 may have been stopped too,
	// and wait for the next ship; 7 and after are never passed.
	if res.Cursor > 6 || res.Left != 10-res.Cursor {
		t.Fatalf("after the conflict: cursor %d, left %d; want at most 6, and the rest left", res.Cursor, res.Left)
	}
	// Shipping again meets it again: it is never skipped silently.
	if _, err := s.Ship(ctx); !errors.As(err, &ce) {
		t.Fatalf("second ship: err = %v, want the conflict again", err)
	}
}

// TestPullRefusesEditedItem: an event edited in the table is refused by
// pull, naming it.
func TestPullRefusesEditedItem(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	db := openDB(t)
	write(t, db, 10)
	if _, err := (&teamlog.Shipper{DB: db, Client: c, Table: name}).Ship(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := db.LogID(ctx)
	if _, err := c.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(name),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "ev#" + id}, "sk": &types.AttributeValueMemberS{Value: "00000000000000000004"},
		},
		UpdateExpression:          aws.String("SET #d = :d"),
		ExpressionAttributeNames:  map[string]string{"#d": "data"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": &types.AttributeValueMemberS{Value: `{"status":"ok","exit_code":0}`}},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, openDB(t), teamlog.PullFilter{})
	var fe *audit.ForeignHashError
	if !errors.As(err, &fe) || fe.OriginSeq != 4 || fe.Origin != id {
		t.Fatalf("pull of an edited item: err = %v, want event 4 of %s refused", err, id)
	}
}

// TestPullSinceTakesWholeSessions: a --since pull that meets a session
// started before it takes the whole session, so its events arrive in order
// and its start (who, where) is there; sessions wholly before it stay out.
func TestPullSinceTakesWholeSessions(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	db := openDB(t)
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	now := base
	db.Now = func() time.Time { return now }
	write(t, db, 10) // wholly before --since
	now = base.Add(time.Hour)
	s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: "interactive", User: "u", Host: "h", PID: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now = base.Add(30 * time.Hour)
	for i := 0; i < 3; i++ {
		if err := s.Append(ctx, "integrity_check", "", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := (&teamlog.Shipper{DB: db, Client: c, Table: name}).Ship(ctx); err != nil {
		t.Fatal(err)
	}
	into := openDB(t)
	res, err := (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, into, teamlog.PullFilter{Since: base.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Origins) != 1 || res.Origins[0].Added != 5 {
		t.Fatalf("pull --since: %+v, want the 5 events of the second session", res.Origins)
	}
	v, err := into.Verify(ctx)
	if err != nil || !v.OK() || v.Origins[0].FromSeq != 11 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	// --until alone: the first session (and its output), not the second.
	before := openDB(t)
	res, err = (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, before, teamlog.PullFilter{Until: base.Add(30 * time.Minute)})
	if err != nil || len(res.Origins) != 1 || res.Origins[0].Added != 10 || res.Origins[0].Chunks != 1 {
		t.Fatalf("pull --until: %+v, %v; want the 10 events of the first session", res.Origins, err)
	}
}

// TestTwoShippersOneLog: two tfsh processes on one log ship the same
// backlog at once: every event is in the table once, the cursor ends at
// the head, and each event was counted by one of them as shipped and by
// the other (if it met it) as already there.
func TestTwoShippersOneLog(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	db := openDB(t)
	write(t, db, 300)
	var wg sync.WaitGroup
	results := make([]teamlog.ShipResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if results[i], err = (&teamlog.Shipper{DB: db, Client: c, Table: name, Batch: 50}).Ship(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if shipped := results[0].Shipped + results[1].Shipped; shipped != 300 {
		t.Fatalf("shipped %d + %d events, want 300 in all: %+v", results[0].Shipped, results[1].Shipped, results)
	}
	if cur, _ := db.ShipCursor(ctx, "dynamodb://"+name); cur != 300 {
		t.Fatalf("cursor %d, want 300", cur)
	}
}

// TestGenericEndpointVariable: AWS_ENDPOINT_URL alone points the client
// at the server too (the SDK's own configuration).
func TestGenericEndpointVariable(t *testing.T) {
	d := labtest.Dynamo(t)
	env(t, d)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "")
	t.Setenv("AWS_ENDPOINT_URL", d.URL())
	c, err := teamlog.NewClient(context.Background(), teamlog.Foreground)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := teamlog.InitTable(context.Background(), c, "via-generic", false); err != nil || !created {
		t.Fatalf("init-table through AWS_ENDPOINT_URL: created %v, %v", created, err)
	}
}

// TestNotUTF8 ships a state key that is not UTF-8 (DynamoDB strings must
// be): it arrives byte for byte, and the chain verifies.
func TestNotUTF8(t *testing.T) {
	ctx := context.Background()
	c, name := table(t)
	db := openDB(t)
	s, _, err := db.StartSession(ctx, audit.SessionInfo{Mode: "command", User: "u", Host: "h", PID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"plan"}, Subcommand: "plan", StateKey: "state-\xff\xfe.tfstate"}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(cmd.Output(audit.Stdout), "No changes.")
	if err := cmd.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := (&teamlog.Shipper{DB: db, Client: c, Table: name}).Ship(ctx); err != nil {
		t.Fatal(err)
	}
	into := openDB(t)
	if _, err := (&teamlog.Puller{Client: c, Table: name}).Pull(ctx, into, teamlog.PullFilter{}); err != nil {
		t.Fatal(err)
	}
	v, err := into.Verify(ctx)
	if err != nil || !v.OK() || v.Events != 4 || v.Commands != 1 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
}
