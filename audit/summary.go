package audit

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// CommandSummary is what a pipeline wants to know about one command once
// it has ended: what the policy decided, how it ended, which lock it held
// and what it waited for. `tfsh run --json` prints it.
type CommandSummary struct {
	SessionID string          `json:"session_id"`
	CommandID string          `json:"command_id"`
	Command   string          `json:"command"` // as typed, redacted
	StateKey  string          `json:"state_key,omitempty"`
	Decision  SummaryDecision `json:"decision"`
	Status    string          `json:"status"`
	ExitCode  int             `json:"exit_code"`
	Signal    string          `json:"signal,omitempty"`
	Duration  int64           `json:"duration_ms"`
	// Lock is the lock the command took, if tfsh saw it.
	Lock *SummaryLock `json:"lock,omitempty"`
	// Waited lists the locks the command waited for (one per holder).
	Waited []SummaryWait `json:"waited"`
	// WaitedMS is the time the command spent waiting in all.
	WaitedMS int64 `json:"waited_ms"`
	// Contention is the holder named by terraform's "Error acquiring the
	// state lock", when the command failed on the lock.
	Contention *SummaryHolder `json:"contention,omitempty"`
}

// SummaryDecision is the policy's decision on the command.
type SummaryDecision struct {
	Action  string   `json:"action"`
	Rule    string   `json:"rule,omitempty"`
	Source  string   `json:"source,omitempty"`
	Message string   `json:"message,omitempty"`
	Added   []string `json:"added,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// SummaryLock is the command's own lock.
type SummaryLock struct {
	ID     string `json:"id,omitempty"`
	HeldMS int64  `json:"held_ms"`
	// End is released, orphaned, release failed, or held (not seen to end).
	End string `json:"end"`
}

// SummaryWait is one wait for another's lock.
type SummaryWait struct {
	Holder SummaryHolder `json:"holder"`
	// By is who took the lock, as this audit log recorded it (CI run,
	// command), when it did.
	By       *Party `json:"by,omitempty"`
	WaitedMS int64  `json:"waited_ms"`
	Ended    string `json:"ended,omitempty"` // released, command ended
}

// SummaryHolder is who held a lock, as its record says.
type SummaryHolder struct {
	LockID    string    `json:"lock_id,omitempty"`
	Who       string    `json:"who,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Created   time.Time `json:"created,omitzero"`
}

// Summary reads one command's record back as a CommandSummary.
func (d *DB) Summary(ctx context.Context, commandID string) (*CommandSummary, error) {
	s := &CommandSummary{CommandID: commandID, Waited: []SummaryWait{}}
	waits := map[string]int{}
	holder := func(lockID string, ld lockData) SummaryHolder {
		h := SummaryHolder{LockID: lockID}
		if ld.Info != nil {
			h.Who, h.Operation, h.Created = ld.Info.Who, operationName(ld.Info.Operation), ld.Info.Created
		}
		return h
	}
	err := d.Events(ctx, EventFilter{CommandID: commandID}, func(e Event) error {
		s.SessionID = e.SessionID
		var ld lockData
		switch e.Kind {
		case KindCommandStart:
			var info CommandInfo
			if json.Unmarshal(e.Data, &info) == nil {
				s.Command = info.Line
				if s.Command == "" {
					s.Command = strings.Join(info.Typed, " ")
				}
			}
			s.StateKey = e.StateKey
		case KindPolicyDecision:
			var dec Decision
			if json.Unmarshal(e.Data, &dec) == nil {
				s.Decision = SummaryDecision{Action: dec.Action, Rule: dec.Rule, Source: dec.Source, Message: dec.Message, Added: dec.Added, Reason: dec.Reason}
			}
		case KindCommandEnd:
			var end CommandEnd
			if json.Unmarshal(e.Data, &end) == nil {
				s.Status, s.ExitCode, s.Signal, s.Duration = end.Status, end.ExitCode, end.Signal, end.DurationMS
			}
		case kindLockAcquired:
			_ = json.Unmarshal(e.Data, &ld)
			if s.Lock == nil {
				s.Lock = &SummaryLock{ID: e.LockID, End: "held"}
			}
		case kindLockReleased, kindLockOrphaned, kindReleaseFailed:
			_ = json.Unmarshal(e.Data, &ld)
			if s.Lock != nil && (s.Lock.ID == "" || s.Lock.ID == e.LockID) {
				switch e.Kind {
				case kindLockReleased:
					if s.Lock.End != "release failed" {
						s.Lock.End = "released"
					}
					s.Lock.HeldMS = ld.HeldMS
				case kindLockOrphaned:
					s.Lock.End = "orphaned"
				default:
					s.Lock.End = "release failed"
				}
			}
		case kindLockWait:
			_ = json.Unmarshal(e.Data, &ld)
			waits[e.LockID] = len(s.Waited)
			w := SummaryWait{Holder: holder(e.LockID, ld)}
			var hd struct {
				Holder *Party `json:"holder"`
			}
			if json.Unmarshal(e.Data, &hd) == nil && hd.Holder != nil {
				w.By = hd.Holder
			}
			s.Waited = append(s.Waited, w)
		case kindLockWaitEnd:
			_ = json.Unmarshal(e.Data, &ld)
			if i, ok := waits[e.LockID]; ok {
				s.Waited[i].WaitedMS, s.Waited[i].Ended = ld.WaitedMS, ld.Ended
				s.WaitedMS += ld.WaitedMS
			}
		case kindLockContention:
			_ = json.Unmarshal(e.Data, &ld)
			h := holder(e.LockID, ld)
			s.Contention = &h
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.SessionID == "" {
		return nil, ErrNotFound
	}
	return s, nil
}
