package terraform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/tfsh/tfsh/internal/secret"
)

// RedactedValue replaces a secret value in argv.
const RedactedValue = "[redacted]"

// RedactArgs returns a copy of args with the values of -var and of secret
// -backend-config keys replaced, whatever spelling carries them (-var k=v,
// -var=k=v, --var ...). It scans every argument rather than walking flags,
// so it also covers commands tfsh does not know.
func RedactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		name, value, hasValue, ok := flagName(out[i])
		if !ok || (name != "var" && name != "backend-config") {
			continue
		}
		if !hasValue {
			if i+1 < len(out) {
				out[i+1] = redactAssignment(name, out[i+1])
				i++
			}
			continue
		}
		prefix := out[i][:len(out[i])-len(value)]
		out[i] = prefix + redactAssignment(name, value)
	}
	return out
}

func redactAssignment(flag, kv string) string {
	k, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok && flag == "backend-config":
		return kv // a file path
	case !ok:
		return RedactedValue
	case flag == "backend-config" && !secret.KeyName(k):
		return kv
	}
	return k + "=" + RedactedValue
}

// ArgSecrets returns the secret values carried by args: every -var value
// and secret -backend-config values.
func ArgSecrets(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, value, hasValue, ok := flagName(args[i])
		if !ok || (name != "var" && name != "backend-config") {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				continue
			}
			i++
			value = args[i]
		}
		k, v, found := strings.Cut(value, "=")
		switch {
		case !found && name == "var":
			out = append(out, value)
		case found && (name == "var" || secret.KeyName(k)):
			out = append(out, v)
			// A list, map or quoted value: terraform prints its elements
			// separately, so each is a secret of its own.
			out = append(out, exprStrings(v)...)
		}
	}
	return out
}

// exprStrings returns the strings and numbers inside an HCL literal such as
// ["a", "b"] or {k = "v"}; nothing for plain text.
func exprStrings(v string) []string {
	t := strings.TrimSpace(v)
	if t == "" || !strings.ContainsAny(t[:1], "[{\"") {
		return nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(t), "-var", hcl.InitialPos)
	if diags.HasErrors() {
		return nil
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return nil
	}
	return ctyStrings(nil, val)
}

// VarFileSecrets returns the string and number values of the variable files terraform
// will read for this invocation: every -var-file, plus terraform.tfvars(.json)
// and *.auto.tfvars(.json) in dir. Any of them may hold a secret, and tfsh
// cannot know which, so all strings count. Files that cannot be read or
// parsed are skipped: terraform will report them.
func VarFileSecrets(dir string, inv *Invocation) []string {
	files := map[string]bool{}
	for _, f := range inv.Flags {
		if f.Name == "var-file" {
			p := f.Value
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			files[p] = true
		}
	}
	// -var-file given to a command tfsh does not know is still worth reading.
	if inv.Spec == nil {
		for _, v := range flagValues(inv.EffectiveArgv(), "var-file") {
			if !filepath.IsAbs(v) {
				v = filepath.Join(dir, v)
			}
			files[v] = true
		}
	}
	for _, pat := range []string{"terraform.tfvars", "terraform.tfvars.json", "*.auto.tfvars", "*.auto.tfvars.json"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			files[p] = true
		}
	}
	return fileStrings(files, nil)
}

// BackendConfigSecrets returns secret values from -backend-config files
// (keys that name credentials).
func BackendConfigSecrets(dir string, inv *Invocation) []string {
	files := map[string]bool{}
	for _, v := range flagValues(inv.EffectiveArgv(), "backend-config") {
		if strings.Contains(v, "=") {
			continue
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		files[v] = true
	}
	return fileStrings(files, secret.KeyName)
}

func flagValues(args []string, want string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, value, hasValue, ok := flagName(args[i])
		if !ok || name != want {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		out = append(out, value)
	}
	return out
}

const maxVarFile = 4 << 20

// fileStrings collects string values of top-level attributes (and
// everything nested in them) of HCL or JSON files; keep filters by the
// top-level attribute name.
func fileStrings(files map[string]bool, keep func(string) bool) []string {
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxVarFile {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if strings.HasSuffix(name, ".json") {
			var m map[string]any
			if json.Unmarshal(src, &m) == nil {
				for k, v := range m {
					if keep == nil || keep(k) {
						out = jsonStrings(out, v)
					}
				}
			}
			continue
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			continue
		}
		attrs, _ := f.Body.JustAttributes()
		for k, a := range attrs {
			if keep != nil && !keep(k) {
				continue
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				continue
			}
			out = ctyStrings(out, v)
		}
	}
	return out
}

func jsonStrings(out []string, v any) []string {
	switch t := v.(type) {
	case string:
		out = append(out, t)
	case float64:
		out = append(out, strconv.FormatFloat(t, 'f', -1, 64))
	case []any:
		for _, x := range t {
			out = jsonStrings(out, x)
		}
	case map[string]any:
		for _, x := range t {
			out = jsonStrings(out, x)
		}
	}
	return out
}

func ctyStrings(out []string, v cty.Value) []string {
	if v.IsNull() || !v.IsKnown() {
		return out
	}
	t := v.Type()
	switch {
	case t == cty.String:
		out = append(out, v.AsString())
	case t == cty.Number:
		out = append(out, v.AsBigFloat().Text('f', -1))
	case t.IsListType() || t.IsSetType() || t.IsTupleType() || t.IsMapType() || t.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = ctyStrings(out, e)
		}
	}
	return out
}
