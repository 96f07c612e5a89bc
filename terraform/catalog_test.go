package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestCatalogNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range catalog {
		if c.Name == "" || c.Name != strings.Join(strings.Fields(c.Name), " ") {
			t.Errorf("badly formed command name %q", c.Name)
		}
		if seen[c.Name] {
			t.Errorf("duplicate command %q", c.Name)
		}
		seen[c.Name] = true
	}
}

func TestCatalogNestedCommandsHaveGroup(t *testing.T) {
	for _, c := range catalog {
		words := strings.Fields(c.Name)
		if len(words) == 1 {
			continue
		}
		// "providers" alone is a real command, so the parent need not be a
		// group.
		if _, ok := Lookup(strings.Join(words[:len(words)-1], " ")); !ok {
			t.Errorf("%q: parent command missing", c.Name)
		}
	}
}

func TestCatalogGroupsAreBare(t *testing.T) {
	for _, c := range catalog {
		if !c.Group {
			continue
		}
		if len(c.Flags) != 0 || c.Locks != LockNever || c.LockFlag || c.WritesState {
			t.Errorf("group %q should only print help", c.Name)
		}
		if strings.Contains(c.Name, " ") {
			t.Errorf("group %q is nested", c.Name)
		}
	}
}

func TestCatalogFlagsSortedAndUnique(t *testing.T) {
	for _, c := range catalog {
		for i, f := range c.Flags {
			if f.Name == "" || strings.HasPrefix(f.Name, "-") || strings.ContainsAny(f.Name, "= ") {
				t.Errorf("%s: bad flag name %q", c.Name, f.Name)
			}
			if f.Kind != BoolFlag && f.Kind != ValueFlag {
				t.Errorf("%s -%s: kind %d", c.Name, f.Name, f.Kind)
			}
			if f.Usage == "" {
				t.Errorf("%s -%s: no usage", c.Name, f.Name)
			}
			if i > 0 && c.Flags[i-1].Name >= f.Name {
				t.Errorf("%s: flags not sorted/unique at %q, %q", c.Name, c.Flags[i-1].Name, f.Name)
			}
		}
	}
}

func TestCatalogLockInvariants(t *testing.T) {
	for _, c := range catalog {
		lock, hasLock := c.Flag("lock")
		timeout, hasTimeout := c.Flag("lock-timeout")
		if got := hasLock; got != c.LockFlag {
			t.Errorf("%s: has -lock flag %v, LockFlag %v", c.Name, got, c.LockFlag)
		}
		if got := hasTimeout; got != c.LockTimeoutFlag {
			t.Errorf("%s: has -lock-timeout flag %v, LockTimeoutFlag %v", c.Name, got, c.LockTimeoutFlag)
		}
		if hasLock && lock.Kind != BoolFlag {
			t.Errorf("%s: -lock must be a BoolFlag", c.Name)
		}
		if hasTimeout && timeout.Kind != ValueFlag {
			t.Errorf("%s: -lock-timeout must be a ValueFlag", c.Name)
		}
		if c.LockFlag && !c.LockTimeoutFlag {
			t.Errorf("%s: -lock without -lock-timeout", c.Name)
		}
		if c.LockTimeoutHonoured && !c.LockTimeoutFlag {
			t.Errorf("%s: honours a -lock-timeout it does not accept", c.Name)
		}
		if c.LockFlag && c.Locks == LockNever {
			t.Errorf("%s: accepts -lock but never locks", c.Name)
		}
		if c.Locks == LockSession && c.LockFlag {
			t.Errorf("%s: a session lock cannot be disabled", c.Name)
		}
		if (c.Locks == LockNever) != (c.Operation == "") {
			t.Errorf("%s: Locks %v with Operation %q", c.Name, c.Locks, c.Operation)
		}
		if c.Locks == LockAlways && c.LockFlag && !c.LockTimeoutHonoured && c.Name != "workspace delete" && c.Name != "env delete" {
			t.Errorf("%s: always locks but ignores -lock-timeout", c.Name)
		}
	}
}

