package policy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// The variables a rule can read, and their types. Checking a file
// evaluates every expression against unknown values of these types, so a
// misspelt attribute or a type error is found when the policy loads, not
// when a command runs.
var (
	commandType = cty.Object(map[string]cty.Type{
		"name":                 cty.String,
		"args":                 cty.List(cty.String),
		"known":                cty.Bool,
		"help":                 cty.Bool,
		"writes_state":         cty.Bool,
		"locks":                cty.Bool,
		"locking":              cty.String,
		"lock":                 cty.Bool,
		"lock_set":             cty.Bool,
		"lock_origin":          cty.String,
		"lock_timeout":         cty.String,
		"lock_timeout_seconds": cty.Number,
		"lock_timeout_set":     cty.Bool,
		"targets":              cty.List(cty.String),
		"has_plan_file":        cty.Bool,
		"destroy":              cty.Bool,
	})
	ciType = cty.Object(map[string]cty.Type{
		"enabled": cty.Bool, "provider": cty.String, "run_id": cty.String, "workflow": cty.String,
		"job": cty.String, "actor": cty.String, "commit": cty.String, "url": cty.String,
	})
	timeType = cty.Object(map[string]cty.Type{
		"hour": cty.Number, "minute": cty.Number, "weekday": cty.String, "weekday_number": cty.Number,
		"date": cty.String, "rfc3339": cty.String, "unix": cty.Number, "weekend": cty.Bool,
	})
	lockType = cty.Object(map[string]cty.Type{
		"held": cty.Bool, "id": cty.String, "who": cty.String, "operation": cty.String,
		"created": cty.String, "age": cty.String, "age_seconds": cty.Number,
	})
	stringVars = []string{"workspace", "backend", "state_key", "user", "host"}
)

// typesVars are the variables as unknown values of their types, built
// once: checking reads them and never changes them.
var typesVars = sync.OnceValue(func() map[string]cty.Value {
	vars := map[string]cty.Value{
		"command": cty.UnknownVal(commandType),
		"ci":      cty.UnknownVal(ciType),
		"time":    cty.UnknownVal(timeType),
		"lock":    cty.UnknownVal(lockType),
		"env":     cty.EmptyObjectVal,
	}
	for _, n := range stringVars {
		vars[n] = cty.UnknownVal(cty.String)
	}
	return vars
})

// typesContext is the context of unknown values used to check expressions.
func typesContext(envNames []string) *hcl.EvalContext {
	vars := typesVars()
	if len(envNames) > 0 {
		vars = maps.Clone(vars)
		vars["env"] = envObject(envNames, nil, true)
	}
	return &hcl.EvalContext{Variables: vars, Functions: functions}
}

func envObject(names []string, getenv func(string) string, unknown bool) cty.Value {
	if len(names) == 0 {
		return cty.EmptyObjectVal
	}
	m := make(map[string]cty.Value, len(names))
	for _, n := range names {
		if unknown {
			m[n] = cty.UnknownVal(cty.String)
		} else {
			m[n] = cty.StringVal(getenv(n))
		}
	}
	return cty.ObjectVal(m)
}

func strList(s []string) cty.Value {
	if len(s) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(s))
	for i, v := range s {
		vs[i] = cty.StringVal(v)
	}
	return cty.ListVal(vs)
}

// eval is one decision's evaluation: the context is built once, lock.* is
// read at most once and only when a rule asks.
type eval struct {
	p       *Policy
	in      Input
	ctx     *hcl.EvalContext
	err     error // set by match when a file rule could not be evaluated
	lock    bool  // lock.* read (or tried)
	lockErr error // why it could not be read
	memo    []leafResult
}

func (p *Policy) newEval(in Input) *eval {
	return &eval{p: p, in: in}
}

