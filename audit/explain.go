package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kinds explain reads. The lock package owns the lock_* kinds and the shell
// owns force_unlock, integrity_check and hold_*: this package reads them
// from their recorded JSON only (leaves do not import each other).
const (
	kindLockAcquired   = "lock_acquired"
	kindLockReleased   = "lock_released"
	kindLockWait       = "lock_wait"
	kindLockWaitEnd    = "lock_wait_end"
	kindLockContention = "lock_contention"
	kindLockOrphaned   = "lock_orphaned"
	kindReleaseFailed  = "lock_release_failed"
	kindForceUnlock    = "force_unlock"
	kindIntegrity      = "integrity_check"
	kindHoldPlaced     = "hold_placed"
	kindHoldReleased   = "hold_released"
	// sourceWatch marks the lock events tfsh watch records: evidence of a
	// lock from outside any command. A lock ID tfsh's own commands also
	// recorded is counted once, as theirs.
	sourceWatch = "watch"
)

// seedKinds are the events that make a lock worth explaining: someone was
// kept from the state, or the lock did not end normally.
var seedKinds = []string{kindLockWait, kindLockContention, kindLockOrphaned, kindReleaseFailed, kindForceUnlock}

// ExplainQuery says what to explain. With Ref empty, every incident whose
// first sign falls in [Since, Until) (on StateKey, if given); with Ref, the
// incidents of one lock ID, event, command or session, whenever they were.
type ExplainQuery struct {
	StateKey     string
	Since, Until time.Time
	// Ref is a lock ID, an event ID, a session ID (or a unique prefix, or
	// "last") or a command ID (or a unique prefix).
	Ref string
}

// Explanation is the answer: one chain per lock that kept someone from a
// state or did not end normally, oldest first, and the blocked time per
// state.
type Explanation struct {
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	Ref   string     `json:"ref,omitempty"`
	// RefKind says what Ref turned out to be: lock, event, session or
	// command; RefID is the full ID it resolved to.
	RefKind string       `json:"ref_kind,omitempty"`
	RefID   string       `json:"ref_id,omitempty"`
	Chains  []Chain      `json:"chains"`
	States  []StateTotal `json:"states"`
}

// Chain is the causal chain of one lock: who held it, since when, doing
// what; who waited and for how long; and how it ended.
type Chain struct {
	StateKey string    `json:"state_key"`
	LockID   string    `json:"lock_id,omitempty"`
	Start    time.Time `json:"start"` // the lock's Created, else the first event
	End      time.Time `json:"end"`   // the last fact about it
	Holder   Party     `json:"holder"`
	// HeldFor is how long the lock was held, from Created (or when tfsh
	// saw it taken) to its release or removal; 0 when the end is unknown.
	HeldMS  int64    `json:"held_ms"`
	Waiters []Waiter `json:"waiters"`
	Ending  Ending   `json:"ending"`
	// BlockedMS is the time during which at least one command waited on
	// this lock or failed on it, or it sat orphaned (wall clock, overlaps
	// counted once). WaitedMS is the sum of the waiters' blocked time.
	BlockedMS  int64 `json:"blocked_ms"`
	WaitedMS   int64 `json:"waited_ms"`
	OrphanedMS int64 `json:"orphaned_ms"`
	// Events are the IDs of the events the chain was built from.
	Events []string `json:"events"`

	// spans are the blocked intervals, for the per-state totals.
	spans [][2]time.Time
}

// Party is someone who held or wanted a lock.
type Party struct {
	Who       string `json:"who"` // user@host
	CI        *CIRun `json:"ci,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`
	Command   string `json:"command,omitempty"` // the line as typed, redacted
	Operation string `json:"operation,omitempty"`
	// Recorded is false for a holder tfsh knows only from the lock's own
	// record (plain terraform, another machine's log): Who and Operation
	// are then what terraform wrote.
	Recorded bool `json:"recorded"`
	// Watcher: not recorded, but seen taken by tfsh watch (plain
	// terraform, a CI runner without tfsh); Who and Operation are from the
	// lock's record, and the hold's times from the watcher's polls.
	Watcher bool   `json:"watcher,omitempty"`
	Hold    string `json:"hold_reason,omitempty"` // a change-freeze hold's reason
}

