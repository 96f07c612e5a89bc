package shell

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tfsh/tfsh/terraform"
)

// Suggestion is one completion candidate with its help line.
type Suggestion struct {
	Text        string
	Description string
}

// Builtin is one of tfsh's own words at the prompt.
type Builtin struct {
	Name, Synopsis string
}

// Builtins are tfsh's own words; none collides with a terraform subcommand.
var Builtins = []Builtin{
	{"cd", "change the working directory (re-discovers the backend)"},
	{"exit", "leave tfsh (also quit, Ctrl-D)"},
	{"help", "tfsh's help, or terraform's for a subcommand: help state mv"},
	{"history", "the lines typed at the prompt, redacted; history N for the last N"},
	{"explain", "explain lock contention: who held, who waited, how it ended (--since 2h, LOCK-ID)"},
	{"locks", "the state's lock where it lives: --all, --json"},
	{"policy", "the lock policy in effect (show), or why it decides what it does (explain <command>)"},
	{"pwd", "print the working directory"},
	{"quit", "leave tfsh"},
	{"replay", "play a recorded session back with its timing (last, SESSION, COMMAND)"},
}

// CompletionSources gives the completer what it cannot compute from the
// line: all of it cached, none of it may block (no network, no process).
type CompletionSources struct {
	// Product ("terraform", "tofu") and Version of the binary: only what it
	// has is offered. Empty offers everything in the catalog.
	Product, Version string

	Dir        string
	Addresses  func() []string // resource addresses in the current state
	Workspaces func() []string
	LockID     func() string // the current lock's ID, "" if free or unknown
}

// Complete returns the suggestions for the text before the cursor, and the
// word they replace. It never blocks: everything that needs terraform or a
// backend comes from src's caches.
func Complete(before string, src CompletionSources) ([]Suggestion, string) {
	words := strings.Fields(before)
	cur := ""
	if len(words) > 0 && !strings.HasSuffix(before, " ") && !strings.HasSuffix(before, "\t") {
		cur = words[len(words)-1]
		words = words[:len(words)-1]
	}
	if len(words) > 0 && (words[0] == "terraform" || words[0] == "tofu") {
		words = words[1:]
	}
	// -chdir=DIR comes before the subcommand.
	for len(words) > 0 && strings.HasPrefix(words[0], "-") {
		words = words[1:]
	}
	if len(words) == 0 {
		if cur == "" {
			return nil, "" // an empty line shows no menu; Tab with nothing typed lists nothing
		}
		if strings.HasPrefix(cur, "-") {
			return filter([]Suggestion{{"-chdir=", "switch to a different working directory before the subcommand"}, {"-help", "terraform's help"}, {"-version", "terraform's version"}}, cur), cur
		}
		return filter(topLevel(src), cur), cur
	}
	switch words[0] {
	case "help":
		return filter(topLevel(src), cur), cur
	case "cd":
		return filter(files(src.Dir, cur, func(e os.DirEntry) bool { return e.IsDir() }), cur), cur
	case "locks":
		return filter([]Suggestion{{"--all", "every lock of the table, bucket or workspaces"}, {"--json", "JSON output"}}, cur), cur
	case "policy":
		if len(words) == 1 {
			return filter([]Suggestion{{"show", "the files, settings and rules in effect"}, {"explain", "which rules a command line matches, which not and why"}}, cur), cur
		}
		if words[1] == "explain" {
			// The rest is a terraform command line: complete it as one.
			rest := strings.Join(words[2:], " ")
			if rest != "" {
				rest += " "
			}
			return Complete(rest+cur, src)
		}
		return nil, cur
	}
	name, n := commandOf(words)
	if name == "" {
		return nil, cur
	}
	spec, _ := terraform.Lookup(name)
	rest := words[n:]
	if spec.Group && len(rest) == 0 && !strings.HasPrefix(cur, "-") {
		return filter(nested(name, src), cur), cur
	}
	if strings.HasPrefix(cur, "-") {
		if flag, value, ok := strings.Cut(cur, "="); ok {
			return flagValues(spec, strings.TrimLeft(flag, "-"), value, src), value
		}
		return filter(flags(spec, src), cur), cur
	}
	if len(rest) > 0 && isValueOf(spec, rest[len(rest)-1]) {
		// "-var-file prod.tfvars": the value of a flag written without "=".
		return flagValues(spec, strings.TrimLeft(rest[len(rest)-1], "-"), cur, src), cur
	}
	positional := 0
	for i, w := range rest {
		switch {
		case strings.HasPrefix(w, "-"):
		case i > 0 && isValueOf(spec, rest[i-1]):
		default:
			positional++
		}
	}
	return filter(positionals(name, positional, src), cur), cur
}

// isValueOf reports whether w is a value flag written without "=", whose
// value is the next word.
func isValueOf(spec *terraform.Command, w string) bool {
	if !strings.HasPrefix(w, "-") || strings.Contains(w, "=") {
		return false
	}
	f, ok := spec.Flag(strings.TrimLeft(w, "-"))
	return ok && f.Kind == terraform.ValueFlag
}

// commandOf finds the longest catalog command the leading words name.
func commandOf(words []string) (string, int) {
	best, n := "", 0
	for k := 1; k <= len(words) && k <= 3; k++ {
		if strings.HasPrefix(words[k-1], "-") {
			break
		}
		name := strings.Join(words[:k], " ")
		if _, ok := terraform.Lookup(name); ok {
			best, n = name, k
		}
	}
	return best, n
}

