package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
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
  tfsh policy check [--layer L] [--with-org] [PATH...]  check the policy in effect, or the given files
  tfsh policy explain [flags] -- <terraform args> which rules a command matches, which not and why
  tfsh policy test [--layer L] [--with-org] [PATH...]   run the test blocks of *_test.hcl files

With no paths, check and test use the policy in effect here (every layer), and test runs
the *_test.hcl files beside its files. Given paths are read alone, as the project layer
over the built-in rules (--layer org|project|user to say otherwise), so results do not
depend on the machine; --with-org reads them on top of the organisation policy in
effect, to check that they do not loosen what it enforces. A directory stands for its
*.hcl policy files and their *_test.hcl tests; a file X.hcl for itself and X_test.hcl.

explain flags:
  --dir DIR          directory the command runs in (default: the working directory)
  --workspace NAME   pretend the workspace is NAME
  --time RFC3339     pretend the command runs at this time
  --user NAME        pretend this user runs it
  --json             JSON output

Exit codes: 0 valid / all tests pass / allowed; 1 invalid / a test failed / refused;
4 tfsh could not do what was asked (a file that cannot be read, a bad flag).
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

// policyFlags parses a policy subcommand's flags, which may come before or
// after its paths (policy test DIR --layer org), up to "--" (after which
// everything is terraform's, for explain). It returns the paths.
func policyFlags(name string, stdout, stderr io.Writer, args []string, def func(*flag.FlagSet)) ([]string, int, bool) {
	fs := newFlagSet("policy " + name)
	def(fs)
	var positional []string
	var err error
	if name == "explain" {
		// Everything from the command on is terraform's.
		err = fs.Parse(args)
		positional = fs.Args()
	} else {
		positional, err = parseInterspersed(fs, args)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, policyUsage)
			return nil, 0, false
		}
		fmt.Fprintf(stderr, "tfsh: %v\n", flagError("policy", err))
		return nil, exitCannotRun, false
	}
	return positional, 0, true
}

// loadInEffect loads the layered policy for dir, and prints why not.
// loadInEffect loads the layered policy for dir, and prints why not: exit
// 1 for an invalid policy, 4 when its files cannot be found or read.
func loadInEffect(dir, base string, stderr io.Writer) (*policy.Loaded, int) {
	l := &policy.Loader{Base: base, Getenv: os.Getenv}
	loaded, err := l.For(dir)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return nil, exitCannotRun
	}
	if loaded.Diags.HasErrors() {
		policy.WriteDiagnostics(stderr, loaded.Files, loaded.Diags)
		return loaded, 1
	}
	return loaded, 0
}

func policyShow(args []string, wd string, stdout, stderr io.Writer) int {
	var dir string
	paths, code, ok := policyFlags("show", stdout, stderr, args, func(fs *flag.FlagSet) { fs.StringVar(&dir, "dir", wd, "") })
	if !ok {
		return code
	}
	if len(paths) > 0 {
		fmt.Fprintln(stderr, "tfsh: policy show takes no arguments")
		return exitCannotRun
	}
	loaded, code := loadInEffect(dir, wd, stderr)
	if code != 0 {
		return code
	}
	// The shared table in effect includes the environment's override.
	sink, err := sinkFrom(loaded.Policy.Settings, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return exitCannotRun
	}
	p := loaded.Policy
	if sink.table != p.Settings.AuditTable {
		shown := *p
		shown.Settings.AuditTable = sink.table
		shown.Settings.Source = maps.Clone(p.Settings.Source)
		shown.Settings.Source["audit.dynamodb_table"] = sink.from
		p = &shown
	}
	shell.ShowPolicy(stdout, p)
	return 0
}

// explicitSources turns paths given on the command line into the policy
// to check or test: the given files alone over the built-in rules, so that
// a result does not depend on the machine (like opa test on a directory);
// with withOrg, on top of the organisation policy in effect, to check that
// they do not loosen what it enforces. A directory stands for its policy
// files (*.hcl but *_test.hcl and hooks.hcl); a file X.hcl brings its
// tests from X_test.hcl.
func explicitSources(paths []string, layer string, withOrg bool, wd string) ([]policy.Source, []string, error) {
	l := policy.LayerProject
	if layer != "" {
		var ok bool
		if l, ok = policy.ParseLayer(layer); !ok {
			return nil, nil, fmt.Errorf("--layer is org, project or user, not %q", layer)
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
			given = append(given, policy.Source{Path: f, Layer: l})
		}
	}
	if !withOrg {
		return given, tests, nil
	}
	inEffect, err := policy.Find(wd, wd, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	var out []policy.Source
	for _, s := range inEffect {
		if s.Layer == policy.LayerOrg && !contains(given, s.Path) {
			out = append(out, s)
		}
	}
	return append(out, given...), tests, nil
}

func contains(srcs []policy.Source, path string) bool {
	for _, s := range srcs {
		a, _ := filepath.Abs(s.Path)
		b, _ := filepath.Abs(path)
		if a == b {
			return true
		}
	}
	return false
}

// policySources reads check's and test's flags and paths: the policy files
// to load and the test files beside them (see explicitSources), or, with no
// paths, those in effect in wd.
func policySources(name string, args []string, wd string, stdout, stderr io.Writer) ([]policy.Source, []string, int, bool) {
	var layer string
	var withOrg bool
	paths, code, ok := policyFlags(name, stdout, stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&layer, "layer", "", "")
		fs.BoolVar(&withOrg, "with-org", false, "")
	})
	if !ok {
		return nil, nil, code, false
	}
	if len(paths) > 0 {
		sources, tests, err := explicitSources(paths, layer, withOrg, wd)
		if err != nil {
			fmt.Fprintf(stderr, "tfsh: policy %s: %v\n", name, err)
			return nil, nil, exitCannotRun, false
		}
		return sources, tests, 0, true
	}
	sources, err := policy.Find(wd, wd, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tfsh: %v\n", err)
		return nil, nil, exitCannotRun, false
	}
	var files []string
	for _, s := range sources {
		files = append(files, s.Path)
	}
	return sources, policy.TestFiles(files), 0, true
}

func policyCheck(args []string, wd string, stdout, stderr io.Writer) int {
	sources, _, code, ok := policySources("check", args, wd, stdout, stderr)
	if !ok {
		return code
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
	paths, code, ok := policyFlags("explain", stdout, stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&o.Dir, "dir", wd, "")
		fs.StringVar(&o.Workspace, "workspace", "", "")
		fs.StringVar(&o.User, "user", o.User, "")
		fs.StringVar(&at, "time", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
	})
	if !ok {
		return code
	}
	argv := paths
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
	// The policy of the directory the command runs in (its -chdir).
	loaded, code := loadInEffect(shell.CommandDir(o.Dir, argv, o.Product, o.Env), wd, stderr)
	if code != 0 {
		return code
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
	sources, tests, code, ok := policySources("test", args, wd, stdout, stderr)
	if !ok {
		return code
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
