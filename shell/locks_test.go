package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// With both S3 mechanisms configured, tfsh locks shows both views and warns
// when they disagree: a lockfile-only client does not exclude a
// DynamoDB-only one (reference §6).
func TestLocksBothMechanismsDisagree(t *testing.T) {
	srv, dyn := labtest.S3(t), labtest.Dynamo(t)
	ctx := context.Background()
	bucket, table := fmt.Sprintf("b-%d", time.Now().UnixNano()), fmt.Sprintf("t-%d", time.Now().UnixNano())
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	if err := dyn.CreateLockTable(ctx, table); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := map[string]any{"version": 3, "backend": map[string]any{"type": "s3", "config": map[string]any{
		"bucket": bucket, "key": "app/terraform.tfstate", "region": "us-east-1", "dynamodb_table": table, "use_lockfile": true,
		"endpoints": map[string]any{"s3": srv.URL(), "dynamodb": dyn.URL()}, "use_path_style": true,
	}}}
	b, _ := json.Marshal(cfg)
	os.MkdirAll(filepath.Join(dir, ".terraform"), 0o755)
	os.WriteFile(filepath.Join(dir, ".terraform", "terraform.tfstate"), b, 0o644)
	info := `{"ID":"only-in-the-lockfile","Operation":"OperationTypeApply","Info":"","Who":"bob@ci","Version":"1.11.4","Created":"2026-11-25T20:25:11Z","Path":"x"}`
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("app/terraform.tfstate.tflock"), Body: strings.NewReader(info)}); err != nil {
		t.Fatal(err)
	}
	opts := LocksOptions{Dir: dir, Env: lab.Env(os.Environ())}
	var out bytes.Buffer
	if err := Locks(ctx, opts, &out); err != nil {
		t.Fatalf("Locks: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"HELD", "s3-lockfile", "dynamodb", "only-in-the-lockfile", "bob@ci", "disagree"} {
		if !strings.Contains(text, want) {
			t.Fatalf("tfsh locks does not show %q:\n%s", want, text)
		}
	}
	opts.JSON = true
	out.Reset()
	if err := Locks(ctx, opts, &out); err != nil {
		t.Fatal(err)
	}
	var rep LockReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !rep.Held || !rep.Disagree || len(rep.Views) != 2 || rep.Views[0].Info == nil || rep.Views[1].Held {
		t.Fatalf("report = %+v", rep)
	}
}
