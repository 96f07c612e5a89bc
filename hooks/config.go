package hooks

import (
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The events tfsh reports to hooks.
const (
	BeforeCommand  = "before_command"
	AfterCommand   = "after_command"
	LockContention = "lock_contention"
	LockWait       = "lock_wait"
	LockOrphaned   = "lock_orphaned"
	ForceUnlock    = "force_unlock"
	PolicyDenied   = "policy_denied"
	// LockHeldLong is fired by tfsh watch, once per lock, when a lock has
	// been held longer than the policy's lock_held_alert.
	LockHeldLong = "lock_held_long"
)

// Events lists every event name a hook may name in on, in the order of a
// command's life. Callers must not modify it.
var Events = []string{BeforeCommand, AfterCommand, LockContention, LockWait, LockOrphaned, ForceUnlock, PolicyDenied, LockHeldLong}

// The values of on_failure.
const (
	Refuse   = "refuse"
	Continue = "continue"
)

// Defaults and limits of the file format.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 3
	MaxTimeout     = time.Hour
	MaxRetries     = 10
)

// FileName is where a project keeps its hooks, relative to the project root.
const FileName = ".tfsh/hooks.hcl"

// Config is the hooks of one file.
type Config struct {
	File string // the file name as given to Parse or Load; diagnostics and sources use it
	Src  []byte // the file's bytes, to render diagnostics with their source lines
	// Dir is the project root: the directory that contains .tfsh/. Exec
	// hooks run there and relative argv[0] resolve against it. Load sets
	// it (absolute); after Parse the caller does, or hooks run in the
	// current directory.
	Dir   string
	Hooks []Hook
}

// Hook is one hook block. Parse fills every default, so a parsed Hook has
// OnFailure set and a positive timeout.
type Hook struct {
	Name     string
	Source   string   // "file:line" of the hook block
	On       []string // event names, each one of Events
	Commands []string // terraform subcommands ("apply", "state mv"); empty: every command and commandless events
	// OnFailure is Refuse or Continue. It only matters for before_command:
	// see Result.Refuses.
	OnFailure string
	Exec      *Exec    // exactly one of Exec and Webhook is set
	Webhook   *Webhook // exactly one of Exec and Webhook is set
}

// Exec runs a local program, never through a shell.
type Exec struct {
	Argv    []string
	Timeout time.Duration // bounds the process; DefaultTimeout if zero
}

// Webhook posts the event to a URL, signed with a secret from the
// environment.
type Webhook struct {
	URL string
	// SecretEnv names the environment variable holding the HMAC-SHA256 key.
	// Empty: deliveries are not signed. Set but the variable is empty or
	// unset: nothing is sent.
	SecretEnv string
	Timeout   time.Duration // bounds the whole delivery, retries included; DefaultTimeout if zero
	Retries   int           // attempts after the first
	Headers   map[string]string
	Insecure  bool // allows http:// to hosts that are not loopback
}

// Kind is "exec" or "webhook".
func (h *Hook) Kind() string {
	switch {
	case h.Exec != nil:
		return "exec"
	case h.Webhook != nil:
		return "webhook"
	}
	return ""
}

// Matches reports whether the hook runs for an event of a command. An entry
// of Commands matches the command itself and every subcommand under it:
// "state" matches "state mv". A hook with Commands never matches an event
// that carries no command.
func (h *Hook) Matches(event, command string) bool {
	if !slices.Contains(h.On, event) {
		return false
	}
	if len(h.Commands) == 0 {
		return true
	}
	command = strings.Join(strings.Fields(command), " ")
	for _, c := range h.Commands {
		if command == c || strings.HasPrefix(command, c+" ") {
			return true
		}
	}
	return false
}

