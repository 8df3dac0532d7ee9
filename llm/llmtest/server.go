// Package llmtest is an OpenAI-compatible chat-completions server for
// tests and benchmarks. It speaks the real protocol over real HTTP
// (net/http/httptest on a loopback port): POST /v1/chat/completions and
// Azure's /openai/deployments/{name}/chat/completions?api-version=…, with
// usage, response_format json_schema, finish_reason "length" when
// max_tokens cuts the answer, and errors in OpenAI's JSON format
// ({"error":{"message","type","param","code"}}).
//
// Behaviour is scripted per request: Script queues Steps (a 429 with
// Retry-After, a 500, a slow answer, a connection reset, a malformed or
// truncated body, a given text) that the next requests consume in order;
// Config.Decide picks a step from the request itself; otherwise the
// server answers with Config.Respond (by default "echo: " and the last
// user message, or a minimal instance of the requested JSON schema).
//
// Every request is captured with its raw body and headers (Requests),
// counted (Count) and the peak of concurrent requests recorded
// (MaxInFlight), so tests can assert what went over the wire.
//
// Token counts are deterministic: Tokens(s) is (len(s)+3)/4, a message
// costs 4 tokens more, a prompt 3 more.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config sets a server's fixed behaviour.
type Config struct {
	// APIKey, if set, is required: as "Authorization: Bearer KEY" on the
	// /v1 path, as the "api-key" header on the Azure path. Otherwise any
	// or no key is accepted.
	APIKey string
	// EchoKey makes 401 messages quote the presented key in full, like a
	// careless proxy, to test that clients scrub it.
	EchoKey bool
	// Models, if set, are the only models served; others get a 404
	// model_not_found.
	Models []string
	// Latency delays every answer (not errors from Steps with Status).
	Latency time.Duration
	// Respond makes the answer text of a request that no Step scripts;
	// nil: DefaultRespond.
	Respond func(*ChatRequest) string
	// Decide, if set, is asked for a Step for each request the Script
	// queue does not cover (n counts requests from 1); nil means the
	// default answer.
	Decide func(n int, r *ChatRequest) *Step
	// Embed makes the vector of one embeddings input; nil:
	// DefaultEmbed (see embeddings.go).
	Embed func(input string, dims int) []float32
}

// Step is the scripted behaviour of one request. The zero Step is the
// default answer.
type Step struct {
	// Status, if non-zero, answers with this HTTP status and an error
	// body in OpenAI's format (Code, Type and Message, or defaults for
	// the status).
	Status  int
	Code    string
	Type    string
	Message string
	// RetryAfter and RetryAfterMs set those headers (on any answer).
	RetryAfter   string
	RetryAfterMs string
	// Delay waits before answering; a client that gives up first sees a
	// timeout (the server notices and stops).
	Delay time.Duration
	// Reset drops the connection with a TCP RST instead of answering.
	Reset bool
	// Body, if set, is sent raw with status 200 (malformed JSON, say).
	Body string
	// Text answers with this content; FinishReason overrides "stop".
	Text         string
	FinishReason string
}

// Helpers for common steps.

// RateLimited is a 429 rate_limit_exceeded with Retry-After (seconds or
// an HTTP date; "" for none).
func RateLimited(retryAfter string) Step {
	return Step{Status: 429, RetryAfter: retryAfter}
}

// Fail is an error status with OpenAI's default body for it.
func Fail(status int) Step { return Step{Status: status} }

// Slow answers normally after d.
func Slow(d time.Duration) Step { return Step{Delay: d} }

// Reset drops the connection.
func Reset() Step { return Step{Reset: true} }

// Malformed is a 200 whose body is cut-off JSON.
func Malformed() Step {
	return Step{Body: `{"id":"chatcmpl-x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assi`}
}

// Reply answers with text; Truncated answers with text and
// finish_reason "length".
func Reply(text string) Step { return Step{Text: text} }

// Truncated answers with text and finish_reason "length".
func Truncated(text string) Step { return Step{Text: text, FinishReason: "length"} }

// Message is one chat message as sent.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is a parsed chat-completions request. Pointer fields are nil
// when the field was absent from the body; Raw has every top-level field
// as sent.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Seed                *int            `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	ResponseFormat      *ResponseFormat `json:"response_format"`
	Stream              bool            `json:"stream"`

	Raw map[string]json.RawMessage `json:"-"`
}

// ResponseFormat is the response_format field.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
}

