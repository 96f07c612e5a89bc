package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// LogID returns this log's random ID, created with the log (or by the
// migration that introduced it): what its events are known by in a shared
// table and in the logs that pull them. A copied file keeps the ID, so a
// copy must not ship alongside its original.
func (d *DB) LogID(ctx context.Context) (string, error) {
	var id string
	if err := d.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'log_id'`).Scan(&id); err != nil {
		return "", fmt.Errorf("read the audit log's ID: %w", err)
	}
	return id, nil
}

// OutputChunk is one stored chunk of a command's output, as stored:
// DEFLATE-compressed frames (Frames) of RawLen bytes.
type OutputChunk struct {
	CommandID string
	Seq       int
	StartNS   int64
	RawLen    int
	Frames    []byte
}

// ForeignHashError reports a pulled event whose hash does not cover its
// content: it was changed after its writer stored it.
type ForeignHashError struct {
	Origin    string
	OriginSeq int64
	ID        string
}

func (e *ForeignHashError) Error() string {
	return fmt.Sprintf("event %s (seq %d of log %s) does not match its hash: it was changed after its log wrote it; nothing of this batch was imported", e.ID, e.OriginSeq, e.Origin)
}

// Import adds events written by another log (origin, its log ID) and the
// output chunks of its commands, in one transaction. Each event keeps its
// ID, time, data and hashes, and its seq there as OriginSeq (Origin and
// Seq of evs are ignored: OriginSeq must be set). An event whose ID is
// already in the log is skipped, as is a chunk already stored: pulling
// twice adds nothing, and this log's own events coming back are skipped
// (all of them, when origin is this log's ID). An event whose hash does not
// match its content is an error (*ForeignHashError) and nothing is added.
func (d *DB) Import(ctx context.Context, origin string, evs []Event, chunks []OutputChunk) (added, skipped int, err error) {
	own, err := d.LogID(ctx)
	if err != nil {
		return 0, 0, err
	}
	if origin == "" {
		return 0, 0, errors.New("import audit events: no origin log ID")
	}
	if origin == own {
		return 0, len(evs), nil
	}
	for i := range evs {
		e := &evs[i]
		e.Origin = origin
		if e.OriginSeq <= 0 {
			return 0, 0, fmt.Errorf("import audit event %s of log %s: no seq", e.ID, origin)
		}
		if rowHash(e.PrevHash, e) != e.Hash {
			return 0, 0, &ForeignHashError{Origin: origin, OriginSeq: e.OriginSeq, ID: e.ID}
		}
	}
	err = d.inTx(ctx, "import audit events", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO events
			(id, at, session_id, command_id, kind, state_key, lock_id, data, prev_hash, hash, origin, origin_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("import audit events: %w", err)
		}
		defer stmt.Close()
		for i := range evs {
			e := &evs[i]
			r, err := stmt.ExecContext(ctx, e.ID, e.At.UnixNano(), e.SessionID, nullable(e.CommandID), e.Kind,
				nullable(e.StateKey), nullable(e.LockID), string(e.Data), e.PrevHash, e.Hash, origin, e.OriginSeq)
			if err != nil {
				return fmt.Errorf("import event %s of log %s: %w", e.ID, origin, err)
			}
			if n, _ := r.RowsAffected(); n == 1 {
				added++
			} else {
				skipped++
			}
		}
		cs, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO output_chunks (command_id, seq, start_ns, raw_len, frames) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("import output: %w", err)
		}
		defer cs.Close()
		for _, c := range chunks {
			if _, err := cs.ExecContext(ctx, c.CommandID, c.Seq, c.StartNS, c.RawLen, c.Frames); err != nil {
				return fmt.Errorf("import output chunk %d of command %s: %w", c.Seq, c.CommandID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return added, skipped, nil
}

// LocalEvents returns up to limit of this log's own events (not pulled
// ones) after seq, in order.
func (d *DB) LocalEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM events INDEXED BY events_local
		WHERE origin IS NULL AND seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CountLocalAfter counts this log's own events after seq.
func (d *DB) CountLocalAfter(ctx context.Context, after int64) (int64, error) {
	var n int64
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events INDEXED BY events_local WHERE origin IS NULL AND seq > ?`, after).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// OutputChunks returns a command's stored output chunks as stored.
func (d *DB) OutputChunks(ctx context.Context, commandID string) ([]OutputChunk, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, start_ns, raw_len, frames FROM output_chunks WHERE command_id = ? ORDER BY seq`, commandID)
	if err != nil {
		return nil, fmt.Errorf("read output of %s: %w", commandID, err)
	}
	defer rows.Close()
	var out []OutputChunk
	for rows.Next() {
		c := OutputChunk{CommandID: commandID}
		if err := rows.Scan(&c.Seq, &c.StartNS, &c.RawLen, &c.Frames); err != nil {
			return nil, fmt.Errorf("read output of %s: %w", commandID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ShipCursor is the seq of the newest own event the sink is known to hold
// (0 for none).
func (d *DB) ShipCursor(ctx context.Context, sink string) (int64, error) {
	var seq int64
	err := d.db.QueryRowContext(ctx, `SELECT seq FROM ship_cursor WHERE sink = ?`, sink).Scan(&seq)
	if err != nil && err != sql.ErrNoRows {
		return 0, fmt.Errorf("read ship cursor of %s: %w", sink, err)
	}
	return seq, nil
}

// AdvanceShipCursor records that the sink holds every own event up to
// seq. It never moves the cursor back: several processes may ship the
// same backlog at once.
func (d *DB) AdvanceShipCursor(ctx context.Context, sink string, seq int64) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO ship_cursor (sink, seq) VALUES (?, ?)
		ON CONFLICT (sink) DO UPDATE SET seq = MAX(seq, excluded.seq)`, sink, seq)
	if err != nil {
		return fmt.Errorf("advance ship cursor of %s: %w", sink, err)
	}
	return nil
}