// Find returns the nearest .tfsh/hooks.hcl in dir or one of its parents, as
// git finds .git. A hooks file that exists but cannot be read is still
// returned, so that Load reports it rather than a parent's hooks running.
func Find(dir string) (path string, ok bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for {
		p := filepath.Join(dir, FileName)
		// Lstat: a dangling link, or a .tfsh that is not a directory, is
		// something there that Load must report, not a reason to go on up.
		_, err := os.Lstat(p)
		if err == nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return p, true
		}
		if fi, err := os.Lstat(filepath.Join(dir, ".tfsh")); err == nil && (fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir()) {
			if st, err := os.Stat(filepath.Join(dir, ".tfsh")); err != nil || !st.IsDir() {
				return p, true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Load reads and parses a hooks file. The Config is nil only when the file
// cannot be read. Config.File is path as given (pass a
// path relative to the working directory to get short sources); Config.Dir
// is the absolute parent of the .tfsh directory holding the file, or the
// file's own directory when it is not inside one.
func Load(path string) (*Config, hcl.Diagnostics) {
	return LoadWith(path, os.ReadFile)
}

// LoadWith is Load with the file read by read (the caller's checks of who
// owns it, made on the descriptor it reads from).
func LoadWith(path string, read func(string) ([]byte, error)) (*Config, hcl.Diagnostics) {
	src, err := read(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read hooks file",
			Detail:   fmt.Sprintf("Read %s: %v.", path, unwrapped(err)),
		}}
	}
	cfg, diags := Parse(src, path)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot locate hooks file",
			Detail:   fmt.Sprintf("Absolute path of %s: %v.", path, err),
		})
	}
	cfg.Dir = filepath.Dir(abs)
	if filepath.Base(cfg.Dir) == ".tfsh" {
		cfg.Dir = filepath.Dir(cfg.Dir)
	}
	return cfg, diags
}

var (
	fileSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "hook", LabelNames: []string{"name"}}},
	}
	hookSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "on", Required: true},
			{Name: "commands"},
			{Name: "on_failure"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "exec"}, {Type: "webhook"}},
	}
	execSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "argv", Required: true},
			{Name: "timeout"},
		},
	}
	webhookSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "url", Required: true},
			{Name: "secret_env"},
			{Name: "timeout"},
			{Name: "retries"},
			{Name: "headers"},
			{Name: "insecure"},
		},
	}
)

var (
	commandRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*( [a-z0-9][a-z0-9_-]*)*$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// tokenRE is RFC 9110's token, the syntax of a header name.
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// reservedHeaders are set by tfsh on every delivery (or by net/http), so a
// hook file may not set them.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection",
	"X-Tfsh-Event", "X-Tfsh-Delivery", "X-Tfsh-Signature-256",
}

// Parse parses a hooks file. It reports every problem of the file at once,
// in file order, each with its file:line:col; when the file is not valid
// HCL, the diagnostics are its syntax errors only. The Config is never nil.
// Callers must check diags.HasErrors() before running it: it holds only the
// hooks that were fully valid.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	cfg := &Config{File: filename, Src: src}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() || f == nil || f.Body == nil {
		// The parser reports every syntax error; decoding what it could
		// recover would only add errors that follow from them.
		return cfg, diags
	}
	content, more := f.Body.Content(fileSchema)
	diags = append(diags, more...)

	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		name := b.Labels[0]
		nameRange := b.LabelRanges[0]
		var problems hcl.Diagnostics
		switch {
		case name == "":
			problems = append(problems, errorAt(nameRange, "Invalid hook name", "A hook needs a name: it is passed to the hook and recorded in the audit log."))
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			problems = append(problems, errorAt(nameRange, "Invalid hook name", "A hook name cannot contain control characters."))
		}
		if prev, dup := seen[name]; dup {
			problems = append(problems, errorAt(nameRange, "Duplicate hook name",
				fmt.Sprintf("A hook named %q is already defined at %s:%d. Hook names must be unique in a file.", name, prev.Filename, prev.Start.Line)))
		} else {
			seen[name] = b.DefRange
		}
		h, more := decodeHook(b)
		problems = append(problems, more...)
		diags = append(diags, problems...)
		if !problems.HasErrors() {
			cfg.Hooks = append(cfg.Hooks, *h)
		}
	}
	// In file order, however they were found.
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return -1
		case b.Subject == nil:
			return 1
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
	return cfg, diags
}

