package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
)

// MixSource is one source's share of the output.
type MixSource struct {
	Source string `json:"source"`
	// Weight is the source's proportion of the output (weights are
	// normalised); 0 when the recipe gives none.
	Weight float64 `json:"weight,omitempty"`
	// MaxSamples caps the source (0: no cap).
	MaxSamples int64 `json:"max_samples,omitempty"`
}

// MixConfig selects, after every other stage, how many samples of each
// source the output keeps, and which: those first by a seeded hash of
// their id, so the choice is deterministic and independent of order.
type MixConfig struct {
	Sources []MixSource `json:"sources"`
	Seed    string      `json:"seed"`
}

// MixTarget is the outcome for one source.
type MixTarget struct {
	Source    string  `json:"source"`
	Weight    float64 `json:"weight,omitempty"`
	Available int64   `json:"available"`
	Target    int64   `json:"target"`
}

// Targets computes how many samples to keep per source from what is
// available: each source capped by MaxSamples; with weights, the largest
// output N whose weighted shares every source can fill, each share
// floor(w·N) and the remainder handed out by largest fraction (ties by
// source name), so every target is within one sample of w·N.
func Targets(cfg MixConfig, available map[string]int64) []MixTarget {
	var out []MixTarget
	weighted := false
	var wsum float64
	for _, s := range cfg.Sources {
		if s.Weight > 0 {
			weighted = true
			wsum += s.Weight
		}
	}
	caps := map[string]int64{}
	for _, s := range cfg.Sources {
		c := available[s.Source]
		if s.MaxSamples > 0 && s.MaxSamples < c {
			c = s.MaxSamples
		}
		caps[s.Source] = c
	}
	if !weighted {
		for _, s := range cfg.Sources {
			out = append(out, MixTarget{Source: s.Source, Available: available[s.Source], Target: caps[s.Source]})
		}
		return out
	}
	n := math.Inf(1)
	for _, s := range cfg.Sources {
		if w := s.Weight / wsum; w > 0 {
			n = math.Min(n, float64(caps[s.Source])/w)
		}
	}
	total := int64(math.Floor(n + 1e-9))
	type frac struct {
		i int
		f float64
	}
	var fr []frac
	var sum int64
	for i, s := range cfg.Sources {
		exact := s.Weight / wsum * float64(total)
		t := int64(math.Floor(exact + 1e-9))
		out = append(out, MixTarget{Source: s.Source, Weight: s.Weight / wsum, Available: available[s.Source], Target: t})
		sum += t
		fr = append(fr, frac{i, exact - float64(t)})
	}
	sort.SliceStable(fr, func(a, b int) bool {
		if fr[a].f != fr[b].f {
			return fr[a].f > fr[b].f
		}
		return out[fr[a].i].Source < out[fr[b].i].Source
	})
	for _, f := range fr {
		if sum >= total {
			break
		}
		if out[f.i].Target < caps[out[f.i].Source] {
			out[f.i].Target++
			sum++
		}
	}
	return out
}

func init() {
	register.DoFn4x1[context.Context, datasets.Sample, func(string, string), func(string, string), error](&mixKeyFn{})
	register.Function3x0(countValues)
	register.DoFn3x1[int, func(*string) bool, func(string), error](&mixTargetsFn{})
	register.DoFn4x1[string, func(*string) bool, func(*string) bool, func(string), error](&mixSelectFn{})
}

// MixMarks marks dropped every sample beyond its source's target (see
// Targets), choosing by a seeded hash of the id. prior and pre are as for
// the other mark stages; it should come last. It also returns report
// lines with the targets.
func MixMarks(s beam.Scope, in beam.PCollection, cfg MixConfig, stage string, prior []StageMarks, pre []StepSpec) (StageMarks, beam.PCollection) {
	s = s.Scope("Mix")
	keys, ones := beam.ParDo2(s, &mixKeyFn{Seed: cfg.Seed, Pre: pre}, in)
	keys = withoutDropped(s, keys, prior)
	ones = withoutDropped(s, ones, prior)
	counts := beam.ParDo(s, countValues, beam.GroupByKey(s, ones))
	targets := beam.ParDo(s, &mixTargetsFn{Cfg: cfg}, beam.GroupByKey(s, beam.AddFixedKey(s, counts)))
	marks := beam.ParDo(s, &mixSelectFn{Stage: stage}, beam.GroupByKey(s, keys), beam.SideInput{Input: targets})
	return StageMarks{Stage: stage, Reason: "mix.over_target", Detail: "beyond its source's share of the mix%.0s", Marks: marks}, targets
}

type mixKeyFn struct {
	Seed   string     `json:"seed"`
	Pre    []StepSpec `json:"pre,omitempty"`
	runner stepRunner
}

// ProcessElement emits (source, hash ref) for selection and (source's
// ref, "") for counting; both keyed so withoutDropped can see the ref.
func (f *mixKeyFn) ProcessElement(ctx context.Context, s datasets.Sample, keys func(string, string), ones func(string, string)) error {
	steps, err := f.runner.get(f.Pre)
	if err != nil {
		return err
	}
	if runSteps(ctx, steps, &s) != nil {
		return nil
	}
	ref := sampleRef(&s)
	keys(s.Source.Dataset, fmt.Sprintf("%016x\x06%s", seededHash(f.Seed, s.ID), ref))
	ones(s.Source.Dataset, ref)
	return nil
}

func countValues(src string, refs func(*string) bool, emit func(string)) {
	n := 0
	var r string
	for refs(&r) {
		n++
	}
	emit(src + "\t" + strconv.Itoa(n))
}

type mixTargetsFn struct {
	Cfg MixConfig `json:"cfg"`
}

func (f *mixTargetsFn) ProcessElement(_ int, counts func(*string) bool, emit func(string)) error {
	avail := map[string]int64{}
	var c string
	for counts(&c) {
		i := strings.IndexByte(c, '\t')
		n, _ := strconv.ParseInt(c[i+1:], 10, 64)
		avail[c[:i]] = n
	}
	for _, t := range Targets(f.Cfg, avail) {
		b, err := json.Marshal(Report{Kind: "mix", Mix: &t})
		if err != nil {
			return err
		}
		emit(string(b))
	}
	return nil
}

type mixSelectFn struct {
	Stage   string `json:"stage"`
	targets map[string]int64
}

func (f *mixSelectFn) ProcessElement(src string, refs func(*string) bool, targets func(*string) bool, emit func(string)) error {
	if f.targets == nil {
		f.targets = map[string]int64{}
		var line string
		for targets(&line) {
			var r Report
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return err
			}
			f.targets[r.Mix.Source] = r.Mix.Target
		}
	}
	all := collect(refs)
	sort.Strings(all)
	t, ok := f.targets[src]
	if !ok {
		// Samples a generation stage made form a source of their own,
		// which the recipe's mix does not name: they are kept whole.
		return nil
	}
	for i, hr := range all {
		if int64(i) >= t {
			ref := hr[strings.IndexByte(hr, 6)+1:]
			emit(formatMark(f.Stage, ref, false, ""))
		}
	}
	return nil
}
