package judges

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sieve-data/sieve/datasets"
)

// Aggregation combines a panel's scores.
type Aggregation string

const (
	AggMean   Aggregation = "mean"   // arithmetic mean (the default)
	AggMedian Aggregation = "median" // median; the mean of the middle two for an even count
	AggMin    Aggregation = "min"    // the harshest judge's score
	AggMax    Aggregation = "max"    // the most lenient judge's score
)

// PanelOptions configure a Panel; the zero value is the default.
type PanelOptions struct {
	// Name of the panel; default "panel".
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Aggregation: mean (default), median, min or max.
	Aggregation Aggregation `yaml:"aggregation,omitempty" json:"aggregation,omitempty"`
	// Scale of the panel's score; default 1-5. Each member's score is
	// mapped linearly from the member's scale onto it.
	Scale Scale `yaml:"scale,omitempty" json:"scale"`
	// Quorum is how many members must give a verdict for the panel to
	// give one; default all of them.
	Quorum int `yaml:"quorum,omitempty" json:"quorum,omitempty"`
}

// Panel is a Judge made of several judges whose scores it aggregates. The
// members score each sample concurrently; every member's verdict is kept
// in Verdict.Members.
type Panel struct {
	name    string
	agg     Aggregation
	scale   Scale
	quorum  int
	members []Judge
}

// NewPanel returns a panel of judges (unique names, at least one).
func NewPanel(o PanelOptions, members ...Judge) (*Panel, error) {
	if len(members) == 0 {
		return nil, errors.New("judges: a panel needs at least one judge")
	}
	p := &Panel{name: o.Name, agg: o.Aggregation, scale: o.Scale, quorum: o.Quorum, members: members}
	if p.name == "" {
		p.name = "panel"
	}
	if p.agg == "" {
		p.agg = AggMean
	}
	switch p.agg {
	case AggMean, AggMedian, AggMin, AggMax:
	default:
		return nil, fmt.Errorf("judges: aggregation %q is not one of mean, median, min, max", string(p.agg))
	}
	if p.scale.IsZero() {
		p.scale = Scale{Min: 1, Max: 5}
	}
	if err := p.scale.validate(); err != nil {
		return nil, fmt.Errorf("judges: panel %w", err)
	}
	if p.quorum == 0 {
		p.quorum = len(members)
	}
	if p.quorum < 0 || p.quorum > len(members) {
		return nil, fmt.Errorf("judges: quorum %d is not between 1 and the %d members", p.quorum, len(members))
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m == nil {
			return nil, errors.New("judges: nil panel member")
		}
		if seen[m.Name()] {
			return nil, fmt.Errorf("judges: two panel members are named %q", m.Name())
		}
		seen[m.Name()] = true
	}
	return p, nil
}

// Name returns the panel's name.
func (p *Panel) Name() string { return p.name }

// Score asks every member and aggregates the members that gave a verdict.
// A member error that stops the stage (see StopsStage) is returned as is;
// other member failures leave that member out, and the panel fails (Err
// set, an error returned) when fewer than Quorum members remain.
func (p *Panel) Score(ctx context.Context, s datasets.Sample) (Verdict, error) {
	vs := make([]Verdict, len(p.members))
	errs := make([]error, len(p.members))
	var wg sync.WaitGroup
	for i, m := range p.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vs[i], errs[i] = m.Score(ctx, s)
			if vs[i].Judge == "" {
				vs[i].Judge = m.Name()
			}
			if errs[i] != nil && vs[i].Err == "" {
				vs[i].Err = errs[i].Error()
			}
		}()
	}
	wg.Wait()

	v := Verdict{Judge: p.name, Min: p.scale.Min, Max: p.scale.Max, Members: vs, Scores: map[string]float64{}}
	for _, err := range errs {
		if StopsStage(err) {
			v.Err = err.Error()
			return v, err
		}
	}
	var scores []float64
	var failed []string
	var models []string
	for i, mv := range vs {
		if errs[i] != nil || !mv.OK() {
			failed = append(failed, fmt.Sprintf("%s: %s", mv.Judge, mv.Err))
			continue
		}
		if mv.Max <= mv.Min {
			failed = append(failed, fmt.Sprintf("%s: verdict has no scale", mv.Judge))
			continue
		}
		sc := p.scale.Min + (p.scale.Max-p.scale.Min)*mv.Normalized()
		scores = append(scores, sc)
		v.Scores[mv.Judge] = sc
		for k, x := range mv.Scores {
			v.Scores[mv.Judge+"/"+k] = x
		}
		if mv.Model != "" && !slices.Contains(models, mv.Model) {
			models = append(models, mv.Model)
		}
	}
	v.Model = strings.Join(models, ",")
	if len(scores) < p.quorum {
		v.Err = fmt.Sprintf("%d of %d judges gave a verdict, quorum is %d: %s", len(scores), len(vs), p.quorum, strings.Join(failed, "; "))
		return v, errors.New("judge " + p.name + ": " + v.Err)
	}
	v.Score = aggregate(p.agg, scores)
	return v, nil
}

func aggregate(agg Aggregation, xs []float64) float64 {
	switch agg {
	case AggMedian:
		s := slices.Clone(xs)
		slices.Sort(s)
		n := len(s)
		if n%2 == 1 {
			return s[n/2]
		}
		return (s[n/2-1] + s[n/2]) / 2
	case AggMin:
		return slices.Min(xs)
	case AggMax:
		return slices.Max(xs)
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
