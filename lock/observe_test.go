package lock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// The test binary doubles as a process that holds a local state's fcntl
// lock (TestMain): the observer must never observe a lock held by its own
// process, whose locks closing any descriptor of the file would drop.
const holdEnv = "TFSH_LOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(holdLock(path))
	}
	os.Exit(m.Run())
}

func holdLock(path string) int {
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // hold until the test closes stdin
	return 0
}

// holder starts a process that holds path's fcntl lock until the test ends.
func holder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder: %q", line)
	}
	return cmd
}

func localRef(t *testing.T) (StateRef, string) {
	t.Helper()
	dir := t.TempDir()
	ref, err := Discover(dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return ref, ref.Key
}

func TestLocalObserver(t *testing.T) {
	ctx := context.Background()
	const infoJSON = `{"ID":"93c5d63a-82fe-b237-1427-341a963bde72","Operation":"OperationTypeApply","Info":"","Who":"bob@vm","Version":"1.5.7","Created":"2026-11-25T20:25:11.237442053Z","Path":"terraform.tfstate"}`

	t.Run("no state file is free", func(t *testing.T) {
		ref, _ := localRef(t)
		obs, _ := NewObserver(ctx, ref, nil)
		v := obs.Observe(ctx)[0]
		if v.Held || v.Err != nil || v.Stale != nil {
			t.Fatalf("view = %+v, want free", v)
		}
	})
	t.Run("held, with info and the holder's PID", func(t *testing.T) {
		ref, path := localRef(t)
		write(t, InfoPath(path), infoJSON)
		h := holder(t, path)
		obs, _ := NewObserver(ctx, ref, nil)
		v := obs.Observe(ctx)[0]
		if !v.Held || v.PID != h.Process.Pid || v.Info == nil || v.Info.ID != "93c5d63a-82fe-b237-1427-341a963bde72" || v.Info.Who != "bob@vm" {
			t.Fatalf("view = %+v (info %+v), want held by pid %d", v, v.Info, h.Process.Pid)
		}
		if !v.Info.Created.Equal(time.Date(2026, 11, 25, 20, 25, 11, 237442053, time.UTC)) {
			t.Fatalf("Created = %v", v.Info.Created)
		}
	})
	t.Run("held without info", func(t *testing.T) {
		ref, path := localRef(t)
		h := holder(t, path)
		obs, _ := NewObserver(ctx, ref, nil)
		v := obs.Observe(ctx)[0]
		if !v.Held || v.PID != h.Process.Pid || v.Info != nil || v.Err != nil {
			t.Fatalf("view = %+v, want held by %d without info", v, h.Process.Pid)
		}
	})
	t.Run("stale info is not a lock", func(t *testing.T) {
		ref, path := localRef(t)
		write(t, path, "{}")
		write(t, InfoPath(path), infoJSON)
		obs, _ := NewObserver(ctx, ref, nil)
		v := obs.Observe(ctx)[0]
		if v.Held || v.Stale == nil || v.Stale.ID == "" || v.Err != nil {
			t.Fatalf("view = %+v, want free with a stale info", v)
		}
	})
	t.Run("corrupt info while held is a problem, not a crash", func(t *testing.T) {
		ref, path := localRef(t)
		write(t, InfoPath(path), "{not json")
		holder(t, path)
		obs, _ := NewObserver(ctx, ref, nil)
		v := obs.Observe(ctx)[0]
		var ie *InfoError
		if !v.Held || !errors.As(v.Err, &ie) {
			t.Fatalf("view = %+v, want held with an InfoError", v)
		}
	})
	// One observer reads a held lock every 20 ms and keeps the record it
	// read while nothing changed: a record rewritten under the same holder,
	// with the same size and modification time, and the next holder's
	// record are read again.
	t.Run("a rewritten record is read again", func(t *testing.T) {
		ref, path := localRef(t)
		info := InfoPath(path)
		const idA, idB, idC = "aaaaaaaa-82fe-b237-1427-341a963bde72", "bbbbbbbb-82fe-b237-1427-341a963bde72", "cccccccc-82fe-b237-1427-341a963bde72"
		write(t, info, infoFor(idA))
		h := holder(t, path)
		obs, _ := NewObserver(ctx, ref, nil)
		for range 3 {
			if v := obs.Observe(ctx)[0]; !v.Held || v.PID != h.Process.Pid || v.Info == nil || v.Info.ID != idA {
				t.Fatalf("view = %+v (info %+v), want %s held by %d", v, v.Info, idA, h.Process.Pid)
			}
		}
		st, err := os.Stat(info)
		if err != nil {
			t.Fatal(err)
		}
		write(t, info, infoFor(idB))
		if err := os.Chtimes(info, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		if v := obs.Observe(ctx)[0]; v.Info == nil || v.Info.ID != idB {
			t.Fatalf("after the rewrite: view = %+v (info %+v), want %s", v, v.Info, idB)
		}
		h.Process.Kill()
		h.Wait()
		write(t, info, infoFor(idC))
		h2 := holder(t, path)
		if v := obs.Observe(ctx)[0]; v.PID != h2.Process.Pid || v.Info == nil || v.Info.ID != idC {
			t.Fatalf("next holder: view = %+v (info %+v), want %s held by %d", v, v.Info, idC, h2.Process.Pid)
		}
		os.Remove(info)
		if v := obs.Observe(ctx)[0]; v.Info != nil || v.Err != nil || !v.Held {
			t.Fatalf("record removed: view = %+v, want held without a record", v)
		}
	})
	t.Run("workspace and -state paths", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, ".terraform/environment"), "blue")
		ref, _ := Discover(dir, func(string) string { return "" })
		ws := filepath.Join(dir, "terraform.tfstate.d/blue/terraform.tfstate")
		if ref.Key != ws {
			t.Fatalf("Key = %s, want %s", ref.Key, ws)
		}
		h := holder(t, ws)
		obs, _ := NewObserver(ctx, ref, nil)
		if v := obs.Observe(ctx)[0]; v.PID != h.Process.Pid {
			t.Fatalf("workspace state view = %+v", v)
		}
		legacy := ref.WithStatePath("old.tfstate", "new.tfstate")
		if legacy.Key != filepath.Join(dir, "new.tfstate") {
			t.Fatalf("-state-out path = %s", legacy.Key)
		}
		all, err := obs.(Lister).List(ctx)
		if err != nil || len(all) != 2 || !all[1].Held || all[0].Held {
			t.Fatalf("List = %+v, %v; want the default state free and blue held", all, err)
		}
	})
}

