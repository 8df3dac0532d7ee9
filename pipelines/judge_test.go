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

// judgeAnswer is a judge's answer scoring every criterion n.
func judgeAnswer(n int) string {
	return `{"rationale":"ok","scores":{"helpfulness":` + itoa(n) + `,"relevance":` + itoa(n) + `,"clarity":` + itoa(n) + `}}`
}

// judgeInput writes n samples to dir/in.jsonl.
func judgeInput(t *testing.T, dir string, n int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(`{"prompt":"Question number ` + itoa(i) + `?","completion":"Answer number ` + itoa(i) + `."}` + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestJudgeStopPassesSamples: a judge whose endpoint turns fatal (a 401)
// after the first verdict stops cleanly: the samples it did not score
// pass unchanged (not dropped, no score), the manifest's stopped names
// the stage and the funnel counts what passed unjudged.
func TestJudgeStopPassesSamples(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return judgeAnswer(5) },
		Decide: func(n int, _ *llmtest.ChatRequest) *llmtest.Step {
			if n == 1 {
				return nil
			}
			s := llmtest.Fail(401)
			return &s
		}})
	defer srv.Close()
	dir := t.TempDir()
	judgeInput(t, dir, 6)
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "sk-test-123")
	yaml := `name: j
sources: [{name: s, path: in.jsonl}]
stages:
  - judge:
      endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: test-model, api_key_env: SIEVE_TEST_JUDGE_KEY, max_concurrency: 1}
      rubric: helpfulness
      threshold: {min_score: 4}
      cache: cache
`
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	m := res.Manifest
	if m.Funnel.Written != 6 {
		t.Errorf("written %d, want all 6 (unjudged samples pass): %+v", m.Funnel.Written, m.Funnel.Stages)
	}
	if len(m.Stopped) != 1 || !strings.Contains(m.Stopped[0], "judge") {
		t.Errorf("stopped = %q, want the judge stage", m.Stopped)
	}
	st := m.Funnel.Stages[0]
	if len(st.Dropped) != 0 {
		t.Errorf("judge dropped %v after stopping", st.Dropped)
	}
	var passed int64
	for _, c := range st.Modified {
		if c.Reason == "stopped" {
			passed = c.Count
		}
	}
	if passed < 1 || passed > 5 {
		t.Errorf("modified = %v, want a stopped count of the unjudged samples", st.Modified)
	}
	v, _ := datasets.Store{Root: filepath.Join(dir, "store")}.OpenVersion(context.Background(), datasets.Ref{Name: "j", Version: "v1"})
	var scored int64
	v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error {
		if s.JudgeScore != nil {
			scored++
		} else if s.Judge != "" {
			t.Errorf("unjudged sample carries a verdict %q", s.Judge)
		}
		return nil
	})
	if scored+passed != 6 {
		t.Errorf("scored %d + passed %d != 6", scored, passed)
	}
}

