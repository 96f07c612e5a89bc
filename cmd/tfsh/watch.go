package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/hooks"
	"github.com/tfsh/tfsh/internal/teamlog"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/shell"
)

const watchUsage = `Usage:
  tfsh watch [--table NAME] [--bucket NAME [--prefix P]] [--interval 1s] [--once] [--json]
             [--path-style] [--dir DIR] [--audit-db PATH]

Watches the lock table and the .tflock objects of a bucket for every lock anyone takes
(tfsh, plain terraform and tofu, CI runners) and records each acquisition and release in the
audit log (source "watch"). Runs until SIGTERM or SIGINT (then it finishes the poll, records
the end of its session and exits 0); --once polls once and exits (1 if a read failed or a
lock record was unreadable). It logs one line per
transition to stderr (--json: one JSON object per line).

  --table NAME     DynamoDB lock table (the backend's dynamodb_table)
  --bucket NAME    S3 bucket of the states' .tflock objects (use_lockfile)
  --prefix P       only keys under P (default: the whole bucket)
  --interval D     time between polls (default 1s, at least 100ms)
  --path-style     address the bucket in the path (S3-compatible servers)
  --dir DIR        where the policy (lock_held_alert) and .tfsh/hooks.hcl are read from
                   (default: the current directory)

Endpoints, region and credentials come from the AWS SDK's own configuration: AWS_ENDPOINT_URL,
AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3, AWS_PROFILE, AWS_REGION and the credential
chain. The watcher also releases change-freeze holds whose time is up (tfsh hold --for), and
fires the lock_held_long hook for a lock held longer than the policy's lock_held_alert.
`

// minWatchInterval keeps a mistyped interval from turning the watcher into
// a load test of the lock table.
const minWatchInterval = 100 * time.Millisecond

// maxWatchBackoff bounds the wait after failed polls.
const maxWatchBackoff = time.Minute

// KindLockHeldLong is the audit event of a lock held longer than the
// policy's lock_held_alert.
const KindLockHeldLong = "lock_held_long"

