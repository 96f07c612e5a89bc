package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/teamlog"
	"github.com/tfsh/tfsh/policy"
)

// sharedSink is where this tfsh also sends its events: the policy's (or
// .tfsh/config.hcl's) audit block, overridden by TFSH_AUDIT_DYNAMODB_TABLE.
type sharedSink struct {
	table   string
	timeout time.Duration
	ttl     time.Duration
	from    string // where the table was named
}

func sinkFrom(s policy.Settings, getenv func(string) string) (sharedSink, error) {
	out := sharedSink{table: s.AuditTable, timeout: s.AuditShipTimeout, from: s.Source["audit.dynamodb_table"]}
	if out.timeout <= 0 {
		out.timeout = 2 * time.Second
	}
	if s.AuditTTLDays > 0 {
		out.ttl = time.Duration(s.AuditTTLDays) * 24 * time.Hour
	}
	if t := getenv("TFSH_AUDIT_DYNAMODB_TABLE"); t != "" && t != out.table {
		if by, ok := s.Enforced["audit.dynamodb_table"]; ok {
			return out, fmt.Errorf("TFSH_AUDIT_DYNAMODB_TABLE=%s: the policy enforces audit { dynamodb_table = %q } (%s); unset it", t, out.table, by)
		}
		out.table, out.from = t, "TFSH_AUDIT_DYNAMODB_TABLE"
	}
	return out, nil
}

// startShipping ships the log's events to the shared table in the
// background, kicked after every commit; nothing waits for it until the
// session ends (stopShipping). A conflict is said on stderr and recorded
// in the session (audit_conflict, through record), once.
func startShipping(db *audit.DB, record func(ctx context.Context, kind string, data any) error, sink sharedSink, stderr io.Writer) *teamlog.Runner {
	connect := func(ctx context.Context) (teamlog.API, error) { return teamlog.NewClient(ctx, teamlog.Background) }
	r := &teamlog.Runner{
		Shipper: &teamlog.Shipper{DB: db, Connect: connect, Table: sink.table, TTL: sink.ttl},
		OnConflict: func(err error) {
			fmt.Fprintf(stderr, "tfsh: AUDIT CONFLICT: %v\n", err)
			var ce *teamlog.ConflictError
			if errors.As(err, &ce) {
				if rerr := record(context.Background(), teamlog.KindConflict, ce); rerr != nil {
					fmt.Fprintf(stderr, "tfsh: could not record the conflict: %v\n", rerr)
				}
			}
		},
	}
	db.AfterCommit = r.Kick
	r.Start()
	return r
}

// stopShipping waits at most the sink's bound for the last events to ship
// and says how many are left queued, and why.
func stopShipping(r *teamlog.Runner, sink sharedSink, stderr io.Writer) {
	left, err := r.Close(sink.timeout)
	if left == 0 {
		return
	}
	var ce *teamlog.ConflictError
	why := "not shipped yet"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		why = fmt.Sprintf("still shipping after %s", sink.timeout)
	case errors.Is(err, teamlog.ErrWrittenAfter):
		why = "written after the last ship"
	case errors.As(err, &ce):
		why = fmt.Sprintf("stopped at a conflict at %s", ce.Key)
	case err != nil:
		why = "unreachable: " + shortErr(err)
	}
	fmt.Fprintf(stderr, "tfsh: %d audit %s queued for dynamodb://%s (%s); they ship with the next command or `tfsh audit push`\n",
		left, plural(int(left), "event", "events"), sink.table, why)
}

// shortErr is the part of an SDK error a person needs: the network error
// if there is one, on one line.
func shortErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// configuredSink reads the audit block in effect in the current directory.
func configuredSink(getenv func(string) string) (sharedSink, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return sharedSink{}, err
	}
	loaded, err := (&policy.Loader{Base: cwd, Getenv: getenv}).For(cwd)
	if err == nil {
		err = loaded.Err()
	}
	if err != nil {
		return sharedSink{}, err
	}
	return sinkFrom(loaded.Policy.Settings, getenv)
}

// openTeam opens the log at path with open and a client for the shared
// table.
func openTeam(ctx context.Context, open func(context.Context, string) (*audit.DB, error), path string) (*audit.DB, *dynamodb.Client, error) {
	db, err := open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	c, err := teamlog.NewClient(ctx, teamlog.Foreground)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, c, nil
}

