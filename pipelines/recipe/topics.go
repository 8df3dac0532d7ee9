package recipe

import "github.com/sieve-data/sieve/topics"

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
}

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
	}
	return nil
}
