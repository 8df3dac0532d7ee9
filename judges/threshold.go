package judges

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Reasons Decide gives for dropping a sample; stable, the funnel counts
// by them.
const (
	ReasonError     = "judge.error"     // the judge gave no verdict
	ReasonScore     = "judge.score"     // the score is below MinScore
	ReasonCriterion = "judge.criterion" // a criterion is below its minimum, or missing
)

// ThresholdConfig decides which judged samples to keep. The zero value
// keeps every sample with a verdict and drops those without.
type ThresholdConfig struct {
	// MinScore is the lowest Verdict.Score kept (on the verdict's scale,
	// e.g. 4.5 for the alpagasus rubric's 0-5); nil: no minimum.
	MinScore *float64 `yaml:"min_score,omitempty" json:"min_score,omitempty"`
	// MinCriteria are the lowest scores kept per key of Verdict.Scores
	// (a criterion, or "member" and "member/criterion" for a panel). A
	// verdict lacking a listed key is dropped.
	MinCriteria map[string]float64 `yaml:"min_criteria,omitempty" json:"min_criteria,omitempty"`
	// KeepErrors keeps samples the judge could not score (by default
	// they are dropped with reason judge.error).
	KeepErrors bool `yaml:"keep_errors,omitempty" json:"keep_errors,omitempty"`
}

// Validate checks that the minimums are finite numbers.
func (c ThresholdConfig) Validate() error {
	var errs []error
	if c.MinScore != nil && (math.IsNaN(*c.MinScore) || math.IsInf(*c.MinScore, 0)) {
		errs = append(errs, errors.New("min_score: not a finite number"))
	}
	for _, k := range sortedKeys(c.MinCriteria) {
		if v := c.MinCriteria[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("min_criteria.%s: not a finite number", k))
		}
	}
	return errors.Join(errs...)
}

// Decision is the outcome of Decide: Reason and Detail are set when Keep
// is false.
type Decision struct {
	Keep   bool   // keep the sample
	Reason string // a stable reason: judge.error, judge.score, judge.criterion
	Detail string // the values that decided, for people
}

// Decide keeps or drops a sample by its verdict: a failed verdict is
// dropped (ReasonError) unless KeepErrors; then a score below MinScore
// (ReasonScore); then the first criterion, in key order, below its
// minimum or missing (ReasonCriterion). It is a pure function.
func Decide(c ThresholdConfig, v Verdict) Decision {
	if !v.OK() {
		if c.KeepErrors {
			return Decision{Keep: true}
		}
		return Decision{Reason: ReasonError, Detail: fmt.Sprintf("%s: %s", v.Judge, v.Err)}
	}
	if c.MinScore != nil && v.Score < *c.MinScore {
		return Decision{Reason: ReasonScore, Detail: fmt.Sprintf("%s score %s < %s", v.Judge, num(v.Score), num(*c.MinScore))}
	}
	for _, k := range sortedKeys(c.MinCriteria) {
		lo := c.MinCriteria[k]
		x, ok := v.Scores[k]
		if !ok {
			return Decision{Reason: ReasonCriterion, Detail: fmt.Sprintf("%s gave no %q score", v.Judge, k)}
		}
		if x < lo {
			return Decision{Reason: ReasonCriterion, Detail: fmt.Sprintf("%s %s %s < %s", v.Judge, k, num(x), num(lo))}
		}
	}
	return Decision{Keep: true}
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
