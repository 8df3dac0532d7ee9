package llm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// ErrorKind classifies a failed call.
type ErrorKind string

const (
	FailAuth        ErrorKind = "auth"         // 401, 403: the key is wrong or lacks access
	FailNotFound    ErrorKind = "not_found"    // 404: wrong model, deployment or base URL
	FailBadRequest  ErrorKind = "bad_request"  // 400, 422 and other 4xx: this request is wrong
	FailQuota       ErrorKind = "quota"        // 429 insufficient_quota: the account is out of credit
	FailRateLimited ErrorKind = "rate_limited" // 429, retried until MaxRetries
	FailServer      ErrorKind = "server"       // 408, 409, 425, 5xx, retried
	FailTimeout     ErrorKind = "timeout"      // the attempt ran past Timeout, retried
	FailNetwork     ErrorKind = "network"      // connection refused/reset, EOF, retried
	FailMalformed   ErrorKind = "malformed"    // a 2xx whose body is not a completion, retried
	FailConfig      ErrorKind = "config"       // TLS, DNS, or a request go-openai refuses
)

// Error is a failed call, with one message that names the endpoint and
// the status and says what to check:
//
//	endpoint judge (gpt-4o-mini at https://api.openai.com/v1): 401 unauthorized: Incorrect API key provided: [redacted]: check $OPENAI_API_KEY
//
// Server messages are cut to 300 bytes and scrubbed of the API key and of
// any run of 8 or more of its characters.
type Error struct {
	Endpoint  string        // Endpoint.String()
	Kind      ErrorKind     //
	Status    int           // HTTP status, 0 when no response came
	Code      string        // the API's error code or type, e.g. invalid_api_key
	Message   string        // the server's message or the transport error, scrubbed
	Hint      string        // what to check
	Attempts  int           // HTTP attempts made
	Retryable bool          // whether the kind is retried (and retries ran out)
	err       error         // the transport error, if any (never a body)
	after     time.Duration // Retry-After asked by the server, -1 if none
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Endpoint)
	b.WriteString(": ")
	switch {
	case e.Status > 0:
		fmt.Fprintf(&b, "%d %s", e.Status, strings.ToLower(http.StatusText(e.Status)))
		if e.Status == 200 {
			b.WriteString(" with a malformed body")
		}
	case e.Kind == FailTimeout:
		b.WriteString("timeout")
	default:
		b.WriteString(string(e.Kind) + " error")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (gave up after %d attempts)", e.Attempts)
	}
	if e.Message != "" {
		m := e.Message
		if e.Hint != "" {
			m = strings.TrimRight(m, ". ")
		}
		b.WriteString(": " + m)
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	return b.String()
}

// Unwrap returns the transport error (never a response body).
func (e *Error) Unwrap() error { return e.err }

// Fatal reports whether every further call to the endpoint will fail
// the same way (bad key, unknown model, no quota, bad TLS/DNS), so a stage
// should stop rather than go on sample by sample.
func (e *Error) Fatal() bool {
	switch e.Kind {
	case FailAuth, FailNotFound, FailQuota, FailConfig:
		return true
	}
	return false
}

// ErrBudgetExhausted is matched (errors.Is) by the error Chat returns once
// the endpoint's token or cost budget is spent; the stage should stop.
var ErrBudgetExhausted = errors.New("budget exhausted")

// BudgetError says which budget ran out and what was spent.
type BudgetError struct {
	Endpoint string
	Tokens   int64   // tokens spent: what the calls made used, as the server reported it
	Cost     float64 // cost spent
	// ReservedTokens and ReservedCost are held by calls still in flight
	// (their prompt and max_tokens); not spent, and not in Tokens or Cost.
	ReservedTokens int64
	ReservedCost   float64
	Budget         Budget
}

func (e *BudgetError) Error() string {
	var lim []string
	if e.Budget.MaxTokens > 0 {
		lim = append(lim, fmt.Sprintf("spent %d of max %d tokens", e.Tokens, e.Budget.MaxTokens))
	}
	if e.Budget.MaxCost > 0 {
		lim = append(lim, fmt.Sprintf("cost %.4f of max %.4f spent", e.Cost, e.Budget.MaxCost))
	}
	msg := fmt.Sprintf("%s: budget exhausted (%s", e.Endpoint, strings.Join(lim, ", "))
	if e.ReservedTokens > 0 {
		msg += fmt.Sprintf("; %d tokens reserved by calls in flight", e.ReservedTokens)
	}
	return msg + ")"
}

// Is makes errors.Is(err, ErrBudgetExhausted) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExhausted }

// redactor removes an API key, and any run of minRun or more of its
// consecutive characters, from text.
type redactor struct {
	key  string
	frag map[string]bool
}

const minRun = 8

func newRedactor(key string) *redactor {
	r := &redactor{key: key, frag: map[string]bool{}}
	if len(key) >= minRun {
		for i := 0; i+minRun <= len(key); i++ {
			r.frag[key[i:i+minRun]] = true
		}
	}
	return r
}