// CIRun is the CI job a session ran in.
type CIRun struct {
	Provider string `json:"provider"`
	RunID    string `json:"run_id,omitempty"`
	Workflow string `json:"workflow,omitempty"`
	Job      string `json:"job,omitempty"`
	Actor    string `json:"actor,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Waiter is one command kept from the lock.
type Waiter struct {
	Party
	From      time.Time `json:"from"`
	Until     time.Time `json:"until"`
	BlockedMS int64     `json:"blocked_ms"`
	// Outcome: acquired (got the lock afterwards), failed (gave up at once:
	// -lock-timeout=0s), timed out (after LockTimeout), ended (the command
	// ended while waiting: interrupted, killed), waiting (no end recorded).
	Outcome string `json:"outcome"`
	// FreeAt is when the waiter saw the lock go, and AfterFreeMS how long
	// it then took to get its own: terraform retries on a backoff (1, 2,
	// 4, 8, 16 s), so a waiter may sit for seconds on a free lock. Its
	// blocked time runs to its own acquisition.
	FreeAt      *time.Time `json:"free_at,omitempty"`
	AfterFreeMS int64      `json:"after_free_ms,omitempty"`
	LockTimeout string     `json:"lock_timeout,omitempty"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Status      string     `json:"status,omitempty"`
}

// Ending is how the lock ended.
type Ending struct {
	// How: released, orphaned, force-unlocked, release failed,
	// hold released, hold expired, still held, unknown.
	How string     `json:"how"`
	At  *time.Time `json:"at,omitempty"`
	// SeenBy says who saw a release when the holder is not recorded: a
	// waiter whose wait ended because the lock went away, or
	// SeenByWatcher (whichever saw it first).
	SeenBy      string       `json:"seen_by,omitempty"`
	Orphaned    *Orphaning   `json:"orphaned,omitempty"`
	ForceUnlock *ForceUnlock `json:"force_unlock,omitempty"`
	// ReleaseFailed is terraform's message when its unlock failed.
	ReleaseFailed string `json:"release_failed,omitempty"`
}

// SeenByWatcher is Ending.SeenBy when tfsh watch saw the release.
const SeenByWatcher = "tfsh watch"

// Orphaning is a lock left behind by a command that ended.
type Orphaning struct {
	At time.Time `json:"at"`
	// Until is when it stopped blocking the state: when it was removed
	// (force-unlock), or when another lock was next taken on the state
	// (GoneBy "next lock": it was removed where tfsh could not see, or a
	// local lock went with its process); with neither, the end of the
	// range, and Open.
	Until  *time.Time `json:"until,omitempty"`
	GoneBy string     `json:"gone_by,omitempty"` // force-unlock, release, next lock
	Open   bool       `json:"open,omitempty"`
	// Cause is how the holder's command ended: "killed by SIGKILL",
	// "exit 1", "interrupted".
	Cause string `json:"cause,omitempty"`
}

