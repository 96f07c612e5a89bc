package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// outputLimit bounds Result.Output.
const outputLimit = 4 << 10

func (r *Runner) runExec(ctx context.Context, h *Hook, ev Event, body []byte, res *Result) {
	e := h.Exec
	if len(e.Argv) == 0 || e.Argv[0] == "" {
		res.fail(StatusError, "argv is empty")
		return
	}
	env := r.Env
	if env == nil {
		env = os.Environ()
	}
	env = withEnv(env, "TFSH_EVENT", ev.Name)
	env = withEnv(env, "TFSH_HOOK", h.Name)

	path, err := resolveProgram(e.Argv[0], r.Config.Dir, env)
	if err != nil {
		res.fail(StatusError, "%v", err)
		return
	}

	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &tailBuffer{limit: outputLimit}
	cmd := exec.CommandContext(tctx, path, e.Argv[1:]...)
	cmd.Args[0] = e.Argv[0]
	cmd.Dir = r.Config.Dir
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	cmd.Stdout = out
	cmd.Stderr = out
	// The hook and everything it starts share a process group, so a timeout
	// stops all of it: SIGTERM first, and after the grace SIGKILL.
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return terminateGroup(cmd.Process) }
	cmd.WaitDelay = r.grace()

	if err := cmd.Start(); err != nil {
		res.fail(StatusError, "start %s: %v", e.Argv[0], unwrapPath(err))
		return
	}
	err = cmd.Wait()
	if tctx.Err() != nil {
		// Whatever is left of the group outlived the grace, or its leader
		// exited and left it behind: neither may outlive the hook.
		_ = signalGroup(cmd.Process, sigKill)
	}
	res.Output = out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success() && tctx.Err() == nil):
		// A zero exit is success even when a child kept the output open.
		res.Status = StatusOK
	case ctx.Err() != nil:
		res.fail(StatusError, "interrupted: %v", context.Cause(ctx))
	case tctx.Err() != nil:
		res.fail(StatusTimeout, "no exit within %s: the hook's process group was stopped", timeout)
	case errors.As(err, &exitErr) && res.ExitCode >= 0:
		res.fail(StatusFailed, "exit status %d", res.ExitCode)
	case errors.As(err, &exitErr):
		res.fail(StatusFailed, "%v", exitErr.ProcessState)
	default:
		res.fail(StatusError, "%v", err)
	}
}

func (r *Runner) grace() time.Duration {
	if r.killGrace > 0 {
		return r.killGrace
	}
	return 2 * time.Second
}

// resolveProgram finds argv[0]: an absolute path as is, a relative path
// with a slash ("./x", "../x", "scripts/x") against the project root, and a
// bare name in the PATH of the hook's environment. Relative PATH entries
// (".", "") are skipped: a hook never runs a program that happens to lie in
// the working directory.
func resolveProgram(name, dir string, env []string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	if strings.ContainsRune(name, filepath.Separator) || strings.ContainsRune(name, '/') {
		// Absolute, so that exec never looks it up again from its own
		// working directory; an empty dir is the current directory.
		return filepath.Abs(filepath.Join(dir, name))
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		if p, err := exec.LookPath(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}

// withEnv sets one variable, dropping earlier definitions.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// unwrapPath drops the "fork/exec /abs/path:" prefix of a start error; the
// caller names the program as written.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	cut   int64 // bytes dropped from the front
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.limit {
		t.cut += int64(len(t.buf) + len(p) - t.limit)
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.limit; over > 0 {
		t.cut += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the tail, after a marker line when bytes were dropped;
// a rune cut in half at the front is dropped too.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut == 0 {
		return string(t.buf)
	}
	b := t.buf
	skipped := 0
	for len(b) > 0 && !utf8.RuneStart(b[0]) && skipped < utf8.UTFMax {
		b = b[1:]
		skipped++
	}
	return fmt.Sprintf("[tfsh: first %d bytes of output cut]\n%s", t.cut+int64(skipped), b)
}
