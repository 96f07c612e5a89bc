package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
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

// SessionQuery selects sessions. Zero fields match everything; the filters
// combine with AND.
type SessionQuery struct {
	User string // the session's user, exactly
	Host string // the session's host, exactly
	// State: sessions with a command on this state key, exactly as
	// recorded (ResolveStateKey turns part of a key into one).
	State string
	// Command: sessions with a command whose words as typed, joined by
	// spaces ("apply -auto-approve"), or whose subcommand ("state mv")
	// match.
	Command *regexp.Regexp
	// Kinds: sessions with at least one event of any of these kinds.
	Kinds []string
	Since time.Time // started at or after
	Until time.Time // started before
	Limit int       // newest N; 0 means all
}

// Sessions lists the sessions that match q, oldest first (the newest Limit
// when Limit > 0).
func (d *DB) Sessions(ctx context.Context, q SessionQuery) ([]SessionSummary, error) {
	where := []string{`s.kind = 'session_start'`}
	var args []any
	if !q.Since.IsZero() {
		where = append(where, `s.at >= ?`)
		args = append(args, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		where = append(where, `s.at < ?`)
		args = append(args, q.Until.UnixNano())
	}
	if q.User != "" {
		where = append(where, `json_extract(s.data, '$.user') = ?`)
		args = append(args, q.User)
	}
	if q.Host != "" {
		where = append(where, `json_extract(s.data, '$.host') = ?`)
		args = append(args, q.Host)
	}
	if q.State != "" {
		where = append(where, `EXISTS (SELECT 1 FROM events c WHERE c.session_id = s.session_id AND c.kind = 'command_start' AND c.state_key = ?)`)
		args = append(args, q.State)
	}
	if len(q.Kinds) > 0 {
		where = append(where, `EXISTS (SELECT 1 FROM events k WHERE k.session_id = s.session_id AND k.kind IN (?`+strings.Repeat(", ?", len(q.Kinds)-1)+`))`)
		for _, k := range q.Kinds {
			args = append(args, k)
		}
	}
	if q.Command != nil {
		typed, err := d.matchingCommands(ctx, q.Command)
		if err != nil {
			return nil, err
		}
		if len(typed) == 0 {
			return nil, nil
		}
		where = append(where, `EXISTS (SELECT 1 FROM events c WHERE c.session_id = s.session_id AND c.kind = 'command_start'
			AND json_extract(c.data, '$.typed') IN (SELECT value FROM json_each(?)))`)
		args = append(args, jsonList(typed))
	}
	query := `SELECT s.session_id, s.at, s.data, e.at, e.data,
			(SELECT COUNT(*) FROM events c WHERE c.session_id = s.session_id AND c.kind = 'command_start')
		FROM events s
		LEFT JOIN events e ON e.session_id = s.session_id AND e.kind = 'session_end'
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY s.seq DESC`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []SessionSummary
	for rows.Next() {
		var s SessionSummary
		var start int64
		var data string
		var endAt sql.NullInt64
		var endData sql.NullString
		if err := rows.Scan(&s.ID, &start, &data, &endAt, &endData, &s.Commands); err != nil {
			return nil, err
		}
		s.Start = time.Unix(0, start).UTC()
		_ = json.Unmarshal([]byte(data), &s.Info)
		s.Status = "running"
		if endAt.Valid {
			t := time.Unix(0, endAt.Int64).UTC()
			s.End = &t
			var end struct {
				Status   string `json:"status"`
				ExitCode int    `json:"exit_code"`
			}
			_ = json.Unmarshal([]byte(endData.String), &end)
			s.Status = end.Status
			s.ExitCode = &end.ExitCode
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// commandText is what SessionQuery.Command matches: the words as typed,
// joined by spaces.
func commandText(typedJSON string) string {
	var typed []string
	_ = json.Unmarshal([]byte(typedJSON), &typed)
	return strings.Join(typed, " ")
}

// matchingCommands returns the distinct typed argv (as the JSON text
// command_start stores) of the commands whose line or subcommand re
// matches.
func (d *DB) matchingCommands(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT DISTINCT json_extract(data, '$.typed'), COALESCE(json_extract(data, '$.subcommand'), '')
		FROM events WHERE kind = 'command_start' AND json_extract(data, '$.typed') IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	defer rows.Close()
	var out []string
	seen := map[string]bool{}
	for rows.Next() {
		var typed, sub string
		if err := rows.Scan(&typed, &sub); err != nil {
			return nil, err
		}
		if !seen[typed] && (re.MatchString(commandText(typed)) || sub != "" && re.MatchString(sub)) {
			seen[typed] = true
			out = append(out, typed)
		}
	}
	return out, rows.Err()
}

func jsonList(vs []string) string {
	b, _ := json.Marshal(vs)
	return string(b)
}

// ResolveStateKey turns what the user gave for a state into a state key of
// the log: the key itself, or a part of it (a suffix, a path component, a
// bucket) that only one key contains. It is an error when none or several
// do, naming them.
func (d *DB) ResolveStateKey(ctx context.Context, s string) (string, error) {
	var one int
	err := d.db.QueryRowContext(ctx, `SELECT 1 FROM events WHERE state_key = ? LIMIT 1`, s).Scan(&one)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("look up state %q: %w", s, err)
	}
	keys, err := d.StateKeys(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, k := range keys {
		if strings.Contains(k, s) {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) == 0:
		return "", fmt.Errorf("no state in the audit log is %q or contains it", s)
	}
	shown := match
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(match) > len(shown) {
		more = fmt.Sprintf(", and %d more", len(match)-len(shown))
	}
	return "", fmt.Errorf("%q is part of %d states (%s%s): give more of the key", s, len(match), strings.Join(shown, ", "), more)
}

// StateKeys lists the distinct state keys of the log, in order.
func (d *DB) StateKeys(ctx context.Context) ([]string, error) {
	// A skip scan of the state_key index: one seek per key, not one step
	// per event.
	return d.distinct(ctx, `WITH RECURSIVE k(v) AS (
			SELECT MIN(state_key) FROM events WHERE state_key IS NOT NULL
			UNION ALL
			SELECT (SELECT MIN(state_key) FROM events WHERE state_key > k.v) FROM k WHERE k.v IS NOT NULL)
		SELECT v FROM k WHERE v IS NOT NULL`)
}

// Kinds lists the distinct event kinds of the log, in order.
func (d *DB) Kinds(ctx context.Context) ([]string, error) {
	return d.distinct(ctx, `WITH RECURSIVE k(v) AS (
			SELECT MIN(kind) FROM events
			UNION ALL
			SELECT (SELECT MIN(kind) FROM events WHERE kind > k.v) FROM k WHERE k.v IS NOT NULL)
		SELECT v FROM k WHERE v IS NOT NULL`)
}

func (d *DB) distinct(ctx context.Context, query string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
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
}

// ErrNotFound is returned when no session or command matches.
var ErrNotFound = errors.New("not found")

// ResolveSession turns "last", a full ID or a unique ID prefix (case
// insensitive) into a session ID.
func (d *DB) ResolveSession(ctx context.Context, ref string) (string, error) {
	var q string
	var args []any
	if ref == "last" || ref == "" {
		q = `SELECT session_id FROM events WHERE kind = 'session_start' ORDER BY seq DESC LIMIT 2`
	} else {
		q = `SELECT session_id FROM events WHERE kind = 'session_start' AND session_id LIKE ? ORDER BY seq DESC LIMIT 2`
		args = append(args, strings.ToUpper(ref)+"%")
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	switch {
	case len(ids) == 0:
		return "", fmt.Errorf("session %q: %w", ref, ErrNotFound)
	case len(ids) > 1 && ref != "last" && ref != "":
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
