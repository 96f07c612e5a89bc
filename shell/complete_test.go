package shell

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func texts(s []Suggestion) string {
	var t []string
	for _, x := range s {
		t = append(t, x.Text)
	}
	return strings.Join(t, " ")
}

func TestComplete(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prod.tfvars"), []byte("a = 1"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.tf"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "release.plan"), []byte("PK\x03\x04rest"), 0o644)
	os.Mkdir(filepath.Join(dir, "envs"), 0o755)
	src := CompletionSources{
		Dir:        dir,
		Addresses:  func() []string { return []string{"terraform_data.hold", "module.net.aws_vpc.main"} },
		Workspaces: func() []string { return []string{"default", "blue"} },
		LockID:     func() string { return "93c5d63a-82fe-b237-1427-341a963bde72" },
	}
	tests := []struct {
		before   string
		want     string // suggestions, space-separated, in order
		contains string // or: one of them
		word     string
	}{
		{before: "sta", want: "stacks state", word: "sta"},
		{before: "state m", want: "move mv", word: "m"},
		{before: "state ", contains: "replace-provider"},
		{before: "terraform stat", want: "state", word: "stat"},
		{before: "lo", want: "locks login logout", word: "lo"},
		{before: "plan -lock-t", want: "-lock-timeout=", word: "-lock-t"},
		{before: "plan -lock-timeout=", want: "30s 5m 15m", word: ""},
		{before: "apply -target=t", want: "terraform_data.hold", word: "t"},
		{before: "plan -replace=", want: "terraform_data.hold module.net.aws_vpc.main"},
		{before: "plan -var-file=", want: "envs/ prod.tfvars"},
		{before: "state rm ", want: "terraform_data.hold module.net.aws_vpc.main"},
		{before: "state mv terraform_data.hold ", want: "terraform_data.hold module.net.aws_vpc.main"},
		{before: "state mv a b ", want: ""},
		{before: "taint mod", want: "module.net.aws_vpc.main", word: "mod"},
		{before: "workspace select b", want: "blue", word: "b"},
		{before: "workspace delete -lock=false ", want: "default blue"},
		{before: "apply ", want: "release.plan"},
		{before: "apply -var x=1 ", want: "release.plan"},
		{before: "force-unlock ", want: "93c5d63a-82fe-b237-1427-341a963bde72"},
		{before: "force-unlock -force ", want: "93c5d63a-82fe-b237-1427-341a963bde72"},
		{before: "cd e", want: "envs/", word: "e"},
		{before: "help stat", want: "state", word: "stat"},
		{before: "policy ", want: "show explain"},
		{before: "policy ex", want: "explain", word: "ex"},
		{before: "policy explain state m", want: "move mv", word: "m"},
		{before: "policy explain apply -target=t", want: "terraform_data.hold", word: "t"},
		{before: "-chdir=envs pla", want: "plan", word: "pla"},
		{before: "nonsense ", want: ""},
		{before: "apply -var-file ", want: "envs/ prod.tfvars"},
		{before: "plan -target terr", want: "terraform_data.hold", word: "terr"},
		{before: "", want: ""},
	}
	for _, tt := range tests {
		got, word := Complete(tt.before, src)
		switch {
		case tt.contains != "" && !strings.Contains(" "+texts(got)+" ", " "+tt.contains+" "):
			t.Errorf("Complete(%q) = %q, want it to contain %q", tt.before, texts(got), tt.contains)
		case tt.contains == "" && texts(got) != tt.want:
			t.Errorf("Complete(%q) = %q, want %q", tt.before, texts(got), tt.want)
		case word != tt.word:
			t.Errorf("Complete(%q) replaces %q, want %q", tt.before, word, tt.word)
		}
	}
	// Only what the binary has: terraform 1.5 has no stacks command (1.13)
	// and -consolidate-errors is tofu's only.
	tf15 := src
	tf15.Product, tf15.Version = "terraform", "1.5.7"
	if got, _ := Complete("sta", tf15); texts(got) != "state" {
		t.Errorf("terraform 1.5.7: Complete(sta) = %q, want state only", texts(got))
	}
	tofu := src
	tofu.Product, tofu.Version = "tofu", "1.10.10"
	if got, _ := Complete("plan -consolidate-e", tofu); texts(got) != "-consolidate-errors" {
		t.Errorf("tofu: %q", texts(got))
	}
	if got, _ := Complete("plan -consolidate-e", tf15); texts(got) != "" {
		t.Errorf("terraform 1.5.7 offered a tofu flag: %q", texts(got))
	}
	// Every flag comes with its help line.
	got, _ := Complete("apply -", src)
	if len(got) < 10 {
		t.Fatalf("apply flags: %q", texts(got))
	}
	for _, s := range got {
		if s.Description == "" {
			t.Fatalf("flag %s has no help line", s.Text)
		}
	}
}

