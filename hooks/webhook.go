package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderEvent     = "X-Tfsh-Event"
	HeaderDelivery  = "X-Tfsh-Delivery"
	HeaderSignature = "X-Tfsh-Signature-256"
)

// Sign returns the X-Tfsh-Signature-256 value of a body: "sha256=" and the
// hex HMAC-SHA256 of the exact bytes with the secret, as GitHub signs its
// webhooks. Receivers compare it with hmac.Equal.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (r *Runner) runWebhook(ctx context.Context, h *Hook, ev Event, body []byte, res *Result) {
	w := h.Webhook
	var secret string
	if w.SecretEnv != "" {
		getenv := r.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		secret = getenv(w.SecretEnv)
		if secret == "" {
			res.fail(StatusError, "secret_env %s is empty or unset: nothing sent (deliveries are never sent unsigned when a secret is configured)", w.SecretEnv)
			return
		}
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	header := http.Header{}
	for k, v := range w.Headers {
		header.Set(k, v)
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", "tfsh-hooks")
	}
	header.Set("Content-Type", "application/json")
	header.Set(HeaderEvent, ev.Name)
	header.Set(HeaderDelivery, newDeliveryID())
	if secret != "" {
		header.Set(HeaderSignature, Sign([]byte(secret), body))
	}
	redact := func(s string) string {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[secret]")
		}
		return s
	}

	client := r.httpClient()
	backoff := r.retryBase
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	for {
		req, err := http.NewRequestWithContext(dctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			res.fail(StatusError, "request: %v", unwrapURL(err))
			return
		}
		req.Header = header.Clone()
		res.Attempts++
		resp, err := client.Do(req)

		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			res.HTTPStatus = 0
			res.fail(StatusError, "interrupted after %d attempt(s): %v", res.Attempts, context.Cause(ctx))
			return
		case err != nil && dctx.Err() != nil:
			res.HTTPStatus = 0
			res.fail(StatusTimeout, "no answer within %s (%d attempt(s))", timeout, res.Attempts)
			return
		case err != nil:
			res.HTTPStatus = 0
			res.fail(StatusError, "post: %v", redact(unwrapURL(err).Error()))
			wait = backoff
		default:
			res.HTTPStatus = resp.StatusCode
			excerpt := readExcerpt(resp.Body)
			retryAfter, hasRetryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			switch {
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				res.Status, res.Error = StatusOK, ""
				return
			case resp.StatusCode >= 300 && resp.StatusCode < 400:
				res.fail(StatusFailed, "HTTP %s: redirects are not followed", resp.Status)
				return
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				res.fail(StatusFailed, "HTTP %s%s", resp.Status, redact(excerpt))
				return
			}
			res.fail(StatusFailed, "HTTP %s%s", resp.Status, redact(excerpt))
			wait = backoff
			if hasRetryAfter {
				wait = retryAfter
			}
		}

		if res.Attempts > w.Retries {
			if res.Attempts > 1 {
				res.Error = oneLine(fmt.Sprintf("%s (after %d attempts)", res.Error, res.Attempts))
			}
			return
		}
		if deadline, _ := dctx.Deadline(); time.Until(deadline) <= wait {
			// Waiting would run into the hard timeout: give up now with the
			// last answer rather than sleep towards a certain timeout.
			res.Error = oneLine(fmt.Sprintf("%s (next attempt due in %s, after the %s timeout)", res.Error, wait.Round(time.Millisecond), timeout))
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-dctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				res.fail(StatusError, "interrupted after %d attempt(s): %v", res.Attempts, context.Cause(ctx))
			} else {
				res.fail(StatusTimeout, "no success within %s (%d attempt(s))", timeout, res.Attempts)
			}
			return
		case <-t.C:
		}
		backoff *= 2
	}
}

// httpClient returns the Runner's client with redirects turned off, or a
// default one (proxy from the environment) made once per Runner so that
// retries reuse connections.
func (r *Runner) httpClient() *http.Client {
	r.clientOnce.Do(func() {
		var c http.Client
		if r.Client != nil {
			c = *r.Client
		} else {
			c.Transport = http.DefaultTransport.(*http.Transport).Clone()
		}
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r.client = &c
	})
	return r.client
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(MaxTimeout/time.Second) {
			n = int64(MaxTimeout / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// readExcerpt drains a response body (up to 64 KiB, so the connection can
// be reused) and returns its start as ": text" for an error message.
func readExcerpt(body io.ReadCloser) string {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return ": " + s
}

// unwrapURL drops the "Post \"url\":" prefix of a client error: the URL
// of a webhook often carries a token in its path, and results are logged.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newDeliveryID returns a random UUID (version 4).
func newDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
