package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// facts holds what one reading of the log (an Explain, a Timeline) has
// learnt about sessions and commands, so that each is read once, through
// its index.
type facts struct {
	d        *DB
	sessions map[string]*sessionFacts
	commands map[string]*commandFacts
	// horizon is the end of what the reading looks at (the range's end,
	// or now): an orphan nobody removed is told as lasting until then.
	horizon time.Time
}

func newFacts(d *DB) *facts {
	return &facts{d: d, sessions: map[string]*sessionFacts{}, commands: map[string]*commandFacts{}}
}

type sessionFacts struct {
	who string
	ci  *CIRun
}

type commandFacts struct {
	sessionID   string
	line        string
	subcommand  string
	lockTimeout string
	end         *CommandEnd
	endAt       time.Time
	// acquired are the locks the command was seen taking; met are the
	// locks it waited for or failed on (lock_wait, lock_contention).
	acquired []lockSeen
	met      []lockSeen
}

type lockSeen struct {
	at time.Time
	id string
}

// lockData is the part of a lock event's data explain and the timeline
// read.
type lockData struct {
	Info *struct {
		ID        string    `json:"ID"`
		Operation string    `json:"Operation"`
		Who       string    `json:"Who"`
		Created   time.Time `json:"Created"`
		Info      string    `json:"Info"`
	} `json:"info"`
	PID      int    `json:"pid"`
	HeldMS   int64  `json:"held_ms"`
	WaitedMS int64  `json:"waited_ms"`
	Ended    string `json:"ended"`
	Message  string `json:"message"`
	Source   string `json:"source"` // backend, inferred, output, watch
	// Since is when the watcher reckons the lock was taken.
	Since *time.Time `json:"since"`
	// force_unlock, hold_*
	Who     string `json:"who"`
	Reason  string `json:"reason"`
	Method  string `json:"method"`
	Expired bool   `json:"expired"`
	// integrity_check
	Verdict string `json:"verdict"`
}

func (f *facts) session(ctx context.Context, id string) (*sessionFacts, error) {
	if s, ok := f.sessions[id]; ok {
		return s, nil
	}
	s := &sessionFacts{}
	err := f.d.Events(ctx, EventFilter{SessionID: id, Kinds: []string{KindSessionStart}}, func(e Event) error {
		var info SessionInfo
		if json.Unmarshal(e.Data, &info) == nil {
			s.who = info.User + "@" + info.Host
			if p := info.CI["provider"]; p != "" {
				s.ci = &CIRun{Provider: p, RunID: info.CI["run_id"], Workflow: info.CI["workflow"], Job: info.CI["job"], Actor: info.CI["actor"], URL: info.CI["url"]}
			}
		}
		return nil
	})
	f.sessions[id] = s
	return s, err
}

func (f *facts) command(ctx context.Context, id string) (*commandFacts, error) {
	if c, ok := f.commands[id]; ok {
		return c, nil
	}
	c := &commandFacts{}
	err := f.d.Events(ctx, EventFilter{CommandID: id, Kinds: []string{KindCommandStart, KindCommandEnd, kindLockAcquired, kindLockWait, kindLockContention}}, func(e Event) error {
		c.sessionID = e.SessionID
		switch e.Kind {
		case KindCommandStart:
			var info CommandInfo
			if json.Unmarshal(e.Data, &info) == nil {
				c.line = info.Line
				if c.line == "" {
					c.line = strings.Join(info.Typed, " ")
				}
				c.subcommand = info.Subcommand
				c.lockTimeout = lockTimeout(info.Effective)
			}
		case kindLockAcquired:
			c.acquired = append(c.acquired, lockSeen{at: e.At, id: e.LockID})
		case kindLockWait, kindLockContention:
			c.met = append(c.met, lockSeen{at: e.At, id: e.LockID})
		case KindCommandEnd:
			c.end = new(CommandEnd)
			_ = json.Unmarshal(e.Data, c.end)
			c.endAt = e.At
		}
		return nil
	})
	f.commands[id] = c
	return c, err
}

// lockTimeout is the last -lock-timeout in argv (terraform's flags are
// last-wins), or "".
func lockTimeout(argv []string) string {
	v := ""
	for _, a := range argv {
		a = strings.TrimPrefix(a, "-")
		if rest, ok := strings.CutPrefix(a, "-lock-timeout="); ok {
			v = rest
		} else if rest, ok := strings.CutPrefix(a, "lock-timeout="); ok {
			v = rest
		}
	}
	return v
}

// party fills who ran a command.
func (f *facts) party(ctx context.Context, sessionID, commandID string) (Party, error) {
	p := Party{SessionID: sessionID, CommandID: commandID, Recorded: true}
	if commandID != "" {
		c, err := f.command(ctx, commandID)
		if err != nil {
			return p, err
		}
		p.Command = c.line
	}
	s, err := f.session(ctx, sessionID)
	if err != nil {
		return p, err
	}
	p.Who, p.CI = s.who, s.ci
	return p, nil
}

// live reports whether a session has not ended (running, or killed and not
// yet closed as crashed): one indexed lookup.
func (f *facts) live(ctx context.Context, sessionID string) (bool, error) {
	var n int
	err := f.d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE session_id = ? AND kind = '`+KindSessionEnd+`' LIMIT 1)`, sessionID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read the end of session %s: %w", sessionID, err)
	}
	return n == 0, nil
}

// nextAcquisition is when a lock other than lockID was next taken on the
// state after t (a hold counts), read through the state index; zero if
// none was before limit.
func (f *facts) nextAcquisition(ctx context.Context, stateKey, lockID string, t, limit time.Time) (time.Time, error) {
	if stateKey == "" {
		return time.Time{}, nil
	}
	q := `SELECT at FROM events WHERE state_key = ? AND at > ? AND +kind IN ('lock_acquired', 'hold_placed') AND COALESCE(lock_id, '') != ?`
	args := []any{stateKey, t.UnixNano(), lockID}
	if !limit.IsZero() {
		q += ` AND at < ?`
		args = append(args, limit.UnixNano())
	}
	var at int64
	err := f.d.db.QueryRowContext(ctx, q+` ORDER BY at LIMIT 1`, args...).Scan(&at)
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the next lock on %s: %w", stateKey, err)
	}
	return time.Unix(0, at).UTC(), nil
}
