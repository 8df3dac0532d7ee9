package llm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/sieve-data/sieve/datasets"
)

// Request is one chat completion. Nil pointers and zero values are left
// out of the request (the server's defaults apply); a non-nil pointer is
// sent as is, zero included.
type Request struct {
	Messages []datasets.Message
	// Temperature and TopP, when set, reach the server exactly, 0
	// included.
	Temperature *float64
	TopP        *float64
	// MaxTokens caps the completion (sent as max_completion_tokens to
	// openai and azure endpoints, max_tokens to others); 0: no cap.
	MaxTokens int
	Seed      *int
	// JSONSchema asks for structured output
	// (response_format {"type":"json_schema", …}).
	JSONSchema *JSONSchema
	Stop       []string
}

// JSONSchema is a named JSON schema for structured output.
type JSONSchema struct {
	Name   string
	Schema json.RawMessage
	// Strict asks the server to follow the schema exactly.
	Strict bool
}

// Response is the first choice of a completion.
type Response struct {
	Text         string
	FinishReason string // "stop", "length", "content_filter", …
	Usage        TokenUsage
	// Cached is true when the answer came from the response cache (or
	// from an identical call in flight) and nothing was paid for it.
	Cached bool
	// Model is the model the server says answered.
	Model string
	// Key is the request's cache key (hex SHA-256), usable as provenance.
	Key string
}

// TokenUsage is the token count the server reported for one call.
type TokenUsage struct {
	Prompt     int `json:"prompt"`
	Completion int `json:"completion"`
	Total      int `json:"total"`
	// Estimated is set when the server reported no usage and the counts
	// are the client's estimate (about four characters a token).
	Estimated bool `json:"estimated,omitempty"`
}

// Float returns a pointer to v, for Request.Temperature and TopP.
func Float(v float64) *float64 { return &v }

// Int returns a pointer to v, for Request.Seed.
func Int(v int) *int { return &v }

func (r Request) validate() error {
	if len(r.Messages) == 0 {
		return errors.New("request has no messages")
	}
	if r.Temperature != nil && (math.IsNaN(*r.Temperature) || *r.Temperature < 0) {
		return fmt.Errorf("temperature %v is not a non-negative number", *r.Temperature)
	}
	if r.TopP != nil && (math.IsNaN(*r.TopP) || *r.TopP < 0 || *r.TopP > 1) {
		return fmt.Errorf("top_p %v is not in [0, 1]", *r.TopP)
	}
	if r.MaxTokens < 0 {
		return fmt.Errorf("max_tokens %d is negative", r.MaxTokens)
	}
	if s := r.JSONSchema; s != nil {
		if s.Name == "" {
			return errors.New("json schema needs a name")
		}
		if !json.Valid(s.Schema) {
			return fmt.Errorf("json schema %q is not valid JSON", s.Name)
		}
	}
	return nil
}

// defaultCompletionEstimate is the completion allowance of the token
// estimate when a request sets no MaxTokens.
const defaultCompletionEstimate = 256

// estimateSplit guesses a call's prompt and completion tokens before it
// is sent: about four characters a token plus a few tokens of framing per
// message, and the completion allowance (MaxTokens, as OpenAI's rate
// limiter counts it, or defaultCompletionEstimate). Rate limits and the
// budget reserve this and settle with the usage the server reports.
func estimateSplit(r Request) (prompt, completion int) {
	prompt = 3
	for _, m := range r.Messages {
		prompt += 4 + (len(m.Content)+len(m.Role)+3)/4
	}
	completion = defaultCompletionEstimate
	if r.MaxTokens > 0 {
		completion = r.MaxTokens
	}
	return prompt, completion
}

// keyDoc is the canonical form hashed into a cache key. Field order is
// fixed; unset pointers are null, so "unset" and 0 differ.
type keyDoc struct {
	V           int                `json:"v"`
	Kind        Kind               `json:"kind"`
	BaseURL     string             `json:"base_url"`
	Deployment  string             `json:"deployment,omitempty"`
	Model       string             `json:"model"`
	Messages    []datasets.Message `json:"messages"`
	Temperature *float64           `json:"temperature"`
	TopP        *float64           `json:"top_p"`
	MaxTokens   int                `json:"max_tokens"`
	Seed        *int               `json:"seed"`
	Stop        []string           `json:"stop"`
	Schema      *keySchema         `json:"json_schema"`
}

type keySchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict"`
	Schema json.RawMessage `json:"schema"`
}

// cacheKey is the hex SHA-256 of the canonical JSON of the endpoint's
// base URL, kind, model (and azure deployment), the messages and every
// parameter. The API key is not part of it.
func cacheKey(e Endpoint, r Request) string {
	d := keyDoc{
		V: 1, Kind: e.kind(), BaseURL: e.baseURL(), Model: e.model(),
		Messages: r.Messages, Temperature: r.Temperature, TopP: r.TopP,
		MaxTokens: r.MaxTokens, Seed: r.Seed, Stop: r.Stop,
	}
	if e.kind() == KindAzure {
		d.Deployment = e.Deployment
	}
	if d.Messages == nil {
		d.Messages = []datasets.Message{}
	}
	if s := r.JSONSchema; s != nil {
		d.Schema = &keySchema{Name: s.Name, Strict: s.Strict, Schema: canonicalJSON(s.Schema)}
	}
	b, err := json.Marshal(d)
	if err != nil { // cannot happen: every field marshals
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes a JSON document with sorted object keys and no
// insignificant white space, keeping numbers as written.
func canonicalJSON(raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}
