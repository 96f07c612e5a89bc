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

	"github.com/oklog/ulid/v2"
)

// SessionQuery selects sessions. Zero fields match everything; the filters
// combine with AND, each about the session as a whole.
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
	Limit int       // the newest N (by start); 0 means all
}

// How Sessions searches (see docs/design.md, "Finding sessions"). Session
// IDs are ULIDs that begin with the session's start, so every index that
// ends in session_id yields a filter's sessions newest first, and a time
// window is a range of IDs. (Variables so that tests can take each path.)
var (
	// A filter that admits at most this many index rows drives the
	// search: its sessions are read, and the other filters checked on
	// each.
	driveMax = 20_000
	// When every filter admits more, the newest sessions are checked in
	// turn, this many at most, before the smallest filter drives the
	// search through the older ones.
	scanMax = 5_000
)

// sessionFilter is one filter of a query in two forms: cond, a condition
// on the session_start row s (a predicate, or an EXISTS on an index), and
// ids, a query of the session IDs it admits, from an index in session
// order. Both take args.
type sessionFilter struct {
	cond, ids string
	args      []any
	estimate  int
}

// Sessions lists the sessions that match q, oldest first: the newest
// q.Limit by start when q.Limit > 0.
func (d *DB) Sessions(ctx context.Context, q SessionQuery) ([]SessionSummary, error) {
	var fs []sessionFilter
	if q.User != "" {
		fs = append(fs, sessionFilter{
			cond: `json_extract(s.data, '$.user') = ?`,
			ids:  `SELECT session_id FROM events INDEXED BY events_session_user WHERE kind = 'session_start' AND json_extract(data, '$.user') = ?`,
			args: []any{q.User},
		})
	}
	if q.Host != "" {
		fs = append(fs, sessionFilter{
			cond: `json_extract(s.data, '$.host') = ?`,
			ids:  `SELECT session_id FROM events INDEXED BY events_session_host WHERE kind = 'session_start' AND json_extract(data, '$.host') = ?`,
			args: []any{q.Host},
		})
	}
	if q.State != "" {
		fs = append(fs, sessionFilter{
			cond: `EXISTS (SELECT 1 FROM events c INDEXED BY events_command_state
				WHERE c.kind = 'command_start' AND c.state_key = ? AND c.session_id = s.session_id)`,
			ids:  `SELECT session_id FROM events INDEXED BY events_command_state WHERE kind = 'command_start' AND state_key = ?`,
			args: []any{q.State},
		})
	}
	if len(q.Kinds) > 0 {
		in := `(?` + strings.Repeat(`, ?`, len(q.Kinds)-1) + `)`
		f := sessionFilter{
			cond: `EXISTS (SELECT 1 FROM events k INDEXED BY events_kind_session WHERE k.kind IN ` + in + ` AND k.session_id = s.session_id)`,
			ids:  `SELECT session_id FROM events INDEXED BY events_kind_session WHERE kind IN ` + in,
		}
		for _, k := range q.Kinds {
			f.args = append(f.args, k)
		}
		fs = append(fs, f)
	}
	if q.Command != nil {
		typed, err := d.matchingCommands(ctx, q.Command)
		if err != nil {
			return nil, err
		}
		if len(typed) == 0 {
			return nil, nil
		}
		fs = append(fs, sessionFilter{
			cond: `EXISTS (SELECT 1 FROM events c INDEXED BY events_kind_session
				WHERE c.kind = 'command_start' AND c.session_id = s.session_id
				AND json_extract(c.data, '$.typed') IN (SELECT value FROM json_each(?)))`,
			ids: `SELECT session_id FROM events INDEXED BY events_command_typed
				WHERE kind = 'command_start' AND json_extract(data, '$.typed') IN (SELECT value FROM json_each(?))`,
			args: []any{jsonList(typed)},
		})
	}
	ids, err := d.findSessions(ctx, q, fs)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return d.summaries(ctx, ids)
}

// window is a range of session IDs, [lo, hi); "" is open.
type window struct{ lo, hi string }

// idAt is the smallest ULID of time t's millisecond.
func idAt(t time.Time) string {
	var u ulid.ULID
	if err := u.SetTime(ulid.Timestamp(t)); err != nil {
		return ""
	}
	return u.String()
}

// where appends the window's conditions on column col.
func (w window) where(b *query, col string) {
	if w.lo != "" {
		b.add(` AND `+col+` >= ?`, w.lo)
	}
	if w.hi != "" {
		b.add(` AND `+col+` < ?`, w.hi)
	}
}

// query builds SQL and its arguments together.
type query struct {
	sql  strings.Builder
	args []any
}

func (b *query) add(s string, args ...any) {
	b.sql.WriteString(s)
	b.args = append(b.args, args...)
}

