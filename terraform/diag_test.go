package terraform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/terraform"
)

// scanAll feeds input to a new DiagScanner in pieces of the sizes next returns (the rest at
// once when it returns 0), closes it, and returns what it emitted.
func scanAll(input []byte, next func() int) []terraform.LockDiag {
	var got []terraform.LockDiag
	s := terraform.NewDiagScanner(func(d terraform.LockDiag) { got = append(got, d) })
	for len(input) > 0 {
		n := len(input)
		if next != nil {
			if k := next(); k > 0 && k < n {
				n = k
			}
		}
		if w, err := s.Write(input[:n]); w != n || err != nil {
			panic(fmt.Sprintf("DiagScanner.Write(%d bytes) = %d, %v", n, w, err))
		}
		input = input[n:]
	}
	s.Close()
	return got
}

// The ways a stream reaches the scanner: in one write, a byte at a time, in random pieces.
var chunkings = []struct {
	name string
	next func(seed uint64) func() int
}{
	{"whole", func(uint64) func() int { return nil }},
	{"bytewise", func(uint64) func() int { return func() int { return 1 } }},
	{"random", func(seed uint64) func() int {
		r := rand.New(rand.NewPCG(seed, 0x7f5))
		return func() int { return 1 + r.IntN(97) }
	}},
}

// diagString renders every field of d, so that a difference shows in a failure message.
func diagString(d terraform.LockDiag) string {
	s := fmt.Sprintf("{Kind:%s JSON:%v Message:%q", d.Kind, d.JSON, d.Message)
	if i := d.Info; i != nil {
		created := "zero"
		if !i.CreatedTime.IsZero() {
			created = i.CreatedTime.Format(time.RFC3339Nano) + " (" + i.CreatedTime.Location().String() + ")"
		}
		s += fmt.Sprintf(" Info:{ID:%q Path:%q Operation:%q Who:%q Version:%q Created:%q Info:%q CreatedTime:%s}",
			i.ID, i.Path, i.Operation, i.Who, i.Version, i.Created, i.Info, created)
	} else {
		s += " Info:nil"
	}
	return s + "}"
}

func diagsString(ds []terraform.LockDiag) string {
	if len(ds) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for i, d := range ds {
		fmt.Fprintf(&b, "  [%d] %s\n", i, diagString(d))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// checkDiags fails the test naming the first difference between got and want.
func checkDiags(t testing.TB, what string, got, want []terraform.LockDiag) {
	t.Helper()
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(want):
			t.Fatalf("%s: diag [%d] emitted, none wanted: %s\ngot:\n%s\nwant:\n%s", what, i, diagString(got[i]), diagsString(got), diagsString(want))
		case i >= len(got):
			t.Fatalf("%s: diag [%d] missing: want %s\ngot:\n%s\nwant:\n%s", what, i, diagString(want[i]), diagsString(got), diagsString(want))
		case diagString(got[i]) != diagString(want[i]):
			t.Fatalf("%s: diag [%d] is\n  %s\nwant\n  %s", what, i, diagString(got[i]), diagString(want[i]))
		}
	}
}

// requiredFixtures are the captures the scanner must be checked against (see
// diag_capture_test.go); each has a hand-written <name>.want.json.
var requiredFixtures = []string{
	"terraform-1.5.7-local-lockerror-color-stderr", "tofu-1.10.10-local-lockerror-color-stderr",
	"terraform-1.5.7-local-lockerror-plain-stderr", "tofu-1.10.10-local-lockerror-plain-stderr",
	"terraform-1.5.7-local-lockerror-noinfo-color-stderr", "tofu-1.10.10-local-lockerror-noinfo-color-stderr",
	"terraform-1.5.7-local-lockerror-noinfo-plain-stderr", "tofu-1.10.10-local-lockerror-noinfo-plain-stderr",
	"terraform-1.5.7-s3dynamodb-lockerror-color-stderr", "tofu-1.10.10-s3dynamodb-lockerror-color-stderr",
	"terraform-1.5.7-s3dynamodb-lockerror-plain-stderr", "tofu-1.10.10-s3dynamodb-lockerror-plain-stderr",
	"tofu-1.10.10-s3lockfile-lockerror-color-stderr", "tofu-1.10.10-s3lockfile-lockerror-plain-stderr",
	"terraform-1.5.7-local-lockerror-json-stdout", "tofu-1.10.10-local-lockerror-json-stdout",
	"terraform-1.5.7-local-acquiring-stdout", "tofu-1.10.10-local-acquiring-stdout",
	"terraform-1.5.7-local-acquiring-json-stdout", "tofu-1.10.10-local-acquiring-json-stdout",
	"terraform-1.5.7-s3dynamodb-releaseerror-stderr", "tofu-1.10.10-s3dynamodb-releaseerror-stderr",
	"terraform-1.5.7-s3dynamodb-releasing-stdout", "tofu-1.10.10-s3dynamodb-releasing-stdout",
	"terraform-1.5.7-local-interrupt-stdout", "tofu-1.10.10-local-interrupt-stdout",
	"terraform-1.5.7-local-twointerrupts-stderr", "tofu-1.10.10-local-twointerrupts-stderr",
	"terraform-1.5.7-local-lockerror-pty", "tofu-1.10.10-local-lockerror-pty",
}

