package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tfsh/tfsh/policy"
	"github.com/tfsh/tfsh/shell"
	"github.com/tfsh/tfsh/terraform"
)

const policyUsage = `Usage:
  tfsh policy [show] [--dir DIR]                  the policy in effect: files by layer, settings, rules
  tfsh policy check [--layer L] [FILE...]         check the policy in effect, or the given files
  tfsh policy explain [flags] -- <terraform args> which rules a command matches, which not and why
  tfsh policy test [--layer L] [PATH...]          run the test blocks of *_test.hcl files

check and test read FILEs as the project layer on top of the organisation policy in
effect (--layer org|project|user to say otherwise; an organisation file is read as such).
A directory stands for its *.hcl policy files and their *_test.hcl tests. With no
paths, test runs the tests beside every policy file in effect.

explain flags:
  --dir DIR          directory the command runs in (default: the working directory)
  --workspace NAME   pretend the workspace is NAME
  --time RFC3339     pretend the command runs at this time
  --user NAME        pretend this user runs it
  --json             JSON output

Exit codes: 0 valid / all tests pass / allowed; 1 invalid / a test failed / refused;
4 tfsh could not do what was asked.
`

func policyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub := "show"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	switch sub {
	case "show":
		return policyShow(args, wd, stdout, stderr)
	case "check":
		return policyCheck(args, wd, stdout, stderr)
	case "explain":
		return policyExplain(ctx, args, wd, stdout, stderr)
	case "test":
		return policyTest(args, wd, stdout, stderr)
	case "help", "-h", "--help":
		io.WriteString(stdout, policyUsage)
		return 0
	}
	fmt.Fprintf(stderr, "tfsh: policy has no subcommand %q (see tfsh policy help)\n", sub)
	return exitCannotRun
}

func policyFlags(name string, stdout, stderr io.Writer, args []string, def func(*flag.FlagSet)) (*flag.FlagSet, int, bool) {
	fs := newFlagSet("policy " + name)
	def(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, policyUsage)
			return nil, 0, false
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("policy", err))
		return nil, exitCannotRun, false
	}
	return fs, 0, true
}

// loadInEffect loads the layered policy for dir, and prints why not.
func loadInEffect(dir, base string, stderr io.Writer) (*policy.Loaded, bool) {
	l := &policy.Loader{Base: base, Getenv: os.Getenv}
	loaded, err := l.For(dir)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return nil, false
	}
	if loaded.Diags.HasErrors() {
		policy.WriteDiagnostics(stderr, loaded.Files, loaded.Diags)
		return loaded, false
	}
	return loaded, true
}

func policyShow(args []string, wd string, stdout, stderr io.Writer) int {
	var dir string
	fs, code, ok := policyFlags("show", stdout, stderr, args, func(fs *flag.FlagSet) { fs.StringVar(&dir, "dir", wd, "") })
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "tfsh: policy show takes no arguments")
		return exitCannotRun
	}
	loaded, ok := loadInEffect(dir, wd, stderr)
	if !ok {
		return 1
	}
	shell.ShowPolicy(stdout, loaded.Policy)
	return 0
}

// explicitSources turns paths given on the command line into the policy
// to check or test: the organisation files in effect (unless the paths are
// the organisation layer), then the paths at their layer. A directory
// stands for its policy files.
func explicitSources(paths []string, layer string, wd string) ([]policy.Source, []string, error) {
	var l policy.Layer
	if layer != "" {
		var ok bool
		if l, ok = policy.ParseLayer(layer); !ok {
			return nil, nil, fmt.Errorf("--layer is org, project or user, not %q", layer)
		}
	}
	inEffect, err := policy.Find(wd, wd, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	orgPaths := map[string]bool{}
	for _, s := range inEffect {
		if s.Layer == policy.LayerOrg {
			orgPaths[s.Path] = true
		}
	}
	var given []policy.Source
	var tests []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		var files []string
		if fi.IsDir() {
			m, _ := filepath.Glob(filepath.Join(p, "*.hcl"))
			sort.Strings(m)
			for _, f := range m {
				switch {
				case strings.HasSuffix(f, "_test.hcl"):
					tests = append(tests, f)
				case filepath.Base(f) != "hooks.hcl":
					files = append(files, f)
				}
			}
		} else {
			files = []string{p}
			if t := strings.TrimSuffix(p, ".hcl") + "_test.hcl"; t != p && fileExists(t) {
				tests = append(tests, t)
			}
		}
		for _, f := range files {
			fl := l
			fa, _ := filepath.Abs(f)
			if layer == "" {
				fl = policy.LayerProject
				if orgPaths[fa] {
					fl = policy.LayerOrg
				}
			}
			given = append(given, policy.Source{Path: f, Layer: fl})
		}
	}
	var out []policy.Source
	if l != policy.LayerOrg || layer == "" {
		for _, s := range inEffect {
			if s.Layer == policy.LayerOrg && !contains(given, s.Path) {
				out = append(out, s)
			}
		}
	}
	// Layers must come in order: the given files sorted by layer, stable.
	sort.SliceStable(given, func(i, j int) bool { return given[i].Layer < given[j].Layer })
	return append(out, given...), tests, nil
}

