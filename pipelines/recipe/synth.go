package recipe

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/synth"
)

// LLMDefaults are a recipe's llm: section, set once for every stage that
// calls a model (judge, evol_instruct, chain_of_thought, doc_qa,
// self_instruct, and a topics stage's name_with as its endpoint and
// name_cache as its cache):
//
//	llm:
//	  endpoint: {name: gpt, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY, max_concurrency: 32,
//	             budget: {max_cost: 20, prompt_price_per_1k: 0.00015, completion_price_per_1k: 0.0006}}
//	  cache: .sieve-cache/llm
//
// A stage inherits both; keys it gives itself win, key by key inside
// endpoint (and inside its budget), so `endpoint: {model: gpt-4o}` on a
// judge changes only the model. A heuristic judge takes nothing. The
// defaults are written into the stages when the recipe is parsed: the
// stages are then checked as if written out in full, and the canonical
// recipe (and so the content id) is the same as the longhand one.
type LLMDefaults struct {
	// Endpoint holds any endpoint keys (a stage completes it).
	Endpoint *llm.Endpoint `yaml:"endpoint" json:"endpoint,omitempty"`
	// Cache is the response cache directory.
	Cache string `yaml:"cache" json:"cache,omitempty"`
}

// llmStageKinds are the stages that take LLMDefaults.
var llmStageKinds = map[string]bool{"judge": true, "evol_instruct": true, "chain_of_thought": true, "doc_qa": true, "self_instruct": true}

// applyLLMDefaults writes the llm: section of a recipe's root node into
// the nodes of its LLM stages. Malformed sections are left alone for the
// strict decoder to report.
func applyLLMDefaults(root *yaml.Node) {
	root = unalias(root)
	if root.Kind != yaml.MappingNode {
		return
	}
	defs, stages := unalias(mapValue(root, "llm")), unalias(mapValue(root, "stages"))
	if defs == nil || defs.Kind != yaml.MappingNode || stages == nil || stages.Kind != yaml.SequenceNode {
		return
	}
	for i, item := range stages.Content {
		item = unalias(item)
		var kind, val *yaml.Node
		switch {
		case item.Kind == yaml.ScalarNode && item.Tag == "!!str":
			kind = item // "- chain_of_thought" with all defaults
		case item.Kind == yaml.MappingNode && len(item.Content) == 2:
			kind, val = item.Content[0], unalias(item.Content[1])
		default:
			continue
		}
		if kind.Value == "topics" {
			if m := namerDefaults(defs, val); m != nil {
				stages.Content[i] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column, Content: []*yaml.Node{kind, m}}
			}
			continue
		}
		if !llmStageKinds[kind.Value] {
			continue
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: kind.Line, Column: kind.Column}
		switch {
		case val == nil || (val.Kind == yaml.ScalarNode && val.Tag == "!!null"):
		case val.Kind == yaml.MappingNode:
			m.Line, m.Column = val.Line, val.Column
			m.Content = append([]*yaml.Node(nil), val.Content...)
		default:
			continue
		}
		if h := unalias(mapValue(m, "heuristic")); kind.Value == "judge" && h != nil {
			var on bool
			if h.Decode(&on) == nil && on {
				continue
			}
		}
		for j := 0; j+1 < len(defs.Content); j += 2 {
			k, dv := defs.Content[j], defs.Content[j+1]
			at := mapIndex(m, k.Value)
			switch {
			case at < 0:
				m.Content = append(m.Content, k, dv)
			case k.Value == "endpoint":
				m.Content[at+1] = mergeMappings(unalias(dv), unalias(m.Content[at+1]))
			}
		}
		stages.Content[i] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column, Content: []*yaml.Node{kind, m}}
	}
}

// namerDefaults is a topics stage's mapping val with the llm: section
// written in when the stage names its topics (has name_with): the
// endpoint into name_with, key by key, and the cache as name_cache. It
// is nil (nothing to change) for a stage without name_with. val is not
// changed.
func namerDefaults(defs, val *yaml.Node) *yaml.Node {
	if val == nil || val.Kind != yaml.MappingNode {
		return nil
	}
	at := mapIndex(val, "name_with")
	if at < 0 {
		return nil
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: val.Line, Column: val.Column, Content: append([]*yaml.Node(nil), val.Content...)}
	if ep := unalias(mapValue(defs, "endpoint")); ep != nil {
		nw := unalias(m.Content[at+1])
		if nw.Kind == yaml.ScalarNode && nw.Tag == "!!null" { // name_with: with every key from llm:
			nw = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: nw.Line, Column: nw.Column}
		}
		m.Content[at+1] = mergeMappings(ep, nw)
	}
	if c := mapIndex(defs, "cache"); c >= 0 && mapIndex(m, "name_cache") < 0 {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "name_cache"}, defs.Content[c+1])
	}
	return m
}

