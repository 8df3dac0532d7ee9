package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// comparePrediction checks a dry run's funnel against a run's, row by
// row: dead letters, each stage's name, input, drops by reason and
// output, and the written total.
func comparePrediction(t *testing.T, pred *Prediction, run datasets.Funnel) {
	t.Helper()
	got := pred.Funnel
	if got.Read != run.Read || got.DeadLettered != run.DeadLettered || fmt.Sprint(got.DeadReasons) != fmt.Sprint(run.DeadReasons) {
		t.Errorf("read/dead: dry run %d/%d %v, run %d/%d %v", got.Read, got.DeadLettered, got.DeadReasons, run.Read, run.DeadLettered, run.DeadReasons)
	}
	if len(got.Stages) != len(run.Stages) {
		t.Fatalf("stages: dry run %+v, run %+v", got.Stages, run.Stages)
	}
	for i, g := range got.Stages {
		r := run.Stages[i]
		if g.Stage != r.Stage || g.In != r.In || g.Out != r.Out || fmt.Sprint(g.Dropped) != fmt.Sprint(r.Dropped) {
			t.Errorf("stage %d: dry run %s in %d out %d dropped %v; run %s in %d out %d dropped %v",
				i, g.Stage, g.In, g.Out, g.Dropped, r.Stage, r.In, r.Out, r.Dropped)
		}
		var gm, rm []datasets.Count
		for _, c := range g.Modified {
			if strings.HasPrefix(c.Reason, "pii.") {
				gm = append(gm, c)
			}
		}
		for _, c := range r.Modified {
			if strings.HasPrefix(c.Reason, "pii.") {
				rm = append(rm, c)
			}
		}
		if fmt.Sprint(gm) != fmt.Sprint(rm) {
			t.Errorf("stage %s: redactions: dry run %v, run %v", g.Stage, gm, rm)
		}
	}
	if got.Written != run.Written {
		t.Errorf("written: dry run %d, run %d", got.Written, run.Written)
	}
	if err := got.Check(); err != nil {
		t.Errorf("predicted funnel does not add up: %v", err)
	}
}

