package recipe

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/topics"
)

// Topics clusters the samples into topics (package topics: the built-in
// TF-IDF embedder and spherical k-means) and writes each sample's
// topic_id and topic_label. The model is fitted on a bounded, seeded
// sample of the samples as the stages before it left them (those of the
// smallest seeded id hashes, whatever their order) and saved with the
// version (topics/model.json) with a report (topics/report.json).
type Topics struct {
	// K is the number of topics; 0 chooses it in [2, 20] by the mean
	// silhouette (see topics.FitKMeans).
	K int `yaml:"k" json:"k"`
	// Field is the text embedded and labelled: prompt (system and user
	// turns, the default), response (assistant turns) or conversation.
	Field string `yaml:"field" json:"field"`
	// Seed makes every random choice of the fit (default 0).
	Seed uint64 `yaml:"seed" json:"seed"`
	// MaxFitSamples bounds the samples the model is fitted on (default
	// 20000); every sample is assigned.
	MaxFitSamples int `yaml:"max_fit_samples" json:"max_fit_samples"`
	// NameWith, if set, is an OpenAI-compatible endpoint that names each
	// topic from its keywords and representatives (topics.LLMNamer, one
	// call per topic); the name is the samples' topic_label in place of
	// the keyword label. It takes the recipe's llm: defaults as a
	// generation stage's endpoint does; without its API key the topics
	// are not named (the stage still runs).
	NameWith *llm.Endpoint `yaml:"name_with" json:"name_with,omitempty"`
	// NameCache is the namer's response cache directory (default: the
	// llm: section's cache, else the user's cache directory, sieve/llm).
	NameCache string `yaml:"name_cache" json:"name_cache,omitempty"`
}

// LLMEndpoint returns the namer's endpoint (nil when topics are not
// named).
func (c *Topics) LLMEndpoint() *llm.Endpoint { return c.NameWith }

// MaxTopicsK bounds a topics stage's k.
const MaxTopicsK = 1000

// MaxTopicsFitSamples bounds a topics stage's max_fit_samples (the fit
// sample is held in memory by one worker).
const MaxTopicsFitSamples = 1_000_000

func init() {
	stageKinds["topics"] = func() StageConfig { return &Topics{} }
}

func (c *Topics) defaults() {
	if c.Field == "" {
		c.Field = string(topics.FieldPrompt)
	}
	if c.MaxFitSamples == 0 {
		c.MaxFitSamples = 20000
	}
}

func (c *Topics) validate() error {
	d := *c
	d.defaults() // validate may run before defaults
	c = &d
	switch {
	case c.K < 0 || c.K == 1 || c.K > MaxTopicsK:
		return keyErr("k", "must be 0 (chosen by silhouette) or in [2, %d], got %d", MaxTopicsK, c.K)
	case !topics.Field(c.Field).Valid():
		return keyErr("field", "must be prompt, response or conversation, got %q", c.Field)
	case c.MaxFitSamples < 2 || c.MaxFitSamples > MaxTopicsFitSamples:
		return keyErr("max_fit_samples", "must be in [2, %d], got %d", MaxTopicsFitSamples, c.MaxFitSamples)
	case c.K > c.MaxFitSamples:
		return keyErr("k", "%d topics need at least as many fit samples (max_fit_samples is %d)", c.K, c.MaxFitSamples)
	case c.NameWith == nil && c.NameCache != "":
		return keyErr("name_cache", "only with name_with (the endpoint that names the topics)")
	}
	if c.NameWith != nil {
		if err := c.NameWith.Validate(); err != nil {
			return keyErr("name_with", "%v", err)
		}
	}
	return nil
}

