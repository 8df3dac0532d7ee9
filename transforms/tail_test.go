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
)

// Two step kinds for tail tests: test_tag appends " <tag>" to the last
// message; test_drop rejects samples whose first message contains word.
type tagStep struct{ tag string }

func (s tagStep) Apply(_ context.Context, v *datasets.Sample) *datasets.Rejected {
	msgs := append([]datasets.Message(nil), v.Messages...)
	msgs[len(msgs)-1].Content += " " + s.tag
	v.Messages = msgs
	return nil
}

type dropStep struct{ stage, word string }

func (s dropStep) Apply(_ context.Context, v *datasets.Sample) *datasets.Rejected {
	if strings.Contains(v.Messages[0].Content, s.word) {
		return &datasets.Rejected{Stage: s.stage, Reason: "test.word", Sample: *v}
	}
	return nil
}

func init() {
	RegisterStep("test_tag", func(spec StepSpec) (Step, error) {
		var c struct{ Tag string }
		err := json.Unmarshal(spec.Config, &c)
		return tagStep{c.Tag}, err
	})
	RegisterStep("test_drop", func(spec StepSpec) (Step, error) {
		var c struct{ Word string }
		err := json.Unmarshal(spec.Config, &c)
		return dropStep{spec.Stage, c.Word}, err
	})
	register.Function1x1(keptLine)
	register.Function1x1(rejectedLine)
}

// keptLine is a kept sample as "index: last message | cluster".
func keptLine(s datasets.Sample) string {
	return fmt.Sprintf("%d: %s | %s", s.Source.Index, s.Messages[len(s.Messages)-1].Content, s.DupCluster)
}

// rejectedLine is a rejected sample as "index stage reason detail: last
// message".
func rejectedLine(r datasets.Rejected) string {
	return fmt.Sprintf("%d %s %s %q: %s", r.Sample.Source.Index, r.Stage, r.Reason, r.Detail, r.Sample.Messages[len(r.Sample.Messages)-1].Content)
}

// TestApplyTail: a tail of marks and steps applies them in recipe order:
// exact's marks, step A (tags "A"), the filter, fuzzy's marks, step B
// (tags "B"). A sample both stages of marks or a mark and the filter
// would drop is rejected by the first of them in the tail, with that
// stage's reason and detail, and as that stage saw it (steps after it
// not applied); kept samples carry every step's change in order, and a
// cluster's survivor its cluster id.
func TestApplyTail(t *testing.T) {
	var in []any
	var smps []datasets.Sample
	for i := 0; i < 8; i++ {
		q := fmt.Sprintf("question %d", i)
		if i == 1 || i == 2 || i == 5 {
			q += " drop-me"
		}
		msgs := []datasets.Message{{Role: "user", Content: q}, {Role: "assistant", Content: "ans"}}
		s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "t", File: "f.jsonl", Index: int64(i)}}
		smps = append(smps, s)
		in = append(in, s)
	}
	ref := func(i int) string { return sampleRef(&smps[i]) }
	id := func(i int) string { return smps[i].ID }
	// exact: 1 duplicate of 0 (1 would also fail the filter; exact comes
	// first). fuzzy: 3 and 4 duplicates of 6; 2 too, but the filter
	// drops it first.
	exactMarks := []any{formatMark("exact", ref(0), true, id(0)), formatMark("exact", ref(1), false, id(0))}
	fuzzyMarks := []any{formatMark("fuzzy", ref(6), true, id(6)), formatMark("fuzzy", ref(3), false, id(6)),
		formatMark("fuzzy", ref(4), false, id(6)), formatMark("fuzzy", ref(2), false, id(6))}
	step := func(stage, kind, cfg string) *StepSpec {
		return &StepSpec{Stage: stage, Kind: kind, Config: json.RawMessage(cfg)}
	}
	tail := []TailStep{
		{Marks: &MarkStage{Stage: "exact", Reason: "exact_duplicate", Detail: "same as %s"}},
		{Step: step("tagA", "test_tag", `{"Tag":"A"}`)},
		{Step: step("filter", "test_drop", `{"Word":"drop-me"}`)},
		{Marks: &MarkStage{Stage: "fuzzy", Reason: "near_duplicate", Detail: "near %s"}},
		{Step: step("tagB", "test_tag", `{"Tag":"B"}`)},
	}
	wantKept := []any{
		fmt.Sprintf("0: ans A B | %s", id(0)),
		"7: ans A B | ",
		fmt.Sprintf("6: ans A B | %s", id(6)),
	}
	wantRejected := []any{
		fmt.Sprintf("1 exact exact_duplicate %q: ans", "same as "+id(0)),
		`2 filter test.word "": ans A`,
		fmt.Sprintf("3 fuzzy near_duplicate %q: ans A", "near "+id(6)),
		fmt.Sprintf("4 fuzzy near_duplicate %q: ans A", "near "+id(6)),
		`5 filter test.word "": ans A`,
	}
	p, s := beam.NewPipelineWithRoot()
	marks := []StageMarks{
		{Stage: "exact", Marks: beam.CreateList(s, exactMarks)},
		{Stage: "fuzzy", Marks: beam.CreateList(s, fuzzyMarks)},
	}
	kept, dropped, _ := ApplyTail(s, beam.CreateList(s, in), tail, marks)
	passert.Equals(s, beam.ParDo(s, keptLine, kept), wantKept...)
	passert.Equals(s, beam.ParDo(s, rejectedLine, dropped), wantRejected...)
	ptest.RunAndValidate(t, p)
}
