package transforms

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/synth"
)

// Synthetic generation stages. Every stage calls its endpoint through the
// shared llm client (retries, rate limits, budget, the on-disk response
// cache) and accounts for what it makes in the funnel:
//
//   - every candidate a stage makes (kept or rejected) counts as
//     generated; rejected candidates are dropped with their synth reason,
//     so a stage's out = in + generated − dropped;
//   - a call that failed (synth.llm_error: retries ran out, the server
//     refused the request) made no candidate: it goes to rejected.jsonl
//     with its error but is neither generated nor dropped (the manifest
//     counts it as the stage's failed calls);
//   - in replace mode (chain_of_thought by default) a sample's first
//     candidate takes its place and is not counted as generated: a kept
//     one is a modification ("synth.replaced"), a rejected one drops the
//     sample;
//   - when the budget is spent or the endpoint fails for good, the stage
//     stops: samples not yet processed pass unchanged, and the manifest
//     says so.
//
// Generated samples form a source named after their stage
// (Source.Dataset), with Source.File "synth:STAGE/SEED" and Source.Index
// the candidate's position, so that every sample of a run keeps a unique
// origin.

// Synthesis modes of per-sample generation stages.
const (
	ModeAdd     = "add"
	ModeReplace = "replace"
)

// SynthConfig is one generation stage as its workers see it.
type SynthConfig struct {
	Stage    string       `json:"stage"`
	Kind     string       `json:"task"` // evol_instruct, chain_of_thought, self_instruct, doc_qa
	Endpoint llm.Endpoint `json:"endpoint"`
	CacheDir string       `json:"cache_dir"`
	// BudgetLedger: see StepSpec.BudgetLedger.
	BudgetLedger string `json:"budget_ledger,omitempty"`
	// Mode (evol_instruct, chain_of_thought): add keeps the input samples
	// and adds the generated ones; replace puts them in their place.
	Mode string `json:"mode,omitempty"`
	// License is given to doc_qa's samples (the documents' license) and,
	// when set, to self_instruct's (the seeds' license).
	License string `json:"license,omitempty"`

	Evol *synth.EvolConfig         `json:"evol,omitempty"`
	CoT  *synth.CoTConfig          `json:"cot,omitempty"`
	QA   *synth.QAConfig           `json:"qa,omitempty"`
	Self *synth.SelfInstructConfig `json:"self_instruct,omitempty"`
	// Driver of self_instruct.
	SelfDriver *SelfInstructDriver `json:"self_driver,omitempty"`
}

// SelfInstructDriver is how self_instruct's loop runs: which seeds, how
// many prompts, when to stop.
type SelfInstructDriver struct {
	// Instructions is how many new samples to aim for.
	Instructions int `json:"instructions"`
	// SeedsPerPrompt examples per prompt, of which up to MachinePerPrompt
	// are generated ones once there are some (Self-Instruct: 8 and 2).
	SeedsPerPrompt   int `json:"seeds_per_prompt"`
	MachinePerPrompt int `json:"machine_per_prompt"`
	// MaxSeeds caps the seed pool (chosen by a seeded hash of the id).
	MaxSeeds int `json:"max_seeds"`
	// MaxPrompts stops the loop after that many generation prompts.
	MaxPrompts int `json:"max_prompts"`
	// Seed makes the choice of examples reproducible.
	Seed string `json:"seed"`
	// Seeds, when set, are the seed samples (from a file); otherwise the
	// samples reaching the stage are.
	Seeds []datasets.Sample `json:"seeds,omitempty"`
}

// build makes the stage's task and client.
func (c SynthConfig) build() (synth.Task, *llm.Client, error) {
	t, err := c.Task()
	if err != nil {
		return nil, nil, err
	}
	client, err := llm.Shared(c.Endpoint, llm.Options{CacheDir: c.CacheDir, Logger: slog.Default(),
		Ledger: budgetLedger(c.BudgetLedger, c.Endpoint, c.CacheDir)})
	if err != nil {
		return nil, nil, err
	}
	return t, client, nil
}

