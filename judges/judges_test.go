package judges_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

const keyEnv = "SIEVE_JUDGES_TEST_KEY"

// setup starts a test server and a client on it (fast backoff, optional
// cache directory).
func setup(t *testing.T, cfg llmtest.Config, cacheDir string) (*llmtest.Server, *llm.Client) {
	t.Helper()
	srv := llmtest.Start(cfg)
	t.Cleanup(srv.Close)
	return srv, client(t, srv, cacheDir)
}

func client(t *testing.T, srv *llmtest.Server, cacheDir string) *llm.Client {
	t.Helper()
	t.Setenv(keyEnv, "sk-judges-test-0123456789abcdef")
	c, err := llm.New(llm.Endpoint{Name: "judge", Kind: llm.KindOther, BaseURL: srv.URL, Model: "judge-model",
		APIKeyEnv: keyEnv, Timeout: llm.Duration(5 * time.Second)},
		llm.Options{CacheDir: cacheDir, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func qa(q, a string) datasets.Sample {
	msgs := []datasets.Message{{Role: "user", Content: q}, {Role: "assistant", Content: a}}
	return datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs}
}

func rubric(t *testing.T, name string) *judges.Rubric {
	t.Helper()
	r, err := judges.LoadRubric(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func llmJudge(t *testing.T, c *llm.Client, r *judges.Rubric, o judges.LLMOptions) *judges.LLMJudge {
	t.Helper()
	j, err := judges.NewLLMJudge(c, r, o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

const goodHelpful = `{"rationale": "Correct and concise.", "scores": {"helpfulness": 5, "relevance": 3, "clarity": 4}}`

func TestEmbeddedRubricsLoad(t *testing.T) {
	names := judges.Rubrics()
	for _, want := range []string{"alpagasus", "complexity", "correctness", "helpfulness"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Fatalf("embedded rubrics %v lack %s", names, want)
		}
	}
	for _, n := range names {
		r := rubric(t, n)
		if len(r.Hash) != 64 || !strings.HasPrefix(r.Source, "embedded:") {
			t.Errorf("%s: source %q hash %q", n, r.Source, r.Hash)
		}
		var schema map[string]any
		if err := json.Unmarshal(r.Schema(), &schema); err != nil {
			t.Errorf("%s: schema: %v", n, err)
		}
		msgs, err := r.Messages([]datasets.Message{{Role: "user", Content: "What is 2+2?"}}, "4")
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		u := msgs[len(msgs)-1].Content
		if !strings.Contains(u, "What is 2+2?") || !strings.Contains(u, `"scores"`) || strings.Contains(u, "{{") {
			t.Errorf("%s: prompt %q", n, u)
		}
	}
	if r := rubric(t, "correctness"); r.Scale != (judges.Scale{Min: 1, Max: 10}) {
		t.Errorf("correctness scale %v", r.Scale)
	}
	if _, err := judges.LoadRubric("nosuch"); err == nil || !strings.Contains(err.Error(), "helpfulness") {
		t.Errorf("unknown rubric: %v", err)
	}
}

func TestRubricFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mine.yaml")
	src := `name: mine
scale: 1-10
criteria:
  - {name: style, description: "Nice prose.", scale: 1-5}
  - {name: facts, description: "True.", weight: 3}
instruction: "Q: {{.Prompt}} A: {{.Response}}"
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := judges.LoadRubric(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Criteria[0].Scale != (judges.Scale{Min: 1, Max: 5}) || r.Criteria[1].Scale != (judges.Scale{Min: 1, Max: 10}) || r.Criteria[0].Weight != 1 {
		t.Fatalf("criteria %+v", r.Criteria)
	}
	msgs, _ := r.Messages([]datasets.Message{{Role: "user", Content: "q?"}}, "a!")
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Content, "Q: q? A: a!") || !strings.Contains(msgs[0].Content, `"facts": <number from 1 to 10>`) {
		t.Fatalf("messages %q", msgs)
	}
	// style 5 of 1-5 → 1, facts 1 of 1-10 → 0: (1·1 + 3·0)/4 = 0.25 → 1 + 9·0.25.
	if got := r.Aggregate(map[string]float64{"style": 5, "facts": 1}); math.Abs(got-3.25) > 1e-9 {
		t.Fatalf("aggregate %v, want 3.25", got)
	}

	bad := []struct{ name, src, want string }{
		{"no response", "name: x\nscale: 1-5\ncriteria: [{name: a}]\ninstruction: '{{.Prompt}}'\n", "{{.Response}}"},
		{"dup", "name: x\nscale: 1-5\ncriteria: [{name: a}, {name: a}]\ninstruction: '{{.Response}}'\n", "duplicate"},
		{"bad scale", "name: x\nscale: 5-1\ncriteria: [{name: a}]\ninstruction: '{{.Response}}'\n", "min must be below max"},
		{"no scale", "name: x\ncriteria: [{name: a}]\ninstruction: '{{.Response}}'\n", "scale: required"},
		{"mixed scales", "name: x\ncriteria: [{name: a, scale: 1-5}, {name: b, scale: 1-10}]\ninstruction: '{{.Response}}'\n", "scales differ"},
		{"unknown key", "name: x\nscale: 1-5\ncriterias: []\n", "not found"},
		{"unknown field", "name: x\nscale: 1-5\ncriteria: [{name: a}]\ninstruction: '{{.Response}} {{.Answer}}'\n", "Answer"},
		{"criterion name", "name: x\nscale: 1-5\ncriteria: [{name: Bad Name}]\ninstruction: '{{.Response}}'\n", "lower case"},
	}
	for _, c := range bad {
		if _, err := judges.ParseRubric([]byte(c.src), c.name+".yaml"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

func TestRubricParseStrict(t *testing.T) {
	r := rubric(t, "helpfulness")
	ok := []string{
		goodHelpful,
		"```json\n" + goodHelpful + "\n```",
		`{"scores": {"helpfulness": 4.5, "relevance": 1, "clarity": 5}}`,
	}
	for _, s := range ok {
		if _, _, err := r.Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	bad := map[string]string{
		"The answer is good. I would give it 4/5.":                               "not JSON",
		`{"scores": {"helpfulness": "5", "relevance": 3, "clarity": 4}}`:         "not a number",
		`{"scores": {"helpfulness": 6, "relevance": 3, "clarity": 4}}`:           "outside 1-5",
		`{"scores": {"helpfulness": 0, "relevance": 3, "clarity": 4}}`:           "outside 1-5",
		`{"scores": {"helpfulness": 5, "relevance": 3}}`:                         `lacks "clarity"`,
		`{"scores": {"helpfulness": 5, "relevance": 3, "clarity": 4, "wit": 2}}`: `unknown criteria "wit"`,
		`{"score": 4}`:                     "unknown field",
		`{"rationale": "x"}`:               `no "scores"`,
		goodHelpful + "\nHope this helps!": "text after",
		`{"rationale": "x", "scores": {"helpfulness": 5, "relevance": 3, "clar`:           "not valid JSON",
		`Here is my rating: {"scores": {"helpfulness": 5, "relevance": 3, "clarity": 4}}`: "not JSON",
		`{"rationale": 3, "scores": {"helpfulness": 5, "relevance": 3, "clarity": 4}}`:    "not valid JSON",
		"": "empty",
	}
	for s, want := range bad {
		_, _, err := r.Parse(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", s, err, want)
		}
	}
}

func TestLLMJudgeHappyPath(t *testing.T) {
	srv, c := setup(t, llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return goodHelpful }}, "")
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})
	v, err := j.Score(context.Background(), qa("What is the capital of France?", "Paris."))
	if err != nil {
		t.Fatal(err)
	}
	// weights 2,1,1 on 1-5: (2·1 + 0.5 + 0.75)/4 = 0.8125 → 1 + 4·0.8125.
	if math.Abs(v.Score-4.25) > 1e-9 || v.Scores["relevance"] != 3 || v.Rationale != "Correct and concise." {
		t.Fatalf("verdict %+v", v)
	}
	if v.Judge != "helpfulness" || v.Rubric != "helpfulness" || v.Model != "judge-model" || v.Min != 1 || v.Max != 5 ||
		v.Raw != "" || v.Err != "" || v.Repaired || len(v.Keys) != 1 || len(v.RubricHash) != 64 {
		t.Fatalf("verdict %+v", v)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q := reqs[0].Request
	if q.Temperature == nil || *q.Temperature != 0 {
		t.Errorf("temperature not sent as 0: %s", reqs[0].Body)
	}
	if q.ResponseFormat == nil || q.ResponseFormat.Type != "json_schema" || q.ResponseFormat.JSONSchema.Name != "rubric_helpfulness" ||
		q.ResponseFormat.JSONSchema.Strict == nil || !*q.ResponseFormat.JSONSchema.Strict {
		t.Fatalf("response_format %s", reqs[0].Body)
	}
	if q.Messages[0].Role != "system" || !strings.Contains(q.LastUser(), "What is the capital of France?") || !strings.Contains(q.LastUser(), "Paris.") {
		t.Errorf("prompt %+v", q.Messages)
	}

	var s datasets.Sample = qa("q", "a")
	judges.Annotate(&s, v)
	back, err := judges.ParseVerdict(s.Judge)
	if err != nil || s.JudgeScore == nil || *s.JudgeScore != v.Score || back.Scores["clarity"] != 4 || back.Model != "judge-model" {
		t.Fatalf("annotate: %v %+v %s", err, back, s.Judge)
	}
}

// The default server answer to a json_schema request is a minimal
// instance of the schema: the rubric's schema must make it a valid,
// in-range verdict.
func TestLLMJudgeSchemaInstance(t *testing.T) {
	_, c := setup(t, llmtest.Config{}, "")
	for _, name := range judges.Rubrics() {
		j := llmJudge(t, c, rubric(t, name), judges.LLMOptions{})
		v, err := j.Score(context.Background(), qa("Name a colour.", "Blue."))
		if err != nil || v.Score != v.Min || v.Repaired {
			t.Errorf("%s: %+v %v", name, v, err)
		}
	}
}

func TestLLMJudgeRepairsProse(t *testing.T) {
	srv, c := setup(t, llmtest.Config{}, "")
	prose := "This response is accurate and helpful. I'd rate it 4 out of 5 overall."
	srv.Script(llmtest.Reply(prose), llmtest.Reply(goodHelpful))
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})
	v, err := j.Score(context.Background(), qa("What is the capital of France?", "Paris."))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Repaired || v.Score != 4.25 || v.Raw != "" || len(v.Keys) != 2 {
		t.Fatalf("verdict %+v", v)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	m := reqs[1].Request.Messages
	if len(m) != 4 || m[2].Role != "assistant" || m[2].Content != prose || m[3].Role != "user" ||
		!strings.Contains(m[3].Content, "not JSON") || !strings.Contains(m[3].Content, `"helpfulness": <number from 1 to 5>`) {
		t.Fatalf("repair request %+v", m)
	}
	if reqs[1].Request.ResponseFormat == nil || *reqs[1].Request.Temperature != 0 {
		t.Errorf("repair request lost the schema or temperature: %s", reqs[1].Body)
	}
}

func TestLLMJudgeRepairsOutOfRangeAndTruncated(t *testing.T) {
	srv, c := setup(t, llmtest.Config{}, "")
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})

	srv.Script(llmtest.Reply(`{"rationale": "great", "scores": {"helpfulness": 9, "relevance": 3, "clarity": 4}}`), llmtest.Reply(goodHelpful))
	v, err := j.Score(context.Background(), qa("q1", "a1"))
	if err != nil || !v.Repaired {
		t.Fatalf("%+v %v", v, err)
	}
	if last := srv.Requests()[1].Request.LastUser(); !strings.Contains(last, `score "helpfulness" is 9, outside 1-5`) {
		t.Errorf("repair prompt %q", last)
	}

	srv.Script(llmtest.Truncated(`{"rationale": "The response is`), llmtest.Reply(goodHelpful))
	v, err = j.Score(context.Background(), qa("q2", "a2"))
	if err != nil || !v.Repaired {
		t.Fatalf("%+v %v", v, err)
	}
	if last := srv.Requests()[3].Request.LastUser(); !strings.Contains(last, "cut off") {
		t.Errorf("repair prompt %q", last)
	}
}

