package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Serve runs a lab (StartServer) until ctx ends, then stops it (Close). ready is called once
// the lab is up and its state file written.
func Serve(ctx context.Context, opts Options, ready func(State)) error {
	srv, err := StartServer(ctx, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	if ready != nil {
		ready(srv.State())
	}
	<-ctx.Done()
	return srv.Close()
}

// ReadyFD is the file descriptor a server started by Launch reports on.
const ReadyFD = 3

// WriteReady is the server's side of Launch: it reports the lab's state (or the error that
// stopped it from starting) on w, its ReadyFD, as one line, and closes it. The server should
// mark ReadyFD close-on-exec before it starts anything, so that its children do not keep it.
func WriteReady(w io.WriteCloser, st *State, startErr error) error {
	var msg []byte
	if startErr != nil {
		msg = []byte("error: " + startErr.Error() + "\n")
	} else {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		msg = append(b, '\n')
	}
	_, err := w.Write(msg)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// Launch starts argv, a command that serves a lab in dir and reports on ReadyFD with
// WriteReady (tfsh lab serve --ready-fd 3), detached from the caller: in a session of its own,
// stdin from /dev/null, stdout and stderr appended to the lab's log, so that it outlives the
// caller and no terminal signal reaches it. It returns the state the server reports once it is
// ready, or what went wrong with the last lines of the log. If ctx ends first, the server is
// killed.
func Launch(ctx context.Context, dir string, argv []string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	logPath := filepath.Join(dir, logFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w} // becomes fd 3 = ReadyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the lab server: %w", err)
	}
	w.Close()
	// Reap it if it exits while we are still here (in-process callers such as tests).
	go func() { _ = cmd.Wait() }()

	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		// One line: the server's children may hold a copy of the pipe, so EOF may come late.
		b, err := bufio.NewReader(r).ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			err = nil
		}
		ch <- answer{b, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return nil, fmt.Errorf("the lab server did not get ready: %w%s", ctx.Err(), logTail(logPath, logStart))
	}
	text := strings.TrimSpace(string(a.b))
	switch {
	case a.err != nil:
		return nil, fmt.Errorf("read the lab server's answer: %w", a.err)
	case strings.HasPrefix(text, "error: "):
		return nil, errors.New(strings.TrimPrefix(text, "error: "))
	case text == "":
		return nil, fmt.Errorf("the lab server exited before it was ready%s", logTail(logPath, logStart))
	}
	var st State
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return nil, fmt.Errorf("the lab server's answer %q: %w", text, err)
	}
	return &st, nil
}

// logTail is the end of what the server logged since from, as a suffix for an error.
func logTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-from > 4096 {
		from = fi.Size() - 4096
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	if s := strings.TrimSpace(string(b)); s != "" {
		return "; its log (" + path + "):\n" + s
	}
	return " (its log " + path + " is empty)"
}

// Uptime is how long the lab has been running at now.
func (st *State) Uptime(now time.Time) time.Duration { return now.Sub(st.StartedAt) }
