package lock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/tfsh/tfsh/internal/secret"
)

// StateRef says which state a working directory's commands use and where
// its lock lives.
type StateRef struct {
	Dir       string `json:"dir"`
	Backend   string `json:"backend"` // local, s3, gcs, ...; "cloud" for HCP Terraform
	Workspace string `json:"workspace"`
	// Key identifies the state across tools and sessions: the local state
	// path, or bucket/key for S3 (workspace prefix applied).
	Key string `json:"key"`
	// Source says where the backend came from: "init" (.terraform), "config"
	// (the backend block, before init) or "default" (no backend block).
	Source string `json:"source"`
	// Config holds the backend's non-secret settings.
	Config map[string]string `json:"config,omitempty"`
	// Secrets are credential values found in the backend configuration, for
	// redaction; never stored.
	Secrets []string `json:"-"`
	// Credentials are the backend's secret settings by name (access_key,
	// secret_key, token), for the observers; never stored.
	Credentials map[string]string `json:"-"`
}

// Getenv looks up an environment variable.
type Getenv func(string) string

// Discover reads what init resolved (.terraform/terraform.tfstate, or
// $TF_DATA_DIR) and, before init, the backend block of the configuration.
// It never contacts a backend.
func Discover(dir string, getenv Getenv) (StateRef, error) {
	ref := StateRef{Dir: dir, Workspace: "default"}
	dataDir := ".terraform"
	if d := getenv("TF_DATA_DIR"); d != "" {
		dataDir = d
	}
	if !filepath.IsAbs(dataDir) {
		dataDir = filepath.Join(dir, dataDir)
	}
	if ws := getenv("TF_WORKSPACE"); ws != "" {
		ref.Workspace = ws
	} else if b, err := os.ReadFile(filepath.Join(dataDir, "environment")); err == nil && strings.TrimSpace(string(b)) != "" {
		ref.Workspace = strings.TrimSpace(string(b))
	}

	raw := map[string]any{}
	if b, err := os.ReadFile(filepath.Join(dataDir, "terraform.tfstate")); err == nil {
		var st struct {
			Backend *struct {
				Type   string         `json:"type"`
				Config map[string]any `json:"config"`
			} `json:"backend"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return ref, fmt.Errorf("read %s: %w", filepath.Join(dataDir, "terraform.tfstate"), err)
		}
		if st.Backend != nil {
			ref.Backend, raw, ref.Source = st.Backend.Type, st.Backend.Config, "init"
		}
	}
	if ref.Backend == "" {
		typ, cfg, err := backendBlock(dir)
		if err != nil {
			return ref, err
		}
		ref.Backend, raw, ref.Source = typ, cfg, "config"
		if typ == "" {
			ref.Backend, ref.Source = "local", "default"
		}
	}
	ref.Config = map[string]string{}
	ref.Credentials = map[string]string{}
	for k, s := range flatten("", raw) {
		if secret.KeyName(k) {
			ref.Secrets = append(ref.Secrets, s)
			ref.Credentials[k] = s
			continue
		}
		ref.Config[k] = s
	}
	sort.Strings(ref.Secrets)
	ref.Key = stateKey(ref)
	return ref, nil
}

// flatten turns backend settings into "name" → value strings: booleans
// and numbers as text, nested objects (tofu's endpoints = { s3 = … }) as
// "endpoints.s3". Empty and null values are left out.
func flatten(prefix string, m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		name := prefix + k
		switch v := v.(type) {
		case string:
			if v != "" {
				out[name] = v
			}
		case bool, float64, json.Number:
			out[name] = fmt.Sprint(v)
		case map[string]any:
			for k2, v2 := range flatten(name+".", v) {
				out[k2] = v2
			}
		}
	}
	return out
}

// WithStatePath applies the legacy -state/-state-out flags: for the local
// backend the lock is taken on the output state file (the -state-out path,
// else -state), whatever the workspace. Other backends ignore them.
func (ref StateRef) WithStatePath(state, stateOut string) StateRef {
	p := stateOut
	if p == "" {
		p = state
	}
	if ref.Backend != "local" || p == "" {
		return ref
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(ref.Dir, p)
	}
	ref.Key = p
	return ref
}

// ForWorkspace is the same backend's state for another workspace: the
// state `workspace delete NAME` locks is NAME's, not the current one's.
func (ref StateRef) ForWorkspace(name string) StateRef {
	if name == "" || name == ref.Workspace {
		return ref
	}
	ref.Workspace = name
	ref.Key = stateKey(ref)
	return ref
}

// stateKey follows reference §5 and §6.
func stateKey(ref StateRef) string {
	c := ref.Config
	switch ref.Backend {
	case "local":
		path := c["path"]
		if path == "" {
			path = "terraform.tfstate"
		}
		if ref.Workspace != "default" {
			wsDir := c["workspace_dir"]
			if wsDir == "" {
				wsDir = "terraform.tfstate.d"
			}
			path = filepath.Join(wsDir, ref.Workspace, filepath.Base(path))
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(ref.Dir, path)
		}
		return path
	case "s3":
		key := c["key"]
		if ref.Workspace != "default" {
			prefix, ok := c["workspace_key_prefix"]
			if !ok {
				prefix = "env:"
			}
			key = prefix + "/" + ref.Workspace + "/" + key
		}
		return c["bucket"] + "/" + key
	default:
		var parts []string
		for _, k := range []string{"bucket", "prefix", "key", "container_name", "path", "address", "organization", "workspaces"} {
			if v := c[k]; v != "" {
				parts = append(parts, v)
			}
		}
		return ref.Backend + ":" + strings.Join(parts, "/") + "#" + ref.Workspace
	}
}

// backendBlock finds terraform { backend "T" { ... } } (or a cloud block)
// in the directory's .tf files and returns its literal settings.
func backendBlock(dir string) (string, map[string]any, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	sort.Strings(files)
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil || !bytes.Contains(src, []byte("backend")) && !bytes.Contains(src, []byte("cloud")) {
			continue // parsing every resource file on every command would cost more than the rest of tfsh
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			continue // terraform reports syntax errors itself
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		for _, b := range body.Blocks {
			if b.Type != "terraform" {
				continue
			}
			for _, inner := range b.Body.Blocks {
				switch {
				case inner.Type == "backend" && len(inner.Labels) == 1:
					return inner.Labels[0], literalAttrs(inner.Body), nil
				case inner.Type == "cloud":
					return "cloud", literalAttrs(inner.Body), nil
				}
			}
		}
	}
	return "", nil, nil
}

func literalAttrs(body *hclsyntax.Body) map[string]any {
	out := map[string]any{}
	for name, a := range body.Attributes {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || v.IsNull() || !v.IsKnown() {
			continue
		}
		if x, ok := literal(v); ok {
			out[name] = x
		}
	}
	return out
}

// literal converts a literal HCL value to what flatten reads.
func literal(v cty.Value) (any, bool) {
	if v.IsNull() || !v.IsKnown() {
		return nil, false
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString(), true
	case t == cty.Bool:
		return v.True(), true
	case t == cty.Number:
		return v.AsBigFloat().String(), true
	case t.IsObjectType() || t.IsMapType():
		m := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			if x, ok := literal(ev); ok {
				m[k.AsString()] = x
			}
		}
		return m, true
	}
	return nil, false
}
