package transforms

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// Exact dedup on one machine (ExactConfig.Local set): the keys never
// travel through the runner. Each keying DoFn writes its (key, pass,
// reference) records, sorted, into runs under the spill directory and
// emits only the runs' paths; one worker merges the runs, in which the
// members of a group are adjacent and the group's survivor (passing
// members first, then the smallest reference: the same order as
// pickSurvivorFn's) comes first, and writes the stage's marks into a
// marks file. Its memory is one record; the runner holds a path per run.
// The marks are the same as the shuffled path's.

func init() {
	register.DoFn3x1[context.Context, datasets.Sample, func(string), error](&exactKeyRunFn{})
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&exactGroupsFn{})
}

func exactLocal(s beam.Scope, in beam.PCollection, cfg ExactConfig, stage string) beam.PCollection {
	s = s.Scope("Local")
	runs := beam.ParDo(s, &exactKeyRunFn{Mode: string(cfg.Mode), Pre: cfg.Pre, Post: quiet(cfg.Post), Cfg: cfg.Local}, in)
	return beam.ParDo(s, &exactGroupsFn{Stage: stage, Dir: cfg.Local.Dir}, cfg.Meter.GroupByKey(s, stage+".key_runs", beam.AddFixedKey(s, runs)))
}

// exactKeyRunFn keys samples in batches (on GOMAXPROCS goroutines: the
// pending steps and the later checks are most of the cost) and writes
// the records into sorted runs of at most the spill budget. A record's
// key is the 32-byte exact key, the pass byte ('0' passes the later
// checks) and the sample's reference (sampleRef, as the shuffled path compares them); its payload is empty.
type exactKeyRunFn struct {
	Mode   string      `json:"mode"`
	Pre    []StepSpec  `json:"pre,omitempty"`
	Post   []StepSpec  `json:"post,omitempty"`
	Cfg    SpillConfig `json:"cfg"`
	runner stepRunner
	checks stepRunner
	batch  []datasets.Sample
	recs   []runRecord
	bytes  int
	bg     backgroundRuns
}

func (f *exactKeyRunFn) ProcessElement(ctx context.Context, s datasets.Sample, emit func(string)) error {
	f.batch = append(f.batch, s)
	if len(f.batch) >= stepBatch {
		return f.key(ctx, emit)
	}
	return nil
}

func (f *exactKeyRunFn) FinishBundle(ctx context.Context, emit func(string)) error {
	if err := f.key(ctx, emit); err != nil {
		return err
	}
	if err := f.flush(ctx, emit); err != nil {
		return err
	}
	return f.bg.wait()
}

func (f *exactKeyRunFn) key(ctx context.Context, emit func(string)) error {
	if len(f.batch) == 0 {
		return nil
	}
	pre, err := f.runner.get(f.Pre)
	if err != nil {
		return err
	}
	post, err := checksOf(&f.checks, f.Post)
	if err != nil {
		return err
	}
	keys := make([][]byte, len(f.batch))
	forEach(len(f.batch), workersFor(append(pre[:len(pre):len(pre)], post.steps...)), func(i int) {
		s := &f.batch[i]
		if runSteps(ctx, pre, s) != nil {
			return
		}
		k := dedup.ExactKey(s.Messages, dedup.KeyMode(f.Mode))
		b := append(k[:], passPrefix(ctx, post, s)...)
		keys[i] = append(b, sampleRef(s)...)
	})
	for _, k := range keys {
		if k == nil {
			continue
		}
		f.recs = append(f.recs, runRecord{key: k})
		f.bytes += len(k) + 48
	}
	f.batch = f.batch[:0]
	if f.bytes >= f.Cfg.budget() {
		return f.flush(ctx, emit)
	}
	return nil
}

func (f *exactKeyRunFn) flush(ctx context.Context, emit func(string)) error {
	if len(f.recs) == 0 {
		return nil
	}
	path, err := f.bg.spill(ctx, f.Cfg.Dir, "x", f.recs)
	if err != nil {
		return err
	}
	f.recs, f.bytes = nil, 0
	emit(path)
	return nil
}

// exactGroupsFn merges the key runs and writes the marks of every group
// of two or more into a marks file, whose reference it emits.
type exactGroupsFn struct {
	Stage  string `json:"stage"`
	Dir    string `json:"dir"`
	groups beam.Counter
}

func (f *exactGroupsFn) Setup() { f.groups = beam.NewCounter(Namespace, f.Stage+"_groups") }

// exactKeyLen is the length of a dedup.Key at the start of a key record.
const exactKeyLen = len(dedup.Key{})

func (f *exactGroupsFn) ProcessElement(ctx context.Context, _ int, paths func(*string) bool, emit func(string)) error {
	var runs []string
	var p string
	for paths(&p) {
		runs = append(runs, p)
	}
	sort.Strings(runs) // records are distinct: the order only fixes the file
	out, err := createMarksFile(ctx, f.Dir, f.Stage)
	if err != nil {
		return err
	}
	var group []byte    // the current group's key
	var first []byte    // its first member's record (pass byte and reference)
	var survivor string // set once the group has a second member
	n := int64(0)
	err = mergeRuns(ctx, runs, func(r runRecord) error {
		if len(r.key) < exactKeyLen+2 {
			return fmt.Errorf("exact dedup: malformed key record in %v", runs)
		}
		k, member := r.key[:exactKeyLen], r.key[exactKeyLen:]
		if !bytes.Equal(k, group) {
			group = append(group[:0], k...)
			first = append(first[:0], member...)
			survivor = ""
			return nil
		}
		if survivor == "" {
			ref := string(first[1:])
			survivor = refID(ref)
			n++
			if err := out.add(refOrigin(ref), true, survivor); err != nil {
				return err
			}
		}
		return out.add(refOrigin(string(member[1:])), false, survivor)
	})
	if err != nil {
		out.w.abort()
		return fmt.Errorf("exact dedup: %w", err)
	}
	ref, err := out.finish()
	if err != nil {
		return err
	}
	f.groups.Inc(ctx, n)
	emit(ref)
	return nil
}
