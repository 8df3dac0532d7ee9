// Package judges scores samples: LLM judges that rate a conversation on a
// rubric through any OpenAI-compatible API, and heuristic judges that need
// no model. A judge is plain Go, Score(ctx, Sample) (Verdict, error); the
// Beam side (package transforms) batches, caches and counts.
//
// # Rubrics
//
// A Rubric is an editable YAML file: criteria (name, description, scale
// such as 1-5 or 1-10, weight) and a prompt whose user turn is a
// text/template over TemplateData ({{.Prompt}}, {{.Response}},
// {{.Criteria}}, {{.Format}}). The defaults ship in judges/rubrics/ and are
// embedded: helpfulness (1-5), correctness (1-10), complexity (1-5) and
// alpagasus (0-5, one accuracy score as AlpaGasus used). LoadRubric takes
// one of those names or a file path.
//
// # LLM judges
//
// LLMJudge sends the rubric's prompt with temperature 0 and a JSON schema
// built from the rubric as response_format (servers that refuse it are
// asked without it, see Structured), and parses the answer strictly: one
// JSON object {"rationale", "scores"} with every criterion a number within
// its scale and nothing else. An answer that does not parse (prose, broken
// or truncated JSON, a score out of range) gets exactly one repair retry:
// the conversation, the bad answer and a prompt quoting what was wrong.
// If that fails too, Score returns a *ParseError and a Verdict with Err
// set and the raw answers in Raw. CallJSON is that loop on its own, for
// other structured calls (package synth uses it).
//
// PairwiseJudge compares two responses to one prompt, asking in both
// orders; only a preference that survives the swap wins, anything else is
// a tie. Panel runs several judges on each sample and aggregates their
// scores (mean, median, min or max) on a common scale, keeping every
// member's verdict. HeuristicJudge scores from length, requested
// structure, lexical diversity and refusal phrases, with no model, so a
// recipe runs without an endpoint.
//
// # Errors
//
// StopsStage separates errors that should stop a stage (budget spent,
// bad key or model, context ended) from those that concern one sample (a
// *ParseError, retries run out): record the latter and go on.
//
// # Thresholds
//
// ThresholdConfig and Decide turn a Verdict into keep or drop with a
// stable reason (judge.error, judge.score, judge.criterion) and a detail;
// Annotate stores a verdict in Sample.JudgeScore and Sample.Judge.
package judges