// s3Ref is a StateRef for the S3 backend on the lab servers, as discovery
// reads it from .terraform/terraform.tfstate.
func s3Ref(t *testing.T, dyn *lab.Dynamo, srv *lab.S3, lockfile bool, tofuStyle bool) (StateRef, string, string) {
	t.Helper()
	ctx := context.Background()
	bucket := fmt.Sprintf("b-%d", time.Now().UnixNano())
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	table := ""
	cfg := map[string]any{"bucket": bucket, "key": "app/terraform.tfstate", "region": "us-east-1",
		"access_key": lab.AccessKeyID, "secret_key": lab.SecretAccessKey}
	if dyn != nil {
		table = fmt.Sprintf("t-%d", time.Now().UnixNano())
		if err := dyn.CreateLockTable(ctx, table); err != nil {
			t.Fatal(err)
		}
		cfg["dynamodb_table"] = table
	}
	if tofuStyle {
		eps := map[string]any{"s3": srv.URL()}
		if dyn != nil {
			eps["dynamodb"] = dyn.URL()
		}
		cfg["endpoints"], cfg["use_path_style"] = eps, true
	} else {
		cfg["endpoint"], cfg["force_path_style"] = srv.URL(), true
		if dyn != nil {
			cfg["dynamodb_endpoint"] = dyn.URL()
		}
	}
	if lockfile {
		cfg["use_lockfile"] = true
	}
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, ".terraform/terraform.tfstate"), map[string]any{"version": 3, "backend": map[string]any{"type": "s3", "config": cfg}})
	ref, err := Discover(dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return ref, bucket, table
}