func TestLLMJudgeKeepsRawWhenRepairFails(t *testing.T) {
	srv, c := setup(t, llmtest.Config{}, "")
	srv.Script(llmtest.Reply("Looks fine to me."), llmtest.Reply(`{"scores": {"helpfulness": 5}}`))
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{Name: "h"})
	v, err := j.Score(context.Background(), qa("q", "a"))
	var pe *judges.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err %v, want *ParseError", err)
	}
	if judges.StopsStage(err) {
		t.Error("a parse error stops the stage")
	}
	if pe.Raw != "Looks fine to me." || pe.Repair != `{"scores": {"helpfulness": 5}}` || !strings.Contains(pe.Err.Error(), `lacks "relevance"`) {
		t.Fatalf("parse error %+v", pe)
	}
	if v.OK() || v.Judge != "h" || v.Raw != "Looks fine to me.\n--- repair ---\n"+`{"scores": {"helpfulness": 5}}` || len(v.Keys) != 2 {
		t.Fatalf("verdict %+v", v)
	}
	if d := judges.Decide(judges.ThresholdConfig{}, v); d.Keep || d.Reason != judges.ReasonError {
		t.Fatalf("decision %+v", d)
	}
	if srv.Count() != 2 {
		t.Fatalf("%d requests, want exactly one repair", srv.Count())
	}
}