func (e *eval) context() *hcl.EvalContext {
	if e.ctx != nil {
		return e.ctx
	}
	in, s := e.in, e.p.Settings
	lt := s.EffectiveLockTimeout(in)
	locks := in.Locks != "never" && in.Locks != ""
	origin := in.LockOrigin
	cmd := cty.ObjectVal(map[string]cty.Value{
		"name":                 cty.StringVal(in.Command),
		"args":                 strList(in.Args),
		"known":                cty.BoolVal(in.Known),
		"help":                 cty.BoolVal(in.Help),
		"writes_state":         cty.BoolVal(in.WritesState),
		"locks":                cty.BoolVal(locks),
		"locking":              cty.StringVal(in.Locks),
		"lock":                 cty.BoolVal(!in.LockDisabled),
		"lock_set":             cty.BoolVal(in.LockSpelling != ""),
		"lock_origin":          cty.StringVal(origin),
		"lock_timeout":         cty.StringVal(FormatDuration(lt)),
		"lock_timeout_seconds": cty.NumberFloatVal(lt.Seconds()),
		"lock_timeout_set":     cty.BoolVal(in.LockTimeoutSet),
		"targets":              strList(in.Targets),
		"has_plan_file":        cty.BoolVal(in.HasPlanFile),
		"destroy":              cty.BoolVal(in.Destroy),
	})
	ci := in.CI
	civ := cty.ObjectVal(map[string]cty.Value{
		"enabled": cty.BoolVal(ci.Provider != ""), "provider": cty.StringVal(ci.Provider), "run_id": cty.StringVal(ci.RunID),
		"workflow": cty.StringVal(ci.Workflow), "job": cty.StringVal(ci.Job), "actor": cty.StringVal(ci.Actor),
		"commit": cty.StringVal(ci.Commit), "url": cty.StringVal(ci.URL),
	})
	now := in.Time
	if now.IsZero() {
		now = time.Now()
	}
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	now = now.In(loc)
	wd := int(now.Weekday())
	if wd == 0 {
		wd = 7 // ISO: Monday is 1, Sunday 7
	}
	tv := cty.ObjectVal(map[string]cty.Value{
		"hour": cty.NumberIntVal(int64(now.Hour())), "minute": cty.NumberIntVal(int64(now.Minute())),
		"weekday": cty.StringVal(now.Weekday().String()), "weekday_number": cty.NumberIntVal(int64(wd)),
		"date": cty.StringVal(now.Format(time.DateOnly)), "rfc3339": cty.StringVal(now.Format(time.RFC3339)),
		"unix": cty.NumberIntVal(now.Unix()), "weekend": cty.BoolVal(wd >= 6),
	})
	getenv := in.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	vars := map[string]cty.Value{
		"command":   cmd,
		"workspace": cty.StringVal(in.Workspace),
		"backend":   cty.StringVal(in.Backend),
		"state_key": cty.StringVal(in.StateKey),
		"user":      cty.StringVal(in.User),
		"host":      cty.StringVal(in.Host),
		"ci":        civ,
		"env":       envObject(e.p.envNames, getenv, false),
		"time":      tv,
		"lock":      lockValue(LockState{}, now),
	}
	e.ctx = &hcl.EvalContext{Variables: vars, Functions: functions}
	return e.ctx
}

func lockValue(l LockState, now time.Time) cty.Value {
	age := time.Duration(0)
	created := ""
	if l.Held && !l.Created.IsZero() {
		age = now.Sub(l.Created).Truncate(time.Second)
		if age < 0 {
			age = 0
		}
		created = l.Created.UTC().Format(time.RFC3339)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"held": cty.BoolVal(l.Held), "id": cty.StringVal(l.ID), "who": cty.StringVal(l.Who),
		"operation": cty.StringVal(l.Operation), "created": cty.StringVal(created),
		"age": cty.StringVal(FormatDuration(age)), "age_seconds": cty.NumberFloatVal(age.Seconds()),
	})
}

// needLock fills lock.* the first time a rule that reads it is evaluated.
func (e *eval) needLock() error {
	if e.lock {
		return e.lockErr // every rule that reads lock.* fails alike
	}
	e.lock = true
	if e.in.Lock == nil {
		return nil
	}
	l, err := e.in.Lock()
	if err != nil {
		e.lockErr = fmt.Errorf("read the state's lock: %w", err)
		return e.lockErr
	}
	ctx := e.context()
	now := e.in.Time
	if now.IsZero() {
		now = time.Now()
	}
	ctx.Variables["lock"] = lockValue(l, now)
	return nil
}

