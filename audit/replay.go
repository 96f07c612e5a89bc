package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ReplayTarget is what a replay plays back: a whole session, or one command
// of it.
type ReplayTarget struct {
	SessionID string
	CommandID string // empty: the whole session
}

// ReplayKind says what a ReplayItem is.
type ReplayKind int

const (
	// ReplaySession is always the first item: the session, with what a
	// player needs before anything is shown (Session).
	ReplaySession ReplayKind = iota + 1
	// ReplayCommand is a command starting (Command; Event is its
	// command_start).
	ReplayCommand
	// ReplayOutput is one frame of a command's output (Frame).
	ReplayOutput
	// ReplayEvent is any other event (Event): the command's policy
	// decision, lock events, hook runs and command_end; the session's own
	// events (integrity_check, session_end). The player decides what to
	// show.
	ReplayEvent
)

func (k ReplayKind) String() string {
	switch k {
	case ReplaySession:
		return "session"
	case ReplayCommand:
		return "command"
	case ReplayOutput:
		return "output"
	case ReplayEvent:
		return "event"
	}
	return fmt.Sprintf("ReplayKind(%d)", int(k))
}

// ReplayItem is one thing a replay shows, in time order.
type ReplayItem struct {
	Kind ReplayKind
	// At is when it happened, as recorded. Offset is its time from the
	// start of the replay (the session's start, or the command's); it
	// never decreases from one item to the next, even where At does (a
	// frame of stderr written while one of stdout was, the end of a
	// crashed command written by the tfsh that noticed it).
	At     time.Time
	Offset time.Duration
	// Session is set on every item.
	Session *ReplayHeader
	// Command is the command the item belongs to; nil for the session's
	// own items.
	Command *ReplayedCommand
	// Frame is set on ReplayOutput items. Its Data is valid only during
	// the call: copy what must outlive it.
	Frame Frame
	// Event is set on ReplayCommand and ReplayEvent items.
	Event Event
}

// ReplayHeader is what a player needs to know before the first item.
type ReplayHeader struct {
	ID    string // the session
	Start time.Time
	Info  SessionInfo
	// From is where the replay starts: the session's start, or the
	// command's.
	From time.Time
	// Commands is the number of commands replayed; Of the session's.
	Commands, Of int
	// Term is the largest terminal any replayed command was drawn on
	// (columns and rows each at their largest), nil when none recorded one.
	Term *TermInfo
	// Command is the command replayed, when the target is one command.
	Command *ReplayedCommand
}

// ReplayedCommand is a command as a replay shows it.
type ReplayedCommand struct {
	ID       string
	N        int // 1 for the session's first command
	Start    time.Time
	Info     CommandInfo
	StateKey string
}

// ResolveCommand turns a full command ID or a unique ID prefix (case
// insensitive) into a command ID.
func (d *DB) ResolveCommand(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("command %q: %w", ref, ErrNotFound)
	}
	ids, err := d.commandsLike(ctx, ref)
	if err != nil {
		return "", err
	}
	switch {
	case len(ids) == 0:
		return "", fmt.Errorf("command %q: %w", ref, ErrNotFound)
	case len(ids) > 1:
		return "", fmt.Errorf("command %q is ambiguous: give more characters of the ID", ref)
	}
	return ids[0], nil
}

// commandsLike and sessionsLike find up to two IDs that begin with ref
// (case insensitive), newest first. A prefix is a range of the ID's own
// index (events_command, events_session): the lookup does not grow with
// the log.
func (d *DB) commandsLike(ctx context.Context, ref string) ([]string, error) {
	return d.idsLike(ctx, `SELECT command_id FROM events WHERE command_id >= ? AND command_id < ? AND +kind = 'command_start' ORDER BY command_id DESC LIMIT 2`, ref)
}

func (d *DB) sessionsLike(ctx context.Context, ref string) ([]string, error) {
	return d.idsLike(ctx, `SELECT session_id FROM events WHERE session_id >= ? AND session_id < ? AND +kind = 'session_start' ORDER BY session_id DESC LIMIT 2`, ref)
}

