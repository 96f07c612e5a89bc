package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // timezone settings work on machines without zoneinfo

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Layer is where a policy file sits. Later layers may change what earlier
// ones say, except what an earlier layer enforces; a deny in any layer wins.
type Layer int

const (
	LayerBuiltIn Layer = iota
	LayerOrg
	LayerProject
	LayerUser
)

// MarshalText writes the layer's name ("organisation"), for JSON.
func (l Layer) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l Layer) String() string {
	switch l {
	case LayerOrg:
		return "organisation"
	case LayerProject:
		return "project"
	case LayerUser:
		return "user"
	}
	return "built-in"
}

// ParseLayer reads a layer name as written on the command line.
func ParseLayer(s string) (Layer, bool) {
	switch s {
	case "org", "organisation", "organization":
		return LayerOrg, true
	case "project":
		return LayerProject, true
	case "user":
		return LayerUser, true
	}
	return 0, false
}

// SystemPolicy is the organisation policy every tfsh on the machine reads.
// TFSH_ORG_POLICY names another organisation file, read after it; it cannot
// take this one away.
var SystemPolicy = "/etc/tfsh/policy.hcl"

// ProjectPolicy is the project policy's path inside a project.
const ProjectPolicy = ".tfsh/policy.hcl"

// ProjectConfig is the project's settings file (audit sharing), read
// after its policy in the project layer.
const ProjectConfig = ".tfsh/config.hcl"

// Source is one policy file to load.
type Source struct {
	Path  string
	Layer Layer
	// Display is how the path is shown in sources and diagnostics; Path if
	// empty.
	Display string
	// Src, when set, is the file's content (tests and fuzzing); otherwise
	// Path is read.
	Src []byte
	// Config marks .tfsh/config.hcl: settings that are not policy (an
	// audit block), read as part of the project layer.
	Config bool
	// trust, for files Find found, checks who owns them as they are read.
	trust *Trust
}

func (s Source) name() string {
	if s.Display != "" {
		return s.Display
	}
	return s.Path
}

// Find lists the policy files in effect for a command run in dir, highest
// authority first: the system organisation file, TFSH_ORG_POLICY, the
// nearest .tfsh/policy.hcl up the tree, and the user's file
// ($XDG_CONFIG_HOME/tfsh/policy.hcl). A TFSH_ORG_POLICY that names a file
// that cannot be read is an error: tfsh fails closed. Paths are shown
// relative to base when they are inside it.
func Find(dir, base string, getenv func(string) string) ([]Source, error) {
	dir, base = realDir(dir), realDir(base)
	trust := TrustFor(dir)
	var out []Source
	add := func(path string, l Layer) error {
		if err := trust.Check(path); err != nil {
			return err
		}
		for _, s := range out {
			if same(s.Path, path) {
				return nil // the same file named twice (TFSH_ORG_POLICY = /etc/tfsh/policy.hcl)
			}
		}
		out = append(out, Source{Path: path, Layer: l, Display: display(path, base), trust: &trust})
		return nil
	}
	switch ok, err := present(SystemPolicy); {
	case err != nil:
		return nil, fmt.Errorf("the organisation policy %s cannot be read (%v): tfsh will not run without it", SystemPolicy, err)
	case ok:
		if err := add(SystemPolicy, LayerOrg); err != nil {
			return nil, err
		}
	}
	if p := getenv("TFSH_ORG_POLICY"); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		if ok, err := present(p); !ok {
			if err == nil {
				err = os.ErrNotExist
			}
			return nil, fmt.Errorf("TFSH_ORG_POLICY names %s, which cannot be read (%v): tfsh will not run without the organisation's policy", p, err)
		}
		if err := add(p, LayerOrg); err != nil {
			return nil, err
		}
	}
	p, ok, err := FindUp(dir, ProjectPolicy)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := add(p, LayerProject); err != nil {
			return nil, err
		}
	}
	if p, ok, err := FindUp(dir, ProjectConfig); err != nil {
		return nil, err
	} else if ok {
		if err := add(p, LayerProject); err != nil {
			return nil, err
		}
		out[len(out)-1].Config = true
	}
	if p := UserPolicy(getenv); p != "" {
		ok, err := present(p)
		if err != nil {
			return nil, fmt.Errorf("the user policy %s cannot be read: %v", p, err)
		}
		if ok {
			if err := add(p, LayerUser); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// UserPolicy is the user layer's path, whether or not it exists.
func UserPolicy(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tfsh", "policy.hcl")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "tfsh", "policy.hcl")
	}
	return ""
}

// FindUp finds rel (like ".tfsh/policy.hcl") in dir or the nearest parent
// that has it, as git finds .git. Something at that path that cannot be
// read (a dangling symbolic link, a permission error, a directory) is an
// error, not a reason to look further up: a project's policy is never
// skipped silently.
func FindUp(dir, rel string) (string, bool, error) {
	dir = filepath.Clean(dir)
	for {
		p := filepath.Join(dir, rel)
		ok, err := present(p)
		if err == nil && !ok {
			// A .tfsh that is a dangling link or a file hides whatever
			// policy should be there.
			if sub := filepath.Dir(p); sub != dir {
				if _, lerr := os.Lstat(sub); lerr == nil {
					if fi, serr := os.Stat(sub); serr != nil {
						err = serr
					} else if !fi.IsDir() {
						err = fmt.Errorf("%s is not a directory", sub)
					}
				}
			}
		}
		if err != nil {
			return "", false, fmt.Errorf("%s cannot be read (%v): tfsh will not run without it", p, err)
		}
		if ok {
			return p, true, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false, nil
		}
		dir = parent
	}
}

// present reports whether a regular file is at p: false only when nothing
// is there at all; anything else that is not a readable file is an error.
func present(p string) (bool, error) {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return false, err
	case fi.IsDir():
		return false, errors.New("it is a directory")
	}
	return true, nil
}