func decodeHook(b *hcl.Block) (*Hook, hcl.Diagnostics) {
	h := &Hook{
		Name:      b.Labels[0],
		Source:    fmt.Sprintf("%s:%d", b.DefRange.Filename, b.DefRange.Start.Line),
		OnFailure: Refuse,
	}
	content, diags := b.Body.Content(hookSchema)

	if attr, ok := content.Attributes["on"]; ok {
		events, ranges, more := stringList(attr)
		diags = append(diags, more...)
		for i, ev := range events {
			switch {
			case !slices.Contains(Events, ev):
				detail := fmt.Sprintf("%q is not an event. The events are: %s.", ev, strings.Join(Events, ", "))
				if near := nearest(ev, Events); near != "" {
					detail = fmt.Sprintf("%q is not an event. Did you mean %q?", ev, near)
				}
				diags = append(diags, errorAt(ranges[i], "Unknown event", detail))
			case slices.Contains(h.On, ev):
				diags = append(diags, errorAt(ranges[i], "Duplicate event", fmt.Sprintf("%q is listed twice.", ev)))
			default:
				h.On = append(h.On, ev)
			}
		}
		if len(events) == 0 && !more.HasErrors() {
			diags = append(diags, errorAt(attr.Expr.Range(), "No events", "A hook must name at least one event in on."))
		}
	}

	if attr, ok := content.Attributes["commands"]; ok {
		cmds, ranges, more := stringList(attr)
		diags = append(diags, more...)
		for i, c := range cmds {
			switch {
			case !commandRE.MatchString(c):
				diags = append(diags, errorAt(ranges[i], "Invalid command name",
					fmt.Sprintf("%q is not a terraform subcommand name: write it as typed after terraform, in lower case with single spaces, such as \"apply\" or \"state mv\".", c)))
			case slices.Contains(h.Commands, c):
				diags = append(diags, errorAt(ranges[i], "Duplicate command", fmt.Sprintf("%q is listed twice.", c)))
			default:
				h.Commands = append(h.Commands, c)
			}
		}
		if len(cmds) == 0 && !more.HasErrors() {
			diags = append(diags, errorAt(attr.Expr.Range(), "No commands",
				"An empty commands list matches nothing: remove commands to run the hook for every command."))
		}
	}

	if attr, ok := content.Attributes["on_failure"]; ok {
		v, more := stringValue(attr)
		diags = append(diags, more...)
		switch {
		case more.HasErrors():
		case v != Refuse && v != Continue:
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid on_failure",
				fmt.Sprintf("on_failure is %q or %q, not %q.", Refuse, Continue, v)))
		default:
			h.OnFailure = v
			if len(h.On) > 0 && !slices.Contains(h.On, BeforeCommand) {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "on_failure has no effect",
					Detail:   "Only a before_command hook can refuse a command; this hook does not run before_command.",
					Subject:  attr.Range.Ptr(),
				})
			}
		}
	}

	var kindBlock *hcl.Block
	for _, blk := range content.Blocks {
		if kindBlock != nil {
			summary, detail := "Duplicate "+blk.Type+" block", "A hook has one "+blk.Type+" block."
			if blk.Type != kindBlock.Type {
				summary = "Both exec and webhook"
				detail = fmt.Sprintf("A hook runs one thing: this hook already has a %s block at line %d. Write a second hook for the other.", kindBlock.Type, kindBlock.DefRange.Start.Line)
			}
			diags = append(diags, errorAt(blk.DefRange, summary, detail))
			continue
		}
		kindBlock = blk
		var more hcl.Diagnostics
		switch blk.Type {
		case "exec":
			h.Exec, more = decodeExec(blk)
		case "webhook":
			h.Webhook, more = decodeWebhook(blk)
		}
		diags = append(diags, more...)
	}
	if kindBlock == nil {
		diags = append(diags, errorAt(b.DefRange, "Missing exec or webhook",
			fmt.Sprintf("Hook %q needs an exec block (a program to run) or a webhook block (a URL to post to).", h.Name)))
	}
	return h, diags
}

func decodeExec(b *hcl.Block) (*Exec, hcl.Diagnostics) {
	e := &Exec{Timeout: DefaultTimeout}
	content, diags := b.Body.Content(execSchema)
	if attr, ok := content.Attributes["argv"]; ok {
		argv, ranges, more := stringList(attr)
		diags = append(diags, more...)
		for i, a := range argv {
			if strings.IndexByte(a, 0) >= 0 {
				diags = append(diags, errorAt(ranges[i], "Invalid argument", "An argument cannot contain a NUL byte."))
			}
		}
		switch {
		case more.HasErrors():
		case len(argv) == 0:
			diags = append(diags, errorAt(attr.Expr.Range(), "Empty argv",
				"argv is the program and its arguments, such as [\"./scripts/check\", \"--strict\"]; it cannot be empty."))
		case argv[0] == "":
			diags = append(diags, errorAt(ranges[0], "Empty program name", "argv[0], the program to run, cannot be empty."))
		}
		e.Argv = argv
	}
	if attr, ok := content.Attributes["timeout"]; ok {
		var more hcl.Diagnostics
		e.Timeout, more = durationValue(attr)
		diags = append(diags, more...)
	}
	return e, diags
}

