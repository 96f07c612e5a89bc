//go:build unix && !linux

package lab

import "syscall"

// childProcAttr puts a server child in its own process group, so Close can kill everything it
// started.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