// watchRecord is the data of the lock events tfsh watch records.
type watchRecord struct {
	Source     string           `json:"source"` // always "watch"
	Info       *lock.Info       `json:"info,omitempty"`
	Mechanisms []lock.Mechanism `json:"mechanisms"`
	// Where names the records, as lock.Event does: the DynamoDB item
	// and/or the .tflock object, joined by " and ".
	Where string `json:"where"`
	// Since is when the lock was taken, as well as the watcher can tell:
	// its Created, or when it was first seen if Created is older than the
	// poll before (terraform waited).
	Since     time.Time `json:"since"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// HeldAtStart: there when the watcher started; when it was taken is
	// known only from Created.
	HeldAtStart bool `json:"held_at_start,omitempty"`
	// Replaced: another lock ID took the state between two polls.
	Replaced bool  `json:"replaced,omitempty"`
	HeldMS   int64 `json:"held_ms,omitempty"`
	// ThresholdMS is the lock_held_alert a lock_held_long event crossed.
	ThresholdMS int64 `json:"threshold_ms,omitempty"`
}

// watchHoldRecord is the data of hold_released when the watcher releases an
// expired hold: the same fields tfsh hold records.
type watchHoldRecord struct {
	Source  string     `json:"source"`
	Who     string     `json:"who"`
	Until   time.Time  `json:"until"`
	Info    *lock.Info `json:"info"`
	Where   []string   `json:"where"`
	Expired bool       `json:"expired"`
}

type watchOptions struct {
	spec     lock.TeamSpec
	interval time.Duration
	once     bool
	json     bool
	dir      string
	auditDB  string
}

func watchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("watch")
	var o watchOptions
	fs.StringVar(&o.spec.Table, "table", "", "DynamoDB lock table")
	fs.StringVar(&o.spec.Bucket, "bucket", "", "S3 bucket of .tflock objects")
	fs.StringVar(&o.spec.Prefix, "prefix", "", "key prefix in the bucket")
	fs.BoolVar(&o.spec.PathStyle, "path-style", false, "path-style S3 addressing")
	fs.DurationVar(&o.interval, "interval", time.Second, "time between polls")
	fs.BoolVar(&o.once, "once", false, "poll once and exit")
	fs.BoolVar(&o.json, "json", false, "JSON log lines")
	fs.StringVar(&o.dir, "dir", "", "directory of the policy and hooks")
	fs.StringVar(&o.auditDB, "audit-db", "", "audit log path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, watchUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("watch", err))
		return exitCannotRun
	}
	prefixSet := false
	fs.Visit(func(f *flag.Flag) { prefixSet = prefixSet || f.Name == "prefix" })
	switch {
	case fs.NArg() > 0:
		fmt.Fprintln(stderr, "tfsh: watch takes no arguments (see tfsh watch --help)")
		return exitCannotRun
	case o.spec.Table == "" && o.spec.Bucket == "":
		fmt.Fprintln(stderr, "tfsh: watch needs --table (the DynamoDB lock table), --bucket (the .tflock objects), or both (see tfsh watch --help)")
		return exitCannotRun
	case prefixSet && o.spec.Bucket == "":
		fmt.Fprintln(stderr, "tfsh: --prefix is a key prefix in --bucket: give the bucket too")
		return exitCannotRun
	case o.interval < minWatchInterval:
		fmt.Fprintf(stderr, "tfsh: --interval %s is too short: at least %s (each poll is a Scan and a listing)\n", o.interval, minWatchInterval)
		return exitCannotRun
	}
	if o.dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: %v\n", err)
			return exitCannotRun
		}
		o.dir = wd
	}
	// Catch the signals before anything is recorded: a SIGTERM from the
	// moment the session starts ends it cleanly.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return runWatch(ctx, o, sigs, stderr)
}

// watcher is one running tfsh watch.
type watcher struct {
	o       watchOptions
	log     *watchLog
	tw      *lock.TableWatcher
	sess    *audit.Session
	hooks   *hooks.Runner
	alert   time.Duration
	alertAt string // where lock_held_alert was set
	who     string
	host    string

	// pending are events not yet written: the audit log failed (a full
	// disk, a lock held too long); they are retried, in order, before
	// each new one and at the end.
	mu          sync.Mutex
	pending     []pendingEvent
	dropped     int
	alerted     map[string]bool        // lock IDs lock_held_long fired for
	failed      map[string]holdFailure // lock ID → the last problem releasing it
	problems    map[string]bool        // problems being logged, so that each is logged once until it clears
	lastProblem string                 // the last audit log problem logged
	hookRuns    sync.WaitGroup
}

func runWatch(ctx context.Context, o watchOptions, sigs <-chan os.Signal, stderr io.Writer) int {
	log := &watchLog{w: stderr, json: o.json}
	loaded, code := loadInEffect(o.dir, o.dir, stderr)
	if code != 0 {
		return code
	}
	runner, err := shell.LoadHooks(o.dir, o.dir, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	tw, err := lock.NewTableWatcher(ctx, o.spec, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: watch: %v\n", err)
		return exitCannotRun
	}
	path := o.auditDB
	if path == "" {
		if path, err = audit.DefaultPath(); err != nil {
			fmt.Fprintf(stderr, "tfsh: %v\n", err)
			return exitCannotRun
		}
	}
	db, err := audit.Open(ctx, path)
	if err != nil {
		// A watcher that records nothing is no use: never run unrecorded.
		fmt.Fprintf(stderr, "tfsh: watch: %v\n", err)
		return exitCannotRun
	}
	defer db.Close()
	setupAnchors(ctx, db, true, os.Getenv, stderr)
	host, _ := os.Hostname()
	w := &watcher{o: o, log: log, tw: tw, hooks: runner, who: userName(), host: host,
		alert: loaded.Policy.Settings.LockHeldAlert, alertAt: loaded.Policy.Settings.Source["lock_held_alert"],
		alerted: map[string]bool{}, failed: map[string]holdFailure{}, problems: map[string]bool{}}
	sess, crashed, err := db.StartSession(ctx, audit.SessionInfo{
		Mode: "watch", User: w.who, Host: host, PID: os.Getpid(), PIDStart: audit.ProcessStart(os.Getpid()),
		PIDNS: audit.PIDNamespace(), CWD: o.dir, TfshVersion: tfshVersion(), Args: redactOwnArgs(append([]string{"watch"}, watchArgs(o)...)),
	}, nil)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: watch: %v\n", err)
		return exitCannotRun
	}
	w.sess = sess
	// What the watcher records is what the team most needs to share (the
	// locks of people without tfsh): it ships like any session.
	sink, err := sinkFrom(loaded.Policy.Settings, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: watch: %v\n", err)
		sess.End(context.WithoutCancel(ctx), audit.SessionEnd{Status: "failed", ExitCode: exitCannotRun})
		return exitCannotRun
	}
	var shipper *teamlog.Runner
	if sink.table != "" {
		shipper = startShipping(db, func(ctx context.Context, kind string, data any) error {
			return sess.Append(ctx, kind, "", "", data)
		}, sink, stderr)
		log.line("note", fmt.Sprintf("shipping the audit log to dynamodb://%s (%s)", sink.table, sink.from), nil)
	}
	for _, cs := range crashed {
		log.line("note", fmt.Sprintf("session %s (pid %d) ended without closing; recorded it as crashed", cs.SessionID, cs.PID), nil)
	}
	alert := "off"
	if w.alert > 0 {
		alert = fmt.Sprintf("%s (%s)", w.alert, w.alertAt)
	}
	log.line("start", fmt.Sprintf("watching %s every %s; lock_held_alert %s; audit log %s, session %s", w.targets(), o.interval, alert, path, sess.ID), nil)

	stopped := false
	failures := 0
	for {
		// A signal during a poll lets it finish: what it saw is recorded.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		ok := w.poll(pctx)
		cancel()
		if ok {
			failures = 0
		} else {
			failures++
		}
		if o.once || stopped {
			break
		}
		wait := o.interval
		for i := 0; i < failures && wait < maxWatchBackoff; i++ {
			wait *= 2
		}
		wait = min(wait, max(maxWatchBackoff, o.interval))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case sig := <-sigs:
			t.Stop()
			log.line("stop", fmt.Sprintf("%v: stopping after this poll", sig), nil)
			stopped = true
		case <-ctx.Done():
			t.Stop()
			stopped = true
		}
	}
	w.hookRuns.Wait()
	end := context.WithoutCancel(ctx)
	if !w.flush(end) {
		fmt.Fprintf(stderr, "tfsh: watch: %d events could not be written to the audit log\n", len(w.pending))
	}
	if err := sess.End(end, audit.SessionEnd{Status: "ok"}); err != nil {
		fmt.Fprintf(stderr, "tfsh: watch: could not record the end of the session: %v\n", err)
		return exitCannotRun
	}
	if shipper != nil {
		stopShipping(shipper, sink, stderr)
	}
	log.line("end", fmt.Sprintf("session %s ended; %d requests", sess.ID, tw.Requests()), nil)
	if o.once && failures > 0 {
		return 1 // a cron job learns that its one poll did not read everything
	}
	return 0
}

type pendingEvent struct {
	at                     time.Time
	kind, stateKey, lockID string
	data                   any
}

// maxPending bounds the events kept while the audit log cannot be written.
const maxPending = 10000

// append writes an event of the watcher's session, after any still
// pending; what cannot be written now is kept and retried.
func (w *watcher) append(ctx context.Context, at time.Time, kind, stateKey, lockID string, data any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) >= maxPending {
		w.pending = w.pending[1:]
		w.dropped++
	}
	w.pending = append(w.pending, pendingEvent{at, kind, stateKey, lockID, data})
	w.flushLocked(ctx)
}

// flush retries the pending events; it reports whether none is left.
func (w *watcher) flush(ctx context.Context) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked(ctx)
}

func (w *watcher) flushLocked(ctx context.Context) bool {
	for len(w.pending) > 0 {
		p := w.pending[0]
		if err := w.sess.AppendAt(ctx, p.at, p.kind, p.stateKey, p.lockID, p.data); err != nil {
			w.problem(fmt.Sprintf("audit log: %v (the events are kept and retried)", err))
			return false
		}
		w.pending = w.pending[1:]
	}
	if w.dropped > 0 {
		w.log.line("problem", fmt.Sprintf("audit log: %d events were dropped while it could not be written (more than %d waiting)", w.dropped, maxPending), nil)
		w.dropped = 0
	}
	return true
}

// problem logs a problem once until a different one is met.
func (w *watcher) problem(msg string) {
	if w.lastProblem != msg {
		w.lastProblem = msg
		w.log.line("problem", msg, nil)
	}
}

// watchArgs is the watcher's configuration as flags, for session_start.
func watchArgs(o watchOptions) []string {
	var a []string
	if o.spec.Table != "" {
		a = append(a, "--table", o.spec.Table)
	}
	if o.spec.Bucket != "" {
		a = append(a, "--bucket", o.spec.Bucket, "--prefix", o.spec.Prefix)
	}
	return append(a, "--interval", o.interval.String())
}

func (w *watcher) targets() string {
	var t []string
	if w.o.spec.Table != "" {
		t = append(t, "DynamoDB table "+w.o.spec.Table)
	}
	if w.o.spec.Bucket != "" {
		t = append(t, "s3://"+w.o.spec.Bucket+"/"+w.o.spec.Prefix+"*.tflock")
	}
	return strings.Join(t, " and ")
}

// poll reads once, records the transitions, releases expired holds and
// fires lock_held_long. It reports whether every read succeeded.
func (w *watcher) poll(ctx context.Context) bool {
	w.flush(ctx)
	evs, problems := w.tw.Poll(ctx)
	seen := map[string]bool{}
	for _, p := range problems {
		msg := p.Error()
		seen[msg] = true
		if !w.problems[msg] {
			w.log.line("problem", msg+" (what it showed before is kept; retrying)", nil)
		}
	}
	for msg := range w.problems {
		if !seen[msg] {
			w.log.line("recovered", msg, nil)
		}
	}
	w.problems = seen
	for _, e := range evs {
		w.record(ctx, e)
	}
	now := time.Now()
	for _, l := range w.tw.Locks() {
		w.releaseExpired(ctx, l, now)
		w.heldLong(ctx, l, now)
	}
	return len(problems) == 0
}

func (w *watcher) record(ctx context.Context, e lock.TeamEvent) {
	l := e.Lock
	rec := watchRecord{Source: lock.SourceWatch, Info: l.Info, Mechanisms: l.Mechanisms, Where: strings.Join(l.Where, " and "),
		Since: l.Since.UTC(), FirstSeen: l.FirstSeen.UTC(), LastSeen: l.LastSeen.UTC(), HeldAtStart: l.AtStart, Replaced: e.Replaced}
	kind := lock.KindAcquired
	verb := e.Kind
	if e.Kind == lock.TeamReleased {
		kind = lock.KindReleased
		rec.HeldMS = e.At.Sub(l.Since).Milliseconds()
		delete(w.alerted, l.ID)
		delete(w.failed, l.ID)
	}
	w.append(ctx, e.At, kind, l.StateKey, l.ID, rec)
	msg := fmt.Sprintf("%s %s lock %s by %s (%s) via %s", verb, l.StateKey, l.ID, l.Info.Who, lock.OperationName(l.Info.Operation), joinMechanisms(l.Mechanisms))
	switch {
	case e.Kind == lock.TeamReleased:
		msg += fmt.Sprintf(", held %s", time.Duration(rec.HeldMS)*time.Millisecond)
	case l.AtStart:
		msg += fmt.Sprintf(", since %s", l.Since.UTC().Format(time.RFC3339))
	}
	if e.Replaced {
		msg += " (the lock changed hands between two polls)"
	}
	w.log.line(strings.ReplaceAll(verb, " ", "_"), msg, &l)
}

func joinMechanisms(ms []lock.Mechanism) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, "+")
}

// releaseExpired releases a change-freeze hold whose time is up, with the
// compare-and-delete tfsh hold uses, and records it as tfsh hold does.
func (w *watcher) releaseExpired(ctx context.Context, l lock.TeamLock, now time.Time) {
	if until, ok := lock.HoldExpiry(l.Info); !ok || now.Before(until) {
		return
	}
	if f, ok := w.failed[l.ID]; ok && now.Sub(f.at) < holdRetry {
		return // a denied delete is not retried on every poll
	}
	until, where, released, err := w.tw.ReleaseExpired(ctx, l, now)
	if err != nil {
		if w.failed[l.ID].msg != err.Error() {
			w.log.line("problem", fmt.Sprintf("expired hold %s on %s: %v (retried every %s)", l.ID, l.StateKey, err, holdRetry), &l)
		}
		w.failed[l.ID] = holdFailure{msg: err.Error(), at: now}
		return
	}
	if !released {
		return
	}
	rec := watchHoldRecord{Source: lock.SourceWatch, Who: w.who + "@" + w.host, Until: until.UTC(), Info: l.Info, Where: where, Expired: true}
	w.append(ctx, now, shell.KindHoldReleased, l.StateKey, l.ID, rec)
	w.log.line("hold_expired", fmt.Sprintf("released the expired hold on %s (%s, by %s, until %s)", l.StateKey, l.Info.Info, l.Info.Who, until.UTC().Format(time.RFC3339)), &l)
}

// holdRetry is how long the watcher waits before it tries again to release
// an expired hold it could not release.
const holdRetry = 30 * time.Second

type holdFailure struct {
	msg string
	at  time.Time
}

// heldLong fires lock_held_long once per lock held longer than the
// policy's lock_held_alert, by its Created (else since it was seen).
// Change-freeze holds are left out: they are long on purpose, and have
// their own end.
func (w *watcher) heldLong(ctx context.Context, l lock.TeamLock, now time.Time) {
	if w.alert <= 0 || w.alerted[l.ID] || l.Info.Operation == lock.HoldOperation {
		return // a change-freeze hold is long on purpose
	}
	since := l.Info.Created
	if since.IsZero() {
		since = l.Since
	}
	held := now.Sub(since)
	if held <= w.alert {
		return
	}
	w.alerted[l.ID] = true
	rec := watchRecord{Source: lock.SourceWatch, Info: l.Info, Mechanisms: l.Mechanisms, Where: strings.Join(l.Where, " and "), Since: l.Since.UTC(),
		FirstSeen: l.FirstSeen.UTC(), LastSeen: l.LastSeen.UTC(), HeldAtStart: l.AtStart, HeldMS: held.Milliseconds(), ThresholdMS: w.alert.Milliseconds()}
	w.append(ctx, now, KindLockHeldLong, l.StateKey, l.ID, rec)
	w.log.line("held_long", fmt.Sprintf("%s lock %s by %s (%s) held %s, over lock_held_alert %s", l.StateKey, l.ID, l.Info.Who,
		lock.OperationName(l.Info.Operation), held.Round(time.Second), w.alert), &l)
	if !w.hooks.Wants(hooks.LockHeldLong, "") {
		return
	}
	payload := map[string]any{
		"state_key": l.StateKey, "lock_id": l.ID, "info": l.Info, "where": strings.Join(l.Where, " and "),
		"held_ms": held.Milliseconds(), "threshold_ms": w.alert.Milliseconds(),
		"watcher": map[string]string{"user": w.who, "host": w.host, "session_id": w.sess.ID},
	}
	// Hooks run beside the polls: a slow webhook must not blind the
	// watcher. The session's end waits for them.
	w.hookRuns.Add(1)
	go func() {
		defer w.hookRuns.Done()
		hctx := context.WithoutCancel(ctx)
		for _, r := range w.hooks.Run(hctx, hooks.Event{Name: hooks.LockHeldLong, At: now, Payload: payload}) {
			w.append(hctx, time.Now(), shell.KindHookRun, l.StateKey, l.ID, shell.HookRunRecord(r))
			if r.Status != hooks.StatusOK {
				w.log.line("problem", fmt.Sprintf("hook %q (%s) on lock_held_long %s: %s", r.Hook, r.Source, r.Status, r.Error), nil)
			}
		}
	}()
}

// watchLog writes the watcher's log lines: a UTC timestamp and one line of
// text, no colour (journald and log shippers take it as is), or with
// --json one object per line.
type watchLog struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (l *watchLog) line(event, msg string, lk *lock.TeamLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC()
	if !l.json {
		fmt.Fprintf(l.w, "%s tfsh watch: %s\n", now.Format("2006-01-02T15:04:05.000Z"), printableLine(msg))
		return
	}
	rec := map[string]any{"time": now.Format(time.RFC3339Nano), "event": event, "msg": msg}
	if lk != nil {
		rec["state_key"], rec["lock_id"], rec["info"], rec["where"] = lk.StateKey, lk.ID, lk.Info, strings.Join(lk.Where, " and ")
	}
	b, _ := json.Marshal(rec)
	fmt.Fprintf(l.w, "%s\n", b)
}

// printableLine keeps a log line one line: a lock record's Who or Info
// could hold a newline or an escape sequence.
func printableLine(s string) string {
	return audit.Party{Who: s}.Line()
}