func diagFixtures(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(diagFixtureDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDiagFixtures feeds every stream captured from the real binaries to the scanner, whole,
// a byte at a time and in random pieces, and compares what it emits with the hand-written
// expectation beside it.
func TestDiagFixtures(t *testing.T) {
	files := diagFixtures(t)
	have := map[string]bool{}
	for _, f := range files {
		have[strings.TrimSuffix(filepath.Base(f), ".txt")] = true
	}
	for _, name := range requiredFixtures {
		if !have[name] {
			t.Errorf("fixture %s.txt is missing from %s: capture it with go test ./terraform -run TestCaptureDiagFixtures -capture", name, diagFixtureDir)
		}
	}
	wants, _ := filepath.Glob(filepath.Join(diagFixtureDir, "*.want.json"))
	for _, w := range wants {
		if !have[strings.TrimSuffix(filepath.Base(w), ".want.json")] {
			t.Errorf("%s has no fixture beside it", w)
		}
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(strings.TrimSuffix(file, ".txt") + ".want.json")
			if err != nil {
				t.Fatalf("no expectation for fixture %s: read it and write %s.want.json by hand: %v", file, name, err)
			}
			var want []terraform.LockDiag
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("%s.want.json: %v", name, err)
			}
			for _, c := range chunkings {
				got := scanAll(input, c.next(uint64(len(input))))
				checkDiags(t, name+" fed "+c.name, got, want)
			}
		})
	}
}

const lockErrorPlain = `
Error: Error acquiring the state lock

Error message: resource temporarily unavailable
Lock Info:
  ID:        0b6a9a9c-4bd0-6e2e-3dd6-0f9a36f1d7a2
  Path:      terraform.tfstate
  Operation: OperationTypePlan
  Who:       ci@runner-7
  Version:   1.5.7
  Created:   2026-01-02 03:04:05.5 +0100 CET
  Info:      


Terraform acquires a state lock to protect the state from being written
by multiple users at the same time. Please resolve the issue above and try
again. For most commands, you can disable locking with the "-lock=false"
flag, but this is not recommended.
`

var lockErrorPlainInfo = &terraform.DiagLockInfo{
	ID: "0b6a9a9c-4bd0-6e2e-3dd6-0f9a36f1d7a2", Path: "terraform.tfstate", Operation: "OperationTypePlan",
	Who: "ci@runner-7", Version: "1.5.7", Created: "2026-01-02 03:04:05.5 +0100 CET",
	CreatedTime: time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.FixedZone("CET", 3600)),
}