// Task makes the stage's task, loading its templates: a planner calls it
// to check the configuration before any runner starts.
func (c SynthConfig) Task() (synth.Task, error) {
	var t synth.Task
	var err error
	switch c.Kind {
	case "evol_instruct":
		t, err = synth.NewEvolInstruct(deref(c.Evol))
	case "chain_of_thought":
		t, err = synth.NewChainOfThought(deref(c.CoT))
	case "doc_qa":
		t, err = synth.NewDocQA(deref(c.QA))
	case "self_instruct":
		t, err = synth.NewSelfInstruct(deref(c.Self))
	default:
		err = fmt.Errorf("unknown generation task %q", c.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", c.Stage, err)
	}
	return t, nil
}

func deref[T any](p *T) T {
	if p == nil {
		var z T
		return z
	}
	return *p
}

func (c SynthConfig) concurrency() int {
	if c.Endpoint.MaxConcurrency > 0 {
		return c.Endpoint.MaxConcurrency
	}
	return llm.DefaultMaxConcurrency
}

func init() {
	register.DoFn5x1[context.Context, datasets.Sample, func(datasets.Sample), func(datasets.Rejected), func(string), error](&expandFn{})
	register.DoFn5x1[context.Context, string, func(datasets.Sample), func(datasets.Rejected), func(string), error](&chunkQAFn{})
	register.DoFn5x1[context.Context, SeedPool, func(datasets.Sample), func(datasets.Rejected), func(string), error](&selfInstructFn{})
	register.Combiner3[SeedPool, datasets.Sample, SeedPool](&seedPoolFn{})
}

// synthState is what the generation DoFns share: the task, the client,
// the stop error once the stage stops, and the counts reported at the end
// of each bundle.
type synthState struct {
	once   sync.Once
	task   synth.Task
	client *llm.Client
	err    error

	mu   sync.Mutex
	stop error
	// failure is the bundle's first failed call's error.
	failure string
	// counts are the bundle's: "generated" (candidates made), "stopped"
	// (inputs passed unprocessed after the stop), "synth.replaced",
	// "synth.kept_original" (replace-mode samples kept because the call
	// failed) and the reasons of inputs the task declined
	// (synth.unusable, synth.short_chunk).
	counts map[string]int64
}

// Keys of a "generated" report line's counts other than reasons:
// CountGenerated is the stage's generated candidates; every other key is
// something it modified or left undone.
const (
	CountGenerated = "generated"
	countStopped   = "stopped"
	// CountCallsOK and CountCallsFailed count the stage's units of work
	// (a verdict, a generation) that succeeded and failed; they are not
	// funnel counts. A stage whose every one failed fails the run.
	CountCallsOK     = "calls.ok"
	CountCallsFailed = "calls.failed"
)

// IsCallCount tells whether a "generated" report count is CountCallsOK or
// CountCallsFailed.
func IsCallCount(key string) bool { return key == CountCallsOK || key == CountCallsFailed }

// FailedCall tells whether a generation stage's rejection reason is a
// failed call (synth.llm_error), which made no candidate: it is neither
// generated nor dropped in the funnel, but counted as failed.
func FailedCall(reason string) bool { return reason == synth.ReasonLLMError }

// notCandidate tells whether a rejection says the input was unfit for
// the task, rather than a candidate was made and failed.
func notCandidate(r datasets.Rejected) bool {
	return r.Reason == synth.ReasonUnusable || r.Reason == synth.ReasonShortChunk
}

// keepsOriginal tells whether, in replace mode, a sample whose candidate
// was rejected for this reason stays as it was: the call failed (retries
// ran out, an unreadable answer), which says nothing about the sample.
func keepsOriginal(reason string) bool {
	return reason == synth.ReasonLLMError || reason == synth.ReasonParse || reason == synth.ReasonUnusable
}

// run runs the task on inputs, up to the endpoint's concurrency at once.
// Once the stage stops, the inputs not yet started are skipped.
func (st *synthState) run(ctx context.Context, cfg SynthConfig, inputs []synth.Input) []expandResult {
	res := make([]expandResult, len(inputs))
	forEach(len(inputs), cfg.concurrency(), func(i int) {
		if st.stopErr() != nil {
			res[i].skip = true
			return
		}
		gens, rejs, err := st.task.Generate(ctx, st.client, inputs[i])
		if err != nil {
			if !judges.StopsStage(err) {
				err = fmt.Errorf("stage %s: %w", cfg.Stage, err)
			}
			st.setStop(err)
		}
		res[i] = expandResult{gens: gens, rejs: rejs, skip: err != nil && len(gens) == 0 && len(rejs) == 0}
		if c := callOutcome(gens, rejs, err); c != "" {
			st.mu.Lock()
			st.count(c)
			st.noteFailure(rejs)
			st.mu.Unlock()
		}
	})
	return res
}

// callOutcome is CountCallsOK when a task's run on one input reached the
// model (something was generated, or the input was declined, or a
// candidate was rejected on its merits) and CountCallsFailed when it
// did not (an error, or every rejection an LLM error).
func callOutcome(gens []datasets.Sample, rejs []datasets.Rejected, err error) string {
	if len(gens) > 0 {
		return CountCallsOK
	}
	if errors.Is(err, llm.ErrBudgetExhausted) {
		return "" // refused: no call was made
	}
	if err != nil && len(rejs) == 0 {
		return CountCallsFailed
	}
	for _, r := range rejs {
		if r.Reason != synth.ReasonLLMError {
			return CountCallsOK
		}
	}
	if len(rejs) == 0 {
		return CountCallsOK
	}
	return CountCallsFailed
}

// emitCandidates emits the candidates made from seed (an input's origin
// hash or a chunk id), numbering their origins in order, and counts them.
// The caller holds st.mu.
func (st *synthState) emitCandidates(stage, seed string, gens []datasets.Sample, rejs []datasets.Rejected,
	out func(datasets.Sample), rej func(datasets.Rejected)) {
	k := 0
	for _, g := range gens {
		g.Source = synthSource(stage, seed, k)
		k++
		st.count(CountGenerated)
		out(g)
	}
	for _, rj := range rejs {
		if notCandidate(rj) {
			st.count(rj.Reason)
			continue
		}
		rj.Stage = stage
		rj.Sample.Source = synthSource(stage, seed, k)
		k++
		if !FailedCall(rj.Reason) {
			st.count(CountGenerated)
		}
		rej(rj)
	}
}

// noteFailure keeps the first failed call's error of the bundle; the
// caller holds st.mu.
func (st *synthState) noteFailure(rejs []datasets.Rejected) {
	for _, r := range rejs {
		if st.failure == "" && FailedCall(r.Reason) {
			st.failure = r.Detail
		}
	}
}

// count adds one to a count; the caller holds st.mu.
func (st *synthState) count(key string) {
	if st.counts == nil {
		st.counts = map[string]int64{}
	}
	st.counts[key]++
}

func (st *synthState) init(cfg SynthConfig) error {
	st.once.Do(func() { st.task, st.client, st.err = cfg.build() })
	return st.err
}

func (st *synthState) stopErr() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stop
}

