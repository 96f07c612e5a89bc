package hooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver records the requests of a test server and answers each with the
// next of its handlers (the last one repeats).
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	reqs     []received
	handlers []func(w http.ResponseWriter, r *http.Request)
}

type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, handlers ...func(w http.ResponseWriter, r *http.Request)) (*receiver, *httptest.Server) {
	rc := &receiver{t: t, handlers: handlers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{at: time.Now(), header: r.Header.Clone(), body: body})
		h := rc.handlers[min(len(rc.reqs), len(rc.handlers))-1]
		rc.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code)+" from the receiver")
	}
}

// echoSecret is a receiver that repeats the secret in its answer.
func echoSecret(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "bad key\ns3cr3t\n")
}

// hang answers only when the client gives up (or after 30s).
func hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}

func webhookRunner(url string, w Webhook) *Runner {
	w.URL = url
	return &Runner{
		Config: &Config{Hooks: []Hook{{Name: "notify", Source: "hooks.hcl:7", On: []string{"lock_orphaned", "before_command"}, OnFailure: "refuse", Webhook: &w}}},
		Getenv: func(k string) string {
			if k == "TFSH_HOOK_SECRET" {
				return "s3cr3t"
			}
			return ""
		},
		retryBase: 10 * time.Millisecond,
	}
}

func TestWebhookDelivery(t *testing.T) {
	rc, srv := newReceiver(t, status(204))
	r := webhookRunner(srv.URL+"/tfsh", Webhook{SecretEnv: "TFSH_HOOK_SECRET", Timeout: 5 * time.Second, Retries: 3,
		Headers: map[string]string{"X-Team": "infra"}})
	results := r.Run(context.Background(), Event{Name: "lock_orphaned", Command: "apply", At: at, Payload: map[string]string{"lock_id": "abc"}})
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	res := results[0]
	if res.Status != "ok" || res.HTTPStatus != 204 || res.Attempts != 1 || res.Error != "" || res.Kind != "webhook" || res.Source != "hooks.hcl:7" {
		t.Errorf("Result = %+v", res)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	req := reqs[0]
	wantBody := `{"event":"lock_orphaned","at":"2025-03-04T05:06:07.000000089Z","hook":"notify","command":"apply","data":{"lock_id":"abc"}}`
	if string(req.body) != wantBody {
		t.Errorf("body = %s, want %s", req.body, wantBody)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "X-Tfsh-Event": "lock_orphaned", "X-Team": "infra", "User-Agent": "tfsh-hooks"} {
		if got := req.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := req.header.Get("X-Tfsh-Delivery"); len(id) != 36 {
		t.Errorf("X-Tfsh-Delivery = %q, want a UUID", id)
	}
	// What a receiver does: recompute the HMAC of the exact body.
	m := hmac.New(sha256.New, []byte("s3cr3t"))
	m.Write(req.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := req.header.Get("X-Tfsh-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("X-Tfsh-Signature-256 = %q, want %q", got, want)
	}

	// Without secret_env, deliveries are not signed.
	rc, srv = newReceiver(t, status(200))
	r = webhookRunner(srv.URL, Webhook{Timeout: 5 * time.Second})
	if res := r.Run(context.Background(), Event{Name: "lock_orphaned", At: at})[0]; res.Status != "ok" {
		t.Errorf("unsigned delivery: %+v", res)
	}
	if sig := rc.requests()[0].header.Values("X-Tfsh-Signature-256"); len(sig) != 0 {
		t.Errorf("unsigned delivery has a signature: %q", sig)
	}
}

func TestWebhookOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		handlers []func(http.ResponseWriter, *http.Request)
		retries  int
		timeout  time.Duration
		status   string
		code     int
		attempts int
		errorHas string
		refuses  bool
	}{
		{name: "retries on 500 then succeeds", handlers: hs(status(500), status(502), status(200)), retries: 3,
			status: "ok", code: 200, attempts: 3},
		{name: "retries on 429", handlers: hs(status(429), status(200)), retries: 3,
			status: "ok", code: 200, attempts: 2},
		{name: "gives up after the retries", handlers: hs(status(503)), retries: 2,
			status: "failed", code: 503, attempts: 3, errorHas: "HTTP 503 Service Unavailable: Service Unavailable from the receiver (after 3 attempts)", refuses: true},
		{name: "no retry on 400", handlers: hs(status(400), status(200)), retries: 3,
			status: "failed", code: 400, attempts: 1, errorHas: "HTTP 400 Bad Request: Bad Request from the receiver", refuses: true},
		{name: "no retry on 404", handlers: hs(status(404), status(200)), retries: 3,
			status: "failed", code: 404, attempts: 1, errorHas: "HTTP 404", refuses: true},
		{name: "Retry-After beyond the timeout", handlers: hs(status(503, "Retry-After", "30"), status(200)), retries: 3, timeout: 2 * time.Second,
			status: "failed", code: 503, attempts: 1, errorHas: "next attempt due in 30s, after the 2s timeout", refuses: true},
		{name: "the secret is never in Error", handlers: hs(echoSecret), retries: 3,
			status: "failed", code: 400, attempts: 1, errorHas: "HTTP 400 Bad Request: bad key [secret]", refuses: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, srv := newReceiver(t, tt.handlers...)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			r := webhookRunner(srv.URL, Webhook{SecretEnv: "TFSH_HOOK_SECRET", Timeout: timeout, Retries: tt.retries})
			res := r.Run(context.Background(), Event{Name: "before_command", Command: "apply", At: at})[0]
			if res.Status != tt.status || res.HTTPStatus != tt.code || res.Attempts != tt.attempts || res.Refuses != tt.refuses {
				t.Errorf("Status=%q HTTPStatus=%d Attempts=%d Refuses=%v, want %q %d %d %v (Error %q)",
					res.Status, res.HTTPStatus, res.Attempts, res.Refuses, tt.status, tt.code, tt.attempts, tt.refuses, res.Error)
			}
			if !strings.Contains(res.Error, tt.errorHas) || (res.Status == "ok") != (res.Error == "") {
				t.Errorf("Error = %q, want it to hold %q", res.Error, tt.errorHas)
			}
			if strings.Contains(res.Error, "s3cr3t") {
				t.Errorf("Error holds the secret: %q", res.Error)
			}
			reqs := rc.requests()
			if len(reqs) != tt.attempts {
				t.Fatalf("%d requests, want %d", len(reqs), tt.attempts)
			}
			for _, req := range reqs[1:] {
				if got, want := req.header.Get("X-Tfsh-Delivery"), reqs[0].header.Get("X-Tfsh-Delivery"); got != want {
					t.Errorf("X-Tfsh-Delivery of a retry = %q, want %q as on the first attempt", got, want)
				}
				if string(req.body) != string(reqs[0].body) {
					t.Errorf("retry body = %s, want %s", req.body, reqs[0].body)
				}
			}
		})
	}
}

