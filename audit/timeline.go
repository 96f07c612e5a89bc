package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// timelineKinds are the events a timeline is drawn from: every lock a
// recorded command took or met, and what happened to it.
var timelineKinds = []string{kindLockAcquired, kindLockReleased, kindLockWait, kindLockWaitEnd, kindLockContention,
	kindLockOrphaned, kindReleaseFailed, kindForceUnlock, kindHoldPlaced, kindHoldReleased}

// DefaultLookback is how far before a timeline's start it looks for a lock
// taken earlier and still held at the start, when nothing in the range
// names that lock.
const DefaultLookback = 7 * 24 * time.Hour

// TimelineQuery says which lock activity to draw: every hold, wait and
// marker in [Since, Until) on StateKey (every state if empty). A zero Since
// is the beginning of the log; a zero Until is now.
type TimelineQuery struct {
	StateKey     string
	Since, Until time.Time
	// Lookback bounds the search for locks taken before Since and still
	// held at it that no event in the range names (a hold across the whole
	// range); 0 means DefaultLookback. A lock named by any event in the
	// range is found however old it is.
	Lookback time.Duration
}

// Timeline is the lock activity of a range, per state key (sorted).
type Timeline struct {
	Since  *time.Time      `json:"since,omitempty"`
	Until  time.Time       `json:"until"`
	States []StateTimeline `json:"states"`
}

// StateTimeline is what happened to one state's lock: who held it, who
// waited for it, and the moments worth a marker; each sorted by time.
type StateTimeline struct {
	StateKey string   `json:"state_key"`
	Holds    []Hold   `json:"holds"`
	Waits    []Wait   `json:"waits"`
	Markers  []Marker `json:"markers"`
}

// Hold is one lock held: by a recorded command, a change-freeze hold, or
// someone tfsh knows only from the lock's own record (Holder.Recorded
// false).
type Hold struct {
	LockID string `json:"lock_id,omitempty"`
	Holder Party  `json:"holder"`
	// Subcommand is the holder's command (plan, apply, state mv), when
	// recorded.
	Subcommand string `json:"subcommand,omitempty"`
	// Start is when the lock was taken (its Created, else when tfsh saw it
	// taken); End when it was let go or removed, nil when the log does not
	// say.
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end,omitempty"`
	// From and Until are Start and End clipped to the range. A hold whose
	// end is not in the log runs to the range's end if it is still held
	// (Open), else to the last fact about it.
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
	// StartsBefore: taken before the range, drawn from its start.
	// EndsAfter: still held at the range's end (or its end is unknown).
	StartsBefore bool `json:"starts_before,omitempty"`
	EndsAfter    bool `json:"ends_after,omitempty"`
	Open         bool `json:"open,omitempty"`
	// Ending is how it ended, as explain says it: released, orphaned,
	// force-unlocked, release failed, hold released, hold expired, still
	// held, unknown.
	Ending string `json:"ending"`
	// OrphanedAt is when the holder's command ended with the lock still
	// there; from then to End the lock was held by no one.
	OrphanedAt *time.Time `json:"orphaned_at,omitempty"`
	// Inferred: the command succeeded with locking on but the lock was
	// never seen; its times are the command's.
	Inferred bool `json:"inferred,omitempty"`
	// Incident: someone waited or failed on it, or it did not end normally
	// (explain has a chain for it).
	Incident bool `json:"incident,omitempty"`
}

// Wait is one command kept from a lock, clipped to the range. A command
// that gave up at once (Waiter.Outcome failed) has From equal to Until.
type Wait struct {
	LockID       string    `json:"lock_id,omitempty"`
	Waiter       Waiter    `json:"waiter"`
	Holder       string    `json:"holder"` // who held the lock
	From         time.Time `json:"from"`
	Until        time.Time `json:"until"`
	StartsBefore bool      `json:"starts_before,omitempty"`
	EndsAfter    bool      `json:"ends_after,omitempty"`
}

