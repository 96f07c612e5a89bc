package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Binary is the terraform-compatible program tfsh runs.
type Binary struct {
	Path    string `json:"path"`
	Name    string `json:"name"`    // "terraform" or "tofu"
	Version string `json:"version"` // as the binary reports it, e.g. "1.5.7"
}

// ErrNoBinary means neither terraform nor tofu could be found.
var ErrNoBinary = errors.New("no terraform or tofu found on PATH: install one, or name it with --terraform PATH or TFSH_TERRAFORM (`make run` builds OpenTofu into tfsh's cache)")

// Find returns the binary to run: explicit (from --terraform), else
// $TFSH_TERRAFORM, else terraform then tofu on PATH.
func Find(explicit string, getenv Getenv) (string, error) {
	for _, p := range []string{explicit, getenv("TFSH_TERRAFORM")} {
		if p == "" {
			continue
		}
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("terraform binary %q: %w", p, err)
		}
		return filepath.Abs(found)
	}
	for _, name := range []string{"terraform", "tofu"} {
		if found, err := exec.LookPath(name); err == nil {
			return filepath.Abs(found)
		}
	}
	return "", ErrNoBinary
}

type versionCacheEntry struct {
	Binary
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Identify returns the binary's name and version. Asking the binary costs
// tens of milliseconds, so the answer is cached in cacheDir, keyed by path,
// size and modification time; cacheDir "" disables the cache.
func Identify(ctx context.Context, path, cacheDir string) (Binary, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Binary{}, fmt.Errorf("terraform binary: %w", err)
	}
	cacheFile := ""
	cache := map[string]versionCacheEntry{}
	if cacheDir != "" {
		cacheFile = filepath.Join(cacheDir, "binaries.json")
		if b, err := os.ReadFile(cacheFile); err == nil {
			_ = json.Unmarshal(b, &cache)
		}
		if e, ok := cache[path]; ok && e.Size == fi.Size() && e.ModTime.Equal(fi.ModTime()) {
			return e.Binary, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version", "-json")
	cmd.Env = probeEnv(os.Environ())
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return Binary{}, fmt.Errorf("ask %s for its version: %w", path, err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" {
		return Binary{}, fmt.Errorf("%s version -json: unexpected output %q", path, strings.TrimSpace(out.String()))
	}
	b := Binary{Path: path, Name: "terraform", Version: v.Version}
	// Both print "terraform_version"; the human text tells them apart.
	hcmd := exec.CommandContext(ctx, path, "version")
	hcmd.Env = cmd.Env
	human, _ := hcmd.Output()
	if strings.HasPrefix(string(human), "OpenTofu") {
		b.Name = "tofu"
	}
	if cacheFile != "" {
		cache[path] = versionCacheEntry{Binary: b, Size: fi.Size(), ModTime: fi.ModTime()}
		if data, err := json.MarshalIndent(cache, "", "  "); err == nil {
			_ = os.MkdirAll(cacheDir, 0o700)
			tmp := cacheFile + ".tmp" + fmt.Sprint(os.Getpid())
			if os.WriteFile(tmp, data, 0o600) == nil {
				_ = os.Rename(tmp, cacheFile)
			}
		}
	}
	return b, nil
}

// probeEnv is the environment for asking the binary its version: no logs
// (the probe must not write the user's TF_LOG_PATH), no extra arguments.
func probeEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TF_LOG") || strings.HasPrefix(k, "TF_CLI_ARGS") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "CHECKPOINT_DISABLE=1")
}
