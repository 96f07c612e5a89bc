package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// at is the time of the test events.
var at = time.Date(2025, 3, 4, 5, 6, 7, 89, time.UTC)

// diagLines renders diagnostics as "severity line:col summary", one each.
func diagLines(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		out = append(out, sev+" "+pos+" "+d.Summary)
	}
	return out
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Hook
	}{
		{
			name: "empty file",
			src:  "",
			want: nil,
		},
		{
			name: "the two examples",
			src: `hook "notify-oncall" {
  on       = ["lock_orphaned", "lock_contention"]
  commands = ["apply", "destroy"]
  webhook {
    url        = "https://hooks.example.test/tfsh"
    secret_env = "TFSH_HOOK_SECRET"
    timeout    = "10s"
    retries    = 3
    headers    = { "X-Team" = "infra" }
  }
}
hook "ticket-check" {
  on         = ["before_command"]
  on_failure = "refuse"
  exec {
    argv    = ["./scripts/check-ticket", "--strict"]
    timeout = "5s"
  }
}
`,
			want: []Hook{
				{
					Name: "notify-oncall", Source: "h.hcl:1", On: []string{"lock_orphaned", "lock_contention"},
					Commands: []string{"apply", "destroy"}, OnFailure: "refuse",
					Webhook: &Webhook{URL: "https://hooks.example.test/tfsh", SecretEnv: "TFSH_HOOK_SECRET",
						Timeout: 10 * time.Second, Retries: 3, Headers: map[string]string{"X-Team": "infra"}},
				},
				{
					Name: "ticket-check", Source: "h.hcl:12", On: []string{"before_command"}, OnFailure: "refuse",
					Exec: &Exec{Argv: []string{"./scripts/check-ticket", "--strict"}, Timeout: 5 * time.Second},
				},
			},
		},
		{
			name: "defaults",
			src: `hook "a" {
  on = ["after_command"]
  exec { argv = ["notify"] }
}
hook "b" {
  on = ["before_command"]
  webhook { url = "http://127.0.0.1:8080/x" }
}`,
			want: []Hook{
				{Name: "a", Source: "h.hcl:1", On: []string{"after_command"}, OnFailure: "refuse",
					Exec: &Exec{Argv: []string{"notify"}, Timeout: DefaultTimeout}},
				{Name: "b", Source: "h.hcl:5", On: []string{"before_command"}, OnFailure: "refuse",
					Webhook: &Webhook{URL: "http://127.0.0.1:8080/x", Timeout: DefaultTimeout, Retries: DefaultRetries, Headers: nil}},
			},
		},
		{
			name: "every event, continue, loopback and insecure http, bare header keys",
			src: `hook "all" {
  on         = ["before_command", "after_command", "lock_contention", "lock_wait", "lock_orphaned", "force_unlock", "policy_denied", "lock_held_long"]
  commands   = ["state mv", "force-unlock", "workspace new"]
  on_failure = "continue"
  webhook {
    url      = "http://[::1]:9/hook"
    retries  = 0
    timeout  = "250ms"
    headers  = { X-Team = "infra", Authorization-Hint = "none" }
  }
}
hook "lan" {
  on = ["after_command"]
  webhook {
    url      = "http://ci.internal:8080/hook"
    insecure = true
  }
}
hook "local" {
  on = ["after_command"]
  webhook { url = "http://LOCALHOST/hook" }
}`,
			want: []Hook{
				{Name: "all", Source: "h.hcl:1", On: Events, Commands: []string{"state mv", "force-unlock", "workspace new"}, OnFailure: "continue",
					Webhook: &Webhook{URL: "http://[::1]:9/hook", Retries: 0, Timeout: 250 * time.Millisecond,
						Headers: map[string]string{"X-Team": "infra", "Authorization-Hint": "none"}}},
				{Name: "lan", Source: "h.hcl:12", On: []string{"after_command"}, OnFailure: "refuse",
					Webhook: &Webhook{URL: "http://ci.internal:8080/hook", Insecure: true, Timeout: DefaultTimeout, Retries: DefaultRetries}},
				{Name: "local", Source: "h.hcl:19", On: []string{"after_command"}, OnFailure: "refuse",
					Webhook: &Webhook{URL: "http://LOCALHOST/hook", Timeout: DefaultTimeout, Retries: DefaultRetries}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse([]byte(tt.src), "h.hcl")
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %v", diagLines(diags))
			}
			for i := range cfg.Hooks {
				if w := cfg.Hooks[i].Webhook; w != nil && len(w.Headers) == 0 {
					w.Headers = nil
				}
			}
			if got := cfg.Hooks; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Hooks =\n%#v\nwant\n%#v", got, tt.want)
			}
			if cfg.File != "h.hcl" {
				t.Errorf("File = %q, want h.hcl", cfg.File)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "severity file:line:col summary"
	}{
		{
			name: "not HCL",
			src:  "hook \"a\" {\n  on = [\n",
			want: []string{"error h.hcl:3:1 Missing expression"},
		},
		{
			name: "unknown block and attribute",
			src: `owner = "x"
hook "a" {
  on = ["after_command"]
  exce { argv = ["x"] }
  exec {
    argv  = ["x"]
    shell = true
  }
}`,
			want: []string{
				"error h.hcl:1:1 Unsupported argument",
				"error h.hcl:4:3 Unsupported block type",
				"error h.hcl:7:5 Unsupported argument",
			},
		},
		{
			name: "bad event name",
			src: `hook "a" {
  on = ["after_command", "lock_orphan", "after_command"]
  exec { argv = ["x"] }
}`,
			want: []string{"error h.hcl:2:26 Unknown event", "error h.hcl:2:41 Duplicate event"},
		},
		{
			name: "bad durations",
			src: `hook "a" {
  on = ["after_command"]
  exec {
    argv    = ["x"]
    timeout = "5 seconds"
  }
}
hook "b" {
  on = ["after_command"]
  webhook {
    url     = "https://example.test/"
    timeout = 5
  }
}
hook "c" {
  on = ["after_command"]
  exec {
    argv    = ["x"]
    timeout = "-1s"
  }
}`,
			want: []string{
				"error h.hcl:5:15 Invalid duration",
				"error h.hcl:12:15 Invalid duration",
				"error h.hcl:19:15 Invalid duration",
			},
		},
		{
			name: "bad URLs",
			src: `hook "a" {
  on = ["after_command"]
  webhook { url = "ftp://example.test/x" }
}
hook "b" {
  on = ["after_command"]
  webhook { url = "https://user:pw@example.test/x" }
}
hook "c" {
  on = ["after_command"]
  webhook { url = "https:///nohost" }
}
hook "d" {
  on = ["after_command"]
  webhook { url = "http://%zz" }
}`,
			want: []string{
				"error h.hcl:3:19 Invalid URL",
				"error h.hcl:7:19 Invalid URL",
				"error h.hcl:11:19 Invalid URL",
				"error h.hcl:15:19 Invalid URL",
			},
		},
		{
			name: "http to a host that is not loopback",
			src: `hook "a" {
  on = ["after_command"]
  webhook { url = "http://hooks.example.test/x" }
}
hook "b" {
  on = ["after_command"]
  webhook {
    url      = "http://10.0.0.1/x"
    insecure = false
  }
}`,
			want: []string{"error h.hcl:3:19 Insecure URL", "error h.hcl:8:16 Insecure URL"},
		},
		{
			name: "empty argv and empty program",
			src: `hook "a" {
  on = ["after_command"]
  exec { argv = [] }
}
hook "b" {
  on = ["after_command"]
  exec { argv = ["", "x"] }
}
hook "c" {
  on = ["after_command"]
  exec { argv = "./script" }
}`,
			want: []string{
				"error h.hcl:3:17 Empty argv",
				"error h.hcl:7:18 Empty program name",
				"error h.hcl:11:17 Invalid argv",
			},
		},
		{
			name: "duplicate hook names",
			src: `hook "a" {
  on = ["after_command"]
  exec { argv = ["x"] }
}
hook "a" {
  on = ["after_command"]
  exec { argv = ["y"] }
}`,
			want: []string{"error h.hcl:5:6 Duplicate hook name"},
		},
		{
			name: "both and neither of exec and webhook",
			src: `hook "both" {
  on = ["after_command"]
  exec { argv = ["x"] }
  webhook { url = "https://example.test/" }
}
hook "neither" {
  on = ["after_command"]
}
hook "twice" {
  on = ["after_command"]
  exec { argv = ["x"] }
  exec { argv = ["y"] }
}`,
			want: []string{
				"error h.hcl:4:3 Both exec and webhook",
				"error h.hcl:6:1 Missing exec or webhook",
				"error h.hcl:12:3 Duplicate exec block",
			},
		},
		{
			name: "missing required arguments and labels",
			src: `hook "a" {
  exec {}
}
hook {
  on = ["after_command"]
  exec { argv = ["x"] }
}`,
			want: []string{
				"error h.hcl:1:10 Missing required argument",
				"error h.hcl:2:8 Missing required argument",
				"error h.hcl:4:6 Missing name for hook",
			},
		},
		{
			name: "bad on_failure, commands, retries, secret_env",
			src: `hook "a" {
  on         = ["before_command"]
  commands   = ["Apply", "state  mv", "plan", "plan"]
  on_failure = "ignore"
  webhook {
    url        = "https://example.test/"
    retries    = 1.5
    secret_env = "s3cr3t-value"
  }
}
hook "b" {
  on       = []
  commands = []
  webhook {
    url     = "https://example.test/"
    retries = 11
  }
}`,
			want: []string{
				"error h.hcl:3:17 Invalid command name",
				"error h.hcl:3:26 Invalid command name",
				"error h.hcl:3:47 Duplicate command",
				"error h.hcl:4:16 Invalid on_failure",
				"error h.hcl:7:18 Invalid retries",
				"error h.hcl:8:18 Invalid secret_env",
				"error h.hcl:12:14 No events",
				"error h.hcl:13:14 No commands",
				"error h.hcl:16:15 Invalid retries",
			},
		},
		{
			name: "headers",
			src: `hook "a" {
  on = ["after_command"]
  webhook {
    url     = "https://example.test/"
    headers = {
      "Content-Type" = "text/plain"
      "x-team"       = "a"
      "X-Team"       = "b"
      "Bad Name"     = "c"
      "X-Multi"      = "a\nb"
      "X-Null"       = null
    }
  }
}`,
			want: []string{
				"error h.hcl:6:7 Reserved header",
				"error h.hcl:8:7 Duplicate header",
				"error h.hcl:9:7 Invalid header name",
				"error h.hcl:10:24 Invalid header value",
				"error h.hcl:11:24 Invalid header value",
			},
		},
		{
			name: "variables and functions are not allowed",
			src: `hook "a" {
  on = [var.event]
  exec { argv = [upper("x")] }
}`,
			want: []string{"error h.hcl:2:9 Variables not allowed", "error h.hcl:3:18 Function calls not allowed"},
		},
		{
			name: "on_failure without before_command warns",
			src: `hook "a" {
  on         = ["after_command"]
  on_failure = "continue"
  exec { argv = ["x"] }
}`,
			want: []string{"warning h.hcl:3:3 on_failure has no effect"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]byte(tt.src), "h.hcl")
			got := diagLines(diags)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diagnostics =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no subject range", d.Summary)
				}
			}
		})
	}
}