// Trust says whose policy and hooks files tfsh reads: the user's, root's,
// and those of the owner of the directory the command runs in (a shared
// checkout, or a CI container running as root over a checkout of the build
// user; whoever owns that directory controls the configuration there
// anyway). Anyone else's file is refused, as git refuses a repository of
// "dubious ownership": a .tfsh/ planted in a shared parent directory (/tmp,
// a bastion's home) must not set the rules, or run hooks, for everyone
// below it.
type Trust struct{ uids []uint32 }

// Key names the trust for caches: a file trusted for one directory may not
// be for another.
func (t Trust) Key() string { return fmt.Sprint(t.uids) }

// TrustFor is the trust for commands run in dir.
func TrustFor(dir string) Trust {
	t := Trust{uids: []uint32{uint32(os.Geteuid()), 0}}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			t.uids = append(t.uids, st.Uid)
		}
	}
	return t
}

func (t Trust) check(what string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || slices.Contains(t.uids, st.Uid) {
		return nil
	}
	return fmt.Errorf("%s belongs to another user (uid %d), so tfsh does not trust it: tfsh reads policy and hooks files only when they are yours, root's or those of the owner of the directory the command runs in; remove it, or have its owner or root take it over", what, st.Uid)
}

// Check refuses a file, or the directory holding it, owned by someone tfsh
// does not trust.
func (t Trust) Check(p string) error {
	dir := filepath.Dir(p)
	if fi, err := os.Stat(dir); err == nil {
		if err := t.check(dir, fi); err != nil {
			return err
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return t.check(shownTarget(p), fi)
}

// Read reads a file after checking its owner on the descriptor it reads
// from, and the owner of its directory: a file swapped between the check
// and the read (a race by whoever owns the directory) is never read.
func (t Trust) Read(p string) ([]byte, error) {
	if fi, err := os.Stat(filepath.Dir(p)); err == nil {
		if err := t.check(filepath.Dir(p), fi); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := t.check(shownTarget(p), fi); err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", p)
	}
	return io.ReadAll(f)
}

// shownTarget names a file and, for a link, what it points to.
func shownTarget(p string) string {
	if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
		return p + " (a link to " + real + ")"
	}
	return p
}

// realDir resolves symbolic links, so that the search up the tree walks
// the directories the files really are in.
func realDir(d string) string {
	if d == "" {
		return d
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		return r
	}
	return d
}

func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func display(path, base string) string {
	if base == "" {
		return path
	}
	if rel, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// Files maps file names (as shown) to their parsed content, for rendering
// diagnostics with source snippets.
type Files map[string]*hcl.File

var (
	fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "settings"},
		{Type: "rule", LabelNames: []string{"name"}},
		{Type: "audit"},
	}}
	// configSchema is .tfsh/config.hcl's: settings that are not policy.
	configSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "audit"}}}
	auditSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "dynamodb_table"}, {Name: "ship_timeout"}, {Name: "ttl_days"}, {Name: "enforced"},
	}}
	settingsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "lock_timeout_default"}, {Name: "lock_timeout_max"}, {Name: "lock_timeout_over_max"},
		{Name: "audit_required"}, {Name: "timezone"}, {Name: "after_unlock"}, {Name: "lock_held_alert"}, {Name: "enforced"},
	}}
	ruleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "when"}, {Name: "action"}, {Name: "message"}, {Name: "description"},
		{Name: "enforced"}, {Name: "enabled"}, {Name: "reason_pattern"},
	}}
)

