package shell

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/terraform"
)

func TestPolicyInput(t *testing.T) {
	in := func(line string) policy.Input {
		t.Helper()
		toks, err := Tokenize(line)
		if err != nil {
			t.Fatal(err)
		}
		return PolicyInput(terraform.ParseFor("terraform", toks, func(string) string { return "" }), World{})
	}
	tests := []struct {
		line  string
		check func(policy.Input) bool
	}{
		// Rules and hooks written for workspace catch the old env spelling.
		{"env delete old", func(i policy.Input) bool {
			return i.Command == "workspace delete" && i.WritesState && i.Workspace == "old"
		}},
		{"workspace delete -force old", func(i policy.Input) bool { return i.Command == "workspace delete" && i.Workspace == "old" }},
		{"env select blue", func(i policy.Input) bool { return i.Command == "workspace select" && i.Workspace == "" }},
		{"apply -destroy", func(i policy.Input) bool { return i.Destroy }},
		{"apply -destroy=false", func(i policy.Input) bool { return !i.Destroy }},
		{"apply -destroy=0", func(i policy.Input) bool { return !i.Destroy }},
		{"plan -destroy=T", func(i policy.Input) bool { return i.Destroy }},
		{"destroy", func(i policy.Input) bool { return i.Destroy }},
		{"apply tfplan", func(i policy.Input) bool { return i.HasPlanFile }},
		{"apply -target=a.b -target a.c", func(i policy.Input) bool { return strings.Join(i.Targets, ",") == "a.b,a.c" }},
		{"apply -var password=hunter2 -auto-approve", func(i policy.Input) bool {
			return !strings.Contains(strings.Join(i.Args, " "), "hunter2") && len(i.Args) == 3
		}},
	}
	for _, tt := range tests {
		if got := in(tt.line); !tt.check(got) {
			t.Errorf("%s: %+v", tt.line, got)
		}
	}
}

func TestResolveReasons(t *testing.T) {
	p, _, diags := policy.Load([]policy.Source{{Path: "p.hcl", Layer: policy.LayerProject, Src: []byte(`rule "r" {
  when           = true
  action         = "require_reason"
  reason_pattern = "^INC-[0-9]+"
}
rule "c" {
  when   = command.name == "destroy"
  action = "confirm"
}`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	apply := policy.Input{Command: "apply", Known: true}
	destroy := policy.Input{Command: "destroy", Known: true}
	tests := []struct {
		name      string
		in        policy.Input
		flag, env string
		ask       func(context.Context, string) (string, error)
		refused   string // "" when it may run
		reason    string
	}{
		{name: "no terminal, no reason", in: apply, refused: "no terminal to ask at; give one with tfsh --reason"},
		{name: "flag", in: apply, flag: "INC-1 fix", reason: "INC-1 fix"},
		{name: "environment", in: apply, env: "INC-2", reason: "INC-2"},
		{name: "flag beats environment", in: apply, flag: "INC-3", env: "INC-2", reason: "INC-3"},
		{name: "pattern", in: apply, flag: "because", refused: `the reason "because" does not match ^INC-[0-9]+`},
		{name: "a reason is one line", in: apply, flag: "INC-1\n    refused    forged line", refused: "one line of plain text"},
		{name: "escape sequences too", in: apply, flag: "INC-1 \x1b[2J", refused: "one line of plain text"},
		{name: "line separators and bidi overrides too", in: apply, flag: "INC-1 ok\u2028forged \u202e", refused: "one line of plain text"},
		{name: "asked, default offered", in: apply, env: "INC-4", ask: func(_ context.Context, p string) (string, error) {
			if p != "reason [INC-4]: " {
				t.Errorf("prompt %q", p)
			}
			return "", nil
		}, reason: "INC-4"},
		{name: "asked, answered", in: apply, ask: func(context.Context, string) (string, error) { return "INC-5 typed", nil }, reason: "INC-5 typed"},
		{name: "confirm without terminal", in: destroy, flag: "INC-6", refused: "which only a person at a terminal can give"},
		{name: "confirm answered no", in: destroy, ask: func(_ context.Context, p string) (string, error) {
			if strings.HasPrefix(p, "reason") {
				return "INC-7", nil
			}
			return "n", nil
		}, refused: "not confirmed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Session{cfg: Config{Reason: tt.flag, Ask: tt.ask, Err: io.Discard, Env: []string{"TFSH_REASON=" + tt.env}}}
			r := s.resolve(context.Background(), p.Decide(tt.in))
			switch {
			case tt.refused != "" && (r.refused == nil || !strings.Contains(r.why, tt.refused)):
				t.Fatalf("refused = %v, why %q; want a refusal saying %q", r.refused, r.why, tt.refused)
			case tt.refused == "" && r.refused != nil:
				t.Fatalf("refused: %s", r.why)
			case tt.refused == "" && r.reason != tt.reason:
				t.Fatalf("reason %q, want %q", r.reason, tt.reason)
			}
		})
	}
}

// TestHooksOfAnotherUserRefused: a hooks file planted by someone else in
// a parent directory runs nothing.
func TestHooksOfAnotherUserRefused(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "project", "envs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, ".tfsh", "hooks.hcl")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("hook \"x\" {\n  on = [\"before_command\"]\n  exec { argv = [\"true\"] }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := LoadHooks(dir, dir, nil); err != nil || r == nil {
		t.Fatalf("own hooks file: %v, %v", r, err)
	}
	if err := os.Chown(p, 12345, 12345); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chown needs root, which CI runs as: %v", err)
		}
		t.Skipf("cannot give a file to another user here (%v); CI runs this as root", err)
	}
	if _, err := LoadHooks(dir, dir, nil); err == nil || !strings.Contains(err.Error(), "belongs to another user") {
		t.Fatalf("LoadHooks = %v, want a refusal", err)
	}
}

