package terraform

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	shellwords "github.com/mattn/go-shellwords"
)

// Arg is one argument terraform will see, with where it came from.
type Arg struct {
	Value string
	// From is "" for an argument on the command line, else the environment
	// variable it came from (TF_CLI_ARGS or TF_CLI_ARGS_<cmd>).
	From string
	// Pos is the argument's index in Invocation.Typed, or -1.
	Pos int
}

// FlagUse is one flag the subcommand's flag parser will consume.
type FlagUse struct {
	Name     string // without dashes
	Value    string // "true" for a bare bool flag
	Spelling string // the argument as written, e.g. "--lock=F"
	From     string // "" (command line) or the environment variable
	Known    bool   // the catalog knows this flag for the command
}

// Setting is the effective value of a flag after last-occurrence-wins.
type Setting struct {
	Set      bool
	Value    string
	Spelling string
	From     string
}

// ArgError says terraform will refuse the arguments and run nothing.
type ArgError struct{ Msg string }

func (e *ArgError) Error() string { return e.Msg }

// Invocation is a terraform command line as terraform itself will interpret
// it: -chdir extracted, TF_CLI_ARGS and TF_CLI_ARGS_<cmd> inserted after the
// subcommand (so the precedence is command line > TF_CLI_ARGS >
// TF_CLI_ARGS_<cmd>), -v/-version anywhere turning it into "version", help
// flags, nested subcommands, and the subcommand's flags walked with Go's
// flag semantics. Building it runs nothing.
type Invocation struct {
	Typed   []string // the arguments as given, without the binary
	Chdir   string   // the -chdir=DIR value, "" if none
	Command string   // resolved subcommand: "apply", "state mv", the unknown word, or ""
	Spec    *Command // the catalog entry, nil when the command is unknown
	// Help: terraform will only print help.
	Help bool
	// Effective is what terraform's CLI layer passes on, in order: the
	// arguments after -chdir extraction and TF_CLI_ARGS* insertion (the
	// list terraform logs as "CLI command args").
	Effective []Arg
	// EnvArgs lists the TF_CLI_ARGS variables that contributed.
	EnvArgs []EnvArgs
	// Flags are the subcommand's flags in order; Positional the rest.
	Flags      []FlagUse
	Positional []Arg
	// Lock and LockTimeout are the effective -lock and -lock-timeout.
	Lock        Setting
	LockTimeout Setting
	// LockDisabled: the effective -lock parses as false.
	LockDisabled bool
	// Uncertain: a flag tfsh does not know made the walk ambiguous; Lock
	// then reflects the most dangerous reading.
	Uncertain bool
	// Err is set when terraform will refuse these arguments and run nothing.
	Err error

	// insertAt is where arguments can be added in Typed: where the
	// subcommand's flags end (the first positional argument, "--", or the
	// end), or -1 when no place is safe.
	insertAt int
}

// EnvArgs is one TF_CLI_ARGS variable and how terraform splits it.
type EnvArgs struct {
	Name  string
	Value string
	Args  []string
}

// Getenv looks up an environment variable.
type Getenv func(string) string

