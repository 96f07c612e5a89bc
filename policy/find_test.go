package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFind covers where the layers come from and the ways a file could be
// skipped without anyone noticing.
func TestFind(t *testing.T) {
	old := SystemPolicy
	t.Cleanup(func() { SystemPolicy = old })
	root := t.TempDir()
	SystemPolicy = filepath.Join(root, "etc", "policy.hcl")
	env := map[string]string{"HOME": filepath.Join(root, "home")}
	getenv := func(k string) string { return env[k] }
	repo := filepath.Join(root, "repo")
	sub := filepath.Join(repo, "envs", "prod")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	layers := func(dir string) string {
		t.Helper()
		srcs, err := Find(dir, dir, getenv)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range srcs {
			out = append(out, s.Layer.String()+":"+filepath.Base(filepath.Dir(s.Path))+"/"+filepath.Base(s.Path))
		}
		return strings.Join(out, " ")
	}

	if got := layers(sub); got != "" {
		t.Fatalf("no files: %q", got)
	}
	writeFile(t, SystemPolicy, "")
	writeFile(t, filepath.Join(repo, ".tfsh", "policy.hcl"), "")
	writeFile(t, filepath.Join(root, "home", ".config", "tfsh", "policy.hcl"), "")
	if got, want := layers(sub), "organisation:etc/policy.hcl project:.tfsh/policy.hcl user:tfsh/policy.hcl"; got != want {
		t.Fatalf("layers = %q, want %q", got, want)
	}

	t.Run("TFSH_ORG_POLICY adds, and the same file twice counts once", func(t *testing.T) {
		extra := filepath.Join(root, "org2.hcl")
		writeFile(t, extra, "")
		env["TFSH_ORG_POLICY"] = extra
		defer delete(env, "TFSH_ORG_POLICY")
		if got := layers(sub); !strings.HasPrefix(got, "organisation:etc/policy.hcl organisation:") {
			t.Fatalf("layers = %q", got)
		}
		env["TFSH_ORG_POLICY"] = filepath.Join(root, "etc", ".", "policy.hcl")
		if got := layers(sub); strings.Count(got, "organisation") != 1 {
			t.Fatalf("the system file named again loads twice: %q", got)
		}
	})
	t.Run("through a symbolic link to the directory", func(t *testing.T) {
		link := filepath.Join(root, "shortcut")
		if err := os.Symlink(sub, link); err != nil {
			t.Fatal(err)
		}
		if got := layers(link); !strings.Contains(got, "project:.tfsh/policy.hcl") {
			t.Fatalf("from a symlinked directory the project policy is lost: %q", got)
		}
	})
	t.Run("a dangling organisation link is an error, not no policy", func(t *testing.T) {
		os.Remove(SystemPolicy)
		if err := os.Symlink(filepath.Join(root, "gone.hcl"), SystemPolicy); err != nil {
			t.Fatal(err)
		}
		defer func() { os.Remove(SystemPolicy); writeFile(t, SystemPolicy, "") }()
		if _, err := Find(sub, sub, getenv); err == nil || !strings.Contains(err.Error(), "will not run without it") {
			t.Fatalf("Find = %v, want an error", err)
		}
	})
	t.Run("a project policy that is a directory is an error", func(t *testing.T) {
		p := filepath.Join(sub, ".tfsh", "policy.hcl")
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Join(sub, ".tfsh"))
		if _, err := Find(sub, sub, getenv); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Fatalf("Find = %v, want an error", err)
		}
	})
	t.Run("a file of another user is refused", func(t *testing.T) {
		p := filepath.Join(repo, ".tfsh", "policy.hcl")
		if err := os.Chown(p, 12345, 12345); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("chown needs root, which CI runs as: %v", err)
			}
			t.Skipf("cannot give a file to another user here (%v); CI runs this as root", err)
		}
		if _, err := Find(sub, sub, getenv); err == nil || !strings.Contains(err.Error(), "belongs to another user (uid 12345)") {
			t.Fatalf("Find = %v, want a refusal", err)
		}
		// Read checks again, on the descriptor it reads: Find's check by
		// path could be raced.
		srcs := []Source{{Path: p, Layer: LayerProject, trust: &Trust{uids: []uint32{uint32(os.Geteuid()), 0}}}}
		if _, _, diags := Load(srcs); !diags.HasErrors() || !strings.Contains(diags.Error(), "belongs to another user") {
			t.Fatalf("Load read a file of another user: %v", diags)
		}
		// The owner of the directory commands run in is trusted: a CI
		// container running as root over the build user's checkout.
		if err := os.Chown(sub, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if got := layers(sub); !strings.Contains(got, "project:.tfsh/policy.hcl") {
			t.Fatalf("the directory owner's policy was refused: %q", got)
		}
		os.Chown(sub, 0, 0)
		// A .tfsh directory of another user is refused whatever its files.
		os.Chown(p, 0, 0)
		os.Chown(filepath.Dir(p), 12345, 12345)
		if _, err := Find(sub, sub, getenv); err == nil || !strings.Contains(err.Error(), ".tfsh belongs to another user") {
			t.Fatalf("Find = %v, want the .tfsh directory refused", err)
		}
		os.Chown(filepath.Dir(p), 0, 0)
	})
	t.Run("a .tfsh that is a dangling link hides nothing", func(t *testing.T) {
		d := filepath.Join(sub, "inner")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, "missing-checkout"), filepath.Join(d, ".tfsh")); err != nil {
			t.Fatal(err)
		}
		if _, err := Find(d, d, getenv); err == nil || !strings.Contains(err.Error(), "will not run without it") {
			t.Fatalf("Find = %v, want an error", err)
		}
	})
}