// SemanticDedup drops semantic near duplicates within each topic of the
// latest topics stage before it (SemDeDup, package topics): samples are
// embedded with that stage's model and, in the keep policy's order, a
// sample whose cosine similarity to a kept one of its topic is at least
// the threshold is dropped as its duplicate. See transforms.SemanticDedupMarks.
type SemanticDedup struct {
	// Threshold is the cosine similarity from which two samples are
	// duplicates (default 0.9).
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Keep orders each topic's samples, first kept first: smallest_id
	// (default), longest or quality, as fuzzy_dedup's keep.
	Keep string `yaml:"keep" json:"keep"`
	// Seed draws the random hyperplanes of the LSH used in large topics.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// Balance evens out the topic mix of the latest topics stage before it:
// mode cap keeps at most cap samples per topic; uniform and temperature
// keep total samples (or fraction of them) spread toward equal topic
// sizes or sizes proportional to n^(1/temperature), no topic above cap
// when one is given. Which samples a topic keeps is decided by a seeded
// hash of their ids (deterministic, independent of order), and each
// topic keeps exactly its target (topics.NewPlan).
type Balance struct {
	// Mode is cap (the default when only cap is given), uniform or
	// temperature.
	Mode string `yaml:"mode" json:"mode"`
	// Cap bounds every topic (required for mode cap).
	Cap int64 `yaml:"cap" json:"cap,omitempty"`
	// Temperature of mode temperature: 1 keeps the mix, larger values
	// flatten it.
	Temperature float64 `yaml:"temperature" json:"temperature,omitempty"`
	// Total samples kept (uniform, temperature), or Fraction of those
	// reaching the stage.
	Total    int64   `yaml:"total" json:"total,omitempty"`
	Fraction float64 `yaml:"fraction" json:"fraction,omitempty"`
	// Seed makes the choice of samples.
	Seed uint64 `yaml:"seed" json:"seed"`
}

func init() {
	stageKinds["semantic_dedup"] = func() StageConfig { return &SemanticDedup{Threshold: 0.9, Keep: "smallest_id"} }
	stageKinds["balance"] = func() StageConfig { return &Balance{} }
}

func (c *SemanticDedup) defaults() {}

func (c *SemanticDedup) validate() error {
	if !(c.Threshold > 0 && c.Threshold <= 1) {
		return keyErr("threshold", "must be in (0, 1] (a cosine similarity), got %g", c.Threshold)
	}
	switch c.Keep {
	case "smallest_id", "longest", "quality":
	default:
		return keyErr("keep", "want smallest_id, longest or quality, got %q", c.Keep)
	}
	return nil
}

func (c *SemanticDedup) needsTopics() (string, bool) { return "", true }

func (c *Balance) defaults() {
	if c.Mode == "" && c.Cap > 0 && c.Total == 0 && c.Fraction == 0 && c.Temperature == 0 {
		c.Mode = "cap"
	}
}

func (c *Balance) validate() error {
	d := *c
	d.defaults() // validate may run before defaults
	c = &d
	switch {
	case c.Cap < 0:
		return keyErr("cap", "must be ≥ 0, got %d", c.Cap)
	case c.Total < 0:
		return keyErr("total", "must be ≥ 0, got %d", c.Total)
	case c.Fraction < 0 || c.Fraction > 1:
		return keyErr("fraction", "must be in (0, 1], got %g", c.Fraction)
	}
	switch c.Mode {
	case "cap":
		if c.Cap == 0 {
			return keyErr("cap", "mode cap needs cap > 0")
		}
		if c.Total > 0 || c.Fraction > 0 || c.Temperature != 0 {
			return keyErr("mode", "mode cap takes only cap (total, fraction and temperature are for uniform and temperature)")
		}
	case "uniform", "temperature":
		switch {
		case c.Total == 0 && c.Fraction == 0:
			return keyErr("total", "mode %s needs total > 0 or fraction in (0, 1]", c.Mode)
		case c.Total > 0 && c.Fraction > 0:
			return keyErr("fraction", "give total or fraction, not both")
		case c.Mode == "temperature" && !(c.Temperature > 0):
			return keyErr("temperature", "mode temperature needs temperature > 0, got %g", c.Temperature)
		case c.Mode == "uniform" && c.Temperature != 0:
			return keyErr("temperature", "only for mode temperature")
		}
	default:
		return keyErr("mode", "want cap, uniform or temperature, got %q", c.Mode)
	}
	return nil
}

func (c *Balance) needsTopics() (string, bool) { return "", true }

// BalanceConfig is the stage's topics.BalanceConfig.
func (c *Balance) BalanceConfig() topics.BalanceConfig {
	return topics.BalanceConfig{Mode: c.Mode, Cap: c.Cap, Temperature: c.Temperature, Total: c.Total, Fraction: c.Fraction, Seed: c.Seed}
}

// TopicSeeds makes a generation stage (evol_instruct, self_instruct)
// work from the samples of some topics of the latest topics stage before
// it: those listed in seeds_from, or the thin_topics smallest. The other
// samples pass unchanged (evol_instruct) or are not seeds
// (self_instruct).
type TopicSeeds struct {
	// SeedsFrom lists topics by id (a number) or label.
	SeedsFrom *SeedTopics `yaml:"seeds_from" json:"seeds_from,omitempty"`
	// ThinTopics picks the N topics with the fewest samples reaching the
	// stage (ties: the lower id).
	ThinTopics int `yaml:"thin_topics" json:"thin_topics,omitempty"`
}

// SeedTopics is seeds_from's value.
type SeedTopics struct {
	Topics []string `yaml:"topics" json:"topics"`
}

// TopicSeeded reports whether the stage selects its samples by topic.
func (t *TopicSeeds) TopicSeeded() bool { return t.SeedsFrom != nil || t.ThinTopics > 0 }

// SeedTopics returns seeds_from's topics: ids (entries that are
// non-negative integers) and labels (the others), in the order given.
func (t *TopicSeeds) SeedTopics() (ids []int32, labels []string) {
	if t.SeedsFrom == nil {
		return nil, nil
	}
	for _, s := range t.SeedsFrom.Topics {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32); err == nil && n >= 0 {
			ids = append(ids, int32(n))
			continue
		}
		labels = append(labels, s)
	}
	return ids, labels
}

