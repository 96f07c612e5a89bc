package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Mechanism names where a lock lives.
type Mechanism string

// The lock mechanisms tfsh can read.
const (
	Local      Mechanism = "local"       // fcntl lock on the state file, .lock.info beside it
	DynamoDB   Mechanism = "dynamodb"    // the S3 backend's DynamoDB item
	S3Lockfile Mechanism = "s3-lockfile" // the S3 backend's <key>.tflock object
)

// View is what one mechanism shows at one moment.
type View struct {
	Mechanism Mechanism `json:"mechanism"`
	// Where names the record: the state file, dynamodb://table/LockID or
	// s3://bucket/key.tflock.
	Where string    `json:"where"`
	At    time.Time `json:"at"`
	Held  bool      `json:"held"`
	// Info is the holder's LockInfo; nil when held without readable
	// metadata (a local lock whose .lock.info is not written yet).
	Info *Info `json:"info,omitempty"`
	// PID is the local holder's process ID (from F_GETLK); 0 elsewhere.
	PID int `json:"pid,omitempty"`
	// Stale is a local .lock.info with no process holding the lock: what a
	// killed terraform left behind. It is not a lock.
	Stale *Info `json:"stale,omitempty"`
	// Err is an observation problem: unreachable, denied, unreadable
	// record. Held and Info are then unknown.
	Err error `json:"-"`
}

// Observer reads a state's lock where it lives. It never takes, holds or
// removes the lock.
type Observer interface {
	// Observe returns one View per mechanism. It returns when ctx is done
	// at the latest; problems are in View.Err, never a panic.
	Observe(ctx context.Context) []View
	// Mechanisms lists what Observe reads.
	Mechanisms() []Mechanism
}

// UnsupportedError says tfsh cannot read a backend's locks: lock facts then
// come from terraform's output only.
type UnsupportedError struct {
	Backend string
	Reason  string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("tfsh cannot read locks of the %s backend (%s): lock facts come from terraform's output only", e.Backend, e.Reason)
}

// NewObserver returns the observer for ref's backend: local state, or S3
// with DynamoDB and/or the S3 lockfile. Endpoints and credentials come from
// the backend configuration, then the AWS SDK's own chain. It does not
// contact any server.
func NewObserver(ctx context.Context, ref StateRef, getenv Getenv) (Observer, error) {
	switch ref.Backend {
	case "local":
		def := ref
		def.Workspace = "default"
		wsDir := ref.Config["workspace_dir"]
		if wsDir == "" {
			wsDir = "terraform.tfstate.d"
		}
		if !filepath.IsAbs(wsDir) {
			wsDir = filepath.Join(ref.Dir, wsDir)
		}
		return &localObserver{path: ref.Key, defaultPath: stateKey(def), workspaceDir: wsDir}, nil
	case "s3":
		o, err := newS3Observer(ctx, ref, getenv)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return o, nil
	case "":
		return nil, &UnsupportedError{Backend: "unknown", Reason: "no backend found"}
	case "remote", "cloud":
		return nil, &UnsupportedError{Backend: ref.Backend, Reason: "HCP Terraform keeps its locks behind its API"}
	default:
		return nil, &UnsupportedError{Backend: ref.Backend, Reason: "no observer for this backend yet"}
	}
}

// localObserver reads a local state's fcntl lock and its .lock.info.
type localObserver struct {
	path         string // the state file whose lock is watched
	defaultPath  string // the default workspace's state, for List
	workspaceDir string // where other workspaces' states live, for List

	// The .lock.info last read, kept while neither it (its stat) nor the
	// lock's holder changed: a held lock is read every 20 ms, and its
	// record does not change while it is held.
	mu     sync.Mutex
	cached struct {
		ok    bool
		stamp infoStamp
		pid   int
		held  bool
		info  *Info
		err   error
	}
}

func (o *localObserver) Mechanisms() []Mechanism { return []Mechanism{Local} }

// InfoPath is where terraform writes a local state's lock metadata:
// .<statefile>.lock.info beside the state file (reference §5).
func InfoPath(statePath string) string {
	dir, name := filepath.Split(statePath)
	return filepath.Join(dir, "."+name+".lock.info")
}

// readInfo reads the .lock.info and what it says, or returns what it said
// last time when neither the file nor the holder changed since.
func (o *localObserver) readInfo(pid int, held bool) (*Info, error) {
	path := InfoPath(o.path)
	stamp, exists, err := statInfo(path)
	if err != nil || !exists {
		return interpretInfo(path, nil, err, held)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	c := &o.cached
	if !c.ok || c.stamp != stamp || c.pid != pid || c.held != held {
		// Read after the stat: if the file changes between the two, the
		// next stat differs from the one kept here and reads it again.
		data, err := os.ReadFile(path)
		c.ok = err == nil || errors.Is(err, os.ErrNotExist)
		c.stamp, c.pid, c.held = stamp, pid, held
		c.info, c.err = interpretInfo(path, data, err, held)
	}
	if c.info == nil {
		return nil, c.err
	}
	info := *c.info // the caller's own
	return &info, c.err
}

// interpretInfo is what a .lock.info's content (or the failure to read it)
// says, for a lock held or not.
func interpretInfo(path string, data []byte, rerr error, held bool) (*Info, error) {
	switch {
	case errors.Is(rerr, os.ErrNotExist):
		return nil, nil // removed between the stat and the read
	case rerr != nil:
		if held {
			return nil, fmt.Errorf("read %s: %w", path, rerr)
		}
		return nil, nil // only a leftover would have been unreadable
	case len(strings.TrimSpace(string(data))) == 0:
		return nil, nil // terraform has created the file and is about to write it
	}
	info, err := ParseInfo(path, data)
	if err != nil {
		if held {
			return nil, err
		}
		// A corrupt leftover with no holder is still only a leftover.
		return &Info{Info: "unreadable: " + err.Error()}, nil
	}
	return info, nil
}

func (o *localObserver) Observe(ctx context.Context) []View {
	v := View{Mechanism: Local, Where: o.path, At: time.Now()}
	pid, held, err := fcntlHolder(o.path)
	if err != nil {
		v.Err = fmt.Errorf("read the lock on %s: %w", o.path, err)
		return []View{v}
	}
	v.Held, v.PID = held, pid
	info, err := o.readInfo(pid, held)
	v.Err = err
	if held {
		v.Info = info
	} else {
		v.Stale = info
	}
	return []View{v}
}
