package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// corpusTF adds variables that terraform prints (outputs of plain
// variables show in a plan's "Changes to Outputs") and a sensitive output
// to a test-local copy of the lab example.
const corpusTF = `
variable "tags" {
  type    = list(string)
  default = []
}
variable "note_file" {
  type    = string
  default = ""
}
variable "note_auto" {
  type    = string
  default = ""
}
variable "note_json" {
  type    = string
  default = ""
}
output "tags" { value = var.tags }
output "note_file" { value = var.note_file }
output "note_auto" { value = var.note_auto }
output "note_json" { value = var.note_json }
output "db_password" {
  value     = var.db_password
  sensitive = true
}
`

// promptTF declares variables without defaults, so that terraform asks for
// them at its own prompt.
const promptTF = `
variable "ticket" { type = string }
variable "ticket_pw" {
  type      = string
  sensitive = true
}
output "ticket" { value = var.ticket }
`

// newSecret returns a value that cannot occur by chance.
func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "S3cr3t-" + hex.EncodeToString(b)
}

// TestSecretsCorpus runs secret-bearing invocations and environments through
// tfsh with terraform 1.5.7 (tfsh run, tfsh -c, answers to terraform's
// prompts piped to tfsh -c, and the interactive shell),
// each with its own secret, then requires that no secret, in any spelling
// (raw, JSON-escaped, hex, base64), is in the bytes of the audit database,
// its WAL and shared-memory files, the history file, or what tfsh reads
// back from the log (every event's data and the decompressed output).
func TestSecretsCorpus(t *testing.T) {
	tf := labtest.Terraform(t)
	dir := labtest.Example(t, ".", tf, nil, nil)
	if err := os.WriteFile(filepath.Join(dir, "corpus.tf"), []byte(corpusTF), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, dir, tf)
	h.must("run", "--", "init", "-input=false")

	var secrets []string
	secretFor := map[string]string{}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type corpusCase struct {
		name string
		// run does the case with its secret; it returns what the user saw.
		run func(s string) result
		// shown: terraform itself prints the secret to the user, so the
		// output redaction (not just argv redaction) is exercised.
		shown bool
	}
	cases := []corpusCase{
		{name: "-var k=v (run)", shown: true, run: func(s string) result {
			return h.run(nil, "run", "--", "plan", "-input=false", "-var", "run_id="+s)
		}},
		{name: "-var=k=v (-c)", shown: true, run: func(s string) result {
			return h.run(nil, "-c", "plan -input=false -var=run_id="+s)
		}},
		{name: "--var k=v (run)", shown: true, run: func(s string) result {
			return h.run(nil, "run", "--", "plan", "-input=false", "--var", "run_id="+s)
		}},
		{name: "-var list", shown: true, run: func(s string) result {
			return h.run(nil, "-c", `plan -input=false -var 'tags=["`+s+`"]'`)
		}},
		{name: "-var sensitive (apply)", run: func(s string) result {
			return h.run(nil, "-c", "apply -auto-approve -input=false -var db_password="+s)
		}},
		{name: "-var-file", shown: true, run: func(s string) result {
			write("secret.tfvars", "run_id = \""+s+"\"\n")
			defer os.Remove(filepath.Join(dir, "secret.tfvars"))
			return h.run(nil, "run", "--", "plan", "-input=false", "-var-file=secret.tfvars")
		}},
		{name: "-var-file json", shown: true, run: func(s string) result {
			write("secret.tfvars.json", `{"note_json": "`+s+`"}`)
			defer os.Remove(filepath.Join(dir, "secret.tfvars.json"))
			return h.run(nil, "run", "--", "plan", "-input=false", "-var-file", "secret.tfvars.json")
		}},
		{name: "terraform.tfvars", shown: true, run: func(s string) result {
			write("terraform.tfvars", "note_file = \""+s+"\"\n")
			defer os.Remove(filepath.Join(dir, "terraform.tfvars"))
			return h.run(nil, "-c", "plan -input=false")
		}},
		{name: "*.auto.tfvars", shown: true, run: func(s string) result {
			write("corpus.auto.tfvars", "note_auto = \""+s+"\"\n")
			defer os.Remove(filepath.Join(dir, "corpus.auto.tfvars"))
			return h.run(nil, "run", "--", "plan", "-input=false")
		}},
		{name: "TF_VAR_", shown: true, run: func(s string) result {
			return h.run([]string{"TF_VAR_run_id=" + s}, "-c", "plan -input=false")
		}},
		{name: "TF_CLI_ARGS_plan", shown: true, run: func(s string) result {
			return h.run([]string{"TF_CLI_ARGS_plan=-var=run_id=" + s}, "run", "--", "plan", "-input=false")
		}},
		{name: "TF_CLI_ARGS", shown: true, run: func(s string) result {
			return h.run([]string{"TF_CLI_ARGS=-var 'note_json=" + s + "'"}, "-c", "plan -input=false")
		}},
		{name: "-backend-config=secret_key=", run: func(s string) result {
			return h.run(nil, "run", "--", "init", "-input=false", "-backend-config=secret_key="+s)
		}},
		{name: "-backend-config file", run: func(s string) result {
			write("backend.hcl", "password = \""+s+"\"\n")
			defer os.Remove(filepath.Join(dir, "backend.hcl"))
			return h.run(nil, "-c", "init -input=false -backend-config=backend.hcl")
		}},
		{name: "AWS_SECRET_ACCESS_KEY", run: func(s string) result {
			return h.run([]string{"AWS_ACCESS_KEY_ID=AKIACORPUS", "AWS_SECRET_ACCESS_KEY=" + s}, "-c", "plan -input=false")
		}},
		{name: "AWS_SESSION_TOKEN with TF_LOG=trace", run: func(s string) result {
			return h.run([]string{"AWS_SESSION_TOKEN=" + s, "TF_LOG=trace"}, "run", "--", "plan", "-input=false")
		}},
		{name: "TF_TOKEN_", run: func(s string) result {
			return h.run([]string{"TF_TOKEN_app_terraform_io=" + s}, "run", "--", "version")
		}},
		{name: "sensitive output", shown: true, run: func(s string) result {
			h.run([]string{"TF_VAR_db_password=" + s}, "-c", "apply -auto-approve -input=false -var run_id=sensitive-output")
			// The value is in state now; the commands below do not carry it,
			// so tfsh cannot know it: their output must not be stored.
			var seen strings.Builder
			for _, line := range []string{"output -json", "output -raw db_password", "output -json db_password", "show -json", "state pull"} {
				r := h.run(nil, "-c", line)
				seen.WriteString(r.stdout)
			}
			return result{stdout: seen.String()}
		}},
	}
	for _, c := range cases {
		s := newSecret(t)
		secrets = append(secrets, s)
		secretFor[s] = c.name
		r := c.run(s)
		if c.shown && !strings.Contains(r.stdout, s) {
			t.Errorf("%s: terraform did not show the secret to the user (exit %d); output:\n%s\n%s", c.name, r.code, r.stdout, r.stderr)
		}
	}

	// The interactive shell, in a configuration whose variables terraform
	// asks for at its own prompt.
	pdir := labtest.Example(t, ".", tf, nil, nil)
	if err := os.WriteFile(filepath.Join(pdir, "prompt.tf"), []byte(corpusTF+promptTF), 0o644); err != nil {
		t.Fatal(err)
	}
	ph := *h
	ph.dir = pdir
	ph.env = append(append([]string(nil), h.env...), "TF_INPUT=1") // the lab turns terraform's prompts off
	ph.must("run", "--", "init", "-input=false")
	// An answer to terraform's prompt on a piped stdin (tfsh -c). One
	// prompt only: terraform 1.5.7 itself loses a second answer that
	// arrives in the same read as the first.
	pipedPrompt := newSecret(t)
	secrets = append(secrets, pipedPrompt)
	secretFor[pipedPrompt] = "a value piped to terraform's variable prompt"
	piped := exec.Command("tfsh", "-c", "plan -var ticket_pw=placeholder")
	piped.Dir = pdir
	piped.Env = ph.env
	piped.Stdin = strings.NewReader(pipedPrompt + "\n")
	if out, err := piped.CombinedOutput(); err != nil || !strings.Contains(string(out), pipedPrompt) {
		t.Errorf("tfsh -c plan with answers on stdin: %v; output:\n%s", err, out)
	}

	// An answer typed at a terminal while tfsh's output goes to a pipe
	// (tfsh -c plan | tee log): the terminal is stdin, the output is not.
	ttyPrompt := newSecret(t)
	secrets = append(secrets, ttyPrompt)
	secretFor[ttyPrompt] = "a value typed at a terminal while the output is piped"
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, ptmx) }() // the terminal's echo
	// Typed ahead: the terminal holds the line until someone reads it.
	if _, err := ptmx.Write([]byte(ttyPrompt + "\n")); err != nil {
		t.Fatal(err)
	}
	teed := exec.Command("tfsh", "-c", "plan -var ticket_pw=placeholder")
	teed.Dir = pdir
	teed.Env = ph.env
	teed.Stdin = tty
	out, err := teed.CombinedOutput()
	tty.Close()
	ptmx.Close()
	if err != nil || !strings.Contains(string(out), `ticket      = "`+ttyPrompt+`"`) {
		t.Errorf("tfsh -c plan, typed at a terminal, output piped: %v; output:\n%s", err, out)
	}

	typedPrompt, typedPromptPw, typedVar, typedList, typedApply := newSecret(t), newSecret(t), newSecret(t), newSecret(t), newSecret(t)
	for s, name := range map[string]string{
		typedPrompt:   "a value typed at terraform's variable prompt",
		typedPromptPw: "a value typed at terraform's prompt for a sensitive variable",
		typedVar:      "-var typed at tfsh's prompt",
		typedList:     "-var list typed at tfsh's prompt",
		typedApply:    "a value typed at an apply's prompt, shown again by a later plan",
	} {
		secrets = append(secrets, s)
		secretFor[s] = name
	}
	open := map[string][]byte{}
	screen := corpusShell(t, &ph, func(typeLine func(string), waitFor func(string)) {
		prompt := `tfsh [^ ]+ \[default · local\]> `
		waitFor(prompt)
		typeLine("plan\n")
		waitFor(`var\.ticket[^_][\s\S]*Enter a value:`)
		typeLine(typedPrompt + "\r")
		waitFor(`var\.ticket_pw[\s\S]*Enter a value:`)
		typeLine(typedPromptPw + "\r")
		waitFor(`Plan:`)
		waitFor(prompt)
		typeLine("plan -input=false -var ticket=x -var ticket_pw=y -var run_id=" + typedVar + "\n")
		waitFor(`Plan:`)
		waitFor(prompt)
		typeLine(`plan -input=false -var ticket=x -var ticket_pw=y -var 'tags=["` + typedList + `"]'` + "\n")
		waitFor(`Plan:`)
		waitFor(prompt)
		// A value typed at one command's prompt and shown by a later
		// command that never saw it typed: the session keeps it secret.
		typeLine("apply -auto-approve\n")
		waitFor(`var\.ticket[^_][\s\S]*Enter a value:`)
		typeLine(typedApply + "\r")
		waitFor(`var\.ticket_pw[\s\S]*Enter a value:`)
		typeLine("pw-at-apply\r")
		waitFor(`Apply complete!`)
		waitFor(prompt)
		// (tfsh withholds the output of `output` as a whole; a plan shows
		// the value in state as the old side of a change.)
		typeLine("plan -input=false -var ticket=x -var ticket_pw=y\n")
		waitFor(`ticket += "` + typedApply + `"`)
		waitFor(prompt)
		// The shell still has the log open: its WAL holds this session's
		// pages now, and is checkpointed away when tfsh exits.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if b, err := os.ReadFile(h.db + suffix); err == nil {
				open["audit.db"+suffix+" (while tfsh runs)"] = b
			}
		}
		typeLine("exit\n")
	})
	for _, s := range []string{typedPrompt, typedVar, typedList, typedApply} {
		if !strings.Contains(screen, s) {
			t.Errorf("the user did not see %s (%s) on the screen:\n%s", s, secretFor[s], screen)
		}
	}

	if len(secrets) < 15 {
		t.Fatalf("corpus has %d secrets, want at least 15", len(secrets))
	}
	if len(open["audit.db-wal (while tfsh runs)"]) == 0 {
		t.Errorf("no WAL while the shell ran")
	}
	checkNoSecrets(t, h, secrets, secretFor, open)
}

