package transforms

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"

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
	// ShuffleFile holds the run's "shuffle" report lines (see
	// ShuffleMeter) apart from ReportFile: they measure the runner (its
	// bundling, the paths of the spill runs), not the data, so they go
	// to the manifest and the file is not committed.
	ShuffleFile = "_shuffle.jsonl"
)

func init() {
	register.Iter1[datasets.Sample]()
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&writeDeadFn{})
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&writeRejectedFn{})
	register.DoFn3x1[context.Context, datasets.Rejected, func(string), error](&spillRejectedFn{})
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
		m, ok := ms[t.Marks.Stage].get(origin)
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
// detail, sorted by stage, reason and datasets.Less, to RejectedFile
// (always, empty when nothing was dropped) and returns its report line
// with counts by "stage/reason". rejected are PCollections of
// datasets.Rejected (drops before the samples were spilled); runs, when
// valid, is the PCollection of rejected-run references WriteSpilled
// returns. The in-memory drops are first written into sorted runs of
// their own, so the writer holds only references and merges the runs of
// each (stage, reason) in turn: its memory does not grow with the drops.
func WriteRejected(s beam.Scope, rejected []beam.PCollection, runs beam.PCollection, dir string, sc SpillConfig) beam.PCollection {
	s = s.Scope("WriteRejected")
	refs := []beam.PCollection{beam.Create(s, "")}
	if len(rejected) > 0 {
		all := beam.Flatten(s, rejected...)
		refs = append(refs, beam.ParDo(s, &spillRejectedFn{Spill: sc}, all))
	}
	if runs.IsValid() {
		refs = append(refs, runs)
	}
	return beam.ParDo(s, &writeRejectedFn{Dir: dir}, beam.GroupByKey(s, beam.AddFixedKey(s, beam.Flatten(s, refs...))))
}

// spillRejectedFn writes rejected samples into sorted runs, one per
// (stage, reason) and buffer flush, and emits their references (JSON
// rejectedRun).
type spillRejectedFn struct {
	Spill SpillConfig `json:"spill"`
	buf   map[[2]string][]runRecord
	bytes int
	enc   *json.Encoder
	sink  jsonSink
}

func (f *spillRejectedFn) ProcessElement(ctx context.Context, r datasets.Rejected, emit func(string)) error {
	if f.buf == nil {
		f.buf = map[[2]string][]runRecord{}
		f.enc = json.NewEncoder(&f.sink)
		f.enc.SetEscapeHTML(false)
	}
	f.sink.b = nil
	if err := f.enc.Encode(&r); err != nil {
		return err
	}
	k := [2]string{r.Stage, r.Reason}
	rec := runRecord{key: sampleKey(nil, r.Sample.ID, r.Sample.Source.Dataset, r.Sample.Source.File, r.Sample.Source.Index), payload: f.sink.b}
	f.buf[k] = append(f.buf[k], rec)
	f.bytes += len(rec.key) + len(rec.payload) + 64
	if f.bytes >= f.Spill.budget() {
		return f.flush(ctx, emit)
	}
	return nil
}

func (f *spillRejectedFn) FinishBundle(ctx context.Context, emit func(string)) error {
	return f.flush(ctx, emit)
}

func (f *spillRejectedFn) flush(ctx context.Context, emit func(string)) error {
	keys := make([][2]string, 0, len(f.buf))
	for k := range f.buf {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	for _, k := range keys {
		recs := f.buf[k]
		path, err := spillRun(ctx, f.Spill.Dir, "r", recs)
		if err != nil {
			return err
		}
		b, err := json.Marshal(rejectedRun{Stage: k[0], Reason: k[1], Path: path, Count: int64(len(recs))})
		if err != nil {
			return err
		}
		emit(string(b))
	}
	f.buf, f.bytes = nil, 0
	return nil
}

type writeRejectedFn struct {
	Dir string `json:"dir"`
}

func (f *writeRejectedFn) ProcessElement(ctx context.Context, _ int, values func(*string) bool, emit func(string)) error {
	groups := map[[2]string][]string{}
	counts := map[string]int64{}
	var v string
	for values(&v) {
		if v == "" {
			continue
		}
		var r rejectedRun
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return fmt.Errorf("rejected run reference: %w", err)
		}
		k := [2]string{r.Stage, r.Reason}
		groups[k] = append(groups[k], r.Path)
		counts[r.Stage+"/"+r.Reason] += r.Count
	}
	keys := make([][2]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	err := writeFile(ctx, joinPath(f.Dir, RejectedFile), func(w io.Writer) error {
		for _, k := range keys {
			paths := groups[k]
			sort.Strings(paths)
			if err := mergeRuns(ctx, paths, func(r runRecord) error {
				_, err := w.Write(r.payload)
				return err
			}); err != nil {
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

// WriteReport gathers every report line into ReportFile, sorted, but
// the shuffle meter's, which go to ShuffleFile. It runs
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
	var lines, shuffle []string
	var v string
	for values(&v) {
		if strings.HasPrefix(v, shuffleLinePrefix) {
			shuffle = append(shuffle, v)
		} else {
			lines = append(lines, v)
		}
	}
	if err := writeSortedLines(ctx, joinPath(f.Dir, ShuffleFile), shuffle); err != nil {
		return err
	}
	return writeSortedLines(ctx, joinPath(f.Dir, ReportFile), lines)
}

// writeSortedLines writes lines, sorted, one per line, to path.
func writeSortedLines(ctx context.Context, path string, lines []string) error {
	sort.Strings(lines)
	return writeFile(ctx, path, func(w io.Writer) error {
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
