package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

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

// idKeeper is a Step that never changes a sample's id: it drops, scores
// or annotates, but does not rewrite content. A step that does not say so
// is taken to change ids.
type idKeeper interface {
	KeepsIDs()
}

// keepsIDs reports whether no step of steps changes ids (the shard
// writers then need not sort again what they merged in id order).
func keepsIDs(steps []Step) bool {
	for _, st := range steps {
		if _, ok := st.(idKeeper); !ok {
			return false
		}
	}
	return true
}

// StepSpec describes one step: its stage name in the funnel, its kind and
// its settings as JSON.
type StepSpec struct {
	Stage  string          `json:"stage"`
	Kind   string          `json:"kind"`
	Config json.RawMessage `json:"config"`
	// Quiet steps count nothing: they re-run a pending step only to see
	// a sample as a later whole-dataset stage sees it (its keys), and
	// the writers' run of the same step is the one that counts.
	Quiet bool `json:"quiet,omitempty"`
	// BudgetLedger, where set, is the run's directory of LLM budget
	// ledgers (datasets.BudgetLedgerDir): an LLM step's budget holds for
	// every worker process together (see budgetLedger).
	BudgetLedger string `json:"budget_ledger,omitempty"`
}

// quiet returns copies of specs marked Quiet.
func quiet(specs []StepSpec) []StepSpec {
	out := make([]StepSpec, len(specs))
	for i, sp := range specs {
		sp.Quiet = true
		out[i] = sp
	}
	return out
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
	register.DoFn5x1[context.Context, datasets.Sample, func(datasets.Sample), func(datasets.Rejected), func(string), error](&applyStepsFn{})
}

// Concurrent is implemented by steps that wait on I/O (an LLM judge) and
// want that many samples in flight; other steps run on GOMAXPROCS
// goroutines.
type Concurrent interface {
	Concurrency() int
}

// CallsLLM reports whether spec's step calls an LLM for every sample (a
// judge, whose steps are also Concurrent): a pipeline applies such a step
// once rather than re-running it wherever a later whole-dataset stage
// keys on the pending steps (see Unspill).
func CallsLLM(spec StepSpec) bool { return spec.Kind == "judge" }

// workersFor is how many samples to process at once for steps.
func workersFor(steps []Step) int {
	n := runtime.GOMAXPROCS(0)
	for _, st := range steps {
		if c, ok := st.(Concurrent); ok && c.Concurrency() > n {
			n = c.Concurrency()
		}
	}
	return n
}

// forEach calls fn(i) for i in [0, n) on up to workers goroutines.
func forEach(n, workers int, fn func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// forEachErr is forEach for work that can fail: it returns the errors of
// all the calls joined.
func forEachErr(n, workers int, fn func(i int) error) error {
	errs := make([]error, n)
	forEach(n, workers, func(i int) { errs[i] = fn(i) })
	return errors.Join(errs...)
}

// ApplySteps runs per-sample steps over samples, returning the kept
// (possibly rewritten) samples, the rejected ones and report lines (the
// usage of steps that call a model).
func ApplySteps(s beam.Scope, in beam.PCollection, specs []StepSpec) (kept, dropped, reports beam.PCollection) {
	return beam.ParDo3(s.Scope("Steps"), &applyStepsFn{Specs: specs}, in)
}

// applyStepsFn buffers samples in batches and runs the steps on a batch
// concurrently (steps are safe for concurrent use), emitting from the
// bundle's goroutine.
type applyStepsFn struct {
	Specs  []StepSpec `json:"specs"`
	runner stepRunner
	batch  []datasets.Sample
}

const stepBatch = 512

func (f *applyStepsFn) ProcessElement(ctx context.Context, s datasets.Sample, kept func(datasets.Sample), dropped func(datasets.Rejected), _ func(string)) error {
	f.batch = append(f.batch, s)
	if len(f.batch) >= stepBatch {
		return f.flush(ctx, kept, dropped)
	}
	return nil
}

func (f *applyStepsFn) FinishBundle(ctx context.Context, kept func(datasets.Sample), dropped func(datasets.Rejected), report func(string)) error {
	if err := f.flush(ctx, kept, dropped); err != nil {
		return err
	}
	steps, err := f.runner.get(f.Specs)
	if err != nil {
		return err
	}
	return stepUsage(steps, report)
}

func (f *applyStepsFn) flush(ctx context.Context, kept func(datasets.Sample), dropped func(datasets.Rejected)) error {
	if len(f.batch) == 0 {
		return nil
	}
	steps, err := f.runner.get(f.Specs)
	if err != nil {
		return err
	}
	applyBatch(f.batch, workersFor(steps), func(s *datasets.Sample) *datasets.Rejected { return runSteps(ctx, steps, s) }, kept, dropped)
	f.batch = f.batch[:0]
	return nil
}

// applyBatch applies fn to every sample of batch (in place) on up to
// workers goroutines, then emits each, kept or dropped, in batch order.
func applyBatch(batch []datasets.Sample, workers int, fn func(*datasets.Sample) *datasets.Rejected,
	kept func(datasets.Sample), dropped func(datasets.Rejected)) {
	rejs := make([]*datasets.Rejected, len(batch))
	forEach(len(batch), workers, func(i int) { rejs[i] = fn(&batch[i]) })
	for i := range batch {
		if rejs[i] != nil {
			dropped(*rejs[i])
		} else {
			kept(batch[i])
		}
	}
}
