package llmtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// DefaultEmbedDim is the length of DefaultEmbed's vectors when a request
// asks for no dimensions.
const DefaultEmbedDim = 16

// EmbeddingRequest is a parsed embeddings request (the body of POST
// /v1/embeddings): Input is a string or an array of strings.
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     int             `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// Inputs returns the request's input texts (nil when input is neither a
// string nor an array of strings).
func (r *EmbeddingRequest) Inputs() []string {
	var one string
	if json.Unmarshal(r.Input, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(r.Input, &many) == nil {
		return many
	}
	return nil
}

// DefaultEmbed is a deterministic bag-of-words vector of dims dimensions
// (DefaultEmbedDim when dims is 0): each lower-cased word adds ±1 to one
// coordinate chosen by its FNV hash; the vector has unit length. Texts
// that share words point alike; texts that share none are uncorrelated
// on average (more so the more dimensions).
func DefaultEmbed(input string, dims int) []float32 {
	if dims <= 0 {
		dims = DefaultEmbedDim
	}
	v := make([]float32, dims)
	for _, w := range strings.FieldsFunc(strings.ToLower(input), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		if x>>63 == 1 {
			v[x%uint64(dims)]--
		} else {
			v[x%uint64(dims)]++
		}
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		v[0] = 1
		return v
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
	return v
}

func isEmbeddings(path string) bool {
	return path == "/v1/embeddings" ||
		(strings.HasPrefix(path, "/openai/deployments/") && strings.HasSuffix(path, "/embeddings"))
}

// serveEmbeddings answers an embeddings request, with the same scripted
// Steps, key check and error format as chat requests (Config.Decide is
// asked with the body parsed as a ChatRequest, which has no messages).
func (s *Server) serveEmbeddings(w http.ResponseWriter, r *http.Request, n int, creq *ChatRequest, c *Captured) int {
	azure := strings.HasPrefix(r.URL.Path, "/openai/deployments/")
	if azure {
		c.Deployment = strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/openai/deployments/"), "/embeddings")
		if r.URL.Query().Get("api-version") == "" {
			return writeError(w, 404, "404", "", "", "Resource not found")
		}
	}
	if r.Method != http.MethodPost {
		return writeError(w, 405, "invalid_request_error", "", "", fmt.Sprintf("Invalid method %s", r.Method))
	}
	if s.cfg.APIKey != "" {
		got := r.Header.Get("api-key")
		if !azure {
			got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if got != s.cfg.APIKey {
			return writeError(w, 401, "invalid_request_error", "", "invalid_api_key", "Incorrect API key provided.")
		}
	}
	var req EmbeddingRequest
	if json.Unmarshal(c.Body, &req) != nil {
		return writeError(w, 400, "invalid_request_error", "", "", "We could not parse the JSON body of your request.")
	}
	inputs := req.Inputs()
	switch {
	case req.Model == "":
		return writeError(w, 400, "invalid_request_error", "model", "", "you must provide a model parameter")
	case len(inputs) == 0:
		return writeError(w, 400, "invalid_request_error", "input", "", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
	case req.EncodingFormat != "" && req.EncodingFormat != "float":
		return writeError(w, 400, "invalid_request_error", "encoding_format", "", "llmtest answers encoding_format float only")
	}
	for _, in := range inputs {
		if in == "" {
			return writeError(w, 400, "invalid_request_error", "input", "", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
		}
	}
	if len(s.cfg.Models) > 0 && !azure && !contains(s.cfg.Models, req.Model) {
		return writeError(w, 404, "invalid_request_error", "", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", req.Model))
	}

	step := Step{}
	s.mu.Lock()
	scripted := len(s.q) > 0
	if scripted {
		step = s.q[0]
		s.q = s.q[1:]
	}
	s.mu.Unlock()
	if !scripted && s.cfg.Decide != nil && creq != nil {
		if p := s.cfg.Decide(n, creq); p != nil {
			step = *p
		}
	}
	if step.RetryAfter != "" {
		w.Header().Set("Retry-After", step.RetryAfter)
	}
	if step.RetryAfterMs != "" {
		w.Header().Set("Retry-After-Ms", step.RetryAfterMs)
	}
	delay := step.Delay
	if step.Status == 0 && !step.Reset {
		delay += s.cfg.Latency
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return 0
		}
	}
	switch {
	case step.Reset:
		reset(w)
		return 0
	case step.Status != 0:
		return writeError(w, step.Status, step.Type, "", step.Code, step.Message)
	case step.Body != "":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		fmt.Fprint(w, step.Body)
		return 200
	}

	embed := s.cfg.Embed
	if embed == nil {
		embed = DefaultEmbed
	}
	data := make([]any, len(inputs))
	tokens := 0
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": embed(in, req.Dimensions)}
		tokens += Tokens(in)
	}
	resp := map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]any{"prompt_tokens": tokens, "total_tokens": tokens},
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	json.NewEncoder(w).Encode(resp)
	return 200
}
