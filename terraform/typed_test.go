package terraform

import (
	"bytes"
	"strings"
	"testing"
)

// TestTypedGate: output written while a line is being typed is held until
// the line ends, and the line is handed over first, edited as the terminal
// would edit it.
func TestTypedGate(t *testing.T) {
	var rec bytes.Buffer
	var lines []string
	g := &typedGate{typed: func(l string) {
		lines = append(lines, l)
		rec.WriteString("<typed>")
	}}
	out := g.output(&rec)
	out.Write([]byte("Enter a value: "))
	for _, b := range []byte("s3cX\x7fret") {
		g.input([]byte{b})
		out.Write([]byte{b}) // the echo
	}
	if got := rec.String(); got != "Enter a value: " {
		t.Fatalf("recorded while typing: %q", got)
	}
	g.input([]byte("\r"))
	out.Write([]byte("\r\nPlan: s3cret\r\n"))
	if got, want := strings.Join(lines, "|"), "s3cret"; got != want {
		t.Fatalf("typed lines %q, want %q", got, want)
	}
	if got, want := rec.String(), "Enter a value: <typed>s3cX\x7fret\r\nPlan: s3cret\r\n"; got != want {
		t.Fatalf("recorded %q, want %q", got, want)
	}
	// A line given up with ^C, and one left unfinished, count too.
	g.input([]byte("héé\x7fpw\x03"))
	g.input([]byte("tail"))
	out.Write([]byte("held"))
	g.close()
	if got, want := strings.Join(lines, "|"), "s3cret|hépw|tail"; got != want {
		t.Fatalf("typed lines %q, want %q", got, want)
	}
	if !strings.HasSuffix(rec.String(), "<typed>held") {
		t.Fatalf("held output not released after the line: %q", rec.String())
	}
}
