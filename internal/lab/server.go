package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tfsh/tfsh/examples"
)

// What tfsh lab creates unless told otherwise.
const (
	DefaultBucket = "tfsh-lab"
	DefaultTable  = "tfsh-locks"
	DefaultKey    = "lab/terraform.tfstate"
)

// EnvLabDir overrides where tfsh lab keeps its state (DefaultDir).
const EnvLabDir = "TFSH_LAB_DIR"

// The files of a lab dir. The backend files are named after Backend.Name.
const (
	stateFile = "lab.json"
	logFile   = "lab.log"
	envFile   = "env.sh"
	lockFile  = "lab.lock"
)

// DefaultDir is where tfsh lab keeps its state file, log, environment and backend files:
// $TFSH_LAB_DIR, else $XDG_STATE_HOME/tfsh/lab, else ~/.local/state/tfsh/lab.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvLabDir); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tfsh", "lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home directory for the lab's state: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tfsh", "lab"), nil
}

// State describes a running lab: what its state file (lab.json, mode 0600) holds and what
// tfsh lab up, status and down print.
type State struct {
	Dir       string    `json:"dir"`
	PID       int       `json:"pid"` // the server process (tfsh lab serve)
	PIDStart  string    `json:"pid_start,omitempty"`
	StartedAt time.Time `json:"started_at"`
	Log       string    `json:"log"`

	S3URL  string `json:"s3_url"`
	Bucket string `json:"bucket"`

	// DynamoDB: URL, PID and Table when dynalite runs; DynamoDBMissing says why it does not
	// (and what to do) otherwise.
	DynamoDBURL      string `json:"dynamodb_url,omitempty"`
	DynamoDBPID      int    `json:"dynamodb_pid,omitempty"`
	DynamoDBPIDStart string `json:"dynamodb_pid_start,omitempty"`
	Table            string `json:"table,omitempty"`
	DynamoDBMissing  string `json:"dynamodb_missing,omitempty"`

	Key    string `json:"key"`
	Region string `json:"region"`

	// Env is what to export to run terraform against the lab, Unset what to remove (settings
	// that would send the backend elsewhere or to other credentials); EnvFile does both when
	// sourced.
	Env     []EnvVar `json:"env"`
	Unset   []string `json:"unset"`
	EnvFile string   `json:"env_file"`

	// Backends are the backend settings for the S3 backend, one per kind of binary, each also
	// written to its File for -backend-config=FILE.
	Backends []Backend `json:"backends"`
}

// EnvVar is one environment variable to export.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Backend is the settings of a `backend "s3" {}` block for the lab, for some binaries.
type Backend struct {
	Name    string `json:"name"`    // terraform-1.5, s3-dynamodb or s3-lockfile
	For     string `json:"for"`     // the binaries that read these settings
	Locking string `json:"locking"` // where the lock lives
	File    string `json:"file"`
	Config  string `json:"config"`
}

// backendTemplates are the lab examples' templates (examples/lab/*/*.tfbackend.tmpl) that tfsh
// lab renders: the very settings the tests run terraform 1.5.7 and OpenTofu 1.10.10 with.
var backendTemplates = []struct {
	name, path, forWhat, locking string
	dynamo                       bool
}{
	{"terraform-1.5", "lab/s3-dynamodb/terraform.tfbackend.tmpl",
		"terraform 1.5", "DynamoDB", true},
	{"s3-dynamodb", "lab/s3-dynamodb/tofu.tfbackend.tmpl",
		"OpenTofu >= 1.10, terraform >= 1.6", "DynamoDB", true},
	{"s3-lockfile", "lab/s3-lockfile/tofu.tfbackend.tmpl",
		"OpenTofu >= 1.10, terraform >= 1.10", "the S3 lockfile (<key>.tflock)", false},
}

// RenderBackends fills the lab examples' backend templates in for a lab, each to be written to
// dir/<name>.tfbackend. Without a DynamoDB URL, only the S3 lockfile settings are given: an S3
// backend without DynamoDB or a lockfile runs unlocked.
func RenderBackends(dir, s3URL, bucket, dynamoURL, table, key string) ([]Backend, error) {
	vars := map[string]string{"S3_ENDPOINT": s3URL, "BUCKET": bucket, "KEY": key,
		"DYNAMODB_ENDPOINT": dynamoURL, "TABLE": table}
	var out []Backend
	for _, t := range backendTemplates {
		if t.dynamo && dynamoURL == "" {
			continue
		}
		tmpl, err := examples.LabBackends.ReadFile(t.path)
		if err != nil {
			return nil, fmt.Errorf("lab backend template %s: %w", t.path, err)
		}
		var unknown []string
		body := os.Expand(string(stripHeader(tmpl)), func(k string) string {
			v, ok := vars[k]
			if !ok {
				unknown = append(unknown, k)
			}
			return v
		})
		if len(unknown) > 0 {
			return nil, fmt.Errorf("lab backend template %s: unknown placeholders %v", t.path, unknown)
		}
		file := filepath.Join(dir, t.name+".tfbackend")
		header := fmt.Sprintf("# tfsh lab: S3 backend settings for %s; the lock lives in %s.\n"+
			"# For a configuration with an empty backend \"s3\" {} block: init -backend-config=%s\n", t.forWhat, t.locking, file)
		out = append(out, Backend{Name: t.name, For: t.forWhat, Locking: t.locking, File: file, Config: header + body})
	}
	return out, nil
}