// findSessions returns the IDs of the newest sessions that match, newest
// first.
func (d *DB) findSessions(ctx context.Context, q SessionQuery, fs []sessionFilter) ([]string, error) {
	var w window
	if !q.Since.IsZero() {
		w.lo = idAt(q.Since)
	}
	if !q.Until.IsZero() {
		// IDs carry milliseconds: this range holds every session
		// started before Until, and the start is checked exactly.
		w.hi = idAt(q.Until.Add(time.Millisecond))
	}
	if len(fs) == 0 {
		return d.scanSessions(ctx, q, w, nil, q.Limit)
	}
	best := 0
	for i := range fs {
		var b query
		b.add(`SELECT COUNT(*) FROM (`+fs[i].ids, fs[i].args...)
		w.where(&b, "session_id")
		b.add(` LIMIT ?)`, driveMax+1)
		if err := d.db.QueryRowContext(ctx, b.sql.String(), b.args...).Scan(&fs[i].estimate); err != nil {
			return nil, err
		}
		if fs[i].estimate < fs[best].estimate {
			best = i
		}
	}
	if fs[best].estimate <= driveMax {
		return d.driveSessions(ctx, q, w, fs, best, q.Limit)
	}
	// Every filter admits many sessions, so matches are likely among the
	// newest: check those in turn, scanMax at most.
	if q.Limit == 0 {
		return d.scanSessions(ctx, q, w, fs, 0)
	}
	var b query
	b.add(`SELECT session_id FROM events INDEXED BY events_kind_session WHERE kind = 'session_start'`)
	w.where(&b, "session_id")
	b.add(` ORDER BY session_id DESC LIMIT 1 OFFSET ?`, scanMax-1)
	var edge string
	err := d.db.QueryRowContext(ctx, b.sql.String(), b.args...).Scan(&edge)
	if errors.Is(err, sql.ErrNoRows) {
		return d.scanSessions(ctx, q, w, fs, q.Limit) // fewer than scanMax in all
	}
	if err != nil {
		return nil, err
	}
	newest := w
	newest.lo = max(w.lo, edge)
	found, err := d.scanSessions(ctx, q, newest, fs, q.Limit)
	if err != nil || len(found) >= q.Limit {
		return found, err
	}
	// Few matches after all: the smallest filter drives the search
	// through the older sessions.
	older := w
	older.hi = edge
	rest, err := d.driveSessions(ctx, q, older, fs, best, q.Limit-len(found))
	return append(found, rest...), err
}

// scanSessions checks sessions newest first against every filter.
func (d *DB) scanSessions(ctx context.Context, q SessionQuery, w window, fs []sessionFilter, limit int) ([]string, error) {
	var b query
	b.add(`SELECT s.session_id FROM events s INDEXED BY events_kind_session WHERE s.kind = 'session_start'`)
	w.where(&b, "s.session_id")
	conds(&b, q, fs, -1)
	return d.sessionIDs(ctx, &b, limit)
}

// driveSessions reads the sessions filter fs[i] admits and checks the
// others on each.
func (d *DB) driveSessions(ctx context.Context, q SessionQuery, w window, fs []sessionFilter, i, limit int) ([]string, error) {
	var b query
	b.add(`SELECT s.session_id FROM events s INDEXED BY events_kind_session WHERE s.kind = 'session_start' AND s.session_id IN (`+fs[i].ids, fs[i].args...)
	w.where(&b, "session_id")
	b.add(`)`)
	w.where(&b, "s.session_id")
	conds(&b, q, fs, i)
	return d.sessionIDs(ctx, &b, limit)
}

// conds appends the exact start times and every filter but fs[skip].
func conds(b *query, q SessionQuery, fs []sessionFilter, skip int) {
	if !q.Since.IsZero() {
		b.add(` AND s.at >= ?`, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		b.add(` AND s.at < ?`, q.Until.UnixNano())
	}
	for j, f := range fs {
		if j != skip {
			b.add(` AND `+f.cond, f.args...)
		}
	}
}

func (d *DB) sessionIDs(ctx context.Context, b *query, limit int) ([]string, error) {
	b.add(` ORDER BY s.session_id DESC`)
	if limit > 0 {
		b.add(` LIMIT ?`, limit)
	}
	rows, err := d.db.QueryContext(ctx, b.sql.String(), b.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// summaries reads the sessions' starts, ends and command counts, oldest
// first.
func (d *DB) summaries(ctx context.Context, ids []string) ([]SessionSummary, error) {
	var out []SessionSummary
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		page, err := d.summaryPage(ctx, ids[:n])
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, page...)
		ids = ids[n:]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// summaryPage reads the summaries of ids, in their order.
func (d *DB) summaryPage(ctx context.Context, ids []string) ([]SessionSummary, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT s.session_id, s.at, s.data, e.at, e.data,
			(SELECT COUNT(*) FROM events c INDEXED BY events_kind_session WHERE c.kind = 'command_start' AND c.session_id = s.session_id)
		FROM events s INDEXED BY events_kind_session
		LEFT JOIN events e INDEXED BY events_kind_session ON e.kind = 'session_end' AND e.session_id = s.session_id
		WHERE s.kind = 'session_start' AND s.session_id IN (SELECT value FROM json_each(?))`, jsonList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[string]SessionSummary{}
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
		byID[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]SessionSummary, 0, len(ids))
	for _, id := range ids {
		if s, ok := byID[id]; ok {
			out = append(out, s)
		}
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

// matchingCommands returns the distinct argv as typed (the JSON text
// command_start stores) of the commands whose words or subcommand re
// matches. The distinct values are read from the index one seek each.
func (d *DB) matchingCommands(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `WITH RECURSIVE t(v) AS (
			SELECT MIN(json_extract(data, '$.typed')) FROM events INDEXED BY events_command_typed WHERE kind = 'command_start'
			UNION ALL
			SELECT (SELECT MIN(json_extract(data, '$.typed')) FROM events INDEXED BY events_command_typed
				WHERE kind = 'command_start' AND json_extract(data, '$.typed') > t.v)
			FROM t WHERE t.v IS NOT NULL)
		SELECT v, COALESCE((SELECT json_extract(data, '$.subcommand') FROM events INDEXED BY events_command_typed
				WHERE kind = 'command_start' AND json_extract(data, '$.typed') = t.v LIMIT 1), '')
		FROM t WHERE v IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typed, sub string
		if err := rows.Scan(&typed, &sub); err != nil {
			return nil, err
		}
		if re.MatchString(commandText(typed)) || sub != "" && re.MatchString(sub) {
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