// The rows restate reference §2, §3 and §9; the two env rows are the
// deprecated aliases, which share the workspace implementations.
func TestCatalogMatchesReference(t *testing.T) {
	tests := []struct {
		name                         string
		locks                        LockUse
		lockFlag, timeoutFlag, honor bool
		op                           string
	}{
		{"plan", LockAlways, true, true, true, "OperationTypePlan"},
		{"apply", LockAlways, true, true, true, "OperationTypeApply"},
		{"destroy", LockAlways, true, true, true, "OperationTypeApply"},
		{"refresh", LockAlways, true, true, true, "OperationTypeRefresh"},
		{"import", LockAlways, true, true, true, "OperationTypeInvalid"},
		{"taint", LockAlways, true, true, true, "taint"},
		{"untaint", LockAlways, true, true, true, "untaint"},
		{"state mv", LockAlways, true, true, true, "state-mv"},
		{"state rm", LockAlways, true, true, true, "state-rm"},
		{"state push", LockAlways, true, true, true, "state-push"},
		{"state replace-provider", LockAlways, true, true, true, "state-replace-provider"},
		{"console", LockSession, false, false, false, "OperationTypeInvalid"},
		{"workspace delete", LockAlways, true, true, false, "state-replace-provider"},
		{"env delete", LockAlways, true, true, false, "state-replace-provider"},
		{"workspace new", LockConditional, true, true, false, "workspace-new"},
		{"env new", LockConditional, true, true, false, "workspace-new"},
		{"init", LockConditional, true, true, true, "migration source state"},
		{"output", LockNever, false, false, false, ""},
		{"show", LockNever, false, false, false, ""},
		{"state list", LockNever, false, false, false, ""},
		{"state pull", LockNever, false, false, false, ""},
		{"state show", LockNever, false, false, false, ""},
		{"graph", LockNever, false, false, false, ""},
		{"providers", LockNever, false, false, false, ""},
		{"validate", LockNever, false, false, false, ""},
		{"test", LockNever, false, false, false, ""},
		{"get", LockNever, false, false, false, ""},
		{"fmt", LockNever, false, false, false, ""},
		{"version", LockNever, false, false, false, ""},
		{"workspace list", LockNever, false, false, false, ""},
		{"workspace show", LockNever, false, false, false, ""},
		{"force-unlock", LockNever, false, false, false, ""},
	}
	for _, tt := range tests {
		c, ok := Lookup(tt.name)
		if !ok {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if c.Locks != tt.locks {
			t.Errorf("%s: Locks got %v, want %v", tt.name, c.Locks, tt.locks)
		}
		if c.LockFlag != tt.lockFlag || c.LockTimeoutFlag != tt.timeoutFlag || c.LockTimeoutHonoured != tt.honor {
			t.Errorf("%s: lock flags got %v/%v/%v, want %v/%v/%v", tt.name,
				c.LockFlag, c.LockTimeoutFlag, c.LockTimeoutHonoured, tt.lockFlag, tt.timeoutFlag, tt.honor)
		}
		if c.Operation != tt.op {
			t.Errorf("%s: Operation got %q, want %q", tt.name, c.Operation, tt.op)
		}
	}
}

func TestCatalogWritesState(t *testing.T) {
	// Reference §3, plus workspace select: with -or-create a remote backend
	// writes the new workspace's empty state under an "init" lock.
	writers := map[string]bool{
		"apply": true, "destroy": true, "refresh": true, "import": true,
		"taint": true, "untaint": true, "init": true,
		"state mv": true, "state rm": true, "state push": true, "state replace-provider": true,
		"state move": true, "state remove": true,
		"workspace delete": true, "workspace new": true, "workspace select": true,
		"env delete": true, "env new": true, "env select": true,
	}
	for _, c := range catalog {
		if got, want := c.WritesState, writers[c.Name]; got != want {
			t.Errorf("%s: WritesState got %v, want %v", c.Name, got, want)
		}
	}
}

func TestCatalogInterrupts(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"apply", false}, {"destroy", false}, {"plan", false}, {"refresh", false},
		{"init", false}, {"test", false},
		{"taint", true}, {"untaint", true}, {"force-unlock", true}, {"console", true},
	}
	for _, tt := range tests {
		c, _ := Lookup(tt.name)
		if got := c.IgnoresInterrupt; got != tt.want {
			t.Errorf("%s: IgnoresInterrupt got %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, c := range catalog {
		w := strings.Fields(c.Name)
		if !c.Group && (w[0] == "state" || w[0] == "workspace" || w[0] == "env") && !c.IgnoresInterrupt {
			t.Errorf("%s: reference §9 says it ignores SIGINT", c.Name)
		}
	}
}

func TestCatalogAvailabilityParses(t *testing.T) {
	for _, c := range catalog {
		if _, err := parseAvailability(c.Availability); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		for _, f := range c.Flags {
			if _, err := parseAvailability(f.Availability); err != nil {
				t.Errorf("%s -%s: %v", c.Name, f.Name, err)
			}
		}
	}
}

func TestAvailability(t *testing.T) {
	tf157 := binaryID{"terraform", [3]int{1, 5, 7}}
	tf18 := binaryID{"terraform", [3]int{1, 8, 0}}
	tofu := binaryID{"tofu", [3]int{1, 10, 10}}
	tests := []struct {
		avail string
		id    binaryID
		want  bool
	}{
		{"", tf157, true},
		{"tofu", tf157, false},
		{"tofu", tofu, true},
		{"terraform>=1.6", tf157, false},
		{"terraform>=1.6", tf18, true},
		{"terraform>=1.6,tofu", tofu, true},
		{"terraform<1.6,terraform>=1.8", tf157, true},
		{"terraform<1.6,terraform>=1.8", binaryID{"terraform", [3]int{1, 7, 5}}, false},
		{"terraform<1.6,terraform>=1.8", tf18, true},
		{"tofu>=1.10.11", tofu, false},
	}
	for _, tt := range tests {
		alts, err := parseAvailability(tt.avail)
		if err != nil {
			t.Fatalf("%q: %v", tt.avail, err)
		}
		if got := alts.match(tt.id); got != tt.want {
			t.Errorf("%q on %v: got %v, want %v", tt.avail, tt.id, got, tt.want)
		}
	}
	for _, bad := range []string{"terraform>=", "opentofu", "terraform=1.6", "tofu>=1.x", "terraform,"} {
		if _, err := parseAvailability(bad); err == nil {
			t.Errorf("%q: parsed, want an error", bad)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"apply", "state mv", "workspace delete", "providers lock", "metadata functions", "env select", "state ls"} {
		c, ok := Lookup(name)
		if !ok || c.Name != name {
			t.Errorf("Lookup(%q) failed", name)
		}
	}
	for _, name := range []string{"", "state", "state  mv", "apply -lock"} {
		c, ok := Lookup(name)
		if name == "state" {
			if !ok || !c.Group {
				t.Errorf("Lookup(%q): want the state group", name)
			}
			continue
		}
		if ok {
			t.Errorf("Lookup(%q) found %q", name, c.Name)
		}
	}
	all := Commands()
	if len(all) != len(catalog) {
		t.Fatalf("Commands() returned %d, want %d", len(all), len(catalog))
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].Name < all[j].Name }) {
		t.Errorf("Commands() is not sorted")
	}
}

