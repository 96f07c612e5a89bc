package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// SessionInfo is what session_start records about the tfsh process.
type SessionInfo struct {
	Mode             string            `json:"mode"` // interactive, script, command, run
	User             string            `json:"user"`
	Host             string            `json:"host"`
	PID              int               `json:"pid"`
	PIDStart         string            `json:"pid_start,omitempty"` // process start time, to tell a reused PID apart
	PIDNS            string            `json:"pidns,omitempty"`     // PID namespace, so that PIDs are only judged where they mean something
	CWD              string            `json:"cwd"`
	TfshVersion      string            `json:"tfsh_version"`
	Terraform        string            `json:"terraform,omitempty"` // binary path
	TerraformName    string            `json:"terraform_name,omitempty"`
	TerraformVersion string            `json:"terraform_version,omitempty"`
	Args             []string          `json:"args,omitempty"` // tfsh's own argv, redacted
	CI               map[string]string `json:"ci,omitempty"`
}

// Session records one tfsh invocation. Methods are safe for concurrent use.
type Session struct {
	db    *DB
	ID    string
	Start time.Time
	info  SessionInfo

	mu  sync.Mutex
	red *Redactor // grows as commands learn secrets (AddSecrets)
}

// AddSecrets adds values to what everything the session stores from now on
// is redacted of: its later events, commands, output and session_end.
func (s *Session) AddSecrets(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.red = s.red.With(secrets...)
}

// Redactor is what the session's records are currently redacted of; the
// shell redacts the lines it keeps in history with it.
func (s *Session) Redactor() *Redactor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.red
}

// StartSession writes session_start, and in the same transaction closes the
// sessions on this host that crashed (see closeCrashed), returning them. The
// redactor applies to everything the session and its commands store;
// commands may add their own secrets.
func (d *DB) StartSession(ctx context.Context, info SessionInfo, red *Redactor) (*Session, []CrashedSession, error) {
	now := d.Now().UTC()
	s := &Session{db: d, ID: newID(now), Start: now, red: red, info: info}
	evs, err := d.build(red, pending{at: now, sessionID: s.ID, kind: KindSessionStart, data: info})
	if err != nil {
		return nil, nil, err
	}
	var crashed []CrashedSession
	err = d.inTx(ctx, "start audit session", func(tx *sql.Tx) error {
		if err := chainAndInsert(ctx, tx, evs); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO live_sessions (session_id, host, pid, pid_start, pidns, started_at) VALUES (?, ?, ?, ?, ?, ?)`,
			s.ID, info.Host, info.PID, info.PIDStart, info.PIDNS, now.UnixNano()); err != nil {
			return fmt.Errorf("start audit session: %w", err)
		}
		crashed, err = d.closeCrashed(ctx, tx, info.Host, info.PIDNS, s.ID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(crashed) > 0 {
		d.anchorHead(ctx, s.ID) // the crashed sessions' ends
	}
	return s, crashed, nil
}

// SessionEnd is what session_end records.
type SessionEnd struct {
	Status     string `json:"status"` // ok, failed, interrupted, crashed
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Commands   int    `json:"commands"`
}

// End writes session_end, then anchors it (DB.Anchors).
func (s *Session) End(ctx context.Context, end SessionEnd) error {
	now := s.db.Now().UTC()
	end.DurationMS = now.Sub(s.Start).Milliseconds()
	evs, err := s.db.build(s.Redactor(), pending{at: now, sessionID: s.ID, kind: KindSessionEnd, data: end})
	if err != nil {
		return err
	}
	err = s.db.inTx(ctx, "end audit session", func(tx *sql.Tx) error {
		if err := chainAndInsert(ctx, tx, evs); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM live_sessions WHERE session_id = ?`, s.ID)
		return err
	})
	if err != nil {
		return err
	}
	s.db.anchor(ctx, evs[0].Seq, evs[0].Hash, s.ID)
	return nil
}

