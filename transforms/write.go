package transforms

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
)

// WriteConfig says where and how a version's files are written.
type WriteConfig struct {
	// Dir is the (staging) version directory: shards go to Dir/data/.
	Dir         string  `json:"dir"`
	Shards      int     `json:"shards"`
	TestShards  int     `json:"test_shards"`
	TestRatio   float64 `json:"test_ratio"`
	SplitSeed   string  `json:"split_seed"`
	Compression string  `json:"compression"`
	// Tail is what the writers apply before writing, in recipe order:
	// the marks of whole-dataset stages and the per-sample steps that
	// follow the first of them.
	Tail []TailStep `json:"tail,omitempty"`
}

// TailStep is one entry of WriteConfig.Tail: marks or a step.
type TailStep struct {
	Marks *MarkStage `json:"marks,omitempty"`
	Step  *StepSpec  `json:"step,omitempty"`
}

// MarkStage describes how one stage's marks are reported (see StageMarks).
type MarkStage struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// Names of the files beside data/ in a version directory.
const (
	DeadLettersFile = "dead_letters.jsonl"
	RejectedFile    = "rejected.jsonl"
	ReportFile      = "_report.jsonl"
)

func init() {
	register.DoFn2x0[datasets.Sample, func(string, datasets.Sample)](&assignShardFn{})
	register.Emitter2[string, datasets.Sample]()
	register.Function2x0(markerSample)
	register.DoFn6x1[context.Context, string, func(*datasets.Sample) bool, func(*string) bool, func(string), func(datasets.Rejected), error](&writeShardFn{})
	register.Iter1[datasets.Sample]()
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&writeDeadFn{})
	register.DoFn4x1[context.Context, int, func(*datasets.Rejected) bool, func(string), error](&writeRejectedFn{})
	register.Function2x0(markerRejected)
	register.DoFn3x1[context.Context, int, func(*string) bool, error](&writeReportFn{})
	register.Iter1[datasets.Rejected]()
}

// seededHash is the 64-bit FNV-1a hash of seed, a 0 byte and id: the
// deterministic, order-free draw behind the split, the mix and the
// self_instruct seed pool.
func seededHash(seed, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(seed))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return h.Sum64()
}

// Split returns the split a sample id belongs to: "test" for a fraction
// ratio of ids, chosen by a hash of seed and id, else "train".
func Split(id, seed string, ratio float64) string {
	if ratio <= 0 {
		return "train"
	}
	if float64(seededHash(seed, id)>>11)/(1<<53) < ratio {
		return "test"
	}
	return "train"
}

// ShardOf returns the shard index of an id among n shards.
func ShardOf(id string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(n))
}

// ShardPath is the Hugging Face style path of a shard, relative to the
// version directory: data/train-00000-of-00004.parquet.
func ShardPath(split string, index, of int) string {
	return fmt.Sprintf("data/%s-%05d-of-%05d.parquet", split, index, of)
}

func shardKeys(cfg WriteConfig) []string {
	var keys []string
	for i := 0; i < cfg.Shards; i++ {
		keys = append(keys, ShardPath("train", i, cfg.Shards))
	}
	if cfg.TestRatio > 0 {
		for i := 0; i < cfg.TestShards; i++ {
			keys = append(keys, ShardPath("test", i, cfg.TestShards))
		}
	}
	return keys
}

