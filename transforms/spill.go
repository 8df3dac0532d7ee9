package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
)

// Spilling sample bodies: the in-process runners hold whole PCollections
// (prism several copies), so memory grew with the dataset. Spill writes
// the samples, at the point where the pipeline stops changing them before
// the writers, into sorted runs under the staging directory, one run per
// (buffer flush, shard), and returns only (shard, run path) pairs. The
// whole-dataset stages after it read the runs back (Unspill) to compute
// their small keys, and the shard writers merge their shard's runs in
// datasets.Less order, apply the tail and write Parquet, streaming. What
// the runner holds per sample is then its keys, never its body.

// SpillConfig configures Spill and WriteSpilled.
type SpillConfig struct {
	// Dir is the version's staging directory; runs go to Dir/_spill/.
	Dir string `json:"dir"`
	// Budget is the bytes of samples a spiller buffers before it writes
	// runs, and of survivors a writer sorts in memory before it sorts on
	// disk; 0 means DefaultSpillBudget.
	Budget int `json:"budget,omitempty"`
	// Meter counts the writers' shuffle (nil: not counted).
	Meter *ShuffleMeter `json:"-"`
}

// DefaultSpillBudget is SpillConfig.Budget's default.
const DefaultSpillBudget = 64 << 20

func (c SpillConfig) budget() int {
	if c.Budget > 0 {
		return c.Budget
	}
	return DefaultSpillBudget
}

func init() {
	register.DoFn3x1[context.Context, datasets.Sample, func(string, string), error](&spillFn{})
	register.DoFn5x1[context.Context, string, string, func(*string) bool, func(datasets.Sample), error](&unspillFn{})
	register.DoFn5x1[context.Context, string, func(*string) bool, func(*string) bool, func(string), error](&writeSpilledFn{})
	register.Function2x0(markerPath)
}

// Spill writes samples into sorted runs (see above) and returns a
// PCollection<KV<string, string>> of (shard key, run path): the shard key
// as WriteShards assigns it (split and shard of the sample's id).
func Spill(s beam.Scope, samples beam.PCollection, w WriteConfig, cfg SpillConfig) beam.PCollection {
	s = s.Scope("Spill")
	return beam.ParDo(s, &spillFn{Write: w, Cfg: cfg}, samples)
}

type spillFn struct {
	Write WriteConfig `json:"write"`
	Cfg   SpillConfig `json:"cfg"`
	buf   map[string][]runRecord
	bytes int
	bg    backgroundRuns
}

func (f *spillFn) ProcessElement(ctx context.Context, s datasets.Sample, emit func(string, string)) error {
	if f.buf == nil {
		f.buf = map[string][]runRecord{}
	}
	key := shardKeyOf(f.Write, s.ID)
	rec := runRecord{key: sampleKey(nil, s.ID, s.Source.Dataset, s.Source.File, s.Source.Index), payload: s.AppendBinary(nil)}
	f.buf[key] = append(f.buf[key], rec)
	f.bytes += len(rec.key) + len(rec.payload) + 64
	if f.bytes >= f.Cfg.budget() {
		return f.flush(ctx, emit)
	}
	return nil
}

func (f *spillFn) FinishBundle(ctx context.Context, emit func(string, string)) error {
	if err := f.flush(ctx, emit); err != nil {
		return err
	}
	return f.bg.wait()
}

// flush emits the paths of one run per shard of the buffer and writes
// them, sorting the shards on up to GOMAXPROCS goroutines, in the
// background while the next buffer fills (the bundle ends only once
// they are written, so nothing reads a run before it is whole).
func (f *spillFn) flush(ctx context.Context, emit func(string, string)) error {
	if err := f.bg.wait(); err != nil {
		return err
	}
	if len(f.buf) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(f.buf))
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = spillPath(f.Cfg.Dir, "s")
		emit(k, paths[i])
	}
	buf := f.buf
	f.buf, f.bytes = nil, 0
	return f.bg.start(func() error {
		return forEachErr(len(keys), runtime.GOMAXPROCS(0), func(i int) error {
			return writeSortedRun(ctx, paths[i], buf[keys[i]])
		})
	})
}

