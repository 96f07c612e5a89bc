package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

func TestFindMissingSaysRunSetup(t *testing.T) {
	t.Setenv(lab.EnvCache, t.TempDir())
	t.Setenv(lab.EnvTerraform, "")
	t.Setenv(lab.EnvTofu, "")
	t.Setenv(lab.EnvDynalite, "")
	for name, find := range map[string]func() (string, error){
		"terraform": lab.FindTerraform, "tofu": lab.FindTofu, "dynalite": lab.FindDynalite,
	} {
		if p, err := find(); err == nil || !strings.Contains(err.Error(), "scripts/setup-lab.sh") {
			t.Errorf("%s with an empty cache: got %q, %v; want an error mentioning scripts/setup-lab.sh", name, p, err)
		}
	}
}

func TestFindEnvOverride(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "my-terraform")
	if err := os.WriteFile(exe, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(lab.EnvTerraform, exe)
	if p, err := lab.FindTerraform(); err != nil || p != exe {
		t.Errorf("FindTerraform with %s set: %q, %v; want %q", lab.EnvTerraform, p, err, exe)
	}
	t.Setenv(lab.EnvTofu, filepath.Join(dir, "missing"))
	if _, err := lab.FindTofu(); err == nil || !strings.Contains(err.Error(), lab.EnvTofu) {
		t.Errorf("FindTofu with %s naming a missing file: %v; want an error naming the variable", lab.EnvTofu, err)
	}
	t.Setenv(lab.EnvCache, dir)
	if got, want := lab.DynaliteDir(), filepath.Join(dir, "dynalite-"); !strings.HasPrefix(got, want) || len(got) != len(want)+12 {
		t.Errorf("DynaliteDir() = %q, want %s<12 hex>", got, want)
	}
}

func TestEnv(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "tfrc")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"HOME=/home/x", "PATH=/bin", "TF_LOG=TRACE", "TF_LOG_PATH=/tmp/log", "TF_CLI_ARGS=-no-color",
		"TF_CLI_ARGS_plan=-lock=false", "TF_CLI_CONFIG_FILE=/nonexistent/.terraformrc", "AWS_PROFILE=prod",
		"AWS_ENDPOINT_URL_S3=https://elsewhere.invalid", "AWS_ACCESS_KEY_ID=real", "TF_VAR_x=1",
	}
	got := lab.Env(base, "TF_VAR_x=2", "EXTRA=1")
	want := []string{
		"HOME=/home/x", "PATH=/bin", "AWS_ACCESS_KEY_ID=" + lab.AccessKeyID, "TF_VAR_x=2",
		"CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0",
		"AWS_SECRET_ACCESS_KEY=" + lab.SecretAccessKey, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"EXTRA=1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Env:\n got %q\nwant %q", got, want)
	}
	if got := lab.Env([]string{"TF_CLI_CONFIG_FILE=" + existing}); !slices.Contains(got, "TF_CLI_CONFIG_FILE="+existing) {
		t.Errorf("Env dropped TF_CLI_CONFIG_FILE naming an existing file: %q", got)
	}
}

// TestS3IfNoneMatch checks what DESIGN.md relies on: gofakes3 refuses a PutObject with
// If-None-Match: * on an existing key with 412, atomically.
func TestS3IfNoneMatch(t *testing.T) {
	ctx := context.Background()
	srv := labtest.S3(t)
	if err := srv.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	put := func(key, body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("b"), Key: aws.String(key),
			Body: strings.NewReader(body), IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put("k.tflock", "first"); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err := put("k.tflock", "second")
	var status interface{ HTTPStatusCode() int }
	var api smithy.APIError
	if !errors.As(err, &status) || status.HTTPStatusCode() != http.StatusPreconditionFailed ||
		!errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("second conditional put: %v; want 412 PreconditionFailed", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k.tflock")})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(out.Body)
	out.Body.Close()
	if body.String() != "first" {
		t.Errorf("object after the refused put = %q, want %q", body.String(), "first")
	}

	// The same with a bare HTTP request (no SDK, no signature), as a plain client sends it.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL()+"/b/k.tflock", strings.NewReader("raw"))
	req.Header.Set("If-None-Match", "*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("raw PUT with If-None-Match: * on an existing key: %s, want 412", resp.Status)
	}

	// Racing writers: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 16 {
		wg.Go(func() {
			if err := put("race.tflock", strings.Repeat("x", i+1)); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d of 16 racing conditional puts succeeded, want exactly 1", wins)
	}
}

func TestS3CloseTwice(t *testing.T) {
	srv, err := lab.StartS3(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:PORT", srv.URL())
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Get(srv.URL()); err == nil {
		t.Error("server still answers after Close")
	}
}

func TestDynamo(t *testing.T) {
	labtest.Dynamo(t) // skips (or fails in CI) when dynalite is not installed
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	d, err := lab.StartDynamo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Logf("dynalite answered after %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := d.CreateLockTable(ctx, "locks"); err != nil {
		t.Fatal(err)
	}
	t.Logf("lock table ACTIVE after %v", time.Since(start).Round(time.Millisecond))

	c := d.Client()
	lock := func(info string) error {
		_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String("locks"),
			Item: map[string]types.AttributeValue{
				"LockID": &types.AttributeValueMemberS{Value: "bucket/key"},
				"Info":   &types.AttributeValueMemberS{Value: info},
			},
			ConditionExpression: aws.String("attribute_not_exists(LockID)"),
		})
		return err
	}
	if err := lock(`{"ID":"a"}`); err != nil {
		t.Fatalf("first conditional PutItem: %v", err)
	}
	var ccf *types.ConditionalCheckFailedException
	if err := lock(`{"ID":"b"}`); !errors.As(err, &ccf) {
		t.Fatalf("second conditional PutItem: %v; want ConditionalCheckFailedException", err)
	}

	// A client that goes away in the middle of a request (killed, or its
	// request cancelled) must not take the server down.
	for range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(d.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nContent-Length: 1000\r\n\r\n{\"TableName\":")
		time.Sleep(50 * time.Millisecond) // let it start reading the body
		conn.(*net.TCPConn).SetLinger(0)  // a reset, as a killed process's socket gives
		conn.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("locks")}); err != nil {
		t.Fatalf("after clients went away mid-request: %v\n%s", err, d.Output())
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(d.URL()); err == nil {
		t.Error("dynalite still answers after Close")
	}
}
