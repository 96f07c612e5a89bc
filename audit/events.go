package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event kinds written by this package. Lock events (lock_acquired, ...) are
// written through Command.AppendAt and Command.Later by the pipeline.
const (
	KindSessionStart   = "session_start"
	KindSessionEnd     = "session_end"
	KindCommandStart   = "command_start"
	KindPolicyDecision = "policy_decision"
	KindCommandEnd     = "command_end"
)

// GenesisHash is the prev_hash of the first event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Event is one row of the append-only log.
type Event struct {
	Seq       int64           `json:"seq"`
	ID        string          `json:"id"`
	At        time.Time       `json:"at"`
	SessionID string          `json:"session_id"`
	CommandID string          `json:"command_id,omitempty"`
	Kind      string          `json:"kind"`
	StateKey  string          `json:"state_key,omitempty"`
	LockID    string          `json:"lock_id,omitempty"`
	Data      json.RawMessage `json:"data"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
	// Origin is the log_id of the log that wrote a pulled event, empty for
	// this log's own; OriginSeq is its seq there, which its hash covers.
	Origin    string `json:"origin,omitempty"`
	OriginSeq int64  `json:"origin_seq,omitempty"`
}

// canonical is the byte string a row's hash covers, after the previous hash:
// every column in order (seq, id, at in Unix nanoseconds, session_id,
// command_id, kind, state_key, lock_id, data), each as its decimal or exact
// stored bytes preceded by its length as a uvarint. Empty stands for NULL.
// Exact bytes: even white space inside data, or invalid UTF-8, is covered.
//
// A pulled event is hashed with its seq in its own log (OriginSeq).
func canonical(e *Event) []byte {
	return appendCanonical(nil, e.chainSeq(), e.ID, e.At.UnixNano(), e.SessionID, e.CommandID, e.Kind, e.StateKey, e.LockID, string(e.Data))
}

// appendCanonical appends canonical's bytes for these columns to b: one
// definition for rows being written (strings) and rows being verified
// (bytes as read, without copies).
func appendCanonical[T ~string | ~[]byte](b []byte, seq int64, id T, at int64, sessionID, commandID, kind, stateKey, lockID, data T) []byte {
	var num [20]byte
	b = appendField(b, strconv.AppendInt(num[:0], seq, 10))
	b = appendField(b, id)
	b = appendField(b, strconv.AppendInt(num[:0], at, 10))
	for _, f := range [...]T{sessionID, commandID, kind, stateKey, lockID, data} {
		b = appendField(b, f)
	}
	return b
}

func appendField[T ~string | ~[]byte](b []byte, f T) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// chainSeq is the seq the event's hash covers: its place in the log that
// wrote it.
func (e *Event) chainSeq() int64 {
	if e.Origin != "" {
		return e.OriginSeq
	}
	return e.Seq
}

func rowHash(prev string, e *Event) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canonical(e))
	return hex.EncodeToString(h.Sum(nil))
}

// pending is an event before it has a place in the chain.
type pending struct {
	at        time.Time
	sessionID string
	commandID string
	kind      string
	stateKey  string
	lockID    string
	data      any
}

// marshalData turns event data into compact JSON and redacts it. The
// redaction runs on the encoded bytes so that no field can slip past it.
func marshalData(data any, red *Redactor) (json.RawMessage, error) {
	if data == nil {
		return json.RawMessage(`{}`), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode event data: %w", err)
	}
	if red != nil {
		b = red.JSON(b)
	}
	return b, nil
}

// build turns pending events into rows (IDs, times, redacted data), not yet
// chained.
func (d *DB) build(red *Redactor, evs ...pending) ([]Event, error) {
	out := make([]Event, 0, len(evs))
	for _, p := range evs {
		data, err := marshalData(p.data, red)
		if err != nil {
			return nil, err
		}
		at := p.at
		if at.IsZero() {
			at = d.Now()
		}
		at = at.UTC()
		out = append(out, Event{
			ID:        newID(at),
			At:        at,
			SessionID: p.sessionID,
			CommandID: p.commandID,
			Kind:      p.kind,
			StateKey:  red.String(p.stateKey),
			LockID:    p.lockID,
			Data:      data,
		})
	}
	return out, nil
}

// inTx runs fn in one IMMEDIATE transaction (the DSN makes every
// transaction take the write lock at BEGIN, so the chain head it reads is
// still the head when it inserts).
func (d *DB) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.AfterCommit != nil {
		d.AfterCommit()
	}
	return nil
}

// append writes events in one transaction, chained after the current head.
func (d *DB) append(ctx context.Context, red *Redactor, evs ...pending) ([]Event, error) {
	out, err := d.build(red, evs...)
	if err != nil {
		return nil, err
	}
	err = d.inTx(ctx, "append to audit log", func(tx *sql.Tx) error { return chainAndInsert(ctx, tx, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// chainAndInsert gives events their sequence numbers and hashes after the
// head as it is inside tx, and inserts them. They chain after this log's
// own newest event; pulled rows after it only move seq on.
func chainAndInsert(ctx context.Context, tx *sql.Tx, evs []Event) error {
	var seq int64
	prev := GenesisHash
	err := tx.QueryRowContext(ctx, `SELECT hash FROM events WHERE origin IS NULL ORDER BY seq DESC LIMIT 1`).Scan(&prev)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read audit chain head: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return fmt.Errorf("read audit chain head: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events
		(seq, id, at, session_id, command_id, kind, state_key, lock_id, data, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append to audit log: %w", err)
	}
	defer stmt.Close()
	for i := range evs {
		e := &evs[i]
		seq++
		e.Seq = seq
		e.PrevHash = prev
		e.Hash = rowHash(prev, e)
		prev = e.Hash
		if _, err := stmt.ExecContext(ctx, e.Seq, e.ID, e.At.UnixNano(), e.SessionID, nullable(e.CommandID),
			e.Kind, nullable(e.StateKey), nullable(e.LockID), string(e.Data), e.PrevHash, e.Hash); err != nil {
			return fmt.Errorf("append %s event: %w", e.Kind, err)
		}
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const eventColumns = `seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data, prev_hash, hash, COALESCE(origin, ''), COALESCE(origin_seq, 0)`

func scanEvent(sc interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var at int64
	var data string
	if err := sc.Scan(&e.Seq, &e.ID, &at, &e.SessionID, &e.CommandID, &e.Kind, &e.StateKey, &e.LockID, &data, &e.PrevHash, &e.Hash, &e.Origin, &e.OriginSeq); err != nil {
		return e, err
	}
	e.At = time.Unix(0, at).UTC()
	e.Data = json.RawMessage(data)
	return e, nil
}

// Events calls fn for every event matching the filter, in chain order,
// streaming: the log is never loaded whole.
func (d *DB) Events(ctx context.Context, f EventFilter, fn func(Event) error) error {
	var where []string
	var args []any
	if f.SessionID != "" {
		where = append(where, "session_id = ?")
		args = append(args, f.SessionID)
	}
	if f.CommandID != "" {
		where = append(where, "command_id = ?")
		args = append(args, f.CommandID)
	}
	if len(f.Kinds) > 0 {
		where = append(where, "kind IN (?"+strings.Repeat(", ?", len(f.Kinds)-1)+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if f.LockID != "" {
		where = append(where, "lock_id = ?")
		args = append(args, f.LockID)
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.AfterSeq)
	}
	q := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq"
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("read audit event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	SessionID string
	CommandID string
	Kinds     []string
	LockID    string
	AfterSeq  int64
}
