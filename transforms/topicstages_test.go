package transforms

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

func init() {
	register.Function1x1(dupLine)
	register.Function1x1(clusterLine)
	register.Function1x1(topicLine)
	register.Function2x0(withDupCluster)
}

// withDupCluster passes the samples with a dup_cluster.
func withDupCluster(s datasets.Sample, emit func(datasets.Sample)) {
	if s.DupCluster != "" {
		emit(s)
	}
}

// dupLine is a rejected sample as "stage reason id survivor".
func dupLine(r datasets.Rejected) string {
	return fmt.Sprintf("%s %s %s %s", r.Stage, r.Reason, r.Sample.ID, r.Survivor)
}

// clusterLine is a kept sample as "id dup_cluster".
func clusterLine(s datasets.Sample) string { return s.ID + " " + s.DupCluster }

// topicLine is a sample's topic ("none" without one).
func topicLine(s datasets.Sample) string {
	if s.TopicID == nil {
		return "none"
	}
	return fmt.Sprint(*s.TopicID)
}

// nearCopy is a near duplicate of a planted sample: the same prompt with
// one word appended.
func nearCopy(s datasets.Sample, index int64) datasets.Sample {
	msgs := []datasets.Message{{Role: "user", Content: s.Messages[0].Content + " now"}, s.Messages[1]}
	return datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
		Source: datasets.Source{Dataset: s.Source.Dataset, File: "copies.jsonl", Index: index}}
}

// TestSemanticDedupMarksPlantedNearDuplicates: 4 planted groups of 40
// samples and a near copy of every fifth one (32 pairs), through a
// topics stage and semantic dedup at 0.9: each pair loses its member of
// larger id, for the other as survivor (rejected with it, and its
// dup_cluster its own id), and nothing else is dropped. A member that
// fails a later check (here: the copies' "now") is kept last: with the
// check, every pair keeps its original.
func TestSemanticDedupMarksPlantedNearDuplicates(t *testing.T) {
	orig := plantedTopicSamples(40)
	in := slices.Clone(orig)
	var wantDrop, wantDropPost, wantCluster []any
	for i := 0; i < len(orig); i += 5 {
		c := nearCopy(orig[i], int64(i))
		in = append(in, c)
		lo, hi := orig[i].ID, c.ID
		if hi < lo {
			lo, hi = hi, lo
		}
		wantDrop = append(wantDrop, "sem semantic_duplicate "+hi+" "+lo)
		wantCluster = append(wantCluster, lo+" "+lo)
		wantDropPost = append(wantDropPost, "sem semantic_duplicate "+c.ID+" "+orig[i].ID)
	}
	tail := []TailStep{{Marks: &MarkStage{Stage: "sem", Reason: "semantic_duplicate", Detail: "near %s"}}}
	for _, post := range []bool{false, true} {
		t.Run(fmt.Sprintf("post=%v", post), func(t *testing.T) {
			p, s := beam.NewPipelineWithRoot()
			assigned, model, _ := TopicsWithModel(s, beam.CreateList(s, in), TopicsConfig{Stage: "topics", Dir: t.TempDir(), K: 4, Seed: 3})
			cfg := SemDedupConfig{Stage: "sem", Threshold: 0.9, Keep: "smallest_id"}
			want := wantDrop
			if post {
				cfg.Post = []StepSpec{{Stage: "later", Kind: "test_drop", Config: json.RawMessage(`{"Word":" now"}`)}}
				want = wantDropPost
			}
			m := SemanticDedupMarks(s, assigned, model, cfg)
			kept, dropped, _ := ApplyTail(s, assigned, tail, []StageMarks{m})
			passert.Equals(s, beam.ParDo(s, dupLine, dropped), want...)
			passert.Count(s, kept, "kept", len(orig))
			if !post {
				withCluster := beam.ParDo(s, withDupCluster, kept)
				passert.Equals(s, beam.ParDo(s, clusterLine, withCluster), wantCluster...)
			}
			ptest.RunAndValidate(t, p)
		})
	}
}