func (st *synthState) setStop(err error) {
	st.mu.Lock()
	if st.stop == nil {
		st.stop = err
	}
	st.mu.Unlock()
}

// flushReports emits the bundle's counts and the client's usage since the
// last report.
func (st *synthState) flushReports(stage string, report func(string)) error {
	st.mu.Lock()
	counts, stop, failure := st.counts, st.stop, st.failure
	st.counts, st.failure = nil, ""
	st.mu.Unlock()
	if len(counts) > 0 || stop != nil {
		r := Report{Kind: "generated", Stage: stage, Counts: counts, Failure: failure}
		if stop != nil {
			r.Detail = stop.Error()
		}
		if err := emitReport(report, r); err != nil {
			return err
		}
	}
	if st.client != nil {
		return emitUsage(report, st.client)
	}
	return nil
}

// Usage reports: the clients are shared by every DoFn of a process, so
// each report carries what a client did since the previous report of any
// of them; the reports of all processes sum to the run's usage.
var (
	usageMu   sync.Mutex
	usageSent = map[*llm.Client]llm.Usage{}
)

func emitUsage(report func(string), clients ...*llm.Client) error {
	for _, c := range clients {
		usageMu.Lock()
		now := c.Usage()
		d := now.Sub(usageSent[c])
		usageSent[c] = now
		usageMu.Unlock()
		if d.IsZero() {
			continue
		}
		ep := c.Endpoint()
		if err := emitReport(report, Report{Kind: "usage", Endpoint: ep.Name, Model: ep.Model, Usage: &d}); err != nil {
			return err
		}
	}
	return nil
}