func TestLongestCommand(t *testing.T) {
	tests := []struct {
		args  []string
		name  string
		words int
	}{
		{[]string{"state", "mv", "-lock=false", "a", "b"}, "state mv", 2},
		{[]string{"state", "-lock=false", "mv"}, "state", 1},
		{[]string{"workspace", "new", "apply"}, "workspace new", 2},
		{[]string{"apply", "plan"}, "apply", 1},
		{[]string{"env", "select", "x"}, "env select", 2},
		{[]string{"providers", "lock x"}, "providers", 1},
		{[]string{"-chdir=x", "apply"}, "", 0},
		{[]string{"nope"}, "", 0},
		{nil, "", 0},
	}
	for _, tt := range tests {
		name, n := longestCommand(tt.args)
		if name != tt.name || n != tt.words {
			t.Errorf("longestCommand(%q) got %q, %d, want %q, %d", tt.args, name, n, tt.name, tt.words)
		}
	}
}

// probeBinary runs one terraform or tofu binary hermetically.
type probeBinary struct {
	path string
	id   binaryID
	env  []string
}

const probeFlag = "tfshprobe"

var (
	ansiRE  = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// run executes the binary with args in a fresh empty directory and returns
// its combined output with colour codes, diagnostic box drawing and line
// wrapping removed.
func (b *probeBinary) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %q: %v", filepath.Base(b.path), args, ctx.Err())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s %q: %v", filepath.Base(b.path), args, err)
	}
	s := ansiRE.ReplaceAllString(string(out), "")
	s = strings.NewReplacer("│", " ", "╷", " ", "╵", " ").Replace(s)
	return spaceRE.ReplaceAllString(s, " ")
}

