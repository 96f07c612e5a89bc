package lock

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDiscover(t *testing.T) {
	const s3Init = `{"version":3,"backend":{"type":"s3","config":{"bucket":"tfstate","key":"prod/app.tfstate","region":"us-east-1","dynamodb_table":"locks","secret_key":"SECRETKEY123","workspace_key_prefix":null}}}`
	tests := []struct {
		name    string
		files   map[string]string
		env     map[string]string
		backend string
		ws      string
		key     string // relative to dir for local
		source  string
		secrets []string
	}{
		{name: "no configuration", backend: "local", ws: "default", key: "terraform.tfstate", source: "default"},
		{name: "local workspace from .terraform/environment", files: map[string]string{".terraform/environment": "dev\n"},
			backend: "local", ws: "dev", key: "terraform.tfstate.d/dev/terraform.tfstate", source: "default"},
		{name: "TF_WORKSPACE wins", files: map[string]string{".terraform/environment": "dev"}, env: map[string]string{"TF_WORKSPACE": "qa"},
			backend: "local", ws: "qa", key: "terraform.tfstate.d/qa/terraform.tfstate", source: "default"},
		{name: "local path and workspace_dir", files: map[string]string{"main.tf": `terraform {
  backend "local" {
    path          = "state/app.tfstate"
    workspace_dir = "ws"
  }
}`, ".terraform/environment": "blue"}, backend: "local", ws: "blue", key: "ws/blue/app.tfstate", source: "config"},
		{name: "s3 after init", files: map[string]string{".terraform/terraform.tfstate": s3Init},
			backend: "s3", ws: "default", key: "tfstate/prod/app.tfstate", source: "init", secrets: []string{"SECRETKEY123"}},
		{name: "s3 workspace uses env: prefix", files: map[string]string{".terraform/terraform.tfstate": s3Init, ".terraform/environment": "stage"},
			backend: "s3", ws: "stage", key: "tfstate/env:/stage/prod/app.tfstate", source: "init", secrets: []string{"SECRETKEY123"}},
		{name: "s3 custom prefix before init", files: map[string]string{"backend.tf": `terraform {
  backend "s3" {
    bucket               = "b"
    key                  = "k.tfstate"
    workspace_key_prefix = "workspaces"
  }
}`}, env: map[string]string{"TF_WORKSPACE": "w1"}, backend: "s3", ws: "w1", key: "b/workspaces/w1/k.tfstate", source: "config"},
		{name: "TF_DATA_DIR", files: map[string]string{"data/terraform.tfstate": s3Init}, env: map[string]string{"TF_DATA_DIR": "data"},
			backend: "s3", ws: "default", key: "tfstate/prod/app.tfstate", source: "init", secrets: []string{"SECRETKEY123"}},
		{name: "other backend", files: map[string]string{"main.tf": `terraform {
  backend "gcs" {
    bucket = "g"
    prefix = "p"
  }
}`}, backend: "gcs", ws: "default", key: "gcs:g/p#default", source: "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				write(t, filepath.Join(dir, name), content)
			}
			ref, err := Discover(dir, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			key := tt.key
			if tt.backend == "local" {
				key = filepath.Join(dir, key)
			}
			if ref.Backend != tt.backend || ref.Workspace != tt.ws || ref.Key != key || ref.Source != tt.source {
				t.Fatalf("Discover = %s %s %s (%s), want %s %s %s (%s)", ref.Backend, ref.Workspace, ref.Key, ref.Source, tt.backend, tt.ws, key, tt.source)
			}
			if !reflect.DeepEqual(ref.Secrets, tt.secrets) {
				t.Fatalf("Secrets = %q, want %q", ref.Secrets, tt.secrets)
			}
			if _, leaked := ref.Config["secret_key"]; leaked {
				t.Fatalf("secret_key kept in Config")
			}
		})
	}
}

func TestDiscoverBrokenInitState(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, ".terraform/terraform.tfstate"), "{not json")
	if _, err := Discover(dir, func(string) string { return "" }); err == nil {
		t.Fatal("Discover accepted a broken .terraform/terraform.tfstate")
	}
}

func TestForWorkspace(t *testing.T) {
	dir := t.TempDir()
	ref, err := Discover(dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ref.ForWorkspace("old").Key, filepath.Join(dir, "terraform.tfstate.d/old/terraform.tfstate"); got != want {
		t.Fatalf("local: %s, want %s", got, want)
	}
	s3 := StateRef{Backend: "s3", Workspace: "default", Config: map[string]string{"bucket": "b", "key": "k"}}
	s3.Key = stateKey(s3)
	if got := s3.ForWorkspace("old").Key; got != "b/env:/old/k" {
		t.Fatalf("s3: %s, want b/env:/old/k", got)
	}
	if got := s3.ForWorkspace("").Key; got != "b/k" {
		t.Fatalf("no name: %s", got)
	}
}