// synthSource names a generated sample's origin: the stage as its source,
// "synth:STAGE/SEED" as its file and its position among the candidates
// made from that seed.
func synthSource(stage, seed string, k int) datasets.Source {
	return datasets.Source{Dataset: stage, File: "synth:" + stage + "/" + seed, Index: int64(k)}
}

// Expand runs a per-sample generation stage (evol_instruct,
// chain_of_thought) over samples: it returns the samples that go on (the
// inputs in add mode, and what was generated), the rejected candidates
// and the stage's report lines.
func Expand(s beam.Scope, samples beam.PCollection, cfg SynthConfig) (out, rejected, reports beam.PCollection) {
	s = s.Scope("Synth_" + cfg.Stage)
	return beam.ParDo3(s, &expandFn{Cfg: cfg}, beam.Reshuffle(s, samples))
}

type expandFn struct {
	Cfg   SynthConfig `json:"cfg"`
	st    synthState
	batch []datasets.Sample
}

func (f *expandFn) ProcessElement(ctx context.Context, s datasets.Sample, out func(datasets.Sample), rej func(datasets.Rejected), report func(string)) error {
	f.batch = append(f.batch, s)
	if len(f.batch) >= stepBatch {
		return f.flush(ctx, out, rej)
	}
	return nil
}

func (f *expandFn) FinishBundle(ctx context.Context, out func(datasets.Sample), rej func(datasets.Rejected), report func(string)) error {
	if err := f.flush(ctx, out, rej); err != nil {
		return err
	}
	return f.st.flushReports(f.Cfg.Stage, report)
}

type expandResult struct {
	gens []datasets.Sample
	rejs []datasets.Rejected
	skip bool // not processed: the stage had stopped
}

func (f *expandFn) flush(ctx context.Context, out func(datasets.Sample), rej func(datasets.Rejected)) error {
	if len(f.batch) == 0 {
		return nil
	}
	if err := f.st.init(f.Cfg); err != nil {
		return err
	}
	inputs := make([]synth.Input, len(f.batch))
	for i := range f.batch {
		inputs[i] = synth.Input{Samples: f.batch[i : i+1]}
	}
	res := f.st.run(ctx, f.Cfg, inputs)
	for i := range f.batch {
		f.emit(f.batch[i], res[i], out, rej)
	}
	f.batch = f.batch[:0]
	return nil
}

// emit applies the stage's mode to one input and its candidates.
func (f *expandFn) emit(in datasets.Sample, r expandResult, out func(datasets.Sample), rej func(datasets.Rejected)) {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if r.skip {
		f.st.count(countStopped)
		out(in)
		return
	}
	gens, rejs := r.gens, r.rejs
	if f.Cfg.Mode == ModeReplace {
		switch {
		case len(gens) > 0:
			g := gens[0]
			g.Source, g.License = in.Source, in.License
			out(g)
			f.st.count("synth.replaced")
			gens = gens[1:]
		case len(rejs) > 0 && !keepsOriginal(rejs[0].Reason):
			rj := rejs[0]
			rj.Stage = f.Cfg.Stage
			rj.Sample.Source = in.Source
			rej(rj)
			rejs = rejs[1:]
		default:
			// Nothing made, or the call failed: the sample stays as it was
			// (a failed call is still written to rejected.jsonl).
			out(in)
			if len(rejs) > 0 && rejs[0].Reason != synth.ReasonUnusable {
				f.st.count("synth.kept_original")
			}
		}
	} else {
		out(in)
	}
	// Candidates are named by their input's origin, not its id: identical
	// inputs' candidates must stay distinct for later stages' marks.
	f.st.emitCandidates(f.Cfg.Stage, originHash(&in), gens, rejs, out, rej)
}

// GenerateFromChunks runs doc_qa over document chunks (JSON-encoded
// synth.Chunk values): it returns the generated samples, the rejected
// candidates and the stage's report lines.
func GenerateFromChunks(s beam.Scope, chunks []synth.Chunk, cfg SynthConfig) (out, rejected, reports beam.PCollection) {
	s = s.Scope("Synth_" + cfg.Stage)
	enc := make([]string, len(chunks))
	for i, c := range chunks {
		b, err := json.Marshal(c)
		if err != nil {
			panic(err) // plain struct
		}
		enc[i] = string(b)
	}
	return beam.ParDo3(s, &chunkQAFn{Cfg: cfg}, beam.Reshuffle(s, beam.CreateList(s, enc)))
}

