package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
)

// A Step is a per-sample stage: it looks at one sample at a time, may
// rewrite it (PII redaction) and may drop it (quality filters,
// decontamination). Steps are plain Go; they reach Beam as StepSpecs
// (JSON) and are built on the workers by the builder registered for their
// kind.
type Step interface {
	// Apply returns nil to keep the (possibly rewritten) sample, or the
	// rejection. A step that rewrites content must keep s.ID in step
	// with it (datasets.ContentID).
	Apply(ctx context.Context, s *datasets.Sample) *datasets.Rejected
}

// StepSpec describes one step: its stage name in the funnel, its kind and
// its settings as JSON.
type StepSpec struct {
	Stage  string          `json:"stage"`
	Kind   string          `json:"kind"`
	Config json.RawMessage `json:"config"`
}

// StepBuilder makes a Step from its spec.
type StepBuilder func(spec StepSpec) (Step, error)

var (
	stepMu       sync.RWMutex
	stepBuilders = map[string]StepBuilder{}
)

// RegisterStep registers the builder of a step kind; it panics on a
// duplicate. Call it from init.
func RegisterStep(kind string, b StepBuilder) {
	stepMu.Lock()
	defer stepMu.Unlock()
	if _, ok := stepBuilders[kind]; ok {
		panic("transforms: step kind registered twice: " + kind)
	}
	stepBuilders[kind] = b
}

// StepKinds lists the registered step kinds.
func StepKinds() []string {
	stepMu.RLock()
	defer stepMu.RUnlock()
	var ks []string
	for k := range stepBuilders {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// BuildSteps builds specs in order.
func BuildSteps(specs []StepSpec) ([]Step, error) {
	stepMu.RLock()
	defer stepMu.RUnlock()
	out := make([]Step, len(specs))
	for i, sp := range specs {
		b, ok := stepBuilders[sp.Kind]
		if !ok {
			return nil, fmt.Errorf("stage %s: unknown step kind %q", sp.Stage, sp.Kind)
		}
		st, err := b(sp)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", sp.Stage, err)
		}
		out[i] = st
	}
	return out, nil
}

// stepRunner builds its steps once per DoFn instance.
type stepRunner struct {
	once  sync.Once
	steps []Step
	err   error
}

func (r *stepRunner) get(specs []StepSpec) ([]Step, error) {
	r.once.Do(func() { r.steps, r.err = BuildSteps(specs) })
	return r.steps, r.err
}

// runSteps applies steps in order and returns the first rejection.
func runSteps(ctx context.Context, steps []Step, s *datasets.Sample) *datasets.Rejected {
	for _, st := range steps {
		if rej := st.Apply(ctx, s); rej != nil {
			return rej
		}
	}
	return nil
}

func init() {
	register.DoFn4x1[context.Context, datasets.Sample, func(datasets.Sample), func(datasets.Rejected), error](&applyStepsFn{})
}

// ApplySteps runs per-sample steps over samples, returning the kept
// (possibly rewritten) samples and the rejected ones.
func ApplySteps(s beam.Scope, in beam.PCollection, specs []StepSpec) (kept, dropped beam.PCollection) {
	return beam.ParDo2(s.Scope("Steps"), &applyStepsFn{Specs: specs}, in)
}

type applyStepsFn struct {
	Specs  []StepSpec `json:"specs"`
	runner stepRunner
}

func (f *applyStepsFn) ProcessElement(ctx context.Context, s datasets.Sample, kept func(datasets.Sample), dropped func(datasets.Rejected)) error {
	steps, err := f.runner.get(f.Specs)
	if err != nil {
		return err
	}
	if rej := runSteps(ctx, steps, &s); rej != nil {
		dropped(*rej)
		return nil
	}
	kept(s)
	return nil
}