// rejects reports whether Go's flag package complained about -name.
func rejects(out, name string) bool {
	return regexp.MustCompile(`flag provided but not defined: -` + regexp.QuoteMeta(name) + `([^a-z0-9-]|$)`).MatchString(out)
}

// viewOnlyFlags are removed from argv as exact tokens before parsing by some
// commands (Meta.process, arguments.ParseView), so "-name=value" is not
// accepted there; only the bare form is probed for them.
var viewOnlyFlags = map[string]bool{
	"no-color": true, "compact-warnings": true, "concise": true,
	"consolidate-warnings": true, "consolidate-errors": true,
}

// Commands that cannot be probed by flag parsing: push parses nothing and
// always fails, rpcapi refuses every argument before parsing (neither has
// flags), and stacks ignores flag errors and hands argv to a plugin it
// downloads first.
var unprobeable = map[string]string{
	"push":   "parses no flags",
	"rpcapi": "rejects all arguments without parsing them",
	"stacks": "ignores flag errors and forwards argv to a downloaded plugin",
}

// Main rewrites any argv containing -v or -version into "version ...", so
// "version -v -tfshprobe" never reaches the version command's flag set
// with -v in flag position; the kind probe is skipped for these.
var kindUnprobeable = map[string]bool{"version -v": true, "version -version": true}

// usageProbe handles commands that print only their help on a flag error
// (the error text itself is discarded). Parsing success is detected instead
// from an argument-count error the command reports after parsing: the
// marker appears with acceptTail after the flags, and with kindTail after a
// bare flag only if that flag did not consume kindTail's first word.
type usageProbe struct {
	marker     *regexp.Regexp
	acceptTail []string
	kindTail   []string
}

var usageProbes = map[string]usageProbe{
	"import": {regexp.MustCompile(`expects two arguments`), nil, []string{"X", "Y", "Z"}},
	"init":   {regexp.MustCompile(`Too many command line arguments`), []string{"X"}, []string{"X"}},
	"login":  {regexp.MustCompile(`expects (at most|exactly) one argument`), []string{"::", "::"}, []string{"::", "::"}},
	"logout": {regexp.MustCompile(`expects (at most|exactly) one argument`), []string{"::", "::"}, []string{"::", "::"}},
}

func TestCatalogAgainstBinary(t *testing.T) {
	cache := os.Getenv("TFSH_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no cache directory: %v", err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "tfsh")
	}
	// Each variable may hold several paths separated by the OS list separator.
	for _, b := range []struct{ env, def string }{
		{"TFSH_TEST_TERRAFORM", filepath.Join(cache, "bin", "terraform-1.5.7")},
		{"TFSH_TEST_TOFU", filepath.Join(cache, "bin", "tofu-1.10.10")},
	} {
		paths := filepath.SplitList(os.Getenv(b.env))
		if len(paths) == 0 {
			paths = []string{b.def}
		}
		for _, path := range paths {
			t.Run(filepath.Base(path), func(t *testing.T) {
				t.Parallel()
				if _, err := os.Stat(path); err != nil {
					msg := fmt.Sprintf("no binary for %s: %v", b.env, err)
					if os.Getenv("CI") != "" || os.Getenv("TFSH_LAB_REQUIRED") != "" {
						t.Fatal(msg + " (run scripts/setup-lab.sh)")
					}
					t.Skip(msg)
				}
				checkBinary(t, path)
			})
		}
	}
}