// CommandInfo is what command_start records. Argv fields must already be
// structurally redacted (terraform.Invocation does that); the redactor is
// applied on top.
type CommandInfo struct {
	Line        string            `json:"line,omitempty"` // as typed, redacted; empty for tfsh run
	Typed       []string          `json:"typed"`          // argv as typed (after tokenizing)
	Run         []string          `json:"run,omitempty"`  // argv given to terraform, after policy
	Effective   []string          `json:"effective"`      // argv terraform sees after TF_CLI_ARGS*
	Subcommand  string            `json:"subcommand"`     // "apply", "state mv", or the unknown word
	Known       bool              `json:"known"`          // in tfsh's catalog
	WritesState bool              `json:"writes_state"`   //
	Locks       string            `json:"locks"`          // never, always, conditional, session
	Lock        *bool             `json:"lock,omitempty"` // effective -lock, if set
	LockFrom    string            `json:"lock_from,omitempty"`
	Workdir     string            `json:"workdir"`
	Workspace   string            `json:"workspace,omitempty"`
	Backend     string            `json:"backend,omitempty"`
	StateKey    string            `json:"-"`             // stored in the state_key column
	Env         map[string]string `json:"env,omitempty"` // TF_CLI_ARGS*, TF_WORKSPACE, ... (redacted)
	Interactive bool              `json:"interactive"`
	// Term is the terminal an interactive command ran on, as it was when
	// the command started; nil when it ran on pipes.
	Term      *TermInfo `json:"term,omitempty"`
	Terraform string    `json:"terraform,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// TermInfo is the terminal a command's output was drawn on: what a replay
// needs to draw it the same way.
type TermInfo struct {
	Cols int    `json:"cols"`
	Rows int    `json:"rows"`
	Type string `json:"type,omitempty"` // $TERM
}

// Decision is what policy_decision records.
type Decision struct {
	Action   string    `json:"action"` // allow, warn, confirm, require_reason, deny
	Rule     string    `json:"rule,omitempty"`
	Source   string    `json:"source,omitempty"`
	Message  string    `json:"message,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
	Added    []string  `json:"added,omitempty"`
	// Reason is what the person gave a require_reason rule; Confirmed
	// their answer to a confirm rule.
	Reason    string `json:"reason,omitempty"`
	Confirmed *bool  `json:"confirmed,omitempty"`
	// Refused says which asking rule was not satisfied, and why.
	Refused string `json:"refused,omitempty"`
	// Policy lists the policy files in effect: layer, path and SHA-256, so
	// that a reviewer knows which version of each decided.
	Policy []PolicyFile `json:"policy,omitempty"`
}

