package transforms

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
)

// Marks are how stages that decide over the whole dataset (deduplication)
// report their decisions without moving samples: a PCollection<string> of
// marks, one per sample the stage has an opinion on,
//
//	stage \x02 ref \x01 verdict survivor-id
//
// where ref is the sample's reference (see sampleRef), verdict is 'K'
// (kept, the survivor of a cluster) or 'D' (dropped as a duplicate of
// survivor-id). Samples without a mark pass. Marks are small, so they
// travel as side inputs; the samples themselves are shuffled once, to the
// shard writers, which apply the marks of every stage in recipe order
// (see WriteShards). This keeps a whole-dataset decision from costing a
// second shuffle of the data.

const (
	markStageSep   = "\x02"
	markVerdictSep = "\x01"
)

func init() {
	register.DoFn4x0[string, string, func(*string) bool, func(string, string)](&dropMarkedFn{})
	register.Emitter2[string, string]()
}

// StageMarks is one stage's marks and how its drops are reported.
type StageMarks struct {
	Stage  string
	Reason string // e.g. "exact_duplicate"
	Detail string // printf format with the survivor id, e.g. "same normalised conversation as %s"
	Marks  beam.PCollection
}

// sampleRef identifies one sample within a run and sorts like
// datasets.Less: id, source, file, zero-padded index, separated by 0
// bytes (which none of them contains).
func sampleRef(s *datasets.Sample) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%020d", s.ID, s.Source.Dataset, s.Source.File, s.Source.Index)
}

func refID(ref string) string { return ref[:strings.IndexByte(ref, 0)] }

// refOrigin is the part of a reference that names where the sample was
// read (source, file, index): unique within a run and, unlike the id,
// unchanged by steps that rewrite content (PII redaction). Marks name
// samples by origin.
func refOrigin(ref string) string { return ref[strings.IndexByte(ref, 0)+1:] }

func sampleOrigin(s *datasets.Sample) string {
	return fmt.Sprintf("%s\x00%s\x00%020d", s.Source.Dataset, s.Source.File, s.Source.Index)
}

func formatMark(stage, ref string, kept bool, survivor string) string {
	v := "D"
	if kept {
		v = "K"
	}
	return stage + markStageSep + refOrigin(ref) + markVerdictSep + v + survivor
}

// mark is one parsed mark.
type mark struct {
	kept     bool
	survivor string
}

// markSet indexes marks by stage and ref.
type markSet map[string]map[string]mark

func (ms markSet) add(m string) error {
	i := strings.Index(m, markStageSep)
	j := strings.LastIndex(m, markVerdictSep)
	if i < 0 || j < i || j+2 > len(m) {
		return fmt.Errorf("malformed mark %q", m)
	}
	stage, ref := m[:i], m[i+len(markStageSep):j]
	byRef := ms[stage]
	if byRef == nil {
		byRef = map[string]mark{}
		ms[stage] = byRef
	}
	byRef[ref] = mark{kept: m[j+1] == 'K', survivor: m[j+2:]}
	return nil
}

// dropped tells whether any of the stages dropped the sample of an
// origin, and which first.
func (ms markSet) dropped(origin string, stages []string) (string, mark, bool) {
	for _, st := range stages {
		if m, ok := ms[st][origin]; ok && !m.kept {
			return st, m, true
		}
	}
	return "", mark{}, false
}

// withoutDropped removes from a (key, ref) stream the refs that earlier
// stages' marks drop, so a later stage decides among survivors only.
func withoutDropped(s beam.Scope, keyed beam.PCollection, prior []StageMarks) beam.PCollection {
	return dropMarked(s, keyed, prior, true)
}

// dropMarked filters (key, value) pairs whose value (a sample reference,
// or an origin when valueIsRef is false) earlier stages' marks drop.
func dropMarked(s beam.Scope, col beam.PCollection, prior []StageMarks, valueIsRef bool) beam.PCollection {
	if len(prior) == 0 {
		return col
	}
	all, stages := marksSideInput(s, prior)
	return beam.ParDo(s, &dropMarkedFn{Stages: stages, ValueIsRef: valueIsRef}, col, all)
}