// WriteShards splits samples into train and test, assigns each to a shard
// by a hash of its id, applies cfg.Tail (the marks of whole-dataset
// stages, side inputs here, and the per-sample steps after them; what
// they drop goes to the rejected output), sorts every shard by
// datasets.Less and writes it as one Parquet file through Beam's
// filesystem package. Every shard is written, empty ones included. It
// returns the report lines of the shards and the rejected samples.
//
// A sample's shard and split follow from the id it has when it reaches
// the writers; a tail step that rewrites content (PII redaction) keeps
// it in the shard of its original id.
func WriteShards(s beam.Scope, samples beam.PCollection, cfg WriteConfig, marks []StageMarks) (reports, rejected beam.PCollection) {
	s = s.Scope("WriteShards")
	keyed := beam.ParDo(s, &assignShardFn{Cfg: cfg}, samples)
	markers := beam.ParDo(s, markerSample, beam.Create(s, anys(shardKeys(cfg))...))
	groups := beam.GroupByKey(s, beam.Flatten(s, keyed, markers))
	allMarks, _ := marksSideInput(s, marks)
	return beam.ParDo2(s, &writeShardFn{Cfg: cfg}, groups, allMarks)
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// markerSample makes an empty sample (no id) for a shard key, so that
// every shard has a group even when no sample falls into it.
func markerSample(key string, emit func(string, datasets.Sample)) { emit(key, datasets.Sample{}) }

type assignShardFn struct {
	Cfg WriteConfig `json:"cfg"`
}

func (f *assignShardFn) ProcessElement(s datasets.Sample, emit func(string, datasets.Sample)) {
	split := Split(s.ID, f.Cfg.SplitSeed, f.Cfg.TestRatio)
	n := f.Cfg.Shards
	if split == "test" {
		n = f.Cfg.TestShards
	}
	emit(ShardPath(split, ShardOf(s.ID, n), n), s)
}

// writeShardFn writes each shard group as one Parquet file. Runners such
// as prism hand a stage all its groups in one bundle, so the sorting,
// encoding and compression of groups run on background goroutines (as
// many as GOMAXPROCS) and FinishBundle waits for them and emits their
// reports.
type writeShardFn struct {
	Cfg  WriteConfig `json:"cfg"`
	rows beam.Counter

	marks   markSet
	runner  stepRunner
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	reports []Report
	err     error
}

func (f *writeShardFn) Setup() {
	f.rows = beam.NewCounter(Namespace, "written_rows")
	f.sem = make(chan struct{}, runtime.GOMAXPROCS(0))
}

func (f *writeShardFn) ProcessElement(ctx context.Context, key string, values func(*datasets.Sample) bool, marks func(*string) bool,
	emit func(string), rejected func(datasets.Rejected)) error {
	if f.marks == nil {
		f.marks = loadMarks(marks)
	}
	tail, err := f.tailSteps()
	if err != nil {
		return err
	}
	var all []datasets.Sample
	var v datasets.Sample
	for values(&v) {
		if v.ID != "" {
			all = append(all, v)
		}
		v = datasets.Sample{}
	}
	workers := 1
	if len(tail) > 0 {
		workers = workersFor(tail)
	}
	samples := all[:0] // survivors, compacted in place (emitted in order)
	applyBatch(all, workers, func(s *datasets.Sample) *datasets.Rejected {
		return applyTail(ctx, f.Cfg.Tail, tail, f.marks, s)
	}, func(s datasets.Sample) { samples = append(samples, s) }, rejected)
	f.sem <- struct{}{}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		rep, err := f.write(ctx, key, samples)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil && f.err == nil {
			f.err = err
		}
		if err == nil {
			f.reports = append(f.reports, rep)
		}
	}()
	return nil
}

// tailSteps builds the per-sample steps of the tail once.
func (f *writeShardFn) tailSteps() ([]Step, error) {
	var specs []StepSpec
	for _, t := range f.Cfg.Tail {
		if t.Step != nil {
			specs = append(specs, *t.Step)
		}
	}
	return f.runner.get(specs)
}

// applyTail runs tail (whose steps, built, are steps) on v with the marks
// of ms, in recipe order: marks stages drop what they marked (and set
// DupCluster on survivors), per-sample steps run on what is left. It
// returns the first rejection.
func applyTail(ctx context.Context, tail []TailStep, steps []Step, ms markSet, v *datasets.Sample) *datasets.Rejected {
	origin := sampleOrigin(v)
	k := 0
	for _, t := range tail {
		if t.Step != nil {
			if rej := steps[k].Apply(ctx, v); rej != nil {
				return rej
			}
			k++
			continue
		}
		m, ok := ms[t.Marks.Stage][origin]
		if !ok {
			continue
		}
		v.DupCluster = m.survivor
		if !m.kept {
			return &datasets.Rejected{Stage: t.Marks.Stage, Reason: t.Marks.Reason, Survivor: m.survivor,
				Detail: fmt.Sprintf(t.Marks.Detail, m.survivor), Sample: *v}
		}
	}
	return nil
}

func (f *writeShardFn) FinishBundle(ctx context.Context, _ func(*string) bool, emit func(string), _ func(datasets.Rejected)) error {
	f.wg.Wait()
	f.mu.Lock()
	reports, err := f.reports, f.err
	f.reports, f.err = nil, nil
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, r := range reports {
		f.rows.Inc(ctx, r.Shard.Rows)
		if err := emitReport(emit, r); err != nil {
			return err
		}
	}
	tail, err := f.tailSteps()
	if err != nil {
		return err
	}
	return stepUsage(tail, emit)
}

