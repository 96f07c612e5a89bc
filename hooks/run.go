package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Event is one thing that happened. Run sends it to a hook as JSON, on the
// standard input of an exec hook and as the body of a webhook:
//
//	{"event": Name, "at": At (RFC 3339, UTC), "hook": the hook's name, "command": Command, "data": Payload}
//
// "command" is left out when Command is empty.
type Event struct {
	Name    string    // one of Events
	Command string    // the terraform subcommand ("apply", "state mv"), for the commands filter; "" for none
	At      time.Time // when it happened; the time of Run if zero
	Payload any       // marshalled with encoding/json as "data"
}

// The values of Result.Status.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"  // non-zero exit, non-2xx answer
	StatusTimeout = "timeout" // the hook's own timeout ran out
	StatusError   = "error"   // could not run or deliver: no such program, secret missing, connection refused, cancelled
)

// Result is what one hook did with one event.
type Result struct {
	Hook, Source, Event, Kind string // Kind is "exec" or "webhook"
	Duration                  time.Duration
	Status                    string // StatusOK, StatusFailed, StatusTimeout or StatusError
	ExitCode                  int    // exec: the exit code; -1 when it did not exit by itself
	HTTPStatus                int    // webhook: the status of the last attempt; 0 when it got no answer
	Attempts                  int    // webhook: requests sent
	Error                     string // one line for people when Status is not ok; never the secret
	// Output is an exec hook's stderr and stdout, interleaved as written:
	// the last 4 KiB, after a marker line when more was written.
	Output string
	// Refuses is set when the event is before_command, the hook did not
	// succeed (any Status but ok) and its on_failure is refuse: the command
	// must not run.
	Refuses bool
}

// Refusal returns the first result that refuses the command.
func Refusal(results []Result) (Result, bool) {
	for _, r := range results {
		if r.Refuses {
			return r, true
		}
	}
	return Result{}, false
}

// Runner runs the hooks of a Config. Its zero fields take the defaults
// below; it may be used by several goroutines at once.
type Runner struct {
	Config *Config
	Getenv func(string) string // reads secret_env; os.Getenv if nil
	// Env is the environment of exec hooks (os.Environ() if nil), whose PATH
	// finds a bare argv[0]. Run adds TFSH_EVENT and TFSH_HOOK.
	Env []string
	// Client posts webhooks; nil: a client with the proxy from the
	// environment. Redirects are never followed, whatever its CheckRedirect.
	Client *http.Client

	killGrace time.Duration // SIGTERM to SIGKILL for an exec hook; 2s if zero
	retryBase time.Duration // first webhook backoff; 200ms if zero

	clientOnce sync.Once
	client     *http.Client
}

// Wants reports whether any hook runs for an event of a command, so that
// the caller can skip building a payload nobody reads. It is cheap.
func (r *Runner) Wants(event, command string) bool {
	if r == nil || r.Config == nil {
		return false
	}
	for i := range r.Config.Hooks {
		if r.Config.Hooks[i].Matches(event, command) {
			return true
		}
	}
	return false
}

// Run runs every hook that matches the event, one after another in file
// order, and returns one Result per hook run. Each hook is bounded by its
// own timeout; a before_command hook that refuses does not stop the others,
// so every verdict is recorded. When ctx is done, the running hook is
// stopped and the rest are reported as errors without running. Run never
// panics.
func (r *Runner) Run(ctx context.Context, ev Event) []Result {
	if r == nil || r.Config == nil {
		return nil
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	data, encErr := marshalPayload(ev.Payload)
	var results []Result
	for i := range r.Config.Hooks {
		h := &r.Config.Hooks[i]
		if !h.Matches(ev.Name, ev.Command) {
			continue
		}
		res := Result{Hook: h.Name, Source: h.Source, Event: ev.Name, Kind: h.Kind()}
		if h.Exec != nil {
			res.ExitCode = -1 // until it exits by itself
		}
		switch {
		case encErr != nil:
			res.fail(StatusError, "encode event: %v", encErr)
		case ctx.Err() != nil:
			res.fail(StatusError, "not run: %v", context.Cause(ctx))
		default:
			r.runHook(ctx, h, ev, data, &res)
		}
		res.Refuses = ev.Name == BeforeCommand && res.Status != StatusOK && h.OnFailure != Continue
		results = append(results, res)
	}
	return results
}

func (r *Runner) runHook(ctx context.Context, h *Hook, ev Event, data json.RawMessage, res *Result) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			res.fail(StatusError, "internal error: %v", p)
		}
		res.Duration = time.Since(start)
	}()
	body, err := json.Marshal(envelope{
		Event:   ev.Name,
		At:      ev.At.UTC().Format(time.RFC3339Nano),
		Hook:    h.Name,
		Command: ev.Command,
		Data:    data,
	})
	if err != nil {
		res.fail(StatusError, "encode event: %v", err)
		return
	}
	switch {
	case h.Exec != nil:
		r.runExec(ctx, h, ev, body, res)
	case h.Webhook != nil:
		r.runWebhook(ctx, h, ev, body, res)
	default:
		res.fail(StatusError, "hook has neither exec nor webhook")
	}
}

type envelope struct {
	Event   string          `json:"event"`
	At      string          `json:"at"`
	Hook    string          `json:"hook"`
	Command string          `json:"command,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// marshalPayload encodes the payload once for every hook; a panicking
// MarshalJSON is an error, not a crash of the shell.
func marshalPayload(p any) (data json.RawMessage, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return json.Marshal(p)
}

// fail sets a status other than ok with a one-line message.
func (res *Result) fail(status, format string, args ...any) {
	res.Status = status
	res.Error = oneLine(fmt.Sprintf(format, args...))
}

// oneLine folds a message onto one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
