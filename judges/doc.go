// Package judges scores samples: LLM judges that rate a conversation on a
// rubric through any OpenAI-compatible API, and heuristic judges that need
// no model. A judge is plain Go, Score(ctx, Sample) (Verdict, error); the
// Beam side (package transforms) batches, caches and counts.
package judges
