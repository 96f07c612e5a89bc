// Command tfsh is a shell that stands in for terraform and tofu and keeps
// state locking honest. See README.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
