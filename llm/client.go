package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Options are the process-side settings of a Client, those a recipe's
// endpoint does not carry. The zero value works: no cache, no logging,
// default backoff.
type Options struct {
	// CacheDir, if set, holds the content-addressed response cache.
	CacheDir string
	// Logger receives one Info line per retry (endpoint, attempt,
	// kind, status, wait, the scrubbed error) and one Warn line per cache
	// write failure; nil discards them. Lines never contain the API key.
	Logger *slog.Logger
	// RetryBaseDelay is the first backoff (default 500ms); each retry
	// doubles it up to RetryMaxDelay (default 30s), and a random half of
	// it is jitter.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxRetryAfter caps how long a Retry-After is honoured (default 5m).
	MaxRetryAfter time.Duration
	// Ledger, if set, makes the endpoint's budget one budget for every
	// process that shares the ledger (see Ledger); nil keeps the budget
	// per client.
	Ledger Ledger

	clock clock // tests
}

// Usage is what a client has done, for the manifest. Tokens and cost
// count what was paid: answers from the cache count in CachedCalls and
// CachedTokens only.
type Usage struct {
	Calls            int64   `json:"calls"`        // calls answered, cached ones included
	CachedCalls      int64   `json:"cached_calls"` // answered from the cache or an identical call in flight
	Requests         int64   `json:"requests"`     // HTTP requests sent, retries included
	Retries          int64   `json:"retries"`
	Failures         int64   `json:"failures"`        // calls that ended in an error other than the budget
	BudgetRefusals   int64   `json:"budget_refusals"` // calls refused because the budget was spent
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CachedTokens     int64   `json:"cached_tokens"` // total tokens of cached answers, not paid again
	Cost             float64 `json:"cost"`
}

// Sub returns u − o (what a client did between two readings).
func (u Usage) Sub(o Usage) Usage {
	o.Calls, o.CachedCalls, o.Requests, o.Retries = -o.Calls, -o.CachedCalls, -o.Requests, -o.Retries
	o.Failures, o.BudgetRefusals, o.PromptTokens, o.CompletionTokens = -o.Failures, -o.BudgetRefusals, -o.PromptTokens, -o.CompletionTokens
	o.TotalTokens, o.CachedTokens, o.Cost = -o.TotalTokens, -o.CachedTokens, -o.Cost
	return u.Add(o)
}

// IsZero reports whether nothing was done.
func (u Usage) IsZero() bool { return u == Usage{} }

// Add sums usages (of several clients or workers).
func (u Usage) Add(o Usage) Usage {
	u.Calls += o.Calls
	u.CachedCalls += o.CachedCalls
	u.Requests += o.Requests
	u.Retries += o.Retries
	u.Failures += o.Failures
	u.BudgetRefusals += o.BudgetRefusals
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.TotalTokens += o.TotalTokens
	u.CachedTokens += o.CachedTokens
	u.Cost += o.Cost
	return u
}

// Client calls one Endpoint. It is safe for concurrent use; its limits,
// budget and usage are shared by every goroutine that uses it (see
// Shared for one client per endpoint per process).
type Client struct {
	ep      Endpoint
	desc    string
	api     *openai.Client
	secret  *redactor
	timeout time.Duration
	retries int
	sem     chan struct{}
	rpm     *limiter
	tpm     *limiter
	cache   *diskCache
	clock   clock
	log     *slog.Logger
	base    time.Duration
	maxWait time.Duration
	maxRA   time.Duration

	mu         sync.Mutex
	usage      Usage
	resTokens  int64         // tokens reserved by calls in flight
	resCost    float64       // cost reserved by calls in flight
	settled    chan struct{} // closed (and replaced) when a call gives its reservation back
	pauseUntil time.Time
	flight     map[string]*flightCall
	ledger     Ledger // nil: the budget is this client's alone
	held       int    // ledger blocks this client claimed
	nextBlock  int    // the next ledger block to try
}

type flightCall struct {
	done chan struct{}
	resp Response
	err  error
}

