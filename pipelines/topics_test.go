package pipelines

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/transforms"
)

// topicVocab are four disjoint vocabularies, one per planted topic.
var topicVocab = [][]string{
	strings.Fields("recipe chicken bake oven flour butter garlic onion simmer roast sauce pepper dough skillet marinade broth"),
	strings.Fields("galaxy telescope orbit planet nebula comet asteroid supernova gravity quasar eclipse lunar solar spectrum redshift cosmos"),
	strings.Fields("python function compile variable pointer recursion array struct debugger syntax runtime lambda iterator thread mutex compiler"),
	strings.Fields("contract lawsuit plaintiff defendant statute court verdict appeal attorney tenant landlord liability clause jurisdiction testimony evidence"),
}

// topicCorpus writes in.jsonl: perTopic planted prompts per topic, each
// with a short answer, and for every third one a second answer to the
// same prompt that is too long for the recipe's length filter (the
// prompt is the same: a semantic duplicate). It returns, per topic, the
// originals' ids, and the copies' ids with their originals'.
func topicCorpus(t *testing.T, dir string, perTopic int) (originals [][]string, copyOf map[string]string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 3))
	var b bytes.Buffer
	line := func(p, a string) string {
		msgs := []datasets.Message{{Role: "user", Content: p}, {Role: "assistant", Content: a}}
		fmt.Fprintf(&b, "{\"prompt\":%q,\"completion\":%q}\n", p, a)
		return datasets.ContentID(msgs)
	}
	originals = make([][]string, len(topicVocab))
	copyOf = map[string]string{}
	for i := range perTopic * len(topicVocab) {
		g := i % len(topicVocab)
		var w []string
		for range 8 + rng.IntN(4) {
			w = append(w, topicVocab[g][rng.IntN(len(topicVocab[g]))])
		}
		p := fmt.Sprintf("Please explain %s (%d)", strings.Join(w, " "), i)
		id := line(p, "A short and careful answer.")
		originals[g] = append(originals[g], id)
		if (i/len(topicVocab))%3 == 0 {
			copyOf[line(p, "A long answer."+strings.Repeat(" More words that go on and on.", 12))] = id
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return originals, copyOf
}

// readRejected reads a version's rejected.jsonl.
func readRejected(t *testing.T, dir string) []datasets.Rejected {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, transforms.RejectedFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []datasets.Rejected
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r datasets.Rejected
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// versionSamples reads a committed version's samples.
func versionSamples(t *testing.T, res *Result) []datasets.Sample {
	t.Helper()
	v, err := res.Store.OpenVersion(context.Background(), datasets.Ref{Name: res.Manifest.Name, Version: res.Manifest.Version})
	if err != nil {
		t.Fatal(err)
	}
	var out []datasets.Sample
	if err := v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error { out = append(out, *s); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

const topicStagesRecipe = `name: ts
sources: [{name: s, path: in.jsonl, license: mit}]
stages:
  - topics: {k: 4, seed: 1}
  - semantic_dedup: {threshold: 0.9}
  - filter: {skip: [degenerate, truncation, refusal, echo, mojibake], length: {response: {max_chars: 200}}}
  - balance: {cap: 20, seed: 2}
output:
  shards: 2
  test_ratio: 0.1
`

// TestTopicStages runs topics, semantic_dedup, a length filter and
// balance over 4 planted topics of 30 prompts, 40 of which have a second,
// too long answer (the same prompt: a semantic duplicate): semantic dedup
// drops every long copy for its original, whichever id is smaller, since
// the copies fail the later filter (which then drops nothing); balance
// caps each topic at exactly 20; the funnel says so; rejected.jsonl names
// each copy's original as survivor; every written sample has a topic and
// a distance to its centroid; the plan is in the version; and prism
// writes the same bytes as the direct runner.
func TestTopicStages(t *testing.T) {
	dir := t.TempDir()
	originals, copyOf := topicCorpus(t, dir, 30)
	if len(copyOf) != 40 {
		t.Fatalf("%d copies", len(copyOf))
	}
	smallerCopies := 0
	for c, o := range copyOf {
		if c < o {
			smallerCopies++
		}
	}
	if smallerCopies == 0 {
		t.Fatal("no copy has the smaller id: the later-check case is not exercised")
	}
	store := filepath.Join(dir, "store")
	res := runRecipe(t, dir, topicStagesRecipe, store)
	f := res.Manifest.Funnel
	st := map[string]datasets.StageFunnel{}
	for _, s := range f.Stages {
		st[s.Stage] = s
	}
	drops := func(stage string) string { return fmt.Sprint(st[stage].Dropped) }
	if f.Read != 160 || f.Written != 80 || drops("semantic_dedup") != "[{semantic_duplicate 40}]" || drops("filter") != "[]" ||
		drops("balance") != "[{over_topic_target 40}]" || st["balance"].In != 120 {
		t.Fatalf("funnel: read %d, written %d, stages %+v", f.Read, f.Written, f.Stages)
	}
	for _, r := range readRejected(t, res.Dir) {
		switch r.Stage {
		case "semantic_dedup":
			if copyOf[r.Sample.ID] == "" || r.Survivor != copyOf[r.Sample.ID] || r.Reason != "semantic_duplicate" {
				t.Errorf("semantic_dedup dropped %s for %q (%s), want a copy for its original", r.Sample.ID, r.Survivor, r.Detail)
			}
		case "balance":
			if r.Reason != "over_topic_target" || r.Sample.TopicID == nil {
				t.Errorf("balance dropped %+v", r)
			}
		}
	}
	perTopic := map[int32]int{}
	group := map[string]int{}
	for g, ids := range originals {
		for _, id := range ids {
			group[id] = g
		}
	}
	topicOfGroup := map[int]int32{}
	for _, s := range versionSamples(t, res) {
		if s.TopicID == nil || s.TopicDistance == nil || *s.TopicDistance < 0 || *s.TopicDistance > 2 || s.TopicLabel == "" {
			t.Fatalf("sample %s: topic %v, distance %v, label %q", s.ID, s.TopicID, s.TopicDistance, s.TopicLabel)
		}
		perTopic[*s.TopicID]++
		g, ok := group[s.ID]
		if !ok {
			t.Errorf("a copy was written: %s", s.ID)
		}
		if tg, seen := topicOfGroup[g]; seen && tg != *s.TopicID {
			t.Errorf("planted topic %d split over topics %d and %d", g, tg, *s.TopicID)
		}
		topicOfGroup[g] = *s.TopicID
	}
	if len(perTopic) != 4 {
		t.Errorf("written per topic %v", perTopic)
	}
	for tp, n := range perTopic {
		if n != 20 {
			t.Errorf("topic %d: %d written, want the cap 20", tp, n)
		}
	}
	var plan transforms.BalancePlan
	b, err := os.ReadFile(filepath.Join(res.Dir, transforms.BalancePlanFile("balance")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &plan); err != nil || plan.Total != 120 || plan.Kept != 80 {
		t.Errorf("balance plan %s (%v)", b, err)
	}

	// The same recipe on prism: the same bytes.
	direct := readShards(t, res.Dir)
	*runners.Runner = "prism"
	defer func() { *runners.Runner = "" }()
	res2 := runRecipeOpt(t, dir, topicStagesRecipe, Options{Store: filepath.Join(dir, "store-prism")})
	if !bytes.Equal(direct, readShards(t, res2.Dir)) {
		t.Error("prism wrote other shards than the direct runner")
	}
	for _, name := range []string{transforms.RejectedFile, transforms.BalancePlanFile("balance"), transforms.TopicsModelFile} {
		a, _ := os.ReadFile(filepath.Join(res.Dir, name))
		b, _ := os.ReadFile(filepath.Join(res2.Dir, name))
		if !bytes.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s differs between the runners (or is empty)", name)
		}
	}
}
