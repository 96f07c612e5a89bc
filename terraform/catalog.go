package terraform

import (
	"sort"
	"strings"
)

// LockUse says when a subcommand takes the state lock (reference §3).
type LockUse int

const (
	// LockNever: the command never takes the state lock.
	LockNever LockUse = iota
	// LockAlways: every run takes the lock unless -lock=false.
	LockAlways
	// LockConditional: only in some situations (init while migrating state,
	// workspace new with -state, remote backends creating a workspace).
	LockConditional
	// LockSession: the lock is held for the whole interactive session and
	// cannot be disabled (console).
	LockSession
)

// String returns the lower-case name used in audit records and policy input.
func (u LockUse) String() string {
	switch u {
	case LockAlways:
		return "always"
	case LockConditional:
		return "conditional"
	case LockSession:
		return "session"
	default:
		return "never"
	}
}

// FlagKind is how Go's flag package parses a flag, which decides whether the
// next argument is consumed as its value.
type FlagKind int

const (
	// BoolFlag is -name or -name=BOOL; it never consumes the next argument.
	BoolFlag FlagKind = iota + 1
	// ValueFlag is -name VALUE or -name=VALUE.
	ValueFlag
)

// Flag is one option a subcommand accepts.
type Flag struct {
	Name  string // without the leading dash: "lock-timeout"
	Kind  FlagKind
	Usage string // one line, for completion and help
	// Availability is empty when every supported version accepts the flag,
	// otherwise a short note such as "terraform >= 1.6" or "tofu only".
	Availability string
}

// Command is what tfsh knows about one terraform/tofu subcommand.
type Command struct {
	// Name is the subcommand as typed, nested words joined by one space:
	// "apply", "state mv", "workspace delete".
	Name     string
	Synopsis string
	// Locks says when the command takes the state lock.
	Locks LockUse
	// WritesState: the command can write state, so disabling its lock is
	// dangerous (reference §3).
	WritesState bool
	// LockFlag: the command accepts -lock.
	LockFlag bool
	// LockTimeoutFlag: the command accepts -lock-timeout.
	LockTimeoutFlag bool
	// LockTimeoutHonoured is false where -lock-timeout is accepted but ignored
	// (workspace delete, workspace new).
	LockTimeoutHonoured bool
	// Operation is the LockInfo Operation the command writes, if it locks.
	Operation string
	// IgnoresInterrupt: the command ignores SIGINT/SIGTERM (reference §9).
	IgnoresInterrupt bool
	// Group is true for a command word that only groups subcommands
	// ("state", "workspace"); run alone it prints help.
	Group bool
	// Flags lists every flag the command accepts in any supported version.
	Flags []Flag
	// Availability is empty when every supported binary has the command,
	// otherwise a short note such as "terraform >= 1.6" or "tofu only".
	Availability string
}

// Flag returns the named flag (without dashes) if the command accepts it.
func (c *Command) Flag(name string) (Flag, bool) {
	for _, f := range c.Flags {
		if f.Name == name {
			return f, true
		}
	}
	return Flag{}, false
}

var catalogIndex = func() map[string]*Command {
	m := make(map[string]*Command, len(catalog))
	for i := range catalog {
		m[catalog[i].Name] = &catalog[i]
	}
	return m
}()

// Lookup returns the catalog entry for a subcommand name such as "state mv".
func Lookup(name string) (*Command, bool) {
	c, ok := catalogIndex[name]
	return c, ok
}

// Commands returns every catalog entry, sorted by name. The slice is a copy;
// the entries are shared and must not be modified.
func Commands() []*Command {
	out := make([]*Command, 0, len(catalog))
	for i := range catalog {
		out = append(out, &catalog[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// longestCommand finds the longest catalog command made of the leading words,
// the way terraform's CLI library resolves nested subcommands: words are
// consecutive arguments that are non-empty, contain no space and do not start
// with a dash. It returns the name and how many words it used (0 if none).
func longestCommand(words []string) (string, int) {
	n := 0
	for _, w := range words {
		if w == "" || w[0] == '-' || strings.ContainsRune(w, ' ') {
			break
		}
		n++
	}
	for k := n; k > 0; k-- {
		name := strings.Join(words[:k], " ")
		if _, ok := catalogIndex[name]; ok {
			return name, k
		}
	}
	return "", 0
}