func (r *redactor) scrub(s string) string {
	if r == nil || r.key == "" {
		return s
	}
	s = strings.ReplaceAll(s, r.key, "[redacted]")
	if len(r.frag) == 0 || len(s) < minRun {
		return s
	}
	hit := make([]bool, len(s))
	found := false
	for i := 0; i+minRun <= len(s); i++ {
		if r.frag[s[i:i+minRun]] {
			for j := i; j < i+minRun; j++ {
				hit[j] = true
			}
			found = true
		}
	}
	if !found {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if hit[i] {
			for i < len(s) && hit[i] {
				i++
			}
			b.WriteString("[redacted]")
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// GoString and String keep a redactor (which holds the key) out of fmt
// output.
func (r *redactor) String() string   { return "[redacted]" }
func (r *redactor) GoString() string { return "[redacted]" }

const maxMessage = 300

func cut(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s
}

// classify turns a failed attempt into an *Error; st is what wireDoer saw
// of the response and attemptCtx the per-attempt context with the timeout.
// The end of the caller's context is handled by the caller, not here.
func (c *Client) classify(err error, st *wireState, attemptCtx context.Context) *Error {
	e := &Error{Endpoint: c.desc, Status: st.status}
	if st.status == 0 || st.status < 300 {
		e.Status = 0
	}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		e.Message = apiErr.Message
		e.Code = apiErr.Type
		if code, ok := apiErr.Code.(string); ok && code != "" {
			e.Code = code
		}
		if e.Status == 0 {
			e.Status = apiErr.HTTPStatusCode
		}
	case errors.As(err, &reqErr):
		if e.Status == 0 {
			e.Status = reqErr.HTTPStatusCode
		}
		e.Message = string(reqErr.Body)
		if reqErr.Err != nil && len(reqErr.Body) == 0 {
			e.Message = reqErr.Err.Error()
		}
	}
	e.Message = c.secret.scrub(cut(e.Message))

	if e.Status >= 300 {
		switch s := e.Status; {
		case s == 401 || s == 403:
			e.Kind = FailAuth
			if env := c.ep.keyEnv(); env != "" {
				e.Hint = "check $" + env
			} else {
				e.Hint = "the server wants an API key: set api_key_env"
			}
		case s == 404:
			e.Kind = FailNotFound
			if c.ep.kind() == KindAzure {
				e.Hint = fmt.Sprintf("check deployment %q, api_version %q and base_url", c.ep.Deployment, c.ep.APIVersion)
			} else {
				e.Hint = fmt.Sprintf("check model %q and base_url (the API root, usually ending in /v1)", c.ep.model())
			}
		case s == 429 && (e.Code == "insufficient_quota" || strings.Contains(e.Message, "exceeded your current quota")):
			e.Kind = FailQuota
			e.Hint = "the account is out of quota: check its plan and billing"
		case s == 429:
			e.Kind, e.Retryable = FailRateLimited, true
			e.Hint = "lower requests_per_minute, tokens_per_minute or max_concurrency"
		case s == 408 || s == 409 || s == 425 || s >= 500:
			e.Kind, e.Retryable = FailServer, true
		default:
			e.Kind = FailBadRequest
		}
		return e
	}

	if attemptCtx.Err() == context.DeadlineExceeded {
		e.Kind, e.Retryable = FailTimeout, true
		e.Message = fmt.Sprintf("no answer within %s", c.timeout)
		e.Hint = "raise timeout if the model is slow"
		return e
	}
	if st.status >= 200 && st.status < 300 {
		e.Kind, e.Retryable, e.Status = FailMalformed, true, st.status
		e.Message = c.secret.scrub(cut(err.Error()))
		return e
	}
	e.err = err
	e.Message = c.secret.scrub(cut(transportMessage(err)))
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		e.Kind, e.Hint = FailConfig, "check base_url: the host is unknown"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		e.Kind, e.Hint = FailConfig, "check base_url: TLS certificate rejected"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Kind, e.Retryable, e.Hint = FailNetwork, true, "is the server running at base_url?"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		e.Kind, e.Retryable = FailNetwork, true
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Kind, e.Retryable = FailTimeout, true
	case errors.As(err, &urlErr):
		e.Kind, e.Retryable = FailNetwork, true
	default:
		// go-openai refusing the request before sending it (an unsupported
		// parameter for a reasoning model, say).
		e.Kind = FailConfig
	}
	return e
}

// transportMessage drops the "Post \"URL\": " prefix of url.Error: the
// endpoint string already names the URL.
func transportMessage(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		return urlErr.Err.Error()
	}
	return err.Error()
}

// retryAfter reads how long the server asks to wait: retry-after-ms
// (OpenAI, Azure), then Retry-After in seconds or as an HTTP date. ok is
// false when neither is present or parseable.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