// New checks the endpoint, reads its API key from the environment and
// returns a client. The error matches ErrMissingKey when the key's
// variable is unset.
func New(ep Endpoint, opts Options) (*Client, error) {
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	var key string
	if ep.APIKeyEnv != "" {
		key = os.Getenv(ep.APIKeyEnv)
		if key == "" {
			return nil, &MissingKeyError{Endpoint: ep}
		}
	}
	c := &Client{
		ep: ep, desc: ep.String(), secret: newRedactor(key),
		timeout: ep.Timeout.D(), retries: DefaultMaxRetries,
		clock: opts.clock, log: opts.Logger,
		base: opts.RetryBaseDelay, maxWait: opts.RetryMaxDelay, maxRA: opts.MaxRetryAfter,
		flight: map[string]*flightCall{}, settled: make(chan struct{}),
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if ep.MaxRetries != nil {
		c.retries = *ep.MaxRetries
	}
	conc := ep.MaxConcurrency
	if conc <= 0 {
		conc = DefaultMaxConcurrency
	}
	c.sem = make(chan struct{}, conc)
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.base <= 0 {
		c.base = 500 * time.Millisecond
	}
	if c.maxWait <= 0 {
		c.maxWait = 30 * time.Second
	}
	if c.maxRA <= 0 {
		c.maxRA = 5 * time.Minute
	}
	c.rpm = newPerMinute(ep.RequestsPerMinute, c.clock)
	c.tpm = newPerMinute(ep.TokensPerMinute, c.clock)
	if opts.CacheDir != "" {
		c.cache = &diskCache{dir: opts.CacheDir}
	}
	if b := ep.Budget; opts.Ledger != nil && (b.MaxTokens > 0 || b.MaxCost > 0) {
		c.ledger = opts.Ledger
	}

	// go-openai's default http.Client has no timeout and its transport
	// keeps 2 idle connections per host; ours keeps one per concurrent
	// request and bounds every attempt (the context does, this is a
	// backstop).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	if tr.MaxIdleConns < conc {
		tr.MaxIdleConns = conc
	}
	hc := &http.Client{Transport: tr, Timeout: c.timeout + 5*time.Second}

	var cfg openai.ClientConfig
	if ep.kind() == KindAzure {
		cfg = openai.DefaultAzureConfig(key, ep.baseURL())
		cfg.APIVersion = ep.APIVersion
		dep := ep.Deployment
		cfg.AzureModelMapperFunc = func(string) string { return dep }
	} else {
		cfg = openai.DefaultConfig(key)
		cfg.BaseURL = ep.baseURL()
	}
	cfg.HTTPClient = wireDoer{hc: hc}
	c.api = openai.NewClientWithConfig(cfg)
	return c, nil
}

// Endpoint returns the endpoint the client calls.
func (c *Client) Endpoint() Endpoint { return c.ep }

// Format prints the client as llm.Client(endpoint …) for every verb, so
// %v, %+v and %#v never print the fields that hold the key.
func (c *Client) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "llm.Client(%s)", c.desc)
}

// MarshalJSON writes the endpoint (which holds no key).
func (c *Client) MarshalJSON() ([]byte, error) { return json.Marshal(c.ep) }

// Key returns the cache key of a request on this client's endpoint.
func (c *Client) Key(req Request) string { return cacheKey(c.ep, req) }

// Usage returns the totals so far.
func (c *Client) Usage() Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usage
}

// Chat sends one request and returns the first choice. A cached answer
// returns at once with Cached set; an identical call already in flight
// is waited for rather than sent twice. Errors are an *Error (HTTP and
// transport failures, after retries), a *BudgetError (matching
// ErrBudgetExhausted), or the context's error.
func (c *Client) Chat(ctx context.Context, req Request) (Response, error) {
	if err := req.validate(); err != nil {
		return Response{}, &Error{Endpoint: c.desc, Kind: FailBadRequest, Message: c.secret.scrub(err.Error())}
	}
	key := cacheKey(c.ep, req)
	for {
		if c.cache != nil {
			if e, ok := c.cache.get(key); ok {
				r := Response{Text: e.Text, FinishReason: e.FinishReason, Usage: e.Usage, Cached: true, Model: e.Model, Key: key}
				c.countCached(r)
				return r, nil
			}
		}
		c.mu.Lock()
		f := c.flight[key]
		if f == nil {
			f = &flightCall{done: make(chan struct{})}
			c.flight[key] = f
			c.mu.Unlock()
			f.resp, f.err = c.call(ctx, req, key)
			c.mu.Lock()
			delete(c.flight, key)
			c.mu.Unlock()
			close(f.done)
			return f.resp, f.err
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return Response{}, fmt.Errorf("%s: %w", c.desc, ctx.Err())
		}
		if f.err == nil {
			r := f.resp
			r.Cached = true
			c.countCached(r)
			return r, nil
		}
		if !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return Response{}, f.err
		}
		// The first caller gave up; try ourselves.
	}
}