func (t *TopicSeeds) validateTopicSeeds() error {
	switch {
	case t.ThinTopics < 0:
		return keyErr("thin_topics", "must be ≥ 0, got %d", t.ThinTopics)
	case t.ThinTopics > MaxTopicsK:
		return keyErr("thin_topics", "must be at most %d (topics' largest k), got %d", MaxTopicsK, t.ThinTopics)
	case t.SeedsFrom != nil && t.ThinTopics > 0:
		return keyErr("seeds_from", "give seeds_from or thin_topics, not both")
	case t.SeedsFrom != nil && len(t.SeedsFrom.Topics) == 0:
		return keyErr("seeds_from.topics", "list at least one topic (an id or a label)")
	}
	if t.SeedsFrom != nil {
		for i, s := range t.SeedsFrom.Topics {
			if strings.TrimSpace(s) == "" {
				return keyErr(fmt.Sprintf("seeds_from.topics[%d]", i), "empty topic")
			}
		}
	}
	return nil
}

// needsTopics names the key that needs an earlier topics stage.
func (t *TopicSeeds) needsTopics() (string, bool) {
	switch {
	case t.SeedsFrom != nil:
		return "seeds_from", true
	case t.ThinTopics > 0:
		return "thin_topics", true
	}
	return "", false
}

// topicStage is a stage that works on the topics of an earlier topics
// stage; key is the setting that needs them ("" for the whole stage).
type topicStage interface {
	needsTopics() (key string, ok bool)
}

// validateTopicStages checks that every stage that works on topics has a
// topics stage before it.
func (r *Recipe) validateTopicStages() error {
	seen := false
	for i, st := range r.Stages {
		if _, ok := st.Config.(*Topics); ok {
			seen = true
			continue
		}
		ts, ok := st.Config.(topicStage)
		if !ok {
			continue
		}
		key, needs := ts.needsTopics()
		if !needs || seen {
			continue
		}
		at := fmt.Sprintf("stages[%d].%s", i, st.Kind)
		if key != "" {
			at += "." + key
		}
		return keyErr(at, "needs an earlier topics stage (its topic_id groups the samples): add `- topics: {k: 16}` before it")
	}
	return nil
}