// stripHeader drops a template's leading comment lines (they explain the placeholders).
func stripHeader(b []byte) []byte {
	for len(b) > 0 && b[0] == '#' {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	return b
}

// labEnv is what to export for terraform to reach the lab with its fake credentials, and what
// to unset (as Env drops it).
func labEnv() ([]EnvVar, []string) {
	return []EnvVar{
			{"AWS_ACCESS_KEY_ID", AccessKeyID},
			{"AWS_SECRET_ACCESS_KEY", SecretAccessKey},
			{"AWS_REGION", Region},
			{"AWS_EC2_METADATA_DISABLED", "true"},
			{"CHECKPOINT_DISABLE", "1"},
		}, []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
			"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"}
}

// DynamoMissing tells why dynalite cannot run here, and what to do about it; "" when it can.
func DynamoMissing() string {
	const fix = "install Node.js >= 20 and run scripts/setup-lab.sh --only dynalite (or set " + EnvDynalite + " to dynalite's cli.js)"
	if _, err := FindDynalite(); err != nil {
		return fmt.Sprintf("dynalite is not installed (%v): %s", err, fix)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "node is not on PATH: " + fix
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return fmt.Sprintf("%s --version failed (%v): %s", node, err, fix)
	}
	ver := strings.TrimSpace(string(v))
	major, _, _ := strings.Cut(strings.TrimPrefix(ver, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		return fmt.Sprintf("node %s is too old for dynalite 4 (%s): %s", ver, node, fix)
	}
	return ""
}

// Options configure a lab server.
type Options struct {
	Dir    string // the lab dir (DefaultDir); created 0700
	Bucket string // default DefaultBucket
	Table  string // default DefaultTable
	Key    string // the state key the backend files name; default DefaultKey
}

func (o *Options) defaults() {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
}

// Server is a running lab: the S3 server in this process, dynalite as its child, and the
// lab dir's files that describe them.
type Server struct {
	state  State
	s3     *S3
	dynamo *Dynamo

	closeOnce sync.Once
	closeErr  error
}

// ErrRunning is returned by StartServer when the lab dir already has a live server.
var ErrRunning = errors.New("a lab is already running")

// StartServer starts a lab in this process: S3 with the bucket, and DynamoDB with the lock
// table when dynalite can run (State.DynamoDBMissing says why not otherwise). It then writes
// the backend files, the environment file and, last, the state file, which is the sign that
// the lab is ready. Close stops it and removes those files.
func StartServer(ctx context.Context, opts Options) (*Server, error) {
	opts.defaults()
	if opts.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	if st, err := ReadState(dir); err == nil && st != nil && st.Running() && st.PID != os.Getpid() {
		return nil, fmt.Errorf("%w in %s (pid %d)", ErrRunning, dir, st.PID)
	}
	srv := &Server{}
	st := &srv.state
	st.Dir, st.Log = dir, filepath.Join(dir, logFile)
	st.PID = os.Getpid()
	st.PIDStart, _ = processStart(st.PID)
	st.Key, st.Region = opts.Key, Region
	st.Env, st.Unset = labEnv()
	st.EnvFile = filepath.Join(dir, envFile)

	if srv.s3, err = StartS3(ctx); err != nil {
		return nil, err
	}
	if err := srv.s3.CreateBucket(ctx, opts.Bucket); err != nil {
		srv.Close()
		return nil, err
	}
	st.S3URL, st.Bucket = srv.s3.URL(), opts.Bucket

	if st.DynamoDBMissing = DynamoMissing(); st.DynamoDBMissing == "" {
		if srv.dynamo, err = StartDynamo(ctx); err != nil {
			srv.Close()
			return nil, err
		}
		if err := srv.dynamo.CreateLockTable(ctx, opts.Table); err != nil {
			srv.Close()
			return nil, err
		}
		st.DynamoDBURL, st.Table = srv.dynamo.URL(), opts.Table
		st.DynamoDBPID = srv.dynamo.PID()
		st.DynamoDBPIDStart, _ = processStart(st.DynamoDBPID)
	}

	if st.Backends, err = RenderBackends(dir, st.S3URL, st.Bucket, st.DynamoDBURL, st.Table, st.Key); err == nil {
		err = srv.writeFiles()
	}
	if err != nil {
		srv.Close()
		return nil, err
	}
	st.StartedAt = time.Now().UTC()
	if err := writeState(st); err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// State describes the running server.
func (s *Server) State() State { return s.state }

func (s *Server) writeFiles() error {
	var env strings.Builder
	env.WriteString("# tfsh lab: source this file (. " + s.state.EnvFile + ") to run terraform or tofu against the lab.\n")
	for _, v := range s.state.Env {
		fmt.Fprintf(&env, "export %s=%s\n", v.Name, v.Value)
	}
	fmt.Fprintf(&env, "unset %s\n", strings.Join(s.state.Unset, " "))
	if err := writeFileAtomic(s.state.EnvFile, []byte(env.String())); err != nil {
		return err
	}
	for _, b := range s.state.Backends {
		if err := writeFileAtomic(b.File, []byte(b.Config)); err != nil {
			return err
		}
	}
	return nil
}

// Close stops dynalite and the S3 server and removes the state, environment and backend files
// (the log stays). It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.state.Dir != "" {
			// The state file goes first: from then on the lab is down for everyone.
			if st, err := ReadState(s.state.Dir); err == nil && st != nil && st.PID == s.state.PID {
				removeFiles(st)
			}
		}
		if s.dynamo != nil {
			s.closeErr = s.dynamo.Close()
		}
		if s.s3 != nil {
			if err := s.s3.Close(); err != nil && s.closeErr == nil {
				s.closeErr = err
			}
		}
	})
	return s.closeErr
}