// Marker kinds.
const (
	MarkerContention    = "contention"     // a command failed on the lock (at once, or at its -lock-timeout)
	MarkerOrphaned      = "orphaned"       // the holder's command ended and left the lock
	MarkerForceUnlock   = "force-unlock"   // someone removed the lock
	MarkerHoldPlaced    = "hold-placed"    // a change-freeze hold was placed
	MarkerHoldReleased  = "hold-released"  // and released (or expired)
	MarkerReleaseFailed = "release-failed" // terraform could not release its lock
)

// Marker is a moment on a state's timeline.
type Marker struct {
	Kind    string    `json:"kind"`
	At      time.Time `json:"at"`
	LockID  string    `json:"lock_id,omitempty"`
	EventID string    `json:"event_id"`
	// By is who: the command refused the lock, the holder whose command
	// ended, who removed the lock or placed or released the hold.
	By Party `json:"by"`
	// Holder and Operation are the lock's, as its record says.
	Holder    string `json:"holder,omitempty"`
	Operation string `json:"operation,omitempty"`
	// Outcome (contention): failed (gave up at once) or timed out.
	Outcome string `json:"outcome,omitempty"`
	// Reason given for a force-unlock or a hold.
	Reason string `json:"reason,omitempty"`
	// Detail: how the command ended (orphaned), terraform's message
	// (contention, release-failed), the method (force-unlock), "expired"
	// (hold-released).
	Detail string `json:"detail,omitempty"`
	// Verified is the verdict of the integrity check after a force-unlock.
	Verified string `json:"verified,omitempty"`
}

