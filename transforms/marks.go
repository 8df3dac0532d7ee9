package transforms

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
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
	register.DoFn5x1[context.Context, string, string, func(*string) bool, func(string, string), error](&dropMarkedFn{})
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

// markSet indexes marks by stage and origin. It holds per mark a 128-bit
// hash of the origin and an index into the stage's distinct survivors
// (about 30 bytes, against some 200 for the strings), since a consumer
// holds every mark of a run: a million near duplicates are a million
// marks. The hash is seeded per process and used only inside it; two
// origins collide with probability about 2^-128 per pair.
type markSet map[string]*stageMarks

// stageMarks are one stage's marks.
type stageMarks struct {
	byOrigin  map[originKey]uint32 // survivor index << 1 | kept
	survivors []string
	index     map[string]uint32
}

type originKey [2]uint64

var originSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func hashOrigin(origin string) originKey {
	return originKey{maphash.String(originSeeds[0], origin), maphash.String(originSeeds[1], origin)}
}

// get returns the stage's mark of an origin.
func (sm *stageMarks) get(origin string) (mark, bool) {
	if sm == nil {
		return mark{}, false
	}
	v, ok := sm.byOrigin[hashOrigin(origin)]
	if !ok {
		return mark{}, false
	}
	return mark{kept: v&1 == 1, survivor: sm.survivors[v>>1]}, true
}

func (ms markSet) put(stage, origin string, kept bool, survivor string) {
	sm := ms[stage]
	if sm == nil {
		sm = &stageMarks{byOrigin: map[originKey]uint32{}, index: map[string]uint32{}}
		ms[stage] = sm
	}
	i, ok := sm.index[survivor]
	if !ok {
		i = uint32(len(sm.survivors))
		sm.survivors = append(sm.survivors, survivor)
		sm.index[survivor] = i
	}
	v := i << 1
	if kept {
		v |= 1
	}
	sm.byOrigin[hashOrigin(origin)] = v
}

func (ms markSet) add(m string) error {
	i := strings.Index(m, markStageSep)
	j := strings.LastIndex(m, markVerdictSep)
	if i < 0 || j < i || j+2 > len(m) {
		return fmt.Errorf("malformed mark %q", m)
	}
	ms.put(m[:i], m[i+len(markStageSep):j], m[j+1] == 'K', m[j+2:])
	return nil
}

// dropped tells whether any of the stages dropped the sample of an
// origin, and which first.
func (ms markSet) dropped(origin string, stages []string) (string, mark, bool) {
	for _, st := range stages {
		if m, ok := ms[st].get(origin); ok && !m.kept {
			return st, m, true
		}
	}
	return "", mark{}, false
}

// Marks files: a stage that decides on one worker with its keys on disk
// (the local paths of exact and fuzzy dedup) writes its marks into a run
// file under the spill directory and emits only a reference to it,
//
//	\x04 path
//
// so that neither the runner nor the side input holds one string per
// mark. The file's records are (stage \x02 origin, verdict survivor).
const marksFileRef = "\x04"

// marksFileWriter writes one stage's marks file.
type marksFileWriter struct {
	w     *runWriter
	stage string
	path  string
	key   []byte
	val   []byte
}

func createMarksFile(ctx context.Context, dir, stage string) (*marksFileWriter, error) {
	path := spillPath(dir, "marks-"+stage)
	w, err := createRun(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%s: marks: %w", stage, err)
	}
	return &marksFileWriter{w: w, stage: stage, path: path}, nil
}

func (m *marksFileWriter) add(origin string, kept bool, survivor string) error {
	m.key = append(append(append(m.key[:0], m.stage...), markStageSep...), origin...)
	v := byte('D')
	if kept {
		v = 'K'
	}
	m.val = append(append(m.val[:0], v), survivor...)
	return m.w.add(m.key, m.val)
}

// finish closes the file and returns the reference to emit as the
// stage's one mark.
func (m *marksFileWriter) finish() (string, error) {
	if err := m.w.finish(); err != nil {
		return "", fmt.Errorf("%s: marks: %w", m.stage, err)
	}
	return marksFileRef + m.path, nil
}

// loadMarksFile adds the marks of a marks file to ms.
func (ms markSet) loadFile(ctx context.Context, path string) error {
	r, err := openRun(ctx, path)
	if err != nil {
		return err
	}
	defer r.close()
	for {
		ok, err := r.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		k, v := r.cur.key, r.cur.payload
		i := bytes.Index(k, []byte(markStageSep))
		if i < 0 || len(v) < 1 {
			return fmt.Errorf("marks file %s: malformed record", path)
		}
		ms.put(string(k[:i]), string(k[i+len(markStageSep):]), v[0] == 'K', string(v[1:]))
	}
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

func (f *dropMarkedFn) ProcessElement(ctx context.Context, key, value string, marks func(*string) bool, emit func(string, string)) error {
	if f.marks == nil {
		ms, err := loadMarks(ctx, marks)
		if err != nil {
			return err
		}
		f.marks = ms
	}
	origin := value
	if f.ValueIsRef {
		origin = refOrigin(value)
	}
	if _, _, dropped := f.marks.dropped(origin, f.Stages); !dropped {
		emit(key, value)
	}
	return nil
}

// loadMarks reads a marks side input into a markSet: mark strings, and
// references to marks files (marksFileRef), which it reads. Malformed
// mark strings cannot occur (sieve writes them all); they are skipped. A
// marks file that cannot be read fails the load: the samples it marks
// would pass.
func loadMarks(ctx context.Context, marks func(*string) bool) (markSet, error) {
	ms := markSet{}
	var m string
	for marks(&m) {
		if strings.HasPrefix(m, marksFileRef) {
			if err := ms.loadFile(ctx, m[len(marksFileRef):]); err != nil {
				return nil, err
			}
			continue
		}
		_ = ms.add(m)
	}
	return ms, nil
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
		ms, err := loadMarks(ctx, marks)
		if err != nil {
			return err
		}
		f.marks = ms
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
