package policy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/diag/*.golden from the current output (read the diff before committing)")

// diagLayers are the suffixes of a layered case's files, in load order:
// NAME.org.hcl, then NAME.project.hcl, then NAME.user.hcl.
var diagLayers = []struct {
	suffix string
	layer  Layer
}{
	{".org.hcl", LayerOrg},
	{".project.hcl", LayerProject},
	{".user.hcl", LayerUser},
}

// diagCase is one malformed policy under testdata/diag: NAME.hcl alone (a
// project file), or NAME.org.hcl and NAME.project.hcl loaded as layers. Its
// rendered diagnostics are in NAME.golden.
type diagCase struct {
	name    string
	sources []Source
}

func (c diagCase) golden() string { return filepath.Join("testdata", "diag", c.name+".golden") }

// diagCases reads testdata/diag. Display is the bare file name so that the
// goldens do not depend on where the repository is checked out.
func diagCases(tb testing.TB) []diagCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "diag", "*.hcl"))
	if err != nil {
		tb.Fatal(err)
	}
	byName := map[string]*diagCase{}
	var names []string
	for _, p := range paths {
		base := filepath.Base(p)
		name, layer := strings.TrimSuffix(base, ".hcl"), LayerProject
		for _, l := range diagLayers {
			if n, ok := strings.CutSuffix(base, l.suffix); ok {
				name, layer = n, l.layer
				break
			}
		}
		src, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		c := byName[name]
		if c == nil {
			c = &diagCase{name: name}
			byName[name] = c
			names = append(names, name)
		}
		c.sources = append(c.sources, Source{Path: p, Layer: layer, Display: base, Src: src})
	}
	slices.Sort(names)
	out := make([]diagCase, 0, len(names))
	for _, n := range names {
		c := byName[n]
		slices.SortStableFunc(c.sources, func(a, b Source) int { return int(a.Layer) - int(b.Layer) })
		out = append(out, *c)
	}
	return out
}

func renderDiags(tb testing.TB, files Files, diags hcl.Diagnostics) string {
	tb.Helper()
	var b bytes.Buffer
	if err := WriteDiagnostics(&b, files, diags); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// headings are the first lines of the rendered diagnostics
// ("file:line:col: error: Summary"), the part a golden must never lose
// by a careless -update.
func headings(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject == nil {
			out = append(out, sev+": "+d.Summary)
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d:%d: %s: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary))
	}
	return out
}

// wantHeadings is, for every case, where each diagnostic must point and
// what it must be called. The goldens hold the snippets and details; this
// table is what a careless -update cannot rewrite.
var wantHeadings = map[string][]string{
	// A syntax error alone: what the parser guessed after it is not checked.
	"bad_when_syntax": {"bad_when_syntax.hcl:2:27: error: Invalid expression"},
	// The project's default, set after the organisation's maximum, breaks
	// the pair: the error points at it.
	"default_above_enforced_max": {"default_above_enforced_max.project.hcl:4:3: error: Default above the maximum"},
	"default_above_max":          {"default_above_max.hcl:3:3: error: Default above the maximum"},
	"duplicate_rule":             {"duplicate_rule.hcl:6:1: error: Duplicate rule"},
	"enforced_max_raised":        {"enforced_max_raised.project.hcl:2:3: error: Cannot loosen an enforced setting"},
	"enforced_rule_disabled":     {"enforced_rule_disabled.project.hcl:1:1: error: Cannot change an enforced rule"},
	"enforced_rule_redefined":    {"enforced_rule_redefined.project.hcl:1:1: error: Cannot change an enforced rule"},
	"env_without_name":           {"env_without_name.hcl:2:12: error: Environment read without a name"},
	"invalid_duration":           {"invalid_duration.hcl:2:26: error: Invalid duration"},
	"invalid_timezone":           {"invalid_timezone.hcl:2:14: error: Invalid time zone"},
	"missing_action":             {"missing_action.hcl:1:1: error: Missing action"},
	"missing_brace":              {"missing_brace.hcl:1:24: error: Unclosed configuration block"},
	"matches_invalid_pattern":    {"matches_invalid_pattern.hcl:4:31: error: Invalid function argument"},
	"message_not_string":         {"message_not_string.hcl:5:13: error: Message is not text"},
	"reason_pattern_inherited":   {"reason_pattern_inherited.project.hcl:4:3: error: reason_pattern without require_reason"},
	"when_null":                  {"when_null.hcl:3:12: error: Condition is null"},
	"old_command_name":           {"old_command_name.hcl:4:28: error: Old command name", "old_command_name.hcl:15:21: error: Old command name"},
	"missing_when":               {"missing_when.hcl:1:1: error: Missing when"},
	"misspelt_attribute":         {"misspelt_attribute.hcl:2:19: error: Unsupported attribute"},
	"misspelt_ci_attribute":      {"misspelt_ci_attribute.hcl:6:56: error: Unsupported attribute"},
	"reason_pattern_invalid":     {"reason_pattern_invalid.hcl:4:20: error: Invalid reason_pattern"},
	"reason_pattern_on_deny":     {"reason_pattern_on_deny.hcl:4:3: error: reason_pattern without require_reason"},
	"three_errors": {
		"three_errors.hcl:2:27: error: Invalid value",
		"three_errors.hcl:6:12: error: Unknown variable",
		"three_errors.hcl:12:12: error: Invalid action",
	},
	"unknown_block": {"unknown_block.hcl:1:1: error: Unsupported block type"},
	"unknown_function": {
		"unknown_function.hcl:2:12: error: Call to unknown function",
		"unknown_function.hcl:7:12: error: Call to unknown function",
	},
	"unknown_rule_attr": {
		"unknown_rule_attr.hcl:3:3: error: Unsupported argument",
		"unknown_rule_attr.hcl:1:1: error: Missing action",
	},
	"unknown_variable": {"unknown_variable.hcl:2:12: error: Unknown variable"},
	"when_not_bool":    {"when_not_bool.hcl:2:12: error: Condition is not true or false"},
	"wrong_action":     {"wrong_action.hcl:3:12: error: Invalid action"},
}

// TestGoldenDiagnostics renders every malformed policy under testdata/diag
// and compares it with NAME.golden; -update rewrites the goldens.
func TestGoldenDiagnostics(t *testing.T) {
	cases := diagCases(t)
	if len(cases) < 14 {
		t.Fatalf("%d cases under testdata/diag, want at least 14", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, files, diags := Load(c.sources)
			if !diags.HasErrors() {
				t.Fatalf("no errors: a malformed policy loaded cleanly")
			}
			want, ok := wantHeadings[c.name]
			if !ok {
				t.Fatalf("no wantHeadings entry for %s: say where its diagnostics must point", c.name)
			}
			if got := headings(diags); !slices.Equal(got, want) {
				t.Errorf("diagnostics:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			got := renderDiags(t, files, diags)
			if *update {
				if err := os.WriteFile(c.golden(), []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			golden, err := os.ReadFile(c.golden())
			if err != nil {
				t.Fatalf("%v (go test ./policy -run Golden -update writes it)", err)
			}
			if got != string(golden) {
				t.Errorf("diagnostics differ from %s (-update rewrites it):\n--- got\n%s--- want\n%s", c.golden(), got, golden)
			}
		})
	}
	for name := range wantHeadings {
		if !slices.ContainsFunc(cases, func(c diagCase) bool { return c.name == name }) {
			t.Errorf("wantHeadings has %s, but testdata/diag has no such case", name)
		}
	}
}

// TestDiagnosticsOneRun: three independent mistakes in one file are all
// reported by one Load, each where it is written.
func TestDiagnosticsOneRun(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "diag", "three_errors.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, diags := Load([]Source{{Path: "three_errors.hcl", Layer: LayerProject, Src: src}})
	var lines []int
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject == nil {
			t.Fatalf("error %q has no location", d.Summary)
		}
		lines = append(lines, d.Subject.Start.Line)
	}
	if want := []int{2, 6, 12}; !slices.Equal(lines, want) {
		t.Fatalf("errors on lines %v, want %v (settings, unknown variable, invalid action): %s", lines, want, diags.Error())
	}
}