func checkBinary(t *testing.T, path string) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "XDG_CONFIG_HOME" || k == "XDG_CACHE_HOME" ||
			strings.HasPrefix(k, "TF_") || strings.HasPrefix(k, "TOFU_") || strings.HasPrefix(k, "CHECKPOINT_") {
			continue
		}
		env = append(env, kv)
	}
	b := &probeBinary{path: path, env: env}
	b.id = identify(t, b)
	t.Logf("%s is %s %d.%d.%d", path, b.id.product, b.id.version[0], b.id.version[1], b.id.version[2])

	t.Run("coverage", func(t *testing.T) {
		t.Parallel()
		checkCoverage(t, b)
	})
	for _, c := range Commands() {
		if c.Group {
			continue
		}
		t.Run(strings.ReplaceAll(c.Name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			checkCommand(t, b, c)
		})
	}
}

// raw runs the binary without normalising its output; with combined it
// returns stderr too, otherwise stdout alone.
func (b *probeBinary) raw(t *testing.T, combined bool, args ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(b.path, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = b.env
	cmd.Stdout = &out
	if combined {
		cmd.Stderr = &out
	}
	cmd.WaitDelay = 10 * time.Second
	_ = cmd.Run()
	return out.Bytes()
}

func identify(t *testing.T, b *probeBinary) binaryID {
	t.Helper()
	var v struct {
		Version string `json:"terraform_version"`
	}
	out := b.raw(t, false, "version", "-json")
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version -json: %v: %s", b.path, err, out)
	}
	ver, err := parseVersion(v.Version)
	if err != nil {
		t.Fatalf("%s: %v", b.path, err)
	}
	plain := b.raw(t, false, "version")
	switch {
	case bytes.HasPrefix(plain, []byte("OpenTofu v")):
		return binaryID{"tofu", ver}
	case bytes.HasPrefix(plain, []byte("Terraform v")):
		return binaryID{"terraform", ver}
	}
	t.Fatalf("%s: cannot tell terraform from tofu: %q", b.path, plain)
	return binaryID{}
}

var helpEntryRE = regexp.MustCompile(`(?m)^ {2,4}([a-z][a-z-]*) {2,}\S`)

