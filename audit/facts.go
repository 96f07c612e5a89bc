package audit

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// facts holds what one reading of the log (an Explain, a Timeline) has
// learnt about sessions and commands, so that each is read once, through
// its index.
type facts struct {
	d        *DB
	sessions map[string]*sessionFacts
	commands map[string]*commandFacts
}

func newFacts(d *DB) *facts {
	return &facts{d: d, sessions: map[string]*sessionFacts{}, commands: map[string]*commandFacts{}}
}

type sessionFacts struct {
	who string
	ci  *CIRun
}

type commandFacts struct {
	sessionID   string
	line        string
	subcommand  string
	lockTimeout string
	end         *CommandEnd
	endAt       time.Time
	// acquired are the locks the command was seen taking.
	acquired []lockSeen
}

type lockSeen struct {
	at time.Time
	id string
}

// lockData is the part of a lock event's data explain and the timeline
// read.
type lockData struct {
	Info *struct {
		ID        string    `json:"ID"`
		Operation string    `json:"Operation"`
		Who       string    `json:"Who"`
		Created   time.Time `json:"Created"`
		Info      string    `json:"Info"`
	} `json:"info"`
	PID      int    `json:"pid"`
	HeldMS   int64  `json:"held_ms"`
	WaitedMS int64  `json:"waited_ms"`
	Ended    string `json:"ended"`
	Message  string `json:"message"`
	Source   string `json:"source"` // backend, inferred, output
	// force_unlock, hold_*
	Who     string `json:"who"`
	Reason  string `json:"reason"`
	Method  string `json:"method"`
	Expired bool   `json:"expired"`
	// integrity_check
	Verdict string `json:"verdict"`
}

func (f *facts) session(ctx context.Context, id string) (*sessionFacts, error) {
	if s, ok := f.sessions[id]; ok {
		return s, nil
	}
	s := &sessionFacts{}
	err := f.d.Events(ctx, EventFilter{SessionID: id, Kinds: []string{KindSessionStart}}, func(e Event) error {
		var info SessionInfo
		if json.Unmarshal(e.Data, &info) == nil {
			s.who = info.User + "@" + info.Host
			if p := info.CI["provider"]; p != "" {
				s.ci = &CIRun{Provider: p, RunID: info.CI["run_id"], Workflow: info.CI["workflow"], Job: info.CI["job"], Actor: info.CI["actor"], URL: info.CI["url"]}
			}
		}
		return nil
	})
	f.sessions[id] = s
	return s, err
}

func (f *facts) command(ctx context.Context, id string) (*commandFacts, error) {
	if c, ok := f.commands[id]; ok {
		return c, nil
	}
	c := &commandFacts{}
	err := f.d.Events(ctx, EventFilter{CommandID: id, Kinds: []string{KindCommandStart, KindCommandEnd, kindLockAcquired}}, func(e Event) error {
		c.sessionID = e.SessionID
		switch e.Kind {
		case KindCommandStart:
			var info CommandInfo
			if json.Unmarshal(e.Data, &info) == nil {
				c.line = info.Line
				if c.line == "" {
					c.line = strings.Join(info.Typed, " ")
				}
				c.subcommand = info.Subcommand
				c.lockTimeout = lockTimeout(info.Effective)
			}
		case kindLockAcquired:
			c.acquired = append(c.acquired, lockSeen{at: e.At, id: e.LockID})
		case KindCommandEnd:
			c.end = new(CommandEnd)
			_ = json.Unmarshal(e.Data, c.end)
			c.endAt = e.At
		}
		return nil
	})
	f.commands[id] = c
	return c, err
}

// lockTimeout is the last -lock-timeout in argv (terraform's flags are
// last-wins), or "".
func lockTimeout(argv []string) string {
	v := ""
	for _, a := range argv {
		a = strings.TrimPrefix(a, "-")
		if rest, ok := strings.CutPrefix(a, "-lock-timeout="); ok {
			v = rest
		} else if rest, ok := strings.CutPrefix(a, "lock-timeout="); ok {
			v = rest
		}
	}
	return v
}

// party fills who ran a command.
func (f *facts) party(ctx context.Context, sessionID, commandID string) (Party, error) {
	p := Party{SessionID: sessionID, CommandID: commandID, Recorded: true}
	if commandID != "" {
		c, err := f.command(ctx, commandID)
		if err != nil {
			return p, err
		}
		p.Command = c.line
	}
	s, err := f.session(ctx, sessionID)
	if err != nil {
		return p, err
	}
	p.Who, p.CI = s.who, s.ci
	return p, nil
}
