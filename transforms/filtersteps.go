package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/filters"
)

// Per-sample steps of package filters: rule-based quality filters ("filter"),
// PII scrubbing ("pii") and benchmark decontamination ("decontaminate").

func init() {
	RegisterStep("filter", func(spec StepSpec) (Step, error) {
		var cfg filters.Config
		cfg.Defaults()
		if err := json.Unmarshal(spec.Config, &cfg); err != nil {
			return nil, err
		}
		fs, err := filters.New(cfg)
		if err != nil {
			return nil, err
		}
		return &filterStep{stage: spec.Stage, filters: fs}, nil
	})
	RegisterStep("pii", func(spec StepSpec) (Step, error) {
		var cfg filters.PIIConfig
		cfg.Defaults()
		if err := json.Unmarshal(spec.Config, &cfg); err != nil {
			return nil, err
		}
		sc, err := filters.NewScrubber(cfg)
		if err != nil {
			return nil, err
		}
		st := &piiStep{stage: spec.Stage, scrubber: sc, drop: cfg.Mode == "drop", counters: map[string]beam.Counter{}}
		for _, k := range filters.PIIKinds() {
			if !spec.Quiet {
				st.counters[k] = beam.NewCounter(Namespace, PIICounter(spec.Stage, k))
			}
		}
		return st, nil
	})
	RegisterStep("decontaminate", func(spec StepSpec) (Step, error) {
		var cfg filters.DecontamConfig
		cfg.Defaults()
		if err := json.Unmarshal(spec.Config, &cfg); err != nil {
			return nil, err
		}
		var items []filters.Item
		for _, f := range cfg.Files {
			rc, err := datasets.Open(context.Background(), f)
			if err != nil {
				return nil, err
			}
			its, err := filters.LoadBenchmark(f, rc, cfg)
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: %w", f, err)
			}
			items = append(items, its...)
		}
		return &decontamStep{stage: spec.Stage, d: filters.NewDecontaminator(items, cfg.N)}, nil
	})
}

// PIICounter names the Beam counter of one stage's redactions of a kind.
func PIICounter(stage, kind string) string { return "modified/" + stage + "/pii." + kind }

type filterStep struct {
	stage   string
	filters []filters.Filter
}

// KeepsIDs: filterStep never rewrites content.
func (*filterStep) KeepsIDs() {}

func (f *filterStep) Apply(_ context.Context, s *datasets.Sample) *datasets.Rejected {
	v, keep := filters.CheckAll(f.filters, s)
	if keep {
		return nil
	}
	detail := fmt.Sprintf("value %.4g, threshold %.4g", v.Value, v.Threshold)
	if v.Detail != "" {
		detail += ": " + v.Detail
	}
	return &datasets.Rejected{Stage: f.stage, Reason: v.Rule, Detail: detail, Sample: *s}
}

type piiStep struct {
	stage    string
	scrubber *filters.Scrubber
	drop     bool
	counters map[string]beam.Counter
}

func (p *piiStep) Apply(ctx context.Context, s *datasets.Sample) *datasets.Rejected {
	counts := p.scrubber.Scrub(s)
	if len(counts) == 0 {
		return nil
	}
	kinds := make([]string, 0, len(counts))
	for k, n := range counts {
		kinds = append(kinds, k)
		if c, ok := p.counters[k]; ok {
			c.Inc(ctx, int64(n))
		}
	}
	sort.Strings(kinds)
	if p.drop {
		return &datasets.Rejected{Stage: p.stage, Reason: "pii." + kinds[0], Detail: fmt.Sprintf("contains %v", counts), Sample: *s}
	}
	// Redacted: the content changed, so does its content id.
	s.ID = datasets.ContentID(s.Messages)
	return nil
}

type decontamStep struct {
	stage string
	d     *filters.Decontaminator
}

// KeepsIDs: decontamStep never rewrites content.
func (*decontamStep) KeepsIDs() {}

func (d *decontamStep) Apply(_ context.Context, s *datasets.Sample) *datasets.Rejected {
	item, gram, ok := d.d.Match(s)
	if !ok {
		return nil
	}
	return &datasets.Rejected{Stage: d.stage, Reason: "benchmark_overlap", Survivor: item,
		Detail: fmt.Sprintf("shares the n-gram %q with %s", gram, item), Sample: *s}
}