// EnvLookup returns a Getenv over a "K=V" list (the last entry wins).
func EnvLookup(env []string) Getenv {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

// Parse interprets args (the arguments after the binary name) the way
// terraform does, with getenv supplying TF_CLI_ARGS*.
func Parse(args []string, getenv Getenv) *Invocation {
	return ParseFor("terraform", args, getenv)
}

// ParseFor is Parse for a product, "terraform" or "tofu": they differ only
// in which view arguments they remove before parsing flags.
func ParseFor(product string, args []string, getenv Getenv) *Invocation {
	inv := &Invocation{Typed: append([]string(nil), args...)}
	tagged := make([]Arg, len(args))
	for i, a := range args {
		tagged[i] = Arg{Value: a, Pos: i}
	}

	chdir, rest, err := extractChdir(tagged)
	inv.Chdir = chdir
	if err != nil {
		inv.Err = err
		rest = tagged
	}

	// The subcommand as terraform first sees it decides which TF_CLI_ARGS_*
	// variable applies and where the extra arguments go.
	first := resolve(rest)
	merged := rest
	if inv.Err == nil && getenv != nil {
		names := []string{"TF_CLI_ARGS", "TF_CLI_ARGS_" + strings.NewReplacer("-", "_", " ", "_").Replace(first.command)}
		for _, name := range names {
			v := getenv(name)
			if v == "" {
				continue
			}
			extra, err := shellwords.Parse(v)
			if err != nil {
				inv.Err = &ArgError{Msg: fmt.Sprintf("terraform cannot split %s (%v)", name, err)}
				break
			}
			inv.EnvArgs = append(inv.EnvArgs, EnvArgs{Name: name, Value: v, Args: extra})
			merged = insertEnvArgs(merged, first.command, name, extra)
		}
	}
	for _, a := range merged {
		if a.Value == "-v" || a.Value == "-version" || a.Value == "--version" {
			merged = append([]Arg{{Value: "version", Pos: -1}}, merged...)
			break
		}
	}
	inv.Effective = merged

	r := resolve(merged)
	inv.Command = r.command
	inv.Help = r.help
	inv.Spec, _ = Lookup(r.command)
	inv.insertAt = -1
	if inv.Err != nil {
		return inv
	}
	switch {
	case r.command == "":
		inv.Err = &ArgError{Msg: "no subcommand: terraform prints its help"}
		return inv
	case inv.Help:
		return inv
	case inv.Spec != nil && len(r.topFlags) > 0:
		inv.Err = &ArgError{Msg: fmt.Sprintf("terraform refuses flags before the subcommand (%s)", strings.Join(r.topFlags, " "))}
		return inv
	}

	sub := merged[r.argsAt:]
	if inv.Spec == nil {
		inv.scanUnknown(sub)
		return inv
	}
	sub = strip(sub, inv.Spec, product)
	w := walk(sub, inv.Spec, 0)
	inv.Flags, inv.Positional, inv.Uncertain = w.flags, w.positional, w.uncertain
	if w.err != nil {
		inv.Err = w.err
		// tfsh may mispredict an error terraform does not have: look at
		// what follows too, so that a -lock=false there still counts.
		w.danger = firstDanger(w.danger, scanDanger(sub[min(w.stop, len(sub)):], inv.Spec))
	}
	inv.settle(w)
	switch {
	case w.err != nil || w.uncertain:
	case w.stop >= len(sub):
		inv.insertAt = len(inv.Typed)
	case sub[w.stop].Pos >= 0:
		// Before the first positional argument (or "--") that the user
		// typed: every flag before it keeps its value, and a value flag at
		// the end of TF_CLI_ARGS* cannot take ours as its value.
		inv.insertAt = sub[w.stop].Pos
	}
	return inv
}

// settle computes the effective -lock and -lock-timeout.
func (inv *Invocation) settle(w walkResult) {
	for _, f := range inv.Flags {
		switch {
		case f.Name == "lock" && f.Known:
			inv.Lock = Setting{Set: true, Value: f.Value, Spelling: f.Spelling, From: f.From}
		case f.Name == "lock-timeout" && f.Known:
			inv.LockTimeout = Setting{Set: true, Value: f.Value, Spelling: f.Spelling, From: f.From}
		}
	}
	inv.LockDisabled = inv.Lock.Set && isFalse(inv.Lock.Value)
	if w.danger != nil && !inv.LockDisabled {
		inv.LockDisabled = true
		inv.Lock = *w.danger
	}
}

// LockTimeoutValue returns the effective -lock-timeout, if valid.
func (inv *Invocation) LockTimeoutValue() (time.Duration, bool) {
	if !inv.LockTimeout.Set {
		return 0, false
	}
	d, err := time.ParseDuration(inv.LockTimeout.Value)
	return d, err == nil
}

// scanUnknown handles a subcommand tfsh does not know: it cannot walk its
// flags, so any argument before "--" that spells -lock=<false> counts,
// wherever it is and whatever follows it.
func (inv *Invocation) scanUnknown(sub []Arg) {
	inv.Uncertain = true
	for _, a := range sub {
		if a.Value == "--" {
			break
		}
		name, value, hasValue, ok := flagName(a.Value)
		if !ok || name != "lock" {
			continue
		}
		if !hasValue {
			value = "true"
		}
		if !inv.LockDisabled || isFalse(value) {
			inv.Lock = Setting{Set: true, Value: value, Spelling: a.Value, From: a.From}
		}
		if isFalse(value) {
			inv.LockDisabled = true
		}
	}
}

// isFalse reports whether a -lock value is one of strconv.ParseBool's false
// spellings (an invalid value is not false: terraform rejects it).
func isFalse(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}

// Argv returns the arguments to run: the typed arguments with add inserted
// where the subcommand's flags end. ok is false, and the typed arguments are
// returned unchanged, when there is no safe place (arguments terraform will
// reject, a flag tfsh does not know, flags ending inside TF_CLI_ARGS*).
func (inv *Invocation) Argv(add ...string) (argv []string, ok bool) {
	if len(add) == 0 || inv.insertAt < 0 {
		return append([]string(nil), inv.Typed...), len(add) == 0
	}
	out := make([]string, 0, len(inv.Typed)+len(add))
	out = append(out, inv.Typed[:inv.insertAt]...)
	out = append(out, add...)
	return append(out, inv.Typed[inv.insertAt:]...), true
}

// EffectiveArgv returns the values of Effective.
func (inv *Invocation) EffectiveArgv() []string {
	out := make([]string, len(inv.Effective))
	for i, a := range inv.Effective {
		out[i] = a.Value
	}
	return out
}

// extractChdir removes the last -chdir=DIR that appears before the first
// non-flag argument, as terraform does; "-chdir" or "-chdir=" is an error.
func extractChdir(args []Arg) (string, []Arg, error) {
	pos := -1
	value := ""
	for i, a := range args {
		if !strings.HasPrefix(a.Value, "-") {
			break
		}
		if a.Value == "-chdir" || a.Value == "-chdir=" {
			return "", args, &ArgError{Msg: "-chdir needs an equals sign and a directory, like -chdir=example"}
		}
		if strings.HasPrefix(a.Value, "-chdir=") {
			pos, value = i, strings.TrimPrefix(a.Value, "-chdir=")
		}
	}
	if pos < 0 {
		return "", args, nil
	}
	out := make([]Arg, 0, len(args)-1)
	out = append(out, args[:pos]...)
	return value, append(out, args[pos+1:]...), nil
}

type resolved struct {
	command  string
	argsAt   int // index of the first argument after the subcommand words
	help     bool
	topFlags []string
}

// resolve finds the subcommand the way terraform's CLI library does: help
// flags anywhere before "--", flags before the subcommand recorded, the
// subcommand being the first non-flag argument extended to the longest
// nested command.
func resolve(args []Arg) resolved {
	r := resolved{argsAt: len(args)}
	found := false
	for i := 0; i < len(args); i++ {
		v := args[i].Value
		if v == "--" {
			break
		}
		if v == "-h" || v == "-help" || v == "--help" {
			r.help = true
			continue
		}
		if found {
			continue
		}
		if v == "-v" || v == "-version" || v == "--version" {
			continue
		}
		if v != "" && v[0] == '-' {
			r.topFlags = append(r.topFlags, v)
			continue
		}
		if v == "" {
			continue
		}
		found = true
		r.command = v
		words := make([]string, 0, 3)
		for _, a := range args[i:] {
			words = append(words, a.Value)
		}
		if name, n := longestCommand(words); n > 0 {
			r.command = name
			i += n - 1
		}
		r.argsAt = i + 1
	}
	return r
}

// insertEnvArgs puts extra right after the first argument equal to the last
// word of the subcommand (at the front if there is none).
func insertEnvArgs(args []Arg, command, from string, extra []string) []Arg {
	search := command
	if i := strings.LastIndex(search, " "); i >= 0 {
		search = search[i+1:]
	}
	at := 0
	for i, a := range args {
		if a.Value == search {
			at = i + 1
			break
		}
	}
	out := make([]Arg, 0, len(args)+len(extra))
	out = append(out, args[:at]...)
	for _, e := range extra {
		out = append(out, Arg{Value: e, From: from, Pos: -1})
	}
	return append(out, args[at:]...)
}

// strip drops the arguments terraform removes from anywhere in the list
// before its flag parser runs: -no-color always, and, for the commands that
// parse view arguments first, -compact-warnings (plus OpenTofu's
// -consolidate-*, -concise and -deprecation=module:*).
func strip(args []Arg, spec *Command, product string) []Arg {
	view := parsesView(spec.Name)
	out := make([]Arg, 0, len(args))
	for _, a := range args {
		if a.Value == "-no-color" || view && viewArg(a.Value, product) {
			continue
		}
		out = append(out, a)
	}
	return out
}

func viewArg(v, product string) bool {
	if v == "-compact-warnings" {
		return true
	}
	if product != "tofu" {
		return false
	}
	switch v {
	case "-consolidate-warnings", "-consolidate-warnings=true", "-consolidate-warnings=false",
		"-consolidate-errors", "-consolidate-errors=true", "-consolidate-errors=false", "-concise":
		return true
	}
	return strings.HasPrefix(v, "-deprecation=module:")
}

// flagName splits "-name=value" / "--name" the way Go's flag package does.
// ok is false for a non-flag ("x", "-", "--") or bad flag syntax.
func flagName(s string) (name, value string, hasValue, ok bool) {
	if len(s) < 2 || s[0] != '-' {
		return "", "", false, false
	}
	dashes := 1
	if s[1] == '-' {
		dashes++
		if len(s) == 2 {
			return "", "", false, false
		}
	}
	name = s[dashes:]
	if len(name) == 0 || name[0] == '-' || name[0] == '=' {
		return "", "", false, false
	}
	if n, v, found := strings.Cut(name, "="); found {
		return n, v, true, true
	}
	return name, "", false, true
}

type walkResult struct {
	flags      []FlagUse
	positional []Arg
	err        error
	uncertain  bool
	danger     *Setting // a reading under which the lock is disabled
	stop       int      // index in args where flag parsing ended
}

// maxBranches bounds the readings tried for unknown flags.
const maxBranches = 6

// walk parses args with Go flag semantics against spec's flags. For a flag
// the catalog does not know (perhaps from a newer terraform), both readings
// (bool, and value consuming the next argument) are tried, and the result
// notes whether any reading disables the lock.
func walk(args []Arg, spec *Command, depth int) walkResult {
	var r walkResult
	for i := 0; i < len(args); i++ {
		r.stop = i
		a := args[i]
		s := a.Value
		if s == "--" {
			r.positional = append(r.positional, args[i+1:]...)
			return r
		}
		if len(s) < 2 || s[0] != '-' {
			r.positional = append(r.positional, args[i:]...)
			return r
		}
		name, value, hasValue, ok := flagName(s)
		if !ok {
			r.err = &ArgError{Msg: fmt.Sprintf("terraform rejects %q: bad flag syntax", s)}
			r.positional = append(r.positional, args[i:]...)
			return r
		}
		f, known := spec.Flag(name)
		if !known {
			if name == "help" || name == "h" {
				r.err = &ArgError{Msg: "help requested: terraform prints usage"}
				r.stop = i + 1
				return r
			}
			r.uncertain = true
			use := FlagUse{Name: name, Value: value, Spelling: s, From: a.From}
			if hasValue || i+1 >= len(args) || depth >= maxBranches {
				r.flags = append(r.flags, use)
				if depth >= maxBranches {
					r.danger = firstDanger(r.danger, scanDanger(args[i+1:], spec))
				}
				continue
			}
			// Reading 1: a bool flag; reading 2: it takes the next argument.
			asBool := walk(args[i+1:], spec, depth+1)
			use2 := use
			use2.Value = args[i+1].Value
			asValue := walk(args[i+2:], spec, depth+1)
			r.flags = append(append(r.flags, use), asBool.flags...)
			r.positional = append(r.positional, asBool.positional...)
			r.err = nil
			r.danger = firstDanger(r.danger, firstDanger(lockDanger(asBool), lockDanger(asValue)))
			return r
		}
		use := FlagUse{Name: name, Spelling: s, From: a.From, Known: true}
		if f.Kind == BoolFlag {
			use.Value = "true"
			if hasValue {
				if _, err := strconv.ParseBool(value); err != nil {
					r.err = &ArgError{Msg: fmt.Sprintf("terraform rejects %q: invalid boolean value", s)}
					return r
				}
				use.Value = value
			}
		} else {
			if !hasValue {
				if i+1 >= len(args) {
					r.err = &ArgError{Msg: fmt.Sprintf("terraform rejects %q: flag needs an argument", s)}
					r.stop = i + 1
					return r
				}
				i++
				value = args[i].Value
			}
			use.Value = value
			if name == "lock-timeout" {
				if _, err := time.ParseDuration(value); err != nil {
					r.err = &ArgError{Msg: fmt.Sprintf("terraform rejects -lock-timeout %q: not a duration such as 30s or 5m", value)}
					r.stop = i + 1
					return r
				}
			}
		}
		r.flags = append(r.flags, use)
	}
	r.stop = len(args)
	return r
}

// lockDanger returns the effective -lock of a reading if it is false.
func lockDanger(w walkResult) *Setting {
	if w.err != nil {
		return w.danger
	}
	var last *FlagUse
	for i := range w.flags {
		if w.flags[i].Name == "lock" && w.flags[i].Known {
			last = &w.flags[i]
		}
	}
	if last != nil && isFalse(last.Value) {
		return &Setting{Set: true, Value: last.Value, Spelling: last.Spelling, From: last.From}
	}
	return w.danger
}

// scanDanger is the last resort past maxBranches: any -lock=<false> counts.
func scanDanger(args []Arg, spec *Command) *Setting {
	if !spec.LockFlag {
		return nil
	}
	var found *Setting
	for _, a := range args {
		if a.Value == "--" {
			break
		}
		if name, value, hasValue, ok := flagName(a.Value); ok && name == "lock" && hasValue && isFalse(value) {
			found = &Setting{Set: true, Value: value, Spelling: a.Value, From: a.From}
		}
	}
	return found
}

func firstDanger(a, b *Setting) *Setting {
	if a != nil {
		return a
	}
	return b
}

// parsesView lists the commands that parse their view arguments first
// (terraform 1.5-1.13, tofu 1.10); others only drop -no-color.
func parsesView(command string) bool {
	switch command {
	case "apply", "destroy", "plan", "refresh", "show", "output", "validate", "test", "modules", "query":
		return true
	}
	return false
}
