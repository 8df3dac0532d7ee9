package pipelines

import (
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// topicsConfig is the Topics composite's configuration of a recipe's
// topics stage writing into the staging directory dir.
//
// Placement: a topics stage is a per-sample stage whose model is fitted
// on the samples as the stages before it left them. Build applies the
// pending dedup marks and tail steps first (as for a generation stage),
// so the fit and the report see exactly the samples that reach the
// stage; stages after it see the samples with their topics.
func topicsConfig(stage, dir string, c *recipe.Topics) transforms.TopicsConfig {
	return transforms.TopicsConfig{Stage: stage, Dir: dir, Field: c.Field, K: c.K, Seed: c.Seed, MaxSamples: c.MaxFitSamples}
}
