package policy

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// RuleResult is what one rule made of a command.
type RuleResult struct {
	Rule    string `json:"rule"`
	Source  string `json:"source"`
	Layer   string `json:"layer"`
	Action  Action `json:"action"`
	Matched bool   `json:"matched"`
	// Why says what made the rule match or not: the condition that was
	// false and the values it read, or the built-in rule's reason.
	Why      string   `json:"why"`
	Message  string   `json:"message,omitempty"`
	Added    []string `json:"added,omitempty"`
	Enforced bool     `json:"enforced,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
}

// Explanation is a decision with the reasoning of every rule behind it.
type Explanation struct {
	Decision Decision     `json:"-"`
	Action   Action       `json:"action"`
	Rules    []RuleResult `json:"rules"`
	Files    []File       `json:"files"`
}

// Explain decides like Decide and says, for every rule, whether it matched
// and why, in the layer it comes from. Disabled rules are listed too.
func (p *Policy) Explain(in Input) Explanation {
	// One evaluation for the decision and the reasons: the lock is read
	// once, and the reasons describe the state that decided.
	ev := p.newEval(in)
	d := p.decide(ev)
	ex := Explanation{Decision: d, Action: d.Action, Files: p.Files}
	for i := range p.Rules {
		r := &p.Rules[i]
		res := RuleResult{Rule: r.Name, Source: r.Source, Layer: r.Layer.String(), Action: r.Action, Enforced: r.Enforced || p.EnforcedThrough(*r) != ""}
		for _, f := range d.Findings {
			if f.Rule == r.Name {
				res.Matched, res.Message, res.Action = true, f.Message, f.Action
			}
		}
		for _, a := range d.Add {
			if a.Rule == r.Name {
				res.Added = append(res.Added, a.Arg)
			}
		}
		switch {
		case r.Add != nil && r.Match == nil:
			res.Action = "add"
		case r.Name == RuleLockTimeoutMax && p.Settings.OverMax == OverMaxClamp:
			res.Action = "lower"
		}
		res.Why = ev.why(r, res.Matched || len(res.Added) > 0)
		ex.Rules = append(ex.Rules, res)
	}
	for _, r := range p.Disabled {
		ex.Rules = append(ex.Rules, RuleResult{Rule: r.Name, Source: r.Source, Layer: r.Layer.String(), Action: r.Action, Disabled: true,
			Why: "disabled (enabled = false) at " + r.Source})
	}
	return ex
}

// why explains one rule's outcome.
func (e *eval) why(r *Rule, matched bool) string {
	if r.when == nil {
		return builtInWhy(r, e.in, e.p.Settings, matched)
	}
	if r.readsLock {
		if err := e.needLock(); err != nil {
			return "could not read the lock: " + err.Error()
		}
	}
	ctx := e.context()
	if matched {
		if ok, err := evalBool(r.when, ctx); err != nil {
			return "could not be evaluated: " + err.Error()
		} else if !ok {
			return "matched" // cannot happen: the decision evaluated the same context
		}
		return "when is true: " + e.p.text(r.when) + values(r.when, ctx)
	}
	// Find the first conjunct that is false: that is why.
	part := r.when
	for {
		if p, ok := part.(*hclsyntax.ParenthesesExpr); ok {
			part = p.Expression
			continue
		}
		bin, ok := part.(*hclsyntax.BinaryOpExpr)
		if !ok || bin.Op != hclsyntax.OpLogicalAnd {
			break
		}
		if ok, err := evalBool(bin.LHS, ctx); err == nil && !ok {
			part = bin.LHS
			continue
		}
		part = bin.RHS
	}
	return e.p.text(part) + " is false" + values(part, ctx)
}

// text is an expression's source text, on one line.
func (p *Policy) text(ex hcl.Expression) string {
	r := ex.Range()
	f := p.files[r.Filename]
	if f == nil {
		return "(condition)"
	}
	return strings.Join(strings.Fields(string(r.SliceBytes(f.Bytes))), " ")
}

// values lists what an expression read, as "(workspace = "dev", time.hour = 21)".
func values(ex hcl.Expression, ctx *hcl.EvalContext) string {
	var parts []string
	seen := map[string]bool{}
	for _, t := range ex.Variables() {
		name := traversalName(t)
		if seen[name] {
			continue
		}
		seen[name] = true
		v, diags := t.TraverseAbs(ctx)
		if diags.HasErrors() {
			continue
		}
		parts = append(parts, name+" = "+Show(v))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func traversalName(t hcl.Traversal) string {
	var b strings.Builder
	for i, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			b.WriteString("[" + Show(s.Key) + "]")
		default:
			_ = i
		}
	}
	return b.String()
}

// Show writes a value as it would be written in a policy file.
func Show(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case !v.IsKnown():
		return "(unknown)"
	case v.Type() == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case v.Type() == cty.Bool:
		return fmt.Sprint(v.True())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, Show(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.Type().IsObjectType() || v.Type().IsMapType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			parts = append(parts, k.AsString()+" = "+Show(e))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.GoString()
}

func builtInWhy(r *Rule, in Input, s Settings, matched bool) string {
	if matched {
		switch r.Name {
		case RuleNoUnlockedWrites:
			return fmt.Sprintf("%s turns the lock off, and %s writes state", describeLock(in), in.Command)
		case RuleUnlockedRead:
			return fmt.Sprintf("%s turns the lock off; %s only reads state", describeLock(in), in.Command)
		case RuleLockTimeoutDefault:
			return "no -lock-timeout was given, and " + in.Command + " accepts and honours one"
		case RuleLockTimeoutMax:
			if s.OverMax == OverMaxClamp {
				return fmt.Sprintf("-lock-timeout=%s is above the maximum %s, which the policy lowers it to", FormatDuration(in.LockTimeout), FormatDuration(s.LockTimeoutMax))
			}
			return fmt.Sprintf("-lock-timeout=%s is above the maximum %s (%s)", FormatDuration(in.LockTimeout), FormatDuration(s.LockTimeoutMax), s.Source["lock_timeout_max"])
		}
		return "matched"
	}
	switch {
	case in.Help:
		return "the command only prints help"
	case r.Name == RuleNoUnlockedWrites && !in.LockDisabled:
		return "the state lock is on"
	case r.Name == RuleNoUnlockedWrites:
		return in.Command + " writes no state"
	case r.Name == RuleUnlockedRead && !in.LockDisabled:
		return "the state lock is on"
	case r.Name == RuleUnlockedRead:
		return in.Command + " writes state (no-unlocked-writes applies instead)"
	case in.ParseError != "":
		return "terraform will reject the arguments: " + in.ParseError
	case r.Name == RuleLockTimeoutDefault && in.LockTimeoutSet:
		return "a -lock-timeout is given (" + FormatDuration(in.LockTimeout) + ")"
	case r.Name == RuleLockTimeoutDefault && in.LockDisabled:
		return "the lock is off, so there is nothing to wait for"
	case r.Name == RuleLockTimeoutDefault && (!in.Known || !in.AcceptsLockTimeout || !in.LockTimeoutHonoured):
		return in.Command + " takes no -lock-timeout that terraform honours"
	case r.Name == RuleLockTimeoutDefault && s.LockTimeoutDefault <= 0:
		return "lock_timeout_default is 0"
	case r.Name == RuleForceUnlockReason:
		return in.Command + " is not force-unlock"
	case r.Name == RuleLockTimeoutMax && s.LockTimeoutMax <= 0:
		return "no lock_timeout_max is set"
	case r.Name == RuleLockTimeoutMax && !in.LockTimeoutSet:
		return "no -lock-timeout is given"
	case r.Name == RuleLockTimeoutMax && !in.LockTimeoutHonoured:
		return in.Command + " ignores -lock-timeout, so its value does not matter"
	case r.Name == RuleLockTimeoutMax:
		return fmt.Sprintf("-lock-timeout=%s is within the maximum %s", FormatDuration(in.LockTimeout), FormatDuration(s.LockTimeoutMax))
	}
	return "does not apply: " + r.Description
}

// WriteExplanation writes an explanation for people.
func WriteExplanation(w io.Writer, ex Explanation) {
	fmt.Fprintf(w, "decision: %s\n", ex.Action)
	if f := ex.Decision.Deciding(); f != nil {
		fmt.Fprintf(w, "  by rule %q (%s): %s\n", f.Rule, f.Source, f.Message)
	}
	if args := ex.Decision.Args(); len(args) > 0 {
		fmt.Fprintf(w, "  adds %s\n", strings.Join(args, " "))
	}
	fmt.Fprintln(w, "\nfiles:")
	if len(ex.Files) == 0 {
		fmt.Fprintln(w, "  none: built-in rules only")
	}
	for _, f := range ex.Files {
		fmt.Fprintf(w, "  %-12s %s\n", f.Layer, f.Path)
	}
	fmt.Fprintln(w, "\nrules:")
	for _, r := range ex.Rules {
		mark := "no "
		switch {
		case r.Disabled:
			mark = "off"
		case r.Matched || len(r.Added) > 0:
			mark = "YES"
		}
		enf := ""
		if r.Enforced {
			enf = ", enforced"
		}
		fmt.Fprintf(w, "  %s %s [%s, %s%s] %s\n", mark, r.Rule, r.Action, r.Layer, enf, r.Source)
		fmt.Fprintf(w, "      %s\n", r.Why)
		if r.Matched && r.Message != "" {
			fmt.Fprintf(w, "      message: %s\n", r.Message)
		}
		if len(r.Added) > 0 {
			fmt.Fprintf(w, "      adds: %s\n", strings.Join(r.Added, " "))
		}
	}
}

// EnforcedThrough names the enforced setting a built-in rule applies, if
// any: such a rule is as enforced as the setting.
func (p *Policy) EnforcedThrough(r Rule) string {
	for _, setting := range appliesSettings[r.Name] {
		if _, ok := p.Settings.Enforced[setting]; ok {
			return setting
		}
	}
	return ""
}
