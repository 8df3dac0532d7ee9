package judges

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// Winner is the outcome of a pairwise comparison.
type Winner string

const (
	WinnerA Winner = "A"   // the first response given to Compare is better
	WinnerB Winner = "B"   // the second response is better
	Tie     Winner = "tie" // neither, or the two orders disagreed
)

// Preference is the result of PairwiseJudge.Compare, in terms of the
// caller's a and b.
type Preference struct {
	// Winner is a or b when both orders agree on it, otherwise Tie.
	Winner Winner `json:"winner"`
	// Consistent is set when both orders gave the same verdict (a tie in
	// both counts).
	Consistent bool `json:"consistent"`
	// Forward is the verdict with a shown as "A"; Swapped the verdict
	// with b shown as "A", mapped back to a and b.
	Forward Winner `json:"forward"`
	Swapped Winner `json:"swapped"`
	// Rationales of the forward and swapped calls.
	Rationales []string `json:"rationales,omitempty"`
	Judge      string   `json:"judge"`           // the judge's name
	Model      string   `json:"model,omitempty"` // the model that answered
	// Raw holds the raw answers of a call that could not be parsed.
	Raw  string   `json:"raw,omitempty"`
	Err  string   `json:"error,omitempty"`    // set when the comparison failed
	Keys []string `json:"llm_keys,omitempty"` // llm cache keys of the calls, in order
}

// PairwiseTemplate is the editable prompt of a pairwise comparison (a
// YAML file; the default is judges/prompts/pairwise.yaml, embedded). Its
// Instruction is a text/template over PairwiseData; when it does not use
// {{.Format}} the format description is appended.
type PairwiseTemplate struct {
	Name        string `yaml:"name"`             // default "pairwise"
	System      string `yaml:"system,omitempty"` // the system turn, if any
	Instruction string `yaml:"instruction"`      // the user turn's template
	// Repair overrides DefaultRepairPrompt (data: RepairData).
	Repair string `yaml:"repair,omitempty"`
	// Source is where it was read; Hash the SHA-256 of the file.
	Source string `yaml:"-"`
	Hash   string `yaml:"-"`

	tmpl   *template.Template
	repair *template.Template
}

// PairwiseData is the data of a PairwiseTemplate's Instruction.
type PairwiseData struct {
	// Prompt is the conversation (see TemplateData.Prompt).
	Prompt    string
	ResponseA string // shown as "A"
	ResponseB string // shown as "B"
	// Format describes the JSON answer.
	Format string
}

// pairwiseFormat describes the answer; pairwiseSchema is its schema.
const pairwiseFormat = `Answer with a single JSON object and nothing else:
{"rationale": "<a short comparison>", "winner": "A" | "B" | "tie"}`

var pairwiseSchema = json.RawMessage(`{"type":"object","properties":{"rationale":{"type":"string"},"winner":{"type":"string","enum":["A","B","tie"]}},"required":["rationale","winner"],"additionalProperties":false}`)

// LoadPairwise reads a pairwise template: "" or "pairwise" for the
// embedded default, otherwise a file path.
func LoadPairwise(ref string) (*PairwiseTemplate, error) {
	if ref == "" || ref == "pairwise" {
		b, err := files.ReadFile("prompts/pairwise.yaml")
		if err != nil {
			return nil, err
		}
		return ParsePairwise(b, "embedded:prompts/pairwise.yaml")
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("pairwise template: %w", err)
	}
	return ParsePairwise(b, ref)
}

// ParsePairwise reads a pairwise template from YAML and checks that its
// Instruction uses both responses and renders.
func ParsePairwise(data []byte, source string) (*PairwiseTemplate, error) {
	var p PairwiseTemplate
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("pairwise template %s: %w", source, err)
	}
	sum := sha256.Sum256(data)
	p.Source, p.Hash = source, hex.EncodeToString(sum[:])
	bad := func(format string, a ...any) error {
		return fmt.Errorf("pairwise template %s: %s", source, fmt.Sprintf(format, a...))
	}
	if p.Name == "" {
		p.Name = "pairwise"
	}
	if !strings.Contains(p.Instruction, ".ResponseA") || !strings.Contains(p.Instruction, ".ResponseB") {
		return nil, bad("instruction: must use {{.ResponseA}} and {{.ResponseB}}")
	}
	src := p.Instruction
	if !strings.Contains(src, ".Format") {
		src = strings.TrimRight(src, "\n") + "\n\n{{.Format}}\n"
	}
	var err error
	if p.tmpl, err = template.New(p.Name).Option("missingkey=error").Parse(src); err != nil {
		return nil, bad("instruction: %v", err)
	}
	p.repair = defaultRepair
	if p.Repair != "" {
		if p.repair, err = template.New("repair").Option("missingkey=error").Parse(p.Repair); err != nil {
			return nil, bad("repair: %v", err)
		}
	}
	if _, err := p.Messages([]datasets.Message{{Role: datasets.RoleUser, Content: "hi"}}, "a", "b"); err != nil {
		return nil, bad("instruction: %v", err)
	}
	return &p, nil
}

