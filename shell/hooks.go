package shell

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/hooks"
	"github.com/tfsh/tfsh/lock"
	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

// KindHookRun is the audit event of one hook run.
const KindHookRun = "hook_run"

// hooksCache keeps the hooks file of the last directory until it changes.
type hooksCache struct {
	mu     sync.Mutex
	key    string
	runner *hooks.Runner
	err    error
}

// HooksInvalidError is a hooks file that cannot be used: tfsh refuses
// commands rather than skip a team's checks.
type HooksInvalidError struct {
	Path  string
	Files policy.Files
	Diags hcl.Diagnostics
}

func (e *HooksInvalidError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "the hooks file %s is invalid, so tfsh runs nothing until it is fixed:\n\n", e.Path)
	policy.WriteDiagnostics(&b, e.Files, e.Diags)
	return strings.TrimRight(b.String(), "\n")
}

// LoadHooks finds and loads the hooks for commands run in dir (nil when
// there is no hooks file). Paths are shown relative to base.
func LoadHooks(dir, base string, env []string) (*hooks.Runner, error) {
	var c hooksCache
	return c.load(dir, base, env)
}

func (c *hooksCache) load(dir, base string, env []string) (*hooks.Runner, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // the files up the tree are where the directory really is
	}
	if real, err := filepath.EvalSymlinks(base); err == nil {
		base = real
	}
	path, ok := hooks.Find(dir)
	if !ok {
		return nil, nil
	}
	trust := policy.TrustFor(dir)
	// Who is trusted depends on the directory: a runner loaded for one
	// directory is not reused where the file's owner is not trusted.
	key := path + "\x00" + trust.Key()
	if fi, err := os.Stat(path); err == nil {
		key += "\x00" + policy.FileVersion(fi)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == key {
		return c.runner, c.err
	}
	shown := path
	if rel, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	// Read through the owner check, on the descriptor read from: a file
	// swapped after a check by path is never run.
	cfg, diags := hooks.LoadWith(shown, func(string) ([]byte, error) { return trust.Read(path) })
	if cfg == nil || diags.HasErrors() {
		files := policy.Files{}
		if cfg != nil {
			files[cfg.File] = &hcl.File{Bytes: cfg.Src}
		}
		c.key, c.runner, c.err = key, nil, &HooksInvalidError{Path: shown, Files: files, Diags: diags}
		return nil, c.err
	}
	for i := range cfg.Hooks {
		// commands = ["env delete"] means workspace delete, as tfsh names it.
		for j, name := range cfg.Hooks[i].Commands {
			cfg.Hooks[i].Commands[j] = canonicalCommand(name)
		}
	}
	c.key, c.err = key, nil
	c.runner = &hooks.Runner{Config: cfg, Getenv: terraform.EnvLookup(env), Env: env}
	return c.runner, nil
}

func (s *Session) hooksFor(dir string) (*hooks.Runner, error) {
	return s.hooks.load(dir, s.cfg.Dir, s.cfg.Env)
}

// commandHooks runs one command's hooks and records every run. Lock
// events fire their hooks in the background (they happen while terraform
// runs and must not hold its output); wait collects them before the
// command's end is written.
type commandHooks struct {
	s       *Session
	r       *hooks.Runner
	c       *audit.Command
	command string
	base    map[string]any
	say     func(string)

	wg       sync.WaitGroup
	bg       context.Context // background hooks; cancelled by a signal while the end waits for them
	cancelBg context.CancelFunc
	mu       sync.Mutex
	ending   bool
	pty      bool // terraform runs on a pty: our terminal is raw until the end
}

func (s *Session) newCommandHooks(r *hooks.Runner, c *audit.Command, info audit.CommandInfo, say func(string)) *commandHooks {
	if r == nil {
		return nil
	}
	base := map[string]any{
		"session_id": s.ID(), "command_id": c.ID, "user": s.user, "host": s.host,
		"workdir": info.Workdir, "workspace": info.Workspace, "backend": info.Backend, "state_key": info.StateKey,
		"subcommand": info.Subcommand, "argv": info.Run,
	}
	if m := s.ci.Map(); m != nil {
		base["ci"] = m
	}
	bg, cancel := context.WithCancel(context.Background())
	return &commandHooks{s: s, r: r, c: c, command: canonicalCommand(info.Subcommand), base: base, say: say, bg: bg, cancelBg: cancel, pty: s.cfg.PTY}
}