// match evaluates one rule. A file rule whose expression fails matches with
// e.err set, and the caller turns it into a deny.
func (e *eval) match(r *Rule) (string, bool) {
	if r.when == nil {
		if r.Match == nil {
			return "", false
		}
		msg, ok := r.Match(e.in, e.p.Settings)
		if ok && r.message != nil {
			msg = e.message(r, msg)
		}
		return msg, ok
	}
	if r.readsLock {
		if err := e.needLock(); err != nil {
			e.err = fmt.Errorf("rule %q reads lock.*, and tfsh could not: %v (refusing rather than guessing)", r.Name, err)
			return "", true
		}
	}
	ok, err := e.cond(r.when)
	if err != nil {
		e.err = fmt.Errorf("rule %q (%s) could not be evaluated, so it refuses: %v", r.Name, r.Source, err)
		return "", true
	}
	if !ok {
		return "", false
	}
	return e.message(r, ""), true
}

func readsLock(vars []hcl.Traversal) bool {
	for _, t := range vars {
		if t.RootName() == "lock" {
			return true
		}
	}
	return false
}

func (e *eval) message(r *Rule, fallback string) string {
	if r.message == nil {
		if fallback != "" {
			return fallback
		}
		if r.Description != "" {
			return r.Description
		}
		if r.when != nil {
			return "its condition holds: " + e.p.text(r.when)
		}
		return "matched rule " + r.Name
	}
	if r.readsLock {
		_ = e.needLock()
	}
	if msg, ok := fastTemplate(r.message, e.context()); ok {
		return msg
	}
	v, diags := r.message.Value(e.context())
	if diags.HasErrors() {
		return fmt.Sprintf("(message could not be rendered: %s)", diagSummary(diags))
	}
	if v, err := convert.Convert(v, cty.String); err == nil && v.IsKnown() && !v.IsNull() {
		return v.AsString()
	}
	return "matched rule " + r.Name
}

// evalBool evaluates a condition. && and || stop at the first operand
// that decides them, as people expect and as hcl does not (it evaluates
// both sides): most rules start with a cheap guard that is false.
type leafResult struct {
	done bool
	v    bool
	err  error
}

func (e *eval) cond(ex hcl.Expression) (bool, error) {
	switch x := ex.(type) {
	case *hclsyntax.ParenthesesExpr:
		return e.cond(x.Expression)
	case *hclsyntax.UnaryOpExpr:
		if x.Op == hclsyntax.OpLogicalNot {
			v, err := e.cond(x.Val)
			return !v, err
		}
	case *hclsyntax.BinaryOpExpr:
		switch x.Op {
		case hclsyntax.OpLogicalAnd:
			if l, err := e.cond(x.LHS); err != nil || !l {
				return false, err
			}
			return e.cond(x.RHS)
		case hclsyntax.OpLogicalOr:
			if l, err := e.cond(x.LHS); err != nil || l {
				return l, err
			}
			return e.cond(x.RHS)
		}
	}
	id, ok := e.p.leafID[ex]
	if !ok {
		return evalBool(ex, e.context())
	}
	if e.memo == nil {
		e.memo = make([]leafResult, e.p.leaves)
	}
	if m := e.memo[id]; m.done {
		return m.v, m.err
	}
	v, err := e.leaf(ex)
	e.memo[id] = leafResult{true, v, err}
	return v, err
}

// fastValue reads a variable traversal like command.name straight from the
// context, or reports false when the expression is anything else.
func fastValue(ex hclsyntax.Expression, ctx *hcl.EvalContext) (cty.Value, bool) {
	switch x := ex.(type) {
	case *hclsyntax.LiteralValueExpr:
		return x.Val, true
	case *hclsyntax.ScopeTraversalExpr:
		v, ok := ctx.Variables[x.Traversal.RootName()]
		if !ok {
			return cty.NilVal, false
		}
		for _, step := range x.Traversal[1:] {
			a, ok := step.(hcl.TraverseAttr)
			if !ok || !v.Type().IsObjectType() || !v.Type().HasAttribute(a.Name) || !v.IsKnown() || v.IsNull() {
				return cty.NilVal, false
			}
			v = v.GetAttr(a.Name)
		}
		return v, true
	case *hclsyntax.FunctionCallExpr:
		// One-argument calls rules wrap around variables.
		if len(x.Args) != 1 || x.ExpandFinal {
			break
		}
		a, ok := fastValue(x.Args[0], ctx)
		if !ok || !known(a) {
			break
		}
		switch {
		case x.Name == "lower" && a.Type() == cty.String:
			return cty.StringVal(strings.ToLower(a.AsString())), true
		case x.Name == "upper" && a.Type() == cty.String:
			return cty.StringVal(strings.ToUpper(a.AsString())), true
		case x.Name == "length" && (a.Type().IsListType() || a.Type().IsTupleType()):
			return cty.NumberIntVal(int64(a.LengthInt())), true
		case x.Name == "duration" && a.Type() == cty.String:
			if d, err := ParseDuration(strings.TrimSpace(a.AsString())); err == nil || strings.TrimSpace(a.AsString()) == "" {
				return cty.NumberFloatVal(d.Seconds()), true
			}
		}
	}
	return cty.NilVal, false
}

