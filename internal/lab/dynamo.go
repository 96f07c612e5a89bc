package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// dynamoStartTimeout bounds one start of dynalite when the caller's context has no deadline.
const dynamoStartTimeout = 15 * time.Second

// Dynamo is an in-memory DynamoDB server (dynalite, on Node) on a loopback port, run as a child
// process in its own process group.
type Dynamo struct {
	cmd     *exec.Cmd
	url     string
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // valid after exited is closed
	output  *tailBuffer

	closeOnce sync.Once
}

// StartDynamo starts dynalite (found by FindDynalite, run by node from PATH) on 127.0.0.1 on a
// free port, in memory, and returns once it listens. Close stops it and its process group.
func StartDynamo(ctx context.Context) (*Dynamo, error) {
	cli, err := FindDynalite()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("lab dynamo: node (>= 20) is needed to run dynalite: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dynamoStartTimeout)
		defer cancel()
	}
	// The port is chosen here and handed to dynalite (it has no "pick a free port" mode), so
	// another process can take it in between; then dynalite exits and we try another port.
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort(ctx)
		if err != nil {
			return nil, err
		}
		d, err := startDynalite(ctx, node, cli, port)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !errors.Is(err, errDynaliteExited) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

var errDynaliteExited = errors.New("dynalite exited before it listened")

// dynaliteGuard is loaded into node before dynalite (--require). dynalite
// throws from a request's "error" handler, so a client that goes away in
// the middle of a request (a process killed, a request cancelled when the
// lock it polled was freed) takes the whole server down with "Error:
// aborted" (ECONNRESET); the lab's clients do that routinely. The guard
// logs those and goes on; any other uncaught error still ends dynalite.
const dynaliteGuard = `process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'aborted')) {
    console.error('tfsh lab: a client went away in the middle of a request (' + (err.code || err.message) + '); dynalite goes on');
    return;
  }
  console.error(err);
  process.exit(1);
});
`

// guardFile writes dynaliteGuard to a file of its own (named by its
// content, so concurrent labs share it) and returns its path.
func guardFile() (string, error) {
	sum := sha256.Sum256([]byte(dynaliteGuard))
	path := filepath.Join(os.TempDir(), "tfsh-dynalite-guard-"+hex.EncodeToString(sum[:6])+".js")
	if b, err := os.ReadFile(path); err == nil && string(b) == dynaliteGuard {
		return path, nil
	}
	f, err := os.CreateTemp(os.TempDir(), ".tfsh-dynalite-guard-*")
	if err != nil {
		return "", fmt.Errorf("lab dynamo: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(dynaliteGuard); err != nil {
		f.Close()
		return "", fmt.Errorf("lab dynamo: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("lab dynamo: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("lab dynamo: %w", err)
	}
	return path, nil
}

func startDynalite(ctx context.Context, node, cli string, port int) (*Dynamo, error) {
	guard, err := guardFile()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "--require", guard, cli,
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(port),
		// Tables are ACTIVE at once instead of after dynalite's default 500 ms.
		"--createTableMs", "0",
		"--deleteTableMs", "0",
		"--updateTableMs", "0",
	)
	cmd.SysProcAttr = childProcAttr()
	out := &tailBuffer{max: 8 << 10}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab dynamo: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab dynamo: start %s %s: %w", node, cli, err)
	}
	d := &Dynamo{
		cmd:    cmd,
		url:    "http://127.0.0.1:" + strconv.Itoa(port),
		exited: make(chan struct{}),
		output: out,
	}
	listening := make(chan struct{})
	go func() {
		// dynalite prints "Dynalite listening at: http://127.0.0.1:PORT" from its listen
		// callback, i.e. once it accepts connections. Keep draining afterwards.
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if !signalled && strings.Contains(line, "listening at") {
				signalled = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	select {
	case <-listening:
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("lab dynamo: %w (port %d): %v; output:\n%s", errDynaliteExited, port, d.waitErr, out.String())
	case <-ctx.Done():
		_ = d.Close()
		return nil, fmt.Errorf("lab dynamo: waiting for dynalite to listen on port %d: %w; output:\n%s", port, ctx.Err(), out.String())
	}
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("lab dynamo: finding a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// URL is the server's endpoint, http://127.0.0.1:PORT.
func (d *Dynamo) URL() string { return d.url }

// PID is dynalite's process ID (the leader of its process group).
func (d *Dynamo) PID() int { return d.cmd.Process.Pid }

// Client returns a DynamoDB client for this server: fake static credentials, region us-east-1.
func (d *Dynamo) Client() *dynamodb.Client { return dynamoClient(d.url) }

func dynamoClient(url string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(url),
	})
}

// CreateLockTable creates a table the S3 backend can lock in (hash key LockID, a string, as
// terraform and tofu expect) and waits until it is ACTIVE.
func (d *Dynamo) CreateLockTable(ctx context.Context, name string) error {
	c := d.Client()
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("LockID"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("LockID"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("lab dynamo: create table %q: %w", name, err)
	}
	for {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("lab dynamo: describe table %q: %w", name, err)
		}
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab dynamo: waiting for table %q: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Output returns the last few KiB dynalite printed, for error messages.
func (d *Dynamo) Output() string { return d.output.String() }

// Close kills dynalite's whole process group and waits for it. It is safe to call more than once.
func (d *Dynamo) Close() error {
	d.closeOnce.Do(func() {
		if pid := d.cmd.Process.Pid; pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = d.cmd.Process.Kill()
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
		}
	})
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