func (c *Client) countCached(r Response) {
	c.mu.Lock()
	c.usage.Calls++
	c.usage.CachedCalls++
	c.usage.CachedTokens += int64(r.Usage.Total)
	c.mu.Unlock()
}

// call is one paid call: budget admission, send with retries, settling
// and caching.
func (c *Client) call(ctx context.Context, req Request, key string) (Response, error) {
	prompt, completion := estimateSplit(req)
	est := prompt + completion
	estCost := c.ep.Budget.Cost(int64(prompt), int64(completion))
	if err := c.admitWait(ctx, int64(est), estCost); err != nil {
		return Response{}, err
	}
	resp, err := c.send(ctx, req, prompt, est)
	c.mu.Lock()
	if err == nil {
		u := resp.Usage
		c.usage.Calls++
		c.usage.PromptTokens += int64(u.Prompt)
		c.usage.CompletionTokens += int64(u.Completion)
		c.usage.TotalTokens += int64(u.Total)
		c.usage.Cost += c.ep.Budget.Cost(int64(u.Prompt), int64(u.Completion))
	} else {
		c.usage.Failures++
	}
	c.releaseLocked(int64(est), estCost)
	c.mu.Unlock()
	if err != nil {
		return Response{}, err
	}
	resp.Key = key
	if c.cache != nil {
		if err := c.cache.put(key, resp); err != nil {
			c.log.Warn("llm cache write failed", "endpoint", c.ep.Name, "error", err.Error())
		}
	}
	return resp, nil
}

// budgetSpent returns the budget error once the tokens or cost spent
// (settled to what calls used) reach the budget, counting the refusal;
// the caller holds c.mu.
// With a ledger, what this client may spend is the blocks it claimed,
// and it claims the next free block before refusing.
func (c *Client) budgetSpent(ctx context.Context) error {
	b := c.ep.Budget
	for {
		t, m := c.usage.TotalTokens, c.usage.Cost
		lt, lc := c.limitLocked()
		if !((b.MaxTokens > 0 && t >= lt) || (b.MaxCost > 0 && m >= lc)) {
			return nil
		}
		if ok, err := c.claimLocked(ctx); err != nil {
			return err
		} else if ok {
			continue
		}
		c.usage.BudgetRefusals++
		return &BudgetError{Endpoint: c.desc, Tokens: t, Cost: m, ReservedTokens: max(c.resTokens, 0), ReservedCost: max(c.resCost, 0), Budget: b}
	}
}

// limitLocked is what this client may spend: the budget, or with a
// ledger the part of it in the blocks claimed so far; the caller holds
// c.mu.
func (c *Client) limitLocked() (int64, float64) {
	b := c.ep.Budget
	if c.ledger == nil {
		return b.MaxTokens, b.MaxCost
	}
	return b.MaxTokens * int64(c.held) / LedgerBlocks, b.MaxCost * float64(c.held) / LedgerBlocks
}

// claimLocked claims the ledger's next free block for this client,
// reporting false when there is no ledger or every block is taken; the
// caller holds c.mu (other calls wait while a block is claimed).
func (c *Client) claimLocked(ctx context.Context) (bool, error) {
	for c.ledger != nil && c.nextBlock < LedgerBlocks {
		ok, err := c.ledger.Claim(ctx, c.nextBlock)
		if err != nil {
			return false, fmt.Errorf("%s: claim budget block %d: %w", c.desc, c.nextBlock, err)
		}
		c.nextBlock++
		if ok {
			c.held++
			c.log.Info("llm budget block claimed", "endpoint", c.ep.Name, "block", c.nextBlock-1, "held", c.held, "of", LedgerBlocks)
			return true, nil
		}
	}
	return false, nil
}

