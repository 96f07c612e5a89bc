package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// holderQuery finds the tfsh session and command that took a lock: the
// first lock_acquired (or hold_placed) with that ID that a command recorded
// (tfsh watch's evidence names no session that took it), through the
// events_lock index, with its session's session_start (events_session)
// and its command's command_start (events_command), in one statement.
const holderQuery = `SELECT a.kind, a.at, a.session_id, COALESCE(a.command_id, ''), a.data,
	COALESCE((SELECT s.data FROM events s WHERE s.session_id = a.session_id AND s.kind = '` + KindSessionStart + `' ORDER BY s.seq LIMIT 1), ''),
	COALESCE((SELECT c.data FROM events c WHERE c.command_id = a.command_id AND c.kind = '` + KindCommandStart + `' ORDER BY c.seq LIMIT 1), '')
FROM events a
WHERE a.lock_id = ? AND a.kind IN ('` + kindLockAcquired + `', '` + kindHoldPlaced + `')
	AND COALESCE(json_extract(a.data, '$.source'), '') != '` + sourceWatch + `'
ORDER BY a.seq LIMIT 1`

// LockHolder says who took a lock, when this log recorded it: the session
// (user@host and its CI run) and the command (the line as typed) whose
// lock_acquired or hold_placed carries the ID, and when tfsh saw it taken.
// found is false for a lock the log never saw taken: plain terraform, or
// tfsh with another log. It is one indexed query.
func (d *DB) LockHolder(ctx context.Context, lockID string) (p Party, at time.Time, found bool, err error) {
	if strings.TrimSpace(lockID) == "" {
		return p, at, false, nil
	}
	var kind, sessionID, commandID, data, sessionData, commandData string
	var ns int64
	err = d.db.QueryRowContext(ctx, holderQuery, lockID).Scan(&kind, &ns, &sessionID, &commandID, &data, &sessionData, &commandData)
	if errors.Is(err, sql.ErrNoRows) {
		return p, at, false, nil
	}
	if err != nil {
		return p, at, false, fmt.Errorf("read the holder of lock %s: %w", lockID, err)
	}
	p = Party{SessionID: sessionID, CommandID: commandID, Recorded: true}
	var s SessionInfo
	if json.Unmarshal([]byte(sessionData), &s) == nil {
		p.Who = s.User + "@" + s.Host
		if prov := s.CI["provider"]; prov != "" {
			p.CI = &CIRun{Provider: prov, RunID: s.CI["run_id"], Workflow: s.CI["workflow"], Job: s.CI["job"], Actor: s.CI["actor"], URL: s.CI["url"]}
		}
	}
	var c CommandInfo
	if json.Unmarshal([]byte(commandData), &c) == nil {
		p.Command = c.Line
		if p.Command == "" {
			p.Command = strings.Join(c.Typed, " ")
		}
	}
	var ld lockData
	_ = json.Unmarshal([]byte(data), &ld)
	switch {
	case kind == kindHoldPlaced:
		p.Operation, p.Hold = "hold", ld.Reason
	case ld.Info != nil:
		p.Operation = operationName(ld.Info.Operation)
	}
	return p, time.Unix(0, ns).UTC(), true, nil
}

// ciNames are the CI providers as their users write them.
var ciNames = map[string]string{"github": "GitHub", "gitlab": "GitLab", "jenkins": "Jenkins", "buildkite": "Buildkite", "circleci": "CircleCI", "ci": "CI"}

// CIName is a CI provider as its users write it: github → GitHub.
func CIName(provider string) string {
	if n := ciNames[provider]; n != "" {
		return n
	}
	return provider
}

// Line says who a party is, from where, running what: "bob via GitHub run
// 1234, job deploy (root@runner-7): apply -auto-approve". Recorded values
// holding control characters are quoted, so that the line is safe on a
// terminal. explain, tfsh locks and the wait line all say it this way.
func (p Party) Line() string {
	s := printable(p.Who)
	if ci := p.CI; ci != nil {
		via := printable(CIName(ci.Provider))
		if ci.RunID != "" {
			via += " run " + printable(ci.RunID)
		}
		if ci.Job != "" {
			via += ", job " + printable(ci.Job)
		}
		if ci.Actor != "" {
			s = printable(ci.Actor) + " via " + via + " (" + s + ")"
		} else {
			s += " via " + via
		}
	}
	if p.Command != "" {
		s += ": " + printable(p.Command)
	} else if p.Operation != "" {
		s += ": " + printable(p.Operation)
	}
	return s
}

// printable quotes a string that holds control or formatting characters
// (an escape sequence in a recorded value must not reach a terminal).
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	}) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
