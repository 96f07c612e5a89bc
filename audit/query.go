package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SessionSummary is one line of `tfsh audit sessions`.
type SessionSummary struct {
	ID       string      `json:"id"`
	Start    time.Time   `json:"start"`
	End      *time.Time  `json:"end,omitempty"`
	Status   string      `json:"status"` // running (or crashed, not yet noticed), ok, failed, crashed, ...
	ExitCode *int        `json:"exit_code,omitempty"`
	Info     SessionInfo `json:"session"`
	Commands int         `json:"commands"`
}

// CommandRecord is one command of a session as the log tells it.
type CommandRecord struct {
	ID       string      `json:"id"`
	Start    time.Time   `json:"start"`
	Info     CommandInfo `json:"command"`
	StateKey string      `json:"state_key,omitempty"`
	Decision *Decision   `json:"decision,omitempty"`
	End      *CommandEnd `json:"end,omitempty"`
	EndAt    *time.Time  `json:"end_at,omitempty"`
	// Events are the command's other events (lock events, hook results).
	Events []Event `json:"events,omitempty"`
}

// SessionRecord is a whole session.
type SessionRecord struct {
	SessionSummary
	CommandList []CommandRecord `json:"command_list"`
	// Events are the session's events that belong to no command: what
	// tfsh watch saw, integrity checks that span commands.
	Events []Event `json:"events,omitempty"`
}

// ErrNotFound is returned when no session or command matches.
var ErrNotFound = errors.New("not found")

// ResolveSession turns "last", a full ID or a unique ID prefix (case
// insensitive) into a session ID.
func (d *DB) ResolveSession(ctx context.Context, ref string) (string, error) {
	var ids []string
	var err error
	if ref == "last" || ref == "" {
		// The newest start, read from the end of the (kind, at) index.
		var id string
		err = d.db.QueryRowContext(ctx, `SELECT session_id FROM events WHERE kind = 'session_start' ORDER BY at DESC LIMIT 1`).Scan(&id)
		if err == nil {
			ids = []string{id}
		} else if err == sql.ErrNoRows {
			err = nil
		}
	} else {
		ids, err = d.sessionsLike(ctx, ref)
	}
	if err != nil {
		return "", err
	}
	switch {
	case len(ids) == 0:
		return "", fmt.Errorf("session %q: %w", ref, ErrNotFound)
	case len(ids) > 1:
		return "", fmt.Errorf("session %q is ambiguous: give more characters of the ID", ref)
	}
	return ids[0], nil
}

// Session reads one whole session.
func (d *DB) Session(ctx context.Context, id string) (*SessionRecord, error) {
	rec := &SessionRecord{}
	rec.ID = id
	rec.Status = "running"
	idx := map[string]int{}
	found := false
	err := d.Events(ctx, EventFilter{SessionID: id}, func(e Event) error {
		switch e.Kind {
		case KindSessionStart:
			found = true
			rec.Start = e.At
			_ = json.Unmarshal(e.Data, &rec.Info)
		case KindSessionEnd:
			t := e.At
			rec.End = &t
			var end struct {
				Status   string `json:"status"`
				ExitCode int    `json:"exit_code"`
			}
			_ = json.Unmarshal(e.Data, &end)
			rec.Status, rec.ExitCode = end.Status, &end.ExitCode
		case KindCommandStart:
			c := CommandRecord{ID: e.CommandID, Start: e.At, StateKey: e.StateKey}
			_ = json.Unmarshal(e.Data, &c.Info)
			idx[e.CommandID] = len(rec.CommandList)
			rec.CommandList = append(rec.CommandList, c)
			rec.Commands++
		default:
			if e.CommandID == "" {
				rec.Events = append(rec.Events, e)
				return nil
			}
			i, ok := idx[e.CommandID]
			if !ok {
				return nil
			}
			c := &rec.CommandList[i]
			switch e.Kind {
			case KindPolicyDecision:
				c.Decision = new(Decision)
				_ = json.Unmarshal(e.Data, c.Decision)
			case KindCommandEnd:
				c.End = new(CommandEnd)
				_ = json.Unmarshal(e.Data, c.End)
				t := e.At
				c.EndAt = &t
			default:
				c.Events = append(c.Events, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	return rec, nil
}
