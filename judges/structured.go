package judges

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/template"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// Structured selects how a JSON answer is asked for.
type Structured string

const (
	// StructuredAuto (the default) sends the JSON schema as
	// response_format json_schema; when the server rejects a request
	// carrying it (HTTP 400 or 422) and the same request without it
	// succeeds, the client's later calls go without it. The prompt
	// always describes the format too.
	StructuredAuto Structured = "auto"
	// StructuredSchema always sends the schema.
	StructuredSchema Structured = "schema"
	// StructuredPrompt never sends it: the prompt alone describes the
	// JSON (servers without structured output).
	StructuredPrompt Structured = "prompt"
)

// Validate checks the value ("" means auto).
func (s Structured) Validate() error {
	switch s {
	case "", StructuredAuto, StructuredSchema, StructuredPrompt:
		return nil
	}
	return fmt.Errorf("structured %q is not one of auto, schema, prompt", string(s))
}

// DefaultRepairPrompt is the user turn sent after an answer that could
// not be parsed. Its data are Error (what was wrong), Format (the format
// description) and Truncated (the answer hit the token limit).
const DefaultRepairPrompt = `Your previous reply could not be used: {{.Error}}.{{if .Truncated}} It was cut off by the length limit, so keep the text fields short.{{end}}
Reply again with only the corrected JSON object: no other text, no code fences. Use exactly this format:
{{.Format}}`

// RepairData is the data of a repair prompt template.
type RepairData struct {
	Error     string // why the answer was refused
	Format    string // JSONCall.Format
	Truncated bool   // the answer ended with finish_reason "length"
}

var defaultRepair = template.Must(template.New("repair").Option("missingkey=error").Parse(DefaultRepairPrompt))

// JSONCall is a chat request whose answer must be one JSON document that
// Parse accepts.
type JSONCall struct {
	// Request is sent as is, except that JSONSchema is dropped under
	// StructuredPrompt (and under StructuredAuto once the server refused
	// it).
	Request    llm.Request
	Structured Structured
	// Parse checks an answer's text; a non-nil error triggers the one
	// repair retry, and then a *ParseError.
	Parse func(text string) error
	// Format describes the wanted JSON for the repair prompt.
	Format string
	// Repair is the repair prompt template (RepairData); nil:
	// DefaultRepairPrompt.
	Repair *template.Template
}

// JSONResult is the outcome of CallJSON.
type JSONResult struct {
	// Text is the accepted answer (empty on failure).
	Text string
	// Raw holds every answer received, in order (one, or two after a
	// repair).
	Raw []string
	// Keys are the llm cache keys of the calls answered, in order.
	Keys []string
	// Model is the model that gave the last answer.
	Model string
	// Repaired is set when the accepted answer came from the repair call.
	Repaired bool
	// SchemaDropped is set when the call went without the JSON schema
	// because the server refused it.
	SchemaDropped bool
	// Usage sums the token usage of the calls.
	Usage llm.TokenUsage
}

// RawText joins Raw as Verdict.Raw documents it.
func (r JSONResult) RawText() string { return strings.Join(r.Raw, "\n--- repair ---\n") }

// ParseError is an answer that still did not parse after the repair
// retry. Raw and Repair are the two answers.
type ParseError struct {
	Raw    string
	Repair string
	// First is why the first answer was refused; Err why the repair was.
	First error
	Err   error
}

// Error says what was wrong with both answers.
func (e *ParseError) Error() string {
	return fmt.Sprintf("unusable model output after a repair retry: %v (first answer: %v)", e.Err, e.First)
}

// Unwrap returns the last parse error.
func (e *ParseError) Unwrap() error { return e.Err }

// noSchema remembers, for the life of the process, the clients whose
// server refused response_format json_schema (StructuredAuto).
var noSchema sync.Map // *llm.Client → struct{}

