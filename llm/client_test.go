package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

const (
	keyEnv  = "SIEVE_TEST_KEY"
	testKey = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

// setup starts a test server and a client of kind "other" on it, the key
// in $SIEVE_TEST_KEY, fast backoff and logs captured in the returned
// buffer.
func setup(t *testing.T, cfg llmtest.Config, edit func(*llm.Endpoint), opts llm.Options) (*llmtest.Server, *llm.Client, *syncBuffer) {
	t.Helper()
	srv := llmtest.Start(cfg)
	t.Cleanup(srv.Close)
	t.Setenv(keyEnv, testKey)
	ep := llm.Endpoint{Name: "judge", Kind: llm.KindOther, BaseURL: srv.URL, Model: "test-model",
		APIKeyEnv: keyEnv, Timeout: llm.Duration(5 * time.Second)}
	if edit != nil {
		edit(&ep)
	}
	if opts.RetryBaseDelay == 0 {
		opts.RetryBaseDelay = time.Millisecond
		opts.RetryMaxDelay = 5 * time.Millisecond
	}
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	c, err := llm.New(ep, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func user(text string) llm.Request {
	return llm.Request{Messages: []datasets.Message{{Role: "system", Content: "You rate answers."}, {Role: "user", Content: text}}}
}

func retries(n int) *int { return &n }

func TestChatHappyPath(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{APIKey: testKey}, nil, llm.Options{})
	r, err := c.Chat(context.Background(), user("hello there"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "echo: hello there" || r.FinishReason != "stop" || r.Model != "test-model" || r.Cached {
		t.Fatalf("response %+v", r)
	}
	msgs := []llmtest.Message{{Role: "system", Content: "You rate answers."}, {Role: "user", Content: "hello there"}}
	wantP, wantC := llmtest.PromptTokens(msgs), llmtest.Tokens("echo: hello there")
	if r.Usage != (llm.TokenUsage{Prompt: wantP, Completion: wantC, Total: wantP + wantC}) {
		t.Fatalf("usage %+v, want %d+%d", r.Usage, wantP, wantC)
	}
	if len(r.Key) != 64 || r.Key != c.Key(user("hello there")) {
		t.Fatalf("key %q", r.Key)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q := reqs[0]
	if q.Path != "/v1/chat/completions" || q.Header.Get("Authorization") != "Bearer "+testKey || q.Request.Model != "test-model" {
		t.Fatalf("request %s %q %+v", q.Path, q.Header.Get("Authorization"), q.Request)
	}
	if len(q.Request.Messages) != 2 || q.Request.Messages[1].Content != "hello there" {
		t.Fatalf("messages %+v", q.Request.Messages)
	}
	for _, k := range []string{"temperature", "top_p", "seed", "max_tokens", "response_format"} {
		if _, ok := q.Request.Raw[k]; ok {
			t.Errorf("unset %s was sent: %s", k, q.Body)
		}
	}
	u := c.Usage()
	if u.Calls != 1 || u.Requests != 1 || u.TotalTokens != int64(wantP+wantC) || u.Retries != 0 {
		t.Fatalf("usage %+v", u)
	}
}

func TestTemperatureZeroOnWire(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	req := user("deterministic please")
	req.Temperature, req.TopP, req.Seed = llm.Float(0), llm.Float(1), llm.Int(0)
	if _, err := c.Chat(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req = user("warm")
	req.Temperature = llm.Float(0.7)
	if _, err := c.Chat(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	body := string(reqs[0].Body)
	for _, want := range []string{`"temperature":0`, `"top_p":1`, `"seed":0`} {
		if !strings.Contains(body, want) {
			t.Errorf("wire body lacks %s: %s", want, body)
		}
	}
	if p := reqs[0].Request.Temperature; p == nil || *p != 0 {
		t.Errorf("server parsed temperature %v", p)
	}
	// Not float32-rounded (0.699999988079071).
	if !strings.Contains(string(reqs[1].Body), `"temperature":0.7,`) && !strings.Contains(string(reqs[1].Body), `"temperature":0.7}`) {
		t.Errorf("temperature 0.7 not exact on the wire: %s", reqs[1].Body)
	}
}

func TestJSONSchemaOnWire(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	schema := `{"type":"object","properties":{"score":{"type":"integer","minimum":1,"maximum":5},"reason":{"type":"string"}},"required":["score","reason"],"additionalProperties":false}`
	req := user("rate this")
	req.JSONSchema = &llm.JSONSchema{Name: "rating", Schema: json.RawMessage(schema), Strict: true}
	r, err := c.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Score  int    `json:"score"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(r.Text), &got); err != nil || got.Score != 1 || got.Reason != "ok" {
		t.Fatalf("answer %q: %v", r.Text, err)
	}
	f := srv.Requests()[0].Request.ResponseFormat
	if f == nil || f.Type != "json_schema" || f.JSONSchema == nil || f.JSONSchema.Name != "rating" ||
		f.JSONSchema.Strict == nil || !*f.JSONSchema.Strict {
		t.Fatalf("response_format on the wire: %s", srv.Requests()[0].Body)
	}
	var a, b any
	json.Unmarshal(f.JSONSchema.Schema, &a)
	json.Unmarshal([]byte(schema), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("schema on the wire %s", f.JSONSchema.Schema)
	}
}

func TestMaxTokensAndTruncation(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	req := user(strings.Repeat("long answer ", 20))
	req.MaxTokens = 5
	r, err := c.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r.FinishReason != "length" || r.Usage.Completion != 5 {
		t.Fatalf("response %+v", r)
	}
	if q := srv.Requests()[0].Request; q.MaxTokens == nil || *q.MaxTokens != 5 || q.MaxCompletionTokens != nil {
		t.Fatalf("kind other should send max_tokens: %s", srv.Requests()[0].Body)
	}
	// OpenAI kind sends max_completion_tokens (the only one reasoning
	// models accept).
	srv2, c2, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) { e.Kind = llm.KindOpenAI }, llm.Options{})
	if _, err := c2.Chat(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if q := srv2.Requests()[0].Request; q.MaxCompletionTokens == nil || *q.MaxCompletionTokens != 5 || q.MaxTokens != nil {
		t.Fatalf("kind openai should send max_completion_tokens: %s", srv2.Requests()[0].Body)
	}
}

func TestMissingUsageIsEstimated(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) { e.Budget.MaxTokens = 1000 }, llm.Options{})
	srv.Script(llmtest.Step{Body: `{"id":"x","object":"chat.completion","model":"local","choices":[{"index":0,"message":{"role":"assistant","content":"twelve chars"},"finish_reason":"stop"}]}`})
	r, err := c.Chat(context.Background(), user("x"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Usage.Estimated || r.Usage.Completion != 3 || r.Usage.Total != r.Usage.Prompt+3 || r.Usage.Prompt == 0 {
		t.Fatalf("usage %+v", r.Usage)
	}
	if u := c.Usage(); u.TotalTokens != int64(r.Usage.Total) {
		t.Fatalf("client usage %+v", u)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	srv, c, logs := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.Fail(500), llmtest.Fail(502), llmtest.Fail(503))
	r, err := c.Chat(context.Background(), user("eventually"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "echo: eventually" || srv.Count() != 4 {
		t.Fatalf("text %q after %d requests", r.Text, srv.Count())
	}
	u := c.Usage()
	if u.Retries != 3 || u.Requests != 4 || u.Calls != 1 || u.Failures != 0 {
		t.Fatalf("usage %+v", u)
	}
	if n := strings.Count(logs.String(), "llm retry"); n != 3 {
		t.Fatalf("%d retry log lines:\n%s", n, logs)
	}
}

func TestRetriesRunOut(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) { e.MaxRetries = retries(2) }, llm.Options{})
	srv.Script(llmtest.Fail(500), llmtest.Fail(500), llmtest.Fail(500), llmtest.Reply("too late"))
	_, err := c.Chat(context.Background(), user("x"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.FailServer || e.Attempts != 3 || !e.Retryable || e.Fatal() {
		t.Fatalf("error %#v", err)
	}
	if !strings.Contains(err.Error(), "500 internal server error (gave up after 3 attempts)") {
		t.Fatalf("message %q", err)
	}
	if srv.Count() != 3 || c.Usage().Failures != 1 {
		t.Fatalf("%d requests, usage %+v", srv.Count(), c.Usage())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.RateLimited("1"))
	start := time.Now()
	if _, err := c.Chat(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second || gap > 3*time.Second {
		t.Fatalf("retried %v after a Retry-After of 1s", gap)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("too slow")
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	// HTTP dates have whole seconds: 2s ahead is 1 to 2 s from now.
	srv.Script(llmtest.Step{Status: 503, RetryAfter: time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)})
	if _, err := c.Chat(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond || gap > 3*time.Second {
		t.Fatalf("retried %v after a Retry-After date 2s ahead", gap)
	}
}

func TestRetryAfterMs(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.Step{Status: 429, RetryAfterMs: "300"})
	if _, err := c.Chat(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 300*time.Millisecond || gap > 2*time.Second {
		t.Fatalf("retried %v after retry-after-ms 300", gap)
	}
}

// A 429's Retry-After holds back every call of the client, not only the
// one that got it.
func TestRetryAfterPausesOtherCalls(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.Step{Status: 429, RetryAfterMs: "400"})
	done := make(chan error)
	go func() {
		_, err := c.Chat(context.Background(), user("a"))
		done <- err
	}()
	for srv.Count() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	if _, err := c.Chat(context.Background(), user("b")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	for _, r := range reqs[1:] {
		if gap := r.At.Sub(reqs[0].At); gap < 380*time.Millisecond {
			t.Fatalf("%q sent %v after the 429 that asked for 400ms", r.Request.LastUser(), gap)
		}
	}
}

func TestFailFast401(t *testing.T) {
	srv, c, logs := setup(t, llmtest.Config{APIKey: "sk-the-right-one-000000000000", EchoKey: true}, nil, llm.Options{})
	_, err := c.Chat(context.Background(), user("x"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.FailAuth || !e.Fatal() || e.Attempts != 1 {
		t.Fatalf("error %#v", err)
	}
	want := "endpoint judge (test-model at " + srv.URL + "): 401 unauthorized: Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys: check $SIEVE_TEST_KEY"
	if err.Error() != want {
		t.Fatalf("message\n got %s\nwant %s", err, want)
	}
	if srv.Count() != 1 {
		t.Fatalf("%d requests, want 1 (no retry)", srv.Count())
	}
	assertNoKey(t, "error", err.Error())
	assertNoKey(t, "error %#v", fmt.Sprintf("%#v %+v", err, err))
	assertNoKey(t, "logs", logs.String())
}

func TestFailFastClientErrors(t *testing.T) {
	for _, tc := range []struct {
		step llmtest.Step
		kind llm.ErrorKind
		want string
	}{
		{llmtest.Fail(400), llm.FailBadRequest, "400 bad request: Invalid request"},
		{llmtest.Fail(403), llm.FailAuth, "403 forbidden: Country, region, or territory not supported: check $SIEVE_TEST_KEY"},
		{llmtest.Step{Status: 404, Code: "model_not_found", Message: "The model `test-model` does not exist."}, llm.FailNotFound, `404 not found: The model ` + "`test-model`" + ` does not exist: check model "test-model" and base_url`},
		{llmtest.Fail(422), llm.FailBadRequest, "422 unprocessable entity"},
		{llmtest.Step{Status: 429, Type: "insufficient_quota", Code: "insufficient_quota", Message: "You exceeded your current quota, please check your plan and billing details."}, llm.FailQuota, "429 too many requests: You exceeded your current quota"},
	} {
		srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
		srv.Script(tc.step, llmtest.Reply("should not be reached"))
		_, err := c.Chat(context.Background(), user("x"))
		var e *llm.Error
		if !errors.As(err, &e) || e.Kind != tc.kind || e.Retryable {
			t.Errorf("%d: error %#v", tc.step.Status, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "endpoint judge (test-model at http://") {
			t.Errorf("%d: message %q lacks %q", tc.step.Status, err, tc.want)
		}
		if srv.Count() != 1 {
			t.Errorf("%d: %d requests, want 1", tc.step.Status, srv.Count())
		}
	}
}

func TestUnknownModel404(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{Models: []string{"other-model"}}, nil, llm.Options{})
	_, err := c.Chat(context.Background(), user("x"))
	if err == nil || !strings.Contains(err.Error(), "404 not found: The model `test-model` does not exist") || srv.Count() != 1 {
		t.Fatalf("%v after %d requests", err, srv.Count())
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) {
		e.Timeout = llm.Duration(150 * time.Millisecond)
		e.MaxRetries = retries(1)
	}, llm.Options{})
	srv.Script(llmtest.Slow(3 * time.Second))
	start := time.Now()
	if _, err := c.Chat(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second || srv.Count() != 2 {
		t.Fatalf("took %v, %d requests", d, srv.Count())
	}
	srv.Script(llmtest.Slow(3*time.Second), llmtest.Slow(3*time.Second))
	_, err := c.Chat(context.Background(), user("y"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.FailTimeout || e.Attempts != 2 {
		t.Fatalf("error %#v", err)
	}
	if !strings.Contains(err.Error(), "timeout (gave up after 2 attempts): no answer within 150ms") {
		t.Fatalf("message %q", err)
	}
}

func TestConnectionResetRetried(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.Reset(), llmtest.Reset())
	r, err := c.Chat(context.Background(), user("x"))
	if err != nil || r.Text != "echo: x" || srv.Count() != 3 {
		t.Fatalf("%+v %v after %d requests", r, err, srv.Count())
	}
}

func TestMalformedRetried(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.Malformed(), llmtest.Step{Body: `{"id":"x","choices":[]}`})
	r, err := c.Chat(context.Background(), user("x"))
	if err != nil || r.Text != "echo: x" || srv.Count() != 3 || c.Usage().Retries != 2 {
		t.Fatalf("%+v %v after %d requests", r, err, srv.Count())
	}
}

func TestConnectionRefused(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) { e.MaxRetries = retries(1) }, llm.Options{})
	srv.Close()
	_, err := c.Chat(context.Background(), user("x"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.FailNetwork || e.Attempts != 2 {
		t.Fatalf("error %#v", err)
	}
	if !strings.Contains(err.Error(), "is the server running at base_url?") {
		t.Fatalf("message %q", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{Latency: 20 * time.Millisecond}, func(e *llm.Endpoint) { e.MaxConcurrency = 3 }, llm.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Chat(context.Background(), user(fmt.Sprint("prompt ", i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if srv.Count() != 30 || srv.MaxInFlight() > 3 || srv.MaxInFlight() < 2 {
		t.Fatalf("%d requests, max in flight %d (limit 3)", srv.Count(), srv.MaxInFlight())
	}
}

func TestRequestRatePacing(t *testing.T) {
	// 300 a minute is 5 a second with a burst of 5: 10 calls span ≥ 1 s.
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) {
		e.RequestsPerMinute = 300
		e.MaxConcurrency = 10
	}, llm.Options{})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Chat(context.Background(), user(fmt.Sprint("p", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	reqs := srv.Requests()
	if len(reqs) != 10 {
		t.Fatalf("%d requests", len(reqs))
	}
	first, last := reqs[0].At, reqs[0].At
	for _, r := range reqs {
		if r.At.Before(first) {
			first = r.At
		}
		if r.At.After(last) {
			last = r.At
		}
	}
	if span := last.Sub(first); span < 900*time.Millisecond || span > 2500*time.Millisecond {
		t.Fatalf("10 requests at 300/min spanned %v, want about 1s", span)
	}
}

func TestBudgetTokens(t *testing.T) {
	dir := t.TempDir()
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) {
		e.Budget = llm.Budget{MaxTokens: 100}
		e.MaxConcurrency = 1
	}, llm.Options{CacheDir: dir})
	var first llm.TokenUsage
	var n int
	var err error
	for n = 0; n < 100; n++ {
		var r llm.Response
		r, err = c.Chat(context.Background(), user(fmt.Sprint("question number ", n)))
		if err != nil {
			break
		}
		if n == 0 {
			first = r.Usage
		}
	}
	if !errors.Is(err, llm.ErrBudgetExhausted) {
		t.Fatalf("after %d calls: %v", n, err)
	}
	var be *llm.BudgetError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "endpoint judge") || !strings.Contains(err.Error(), "of max 100 tokens") {
		t.Fatalf("error %q", err)
	}
	per := first.Total
	want := (100 + per - 1) / per
	if n != want || srv.Count() != want {
		t.Fatalf("%d calls and %d requests with %d tokens a call, want %d", n, srv.Count(), per, want)
	}
	u := c.Usage()
	if u.TotalTokens < 100 || u.TotalTokens >= int64(100+per) || u.BudgetRefusals != 1 {
		t.Fatalf("usage %+v", u)
	}
	// Refused again without a request; cached answers are still free.
	if _, err := c.Chat(context.Background(), user("another")); !errors.Is(err, llm.ErrBudgetExhausted) {
		t.Fatal(err)
	}
	if r, err := c.Chat(context.Background(), user("question number 0")); err != nil || !r.Cached {
		t.Fatalf("cached call after the budget: %+v %v", r, err)
	}
	if srv.Count() != want {
		t.Fatalf("%d requests", srv.Count())
	}
}

func TestBudgetCost(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) {
		e.Budget = llm.Budget{MaxCost: 0.05, PromptPricePer1K: 1, CompletionPricePer1K: 2}
		e.MaxConcurrency = 1
	}, llm.Options{})
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		_, err = c.Chat(context.Background(), user(fmt.Sprint("q", i)))
	}
	if !errors.Is(err, llm.ErrBudgetExhausted) {
		t.Fatal(err)
	}
	u := c.Usage()
	wantCost := float64(u.PromptTokens)/1000*1 + float64(u.CompletionTokens)/1000*2
	perCall := wantCost / float64(u.Calls) // every call here costs about the same
	if u.Cost < 0.05 || u.Cost >= 0.05+perCall*1.2 || fmt.Sprintf("%.9f", u.Cost) != fmt.Sprintf("%.9f", wantCost) {
		t.Fatalf("cost %v (want %v, ≥ budget 0.05 by less than one call of about %v)", u.Cost, wantCost, perCall)
	}
	if int64(srv.Count()) != u.Calls {
		t.Fatalf("%d requests, %d calls", srv.Count(), u.Calls)
	}
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{CacheDir: dir})
	ctx := context.Background()
	req := user("cache me")
	req.Temperature = llm.Float(0)
	r1, err := c.Chat(ctx, req)
	if err != nil || r1.Cached {
		t.Fatal(r1, err)
	}
	r2, err := c.Chat(ctx, req)
	if err != nil || !r2.Cached || r2.Text != r1.Text || r2.Usage != r1.Usage || r2.Key != r1.Key || srv.Count() != 1 {
		t.Fatalf("second call %+v %v, %d requests", r2, err, srv.Count())
	}
	// A different temperature is a different request.
	req2 := req
	req2.Temperature = llm.Float(0.5)
	if r, err := c.Chat(ctx, req2); err != nil || r.Cached || srv.Count() != 2 {
		t.Fatalf("temperature 0.5: %+v %v, %d requests", r, err, srv.Count())
	}
	// Unset temperature differs from 0.
	req3 := req
	req3.Temperature = nil
	if c.Key(req3) == c.Key(req) {
		t.Fatal("unset temperature has the key of temperature 0")
	}
	// A restarted run (new client, same directory) replays without HTTP.
	_, c2, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) { e.BaseURL = srv.URL }, llm.Options{CacheDir: dir})
	if r, err := c2.Chat(ctx, req); err != nil || !r.Cached || r.Text != r1.Text || srv.Count() != 2 {
		t.Fatalf("restart: %+v %v, %d requests", r, err, srv.Count())
	}
	if u := c2.Usage(); u.Calls != 1 || u.CachedCalls != 1 || u.Requests != 0 || u.TotalTokens != 0 || u.CachedTokens != int64(r1.Usage.Total) {
		t.Fatalf("usage after a hit %+v", u)
	}
	// Layout: dir/ab/cdef….json, no temporary files, no key anywhere.
	path := filepath.Join(dir, r1.Key[:2], r1.Key[2:]+".json")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		if strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		b, _ := os.ReadFile(p)
		assertNoKey(t, p, string(b))
		return nil
	})
	if files != 2 {
		t.Fatalf("%d cache files, want 2", files)
	}
	// A corrupt entry is a miss and is rewritten.
	os.WriteFile(path, []byte(`{"v":1,"key":"`), 0o644)
	if r, err := c.Chat(ctx, req); err != nil || r.Cached || srv.Count() != 3 {
		t.Fatalf("corrupt entry: %+v %v, %d requests", r, err, srv.Count())
	}
	if r, err := c.Chat(ctx, req); err != nil || !r.Cached || srv.Count() != 3 {
		t.Fatalf("rewritten entry: %+v %v", r, err)
	}
}

func TestCacheKeyIgnoresAPIKey(t *testing.T) {
	ep := llm.Endpoint{Name: "a", Kind: llm.KindOther, BaseURL: "http://localhost:1/v1", Model: "m", APIKeyEnv: "SIEVE_K"}
	t.Setenv("SIEVE_K", "first-key-aaaaaaaaaaaa")
	c1, _ := llm.New(ep, llm.Options{})
	t.Setenv("SIEVE_K", "second-key-bbbbbbbbbbb")
	ep.Name = "b" // a label, not part of the request
	c2, _ := llm.New(ep, llm.Options{})
	if c1.Key(user("x")) != c2.Key(user("x")) {
		t.Fatal("cache key depends on the API key or the endpoint name")
	}
	ep.Model = "m2"
	c3, _ := llm.New(ep, llm.Options{})
	if c1.Key(user("x")) == c3.Key(user("x")) {
		t.Fatal("cache key ignores the model")
	}
}

func TestIdenticalCallsInFlightShareOneRequest(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{Latency: 100 * time.Millisecond}, nil, llm.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	cached := 0
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Chat(context.Background(), user("same"))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if r.Cached {
				cached++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if srv.Count() != 1 || cached != 4 {
		t.Fatalf("%d requests, %d shared answers", srv.Count(), cached)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.RateLimited("30"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Chat(ctx, user("x"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestAzure(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{APIKey: testKey}, func(e *llm.Endpoint) {
		e.Kind, e.Deployment, e.APIVersion, e.Model = llm.KindAzure, "gpt4o-prod", "2024-10-21", ""
		e.BaseURL = strings.TrimSuffix(e.BaseURL, "/v1") // the resource root
	}, llm.Options{})
	req := user("hi")
	req.Temperature = llm.Float(0)
	if _, err := c.Chat(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	q := srv.Requests()[0]
	if q.Deployment != "gpt4o-prod" || q.Query.Get("api-version") != "2024-10-21" ||
		q.Header.Get("api-key") != testKey || q.Header.Get("Authorization") != "" {
		t.Fatalf("azure request %s?%s %v", q.Path, q.Query.Encode(), q.Header)
	}
	if !strings.Contains(string(q.Body), `"temperature":0`) {
		t.Fatalf("body %s", q.Body)
	}
	if got := c.Endpoint().String(); got != "endpoint judge (deployment gpt4o-prod at "+srv.Root+")" {
		t.Fatal(got)
	}
}

func TestMissingKey(t *testing.T) {
	ep := llm.Endpoint{Name: "judge", Model: "gpt-4o-mini", APIKeyEnv: "SIEVE_SURELY_UNSET_KEY"}
	_, err := llm.New(ep, llm.Options{})
	if !errors.Is(err, llm.ErrMissingKey) || !errors.Is(ep.CheckKey(), llm.ErrMissingKey) {
		t.Fatalf("%v", err)
	}
	want := "endpoint judge (gpt-4o-mini at https://api.openai.com/v1): $SIEVE_SURELY_UNSET_KEY is not set: export SIEVE_SURELY_UNSET_KEY=… to enable it"
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	// A local server needs no key.
	if _, err := llm.New(llm.Endpoint{Name: "local", Kind: llm.KindOther, BaseURL: "http://localhost:8000/v1", Model: "qwen"}, llm.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestKeyNeverLeaks(t *testing.T) {
	srv, c, logs := setup(t, llmtest.Config{}, nil, llm.Options{CacheDir: t.TempDir()})
	// A careless server quoting the key in 5xx bodies.
	srv.Script(llmtest.Step{Status: 500, Message: "upstream rejected key " + testKey + " and " + testKey[3:20]})
	if _, err := c.Chat(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
	assertNoKey(t, "retry logs", logs.String())
	if !strings.Contains(logs.String(), "[redacted]") {
		t.Fatalf("logs %s", logs)
	}
	ep := c.Endpoint()
	ep.Budget = llm.Budget{MaxTokens: 5}
	j, _ := json.Marshal(ep)
	y, _ := yaml.Marshal(ep)
	cj, _ := json.Marshal(c)
	for what, s := range map[string]string{
		"endpoint json": string(j), "endpoint yaml": string(y), "client json": string(cj),
		"client %v": fmt.Sprintf("%v", c), "client %+v": fmt.Sprintf("%+v", c), "client %#v": fmt.Sprintf("%#v", c),
		"describe": ep.Describe(), "string": ep.String(),
	} {
		assertNoKey(t, what, s)
	}
	if !strings.Contains(string(j), `"api_key_env":"SIEVE_TEST_KEY"`) {
		t.Fatalf("endpoint json %s", j)
	}
	// A key pasted into api_key_env is rejected without being quoted.
	bad := ep
	bad.APIKeyEnv = testKey
	err := bad.Validate()
	var fe *llm.FieldError
	if !errors.As(err, &fe) || fe.Key != "api_key_env" {
		t.Fatalf("%v", err)
	}
	assertNoKey(t, "validate", err.Error())
	assertNoKey(t, "describe", bad.Describe())
	_, err = llm.New(bad, llm.Options{})
	assertNoKey(t, "new", fmt.Sprint(err))
}

func assertNoKey(t *testing.T, what, s string) {
	t.Helper()
	for _, frag := range []string{testKey, testKey[3:20], testKey[len(testKey)-12:]} {
		if strings.Contains(s, frag) {
			t.Errorf("%s contains the API key (%q): %s", what, frag, s)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := llm.Endpoint{Name: "judge", Model: "gpt-4o-mini", APIKeyEnv: "OPENAI_API_KEY"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*llm.Endpoint)
		key  string
	}{
		{func(e *llm.Endpoint) { e.Name = "" }, "name"},
		{func(e *llm.Endpoint) { e.Name = "a b" }, "name"},
		{func(e *llm.Endpoint) { e.Kind = "anthropic" }, "kind"},
		{func(e *llm.Endpoint) { e.Kind = llm.KindOther }, "base_url"},
		{func(e *llm.Endpoint) { e.BaseURL = "localhost:8000" }, "base_url"},
		{func(e *llm.Endpoint) { e.BaseURL = "https://user:pw@host/v1" }, "base_url"},
		{func(e *llm.Endpoint) { e.BaseURL = "https://host/v1?key=abc" }, "base_url"},
		{func(e *llm.Endpoint) { e.Model = "" }, "model"},
		{func(e *llm.Endpoint) { e.APIKeyEnv = "" }, "api_key_env"},
		{func(e *llm.Endpoint) { e.APIKeyEnv = "sk-abc" }, "api_key_env"},
		{func(e *llm.Endpoint) { e.Kind, e.BaseURL = llm.KindAzure, "https://x.openai.azure.com" }, "deployment"},
		{func(e *llm.Endpoint) {
			e.Kind, e.BaseURL, e.Deployment = llm.KindAzure, "https://x.openai.azure.com", "d"
		}, "api_version"},
		{func(e *llm.Endpoint) { e.Deployment = "d" }, "deployment"},
		{func(e *llm.Endpoint) { e.Timeout = -1 }, "timeout"},
		{func(e *llm.Endpoint) { e.MaxConcurrency = -1 }, "max_concurrency"},
		{func(e *llm.Endpoint) { e.RequestsPerMinute = -1 }, "requests_per_minute"},
		{func(e *llm.Endpoint) { e.TokensPerMinute = -1 }, "tokens_per_minute"},
		{func(e *llm.Endpoint) { e.MaxRetries = retries(-1) }, "max_retries"},
		{func(e *llm.Endpoint) { e.Budget.MaxTokens = -1 }, "budget.max_tokens"},
		{func(e *llm.Endpoint) { e.Budget.MaxCost = 1 }, "budget.max_cost"},
	} {
		e := ok
		tc.edit(&e)
		err := e.Validate()
		var fe *llm.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key {
			t.Errorf("want an error on %s, got %v", tc.key, err)
			continue
		}
		if !strings.Contains(err.Error(), ": "+tc.key+": ") {
			t.Errorf("message %q does not name %s", err, tc.key)
		}
	}
}

func TestDescribe(t *testing.T) {
	e := llm.Endpoint{Name: "judge", Model: "gpt-4o-mini", APIKeyEnv: "OPENAI_API_KEY"}
	if got := e.Describe(); got != "endpoint judge (gpt-4o-mini at https://api.openai.com/v1) with the API key in $OPENAI_API_KEY" {
		t.Fatal(got)
	}
	e = llm.Endpoint{Name: "local", Kind: llm.KindOther, BaseURL: "http://localhost:11434/v1/", Model: "llama3"}
	if got := e.Describe(); got != "endpoint local (llama3 at http://localhost:11434/v1) without an API key" {
		t.Fatal(got)
	}
}

func TestEndpointYAMLAndJSON(t *testing.T) {
	src := `
name: judge
kind: openai
model: gpt-4o-mini
api_key_env: OPENAI_API_KEY
timeout: 90s
max_concurrency: 16
requests_per_minute: 500
tokens_per_minute: 200000
max_retries: 0
budget:
  max_tokens: 1000000
  max_cost: 2.5
  prompt_price_per_1k: 0.00015
  completion_price_per_1k: 0.0006
`
	var e llm.Endpoint
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	if e.Timeout.D() != 90*time.Second || e.MaxRetries == nil || *e.MaxRetries != 0 || e.Budget.MaxCost != 2.5 || e.TokensPerMinute != 200000 {
		t.Fatalf("%+v", e)
	}
	j, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"timeout":"1m30s"`) {
		t.Fatalf("json %s", j)
	}
	var back llm.Endpoint
	if err := json.Unmarshal(j, &back); err != nil || back.Timeout != e.Timeout || *back.MaxRetries != 0 {
		t.Fatalf("%v %+v", err, back)
	}
	y, _ := yaml.Marshal(e)
	var back2 llm.Endpoint
	if err := yaml.Unmarshal(y, &back2); err != nil || back2.Timeout != e.Timeout {
		t.Fatalf("%v %s", err, y)
	}
	var d llm.Duration
	if err := json.Unmarshal([]byte(`2.5`), &d); err != nil || d.D() != 2500*time.Millisecond {
		t.Fatal(d, err)
	}
	if err := yaml.Unmarshal([]byte(`timeout: 3`), &back2); err != nil || back2.Timeout.D() != 3*time.Second {
		t.Fatal(back2.Timeout, err)
	}
	if err := yaml.Unmarshal([]byte(`timeout: soon`), &back2); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestShared(t *testing.T) {
	ep := llm.Endpoint{Name: "s", Kind: llm.KindOther, BaseURL: "http://localhost:1/v1", Model: "m"}
	a, err := llm.Shared(ep, llm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := llm.Shared(ep, llm.Options{})
	c, _ := llm.Shared(ep, llm.Options{CacheDir: t.TempDir()})
	if a != b || a == c {
		t.Fatal("Shared does not share by endpoint and cache directory")
	}
}

func TestUsageAdd(t *testing.T) {
	a := llm.Usage{Calls: 1, CachedCalls: 1, Requests: 2, Retries: 1, PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, Cost: 0.5}
	if s := a.Add(a); s.Calls != 2 || s.TotalTokens != 30 || s.Cost != 1 || s.Retries != 2 {
		t.Fatalf("%+v", s)
	}
}

// BenchmarkChat measures the client's overhead per call against the test
// server with no latency, 16 calls in flight.
func BenchmarkChat(b *testing.B) {
	srv := llmtest.Start(llmtest.Config{})
	defer srv.Close()
	c, err := llm.New(llm.Endpoint{Name: "bench", Kind: llm.KindOther, BaseURL: srv.URL, Model: "m", MaxConcurrency: 16}, llm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var i int64
	var mu sync.Mutex
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			n := i
			mu.Unlock()
			req := user(fmt.Sprint("prompt ", n))
			req.Temperature = llm.Float(0)
			if _, err := c.Chat(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestBudgetReachedUnderConcurrency: calls in flight reserve their
// max_tokens, but the budget settles each to what it used, so a run at
// full concurrency spends close to the budget rather than stopping when
// the reservations reach it; the refusal reports what was spent, not
// what was reserved.
func TestBudgetReachedUnderConcurrency(t *testing.T) {
	const budget = 3000
	srv, c, _ := setup(t, llmtest.Config{Latency: 5 * time.Millisecond}, func(e *llm.Endpoint) {
		e.Budget = llm.Budget{MaxTokens: budget}
		e.MaxConcurrency = 8
	}, llm.Options{})
	var mu sync.Mutex
	var refused []error
	var maxCall int64
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := 0; i < 1000; i++ {
			next <- i
		}
		close(next)
	}()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req := user(fmt.Sprint("question number ", i))
				req.MaxTokens = 1000 // reserved per call; the answers use far less
				r, err := c.Chat(context.Background(), req)
				mu.Lock()
				if err != nil {
					refused = append(refused, err)
				} else if int64(r.Usage.Total) > maxCall {
					maxCall = int64(r.Usage.Total)
				}
				mu.Unlock()
				if err != nil {
					for range next {
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(refused) == 0 || !errors.Is(refused[0], llm.ErrBudgetExhausted) {
		t.Fatalf("no budget refusal: %v", refused)
	}
	u := c.Usage()
	if u.TotalTokens < budget || u.TotalTokens > budget+8*maxCall {
		t.Errorf("spent %d tokens of a %d budget (%d requests, %d tokens a call at most): want it reached, passed by at most the calls in flight",
			u.TotalTokens, budget, srv.Count(), maxCall)
	}
	var be *llm.BudgetError
	if !errors.As(refused[0], &be) || be.Tokens > u.TotalTokens || !strings.Contains(refused[0].Error(), fmt.Sprintf("spent %d of max %d tokens", be.Tokens, budget)) {
		t.Errorf("refusal %q: want the tokens spent (%d), not those reserved", refused[0], u.TotalTokens)
	}
}