// Timeline reads the lock activity of a range. Like Explain it reads only
// what it needs, through indexes: the lock events in range (events_kind_at),
// the locks still held at its start (events_kind_at, bounded by Lookback),
// each lock by ID (events_lock), and the sessions and commands involved.
func (d *DB) Timeline(ctx context.Context, q TimelineQuery) (*Timeline, error) {
	t := &timeline{facts: newFacts(d), q: q, states: map[string]*StateTimeline{}}
	if t.q.Until.IsZero() {
		t.q.Until = d.Now()
	}
	t.q.Since, t.q.Until = t.q.Since.UTC(), t.q.Until.UTC()
	out := &Timeline{Until: t.q.Until, States: []StateTimeline{}}
	if !q.Since.IsZero() {
		out.Since = &t.q.Since
	}
	var locks []string
	seen := map[string]bool{}
	addLock := func(id string) {
		if !seen[id] {
			seen[id] = true
			locks = append(locks, id)
		}
	}
	var loose [][]Event // events without a lock ID, by command
	looseIdx := map[string]int{}
	err := d.eventsInRange(ctx, timelineKinds, q.Since, t.q.Until, q.StateKey, func(e Event) error {
		if e.LockID != "" {
			addLock(e.LockID)
			return nil
		}
		key := e.CommandID
		if key == "" {
			key = e.ID
		}
		i, ok := looseIdx[key]
		if !ok {
			i = len(loose)
			looseIdx[key] = i
			loose = append(loose, nil)
		}
		loose[i] = append(loose[i], e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !q.Since.IsZero() {
		held, err := d.heldAt(ctx, t.q.Since, q.Lookback, q.StateKey)
		if err != nil {
			return nil, err
		}
		for _, id := range held {
			addLock(id)
		}
	}
	for _, id := range locks {
		var evs []Event
		if err := d.Events(ctx, EventFilter{LockID: id}, func(e Event) error { evs = append(evs, e); return nil }); err != nil {
			return nil, err
		}
		if err := t.add(ctx, id, evs); err != nil {
			return nil, err
		}
	}
	for _, evs := range loose {
		if err := t.add(ctx, "", evs); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(t.states))
	for k := range t.states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st := t.states[k]
		if len(st.Holds)+len(st.Waits)+len(st.Markers) == 0 {
			continue
		}
		sort.SliceStable(st.Holds, func(i, j int) bool { return st.Holds[i].From.Before(st.Holds[j].From) })
		sort.SliceStable(st.Waits, func(i, j int) bool { return st.Waits[i].From.Before(st.Waits[j].From) })
		sort.SliceStable(st.Markers, func(i, j int) bool { return st.Markers[i].At.Before(st.Markers[j].At) })
		out.States = append(out.States, *st)
	}
	return out, nil
}

// heldAt finds the locks taken in [since-lookback, since) that nothing had
// let go of or removed before since.
func (d *DB) heldAt(ctx context.Context, since time.Time, lookback time.Duration, stateKey string) ([]string, error) {
	query, args := heldAtQuery(since, lookback, stateKey)
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read locks held at %s: %w", since.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var ids []string
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read locks held at %s: %w", since.Format(time.RFC3339), err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// heldAtQuery is the query of heldAt.
func heldAtQuery(since time.Time, lookback time.Duration, stateKey string) (string, []any) {
	if lookback <= 0 {
		lookback = DefaultLookback
	}
	taken := []string{kindLockAcquired, kindHoldPlaced, kindLockOrphaned, kindReleaseFailed}
	ended := []string{kindLockReleased, kindHoldReleased, kindForceUnlock}
	query := `SELECT a.lock_id FROM events a
		WHERE a.kind IN (?` + strings.Repeat(", ?", len(taken)-1) + `) AND a.at >= ? AND a.at < ? AND a.lock_id IS NOT NULL`
	var args []any
	for _, k := range taken {
		args = append(args, k)
	}
	args = append(args, since.Add(-lookback).UnixNano(), since.UnixNano())
	if stateKey != "" {
		query += ` AND a.state_key = ?`
		args = append(args, stateKey)
	}
	query += ` AND NOT EXISTS (SELECT 1 FROM events b WHERE b.lock_id = a.lock_id AND b.kind IN (?` + strings.Repeat(", ?", len(ended)-1) + `) AND b.at < ?)
		ORDER BY a.seq`
	for _, k := range ended {
		args = append(args, k)
	}
	args = append(args, since.UnixNano())
	return query, args
}

// timeline is one Timeline call.
type timeline struct {
	*facts
	q      TimelineQuery // Until set, both UTC
	states map[string]*StateTimeline
}

func (t *timeline) state(key string) *StateTimeline {
	st, ok := t.states[key]
	if !ok {
		st = &StateTimeline{StateKey: key, Holds: []Hold{}, Waits: []Wait{}, Markers: []Marker{}}
		t.states[key] = st
	}
	return st
}

// inRange reports whether an instant is in [Since, Until).
func (t *timeline) inRange(at time.Time) bool {
	return !at.Before(t.q.Since) && at.Before(t.q.Until)
}

// clip clips [from, to] to the range; ok is false when it lies outside.
// A zero-length span is kept when its instant is in range.
func (t *timeline) clip(from, to time.Time) (cf, ct time.Time, before, after, ok bool) {
	if from.Equal(to) {
		return from, to, false, false, t.inRange(from)
	}
	if !from.Before(t.q.Until) || !to.After(t.q.Since) {
		return from, to, false, false, false
	}
	cf, ct = from, to
	if from.Before(t.q.Since) {
		cf, before = t.q.Since, true
	}
	if to.After(t.q.Until) {
		ct, after = t.q.Until, true
	}
	return cf, ct, before, after, true
}

// add draws one lock (or a command's events without a lock ID) from all
// its events: its hold, its waiters and its markers in range.
func (t *timeline) add(ctx context.Context, lockID string, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	ch, incident, err := t.build(ctx, lockID, evs)
	if err != nil {
		return err
	}
	if t.q.StateKey != "" && ch.StateKey != t.q.StateKey {
		return nil
	}
	st := t.state(ch.StateKey)
	var recorded, inferred bool
	var created time.Time
	var holderCmd string
	for _, e := range evs {
		var d lockData
		_ = json.Unmarshal(e.Data, &d)
		switch e.Kind {
		case kindLockAcquired, kindHoldPlaced:
			recorded = true
			if d.Source != sourceWatch {
				holderCmd = e.CommandID
			}
			inferred = inferred || d.Source == "inferred"
		}
		if created.IsZero() && d.Info != nil {
			created = d.Info.Created
		}
	}
	// A hold: one a recorded command took, or one known from the lock's
	// own record (a waiter saw it); a failure without a lock ID has no
	// lock to draw.
	if recorded || (lockID != "" && !created.IsZero()) {
		h := Hold{LockID: lockID, Holder: ch.Holder, Start: ch.Start, Ending: ch.Ending.How, Inferred: inferred, Incident: incident}
		if c := t.commands[holderCmd]; holderCmd != "" && c != nil {
			h.Subcommand = c.subcommand
		}
		if o := ch.Ending.Orphaned; o != nil {
			at := o.At
			h.OrphanedAt = &at
		}
		to := ch.End
		switch {
		case ch.Ending.At != nil:
			end := *ch.Ending.At
			h.End, to = &end, end
		case h.Ending == "still held" || h.Ending == "orphaned" || h.Ending == "release failed":
			h.Open, to = true, t.q.Until
			if to.Before(h.Start) {
				to = h.Start
			}
		}
		var ok bool
		if h.From, h.Until, h.StartsBefore, h.EndsAfter, ok = t.clip(h.Start, to); ok {
			h.EndsAfter = h.EndsAfter || h.Open
			st.Holds = append(st.Holds, h)
		}
	}
	outcome := map[string]string{} // by command ID
	for _, w := range ch.Waiters {
		outcome[w.CommandID] = w.Outcome
		to := w.Until
		open := w.Outcome == "waiting"
		if open && t.q.Until.After(to) {
			to = t.q.Until
		}
		from, until, before, after, ok := t.clip(w.From, to)
		if !ok {
			continue
		}
		st.Waits = append(st.Waits, Wait{LockID: lockID, Waiter: w, Holder: ch.Holder.Who, From: from, Until: until,
			StartsBefore: before, EndsAfter: after || open})
	}
	for _, e := range evs {
		if !t.inRange(e.At) {
			continue
		}
		var d lockData
		_ = json.Unmarshal(e.Data, &d)
		m := Marker{At: e.At, LockID: lockID, EventID: e.ID}
		switch e.Kind {
		case kindLockContention:
			m.Kind, m.Outcome, m.Detail = MarkerContention, outcome[e.CommandID], d.Message
			if d.Info != nil {
				m.Holder, m.Operation = d.Info.Who, operationName(d.Info.Operation)
			}
		case kindLockOrphaned:
			m.Kind = MarkerOrphaned
			if o := ch.Ending.Orphaned; o != nil {
				m.Detail = o.Cause
			}
		case kindForceUnlock:
			m.Kind, m.Reason, m.Detail = MarkerForceUnlock, d.Reason, d.Method
			if fu := ch.Ending.ForceUnlock; fu != nil {
				m.Verified = fu.Verified
			}
		case kindHoldPlaced:
			m.Kind, m.Reason = MarkerHoldPlaced, d.Reason
		case kindHoldReleased:
			m.Kind, m.Reason = MarkerHoldReleased, d.Reason
			if d.Expired {
				m.Detail = "expired"
			}
		case kindReleaseFailed:
			m.Kind, m.Detail = MarkerReleaseFailed, d.Message
		default:
			continue
		}
		if m.Kind != MarkerContention && d.Info != nil {
			m.Holder, m.Operation = d.Info.Who, operationName(d.Info.Operation)
		}
		if m.By, err = t.party(ctx, e.SessionID, e.CommandID); err != nil {
			return err
		}
		if d.Who != "" {
			m.By.Who = d.Who
		}
		if c := t.commands[e.CommandID]; c != nil {
			m.By.Operation = c.subcommand
		}
		st.Markers = append(st.Markers, m)
	}
	return nil
}