// leaf evaluates one condition without && or ||. The shapes rules are
// made of (a variable, a comparison of variables and literals, a call of
// startswith, endswith, contains or matches on them) are read directly;
// anything else goes through hcl. Both give the same answers
// (TestFastPathsAgreeWithHCL): the fast paths only take values whose types
// they check.
func (e *eval) leaf(ex hcl.Expression) (bool, error) {
	ctx := e.context()
	switch x := ex.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		if v, ok := fastValue(x, ctx); ok && v.Type() == cty.Bool && known(v) {
			return v.True(), nil
		}
	case *hclsyntax.BinaryOpExpr:
		l, ok1 := fastValue(x.LHS, ctx)
		r, ok2 := fastValue(x.RHS, ctx)
		if !ok1 || !ok2 || !known(l) || !known(r) || !l.Type().Equals(r.Type()) {
			break
		}
		switch {
		case l.Type() == cty.String && (x.Op == hclsyntax.OpEqual || x.Op == hclsyntax.OpNotEqual):
			return (l.AsString() == r.AsString()) == (x.Op == hclsyntax.OpEqual), nil
		case l.Type() == cty.Number:
			// cty's own comparisons, which is what hcl's operators call:
			// its equality of numbers is not big.Float's (0.1 from a
			// duration and the literal 0.1 are equal to cty).
			var v cty.Value
			switch x.Op {
			case hclsyntax.OpEqual:
				v = l.Equals(r)
			case hclsyntax.OpNotEqual:
				v = l.Equals(r).Not()
			case hclsyntax.OpLessThan:
				v = l.LessThan(r)
			case hclsyntax.OpLessThanOrEqual:
				v = l.LessThanOrEqualTo(r)
			case hclsyntax.OpGreaterThan:
				v = l.GreaterThan(r)
			case hclsyntax.OpGreaterThanOrEqual:
				v = l.GreaterThanOrEqualTo(r)
			}
			if v != cty.NilVal && known(v) {
				return v.True(), nil
			}
		}
	case *hclsyntax.FunctionCallExpr:
		if v, ok := fastCall(x, ctx); ok {
			return v, nil
		}
	}
	return evalBool(ex, ctx)
}

func known(v cty.Value) bool { return v.IsKnown() && !v.IsNull() }

// fastCall answers the string tests rules use most when their arguments
// are plain values.
func fastCall(x *hclsyntax.FunctionCallExpr, ctx *hcl.EvalContext) (bool, bool) {
	if len(x.Args) != 2 || x.ExpandFinal {
		return false, false
	}
	a, ok1 := fastValue(x.Args[0], ctx)
	b, ok2 := fastValue(x.Args[1], ctx)
	if !ok1 || !ok2 || !known(a) || !known(b) || b.Type() != cty.String {
		return false, false
	}
	if a.Type() != cty.String {
		if x.Name == "contains" && (a.Type().IsListType() || a.Type().IsTupleType()) {
			for it := a.ElementIterator(); it.Next(); {
				if _, v := it.Element(); known(v) && v.Type() == cty.String && v.AsString() == b.AsString() {
					return true, true
				}
			}
			return false, true
		}
		return false, false
	}
	s, t := a.AsString(), b.AsString()
	switch x.Name {
	case "startswith":
		return strings.HasPrefix(s, t), true
	case "endswith":
		return strings.HasSuffix(s, t), true
	case "contains":
		return strings.Contains(s, t), true
	case "matches":
		if re, err := compiled(t); err == nil {
			return re.MatchString(s), true
		}
	}
	return false, false
}

