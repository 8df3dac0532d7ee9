package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub used when neither Options.Endpoint nor
// $HF_ENDPOINT is set.
const DefaultEndpoint = "https://huggingface.co"

// Options configure a Client. The zero value reads the environment.
type Options struct {
	// Endpoint is the Hub's base URL; default $HF_ENDPOINT, else
	// DefaultEndpoint.
	Endpoint string
	// Token is a Hugging Face access token; default $HF_TOKEN. It is sent
	// to the endpoint's host only and never logged or put in errors.
	Token string
	// CacheDir holds downloaded files; default $HF_HOME/sieve, else
	// ~/.cache/sieve/hub (the user cache directory).
	CacheDir string
	// HTTPClient makes the requests; default a client with response-header
	// timeouts. The Client follows redirects itself (its CheckRedirect is
	// replaced on a copy).
	HTTPClient *http.Client
	// MaxRetries is how many times a request is retried after a 429, a 5xx
	// or a connection error; 0 means 5, a negative number means none.
	// Download attempts that make progress do not count.
	MaxRetries int
	// Backoff is the first retry delay, doubled per retry (with jitter),
	// up to 30s; 0 means 500ms. Retry-After is honoured instead when
	// given.
	Backoff time.Duration
	// Logger receives retries and downloads; default none.
	Logger *slog.Logger
}

// Client talks to one Hub endpoint. It is safe for concurrent use.
type Client struct {
	base       string // endpoint URL without a trailing slash
	host       string // scheme://host[:port] the token may be sent to
	initErr    error
	token      string
	cacheDir   string
	hc         *http.Client
	maxRetries int
	backoff    time.Duration
	log        *slog.Logger

	idleTimeout   time.Duration // a download with no bytes for this long is retried
	maxRetryAfter time.Duration
}

// New returns a Client for opts, filling defaults from the environment.
// A bad endpoint is reported by the Client's methods.
func New(opts Options) *Client {
	c := &Client{
		token:         opts.Token,
		cacheDir:      opts.CacheDir,
		maxRetries:    opts.MaxRetries,
		backoff:       opts.Backoff,
		log:           opts.Logger,
		idleTimeout:   2 * time.Minute,
		maxRetryAfter: 5 * time.Minute,
	}
	ep := opts.Endpoint
	if ep == "" {
		ep = os.Getenv("HF_ENDPOINT")
	}
	if ep == "" {
		ep = DefaultEndpoint
	}
	c.base = strings.TrimRight(ep, "/")
	if u, err := url.Parse(c.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.initErr = fmt.Errorf("hub: bad endpoint %q: want http(s)://host", ep)
	} else {
		c.host = u.Scheme + "://" + u.Host
	}
	if c.token == "" {
		c.token = strings.TrimSpace(os.Getenv("HF_TOKEN"))
	}
	if c.cacheDir == "" {
		c.cacheDir = defaultCacheDir()
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = 5
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.backoff <= 0 {
		c.backoff = 500 * time.Millisecond
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		c.hc = &hc
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 2 * time.Minute
		c.hc = &http.Client{Transport: tr}
	}
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func defaultCacheDir() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return filepath.Join(h, "sieve")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sieve", "hub")
	}
	return filepath.Join(os.TempDir(), "sieve-hub")
}

// Endpoint is the Hub base URL the client talks to.
func (c *Client) Endpoint() string { return c.base }

// CacheDir is the directory fetched files are stored under.
func (c *Client) CacheDir() string { return c.cacheDir }

// ---- errors ----

var (
	// ErrNotFound: the dataset, revision, file, or config/split does not
	// exist (or, for anonymous requests to huggingface.co, may be private).
	ErrNotFound = errors.New("not found")
	// ErrAuth: the dataset is gated or private and no token was given, or
	// the token was refused.
	ErrAuth = errors.New("access denied")
	// ErrNoMatch: a glob matched no file.
	ErrNoMatch = errors.New("no matching files")
	// ErrChecksum: downloaded bytes do not match the listed hash or size.
	ErrChecksum = errors.New("checksum mismatch")
)

// Error is an error about a dataset. errors.Is tells its kind (ErrNotFound,
// ErrAuth, ErrNoMatch, ErrChecksum).
type Error struct {
	Repo       string
	StatusCode int    // HTTP status, if any
	Code       string // the Hub's X-Error-Code, if any
	msg        string
	kinds      []error
}

func (e *Error) Error() string   { return e.msg }
func (e *Error) Unwrap() []error { return e.kinds }

// target describes a request, for error messages.
type target struct {
	what string // "revision", "tree", "file", "parquet"
	repo string
	rev  string
	path string // file or directory; for "parquet", config/split
}

