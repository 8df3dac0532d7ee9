package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

func TestEmbedHappyPathAndCache(t *testing.T) {
	dir := t.TempDir()
	srv, c, _ := setup(t, llmtest.Config{APIKey: testKey}, nil, llm.Options{CacheDir: dir})
	in := []string{"chicken soup recipe", "a poem about the sea", "chicken soup recipe"}
	r, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: in, Dimensions: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Vectors) != 3 || r.Cached != 0 || r.Model != "test-model" {
		t.Fatalf("response %+v", r)
	}
	for i, v := range r.Vectors {
		want := llmtest.DefaultEmbed(in[i], 8)
		if fmt.Sprint(v) != fmt.Sprint(want) {
			t.Fatalf("vector %d = %v, want %v", i, v, want)
		}
	}
	// One request; the repeated input sent once; dimensions and
	// encoding_format on the wire.
	if srv.Count() != 1 {
		t.Fatalf("%d requests", srv.Count())
	}
	q := srv.Requests()[0]
	var body llmtest.EmbeddingRequest
	if err := json.Unmarshal(q.Body, &body); err != nil {
		t.Fatal(err)
	}
	if q.Path != "/v1/embeddings" || len(body.Inputs()) != 2 || body.Dimensions != 8 || body.EncodingFormat != "float" {
		t.Fatalf("request %s %s", q.Path, q.Body)
	}
	wantTok := llmtest.Tokens(in[0]) + llmtest.Tokens(in[1])
	if r.Usage.Prompt != wantTok || r.Usage.Total != wantTok {
		t.Fatalf("usage %+v, want %d tokens", r.Usage, wantTok)
	}
	// Again, plus one new input: only the new one is sent.
	r2, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{in[1], "tax law", in[0]}, Dimensions: 8})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Cached != 2 || srv.Count() != 2 || fmt.Sprint(r2.Vectors[0]) != fmt.Sprint(r.Vectors[1]) {
		t.Fatalf("second call: cached %d, %d requests", r2.Cached, srv.Count())
	}
	if got := srv.Requests()[1].Body; !strings.Contains(string(got), `"input":["tax law"]`) {
		t.Fatalf("second body %s", got)
	}
	// Fully cached: no request; other dimensions are another key.
	if r3, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: in, Dimensions: 8}); err != nil || r3.Cached != 3 {
		t.Fatalf("third call %+v %v", r3, err)
	}
	if _, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: in[:1], Dimensions: 4}); err != nil || srv.Count() != 3 {
		t.Fatalf("other dimensions: %v, %d requests", err, srv.Count())
	}
	u := c.Usage()
	if u.Calls != 4 || u.CachedCalls != 1 || u.Requests != 3 || u.PromptTokens != int64(wantTok+2+llmtest.Tokens(in[0])) {
		t.Fatalf("usage %+v", u)
	}
}

func TestEmbedRetriesAndMalformed(t *testing.T) {
	srv, c, logs := setup(t, llmtest.Config{}, nil, llm.Options{})
	srv.Script(llmtest.RateLimited("0"), llmtest.Fail(500), llmtest.Reset(),
		llmtest.Step{Body: `{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`})
	r, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{"one", "two"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Vectors) != 2 || len(r.Vectors[0]) != llmtest.DefaultEmbedDim || srv.Count() != 5 {
		t.Fatalf("%d vectors after %d requests", len(r.Vectors), srv.Count())
	}
	if u := c.Usage(); u.Retries != 4 || u.Requests != 5 || u.Failures != 0 {
		t.Fatalf("usage %+v", u)
	}
	if !strings.Contains(logs.String(), "malformed") {
		t.Fatalf("logs %s", logs)
	}
}

func TestEmbedFailsFastAndRefusesBadInput(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{Models: []string{"other-model"}}, nil, llm.Options{})
	_, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{"x"}})
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.FailNotFound || e.Attempts != 1 || srv.Count() != 1 {
		t.Fatalf("error %v (%d requests)", err, srv.Count())
	}
	if _, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{"ok", ""}}); !errors.As(err, &e) || e.Kind != llm.FailBadRequest {
		t.Fatalf("empty input: %v", err)
	}
	if srv.Count() != 1 {
		t.Fatalf("an empty input reached the server")
	}
}

func TestEmbedBudget(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{}, func(e *llm.Endpoint) {
		e.Budget = llm.Budget{MaxTokens: 20}
	}, llm.Options{})
	var err error
	n := 0
	for ; n < 10 && err == nil; n++ {
		_, err = c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{fmt.Sprint("text number ", n, " has a few words")}})
	}
	if !errors.Is(err, llm.ErrBudgetExhausted) {
		t.Fatalf("after %d calls: %v", n, err)
	}
	if u := c.Usage(); u.TotalTokens < 20 || u.BudgetRefusals != 1 || int(u.Requests) != srv.Count() {
		t.Fatalf("usage %+v", u)
	}
}

func TestEmbedAzure(t *testing.T) {
	srv, c, _ := setup(t, llmtest.Config{APIKey: testKey}, func(e *llm.Endpoint) {
		e.Kind, e.Deployment, e.APIVersion, e.Model = llm.KindAzure, "emb-prod", "2024-10-21", ""
		e.BaseURL = strings.TrimSuffix(e.BaseURL, "/v1")
	}, llm.Options{})
	r, err := c.Embed(context.Background(), llm.EmbeddingRequest{Inputs: []string{"hello world"}})
	if err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, x := range r.Vectors[0] {
		ss += float64(x) * float64(x)
	}
	q := srv.Requests()[0]
	if q.Deployment != "emb-prod" || q.Header.Get("api-key") != testKey || math.Abs(ss-1) > 1e-5 {
		t.Fatalf("azure request %s %v, |v|²=%v", q.Path, q.Header, ss)
	}
}
