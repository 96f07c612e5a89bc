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
func fcntlHolder(path string) (pid int, held bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0, false, err
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false, nil
	}
	return int(lk.Pid), true, nil
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
