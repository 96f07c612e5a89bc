package shell

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// SyntaxError is a line tfsh cannot split into arguments.
type SyntaxError struct {
	Col int // 1-based column, in characters
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// Tokenize splits a command line into arguments with POSIX shell quoting:
// 'single quotes' are literal, "double quotes" honour \" \\ \$ \`, and a
// backslash outside quotes escapes the next character. A # at the start of
// a word begins a comment.
//
// There is no shell behind tfsh, so nothing is expanded; an unquoted
// character that would mean something to a shell (| & ; < > ` $ and
// parentheses) is an error rather than silently passed to terraform as
// text. Quote it to pass it literally.
func Tokenize(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	// Bytes, not runes: every special character is ASCII, and invalid UTF-8
	// in an argument must reach terraform unchanged.
	rs := line
	colAt := func(i int) int { return utf8.RuneCountInString(line[:i]) + 1 }
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		col := colAt(i)
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '#' && !inWord:
			return args, nil
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				cur.WriteByte(rs[j])
				j++
			}
			if j >= len(rs) {
				return nil, &SyntaxError{Col: col, Msg: "unterminated ' quote: close it with another '"}
			}
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.IndexByte("\"\\$`\n", rs[j+1]) >= 0 {
					j++
				} else if rs[j] == '$' || rs[j] == '`' {
					if msg := expansion(rs, j); msg != "" {
						return nil, &SyntaxError{Col: colAt(j), Msg: msg}
					}
				}
				cur.WriteByte(rs[j])
			}
			if j >= len(rs) {
				return nil, &SyntaxError{Col: col, Msg: `unterminated " quote: close it with another "`}
			}
			i = j
		case r == '\\':
			inWord = true
			if i+1 >= len(rs) {
				return nil, &SyntaxError{Col: col, Msg: "a backslash at the end of the line escapes nothing"}
			}
			i++
			cur.WriteByte(rs[i])
		case strings.IndexByte("|&;<>()`", r) >= 0:
			return nil, &SyntaxError{Col: col, Msg: fmt.Sprintf("%q means nothing to tfsh: there is no shell behind it (no pipes, redirects or command lists); quote it to pass it to terraform as text", r)}
		case r == '$':
			if msg := expansion(rs, i); msg != "" {
				return nil, &SyntaxError{Col: col, Msg: msg}
			}
			inWord = true
			cur.WriteByte(r)
		default:
			inWord = true
			cur.WriteByte(r)
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// expansion explains a $ or ` that a shell would expand.
func expansion(rs string, i int) string {
	if rs[i] == '`' {
		return "command substitution is not supported: tfsh runs no shell"
	}
	if i+1 < len(rs) {
		n := rs[i+1]
		if n == '{' || n == '(' || n == '_' || n >= 'A' && n <= 'Z' || n >= 'a' && n <= 'z' {
			return "tfsh does not expand variables ($NAME): put the value in the line, or quote it with ' ' to pass it literally"
		}
	}
	return ""
}

// Quote renders args as a line that Tokenize splits back into args.
func Quote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n\r'\"\\|&;<>()`$#") {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