// shardKeyOf is the shard key (ShardPath) of an id under w.
func shardKeyOf(w WriteConfig, id string) string {
	split := Split(id, w.SplitSeed, w.TestRatio)
	n := w.Shards
	if split == "test" {
		n = w.TestShards
	}
	return ShardPath(split, ShardOf(id, n), n)
}

// Unspill reads spilled runs back as samples for a whole-dataset stage:
// those that the earlier mark stages (prior) did not drop, with the
// pending per-sample steps (pre) applied, as the stage would see them.
// The marks arrive as a side input here, so that the stage's own DoFns
// take none and an in-process runner buffers (waiting for the marks) only
// run paths, not samples.
func Unspill(s beam.Scope, runs beam.PCollection, prior []StageMarks, pre []StepSpec) beam.PCollection {
	s = s.Scope("Unspill")
	all, stages := marksSideInput(s, prior)
	return beam.ParDo(s, &unspillFn{Stages: stages, Pre: quiet(pre)}, runs, all)
}

type unspillFn struct {
	Stages []string   `json:"stages,omitempty"`
	Pre    []StepSpec `json:"pre,omitempty"`
	marks  markSet
	runner stepRunner
}

func (f *unspillFn) ProcessElement(ctx context.Context, _ string, path string, marks func(*string) bool, emit func(datasets.Sample)) error {
	if f.marks == nil {
		ms, err := loadMarks(ctx, marks)
		if err != nil {
			return err
		}
		f.marks = ms
	}
	steps, err := f.runner.get(f.Pre)
	if err != nil {
		return err
	}
	return mergeRuns(ctx, []string{path}, func(r runRecord) error {
		var v datasets.Sample
		if err := v.UnmarshalBinary(r.payload); err != nil {
			return fmt.Errorf("run %s: %w", path, err)
		}
		if _, _, dropped := f.marks.dropped(sampleOrigin(&v), f.Stages); dropped {
			return nil
		}
		if runSteps(ctx, steps, &v) != nil {
			return nil
		}
		emit(v)
		return nil
	})
}

// WriteSpilled is WriteShards over spilled runs: each shard's runs are
// grouped by shard key (only paths are shuffled), merged in
// datasets.Less order, put through cfg.Tail (marks as a side input, and
// the per-sample steps) and written as one Parquet file, streaming: in
// merge order where no tail step changes ids (keepsIDs), else sorted
// again by the ids the tail left (in memory up to the budget, else on
// local disk). Rejected samples are written by each writer
// into sorted runs of their own, one per (stage, reason); it returns the
// report lines and those runs' references ("R" + JSON rejectedRun), for
// WriteRejected.
func WriteSpilled(s beam.Scope, runs beam.PCollection, cfg WriteConfig, sc SpillConfig, marks []StageMarks) (reports, rejected beam.PCollection) {
	s = s.Scope("WriteShards")
	markers := beam.ParDo(s, markerPath, beam.Create(s, anys(shardKeys(cfg))...))
	groups := sc.Meter.GroupByKey(s, "write.runs", beam.Flatten(s, runs, markers))
	allMarks, _ := marksSideInput(s, marks)
	out := beam.ParDo(s, &writeSpilledFn{Cfg: cfg, Spill: sc}, groups, allMarks)
	return splitRejectedRuns(s, out)
}

// markerPath makes an empty run path for a shard key, so that every
// shard has a group.
func markerPath(key string, emit func(string, string)) { emit(key, "") }

// rejectedRun names a sorted run of rejected samples of one stage and
// reason (JSON lines as RejectedFile holds them, keyed by sampleKey).
type rejectedRun struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	Path   string `json:"path"`
	Count  int64  `json:"count"`
}

func init() {
	register.Function3x0(splitRejectedRun)
}

func splitRejectedRuns(s beam.Scope, out beam.PCollection) (reports, rejected beam.PCollection) {
	return beam.ParDo2(s, splitRejectedRun, out)
}

func splitRejectedRun(line string, report func(string), rejected func(string)) {
	if strings.HasPrefix(line, "R{") {
		rejected(line[1:])
		return
	}
	report(line)
}