func (c *Client) scrub(s string) string {
	if c.token != "" {
		s = strings.ReplaceAll(s, c.token, "[token]")
	}
	return s
}

func (c *Client) newError(t target, status int, code, msg string, kinds ...error) *Error {
	return &Error{Repo: t.repo, StatusCode: status, Code: code, msg: c.scrub(msg), kinds: kinds}
}

// redact drops the query (signed CDN URLs) and user info from u for
// messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(bad url)"
	}
	p.RawQuery, p.ForceQuery, p.User, p.Fragment = "", false, nil, ""
	return p.String()
}

// serverMessage reads the Hub's explanation of an error response.
func serverMessage(resp *http.Response) string {
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &j) == nil {
			msg = j.Error
		}
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return strings.TrimSpace(msg)
}

// httpError turns an error response into an error. It reads (some of) the
// body but does not close it.
func (c *Client) httpError(resp *http.Response, t target) *Error {
	status, code := resp.StatusCode, resp.Header.Get("X-Error-Code")
	said := serverMessage(resp)
	page := c.base + "/datasets/" + t.repo
	hubSays := ""
	if said != "" {
		hubSays = " (the Hub says: " + said + ")"
	}
	tokenHint := func() string {
		if c.token == "" {
			return fmt.Sprintf("set HF_TOKEN to a Hugging Face access token with read access, and accept the dataset's terms at %s", page)
		}
		return fmt.Sprintf("make sure HF_TOKEN holds a valid token with read access to it, and accept the dataset's terms at %s", page)
	}
	switch {
	case status == http.StatusUnauthorized && (code == "RepoNotFound" || code == "") && said != "Invalid credentials in Authorization header":
		// huggingface.co answers 401 for private and missing repos alike.
		return c.newError(t, status, code, fmt.Sprintf(
			"hub: dataset %s not found, or it is private or gated (HTTP %d): if it exists, %s", t.repo, status, tokenHint()),
			ErrNotFound, ErrAuth)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		var msg string
		if c.token == "" {
			msg = fmt.Sprintf("hub: dataset %s is gated or private and no token was given (HTTP %d): %s", t.repo, status, tokenHint())
		} else {
			msg = fmt.Sprintf("hub: access to dataset %s was refused with the token given (HTTP %d): %s", t.repo, status, tokenHint())
		}
		return c.newError(t, status, code, msg+hubSays, ErrAuth)
	case status == http.StatusNotFound:
		return c.newError(t, status, code, c.notFoundMessage(t, code), ErrNotFound)
	case status == http.StatusTooManyRequests:
		return c.newError(t, status, code, fmt.Sprintf("hub: rate limited by %s (HTTP 429) reading dataset %s%s", c.base, t.repo, hubSays))
	}
	return c.newError(t, status, code, fmt.Sprintf("hub: reading dataset %s: HTTP %d %s%s",
		t.repo, status, http.StatusText(status), hubSays))
}

func (c *Client) notFoundMessage(t target, code string) string {
	switch code {
	case "RepoNotFound":
		return fmt.Sprintf("hub: dataset %s not found", t.repo)
	case "RevisionNotFound":
		return fmt.Sprintf("hub: revision %q of dataset %s not found", t.rev, t.repo)
	case "EntryNotFound":
		return fmt.Sprintf("hub: %q not found in dataset %s at revision %s", t.path, t.repo, t.rev)
	}
	switch t.what {
	case "revision":
		return fmt.Sprintf("hub: dataset %s (or its revision %q) not found", t.repo, t.rev)
	case "file":
		return fmt.Sprintf("hub: dataset %s (or file %q at revision %s) not found", t.repo, t.path, t.rev)
	case "parquet":
		return fmt.Sprintf("hub: dataset %s (or config/split %s in its Parquet listing) not found", t.repo, t.path)
	}
	return fmt.Sprintf("hub: dataset %s (or revision %q, or path %q) not found", t.repo, t.rev, t.path)
}

// ---- requests and retries ----

// transient marks an error worth retrying, after a delay if after > 0.
type transient struct {
	err   error
	after time.Duration
}

func (e *transient) Error() string { return e.err.Error() }
func (e *transient) Unwrap() error { return e.err }

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return code >= 520 && code <= 599 // proxies' and CDNs' own 5xx
}

var rateLimitReset = regexp.MustCompile(`(?:^|;)\s*t=(\d+)`)