func TestDiagScannerShapes(t *testing.T) {
	lockErr := func(msg string, info *terraform.DiagLockInfo) terraform.LockDiag {
		return terraform.LockDiag{Kind: terraform.DiagLockError, Message: msg, Info: info}
	}
	for _, tc := range []struct {
		name, input string
		want        []terraform.LockDiag
	}{
		{
			name:  "plain lock error",
			input: lockErrorPlain,
			want:  []terraform.LockDiag{lockErr("resource temporarily unavailable", lockErrorPlainInfo)},
		},
		{
			name: "Error message wrapped over several lines",
			input: "\nError: Error acquiring the state lock\n\n" +
				"Error message: operation error DynamoDB: PutItem, https response error\n" +
				"StatusCode: 400, RequestID:\n" +
				"PQ8Y9FZCDNQWHRSZ,\n" +
				"ConditionalCheckFailedException: The conditional request failed\n" +
				"Lock Info:\n  ID:        abc\n  Path:      b/k\n  Operation: OperationTypeApply\n  Who:       u@h\n" +
				"  Version:   1.10.10\n  Created:   garbage\n  Info:      x y\n\n\nOpenTofu acquires a state lock to protect...\n",
			want: []terraform.LockDiag{lockErr(
				"operation error DynamoDB: PutItem, https response error StatusCode: 400, RequestID: PQ8Y9FZCDNQWHRSZ, ConditionalCheckFailedException: The conditional request failed",
				&terraform.DiagLockInfo{ID: "abc", Path: "b/k", Operation: "OperationTypeApply", Who: "u@h", Version: "1.10.10", Created: "garbage", Info: "x y"})},
		},
		{
			name: "no Lock Info: 2 errors occurred, a bullet wrapped",
			input: "\nError: Error acquiring the state lock\n\nError message: 2 errors occurred:\n" +
				"\t* resource temporarily unavailable\n\t* open /a/very/long/path/.terraform.tfstate.lock.info: no such\nfile or directory\n\n\n\n" +
				"Terraform acquires a state lock to protect the state from being written\nby multiple users...\n",
			want: []terraform.LockDiag{lockErr("2 errors occurred: resource temporarily unavailable; open /a/very/long/path/.terraform.tfstate.lock.info: no such file or directory", nil)},
		},
		{
			name: "coloured, framed, CRLF, other CSI and OSC sequences",
			input: "\x1b[31m╷\x1b[0m\x1b[0m\r\n" +
				"\x1b[31m│\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m\x1b[1mError acquiring the state lock\x1b[0m\x1b[2K\r\n" +
				"\x1b[31m│\x1b[0m \x1b[0m\r\n" +
				"\x1b[31m│\x1b[0m \x1b[0m\x1b[0mError message: \x1b]8;;http://x\x07resource\x1b]8;;\x1b\\ temporarily unavailable\r\n" +
				"\x1b[31m│\x1b[0m \x1b[0m\r\n" +
				"\x1b[31m│\x1b[0m \x1b[0mTerraform acquires a state lock\r\n" +
				"\x1b[31m╵\x1b[0m\x1b[0m\r\n",
			want: []terraform.LockDiag{lockErr("resource temporarily unavailable", nil)},
		},
		{
			name:  "release error",
			input: "\nError: Error releasing the state lock\n\nError message: failed to retrieve lock info: unexpected end of JSON input\n\nTerraform acquires a lock when accessing your state to prevent others\n",
			want:  []terraform.LockDiag{{Kind: terraform.DiagReleaseError, Message: "failed to retrieve lock info: unexpected end of JSON input"}},
		},
		{
			name: "lookalikes in plan output and heredocs",
			input: "  # terraform_data.x will be created\n" +
				"  + resource \"terraform_data\" \"x\" {\n" +
				"      + input = \"Error: Error acquiring the state lock\"\n" +
				"      + notes = <<-EOT\n" +
				"            Error: Error acquiring the state lock\n\n" +
				"            Error message: resource temporarily unavailable\n" +
				"            Acquiring state lock. This may take a few moments...\n" +
				"        EOT\n" +
				"    }\n" +
				"terraform_data.x: Error acquiring the state lock\n" +
				"Error: Error acquiring the state lock (not this one)\n\n" +
				"Error message: x\n" +
				"Error: Error acquiring the state lock\n" +
				"Error message: not after a blank line\n" +
				"Error: Error acquiring the state lock\n\n" +
				"Something else: not an Error message line\n" +
				"Error: Error acquiring the state lock\n" +
				"Error message: right after the header, no blank line\n" +
				"Lock Info:\n  ID:        lookalike\n  Info:\n\n" +
				"Error: Error acquiring the state lock\n" +
				"some text\n" +
				"Error message: a line late\n\n" +
				"Acquiring state lock. This may take a few moments... or not\n" +
				"Interrupt received. Twice?\n" +
				"Two interrupts received. Exiting at once.\n" +
				"│ Acquiring state lock. This may take a few moments...\n" +
				`{"@level":"info","@message":"terraform_data.x: Plan to create","type":"planned_change","change":{"resource":{"addr":"terraform_data.x","resource_name":"Error acquiring the state lock"}}}` + "\n" +
				`{"@level":"warn","type":"diagnostic","diagnostic":{"severity":"warning","summary":"Error acquiring the state lock","detail":"Error message: x"}}` + "\n" +
				`{"@level":"error","type":"diagnostic","diagnostic":{"severity":"error","summary":"Error acquiring the state lock!","detail":"Error message: x"}}` + "\n" +
				`{"@level":"info","@message":"Interrupt received. Not really","type":"log"}` + "\n" +
				`{"@level":"info","@message":"Acquiring state lock. This may take a few moments...","type":"log"}` + "\n" +
				`{"type":"state_lock_acquire"` + "\n",
			want: nil,
		},
		{
			name:  "two interrupts notice wrapped narrow",
			input: "Two interrupts received. Exiting\nimmediately. Note that data loss may have occurred.\n",
			want:  []terraform.LockDiag{{Kind: terraform.DiagTwoInterrupts}},
		},
		{
			name: "two diagnostics in one stream, the first cut short by the second",
			input: "\nError: Error acquiring the state lock\n\nError message: first\nLock Info:\n  ID:        one\n  Path:      p\n" +
				"\x1b[31m╷\x1b[0m\n\x1b[31m│\x1b[0m Error: Error releasing the state lock\n\x1b[31m│\x1b[0m\n\x1b[31m│\x1b[0m Error message: second\n\x1b[31m╵\x1b[0m\n" +
				lockErrorPlain,
			want: []terraform.LockDiag{
				lockErr("first", &terraform.DiagLockInfo{ID: "one", Path: "p"}),
				{Kind: terraform.DiagReleaseError, Message: "second"},
				lockErr("resource temporarily unavailable", lockErrorPlainInfo),
			},
		},
		{
			name: "-json diagnostic, progress and interrupts",
			input: `{"@level":"info","@message":"Acquiring state lock. This may take a few moments...","@module":"terraform.ui","type":"state_lock_acquire"}` + "\r\n" +
				`{"@level":"error","@message":"Error: Error acquiring the state lock","diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":"Error message: resource temporarily unavailable\nLock Info:\n  ID:        j1\n  Who:       a@b\n  Info:      \n\n\nTerraform acquires..."},"type":"diagnostic"}` + "\n" +
				`{"@level":"info","@message":"\nInterrupt received.\nPlease wait for Terraform to exit or data loss may occur.\n","type":"log"}` + "\n" +
				`{"@level":"info","@message":"\nTwo interrupts received. Exiting immediately. Note that data loss may have occurred.\n","type":"log"}` + "\n" +
				`{"@level":"info","@message":"Releasing state lock. This may take a few moments...","type":"state_lock_release"}`,
			want: []terraform.LockDiag{
				{Kind: terraform.DiagAcquiring, JSON: true},
				{Kind: terraform.DiagLockError, Message: "resource temporarily unavailable", Info: &terraform.DiagLockInfo{ID: "j1", Who: "a@b"}, JSON: true},
				{Kind: terraform.DiagInterrupt, JSON: true},
				{Kind: terraform.DiagTwoInterrupts, JSON: true},
				{Kind: terraform.DiagReleasing, JSON: true},
			},
		},
		{
			name:  "over-long line dropped past 64 KiB, the diagnostic after it still read",
			input: "a" + strings.Repeat("é", 50_000) + "Error: Error acquiring the state lock\n" + lockErrorPlain,
			want:  []terraform.LockDiag{lockErr("resource temporarily unavailable", lockErrorPlainInfo)},
		},
		{
			// 64 KiB less "Error message: " is 32760.5 "é": the half rune is dropped too.
			name:  "over-long Error message kept to 64 KiB, whole runes",
			input: "Error: Error acquiring the state lock\n\nError message: " + strings.Repeat("é", 50_000) + "\n\nTerraform acquires a state lock\n",
			want:  []terraform.LockDiag{lockErr(strings.Repeat("é", (64<<10-len("Error message: "))/2), nil)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range chunkings {
				checkDiags(t, c.name, scanAll([]byte(tc.input), c.next(7)), tc.want)
			}
		})
	}
}