// OriginResult is what Verify found of one other log's events.
type OriginResult struct {
	LogID  string `json:"log_id"`
	Events int64  `json:"events"`
	// FromSeq is the seq (in its log) of the first event held here; a
	// pull --since starts mid-chain, and that event's prev_hash is taken
	// as given. HeadSeq and Head are the newest held.
	FromSeq  int64  `json:"from_seq"`
	HeadSeq  int64  `json:"head_seq"`
	Head     string `json:"head"`
	Problems int    `json:"problems"`
	// Gaps are stretches of that log's chain not held here: a --state,
	// --session or --since pull fetches part of it. They are not
	// problems: what is held is checked, not that all of it is.
	Gaps []Gap `json:"gaps,omitempty"`
}

// Gap is a stretch of another log's chain missing here: the event at
// Before follows an event that is not held (After is the seq, in that log,
// of the last event held before it).
type Gap struct {
	After  int64 `json:"after"`
	Before int64 `json:"before"`
}

// commandEnded is a command_end whose output digest Verify checks.
type commandEnded struct {
	seq    int64
	id     string
	digest string
	origin string
}

// verifyOrigins checks the chain of every other log's events held here,
// each in its own seq order: each event's hash covers its content, and
// each follows the one before it. The first held event of an origin is
// taken as given.
func (d *DB) verifyOrigins(ctx context.Context, res *VerifyResult, ends *[]commandEnded) error {
	own, err := d.LogID(ctx)
	if err != nil {
		return err
	}
	res.LogID = own
	res.Origins = []OriginResult{}
	rows, err := d.db.QueryContext(ctx, `SELECT seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data, prev_hash, hash, origin, origin_seq
		FROM events INDEXED BY events_origin WHERE origin IS NOT NULL ORDER BY origin, origin_seq`)
	if err != nil {
		return fmt.Errorf("read pulled audit events: %w", err)
	}
	defer rows.Close()
	var (
		seq, at, oseq, prevOseq                                int64
		id, sessionID, commandID, kind, stateKey, lockID, data sql.RawBytes
		prevHash, hash, origin                                 sql.RawBytes
		buf, head                                              []byte
		sum                                                    [sha256.Size]byte
		hexSum                                                 [2 * sha256.Size]byte
		cur                                                    *OriginResult
	)
	commandEnd := []byte(KindCommandEnd)
	h := sha256.New()
	problem := func(p Problem) {
		p.Origin = cur.LogID
		cur.Problems++
		res.add(p)
	}
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &at, &sessionID, &commandID, &kind, &stateKey, &lockID, &data, &prevHash, &hash, &origin, &oseq); err != nil {
			return fmt.Errorf("read pulled audit event: %w", err)
		}
		if cur == nil || cur.LogID != string(origin) {
			res.Origins = append(res.Origins, OriginResult{LogID: string(origin), FromSeq: oseq})
			cur = &res.Origins[len(res.Origins)-1]
		} else if !bytes.Equal(prevHash, head) {
			// The event it follows is not the one before it here. If that
			// one is held at all, rows were put between or moved: a
			// problem. If it is not, the stretch was not pulled (or was
			// removed from this copy; a pull brings it back).
			var named int64
			err := d.db.QueryRowContext(ctx, `SELECT COALESCE(origin_seq, 0) FROM events WHERE hash = ?`, string(prevHash)).Scan(&named)
			switch {
			case err == sql.ErrNoRows:
				cur.Gaps = append(cur.Gaps, Gap{After: prevOseq, Before: oseq})
			case err != nil:
				return fmt.Errorf("read pulled audit events: %w", err)
			default:
				problem(Problem{Seq: seq, Kind: ProblemReordered, CommandID: string(commandID),
					Detail: fmt.Sprintf("event %d of log %s follows its event %d, not %d, the one before it here: rows were put between or moved", oseq, origin, named, prevOseq)})
			}
		}
		cur.Events++
		buf = appendCanonical(buf[:0], oseq, id, at, sessionID, commandID, kind, stateKey, lockID, data)
		h.Reset()
		h.Write(prevHash)
		h.Write(buf)
		hex.Encode(hexSum[:], h.Sum(sum[:0]))
		if !bytes.Equal(hexSum[:], hash) {
			problem(Problem{Seq: seq, Kind: ProblemEdited, CommandID: string(commandID),
				Detail: fmt.Sprintf("%s event (seq %d of log %s) content does not match its hash", kind, oseq, origin)})
		}
		if bytes.Equal(kind, commandEnd) {
			if digest := outputSHA256(data); digest != "" {
				*ends = append(*ends, commandEnded{seq: seq, id: string(commandID), digest: digest, origin: cur.LogID})
			}
		}
		head = append(head[:0], hash...)
		prevOseq = oseq
		cur.HeadSeq, cur.Head = oseq, string(hash)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pulled audit events: %w", err)
	}
	return nil
}
