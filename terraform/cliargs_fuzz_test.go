package terraform

import (
	"slices"
	"strings"
	"testing"

	"github.com/mattn/go-shellwords"
)

// FuzzCLIArgsSplit fuzzes how tfsh splits TF_CLI_ARGS and TF_CLI_ARGS_<cmd>
// and where it puts the words. It must never panic; a value terraform can
// split is split as terraform splits it (go-shellwords, as terraform does),
// inserted in one piece right after the subcommand, and every -var value it
// carries is redacted in the effective argv.
func FuzzCLIArgsSplit(f *testing.F) {
	for _, s := range [][2]string{
		{"-lock=false", ""},
		{"-var 'db_password=S3cr3t one'", "-lock-timeout=1m"},
		{`-var="k=v" -no-color`, `-var=db_password=x\ y`},
		{"-backend-config=secret_key=abc -backend-config=bucket=b", ""},
		{`'unterminated`, ""},
		{"$HOME `cmd` -input=false", "-var-file=prod.tfvars"},
		{"", "-lock -lock=false"},
		{"-var", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, cli, cliCmd string) {
		getenv := func(k string) string {
			switch k {
			case "TF_CLI_ARGS":
				return cli
			case "TF_CLI_ARGS_apply":
				return cliCmd
			}
			return ""
		}
		inv := Parse([]string{"apply", "-input=false"}, getenv)
		if inv.Err != nil && strings.Contains(inv.Err.Error(), "cannot split") && len(inv.EnvArgs) == 2 {
			t.Fatalf("split error %v with both variables split", inv.Err)
		}
		eff := inv.EffectiveArgv()
		for _, ea := range inv.EnvArgs {
			want, err := shellwords.Parse(ea.Value)
			if err != nil || !slices.Equal(ea.Args, want) {
				t.Fatalf("%s=%q split as %q, terraform splits it as %q (%v)", ea.Name, ea.Value, ea.Args, want, err)
			}
			if len(ea.Args) == 0 {
				continue
			}
			// The words sit together right after the subcommand.
			if i := slices.Index(eff, ea.Args[0]); i < 0 || i+len(ea.Args) > len(eff) {
				t.Fatalf("%s words %q missing from %q", ea.Name, ea.Args, eff)
			}
		}
		if inv.Err == nil {
			if eff[0] == "version" && inv.Command == "version" {
				eff = eff[1:] // -v or -version anywhere: terraform runs version
			}
			n := 2
			for _, ea := range inv.EnvArgs {
				n += len(ea.Args)
			}
			if len(eff) != n || eff[0] != "apply" || eff[len(eff)-1] != "-input=false" {
				t.Fatalf("effective argv %q from TF_CLI_ARGS=%q TF_CLI_ARGS_apply=%q", eff, cli, cliCmd)
			}
		}
		red := RedactArgs(eff)
		if len(red) != len(eff) {
			t.Fatalf("RedactArgs changed the length: %q -> %q", eff, red)
		}
		for i, a := range red {
			name, value, hasValue, ok := flagName(a)
			if !ok || name != "var" {
				continue
			}
			if !hasValue {
				if i+1 < len(red) {
					value = red[i+1]
				} else {
					continue
				}
			}
			if !strings.HasSuffix(value, RedactedValue) {
				t.Fatalf("-var value %q survived redaction in %q", value, red)
			}
		}
	})
}