// TestJudgeEveryCallFailed: a judge whose every call fails (a wrong key:
// 401) fails the run, naming the stage and the cause, and commits
// nothing; with allow_failure: true the samples pass and the stage is
// listed as stopped.
func TestJudgeEveryCallFailed(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-right", Respond: func(*llmtest.ChatRequest) string { return judgeAnswer(5) }})
	defer srv.Close()
	dir := t.TempDir()
	judgeInput(t, dir, 3)
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "sk-wrong")
	yaml := `name: j
sources: [{name: s, path: in.jsonl}]
stages:
  - judge:
      endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: test-model, api_key_env: SIEVE_TEST_JUDGE_KEY}
      rubric: helpfulness
      threshold: {min_score: 4, keep_errors: true}
`
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(yaml), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	_, err = Run(context.Background(), r, Options{Store: store})
	if err == nil || !strings.Contains(err.Error(), "judge") || !strings.Contains(err.Error(), "every call failed") {
		t.Fatalf("err = %v, want the judge stage failing the run", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if _, err := (datasets.Store{Root: store}).OpenVersion(context.Background(), datasets.Ref{Name: "j", Version: "v1"}); err == nil {
		t.Error("a failed run committed a version")
	}
	res := runRecipe(t, dir, strings.Replace(yaml, "rubric: helpfulness", "rubric: helpfulness\n      allow_failure: true", 1), store)
	if res.Manifest.Funnel.Written != 3 || len(res.Manifest.Stopped) != 1 {
		t.Errorf("allow_failure: written %d stopped %q", res.Manifest.Funnel.Written, res.Manifest.Stopped)
	}
}

// TestJudgeBudgetStopUsesCache: once a judge's budget is spent, verdicts
// already in the cache are still used; only the unscored samples pass
// unjudged.
func TestJudgeBudgetStopUsesCache(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return judgeAnswer(5) }})
	defer srv.Close()
	dir := t.TempDir()
	t.Setenv("SIEVE_TEST_JUDGE_KEY", "sk-test-123")
	yaml := `name: j
sources: [{name: s, path: in.jsonl}]
stages:
  - judge:
      endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: test-model, api_key_env: SIEVE_TEST_JUDGE_KEY, max_concurrency: 1BUDGET}
      rubric: helpfulness
      threshold: {min_score: 4}
      cache: cache
`
	judgeInput(t, dir, 3)
	runRecipe(t, dir, strings.Replace(yaml, "BUDGET", "", 1), filepath.Join(dir, "store"))
	// The uncached samples first, so the stop comes before the cached ones.
	var b strings.Builder
	for _, i := range []int{3, 4, 5, 6, 7, 0, 1, 2} {
		b.WriteString(`{"prompt":"Question number ` + itoa(i) + `?","completion":"Answer number ` + itoa(i) + `."}` + "\n")
	}
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(b.String()), 0o644)
	res := runRecipeOpt(t, dir, strings.Replace(yaml, "BUDGET", ", budget: {max_tokens: 1}", 1), Options{Store: filepath.Join(dir, "store"), Force: true})
	m := res.Manifest
	if m.Funnel.Written != 8 || len(m.Stopped) != 1 {
		t.Fatalf("written %d stopped %q", m.Funnel.Written, m.Stopped)
	}
	v, err := datasets.Store{Root: filepath.Join(dir, "store")}.OpenVersion(context.Background(), datasets.Ref{Name: "j", Version: m.Version})
	if err != nil {
		t.Fatal(err)
	}
	v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error {
		p := s.Messages[0].Content
		cached := strings.Contains(p, "number 0?") || strings.Contains(p, "number 1?") || strings.Contains(p, "number 2?")
		if cached && s.JudgeScore == nil {
			t.Errorf("cached verdict not used after the stop: %q", p)
		}
		return nil
	})
}

// TestGenerationEveryCallFailed: an evol_instruct stage whose every call
// gets a 401 fails the run, naming the stage, and commits nothing; with
// allow_failure: true the run commits the inputs.
func TestGenerationEveryCallFailed(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-right"})
	defer srv.Close()
	dir := t.TempDir()
	judgeInput(t, dir, 3)
	t.Setenv("SIEVE_TEST_GEN_KEY", "sk-wrong")
	yaml := `name: g
sources: [{name: s, path: in.jsonl}]
stages:
  - evol_instruct: {endpoint: {name: gen, kind: other, base_url: "` + srv.URL + `", model: m, api_key_env: SIEVE_TEST_GEN_KEY}, operations: [deepen]ALLOW}
`
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(strings.Replace(yaml, "ALLOW", "", 1)), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if _, err := Run(context.Background(), r, Options{Store: store}); err == nil || !strings.Contains(err.Error(), "stage evol_instruct: every call failed") {
		t.Fatalf("err = %v, want evol_instruct failing the run", err)
	}
	res := runRecipe(t, dir, strings.Replace(yaml, "ALLOW", ", allow_failure: true", 1), store)
	if res.Manifest.Funnel.Written != 3 || len(res.Manifest.Stopped) != 1 {
		t.Errorf("allow_failure: written %d stopped %q", res.Manifest.Funnel.Written, res.Manifest.Stopped)
	}
}
