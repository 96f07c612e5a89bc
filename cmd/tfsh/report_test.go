package main

import (
	"context"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/internal/lab/labtest"
)

// hostile is recorded text that must stay text in the report.
const hostile = `<script>alert("x")</script><img src=http://evil.example/x.png> & "quoted" 'single'`

// hostileLog writes a small log with the real audit API and an injected
// clock: an apply that holds the lock, a plan that fails on it, a killed
// apply whose lock is force-unlocked, with a user name, a command and a
// reason an attacker chose.
func hostileLog(t *testing.T) (string, time.Time) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	now := t0
	db.Now = func() time.Time { return now }
	at := func(d time.Duration) time.Time { now = t0.Add(d); return now }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	info := func(user string) audit.SessionInfo {
		return audit.SessionInfo{Mode: "command", User: user, Host: "box", PID: os.Getpid(), PIDNS: audit.PIDNamespace(), CWD: "/w", TfshVersion: "test"}
	}
	lockData := func(id, op, who string, created time.Time) map[string]any {
		return map[string]any{"source": "backend", "info": map[string]any{"ID": id, "Operation": "OperationType" + op, "Who": who, "Created": created}}
	}
	const state = "bucket/<b>key</b>"
	at(0)
	s, _, err := db.StartSession(ctx, info(hostile), nil)
	must(err)
	c, err := s.StartCommand(ctx, audit.CommandInfo{Line: "apply " + hostile, Typed: []string{"apply"}, Subcommand: "apply", StateKey: state}, audit.Decision{Action: "allow"})
	must(err)
	must(c.AppendAt(ctx, at(time.Second), "lock_acquired", "L-1", lockData("L-1", "Apply", hostile, t0.Add(time.Second))))
	p, _, err := db.StartSession(ctx, info("carol"), nil)
	must(err)
	pc, err := p.StartCommand(ctx, audit.CommandInfo{Line: "plan", Typed: []string{"plan"}, Subcommand: "plan", StateKey: state}, audit.Decision{Action: "allow"})
	must(err)
	must(pc.AppendAt(ctx, at(5*time.Second), "lock_contention", "L-1", lockData("L-1", "Apply", hostile, t0.Add(time.Second))))
	at(5 * time.Second)
	must(pc.End(ctx, audit.CommandEnd{Status: "failed", ExitCode: 1}))
	must(p.End(ctx, audit.SessionEnd{Status: "failed", ExitCode: 1}))
	must(c.AppendAt(ctx, at(20*time.Second), "lock_released", "L-1", nil))
	must(c.End(ctx, audit.CommandEnd{Status: "ok"}))

	k, err := s.StartCommand(ctx, audit.CommandInfo{Line: "apply", Typed: []string{"apply"}, Subcommand: "apply", StateKey: state}, audit.Decision{Action: "allow"})
	must(err)
	must(k.AppendAt(ctx, at(30*time.Second), "lock_acquired", "L-2", lockData("L-2", "Apply", "alice@box", t0.Add(30*time.Second))))
	must(k.AppendAt(ctx, at(40*time.Second), "lock_orphaned", "L-2", lockData("L-2", "Apply", "alice@box", t0.Add(30*time.Second))))
	must(k.End(ctx, audit.CommandEnd{Status: "killed", ExitCode: -1, Signal: "killed"}))
	fu, err := s.StartCommand(ctx, audit.CommandInfo{Line: "force-unlock -force L-2", Typed: []string{"force-unlock"}, Subcommand: "force-unlock", StateKey: state}, audit.Decision{Action: "allow"})
	must(err)
	d := lockData("L-2", "Apply", "alice@box", t0.Add(30*time.Second))
	d["reason"], d["who"], d["method"] = hostile, "erin@box", "conditional delete"
	must(fu.AppendAt(ctx, at(50*time.Second), "force_unlock", "L-2", d))
	must(fu.End(ctx, audit.CommandEnd{Status: "ok"}))
	must(s.End(ctx, audit.SessionEnd{Status: "ok"}))
	return path, t0
}

// fixtureHarness runs tfsh on an audit log without terraform.
func fixtureHarness(t *testing.T, db string) *harness {
	return &harness{t: t, dir: t.TempDir(), db: db, env: withoutCI(append(os.Environ(), "TZ=UTC", "TFSH_AUDIT_DB="+db, "NO_COLOR="))}
}

// report runs tfsh report into a new file and returns its text.
func report(t *testing.T, h *harness, args ...string) (path, text string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "report.html")
	r := h.run(nil, append([]string{"report", "--html", path}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tfsh report %q = %d:\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "wrote "+path+": ") {
		t.Fatalf("stdout = %q, want a line saying what was written", r.stdout)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, string(b)
}

var (
	rawText = regexp.MustCompile(`(?is)(<(script|style)\b[^>]*>)(.*?)(</(script|style)>)`)
	tagRE   = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9:-]*)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*"([^"]*)"`)
)

