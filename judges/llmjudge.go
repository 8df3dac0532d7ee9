package judges

import (
	"context"
	"errors"
	"fmt"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// DefaultJudgeMaxTokens caps a judge's answer unless LLMOptions says
// otherwise.
const DefaultJudgeMaxTokens = 1024

// ErrNoResponse is returned for a sample without an assistant turn.
var ErrNoResponse = errors.New("sample has no assistant turn to judge")

// LLMOptions tune an LLMJudge. The zero value is the default.
type LLMOptions struct {
	// Name of the judge; default the rubric's name.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Temperature defaults to 0 (sent explicitly).
	Temperature *float64 `yaml:"temperature,omitempty" json:"temperature,omitempty"`
	// MaxTokens caps the answer; default DefaultJudgeMaxTokens, -1 for
	// no cap.
	MaxTokens int `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty"`
	// Seed is sent when set.
	Seed *int `yaml:"seed,omitempty" json:"seed,omitempty"`
	// Structured: auto (default), schema or prompt; see Structured.
	Structured Structured `yaml:"structured,omitempty" json:"structured,omitempty"`
}

func (o *LLMOptions) request(msgs []datasets.Message, schema *llm.JSONSchema) llm.Request {
	t := 0.0
	if o.Temperature != nil {
		t = *o.Temperature
	}
	mt := o.MaxTokens
	switch {
	case mt == 0:
		mt = DefaultJudgeMaxTokens
	case mt < 0:
		mt = 0
	}
	return llm.Request{Messages: msgs, Temperature: llm.Float(t), MaxTokens: mt, Seed: o.Seed, JSONSchema: schema}
}

func (o *LLMOptions) validate() error {
	if o.Temperature != nil && (*o.Temperature < 0 || *o.Temperature > 2) {
		return fmt.Errorf("temperature %v is not in [0, 2]", *o.Temperature)
	}
	return o.Structured.Validate()
}

// LLMJudge rates responses on a Rubric through an llm.Client: the
// rubric's prompt, the JSON schema built from it (see Structured), strict
// parsing of the answer and one repair retry (see CallJSON). It is safe
// for concurrent use.
type LLMJudge struct {
	name   string
	client *llm.Client
	rubric *Rubric
	opts   LLMOptions
}

// NewLLMJudge returns a judge that scores with rubric r through c.
func NewLLMJudge(c *llm.Client, r *Rubric, o LLMOptions) (*LLMJudge, error) {
	if c == nil {
		return nil, errors.New("judges: llm judge needs an llm client")
	}
	if r == nil {
		return nil, errors.New("judges: llm judge needs a rubric")
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("judges: %w", err)
	}
	name := o.Name
	if name == "" {
		name = r.Name
	}
	return &LLMJudge{name: name, client: c, rubric: r, opts: o}, nil
}

// Name returns the judge's name.
func (j *LLMJudge) Name() string { return j.name }

// Rubric returns the judge's rubric.
func (j *LLMJudge) Rubric() *Rubric { return j.rubric }

// Score rates the last assistant turn of s given the turns before it
// (ErrNoResponse when there is none).
func (j *LLMJudge) Score(ctx context.Context, s datasets.Sample) (Verdict, error) {
	prompt, resp, ok := splitLast(s.Messages)
	if !ok {
		v := j.verdict()
		v.Err = ErrNoResponse.Error()
		return v, ErrNoResponse
	}
	return j.ScoreResponse(ctx, prompt, resp)
}

// ScoreResponse rates response as an answer to prompt.
//
// A verdict that could not be read even after the repair retry comes
// with a *ParseError, Err set and the raw answers in Raw. A failed call
// returns the client's error (see StopsStage) with Err set.
func (j *LLMJudge) ScoreResponse(ctx context.Context, prompt []datasets.Message, response string) (Verdict, error) {
	v := j.verdict()
	msgs, err := j.rubric.Messages(prompt, response)
	if err != nil {
		v.Err = err.Error()
		return v, fmt.Errorf("judge %s: rubric %s: %w", j.name, j.rubric.Name, err)
	}
	schema := &llm.JSONSchema{Name: j.rubric.SchemaName(), Schema: j.rubric.Schema(), Strict: true}
	var scores map[string]float64
	var rationale string
	res, err := CallJSON(ctx, j.client, JSONCall{
		Request:    j.opts.request(msgs, schema),
		Structured: j.opts.Structured,
		Format:     j.rubric.Format(),
		Repair:     j.rubric.repair,
		Parse: func(text string) error {
			var err error
			scores, rationale, err = j.rubric.Parse(text)
			return err
		},
	})
	v.Keys = res.Keys
	if res.Model != "" {
		v.Model = res.Model
	}
	if err != nil {
		v.Err = err.Error()
		v.Raw = res.RawText()
		return v, fmt.Errorf("judge %s: %w", j.name, err)
	}
	v.Scores = scores
	v.Rationale = rationale
	v.Score = j.rubric.Aggregate(scores)
	v.Repaired = res.Repaired
	return v, nil
}

func (j *LLMJudge) verdict() Verdict {
	return Verdict{Judge: j.name, Rubric: j.rubric.Name, RubricHash: j.rubric.Hash,
		Min: j.rubric.Scale.Min, Max: j.rubric.Scale.Max, Model: j.client.Endpoint().Model}
}