// TestDiagScannerEmitsWhenComplete checks that each diagnostic is emitted as soon as the line
// that completes it is written, not later and not twice, and what Close emits.
func TestDiagScannerEmitsWhenComplete(t *testing.T) {
	var got []terraform.LockDiag
	s := terraform.NewDiagScanner(func(d terraform.LockDiag) { got = append(got, d) })
	write := func(text string) {
		t.Helper()
		if n, err := s.Write([]byte(text)); n != len(text) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", text, n, err)
		}
	}
	wantCount := func(n int, after string) {
		t.Helper()
		if len(got) != n {
			t.Fatalf("after %s: %d diags emitted, want %d:\n%s", after, len(got), n, diagsString(got))
		}
	}

	head, _, _ := strings.Cut(lockErrorPlain, "  Info:")
	write(head)
	wantCount(0, "a lock error up to its Info: line")
	write("  Info:   ")
	wantCount(0, "a partial Info: line")
	write("   \n")
	wantCount(1, "the Info: line, the end of the Lock Info block")
	write("\n\nTerraform acquires a state lock to protect the state from being written\n╵\n")
	wantCount(1, "the closing paragraph of an emitted diagnostic")

	write("\nError: Error acquiring the state lock\n\nError message: 2 errors occurred:\n\t* a\n\t* b\n\n\n\n")
	wantCount(1, "a lock error without Lock Info, up to its closing paragraph")
	write("Terraform acquires a state lock to protect the state from being written\n")
	wantCount(2, "the closing paragraph")

	write("Acquiring state lock. This may take a few moments...")
	wantCount(2, "a progress line without its newline")
	write("\r\n")
	wantCount(3, "the progress line's CRLF")

	write("Error: Error acquiring the state lock\n\n")
	s.Close()
	wantCount(3, "Close after only a header and a blank line")

	got = nil
	s = terraform.NewDiagScanner(func(d terraform.LockDiag) { got = append(got, d) })
	mid, _, _ := strings.Cut(lockErrorPlain, "  Version:")
	write(mid + "  Version:   1.5")
	wantCount(0, "a lock error cut in its Lock Info block")
	s.Close()
	wantCount(1, "Close in the middle of a Lock Info block")
	checkDiags(t, "Close mid-block", got, []terraform.LockDiag{{Kind: terraform.DiagLockError, Message: "resource temporarily unavailable",
		Info: &terraform.DiagLockInfo{ID: lockErrorPlainInfo.ID, Path: "terraform.tfstate", Operation: "OperationTypePlan", Who: "ci@runner-7", Version: "1.5"}}})
	s.Close()
	write(lockErrorPlain)
	s.Close()
	wantCount(1, "a second Close and a Write after Close")
}

