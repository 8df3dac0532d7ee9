package synth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// Task is one synthetic-generation task. Generate makes the calls for one
// unit of work through c and returns the samples it made and the
// candidates it rejected, each with a stable reason.
//
// Generate returns an error only when the stage should stop
// (judges.StopsStage: the budget is spent, the endpoint is unusable, the
// context ended), together with what it finished before; a failure that
// concerns one item (retries ran out, a 400, an unparseable answer) is a
// Rejected with reason ReasonLLMError or ReasonParse. A Rejected's Sample
// is the candidate as far as it got (for an input unfit for the task, the
// input itself), its Meta the Provenance known so far (seed or chunk,
// keys of the calls made). Tasks are safe for concurrent use.
type Task interface {
	// Name is the task's name: self_instruct, evol_instruct, doc_qa or
	// chain_of_thought.
	Name() string
	// Generate runs the task on one Input.
	Generate(ctx context.Context, c *llm.Client, in Input) ([]datasets.Sample, []datasets.Rejected, error)
}

// Input is one unit of work of a Task.
type Input struct {
	// Samples are, for self_instruct, the seed samples shown as examples
	// in one generation prompt; for evol_instruct and chain_of_thought,
	// the samples to evolve or to answer, each on its own.
	Samples []datasets.Sample
	// Chunks are the document chunks of doc_qa (see ChunkDocument).
	Chunks []Chunk
	// Known, for self_instruct, holds the instructions that exist
	// already; a new instruction is kept only if novel against it (and
	// against the seeds and the other new ones), and is then added to
	// it. nil: only the seeds and the batch are compared.
	Known *NoveltyIndex
}

// Reasons of Rejected, stable: the funnel counts by them.
const (
	ReasonLLMError   = "synth.llm_error"   // the call failed (after the client's retries)
	ReasonParse      = "synth.parse"       // the answer could not be read (after a repair retry for JSON)
	ReasonTruncated  = "synth.truncated"   // the answer hit the token limit
	ReasonRefusal    = "synth.refusal"     // the model refused
	ReasonTooShort   = "synth.too_short"   // the answer is too short or has no content words
	ReasonUnusable   = "synth.unusable"    // the input does not suit the task (no user turn, say)
	ReasonNotNovel   = "synth.not_novel"   // self_instruct: ROUGE-L too close to a known instruction
	ReasonFiltered   = "synth.filtered"    // self_instruct: too short, too long or needs non-text input
	ReasonCopy       = "synth.copy"        // evol_instruct: the evolved instruction is (nearly) the original
	ReasonLeak       = "synth.leak"        // evol_instruct: the rewrite talks about the rewriting
	ReasonCitation   = "synth.citation"    // doc_qa: the pair cites another chunk
	ReasonQuote      = "synth.quote"       // doc_qa: the quoted evidence is not in the chunk
	ReasonShortChunk = "synth.short_chunk" // doc_qa: the chunk is too short to ask about
	ReasonFormat     = "synth.format"      // chain_of_thought: no reasoning or no final answer
)

// Provenance is what Sample.Meta records about a generated sample, as a
// JSON object.
type Provenance struct {
	// Task is the task's name.
	Task string `json:"task"`
	// Endpoint and Model: the endpoint's name and the model that
	// answered (as the server names it).
	Endpoint string `json:"endpoint,omitempty"`
	Model    string `json:"model"`
	// Templates maps each template used to the SHA-256 of its text.
	Templates map[string]string `json:"templates"`
	// Seed is the ID of the sample this one was made from (evol_instruct,
	// chain_of_thought); Seeds the example samples of a self_instruct
	// prompt.
	Seed  string   `json:"seed,omitempty"`
	Seeds []string `json:"seeds,omitempty"`
	// Chunk, Doc, Heading and Quote: doc_qa's chunk id, document path,
	// section and the evidence the answer quotes.
	Chunk   string `json:"chunk,omitempty"`
	Doc     string `json:"doc,omitempty"`
	Heading string `json:"heading,omitempty"`
	Quote   string `json:"quote,omitempty"`
	// Operation is evol_instruct's evolution operation.
	Operation string `json:"operation,omitempty"`
	// Novelty is self_instruct's highest ROUGE-L F against what was
	// known.
	Novelty *float64 `json:"novelty,omitempty"`
	// Keys are the llm cache keys of every call that made the sample, in
	// order (a repaired call has two).
	Keys []string `json:"llm_keys"`
	// Parent is the Meta of the sample this one was made from, when it
	// had one: a generated sample's provenance (evol_instruct's, say,
	// under chain_of_thought's), so a chain of stages keeps every step's
	// provenance and call keys. A Meta that is not JSON is kept as a JSON
	// string.
	Parent json.RawMessage `json:"parent,omitempty"`
}

// parentMeta is a sample's Meta as a Provenance.Parent: nil when empty,
// the JSON as it is, or a JSON string of a Meta that is not JSON.
func parentMeta(meta string) json.RawMessage {
	if strings.TrimSpace(meta) == "" {
		return nil
	}
	if json.Valid([]byte(meta)) {
		return json.RawMessage(meta)
	}
	b, _ := json.Marshal(meta)
	return b
}

// JSON encodes the provenance for Sample.Meta.
func (p Provenance) JSON() string {
	b, err := json.Marshal(p)
	if err != nil { // cannot happen
		return "{}"
	}
	return string(b)
}