// BenchmarkCompleteAddresses is one keystroke's completion of a state
// address, by the number of addresses in the state (goal: 20 ms at
// 10,000; BENCHMARKS.md).
func BenchmarkCompleteAddresses(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = fmt.Sprintf("module.m%d.terraform_data.r%d", i%50, i)
			}
			src := CompletionSources{Dir: b.TempDir(), Addresses: func() []string { return addrs }}
			for b.Loop() {
				if got, _ := Complete("state rm module.m4", src); len(got) == 0 {
					b.Fatal("no suggestions")
				}
			}
		})
	}
}

func TestKeyLen(t *testing.T) {
	for _, tt := range []struct {
		in   string
		keys []string
	}{
		{"exit\r", []string{"exit", "\r"}},
		{"plan -var x=é\t", []string{"plan -var x=é", "\t"}},
		{"\x1b[A\x1b[B", []string{"\x1b[A", "\x1b[B"}},
		{"\x1b[1;5Cx", []string{"\x1b[1;5C", "x"}},
		{"\x1bOPé", []string{"\x1bOP", "é"}},
		{"\x7f\x7fab", []string{"\x7f", "\x7f", "ab"}},
		{"caf\xe9\r", []string{"caf\xe9", "\r"}}, // Latin-1, not UTF-8: Enter still comes alone
		{"\x1bb\x1b", []string{"\x1bb", "\x1b"}},
		{"\x03\x04", []string{"\x03", "\x04"}},
	} {
		var got []string
		for b := []byte(tt.in); len(b) > 0; {
			n := keyLen(b)
			got = append(got, string(b[:n]))
			b = b[n:]
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.keys) {
			t.Errorf("keys of %q = %q, want %q", tt.in, got, tt.keys)
		}
	}
}

// The parser over a pipe: a paste of two lines gives the first line's keys,
// then nothing until the next line starts; a Ctrl-D only counts as the last
// key; end of input is a hang-up.
func TestTTYParserRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := &ttyParser{fd: int(r.Fd())}
	w.Write([]byte("pwd\rx\x04\x7f\r"))
	var keys []string
	next := func() string {
		for range 100 {
			if k, err := p.Read(); err == nil {
				return string(k)
			}
			time.Sleep(time.Millisecond)
		}
		return ""
	}
	keys = append(keys, next(), next())
	if fmt.Sprintf("%q", keys) != `["pwd" "\r"]` {
		t.Fatalf("first line: %q", keys)
	}
	if k, err := p.Read(); err == nil {
		t.Fatalf("after Enter, before the next line: %q", k)
	}
	p.lineDone = false // what Setup does for the next line
	if k := next(); k != "x" {
		t.Fatalf("second line starts with %q", k)
	}
	if k := next(); k != "\x04" || !p.sawEOF {
		t.Fatalf("Ctrl-D: %q sawEOF=%v", k, p.sawEOF)
	}
	if k := next(); k != "\x7f" || p.sawEOF {
		t.Fatalf("a key after Ctrl-D must clear it: %q sawEOF=%v", k, p.sawEOF)
	}
	next()
	p.lineDone = false
	w.Close()
	if k := next(); k != "\x03" || !p.hungUp.Load() {
		t.Fatalf("end of input: %q hungUp=%v, want Ctrl-C then Ctrl-D fed", k, p.hungUp.Load())
	}
	if k := next(); k != "\x04" {
		t.Fatalf("then %q", k)
	}
}