// fastTemplate renders a message made of literal text and variable
// interpolations without hcl's template machinery (which normalises every
// piece); anything else reports false.
func fastTemplate(ex hcl.Expression, ctx *hcl.EvalContext) (string, bool) {
	var parts []hclsyntax.Expression
	switch x := ex.(type) {
	case *hclsyntax.TemplateExpr:
		parts = x.Parts
	case *hclsyntax.TemplateWrapExpr:
		parts = []hclsyntax.Expression{x.Wrapped}
	default:
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		v, ok := fastValue(p, ctx)
		if !ok || !known(v) {
			return "", false
		}
		switch v.Type() {
		case cty.String:
			b.WriteString(v.AsString())
		case cty.Bool:
			b.WriteString(strconv.FormatBool(v.True()))
		case cty.Number:
			b.WriteString(v.AsBigFloat().Text('f', -1))
		default:
			return "", false
		}
	}
	return b.String(), true
}

func evalBool(ex hcl.Expression, ctx *hcl.EvalContext) (bool, error) {
	switch e := ex.(type) {
	case *hclsyntax.ParenthesesExpr:
		return evalBool(e.Expression, ctx)
	case *hclsyntax.UnaryOpExpr:
		if e.Op == hclsyntax.OpLogicalNot {
			v, err := evalBool(e.Val, ctx)
			return !v, err
		}
	case *hclsyntax.BinaryOpExpr:
		switch e.Op {
		case hclsyntax.OpLogicalAnd:
			if l, err := evalBool(e.LHS, ctx); err != nil || !l {
				return false, err
			}
			return evalBool(e.RHS, ctx)
		case hclsyntax.OpLogicalOr:
			if l, err := evalBool(e.LHS, ctx); err != nil || l {
				return l, err
			}
			return evalBool(e.RHS, ctx)
		}
	}
	v, diags := ex.Value(ctx)
	if diags.HasErrors() {
		return false, errors.New(diagSummary(diags))
	}
	if v.Type() != cty.Bool {
		var err error
		if v, err = convert.Convert(v, cty.Bool); err != nil {
			return false, fmt.Errorf("when must be true or false: %v", err)
		}
	}
	if v.IsNull() || !v.IsKnown() {
		return false, errors.New("when is null")
	}
	return v.True(), nil
}

func diagSummary(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s = fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, s)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// functions are what rules may call: the useful part of cty's standard
// library, can/try, and a few for the command line (startswith, matches,
// duration).
var functions = map[string]function.Function{
	"contains":      containsFunc,
	"startswith":    startsWithFunc,
	"endswith":      endsWithFunc,
	"matches":       matchesFunc,
	"duration":      durationFunc,
	"regex":         stdlib.RegexFunc,
	"regexall":      stdlib.RegexAllFunc,
	"regex_replace": stdlib.RegexReplaceFunc,
	"lower":         stdlib.LowerFunc,
	"upper":         stdlib.UpperFunc,
	"length":        stdlib.LengthFunc,
	"split":         stdlib.SplitFunc,
	"join":          stdlib.JoinFunc,
	"trimspace":     stdlib.TrimSpaceFunc,
	"trimprefix":    stdlib.TrimPrefixFunc,
	"trimsuffix":    stdlib.TrimSuffixFunc,
	"replace":       stdlib.ReplaceFunc,
	"format":        stdlib.FormatFunc,
	"coalesce":      stdlib.CoalesceFunc,
	"anytrue":       anyTrueFunc,
	"alltrue":       allTrueFunc,
	"min":           stdlib.MinFunc,
	"max":           stdlib.MaxFunc,
	"can":           tryfunc.CanFunc,
	"try":           tryfunc.TryFunc,
}

// FunctionNames lists the functions rules may call.
func FunctionNames() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, n)
	}
	return out
}

