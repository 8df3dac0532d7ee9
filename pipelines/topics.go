package pipelines

import (
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// Stages that work on the topics of the latest topics stage before them
// (semantic_dedup, balance, and evol_instruct or self_instruct with
// seeds_from or thin_topics; the recipe refuses them without one):
//
//   - semantic_dedup and balance are whole-dataset stages like the other
//     dedups and the mix: they key on the samples as the stages before
//     them leave them (pendingTail.live) and mark what they drop, which
//     the shard writers apply in recipe order. semantic_dedup takes the
//     topics stage's model as a side input to embed the samples, and
//     picks survivors among the members that pass the later checks.
//   - a topic-seeded generation stage flushes what is pending (as every
//     generation stage does) and splits the samples by topic
//     (transforms.SelectTopics): evol_instruct evolves the chosen topics'
//     samples and passes the others unchanged; self_instruct draws its
//     seed pool from the chosen topics' samples only.

// topicsConfig is the Topics composite's configuration of a recipe's
// topics stage writing into the staging directory dir.
//
// Placement: a topics stage is a per-sample stage whose model is fitted
// on the samples as the stages before it left them. Build applies the
// pending dedup marks and tail steps first (as for a generation stage),
// so the fit and the report see exactly the samples that reach the
// stage; stages after it see the samples with their topics.
//
// The last topics stage of a recipe writes the version's
// topics/model.json and topics/report.json (they describe the topics the
// samples are written with); an earlier one writes them under
// topics/STAGE/.
//
// With name_with (and its key in the environment) the fit names the
// topics through the endpoint, with the response cache and the run's
// budget ledger as generation stages have them.
func topicsConfig(plan *Plan, i int, stage, dir, ledger string) transforms.TopicsConfig {
	c := plan.Recipe.Stages[i].Config.(*recipe.Topics)
	tc := transforms.TopicsConfig{Stage: stage, Dir: dir, Field: c.Field, K: c.K, Seed: c.Seed, MaxSamples: c.MaxFitSamples}
	if i != lastTopics(plan) {
		tc.Files = "topics/" + stage
	}
	if c.NameWith != nil && !plan.unnamed[i] {
		ep := *c.NameWith
		tc.Namer, tc.CacheDir, tc.BudgetLedger = &ep, cacheDir(c.NameCache, plan.Recipe.ResolvePath), ledger
	}
	return tc
}

// lastTopics is the index of a plan's last topics stage (-1: none).
func lastTopics(plan *Plan) int {
	last := -1
	for i, st := range plan.Recipe.Stages {
		if _, ok := st.Config.(*recipe.Topics); ok && !plan.Skipped[i] {
			last = i
		}
	}
	return last
}

// semDedupConfig is the SemanticDedupMarks configuration of a recipe's
// semantic_dedup stage; post are the checks after it (laterChecks).
func semDedupConfig(stage string, c *recipe.SemanticDedup, post []transforms.StepSpec, meter *transforms.ShuffleMeter) transforms.SemDedupConfig {
	return transforms.SemDedupConfig{Stage: stage, Threshold: c.Threshold, Keep: c.Keep, Seed: c.Seed, Post: post, Meter: meter}
}

// topicSelect is the topic selection of a generation stage (ok false when
// it takes every sample).
func topicSelect(stage, dir string, cfg recipe.StageConfig) (transforms.TopicSelect, bool) {
	var ts *recipe.TopicSeeds
	switch c := cfg.(type) {
	case *recipe.EvolInstruct:
		ts = &c.TopicSeeds
	case *recipe.SelfInstruct:
		ts = &c.TopicSeeds
	}
	if ts == nil || !ts.TopicSeeded() {
		return transforms.TopicSelect{}, false
	}
	ids, labels := ts.SeedTopics()
	return transforms.TopicSelect{Stage: stage, Dir: dir, IDs: ids, Labels: labels, Thin: ts.ThinTopics}, true
}