// escapeRE is an independent statement of the escape sequences the scanner ignores (CSI,
// OSC, other ESC sequences), used to check what it reports against the input.
var escapeRE = regexp.MustCompile("\x1b(?:\\[[0-?]*[ -/]*[@-~]?|\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?|[ -/]*[0-~]?)")

// visibleText is what the input shows: the input itself, each line without escape sequences,
// and the detail text of each -json diagnostic, likewise.
func visibleText(input []byte) string {
	var b strings.Builder
	b.Write(input)
	for line := range bytes.SplitSeq(input, []byte("\n")) {
		b.WriteByte(0)
		b.Write(escapeRE.ReplaceAll(line, nil))
		var ev struct {
			Diagnostic *struct {
				Detail string `json:"detail"`
			} `json:"diagnostic"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &ev) == nil && ev.Diagnostic != nil {
			for dl := range strings.SplitSeq(ev.Diagnostic.Detail, "\n") {
				b.WriteByte(0)
				b.WriteString(escapeRE.ReplaceAllString(dl, ""))
			}
		}
	}
	return b.String()
}

// FuzzDiagScanner: the scanner never panics, emits the same diagnostics however the stream
// is cut into writes, and reports only lock IDs that the input shows.
func FuzzDiagScanner(f *testing.F) {
	for _, file := range diagFixtures(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint64(len(data)))
	}
	f.Add([]byte(lockErrorPlain), uint64(1))
	f.Add([]byte("\x1b[31m│\x1b[0m Error: Error acquiring the state lock\n│\n│ Error message: x\n│ Lock Info:\n│   ID: a\x1b[1mb\n"), uint64(2))
	f.Fuzz(func(t *testing.T, input []byte, seed uint64) {
		whole := scanAll(input, nil)
		for _, c := range chunkings[1:] {
			if c.name == "bytewise" && len(input) > 1<<10 {
				continue // slow for the fuzzer, and the fixture test feeds every fixture bytewise
			}
			got := scanAll(input, c.next(seed))
			checkDiags(t, "fed "+c.name+" vs whole", got, whole)
		}
		var visible string
		for _, d := range whole {
			if d.Info == nil || d.Info.ID == "" {
				continue
			}
			if d.Kind != terraform.DiagLockError && d.Kind != terraform.DiagReleaseError {
				t.Fatalf("a %s diag has a Lock Info: %s", d.Kind, diagString(d))
			}
			if visible == "" {
				visible = visibleText(input)
			}
			if !strings.Contains(visible, d.Info.ID) {
				t.Fatalf("emitted lock ID %q appears nowhere in the input %q", d.Info.ID, input)
			}
		}
	})
}