// Load reads the built-in defaults and then each source in order, and
// returns the merged policy. Every problem in every file is reported at
// once; the policy must not be used when the diagnostics have errors.
func Load(sources []Source) (*Policy, Files, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	files := Files{}
	var diags hcl.Diagnostics
	m := newMerger()
	for _, src := range sources {
		data := src.Src
		if data == nil {
			var err error
			if src.trust != nil {
				data, err = src.trust.Read(src.Path)
			} else {
				data, err = os.ReadFile(src.Path)
			}
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read policy file",
					Detail: fmt.Sprintf("%s: %v", src.name(), err)})
				continue
			}
		}
		f, ds := parser.ParseHCL(data, src.name())
		diags = append(diags, ds...)
		if f == nil {
			continue
		}
		files[src.name()] = f
		sum := sha256.Sum256(data)
		m.p.Files = append(m.p.Files, File{Path: src.name(), Layer: src.Layer, SHA256: hex.EncodeToString(sum[:])})
		if ds.HasErrors() {
			// What follows a syntax error is guesswork: report the syntax
			// first, the rest once it parses.
			continue
		}
		m.file(f, src, &diags)
	}
	p := m.finish(&diags)
	p.files = files
	p.indexLeaves()
	return p, files, diags
}

// merger folds layers into one policy.
type merger struct {
	p        *Policy
	index    map[string]int // rule name to index in p.Rules
	disabled []Rule
	// defined: where each rule name was defined in the layer being read,
	// to report duplicates.
	defined  map[string]hcl.Range
	layer    Layer
	enforced map[string]string // setting name to where it was enforced
	set      map[string]hcl.Range
	setOrder map[string]int // when each setting was last set, in reading order
	setCount int
	facts    map[hcl.Expression]exprFacts
	// enforcedLayer and enforcedFile are the layer and the file (by
	// reading order) that enforced each setting.
	enforcedLayer map[string]Layer
	enforcedFile  map[string]int
	fileIdx       int // the file being read, from 1
}

// appliesSettings maps the built-in rules to the settings they apply.
var appliesSettings = map[string][]string{
	RuleLockTimeoutDefault: {"lock_timeout_default"},
	RuleLockTimeoutMax:     {"lock_timeout_max", "lock_timeout_over_max"},
}

func newMerger() *merger {
	p := Default()
	m := &merger{p: p, index: map[string]int{}, enforced: map[string]string{}, set: map[string]hcl.Range{}, setOrder: map[string]int{}, facts: map[hcl.Expression]exprFacts{}, enforcedLayer: map[string]Layer{}, enforcedFile: map[string]int{}}
	for i, r := range p.Rules {
		m.index[r.Name] = i
	}
	return m
}

func (m *merger) file(f *hcl.File, src Source, diags *hcl.Diagnostics) {
	m.fileIdx++
	if src.Layer != m.layer {
		m.layer, m.defined = src.Layer, map[string]hcl.Range{}
	}
	schema := fileSchema
	if src.Config {
		schema = configSchema
	}
	content, ds := f.Body.Content(schema)
	*diags = append(*diags, ds...)
	var settingsSeen, auditSeen *hcl.Range
	for _, b := range content.Blocks {
		switch b.Type {
		case "audit":
			if auditSeen != nil {
				*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate audit block",
					Detail: fmt.Sprintf("This file already has an audit block at line %d; put every audit setting in that one.", auditSeen.Start.Line), Subject: b.DefRange.Ptr()})
				continue
			}
			auditSeen = b.DefRange.Ptr()
			m.audit(b, src, diags)
		case "settings":
			if settingsSeen != nil {
				*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate settings block",
					Detail: fmt.Sprintf("This file already has a settings block at line %d; put every setting in that one.", settingsSeen.Start.Line), Subject: b.DefRange.Ptr()})
				continue
			}
			settingsSeen = b.DefRange.Ptr()
			m.settings(b, src, diags)
		case "rule":
			m.rule(b, src, diags)
		}
	}
}

func source(src Source, r hcl.Range) string {
	return fmt.Sprintf("%s:%d", src.name(), r.Start.Line)
}

func errAt(r *hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r}
}

// literal evaluates an attribute that must be a constant.
func literal(a *hcl.Attribute, want cty.Type, diags *hcl.Diagnostics) (cty.Value, bool) {
	v, ds := a.Expr.Value(nil)
	if ds.HasErrors() {
		*diags = append(*diags, ds...)
		return cty.NilVal, false
	}
	if v.IsNull() || v.Type() != want {
		*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid value",
			fmt.Sprintf("%s must be a %s.", a.Name, want.FriendlyName())))
		return cty.NilVal, false
	}
	return v, true
}

func durationAttr(a *hcl.Attribute, diags *hcl.Diagnostics) (time.Duration, bool) {
	v, ok := literal(a, cty.String, diags)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(v.AsString())
	if err != nil {
		*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid duration", fmt.Sprintf("%s: %v.", a.Name, err)))
		return 0, false
	}
	return d, true
}