type chunkQAFn struct {
	Cfg   SynthConfig `json:"cfg"`
	st    synthState
	batch []synth.Chunk
}

func (f *chunkQAFn) ProcessElement(ctx context.Context, enc string, out func(datasets.Sample), rej func(datasets.Rejected), report func(string)) error {
	var c synth.Chunk
	if err := json.Unmarshal([]byte(enc), &c); err != nil {
		return fmt.Errorf("stage %s: chunk: %w", f.Cfg.Stage, err)
	}
	f.batch = append(f.batch, c)
	if len(f.batch) >= stepBatch {
		return f.flush(ctx, out, rej)
	}
	return nil
}

func (f *chunkQAFn) FinishBundle(ctx context.Context, out func(datasets.Sample), rej func(datasets.Rejected), report func(string)) error {
	if err := f.flush(ctx, out, rej); err != nil {
		return err
	}
	return f.st.flushReports(f.Cfg.Stage, report)
}

func (f *chunkQAFn) flush(ctx context.Context, out func(datasets.Sample), rej func(datasets.Rejected)) error {
	if len(f.batch) == 0 {
		return nil
	}
	if err := f.st.init(f.Cfg); err != nil {
		return err
	}
	inputs := make([]synth.Input, len(f.batch))
	for i := range f.batch {
		inputs[i] = synth.Input{Chunks: f.batch[i : i+1]}
	}
	res := f.st.run(ctx, f.Cfg, inputs)
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	for i, c := range f.batch {
		if res[i].skip {
			f.st.count(countStopped)
			continue
		}
		for j := range res[i].gens {
			res[i].gens[j].License = f.Cfg.License
		}
		f.st.emitCandidates(f.Cfg.Stage, c.ID, res[i].gens, res[i].rejs, out, rej)
	}
	f.batch = f.batch[:0]
	return nil
}

// SelfInstruct runs the self_instruct loop once over the whole stage: the
// seed pool is the driver's seeds or up to MaxSeeds of samples (by a
// seeded hash of their ids). It returns the generated samples, the
// rejected candidates and the stage's report lines; samples themselves
// go on unchanged (the caller flattens them with what was generated).
func SelfInstruct(s beam.Scope, samples beam.PCollection, cfg SynthConfig) (out, rejected, reports beam.PCollection) {
	s = s.Scope("Synth_" + cfg.Stage)
	// The seed pool is a global combine (the MaxSeeds samples of lowest
	// rank), so the dataset never meets in one group, and it always
	// yields one pool, empty when no sample reaches the stage. With a
	// seeds file the seeds travel in the configuration.
	in := samples
	if len(cfg.SelfDriver.Seeds) > 0 {
		in = beam.Create(s, datasets.Sample{})
	}
	pool := beam.Combine(s, &seedPoolFn{Seed: cfg.SelfDriver.Seed, Max: cfg.SelfDriver.MaxSeeds}, in)
	return beam.ParDo3(s, &selfInstructFn{Cfg: cfg}, pool)
}

// SeedPool is self_instruct's seed pool as a combine accumulates it: each
// item the sample's rank (8 bytes, big-endian) and its binary encoding,
// kept sorted and capped.
type SeedPool struct {
	Items [][]byte
}

// seedPoolFn keeps the Max samples of lowest rank (seededHash; ties by
// encoding, so the pool does not depend on order).
type seedPoolFn struct {
	Seed string `json:"seed"`
	Max  int    `json:"max"`
}

func (f *seedPoolFn) CreateAccumulator() SeedPool { return SeedPool{} }

func (f *seedPoolFn) AddInput(p SeedPool, s datasets.Sample) SeedPool {
	if s.ID == "" {
		return p
	}
	b := binary.BigEndian.AppendUint64(nil, seededHash(f.Seed, s.ID))
	p.Items = append(p.Items, s.AppendBinary(b))
	if len(p.Items) >= 2*f.Max {
		p = f.trim(p)
	}
	return p
}

func (f *seedPoolFn) MergeAccumulators(a, b SeedPool) SeedPool {
	a.Items = append(a.Items, b.Items...)
	return f.trim(a)
}

func (f *seedPoolFn) ExtractOutput(p SeedPool) SeedPool { return f.trim(p) }