func contains(srcs []policy.Source, path string) bool {
	for _, s := range srcs {
		a, _ := filepath.Abs(s.Path)
		if a == path {
			return true
		}
	}
	return false
}

func policyCheck(args []string, wd string, stdout, stderr io.Writer) int {
	var layer string
	fs, code, ok := policyFlags("check", stdout, stderr, args, func(fs *flag.FlagSet) { fs.StringVar(&layer, "layer", "", "") })
	if !ok {
		return code
	}
	var sources []policy.Source
	if fs.NArg() == 0 {
		var err error
		if sources, err = policy.Find(wd, wd, os.Getenv); err != nil {
			fmt.Fprintf(stderr, "tfsh: %v\n", err)
			return exitCannotRun
		}
	} else {
		var err error
		if sources, _, err = explicitSources(fs.Args(), layer, wd); err != nil {
			fmt.Fprintf(stderr, "tfsh: policy check: %v\n", err)
			return exitCannotRun
		}
	}
	p, files, diags := policy.Load(sources)
	if len(diags) > 0 {
		policy.WriteDiagnostics(stderr, files, diags)
	}
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "\npolicy invalid: %d %s; tfsh runs nothing while it is in effect\n", len(diags.Errs()), pluralize(len(diags.Errs()), "error", "errors"))
		return 1
	}
	var names []string
	for _, s := range sources {
		names = append(names, fmt.Sprintf("%s (%s)", display(s, wd), s.Layer))
	}
	if len(names) == 0 {
		names = []string{"no policy files: built-in rules only"}
	}
	fmt.Fprintf(stdout, "policy ok: %d rules from %s\n", len(p.Rules), strings.Join(names, ", "))
	return 0
}

func display(s policy.Source, wd string) string {
	if s.Display != "" {
		return s.Display
	}
	if rel, err := filepath.Rel(wd, s.Path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return s.Path
}

func pluralize(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func policyExplain(ctx context.Context, args []string, wd string, stdout, stderr io.Writer) int {
	o := shell.ExplainOptions{Env: os.Environ(), User: userName()}
	o.Host, _ = os.Hostname()
	var at string
	var asJSON bool
	fs, code, ok := policyFlags("explain", stdout, stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&o.Dir, "dir", wd, "")
		fs.StringVar(&o.Workspace, "workspace", "", "")
		fs.StringVar(&o.User, "user", o.User, "")
		fs.StringVar(&at, "time", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
	})
	if !ok {
		return code
	}
	argv := fs.Args()
	if len(argv) > 0 && (argv[0] == "terraform" || argv[0] == "tofu") {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "tfsh: policy explain needs a command after --, e.g. tfsh policy explain -- apply -lock=false")
		return exitCannotRun
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: --time %q is not RFC 3339 (2026-01-07T21:30:00Z)\n", at)
			return exitCannotRun
		}
		o.Time = t
	}
	o.Product = "terraform"
	if path, err := terraform.Find("", os.Getenv); err == nil && filepath.Base(path) == "tofu" {
		o.Product = "tofu"
	}
	loaded, ok := loadInEffect(o.Dir, wd, stderr)
	if !ok {
		return 1
	}
	ex := loaded.Policy.Explain(shell.ExplainInput(ctx, argv, o))
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			fmt.Fprintf(stderr, "tfsh: %v\n", err)
			return exitCannotRun
		}
	} else {
		policy.WriteExplanation(stdout, ex)
	}
	if ex.Action == policy.Deny {
		return 1
	}
	return 0
}

func policyTest(args []string, wd string, stdout, stderr io.Writer) int {
	var layer string
	fs, code, ok := policyFlags("test", stdout, stderr, args, func(fs *flag.FlagSet) { fs.StringVar(&layer, "layer", "", "") })
	if !ok {
		return code
	}
	var sources []policy.Source
	var tests []string
	var err error
	if fs.NArg() == 0 {
		sources, err = policy.Find(wd, wd, os.Getenv)
		var paths []string
		for _, s := range sources {
			paths = append(paths, s.Path)
		}
		tests = policy.TestFiles(paths)
	} else {
		sources, tests, err = explicitSources(fs.Args(), layer, wd)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: policy test: %v\n", err)
		return exitCannotRun
	}
	p, files, diags := policy.Load(sources)
	if diags.HasErrors() {
		policy.WriteDiagnostics(stderr, files, diags)
		fmt.Fprintln(stderr, "\npolicy invalid: no test ran")
		return 1
	}
	if len(tests) == 0 {
		fmt.Fprintln(stderr, "tfsh: policy test: no *_test.hcl files found beside the policy files")
		return 1
	}
	for i, t := range tests {
		tests[i] = display(policy.Source{Path: t}, wd)
	}
	cases, tfiles, diags := policy.LoadTests(tests, p.Settings.Location)
	if diags.HasErrors() {
		policy.WriteDiagnostics(stderr, tfiles, diags)
		fmt.Fprintln(stderr, "\ntest files invalid: no test ran")
		return 1
	}
	results := p.RunTests(cases, shell.TestInput)
	if policy.WriteTestResults(stdout, results) > 0 {
		return 1
	}
	return 0
}
