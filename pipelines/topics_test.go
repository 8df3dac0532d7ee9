package pipelines

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm/llmtest"
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

// sizedTopicCorpus writes in.jsonl with sizes[g] planted prompts of topic
// g (each with a short answer).
func sizedTopicCorpus(t *testing.T, dir string, sizes []int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	var b bytes.Buffer
	i := 0
	for g, n := range sizes {
		for range n {
			var w []string
			for range 8 + rng.IntN(4) {
				w = append(w, topicVocab[g][rng.IntN(len(topicVocab[g]))])
			}
			fmt.Fprintf(&b, "{\"prompt\":%q,\"completion\":%q}\n", fmt.Sprintf("Please explain %s (%d)", strings.Join(w, " "), i), "A short and careful answer.")
			i++
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// explainLines are the "Please explain …" lines of a prompt.
func explainLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if i := strings.Index(l, "Please explain "); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// TestTopicSeededSynthesis closes the loop from thin topics to
// generation, against the OpenAI-compatible test server. Over planted
// topics of 30, 6, 20 and 10 samples, a topics-only run of the same data
// says which topic each sample has; then evol_instruct with
// thin_topics: 2 after the same topics stage rewrites exactly the
// samples of its two smallest topics (every rewrite request shows one of
// them, and each is rewritten once; the funnel counts them as generated)
// and passes the others unchanged; self_instruct with seeds_from naming
// a topic by its label shows only that topic's samples as seed examples.
// The choices are in the version.
func TestTopicSeededSynthesis(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed)})
	defer srv.Close()
	dir := t.TempDir()
	sizedTopicCorpus(t, dir, []int{30, 6, 20, 10})
	store := filepath.Join(dir, "store")

	// Each prompt's topic, and the sizes, as the topics stage has them.
	base := runRecipe(t, dir, "name: base\nsources: [{name: s, path: in.jsonl}]\nstages:\n  - topics: {k: 4, seed: 1}\n", store)
	topicOf := map[string]int32{}
	labelOf := map[int32]string{}
	size := map[int32]int{}
	for _, s := range versionSamples(t, base) {
		topicOf[s.Messages[0].Content] = *s.TopicID
		labelOf[*s.TopicID] = s.TopicLabel
		size[*s.TopicID]++
	}
	ids := slices.Sorted(maps.Keys(size))
	slices.SortStableFunc(ids, func(a, b int32) int { return size[a] - size[b] })
	thin := map[int32]bool{ids[0]: true, ids[1]: true}
	seedTopic := ids[2]
	label := labelOf[seedTopic]
	if len(size) != 4 || label == "" {
		t.Fatalf("topics %v, labels %v", size, labelOf)
	}

	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model}`
	res := runRecipe(t, dir, `name: loop
sources: [{name: s, path: in.jsonl}]
stages:
  - topics: {k: 4, seed: 1}
  - evol_instruct: {endpoint: `+ep+`, operations: [deepen], thin_topics: 2, cache: cache}
  - self_instruct: {endpoint: `+ep+`, instructions: 4, seeds_per_prompt: 3, machine_per_prompt: 1, seed: s1, count: 3, cache: cache, seeds_from: {topics: [`+fmt.Sprintf("%q", label)+`]}}
`, store)
	f := res.Manifest.Funnel
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	st := map[string]datasets.StageFunnel{}
	for _, s := range f.Stages {
		st[s.Stage] = s
	}
	nThin := size[ids[0]] + size[ids[1]]
	if ev := st["evol_instruct"]; ev.In != 66 || ev.Generated != int64(nThin) || ev.Out != int64(66+nThin) {
		t.Errorf("evol_instruct %+v: want %d generated from the thin topics' samples", ev, nThin)
	}
	if si := st["self_instruct"]; si.Out-si.In < 4 {
		t.Errorf("self_instruct %+v", si)
	}
	rewritten := map[string]int{}
	seedPrompts := 0
	for _, q := range srv.Requests() {
		p := q.Request.LastUser()
		switch {
		case strings.Contains(p, "prompt rewriter"):
			ls := explainLines(p)
			if len(ls) == 0 || !thin[topicOf[ls[0]]] {
				t.Errorf("rewrite of a sample outside the thin topics %v: %q", thin, ls)
				continue
			}
			rewritten[ls[0]]++
		case strings.Contains(p, "example tasks"):
			seedPrompts++
			ls := explainLines(p)
			if len(ls) == 0 {
				t.Errorf("a self-instruct prompt without seed examples:\n%s", p)
			}
			for _, l := range ls {
				if tp, ok := topicOf[l]; !ok || tp != seedTopic {
					t.Errorf("seed example outside topic %q: %q", label, l)
				}
			}
		}
	}
	if len(rewritten) != nThin || seedPrompts == 0 {
		t.Errorf("%d samples rewritten (want %d), %d self-instruct prompts", len(rewritten), nThin, seedPrompts)
	}
	for stage, want := range map[string]string{"evol_instruct": "thin_topics: 2", "self_instruct": "seeds_from"} {
		var s transforms.SeedTopics
		b, err := os.ReadFile(filepath.Join(res.Dir, transforms.SeedTopicsFile(stage)))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s); err != nil || s.How != want {
			t.Fatalf("%s: %s (%v)", stage, b, err)
		}
		var chosen []int32
		for _, c := range s.Chosen {
			chosen = append(chosen, c.ID)
			if c.Samples != int64(size[c.ID]) || c.Label != labelOf[c.ID] {
				t.Errorf("%s: chosen %+v; the topic has %d samples, label %q", stage, c, size[c.ID], labelOf[c.ID])
			}
		}
		want := []int32{seedTopic}
		if stage == "evol_instruct" {
			want = []int32{min(ids[0], ids[1]), max(ids[0], ids[1])}
		}
		if !slices.Equal(chosen, want) {
			t.Errorf("%s chose %v, want %v", stage, chosen, want)
		}
	}
}

// TestTwoTopicsStages: with two topics stages (before and after a
// balance), the version's topics/model.json and topics/report.json are
// the last stage's (they describe the written mix: the report counts the
// 80 balanced samples), and the first stage's are under
// topics/topics/; the samples carry the last stage's topics. Before,
// both stages wrote the same two files, whichever finished last winning.
func TestTwoTopicsStages(t *testing.T) {
	dir := t.TempDir()
	topicCorpus(t, dir, 30)
	res := runRecipe(t, dir, `name: two