func decodeWebhook(b *hcl.Block) (*Webhook, hcl.Diagnostics) {
	w := &Webhook{Timeout: DefaultTimeout, Retries: DefaultRetries}
	content, diags := b.Body.Content(webhookSchema)

	if attr, ok := content.Attributes["insecure"]; ok {
		v, more := typedValue(attr, cty.Bool, "true or false")
		diags = append(diags, more...)
		if !more.HasErrors() {
			w.Insecure = v.True()
		}
	}
	if attr, ok := content.Attributes["url"]; ok {
		v, more := stringValue(attr)
		diags = append(diags, more...)
		if !more.HasErrors() {
			if problem := checkURL(v, w.Insecure); problem != "" {
				summary := "Invalid URL"
				if strings.HasPrefix(problem, "http://") {
					summary = "Insecure URL"
				}
				diags = append(diags, errorAt(attr.Expr.Range(), summary, problem))
			}
			w.URL = v
		}
	}
	if attr, ok := content.Attributes["secret_env"]; ok {
		v, more := stringValue(attr)
		diags = append(diags, more...)
		if !more.HasErrors() {
			if !envNameRE.MatchString(v) {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid secret_env",
					"secret_env is the name of an environment variable that holds the secret, such as \"TFSH_HOOK_SECRET\", never the secret itself."))
			}
			w.SecretEnv = v
		}
	}
	if attr, ok := content.Attributes["timeout"]; ok {
		var more hcl.Diagnostics
		w.Timeout, more = durationValue(attr)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["retries"]; ok {
		v, more := typedValue(attr, cty.Number, "a whole number")
		diags = append(diags, more...)
		if !more.HasErrors() {
			n, acc := v.AsBigFloat().Int64()
			if acc != big.Exact || n < 0 || n > MaxRetries {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid retries",
					fmt.Sprintf("retries is a whole number from 0 to %d: the attempts after the first.", MaxRetries)))
			} else {
				w.Retries = int(n)
			}
		}
	}
	if attr, ok := content.Attributes["headers"]; ok {
		var more hcl.Diagnostics
		w.Headers, more = headersValue(attr)
		diags = append(diags, more...)
	}
	return w, diags
}

// checkURL returns what is wrong with a webhook URL, or "".
func checkURL(s string, insecure bool) string {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL: %v.", s, errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("A webhook URL is https:// (or http:// to a loopback host), not %q.", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host.", s)
	case u.User != nil:
		return "A webhook URL cannot carry a user or password: the file is shared. Sign deliveries with secret_env instead."
	case u.Scheme == "http" && !insecure && !isLoopback(u.Hostname()):
		return fmt.Sprintf("http://%s is not a loopback host, and payloads say who ran what: use https://, or set insecure = true in this webhook block to send them in clear text anyway.", u.Host)
	}
	return ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func errorAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()}
}

// constValue evaluates an attribute without variables or functions: hook
// files are data.
func constValue(attr *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, append(diags, errorAt(attr.Expr.Range(), "Invalid "+attr.Name, attr.Name+" needs a value."))
	}
	return v, diags
}

// typedValue evaluates an attribute and converts it to want; what describes
// want for people.
func typedValue(attr *hcl.Attribute, want cty.Type, what string) (cty.Value, hcl.Diagnostics) {
	v, diags := constValue(attr)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	c, err := convert.Convert(v, want)
	if err != nil || c.IsNull() {
		return cty.NilVal, append(diags, errorAt(attr.Expr.Range(), "Invalid "+attr.Name, attr.Name+" must be "+what+"."))
	}
	return c, diags
}

func stringValue(attr *hcl.Attribute) (string, hcl.Diagnostics) {
	v, diags := typedValue(attr, cty.String, "a string")
	if diags.HasErrors() {
		return "", diags
	}
	return v.AsString(), diags
}