type writeSpilledFn struct {
	Cfg   WriteConfig `json:"cfg"`
	Spill SpillConfig `json:"spill"`
	rows  beam.Counter

	marks  markSet
	runner stepRunner
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	lines  []string
	err    error
}

func (f *writeSpilledFn) Setup() {
	f.rows = beam.NewCounter(Namespace, "written_rows")
	f.sem = make(chan struct{}, runtime.GOMAXPROCS(0))
}

func (f *writeSpilledFn) tailSteps() ([]Step, error) { return f.runner.get(tailSpecs(f.Cfg.Tail)) }

func (f *writeSpilledFn) ProcessElement(ctx context.Context, key string, paths func(*string) bool, marks func(*string) bool, emit func(string)) error {
	if f.marks == nil {
		ms, err := loadMarks(ctx, marks)
		if err != nil {
			return err
		}
		f.marks = ms
	}
	tail, err := f.tailSteps()
	if err != nil {
		return err
	}
	var runs []string
	var p string
	for paths(&p) {
		if p != "" {
			runs = append(runs, p)
		}
	}
	// Runs in a fixed order, so that equal keys (which cannot occur
	// within a run) merge the same way on every runner.
	sort.Strings(runs)
	f.sem <- struct{}{}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		lines, err := f.writeShard(ctx, key, runs, tail)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil && f.err == nil {
			f.err = err
		}
		f.lines = append(f.lines, lines...)
	}()
	return nil
}

func (f *writeSpilledFn) FinishBundle(ctx context.Context, _ func(*string) bool, emit func(string)) error {
	f.wg.Wait()
	f.mu.Lock()
	lines, err := f.lines, f.err
	f.lines, f.err = nil, nil
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, l := range lines {
		if strings.HasPrefix(l, `{"kind":"shard"`) {
			var r Report
			if json.Unmarshal([]byte(l), &r) == nil && r.Shard != nil {
				f.rows.Inc(ctx, r.Shard.Rows)
			}
		}
		emit(l)
	}
	tail, err := f.tailSteps()
	if err != nil {
		return err
	}
	return stepUsage(tail, emit)
}

