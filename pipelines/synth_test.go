package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm/llmtest"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/synth"
)

// fakeModel answers every prompt sieve's generation templates send, like
// a cooperative model would, with varied new instructions for
// self-instruct.
func fakeModel(listed *atomic.Int64) func(r *llmtest.ChatRequest) string {
	chunkRE := regexp.MustCompile(`"chunk_id": "([0-9a-f]+)"`)
	return func(r *llmtest.ChatRequest) string {
		p := r.LastUser()
		switch {
		case strings.Contains(p, "prompt rewriter"):
			orig := p[strings.Index(p, "Original prompt:\n")+len("Original prompt:\n"):]
			orig = orig[:strings.Index(orig, "\n")]
			return "Explain carefully, weighing causes, trade-offs and edge cases for practising engineers: " + orig
		case strings.Contains(p, "<reasoning></reasoning>"):
			return "<reasoning>First recall the facts, then check them.</reasoning><answer>The careful answer.</answer>"
		case strings.Contains(p, "<excerpt"):
			id := chunkRE.FindStringSubmatch(p)[1]
			return `{"pairs":[{"question":"How long does the warranty on the kettle last?","answer":"Two years from purchase.","chunk_id":"` + id + `","quote":"warranty lasts two years from the date of purchase"}]}`
		case strings.Contains(p, "example tasks"):
			n := int(listed.Add(1))
			tasks := []string{"Compose a limerick about a forgetful lighthouse keeper.",
				"Classify these fruits by colour: banana, cherry, lime.",
				"Explain how vaccines train the immune system.",
				"Write a Python function that reverses a linked list.",
				"Plan a three-day itinerary for Lisbon on a tight budget.",
				"Summarise the causes of the French Revolution in two sentences.",
				"Convert 72 degrees Fahrenheit to Celsius, showing each step.",
				"Suggest five names for a bakery that sells sourdough only.",
				"Describe what a mortgage amortisation schedule shows.",
				"Extract every date mentioned in a given paragraph."}
			var b strings.Builder
			for i := 0; i < 3; i++ {
				fmt.Fprintf(&b, "%d. %s\n", i+1, tasks[((n-1)*3+i)%len(tasks)])
			}
			return b.String()
		default:
			return "Here is a complete and helpful answer with enough words in it."
		}
	}
}