// TestDryRunMatchesRunOnDemo runs the demo recipe (its LLM stages
// skipped without an API key) on prism and as a dry run: every stage's
// drops and the written total must agree, and the dry run must say it is
// exact (the demo is smaller than the fuzzy sample bound).
func TestDryRunMatchesRunOnDemo(t *testing.T) {
	t.Setenv("SIEVE_DEMO_API_KEY", "")
	r, err := recipe.Load(filepath.Join("recipes", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	res, err := Run(context.Background(), r, Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Predict(context.Background(), r, datasets.Store{Root: store}, 3)
	if err != nil {
		t.Fatal(err)
	}
	comparePrediction(t, pred, res.Manifest.Funnel)
	if !pred.Exact() || len(pred.Warnings) > 0 {
		t.Errorf("notes or warnings on a demo prediction: %v %v", pred.Notes, pred.Warnings)
	}
	var nearDup bool
	for _, st := range pred.Funnel.Stages {
		nearDup = nearDup || st.Stage == "fuzzy_dedup" && len(st.Dropped) > 0
	}
	if !nearDup {
		t.Errorf("the demo's planted near duplicates are not predicted: %+v", pred.Funnel.Stages)
	}
	var out bytes.Buffer
	if err := pred.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run:\n%s", out.String())
	var table bytes.Buffer
	res.Manifest.Funnel.WriteTable(&table)
	t.Logf("run:\n%s", table.String())
	for _, want := range []string{"fuzzy_dedup", "near_duplicate", "Jaccard", "exact_duplicate", "skipped", "would write 276"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
}

// orderFixture is a recipe where the order of the stages decides what
// each one drops:
//
//   - two answers that differ only in an e-mail address become one after
//     pii redacts it: exact dedup (below pii) drops one;
//   - a truncated answer appears twice: exact dedup drops the copy, so the
//     filter below it drops only one (a dry run that judged every stage on
//     every record counted two);
//   - a truncated answer has a near duplicate that is not truncated: the
//     filter drops it before fuzzy dedup sees it, so fuzzy dedup drops
//     nothing of that pair;
//   - a pair of near duplicates (one word changed) that pass the filter:
//     fuzzy dedup drops one;
//   - a near duplicate of a sample exact dedup dropped is dropped by fuzzy
//     dedup only through the survivor.
func orderFixture(t *testing.T, dir string) string {
	t.Helper()
	long := "The river carries fine sand from the mountains to the sea, and over many centuries the sand builds wide deltas where farmers grow rice, wheat and vegetables in rich soil that floods every spring season"
	var lines []string
	add := func(p, c string) {
		b, _ := json.Marshal(map[string]string{"prompt": p, "completion": c})
		lines = append(lines, string(b))
	}
	add("How do I reach support?", "You can write to our support team at jane.doe@acme.io and they answer within two working days.")
	add("How do I reach support?", "You can write to our support team at john.roe@acme.io and they answer within two working days.")
	add("Describe the ending of the story in a few sentences.", "The hero returns home after the long war and finds that the village has changed and that his old friends are")
	add("Describe the ending of the story in a few sentences.", "The hero returns home after the long war and finds that the village has changed and that his old friends are")
	add("Explain how deltas form.", long+" and the")
	add("Explain how deltas form.", long+".")
	add("Explain how deltas form near the sea.", long+". Boats carry the harvest to the market towns upstream.")
	add("Explain how deltas form near the sea.", long+". Boats carry the harvest to the market cities upstream.")
	add("Name a prime number.", "Seven is a prime number because it has no divisors other than one and itself.")
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	return `name: order
sources: [{name: s, path: in.jsonl, format: prompt_completion, license: mit}]
stages:
  - pii
  - exact_dedup
  - filter: {skip: [language.prompt_mismatch]}
  - fuzzy_dedup: {threshold: 0.7}
output: {shards: 1}
`
}

// TestDryRunOrderMatters checks the order on a recipe of pii, exact
// dedup, a filter and fuzzy dedup: the predicted counts are the ones the
// stages' order implies, and equal a real run's.
func TestDryRunOrderMatters(t *testing.T) {
	dir := t.TempDir()
	yaml := orderFixture(t, dir)
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(yaml), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Predict(context.Background(), r, datasets.Store{Root: filepath.Join(dir, "store")}, 3)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pred.Write(&out)
	t.Logf("dry run:\n%s", out.String())
	dropped := map[string]int64{}
	for _, st := range pred.Funnel.Stages {
		dropped[st.Stage] = st.In - st.Out
	}
	want := map[string]int64{"pii": 0, "exact_dedup": 2, "filter": 2, "fuzzy_dedup": 1}
	if fmt.Sprint(dropped) != fmt.Sprint(want) {
		t.Errorf("dropped by stage = %v, want %v", dropped, want)
	}
	if pred.Funnel.Written != 4 {
		t.Errorf("written = %d, want 4", pred.Funnel.Written)
	}
	if !strings.Contains(out.String(), "ends mid-sentence") {
		t.Errorf("truncation examples lack the ending:\n%s", out.String())
	}
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	comparePrediction(t, pred, res.Manifest.Funnel)
	for _, st := range pred.Funnel.Stages {
		if (st.Stage == "judge" || st.Stage == "mix" || st.Stage == "fuzzy_dedup") && st.In == st.Out {
			t.Errorf("stage %s drops nothing here: the comparison does not test it", st.Stage)
		}
	}
}

// TestDryRunFuzzyEstimate bounds the fuzzy sample below the input: the
// count is labelled an estimate, and the MinHash-chosen sample keeps
// near-duplicate pairs together, so the estimate is close.
func TestDryRunFuzzyEstimate(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	rng := rand.New(rand.NewSource(7))
	word := func() string {
		b := make([]byte, 3+rng.Intn(6))
		for k := range b {
			b[k] = byte('a' + rng.Intn(26))
		}
		return string(b)
	}
	for i := 0; i < 200; i++ {
		words := make([]string, 60)
		for j := range words {
			words[j] = word()
		}
		text := strings.Join(words, " ")
		b, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("Question %d", i), "completion": text})
		lines = append(lines, string(b))
		if i%2 == 0 { // 100 near duplicates: one word changed
			words[30] = "changed"
			b, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("Question %d", i), "completion": strings.Join(words, " ")})
			lines = append(lines, string(b))
		}
	}
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte("name: est\nsources: [{name: s, path: in.jsonl, format: prompt_completion, license: mit}]\nstages:\n  - fuzzy_dedup: {threshold: 0.7}\n"), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Predict(context.Background(), r, datasets.Store{Root: dir}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !pred.Exact() || pred.Funnel.Stages[0].Dropped[0].Count != 100 {
		t.Fatalf("whole input: notes %v, funnel %+v", pred.Notes, pred.Funnel.Stages)
	}
	old := DryRunFuzzySample
	DryRunFuzzySample = 100
	defer func() { DryRunFuzzySample = old }()
	pred, err = Predict(context.Background(), r, datasets.Store{Root: dir}, 3)
	if err != nil {
		t.Fatal(err)
	}
	note := pred.Notes["fuzzy_dedup"]
	if !strings.HasPrefix(note, "estimate:") {
		t.Fatalf("no estimate note: %v", pred.Notes)
	}
	n := pred.Funnel.Stages[0].Dropped[0].Count
	if n < 80 || n > 120 {
		t.Errorf("estimate %d, want about 100 (%s)", n, note)
	}
	if err := pred.Funnel.Check(); err != nil {
		t.Error(err)
	}
	var out bytes.Buffer
	pred.Write(&out)
	if !strings.Contains(out.String(), "estimate") {
		t.Errorf("table does not say estimate:\n%s", out.String())
	}
}

// TestDryRunMatchesRunTailAndMix runs the bundled samples through a
// recipe whose filter, heuristic judge and decontamination come after
// exact dedup (in the run they are applied by the writers, after the
// marks), with fuzzy dedup between them and a weighted mix, and compares
// the dry run with the run.
func TestDryRunMatchesRunTailAndMix(t *testing.T) {
	dir := t.TempDir()
	samples, err := filepath.Abs(filepath.Join("..", "datasets", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bench.jsonl"), []byte(`{"id":"b1","question":"Write a SQL query that returns the second highest salary.","answer":"SELECT MAX(salary) FROM employees"}`+"\n"), 0o644)
	yaml := fmt.Sprintf(`name: tail
sources:
  - {name: alpaca, path: %[1]s/alpaca.jsonl, format: alpaca, license: cc-by-4.0, weight: 2}
  - {name: sharegpt, path: %[1]s/sharegpt.json, format: sharegpt, license: cc-by-4.0, roles: {customer: user, bing: assistant}, weight: 1}
stages:
  - exact_dedup
  - filter: {}
  - fuzzy_dedup: {threshold: 0.6}
  - judge: {heuristic: true, threshold: {min_score: 4.5}}
  - decontaminate: {files: [bench.jsonl], n: 6}
  - pii: {mode: drop}
output: {shards: 2, mix_seed: s1}
`, samples)
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(yaml), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Predict(context.Background(), r, datasets.Store{Root: filepath.Join(dir, "store")}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pred.Write(&out)
	t.Logf("dry run:\n%s", out.String())
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	var table bytes.Buffer
	res.Manifest.Funnel.WriteTable(&table)
	t.Logf("run:\n%s", table.String())
	comparePrediction(t, pred, res.Manifest.Funnel)
	for _, st := range pred.Funnel.Stages {
		if (st.Stage == "judge" || st.Stage == "mix" || st.Stage == "fuzzy_dedup") && st.In == st.Out {
			t.Errorf("stage %s drops nothing here: the comparison does not test it", st.Stage)
		}
	}
}

// TestDryRunNamesLLMStages: an LLM judge whose key is set is named as not
// predicted (a dry run makes no calls), and the stages below it as
// approximate; without the key it is skipped, as in the run.
func TestDryRunNamesLLMStages(t *testing.T) {
	dir := t.TempDir()
	orderFixture(t, dir)
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(`name: llm
sources: [{name: s, path: in.jsonl, format: prompt_completion, license: mit}]
stages:
  - judge: {rubric: helpfulness, endpoint: {name: e, kind: other, base_url: "http://127.0.0.1:1/v1", model: m, api_key_env: SIEVE_DRYRUN_TEST_KEY}}
  - exact_dedup
`), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIEVE_DRYRUN_TEST_KEY", "k")
	pred, err := Predict(context.Background(), r, datasets.Store{Root: dir}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pred.Notes["judge"], "not predicted") || !strings.HasPrefix(pred.Notes["exact_dedup"], "approximate") {
		t.Errorf("notes = %v", pred.Notes)
	}
	var out bytes.Buffer
	pred.Write(&out)
	if !strings.Contains(out.String(), "not predicted") {
		t.Errorf("output:\n%s", out.String())
	}
	t.Setenv("SIEVE_DRYRUN_TEST_KEY", "")
	pred, err = Predict(context.Background(), r, datasets.Store{Root: dir}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !pred.Exact() || len(pred.Skipped) != 1 || len(pred.Funnel.Stages) != 1 {
		t.Errorf("without the key: notes %v, skipped %v, stages %+v", pred.Notes, pred.Skipped, pred.Funnel.Stages)
	}
}