func (f *seedPoolFn) trim(p SeedPool) SeedPool {
	sort.Slice(p.Items, func(i, j int) bool { return bytes.Compare(p.Items[i], p.Items[j]) < 0 })
	if len(p.Items) > f.Max {
		p.Items = p.Items[:f.Max:f.Max]
	}
	return p
}

type selfInstructFn struct {
	Cfg SynthConfig `json:"cfg"`
	st  synthState
}

func (f *selfInstructFn) ProcessElement(ctx context.Context, pool SeedPool,
	out func(datasets.Sample), rej func(datasets.Rejected), report func(string)) error {
	d := *f.Cfg.SelfDriver
	if len(d.Seeds) > 0 {
		// Seeds from a file go through the same choice.
		fn := &seedPoolFn{Seed: d.Seed, Max: d.MaxSeeds}
		pool = fn.CreateAccumulator()
		for _, s := range d.Seeds {
			pool = fn.AddInput(pool, s)
		}
		pool = fn.ExtractOutput(pool)
	}
	var seeds []datasets.Sample
	for _, it := range pool.Items {
		var s datasets.Sample
		if err := s.UnmarshalBinary(it[8:]); err != nil {
			return fmt.Errorf("stage %s: seed pool: %w", f.Cfg.Stage, err)
		}
		seeds = append(seeds, s)
	}
	if err := f.st.init(f.Cfg); err != nil {
		return err
	}
	if len(seeds) == 0 {
		f.st.setStop(fmt.Errorf("no seed samples reached the stage"))
		return f.st.flushReports(f.Cfg.Stage, report)
	}
	task, ok := f.st.task.(*synth.SelfInstruct)
	if !ok {
		return fmt.Errorf("stage %s: task %s is not self_instruct", f.Cfg.Stage, f.st.task.Name())
	}
	loop := &synth.SelfInstructLoop{
		Task: task, Client: f.st.client, Seeds: seeds,
		Target: d.Instructions, SeedsPerPrompt: d.SeedsPerPrompt, MachinePerPrompt: d.MachinePerPrompt,
		MaxPrompts: d.MaxPrompts, Seed: d.Seed, Concurrency: f.Cfg.concurrency(),
		Threshold: deref(f.Cfg.Self).NoveltyThreshold,
	}
	res, err := loop.Run(ctx)
	if err != nil {
		if !judges.StopsStage(err) {
			return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
		}
		f.st.setStop(err)
	}
	f.st.mu.Lock()
	switch {
	case len(res.Samples) > 0:
		f.st.count(CountCallsOK)
	case err != nil && !errors.Is(err, llm.ErrBudgetExhausted):
		f.st.count(CountCallsFailed)
	}
	for _, g := range res.Samples {
		g.Sample.Source = synthSource(f.Cfg.Stage, fmt.Sprintf("prompt-%06d", g.Prompt), g.Index)
		if f.Cfg.License != "" {
			g.Sample.License = f.Cfg.License
		}
		f.st.count(CountGenerated)
		out(g.Sample)
	}
	for _, rj := range res.Rejected {
		f.st.noteFailure([]datasets.Rejected{rj.Rejected})
		rj.Rejected.Stage = f.Cfg.Stage
		rj.Rejected.Sample.Source = synthSource(f.Cfg.Stage, fmt.Sprintf("prompt-%06d", rj.Prompt), rj.Index)
		if !FailedCall(rj.Rejected.Reason) {
			f.st.count(CountGenerated)
		}
		rej(rj.Rejected)
	}
	f.st.mu.Unlock()
	return f.st.flushReports(f.Cfg.Stage, report)
}

// LLMClients is implemented by steps that call a model, so that their
// usage reaches the manifest.
type LLMClients interface {
	LLMClients() []*llm.Client
}

// StageReporter is implemented by steps that report what they did as a
// "generated" line (a judge: its stop and its verdicts).
type StageReporter interface {
	StageReport() (Report, bool)
}

// stepUsage emits the steps' stage reports and the usage of their clients.
func stepUsage(steps []Step, report func(string)) error {
	for _, st := range steps {
		if r, ok := st.(StageReporter); ok {
			if rep, ok := r.StageReport(); ok {
				if err := emitReport(report, rep); err != nil {
					return err
				}
			}
		}
		if c, ok := st.(LLMClients); ok {
			if err := emitUsage(report, c.LLMClients()...); err != nil {
				return err
			}
		}
	}
	return nil
}