// TestGenerationStages runs evol_instruct, chain_of_thought, doc_qa and
// self_instruct as recipe stages against an OpenAI-compatible server over
// real HTTP: the funnel counts what they generate (read + generated =
// written + dropped + dead), generated samples carry provenance, the
// manifest records the endpoint's usage and never the key, a forced
// rerun is served from the cache with identical shards, and the budget
// stops a stage cleanly.
func TestGenerationStages(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-gen-secret-42", Respond: fakeModel(&listed)})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}
{"prompt":"What is 12 times 3?","completion":"36"}
{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}
`), 0o644)
	os.WriteFile(filepath.Join(dir, "manual.md"), []byte("# Kettle manual\n\n## Warranty\n\nThe warranty lasts two years from the date of purchase. Keep the receipt, because the shop will ask for it before any repair, replacement or refund is considered. Damage from descaling with the wrong product is not covered.\n"), 0o644)
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model, api_key_env: SIEVE_TEST_GEN_KEY}`
	yaml := `name: g
sources: [{name: s, path: in.jsonl}]
stages:
  - exact_dedup
  - evol_instruct: {endpoint: ` + ep + `, operations: [deepen], cache: cache}
  - chain_of_thought: {endpoint: ` + ep + `, cache: cache}
  - doc_qa: {endpoint: ` + ep + `, documents: ["*.md", "manual.md"], license: cc0-1.0, min_chunk_chars: 50, cache: cache}
  - self_instruct: {endpoint: ` + ep + `, instructions: 4, seeds_per_prompt: 3, machine_per_prompt: 1, seed: s1, count: 3, cache: cache}
`
	t.Setenv("SIEVE_TEST_GEN_KEY", "sk-gen-secret-42")
	store := filepath.Join(dir, "store")
	res := runRecipe(t, dir, yaml, store)
	m := res.Manifest
	f := m.Funnel
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	stage := map[string]datasets.StageFunnel{}
	for _, s := range f.Stages {
		stage[s.Stage] = s
	}
	// 3 read, 1 exact duplicate; evol adds one per sample (2); CoT
	// replaces the 4 answers; doc_qa adds 1; self_instruct adds ≥ 4.
	if stage["exact_dedup"].Out != 2 || stage["evol_instruct"].Generated != 2 || stage["evol_instruct"].Out != 4 {
		t.Fatalf("funnel %+v", f.Stages)
	}
	if c := stage["chain_of_thought"]; c.Generated != 0 || c.Out != 4 || len(c.Modified) != 1 || c.Modified[0] != (datasets.Count{Reason: "synth.replaced", Count: 4}) {
		t.Errorf("chain_of_thought %+v", c)
	}
	if c := stage["doc_qa"]; c.Generated != 1 || c.Out != 5 {
		t.Errorf("doc_qa %+v", c)
	}
	si := stage["self_instruct"]
	if si.Out-si.In < 4 || f.Read+f.Generated != f.Written+f.DeadLettered+dropped(f) {
		t.Errorf("self_instruct %+v, funnel %+v", si, f)
	}
	if len(m.LLM) != 1 || m.LLM[0].Endpoint != "gen" || m.LLM[0].Calls == 0 || m.LLM[0].Requests != int64(srv.Count()) || m.LLM[0].PromptTokens == 0 {
		t.Errorf("llm usage %+v (server saw %d requests)", m.LLM, srv.Count())
	}
	// Generated samples carry provenance; sources name their stage.
	v, err := datasets.Store{Root: store}.OpenVersion(context.Background(), datasets.Ref{Name: "g", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	tasks := map[string]int{}
	evolved := 0
	v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error {
		if s.Meta == "" {
			return nil
		}
		p, err := synth.ParseProvenance(s.Meta)
		if err != nil || p.Model != "gen-model" || len(p.Keys) == 0 {
			t.Errorf("provenance %q: %v", s.Meta, err)
		}
		tasks[p.Task]++
		if p.Task == "doc_qa" && (s.Source.Dataset != "doc_qa" || s.License != "cc0-1.0" || p.Doc != "manual.md") {
			t.Errorf("doc_qa sample source %+v license %q doc %q", s.Source, s.License, p.Doc)
		}
		if p.Task == "chain_of_thought" && !strings.HasPrefix(s.Messages[len(s.Messages)-1].Content, "<think>") {
			t.Errorf("CoT answer %q", s.Messages[len(s.Messages)-1].Content)
		}
		if p.Task == "chain_of_thought" && s.Source.Dataset == "evol_instruct" {
			// Replacing an evolved sample keeps the evolution's provenance.
			if parent, err := synth.ParseProvenance(string(p.Parent)); err != nil || parent.Task != "evol_instruct" || parent.Operation != "deepen" || len(parent.Keys) != 2 {
				t.Errorf("CoT of an evolved sample lost its provenance: %s", s.Meta)
			}
			evolved++
		}
		return nil
	})
	if tasks["chain_of_thought"] != 4 || tasks["doc_qa"] != 1 || tasks["self_instruct"] < 4 || evolved != 2 {
		t.Errorf("generated samples by task %v (%d chain_of_thought answers to evolved samples)", tasks, evolved)
	}
	for _, name := range []string{"manifest.json", rejectedFile, "README.md"} {
		b, _ := os.ReadFile(filepath.Join(res.Dir, name))
		if bytes.Contains(b, []byte("sk-gen-secret-42")) {
			t.Errorf("the API key leaked into %s", name)
		}
	}
	shards := readShards(t, res.Dir)

	// A forced rerun makes no request and writes the same bytes.
	calls := srv.Count()
	res2 := runRecipeOpt(t, dir, yaml, Options{Store: store, Force: true})
	if srv.Count() != calls {
		t.Errorf("rerun made %d requests; the cache should answer", srv.Count()-calls)
	}
	if !bytes.Equal(shards, readShards(t, res2.Dir)) {
		t.Error("rerun from the cache wrote different shards")
	}

	// A budget of a few tokens stops the stages cleanly: samples pass
	// unprocessed, the manifest says why, the funnel still adds up.
	budget := strings.ReplaceAll(yaml, "api_key_env: SIEVE_TEST_GEN_KEY}", "api_key_env: SIEVE_TEST_GEN_KEY, budget: {max_tokens: 1}}")
	budget = strings.ReplaceAll(budget, "cache: cache", "cache: cache2")
	budget = strings.Replace(budget, "name: g", "name: b", 1)
	res3 := runRecipe(t, dir, budget, store)
	if err := res3.Manifest.Funnel.Check(); err != nil {
		t.Fatal(err)
	}
	if len(res3.Manifest.Stopped) == 0 || !strings.Contains(strings.Join(res3.Manifest.Stopped, "\n"), "budget") {
		t.Errorf("stopped %q", res3.Manifest.Stopped)
	}
	// The budget admits the first call (the total may pass the budget by
	// what calls in flight use) and refuses the rest.
	if u := res3.Manifest.LLM; len(u) != 1 || u[0].Requests > 1 || u[0].BudgetRefusals == 0 {
		t.Errorf("usage under a 1-token budget: %+v", u)
	}
	if w := res3.Manifest.Funnel.Written; w < 2 || w > 3 {
		t.Errorf("wrote %d: want the 2 unique samples, unchanged, and at most one generated", w)
	}
}

const rejectedFile = "rejected.jsonl"

func dropped(f datasets.Funnel) int64 {
	var n int64
	for _, s := range f.Stages {
		for _, c := range s.Dropped {
			n += c.Count
		}
	}
	return n
}

// readShards concatenates a version's shard bytes in manifest order.
func readShards(t *testing.T, dir string) []byte {
	t.Helper()
	var m datasets.Manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &m)
	var all []byte
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			d, err := os.ReadFile(filepath.Join(dir, sh.Path))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, d...)
		}
	}
	return all
}