// mergeMappings returns base with over's keys put over it, mappings
// merged key by key; anything but two mappings is over. The nodes are
// not changed.
func mergeMappings(base, over *yaml.Node) *yaml.Node {
	if base == nil || over == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: over.Line, Column: over.Column, Style: over.Style}
	for i := 0; i+1 < len(base.Content); i += 2 {
		k, v := base.Content[i], base.Content[i+1]
		if o := mapIndex(over, k.Value); o >= 0 {
			v = mergeMappings(unalias(v), unalias(over.Content[o+1]))
			k = over.Content[o]
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(over.Content); i += 2 {
		if mapIndex(base, over.Content[i].Value) < 0 {
			out.Content = append(out.Content, over.Content[i], over.Content[i+1])
		}
	}
	return out
}

// mapIndex is the index of key's node in mapping m, or -1.
func mapIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// mapValue is key's value in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	if i := mapIndex(m, key); i >= 0 {
		return m.Content[i+1]
	}
	return nil
}

func unalias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// LLMStage is what every stage that calls a model has: the endpoint and
// the response cache.
type LLMStage struct {
	// Endpoint is an OpenAI-compatible API; its key comes from the
	// environment variable it names (never from the recipe).
	Endpoint *llm.Endpoint `yaml:"endpoint" json:"endpoint,omitempty"`
	// Cache is the response cache directory (default: the user's cache
	// directory, sieve/llm).
	Cache string `yaml:"cache" json:"cache,omitempty"`
	// AllowFailure lets the run go on when every call of the stage
	// failed; otherwise that fails the run.
	AllowFailure bool `yaml:"allow_failure" json:"allow_failure,omitempty"`
}

// FailureAllowed reports allow_failure.
func (c *LLMStage) FailureAllowed() bool { return c.AllowFailure }

// LLMEndpoint returns the endpoint the stage needs (nil when none).
func (c *LLMStage) LLMEndpoint() *llm.Endpoint { return c.Endpoint }

func (c *LLMStage) validateEndpoint(task string) error {
	if c.Endpoint == nil {
		return keyErr("endpoint", "%s needs an endpoint (base_url, model, api_key_env)", task)
	}
	if err := c.Endpoint.Validate(); err != nil {
		return keyErr("endpoint", "%v", err)
	}
	return nil
}

// Judge's endpoint, for the same check.
func (c *Judge) LLMEndpoint() *llm.Endpoint {
	if c.Heuristic {
		return nil
	}
	return c.Endpoint
}

func validMode(m string) error {
	if m != "" && m != "add" && m != "replace" {
		return keyErr("mode", "want add or replace, got %q", m)
	}
	return nil
}

// EvolInstruct rewrites each sample's instruction with Evol-Instruct
// operations and answers the rewrites (see synth.EvolInstruct). Mode add
// (default) keeps the originals; replace puts the evolved sample in the
// original's place.
type EvolInstruct struct {
	LLMStage         `yaml:",inline"`
	Mode             string `yaml:"mode" json:"mode"`
	synth.EvolConfig `yaml:",inline"`
	// TopicSeeds restricts the stage to the samples of some topics (the
	// others pass unchanged).
	TopicSeeds `yaml:",inline"`
}

func (c *EvolInstruct) defaults() {
	if c.Mode == "" {
		c.Mode = "add"
	}
}

func (c *EvolInstruct) validate() error {
	if err := c.validateEndpoint("evol_instruct"); err != nil {
		return err
	}
	if err := validMode(c.Mode); err != nil {
		return err
	}
	if err := c.validateTopicSeeds(); err != nil {
		return err
	}
	cfg := c.EvolConfig
	cfg.Prompts = nil // files are checked when the plan resolves them
	_, err := synth.NewEvolInstruct(cfg)
	return err
}

// ChainOfThought writes step-by-step answers for the samples' prompts
// (see synth.ChainOfThought). Mode replace (default) puts the new answer
// in place of the old; add keeps both.
type ChainOfThought struct {
	LLMStage        `yaml:",inline"`
	Mode            string `yaml:"mode" json:"mode"`
	synth.CoTConfig `yaml:",inline"`
}

func (c *ChainOfThought) defaults() {
	if c.Mode == "" {
		c.Mode = "replace"
	}
}

func (c *ChainOfThought) validate() error {
	if err := c.validateEndpoint("chain_of_thought"); err != nil {
		return err
	}
	if err := validMode(c.Mode); err != nil {
		return err
	}
	cfg := c.CoTConfig
	cfg.Prompts = nil
	_, err := synth.NewChainOfThought(cfg)
	return err
}