// Secrets are the values of the hooks' signing keys: a hook that echoes one
// must not put it in the audit log.
func hookSecrets(r *hooks.Runner, getenv func(string) string) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, h := range r.Config.Hooks {
		if h.Webhook != nil && h.Webhook.SecretEnv != "" {
			if v := getenv(h.Webhook.SecretEnv); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func (h *commandHooks) payload(extra map[string]any) map[string]any {
	out := make(map[string]any, len(h.base)+len(extra))
	for k, v := range h.base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// run fires an event's hooks and waits for them.
func (h *commandHooks) run(ctx context.Context, event string, extra map[string]any) []hooks.Result {
	if h == nil || !h.r.Wants(event, h.command) {
		return nil
	}
	res := h.r.Run(ctx, hooks.Event{Name: event, Command: h.command, At: h.s.cfg.Now(), Payload: h.payload(extra)})
	h.record(res)
	return res
}

// runStoppable is run with a signal (Ctrl-C) stopping the hooks.
func (h *commandHooks) runStoppable(ctx context.Context, sigs <-chan os.Signal, event string, extra map[string]any) []hooks.Result {
	if h == nil || !h.r.Wants(event, h.command) {
		return nil
	}
	hctx, stop := untilSignal(ctx, sigs)
	defer stop()
	return h.run(hctx, event, extra)
}

// async fires an event's hooks in the background.
func (h *commandHooks) async(event string, extra map[string]any) {
	if h == nil || !h.r.Wants(event, h.command) {
		return
	}
	at := h.s.cfg.Now()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		res := h.r.Run(h.bg, hooks.Event{Name: event, Command: h.command, At: at, Payload: h.payload(extra)})
		h.record(res)
	}()
}

// end marks the command as ending: from here on results are written with
// command_end, after the lock events the watcher settles as terraform exits
// (a lock_orphaned's hook must not be recorded before the event itself).
func (h *commandHooks) end() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.ending = true
	h.mu.Unlock()
}

// wait collects background hooks; each is bounded by its own timeout, and
// ctx ending (Ctrl-C) stops them.
func (h *commandHooks) wait(ctx context.Context) {
	if h == nil {
		return
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.cancelBg()
		<-done
	}
	h.cancelBg()
}

// hookRecord is the data of a hook_run event.
type hookRecord struct {
	Event      string `json:"event"`
	Hook       string `json:"hook"`
	Source     string `json:"source"`
	Kind       string `json:"kind"`
	DurationMS int64  `json:"duration_ms"`
	Status     string `json:"status"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Attempts   int    `json:"attempts,omitempty"`
	Error      string `json:"error,omitempty"`
	Output     string `json:"output,omitempty"`
	Refused    bool   `json:"refused,omitempty"`
}

// HookRunRecord is the data of the hook_run event of one result: what
// every caller that runs hooks records (the pipeline, tfsh watch).
func HookRunRecord(r hooks.Result) any {
	rec := hookRecord{Event: r.Event, Hook: r.Hook, Source: r.Source, Kind: r.Kind, DurationMS: r.Duration.Milliseconds(),
		Status: r.Status, HTTPStatus: r.HTTPStatus, Attempts: r.Attempts, Error: r.Error, Output: r.Output, Refused: r.Refuses}
	if r.Kind == "exec" && r.Status != hooks.StatusError {
		code := r.ExitCode
		rec.ExitCode = &code
	}
	return rec
}

func (h *commandHooks) record(results []hooks.Result) {
	for _, r := range results {
		rec := HookRunRecord(r)
		h.mu.Lock()
		ending := h.ending
		h.mu.Unlock()
		if ending {
			h.c.Later(time.Time{}, KindHookRun, "", rec)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := h.c.AppendAt(ctx, time.Time{}, KindHookRun, "", rec)
			cancel()
			if err != nil {
				h.s.sayOnce("audit:"+err.Error(), h.say, fmt.Sprintf("could not record hook %s in %s: %v", r.Hook, h.s.cfg.Audit.Path(), err))
			}
		}
		if r.Status != hooks.StatusOK && !r.Refuses {
			msg := fmt.Sprintf("hook %q (%s) on %s %s: %s%s", r.Hook, r.Source, r.Event, r.Status, r.Error, outputTail(r.Output))
			if h.pty && !ending {
				// terraform has the terminal in raw mode: end lines with \r\n.
				msg = strings.ReplaceAll(msg, "\n", "\r\n") + "\r"
			}
			h.say(msg)
		}
	}
}

// outputTail is the last lines of a hook's output, indented, for a message.
func outputTail(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	lines := strings.Split(out, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// lockHookEvent maps a lock event to the hook event it fires, if any.
func lockHookEvent(kind string) string {
	switch kind {
	case lock.KindContention:
		return hooks.LockContention
	case lock.KindWait:
		return hooks.LockWait
	case lock.KindOrphaned:
		return hooks.LockOrphaned
	}
	return ""
}

// hookVerdict says how a refusing hook failed, and why when there is more
// to say than its exit status.
func hookVerdict(r hooks.Result) string {
	var v string
	switch r.Status {
	case hooks.StatusFailed:
		if r.Kind == "exec" {
			v = fmt.Sprintf("exited %d", r.ExitCode)
		} else {
			v = fmt.Sprintf("was answered %d", r.HTTPStatus)
		}
	case hooks.StatusTimeout:
		v = "timed out"
	default:
		v = "could not run"
	}
	if r.Error != "" && r.Error != fmt.Sprintf("exit status %d", r.ExitCode) {
		v += ": " + r.Error
	}
	return v
}

// canonicalCommand is a command's name as rules and hooks see it:
// terraform's old "env" spellings are "workspace" ("env delete" is
// "workspace delete"), so that a rule or hook written for one catches both.
func canonicalCommand(name string) string {
	if rest, ok := strings.CutPrefix(name, "env "); ok {
		return "workspace " + rest
	}
	if name == "env" {
		return "workspace"
	}
	return name
}
