package terraform

import (
	"strings"
	"testing"
)

// parseCase is one command line and what terraform makes of it. The same
// table feeds the ground-truth test that runs the real binaries.
type parseCase struct {
	name    string
	args    []string
	env     map[string]string
	command string
	// disabled: the effective -lock is false; spelling/from say which
	// argument won and where it came from.
	disabled bool
	spelling string
	from     string
	err      bool // terraform refuses the arguments
	help     bool
	unsure   bool
	chdir    string
	// effective, if set, is the argv terraform logs as "CLI command args".
	effective []string
	// argv, if set, is Argv("-lock-timeout=5m").
	argv []string
}

var parseCases = []parseCase{
	{name: "plain apply", args: []string{"apply"}, command: "apply", argv: []string{"apply", "-lock-timeout=5m"}},
	{name: "-lock=false", args: []string{"apply", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false"},
	{name: "-lock=0", args: []string{"apply", "-lock=0"}, command: "apply", disabled: true, spelling: "-lock=0"},
	{name: "-lock=f", args: []string{"apply", "-lock=f"}, command: "apply", disabled: true, spelling: "-lock=f"},
	{name: "-lock=F", args: []string{"apply", "-lock=F"}, command: "apply", disabled: true, spelling: "-lock=F"},
	{name: "-lock=FALSE", args: []string{"apply", "-lock=FALSE"}, command: "apply", disabled: true, spelling: "-lock=FALSE"},
	{name: "-lock=False", args: []string{"apply", "-lock=False"}, command: "apply", disabled: true, spelling: "-lock=False"},
	{name: "--lock=false", args: []string{"apply", "--lock=false"}, command: "apply", disabled: true, spelling: "--lock=false"},
	{name: "--lock=0", args: []string{"destroy", "--lock=0"}, command: "destroy", disabled: true, spelling: "--lock=0"},
	{name: "-lock=true", args: []string{"apply", "-lock=true"}, command: "apply"},
	{name: "-lock=1", args: []string{"apply", "-lock=1"}, command: "apply"},
	{name: "-lock=T", args: []string{"apply", "-lock=T"}, command: "apply"},
	{name: "bare -lock", args: []string{"apply", "-lock"}, command: "apply"},
	{name: "last wins: true", args: []string{"apply", "-lock=false", "-lock=true"}, command: "apply"},
	{name: "last wins: false", args: []string{"apply", "-lock=true", "-lock=F"}, command: "apply", disabled: true, spelling: "-lock=F"},
	{name: "-lock false is true plus a positional", args: []string{"apply", "-lock", "false"}, command: "apply"},
	{name: "-lock=no is a parse error", args: []string{"apply", "-lock=no"}, command: "apply", err: true, argv: []string{"!"}},
	{name: "a parse error does not hide an earlier -lock=false", args: []string{"apply", "-lock=false", "-var"}, command: "apply", err: true,
		disabled: true, spelling: "-lock=false"},
	{name: "nor a later one", args: []string{"apply", "-lock=no", "-lock=false"}, command: "apply", err: true,
		disabled: true, spelling: "-lock=false"},
	{name: "-lock= is a parse error", args: []string{"apply", "-lock="}, command: "apply", err: true},
	{name: "after a positional", args: []string{"apply", "tfplan", "-lock=false"}, command: "apply"},
	{name: "after --", args: []string{"apply", "--", "-lock=false"}, command: "apply"},
	{name: "-var takes a value", args: []string{"apply", "-var", "x=1", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false"},
	{name: "-var swallows -lock=false", args: []string{"apply", "-var", "-lock=false"}, command: "apply"},
	{name: "-no-color is stripped first", args: []string{"apply", "-var", "-no-color", "-lock=false"}, command: "apply"},
	{name: "-compact-warnings stripped for apply", args: []string{"apply", "-var", "-compact-warnings", "-lock=false"}, command: "apply"},
	{name: "-compact-warnings is a flag", args: []string{"apply", "-compact-warnings", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false"},
	{name: "bool flag does not consume", args: []string{"apply", "-auto-approve", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false"},
	{name: "lock-timeout space form", args: []string{"apply", "-lock-timeout", "10s", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false"},
	{name: "lock-timeout must be a duration", args: []string{"apply", "-lock-timeout=10"}, command: "apply", err: true},
	{name: "additions go after the flags", args: []string{"apply", "-auto-approve", "-var", "x=1", "tfplan"}, command: "apply",
		argv: []string{"apply", "-auto-approve", "-var", "x=1", "-lock-timeout=5m", "tfplan"}},
	{name: "additions go before --", args: []string{"apply", "-auto-approve", "--", "tfplan"}, command: "apply",
		argv: []string{"apply", "-auto-approve", "-lock-timeout=5m", "--", "tfplan"}},
	{name: "a value flag ending TF_CLI_ARGS cannot take the addition", args: []string{"apply", "-lock=false"},
		env: map[string]string{"TF_CLI_ARGS_apply": "-backup"}, command: "apply",
		effective: []string{"apply", "-backup", "-lock=false"}, argv: []string{"apply", "-lock=false", "-lock-timeout=5m"}},
	{name: "flags ending inside TF_CLI_ARGS: nothing can be added", args: []string{"apply", "-auto-approve"},
		env: map[string]string{"TF_CLI_ARGS": "tfplan"}, command: "apply", argv: []string{"!"}},

	{name: "TF_CLI_ARGS", args: []string{"apply"}, env: map[string]string{"TF_CLI_ARGS": "-lock=false"}, command: "apply",
		disabled: true, spelling: "-lock=false", from: "TF_CLI_ARGS", effective: []string{"apply", "-lock=false"}},
	{name: "TF_CLI_ARGS_apply", args: []string{"apply", "-auto-approve"}, env: map[string]string{"TF_CLI_ARGS_apply": "-lock=0"}, command: "apply",
		disabled: true, spelling: "-lock=0", from: "TF_CLI_ARGS_apply", effective: []string{"apply", "-lock=0", "-auto-approve"}},
	{name: "command line beats TF_CLI_ARGS", args: []string{"apply", "-lock=true"}, env: map[string]string{"TF_CLI_ARGS": "-lock=false"}, command: "apply"},
	{name: "command line false beats TF_CLI_ARGS true", args: []string{"apply", "-lock=f"}, env: map[string]string{"TF_CLI_ARGS": "-lock=true"}, command: "apply",
		disabled: true, spelling: "-lock=f"},
	{name: "TF_CLI_ARGS beats TF_CLI_ARGS_apply", args: []string{"apply"},
		env:     map[string]string{"TF_CLI_ARGS_apply": "-lock=true", "TF_CLI_ARGS": "-lock=false"},
		command: "apply", disabled: true, spelling: "-lock=false", from: "TF_CLI_ARGS",
		effective: []string{"apply", "-lock=true", "-lock=false"}},
	{name: "TF_CLI_ARGS_apply loses to TF_CLI_ARGS", args: []string{"apply"},
		env:     map[string]string{"TF_CLI_ARGS_apply": "-lock=false", "TF_CLI_ARGS": "-lock=true"},
		command: "apply", effective: []string{"apply", "-lock=false", "-lock=true"}},
	{name: "TF_CLI_ARGS_plan does not apply to apply", args: []string{"apply"}, env: map[string]string{"TF_CLI_ARGS_plan": "-lock=false"}, command: "apply"},
	{name: "quoted TF_CLI_ARGS", args: []string{"apply"}, env: map[string]string{"TF_CLI_ARGS": `-var 'greeting=hello world' -lock=false`}, command: "apply",
		disabled: true, spelling: "-lock=false", from: "TF_CLI_ARGS", effective: []string{"apply", "-var", "greeting=hello world", "-lock=false"}},
	{name: "double-quoted TF_CLI_ARGS value swallowed by -var", args: []string{"apply"}, env: map[string]string{"TF_CLI_ARGS": `-var "-lock=false"`}, command: "apply",
		effective: []string{"apply", "-var", "-lock=false"}},
	{name: "unterminated quote in TF_CLI_ARGS", args: []string{"apply"}, env: map[string]string{"TF_CLI_ARGS": `-var 'x=1`}, command: "apply", err: true},

	{name: "-chdir", args: []string{"-chdir=sub", "apply", "-lock=false"}, command: "apply", chdir: "sub", disabled: true, spelling: "-lock=false",
		effective: []string{"apply", "-lock=false"}},
	{name: "-chdir and TF_CLI_ARGS", args: []string{"-chdir=sub", "apply", "-auto-approve"}, env: map[string]string{"TF_CLI_ARGS_apply": "--lock=false"}, command: "apply", chdir: "sub",
		disabled: true, spelling: "--lock=false", from: "TF_CLI_ARGS_apply", effective: []string{"apply", "--lock=false", "-auto-approve"}},
	{name: "-chdir argv insertion", args: []string{"-chdir=sub", "apply", "-auto-approve"}, command: "apply", chdir: "sub",
		argv: []string{"-chdir=sub", "apply", "-auto-approve", "-lock-timeout=5m"}},
	{name: "-chdir without =", args: []string{"-chdir", "sub", "apply"}, err: true},
	{name: "two -chdir", args: []string{"-chdir=a", "-chdir=b", "apply"}, command: "apply", chdir: "b", err: true},
	{name: "flag before subcommand", args: []string{"-no-color", "apply"}, command: "apply", err: true},

	{name: "state mv", args: []string{"state", "mv", "-lock=false", "a", "b"}, command: "state mv", disabled: true, spelling: "-lock=false",
		argv: nil},
	{name: "state mv flag after positionals", args: []string{"state", "mv", "a", "b", "-lock=false"}, command: "state mv"},
	{name: "state mv argv insertion", args: []string{"state", "mv", "a", "b"}, command: "state mv", argv: []string{"state", "mv", "-lock-timeout=5m", "a", "b"}},
	{name: "TF_CLI_ARGS_state_mv", args: []string{"state", "mv", "a", "b"}, env: map[string]string{"TF_CLI_ARGS_state_mv": "-lock=false"}, command: "state mv",
		disabled: true, from: "TF_CLI_ARGS_state_mv", spelling: "-lock=false", effective: []string{"state", "mv", "-lock=false", "a", "b"}},
	{name: "TF_CLI_ARGS_state does not reach state mv", args: []string{"state", "rm", "a"}, env: map[string]string{"TF_CLI_ARGS_state": "-lock=false"}, command: "state rm"},
	{name: "workspace delete", args: []string{"workspace", "delete", "-lock=false", "w"}, command: "workspace delete", disabled: true, spelling: "-lock=false"},
	{name: "TF_CLI_ARGS_workspace_delete", args: []string{"workspace", "delete", "w"}, env: map[string]string{"TF_CLI_ARGS_workspace_delete": "-lock=F"}, command: "workspace delete",
		disabled: true, spelling: "-lock=F", from: "TF_CLI_ARGS_workspace_delete"},
	{name: "env delete (legacy alias)", args: []string{"env", "delete", "-lock=false", "w"}, command: "env delete", disabled: true, spelling: "-lock=false"},
	{name: "import", args: []string{"import", "-lock=false", "a.b", "id"}, command: "import", disabled: true, spelling: "-lock=false"},
	{name: "taint", args: []string{"taint", "-lock=0", "a.b"}, command: "taint", disabled: true, spelling: "-lock=0"},
	{name: "refresh", args: []string{"refresh", "-lock=false"}, command: "refresh", disabled: true, spelling: "-lock=false"},
	{name: "plan", args: []string{"plan", "-lock=false"}, command: "plan", disabled: true, spelling: "-lock=false"},

	{name: "help anywhere", args: []string{"apply", "-lock=false", "-help"}, command: "apply", help: true},
	{name: "help after -- does not count", args: []string{"apply", "--", "-h"}, command: "apply"},
	{name: "-v anywhere makes version", args: []string{"apply", "-lock=false", "-v"}, command: "version", effective: []string{"version", "apply", "-lock=false", "-v"}},
	{name: "--version first", args: []string{"--version"}, command: "version", effective: []string{"version", "--version"}},

	{name: "unknown command: lock=false counts", args: []string{"frobnicate", "-lock=false"}, command: "frobnicate", disabled: true, spelling: "-lock=false", unsure: true},
	{name: "unknown command: any false -lock counts", args: []string{"frobnicate", "-lock=false", "-x", "-lock=true"}, command: "frobnicate",
		disabled: true, spelling: "-lock=false", unsure: true},
	{name: "unknown flag read both ways", args: []string{"apply", "-newflag", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false", unsure: true},
	{name: "unknown flag may take the next value", args: []string{"apply", "-newflag", "x", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false", unsure: true},
	{name: "unknown flag with value", args: []string{"apply", "-newflag=1", "-lock=false"}, command: "apply", disabled: true, spelling: "-lock=false", unsure: true},
	{name: "-lock on a command without it", args: []string{"output", "-lock=false"}, command: "output", unsure: true},
	{name: "force-unlock", args: []string{"force-unlock", "-force", "abc"}, command: "force-unlock"},
}

func TestParse(t *testing.T) {
	if len(parseCases) < 40 {
		t.Fatalf("only %d cases", len(parseCases))
	}
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			inv := Parse(tt.args, func(k string) string { return tt.env[k] })
			if inv.Command != tt.command && !(tt.command == "" && tt.err) {
				t.Fatalf("Command = %q, want %q", inv.Command, tt.command)
			}
			if got := inv.Err != nil; got != tt.err {
				t.Fatalf("Err = %v, want error: %v", inv.Err, tt.err)
			}
			if inv.LockDisabled != tt.disabled {
				t.Fatalf("LockDisabled = %v, want %v (lock %+v)", inv.LockDisabled, tt.disabled, inv.Lock)
			}
			if tt.disabled {
				if inv.Lock.Spelling != tt.spelling || inv.Lock.From != tt.from {
					t.Fatalf("Lock = %+v, want spelling %q from %q", inv.Lock, tt.spelling, tt.from)
				}
			}
			if inv.Help != tt.help {
				t.Fatalf("Help = %v, want %v", inv.Help, tt.help)
			}
			if inv.Uncertain != tt.unsure {
				t.Fatalf("Uncertain = %v, want %v", inv.Uncertain, tt.unsure)
			}
			if inv.Chdir != tt.chdir {
				t.Fatalf("Chdir = %q, want %q", inv.Chdir, tt.chdir)
			}
			if tt.effective != nil {
				if got := strings.Join(inv.EffectiveArgv(), " | "); got != strings.Join(tt.effective, " | ") {
					t.Fatalf("EffectiveArgv = %q, want %q", got, strings.Join(tt.effective, " | "))
				}
			}
			argv, ok := inv.Argv("-lock-timeout=5m")
			switch {
			case len(tt.argv) == 1 && tt.argv[0] == "!":
				if ok {
					t.Fatalf("Argv = %q, want no safe place to add", argv)
				}
			case tt.argv != nil:
				if got := strings.Join(argv, " "); !ok || got != strings.Join(tt.argv, " ") {
					t.Fatalf("Argv = %q (ok %v), want %q", got, ok, strings.Join(tt.argv, " "))
				}
			}
			if ok {
				checkAdditionKeepsMeaning(t, inv, argv, func(k string) string { return tt.env[k] })
			}
		})
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"apply", "-var", "db_password=hunter2", "-var=token=abc", "--var", "x=y=z", "-backend-config=secret_key=s3", "-backend-config=bucket=b", "-backend-config", "backend.hcl", "-var", "novalue"}
	want := "apply -var db_password=[redacted] -var=token=[redacted] --var x=[redacted] -backend-config=secret_key=[redacted] -backend-config=bucket=b -backend-config backend.hcl -var [redacted]"
	if got := strings.Join(RedactArgs(in), " "); got != want {
		t.Fatalf("RedactArgs = %q\nwant %q", got, want)
	}
	if got := strings.Join(ArgSecrets(in), ","); got != "hunter2,abc,y=z,s3,novalue" {
		t.Fatalf("ArgSecrets = %q", got)
	}
	complexVar := []string{"apply", "-var", `keys=["alpha-key-1","beta-key-2"]`, "-var", `m={pin = 987654}`}
	if got := strings.Join(ArgSecrets(complexVar), ","); got != `["alpha-key-1","beta-key-2"],alpha-key-1,beta-key-2,{pin = 987654},987654` {
		t.Fatalf("ArgSecrets(complex) = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(strings.Join(c.args, "\x00"), c.env["TF_CLI_ARGS"], c.env["TF_CLI_ARGS_apply"])
	}
	f.Fuzz(func(t *testing.T, args, cli, cliCmd string) {
		argv := strings.Split(args, "\x00")
		// cliCmd stands for TF_CLI_ARGS_<whatever the command is>.
		getenv := func(k string) string {
			if k == "TF_CLI_ARGS" {
				return cli
			}
			if strings.HasPrefix(k, "TF_CLI_ARGS_") {
				return cliCmd
			}
			return ""
		}
		inv := Parse(argv, getenv)
		// Adding never changes how terraform reads the rest.
		if out, ok := inv.Argv("-lock-timeout=5m"); ok {
			if len(out) != len(argv)+1 {
				t.Fatalf("Argv lost arguments: %q -> %q", argv, out)
			}
			checkAdditionKeepsMeaning(t, inv, out, getenv)
		}
		// A disabled lock always names the argument that disabled it.
		if inv.LockDisabled && inv.Lock.Spelling == "" {
			t.Fatalf("disabled lock without a spelling: %+v", inv)
		}
		_ = RedactArgs(inv.EffectiveArgv())
	})
}

// checkAdditionKeepsMeaning parses argv (inv's arguments plus an added
// -lock-timeout) again and requires the same lock, positional arguments and
// command, with the addition in effect.
func checkAdditionKeepsMeaning(t *testing.T, inv *Invocation, argv []string, getenv Getenv) {
	t.Helper()
	again := Parse(argv, getenv)
	pos := func(as []Arg) string {
		var out []string
		for _, a := range as {
			out = append(out, a.Value)
		}
		return strings.Join(out, "\x00")
	}
	if again.LockDisabled != inv.LockDisabled || again.Command != inv.Command || pos(again.Positional) != pos(inv.Positional) || (again.Err == nil) != (inv.Err == nil) {
		t.Fatalf("adding changed the meaning of %q: lock off %v -> %v, positional %q -> %q, err %v -> %v",
			inv.Typed, inv.LockDisabled, again.LockDisabled, pos(inv.Positional), pos(again.Positional), inv.Err, again.Err)
	}
	if inv.Spec != nil && inv.Spec.LockTimeoutFlag && (!again.LockTimeout.Set || again.LockTimeout.Value != "5m") {
		t.Fatalf("the addition is not in effect in %q: %+v", argv, again.LockTimeout)
	}
}
