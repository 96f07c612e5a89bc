//go:build unix && !linux

package lab

import "syscall"

// childProcAttr puts a server child in its own process group, so Close can kill everything it
// started.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// processStart cannot read a process's start time here: liveness rests on kill(pid, 0) alone.
func processStart(int) (start string, zombie bool) { return "", false }