sources: [{name: s, path: in.jsonl}]
stages:
  - topics: {k: 4, seed: 1}
  - balance: {cap: 20}
  - topics: {k: 3, seed: 2}
`, filepath.Join(dir, "store"))
	for file, k := range map[string]int{transforms.TopicsModelFile: 3, "topics/topics/model.json": 4} {
		b, err := os.ReadFile(filepath.Join(res.Dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ K int }
		if err := json.Unmarshal(b, &m); err != nil || m.K != k {
			t.Errorf("%s: k %d (%v), want %d", file, m.K, err, k)
		}
	}
	for file, total := range map[string]string{transforms.TopicsReportFile: `"total": 80`, "topics/topics/report.json": `"total": 160`} {
		b, err := os.ReadFile(filepath.Join(res.Dir, file))
		if err != nil || !bytes.Contains(b, []byte(total)) {
			t.Errorf("%s lacks %s (%v)", file, total, err)
		}
	}
	for _, s := range versionSamples(t, res) {
		if s.TopicID == nil || *s.TopicID > 2 {
			t.Fatalf("sample %s has topic %v, not one of the last stage's 3", s.ID, s.TopicID)
		}
	}
}

// TestTopicsNamedByLLM runs a topics stage with name_with against the
// OpenAI-compatible test server over two planted topics: the model is
// asked once per topic (k requests), and every written sample's
// topic_label is the name the server gave its planted topic, as is the
// saved model's topic name; the manifest records the endpoint's usage.
// Without the endpoint's key the stage runs with keyword labels.
func TestTopicsNamedByLLM(t *testing.T) {
	names := map[string]string{"chicken": "Cooking Recipes", "galaxy": "Astronomy Basics"}
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-topics-7", Respond: func(r *llmtest.ChatRequest) string {
		u := r.LastUser()
		for _, w := range topicVocab[0] {
			if strings.Contains(u, w) {
				return "Name: \"" + names["chicken"] + "\"."
			}
		}
		return names["galaxy"]
	}})
	defer srv.Close()
	dir := t.TempDir()
	sizedTopicCorpus(t, dir, []int{12, 9})
	t.Setenv("SIEVE_TEST_TOPICS_KEY", "sk-topics-7")
	ep := `{name: namer, kind: other, base_url: "` + srv.URL + `", model: namer-model, api_key_env: SIEVE_TEST_TOPICS_KEY}`
	res := runRecipe(t, dir, `name: named
sources: [{name: s, path: in.jsonl}]
llm: {cache: cache}
stages:
  - topics: {k: 2, seed: 1, name_with: `+ep+`}
`, filepath.Join(dir, "store"))
	if n := srv.Count(); n != 2 {
		t.Errorf("server saw %d requests, want k = 2", n)
	}
	want := map[string]string{}
	for _, w := range topicVocab[0] {
		want[w] = names["chicken"]
	}
	for _, w := range topicVocab[1] {
		want[w] = names["galaxy"]
	}
	seen := map[string]int{}
	for _, s := range versionSamples(t, res) {
		var planted string
		for _, w := range strings.Fields(s.Messages[0].Content) {
			if n, ok := want[w]; ok {
				planted = n
				break
			}
		}
		if s.TopicLabel != planted || planted == "" {
			t.Fatalf("sample %q: topic_label %q, want %q", s.Messages[0].Content, s.TopicLabel, planted)
		}
		seen[s.TopicLabel]++
	}
	if seen[names["chicken"]] != 12 || seen[names["galaxy"]] != 9 {
		t.Errorf("labels written %v", seen)
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, transforms.TopicsModelFile))
	if err != nil || !bytes.Contains(b, []byte(`"name":"Cooking Recipes"`)) || !bytes.Contains(b, []byte(`"name":"Astronomy Basics"`)) {
		t.Errorf("model names (%v): %.300s", err, b)
	}
	if m := res.Manifest.LLM; len(m) != 1 || m[0].Endpoint != "namer" || m[0].Requests != 2 {
		t.Errorf("llm usage %+v", m)
	}

	// Without the key the stage runs unnamed (keyword labels) and the
	// manifest says why.
	t.Setenv("SIEVE_TEST_TOPICS_KEY", "")
	res = runRecipe(t, dir, `name: named
sources: [{name: s, path: in.jsonl}]
stages:
  - topics: {k: 2, seed: 1, name_with: `+ep+`}
`, filepath.Join(dir, "store2"))
	if n := srv.Count(); n != 2 {
		t.Errorf("server saw %d requests after the run without a key, want 2", n)
	}
	for _, s := range versionSamples(t, res) {
		if !strings.Contains(s.TopicLabel, " · ") {
			t.Fatalf("unnamed run: topic_label %q, want keywords", s.TopicLabel)
		}
	}
	if sk := res.Manifest.Skipped; len(sk) != 1 || !strings.Contains(sk[0], "does not name its topics") || !strings.Contains(sk[0], "SIEVE_TEST_TOPICS_KEY") {
		t.Errorf("skipped %q", sk)
	}
}
