package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ProcessStart returns an opaque token for when process pid started (the
// start time in clock ticks from /proc on Linux), or "" if unknown. Recorded
// with the pid, it tells a live session from a reused PID.
func ProcessStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// processAlive reports whether the process that wrote a session_start is
// still running on this host.
func processAlive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if start != "" {
		if now := ProcessStart(pid); now != "" && now != start {
			return false // the PID was reused
		}
	}
	return true
}

// CrashedSession is a session that StartSession found crashed and closed.
type CrashedSession struct {
	SessionID    string
	PID          int
	OpenCommands []string
	StateKey     string // of the last open command, for the orphan check
	// LockID is the lock the last open command was seen taking and not
	// seen releasing, if any: it may be orphaned.
	LockID string
}

// PIDNamespace identifies this process's PID namespace ("pid:[4026531836]"
// on Linux), or "" if unknown. Two containers may share a host name and an
// audit log, but a PID only means something inside its own namespace.
func PIDNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// closeCrashed finds sessions on this host and PID namespace that never
// wrote session_end and whose process is gone (tfsh was killed), and closes
// them: each open command gets command_end with status "unknown" and the
// digest of the output stored so far, and the session gets session_end with
// status "crashed", both naming the session that noticed. It runs inside
// StartSession's transaction, so two tfsh starting at once close a session
// only once.
func (d *DB) closeCrashed(ctx context.Context, tx *sql.Tx, host, pidns, byID string) ([]CrashedSession, error) {
	rows, err := tx.QueryContext(ctx, `SELECT session_id, pid, pid_start FROM live_sessions
		WHERE host = ? AND (pidns = ? OR pidns = '') AND session_id != ?`, host, pidns, byID)
	if err != nil {
		return nil, fmt.Errorf("check for crashed sessions: %w", err)
	}
	var crashed []CrashedSession
	for rows.Next() {
		var id, start string
		var pid int
		if err := rows.Scan(&id, &pid, &start); err != nil {
			rows.Close()
			return nil, err
		}
		if !processAlive(pid, start) {
			crashed = append(crashed, CrashedSession{SessionID: id, PID: pid})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(crashed) == 0 {
		return nil, nil
	}
	now := d.Now().UTC()
	var evs []Event
	for i := range crashed {
		c := &crashed[i]
		open, err := openCommands(ctx, tx, c.SessionID)
		if err != nil {
			return nil, err
		}
		for _, oc := range open {
			c.OpenCommands = append(c.OpenCommands, oc.id)
			c.StateKey = oc.stateKey
			if c.LockID, err = heldLock(ctx, tx, oc.id); err != nil {
				return nil, err
			}
			// Bring the output stored before the crash under the chain.
			sum, n, chunks, err := outputDigest(ctx, tx, oc.id)
			if err != nil {
				return nil, err
			}
			reason := "tfsh was killed while this command ran; session " + byID + " noticed"
			if c.LockID != "" {
				reason += "; it held lock " + c.LockID + ", which may be orphaned"
			}
			data, _ := json.Marshal(CommandEnd{Status: "unknown", ExitCode: -1,
				OutputSHA256: sum, OutputBytes: n, OutputChunks: chunks, Reason: reason})
			evs = append(evs, Event{ID: newID(now), At: now, SessionID: c.SessionID, CommandID: oc.id,
				Kind: KindCommandEnd, StateKey: oc.stateKey, Data: data})
		}
		data, _ := json.Marshal(map[string]any{
			"status": "crashed", "exit_code": -1, "detected_by": byID, "pid": c.PID, "open_commands": c.OpenCommands,
		})
		evs = append(evs, Event{ID: newID(now), At: now, SessionID: c.SessionID, Kind: KindSessionEnd, Data: data})
		if _, err := tx.ExecContext(ctx, `DELETE FROM live_sessions WHERE session_id = ?`, c.SessionID); err != nil {
			return nil, err
		}
	}
	if err := chainAndInsert(ctx, tx, evs); err != nil {
		return nil, err
	}
	return crashed, nil
}

// heldLock returns the ID of the last lock a command was seen taking and
// not seen releasing or leaving orphaned. The kinds are the lock package's
// event names (audit does not import lock).
func heldLock(ctx context.Context, tx *sql.Tx, commandID string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT a.lock_id FROM events a
		WHERE a.command_id = ? AND a.kind = 'lock_acquired' AND a.lock_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM events r WHERE r.command_id = a.command_id AND r.lock_id = a.lock_id
				AND r.kind IN ('lock_released', 'lock_orphaned'))
		ORDER BY a.seq DESC LIMIT 1`, commandID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the lock of command %s: %w", commandID, err)
	}
	return id, nil
}

type openCommand struct{ id, stateKey string }

func openCommands(ctx context.Context, tx *sql.Tx, sessionID string) ([]openCommand, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.command_id, COALESCE(c.state_key, '') FROM events c
		WHERE c.session_id = ? AND c.kind = ? AND NOT EXISTS (
			SELECT 1 FROM events e WHERE e.command_id = c.command_id AND e.kind = ?)
		ORDER BY c.seq`, sessionID, KindCommandStart, KindCommandEnd)
	if err != nil {
		return nil, fmt.Errorf("find open commands of %s: %w", sessionID, err)
	}
	defer rows.Close()
	var out []openCommand
	for rows.Next() {
		var oc openCommand
		if err := rows.Scan(&oc.id, &oc.stateKey); err != nil {
			return nil, err
		}
		out = append(out, oc)
	}
	return out, rows.Err()
}