// topicSamples are n[t] samples of topic t (TopicID set), plus none
// samples without a topic, in a shuffled order.
func topicSamples(n []int, none int, seed uint64) []datasets.Sample {
	var out []datasets.Sample
	add := func(topic *int32, i int) {
		msgs := []datasets.Message{{Role: "user", Content: fmt.Sprintf("q %v %d", topic != nil, i)}, {Role: "assistant", Content: "a"}}
		s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "d", File: "f", Index: int64(len(out))}}
		if topic != nil {
			s.TopicID, s.TopicLabel = topic, fmt.Sprintf("label %d", *topic)
		}
		out = append(out, s)
	}
	for t, c := range n {
		for i := range c {
			id := int32(t)
			add(&id, len(out)+i)
		}
	}
	for i := range none {
		add(nil, i)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// expectedBalanced is, per the rule BalanceMarks documents, the ids kept:
// in each topic the target's number of smallest (SampleHash, reference).
func expectedBalanced(in []datasets.Sample, targets []int64, seed uint64) []any {
	byTopic := map[int32][]datasets.Sample{}
	var out []any
	for _, s := range in {
		if s.TopicID == nil {
			out = append(out, s.ID)
			continue
		}
		byTopic[*s.TopicID] = append(byTopic[*s.TopicID], s)
	}
	for t, ss := range byTopic {
		slices.SortFunc(ss, func(a, b datasets.Sample) int {
			return cmp.Or(cmp.Compare(topics.SampleHash(a.ID, seed), topics.SampleHash(b.ID, seed)), cmp.Compare(sampleRef(&a), sampleRef(&b)))
		})
		for _, s := range ss[:targets[t]] {
			out = append(out, s.ID)
		}
	}
	return out
}

func sampleIDOf(s datasets.Sample) string { return s.ID }

func init() { register.Function1x1(sampleIDOf) }

// TestBalanceMarksMeetsTargetsExactly: topics of 50, 20, 5 and 0 samples
// and 3 without a topic; cap 10 keeps exactly 10, 10 and 5 of them (the
// smallest seeded hashes), uniform over 21 keeps 8, 8 and 5, and the
// samples without a topic pass; the plan is written; another input order
// keeps the same samples.
func TestBalanceMarksMeetsTargetsExactly(t *testing.T) {
	for _, tc := range []struct {
		plan    topics.BalanceConfig
		targets []int64
	}{
		{topics.BalanceConfig{Mode: "cap", Cap: 10, Seed: 4}, []int64{10, 10, 5}},
		{topics.BalanceConfig{Mode: "uniform", Total: 21, Seed: 5}, []int64{8, 8, 5}},
	} {
		for _, order := range []uint64{1, 2} {
			t.Run(fmt.Sprintf("%s/order%d", tc.plan.Mode, order), func(t *testing.T) {
				in := topicSamples([]int{50, 20, 5}, 3, order)
				dir := t.TempDir()
				p, s := beam.NewPipelineWithRoot()
				m := BalanceMarks(s, beam.CreateList(s, in), BalanceConfig{Stage: "balance", Dir: dir, Plan: tc.plan})
				tail := []TailStep{{Marks: &MarkStage{Stage: m.Stage, Reason: m.Reason, Detail: m.Detail}}}
				kept, dropped, _ := ApplyTail(s, beam.CreateList(s, in), tail, []StageMarks{m})
				passert.Equals(s, beam.ParDo(s, sampleIDOf, kept), expectedBalanced(in, tc.targets, tc.plan.Seed)...)
				passert.Count(s, dropped, "dropped", 75-int(tc.targets[0]+tc.targets[1]+tc.targets[2]))
				ptest.RunAndValidate(t, p)

				b, err := os.ReadFile(filepath.Join(dir, BalancePlanFile("balance")))
				if err != nil {
					t.Fatal(err)
				}
				var bp BalancePlan
				if err := json.Unmarshal(b, &bp); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(bp.Available, []int64{50, 20, 5}) || !slices.Equal(bp.Target, tc.targets) || bp.Total != 75 {
					t.Errorf("plan %+v, want targets %v", bp, tc.targets)
				}
			})
		}
	}
}

// TestSelectTopics: thin_topics picks the smallest topics present (ties
// by the lower id), seeds_from by id and by label (case ignored); the
// other samples, and those without a topic, are the rest; the choice is
// written with the topics' sizes and what matched nothing.
func TestSelectTopics(t *testing.T) {
	in := topicSamples([]int{30, 5, 12, 5}, 2, 1)
	for _, tc := range []struct {
		name      string
		sel       TopicSelect
		want      []int32
		unmatched []string
	}{
		{"thin", TopicSelect{Thin: 2}, []int32{1, 3}, nil},
		{"thin_all", TopicSelect{Thin: 9}, []int32{0, 1, 2, 3}, nil},
		{"seeds_from", TopicSelect{IDs: []int32{2, 7}, Labels: []string{" LABEL 0", "cooking"}}, []int32{0, 2}, []string{"7", "cooking"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.sel.Stage, tc.sel.Dir = "evol_instruct", dir
			var wantSel, wantRest []any
			for _, s := range in {
				if s.TopicID != nil && slices.Contains(tc.want, *s.TopicID) {
					wantSel = append(wantSel, fmt.Sprint(*s.TopicID))
				} else {
					wantRest = append(wantRest, topicLine(s))
				}
			}
			p, s := beam.NewPipelineWithRoot()
			sel, rest := SelectTopics(s, beam.CreateList(s, in), tc.sel)
			passert.Equals(s, beam.ParDo(s, topicLine, sel), wantSel...)
			passert.Equals(s, beam.ParDo(s, topicLine, rest), wantRest...)
			ptest.RunAndValidate(t, p)

			b, err := os.ReadFile(filepath.Join(dir, SeedTopicsFile("evol_instruct")))
			if err != nil {
				t.Fatal(err)
			}
			var st SeedTopics
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			var got []int32
			for _, c := range st.Chosen {
				got = append(got, c.ID)
				if c.Label != fmt.Sprintf("label %d", c.ID) || c.Samples != int64([]int{30, 5, 12, 5}[c.ID]) {
					t.Errorf("chosen %+v", c)
				}
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(st.Unmatched, tc.unmatched) || int(st.Samples) != len(wantSel) {
				t.Errorf("chose %v (unmatched %q, %d samples), want %v (unmatched %q)", got, st.Unmatched, st.Samples, tc.want, tc.unmatched)
			}
			if !strings.Contains(string(b), `"how"`) {
				t.Errorf("seed topics file: %s", b)
			}
		})
	}
}