// admitWait reserves a call's estimate (tokens: the prompt plus its
// max_tokens) against the budget. A call is refused only once what was
// spent, settled to what calls actually used, reaches the budget. While
// the worst case of the calls in flight and this one would pass it, the
// call waits for one of them to settle; a call alone in flight always
// goes. So a run spends close to its budget, passing it by at most what
// the last calls in flight use, however pessimistic the reservations.
func (c *Client) admitWait(ctx context.Context, tokens int64, cost float64) error {
	b := c.ep.Budget
	c.mu.Lock()
	for {
		if err := c.budgetSpent(ctx); err != nil {
			c.mu.Unlock()
			return err
		}
		lt, lc := c.limitLocked()
		fits := (b.MaxTokens == 0 || c.usage.TotalTokens+c.resTokens+tokens <= lt) &&
			(b.MaxCost == 0 || c.usage.Cost+c.resCost+cost <= lc)
		if !fits {
			// With a ledger, room for this call may be a block away.
			if ok, err := c.claimLocked(ctx); err != nil {
				c.mu.Unlock()
				return err
			} else if ok {
				continue
			}
		}
		if fits || c.resTokens <= 0 {
			c.resTokens += tokens
			c.resCost += cost
			c.mu.Unlock()
			return nil
		}
		ch := c.settled
		c.mu.Unlock()
		// A poll as well, in case a reservation is given back by hand.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", c.desc, ctx.Err())
		}
		t.Stop()
		c.mu.Lock()
	}
}

// releaseLocked gives back a reservation made by admitWait, after the
// call's usage was counted, and wakes the calls waiting for room; the
// caller holds c.mu.
func (c *Client) releaseLocked(tokens int64, cost float64) {
	c.resTokens -= tokens
	c.resCost -= cost
	close(c.settled)
	c.settled = make(chan struct{})
}

// send makes HTTP attempts until one succeeds, a failure is not
// retryable, retries run out or ctx ends.
func (c *Client) send(ctx context.Context, req Request, prompt, est int) (Response, error) {
	oreq := c.openaiRequest(req)
	set := wireFields(req)
	for attempt := 1; ; attempt++ {
		resp, e, err := c.attempt(ctx, oreq, set, prompt, est)
		if err != nil {
			return Response{}, fmt.Errorf("%s: %w", c.desc, err)
		}
		if e == nil {
			return resp, nil
		}
		e.Attempts = attempt
		if !e.Retryable || attempt > c.retries {
			return Response{}, e
		}
		wait := c.backoff(attempt)
		if e.after >= 0 {
			ra := min(e.after, c.maxRA)
			if e.Status == 429 || e.Status == 503 {
				c.mu.Lock()
				if until := c.clock.Now().Add(ra); until.After(c.pauseUntil) {
					c.pauseUntil = until
				}
				c.mu.Unlock()
			}
			wait = max(wait, ra)
		}
		c.mu.Lock()
		c.usage.Retries++
		c.mu.Unlock()
		c.log.Info("llm retry", "endpoint", c.ep.Name, "attempt", attempt, "kind", string(e.Kind),
			"status", e.Status, "wait", wait.String(), "error", e.Message)
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return Response{}, fmt.Errorf("%s: %w", c.desc, err)
		}
	}
}

// backoff is the jittered exponential delay before retry number attempt
// (1-based): base·2^(attempt-1) capped at the maximum, half of it random.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.base
	for i := 1; i < attempt && d < c.maxWait; i++ {
		d *= 2
	}
	d = min(d, c.maxWait)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// attempt is one HTTP request: a concurrency slot, the pause a 429 set,