func (m *merger) settings(b *hcl.Block, src Source, diags *hcl.Diagnostics) {
	c, ds := b.Body.Content(settingsSchema)
	*diags = append(*diags, ds...)
	s := &m.p.Settings
	enforce := false
	if a := c.Attributes["enforced"]; a != nil {
		if v, ok := literal(a, cty.Bool, diags); ok {
			enforce = v.True()
		}
	}
	names := make([]string, 0, len(c.Attributes))
	for n := range c.Attributes {
		if n != "enforced" {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return c.Attributes[names[i]].Range.Start.Byte < c.Attributes[names[j]].Range.Start.Byte
	})
	for _, n := range names {
		a := c.Attributes[n]
		where := source(src, a.Range)
		loosens := ""
		apply := func() {}
		switch n {
		case "lock_timeout_default", "lock_timeout_max":
			d, ok := durationAttr(a, diags)
			if !ok {
				continue
			}
			if n == "lock_timeout_default" {
				if d < s.LockTimeoutDefault {
					loosens = "shortens the wait"
				}
				apply = func() { s.LockTimeoutDefault = d }
			} else {
				if s.LockTimeoutMax > 0 && (d == 0 || d > s.LockTimeoutMax) {
					loosens = "raises the maximum"
				}
				apply = func() { s.LockTimeoutMax = d }
			}
		case "lock_held_alert":
			d, ok := durationAttr(a, diags)
			if !ok {
				continue
			}
			if s.LockHeldAlert > 0 && (d == 0 || d > s.LockHeldAlert) {
				loosens = "alerts later, or never"
			}
			apply = func() { s.LockHeldAlert = d }
		case "lock_timeout_over_max":
			v, ok := literal(a, cty.String, diags)
			if !ok {
				continue
			}
			o := OverMax(v.AsString())
			if o != OverMaxRefuse && o != OverMaxClamp {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid value", `lock_timeout_over_max must be "refuse" or "clamp".`))
				continue
			}
			if s.OverMax == OverMaxRefuse && o == OverMaxClamp {
				loosens = "lets a longer timeout run"
			}
			apply = func() { s.OverMax = o }
		case "audit_required":
			v, ok := literal(a, cty.Bool, diags)
			if !ok {
				continue
			}
			if s.AuditRequired && v.False() {
				loosens = "lets commands run unrecorded"
			}
			apply = func() { s.AuditRequired = v.True() }
		case "after_unlock":
			v, ok := literal(a, cty.String, diags)
			if !ok {
				continue
			}
			rank := map[string]int{"off": 0, "offer": 1, "verify": 2}
			nv := v.AsString()
			if _, ok := rank[nv]; !ok {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid value", `after_unlock must be "verify", "offer" or "off".`))
				continue
			}
			if rank[nv] < rank[s.AfterUnlock] {
				loosens = "checks less after an unlock"
			}
			apply = func() { s.AfterUnlock = nv }
		case "timezone":
			v, ok := literal(a, cty.String, diags)
			if !ok {
				continue
			}
			loc, err := time.LoadLocation(v.AsString())
			if err != nil {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid time zone",
					fmt.Sprintf("%q is not an IANA time zone name (like \"Europe/Berlin\" or \"UTC\").", v.AsString())))
				continue
			}
			if s.Location != nil && loc.String() != s.Location.String() {
				loosens = "moves the hours rules check"
			}
			apply = func() { s.Location = loc }
		}
		m.setSetting(n, a, where, src, enforce, loosens, apply, diags)
	}
}

// setSetting applies one setting unless an enforced one forbids it
// (loosens says how it would loosen it, "" if it does not), and records
// where it was set and enforced.
func (m *merger) setSetting(n string, a *hcl.Attribute, where string, src Source, enforce bool, loosens string, apply func(), diags *hcl.Diagnostics) {
	s := &m.p.Settings
	if by, ok := m.enforced[n]; ok && loosens != "" {
		*diags = append(*diags, errAt(a.Range.Ptr(), "Cannot loosen an enforced setting",
			fmt.Sprintf("%s is enforced by %s; this %s policy %s. A lower layer may only make an enforced setting stricter.", n, by, src.Layer, loosens)))
		return
	}
	apply()
	s.Source[n] = where
	m.set[n] = a.Range
	m.setCount++
	m.setOrder[n] = m.setCount
	if enforce {
		m.enforced[n] = where
		s.Enforced[n] = where
		m.enforcedLayer[n] = src.Layer
		m.enforcedFile[n] = m.fileIdx
	}
}