func TestLLMJudgeSchemaFallback(t *testing.T) {
	// A server without structured output: 400 for response_format.
	srv, c := setup(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if r.ResponseFormat != nil {
			return &llmtest.Step{Status: 400, Message: "response_format is not supported"}
		}
		return &llmtest.Step{Text: goodHelpful}
	}}, "")
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})
	for i, q := range []string{"q1", "q2"} {
		v, err := j.Score(context.Background(), qa(q, "a"))
		if err != nil || v.Score != 4.25 {
			t.Fatalf("call %d: %+v %v", i, v, err)
		}
	}
	// 400 then retry without the schema; the second sample goes without it at once.
	if srv.Count() != 3 {
		t.Fatalf("%d requests, want 3", srv.Count())
	}

	// StructuredPrompt never sends it; StructuredSchema always does.
	srv2, c2 := setup(t, llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return goodHelpful }}, "")
	j2 := llmJudge(t, c2, rubric(t, "helpfulness"), judges.LLMOptions{Structured: judges.StructuredPrompt})
	if _, err := j2.Score(context.Background(), qa("q", "a")); err != nil {
		t.Fatal(err)
	}
	if srv2.Requests()[0].Request.ResponseFormat != nil {
		t.Error("structured: prompt sent a response_format")
	}
	if _, err := judges.NewLLMJudge(c2, rubric(t, "helpfulness"), judges.LLMOptions{Structured: "yes"}); err == nil {
		t.Error("bad structured mode accepted")
	}
}

