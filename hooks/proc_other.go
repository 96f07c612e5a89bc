//go:build !unix

package hooks

import (
	"os"
	"os/exec"
	"syscall"
)

const sigKill = syscall.Signal(0x9)

// terminateGroup kills the process: there is no gentler way here.
func terminateGroup(p *os.Process) error { return signalGroup(p, sigKill) }

// setProcessGroup does nothing where there are no process groups.
func setProcessGroup(cmd *exec.Cmd) {}

// signalGroup kills the process itself where there are no process groups.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return os.ErrProcessDone
	}
	return p.Kill()
}