// containsFunc is true when a list has the value, or a string the substring.
var containsFunc = function.New(&function.Spec{
	Description: "contains(list, value) or contains(string, substring)",
	Params: []function.Parameter{
		{Name: "haystack", Type: cty.DynamicPseudoType},
		{Name: "needle", Type: cty.DynamicPseudoType},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		h, n := args[0], args[1]
		if h.IsNull() {
			return cty.False, nil
		}
		if h.Type() == cty.String {
			ns, err := convert.Convert(n, cty.String)
			if err != nil || ns.IsNull() {
				return cty.NilVal, function.NewArgErrorf(1, "contains on a string needs a string to look for")
			}
			return cty.BoolVal(strings.Contains(h.AsString(), ns.AsString())), nil
		}
		if !h.CanIterateElements() {
			return cty.NilVal, function.NewArgErrorf(0, "contains needs a list or a string, not %s", h.Type().FriendlyName())
		}
		for it := h.ElementIterator(); it.Next(); {
			_, v := it.Element()
			if eq := v.Equals(n); eq.IsKnown() && eq.True() {
				return cty.True, nil
			}
			if v.Type() == cty.String {
				if ns, err := convert.Convert(n, cty.String); err == nil && !ns.IsNull() && ns.AsString() == v.AsString() {
					return cty.True, nil
				}
			}
		}
		return cty.False, nil
	},
})

func stringPair(name string, fn func(s, x string) bool) function.Function {
	return function.New(&function.Spec{
		Description: name,
		Params:      []function.Parameter{{Name: "str", Type: cty.String}, {Name: "x", Type: cty.String}},
		Type:        function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(fn(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

var (
	startsWithFunc = stringPair("startswith(str, prefix)", strings.HasPrefix)
	endsWithFunc   = stringPair("endswith(str, suffix)", strings.HasSuffix)
)

// regexCache keeps compiled patterns: rules call matches with literals, so
// a pattern is compiled once per process, not once per command.
var regexCache sync.Map

func compiled(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	regexCache.Store(pattern, re)
	return re, nil
}

// matchesFunc is a regular expression test that is false, rather than an
// error, when nothing matches (unlike regex).
var matchesFunc = function.New(&function.Spec{
	Description: "matches(str, pattern): whether the RE2 pattern matches anywhere in str",
	// Unknown arguments are let in so that a literal pattern is compiled
	// when the policy is checked, even though str is only known later.
	Params: []function.Parameter{{Name: "str", Type: cty.String, AllowUnknown: true}, {Name: "pattern", Type: cty.String, AllowUnknown: true}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if !args[1].IsKnown() {
			return cty.UnknownVal(cty.Bool), nil
		}
		re, err := compiled(args[1].AsString())
		if err != nil {
			return cty.NilVal, function.NewArgErrorf(1, "invalid pattern: %v", err)
		}
		if !args[0].IsKnown() {
			return cty.UnknownVal(cty.Bool), nil
		}
		return cty.BoolVal(re.MatchString(args[0].AsString())), nil
	},
})

// durationFunc turns "5m", "1h30m" or "90s" into seconds, so durations
// compare with < and >. An empty string is zero.
var durationFunc = function.New(&function.Spec{
	Description: `duration("5m"): the number of seconds in a Go duration string`,
	Params:      []function.Parameter{{Name: "d", Type: cty.String}},
	Type:        function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		s := strings.TrimSpace(args[0].AsString())
		if s == "" {
			return cty.Zero, nil
		}
		d, err := ParseDuration(s)
		if err != nil {
			return cty.NilVal, function.NewArgErrorf(0, "%v", err)
		}
		return cty.NumberFloatVal(d.Seconds()), nil
	},
})

func boolFold(name string, want bool) function.Function {
	return function.New(&function.Spec{
		Description: name,
		Params:      []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:        function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			unknown := false
			for it := args[0].ElementIterator(); it.Next(); {
				_, v := it.Element()
				if !v.IsKnown() {
					unknown = true
					continue
				}
				if !v.IsNull() && v.True() == want {
					return cty.BoolVal(want), nil
				}
			}
			if unknown {
				return cty.UnknownVal(cty.Bool), nil
			}
			return cty.BoolVal(!want), nil
		},
	})
}

var (
	anyTrueFunc = boolFold("anytrue(list): whether any element is true", true)
	allTrueFunc = boolFold("alltrue(list): whether every element is true", false)
)

// ParseDuration reads a duration as terraform reads -lock-timeout (Go's
// syntax), with a plain "0" allowed.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write it like 30s, 5m or 1h30m)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}