func TestLLMJudgeErrors(t *testing.T) {
	srv, c := setup(t, llmtest.Config{}, "")
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})
	srv.Script(llmtest.Fail(401))
	v, err := j.Score(context.Background(), qa("q", "a"))
	if !judges.StopsStage(err) || v.OK() {
		t.Fatalf("401: %v %+v", err, v)
	}
	// Transient faults are the client's business: retried, then a verdict.
	srv.Script(llmtest.RateLimited("0"), llmtest.Fail(500), llmtest.Reset(), llmtest.Reply(goodHelpful))
	if v, err := j.Score(context.Background(), qa("q2", "a2")); err != nil || v.Score != 4.25 {
		t.Fatalf("after faults: %+v %v", v, err)
	}
	if _, err := j.Score(context.Background(), datasets.Sample{Messages: []datasets.Message{{Role: "user", Content: "q"}}}); !errors.Is(err, judges.ErrNoResponse) {
		t.Fatalf("no response: %v", err)
	}

	// Budget: the stage stops.
	srv2 := llmtest.Start(llmtest.Config{})
	defer srv2.Close()
	t.Setenv(keyEnv, "k")
	cb, err := llm.New(llm.Endpoint{Name: "b", Kind: llm.KindOther, BaseURL: srv2.URL, Model: "m", APIKeyEnv: keyEnv,
		Budget: llm.Budget{MaxTokens: 1}}, llm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jb := llmJudge(t, cb, rubric(t, "helpfulness"), judges.LLMOptions{})
	jb.Score(context.Background(), qa("q", "a")) // spends the budget
	if _, err := jb.Score(context.Background(), qa("q3", "a3")); !errors.Is(err, llm.ErrBudgetExhausted) || !judges.StopsStage(err) {
		t.Fatalf("budget: %v", err)
	}
}