// ForceUnlock is the removal of a lock by someone.
type ForceUnlock struct {
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	SessionID string    `json:"session_id"`
	CommandID string    `json:"command_id,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Method    string    `json:"method,omitempty"`
	// Verified is the verdict of the integrity check that followed, or
	// "not checked".
	Verified string `json:"verified"`
}

// StateTotal is the blocked time of one state, and who held it meanwhile.
type StateTotal struct {
	StateKey   string        `json:"state_key"`
	BlockedMS  int64         `json:"blocked_ms"`
	WaitedMS   int64         `json:"waited_ms"`
	OrphanedMS int64         `json:"orphaned_ms"`
	Chains     int           `json:"chains"`
	ByHolder   []HolderTotal `json:"by_holder"`
}

// HolderTotal is the blocked time one holder caused on a state.
type HolderTotal struct {
	Who       string `json:"who"`
	BlockedMS int64  `json:"blocked_ms"`
	Chains    int    `json:"chains"`
}

// staleCreated is how much earlier than tfsh saw a lock taken its Created
// may be and still be when it was taken: tfsh polls a lock every 20 ms
// (local) to 200 ms (remote); more than this means terraform retried.
const staleCreated = 2 * time.Second

// explainer is one Explain call.
type explainer struct{ *facts }

// Explain builds the causal chains the query asks for. It reads only the
// events it needs, through indexes: the incidents in range, then each
// incident's lock by ID, then the commands and sessions involved.
func (d *DB) Explain(ctx context.Context, q ExplainQuery) (*Explanation, error) {
	x := &explainer{newFacts(d)}
	x.horizon = q.Until
	if x.horizon.IsZero() {
		x.horizon = d.Now().UTC()
	}
	out := &Explanation{Chains: []Chain{}, States: []StateTotal{}, Ref: q.Ref}
	var locks []string // lock IDs in first-seen order
	var loose []Event  // incidents without a lock ID
	seen := map[string]bool{}
	addLock := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			locks = append(locks, id)
		}
	}
	// early are locks met before the range whose incident may still be
	// going on when it starts: kept only if it is.
	early := map[string]bool{}
	var err error
	if q.Ref != "" {
		loose, out.RefKind, out.RefID, err = x.byRef(ctx, q.Ref, addLock)
	} else {
		if !q.Since.IsZero() {
			t := q.Since.UTC()
			out.Since = &t
		}
		if !q.Until.IsZero() {
			t := q.Until.UTC()
			out.Until = &t
		}
		loose, err = x.inRange(ctx, q, addLock, early)
	}
	if err != nil {
		return nil, err
	}
	for _, id := range locks {
		var evs []Event
		if err := d.Events(ctx, EventFilter{LockID: id}, func(e Event) error { evs = append(evs, e); return nil }); err != nil {
			return nil, err
		}
		ch, err := x.chain(ctx, id, evs)
		if err != nil {
			return nil, err
		}
		if ch != nil && early[id] && !ch.goesOnAt(q.Since) {
			continue
		}
		if ch != nil && (q.StateKey == "" || ch.StateKey == q.StateKey) {
			out.Chains = append(out.Chains, *ch)
		}
	}
	// Incidents without a lock ID (terraform named no holder): one chain
	// per command that met them.
	var groups [][]Event
	byCmd := map[string]int{}
	for _, e := range loose {
		k := e.CommandID
		if k == "" {
			k = e.ID
		}
		i, ok := byCmd[k]
		if !ok {
			i = len(groups)
			byCmd[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	for _, g := range groups {
		ch, err := x.chain(ctx, "", g)
		if err != nil {
			return nil, err
		}
		if ch != nil && (q.StateKey == "" || ch.StateKey == q.StateKey) {
			out.Chains = append(out.Chains, *ch)
		}
	}
	sort.SliceStable(out.Chains, func(i, j int) bool { return out.Chains[i].Start.Before(out.Chains[j].Start) })
	out.States = totals(out.Chains)
	return out, nil
}

// inRange finds the incidents whose events fall in the query's range, and
// those begun in the DefaultLookback before it that may still be going on
// when it starts (a wait, an orphan), marked early.
func (x *explainer) inRange(ctx context.Context, q ExplainQuery, addLock func(string), early map[string]bool) ([]Event, error) {
	if !q.Since.IsZero() {
		// Only locks not already seen to end before the range: most waits
		// and orphans of the week before ended long before it.
		query := `SELECT DISTINCT w.lock_id FROM events w
			WHERE w.kind IN ('lock_wait', 'lock_orphaned') AND w.at >= ? AND w.at < ? AND w.lock_id IS NOT NULL`
		args := []any{q.Since.Add(-DefaultLookback).UnixNano(), q.Since.UnixNano()}
		if q.StateKey != "" {
			query += ` AND w.state_key = ?`
			args = append(args, q.StateKey)
		}
		query += ` AND NOT EXISTS (SELECT 1 FROM events e WHERE e.lock_id = w.lock_id
				AND +e.kind IN ('lock_released', 'force_unlock', 'hold_released') AND e.at < ?)`
		args = append(args, q.Since.UnixNano())
		rows, err := x.d.db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("read the incidents before the range: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			if !early[id] {
				early[id] = true
				addLock(id)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		rows.Close()
	}
	var loose []Event
	err := x.d.eventsInRange(ctx, seedKinds, q.Since, q.Until, q.StateKey, func(e Event) error {
		if e.LockID != "" {
			delete(early, e.LockID) // in range on its own account
			addLock(e.LockID)
		} else {
			loose = append(loose, e)
		}
		return nil
	})
	return loose, err
}

// goesOnAt reports whether the chain still kept someone from the state,
// or sat orphaned, at t.
func (c *Chain) goesOnAt(t time.Time) bool {
	for _, s := range c.spans {
		if s[1].After(t) {
			return true
		}
	}
	return false
}

// eventsInRange calls fn for the events of the given kinds in [since, until)
// (a zero time leaves that side open), on stateKey if given, in chain
// order. It reads through events_kind_at: the rest of the log is not
// touched.
func (d *DB) eventsInRange(ctx context.Context, kinds []string, since, until time.Time, stateKey string, fn func(Event) error) error {
	query, args := rangeQuery(kinds, since, until, stateKey)
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read lock events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("read lock event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// rangeQuery is the query of eventsInRange.
func rangeQuery(kinds []string, since, until time.Time, stateKey string) (string, []any) {
	where := []string{"kind IN (?" + strings.Repeat(", ?", len(kinds)-1) + ")"}
	var args []any
	for _, k := range kinds {
		args = append(args, k)
	}
	if !since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, since.UnixNano())
	}
	if !until.IsZero() {
		where = append(where, "at < ?")
		args = append(args, until.UnixNano())
	}
	if stateKey != "" {
		where = append(where, "state_key = ?")
		args = append(args, stateKey)
	}
	return `SELECT ` + eventColumns + ` FROM events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`, args
}

// byRef finds the incidents of a lock, an event, a command or a session,
// and says which it was.
func (x *explainer) byRef(ctx context.Context, ref string, addLock func(string)) (loose []Event, kind, id string, err error) {
	var n int
	if err := x.d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE lock_id = ? LIMIT 1)`, ref).Scan(&n); err != nil {
		return nil, "", "", fmt.Errorf("find lock %s: %w", ref, err)
	}
	if n > 0 {
		addLock(ref)
		return nil, "lock", ref, nil
	}
	row := x.d.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, strings.ToUpper(ref))
	if e, err := scanEvent(row); err == nil {
		switch {
		case e.LockID != "":
			addLock(e.LockID)
		case e.CommandID != "":
			loose, err = x.incidentsOf(ctx, EventFilter{CommandID: e.CommandID}, addLock)
		default:
			loose, err = x.incidentsOf(ctx, EventFilter{SessionID: e.SessionID}, addLock)
		}
		return loose, "event", e.ID, err
	} else if err != sql.ErrNoRows {
		return nil, "", "", fmt.Errorf("find event %s: %w", ref, err)
	}
	if id, err := x.d.ResolveSession(ctx, ref); err == nil {
		loose, err = x.incidentsOf(ctx, EventFilter{SessionID: id}, addLock)
		return loose, "session", id, err
	} else if !isNotFound(err) {
		return nil, "", "", err
	}
	id, err = x.d.ResolveCommand(ctx, ref)
	if isNotFound(err) {
		return nil, "", "", fmt.Errorf("%q is no lock ID, event, session or command in the audit log: %w", ref, ErrNotFound)
	} else if err != nil {
		return nil, "", "", err
	}
	loose, err = x.incidentsOf(ctx, EventFilter{CommandID: id}, addLock)
	return loose, "command", id, err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// incidentsOf finds the locks a session or command held or met.
