package recipe

import (
	"os"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/llm"
)

// TestGenerationStageErrors: generation stages are checked strictly, with
// the file, line and key of the problem.
func TestGenerationStageErrors(t *testing.T) {
	ep := `{name: e, kind: other, base_url: "http://localhost:1/v1", model: m}`
	for _, tc := range []struct{ stage, want string }{
		{`evol_instruct: {operations: [deepen]}`, "r.yaml:4: stages[0].evol_instruct.endpoint: evol_instruct needs an endpoint"},
		{`evol_instruct: {endpoint: ` + ep + `, mode: both}`, `stages[0].evol_instruct.mode: want add or replace, got "both"`},
		{`evol_instruct: {endpoint: ` + ep + `, operations: [shorten]}`, "shorten"},
		{`chain_of_thought: {endpoint: ` + ep + `, style: poem}`, `style "poem"`},
		{`chain_of_thought: {endpoint: ` + ep + `, tone: dry}`, "stages[0].chain_of_thought.tone: unknown key"},
		{`doc_qa: {endpoint: ` + ep + `}`, "stages[0].doc_qa.documents: at least one document"},
		{`self_instruct: {endpoint: ` + ep + `}`, "stages[0].self_instruct.instructions"},
		{`self_instruct: {endpoint: ` + ep + `, instructions: 10, seeds_per_prompt: 2, machine_per_prompt: 2}`, "machine_per_prompt"},
	} {
		_, err := Parse("r.yaml", []byte("name: x\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - "+tc.stage+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.stage, err, tc.want)
		}
	}
	r, err := Parse("r.yaml", []byte("name: x\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - evol_instruct: {endpoint: "+ep+", per_sample: 2}\n  - chain_of_thought: {endpoint: "+ep+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev, cot := r.Stages[0].Config.(*EvolInstruct), r.Stages[1].Config.(*ChainOfThought)
	if ev.Mode != "add" || ev.PerSample != 2 || cot.Mode != "replace" || ev.LLMEndpoint().Model != "m" {
		t.Errorf("defaults: evol %+v, cot mode %q", ev, cot.Mode)
	}
}

// TestLLMDefaults: endpoint and cache set once under llm: reach every
// LLM stage; a stage's own endpoint keys override them key by key
// (budget too), its cache replaces the default; the canonical recipe
// (and so the content id) equals the one written out stage by stage.
func TestLLMDefaults(t *testing.T) {
	short := `name: x
llm:
  endpoint: {name: gpt, kind: other, base_url: "http://localhost:1/v1", model: m, max_concurrency: 16, budget: {max_tokens: 1000, max_cost: 2, prompt_price_per_1k: 0.1}}
  cache: .cache/llm
sources: [{name: s, path: a.jsonl}]
stages:
  - evol_instruct: {operations: [deepen]}
  - chain_of_thought
  - judge: {endpoint: {name: big, model: m2, budget: {max_tokens: 50}}, rubric: helpfulness, cache: other}
  - judge: {heuristic: true}
`
	long := `name: x
sources: [{name: s, path: a.jsonl}]
stages:
  - evol_instruct: {endpoint: {name: gpt, kind: other, base_url: "http://localhost:1/v1", model: m, max_concurrency: 16, budget: {max_tokens: 1000, max_cost: 2, prompt_price_per_1k: 0.1}}, cache: .cache/llm, operations: [deepen]}
  - chain_of_thought: {endpoint: {name: gpt, kind: other, base_url: "http://localhost:1/v1", model: m, max_concurrency: 16, budget: {max_tokens: 1000, max_cost: 2, prompt_price_per_1k: 0.1}}, cache: .cache/llm}
  - judge: {endpoint: {name: big, kind: other, base_url: "http://localhost:1/v1", model: m2, max_concurrency: 16, budget: {max_tokens: 50, max_cost: 2, prompt_price_per_1k: 0.1}}, rubric: helpfulness, cache: other}
  - judge: {heuristic: true}
`
	r, err := Parse("r.yaml", []byte(short))
	if err != nil {
		t.Fatal(err)
	}
	ev, cot, j, h := r.Stages[0].Config.(*EvolInstruct), r.Stages[1].Config.(*ChainOfThought), r.Stages[2].Config.(*Judge), r.Stages[3].Config.(*Judge)
	if ev.Endpoint == nil || ev.Endpoint.Name != "gpt" || ev.Endpoint.MaxConcurrency != 16 || ev.Cache != ".cache/llm" || cot.Endpoint == nil || cot.Cache != ".cache/llm" {
		t.Fatalf("defaults not inherited: evol %+v cot %+v", ev.LLMStage, cot.LLMStage)
	}
	if e := j.Endpoint; e.Name != "big" || e.Model != "m2" || e.BaseURL != "http://localhost:1/v1" || e.Budget.MaxTokens != 50 || e.Budget.MaxCost != 2 || j.Cache != "other" {
		t.Errorf("judge's overrides: %+v cache %q", e, j.Cache)
	}
	if h.Endpoint != nil || h.Cache != "" {
		t.Errorf("the heuristic judge got an endpoint: %+v", h)
	}
	l, err := Parse("r.yaml", []byte(long))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := r.ContentCanonical()
	b, _ := l.ContentCanonical()
	if string(a) != string(b) {
		t.Errorf("canonical forms differ:\n%s\n%s", a, b)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"name: x\nllm: {endpoint: {name: g, modle: m}}\nsources: [{name: s, path: a.jsonl}]\n", "r.yaml:2: llm.endpoint.modle: unknown key"},
		{"name: x\nllm: {endpoints: {}}\nsources: [{name: s, path: a.jsonl}]\n", "llm.endpoints: unknown key"},
		{"name: x\nllm: {cache: c}\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - evol_instruct: {operations: [deepen]}\n", "stages[0].evol_instruct.endpoint: evol_instruct needs an endpoint"},
		{"name: x\nllm: {endpoint: {name: g, kind: other, model: m}}\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - evol_instruct\n", "base_url: required"},
	} {
		if _, err := Parse("r.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// TestREADMERecipeParses: the recipe of the README's Recipes section
// parses as written, its LLM stages taking the llm: defaults.
func TestREADMERecipeParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Recipes\n\n```yaml\n")
	if i < 0 {
		t.Fatal("README has no Recipes yaml block")
	}
	s = s[i+len("### Recipes\n\n```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	r, err := Parse("README.md", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, st := range r.Stages {
		if es, ok := st.Config.(interface{ LLMEndpoint() *llm.Endpoint }); ok && es.LLMEndpoint() != nil {
			n++
			if e := es.LLMEndpoint(); e.APIKeyEnv != "OPENAI_API_KEY" || e.MaxConcurrency != 32 {
				t.Errorf("stage %s endpoint %+v", st.Kind, e)
			}
		}
	}
	// evol_instruct, doc_qa, judge and the topic-seeded self_instruct.
	if n != 4 {
		t.Errorf("%d LLM stages with an endpoint, want 4", n)
	}
}
