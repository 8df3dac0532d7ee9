package transforms

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

func init() {
	register.DoFn2x0[datasets.Sample, func(string, string)](&exactKeyFn{})
	register.Emitter2[string, string]()
	register.DoFn4x0[context.Context, string, func(*string) bool, func(string)](&pickSurvivorFn{})
	register.Iter1[string]()
	register.DoFn5x0[context.Context, datasets.Sample, func(*string) bool, func(datasets.Sample), func(datasets.Rejected)](&applyMarksFn{})
	register.Emitter1[datasets.Rejected]()
}

// ExactDedup drops samples whose normalised text (see dedup.ExactKey)
// equals another's, keeping in every group of equal keys the sample first
// in datasets.Less order (smallest id). Survivors of groups of two or more
// get DupCluster set to their own id, dropped samples to the survivor's.
//
// Only (key, reference) pairs are shuffled; the decisions reach the
// samples as a side input of the (usually few) non-trivial groups' marks.
func ExactDedup(s beam.Scope, in beam.PCollection, mode dedup.KeyMode) (kept, dropped beam.PCollection) {
	return ExactDedupNamed(s, in, mode, "exact_dedup")
}

// ExactDedupNamed is ExactDedup reporting its drops under the stage name
// given (for recipes that run the stage more than once).
func ExactDedupNamed(s beam.Scope, in beam.PCollection, mode dedup.KeyMode, stage string) (kept, dropped beam.PCollection) {
	s = s.Scope("ExactDedup")
	keyed := beam.ParDo(s, &exactKeyFn{Mode: string(mode)}, in)
	groups := beam.GroupByKey(s, keyed)
	marks := beam.ParDo(s, &pickSurvivorFn{}, groups)
	return beam.ParDo2(s, &applyMarksFn{Stage: stage, Reason: "exact_duplicate", Mode: string(mode)}, in, beam.SideInput{Input: marks})
}

// sampleRef identifies one sample within a run and sorts like
// datasets.Less: id, source, file, zero-padded index, separated by 0
// bytes (which none of them contains).
func sampleRef(s *datasets.Sample) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%020d", s.ID, s.Source.Dataset, s.Source.File, s.Source.Index)
}

func refID(ref string) string { return ref[:strings.IndexByte(ref, 0)] }

type exactKeyFn struct {
	Mode string `json:"mode"`
}

func (f *exactKeyFn) ProcessElement(s datasets.Sample, emit func(string, string)) {
	k := dedup.ExactKey(s.Messages, dedup.KeyMode(f.Mode))
	emit(hex.EncodeToString(k[:]), sampleRef(&s))
}

// pickSurvivorFn emits, for a key shared by several samples, one mark per
// sample: "ref\x01" + "K" (kept) or "D" (dropped) + the survivor's id.
// Keys of one sample emit nothing.
type pickSurvivorFn struct {
	groups beam.Counter
}

func (f *pickSurvivorFn) Setup() { f.groups = beam.NewCounter(Namespace, "exact_dup_groups") }

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
	survivor := refID(best)
	for _, r := range all {
		if r == best {
			emit(r + "\x01K" + survivor)
		} else {
			emit(r + "\x01D" + survivor)
		}
	}
}

// applyMarksFn passes samples through, dropping those marked with another
// sample as survivor. The marks are loaded once per DoFn instance (the
// side input is the same for every element of the global window).
type applyMarksFn struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	Mode   string `json:"mode"`

	marks   map[string]string
	dropped beam.Counter
}

func (f *applyMarksFn) Setup() {
	f.dropped = beam.NewCounter(Namespace, f.Stage+"_dropped")
}

func (f *applyMarksFn) ProcessElement(ctx context.Context, s datasets.Sample, marks func(*string) bool, kept func(datasets.Sample), dropped func(datasets.Rejected)) {
	if f.marks == nil {
		f.marks = map[string]string{}
		var m string
		for marks(&m) {
			i := strings.LastIndexByte(m, 1)
			f.marks[m[:i]] = m[i+1:]
		}
	}
	survivor, ok := f.marks[sampleRef(&s)]
	if !ok {
		kept(s)
		return
	}
	s.DupCluster = survivor[1:]
	if survivor[0] == 'K' {
		kept(s)
		return
	}
	f.dropped.Inc(ctx, 1)
	dropped(datasets.Rejected{Stage: f.Stage, Reason: f.Reason, Survivor: s.DupCluster,
		Detail: fmt.Sprintf("same normalised %s as %s", f.Mode, s.DupCluster), Sample: s})
}