type dropMarkedFn struct {
	Stages     []string `json:"stages"`
	ValueIsRef bool     `json:"value_is_ref"`
	marks      markSet
}

func (f *dropMarkedFn) ProcessElement(key, value string, marks func(*string) bool, emit func(string, string)) {
	if f.marks == nil {
		f.marks = loadMarks(marks)
	}
	origin := value
	if f.ValueIsRef {
		origin = refOrigin(value)
	}
	if _, _, dropped := f.marks.dropped(origin, f.Stages); !dropped {
		emit(key, value)
	}
}

// loadMarks reads a marks side input into a markSet. Malformed marks
// cannot occur (sieve writes them all); they are skipped.
func loadMarks(marks func(*string) bool) markSet {
	ms := markSet{}
	var m string
	for marks(&m) {
		_ = ms.add(m)
	}
	return ms
}

func init() {
	register.DoFn6x1[context.Context, datasets.Sample, func(*string) bool, func(datasets.Sample), func(datasets.Rejected), func(string), error](&applyTailFn{})
}

// ApplyTail applies a tail (the marks of whole-dataset stages and the
// per-sample steps after them, see WriteConfig.Tail) to samples without
// writing them: a stage that must see the samples as the stages before it
// left them (a generation stage, which should not pay for duplicates)
// calls it first. It returns the survivors, the rejected samples and
// report lines.
func ApplyTail(s beam.Scope, samples beam.PCollection, tail []TailStep, marks []StageMarks) (kept, dropped, reports beam.PCollection) {
	s = s.Scope("ApplyTail")
	all, _ := marksSideInput(s, marks)
	return beam.ParDo3(s, &applyTailFn{Tail: tail}, samples, all)
}

// marksSideInput flattens the stages' marks into one side input (never
// empty: an empty string stands in when there are none, and is skipped
// by loadMarks) and returns the stages' names in order.
func marksSideInput(s beam.Scope, marks []StageMarks) (beam.SideInput, []string) {
	cols := []beam.PCollection{beam.Create(s, "")}
	var stages []string
	for _, m := range marks {
		cols = append(cols, m.Marks)
		stages = append(stages, m.Stage)
	}
	return beam.SideInput{Input: beam.Flatten(s, cols...)}, stages
}

type applyTailFn struct {
	Tail   []TailStep `json:"tail"`
	marks  markSet
	runner stepRunner
	batch  []datasets.Sample
}

func (f *applyTailFn) steps() ([]Step, error) { return f.runner.get(tailSpecs(f.Tail)) }

// tailSpecs are the per-sample steps of a tail, in order.
func tailSpecs(tail []TailStep) []StepSpec {
	var specs []StepSpec
	for _, t := range tail {
		if t.Step != nil {
			specs = append(specs, *t.Step)
		}
	}
	return specs
}

func (f *applyTailFn) ProcessElement(ctx context.Context, s datasets.Sample, marks func(*string) bool,
	kept func(datasets.Sample), dropped func(datasets.Rejected), _ func(string)) error {
	if f.marks == nil {
		f.marks = loadMarks(marks)
	}
	f.batch = append(f.batch, s)
	if len(f.batch) >= stepBatch {
		return f.flush(ctx, kept, dropped)
	}
	return nil
}

func (f *applyTailFn) FinishBundle(ctx context.Context, _ func(*string) bool, kept func(datasets.Sample), dropped func(datasets.Rejected), report func(string)) error {
	if err := f.flush(ctx, kept, dropped); err != nil {
		return err
	}
	steps, err := f.steps()
	if err != nil {
		return err
	}
	return stepUsage(steps, report)
}

func (f *applyTailFn) flush(ctx context.Context, kept func(datasets.Sample), dropped func(datasets.Rejected)) error {
	if len(f.batch) == 0 {
		return nil
	}
	steps, err := f.steps()
	if err != nil {
		return err
	}
	applyBatch(f.batch, workersFor(steps), func(s *datasets.Sample) *datasets.Rejected {
		return applyTail(ctx, f.Tail, steps, f.marks, s)
	}, kept, dropped)
	f.batch = f.batch[:0]
	return nil
}
