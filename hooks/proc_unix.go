//go:build unix

package hooks

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

const sigKill = syscall.SIGKILL

// setProcessGroup starts the hook as the leader of a new process group. It
// has no terminal input (stdin is the event), so it never competes with the
// shell for the terminal; the shell stops it by cancelling the context.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminateGroup asks the group to stop: SIGTERM, and SIGCONT so that a
// member stopped (by reading the terminal from the background, say) gets
// to act on it.
func terminateGroup(p *os.Process) error {
	err := signalGroup(p, syscall.SIGTERM)
	_ = signalGroup(p, syscall.SIGCONT)
	return err
}

// signalGroup signals the process group that p leads.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return os.ErrProcessDone
	}
	err := syscall.Kill(-p.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
