package recipe

import (
	"strings"
	"testing"
)

// TestTopicsDefaults: a topics stage without max_fit_samples or field
// gets the documented defaults (20000, prompt); validation runs before
// defaults are applied (see SelfInstruct.validate), which refused it
// ("max_fit_samples: must be in [2, 1000000], got 0").
func TestTopicsDefaults(t *testing.T) {
	r, err := Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n  - topics: {k: 0, seed: 1}\n  - topics\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range r.Stages {
		c := st.Config.(*Topics)
		if c.MaxFitSamples != 20000 || c.Field != "prompt" {
			t.Errorf("topics defaults: %+v", c)
		}
	}
}

func parseStages(stages string) (*Recipe, error) {
	return Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n"+stages))
}

// TestTopicStagesParse: semantic_dedup and balance after a topics stage,
// with their defaults; the canonical recipe names their settings.
func TestTopicStagesParse(t *testing.T) {
	r, err := parseStages("  - topics: {k: 4}\n  - semantic_dedup\n  - semantic_dedup: {threshold: 0.85, keep: longest, seed: 3}\n" +
		"  - balance: {cap: 100}\n  - balance: {mode: temperature, temperature: 2, fraction: 0.5, seed: 1}\n  - balance: {mode: uniform, total: 1000, cap: 400}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Stages[1].Config.(*SemanticDedup); c.Threshold != 0.9 || c.Keep != "smallest_id" {
		t.Errorf("semantic_dedup defaults: %+v", c)
	}
	if c := r.Stages[2].Config.(*SemanticDedup); c.Threshold != 0.85 || c.Keep != "longest" || c.Seed != 3 {
		t.Errorf("semantic_dedup: %+v", c)
	}
	if c := r.Stages[3].Config.(*Balance); c.Mode != "cap" || c.Cap != 100 {
		t.Errorf("balance with only cap: %+v", c)
	}
	if c := r.Stages[4].Config.(*Balance); c.Mode != "temperature" || c.Temperature != 2 || c.Fraction != 0.5 {
		t.Errorf("balance temperature: %+v", c)
	}
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"semantic_dedup":{"threshold":0.9,"keep":"smallest_id","seed":0}}`,
		`{"balance":{"mode":"cap","cap":100,"seed":0}}`} {
		if !strings.Contains(string(canon), want) {
			t.Errorf("canonical recipe lacks %s:\n%s", want, canon)
		}
	}
}

// TestTopicStagesNeedTopics: semantic_dedup, balance and topic-seeded
// generation need an earlier topics stage; bad values name their key.
func TestTopicStagesNeedTopics(t *testing.T) {
	ep := `{name: e, kind: other, base_url: "http://localhost:1/v1", model: m}`
	for _, tc := range []struct{ stages, want string }{
		{"  - semantic_dedup\n", "r.yaml:4: stages[0].semantic_dedup: needs an earlier topics stage"},
		{"  - exact_dedup\n  - balance: {cap: 3}\n  - topics\n", "r.yaml:5: stages[1].balance: needs an earlier topics stage"},
		{"  - evol_instruct: {endpoint: " + ep + ", thin_topics: 2}\n", "stages[0].evol_instruct.thin_topics: needs an earlier topics stage"},
		{"  - self_instruct: {endpoint: " + ep + ", instructions: 5, seeds_from: {topics: [1]}}\n", "stages[0].self_instruct.seeds_from: needs an earlier topics stage"},
		{"  - topics\n  - semantic_dedup: {threshold: 1.5}\n", "stages[1].semantic_dedup.threshold: must be in (0, 1]"},
		{"  - topics\n  - semantic_dedup: {keep: newest}\n", "stages[1].semantic_dedup.keep: want smallest_id, longest or quality"},
		{"  - topics\n  - balance\n", "stages[1].balance.mode: want cap, uniform or temperature"},
		{"  - topics\n  - balance: {mode: cap}\n", "stages[1].balance.cap: mode cap needs cap > 0"},
		{"  - topics\n  - balance: {mode: uniform}\n", "stages[1].balance.total: mode uniform needs total > 0 or fraction in (0, 1]"},
		{"  - topics\n  - balance: {mode: uniform, total: 10, fraction: 0.5}\n", "stages[1].balance.fraction: give total or fraction, not both"},
		{"  - topics\n  - balance: {mode: temperature, fraction: 0.5}\n", "stages[1].balance.temperature: mode temperature needs temperature > 0"},
		{"  - topics\n  - balance: {mode: uniform, temperature: 2, total: 5}\n", "stages[1].balance.temperature: only for mode temperature"},
		{"  - topics\n  - evol_instruct: {endpoint: " + ep + ", thin_topics: 2, seeds_from: {topics: [1]}}\n", "give seeds_from or thin_topics, not both"},
		{"  - topics\n  - evol_instruct: {endpoint: " + ep + ", seeds_from: {topics: []}}\n", "seeds_from.topics: list at least one topic"},
		{"  - topics\n  - evol_instruct: {endpoint: " + ep + ", thin_topics: -1}\n", "thin_topics: must be ≥ 0"},
		{"  - topics\n  - self_instruct: {endpoint: " + ep + ", instructions: 5, seeds: s.jsonl, thin_topics: 1}\n", "thin_topics: seeds from a file have no topics"},
	} {
		_, err := parseStages(tc.stages)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.stages, err, tc.want)
		}
	}
}

// TestTopicSeedsParse: seeds_from lists topics by id or label (a YAML
// number is an id); the canonical form of a stage without them is
// unchanged (no new keys in existing recipes' content ids).
func TestTopicSeedsParse(t *testing.T) {
	ep := `{name: e, kind: other, base_url: "http://localhost:1/v1", model: m}`
	r, err := parseStages("  - topics\n  - evol_instruct: {endpoint: " + ep + `, seeds_from: {topics: [3, "recipe · chicken · bake", "7"]}}` +
		"\n  - self_instruct: {endpoint: " + ep + ", instructions: 5, thin_topics: 2}\n  - evol_instruct: {endpoint: " + ep + "}\n")
	if err != nil {
		t.Fatal(err)
	}
	ev := r.Stages[1].Config.(*EvolInstruct)
	ids, labels := ev.SeedTopics()
	if len(ids) != 2 || ids[0] != 3 || ids[1] != 7 || len(labels) != 1 || labels[0] != "recipe · chicken · bake" {
		t.Errorf("seeds_from: ids %v labels %q", ids, labels)
	}
	si := r.Stages[2].Config.(*SelfInstruct)
	if si.ThinTopics != 2 || !si.TopicSeeded() || r.Stages[3].Config.(*EvolInstruct).TopicSeeded() {
		t.Errorf("thin_topics: %+v", si.TopicSeeds)
	}
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(canon), `"seeds_from":{"topics":["3","recipe · chicken · bake","7"]}`) || !strings.Contains(string(canon), `"thin_topics":2`) {
		t.Errorf("canonical: %s", canon)
	}
	if strings.Count(string(canon), "seeds_from") != 1 || strings.Count(string(canon), "thin_topics") != 1 {
		t.Errorf("a stage without topic seeds names them: %s", canon)
	}
}

// TestTopicsNameWith: a topics stage's name_with is its namer's endpoint
// (LLMEndpoint, for the key check and skipping); it takes the llm:
// section's endpoint key by key and its cache as name_cache; a topics
// stage without name_with takes nothing; a bad endpoint or a name_cache
// without name_with names its key; a recipe without name_with keeps its
// canonical form.
func TestTopicsNameWith(t *testing.T) {
	r, err := Parse("r.yaml", []byte(`name: x
