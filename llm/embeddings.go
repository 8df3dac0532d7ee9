package llm

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// EmbeddingRequest is one call to the embeddings API (POST /v1/embeddings,
// Azure's /openai/deployments/NAME/embeddings): every input that is not
// cached travels in one HTTP request.
type EmbeddingRequest struct {
	Inputs []string
	// Dimensions asks models that support it (text-embedding-3 and later)
	// for shorter vectors; 0 means the model's own length.
	Dimensions int
}

// EmbeddingResponse holds one vector per input, in input order.
type EmbeddingResponse struct {
	Vectors [][]float32
	// Usage is what the server reported for the inputs it was sent
	// (cached inputs cost nothing and are not counted here).
	Usage TokenUsage
	// Cached is the number of inputs answered from the cache.
	Cached int
	// Model is the model the server says answered ("" when every input
	// came from the cache).
	Model string
}

// Embed returns the embeddings of req.Inputs. It goes through the same
// machinery as Chat: each input is looked up in the response cache under
// its own key (base URL, kind, model, dimensions and the input text), so
// a rerun pays only for new texts; the inputs missing from the cache go
// in one request that is admitted by the budget as a chat call is
// (tokens estimated at about four characters a token, no completion;
// see admitWait), takes a concurrency slot, waits for the rate limits
// and is retried like a chat call.
// Identical inputs in one call are sent once. Errors are an *Error, a
// *BudgetError (matching ErrBudgetExhausted) or the context's error.
//
// A response that does not hold exactly one finite, non-empty vector per
// input, all of one length, counts as malformed and is retried.
func (c *Client) Embed(ctx context.Context, req EmbeddingRequest) (EmbeddingResponse, error) {
	if len(req.Inputs) == 0 {
		return EmbeddingResponse{}, nil
	}
	if req.Dimensions < 0 {
		return EmbeddingResponse{}, &Error{Endpoint: c.desc, Kind: FailBadRequest, Message: fmt.Sprintf("dimensions %d is negative", req.Dimensions)}
	}
	for i, s := range req.Inputs {
		if s == "" {
			return EmbeddingResponse{}, &Error{Endpoint: c.desc, Kind: FailBadRequest, Message: fmt.Sprintf("input %d is empty", i)}
		}
	}
	out := EmbeddingResponse{Vectors: make([][]float32, len(req.Inputs))}
	keys := make([]string, len(req.Inputs))
	// The inputs to send, each once, and where their vectors go.
	var send []string
	var sendKeys []string
	at := map[string][]int{}
	var cachedTokens int64
	for i, s := range req.Inputs {
		keys[i] = embedKey(c.ep, req.Dimensions, s)
		if c.cache != nil {
			if e, ok := c.cache.get(keys[i]); ok {
				if v, err := decodeVector(e.Text); err == nil {
					out.Vectors[i] = v
					out.Cached++
					cachedTokens += int64(e.Usage.Total)
					continue
				}
			}
		}
		if _, ok := at[keys[i]]; !ok {
			send = append(send, s)
			sendKeys = append(sendKeys, keys[i])
		}
		at[keys[i]] = append(at[keys[i]], i)
	}
	if len(send) == 0 {
		c.mu.Lock()
		c.usage.Calls++
		c.usage.CachedCalls++
		c.usage.CachedTokens += cachedTokens
		c.mu.Unlock()
		return out, nil
	}

	est := 0
	for _, s := range send {
		est += embedTokens(s)
	}
	estCost := c.ep.Budget.Cost(int64(est), 0)
	if err := c.admitWait(ctx, int64(est), estCost); err != nil {
		return EmbeddingResponse{}, err
	}
	vecs, usage, model, err := c.sendEmbed(ctx, send, req.Dimensions, est)
	c.mu.Lock()
	if err == nil {
		c.usage.Calls++
		c.usage.PromptTokens += int64(usage.Prompt)
		c.usage.TotalTokens += int64(usage.Total)
		c.usage.CachedTokens += cachedTokens
		c.usage.Cost += c.ep.Budget.Cost(int64(usage.Prompt), 0)
	} else {
		c.usage.Failures++
	}
	c.releaseLocked(int64(est), estCost)
	c.mu.Unlock()
	if err != nil {
		return EmbeddingResponse{}, err
	}
	for j, v := range vecs {
		for _, i := range at[sendKeys[j]] {
			out.Vectors[i] = v
		}
		if c.cache != nil {
			tok := embedTokens(send[j])
			e := Response{Text: encodeVector(v), Model: model, Usage: TokenUsage{Prompt: tok, Total: tok, Estimated: true}}
			if err := c.cache.put(sendKeys[j], e); err != nil {
				c.log.Warn("llm cache write failed", "endpoint", c.ep.Name, "error", err.Error())
			}
		}
	}
	out.Usage = usage
	out.Model = model
	return out, nil
}

// embedTokens estimates an input's tokens as Chat does: about four
// characters a token.
func embedTokens(s string) int { return (len(s) + 3) / 4 }