// ReadState reads the state file of the lab dir: nil and no error when there is none.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the lab's state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read the lab's state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.PID <= 0 {
		return nil, fmt.Errorf("read the lab's state %s: no server pid", filepath.Join(dir, stateFile))
	}
	return &st, nil
}

func writeState(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(st.Dir, stateFile), append(b, '\n'))
}

// writeFileAtomic writes a 0600 file by renaming a complete temporary one over it, so a reader
// never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// removeFiles removes what a lab server wrote to its dir, except the log.
func removeFiles(st *State) {
	os.Remove(filepath.Join(st.Dir, stateFile))
	os.Remove(st.EnvFile)
	for _, b := range st.Backends {
		os.Remove(b.File)
	}
}

// Running reports whether the server the state names is alive: its PID exists, is not a zombie,
// and (where the start time can be read) is the same process, not a reuse of the PID.
func (st *State) Running() bool { return alive(st.PID, st.PIDStart) }

func alive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	now, zombie := processStart(pid)
	if zombie {
		return false
	}
	return start == "" || now == "" || now == start
}

// Check asks the lab's servers whether they answer and have the bucket and table: nil errors
// when they do. dynamoErr is nil too when there is no DynamoDB.
func (st *State) Check(ctx context.Context) (s3Err, dynamoErr error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s3Client(st.S3URL).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(st.Bucket)}); err != nil {
		s3Err = fmt.Errorf("S3 %s, bucket %s: %w", st.S3URL, st.Bucket, err)
	}
	if st.DynamoDBURL != "" {
		if _, err := dynamoClient(st.DynamoDBURL).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(st.Table)}); err != nil {
			dynamoErr = fmt.Errorf("DynamoDB %s, table %s: %w", st.DynamoDBURL, st.Table, err)
		}
	}
	return s3Err, dynamoErr
}

// RemoveStale removes the files of a lab whose server is gone. It refuses while it runs.
func RemoveStale(st *State) error {
	if st.Running() {
		return fmt.Errorf("%w (pid %d)", ErrRunning, st.PID)
	}
	removeFiles(st)
	return nil
}

// Stop ends the lab server st names: SIGTERM, then waits for it to stop dynalite and S3 and
// exit; if it has not by the time ctx ends (give it a deadline: 10 s is plenty), it and its
// process group and dynalite are killed. Its files are removed either way. A server that is
// already gone only has its files removed.
func Stop(ctx context.Context, st *State) error {
	defer removeFiles(st)
	if !st.Running() {
		return nil
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop the lab server (pid %d): %w", st.PID, err)
	}
	if waitGone(ctx, st.PID, st.PIDStart) {
		return nil
	}
	// It did not stop in time: kill it, its group when it leads one (tfsh lab up starts it in
	// a session of its own), and dynalite.
	if pgid, err := syscall.Getpgid(st.PID); err == nil && pgid == st.PID {
		_ = syscall.Kill(-st.PID, syscall.SIGKILL)
	}
	_ = syscall.Kill(st.PID, syscall.SIGKILL)
	if alive(st.DynamoDBPID, st.DynamoDBPIDStart) {
		_ = syscall.Kill(-st.DynamoDBPID, syscall.SIGKILL)
		_ = syscall.Kill(st.DynamoDBPID, syscall.SIGKILL)
	}
	kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !waitGone(kctx, st.PID, st.PIDStart) {
		return fmt.Errorf("the lab server (pid %d) did not stop, even when killed", st.PID)
	}
	return fmt.Errorf("the lab server (pid %d) did not stop on SIGTERM: killed it (%w)", st.PID, ctx.Err())
}

// waitGone waits until the process is gone or ctx ends, and tells which.
func waitGone(ctx context.Context, pid int, start string) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for alive(pid, start) {
		select {
		case <-ctx.Done():
			return !alive(pid, start)
		case <-t.C:
		}
	}
	return true
}

// LockDir takes an exclusive lock on the lab dir (creating it 0700), so that two tfsh lab up
// or down in it do not start two servers or stop a starting one. unlock releases it.
func LockDir(ctx context.Context, dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock the lab dir: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another tfsh lab command is busy in %s: %w", dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
