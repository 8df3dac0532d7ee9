package transforms

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/filter"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// topicsVocab are four disjoint vocabularies, one per planted group.
var topicsVocab = [][]string{
	strings.Fields("recipe chicken bake oven flour butter garlic onion simmer roast sauce pepper dough skillet marinade broth"),
	strings.Fields("galaxy telescope orbit planet nebula comet asteroid supernova gravity quasar eclipse lunar solar spectrum redshift cosmos"),
	strings.Fields("python function compile variable pointer recursion array struct debugger syntax runtime lambda iterator thread mutex compiler"),
	strings.Fields("contract lawsuit plaintiff defendant statute court verdict appeal attorney tenant landlord liability clause jurisdiction testimony evidence"),
}

// plantedTopicSamples are perGroup samples of each planted group; the
// group is the sample's source dataset ("g0" … "g3").
func plantedTopicSamples(perGroup int) []datasets.Sample {
	rng := rand.New(rand.NewPCG(7, 1))
	var out []datasets.Sample
	for i := range perGroup * len(topicsVocab) {
		g := i % len(topicsVocab)
		v := topicsVocab[g]
		var w []string
		for range 8 + rng.IntN(4) {
			w = append(w, v[rng.IntN(len(v))])
		}
		msgs := []datasets.Message{{Role: "user", Content: fmt.Sprintf("Please explain %s (%d)", strings.Join(w, " "), i)},
			{Role: "assistant", Content: "Sure."}}
		out = append(out, datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
			Source: datasets.Source{Dataset: fmt.Sprintf("g%d", g), File: "x.jsonl", Index: int64(i)}})
	}
	return out
}

// groupTopic is "GROUP TOPIC" of an assigned sample ("GROUP none" without
// a topic, a label or a distance to the centroid).
func groupTopic(s datasets.Sample) string {
	if s.TopicID == nil || s.TopicLabel == "" || s.TopicDistance == nil {
		return s.Source.Dataset + " none"
	}
	return fmt.Sprintf("%s %d", s.Source.Dataset, *s.TopicID)
}

func topicOfPair(p string) string { _, t, _ := strings.Cut(p, " "); return t }

func isUnassigned(p string) bool { return strings.HasSuffix(p, " none") }

func init() {
	register.Function1x1(groupTopic)
	register.Function1x1(topicOfPair)
	register.Function1x1(isUnassigned)
}

// TestTopicsAssignsPlantedGroups: 4 planted groups of 60 samples, a fit
// sample of 100 of them (bottom-k by seeded hash), k=4: every sample
// gets a topic and a label, each group lands in one topic of its own,
// and the model and the report are written; the report counts every
// sample.
func TestTopicsAssignsPlantedGroups(t *testing.T) {
	dir := t.TempDir()
	in := plantedTopicSamples(60)
	p, s := beam.NewPipelineWithRoot()
	out := Topics(s, beam.CreateList(s, in), TopicsConfig{Stage: "topics", Dir: dir, K: 4, MaxSamples: 100, Seed: 3})
	passert.Count(s, out, "assigned", len(in))
	pairs := filter.Distinct(s, beam.ParDo(s, groupTopic, out))
	passert.Empty(s, filter.Include(s, pairs, isUnassigned))
	passert.Count(s, pairs, "group/topic pairs", 4)
	passert.Count(s, filter.Distinct(s, beam.ParDo(s, topicOfPair, pairs)), "topics", 4)
	ptest.RunAndValidate(t, p)

	f, err := os.Open(filepath.Join(dir, TopicsModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := topics.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.K != 4 || m.Fit.Samples != 100 {
		t.Fatalf("model: k %d, fitted on %d samples; want 4 and 100", m.K, m.Fit.Samples)
	}
	rep, err := os.ReadFile(filepath.Join(dir, TopicsReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rep), `"total": 240`) {
		t.Fatalf("report does not count 240 samples:\n%.400s", rep)
	}
}