// retryAfter is how long the server asked to wait (Retry-After, or the
// Hub's RateLimit header), 0 if it did not say.
func retryAfter(h http.Header) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), 0)
		}
	}
	if m := rateLimitReset.FindStringSubmatch(h.Get("RateLimit")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// statusErr is the error for a non-2xx response, marked transient when it
// is worth retrying.
func (c *Client) statusErr(resp *http.Response, t target) error {
	err := c.httpError(resp, t)
	if retryableStatus(resp.StatusCode) {
		return &transient{err: err, after: retryAfter(resp.Header)}
	}
	return err
}

// transportErr wraps an error from the HTTP client; it is transient unless
// the caller's context ended or TLS verification failed.
func (c *Client) transportErr(ctx context.Context, u string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	e := fmt.Errorf("hub: GET %s: %s", redact(u), c.scrub(err.Error()))
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return e
	}
	return &transient{err: e}
}

// send makes one GET request and follows redirects itself, sending the
// token only to the endpoint's host. It returns the last response (the
// caller closes its body) and the headers of the first one (the Hub's
// X-Repo-Commit, X-Linked-Etag, X-Linked-Size).
func (c *Client) send(ctx context.Context, u string, hdr http.Header) (*http.Response, http.Header, error) {
	var first http.Header
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("hub: bad URL %s: %v", redact(u), err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", "sieve-hub/1")
		if c.token != "" && req.URL.Scheme+"://"+req.URL.Host == c.host {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, nil, c.transportErr(ctx, u, err)
		}
		if first == nil {
			first = resp.Header
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" || resp.StatusCode == http.StatusNotModified {
			return resp, first, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if hops >= 10 {
			return nil, nil, fmt.Errorf("hub: GET %s: too many redirects", redact(u))
		}
		next, err := req.URL.Parse(loc)
		if err != nil {
			return nil, nil, fmt.Errorf("hub: GET %s: bad redirect: %v", redact(u), err)
		}
		u = next.String()
	}
}

// wait sleeps before retry number attempt (0-based), for after if the
// server asked, else for a jittered exponential backoff.
func (c *Client) wait(ctx context.Context, attempt int, after time.Duration, u string, cause error) error {
	d := after
	if d <= 0 {
		b := c.backoff << min(attempt, 16)
		if b > 30*time.Second || b <= 0 {
			b = 30 * time.Second
		}
		d = b/2 + rand.N(b/2+1)
	}
	d = min(d, c.maxRetryAfter)
	c.log.Warn("hub: retrying", "url", redact(u), "attempt", attempt+1, "of", c.maxRetries, "delay", d, "error", cause.Error())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// final unwraps a transient error for the caller.
func final(err error) error {
	var te *transient
	if errors.As(err, &te) {
		return te.err
	}
	return err
}

// getJSON GETs u into v with retries and returns the response headers.
func (c *Client) getJSON(ctx context.Context, u string, t target, v any) (http.Header, error) {
	for attempt := 0; ; attempt++ {
		h, err := c.getJSONOnce(ctx, u, t, v)
		if err == nil {
			return h, nil
		}
		var te *transient
		if !errors.As(err, &te) || attempt >= c.maxRetries {
			return nil, final(err)
		}
		if werr := c.wait(ctx, attempt, te.after, u, te.err); werr != nil {
			return nil, werr
		}
	}
}

func (c *Client) getJSONOnce(ctx context.Context, u string, t target, v any) (http.Header, error) {
	resp, _, err := c.send(ctx, u, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusErr(resp, t)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(v); err != nil {
		e := fmt.Errorf("hub: GET %s: decoding the response: %s", redact(u), c.scrub(err.Error()))
		var se *json.SyntaxError
		var ue *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &ue) {
			return nil, e
		}
		return nil, &transient{err: e} // a cut connection
	}
	return resp.Header, nil
}

// escapePath escapes each segment of a repo path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// nextLink is the rel="next" URL of a Link header, resolved against u.
func nextLink(h http.Header, u string) string {
	for _, v := range h.Values("Link") {
		for _, part := range strings.Split(v, ",") {
			lt, gt := strings.Index(part, "<"), strings.Index(part, ">")
			if lt < 0 || gt < lt {
				continue
			}
			isNext := false
			for _, param := range strings.Split(part[gt+1:], ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(k, "rel") {
					for _, r := range strings.Fields(strings.Trim(val, `"`)) {
						if r == "next" {
							isNext = true
						}
					}
				}
			}
			if !isNext {
				continue
			}
			base, err := url.Parse(u)
			if err != nil {
				return ""
			}
			next, err := base.Parse(strings.TrimSpace(part[lt+1 : gt]))
			if err != nil {
				return ""
			}
			return next.String()
		}
	}
	return ""
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// isCommit reports whether rev is a full commit sha.
func isCommit(rev string) bool { return isHex(rev, 40) }
