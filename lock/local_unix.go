//go:build unix

package lock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fcntlHolder asks the kernel whether a process holds a POSIX lock on path,
// and which (reference §5), without taking it: F_GETLK with a whole-file
// write probe. A missing file is not locked.
//
// Closing the descriptor afterwards would drop any POSIX lock this process
// held on the file; tfsh never holds one, but code that embeds the observer
// in a process that does must not observe that file.
//
// It runs every few milliseconds while a command runs, so it makes the
// three system calls and nothing else (no *os.File, whose set-up and
// clean-up cost more than the calls).
func fcntlHolder(path string) (pid int, held bool, err error) {
	fd, err := openRetry(path)
	if errors.Is(err, unix.ENOENT) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
		return 0, false, err
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false, nil
	}
	return int(lk.Pid), true, nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// infoStamp identifies one version of a .lock.info file: a rewrite changes
// its size or times, a new file its inode.
type infoStamp struct {
	dev, ino   uint64
	size       int64
	mtim, ctim unix.Timespec
}

// statInfo stats a .lock.info file; ok is false when it does not exist.
func statInfo(path string) (st infoStamp, ok bool, err error) {
	var s unix.Stat_t
	for {
		err = unix.Stat(path, &s)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return st, false, nil
	case err != nil:
		return st, false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return infoStamp{dev: uint64(s.Dev), ino: uint64(s.Ino), size: s.Size, mtim: s.Mtim, ctim: s.Ctim}, true, nil
}

// ProcessAlive reports whether pid names a live process on this host (in
// tfsh's PID namespace).
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// ProcessArgs returns a process's argv, nil if unknown. It may carry
// secrets (-var values): redact before showing or storing it.
func ProcessArgs(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// descendsFrom reports whether pid is a descendant of ancestor, walking
// the parent chain in /proc (at most 8 levels).
func descendsFrom(pid, ancestor int) bool {
	for range 8 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			return false
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil || ppid <= 1 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

// IsTerraform reports whether a process runs a terraform or tofu binary, by
// its executable's name; only such command lines are worth recording.
func IsTerraform(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	base := strings.ToLower(filepath.Base(exe))
	return strings.Contains(base, "terraform") || strings.Contains(base, "tofu")
}
