package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

func init() {
	register.DoFn3x1[context.Context, string, func(string), error](&expandMarksFn{})
}

// expandMarksFn turns references to marks files back into mark strings,
// so that the two paths' marks compare as strings.
type expandMarksFn struct{}

func (expandMarksFn) ProcessElement(ctx context.Context, m string, emit func(string)) error {
	if !strings.HasPrefix(m, marksFileRef) {
		emit(m)
		return nil
	}
	return mergeRuns(ctx, []string{m[len(marksFileRef):]}, func(r runRecord) error {
		emit(string(r.key[:]) + markVerdictSep + string(r.payload))
		return nil
	})
}

// exactGroups makes groups of samples with the same response under
// different prompts, of the given sizes; members whose index is a
// multiple of 3 have a prompt the later check drops.
func exactGroups(sizes ...int) []any {
	var out []any
	idx := 0
	for g, size := range sizes {
		for m := 0; m < size; m++ {
			q := fmt.Sprintf("prompt %d of group %d", m, g)
			if idx%3 == 0 {
				q += " drop-me"
			}
			msgs := []datasets.Message{{Role: "user", Content: q}, {Role: "assistant", Content: fmt.Sprintf("answer of group %d", g)}}
			out = append(out, datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
				Source: datasets.Source{Dataset: "t", File: fmt.Sprintf("f%d.jsonl", g%3), Index: int64(idx)}})
			idx++
		}
	}
	return out
}

// TestExactLocalEqualsShuffled: exact dedup with its keys in sorted runs
// merged on one worker (the in-process runners' path) marks the same
// samples, with the same survivors (members that pass the later check
// first, then the smallest reference), as the shuffled path; with a
// budget of 2 KiB every keying bundle writes many runs.
func TestExactLocalEqualsShuffled(t *testing.T) {
	in := exactGroups(1, 2, 3, 1, 7, 50, 300, 1, 4)
	post := []StepSpec{{Stage: "filter", Kind: "test_drop", Config: json.RawMessage(`{"Word":"drop-me"}`)}}
	p, s := beam.NewPipelineWithRoot()
	samples := beam.CreateList(s, in)
	cfg := ExactConfig{Mode: dedup.KeyResponse, Post: post}
	shuffled := ExactDedupMarks(s.Scope("shuffled"), samples, cfg, "exact_dedup", nil)
	cfg.Local = SpillConfig{Dir: t.TempDir(), Budget: 2 << 10}
	local := ExactDedupMarks(s.Scope("local"), samples, cfg, "exact_dedup", nil)
	expanded := beam.ParDo(s, &expandMarksFn{}, local.Marks)
	passert.Equals(s, expanded, shuffled.Marks)
	// 6 groups of two or more: 366 members, each one mark.
	passert.Count(s, shuffled.Marks, "marks", 366)
	ptest.RunAndValidate(t, p)
}