func (x *explainer) incidentsOf(ctx context.Context, f EventFilter, addLock func(string)) ([]Event, error) {
	f.Kinds = append([]string{kindLockAcquired, kindHoldPlaced}, seedKinds...)
	var loose []Event
	err := x.d.Events(ctx, f, func(e Event) error {
		if e.LockID != "" {
			addLock(e.LockID)
		} else if e.Kind != kindLockAcquired {
			loose = append(loose, e)
		}
		return nil
	})
	return loose, err
}

// chain builds the chain of one lock from every event that names it (or
// of one incident without a lock ID). It returns nil for a lock that kept
// no one waiting and ended normally.
func (x *explainer) chain(ctx context.Context, lockID string, evs []Event) (*Chain, error) {
	ch, incident, err := x.build(ctx, lockID, evs)
	if err != nil || !incident {
		return nil, err
	}
	return ch, nil
}

// build tells the story of one lock from every event that names it (or of
// events without a lock ID), whether or not it is an incident: someone
// waited, failed on it, or it did not end normally.
func (f *facts) build(ctx context.Context, lockID string, evs []Event) (ch *Chain, incident bool, err error) {
	ch = &Chain{LockID: lockID, Waiters: []Waiter{}, Events: []string{}}
	waiters := map[string]*Waiter{} // by command ID
	waited := map[*Waiter]bool{}    // a lock_wait was seen
	var order []string
	var holderSeen bool
	var created, acquiredAt, releasedAt time.Time
	var orphan *Orphaning
	var holderCmd string
	var seenBy string
	waiter := func(e Event) (*Waiter, error) {
		key := e.CommandID
		if key == "" {
			key = e.ID
		}
		if w, ok := waiters[key]; ok {
			return w, nil
		}
		p, err := f.party(ctx, e.SessionID, e.CommandID)
		if err != nil {
			return nil, err
		}
		w := &Waiter{Party: p, From: e.At, Until: e.At}
		if c := f.commands[e.CommandID]; c != nil {
			w.Operation = c.subcommand
			w.LockTimeout = c.lockTimeout
		}
		waiters[key] = w
		order = append(order, key)
		return w, nil
	}
	holderFromInfo := func(d lockData) {
		if holderSeen || d.Info == nil {
			return
		}
		ch.Holder.Who = d.Info.Who
		ch.Holder.Operation = operationName(d.Info.Operation)
		if created.IsZero() {
			created = d.Info.Created
		}
	}
	// tfsh's own record wins: the watcher's events of a lock a command
	// took (or released) add nothing but their IDs.
	data := make([]lockData, len(evs))
	var ownTaken, ownReleased bool
	var watcherSession string // the watcher session a watcher-only holder was seen by
	for i, e := range evs {
		_ = json.Unmarshal(e.Data, &data[i])
		own := data[i].Source != sourceWatch
		switch e.Kind {
		case kindLockAcquired, kindHoldPlaced:
			ownTaken = ownTaken || own
		case kindLockReleased:
			ownReleased = ownReleased || own
		}
	}
	for i, e := range evs {
		if ch.StateKey == "" {
			ch.StateKey = e.StateKey
		}
		ch.Events = append(ch.Events, e.ID)
		d := data[i]
		watched := d.Source == sourceWatch
		switch {
		case watched && e.Kind == kindLockAcquired && (ownTaken || holderSeen):
			continue
		case watched && e.Kind == kindLockAcquired:
			// Seen by the watcher only: plain terraform, or tfsh with
			// another log. The holder is the lock's own record.
			ch.Holder, holderSeen, acquiredAt = Party{Watcher: true}, true, e.At
			watcherSession = e.SessionID
			if d.Info != nil {
				ch.Holder.Who, ch.Holder.Operation = d.Info.Who, operationName(d.Info.Operation)
				created = d.Info.Created
			}
			if d.Since != nil {
				created = *d.Since
			}
			continue
		case watched && e.Kind == kindLockReleased && ownReleased:
			continue
		}
		switch e.Kind {
		case kindLockAcquired:
			p, err := f.party(ctx, e.SessionID, e.CommandID)
			if err != nil {
				return nil, false, err
			}
			if d.Info != nil {
				p.Operation = operationName(d.Info.Operation)
				created = d.Info.Created
				// terraform writes Created once, when it first tries: a
				// command that waited for the state took its lock long
				// after. Then tfsh seeing it taken is the better time.
				if e.At.Sub(created) > staleCreated {
					created = e.At
				}
			}
			ch.Holder, holderSeen, holderCmd, acquiredAt = p, true, e.CommandID, e.At
		case kindHoldPlaced:
			p, err := f.party(ctx, e.SessionID, e.CommandID)
			if err != nil {
				return nil, false, err
			}
			p.Operation, p.Hold = "hold", d.Reason
			if d.Info != nil {
				created = d.Info.Created
			}
			ch.Holder, holderSeen, acquiredAt = p, true, e.At
		case kindLockReleased, kindHoldReleased:
			if releasedAt.IsZero() || watched && e.At.Before(releasedAt) {
				releasedAt = e.At
				if watched && watcherSession != "" {
					seenBy = SeenByWatcher
				}
			}
			if e.Kind == kindHoldReleased {
				ch.Ending.How = "hold released"
				if d.Expired {
					ch.Ending.How = "hold expired"
				}
			} else if ch.Ending.How == "" || ch.Ending.How == "release failed" {
				if ch.Ending.How == "" {
					ch.Ending.How = "released"
				}
			}
		case kindLockWait:
			incident = true
			holderFromInfo(d)
			w, err := waiter(e)
			if err != nil {
				return nil, false, err
			}
			if !waited[w] {
				w.From = e.At
			}
			waited[w] = true
			w.Outcome = "waiting"
		case kindLockWaitEnd:
			w, err := waiter(e)
			if err != nil {
				return nil, false, err
			}
			w.Until = e.At
			if d.Ended == "released" && w.Outcome == "waiting" {
				w.Outcome = "acquired"
				// A holder tfsh did not record is known to have let go
				// when the first waiter saw the lock go away.
				// So is one only the watcher saw: a waiter polls more
				// often than the watcher.
				if (!holderSeen || watcherSession != "") && (releasedAt.IsZero() || e.At.Before(releasedAt)) {
					releasedAt, seenBy = e.At, w.Who
				}
			} else if w.Outcome == "waiting" {
				w.Outcome = "ended"
			}
		case kindLockContention:
			incident = true
			holderFromInfo(d)
			w, err := waiter(e)
			if err != nil {
				return nil, false, err
			}
			if !waited[w] {
				// No wait was seen: terraform gave up on its first try.
				w.From, w.Until, w.Outcome = e.At, e.At, "failed"
			} else {
				// It waited, and terraform gave up at its -lock-timeout.
				w.Outcome = "timed out"
				if e.At.After(w.Until) {
					w.Until = e.At
				}
			}
		case kindLockOrphaned:
			incident = true
			orphan = &Orphaning{At: e.At}
			if c, err := f.command(ctx, e.CommandID); err == nil && c.end != nil {
				orphan.Cause = endCause(c.end)
			}
			ch.Ending.How = "orphaned"
		case kindReleaseFailed:
			incident = true
			ch.Ending.ReleaseFailed = d.Message
			if ch.Ending.How == "" {
				ch.Ending.How = "release failed"
			}
		case kindForceUnlock:
			incident = true
			holderFromInfo(d)
			s, err := f.session(ctx, e.SessionID)
			if err != nil {
				return nil, false, err
			}
			by := d.Who
			if by == "" {
				by = s.who
			}
			ch.Ending.ForceUnlock = &ForceUnlock{At: e.At, By: by, SessionID: e.SessionID, CommandID: e.CommandID,
				Reason: d.Reason, Method: d.Method, Verified: "not checked"}
			ch.Ending.How = "force-unlocked"
		case kindIntegrity:
			if fu := ch.Ending.ForceUnlock; fu != nil {
				fu.Verified = d.Verdict
			}
		}
	}
	if created.IsZero() {
		created = acquiredAt
	}
	ch.Start = created
	if ch.Start.IsZero() && len(evs) > 0 {
		ch.Start = evs[0].At
	}
	// The holder's command ending tells what a missing release means:
	// still held while it runs; left behind if it ended without one (tfsh
	// itself was killed, so nobody saw the lock after).
	if holderCmd != "" && orphan == nil && releasedAt.IsZero() {
		if c, err := f.command(ctx, holderCmd); err == nil && c.end == nil && ch.Ending.ForceUnlock == nil {
			ch.Ending.How = "still held"
		} else if err == nil && c.end != nil {
			orphan = &Orphaning{At: c.endAt, Cause: endCause(c.end)}
			if ch.Ending.How == "" {
				ch.Ending.How = "orphaned"
			}
		}
	}
	// A lock only the watcher saw is still held while the watcher that
	// saw it runs and has not seen it go.
	if watcherSession != "" && releasedAt.IsZero() && ch.Ending.How == "" && ch.Ending.ForceUnlock == nil {
		if live, err := f.live(ctx, watcherSession); err != nil {
			return nil, false, err
		} else if live {
			ch.Ending.How = "still held"
		}
	}
	if orphan != nil {
		ch.Ending.Orphaned = orphan
	}
	end := releasedAt
	if fu := ch.Ending.ForceUnlock; fu != nil {
		if end.IsZero() || fu.At.Before(end) {
			end = fu.At
		}
	}
	if orphan != nil {
		until := end
		switch {
		case !until.IsZero() && ch.Ending.ForceUnlock != nil && until.Equal(ch.Ending.ForceUnlock.At):
			orphan.GoneBy = "force-unlock"
		case !until.IsZero():
			orphan.GoneBy = "release"
		}
		if until.IsZero() || until.Before(orphan.At) {
			// Nobody saw it go. The next lock taken on the state says it
			// was gone by then (removed where tfsh could not see, or a
			// local lock that went with its process).
			next, err := f.nextAcquisition(ctx, ch.StateKey, lockID, orphan.At, f.horizon)
			if err != nil {
				return nil, false, err
			}
			switch {
			case !next.IsZero():
				until, orphan.GoneBy, end = next, "next lock", next
			case f.horizon.After(orphan.At):
				until, orphan.Open = f.horizon, true
			default:
				until = orphan.At
			}
		}
		orphan.Until = &until
	}
	switch {
	case ch.Ending.How == "" && !releasedAt.IsZero():
		ch.Ending.How = "released"
		if !holderSeen {
			ch.Ending.SeenBy = seenBy
		}
	case ch.Ending.How == "":
		ch.Ending.How = "unknown"
	}
	if watcherSession != "" && ch.Ending.How == "released" {
		ch.Ending.SeenBy = seenBy // the watcher, or a waiter that saw it first
	}
	if !end.IsZero() {
		t := end
		ch.Ending.At = &t
		if !ch.Start.IsZero() {
			ch.HeldMS = end.Sub(ch.Start).Milliseconds()
		}
	}
	// Blocked: the union of the waiters' intervals and the orphaned span.
	var spans [][2]time.Time
	for _, k := range order {
		w := waiters[k]
		if c := f.commands[w.CommandID]; c != nil && c.end != nil {
			w.ExitCode, w.Status = &c.end.ExitCode, c.end.Status
			if w.Outcome == "waiting" {
				w.Until, w.Outcome = c.endAt, "ended"
			}
		}
		if c := f.commands[w.CommandID]; c != nil && w.Outcome == "acquired" {
			// What the waiter did next: took its own lock, or met
			// another's (someone else got there first).
			var took, met time.Time
			for _, a := range c.acquired {
				if a.id != lockID && !a.at.Before(w.Until) {
					took = a.at
					break
				}
			}
			for _, m := range c.met {
				if m.id != lockID && !m.at.Before(w.Until) {
					met = m.at
					break
				}
			}
			switch {
			case !met.IsZero() && (took.IsZero() || met.Before(took)):
				w.Outcome = "passed"
			case !took.IsZero():
				free := w.Until
				w.FreeAt, w.AfterFreeMS, w.Until = &free, took.Sub(free).Milliseconds(), took
			}
		}
		w.BlockedMS = w.Until.Sub(w.From).Milliseconds()
		ch.WaitedMS += w.BlockedMS
		spans = append(spans, [2]time.Time{w.From, w.Until})
		ch.Waiters = append(ch.Waiters, *w)
	}
	if orphan != nil {
		ch.OrphanedMS = orphan.Until.Sub(orphan.At).Milliseconds()
		spans = append(spans, [2]time.Time{orphan.At, *orphan.Until})
	}
	ch.spans = spans
	ch.BlockedMS = union(append([][2]time.Time(nil), spans...)).Milliseconds()
	ch.End = ch.Start
	for _, e := range evs {
		if e.At.After(ch.End) {
			ch.End = e.At
		}
	}
	for _, s := range spans {
		if s[1].After(ch.End) {
			ch.End = s[1]
		}
	}
	if ch.Holder.Who == "" {
		ch.Holder.Who = "unknown"
	}
	return ch, incident, nil
}