// corpusShell runs tfsh's interactive shell on a pty in h's directory and
// returns everything it drew.
func corpusShell(t *testing.T, h *harness, script func(typeLine func(string), waitFor func(string))) string {
	t.Helper()
	cmd := exec.Command("tfsh")
	cmd.Dir = h.dir
	cmd.Env = append(append([]string(nil), h.env...), "TERM=dumb")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var scr lockedBuffer
	go func() { _, _ = copyUntilEOF(&scr, ptmx) }()
	at := 0
	script(func(s string) {
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}, func(re string) {
		at = scr.waitFor(t, at, re)
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tfsh exited with %v; screen:\n%s", err, scr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tfsh did not exit; screen:\n%s", scr.String())
	}
	return scr.String()
}

// checkNoSecrets looks for every secret in every spelling in the bytes of
// the audit log's files and the history file, and in what the log gives
// back (events and decompressed output), and requires that the log does
// hold redaction markers (so that redaction, not luck, kept them out).
func checkNoSecrets(t *testing.T, h *harness, secrets []string, secretFor map[string]string, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	db, err := audit.Open(ctx, h.db)
	if err != nil {
		t.Fatal(err)
	}
	var readBack bytes.Buffer
	commands := map[string]bool{}
	if err := db.Events(ctx, audit.EventFilter{}, func(e audit.Event) error {
		readBack.Write(e.Data)
		readBack.WriteByte('\n')
		if e.CommandID != "" {
			commands[e.CommandID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var output bytes.Buffer
	for id := range commands {
		if err := db.Frames(ctx, id, func(f audit.Frame) error { output.Write(f.Data); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	readBack.Write(output.Bytes())
	if n := bytes.Count(output.Bytes(), []byte(audit.Redacted)); n < 10 {
		t.Errorf("recorded output holds %d redaction markers, want at least 10", n)
	}
	if len(commands) < 20 {
		t.Errorf("the log holds %d commands, want at least 20", len(commands))
	}
	h.verify()

	files["read back from the log"] = readBack.Bytes()
	for _, p := range []string{h.db, h.db + "-wal", h.db + "-shm", filepath.Join(h.stateHome(), "tfsh", "history")} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	if _, ok := files["history"]; !ok {
		t.Errorf("no history file was written")
	}
	total := 0
	for name, b := range files {
		total += len(b)
		for _, s := range secrets {
			js, _ := json.Marshal(s)
			forms := []string{s, string(js[1 : len(js)-1]), hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))}
			for i, form := range forms {
				if slices.Contains(forms[:i], form) {
					continue
				}
				if n := bytes.Count(b, []byte(form)); n > 0 {
					t.Errorf("%s (%s) occurs %d times in %s as %q", s, secretFor[s], n, name, form)
				}
			}
		}
	}
	t.Logf("%d secrets, %d commands, %d bytes searched in %d files", len(secrets), len(commands), total, len(files))
}