// Messages renders the prompt comparing a (shown as A) and b (as B).
func (p *PairwiseTemplate) Messages(prompt []datasets.Message, a, b string) ([]datasets.Message, error) {
	var out bytes.Buffer
	if err := p.tmpl.Execute(&out, PairwiseData{Prompt: FormatConversation(prompt), ResponseA: a, ResponseB: b, Format: pairwiseFormat}); err != nil {
		return nil, err
	}
	var msgs []datasets.Message
	if s := strings.TrimSpace(p.System); s != "" {
		msgs = append(msgs, datasets.Message{Role: datasets.RoleSystem, Content: s})
	}
	return append(msgs, datasets.Message{Role: datasets.RoleUser, Content: out.String()}), nil
}

// PairwiseOptions tune a PairwiseJudge; the zero value is the default.
type PairwiseOptions struct {
	// Name of the judge; default "pairwise".
	Name string
	// Template defaults to the embedded pairwise.yaml.
	Template *PairwiseTemplate
	// Temperature (default 0), MaxTokens (default
	// DefaultJudgeMaxTokens, -1 no cap), Seed and Structured as in
	// LLMOptions.
	Temperature *float64
	MaxTokens   int
	Seed        *int
	Structured  Structured
}

// PairwiseJudge compares two responses to the same prompt, asking twice
// with the responses in both orders to cancel position bias. It is safe
// for concurrent use.
type PairwiseJudge struct {
	name   string
	client *llm.Client
	tmpl   *PairwiseTemplate
	opts   LLMOptions
}

// NewPairwiseJudge returns a pairwise judge calling c.
func NewPairwiseJudge(c *llm.Client, o PairwiseOptions) (*PairwiseJudge, error) {
	if c == nil {
		return nil, errors.New("judges: pairwise judge needs an llm client")
	}
	lo := LLMOptions{Name: o.Name, Temperature: o.Temperature, MaxTokens: o.MaxTokens, Seed: o.Seed, Structured: o.Structured}
	if err := lo.validate(); err != nil {
		return nil, fmt.Errorf("judges: %w", err)
	}
	t := o.Template
	if t == nil {
		var err error
		if t, err = LoadPairwise(""); err != nil {
			return nil, err
		}
	}
	name := o.Name
	if name == "" {
		name = "pairwise"
	}
	return &PairwiseJudge{name: name, client: c, tmpl: t, opts: lo}, nil
}

// Name returns the judge's name.
func (p *PairwiseJudge) Name() string { return p.name }

// Compare asks which of a and b better answers prompt: once with a as
// "A" and b as "B", once swapped. The same preference in both orders
// wins; a disagreement (including a win against a tie) is a Tie with
// Consistent false. On an error (see StopsStage; a *ParseError when an
// answer could not be read after its repair retry) the Preference holds
// what is known.
func (p *PairwiseJudge) Compare(ctx context.Context, prompt []datasets.Message, a, b string) (Preference, error) {
	pref := Preference{Judge: p.name, Winner: Tie, Model: p.client.Endpoint().Model}
	fwd, err := p.ask(ctx, prompt, a, b, &pref)
	if err != nil {
		return pref, err
	}
	sw, err := p.ask(ctx, prompt, b, a, &pref)
	if err != nil {
		return pref, err
	}
	switch sw { // map the swapped verdict back to a and b
	case WinnerA:
		sw = WinnerB
	case WinnerB:
		sw = WinnerA
	}
	pref.Forward, pref.Swapped = fwd, sw
	pref.Consistent = fwd == sw
	if pref.Consistent {
		pref.Winner = fwd
	}
	return pref, nil
}

func (p *PairwiseJudge) ask(ctx context.Context, prompt []datasets.Message, first, second string, pref *Preference) (Winner, error) {
	msgs, err := p.tmpl.Messages(prompt, first, second)
	if err != nil {
		pref.Err = err.Error()
		return "", fmt.Errorf("judge %s: %w", p.name, err)
	}
	var w Winner
	var rationale string
	res, err := CallJSON(ctx, p.client, JSONCall{
		Request:    p.opts.request(msgs, &llm.JSONSchema{Name: "pairwise_verdict", Schema: pairwiseSchema, Strict: true}),
		Structured: p.opts.Structured,
		Format:     pairwiseFormat,
		Repair:     p.tmpl.repair,
		Parse: func(text string) error {
			var err error
			w, rationale, err = parseWinner(text)
			return err
		},
	})
	pref.Keys = append(pref.Keys, res.Keys...)
	if res.Model != "" {
		pref.Model = res.Model
	}
	if err != nil {
		pref.Err = err.Error()
		pref.Raw = res.RawText()
		return "", fmt.Errorf("judge %s: %w", p.name, err)
	}
	pref.Rationales = append(pref.Rationales, rationale)
	return w, nil
}

// parseWinner reads {"rationale": "…", "winner": "A"|"B"|"tie"} strictly
// (the winner's case aside).
func parseWinner(text string) (Winner, string, error) {
	var a struct {
		Rationale *string `json:"rationale"`
		Winner    *string `json:"winner"`
	}
	if err := DecodeStrict(text, &a); err != nil {
		return "", "", err
	}
	if a.Winner == nil {
		return "", "", errors.New(`the JSON has no "winner"`)
	}
	r := ""
	if a.Rationale != nil {
		r = strings.TrimSpace(*a.Rationale)
	}
	switch strings.ToLower(strings.TrimSpace(*a.Winner)) {
	case "a":
		return WinnerA, r, nil
	case "b":
		return WinnerB, r, nil
	case "tie":
		return Tie, r, nil
	}
	return "", "", fmt.Errorf(`winner %q is not "A", "B" or "tie"`, *a.Winner)
}