// LastUser is the content of the last user message.
func (r *ChatRequest) LastUser() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Captured is one request as received.
type Captured struct {
	N          int // 1-based arrival order
	At         time.Time
	Method     string
	Path       string
	Query      url.Values
	Header     http.Header
	Body       []byte
	Request    *ChatRequest // nil if the body did not parse
	Deployment string       // Azure path only
	Status     int          // status answered (0 for a reset)
}

// Server is a running test server.
type Server struct {
	// URL is the OpenAI-style base URL, ending in /v1.
	URL string
	// Root is the server root, the base URL of Azure-kind endpoints.
	Root string

	cfg  Config
	srv  *httptest.Server
	mu   sync.Mutex
	q    []Step
	reqs []Captured
	n    int
	cur  int
	peak int
}

// Start starts a server on a loopback port.
func Start(cfg Config) *Server {
	s := &Server{cfg: cfg}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.Root = s.srv.URL
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close shuts the server down.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Script queues steps for the next requests, one each, in order.
func (s *Server) Script(steps ...Step) {
	s.mu.Lock()
	s.q = append(s.q, steps...)
	s.mu.Unlock()
}

// Requests returns the captured requests so far, in arrival order.
func (s *Server) Requests() []Captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Captured(nil), s.reqs...)
}

// Count is the number of requests received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// MaxInFlight is the most requests the server handled at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Tokens is the server's token count of a text.
func Tokens(s string) int { return (len(s) + 3) / 4 }

// PromptTokens is the server's prompt token count of messages.
func PromptTokens(msgs []Message) int {
	n := 3
	for _, m := range msgs {
		n += 4 + Tokens(m.Content)
	}
	return n
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.cur++
	s.peak = max(s.peak, s.cur)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cur--
		s.mu.Unlock()
	}()

	body, _ := io.ReadAll(r.Body)
	c := Captured{N: n, At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
		Header: r.Header.Clone(), Body: body}
	var req *ChatRequest
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		var cr ChatRequest
		if json.Unmarshal(body, &cr) == nil {
			cr.Raw = raw
			req = &cr
		}
	}
	c.Request = req
	status := s.serve(w, r, n, req, &c)
	c.Status = status
	s.mu.Lock()
	s.reqs = append(s.reqs, c)
	s.mu.Unlock()
}