// the rate limits, then the request under the per-attempt timeout. It
// returns the response, or the classified failure, or ctx's error.
func (c *Client) attempt(ctx context.Context, oreq openai.ChatCompletionRequest, set map[string]json.RawMessage, prompt, est int) (Response, *Error, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return Response{}, nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	c.mu.Lock()
	pause := c.pauseUntil.Sub(c.clock.Now())
	c.mu.Unlock()
	if pause > 0 {
		// Spread the calls a Retry-After held back over a tenth of it.
		pause += time.Duration(rand.Int64N(int64(pause/10) + 1))
		if err := c.clock.Sleep(ctx, pause); err != nil {
			return Response{}, nil, err
		}
	}
	if err := c.rpm.wait(ctx, 1); err != nil {
		return Response{}, nil, err
	}
	if err := c.tpm.wait(ctx, float64(est)); err != nil {
		return Response{}, nil, err
	}
	c.mu.Lock()
	c.usage.Requests++
	c.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st := &wireState{set: set}
	r, err := c.api.CreateChatCompletion(withWire(actx, st), oreq)
	if err == nil && len(r.Choices) == 0 {
		err = errors.New("response has no choices")
	}
	if err != nil {
		c.tpm.settle(-float64(est))
		if ctx.Err() != nil {
			return Response{}, nil, ctx.Err()
		}
		e := c.classify(err, st, actx)
		e.after = -1
		if d, ok := retryAfter(st.header, c.clock.Now()); ok {
			e.after = d
		}
		return Response{}, e, nil
	}
	ch := r.Choices[0]
	resp := Response{
		Text:         ch.Message.Content,
		FinishReason: string(ch.FinishReason),
		Usage:        TokenUsage{Prompt: r.Usage.PromptTokens, Completion: r.Usage.CompletionTokens, Total: r.Usage.TotalTokens},
		Model:        r.Model,
	}
	u := &resp.Usage
	if u.Total == 0 {
		u.Total = u.Prompt + u.Completion
	}
	if u.Total == 0 {
		// The server reports no usage (some local servers): count an
		// estimate, so budgets and rate limits still advance.
		u.Prompt = prompt
		u.Completion = (len(resp.Text) + 3) / 4
		u.Total = u.Prompt + u.Completion
		u.Estimated = true
	}
	c.tpm.settle(float64(u.Total - est))
	return resp, nil, nil
}

func (c *Client) openaiRequest(req Request) openai.ChatCompletionRequest {
	msgs := make([]openai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	o := openai.ChatCompletionRequest{Model: c.ep.model(), Messages: msgs, Seed: req.Seed, Stop: req.Stop}
	// Set for completeness; wireDoer writes the exact values (0
	// included) into the body.
	if req.Temperature != nil {
		o.Temperature = float32(*req.Temperature)
	}
	if req.TopP != nil {
		o.TopP = float32(*req.TopP)
	}
	if req.MaxTokens > 0 {
		if k := c.ep.kind(); k == KindOpenAI || k == KindAzure {
			o.MaxCompletionTokens = req.MaxTokens
		} else {
			//lint:ignore SA1019 servers other than OpenAI's and Azure's expect max_tokens
			o.MaxTokens = req.MaxTokens
		}
	}
	if s := req.JSONSchema; s != nil {
		o.ResponseFormat = &openai.ChatCompletionResponseFormat{
			Type:       openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{Name: s.Name, Schema: s.Schema, Strict: s.Strict},
		}
	}
	return o
}

// shared holds the clients of Shared.
var shared struct {
	sync.Mutex
	m map[string]*Client
}

// Shared returns the process's one client for an endpoint and cache
// directory, creating it with opts on first use. Beam runners may create
// many DoFn instances in one process; sharing the client makes its
// concurrency, rate limits and budget hold for the process, not per
// instance. (Across worker processes each has its own.)
func Shared(ep Endpoint, opts Options) (*Client, error) {
	k := string(mustJSON(ep)) + "\x00" + opts.CacheDir
	shared.Lock()
	defer shared.Unlock()
	if c, ok := shared.m[k]; ok {
		return c, nil
	}
	c, err := New(ep, opts)
	if err != nil {
		return nil, err
	}
	if shared.m == nil {
		shared.m = map[string]*Client{}
	}
	shared.m[k] = c
	return c, nil
}