// DocQA generates grounded question-and-answer pairs from documents
// (plain text or Markdown files, local or gs://), chunked first (see
// synth.DocQA). The samples it makes join the stream at this stage.
type DocQA struct {
	LLMStage `yaml:",inline"`
	// Documents are paths or globs, relative to the recipe.
	Documents []string `yaml:"documents" json:"documents"`
	// License of the documents, given to the samples made from them.
	License        string            `yaml:"license" json:"license,omitempty"`
	Chunk          synth.ChunkConfig `yaml:"chunk" json:"chunk"`
	synth.QAConfig `yaml:",inline"`
}

func (c *DocQA) defaults() {}

func (c *DocQA) validate() error {
	if err := c.validateEndpoint("doc_qa"); err != nil {
		return err
	}
	if len(c.Documents) == 0 {
		return keyErr("documents", "at least one document path or glob is required")
	}
	if _, err := synth.ChunkDocument("probe.md", "probe", c.Chunk); err != nil {
		return keyErr("chunk", "%v", err)
	}
	cfg := c.QAConfig
	cfg.Prompts = nil
	_, err := synth.NewDocQA(cfg)
	return err
}

// SelfInstruct bootstraps new instructions from seed tasks (see
// synth.SelfInstructLoop): the seeds are a file's samples or, by default,
// the samples reaching the stage; the new samples join them.
type SelfInstruct struct {
	LLMStage `yaml:",inline"`
	// Instructions is how many new samples to aim for (required).
	Instructions int `yaml:"instructions" json:"instructions"`
	// Seeds is a file of seed tasks in any format sieve reads; default:
	// the samples reaching the stage.
	Seeds string `yaml:"seeds" json:"seeds,omitempty"`
	// License is the seeds file's license, given to the seeds and to the
	// new samples; with the samples reaching the stage as seeds it
	// overrides their common license. With allow_licenses it is required
	// for a seeds file, and whenever the samples reaching the stage may
	// have several licenses (the new samples' license would be unknown).
	License string `yaml:"license" json:"license,omitempty"`
	// SeedsPerPrompt examples per prompt (default 8), up to
	// MachinePerPrompt of them generated (default 2).
	SeedsPerPrompt   int `yaml:"seeds_per_prompt" json:"seeds_per_prompt"`
	MachinePerPrompt int `yaml:"machine_per_prompt" json:"machine_per_prompt"`
	// MaxSeeds caps the seed pool (default 1000), chosen by a seeded hash
	// of the sample ids.
	MaxSeeds int `yaml:"max_seeds" json:"max_seeds"`
	// MaxPrompts caps the generation prompts (default 10 × the prompts
	// the target needs).
	MaxPrompts int `yaml:"max_prompts" json:"max_prompts,omitempty"`
	// Seed makes the choice of examples reproducible.
	Seed                     string `yaml:"seed" json:"seed,omitempty"`
	synth.SelfInstructConfig `yaml:",inline"`
	// TopicSeeds takes the seeds from the samples of some topics only.
	TopicSeeds `yaml:",inline"`
}

func (c *SelfInstruct) defaults() {
	if c.SeedsPerPrompt == 0 {
		c.SeedsPerPrompt = 8
	}
	if c.MachinePerPrompt == 0 {
		c.MachinePerPrompt = 2
	}
	if c.MaxSeeds == 0 {
		c.MaxSeeds = 1000
	}
}

func (c *SelfInstruct) validate() error {
	d := *c
	d.defaults() // validate may run before defaults
	c = &d
	if err := c.validateEndpoint("self_instruct"); err != nil {
		return err
	}
	if c.Instructions <= 0 {
		return keyErr("instructions", "how many new samples to aim for is required (> 0)")
	}
	if c.SeedsPerPrompt < 1 || c.MachinePerPrompt < 0 || c.MachinePerPrompt >= c.SeedsPerPrompt {
		return keyErr("machine_per_prompt", "want 0 ≤ machine_per_prompt < seeds_per_prompt, got %d and %d", c.MachinePerPrompt, c.SeedsPerPrompt)
	}
	if c.MaxSeeds < 1 || c.MaxPrompts < 0 {
		return keyErr("max_seeds", "max_seeds must be positive and max_prompts not negative")
	}
	if err := c.validateTopicSeeds(); err != nil {
		return err
	}
	if key, ok := c.needsTopics(); ok && c.Seeds != "" {
		return keyErr(key, "seeds from a file have no topics: drop seeds: to take the seeds from the samples reaching the stage")
	}
	cfg := c.SelfInstructConfig
	cfg.Prompts = nil
	if _, err := synth.NewSelfInstruct(cfg); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}