// sendEmbed makes HTTP attempts until one succeeds, a failure is not
// retryable, retries run out or ctx ends (the retry policy of send).
func (c *Client) sendEmbed(ctx context.Context, inputs []string, dims, est int) ([][]float32, TokenUsage, string, error) {
	oreq := openai.EmbeddingRequest{Input: inputs, Model: openai.EmbeddingModel(c.ep.model()),
		Dimensions: dims, EncodingFormat: openai.EmbeddingEncodingFormatFloat}
	for attempt := 1; ; attempt++ {
		vecs, u, model, e, err := c.attemptEmbed(ctx, oreq, len(inputs), est)
		if err != nil {
			return nil, TokenUsage{}, "", fmt.Errorf("%s: %w", c.desc, err)
		}
		if e == nil {
			return vecs, u, model, nil
		}
		e.Attempts = attempt
		if !e.Retryable || attempt > c.retries {
			return nil, TokenUsage{}, "", e
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
			return nil, TokenUsage{}, "", fmt.Errorf("%s: %w", c.desc, err)
		}
	}
}

// attemptEmbed is one HTTP request, with the slot, pause and rate limits
// of attempt.
func (c *Client) attemptEmbed(ctx context.Context, oreq openai.EmbeddingRequest, n, est int) ([][]float32, TokenUsage, string, *Error, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, TokenUsage{}, "", nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	c.mu.Lock()
	pause := c.pauseUntil.Sub(c.clock.Now())
	c.mu.Unlock()
	if pause > 0 {
		pause += time.Duration(rand.Int64N(int64(pause/10) + 1))
		if err := c.clock.Sleep(ctx, pause); err != nil {
			return nil, TokenUsage{}, "", nil, err
		}
	}
	if err := c.rpm.wait(ctx, 1); err != nil {
		return nil, TokenUsage{}, "", nil, err
	}
	if err := c.tpm.wait(ctx, float64(est)); err != nil {
		return nil, TokenUsage{}, "", nil, err
	}
	c.mu.Lock()
	c.usage.Requests++
	c.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st := &wireState{}
	r, err := c.api.CreateEmbeddings(withWire(actx, st), oreq)
	var vecs [][]float32
	if err == nil {
		vecs, err = checkEmbeddings(r, n)
	}
	if err != nil {
		c.tpm.settle(-float64(est))
		if ctx.Err() != nil {
			return nil, TokenUsage{}, "", nil, ctx.Err()
		}
		e := c.classify(err, st, actx)
		e.after = -1
		if d, ok := retryAfter(st.header, c.clock.Now()); ok {
			e.after = d
		}
		return nil, TokenUsage{}, "", e, nil
	}
	u := TokenUsage{Prompt: r.Usage.PromptTokens, Total: r.Usage.TotalTokens}
	if u.Total == 0 {
		u.Total = u.Prompt
	}
	if u.Total == 0 {
		u.Prompt, u.Total, u.Estimated = est, est, true
	}
	c.tpm.settle(float64(u.Total - est))
	return vecs, u, string(r.Model), nil, nil
}

// checkEmbeddings orders the response's vectors by index and checks
// that there is exactly one finite, non-empty vector per input, all of
// one length.
func checkEmbeddings(r openai.EmbeddingResponse, n int) ([][]float32, error) {
	if len(r.Data) != n {
		return nil, fmt.Errorf("response has %d embeddings for %d inputs", len(r.Data), n)
	}
	vecs := make([][]float32, n)
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= n || vecs[d.Index] != nil {
			return nil, fmt.Errorf("response has a bad or repeated index %d", d.Index)
		}
		if len(d.Embedding) == 0 {
			return nil, fmt.Errorf("embedding %d is empty", d.Index)
		}
		for _, x := range d.Embedding {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("embedding %d is not finite", d.Index)
			}
		}
		vecs[d.Index] = d.Embedding
	}
	for i, v := range vecs {
		if len(v) != len(vecs[0]) {
			return nil, fmt.Errorf("embedding %d has %d dimensions, embedding 0 has %d", i, len(v), len(vecs[0]))
		}
	}
	return vecs, nil
}

// embedKeyDoc is the canonical form hashed into an embedding's cache key;
// Op keeps embedding keys apart from chat keys.
type embedKeyDoc struct {
	V          int    `json:"v"`
	Op         string `json:"op"`
	Kind       Kind   `json:"kind"`
	BaseURL    string `json:"base_url"`
	Deployment string `json:"deployment,omitempty"`
	Model      string `json:"model"`
	Dimensions int    `json:"dimensions"`
	Input      string `json:"input"`
}

// embedKey is the cache key of one input's embedding.
func embedKey(e Endpoint, dims int, input string) string {
	d := embedKeyDoc{V: 1, Op: "embeddings", Kind: e.kind(), BaseURL: e.baseURL(), Model: e.model(), Dimensions: dims, Input: input}
	if e.kind() == KindAzure {
		d.Deployment = e.Deployment
	}
	b, err := json.Marshal(d)
	if err != nil { // cannot happen: every field marshals
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// encodeVector stores a vector in a cache entry's text: base64 of its
// float32 values, little endian.
func encodeVector(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeVector(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || len(b)%4 != 0 {
		return nil, errors.New("cached embedding has a bad length")
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