llm:
  endpoint: {name: gpt, kind: other, base_url: "http://localhost:1/v1", model: m, api_key_env: K, budget: {max_cost: 2, prompt_price_per_1k: 0.1}}
  cache: .cache/llm
sources: [{name: a, path: p}]
stages:
  - topics: {k: 4, name_with: {model: m2}}
  - topics: {k: 3, name_with: }
  - topics: {k: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := r.Stages[0].Config.(*Topics), r.Stages[1].Config.(*Topics), r.Stages[2].Config.(*Topics)
	if e := a.LLMEndpoint(); e == nil || e.Name != "gpt" || e.Model != "m2" || e.BaseURL != "http://localhost:1/v1" || e.Budget.MaxCost != 2 || a.NameCache != ".cache/llm" {
		t.Errorf("name_with with defaults: %+v, cache %q", e, a.NameCache)
	}
	if e := b.LLMEndpoint(); e == nil || e.Model != "m" || b.NameCache != ".cache/llm" {
		t.Errorf("empty name_with: %+v", e)
	}
	if c.LLMEndpoint() != nil || c.NameCache != "" {
		t.Errorf("topics without name_with: %+v", c)
	}
	canon, err := r.Canonical()
	if err != nil || !strings.Contains(string(canon), `{"topics":{"k":2,"field":"prompt","seed":0,"max_fit_samples":20000}}`) {
		t.Errorf("canonical (%v):\n%s", err, canon)
	}
	for stage, want := range map[string]string{
		"  - topics: {k: 2, name_with: {model: m}}\n":                      "stages[0].topics.name_with",
		"  - topics: {k: 2, name_cache: c}\n":                              "stages[0].topics.name_cache",
		"  - topics: {k: 2, name_with: {base_url: x, model: m, bad: 1}}\n": "bad",
	} {
		if _, err := parseStages(stage); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", stage, err, want)
		}
	}
}
