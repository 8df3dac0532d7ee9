package transforms

import (
	"context"
	"encoding/hex"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

func init() {
	register.DoFn3x1[context.Context, datasets.Sample, func(string, string), error](&exactKeyFn{})
	register.DoFn4x0[context.Context, string, func(*string) bool, func(string)](&pickSurvivorFn{})
	register.Iter1[string]()
	register.Emitter1[datasets.Rejected]()
}

// ExactDedupMarks decides exact duplicates: samples whose normalised text
// (see dedup.ExactKey) is equal form a group, and in every group of two or
// more the sample first in datasets.Less order (smallest id) is kept and
// the others are marked dropped. Samples that earlier stages' marks drop
// take no part. Only (key, reference) pairs are shuffled; the result is a
// PCollection of marks (see StageMarks).
//
// pre are the per-sample steps that come before this stage in the writers'
// tail (see WriteConfig.Tail): the keys are computed on what they keep,
// as they rewrite it, so the stage decides on what it will really see.
//
// post are the per-sample checks that come after this stage (filters,
// decontamination): a group's survivor is its smallest reference among
// the members that pass them, so that a group never loses every member
// to a later filter while one would have passed.
//
// With cfg.Local set (the in-process runners), the keys go to sorted runs
// on disk and one worker merges them (see exactLocal); the marks are the
// same.
func ExactDedupMarks(s beam.Scope, in beam.PCollection, cfg ExactConfig, stage string, prior []StageMarks) StageMarks {
	s = s.Scope("ExactDedup")
	var marks beam.PCollection
	if cfg.Local.Dir != "" && len(prior) == 0 {
		marks = exactLocal(s, in, cfg, stage)
	} else {
		keyed := withoutDropped(s, beam.ParDo(s, &exactKeyFn{Mode: string(cfg.Mode), Pre: cfg.Pre, Post: quiet(cfg.Post)}, in), prior)
		groups := cfg.Meter.GroupByKey(s, stage+".keys", keyed)
		marks = beam.ParDo(s, &pickSurvivorFn{Stage: stage}, groups)
	}
	return StageMarks{Stage: stage, Reason: "exact_duplicate", Detail: "same normalised " + string(cfg.Mode) + " as %s", Marks: marks}
}

// ExactConfig configures ExactDedupMarks.
type ExactConfig struct {
	Mode dedup.KeyMode
	// Pre are the pending per-sample steps the keys are computed after,
	// Post the later checks that pick survivors (see ExactDedupMarks).
	Pre, Post []StepSpec
	// Local, when its Dir is set, keeps the keys in sorted runs under
	// Dir's spill directory, merged on one worker (in-process runners).
	Local SpillConfig
	// Meter counts the stage's shuffle (nil: not counted).
	Meter *ShuffleMeter
}

type exactKeyFn struct {
	Mode   string     `json:"mode"`
	Pre    []StepSpec `json:"pre,omitempty"`
	Post   []StepSpec `json:"post,omitempty"`
	runner stepRunner
	checks stepRunner
}

func (f *exactKeyFn) ProcessElement(ctx context.Context, s datasets.Sample, emit func(string, string)) error {
	steps, err := f.runner.get(f.Pre)
	if err != nil {
		return err
	}
	if runSteps(ctx, steps, &s) != nil {
		return nil
	}
	post, err := checksOf(&f.checks, f.Post)
	if err != nil {
		return err
	}
	k := dedup.ExactKey(s.Messages, dedup.KeyMode(f.Mode))
	emit(hex.EncodeToString(k[:]), passPrefix(ctx, post, &s)+sampleRef(&s))
	return nil
}

// pickSurvivorFn marks, for a key shared by several samples, the smallest
// reference kept and the others dropped. Keys of one sample emit nothing.
type pickSurvivorFn struct {
	Stage  string `json:"stage"`
	groups beam.Counter
}

func (f *pickSurvivorFn) Setup() { f.groups = beam.NewCounter(Namespace, f.Stage+"_groups") }

func (f *pickSurvivorFn) ProcessElement(ctx context.Context, _ string, refs func(*string) bool, emit func(string)) {
	var all []string
	var ref string
	for refs(&ref) {
		all = append(all, ref)
	}
	if len(all) < 2 {
		return
	}
	best := all[0]
	for _, r := range all[1:] {
		if r < best {
			best = r
		}
	}
	f.groups.Inc(ctx, 1)
	// Values are a pass prefix (passPrefix) and the reference.
	survivor := refID(best[1:])
	for _, r := range all {
		emit(formatMark(f.Stage, r[1:], r == best, survivor))
	}
}