// TestGeneratedDuplicatesAreDeduplicated: candidates made from identical
// samples are identical, yet keep distinct origins, so a later dedup
// stage keeps exactly one of them; in replace mode a failed call keeps
// the sample as it was.
func TestGeneratedDuplicatesAreDeduplicated(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed), Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if strings.Contains(r.LastUser(), "Name a planet") && strings.Contains(r.LastUser(), "<reasoning>") {
			s := llmtest.Fail(400) // this sample's call fails for good
			return &s
		}
		return nil
	}})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}
{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}
{"prompt":"Name a planet.","completion":"Mars."}
`), 0o644)
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model}`
	res := runRecipe(t, dir, `name: d
sources: [{name: s, path: in.jsonl}]
stages:
  - evol_instruct: {endpoint: `+ep+`, operations: [deepen], cache: cache}
  - chain_of_thought: {endpoint: `+ep+`, cache: cache}
  - exact_dedup
`, filepath.Join(dir, "store"))
	f := res.Manifest.Funnel
	st := map[string]datasets.StageFunnel{}
	for _, s := range f.Stages {
		st[s.Stage] = s
	}
	// 3 read; evol adds 3 (two identical); CoT replaces the 4 sky samples
	// and keeps both planet samples (original and evolved), whose calls
	// fail, as they were (their failed calls are counted as failed, not
	// generated); exact dedup drops one original and one evolved sky copy.
	if st["evol_instruct"].Generated != 3 || st["evol_instruct"].Out != 6 {
		t.Fatalf("evol %+v", st["evol_instruct"])
	}
	cot := st["chain_of_thought"]
	if cot.Out != 6 || cot.Generated != 0 || cot.Failed != 2 || len(cot.Dropped) != 0 ||
		len(cot.Modified) != 2 || cot.Modified[0] != (datasets.Count{Reason: "synth.kept_original", Count: 2}) || cot.Modified[1].Count != 4 {
		t.Errorf("chain_of_thought %+v", cot)
	}
	if d := st["exact_dedup"]; d.Out != 4 || f.Written != 4 {
		t.Errorf("exact_dedup %+v, written %d", d, f.Written)
	}
}

// TestSelfInstructFromSeedFile: seeds come from a file (any format), are
// recorded as an input, and do not join the output; the new samples do.
func TestSelfInstructFromSeedFile(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed)})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "seeds.jsonl"), []byte(`{"instruction":"List three primary colours.","input":"","output":"Red, yellow and blue."}
{"instruction":"Translate 'good morning' into French.","input":"","output":"Bonjour."}
{"instruction":"Give an antonym of 'ancient'.","input":"","output":"Modern."}
`), 0o644)
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model}`
	res := runRecipe(t, dir, `name: si
