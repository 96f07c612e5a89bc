package lock

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// HoldOperation is the Operation of a change-freeze hold's lock record
// (tfsh hold): what plain terraform and tofu users see in the Lock Info of
// their error.
const HoldOperation = "tfsh-hold"

var holdUntilRE = regexp.MustCompile(`\(tfsh hold until (\S+)\)$`)

// HoldExpiry is when a hold ends, if info is a hold placed with a duration.
func HoldExpiry(info *Info) (time.Time, bool) {
	if info == nil || info.Operation != HoldOperation {
		return time.Time{}, false
	}
	m := holdUntilRE.FindStringSubmatch(info.Info)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, m[1])
	return t, err == nil
}

// ReleaseExpiredHold removes recs, the records of one state's lock as an
// Editor read them, when they are a hold whose time is up at now: each
// with a compare-and-delete, so that a lock taken since is never removed.
// It releases nothing (and says why) when another mechanism holds a
// different lock. released is false, with no error, when recs is no
// expired hold.
func ReleaseExpiredHold(ctx context.Context, ed Editor, recs []Record, now time.Time) (until time.Time, where []string, released bool, err error) {
	if len(recs) == 0 {
		return until, nil, false, nil
	}
	until, ok := HoldExpiry(recs[0].Info)
	if !ok || now.Before(until) {
		return until, nil, false, nil
	}
	for _, r := range recs[1:] {
		// Both mechanisms must hold this same hold: a real lock in the
		// other one (a client that uses only that one) is not touched.
		if r.Info.ID != recs[0].Info.ID {
			return until, nil, false, fmt.Errorf("an expired hold (%s) is at %s, but %s holds another lock (%s by %s): releasing nothing; see tfsh locks", recs[0].Info.ID, recs[0].Where, r.Where, r.Info.ID, r.Info.Who)
		}
	}
	for _, r := range recs {
		if _, err := ed.Remove(ctx, r); err != nil && !errors.Is(err, ErrGone) {
			return until, where, false, fmt.Errorf("could not release the expired hold at %s: %v", r.Where, err)
		}
		where = append(where, r.Where)
	}
	return until, where, true, nil
}