// has reports whether the binary has something the catalog marks with avail.
func (src CompletionSources) has(avail string) bool {
	return src.Product == "" || avail == "" || terraform.Available(avail, src.Product, src.Version)
}

func topLevel(src CompletionSources) []Suggestion {
	var out []Suggestion
	for _, c := range terraform.Commands() {
		if strings.Contains(c.Name, " ") || !src.has(c.Availability) {
			continue
		}
		out = append(out, Suggestion{c.Name, c.Synopsis})
	}
	for _, b := range Builtins {
		out = append(out, Suggestion{b.Name, "tfsh: " + b.Synopsis})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Text < out[j].Text })
	return out
}

// nested lists a group's subcommands ("state mv" for "state") by their
// last word.
func nested(group string, src CompletionSources) []Suggestion {
	var out []Suggestion
	for _, c := range terraform.Commands() {
		if rest, ok := strings.CutPrefix(c.Name, group+" "); ok && !strings.Contains(rest, " ") && src.has(c.Availability) {
			out = append(out, Suggestion{rest, c.Synopsis})
		}
	}
	return out
}

func flags(spec *terraform.Command, src CompletionSources) []Suggestion {
	out := make([]Suggestion, 0, len(spec.Flags))
	for _, f := range spec.Flags {
		if !src.has(f.Availability) {
			continue
		}
		text := "-" + f.Name
		if f.Kind == terraform.ValueFlag {
			text += "="
		}
		desc := f.Usage
		if f.Availability != "" && src.Product == "" {
			desc += " (" + f.Availability + ")"
		}
		out = append(out, Suggestion{text, desc})
	}
	return out
}

// flagValues completes the value after "-flag=".
func flagValues(spec *terraform.Command, flag, value string, src CompletionSources) []Suggestion {
	var out []Suggestion
	switch flag {
	case "target", "replace":
		out = addresses(src)
	case "var-file":
		out = files(src.Dir, value, func(e os.DirEntry) bool {
			return e.IsDir() || strings.HasSuffix(e.Name(), ".tfvars") || strings.HasSuffix(e.Name(), ".tfvars.json")
		})
	case "lock", "refresh", "input", "backup", "compact-warnings", "detailed-exitcode", "upgrade", "reconfigure", "migrate-state", "force-copy", "get":
		out = []Suggestion{{"true", ""}, {"false", ""}}
	case "lock-timeout":
		out = []Suggestion{{"30s", "wait up to 30 seconds for the lock"}, {"5m", "wait up to 5 minutes"}, {"15m", "wait up to 15 minutes"}}
	case "state", "state-out", "backup-out", "out", "chdir", "backend-config", "plugin-dir":
		out = files(src.Dir, value, func(os.DirEntry) bool { return true })
	}
	return filter(out, value)
}

// positionals completes the n-th positional argument of a command.
func positionals(name string, n int, src CompletionSources) []Suggestion {
	switch name {
	case "state mv":
		if n < 2 {
			return addresses(src)
		}
	case "state rm", "state show", "taint", "untaint":
		return addresses(src)
	case "import":
		if n == 0 {
			return addresses(src)
		}
	case "workspace select", "workspace delete":
		if n == 0 && src.Workspaces != nil {
			var out []Suggestion
			for _, w := range src.Workspaces() {
				out = append(out, Suggestion{w, "workspace"})
			}
			return out
		}
	case "apply":
		if n == 0 {
			return planFiles(src.Dir)
		}
	case "force-unlock":
		if n == 0 && src.LockID != nil {
			if id := src.LockID(); id != "" {
				return []Suggestion{{id, "the lock held now"}}
			}
		}
	}
	return nil
}

func addresses(src CompletionSources) []Suggestion {
	if src.Addresses == nil {
		return nil
	}
	addrs := src.Addresses()
	out := make([]Suggestion, len(addrs))
	for i, a := range addrs {
		out[i] = Suggestion{a, "in state"}
	}
	return out
}

// planFiles lists the files of dir that are saved plans: zip archives, as
// terraform writes them (plan files have no fixed extension).
func planFiles(dir string) []Suggestion {
	entries, _ := os.ReadDir(dir)
	var out []Suggestion
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".zip") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		f.Close()
		if n == 4 && bytes.Equal(head, []byte("PK\x03\x04")) {
			out = append(out, Suggestion{e.Name(), "saved plan"})
		}
	}
	return out
}

// files lists the entries of the directory value points into, relative to
// dir, that keep says are candidates; directories end in "/".
func files(dir, value string, keep func(os.DirEntry) bool) []Suggestion {
	sub, _ := filepath.Split(value)
	base := sub
	if !filepath.IsAbs(base) {
		base = filepath.Join(dir, sub)
	}
	entries, _ := os.ReadDir(base)
	var out []Suggestion
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !keep(e) {
			continue
		}
		text := sub + e.Name()
		if e.IsDir() {
			text += "/"
		}
		out = append(out, Suggestion{text, ""})
	}
	return out
}

// filter keeps the suggestions that start with prefix.
func filter(in []Suggestion, prefix string) []Suggestion {
	if prefix == "" {
		return in
	}
	out := in[:0:0]
	for _, s := range in {
		if strings.HasPrefix(s.Text, prefix) {
			out = append(out, s)
		}
	}
	return out
}