// endCause says how a command ended, for an orphaned lock.
func endCause(e *CommandEnd) string {
	switch {
	case e.Signal != "":
		return "terraform was killed by " + signalName(e.Signal)
	case e.Status == "unknown":
		return "tfsh was killed"
	case e.Reason != "":
		return fmt.Sprintf("%s, exit %d (%s)", e.Status, e.ExitCode, e.Reason)
	}
	return fmt.Sprintf("%s, exit %d", e.Status, e.ExitCode)
}

// signalName turns Go's name of a signal ("killed") into its usual one
// (SIGKILL).
func signalName(s string) string {
	for i := syscall.Signal(1); i < 32; i++ {
		if i.String() == s {
			if n := unix.SignalName(i); n != "" {
				return n
			}
		}
	}
	return s
}

// operationName turns OperationTypeApply into apply.
func operationName(op string) string {
	if s, ok := strings.CutPrefix(op, "OperationType"); ok {
		return strings.ToLower(s)
	}
	return op
}

// union is the total length of possibly overlapping spans.
func union(spans [][2]time.Time) time.Duration {
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, s := range spans {
		if s[1].Before(s[0]) {
			continue
		}
		if i == 0 || cur[1].IsZero() || s[0].After(cur[1]) {
			if !cur[1].IsZero() {
				total += cur[1].Sub(cur[0])
			}
			cur = s
			continue
		}
		if s[1].After(cur[1]) {
			cur[1] = s[1]
		}
	}
	if !cur[1].IsZero() {
		total += cur[1].Sub(cur[0])
	}
	return total
}