// checkCoverage catches commands the binary lists in its help but the catalog
// lacks. Hidden commands are not listed, so this is one-way.
func checkCoverage(t *testing.T, b *probeBinary) {
	raw := func(args ...string) string {
		return string(b.raw(t, true, args...))
	}
	top := raw("-help")
	top, _, _ = strings.Cut(top, "Global options")
	names := map[string]bool{}
	for _, m := range helpEntryRE.FindAllStringSubmatch(top, -1) {
		names[m[1]] = true
	}
	for _, c := range catalog {
		if !c.Group {
			continue
		}
		_, sub, ok := strings.Cut(raw(c.Name), "Subcommands:")
		if !ok {
			t.Errorf("%s: no subcommand list", c.Name)
		}
		for _, m := range helpEntryRE.FindAllStringSubmatch(sub, -1) {
			names[c.Name+" "+m[1]] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("parsed only %d commands from help output", len(names))
	}
	for name := range names {
		c, ok := Lookup(name)
		if !ok {
			t.Errorf("%s lists %q; the catalog lacks it", filepath.Base(b.path), name)
			continue
		}
		if alts, _ := parseAvailability(c.Availability); !alts.match(b.id) {
			t.Errorf("%q is listed by %v but the catalog says %q", name, b.id, c.Availability)
		}
	}
}

func checkCommand(t *testing.T, b *probeBinary, c *Command) {
	words := strings.Fields(c.Name)
	with := func(args ...string) []string { return append(append([]string{}, words...), args...) }
	cmdAlts, _ := parseAvailability(c.Availability)
	if !cmdAlts.match(b.id) {
		if rejects(b.run(t, with("-"+probeFlag)...), probeFlag) {
			t.Errorf("catalog says %q (%s) but %v parses its flags", c.Name, c.Availability, b.id)
		}
		return
	}
	if reason, ok := unprobeable[c.Name]; ok {
		// Not a hidden failure: these commands cannot report a flag error.
		t.Logf("not probed: %s", reason)
		return
	}
	base := b.run(t, with("-"+probeFlag)...)

	// accepted reports whether the flags parsed; kindIsBool whether a bare
	// -name left the following word alone, and ok whether -name was known.
	var accepted func(flagArgs ...string) bool
	var kindIsBool func(name string) (isBool, ok bool)
	if rejects(base, probeFlag) {
		accepted = func(flagArgs ...string) bool {
			return rejects(b.run(t, with(append(flagArgs, "-"+probeFlag)...)...), probeFlag)
		}
		kindIsBool = func(name string) (bool, bool) {
			out := b.run(t, with("-"+name, "-"+probeFlag)...)
			return rejects(out, probeFlag), !rejects(out, name)
		}
	} else {
		u, ok := usageProbes[c.Name]
		if !ok {
			t.Fatalf("%s: no flag error for -%s and no other probe known:\n%s", c.Name, probeFlag, base)
		}
		if out := b.run(t, with(u.acceptTail...)...); !u.marker.MatchString(out) {
			t.Fatalf("%s: marker %q missing without flags:\n%s", c.Name, u.marker, out)
		}
		if out := b.run(t, with(append([]string{"-" + probeFlag}, u.acceptTail...)...)...); u.marker.MatchString(out) {
			t.Fatalf("%s: marker %q present despite a bad flag:\n%s", c.Name, u.marker, out)
		}
		accepted = func(flagArgs ...string) bool {
			return u.marker.MatchString(b.run(t, with(append(flagArgs, u.acceptTail...)...)...))
		}
		// A rejected flag shows up as a missing marker, that is as
		// ValueFlag: a BoolFlag in the catalog then fails the kind check,
		// and a ValueFlag fails the -name=0 check below.
		kindIsBool = func(name string) (bool, bool) {
			return u.marker.MatchString(b.run(t, with(append([]string{"-" + name}, u.kindTail...)...)...)), true
		}
	}

	var valued []string // -name=0 for every available flag that takes that form
	for _, f := range c.Flags {
		alts, _ := parseAvailability(f.Availability)
		if !alts.match(b.id) {
			if accepted("-" + f.Name + "=0") {
				t.Errorf("-%s: catalog says %q but %v accepts it", f.Name, f.Availability, b.id)
			}
			continue
		}
		if !viewOnlyFlags[f.Name] {
			valued = append(valued, "-"+f.Name+"=0")
		}
		if kindUnprobeable[c.Name+" -"+f.Name] {
			continue
		}
		isBool, ok := kindIsBool(f.Name)
		if !ok {
			t.Errorf("-%s: rejected by %v", f.Name, b.id)
			continue
		}
		if got, want := kindName(isBool), kindName(f.Kind == BoolFlag); got != want {
			t.Errorf("-%s: kind got %s, want %s", f.Name, got, want)
		}
	}
	// "0" parses as a bool, an int, a duration and a string, so one run can
	// check the -name=value form of every flag at once.
	if len(valued) > 0 && !accepted(valued...) {
		for _, a := range valued {
			if !accepted(a) {
				t.Errorf("%s rejected by %v", a, b.id)
			}
		}
	}
}

func kindName(isBool bool) string {
	if isBool {
		return "BoolFlag"
	}
	return "ValueFlag"
}

func TestUnprobeableCommandsHaveNoFlagsToMiss(t *testing.T) {
	for name := range unprobeable {
		c, ok := Lookup(name)
		if !ok {
			t.Errorf("%s: not in the catalog", name)
			continue
		}
		if name != "stacks" && len(c.Flags) != 0 {
			t.Errorf("%s: has flags the binary test cannot check", name)
		}
	}
}