// ParseProvenance reads Sample.Meta as written by a task.
func ParseProvenance(meta string) (Provenance, error) {
	var p Provenance
	err := json.Unmarshal([]byte(meta), &p)
	return p, err
}

// Sampling are the sampling settings of one kind of call.
type Sampling struct {
	// Temperature, when set, is sent as is (0 included); each task
	// documents its default.
	Temperature *float64 `yaml:"temperature,omitempty" json:"temperature,omitempty"`
	// MaxTokens caps the answer; 0: the task's default, -1: no cap.
	MaxTokens int `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty"`
	// Seed is sent when set.
	Seed *int `yaml:"seed,omitempty" json:"seed,omitempty"`
}

func (s Sampling) request(msgs []datasets.Message, defTemp float64, defMax int) llm.Request {
	t := defTemp
	if s.Temperature != nil {
		t = *s.Temperature
	}
	mt := s.MaxTokens
	switch {
	case mt == 0:
		mt = defMax
	case mt < 0:
		mt = 0
	}
	return llm.Request{Messages: msgs, Temperature: llm.Float(t), MaxTokens: mt, Seed: s.Seed}
}

func (s Sampling) validate(key string) error {
	if s.Temperature != nil && (*s.Temperature < 0 || *s.Temperature > 2) {
		return fmt.Errorf("%s.temperature %v is not in [0, 2]", key, *s.Temperature)
	}
	if s.MaxTokens < -1 {
		return fmt.Errorf("%s.max_tokens %d: use -1 for no cap", key, s.MaxTokens)
	}
	return nil
}

// gen is the state shared by the tasks.
type gen struct {
	name  string
	tmpls map[string]*Template
}

func (g *gen) prov(c *llm.Client, model string, keys []string, used ...string) Provenance {
	ep := c.Endpoint()
	if model == "" {
		model = ep.Model
	}
	t := make(map[string]string, len(used))
	for _, u := range used {
		t[u] = g.tmpls[u].SHA256
	}
	return Provenance{Task: g.name, Endpoint: ep.Name, Model: model, Templates: t, Keys: append([]string(nil), keys...)}
}

// reject builds a Rejected whose Sample is the candidate, with p (the
// provenance known so far) as its Meta.
func (g *gen) reject(reason, detail string, p Provenance, msgs ...datasets.Message) datasets.Rejected {
	s := datasets.Sample{Messages: msgs, Source: datasets.Source{Dataset: g.name}, Meta: p.JSON()}
	s.ID = datasets.ContentID(msgs)
	return datasets.Rejected{Stage: g.name, Reason: reason, Detail: detail, Sample: s}
}

// callError turns a failed call into a Rejected, or returns the error
// when it should stop the stage.
func (g *gen) callError(err error, p Provenance, msgs ...datasets.Message) (datasets.Rejected, error) {
	if judges.StopsStage(err) {
		return datasets.Rejected{}, err
	}
	var pe *judges.ParseError
	if errors.As(err, &pe) {
		return g.reject(ReasonParse, cut(err.Error(), 300), p, msgs...), nil
	}
	return g.reject(ReasonLLMError, cut(err.Error(), 300), p, msgs...), nil
}

// makeSample builds a generated sample with its ID and provenance.
func makeSample(msgs []datasets.Message, src datasets.Source, license string, p Provenance) datasets.Sample {
	return datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: src, License: license, Meta: p.JSON()}
}

// checkAnswer applies the answer checks shared by the tasks: not cut off,
// not empty or content-free, at least minWords words, not a refusal.
func checkAnswer(text, finish string, minWords int) (reason, detail string) {
	if finish == "length" {
		return ReasonTruncated, "finish_reason length"
	}
	w := RougeTokens(text)
	if len(w) == 0 || onlyStopWords(w) {
		return ReasonTooShort, "no content words"
	}
	if len(w) < minWords {
		return ReasonTooShort, fmt.Sprintf("%d words < %d", len(w), minWords)
	}
	if judges.IsRefusal(text) {
		return ReasonRefusal, cut(strings.TrimSpace(text), 120)
	}
	return "", ""
}

var stopWords = map[string]bool{
	"a": true, "an": true, "the": true, "and": true, "or": true, "of": true, "to": true, "in": true, "is": true,
	"it": true, "that": true, "this": true, "for": true, "on": true, "with": true, "as": true, "be": true, "are": true,
	"was": true, "i": true, "you": true, "we": true, "they": true, "he": true, "she": true, "at": true, "by": true,
}

func onlyStopWords(w []string) bool {
	for _, x := range w {
		if !stopWords[x] {
			return false
		}
	}
	return true
}

// instruction returns the sample's single user turn, with the system
// turns before it; ok is false for samples with no or several user turns.
func instruction(s datasets.Sample) (system []datasets.Message, text string, ok bool) {
	n := 0
	for _, m := range s.Messages {
		switch m.Role {
		case datasets.RoleSystem:
			if n == 0 {
				system = append(system, m)
			}
		case datasets.RoleUser:
			n++
			text = m.Content
		}
	}
	return system, text, n == 1 && strings.TrimSpace(text) != ""
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func user(text string) datasets.Message {
	return datasets.Message{Role: datasets.RoleUser, Content: text}
}

func assistant(text string) datasets.Message {
	return datasets.Message{Role: datasets.RoleAssistant, Content: text}
}
