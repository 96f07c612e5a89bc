package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// delivery is one webhook request the test receiver got.
type delivery struct {
	Event string
	Body  map[string]any
}

// TestHooks runs exec and webhook hooks from .tfsh/hooks.hcl through the
// real pipeline with real terraform: a failing before_command hook
// refuses the command with its output shown; after_command, policy_denied
// and lock_contention reach a loopback webhook with a valid HMAC-SHA256
// signature; a slow hook is cut at its timeout without holding the command;
// every run is in the audit log.
func TestHooks(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")

	const secret = "hook-s3cret"
	var mu sync.Mutex
	var got []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.Header.Get("X-Tfsh-Signature-256") != want {
			t.Errorf("signature %q, want %q", r.Header.Get("X-Tfsh-Signature-256"), want)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, body)
		}
		mu.Lock()
		got = append(got, delivery{Event: r.Header.Get("X-Tfsh-Event"), Body: m})
		mu.Unlock()
	}))
	defer srv.Close()
	deliveries := func(event string) []delivery {
		mu.Lock()
		defer mu.Unlock()
		var out []delivery
		for _, d := range got {
			if d.Event == event {
				out = append(out, d)
			}
		}
		return out
	}

	payloads := filepath.Join(t.TempDir(), "payloads.jsonl")
	script := "#!/bin/sh\npayload=$(cat)\nprintf '%s\\n' \"$payload\" >> \"$PAYLOADS\"\ncase \"$payload\" in *'-target='*) echo 'no -target on this project: ask #infra' >&2; exit 7;; esac\n"
	if err := os.WriteFile(filepath.Join(dir, "check.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`hook "gate" {
  on       = ["before_command"]
  commands = ["apply"]
  exec {
    argv    = ["./check.sh"]
    timeout = "10s"
  }
}

hook "notify" {
  on = ["after_command", "policy_denied", "lock_contention"]
  webhook {
    url        = %q
    secret_env = "HOOK_HMAC"
    timeout    = "5s"
  }
}

hook "leaky" {
  on         = ["after_command"]
  commands   = ["validate"]
  on_failure = "continue"
  exec {
    argv = ["./leak.sh"]
  }
}

hook "slow" {
  on         = ["after_command"]
  commands   = ["validate"]
  on_failure = "continue"
  exec {
    argv    = ["sleep", "30"]
    timeout = "300ms"
  }
}
`, srv.URL)
	// A hook that prints the webhook's signing key and fails: its output is
	// recorded, the key must not be.
	if err := os.WriteFile(filepath.Join(dir, "leak.sh"), []byte("#!/bin/sh\necho \"key is $HOOK_HMAC\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".tfsh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tfsh", "hooks.hcl"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "HOOK_HMAC="+secret, "PAYLOADS="+payloads)

	// A failing before_command hook refuses, with its output.
	r := h.run(nil, "-c", "apply -auto-approve -target=terraform_data.hold")
	if r.code != 3 || !strings.Contains(r.stderr, `refused by hook "gate" (.tfsh/hooks.hcl:1): it exited 7`) || !strings.Contains(r.stderr, "no -target on this project: ask #infra") {
		t.Fatalf("targeted apply: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "Apply complete") {
		t.Fatal("terraform ran after a refusing hook")
	}
	if show := h.must("audit", "show", "last"); !strings.Contains(show.stdout, `hook       `) ||
		!strings.Contains(show.stdout, `"gate" (exec .tfsh/hooks.hcl:1) on before_command: failed in `) ||
		!strings.Contains(show.stdout, `, exit 7 (refused the command)`) {
		t.Fatalf("audit show does not tell the hook's refusal:\n%s", show.stdout)
	}

	// A passing one lets the command run; after_command reaches the webhook.
	h.must("-c", "apply -auto-approve")
	data, err := os.ReadFile(payloads)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var before struct {
		Event, Hook, Command string
		Data                 struct {
			Argv      []string `json:"argv"`
			Workspace string   `json:"workspace"`
			Decision  struct {
				Action string   `json:"action"`
				Added  []string `json:"added"`
			} `json:"decision"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &before); err != nil {
		t.Fatal(err)
	}
	if before.Event != "before_command" || before.Hook != "gate" || before.Command != "apply" || before.Data.Workspace != "default" ||
		strings.Join(before.Data.Argv, " ") != "apply -auto-approve -lock-timeout=5m" || before.Data.Decision.Added[0] != "-lock-timeout=5m" {
		t.Fatalf("before_command payload: %+v", before)
	}
	if d := deliveries("after_command"); len(d) != 1 || d[0].Body["data"].(map[string]any)["status"] != "ok" {
		t.Fatalf("after_command deliveries: %+v", d)
	}

	// A policy refusal is delivered with its rule.
	h.run(nil, "-c", "apply -lock=false -auto-approve")
	if d := deliveries("policy_denied"); len(d) != 1 || d[0].Body["data"].(map[string]any)["rule"] != "no-unlocked-writes" {
		t.Fatalf("policy_denied deliveries: %+v", d)
	}

	// A slow hook is cut at its timeout and said so; the command's own
	// result stands.
	r = h.run(nil, "-c", "validate")
	if r.code != 0 || !strings.Contains(r.stderr, `hook "slow" (.tfsh/hooks.hcl:28) on after_command timeout`) {
		t.Fatalf("validate with a slow hook: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(h.must("audit", "show", "--json", "last").stdout, `key is [redacted]`) {
		t.Fatal("the leaky hook's output is not recorded, redacted")
	}

	// Contention: a second command meets the first one's lock.
	earlier := map[string]bool{}
	for _, e := range h.lockEvents() {
		earlier[e.Session] = true
	}
	holder, hout, hdone := h.start("-c", "apply -auto-approve -var hold_seconds=6 -var run_id=hooks")
	h.waitEvent("the holder's acquisition", holder, hout, func(e lockEvent) bool {
		return e.Kind == "lock_acquired" && e.Sub == "apply" && !earlier[e.Session]
	})
	r = h.run(nil, "-c", "plan -lock-timeout=0s")
	if r.code != 1 {
		t.Fatalf("plan against a held lock: exit %d\n%s", r.code, r.stderr)
	}
	if err := wait(t, hdone, hout); err != nil {
		t.Fatalf("holder: %v\n%s", err, hout.String())
	}
	d := deliveries("lock_contention")
	if len(d) != 1 {
		t.Fatalf("lock_contention deliveries: %+v", d)
	}
	lk, _ := d[0].Body["data"].(map[string]any)["lock"].(map[string]any)
	if lk == nil || lk["lock_id"] == "" || d[0].Body["command"] != "plan" {
		t.Fatalf("lock_contention payload: %+v", d[0].Body)
	}

	// Every run is recorded: event, hook, status, duration.
	ctx := context.Background()
	db, err := audit.Open(ctx, h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := map[string]int{}
	err = db.Events(ctx, audit.EventFilter{Kinds: []string{"hook_run"}}, func(e audit.Event) error {
		var rec struct {
			Event, Hook, Status string
			DurationMS          *int64 `json:"duration_ms"`
		}
		if err := json.Unmarshal(e.Data, &rec); err != nil {
			return err
		}
		if rec.DurationMS == nil || e.CommandID == "" {
			t.Errorf("hook_run without duration or command: %s", e.Data)
		}
		count[rec.Event+"/"+rec.Hook+"/"+rec.Status]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{h.db, h.db + "-wal"} {
		if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), secret) {
			t.Fatalf("the webhook signing key is in %s", f)
		}
	}
	want := map[string]int{
		"before_command/gate/failed": 1, "before_command/gate/ok": 2,
		"after_command/notify/ok": 4, "policy_denied/notify/ok": 1,
		"after_command/slow/timeout": 1, "lock_contention/notify/ok": 1, "after_command/leaky/failed": 1,
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("hook_run %s: %d, want %d (all: %v)", k, count[k], n, count)
		}
	}
}
