package terraform

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Relay timing. terraform writes its output a line at a time: a large plan
// is thousands of writes a second. os/exec's own copy (a goroutine per
// stream, parked in Go's network poller) wakes several of tfsh's threads
// for each of them, and on two CPUs that time is taken from terraform
// (BENCHMARKS.md, "Where tfsh's time goes"). The relay waits in poll(2) on
// both pipes from one goroutine and, after a read that did not fill its
// buffer, waits relayBatch milliseconds before the next, so that lines written close
// together come in one read: output reaches the user at most relayBatch
// later, which nobody can see. A read that fills the buffer is followed at
// once by the next, so a fast stream is never slowed.
const relayBatch = 5 // ms

// relayGrace is how long the relay goes on after the child exits while
// something it started (a provisioner's background process) keeps the
// output pipes open. A variable for tests.
var relayGrace = 10 * time.Second

// relay copies a child's output pipes to their writers.
type relay struct {
	fds  []int // read ends; -1 once closed
	outs []io.Writer
	// stop ends the copy; exited tells it the child has exited, so that it
	// no longer waits between reads: the last lines are not held back.
	stop, exited [2]int
	done         chan struct{}
}

// newRelay makes one pipe per writer. The returned files are the child's
// ends: give them to exec.Cmd and close them once it has started.
func newRelay(outs ...io.Writer) (*relay, []*os.File, error) {
	r := &relay{outs: outs, stop: [2]int{-1, -1}, exited: [2]int{-1, -1}, done: make(chan struct{})}
	var child []*os.File
	fail := func(err error) (*relay, []*os.File, error) {
		closeFiles(child)
		r.closeFDs()
		return nil, nil, fmt.Errorf("pipe terraform's output: %w", err)
	}
	for range outs {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return fail(err)
		}
		r.fds = append(r.fds, p[0])
		child = append(child, os.NewFile(uintptr(p[1]), "terraform-output"))
	}
	for _, p := range []*[2]int{&r.stop, &r.exited} {
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return fail(err)
		}
	}
	return r, child, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func (r *relay) closeFDs() {
	for i, fd := range r.fds {
		if fd >= 0 {
			unix.Close(fd)
			r.fds[i] = -1
		}
	}
	for _, p := range []*[2]int{&r.stop, &r.exited} {
		if p[0] >= 0 {
			unix.Close(p[0])
			unix.Close(p[1])
			*p = [2]int{-1, -1}
		}
	}
}

// run copies until every pipe is at end of file (the child, and whatever
// inherited its output, closed it) or stop is called.
func (r *relay) run() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	pfds := make([]unix.PollFd, len(r.fds)+1)
	for i, fd := range r.fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	wake := len(r.fds)
	pfds[wake] = unix.PollFd{Fd: int32(r.stop[0]), Events: unix.POLLIN}
	exited := []unix.PollFd{{Fd: int32(r.exited[0]), Events: unix.POLLIN}}
	for open := len(r.fds); open > 0; {
		for i := range pfds {
			pfds[i].Revents = 0
		}
		if _, err := unix.Poll(pfds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if pfds[wake].Revents != 0 {
			return
		}
		short := false
		for i := range r.fds {
			if pfds[i].Fd < 0 || pfds[i].Revents == 0 {
				continue
			}
			n, err := unix.Read(r.fds[i], buf)
			if n > 0 {
				r.outs[i].Write(buf[:n])
				short = short || n < len(buf)
			}
			if n == 0 && err == nil || err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				pfds[i].Fd = -1 // poll skips it from now on
				open--
			}
		}
		if short && open > 0 && exited[0].Revents == 0 {
			// Waits in the kernel, not on a Go timer, whose expiry would
			// wake the scheduler's threads: that is what this saves. It
			// ends early when the child exits.
			unix.Poll(exited, relayBatch)
		}
	}
}

// finish is called once the child has exited: it waits for the copy to
// reach end of file, at most grace, then stops it and closes the pipes.
func (r *relay) finish(grace time.Duration) {
	unix.Write(r.exited[1], []byte{0})
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		unix.Write(r.stop[1], []byte{0})
		select {
		case <-r.done:
		case <-time.After(time.Second):
			// Stuck writing to the user (a reader that stopped reading):
			// leave it, and the descriptors it uses, as os/exec would.
			return
		}
	}
	r.closeFDs()
}
