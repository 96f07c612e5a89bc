package audit_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

type castCall struct {
	ms     int
	stream audit.Stream
	data   string
	marker bool
	end    bool // EndStreams
}

func TestCastWriter(t *testing.T) {
	tests := []struct {
		name  string
		calls []castCall
		want  []string // event lines
	}{
		{
			name:  "a character split across frames comes out whole",
			calls: []castCall{{0, audit.TTY, "caf\xc3", false, false}, {250, audit.TTY, "\xa9!", false, false}},
			want:  []string{`[0.000000, "o", "caf"]`, `[0.250000, "o", "é!"]`},
		},
		{
			name: "four bytes in three frames, another stream between",
			calls: []castCall{{0, audit.Stdout, "a\xf0", false, false}, {1, audit.Stderr, "b", false, false},
				{2, audit.Stdout, "\x9f\x98", false, false}, {3, audit.Stdout, "\x80c", false, false}},
			want: []string{`[0.000000, "o", "a"]`, `[0.001000, "o", "b"]`, `[0.003000, "o", "😀c"]`},
		},
		{
			name:  "invalid bytes become U+FFFD",
			calls: []castCall{{0, audit.TTY, "x\xffy\xc3z", false, false}},
			want:  []string{`[0.000000, "o", "x�y�z"]`},
		},
		{
			name:  "a stream that ends inside a character",
			calls: []castCall{{0, audit.TTY, "ab\xe2\x9c", false, false}, {5, 0, "", false, true}},
			want:  []string{`[0.000000, "o", "ab"]`, `[0.005000, "o", "�"]`},
		},
		{
			name: "pipes get CR before LF, a pty's output is kept as is",
			calls: []castCall{{0, audit.Stdout, "one\ntwo\r\n", false, false}, {1, audit.Stdout, "three\r", false, false},
				{2, audit.Stdout, "\nfour\n", false, false}, {3, audit.TTY, "five\n", false, false}},
			want: []string{`[0.000000, "o", "one\r\ntwo\r\n"]`, `[0.001000, "o", "three\r"]`, `[0.002000, "o", "\nfour\r\n"]`, `[0.003000, "o", "five\n"]`},
		},
		{
			name:  "times never decrease",
			calls: []castCall{{1500, audit.TTY, "a", false, false}, {1000, audit.TTY, "b", false, false}, {1000, 0, "lock_wait", true, false}},
			want:  []string{`[1.500000, "o", "a"]`, `[1.500000, "o", "b"]`, `[1.500000, "m", "lock_wait"]`},
		},
		{
			name:  "JSON escapes, no HTML escaping",
			calls: []castCall{{0, audit.TTY, "\x1b[1m<b>&\"\\\x00", false, false}, {0, 0, "lock\x07 <x>", true, false}},
			want:  []string{`[0.000000, "o", "\u001b[1m<b>&\"\\\u0000"]`, `[0.000000, "m", "lock\u0007 <x>"]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			cw, err := audit.NewCastWriter(&buf, audit.CastHeader{Width: 80, Height: 24, Timestamp: 1, Title: "t"})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.calls {
				d := time.Duration(c.ms) * time.Millisecond
				switch {
				case c.end:
					err = cw.EndStreams(d)
				case c.marker:
					err = cw.Marker(d, c.data)
				default:
					err = cw.Output(d, c.stream, []byte(c.data))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := cw.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := audittest.ParseCast(buf.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, buf.Bytes())
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if want := `{"version":2,"width":80,"height":24,"timestamp":1,"title":"t"}`; lines[0] != want {
				t.Fatalf("header = %s, want %s", lines[0], want)
			}
			if got := strings.Join(lines[1:], "\n"); got != strings.Join(tt.want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// FuzzCastWriter feeds random frames to the writer: every line must parse
// as asciicast, and output that was valid UTF-8 on a pty must come out
// exactly as it went in, however it was split.
func FuzzCastWriter(f *testing.F) {
	f.Add([]byte("\x03\x04caf\xc3\x03\x02\xa9!"))
	f.Add([]byte("\x01\x05a\nb\r\n\x02\x03\xf0\x9f\x98\x01\x01\x80"))
	f.Add([]byte("\x04\x00\x00\x10\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var all, pty bytes.Buffer
		cw, err := audit.NewCastWriter(&all, audit.CastHeader{Width: 80, Height: 24, Timestamp: 1})
		if err != nil {
			t.Fatal(err)
		}
		tw, err := audit.NewCastWriter(&pty, audit.CastHeader{Width: 80, Height: 24, Timestamp: 1})
		if err != nil {
			t.Fatal(err)
		}
		var sent bytes.Buffer
		// Each frame: a stream byte (its low 3 bits; 7 is a marker, 6 ends
		// the streams), a length byte, then that many bytes; its time goes
		// back and forth.
		for i := 0; len(in) >= 2; i++ {
			kind, n := in[0]&7, int(in[1]%40)
			in = in[2:]
			n = min(n, len(in))
			data := in[:n]
			in = in[n:]
			d := time.Duration(i*37%11) * time.Millisecond
			switch kind {
			case 7:
				err = cw.Marker(d, string(data))
			case 6:
				err = cw.EndStreams(d)
			default:
				err = cw.Output(d, audit.Stream(kind), data)
				if err == nil {
					err = tw.Output(d, audit.TTY, data)
					sent.Write(data)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := audittest.ParseCast(all.Bytes()); err != nil {
			t.Fatalf("%v\n%q", err, all.Bytes())
		}
		_, evs, err := audittest.ParseCast(pty.Bytes())
		if err != nil {
			t.Fatalf("%v\n%q", err, pty.Bytes())
		}
		if got := audittest.CastText(evs); utf8.Valid(sent.Bytes()) && got != sent.String() {
			t.Fatalf("pty output came out as %q, want %q", got, sent.String())
		}
	})
}

func ExampleCastWriter() {
	var buf bytes.Buffer
	cw, _ := audit.NewCastWriter(&buf, audit.CastHeader{Width: 120, Height: 40, Timestamp: 1795176000, Title: "tfsh session"})
	cw.Output(100*time.Millisecond, audit.TTY, []byte("Acquiring state lock...\r\n"))
	cw.Marker(150*time.Millisecond, "lock_acquired 93c5d63a")
	cw.Close()
	fmt.Print(buf.String())
	// Output:
	// {"version":2,"width":120,"height":40,"timestamp":1795176000,"title":"tfsh session"}
	// [0.100000, "o", "Acquiring state lock...\r\n"]
	// [0.150000, "m", "lock_acquired 93c5d63a"]
}

// TestCastWriterResize: a terminal's change of size is an "r" event; a size
// not of the form COLSxROWS is left out rather than written broken.
func TestCastWriterResize(t *testing.T) {
	var b strings.Builder
	cw, err := audit.NewCastWriter(&b, audit.CastHeader{Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"100x30", "x30", "100x", "0x30", "wide", "120x40"} {
		if err := cw.Resize(time.Second, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{`[1.000000, "r", "100x30"]`, `[1.000000, "r", "120x40"]`}
	if !slices.Equal(lines[1:], want) {
		t.Fatalf("events = %q, want %q", lines[1:], want)
	}
}
