package policy

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// WriteDiagnostics renders diagnostics for people: file:line:col, the
// severity and summary, the source line with the problem underlined, and
// the detail. Every diagnostic is written, errors and warnings alike.
func WriteDiagnostics(w io.Writer, files Files, diags hcl.Diagnostics) error {
	var b bytes.Buffer
	for i, d := range diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: %s: %s\n", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary)
			snippet(&b, files, *d.Subject)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", sev, d.Summary)
		}
		if d.Detail != "" {
			for _, l := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(&b, "  %s\n", l)
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// snippet writes the first line of r with a marker under the range.
func snippet(b *bytes.Buffer, files Files, r hcl.Range) {
	f := files[r.Filename]
	if f == nil || r.Start.Line < 1 {
		return
	}
	lines := bytes.Split(f.Bytes, []byte("\n"))
	if r.Start.Line > len(lines) {
		return
	}
	line := strings.ReplaceAll(string(lines[r.Start.Line-1]), "\t", " ")
	line = strings.TrimRight(line, "\r")
	num := fmt.Sprintf("%d", r.Start.Line)
	fmt.Fprintf(b, "  %s | %s\n", num, line)
	startCol := max(r.Start.Column, 1)
	width := 1
	if r.End.Line == r.Start.Line && r.End.Column > r.Start.Column {
		width = r.End.Column - r.Start.Column
	} else if n := utf8.RuneCountInString(line) - startCol + 1; n > 0 {
		width = n
	}
	fmt.Fprintf(b, "  %s | %s%s\n", strings.Repeat(" ", len(num)), strings.Repeat(" ", startCol-1), strings.Repeat("^", width))
}

// suggest adds "Did you mean …?" to diagnostics about attributes of the
// rule variables (command.nme), which hcl reports without a suggestion. It
// chooses among the attributes of the variable that was read, in a fixed
// order so that ties always resolve the same way.
func suggest(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary == "Call to unknown function" && !strings.Contains(d.Detail, "Did you mean") {
			names := FunctionNames()
			slices.Sort(names)
			d.Detail = strings.TrimSuffix(d.Detail, ".") + ". The functions are: " + strings.Join(names, ", ") + "."
			continue
		}
		if d.Summary != "Unsupported attribute" || strings.Contains(d.Detail, "Did you mean") {
			continue
		}
		st, ok := d.Expression.(*hclsyntax.ScopeTraversalExpr)
		if !ok || len(st.Traversal) < 2 {
			continue
		}
		attr, ok := st.Traversal[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		var t cty.Type
		switch st.Traversal.RootName() {
		case "command":
			t = commandType
		case "ci":
			t = ciType
		case "time":
			t = timeType
		case "lock":
			t = lockType
		default:
			continue
		}
		names := make([]string, 0, len(t.AttributeTypes()))
		for n := range t.AttributeTypes() {
			names = append(names, n)
		}
		slices.Sort(names)
		best, bestD := "", 3
		for _, n := range names {
			if dist := levenshtein.Distance(attr.Name, n, nil); dist < bestD {
				best, bestD = n, dist
			}
		}
		if best != "" {
			d.Detail = strings.TrimSuffix(d.Detail, ".") + fmt.Sprintf(". Did you mean %s.%s?", st.Traversal.RootName(), best)
		} else {
			d.Detail = strings.TrimSuffix(d.Detail, ".") + fmt.Sprintf(". %s has: %s.", st.Traversal.RootName(), strings.Join(names, ", "))
		}
	}
}
