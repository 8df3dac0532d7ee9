package judges

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// Judge scores one sample. Implementations are safe for concurrent use.
//
// Score returns a Verdict and a nil error when the sample was scored. On
// failure it returns an error and, where something is known, a Verdict
// with Err set (and Raw, when the model answered but the answer could not
// be read). StopsStage tells the failures that concern one sample from
// those that should stop the stage.
type Judge interface {
	// Name identifies the judge in verdicts, panels and thresholds.
	Name() string
	// Score rates the last assistant turn of s given the turns before it.
	Score(ctx context.Context, s datasets.Sample) (Verdict, error)
}

// Verdict is one judge's rating of one sample.
//
// Score is on the scale [Min, Max] (the rubric's, 1–5 for the heuristic
// judge, the panel's for a panel). Scores holds one score per criterion,
// each on its criterion's own scale (see Rubric); a panel's Scores are
// keyed "member" (the member's score on the panel scale) and
// "member/criterion" (the member's criterion score as the member gave it).
type Verdict struct {
	Score     float64            `json:"score"`               // the aggregated score
	Min       float64            `json:"min"`                 // the low end of Score's scale
	Max       float64            `json:"max"`                 // the high end of Score's scale
	Scores    map[string]float64 `json:"scores,omitempty"`    // per criterion (see above)
	Rationale string             `json:"rationale,omitempty"` // the judge's justification
	// Judge is the judge's name; Rubric the rubric's name and RubricHash
	// the SHA-256 of its file (LLM judges only).
	Judge      string `json:"judge"`                   // the judge's name
	Rubric     string `json:"rubric,omitempty"`        // the rubric's name
	RubricHash string `json:"rubric_sha256,omitempty"` // the rubric file's SHA-256
	// Model is the model that answered, as the server names it.
	Model string `json:"model,omitempty"`
	// Repaired is set when the first answer was not valid and the repair
	// prompt's answer was used.
	Repaired bool `json:"repaired,omitempty"`
	// Raw is the model's raw output, kept only when it could not be
	// parsed: the first answer and, after a line "--- repair ---", the
	// answer to the repair prompt.
	Raw string `json:"raw,omitempty"`
	// Err is set when the sample could not be scored; Score and Scores
	// are then meaningless.
	Err string `json:"error,omitempty"`
	// Keys are the llm cache keys of the calls made, in order.
	Keys []string `json:"llm_keys,omitempty"`
	// Members are the verdicts of a panel's judges, in panel order.
	Members []Verdict `json:"members,omitempty"`
}

// OK reports whether the verdict holds a score (Err is empty).
func (v Verdict) OK() bool { return v.Err == "" }

// Normalized maps Score onto [0, 1] (0 when the scale is unset).
func (v Verdict) Normalized() float64 {
	if v.Max <= v.Min {
		return 0
	}
	return clamp01((v.Score - v.Min) / (v.Max - v.Min))
}

// JSON is the verdict as a JSON object, the form stored in Sample.Judge.
func (v Verdict) JSON() string {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: every field marshals (scores are finite)
		return `{"error":"verdict does not encode"}`
	}
	return string(b)
}

// MarshalJSON writes the verdict, without a score when it failed (0
// would read as a real score).
func (v Verdict) MarshalJSON() ([]byte, error) {
	type plain Verdict
	if v.OK() {
		return json.Marshal(plain(v))
	}
	return json.Marshal(struct {
		plain
		Score *float64 `json:"score,omitempty"`
	}{plain: plain(v)})
}

// ParseVerdict reads what Verdict.JSON wrote (Sample.Judge).
func ParseVerdict(s string) (Verdict, error) {
	var v Verdict
	err := json.Unmarshal([]byte(s), &v)
	return v, err
}

// Annotate stores a verdict in a sample: Judge gets the verdict's JSON and
// JudgeScore its score (left nil when the verdict failed).
func Annotate(s *datasets.Sample, v Verdict) {
	s.Judge = v.JSON()
	s.JudgeScore = nil
	if v.OK() {
		sc := v.Score
		s.JudgeScore = &sc
		// Quality is the score on [0, 1], what keep: quality orders by.
		if v.Max > v.Min {
			q := min(max((v.Score-v.Min)/(v.Max-v.Min), 0), 1)
			s.Quality = &q
		}
	}
}

// StopsStage reports whether err means that every further call would fail
// alike, so a stage should stop rather than go on sample by sample: the
// endpoint's budget is spent (llm.ErrBudgetExhausted), the endpoint is
// unusable (an *llm.Error whose Fatal is true: bad key, unknown model, no
// quota, TLS or DNS trouble), or the context ended. Any other error (a
// *ParseError, retries run out, a 400 for this request) concerns one
// sample only: record it and go on.
func StopsStage(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, llm.ErrBudgetExhausted) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var e *llm.Error
	return errors.As(err, &e) && e.Fatal()
}

// splitLast returns the turns before the last assistant turn and that
// turn's content; ok is false when there is no assistant turn.
func splitLast(msgs []datasets.Message) (prompt []datasets.Message, response string, ok bool) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == datasets.RoleAssistant {
			return msgs[:i], msgs[i].Content, true
		}
	}
	return nil, "", false
}

func clamp01(x float64) float64 {
	switch {
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}
