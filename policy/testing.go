package policy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// TestCase is one test block of a *_test.hcl file: a command line, the
// world around it, and the outcome the policy must give.
type TestCase struct {
	Name   string
	Source string // file:line of the test block
	// Command is the command line as typed in the shell ("apply -lock=false").
	Command   string
	Product   string // "terraform" (default) or "tofu"
	Workspace string
	Backend   string
	StateKey  string
	User      string
	Host      string
	CI        CI
	Env       map[string]string
	Time      time.Time
	Lock      LockState
	// Reason, when set, answers require_reason: the outcome is then what
	// follows from that reason (deny when a pattern does not match).
	Reason *string

	Expect     Action
	ExpectRule string   // "" means any; else one of the rules that give the expected action
	ExpectArgs []string // nil means not checked
}

// TestTime is when a test runs unless it says otherwise: a Wednesday at
// noon, in the policy's time zone.
var TestTime = time.Date(2026, time.January, 7, 12, 0, 0, 0, time.UTC)

var (
	testFileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "test", LabelNames: []string{"name"}}}}
	testSchema     = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "command", Required: true}, {Name: "expect", Required: true},
			{Name: "product"}, {Name: "workspace"}, {Name: "backend"}, {Name: "state_key"}, {Name: "user"}, {Name: "host"},
			{Name: "ci"}, {Name: "env"}, {Name: "time"}, {Name: "reason"}, {Name: "expect_rule"}, {Name: "expect_args"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "lock"}},
	}
	lockBlockSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "held"}, {Name: "id"}, {Name: "who"}, {Name: "operation"}, {Name: "age"},
	}}
)

// TestFiles lists the *_test.hcl files beside the given policy files (each
// directory once).
func TestFiles(policyFiles []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range policyFiles {
		dir := filepath.Dir(p)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		m, _ := filepath.Glob(filepath.Join(dir, "*_test.hcl"))
		sort.Strings(m)
		out = append(out, m...)
	}
	return out
}

// LoadTests reads test files. Every problem is reported at once.
func LoadTests(paths []string, loc *time.Location) ([]TestCase, Files, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	files := Files{}
	var cases []TestCase
	var diags hcl.Diagnostics
	if loc == nil {
		loc = time.UTC
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read test file", Detail: err.Error()})
			continue
		}
		f, ds := parser.ParseHCL(data, path)
		diags = append(diags, ds...)
		if f == nil {
			continue
		}
		files[path] = f
		content, ds := f.Body.Content(testFileSchema)
		diags = append(diags, ds...)
		names := map[string]hcl.Range{}
		for _, b := range content.Blocks {
			name := b.Labels[0]
			if prev, dup := names[name]; dup {
				diags = append(diags, errAt(b.DefRange.Ptr(), "Duplicate test", fmt.Sprintf("Test %q is already defined at line %d.", name, prev.Start.Line)))
				continue
			}
			names[name] = b.DefRange
			tc, ds := decodeTest(b, loc)
			diags = append(diags, ds...)
			if !ds.HasErrors() {
				cases = append(cases, tc)
			}
		}
	}
	return cases, files, diags
}