// blankRawText empties script and style elements (their text is not
// markup, and may hold < and &).
func blankRawText(s string) string {
	return rawText.ReplaceAllString(s, "$1$4")
}

// checkSelfContained fails on anything in the page that would make a
// browser fetch or run something from elsewhere.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	markup := blankRawText(page)
	for _, m := range tagRE.FindAllStringSubmatch(markup, -1) {
		name := strings.ToLower(m[1])
		switch name {
		case "link", "img", "iframe", "object", "embed", "image", "audio", "video", "source", "base", "form", "foreignobject":
			t.Errorf("the report has a <%s> element: %s", name, m[0])
		case "script":
			if strings.Contains(m[2], "src") {
				t.Errorf("the report loads a script: %s", m[0])
			}
		}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			attr := strings.ToLower(a[1])
			switch {
			case attr == "src" || attr == "href" || attr == "xlink:href" || attr == "action" || attr == "poster" || attr == "srcset":
				if !strings.HasPrefix(a[2], "#") {
					t.Errorf("the report refers to %q in %s", a[2], m[0])
				}
			case strings.HasPrefix(attr, "on"):
				t.Errorf("the report has an event handler attribute: %s", m[0])
			}
			if strings.Contains(a[2], "url(") && !strings.Contains(a[2], "url(#") {
				t.Errorf("the report refers to a url() in %s", m[0])
			}
		}
	}
	for _, m := range rawText.FindAllStringSubmatch(page, -1) {
		body := m[3]
		if m[2] == "style" && (strings.Contains(body, "@import") || regexp.MustCompile(`url\(\s*['"]?[^#'")]`).MatchString(body)) {
			t.Errorf("the report's style loads something: %s", body)
		}
		if m[2] == "script" && regexp.MustCompile(`\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts|sendBeacon)\b|import\(`).MatchString(body) {
			t.Errorf("the report's script talks to the network")
		}
	}
}

// checkWellFormed parses the page as XML once script and style are
// emptied: the template writes every element closed and every attribute
// quoted, so that a stray < in recorded text would break it.
func checkWellFormed(t *testing.T, page string) {
	t.Helper()
	markup := blankRawText(page)
	dec := xml.NewDecoder(strings.NewReader(markup))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	var depth, elements int
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := strings.Split(markup, "\n")
			n, _ := dec.InputPos()
			ctx := ""
			if n-1 < len(line) {
				ctx = line[n-1]
			}
			t.Fatalf("the report is not well-formed: %v\nline %d: %s", err, n, ctx)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			elements++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 || elements < 10 {
		t.Fatalf("the report parsed to %d elements, depth %d at the end", elements, depth)
	}
}

