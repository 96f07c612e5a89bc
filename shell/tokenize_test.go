package shell

import (
	"reflect"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		line string
		want []string
		err  string // substring of the error, "" for none
	}{
		{"plan", []string{"plan"}, ""},
		{"  apply   -auto-approve  ", []string{"apply", "-auto-approve"}, ""},
		{`apply -var 'greeting=hello world'`, []string{"apply", "-var", "greeting=hello world"}, ""},
		{`apply -var "greeting=say \"hi\""`, []string{"apply", "-var", `greeting=say "hi"`}, ""},
		{`apply -var a\ b`, []string{"apply", "-var", "a b"}, ""},
		{`state mv 'module.a["x"]' module.b`, []string{"state", "mv", `module.a["x"]`, "module.b"}, ""},
		{`plan # a comment`, []string{"plan"}, ""},
		{`plan -var x=a#b`, []string{"plan", "-var", "x=a#b"}, ""},
		{`apply -var 'cost=$5'`, []string{"apply", "-var", "cost=$5"}, ""},
		{`apply -var cost=5$`, []string{"apply", "-var", "cost=5$"}, ""},
		{`''`, []string{""}, ""},
		{`apply -var 'x=1`, nil, "column 12: unterminated ' quote"},
		{`apply -var "x=1`, nil, `column 12: unterminated " quote`},
		{`apply \`, nil, "backslash at the end"},
		{`plan | tee out`, nil, "column 6: '|' means nothing to tfsh"},
		{`plan > out`, nil, "column 6"},
		{`plan; apply`, nil, "column 5"},
		{`plan && apply`, nil, "column 6"},
		{`plan -var x=$HOME`, nil, "does not expand variables"},
		{`plan -var "x=${HOME}"`, nil, "does not expand variables"},
		{"plan -var x=`id`", nil, "column 13"},
		{`plan -var "x=$(id)"`, nil, "does not expand"},
		{`plan -var "x=\$HOME"`, []string{"plan", "-var", "x=$HOME"}, ""},
	}
	for _, tt := range tests {
		got, err := Tokenize(tt.line)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Tokenize(%q) error = %v, want it to contain %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Tokenize(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}

func FuzzTokenizeQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"plan", "a b", `it's`, `"q"`, "$HOME", "a|b", "#x", "", `\`} {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		args := []string{a, b}
		line := Quote(args)
		got, err := Tokenize(line)
		if err != nil {
			t.Fatalf("Quote(%q) = %q does not tokenize: %v", args, line, err)
		}
		if !reflect.DeepEqual(got, args) {
			t.Fatalf("Tokenize(Quote(%q)) = %q", args, got)
		}
	})
}