func decodeTest(b *hcl.Block, loc *time.Location) (TestCase, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	tc := TestCase{Name: b.Labels[0], Source: fmt.Sprintf("%s:%d", b.DefRange.Filename, b.DefRange.Start.Line), Time: TestTime.In(loc)}
	tc.Time = time.Date(tc.Time.Year(), tc.Time.Month(), tc.Time.Day(), 12, 0, 0, 0, loc)
	c, ds := b.Body.Content(testSchema)
	diags = append(diags, ds...)
	str := func(name string, dst *string) {
		if a := c.Attributes[name]; a != nil {
			if v, ok := literal(a, cty.String, &diags); ok {
				*dst = v.AsString()
			}
		}
	}
	str("command", &tc.Command)
	str("product", &tc.Product)
	str("workspace", &tc.Workspace)
	str("backend", &tc.Backend)
	str("state_key", &tc.StateKey)
	str("user", &tc.User)
	str("host", &tc.Host)
	str("expect_rule", &tc.ExpectRule)
	if a := c.Attributes["reason"]; a != nil {
		var r string
		str("reason", &r)
		tc.Reason = &r
	}
	if a := c.Attributes["expect"]; a != nil {
		var e string
		str("expect", &e)
		tc.Expect = Action(e)
		if tc.Expect != Allow && !slices.Contains(Actions, tc.Expect) {
			diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid expect", `expect must be "allow", "warn", "deny", "confirm" or "require_reason".`))
		}
	}
	if tc.Product != "" && tc.Product != "terraform" && tc.Product != "tofu" {
		diags = append(diags, errAt(c.Attributes["product"].Expr.Range().Ptr(), "Invalid product", `product must be "terraform" or "tofu".`))
	}
	if a := c.Attributes["time"]; a != nil {
		var s string
		str("time", &s)
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid time", `time must be RFC 3339, like "2026-01-07T21:30:00Z".`))
		}
		tc.Time = t
	}
	if a := c.Attributes["env"]; a != nil {
		v, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			if !v.Type().IsObjectType() && !v.Type().IsMapType() {
				diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid env", `env must be a map of strings, like { TF_IN_AUTOMATION = "1" }.`))
			} else {
				tc.Env = map[string]string{}
				for it := v.ElementIterator(); it.Next(); {
					k, e := it.Element()
					if e.Type() != cty.String {
						diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid env", fmt.Sprintf("env.%s must be a string.", k.AsString())))
						continue
					}
					tc.Env[k.AsString()] = e.AsString()
				}
			}
		}
	}
	if a := c.Attributes["ci"]; a != nil {
		v, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		switch {
		case ds.HasErrors():
		case v.Type() == cty.Bool:
			if v.True() {
				tc.CI.Provider = "ci"
			}
		case v.Type() == cty.String:
			tc.CI.Provider = v.AsString()
		case v.Type().IsObjectType():
			for it := v.ElementIterator(); it.Next(); {
				k, e := it.Element()
				if e.Type() != cty.String {
					diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid ci", "Every ci attribute is a string."))
					continue
				}
				s := e.AsString()
				switch k.AsString() {
				case "provider":
					tc.CI.Provider = s
				case "run_id":
					tc.CI.RunID = s
				case "workflow":
					tc.CI.Workflow = s
				case "job":
					tc.CI.Job = s
				case "actor":
					tc.CI.Actor = s
				case "commit":
					tc.CI.Commit = s
				case "url":
					tc.CI.URL = s
				default:
					diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid ci", fmt.Sprintf("ci has no attribute %q.", k.AsString())))
				}
			}
			if tc.CI.Provider == "" {
				tc.CI.Provider = "ci"
			}
		default:
			diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid ci", `ci is true, a provider name ("github"), or an object { provider = "github", actor = "bob" }.`))
		}
	}
	if a := c.Attributes["expect_args"]; a != nil {
		v, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			tc.ExpectArgs = []string{}
			if !v.CanIterateElements() {
				diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid expect_args", `expect_args is a list of strings, like ["-lock-timeout=5m"].`))
			} else {
				for it := v.ElementIterator(); it.Next(); {
					_, e := it.Element()
					if e.Type() != cty.String {
						diags = append(diags, errAt(a.Expr.Range().Ptr(), "Invalid expect_args", "Every element is a string."))
						continue
					}
					tc.ExpectArgs = append(tc.ExpectArgs, e.AsString())
				}
			}
		}
	}
	for _, lb := range c.Blocks {
		lc, ds := lb.Body.Content(lockBlockSchema)
		diags = append(diags, ds...)
		tc.Lock.Held = true
		if a := lc.Attributes["held"]; a != nil {
			if v, ok := literal(a, cty.Bool, &diags); ok {
				tc.Lock.Held = v.True()
			}
		}
		for name, dst := range map[string]*string{"id": &tc.Lock.ID, "who": &tc.Lock.Who, "operation": &tc.Lock.Operation} {
			if a := lc.Attributes[name]; a != nil {
				if v, ok := literal(a, cty.String, &diags); ok {
					*dst = v.AsString()
				}
			}
		}
		if a := lc.Attributes["age"]; a != nil {
			if d, ok := durationAttr(a, &diags); ok {
				tc.Lock.Created = tc.Time.Add(-d)
			}
		}
	}
	return tc, diags
}