// TestReportSelfContainedAndEscaped: the report loads nothing from
// elsewhere, parses, and shows recorded text (a user name, a command, a
// reason, a state key holding markup) as text.
func TestReportSelfContainedAndEscaped(t *testing.T) {
	db, t0 := hostileLog(t)
	h := fixtureHarness(t, db)
	_, page := report(t, h, "--since", t0.Add(-time.Hour).Format(time.RFC3339), "--until", t0.Add(time.Hour).Format(time.RFC3339), "--title", "<b>Q4</b> review")
	checkSelfContained(t, page)
	checkWellFormed(t, page)
	if n := strings.Count(strings.ToLower(page), "<script"); n != 1 {
		t.Errorf("%d <script> tags, want only the report's own", n)
	}
	for _, bad := range []string{`<script>alert`, `<img src=http`, `<b>key</b>`, `<b>Q4</b>`} {
		if strings.Contains(page, bad) {
			t.Errorf("recorded text %q reached the page unescaped", bad)
		}
	}
	for _, want := range []string{`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, `&lt;b&gt;key&lt;/b&gt;`, `&lt;b&gt;Q4&lt;/b&gt; review`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks the escaped text %s", want)
		}
	}
	// The story is all there: two holds, the contention, the orphan and
	// the force-unlock with its reason, two chains.
	for kind, n := range map[string]int{`data-kind="hold"`: 2, `data-kind="contention"`: 1, `data-kind="orphaned"`: 1, `data-kind="force-unlock"`: 1} {
		if got := strings.Count(timelineSVG(t, page), kind); got != n {
			t.Errorf("%d %s in the timeline, want %d", got, kind, n)
		}
	}
	if got := strings.Count(page, `data-kind="chain"`); got != 2 {
		t.Errorf("%d chains in the table, want 2", got)
	}
}

// timelineSVG is the main timeline's markup.
func timelineSVG(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `<svg id="timeline"`)
	if i < 0 {
		t.Fatal("no timeline in the report")
	}
	j := strings.Index(page[i:], "</svg>")
	if j < 0 {
		t.Fatal("the timeline does not end")
	}
	return page[i : i+j]
}

func TestReportEmptyRangeAndUsage(t *testing.T) {
	db := loadLog(t, incidentFixture)
	h := fixtureHarness(t, db)
	_, page := report(t, h, "--since", "2026-11-20T00:00:00Z", "--until", "2026-11-21T00:00:00Z")
	checkWellFormed(t, page)
	checkSelfContained(t, page)
	if !strings.Contains(page, "No lock activity in this range") || strings.Contains(page, `<svg id="timeline"`) {
		t.Fatalf("an empty range does not say so:\n%s", page)
	}

	r := h.run(nil, "report", "--html", "-", "--since", "2026-11-26T00:00:00Z", "--until", "2026-11-27T00:00:00Z")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "<!DOCTYPE html>") || !strings.Contains(r.stdout, `<svg id="timeline"`) {
		t.Fatalf("--html - = %d, stdout %.200q, stderr %s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "report needs --html FILE"},
		{[]string{"report", "--html", "x.html", "--since", "2026-11-27", "--until", "2026-11-26"}, "--until must be after --since"},
		{[]string{"report", "--html", "x.html", "extra"}, "report takes no arguments"},
		{[]string{"report", "--html", t.TempDir()}, "is a directory: give a file name"},
	} {
		r := h.run(nil, c.args...)
		if r.code != exitCannotRun || !strings.Contains(r.stderr, c.want) {
			t.Errorf("tfsh %q = %d %q, want exit %d and %q", c.args, r.code, r.stderr, exitCannotRun, c.want)
		}
	}
	if r := h.run(nil, "report", "--help"); r.code != 0 || !strings.Contains(r.stdout, "tfsh report --html FILE") {
		t.Errorf("tfsh report --help = %d %q", r.code, r.stdout)
	}
}

// chromium runs headless Chromium with the flags that work without a
// display, a sandbox or the network, in a profile of its own.
func chromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		// Chromium talks about dbus and the like on stderr; only a failure
		// is worth showing it.
		t.Fatalf("chromium %q: %v (context: %v)\n%s", args, err, ctx.Err(), errb.String())
	}
	return out.String()
}

// domElements are the elements of a serialised DOM whose attributes
// include data-kind=kind, as attribute maps.
func domElements(dom, kind string) []map[string]string {
	var out []map[string]string
	for _, m := range tagRE.FindAllStringSubmatch(dom, -1) {
		attrs := map[string]string{"tag": m[1]}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			attrs[a[1]] = a[2]
		}
		if attrs["data-kind"] == kind {
			out = append(out, attrs)
		}
	}
	return out
}

// artifactDir is where a test keeps what a person should look at after
// the run: $TFSH_ARTIFACTS, else .artifacts at the repository's root.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TFSH_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestReportInChromium loads the report of the recorded incident in
// headless Chromium: the DOM after its script ran has every hold, wait and
// marker of the incident, and the chains; a screenshot is kept.
func TestReportInChromium(t *testing.T) {
	bin := labtest.Chromium(t)
	db := loadLog(t, incidentFixture)
	h := fixtureHarness(t, db)
	path, _ := report(t, h, "--since", "2026-11-26T00:00:00Z", "--until", "2026-11-27T00:00:00Z")
	url := "file://" + path

	dom := chromium(t, bin, "--dump-dom", url)
	if !regexp.MustCompile(`<html[^>]*data-js="ready"`).MatchString(dom) {
		t.Fatalf("the report's script did not finish (no data-js=\"ready\"):\n%.2000s", dom)
	}
	i := strings.Index(dom, `<svg id="timeline"`)
	if i < 0 {
		t.Fatalf("no timeline in the DOM:\n%.2000s", dom)
	}
	timeline := dom[i : i+strings.Index(dom[i:], "</svg>")]

	const first, killed = "c0e11cae-3e14-d386-9039-19987acdbbea", "69f67001-f720-a5a5-2de6-9a5172e63d50"
	holds := map[string]map[string]string{}
	for _, e := range domElements(timeline, "hold") {
		holds[e["data-lock"]] = e
	}
	for lock, op := range map[string]string{
		first:                                  "apply",   // the first apply
		"ce5ffc25-a936-4f5f-ec6a-a44f86749d0d": "plan",    // the CI plan's own lock, after its wait
		killed:                                 "apply",   // the apply killed with its lock
		"ce2c466a-35d2-3004-a225-aff0a6458aba": "refresh", // the verification: plan -refresh-only
		"249b797d-58fd-4316-77ec-a9e4f760a407": "plan",    // and plan
	} {
		if e, ok := holds[lock]; !ok || e["data-op"] != op {
			t.Errorf("hold of %s = %v, want a bar with data-op=%s", lock, e, op)
		}
	}
	if len(holds) < 5 {
		t.Errorf("%d hold bars, want at least 5", len(holds))
	}
	if e := holds[killed]; e["data-ending"] != "force-unlocked" {
		t.Errorf("the killed apply's hold ended %q, want force-unlocked", e["data-ending"])
	}
	if len(domElements(timeline, "orphan-span")) != 1 {
		t.Errorf("no orphaned span after the killed apply")
	}

	// Three waiters on the first lock: two waited (drawn as hatched bars),
	// one gave up at once (drawn as its contention marker).
	var waits []string
	for _, e := range domElements(timeline, "wait") {
		if e["data-lock"] != first || e["tag"] != "rect" {
			t.Errorf("wait %v is not a bar on %s", e, first)
		}
		waits = append(waits, e["data-outcome"])
	}
	if strings.Join(waits, ",") != "acquired,timed out" {
		t.Errorf("wait bars %q, want acquired,timed out", waits)
	}
	var contentions []string
	for _, e := range domElements(timeline, "contention") {
		if e["data-lock"] != first {
			t.Errorf("contention %v not on %s", e, first)
		}
		contentions = append(contentions, e["data-outcome"])
	}
	if strings.Join(contentions, ",") != "failed,timed out" {
		t.Errorf("contention markers %q, want failed,timed out", contentions)
	}
	for _, kind := range []string{"orphaned", "force-unlock"} {
		if ms := domElements(timeline, kind); len(ms) != 1 || ms[0]["data-lock"] != killed {
			t.Errorf("%s markers %v, want one on %s", kind, ms, killed)
		}
	}

	chains := domElements(dom, "chain")
	if len(chains) != 2 || chains[0]["data-lock"] != first || chains[0]["data-waiters"] != "3" || chains[0]["data-ending"] != "released" ||
		chains[1]["data-lock"] != killed || chains[1]["data-ending"] != "force-unlocked" {
		t.Errorf("chains table rows %v, want the first lock (3 waiters, released) and the killed apply's (force-unlocked)", chains)
	}
	if totals := domElements(dom, "state-total"); len(totals) != 1 || totals[0]["data-state"] != "tfsh-lab-1/lab/terraform.tfstate" {
		t.Errorf("state totals %v", totals)
	}

	shot := filepath.Join(artifactDir(t), "report.png")
	os.Remove(shot)
	chromium(t, bin, "--screenshot="+shot, "--window-size=1400,900", "--hide-scrollbars", url)
	checkScreenshot(t, shot, 1400, 900)
	t.Logf("screenshot of the incident's report: %s", shot)
}

// checkScreenshot decodes a PNG and checks its size and that it shows
// something: many colours, none taking the whole picture.
func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	colours := map[[4]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}]++
		}
	}
	most, total := 0, b.Dx()*b.Dy()/4
	for _, n := range colours {
		most = max(most, n)
	}
	if len(colours) < 32 || most > total*97/100 {
		t.Errorf("screenshot looks blank: %d colours, the commonest covers %d of %d pixels", len(colours), most, total)
	}
	// The apply's blue is in it: the timeline was drawn.
	if !hasColour(img, 0x00, 0x72, 0xb2) {
		t.Errorf("screenshot has no apply bar (#0072b2)")
	}
}

func hasColour(img image.Image, r, g, b uint32) bool {
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr>>8 == r && cg>>8 == g && cb>>8 == b {
				return true
			}
		}
	}
	return false
}

// TestAtomicFile: what report and replay --cast write replaces the file
// only when whole; a write given up on leaves the earlier file as it was
// and nothing beside it.
func TestAtomicFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.cast")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := createAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a recording"))
	f.abort()
	if b, err := os.ReadFile(path); err != nil || string(b) != "earlier\n" {
		t.Fatalf("after abort: %q, %v; want the earlier file", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left after abort: %v", ents)
	}
	f, err = createAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("whole\n"))
	if err := f.commit(); err != nil {
		t.Fatal(err)
	}
	f.abort() // after commit: nothing
	fi, err := os.Stat(path)
	if b, _ := os.ReadFile(path); err != nil || string(b) != "whole\n" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after commit: %q, mode %v, %v; want the new content, 0600", b, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left after commit: %v", ents)
	}
	if _, err := createAtomic(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("createAtomic(dir) = %v", err)
	}
}
