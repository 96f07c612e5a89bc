package lab

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// childProcAttr puts a server child in its own process group (so Close can kill everything it
// started) and has the kernel kill it if this process dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// processStart returns the start time of process pid (field 22 of /proc/PID/stat, clock ticks
// since boot), which tells a PID's reuse apart; "" when it cannot be read. A zombie (exited, not
// yet reaped) counts as gone: it is "" too, with zombie set.
func processStart(pid int) (start string, zombie bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	// The command name (field 2) may hold spaces and parentheses; the fields after the last
	// ')' are fixed: state is field 3, starttime field 22.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", false
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", true
	}
	return f[19], false
}