// audit reads an audit block: where the log is shared. Its settings are
// named audit.NAME in Source and Enforced. Under an enforced block, a
// lower layer may not send the events elsewhere, stop sending them, or
// wait less for them at exit.
func (m *merger) audit(b *hcl.Block, src Source, diags *hcl.Diagnostics) {
	c, ds := b.Body.Content(auditSchema)
	*diags = append(*diags, ds...)
	s := &m.p.Settings
	enforce := false
	if a := c.Attributes["enforced"]; a != nil {
		if v, ok := literal(a, cty.Bool, diags); ok {
			enforce = v.True()
		}
	}
	for _, n := range []string{"dynamodb_table", "ship_timeout", "ttl_days"} {
		a := c.Attributes[n]
		if a == nil {
			continue
		}
		loosens := ""
		apply := func() {}
		switch n {
		case "dynamodb_table":
			v, ok := literal(a, cty.String, diags)
			if !ok {
				continue
			}
			t := v.AsString()
			if t != "" && !validTableName(t) {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid table name",
					"A DynamoDB table name has 3 to 255 letters, digits, '_', '-' and '.' (\"\" turns sharing off)."))
				continue
			}
			if t != s.AuditTable {
				loosens = "sends the audit events elsewhere"
			}
			apply = func() { s.AuditTable = t }
		case "ship_timeout":
			d, ok := durationAttr(a, diags)
			if !ok {
				continue
			}
			if d < s.AuditShipTimeout {
				loosens = "waits less for the events to ship"
			}
			apply = func() { s.AuditShipTimeout = d }
		case "ttl_days":
			v, ok := literal(a, cty.Number, diags)
			if !ok {
				continue
			}
			days, acc := v.AsBigFloat().Int64()
			if acc != big.Exact || days < 0 {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid value", "ttl_days must be a whole number of days, 0 for no expiry."))
				continue
			}
			if days != 0 && (s.AuditTTLDays == 0 || int(days) < s.AuditTTLDays) {
				loosens = "lets shared events expire sooner"
			}
			apply = func() { s.AuditTTLDays = int(days) }
		}
		m.setSetting("audit."+n, a, source(src, a.Range), src, enforce, loosens, apply, diags)
	}
}

func (m *merger) rule(b *hcl.Block, src Source, diags *hcl.Diagnostics) {
	name := b.Labels[0]
	if !validRuleName(name) {
		*diags = append(*diags, errAt(b.LabelRanges[0].Ptr(), "Invalid rule name",
			"A rule name starts with a letter or digit and has only letters, digits, '-', '_' and '.'."))
		return
	}
	c, ds := b.Body.Content(ruleSchema)
	*diags = append(*diags, ds...)
	if prev, ok := m.defined[name]; ok {
		*diags = append(*diags, errAt(b.DefRange.Ptr(), "Duplicate rule",
			fmt.Sprintf("Rule %q is already defined in this layer at %s:%d. Rule names are unique; rename one of them.", name, prev.Filename, prev.Start.Line)))
		return
	}
	m.defined[name] = b.DefRange
	where := source(src, b.DefRange)

	i, exists := m.index[name]
	var r Rule
	reenable := -1 // index in m.disabled of the rule this block may turn back on
	if !exists {
		for k, d := range m.disabled {
			if d.Name == name {
				reenable, r = k, d
			}
		}
	}
	if exists || reenable >= 0 {
		if exists {
			r = m.p.Rules[i]
		}
		// What an earlier file enforces, no later file may change, whatever
		// its layer (a second organisation file from TFSH_ORG_POLICY
		// included). The built-in rules that apply a setting are as
		// enforced as the setting: turning off lock-timeout-max would undo
		// an enforced maximum.
		why := ""
		if r.Enforced && r.enforcedIn < m.fileIdx {
			by := r.EnforcedBy
			if by == "" {
				by = r.Source
			}
			why = fmt.Sprintf("Rule %q is enforced by the %s policy (%s)", name, r.Layer, by)
		}
		for _, setting := range appliesSettings[name] {
			if by, ok := m.enforced[setting]; ok && why == "" && m.enforcedFile[setting] < m.fileIdx {
				why = fmt.Sprintf("Rule %q applies %s, which the %s policy enforces (%s)", name, setting, m.enforcedLayer[setting], by)
			}
		}
		if why != "" {
			*diags = append(*diags, errAt(b.DefRange.Ptr(), "Cannot change an enforced rule",
				fmt.Sprintf("%s; this %s policy cannot redefine, adjust or disable it. To be stricter, add a rule with another name.", why, src.Layer)))
			return
		}
	}
	start := len(*diags)
	when := c.Attributes["when"]
	switch {
	case when != nil && (r.Add != nil):
		*diags = append(*diags, errAt(when.Range.Ptr(), "Built-in rule cannot be redefined",
			fmt.Sprintf("Rule %q adds or lowers -lock-timeout; a when condition would replace that. Change it with the lock_timeout settings, or turn it off with enabled = false.", name)))
		return
	case when != nil:
		// A new definition, or a replacement of an earlier layer's rule.
		r = Rule{Name: name, Source: where, Layer: src.Layer, when: foldWhen(when.Expr)}
		if c.Attributes["action"] == nil {
			*diags = append(*diags, errAt(b.DefRange.Ptr(), "Missing action",
				fmt.Sprintf(`Rule %q needs an action: "deny", "warn", "confirm" or "require_reason".`, name)))
		}
		m.checkExpr(when.Expr, true, diags)
	case !exists && reenable < 0:
		*diags = append(*diags, errAt(b.DefRange.Ptr(), "Missing when",
			fmt.Sprintf("Rule %q has no when condition, and no earlier layer defines a rule of that name to change. Built-in rules: %s.", name, strings.Join(builtInNames(), ", "))))
		return
	default:
		// Changes to an earlier layer's rule: what this block sets.
		r.Layer, r.EnforcedBy = src.Layer, ""
		r.Source = where
	}
	if a := c.Attributes["action"]; a != nil {
		if v, ok := literal(a, cty.String, diags); ok {
			act := Action(v.AsString())
			switch {
			case !slices.Contains(Actions, act):
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid action",
					fmt.Sprintf(`Action %q is not one of "deny", "warn", "confirm", "require_reason".`, act)))
			case r.when == nil && r.Match == nil:
				*diags = append(*diags, errAt(a.Range.Ptr(), "Rule has no action",
					fmt.Sprintf("Rule %q only adds arguments; it has no action to change. Change its settings instead.", name)))
			default:
				r.Action = act
			}
		}
	}
	if a := c.Attributes["message"]; a != nil {
		r.message = a.Expr
		m.checkExpr(a.Expr, false, diags)
	}
	if a := c.Attributes["description"]; a != nil {
		if v, ok := literal(a, cty.String, diags); ok {
			r.Description = v.AsString()
		}
	}
	if a := c.Attributes["reason_pattern"]; a != nil {
		if v, ok := literal(a, cty.String, diags); ok {
			re, err := regexp.Compile(v.AsString())
			if err != nil {
				*diags = append(*diags, errAt(a.Expr.Range().Ptr(), "Invalid reason_pattern", fmt.Sprintf("Not an RE2 regular expression: %v.", err)))
			} else {
				r.ReasonPattern = re
			}
		}
	}
	if r.ReasonPattern != nil && r.Action != RequireReason {
		rng := b.DefRange
		if a := c.Attributes["reason_pattern"]; a != nil {
			rng = a.Range
		} else if a := c.Attributes["action"]; a != nil {
			rng = a.Range
		}
		*diags = append(*diags, errAt(rng.Ptr(), "reason_pattern without require_reason",
			fmt.Sprintf(`reason_pattern only applies to action "require_reason"; rule %q's action is %q.`, name, r.Action)))
	}
	if a := c.Attributes["enforced"]; a != nil {
		if v, ok := literal(a, cty.Bool, diags); ok && v.True() {
			r.Enforced, r.enforcedIn = true, m.fileIdx
			if when == nil {
				r.EnforcedBy = where
			}
		}
	}
	disable := false
	if a := c.Attributes["enabled"]; a != nil {
		if v, ok := literal(a, cty.Bool, diags); ok {
			disable = v.False()
		}
	}
	if (*diags)[start:].HasErrors() {
		// Keep the earlier definition rather than half of this one; the
		// policy will not be used anyway.
		return
	}
	if reenable >= 0 {
		// Off in an earlier layer: this block either keeps it off or turns
		// it back on.
		m.disabled = slices.Delete(m.disabled, reenable, reenable+1)
	}
	switch {
	case disable && exists:
		m.disabled = append(m.disabled, r)
		m.p.Rules = slices.Delete(m.p.Rules, i, i+1)
		m.reindex()
	case disable:
		m.disabled = append(m.disabled, r)
	case exists:
		m.p.Rules[i] = r
	default:
		m.index[name] = len(m.p.Rules)
		m.p.Rules = append(m.p.Rules, r)
	}
}