// TestResult is one test's outcome.
type TestResult struct {
	Case TestCase
	Pass bool
	// Got is the outcome: the decision's action, or what the reason led to.
	Got     Action
	GotRule string
	Finding *Finding
	GotArgs []string
	Err     error // the test's command could not be turned into an input
}

// RunTests runs each case against the policy. input turns a case into the
// Input the pipeline would build (tokenizing and parsing the command line
// is the caller's: policy does not know terraform's arguments).
func (p *Policy) RunTests(cases []TestCase, input func(TestCase) (Input, error)) []TestResult {
	var out []TestResult
	for _, tc := range cases {
		res := TestResult{Case: tc}
		in, err := input(tc)
		if err != nil {
			res.Err = err
			out = append(out, res)
			continue
		}
		d := p.Decide(in)
		res.Got, res.Finding = d.Action, d.Deciding()
		if tc.Reason != nil && d.Action == RequireReason {
			if bad := d.CheckReason(*tc.Reason); len(bad) > 0 {
				res.Got, res.Finding = Deny, &bad[0]
			} else {
				res.Got, res.Finding = Allow, nil
				for _, f := range d.Findings {
					if f.Action != RequireReason && rank(f.Action) > rank(res.Got) {
						res.Got, res.Finding = f.Action, &f
					}
				}
			}
		}
		if res.Finding != nil {
			res.GotRule = res.Finding.Rule
		}
		res.GotArgs = d.Args()
		// Several rules may give the deciding action (a built-in and an
		// organisation's require_reason): expect_rule names any of them.
		ruleOK := tc.ExpectRule == "" || tc.ExpectRule == res.GotRule
		if !ruleOK && res.Got == d.Action {
			for _, f := range d.With(res.Got) {
				if f.Rule == tc.ExpectRule {
					res.GotRule, res.Finding, ruleOK = f.Rule, &f, true
				}
			}
		}
		res.Pass = res.Got == tc.Expect && ruleOK &&
			(tc.ExpectArgs == nil || slices.Equal(tc.ExpectArgs, res.GotArgs))
		out = append(out, res)
	}
	return out
}

// Fill sets the world of a test case into an Input whose command
// facts the caller has already set.
func (tc TestCase) Fill(in Input) Input {
	in.Backend, in.StateKey, in.User, in.Host = tc.Backend, tc.StateKey, tc.User, tc.Host
	switch {
	case in.Workspace != "":
		// Set by the command itself (the workspace a workspace delete removes).
	case tc.Workspace != "":
		in.Workspace = tc.Workspace
	default:
		in.Workspace = "default"
	}
	in.CI = tc.CI
	in.Time = tc.Time
	env := tc.Env
	in.Getenv = func(k string) string { return env[k] }
	l := tc.Lock
	in.Lock = func() (LockState, error) { return l, nil }
	return in
}

// WriteTestResults writes results like go test -v, with a diff for each
// failure, and returns the number that failed.
func WriteTestResults(w io.Writer, results []TestResult) int {
	failed := 0
	for _, r := range results {
		if r.Pass {
			fmt.Fprintf(w, "ok    %s (%s)\n", r.Case.Name, r.Case.Source)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s (%s)\n", r.Case.Name, r.Case.Source)
		fmt.Fprintf(w, "      command: %s\n", r.Case.Command)
		if r.Err != nil {
			fmt.Fprintf(w, "      error:   %v\n", r.Err)
			continue
		}
		want := string(r.Case.Expect)
		if r.Case.ExpectRule != "" {
			want += fmt.Sprintf(" by rule %q", r.Case.ExpectRule)
		}
		fmt.Fprintf(w, "      want:    %s\n", want)
		got := string(r.Got)
		if f := r.Finding; f != nil {
			got += fmt.Sprintf(" by rule %q (%s): %s", f.Rule, f.Source, f.Message)
		}
		fmt.Fprintf(w, "      got:     %s\n", got)
		if r.Case.ExpectArgs != nil && !slices.Equal(r.Case.ExpectArgs, r.GotArgs) {
			fmt.Fprintf(w, "      want args: %s\n      got args:  %s\n", strings.Join(r.Case.ExpectArgs, " "), strings.Join(r.GotArgs, " "))
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed\n", len(results)-failed, failed)
	return failed
}