func putItem(t *testing.T, dyn *lab.Dynamo, table, id string, attrs map[string]dtypes.AttributeValue) {
	t.Helper()
	item := map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: id}}
	for k, v := range attrs {
		item[k] = v
	}
	if _, err := dyn.Client().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func putObject(t *testing.T, srv *lab.S3, bucket, key, body string) {
	t.Helper()
	if _, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func infoFor(id string) string {
	return `{"ID":"` + id + `","Operation":"OperationTypeApply","Info":"","Who":"bob@ci","Version":"1.10.10","Created":"2026-11-25T20:25:11.237442053Z","Path":"x"}`
}

func TestS3Observers(t *testing.T) {
	dyn, srv := labtest.Dynamo(t), labtest.S3(t)
	ctx := context.Background()
	s := func(v string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: v} }

	t.Run("DynamoDB item, terraform 1.5 settings", func(t *testing.T) {
		ref, bucket, table := s3Ref(t, dyn, srv, false, false)
		obs, err := NewObserver(ctx, ref, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if v := obs.Observe(ctx); len(v) != 1 || v[0].Held || v[0].Err != nil {
			t.Fatalf("free: %+v", v)
		}
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s(infoFor("ID-1"))})
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate-md5", map[string]dtypes.AttributeValue{"Digest": s("abc")})
		v := obs.Observe(ctx)
		if len(v) != 1 || !v[0].Held || v[0].Info == nil || v[0].Info.ID != "ID-1" || v[0].Mechanism != DynamoDB {
			t.Fatalf("held: %+v", v)
		}
		all, err := obs.(Lister).List(ctx)
		if err != nil || len(all) != 1 || all[0].Info.ID != "ID-1" {
			t.Fatalf("List = %+v, %v: want the lock and not the -md5 digest item", all, err)
		}
	})
	t.Run("workspace key prefix", func(t *testing.T) {
		ref, bucket, table := s3Ref(t, dyn, srv, false, true)
		ref.Workspace = "stage"
		ref.Key = stateKey(ref)
		obs, _ := NewObserver(ctx, ref, func(string) string { return "" })
		putItem(t, dyn, table, bucket+"/env:/stage/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s(infoFor("WS"))})
		if v := obs.Observe(ctx); !v[0].Held || v[0].Info.ID != "WS" {
			t.Fatalf("workspace lock: %+v", v)
		}
	})
	t.Run("garbage Info is a problem", func(t *testing.T) {
		ref, bucket, table := s3Ref(t, dyn, srv, false, false)
		obs, _ := NewObserver(ctx, ref, func(string) string { return "" })
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s("{garbage")})
		v := obs.Observe(ctx)[0]
		var ie *InfoError
		if !v.Held || !errors.As(v.Err, &ie) {
			t.Fatalf("view = %+v, want held with an InfoError", v)
		}
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": &dtypes.AttributeValueMemberN{Value: "1"}})
		if v := obs.Observe(ctx)[0]; !errors.As(v.Err, &ie) {
			t.Fatalf("view = %+v, want an InfoError for a numeric Info", v)
		}
	})
	t.Run("both mechanisms, tofu settings", func(t *testing.T) {
		ref, bucket, table := s3Ref(t, dyn, srv, true, true)
		obs, _ := NewObserver(ctx, ref, func(string) string { return "" })
		if m := obs.Mechanisms(); len(m) != 2 {
			t.Fatalf("mechanisms = %v", m)
		}
		putObject(t, srv, bucket, "app/terraform.tfstate.tflock", infoFor("BOTH"))
		v := obs.Observe(ctx)
		if len(v) != 2 || v[0].Mechanism != S3Lockfile || !v[0].Held || v[0].Info.ID != "BOTH" || v[1].Held {
			t.Fatalf("views = %+v, want the lockfile held and the item free", v)
		}
		putItem(t, dyn, table, bucket+"/app/terraform.tfstate", map[string]dtypes.AttributeValue{"Info": s(infoFor("BOTH"))})
		putObject(t, srv, bucket, "other/x.tfstate.tflock", infoFor("OTHER"))
		all, err := obs.(Lister).List(ctx)
		if err != nil || len(all) != 3 {
			t.Fatalf("List = %+v, %v: want the item and both .tflock objects", all, err)
		}
	})
	t.Run("unreachable endpoint is a prompt problem", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ref, _, _ := s3Ref(t, dyn, srv, false, false)
		ref.Config["dynamodb_endpoint"] = "http://" + addr
		obs, _ := NewObserver(ctx, ref, func(string) string { return "" })
		v := obs.Observe(ctx)[0]
		if v.Err == nil || v.Held {
			t.Fatalf("view = %+v, want an error", v)
		}
	})
	t.Run("missing credentials is a problem", func(t *testing.T) {
		ref, _, _ := s3Ref(t, dyn, srv, false, false)
		delete(ref.Credentials, "access_key")
		delete(ref.Credentials, "secret_key")
		ref.Config["skip_metadata_api_check"] = "true"
		nowhere := filepath.Join(t.TempDir(), "none")
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
			t.Setenv(k, "")
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
		t.Setenv("AWS_CONFIG_FILE", nowhere)
		obs, err := NewObserver(ctx, ref, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		v := obs.Observe(ctx)[0]
		if v.Err == nil || !strings.Contains(v.Err.Error(), "credentials") {
			t.Fatalf("view = %+v, want a credentials problem", v)
		}
		t.Logf("credentials problem reported after %v: %v", time.Since(start).Round(time.Millisecond), v.Err)
	})
	t.Run("no lock configured", func(t *testing.T) {
		ref, _, _ := s3Ref(t, nil, srv, false, false)
		_, err := NewObserver(ctx, ref, func(string) string { return "" })
		var ue *UnsupportedError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want UnsupportedError (terraform takes no lock)", err)
		}
	})
}

func TestUnsupportedBackends(t *testing.T) {
	for _, b := range []string{"gcs", "azurerm", "pg", "consul", "http", "kubernetes", "remote", "cloud", ""} {
		_, err := NewObserver(context.Background(), StateRef{Backend: b}, nil)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "output only") {
			t.Fatalf("%q: err = %v, want an UnsupportedError saying facts come from the output only", b, err)
		}
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(b))
}

func TestAWSProblemKeepsSecretsOut(t *testing.T) {
	leak := errors.New(`operation error DynamoDB: GetItem, get identity: get credentials: failed to refresh cached credentials, process provider error: parse failed of process output: warning {"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"TOPSECRETVALUE"}`)
	if got := awsProblem(leak).Error(); strings.Contains(got, "TOPSECRET") || strings.Contains(got, "AKIAEXAMPLE") {
		t.Fatalf("awsProblem kept the secret: %s", got)
	}
	other := errors.New(`some provider failed: parse failed of process output: {"SecretAccessKey":"TOPSECRETVALUE"}`)
	if got := awsProblem(other).Error(); strings.Contains(got, "TOPSECRET") {
		t.Fatalf("awsProblem kept the secret: %s", got)
	}
}
