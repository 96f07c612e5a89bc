package hooks_test

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/tfsh/tfsh/hooks"
)

func ExampleParse() {
	src := []byte(`hook "ticket-check" {
  on = ["before_comand"]
  exec { argv = ["./scripts/check-ticket"] }
}
`)
	cfg, diags := hooks.Parse(src, ".tfsh/hooks.hcl")
	if diags.HasErrors() {
		// Config.Src lets any renderer show the lines at fault.
		files := map[string]*hcl.File{cfg.File: {Bytes: cfg.Src}}
		_ = hcl.NewDiagnosticTextWriter(os.Stdout, files, 0, false).WriteDiagnostics(diags)
		return
	}
	fmt.Println(len(cfg.Hooks), "hooks")
	// Output:
	// Error: Unknown event
	//
	//   on .tfsh/hooks.hcl line 2:
	//    2:   on = ["before_comand"]
	//
	// "before_comand" is not an event. Did you mean "before_command"?
}