sources: [{name: s, path: in.jsonl}]
stages:
  - self_instruct: {endpoint: `+ep+`, seeds: seeds.jsonl, instructions: 3, seeds_per_prompt: 2, machine_per_prompt: 1, max_seeds: 2, count: 3, cache: cache}
`, filepath.Join(dir, "store"))
	m := res.Manifest
	si := m.Funnel.Stages[0]
	if si.In != 1 || si.Out-si.In < 3 || m.Funnel.Check() != nil {
		t.Fatalf("funnel %+v", m.Funnel)
	}
	found := false
	for _, in := range m.Inputs {
		found = found || (in.Format == "seeds" && strings.HasSuffix(in.File, "seeds.jsonl") && in.SHA256 != "")
	}
	if !found {
		t.Errorf("seed file not among the inputs: %+v", m.Inputs)
	}
	// Every prompt shows examples from the two seeds the pool kept (and
	// generated ones), never the third.
	kept := 0
	for _, q := range srv.Requests() {
		if p := q.Request.LastUser(); strings.Contains(p, "example tasks") {
			n := strings.Count(p, "List three primary colours.") + strings.Count(p, "Translate 'good morning' into French.") + strings.Count(p, "Give an antonym of 'ancient'.")
			if n == 0 || n > 2 {
				t.Errorf("prompt shows %d seed examples", n)
			}
			kept++
		}
	}
	if kept == 0 {
		t.Error("no self-instruct prompt was sent")
	}
}

// TestFailedCallsAreNotGenerated: generation calls that fail are counted
// as failed, neither generated nor dropped, so the funnel's generated
// counts only candidates a model made and no share in the table passes
// 100%; rejected.jsonl still holds the failures with their error.
func TestFailedCallsAreNotGenerated(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed), Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if !strings.Contains(r.LastUser(), "Why is the sky blue?") {
			s := llmtest.Fail(400) // every call but the sky sample's fails
			return &s
		}
		return nil
	}})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}
{"prompt":"What is 12 times 3?","completion":"36"}
{"prompt":"Name a planet.","completion":"Mars."}
{"prompt":"Who wrote Hamlet?","completion":"Shakespeare."}
`), 0o644)
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model, max_retries: 0}`
	res := runRecipe(t, dir, `name: f
sources: [{name: s, path: in.jsonl}]
stages:
  - evol_instruct: {endpoint: `+ep+`, operations: [deepen, concretize, broaden], per_sample: 3, cache: cache}
`, filepath.Join(dir, "store"))
	f := res.Manifest.Funnel
	ev := f.Stages[0]
	// 12 evolutions of 2 calls each: only some of the sky sample's pass.
	if ev.Failed < 9 || ev.Generated != 12-ev.Failed || ev.Out != 4+ev.Generated || len(ev.Dropped) != 0 || f.Check() != nil {
		t.Errorf("evol_instruct %+v: want the 12 evolutions as generated or failed calls, none dropped", ev)
	}
	var table bytes.Buffer
	f.WriteTable(&table)
	for _, pct := range regexp.MustCompile(`([0-9.]+)%`).FindAllStringSubmatch(table.String(), -1) {
		if v, _ := strconv.ParseFloat(pct[1], 64); v > 100 {
			t.Errorf("funnel table shows %s%%:\n%s", pct[1], table.String())
			break
		}
	}
	b, _ := os.ReadFile(filepath.Join(res.Dir, rejectedFile))
	if n := strings.Count(string(b), synth.ReasonLLMError); n != int(ev.Failed) {
		t.Errorf("rejected.jsonl holds %d failed calls, want %d", n, ev.Failed)
	}
}

// TestRetriesAreLogged: an LLM stage's clients log every retry through
// the run's slog logger (at INFO, shown by --verbose) with the attempt,
// the status and the wait, never the API key; the manifest counts them.
func TestRetriesAreLogged(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed), EchoKey: true})
	defer srv.Close()
	srv.Script(llmtest.RateLimited("0"), llmtest.RateLimited("0"), llmtest.Fail(503))
	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}`+"\n"), 0o644)
	t.Setenv("SIEVE_TEST_RETRY_KEY", "sk-retry-secret-1234567890")
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model, api_key_env: SIEVE_TEST_RETRY_KEY, max_concurrency: 1}`
	res := runRecipe(t, dir, `name: r
