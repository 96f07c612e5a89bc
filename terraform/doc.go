// Package terraform knows the terraform and OpenTofu command line: which
// subcommands lock and write state (the catalog), how terraform will
// interpret an argument list (-chdir, TF_CLI_ARGS*, last-wins flags), and
// how to run the binary (on a pseudo-terminal or with pipes) without a shell.
package terraform