// TestParseKeepsValidHooks: a file with one broken hook still yields the
// others, so a caller that chooses to go on knows what is valid.
func TestParseKeepsValidHooks(t *testing.T) {
	cfg, diags := Parse([]byte(`hook "good" {
  on = ["after_command"]
  exec { argv = ["x"] }
}
hook "bad" {
  on = ["nope"]
  exec { argv = ["x"] }
}
hook "good" {
  on = ["after_command"]
  exec { argv = ["y"] }
}`), "h.hcl")
	if !diags.HasErrors() {
		t.Fatal("no error for the bad hook")
	}
	if len(cfg.Hooks) != 1 || cfg.Hooks[0].Name != "good" || cfg.Hooks[0].Exec.Argv[0] != "x" {
		t.Errorf("Hooks = %+v, want only the first good", cfg.Hooks)
	}
}

func TestMatches(t *testing.T) {
	h := Hook{On: []string{"before_command", "lock_orphaned"}, Commands: []string{"apply", "state"}}
	all := Hook{On: []string{"lock_orphaned"}}
	tests := []struct {
		hook           Hook
		event, command string
		want           bool
	}{
		{h, "before_command", "apply", true},
		{h, "before_command", "state mv", true},
		{h, "before_command", "state  mv", true},
		{h, "before_command", "statefoo", false},
		{h, "before_command", "plan", false},
		{h, "after_command", "apply", false},
		{h, "lock_orphaned", "", false},
		{all, "lock_orphaned", "", true},
		{all, "lock_orphaned", "plan", true},
		{all, "lock_wait", "plan", false},
	}
	for _, tt := range tests {
		if got := tt.hook.Matches(tt.event, tt.command); got != tt.want {
			t.Errorf("%v.Matches(%q, %q) = %v, want %v", tt.hook.Commands, tt.event, tt.command, got, tt.want)
		}
	}
	r := &Runner{Config: &Config{Hooks: []Hook{h, all}}}
	if !r.Wants("lock_orphaned", "") || !r.Wants("before_command", "apply") || r.Wants("before_command", "plan") {
		t.Error("Wants disagrees with Matches")
	}
	if (&Runner{}).Wants("before_command", "apply") {
		t.Error("a Runner without Config wants events")
	}
}