// totals sums the chains per state key, and per holder within it: blocked
// time as the union of the chains' spans (a waiter that met two holders in
// turn, or two chains at once, count once), waiting and orphaned time as
// sums.
func totals(chains []Chain) []StateTotal {
	idx := map[string]int{}
	var out []StateTotal
	spans := map[string][][2]time.Time{}
	holderSpans := map[[2]string][][2]time.Time{}
	for _, c := range chains {
		i, ok := idx[c.StateKey]
		if !ok {
			i = len(out)
			idx[c.StateKey] = i
			out = append(out, StateTotal{StateKey: c.StateKey, ByHolder: []HolderTotal{}})
		}
		st := &out[i]
		st.WaitedMS += c.WaitedMS
		st.OrphanedMS += c.OrphanedMS
		st.Chains++
		spans[c.StateKey] = append(spans[c.StateKey], c.spans...)
		hk := [2]string{c.StateKey, c.Holder.Who}
		holderSpans[hk] = append(holderSpans[hk], c.spans...)
		found := false
		for j := range st.ByHolder {
			if st.ByHolder[j].Who == c.Holder.Who {
				st.ByHolder[j].Chains++
				found = true
			}
		}
		if !found {
			st.ByHolder = append(st.ByHolder, HolderTotal{Who: c.Holder.Who, Chains: 1})
		}
	}
	for i := range out {
		st := &out[i]
		st.BlockedMS = union(spans[st.StateKey]).Milliseconds()
		for j := range st.ByHolder {
			st.ByHolder[j].BlockedMS = union(holderSpans[[2]string{st.StateKey, st.ByHolder[j].Who}]).Milliseconds()
		}
		sort.SliceStable(st.ByHolder, func(a, b int) bool { return st.ByHolder[a].BlockedMS > st.ByHolder[b].BlockedMS })
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].BlockedMS > out[b].BlockedMS })
	if out == nil {
		out = []StateTotal{}
	}
	return out
}