func (m *merger) reindex() {
	m.index = map[string]int{}
	for i, r := range m.p.Rules {
		m.index[r.Name] = i
	}
}

func builtInNames() []string {
	var out []string
	for _, r := range builtInRules() {
		out = append(out, r.Name)
	}
	return out
}

// checkExpr checks an expression against the variables' types: unknown
// names, misspelt attributes, unknown functions and type errors are found
// now. env may only be read with literal names.
func (m *merger) checkExpr(ex hcl.Expression, condition bool, diags *hcl.Diagnostics) {
	if condition {
		oldCommandNames(ex, diags)
	}
	vars := ex.Variables()
	names, ds := envNames(vars)
	m.facts[ex] = exprFacts{env: names, lock: readsLock(vars)}
	*diags = append(*diags, ds...)
	if ds.HasErrors() {
		return
	}
	v, ds := ex.Value(typesContext(names))
	suggest(ds)
	*diags = append(*diags, ds...)
	if ds.HasErrors() {
		return
	}
	if !condition {
		if _, err := convert.Convert(v, cty.String); err != nil || (v.IsKnown() && v.IsNull()) {
			*diags = append(*diags, errAt(ex.Range().Ptr(), "Message is not text",
				`message must be a string, like "apply on ${workspace} needs a ticket".`))
		}
		return
	}
	if v.IsKnown() && v.IsNull() {
		*diags = append(*diags, errAt(ex.Range().Ptr(), "Condition is null",
			"when must be a condition that is true or false, like workspace == \"prod\"; this one is null."))
		return
	}
	if t := v.Type(); t != cty.Bool && t != cty.DynamicPseudoType {
		*diags = append(*diags, errAt(ex.Range().Ptr(), "Condition is not true or false",
			fmt.Sprintf("when must be a condition, like workspace == \"prod\"; this expression is a %s.", t.FriendlyName())))
	}
}