// serve answers one request and returns the status sent (0: reset).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, n int, req *ChatRequest, c *Captured) int {
	if isEmbeddings(r.URL.Path) {
		return s.serveEmbeddings(w, r, n, req, c)
	}
	azure := false
	switch {
	case r.URL.Path == "/v1/chat/completions":
	case strings.HasPrefix(r.URL.Path, "/openai/deployments/") && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		azure = true
		c.Deployment = strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/openai/deployments/"), "/chat/completions")
	default:
		return writeError(w, 404, "invalid_request_error", "", "", fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	}
	if r.Method != http.MethodPost {
		return writeError(w, 405, "invalid_request_error", "", "", fmt.Sprintf("Invalid method %s", r.Method))
	}
	if azure && r.URL.Query().Get("api-version") == "" {
		return writeError(w, 404, "404", "", "", "Resource not found")
	}
	if s.cfg.APIKey != "" {
		got := r.Header.Get("api-key")
		if !azure {
			got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if got != s.cfg.APIKey {
			msg := "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
			if got == "" {
				msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
			} else if s.cfg.EchoKey {
				msg = "Incorrect API key provided: " + got + ". You can find your API key at https://platform.openai.com/account/api-keys."
			}
			return writeError(w, 401, "invalid_request_error", "", "invalid_api_key", msg)
		}
	}
	if req == nil {
		return writeError(w, 400, "invalid_request_error", "", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
	}
	if msg, param := validate(req); msg != "" {
		return writeError(w, 400, "invalid_request_error", param, "", msg)
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
	if !scripted && s.cfg.Decide != nil {
		if p := s.cfg.Decide(n, req); p != nil {
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
	if step.Reset {
		reset(w)
		return 0
	}
	if step.Status != 0 {
		return writeError(w, step.Status, step.Type, "", step.Code, step.Message)
	}
	if step.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		fmt.Fprint(w, step.Body)
		return 200
	}

	text, finish := step.Text, step.FinishReason
	if text == "" {
		if s.cfg.Respond != nil {
			text = s.cfg.Respond(req)
		} else {
			text = DefaultRespond(req)
		}
	}
	if finish == "" {
		finish = "stop"
	}
	limit := 0
	if req.MaxTokens != nil {
		limit = *req.MaxTokens
	}
	if req.MaxCompletionTokens != nil {
		limit = *req.MaxCompletionTokens
	}
	if limit > 0 && Tokens(text) > limit {
		text = text[:limit*4]
		finish = "length"
	}
	pt, ct := PromptTokens(req.Messages), Tokens(text)
	resp := map[string]any{
		"id":                 fmt.Sprintf("chatcmpl-llmtest-%d", n),
		"object":             "chat.completion",
		"created":            time.Now().Unix(),
		"model":              req.Model,
		"system_fingerprint": "llmtest",
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": text},
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage": map[string]any{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	json.NewEncoder(w).Encode(resp)
	return 200
}

func validate(r *ChatRequest) (msg, param string) {
	switch {
	case r.Model == "":
		return "you must provide a model parameter", "model"
	case len(r.Messages) == 0:
		return "[] is too short - 'messages'", "messages"
	case r.Stream:
		return "llmtest does not stream", "stream"
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2):
		return fmt.Sprintf("%v is greater than the maximum of 2 - 'temperature'", *r.Temperature), "temperature"
	case r.TopP != nil && (*r.TopP < 0 || *r.TopP > 1):
		return fmt.Sprintf("%v is greater than the maximum of 1 - 'top_p'", *r.TopP), "top_p"
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer", "tool":
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.", m.Role), fmt.Sprintf("messages[%d].role", i)
		}
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object":
		case "json_schema":
			if f.JSONSchema == nil {
				return "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"
			}
			if f.JSONSchema.Name == "" {
				return "Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name"
			}
			var v map[string]any
			if json.Unmarshal(f.JSONSchema.Schema, &v) != nil {
				return "Invalid schema for response_format: schema must be a JSON object.", "response_format.json_schema.schema"
			}
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", f.Type), "response_format.type"
		}
	}
	return "", ""
}

// DefaultRespond answers a json_schema request with a minimal instance of
// the schema and any other request with "echo: " and the last user
// message.
func DefaultRespond(r *ChatRequest) string {
	if f := r.ResponseFormat; f != nil && f.Type == "json_schema" && f.JSONSchema != nil {
		var schema any
		if json.Unmarshal(f.JSONSchema.Schema, &schema) == nil {
			b, _ := json.Marshal(Instance(schema))
			return string(b)
		}
	}
	if f := r.ResponseFormat; f != nil && f.Type == "json_object" {
		b, _ := json.Marshal(map[string]string{"echo": r.LastUser()})
		return string(b)
	}
	return "echo: " + r.LastUser()
}

// Instance builds a small value that satisfies a JSON schema's common
// keywords (type, properties, items, enum, const, minimum): integers are
// the minimum or 3, numbers 0.5, strings "ok", booleans true.
func Instance(schema any) any {
	m, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if v, ok := m["const"]; ok {
		return v
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	t := m["type"]
	if ts, ok := t.([]any); ok && len(ts) > 0 {
		t = ts[0]
	}
	switch t {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		for k, p := range props {
			out[k] = Instance(p)
		}
		return out
	case "array":
		return []any{Instance(m["items"])}
	case "integer":
		if v, ok := m["minimum"].(float64); ok {
			return int(v)
		}
		return 3
	case "number":
		if v, ok := m["minimum"].(float64); ok {
			return v
		}
		return 0.5
	case "boolean":
		return true
	case "null":
		return nil
	}
	return "ok"
}

// writeError sends an error in OpenAI's format and returns the status.
func writeError(w http.ResponseWriter, status int, typ, param, code, msg string) int {
	if typ == "" || msg == "" {
		dt, dc, dm := defaultError(status)
		if typ == "" {
			typ = dt
		}
		if code == "" {
			code = dc
		}
		if msg == "" {
			msg = dm
		}
	}
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if param != "" {
		e["param"] = param
	}
	if code != "" {
		e["code"] = code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": e})
	return status
}

func defaultError(status int) (typ, code, msg string) {
	switch {
	case status == 400:
		return "invalid_request_error", "", "Invalid request."
	case status == 401:
		return "invalid_request_error", "invalid_api_key", "Incorrect API key provided."
	case status == 403:
		return "invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"
	case status == 404:
		return "invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."
	case status == 429:
		return "requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."
	case status >= 500:
		return "server_error", "", "The server had an error while processing your request. Sorry about that!"
	}
	return "invalid_request_error", "", http.StatusText(status)
}

// reset hijacks the connection and closes it with SO_LINGER 0, so the
// client sees "connection reset by peer".
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("llmtest: cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
