package lab

import "syscall"

// childProcAttr puts a server child in its own process group (so Close can kill everything it
// started) and has the kernel kill it if this process dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
