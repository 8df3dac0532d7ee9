package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm/llmtest"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// TestBuildErrorNamesStage: a plan with a stage that has no transform
// makes Build return an error naming the stage (it used to panic).
func TestBuildErrorNamesStage(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	path := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(fixtureRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r.Stages = append(r.Stages, recipe.Stage{Kind: "no_such_stage", Line: 7, Config: &recipe.Filter{}})
	plan, err := NewPlan(context.Background(), r, datasets.Store{Root: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	p, names, err := Build(plan, t.TempDir())
	if err == nil {
		t.Fatalf("Build made a pipeline (%v, stages %v) of a stage with no transform", p, names)
	}
	if !strings.Contains(err.Error(), "no_such_stage") {
		t.Errorf("error %q does not name the stage", err)
	}
}

// TestJudgeOnceBeforeDedups: a judge pending after a whole-dataset stage
// and followed by two more (exact_dedup, judge, exact_dedup, fuzzy_dedup)
// asks the LLM once per sample with the response cache out of play: the
// judge is applied before the next whole-dataset stage instead of again
// inside each later stage's keying and at the writers (k+1 calls). The
// shards are those of the same stages with the judge last (it drops
// nothing here).
func TestJudgeOnceBeforeDedups(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return judgeAnswer(5) }})
	defer srv.Close()
	dir := t.TempDir()
	// Six distinct conversations and one exact copy.
	in := `{"prompt":"Largest planet?","completion":"Jupiter is the largest planet."}
{"prompt":"Name a colour of the sky.","completion":"Blue, on a clear day."}
{"prompt":"How many legs has a spider?","completion":"Eight legs."}
{"prompt":"Boiling point of water at sea level?","completion":"One hundred degrees Celsius."}
{"prompt":"Who wrote Hamlet?","completion":"William Shakespeare wrote it around 1600."}
{"prompt":"Translate chat from French.","completion":"Cat."}
{"prompt":"Largest planet?","completion":"Jupiter is the largest planet."}
`
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "sk-test-123")
	// The cache directory lies under a regular file: every cache write
	// fails (with a warning) and every read misses, so the server sees
	// every call the pipeline makes.
	judge := `  - judge:
      endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: test-model, api_key_env: SIEVE_TEST_JUDGE_KEY}
      rubric: helpfulness
      threshold: {min_score: 4}
      cache: in.jsonl/cache
`
	exact := "  - exact_dedup: {key: conversation}\n"
	later := "  - exact_dedup: {key: prompt}\n  - fuzzy_dedup: {threshold: 0.7}\n"
	head := "name: j\nsources: [{name: s, path: in.jsonl}]\nstages:\n"
	res := runRecipe(t, dir, head+exact+judge+later, filepath.Join(dir, "store"))
	if n := srv.Count(); n != 6 {
		t.Errorf("judge made %d requests for 6 samples, want one each", n)
	}
	f := res.Manifest.Funnel
	if f.Written != 6 || len(f.Stages) != 4 || f.Stages[1].Stage != "judge" || f.Stages[1].In != 6 || f.Stages[1].Out != 6 {
		t.Errorf("funnel = %+v", f)
	}
	last := runRecipe(t, dir, head+exact+later+judge, filepath.Join(dir, "store2"))
	got, want := versionHashes(t, res.Dir), versionHashes(t, last.Dir)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("shards or rejected samples differ from the judge-last run:\n%v\n%v", got, want)
	}
}

// versionHashes lists a version's shards and rejected samples with their
// SHA-256.
func versionHashes(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !strings.HasPrefix(rel, "data"+string(filepath.Separator)) && rel != transforms.RejectedFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out = append(out, rel+"="+hex.EncodeToString(h[:8]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	if len(out) < 2 {
		t.Fatalf("%s: want shards and %s, found %v", dir, transforms.RejectedFile, out)
	}
	return out
}