func TestFindAndLoad(t *testing.T) {
	root := t.TempDir()
	mkfile(t, filepath.Join(root, ".tfsh", "hooks.hcl"), "hook \"a\" {\n  on = [\"after_command\"]\n  exec { argv = [\"x\"] }\n}\n")
	deep := filepath.Join(root, "envs", "prod")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// A .tfsh directory without hooks is passed over.
	if err := os.MkdirAll(filepath.Join(root, "envs", ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A .tfsh that is a file, or a dangling hooks.hcl link, is not: Load
	// must report it rather than a parent's hooks run.
	mkfile(t, filepath.Join(deep, ".tfsh"), "not a directory")
	if path, ok := Find(deep); !ok || path != filepath.Join(deep, ".tfsh", "hooks.hcl") {
		t.Fatalf("Find with .tfsh a file = %q, %v", path, ok)
	} else if _, diags := Load(path); !diags.HasErrors() {
		t.Fatal("Load of a hooks file under a .tfsh file succeeded")
	}
	os.Remove(filepath.Join(deep, ".tfsh"))
	dangling := filepath.Join(root, "envs", ".tfsh", "hooks.hcl")
	if err := os.Symlink(filepath.Join(root, "gone.hcl"), dangling); err != nil {
		t.Fatal(err)
	}
	if path, ok := Find(deep); !ok || path != dangling {
		t.Fatalf("Find with a dangling hooks link = %q, %v", path, ok)
	}
	os.Remove(dangling)

	path, ok := Find(deep)
	if want := filepath.Join(root, ".tfsh", "hooks.hcl"); !ok || path != want {
		t.Fatalf("Find = %q, %v, want %q", path, ok, want)
	}
	cfg, diags := Load(path)
	if diags.HasErrors() {
		t.Fatal(diagLines(diags))
	}
	if cfg.Dir != root || cfg.File != path || cfg.Hooks[0].Source != path+":1" {
		t.Errorf("Dir=%q File=%q Source=%q, want %q, %q, %q:1", cfg.Dir, cfg.File, cfg.Hooks[0].Source, root, path, path)
	}

	if path, ok := Find(t.TempDir()); ok {
		t.Errorf("Find in an empty tree = %q", path)
	}

	// Outside a .tfsh directory, the project root is the file's directory.
	other := filepath.Join(t.TempDir(), "hooks.hcl")
	mkfile(t, other, "")
	if cfg, _ := Load(other); cfg.Dir != filepath.Dir(other) {
		t.Errorf("Dir = %q, want %q", cfg.Dir, filepath.Dir(other))
	}

	_, diags = Load(filepath.Join(root, "missing.hcl"))
	if got := diagLines(diags); len(got) != 1 || !strings.Contains(got[0], "Cannot read hooks file") {
		t.Errorf("Load of a missing file: %v", got)
	}
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		`hook "a" { on = ["after_command"] exec { argv = ["x"] } }`,
		"hook \"a\" {\n  on = [\"before_command\"]\n  on_failure = \"continue\"\n  exec {\n    argv = [\"./x\", \"--y\"]\n    timeout = \"5s\"\n  }\n}\n",
		"hook \"w\" {\n  on = [\"lock_orphaned\"]\n  commands = [\"apply\"]\n  webhook {\n    url = \"https://h.test/x\"\n    secret_env = \"S\"\n    retries = 2\n    headers = { X-A = \"b\" }\n  }\n}\n",
		"hook \"w\" { on = [1] webhook { url = 5 headers = [1] retries = \"x\" } }",
		"hook { }\nhook \"a\" \"b\" {}\nx = 1",
		"hook \"a\" { on = {a = 1} exec { argv = [null] timeout = null } }",
		"hook \"a\" { on = [\"after_command\"] webhook { url = \"http://[::1\" headers = { (\"a\") = \"b\" } } }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse(src, "fuzz.hcl")
		if cfg == nil {
			t.Fatal("nil Config")
		}
		if !diags.HasErrors() {
			for _, h := range cfg.Hooks {
				if (h.Exec == nil) == (h.Webhook == nil) || len(h.On) == 0 {
					t.Fatalf("valid file gave an invalid hook: %+v", h)
				}
			}
		}
	})
}