// exprFacts is what an expression reads, worked out once when it is
// checked.
type exprFacts struct {
	env  []string
	lock bool
}

// envNames lists the environment variables an expression's variables read.
func envNames(vars []hcl.Traversal) ([]string, hcl.Diagnostics) {
	var names []string
	var diags hcl.Diagnostics
	for _, t := range vars {
		if t.RootName() != "env" {
			continue
		}
		name := ""
		if len(t) > 1 {
			switch step := t[1].(type) {
			case hcl.TraverseAttr:
				name = step.Name
			case hcl.TraverseIndex:
				if step.Key.Type() == cty.String && step.Key.IsKnown() {
					name = step.Key.AsString()
				}
			}
		}
		if name == "" {
			diags = append(diags, errAt(t.SourceRange().Ptr(), "Environment read without a name",
				`Rules read environment variables by name, as env.NAME or env["NAME"], so that tfsh gives a rule only the variables it names.`))
			continue
		}
		names = append(names, name)
	}
	return names, diags
}

func (m *merger) finish(diags *hcl.Diagnostics) *Policy {
	p := m.p
	s := p.Settings
	if s.LockTimeoutMax > 0 && s.LockTimeoutDefault > s.LockTimeoutMax {
		// Point at whichever of the two was set last: that is the change
		// that broke the pair.
		last := "lock_timeout_max"
		if m.setOrder["lock_timeout_default"] > m.setOrder["lock_timeout_max"] {
			last = "lock_timeout_default"
		}
		r := m.set[last]
		*diags = append(*diags, errAt(&r, "Default above the maximum",
			fmt.Sprintf("lock_timeout_default (%s, %s) is above lock_timeout_max (%s, %s): tfsh would add a wait it then refuses. Lower lock_timeout_default to %s or less, or raise lock_timeout_max.",
				FormatDuration(s.LockTimeoutDefault), s.Source["lock_timeout_default"], FormatDuration(s.LockTimeoutMax), s.Source["lock_timeout_max"], FormatDuration(s.LockTimeoutMax))))
	}
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		for _, ex := range []hcl.Expression{r.when, r.message} {
			if ex == nil {
				continue
			}
			f, ok := m.facts[ex]
			if !ok {
				vars := ex.Variables()
				f.env, _ = envNames(vars)
				f.lock = readsLock(vars)
			}
			r.readsLock = r.readsLock || f.lock
			for _, n := range f.env {
				if !seen[n] {
					seen[n] = true
					p.envNames = append(p.envNames, n)
				}
			}
		}
		if r.readsLock {
			p.usesLock = true
		}
	}
	sort.Strings(p.envNames)
	p.Disabled = m.disabled
	return p
}

// UsesLock reports whether any rule reads lock.*: only then does the
// pipeline read the lock before a command.
func (p *Policy) UsesLock() bool { return p.usesLock }

// foldLiterals replaces quoted strings without interpolation by their
// values where conditions compare or pass them, so that evaluating
// workspace == "prod" does not render a template each time.
func foldWhen(ex hcl.Expression) hcl.Expression {
	if e, ok := ex.(hclsyntax.Expression); ok {
		return foldLiterals(e)
	}
	return ex
}

func foldLiterals(ex hclsyntax.Expression) hclsyntax.Expression {
	switch e := ex.(type) {
	case *hclsyntax.TemplateExpr:
		if e.IsStringLiteral() {
			if v, diags := e.Value(nil); !diags.HasErrors() {
				return &hclsyntax.LiteralValueExpr{Val: v, SrcRange: e.SrcRange}
			}
		}
	case *hclsyntax.BinaryOpExpr:
		e.LHS, e.RHS = foldLiterals(e.LHS), foldLiterals(e.RHS)
	case *hclsyntax.UnaryOpExpr:
		e.Val = foldLiterals(e.Val)
	case *hclsyntax.ParenthesesExpr:
		e.Expression = foldLiterals(e.Expression)
	case *hclsyntax.FunctionCallExpr:
		all := true
		for i := range e.Args {
			e.Args[i] = foldLiterals(e.Args[i])
			_, lit := e.Args[i].(*hclsyntax.LiteralValueExpr)
			all = all && lit
		}
		// A call on literals gives the same value every time: duration("5m")
		// becomes 300 once, here. can and try are about errors, kept as is.
		if all && !e.ExpandFinal && e.Name != "can" && e.Name != "try" {
			if v, diags := e.Value(&hcl.EvalContext{Functions: functions}); !diags.HasErrors() && v.IsWhollyKnown() {
				return &hclsyntax.LiteralValueExpr{Val: v, SrcRange: e.Range()}
			}
		}
	case *hclsyntax.TupleConsExpr:
		all := true
		for i := range e.Exprs {
			e.Exprs[i] = foldLiterals(e.Exprs[i])
			_, lit := e.Exprs[i].(*hclsyntax.LiteralValueExpr)
			all = all && lit
		}
		if all {
			if v, diags := e.Value(nil); !diags.HasErrors() {
				return &hclsyntax.LiteralValueExpr{Val: v, SrcRange: e.SrcRange}
			}
		}
	}
	return ex
}