func (f *writeShardFn) write(ctx context.Context, key string, samples []datasets.Sample) (Report, error) {
	sort.Slice(samples, func(i, j int) bool { return datasets.Less(&samples[i], &samples[j]) })
	path := joinPath(f.Cfg.Dir, key)
	var st datasets.ShardStats
	var lengths datasets.LengthStats
	sources := map[string]int64{}
	for i := range samples {
		lengths.Add(&samples[i])
		sources[samples[i].Source.Dataset]++
	}
	err := writeFile(ctx, path, func(w io.Writer) error {
		sw, err := datasets.NewShardWriter(w, datasets.ShardOptions{Compression: f.Cfg.Compression})
		if err != nil {
			return err
		}
		for i := range samples {
			if err := sw.Write(&samples[i]); err != nil {
				return err
			}
		}
		st, err = sw.Close()
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("write shard %s: %w", path, err)
	}
	split := strings.SplitN(strings.TrimPrefix(key, "data/"), "-", 2)[0]
	return Report{Kind: "shard", Split: split, Stats: &lengths, Sources: sources,
		Shard: &datasets.Shard{Path: key, Rows: st.Rows, Bytes: st.Bytes, SHA256: st.SHA256}}, nil
}

func emitReport(emit func(string), r Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	emit(string(b))
	return nil
}

// joinPath joins a directory (local or URL) and a slash-separated
// relative path.
func joinPath(dir, rel string) string {
	return strings.TrimRight(dir, "/") + "/" + rel
}

// writeFile writes one file through Beam's filesystem package.
func writeFile(ctx context.Context, path string, fill func(io.Writer) error) error {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return err
	}
	defer fs.Close()
	wc, err := fs.OpenWrite(ctx, path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(wc, 1<<20)
	if err := fill(bw); err != nil {
		wc.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}

// WriteDeadLetters writes the dead letters (JSON strings) sorted by
// source, file and index to DeadLettersFile (always, empty when there are
// none) and returns its report line.
func WriteDeadLetters(s beam.Scope, dead beam.PCollection, dir string) beam.PCollection {
	s = s.Scope("WriteDeadLetters")
	all := beam.Flatten(s, dead, beam.Create(s, ""))
	return beam.ParDo(s, &writeDeadFn{Dir: dir}, beam.GroupByKey(s, beam.AddFixedKey(s, all)))
}

type writeDeadFn struct {
	Dir string `json:"dir"`
}

func (f *writeDeadFn) ProcessElement(ctx context.Context, _ int, values func(*string) bool, emit func(string)) error {
	type entry struct {
		dl  datasets.DeadLetter
		raw string
	}
	var all []entry
	var v string
	for values(&v) {
		if v == "" {
			continue
		}
		var dl datasets.DeadLetter
		if err := json.Unmarshal([]byte(v), &dl); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		all = append(all, entry{dl, v})
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].dl, all[j].dl
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Index < b.Index
	})
	counts := map[string]int64{}
	err := writeFile(ctx, joinPath(f.Dir, DeadLettersFile), func(w io.Writer) error {
		for _, e := range all {
			counts[e.dl.Reason]++
			if _, err := io.WriteString(w, e.raw+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	return emitReport(emit, Report{Kind: "dead_letters", Counts: counts, Path: DeadLettersFile})
}

// WriteRejected writes every dropped sample with its stage, reason and
// detail, sorted by stage, reason and id, to RejectedFile (always, empty
// when nothing was dropped) and returns its report line with counts by
// "stage/reason".
func WriteRejected(s beam.Scope, rejected []beam.PCollection, dir string) beam.PCollection {
	s = s.Scope("WriteRejected")
	cols := append([]beam.PCollection{beam.ParDo(s, markerRejected, beam.Create(s, ""))}, rejected...)
	all := beam.Flatten(s, cols...)
	return beam.ParDo(s, &writeRejectedFn{Dir: dir}, beam.GroupByKey(s, beam.AddFixedKey(s, all)))
}

func markerRejected(_ string, emit func(datasets.Rejected)) { emit(datasets.Rejected{}) }

type writeRejectedFn struct {
	Dir string `json:"dir"`
}

func (f *writeRejectedFn) ProcessElement(ctx context.Context, _ int, values func(*datasets.Rejected) bool, emit func(string)) error {
	var all []datasets.Rejected
	var v datasets.Rejected
	for values(&v) {
		if v.Stage != "" {
			all = append(all, v)
		}
		v = datasets.Rejected{}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := &all[i], &all[j]
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return datasets.Less(&a.Sample, &b.Sample)
	})
	counts := map[string]int64{}
	err := writeFile(ctx, joinPath(f.Dir, RejectedFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range all {
			counts[all[i].Stage+"/"+all[i].Reason]++
			if err := enc.Encode(&all[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write rejected: %w", err)
	}
	return emitReport(emit, Report{Kind: "rejected", Counts: counts, Path: RejectedFile})
}

// WriteReport gathers every report line into ReportFile, sorted. It runs
// after all writers have finished, since it consumes their outputs.
func WriteReport(s beam.Scope, dir string, reports ...beam.PCollection) {
	s = s.Scope("WriteReport")
	all := beam.Flatten(s, reports...)
	beam.ParDo0(s, &writeReportFn{Dir: dir}, beam.GroupByKey(s, beam.AddFixedKey(s, all)))
}

type writeReportFn struct {
	Dir string `json:"dir"`
}

func (f *writeReportFn) ProcessElement(ctx context.Context, _ int, values func(*string) bool) error {
	var lines []string
	var v string
	for values(&v) {
		lines = append(lines, v)
	}
	sort.Strings(lines)
	return writeFile(ctx, joinPath(f.Dir, ReportFile), func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
		return err
	})
}

// ReadReport parses a report file written by WriteReport.
func ReadReport(data []byte) ([]Report, error) {
	var out []Report
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("report line %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}