func hs(h ...func(http.ResponseWriter, *http.Request)) []func(http.ResponseWriter, *http.Request) {
	return h
}

func TestWebhookRetryAfter(t *testing.T) {
	rc, srv := newReceiver(t, status(503, "Retry-After", "1"), status(200))
	r := webhookRunner(srv.URL, Webhook{Timeout: 10 * time.Second, Retries: 1})
	res := r.Run(context.Background(), Event{Name: "lock_orphaned", At: at})[0]
	if res.Status != "ok" || res.Attempts != 2 {
		t.Fatalf("Status=%q Attempts=%d Error=%q, want ok after 2", res.Status, res.Attempts, res.Error)
	}
	reqs := rc.requests()
	// The backoff of this Runner is 10ms: only Retry-After explains a gap
	// of about a second.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Errorf("second attempt %s after the first, want Retry-After's 1s", gap)
	}
}

func TestWebhookHardTimeout(t *testing.T) {
	tests := []struct {
		name     string
		handlers []func(http.ResponseWriter, *http.Request)
	}{
		{name: "hanging receiver", handlers: hs(hang)},
		{name: "failing then hanging", handlers: hs(status(500), hang)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newReceiver(t, tt.handlers...)
			r := webhookRunner(srv.URL, Webhook{Timeout: 300 * time.Millisecond, Retries: 3})
			start := time.Now()
			res := r.Run(context.Background(), Event{Name: "lock_orphaned", At: at})[0]
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Run took %s with a 300ms timeout", elapsed)
			}
			if res.Status != "timeout" || !strings.Contains(res.Error, "300ms") {
				t.Errorf("Status=%q Error=%q, want timeout", res.Status, res.Error)
			}
		})
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	target, targetSrv := newReceiver(t, status(200))
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, targetSrv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	// Even a client that follows redirects does not, for hooks.
	for _, client := range []*http.Client{nil, {}} {
		r := webhookRunner(srv.URL, Webhook{Timeout: 5 * time.Second, Retries: 3})
		r.Client = client
		res := r.Run(context.Background(), Event{Name: "lock_orphaned", At: at})[0]
		if res.Status != "failed" || res.HTTPStatus != 307 || res.Attempts != 1 || !strings.Contains(res.Error, "redirects are not followed") {
			t.Errorf("Status=%q HTTPStatus=%d Attempts=%d Error=%q, want failed 307 1", res.Status, res.HTTPStatus, res.Attempts, res.Error)
		}
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestWebhookSecretMissing(t *testing.T) {
	rc, srv := newReceiver(t, status(200))
	r := webhookRunner(srv.URL, Webhook{SecretEnv: "TFSH_OTHER_SECRET", Timeout: 5 * time.Second})
	res := r.Run(context.Background(), Event{Name: "before_command", At: at})[0]
	if res.Status != "error" || res.Attempts != 0 || !res.Refuses || !strings.Contains(res.Error, "TFSH_OTHER_SECRET is empty or unset") {
		t.Errorf("Status=%q Attempts=%d Refuses=%v Error=%q, want error 0 true", res.Status, res.Attempts, res.Refuses, res.Error)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests sent without the secret", n)
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	_, srv := newReceiver(t, status(200))
	url := srv.URL + "/path-token-xyz"
	srv.Close()
	r := webhookRunner(url, Webhook{Timeout: 5 * time.Second, Retries: 2})
	res := r.Run(context.Background(), Event{Name: "lock_orphaned", At: at})[0]
	if res.Status != "error" || res.Attempts != 3 || res.HTTPStatus != 0 || !strings.Contains(res.Error, "connection refused") {
		t.Errorf("Status=%q Attempts=%d HTTPStatus=%d Error=%q, want error after 3 attempts", res.Status, res.Attempts, res.HTTPStatus, res.Error)
	}
	if strings.Contains(res.Error, "path-token-xyz") {
		t.Errorf("Error holds the URL's path: %q", res.Error)
	}
}

func TestWebhookFromParsedFile(t *testing.T) {
	// The loopback test server is acceptable over http; the same file with
	// a public host is not, unless insecure.
	_, srv := newReceiver(t, status(200))
	cfg, diags := Parse([]byte(`hook "n" {
  on = ["lock_orphaned"]
  webhook {
    url     = "`+srv.URL+`"
    retries = 0
  }
}`), "hooks.hcl")
	if diags.HasErrors() {
		t.Fatal(diagLines(diags))
	}
	r := &Runner{Config: cfg}
	if res := r.Run(context.Background(), Event{Name: "lock_orphaned"}); len(res) != 1 || res[0].Status != "ok" {
		t.Errorf("results = %+v", res)
	}

	for _, tt := range []struct {
		url, insecure string
		ok            bool
	}{
		{"http://example.test/x", "", false},
		{"http://example.test/x", "insecure = true", true},
		{"http://127.0.0.2:8080/x", "", true},
		{"http://[::1]/x", "", true},
		{"http://localhost/x", "", true},
		{"http://localhost.example.test/x", "", false},
		{"http://[::ffff:10.0.0.1]/x", "", false},
		{"https://example.test/x", "", true},
	} {
		_, diags := Parse([]byte(`hook "n" {
  on = ["lock_orphaned"]
  webhook {
    url = "`+tt.url+`"
    `+tt.insecure+`
  }
}`), "hooks.hcl")
		if ok := !diags.HasErrors(); ok != tt.ok {
			t.Errorf("%s %s: accepted=%v, want %v (%v)", tt.url, tt.insecure, ok, tt.ok, diagLines(diags))
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Wed, 01 Jan 2025 00:00:05 GMT", 5 * time.Second, true},
		{"Tue, 31 Dec 2024 23:00:00 GMT", 0, true},
		{"99999999999", MaxTimeout, true},
	} {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v, want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSign(t *testing.T) {
	// The example of GitHub's webhook documentation, whose scheme this is.
	got := Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	if want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}