// PolicyFile is one policy file in effect for a decision.
type PolicyFile struct {
	Layer  string `json:"layer"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Finding is one rule that matched.
type Finding struct {
	Rule    string `json:"rule"`
	Source  string `json:"source"`
	Action  string `json:"action"`
	Message string `json:"message"`
}

// Command records one command line of a session.
type Command struct {
	s        *Session
	ID       string
	Start    time.Time
	stateKey string
	red      *Redactor

	mu            sync.Mutex
	out           *outputRecorder
	withheld      string
	withheldBytes byteCounter
	later         []pending // written with command_end
}

// Append writes an event of the session that belongs to no one command
// (an integrity check that spans several).
func (s *Session) Append(ctx context.Context, kind, stateKey, lockID string, data any) error {
	_, err := s.db.append(ctx, s.Redactor(), pending{at: s.db.Now().UTC(), sessionID: s.ID, kind: kind, stateKey: stateKey, lockID: lockID, data: data})
	return err
}

// AppendAt writes an event of the session that belongs to no command, at
// the time the fact happened (the zero time means now): what tfsh watch
// sees belongs to no command of its own.
func (s *Session) AppendAt(ctx context.Context, at time.Time, kind, stateKey, lockID string, data any) error {
	if at.IsZero() {
		at = s.db.Now()
	}
	_, err := s.db.append(ctx, s.red, pending{at: at.UTC(), sessionID: s.ID, kind: kind, stateKey: stateKey, lockID: lockID, data: data})
	return err
}

// StartCommand writes command_start and policy_decision in one transaction.
// secrets are added to the session's redactor for this command.
func (s *Session) StartCommand(ctx context.Context, info CommandInfo, dec Decision, secrets ...string) (*Command, error) {
	now := s.db.Now().UTC()
	red := s.Redactor().With(secrets...)
	c := &Command{s: s, ID: newID(now), Start: now, stateKey: info.StateKey, red: red}
	_, err := s.db.append(ctx, red,
		pending{at: now, sessionID: s.ID, commandID: c.ID, kind: KindCommandStart, stateKey: info.StateKey, data: info},
		pending{at: now, sessionID: s.ID, commandID: c.ID, kind: KindPolicyDecision, stateKey: info.StateKey, data: dec},
	)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AppendAt writes one more event about the command (lock events, hook
// results) at the time the fact happened (when a lock was seen), which may
// be a little before it is written. The zero time means now.
func (c *Command) AppendAt(ctx context.Context, at time.Time, kind, lockID string, data any) error {
	_, err := c.s.db.append(ctx, c.redactor(), pending{at: at, sessionID: c.s.ID, commandID: c.ID, kind: kind, stateKey: c.stateKey, lockID: lockID, data: data})
	return err
}

// AddSecrets adds values learned while the command runs (a line the user
// typed at one of terraform's prompts) to what the command's output and its
// later events are redacted of, and to the session's redactor, so that a
// later command that shows the value (output, console, a plan of the same
// variable) does not store it either. Output already written to the writers
// Output returned is redacted of them only if still held back: call
// AddSecrets before the output that may show them is written.
func (c *Command) AddSecrets(secrets ...string) {
	c.s.AddSecrets(secrets...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.red = c.red.With(secrets...)
	if c.out == nil {
		return
	}
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	for _, w := range c.out.writers {
		w.mu.Lock()
		w.red.r = c.red
		w.mu.Unlock()
	}
}

func (c *Command) redactor() *Redactor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.red
}

// Later queues an event to be written in the same transaction as
// command_end, just before it: for facts settled as the command ends (the
// lock after terraform exits), one commit instead of one per event.
func (c *Command) Later(at time.Time, kind, lockID string, data any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.later = append(c.later, pending{at: at, sessionID: c.s.ID, commandID: c.ID, kind: kind, stateKey: c.stateKey, lockID: lockID, data: data})
}

// CommandEnd is what command_end records.
type CommandEnd struct {
	Status       string `json:"status"` // ok, failed, refused, error, interrupted, unknown
	ExitCode     int    `json:"exit_code"`
	Signal       string `json:"signal,omitempty"`
	DurationMS   int64  `json:"duration_ms"`
	Error        string `json:"error,omitempty"`
	OutputSHA256 string `json:"output_sha256,omitempty"`
	OutputBytes  int64  `json:"output_bytes"`
	OutputChunks int    `json:"output_chunks"`
	// OutputWithheld says why the output was not stored (only its length).
	OutputWithheld string `json:"output_withheld,omitempty"`
	Reason         string `json:"reason,omitempty"`
	// Run is the argv terraform was last started with when it differs
	// from command_start's run: tfsh waited for the lock itself and gave
	// terraform -lock-timeout=0s, or what was left of the -lock-timeout at
	// a terminal (redacted).
	Run []string `json:"run,omitempty"`
	// Attempts is how many times terraform ran, when more than once: tfsh
	// ran it again after it lost the race for the lock (the lost runs'
	// output is in the record; it was held back from the user).
	Attempts int `json:"attempts,omitempty"`
}

// End flushes the recorded output and writes command_end with its digest.
// The output error, if any, is returned after command_end is written.
func (c *Command) End(ctx context.Context, end CommandEnd) error {
	c.mu.Lock()
	out, withheld, later := c.out, c.withheld, c.later
	c.later = nil
	c.mu.Unlock()
	var outErr error
	switch {
	case withheld != "":
		end.OutputWithheld = withheld
		end.OutputBytes = c.withheldBytes.n.Load()
	case out != nil:
		sum, n, chunks, err := out.close()
		end.OutputSHA256, end.OutputBytes, end.OutputChunks = sum, n, chunks
		outErr = err
	default:
		end.OutputSHA256 = hex.EncodeToString(sha256.New().Sum(nil))
	}
	now := c.s.db.Now().UTC()
	end.DurationMS = now.Sub(c.Start).Milliseconds()
	evs := append(later, pending{at: now, sessionID: c.s.ID, commandID: c.ID, kind: KindCommandEnd, stateKey: c.stateKey, data: end})
	if _, err := c.s.db.append(ctx, c.redactor(), evs...); err != nil {
		return err
	}
	if outErr != nil {
		return fmt.Errorf("record output: %w", outErr)
	}
	return nil
}

func newID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}
