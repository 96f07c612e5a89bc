package lab

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The versions scripts/setup-lab.sh installs.
const (
	TerraformVersion = "1.5.7"
	TofuVersion      = "1.10.10"
)

// Environment variables that override where the lab's parts are found.
const (
	EnvCache     = "TFSH_CACHE"          // the cache dir itself
	EnvTerraform = "TFSH_TEST_TERRAFORM" // a terraform binary
	EnvTofu      = "TFSH_TEST_TOFU"      // a tofu binary
	EnvDynalite  = "TFSH_DYNALITE"       // dynalite's cli.js
	EnvChromium  = "TFSH_TEST_CHROMIUM"  // a Chromium able to run headless
)

const setupHint = "run scripts/setup-lab.sh (it prints the paths with --print-env)"

// dynaliteLock is the lock file scripts/setup-lab.sh installs from; its hash names the install
// dir, so the package finds exactly the dynalite it was built against.
//
//go:embed dynalite/package-lock.json
var dynaliteLock []byte

// CacheDir is where scripts/setup-lab.sh puts what it builds: $TFSH_CACHE, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/tfsh.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tfsh")
	}
	return filepath.Join(os.TempDir(), "tfsh-cache")
}

// FindTerraform returns the terraform binary the lab uses: $TFSH_TEST_TERRAFORM, else
// terraform-1.5.7 in the cache's bin dir.
func FindTerraform() (string, error) {
	return findExecutable("terraform "+TerraformVersion, EnvTerraform, filepath.Join(CacheDir(), "bin", "terraform-"+TerraformVersion))
}

// FindTofu returns the OpenTofu binary the lab uses: $TFSH_TEST_TOFU, else tofu-1.10.10 in the
// cache's bin dir.
func FindTofu() (string, error) {
	return findExecutable("tofu "+TofuVersion, EnvTofu, filepath.Join(CacheDir(), "bin", "tofu-"+TofuVersion))
}

// FindChromium returns the Chromium the report's browser test runs: $TFSH_TEST_CHROMIUM, else
// Debian's /usr/bin/chromium, which scripts/setup-lab.sh installs.
func FindChromium() (string, error) {
	return findExecutable("chromium", EnvChromium, "/usr/bin/chromium")
}

// FindDynalite returns the path of dynalite's cli.js: $TFSH_DYNALITE, else the copy installed
// from internal/lab/dynalite/package-lock.json in the cache.
func FindDynalite() (string, error) {
	if p := os.Getenv(EnvDynalite); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dynalite: %s=%s: %w", EnvDynalite, p, err)
		}
		return p, nil
	}
	p := filepath.Join(DynaliteDir(), "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dynalite not installed at %s: %s, or set %s", p, setupHint, EnvDynalite)
		}
		return "", fmt.Errorf("dynalite: %w", err)
	}
	return p, nil
}

// DynaliteDir is the dir scripts/setup-lab.sh installs dynalite into:
// $TFSH_CACHE/dynalite-<first 12 hex of the lock file's SHA-256>.
func DynaliteDir() string {
	sum := sha256.Sum256(dynaliteLock)
	return filepath.Join(CacheDir(), "dynalite-"+hex.EncodeToString(sum[:])[:12])
}

func findExecutable(what, env, cached string) (string, error) {
	p, fromEnv := os.Getenv(env), true
	if p == "" {
		p, fromEnv = cached, false
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil && fromEnv:
		return "", fmt.Errorf("%s: %s=%s: %w", what, env, p, err)
	case err != nil && errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s not found at %s: %s, or set %s", what, p, setupHint, env)
	case err != nil:
		return "", fmt.Errorf("%s: %w", what, err)
	case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("%s: %s is not an executable file", what, p)
	}
	return p, nil
}
