package policy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzValid are valid policies to start from, beside the malformed ones in
// testdata/diag and the generated benchmark policy.
var fuzzValid = []string{
	`settings {
  lock_timeout_default  = "2m"
  lock_timeout_max      = "15m"
  lock_timeout_over_max = "clamp"
  audit_required        = true
  timezone              = "UTC"
  enforced              = true
}

rule "no-prod-destroy" {
  description = "destroying production goes through the release pipeline"
  when        = command.destroy && startswith(workspace, "prod")
  action      = "deny"
  message     = "${command.name} -destroy on ${workspace}: use the release pipeline"
  enforced    = true
}

rule "stale-lock" {
  when    = command.name == "force-unlock" && lock.held && lock.age_seconds < duration("1h")
  action  = "require_reason"
  message = "the lock is ${lock.age} old, held by ${lock.who} for ${lock.operation}"
  reason_pattern = "^(OPS|INC)-[0-9]+"
}

rule "unlocked-read" {
  action = "deny"
}
`,
	`rule "nights" {
  when   = command.writes_state && (time.hour >= 20 || time.weekend) && !ci.enabled
  action = "confirm"
}

rule "automation" {
  when    = env.TF_IN_AUTOMATION == "1" && env["CI"] != "true" && can(regex("^[a-z]+$", workspace))
  action  = "warn"
  message = "${upper(command.name)} ${join(" ", command.args)} (${try(env.TF_IN_AUTOMATION, "")})"
}

rule "lock-timeout-default" {
  enabled = false
}
`,
}

// fuzzInputs are the commands a fuzzed policy decides: an apply (lock
// held by someone else), a plan with its lock off, and a force-unlock whose
// lock cannot be read.
func fuzzInputs() []Input {
	apply := benchApply()
	apply.Lock = func() (LockState, error) {
		return LockState{Held: true, ID: "0c1f", Who: "bob@laptop", Operation: "OperationTypeApply",
			Created: apply.Time.Add(-90 * time.Minute)}, nil
	}
	plan := Input{Command: "plan", Known: true, Locks: "always", AcceptsLock: true, AcceptsLockTimeout: true, LockTimeoutHonoured: true,
		Args: []string{"-lock=false"}, LockDisabled: true, LockSpelling: "-lock=false", LockOrigin: OriginCommandLine,
		Workspace: "default", Backend: "local", Time: time.Date(2026, time.January, 10, 3, 0, 0, 0, time.UTC)}
	unlock := Input{Command: "force-unlock", Known: true, WritesState: true, Locks: "never",
		Args: []string{"-force", "0c1f"}, Workspace: "prod", Backend: "s3", StateKey: "env/prod/terraform.tfstate",
		CI:   CI{Provider: "gitlab"},
		Lock: func() (LockState, error) { return LockState{}, errors.New("AccessDenied") }}
	return []Input{apply, plan, unlock}
}

// checkLoad is what every fuzzed policy must survive: Load, rendering its
// diagnostics, and, when it loads, deciding and explaining a few commands.
func checkLoad(t *testing.T, srcs []Source) {
	p, files, diags := Load(srcs)
	if err := WriteDiagnostics(io.Discard, files, diags); err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		if d.Subject != nil && !slices.ContainsFunc(srcs, func(s Source) bool { return s.name() == d.Subject.Filename }) {
			t.Fatalf("diagnostic %q points at %q, which is none of the files", d.Summary, d.Subject.Filename)
		}
	}
	if diags.HasErrors() {
		_ = (&InvalidError{Files: files, Diags: diags}).Error()
		return
	}
	for _, in := range fuzzInputs() {
		d := p.Decide(in)
		if d.Action != Allow && !slices.Contains(Actions, d.Action) {
			t.Fatalf("%s: action %q", in.Command, d.Action)
		}
		if d.Action == Deny && len(d.Add) > 0 {
			t.Fatalf("%s: denied, yet adds %v", in.Command, d.Args())
		}
		if d.Action != Allow && d.Deciding() == nil {
			t.Fatalf("%s: %s with no deciding finding", in.Command, d.Action)
		}
		WriteExplanation(io.Discard, p.Explain(in))
	}
}

// fuzzSeedFiles are the policy files under testdata/diag, malformed and
// pending alike, by path; paths lists them in order so that seed numbers
// are stable.
func fuzzSeedFiles(f *testing.F) (paths []string, data map[string][]byte) {
	f.Helper()
	data = map[string][]byte{}
	for _, pat := range []string{"*.hcl"} {
		m, err := filepath.Glob(filepath.Join("testdata", "diag", pat))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range m {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			paths, data[p] = append(paths, p), b
		}
	}
	if len(paths) == 0 {
		f.Fatal("no seeds under testdata/diag")
	}
	return paths, data
}

// FuzzLoad: no policy file, however malformed, makes Load,
// WriteDiagnostics, Decide or Explain panic.
func FuzzLoad(f *testing.F) {
	paths, data := fuzzSeedFiles(f)
	for _, p := range paths {
		f.Add(data[p])
	}
	for _, s := range fuzzValid {
		f.Add([]byte(s))
	}
	f.Add(benchPolicy(12))
	f.Fuzz(func(t *testing.T, src []byte) {
		if src == nil {
			src = []byte{} // nil would make Load read Path from disk
		}
		checkLoad(t, []Source{{Path: "fuzz.hcl", Layer: LayerProject, Src: src}})
	})
}

// FuzzLoadLayers: the same for an organisation file and a project file,
// where enforcement and changes to an earlier layer's rules are checked.
func FuzzLoadLayers(f *testing.F) {
	paths, data := fuzzSeedFiles(f)
	for _, p := range paths {
		if name, ok := strings.CutSuffix(p, ".org.hcl"); ok {
			f.Add(data[p], data[name+".project.hcl"])
		}
	}
	for _, s := range fuzzValid {
		f.Add([]byte(s), []byte(fuzzValid[1]))
	}
	f.Fuzz(func(t *testing.T, org, project []byte) {
		if org == nil {
			org = []byte{}
		}
		if project == nil {
			project = []byte{}
		}
		checkLoad(t, []Source{
			{Path: "org.hcl", Layer: LayerOrg, Src: org},
			{Path: "project.hcl", Layer: LayerProject, Src: project},
		})
	})
}