func auditInitTable(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit init-table")
	table := fs.String("table", teamlog.DefaultTable, "table name")
	ttlDays := fs.Int("ttl-days", 0, "turn on expiry of shipped events (set audit { ttl_days } too)")
	if err := fs.Parse(args); err != nil {
		return flagError("audit init-table", err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit init-table takes no arguments (%q)", fs.Arg(0))}
	}
	if *ttlDays < 0 {
		return &usageError{"--ttl-days must be 0 (no expiry) or more"}
	}
	c, err := teamlog.NewClient(ctx, teamlog.Foreground)
	if err != nil {
		return err
	}
	created, err := teamlog.InitTable(ctx, c, *table, *ttlDays > 0)
	noExpiry := errors.Is(err, teamlog.ErrNoExpiry)
	if err != nil && !noExpiry {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created table %s (on-demand; indexes by_day, by_state, by_session)\n", *table)
	} else {
		fmt.Fprintf(stdout, "table %s exists with the shared audit log's keys and indexes\n", *table)
	}
	if noExpiry {
		fmt.Fprintf(stdout, "warning: %v\n", err)
	} else if *ttlDays > 0 {
		fmt.Fprintf(stdout, "expiry is on (attribute expires); give writers audit { ttl_days = %d } so that shipped events carry it\n", *ttlDays)
	}
	return nil
}

func auditPush(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit push")
	dbPath := fs.String("audit-db", "", "audit log path")
	to := fs.String("to", "", "dynamodb://TABLE (default: the configured one)")
	if err := fs.Parse(args); err != nil {
		return flagError("audit push", err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit push takes no arguments (%q)", fs.Arg(0))}
	}
	sink, err := configuredSink(os.Getenv)
	if err != nil {
		return err
	}
	if *to != "" {
		if sink.table, err = teamlog.ParseURL(*to); err != nil {
			return &usageError{"--to " + err.Error()}
		}
	}
	if sink.table == "" {
		return &usageError{"no shared table: give --to dynamodb://TABLE, or set audit { dynamodb_table = \"…\" } in .tfsh/config.hcl or TFSH_AUDIT_DYNAMODB_TABLE"}
	}
	db, c, err := openTeam(ctx, openAuditForReading, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	s := &teamlog.Shipper{DB: db, Client: c, Table: sink.table, TTL: sink.ttl}
	res, err := s.Ship(ctx)
	fmt.Fprintf(stdout, "dynamodb://%s: %d %s shipped, %d already there, %d output chunks; %d left\n",
		sink.table, res.Shipped, plural(res.Shipped, "event", "events"), res.Already, res.Chunks, res.Left)
	return err
}

func auditPull(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit pull")
	dbPath := fs.String("audit-db", "", "audit log path")
	from := fs.String("from", "", "dynamodb://TABLE")
	since := fs.String("since", "", "events at or after this time")
	until := fs.String("until", "", "events before this time")
	state := fs.String("state", "", "the sessions with a command on this state key")
	session := fs.String("session", "", "one session")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := fs.Parse(args); err != nil {
		return flagError("audit pull", err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit pull takes no arguments (%q)", fs.Arg(0))}
	}
	if *from == "" {
		return &usageError{"audit pull needs --from dynamodb://TABLE"}
	}
	table, err := teamlog.ParseURL(*from)
	if err != nil {
		return &usageError{"--from " + err.Error()}
	}
	if *state != "" && *session != "" {
		return &usageError{"give --state or --session, not both"}
	}
	if *session != "" && (*since != "" || *until != "") {
		return &usageError{"--session pulls the whole session: --since and --until do not go with it"}
	}
	now := time.Now()
	var f teamlog.PullFilter
	if f.Since, err = parseTime("--since", *since, now); err != nil {
		return err
	}
	if f.Until, err = parseTime("--until", *until, now); err != nil {
		return err
	}
	f.StateKey, f.SessionID = *state, *session
	// Pulling into a log that does not exist yet creates it.
	db, c, err := openTeam(ctx, func(ctx context.Context, path string) (*audit.DB, error) {
		if path == "" {
			var err error
			if path, err = audit.DefaultPath(); err != nil {
				return nil, err
			}
		}
		return audit.Open(ctx, path)
	}, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	res, err := (&teamlog.Puller{Client: c, Table: table}).Pull(ctx, db, f)
	if err != nil {
		return err
	}
	took := time.Since(start)
	v, err := db.Verify(ctx)
	if err != nil {
		return err
	}
	notPulled := 0
	for _, o := range v.Origins {
		notPulled += len(o.Gaps)
	}
	if *asJSON {
		if err := writeJSON(stdout, struct {
			*teamlog.PullResult
			NotPulled int                 `json:"stretches_not_pulled,omitempty"`
			Verify    *audit.VerifyResult `json:"verify"`
		}{res, notPulled, v}); err != nil {
			return err
		}
	} else {
		added := 0
		for _, o := range res.Origins {
			added += o.Added
			fmt.Fprintf(stdout, "log %s: %d added, %d already here, %d output chunks\n", o.LogID, o.Added, o.Skipped, o.Chunks)
		}
		fmt.Fprintf(stdout, "pulled %d %s from dynamodb://%s into %s in %s: %d events added\n",
			res.Items, plural(res.Items, "item", "items"), table, db.Path(), took.Round(time.Millisecond), added)
		renderVerify(stdout, db.Path(), v)
		if notPulled > 0 {
			fmt.Fprintf(stdout, "note: %d %s of the pulled logs' chains %s not here: a --state, --session or --since pull takes only part of them (what is here is checked; a wider pull fetches the rest)\n",
				notPulled, plural(notPulled, "stretch", "stretches"), plural(notPulled, "is", "are"))
		}
	}
	if !v.OK() {
		return errLogBroken
	}
	return nil
}