func (p *Policy) indexLeaves() {
	p.leafID = map[hcl.Expression]int{}
	byText := map[string]int{}
	var walk func(ex hcl.Expression)
	walk = func(ex hcl.Expression) {
		switch e := ex.(type) {
		case *hclsyntax.ParenthesesExpr:
			walk(e.Expression)
			return
		case *hclsyntax.UnaryOpExpr:
			if e.Op == hclsyntax.OpLogicalNot {
				walk(e.Val)
				return
			}
		case *hclsyntax.BinaryOpExpr:
			if e.Op == hclsyntax.OpLogicalAnd || e.Op == hclsyntax.OpLogicalOr {
				walk(e.LHS)
				walk(e.RHS)
				return
			}
		}
		f := p.files[ex.Range().Filename]
		if f == nil {
			return
		}
		text := string(ex.Range().SliceBytes(f.Bytes))
		id, ok := byText[text]
		if !ok {
			id = len(byText)
			byText[text] = id
		}
		p.leafID[ex] = id
	}
	for _, r := range p.Rules {
		if r.when != nil {
			walk(r.when)
		}
	}
	p.leaves = len(byText)
}

// oldCommandNames refuses terraform's old "env ..." command names compared
// with command.name (==, !=, or in a call such as contains or startswith):
// command.name spells them "workspace ...", so such a rule would silently
// never match.
func oldCommandNames(ex hcl.Expression, diags *hcl.Diagnostics) {
	se, ok := ex.(hclsyntax.Expression)
	if !ok {
		return
	}
	isName := func(e hclsyntax.Expression) bool {
		t, ok := e.(*hclsyntax.ScopeTraversalExpr)
		if !ok || len(t.Traversal) != 2 || t.Traversal.RootName() != "command" {
			return false
		}
		switch step := t.Traversal[1].(type) {
		case hcl.TraverseAttr:
			return step.Name == "name"
		case hcl.TraverseIndex:
			return step.Key.Type() == cty.String && step.Key.IsKnown() && step.Key.AsString() == "name"
		}
		return false
	}
	check := func(e hclsyntax.Expression) {
		hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			var v cty.Value
			var r hcl.Range
			switch x := n.(type) {
			case *hclsyntax.LiteralValueExpr:
				v, r = x.Val, x.SrcRange
			case *hclsyntax.TemplateExpr:
				if !x.IsStringLiteral() {
					return nil
				}
				v, _ = x.Value(nil)
				r = x.SrcRange
			default:
				return nil
			}
			if !v.IsWhollyKnown() || v.IsNull() {
				return nil
			}
			strs := []cty.Value{v}
			if v.Type().IsTupleType() || v.Type().IsListType() {
				strs = v.AsValueSlice() // folded list literals: ["apply", "env select"]
			}
			for _, e := range strs {
				if e.Type() != cty.String || e.IsNull() {
					continue
				}
				if str := e.AsString(); str == "env" || strings.HasPrefix(str, "env ") {
					want := "workspace" + strings.TrimPrefix(str, "env")
					*diags = append(*diags, errAt(r.Ptr(), "Old command name",
						fmt.Sprintf("tfsh names terraform's env commands as workspace commands (command.name is %q), so a rule written with %q would never match: write %q.", want, str, want)))
				}
			}
			return nil
		})
	}
	hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
		switch x := n.(type) {
		case *hclsyntax.BinaryOpExpr:
			if x.Op == hclsyntax.OpEqual || x.Op == hclsyntax.OpNotEqual {
				if isName(x.LHS) {
					check(x.RHS)
				} else if isName(x.RHS) {
					check(x.LHS)
				}
			}
		case *hclsyntax.FunctionCallExpr:
			if slices.ContainsFunc(x.Args, isName) {
				for _, a := range x.Args {
					if !isName(a) {
						check(a)
					}
				}
			}
		}
		return nil
	})
}

// validTableName tells a DynamoDB table name: 3 to 255 of [A-Za-z0-9_.-].
// These checks are plain loops rather than regexps: compiling the table
// name's {3,255} alone cost about 0.2 ms at every tfsh start.
func validTableName(s string) bool {
	return len(s) >= 3 && len(s) <= 255 && strings.TrimLeftFunc(s, nameChar) == ""
}

// validRuleName tells a rule name: a letter or digit, then [A-Za-z0-9_.-].
func validRuleName(s string) bool {
	return s != "" && s[0] != '_' && s[0] != '.' && s[0] != '-' && strings.TrimLeftFunc(s, nameChar) == ""
}

func nameChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
}