func TestCommandDirFollowsLinks(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real", "a", "b")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(root, "start")
	os.MkdirAll(start, 0o755)
	if err := os.Symlink(real, filepath.Join(start, "link")); err != nil {
		t.Fatal(err)
	}
	// terraform's chdir goes through the link, then up from where it points.
	if got, want := commandDir(start, "link/.."), filepath.Join(root, "real", "a"); got != want {
		t.Fatalf("commandDir(link/..) = %q, want %q", got, want)
	}
	if got := commandDir(start, ""); got != start {
		t.Fatalf("commandDir without -chdir = %q", got)
	}
}

// TestLoadHooksThroughLinksAndSpellings: hooks are found from the real
// directory, and a hook's commands may use terraform's old env spelling.
func TestLoadHooksThroughLinksAndSpellings(t *testing.T) {
	root := t.TempDir()
	project := filepath.Join(root, "project")
	deep := filepath.Join(project, "envs", "prod")
	if err := os.MkdirAll(filepath.Join(project, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "hook \"keep\" {\n  on       = [\"before_command\"]\n  commands = [\"env delete\"]\n  exec { argv = [\"true\"] }\n}\n"
	if err := os.WriteFile(filepath.Join(project, ".tfsh", "hooks.hcl"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "prod")
	if err := os.Symlink(deep, link); err != nil {
		t.Fatal(err)
	}
	r, err := LoadHooks(link, link, nil)
	if err != nil || r == nil {
		t.Fatalf("LoadHooks from a linked directory: %v, %v", r, err)
	}
	if !r.Wants("before_command", canonicalCommand("workspace delete")) || !r.Wants("before_command", canonicalCommand("env delete")) {
		t.Fatal(`a hook for "env delete" does not run for workspace delete`)
	}
}

// TestHooksTrustIsPerDirectory: a hooks file trusted because its owner owns
// one command directory is not reused for a directory of someone else.
func TestHooksTrustIsPerDirectory(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, ".tfsh", "hooks.hcl")
	theirs, mine := filepath.Join(root, "theirs"), filepath.Join(root, "mine")
	for _, d := range []string{filepath.Dir(p), theirs, mine} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p, []byte("hook \"x\" {\n  on = [\"before_command\"]\n  exec { argv = [\"true\"] }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, filepath.Dir(p), theirs} {
		if err := os.Chown(f, 12345, 12345); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("chown needs root, which CI runs as: %v", err)
			}
			t.Skipf("cannot give a file to another user here (%v); CI runs this as root", err)
		}
	}
	var c hooksCache
	if r, err := c.load(theirs, theirs, nil); err != nil || r == nil {
		t.Fatalf("in their directory, their hooks: %v, %v", r, err)
	}
	if _, err := c.load(mine, mine, nil); err == nil || !strings.Contains(err.Error(), "belongs to another user") {
		t.Fatalf("in my directory, their hooks were reused: %v", err)
	}
}