// writeShard merges a shard's runs, applies the tail in batches and
// writes the survivors; it returns the shard's report line and the
// references of its rejected runs ("R" + JSON).
func (f *writeSpilledFn) writeShard(ctx context.Context, key string, runs []string, tail []Step) ([]string, error) {
	workers := 1
	if len(tail) > 0 {
		workers = workersFor(tail)
	}
	type rejKey struct{ stage, reason string }
	rejected := map[rejKey]*extSorter{}
	var keyBuf []byte
	var sink jsonSink
	enc := json.NewEncoder(&sink)
	enc.SetEscapeHTML(false)
	batch := make([]datasets.Sample, 0, stepBatch)
	// mergeTail merges the runs (in sampleKey order), puts them through
	// the tail in batches and gives the survivors to keep, in order.
	mergeTail := func(keep func(*datasets.Sample) error) error {
		var ferr error
		process := func() error {
			applyBatch(batch, workers, func(s *datasets.Sample) *datasets.Rejected {
				return applyTail(ctx, f.Cfg.Tail, tail, f.marks, s)
			}, func(s datasets.Sample) {
				if ferr == nil {
					ferr = keep(&s)
				}
			}, func(r datasets.Rejected) {
				if ferr != nil {
					return
				}
				k := rejKey{r.Stage, r.Reason}
				rs := rejected[k]
				if rs == nil {
					rs = newExtSorter(f.Spill.budget() / 4)
					rejected[k] = rs
				}
				sink.b = sink.b[:0]
				if ferr = enc.Encode(&r); ferr != nil {
					return
				}
				keyBuf = sampleKey(keyBuf[:0], r.Sample.ID, r.Sample.Source.Dataset, r.Sample.Source.File, r.Sample.Source.Index)
				ferr = rs.add(ctx, keyBuf, sink.b)
			})
			batch = batch[:0]
			return ferr
		}
		err := mergeRuns(ctx, runs, func(r runRecord) error {
			var v datasets.Sample
			if err := v.UnmarshalBinary(r.payload); err != nil {
				return fmt.Errorf("shard %s: %w", key, err)
			}
			batch = append(batch, v)
			if len(batch) == stepBatch {
				return process()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = process()
		}
		return err
	}
	release := func() {
		for _, rs := range rejected {
			rs.release()
		}
	}
	var rep Report
	var err error
	if keepsIDs(tail) {
		// No step of the tail changes ids: the survivors leave the
		// merge in their final order and go straight into the shard.
		var last, cur []byte
		rep, err = f.writeParquet(ctx, key, func(add func(*datasets.Sample) error) error {
			return mergeTail(func(s *datasets.Sample) error {
				cur = sampleKey(cur[:0], s.ID, s.Source.Dataset, s.Source.File, s.Source.Index)
				if bytes.Compare(cur, last) < 0 {
					return fmt.Errorf("shard %s: sample %s out of order after the tail", key, s.ID)
				}
				last, cur = cur, last
				return add(s)
			})
		})
	} else {
		// Ids may change (PII redaction): sort the survivors again, in
		// memory up to the budget, else on local disk.
		kept := newExtSorter(f.Spill.budget())
		var lineBuf []byte
		err = mergeTail(func(s *datasets.Sample) error {
			keyBuf = sampleKey(keyBuf[:0], s.ID, s.Source.Dataset, s.Source.File, s.Source.Index)
			lineBuf = s.AppendBinary(lineBuf[:0])
			return kept.add(ctx, keyBuf, lineBuf)
		})
		if err == nil {
			rep, err = f.writeParquet(ctx, key, func(add func(*datasets.Sample) error) error {
				return kept.each(ctx, func(r runRecord) error {
					var v datasets.Sample
					if err := v.UnmarshalBinary(r.payload); err != nil {
						return err
					}
					return add(&v)
				})
			})
		}
		kept.release()
	}
	if err != nil {
		release()
		return nil, err
	}
	var lines []string
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	lines = append(lines, string(b))
	for k, rs := range rejected {
		path := spillPath(f.Spill.Dir, "r")
		w, err := createRun(ctx, path)
		if err != nil {
			rs.release()
			return nil, fmt.Errorf("spill %s: %w", path, err)
		}
		err = rs.each(ctx, func(r runRecord) error { return w.add(r.key, r.payload) })
		n := w.n
		if err == nil {
			err = w.finish()
		} else {
			w.abort()
		}
		if err != nil {
			return nil, fmt.Errorf("spill %s: %w", path, err)
		}
		b, err := json.Marshal(rejectedRun{Stage: k.stage, Reason: k.reason, Path: path, Count: n})
		if err != nil {
			return nil, err
		}
		lines = append(lines, "R"+string(b))
	}
	return lines, nil
}

// jsonSink collects one JSON encoding.
type jsonSink struct{ b []byte }

func (s *jsonSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

// writeParquet writes the sorted survivors of one shard.
func (f *writeSpilledFn) writeParquet(ctx context.Context, key string, produce func(add func(*datasets.Sample) error) error) (Report, error) {
	path := joinPath(f.Cfg.Dir, key)
	var st datasets.ShardStats
	var lengths datasets.LengthStats
	sources := map[string]int64{}
	err := writeFile(ctx, path, func(w io.Writer) error {
		sw, err := datasets.NewShardWriter(w, datasets.ShardOptions{Compression: f.Cfg.Compression})
		if err != nil {
			return err
		}
		err = produce(func(v *datasets.Sample) error {
			lengths.Add(v)
			sources[v.Source.Dataset]++
			return sw.Write(v)
		})
		if err != nil {
			return err
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

// RemoveSpill deletes the run files of a staging directory (before the
// commit: they are not part of the version).
func RemoveSpill(ctx context.Context, dir string) error {
	files, err := datasets.List(ctx, joinPath(dir, SpillDir+"/*"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := datasets.Remove(ctx, f); err != nil {
			return fmt.Errorf("remove spill: %w", err)
		}
	}
	if !strings.Contains(dir, "://") {
		// Local directories are real; object stores have none to remove.
		if err := os.Remove(joinPath(dir, SpillDir)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove spill: %w", err)
		}
	}
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
