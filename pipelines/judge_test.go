package pipelines

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm/llmtest"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestJudgeStageOverHTTP runs an LLM-judge stage against an
// OpenAI-compatible server over real HTTP: samples are annotated with the
// judge's score, those below the threshold are dropped, a rerun is served
// from the response cache, and without the API key the stage is skipped
// with one line.
func TestJudgeStageOverHTTP(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-test-123", Respond: func(r *llmtest.ChatRequest) string {
		last := r.Messages[len(r.Messages)-1].Content
		score := 2
		if strings.Contains(last, "Jupiter") {
			score = 5
		}
		return `{"rationale":"ok","scores":{"helpfulness":` + itoa(score) + `,"relevance":` + itoa(score) + `,"clarity":` + itoa(score) + `}}`
	}})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Largest planet?","completion":"Jupiter is the largest planet."}
{"prompt":"Name a colour.","completion":"Blue."}
`), 0o644)
	yaml := `name: j
sources: [{name: s, path: in.jsonl}]
stages:
  - judge:
      endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: test-model, api_key_env: SIEVE_TEST_JUDGE_KEY}
      rubric: helpfulness
      threshold: {min_score: 4}
      cache: cache
`
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "sk-test-123")
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	f := res.Manifest.Funnel
	if f.Written != 1 || len(f.Stages) != 1 || f.Stages[0].Dropped[0].Reason != "judge.score" {
		t.Fatalf("funnel = %+v", f)
	}
	calls := srv.Count()
	v, _ := datasets.Store{Root: filepath.Join(dir, "store")}.OpenVersion(context.Background(), datasets.Ref{Name: "j", Version: "v1"})
	v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error {
		if s.JudgeScore == nil || *s.JudgeScore != 5 || !strings.Contains(s.Judge, "helpfulness") {
			t.Errorf("sample not annotated: score %v judge %q", s.JudgeScore, s.Judge)
		}
		return nil
	})
	manifest, _ := os.ReadFile(filepath.Join(res.Dir, "manifest.json"))
	if bytes.Contains(manifest, []byte("sk-test-123")) {
		t.Error("the API key leaked into the manifest")
	}
	// A forced rerun is answered from the cache: no new request.
	runRecipeOpt(t, dir, yaml, Options{Store: filepath.Join(dir, "store"), Force: true})
	if srv.Count() != calls {
		t.Errorf("rerun made %d requests; the cache should answer", srv.Count()-calls)
	}
	// Without the key the stage is skipped with one notice.
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "")
	os.Unsetenv("SIEVE_TEST_JUDGE_KEY")
	path := filepath.Join(dir, "recipe.yaml")
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	res2, err := Run(context.Background(), r, Options{Store: filepath.Join(dir, "store"), Notice: func(s string) { notices = append(notices, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "$SIEVE_TEST_JUDGE_KEY") || res2.Manifest.Funnel.Written != 2 || len(res2.Manifest.Skipped) != 1 {
		t.Errorf("notices %q, written %d, skipped %v", notices, res2.Manifest.Funnel.Written, res2.Manifest.Skipped)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