func durationValue(attr *hcl.Attribute) (time.Duration, hcl.Diagnostics) {
	s, diags := stringValue(attr)
	if diags.HasErrors() {
		return DefaultTimeout, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxTimeout {
		return DefaultTimeout, append(diags, errorAt(attr.Expr.Range(), "Invalid duration",
			fmt.Sprintf("%s is a duration such as \"500ms\", \"10s\" or \"2m\", above zero and at most %s; %q is not.", attr.Name, "1h", s)))
	}
	return d, diags
}

// stringList evaluates a list of strings, with the range of each element
// for diagnostics (the whole expression when it is not written as a list).
func stringList(attr *hcl.Attribute) ([]string, []hcl.Range, hcl.Diagnostics) {
	v, diags := constValue(attr)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	ty := v.Type()
	if !ty.IsTupleType() && !ty.IsListType() && !ty.IsSetType() {
		return nil, nil, append(diags, errorAt(attr.Expr.Range(), "Invalid "+attr.Name,
			attr.Name+" must be a list of strings, such as [\"a\", \"b\"]."))
	}
	var elems []hclsyntax.Expression
	if t, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok && len(t.Exprs) == v.LengthInt() {
		elems = t.Exprs
	}
	var out []string
	var ranges []hcl.Range
	for i, it := 0, v.ElementIterator(); it.Next(); i++ {
		_, e := it.Element()
		r := attr.Expr.Range()
		if elems != nil {
			r = elems[i].Range()
		}
		s, err := convert.Convert(e, cty.String)
		if err != nil || s.IsNull() {
			diags = append(diags, errorAt(r, "Invalid "+attr.Name, "Each element of "+attr.Name+" must be a string."))
			continue
		}
		out = append(out, s.AsString())
		ranges = append(ranges, r)
	}
	return out, ranges, diags
}

func headersValue(attr *hcl.Attribute) (map[string]string, hcl.Diagnostics) {
	type item struct {
		key, val   cty.Value
		kr, vr     hcl.Range
		keyProblem hcl.Diagnostics
	}
	var items []item
	var diags hcl.Diagnostics
	if obj, ok := attr.Expr.(*hclsyntax.ObjectConsExpr); ok {
		// Walk the items as written, for their ranges and duplicates.
		for _, it := range obj.Items {
			k, kd := it.KeyExpr.Value(nil)
			v, vd := it.ValueExpr.Value(nil)
			diags = append(diags, vd...)
			items = append(items, item{key: k, val: v, kr: it.KeyExpr.Range(), vr: it.ValueExpr.Range(), keyProblem: kd})
		}
	} else {
		v, more := constValue(attr)
		diags = append(diags, more...)
		if more.HasErrors() {
			return nil, diags
		}
		if !v.Type().IsObjectType() && !v.Type().IsMapType() {
			return nil, append(diags, errorAt(attr.Expr.Range(), "Invalid headers",
				"headers must be a map of header names to strings, such as { \"X-Team\" = \"infra\" }."))
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			items = append(items, item{key: k, val: e, kr: attr.Expr.Range(), vr: attr.Expr.Range()})
		}
	}

	headers := map[string]string{}
	for _, it := range items {
		diags = append(diags, it.keyProblem...)
		if it.keyProblem.HasErrors() || !it.val.IsWhollyKnown() {
			continue
		}
		k, err := convert.Convert(it.key, cty.String)
		if err != nil || k.IsNull() || !it.key.IsWhollyKnown() {
			diags = append(diags, errorAt(it.kr, "Invalid header name", "A header name is a string."))
			continue
		}
		name := k.AsString()
		v, err := convert.Convert(it.val, cty.String)
		switch {
		case !tokenRE.MatchString(name):
			diags = append(diags, errorAt(it.kr, "Invalid header name", fmt.Sprintf("%q is not a valid HTTP header name.", name)))
		case slices.ContainsFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, name) }):
			diags = append(diags, errorAt(it.kr, "Reserved header", fmt.Sprintf("tfsh sets %s itself.", http.CanonicalHeaderKey(name))))
		case err != nil || v.IsNull():
			diags = append(diags, errorAt(it.vr, "Invalid header value", fmt.Sprintf("The value of %s must be a string.", name)))
		case strings.ContainsAny(v.AsString(), "\r\n\x00"):
			diags = append(diags, errorAt(it.vr, "Invalid header value", fmt.Sprintf("The value of %s cannot contain line breaks or NUL.", name)))
		default:
			canon := http.CanonicalHeaderKey(name)
			if _, dup := headers[canon]; dup {
				diags = append(diags, errorAt(it.kr, "Duplicate header", fmt.Sprintf("%s is set twice.", canon)))
				continue
			}
			headers[canon] = v.AsString()
		}
	}
	return headers, diags
}

// nearest returns the candidate within a small edit distance of s, for
// "Did you mean" hints, or "".
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two strings, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unwrapped is a path error's cause (the path is said already), or the
// error itself.
func unwrapped(err error) error {
	if u := errors.Unwrap(err); u != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return u
		}
	}
	return err
}