func (d *DB) idsLike(ctx context.Context, q, ref string) ([]string, error) {
	// IDs are ULIDs: digits and upper-case letters, all below "~".
	lo := strings.ToUpper(ref)
	rows, err := d.db.QueryContext(ctx, q, lo, lo+"~")
	if err != nil {
		return nil, fmt.Errorf("find %q in the audit log: %w", ref, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find %q in the audit log: %w", ref, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ResolveReplay turns what a user gave replay into a target: "last" (or
// nothing) is the newest session; otherwise a session's or a command's
// full ID or unique prefix. A prefix that fits both a session and a
// command (a session and its first command are created in the same
// millisecond, and their IDs start alike) is ambiguous.
func (d *DB) ResolveReplay(ctx context.Context, ref string) (ReplayTarget, error) {
	if ref == "" || ref == "last" {
		id, err := d.ResolveSession(ctx, "last")
		if errors.Is(err, ErrNotFound) {
			return ReplayTarget{}, fmt.Errorf("no session recorded yet: %w", ErrNotFound)
		}
		return ReplayTarget{SessionID: id}, err
	}
	sessions, err := d.sessionsLike(ctx, ref)
	if err != nil {
		return ReplayTarget{}, err
	}
	commands, err := d.commandsLike(ctx, ref)
	if err != nil {
		return ReplayTarget{}, err
	}
	switch {
	case len(sessions) == 1 && len(commands) == 0:
		return ReplayTarget{SessionID: sessions[0]}, nil
	case len(sessions) == 0 && len(commands) == 1:
		sid, err := d.commandSession(ctx, commands[0])
		return ReplayTarget{SessionID: sid, CommandID: commands[0]}, err
	case len(sessions) == 0 && len(commands) == 0:
		return ReplayTarget{}, fmt.Errorf("no session or command %q: %w", ref, ErrNotFound)
	}
	return ReplayTarget{}, fmt.Errorf("%q is ambiguous (it begins the ID of more than one session or command): give more characters of the ID", ref)
}

func (d *DB) commandSession(ctx context.Context, commandID string) (string, error) {
	var sid string
	err := d.db.QueryRowContext(ctx, `SELECT session_id FROM events WHERE command_id = ? AND +kind = 'command_start'`, commandID).Scan(&sid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("command %s: %w", commandID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read command %s: %w", commandID, err)
	}
	return sid, nil
}

// Replay calls fn for everything a session (or one command of it) showed
// and recorded, in time order: first a ReplaySession item, then for each
// command a ReplayCommand item followed by its output frames and events
// merged by time (a frame and an event at the same instant: the frame
// first, as an event is mostly about output already written), and the session's own events between the commands, as they
// came. Gaps between items are the recorded ones.
//
// Memory does not grow with the session: commands are read one at a time
// by key, output one stored chunk at a time (about 64 KiB), and only one
// command's non-output events are held at once. No query stays open
// while fn runs, so a replay paused for an hour holds no read transaction
// on the log.
func (d *DB) Replay(ctx context.Context, t ReplayTarget, fn func(ReplayItem) error) error {
	start, ok, err := d.nextEvent(ctx, `session_id = ? AND kind = 'session_start'`, t.SessionID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("session %s: %w", t.SessionID, ErrNotFound)
	}
	h := &ReplayHeader{ID: start.SessionID, Start: start.At, From: start.At}
	if err := json.Unmarshal(start.Data, &h.Info); err != nil {
		return fmt.Errorf("read session %s: %w", t.SessionID, err)
	}
	var only Event
	if t.CommandID != "" {
		if only, ok, err = d.nextEvent(ctx, `command_id = ? AND kind = 'command_start'`, t.CommandID); err != nil {
			return err
		}
		if !ok || only.SessionID != t.SessionID {
			return fmt.Errorf("command %s of session %s: %w", t.CommandID, t.SessionID, ErrNotFound)
		}
		h.From = only.At
	}
	if err := d.replayHeader(ctx, h, t.CommandID); err != nil {
		return err
	}
	r := &replayer{d: d, h: h, fn: fn}
	if t.CommandID != "" {
		var n int
		if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE session_id = ? AND kind = 'command_start' AND seq <= ?`,
			t.SessionID, only.Seq).Scan(&n); err != nil {
			return fmt.Errorf("read session %s: %w", t.SessionID, err)
		}
		if h.Command, err = replayedCommand(only, n); err != nil {
			return err
		}
		if err := r.emit(ReplayItem{Kind: ReplaySession, At: h.From}); err != nil {
			return err
		}
		return r.command(ctx, h.Command, only)
	}
	if err := r.emit(ReplayItem{Kind: ReplaySession, At: h.From}); err != nil {
		return err
	}
	// The session's own events and its commands' starts, one at a time
	// by key: the events of each command are read by command.
	after, n := start.Seq, 0
	for {
		ev, ok, err := d.nextEvent(ctx, `session_id = ? AND seq > ? AND (command_id IS NULL OR kind = 'command_start')`, t.SessionID, after)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		after = ev.Seq
		if ev.Kind == KindCommandStart {
			n++
			var c *ReplayedCommand
			if c, err = replayedCommand(ev, n); err == nil {
				err = r.command(ctx, c, ev)
			}
		} else {
			err = r.emit(ReplayItem{Kind: ReplayEvent, At: ev.At, Event: ev})
		}
		if err != nil {
			return err
		}
	}
}

// replayHeader counts the commands replayed and finds the largest
// terminal they were drawn on, reading their starts as a stream.
func (d *DB) replayHeader(ctx context.Context, h *ReplayHeader, commandID string) error {
	return d.Events(ctx, EventFilter{SessionID: h.ID, Kinds: []string{KindCommandStart}}, func(e Event) error {
		h.Of++
		if commandID != "" && e.CommandID != commandID {
			return nil
		}
		h.Commands++
		var info struct {
			Term *TermInfo `json:"term"`
		}
		if json.Unmarshal(e.Data, &info) != nil || info.Term == nil || info.Term.Cols <= 0 || info.Term.Rows <= 0 {
			return nil
		}
		if h.Term == nil {
			h.Term = &TermInfo{Type: info.Term.Type}
		}
		h.Term.Cols = max(h.Term.Cols, info.Term.Cols)
		h.Term.Rows = max(h.Term.Rows, info.Term.Rows)
		return nil
	})
}

// nextEvent reads the first event, in chain order, that matches where.
func (d *DB) nextEvent(ctx context.Context, where string, args ...any) (Event, bool, error) {
	row := d.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE `+where+` ORDER BY seq LIMIT 1`, args...)
	e, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("read audit events: %w", err)
	}
	return e, true, nil
}

type replayer struct {
	d    *DB
	h    *ReplayHeader
	fn   func(ReplayItem) error
	last time.Duration
}

func (r *replayer) emit(it ReplayItem) error {
	it.Session = r.h
	it.Offset = max(r.last, it.At.Sub(r.h.From))
	r.last = it.Offset
	return r.fn(it)
}

func replayedCommand(start Event, n int) (*ReplayedCommand, error) {
	c := &ReplayedCommand{ID: start.CommandID, N: n, Start: start.At, StateKey: start.StateKey}
	if err := json.Unmarshal(start.Data, &c.Info); err != nil {
		return nil, fmt.Errorf("read command %s: %w", start.CommandID, err)
	}
	return c, nil
}

// command plays one command: its start, then its frames and its other
// events merged by time.
func (r *replayer) command(ctx context.Context, c *ReplayedCommand, start Event) error {
	if err := r.emit(ReplayItem{Kind: ReplayCommand, At: start.At, Command: c, Event: start}); err != nil {
		return err
	}
	// A command's other events are few (a decision, a handful of lock
	// transitions, hook runs, its end); they are written when known,
	// which is not always in time order (a lock seen before it was
	// written down), so they are sorted.
	var evs []Event
	err := r.d.Events(ctx, EventFilter{CommandID: c.ID}, func(e Event) error {
		if e.Kind != KindCommandStart {
			evs = append(evs, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	next := 0
	err = r.d.eachChunk(ctx, c.ID, func(raw []byte) error {
		return decodeFrames(raw, func(f Frame) error {
			at := c.Start.Add(f.Offset)
			for ; next < len(evs) && evs[next].At.Before(at); next++ {
				if err := r.emit(ReplayItem{Kind: ReplayEvent, At: evs[next].At, Command: c, Event: evs[next]}); err != nil {
					return err
				}
			}
			return r.emit(ReplayItem{Kind: ReplayOutput, At: at, Command: c, Frame: f})
		})
	})
	if err != nil {
		if errors.Is(err, errBadFrame) {
			return fmt.Errorf("replay output of %s: %w", c.ID, err)
		}
		return err
	}
	for ; next < len(evs); next++ {
		if err := r.emit(ReplayItem{Kind: ReplayEvent, At: evs[next].At, Command: c, Event: evs[next]}); err != nil {
			return err
		}
	}
	return nil
}

// eachChunk calls fn with each stored chunk of a command's output in
// order, reading them one by one by key, so that no query is open while
// fn runs. raw is valid only during the call: its memory holds the next
// chunk.
func (d *DB) eachChunk(ctx context.Context, commandID string, fn func(raw []byte) error) error {
	var in inflater
	next := 0
	for {
		var seq, rawLen int
		var z []byte
		err := d.db.QueryRowContext(ctx, `SELECT seq, raw_len, frames FROM output_chunks WHERE command_id = ? AND seq >= ? ORDER BY seq LIMIT 1`,
			commandID, next).Scan(&seq, &rawLen, &z)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read output of %s: %w", commandID, err)
		}
		raw, err := in.chunk(commandID, seq, rawLen, z)
		if err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
		next = seq + 1
	}
}
