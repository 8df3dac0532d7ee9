// Package synth generates synthetic SFT samples through any
// OpenAI-compatible API (package llm). It is plain Go and knows nothing of
// Beam: a Task turns one Input into new samples and rejected candidates,
// and the Beam side (package transforms) fans inputs out, caches, counts
// and writes.
//
// # Tasks
//
//   - SelfInstruct (self_instruct): seed samples are shown as numbered
//     examples and the model writes new instructions as a numbered list
//     (ParseList reads it robustly); each is filtered as in Self-Instruct
//     (3 to 150 words, no words like "image" or "file", not starting with
//     punctuation, ROUGE-L F below 0.7 against the seeds, Input.Known and
//     the rest of the batch) and answered in a call of its own.
//   - EvolInstruct (evol_instruct): each sample's instruction is rewritten
//     by an evolution operation modelled on WizardLM's (deepen, add
//     constraints, concretize, increase reasoning, broaden), and the
//     rewrite answered; failed evolutions are eliminated (a near copy of
//     the original, a rewrite that talks about rewriting, a refusal, a
//     short "sorry" answer, a truncated or empty one).
//   - DocQA (doc_qa): ChunkDocument splits plain text or Markdown
//     (headings first, then by size with overlap; chunk IDs hash the
//     document path and offset), and the model writes grounded
//     question-and-answer pairs in JSON, each citing its chunk and quoting
//     its evidence; pairs that cite another chunk or quote text not in it
//     are rejected.
//   - ChainOfThought (chain_of_thought): existing prompts get a
//     step-by-step answer, written in the assistant turn as
//     "<think>\nREASONING\n</think>\n\nANSWER" (StyleThink, the default)
//     or "REASONING\n\nFinal answer: ANSWER" (StyleFinalAnswer);
//     SplitReasoning reads either back.
//
// # Prompts
//
// Every prompt is a text/template file in synth/prompts/, embedded in the
// binary (Templates lists them). A task's config maps template names to
// files (prompts: {evol_deepen: my/deepen.tmpl}) to override any of them;
// templates are checked when the task is built (they must render and use
// the field the task needs). Templates shape the calls, not the samples:
// a generated sample's user turn is the instruction or question itself
// (the answer template may add, say, "Answer concisely:"), and
// chain_of_thought keeps the original prompt.
//
// # Provenance
//
// Every generated sample's Meta is a Provenance as JSON: the task, the
// endpoint and model, the SHA-256 of each template used, the seed sample
// ID(s) or chunk ID, and the llm cache key of every call that made it.
// Sample IDs are content IDs as everywhere in sieve; Source.Dataset is
// the task's name.
//
// # Failures
//
// A Task's Generate returns an error only when the stage should stop
// (judges.StopsStage: budget spent, endpoint unusable, context ended),
// with what it finished before. Everything else is a datasets.Rejected
// with a stable reason (synth.llm_error, synth.parse, synth.truncated,
// synth.refusal, synth.not_novel, synth.copy, synth.citation, …) whose
// Sample is the candidate, with the provenance known so far in its Meta,
// for the funnel and for inspection.
//
// Sampling defaults: writing calls (new instructions, rewrites, Q&A) use
// temperature 0.7, answering calls temperature 0; every call goes
// through the llm client's cache, so a rerun replays the same outputs.
package synth
