package recipe

import (
	"fmt"

	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/synth"
)

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
	cfg := c.SelfInstructConfig
	cfg.Prompts = nil
	if _, err := synth.NewSelfInstruct(cfg); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}
