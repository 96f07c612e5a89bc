package policy

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
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
// rule variables (command.nme), which hcl reports without a suggestion.
func suggest(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary != "Unsupported attribute" || strings.Contains(d.Detail, "Did you mean") {
			continue
		}
		_, rest, ok := strings.Cut(d.Detail, `named "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, `"`)
		best, bestD := "", 3
		for _, t := range []map[string]struct{}{attrSet(commandType), attrSet(ciType), attrSet(timeType), attrSet(lockType)} {
			for a := range t {
				if dist := levenshtein.Distance(name, a, nil); dist < bestD {
					best, bestD = a, dist
				}
			}
		}
		if best != "" {
			d.Detail = strings.TrimSuffix(d.Detail, ".") + fmt.Sprintf(`. Did you mean %q?`, best)
		}
	}
}