sources: [{name: s, path: in.jsonl}]
stages:
  - evol_instruct: {endpoint: `+ep+`, operations: [deepen], cache: cache}
`, filepath.Join(dir, "store"))
	if u := res.Manifest.LLM; len(u) != 1 || u[0].Retries != 3 {
		t.Errorf("manifest llm usage %+v: want 3 retries", u)
	}
	out := logs.String()
	if n := strings.Count(out, "llm retry"); n != 3 {
		t.Fatalf("%d retry lines in the run's log, want 3:\n%s", n, out)
	}
	for _, want := range []string{"endpoint=gen", "attempt=1", "attempt=2", "status=429", "status=503", "wait="} {
		if !strings.Contains(out, want) {
			t.Errorf("retry log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sk-retry-secret") || strings.Contains(out, "secret-1234567890") {
		t.Errorf("the API key leaked into the log:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSelfInstructLicense: samples made from a seeds file carry the
// license the stage states (the seed file's), and with allow_licenses a
// self_instruct whose samples' license is unknown (a seeds file without
// license:, or seeds of several licenses) or not allowed is refused
// before the run: an empty license never passes an allow list.
func TestSelfInstructLicense(t *testing.T) {
	var listed atomic.Int64
	srv := llmtest.Start(llmtest.Config{Respond: fakeModel(&listed)})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"prompt":"Why is the sky blue?","completion":"Rayleigh scattering."}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.jsonl"), []byte(`{"prompt":"Name a planet.","completion":"Mars."}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "seeds.jsonl"), []byte(`{"instruction":"List three primary colours.","input":"","output":"Red, yellow and blue."}
{"instruction":"Translate 'good morning' into French.","input":"","output":"Bonjour."}
`), 0o644)
	ep := `{name: gen, kind: other, base_url: "` + srv.URL + `", model: gen-model}`
	yaml := `name: lic
allow_licenses: [mit]
sources: [{name: s, path: in.jsonl, license: mit}SOURCES]
stages:
  - self_instruct: {endpoint: ` + ep + `, SEEDS instructions: 2, seeds_per_prompt: 2, machine_per_prompt: 1, count: 3, cache: cacheLICENSE}
`
	recipeWith := func(seeds, license, sources string) string {
		return strings.NewReplacer("SEEDS", seeds, "LICENSE", license, "SOURCES", sources).Replace(yaml)
	}
	store := filepath.Join(dir, "store")
	for _, tc := range []struct{ name, yaml, want string }{
		{"seeds file without license", recipeWith("seeds: seeds.jsonl,", "", ""), "license"},
		{"license not allowed", recipeWith("seeds: seeds.jsonl,", ", license: gpl-3.0", ""), "gpl-3.0"},
		{"seeds of two licenses", strings.Replace(recipeWith("", "", ", {name: b, path: b.jsonl, license: MIT-0}"), "[mit]", "[mit, mit-0]", 1), "license"},
	} {
		path := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		r, err := recipe.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, err := Run(context.Background(), r, Options{Store: store}); err == nil || !strings.Contains(err.Error(), "self_instruct") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want self_instruct refused for its license", tc.name, err)
		}
	}
	res := runRecipe(t, dir, recipeWith("seeds: seeds.jsonl,", ", license: mit", ""), store)
	v, err := datasets.Store{Root: store}.OpenVersion(context.Background(), datasets.Ref{Name: "lic", Version: res.Manifest.Version})
	if err != nil {
		t.Fatal(err)
	}
	made := 0
	v.ReadSamples(context.Background(), func(_ string, s *datasets.Sample) error {
		if s.Source.Dataset == "self_instruct" {
			made++
			if s.License != "mit" {
				t.Errorf("self_instruct sample has license %q, want the seed file's mit", s.License)
			}
		}
		return nil
	})
	if made == 0 {
		t.Error("no self_instruct sample")
	}
}
