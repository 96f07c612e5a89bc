package result

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Header says where and when the figures were measured.
type Header struct {
	Start, End time.Time
	Host       string
	CPUs       int
	CPUModel   string
	Memory     string
	Kernel     string
	Go         string
	Terraform  string
	Tofu       string
	Commit     string
	LoadBefore string
	LoadAfter  string
	Command    string
	Quick      bool
	Failed     []string // steps that failed (their figures read "not measured")
}

// Probe reads the machine's description, the terraform and tofu versions
// (their `-version` first lines; empty paths are skipped) and the tfsh
// commit of the repository at dir.
func Probe(dir, terraform, tofu string) Header {
	h := Header{Start: time.Now().UTC(), CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: LoadAvg()}
	h.Host, _ = os.Hostname()
	h.CPUModel = procField("/proc/cpuinfo", "model name")
	if m := procField("/proc/meminfo", "MemTotal"); m != "" {
		var kb float64
		fmt.Sscanf(m, "%f", &kb)
		h.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = runtime.GOOS + " " + strings.TrimSpace(string(b))
	}
	h.Terraform = firstLine(terraform, "-version")
	h.Tofu = firstLine(tofu, "-version")
	if out, err := exec.Command("git", "-C", dir, "describe", "--always", "--dirty").Output(); err == nil {
		h.Commit = strings.TrimSpace(string(out))
	}
	return h
}

// LoadAvg is /proc/loadavg's three averages, or "unknown".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(bin string, args ...string) string {
	if bin == "" {
		return ""
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	if err != nil {
		return filepath.Base(bin) + ": " + err.Error()
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// Save writes h as dir/header.json.
func (h Header) Save(dir string) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "header.json"), b, 0o644)
}

// LoadHeader reads dir/header.json.
func LoadHeader(dir string) (Header, error) {
	var h Header
	b, err := os.ReadFile(filepath.Join(dir, "header.json"))
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// Markdown is the header as BENCHMARKS.md shows it.
func (h Header) Markdown() string {
	var b strings.Builder
	if h.Quick {
		b.WriteString("**A quick run** (`--quick`: small counts, to check the machinery; not figures to quote).\n\n")
	}
	dur := ""
	if !h.End.IsZero() {
		dur = fmt.Sprintf(", %s", h.End.Sub(h.Start).Round(time.Second))
	}
	fmt.Fprintf(&b, "- Run: `%s`, %s to %s UTC%s\n", h.Command, h.Start.Format("2006-01-02 15:04"), h.End.Format("15:04"), dur)
	fmt.Fprintf(&b, "- tfsh commit: %s; %s\n", h.Commit, h.Go)
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs (%s), %s memory, %s\n", h.Host, h.CPUs, h.CPUModel, h.Memory, h.Kernel)
	tools := h.Terraform
	if h.Tofu != "" {
		tools += "; " + h.Tofu
	}
	fmt.Fprintf(&b, "- terraform: %s\n", tools)
	fmt.Fprintf(&b, "- Load average (1, 5, 15 min): %s before, %s after\n", h.LoadBefore, h.LoadAfter)
	if len(h.Failed) > 0 {
		fmt.Fprintf(&b, "- **Failed steps** (see the run's log.txt): %s\n", strings.Join(h.Failed, "; "))
	}
	return b.String()
}