// CallJSON sends call.Request, checks the answer with call.Parse and, when
// that fails (prose instead of JSON, invalid or truncated JSON, values
// out of range), asks once more: the conversation plus the bad answer and
// a repair prompt quoting the error. Errors are the client's (see
// StopsStage) or a *ParseError; the result carries whatever answers came.
func CallJSON(ctx context.Context, c *llm.Client, call JSONCall) (JSONResult, error) {
	var res JSONResult
	if c == nil {
		return res, errors.New("judges: no llm client")
	}
	if call.Parse == nil {
		return res, errors.New("judges: JSONCall without Parse")
	}
	req := call.Request
	mode := call.Structured
	if mode == "" {
		mode = StructuredAuto
	}
	if err := mode.Validate(); err != nil {
		return res, err
	}
	if req.JSONSchema != nil {
		if _, refused := noSchema.Load(c); mode == StructuredPrompt || (mode == StructuredAuto && refused) {
			req.JSONSchema = nil
			res.SchemaDropped = mode == StructuredAuto
		}
	}
	resp, err := c.Chat(ctx, req)
	if err != nil && req.JSONSchema != nil && mode == StructuredAuto && schemaRefused(err) {
		req.JSONSchema = nil
		resp, err = c.Chat(ctx, req)
		if err == nil {
			noSchema.Store(c, struct{}{})
			res.SchemaDropped = true
		}
	}
	if err != nil {
		return res, err
	}
	res.add(resp)
	first := call.Parse(resp.Text)
	if first == nil {
		res.Text = resp.Text
		return res, nil
	}

	repair := call.Repair
	if repair == nil {
		repair = defaultRepair
	}
	var b bytes.Buffer
	if err := repair.Execute(&b, RepairData{Error: first.Error(), Format: call.Format, Truncated: resp.FinishReason == "length"}); err != nil {
		return res, fmt.Errorf("judges: repair prompt: %w", err)
	}
	prev := resp.Text
	if strings.TrimSpace(prev) == "" {
		prev = "(empty reply)"
	}
	prev = head(prev, 8000) // the bad answer is echoed; a runaway one is cut
	rreq := req
	rreq.Messages = append(append(append([]datasets.Message(nil), req.Messages...),
		datasets.Message{Role: datasets.RoleAssistant, Content: prev}),
		datasets.Message{Role: datasets.RoleUser, Content: b.String()})
	resp2, err := c.Chat(ctx, rreq)
	if err != nil {
		return res, err
	}
	res.add(resp2)
	second := call.Parse(resp2.Text)
	if second != nil {
		return res, &ParseError{Raw: resp.Text, Repair: resp2.Text, First: first, Err: second}
	}
	res.Text = resp2.Text
	res.Repaired = true
	return res, nil
}

func (r *JSONResult) add(resp llm.Response) {
	r.Raw = append(r.Raw, resp.Text)
	r.Keys = append(r.Keys, resp.Key)
	r.Model = resp.Model
	r.Usage.Prompt += resp.Usage.Prompt
	r.Usage.Completion += resp.Usage.Completion
	r.Usage.Total += resp.Usage.Total
	r.Usage.Estimated = r.Usage.Estimated || resp.Usage.Estimated
}

// schemaRefused reports whether err is the server rejecting the request
// itself (400, 422), which for a request that carries a schema usually
// means it does not support response_format json_schema.
func schemaRefused(err error) bool {
	var e *llm.Error
	return errors.As(err, &e) && e.Kind == llm.FailBadRequest && (e.Status == 400 || e.Status == 422)
}

// DecodeStrict decodes text, which must be exactly one JSON value (white
// space and one enclosing Markdown code fence aside), into v, refusing
// unknown object fields of struct targets and anything after the value.
func DecodeStrict(text string, v any) error {
	s := StripFence(text)
	if s == "" {
		return errors.New("the reply is empty, not JSON")
	}
	if s[0] != '{' && s[0] != '[' {
		return fmt.Errorf("the reply is not JSON (it starts %q)", head(s, 40))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the reply is not valid JSON for the format: %v", err)
	}
	if rest := strings.TrimSpace(s[dec.InputOffset():]); rest != "" {
		return fmt.Errorf("the reply has text after the JSON value (%q)", head(rest, 40))
	}
	return nil
}

// StripFence trims white space and, when the text is one Markdown code
// block (```json … ```), its fence lines.
func StripFence(text string) string {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, "```") || !strings.HasSuffix(s, "```") || len(s) < 6 {
		return s
	}
	nl := strings.IndexByte(s, '\n')
	if nl < 0 {
		return s
	}
	inner := s[nl+1 : len(s)-3]
	if strings.Contains(inner, "```") {
		return s
	}
	return strings.TrimSpace(inner)
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