func TestLLMJudgeCachedRerun(t *testing.T) {
	dir := t.TempDir()
	srv, c := setup(t, llmtest.Config{}, dir)
	srv.Script(llmtest.Reply("prose"), llmtest.Reply(goodHelpful))
	j := llmJudge(t, c, rubric(t, "helpfulness"), judges.LLMOptions{})
	v1, err := j.Score(context.Background(), qa("q", "a"))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh client on the same cache (a restarted run) makes no request
	// and reaches the same verdict through the same repair.
	j2 := llmJudge(t, client(t, srv, dir), rubric(t, "helpfulness"), judges.LLMOptions{})
	v2, err := j2.Score(context.Background(), qa("q", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Count() != 2 || v2.Score != v1.Score || !v2.Repaired || strings.Join(v2.Keys, ",") != strings.Join(v1.Keys, ",") {
		t.Fatalf("rerun: %d requests, %+v vs %+v", srv.Count(), v2, v1)
	}
}

func TestPairwise(t *testing.T) {
	// The fake judge prefers the response containing "good", wherever it
	// is shown, unless told to prefer position A.
	biased := false
	srv, c := setup(t, llmtest.Config{Respond: func(r *llmtest.ChatRequest) string {
		u := r.LastUser()
		a := u[strings.Index(u, "[Response A]"):strings.Index(u, "[Response B]")]
		w := "B"
		if biased || strings.Contains(a, "good") {
			w = "A"
		}
		return `{"rationale": "because", "winner": "` + w + `"}`
	}}, "")
	p, err := judges.NewPairwiseJudge(c, judges.PairwiseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []datasets.Message{{Role: "user", Content: "Explain tides."}}
	pref, err := p.Compare(context.Background(), prompt, "a bad answer", "a good answer")
	if err != nil {
		t.Fatal(err)
	}
	if pref.Winner != judges.WinnerB || !pref.Consistent || pref.Forward != judges.WinnerB || pref.Swapped != judges.WinnerB || len(pref.Keys) != 2 || len(pref.Rationales) != 2 {
		t.Fatalf("pref %+v", pref)
	}
	reqs := srv.Requests()
	u0, u1 := reqs[0].Request.LastUser(), reqs[1].Request.LastUser()
	if strings.Index(u0, "a bad answer") > strings.Index(u0, "a good answer") || strings.Index(u1, "a good answer") > strings.Index(u1, "a bad answer") {
		t.Fatal("the second call did not swap the responses")
	}
	if reqs[0].Request.ResponseFormat == nil || *reqs[0].Request.Temperature != 0 {
		t.Errorf("request %s", reqs[0].Body)
	}

	biased = true // always "A": inconsistent across the swap → tie
	pref, err = p.Compare(context.Background(), prompt, "x one", "y two")
	if err != nil {
		t.Fatal(err)
	}
	if pref.Winner != judges.Tie || pref.Consistent || pref.Forward != judges.WinnerA || pref.Swapped != judges.WinnerB {
		t.Fatalf("biased pref %+v", pref)
	}

	// Prose, repaired; then an unparseable answer keeps its raw text.
	srv.Script(llmtest.Reply("A is better."), llmtest.Reply(`{"rationale": "r", "winner": "a"}`),
		llmtest.Reply(`{"rationale": "r", "winner": "tie"}`))
	if pref, err = p.Compare(context.Background(), prompt, "m", "n"); err != nil || pref.Forward != judges.WinnerA || pref.Swapped != judges.Tie || pref.Winner != judges.Tie {
		t.Fatalf("repaired pref %+v %v", pref, err)
	}
	srv.Script(llmtest.Reply("dunno"), llmtest.Reply(`{"winner": "C"}`))
	pref, err = p.Compare(context.Background(), prompt, "o", "p")
	var pe *judges.ParseError
	if !errors.As(err, &pe) || !strings.Contains(pref.Raw, "dunno") || pref.Err == "" {
		t.Fatalf("bad answers: %v %+v", err, pref)
	}
}

func TestHeuristicJudge(t *testing.T) {
	h := &judges.HeuristicJudge{}
	score := func(q, a string) judges.Verdict {
		t.Helper()
		v, err := h.Score(context.Background(), qa(q, a))
		if err != nil || v.Score < 1 || v.Score > 5 || v.Min != 1 || v.Max != 5 {
			t.Fatalf("%q: %+v %v", a, v, err)
		}
		return v
	}
	good := score("Explain why the sky is blue.", "Sunlight contains every visible colour. As it passes through the atmosphere, "+
		"molecules of nitrogen and oxygen scatter short wavelengths much more strongly than long ones (Rayleigh scattering, "+
		"proportional to the inverse fourth power of wavelength). Blue light is therefore redirected across the whole sky "+
		"and reaches our eyes from every direction, while the direct sunlight looks slightly yellow.")
	short := score("Explain why the sky is blue.", "Scattering.")
	refusal := score("Explain why the sky is blue.", "I'm sorry, but I can't help with that request.")
	repetitive := score("Explain why the sky is blue.", strings.Repeat("blue sky blue sky is blue ", 20))
	if !(good.Score > short.Score && good.Score > repetitive.Score && short.Score > refusal.Score) {
		t.Fatalf("order: good %v short %v refusal %v repetitive %v", good.Score, short.Score, refusal.Score, repetitive.Score)
	}
	if refusal.Score > 2 || refusal.Scores["no_refusal"] != 1 || good.Scores["no_refusal"] != 5 {
		t.Fatalf("refusal %+v", refusal)
	}
	if _, ok := good.Scores["structure"]; ok {
		t.Error("structure scored for a request that asks for none")
	}

	listQ := "List three benefits of exercise."
	list := score(listQ, "Here are three:\n1. Better sleep and mood.\n2. A stronger heart and lungs.\n3. Lower risk of diabetes.")
	prose := score(listQ, "Exercise improves sleep and mood, strengthens the heart and lungs, and lowers the risk of diabetes.")
	if list.Scores["structure"] != 5 || prose.Scores["structure"] != 1 || list.Score <= prose.Score {
		t.Fatalf("list %+v prose %+v", list, prose)
	}
	codeQ := "Write a Python function that reverses a string."
	code := score(codeQ, "```python\ndef rev(s):\n    return s[::-1]\n```")
	noCode := score(codeQ, "Use slicing with a negative step to reverse it.")
	if code.Scores["structure"] != 5 || noCode.Scores["structure"] != 1 {
		t.Fatalf("code %+v no code %+v", code, noCode)
	}

	// Deterministic, hand-checked: "Scattering." is 1 word for a 6-word
	// prompt: length ln 2/ln 31, diversity 1, no refusal 1, no structure.
	want := 1 + 4*(0.3*math.Log(2)/math.Log(31)+0.2+0.3)/0.8
	if math.Abs(short.Score-want) > 0.001 {
		t.Fatalf("short score %v, want %v", short.Score, want)
	}
	if again := score("Explain why the sky is blue.", "Scattering."); again.Score != short.Score || again.Rationale != short.Rationale {
		t.Fatal("not deterministic")
	}
	if v := score("Say something.", " "); v.Score != 1 {
		t.Fatalf("empty response %+v", v)
	}
}

// fixed is a Judge with a canned verdict or error.
type fixed struct {
	name string
	v    judges.Verdict
	err  error
}

func (f fixed) Name() string { return f.name }
func (f fixed) Score(context.Context, datasets.Sample) (judges.Verdict, error) {
	v := f.v
	v.Judge = f.name
	return v, f.err
}

func TestPanel(t *testing.T) {
	a := fixed{name: "a", v: judges.Verdict{Score: 5, Min: 1, Max: 5, Scores: map[string]float64{"x": 5}}}
	b := fixed{name: "b", v: judges.Verdict{Score: 4, Min: 1, Max: 10}} // 4 of 1-10 → 1 + 4·3/9 on 1-5
	c := fixed{name: "c", v: judges.Verdict{Score: 2, Min: 1, Max: 5}}
	bOn5 := 1 + 4*3.0/9
	cases := []struct {
		agg  judges.Aggregation
		want float64
	}{
		{judges.AggMean, (5 + bOn5 + 2) / 3}, {judges.AggMedian, bOn5}, {judges.AggMin, 2}, {judges.AggMax, 5},
	}
	for _, tc := range cases {
		p, err := judges.NewPanel(judges.PanelOptions{Aggregation: tc.agg}, a, b, c)
		if err != nil {
			t.Fatal(err)
		}
		v, err := p.Score(context.Background(), qa("q", "a"))
		if err != nil || math.Abs(v.Score-tc.want) > 1e-9 || len(v.Members) != 3 || v.Scores["a/x"] != 5 || math.Abs(v.Scores["b"]-bOn5) > 1e-9 {
			t.Fatalf("%s: %+v %v", tc.agg, v, err)
		}
	}
	p, _ := judges.NewPanel(judges.PanelOptions{Aggregation: judges.AggMedian}, a, c)
	if v, _ := p.Score(context.Background(), qa("q", "a")); v.Score != 3.5 {
		t.Fatalf("even median %v", v.Score)
	}

	// A member that cannot parse: left out under a quorum of 2, fatal to a
	// quorum of 3.
	bad := fixed{name: "bad", v: judges.Verdict{Err: "parse"}, err: &judges.ParseError{Err: errors.New("x")}}
	p2, _ := judges.NewPanel(judges.PanelOptions{Quorum: 2}, a, c, bad)
	if v, err := p2.Score(context.Background(), qa("q", "a")); err != nil || v.Score != 3.5 || v.Members[2].OK() {
		t.Fatalf("quorum 2: %+v %v", v, err)
	}
	p3, _ := judges.NewPanel(judges.PanelOptions{}, a, c, bad)
	if v, err := p3.Score(context.Background(), qa("q", "a")); err == nil || v.OK() || !strings.Contains(v.Err, "quorum is 3") {
		t.Fatalf("quorum 3: %+v %v", v, err)
	}
	// A stage-stopping member error is returned as is.
	broke := fixed{name: "broke", err: &llm.BudgetError{Endpoint: "e"}}
	p4, _ := judges.NewPanel(judges.PanelOptions{Quorum: 1}, a, broke)
	if _, err := p4.Score(context.Background(), qa("q", "a")); !errors.Is(err, llm.ErrBudgetExhausted) {
		t.Fatalf("budget: %v", err)
	}
	if _, err := judges.NewPanel(judges.PanelOptions{}, a, a); err == nil {
		t.Error("duplicate member names accepted")
	}
	if _, err := judges.NewPanel(judges.PanelOptions{Aggregation: "mode"}, a); err == nil {
		t.Error("unknown aggregation accepted")
	}

	// A real panel: the heuristic judge and an LLM judge over HTTP.
	_, cl := setup(t, llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return goodHelpful }}, "")
	pp, err := judges.NewPanel(judges.PanelOptions{Name: "both"}, &judges.HeuristicJudge{}, llmJudge(t, cl, rubric(t, "helpfulness"), judges.LLMOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pp.Score(context.Background(), qa("What is 2+2?", "2+2 equals 4."))
	if err != nil || v.Judge != "both" || v.Model != "judge-model" || v.Scores["helpfulness/clarity"] != 4 || v.Scores["helpfulness"] != 4.25 {
		t.Fatalf("panel %+v %v", v, err)
	}
}

func TestThreshold(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	v := judges.Verdict{Judge: "j", Score: 4, Min: 1, Max: 5, Scores: map[string]float64{"helpfulness": 4, "clarity": 2}}
	cases := []struct {
		cfg    judges.ThresholdConfig
		v      judges.Verdict
		keep   bool
		reason string
		detail string
	}{
		{judges.ThresholdConfig{}, v, true, "", ""},
		{judges.ThresholdConfig{MinScore: f(4)}, v, true, "", ""},
		{judges.ThresholdConfig{MinScore: f(4.5)}, v, false, judges.ReasonScore, "j score 4 < 4.5"},
		{judges.ThresholdConfig{MinCriteria: map[string]float64{"helpfulness": 3, "clarity": 3}}, v, false, judges.ReasonCriterion, "j clarity 2 < 3"},
		{judges.ThresholdConfig{MinCriteria: map[string]float64{"accuracy": 3}}, v, false, judges.ReasonCriterion, `j gave no "accuracy" score`},
		{judges.ThresholdConfig{MinScore: f(1)}, judges.Verdict{Judge: "j", Err: "boom"}, false, judges.ReasonError, "j: boom"},
		{judges.ThresholdConfig{KeepErrors: true}, judges.Verdict{Err: "boom"}, true, "", ""},
	}
	for i, c := range cases {
		d := judges.Decide(c.cfg, c.v)
		if d.Keep != c.keep || d.Reason != c.reason || d.Detail != c.detail {
			t.Errorf("case %d: %+v", i, d)
		}
	}
	if err := (judges.ThresholdConfig{MinScore: f(math.NaN())}).Validate(); err == nil {
		t.Error("NaN min_score accepted")
	}
}

// TestFailedVerdictHasNoScore: a failed verdict shows no score (0 would
// read as a real one), in the sample and in its stored JSON, also as a
// panel member.
func TestFailedVerdictHasNoScore(t *testing.T) {
	v := judges.Verdict{Min: 1, Max: 5, Judge: "llm", Err: "retries ran out"}
	var s datasets.Sample
	judges.Annotate(&s, v)
	if s.JudgeScore != nil || s.Quality != nil {
		t.Errorf("failed verdict set score %v quality %v", s.JudgeScore, s.Quality)
	}
	if strings.Contains(s.Judge, `"score"`) {
		t.Errorf("failed verdict JSON shows a score: %s", s.Judge)
	}
	p := judges.Verdict{Score: 3, Min: 1, Max: 5, Judge: "panel", Members: []judges.Verdict{v, {Score: 3, Min: 1, Max: 5, Judge: "b"}}}
	if n := strings.Count(p.JSON(), `"score":`); n != 2 {
		t.Errorf("panel JSON has %d scores, want 2 (the panel's and the scored member's): %s", n, p.JSON())
	}
	back, err := judges.ParseVerdict(s.Judge)
	if err != nil || back.OK() || back.Err != v.Err {
		t.Errorf("round trip: %+v %v", back, err)
	}
	ok := judges.Verdict{Score: 0, Min: 0, Max: 10, Judge: "x"}
	if !strings.Contains(ok.JSON(), `"score":0`) {
		t.Errorf("a real score of 0 is lost: %s", ok.JSON())
	}
}
