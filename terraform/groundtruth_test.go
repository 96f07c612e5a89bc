package terraform_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/internal/lab/labtest"
	"github.com/tfsh/tfsh/terraform"
)

// groundCase is a command line to check against the real binary.
type groundCase struct {
	args []string
	env  map[string]string
}

// groundCases cover every route by which -lock changes: spellings, last
// wins, positional stop, value flags, stripped flags, TF_CLI_ARGS and
// TF_CLI_ARGS_<cmd> precedence and quoting, -chdir, nested commands,
// version and help shortcuts.
var groundCases = []groundCase{
	{args: []string{"plan"}},
	{args: []string{"plan", "-lock=false"}},
	{args: []string{"plan", "-lock=0"}},
	{args: []string{"plan", "-lock=F"}},
	{args: []string{"plan", "-lock=FALSE"}},
	{args: []string{"plan", "--lock=False"}},
	{args: []string{"plan", "-lock=f"}},
	{args: []string{"plan", "-lock=true"}},
	{args: []string{"plan", "-lock"}},
	{args: []string{"plan", "-lock=false", "-lock=true"}},
	{args: []string{"plan", "-lock=true", "-lock=0"}},
	{args: []string{"plan", "-lock=no"}},
	{args: []string{"plan", "-no-color", "-lock=false"}},
	{args: []string{"plan", "-compact-warnings", "-lock=false"}},
	{args: []string{"plan", "-var", "-no-color", "-lock=false"}},
	{args: []string{"plan", "-var", "-compact-warnings", "-lock=false"}},
	{args: []string{"plan", "-var", "-concise", "-lock=false"}},
	{args: []string{"plan", "-var", "-consolidate-errors=false", "-lock=false"}},
	{args: []string{"plan", "-var", "-deprecation=module:none", "-lock=false"}},
	{args: []string{"plan", "-var"}, env: map[string]string{"TF_CLI_ARGS": "-no-color -lock=false"}},
	{args: []string{"refresh", "-lock=false"}},
	{args: []string{"apply", "-lock=false", "-auto-approve"}},
	{args: []string{"apply", "-auto-approve", "-lock=1"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS": "-lock=false"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS_plan": "-lock=false"}},
	{args: []string{"plan", "-lock=true"}, env: map[string]string{"TF_CLI_ARGS": "-lock=false"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS": "-lock=false", "TF_CLI_ARGS_plan": "-lock=true"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS": "-lock=true", "TF_CLI_ARGS_plan": "-lock=false"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS_apply": "-lock=false"}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS": `-compact-warnings   '-lock=false'`}},
	{args: []string{"plan"}, env: map[string]string{"TF_CLI_ARGS": `"-lock=false" -input=false`}},
	{args: []string{"-chdir=.", "plan", "-lock=false"}},
	{args: []string{"-chdir=.", "plan"}, env: map[string]string{"TF_CLI_ARGS_plan": "--lock=0"}},
	{args: []string{"state", "mv", "-lock=false", "a.b", "a.c"}},
	{args: []string{"state", "mv", "a.b", "a.c"}, env: map[string]string{"TF_CLI_ARGS_state_mv": "-lock=false", "TF_CLI_ARGS": "-dry-run"}},
	{args: []string{"workspace", "delete", "w"}, env: map[string]string{"TF_CLI_ARGS_workspace_delete": "-lock=F"}},
	{args: []string{"force-unlock", "-force", "x"}, env: map[string]string{"TF_CLI_ARGS_force_unlock": "-force"}},
	{args: []string{"apply", "-lock=false", "-v"}},
	{args: []string{"-version"}},
	{args: []string{"plan", "-var", "x=1", "-lock=false"}},
}

var cliArgsLine = regexp.MustCompile(`CLI command args: \[\]string\{(.*)\}`)
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// loggedArgs reads the argv terraform logs at INFO after merging TF_CLI_ARGS.
func loggedArgs(t *testing.T, log []byte) ([]string, bool) {
	t.Helper()
	m := cliArgsLine.FindSubmatch(log)
	if m == nil {
		return nil, false
	}
	out := []string{}
	for _, q := range quoted.FindAllString(string(m[1]), -1) {
		s, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("unquote %s: %v", q, err)
		}
		out = append(out, s)
	}
	return out, true
}

// lockStateFile takes the local backend's lock on path the way terraform
// does (an fcntl write lock on the whole state file), so that a command
// that locks fails at once and one that does not lock goes on.
func lockStateFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
}

const config = `variable "x" {
  type    = string
  default = ""
}
`

// TestParseMatchesBinary checks Parse against the real binaries: the argv
// terraform logs after merging TF_CLI_ARGS*, and the effective -lock value
// as terraform acts on it (with the state lock held elsewhere, a locking
// command fails with "Error acquiring the state lock"; an unlocked one runs).
func TestParseMatchesBinary(t *testing.T) {
	bins := map[string]string{"terraform": labtest.Terraform(t), "tofu": labtest.Tofu(t)}
	for name, bin := range bins {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for i, c := range groundCases {
				t.Run(strconv.Itoa(i)+" "+strings.Join(c.args, " "), func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644); err != nil {
						t.Fatal(err)
					}
					lockStateFile(t, filepath.Join(dir, "terraform.tfstate"))
					logPath := filepath.Join(dir, "tf.log")
					env := lab.Env(os.Environ())
					env = append(env, "TF_LOG=info", "TF_LOG_PATH="+logPath, "TF_INPUT=0")
					for k, v := range c.env {
						env = append(env, k+"="+v)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, bin, c.args...)
					cmd.Dir = dir
					cmd.Env = env
					var out bytes.Buffer
					cmd.Stdout, cmd.Stderr = &out, &out
					runErr := cmd.Run()
					log, _ := os.ReadFile(logPath)

					inv := terraform.ParseFor(name, c.args, func(k string) string { return c.env[k] })
					got, logged := loggedArgs(t, log)
					if !logged {
						if inv.Err == nil {
							t.Fatalf("terraform logged no CLI args (it refused early?), tfsh saw no error; output:\n%s", out.String())
						}
						return
					}
					if want := inv.EffectiveArgv(); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
						t.Fatalf("terraform's argv %q, tfsh computed %q", got, want)
					}
					if inv.Spec == nil || inv.Spec.Locks != terraform.LockAlways || inv.Help || inv.Command == "version" {
						return
					}
					contended := strings.Contains(out.String(), "Error acquiring the state lock")
					switch {
					case inv.Err != nil:
						// Refused before locking: a parse error, not contention.
						if runErr == nil || contended {
							t.Fatalf("tfsh predicted terraform refuses the arguments (%v), but it ran or tried to lock:\n%s", inv.Err, out.String())
						}
					case inv.LockDisabled && contended:
						t.Fatalf("tfsh computed -lock=false (%+v), but terraform tried to lock:\n%s", inv.Lock, out.String())
					case !inv.LockDisabled && !contended && inv.Command != "state mv" && inv.Command != "workspace delete":
						t.Fatalf("tfsh computed locking on, but terraform did not lock:\n%s", out.String())
					}
				})
			}
		})
	}
}
