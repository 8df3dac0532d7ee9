package synth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
	"github.com/sieve-data/sieve/synth"
)

const keyEnv = "SIEVE_SYNTH_TEST_KEY"

func start(t *testing.T, cfg llmtest.Config) *llmtest.Server {
	t.Helper()
	srv := llmtest.Start(cfg)
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, srv *llmtest.Server, cacheDir string, budget llm.Budget) *llm.Client {
	t.Helper()
	t.Setenv(keyEnv, "sk-synth-test-0123456789abcdef")
	c, err := llm.New(llm.Endpoint{Name: "gen", Kind: llm.KindOther, BaseURL: srv.URL, Model: "gen-model",
		APIKeyEnv: keyEnv, Timeout: llm.Duration(5 * time.Second), Budget: budget},
		llm.Options{CacheDir: cacheDir, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sample(msgs ...datasets.Message) datasets.Sample {
	return datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "seed", File: "seed.jsonl", Index: 7}, License: "cc-by-4.0"}
}

func u(s string) datasets.Message   { return datasets.Message{Role: "user", Content: s} }
func a(s string) datasets.Message   { return datasets.Message{Role: "assistant", Content: s} }
func sys(s string) datasets.Message { return datasets.Message{Role: "system", Content: s} }

func embeddedHash(t *testing.T, name string) string {
	t.Helper()
	tm, err := synth.LoadTemplate(name, "")
	if err != nil {
		t.Fatal(err)
	}
	return tm.SHA256
}

func prov(t *testing.T, s datasets.Sample) synth.Provenance {
	t.Helper()
	p, err := synth.ParseProvenance(s.Meta)
	if err != nil {
		t.Fatalf("meta %q: %v", s.Meta, err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("generated sample invalid: %v: %+v", err, s)
	}
	for _, k := range p.Keys {
		if len(k) != 64 {
			t.Fatalf("provenance key %q", k)
		}
	}
	return p
}

func reasons(rej []datasets.Rejected) string {
	var out []string
	for _, r := range rej {
		out = append(out, r.Reason)
	}
	return strings.Join(out, ",")
}

const newTasks = `Here are seven new tasks:

1. Give three tips for staying healthy and happy.
2. Draw a picture of a cat.
3. Hi there.
4. Explain how a rainbow forms.
5. Write a SQL query that counts orders per customer.
6. Explain how a rainbow forms in the sky.
7. **Name the largest planet in the solar system.**

I hope these tasks are useful!`

func TestSelfInstruct(t *testing.T) {
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		switch q := r.LastUser(); {
		case strings.Contains(q, "Example tasks:"):
			return &llmtest.Step{Text: newTasks}
		case strings.Contains(q, "SQL"):
			return &llmtest.Step{Text: "I'm sorry, but I can't help with that."}
		}
		return nil // "echo: " + the instruction
	}})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewSelfInstruct(synth.SelfInstructConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seeds := []datasets.Sample{
		sample(u("Give three tips for staying healthy."), a("Eat well, sleep, move.")),
		sample(u("Translate 'good morning' into Spanish."), a("Buenos días.")),
		sample(u("Write a short poem about the sea."), a("Waves...")),
		sample(u("q1"), a("a1"), u("q2"), a("a2")), // multi-turn: not an example
	}
	known := synth.NewNoveltyIndex(0)
	out, rej, err := task.Generate(context.Background(), c, synth.Input{Samples: seeds, Known: known})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Messages[0].Content != "Explain how a rainbow forms." || out[1].Messages[0].Content != "Name the largest planet in the solar system." {
		t.Fatalf("samples %+v", out)
	}
	if got := reasons(rej); got != "synth.not_novel,synth.filtered,synth.filtered,synth.refusal,synth.not_novel" {
		t.Fatalf("rejected %s", got)
	}
	if !strings.Contains(rej[0].Detail, "Give three tips for staying healthy.") || !strings.Contains(rej[4].Detail, "Explain how a rainbow forms.") {
		t.Errorf("novelty details %q / %q", rej[0].Detail, rej[4].Detail)
	}
	if out[0].Messages[1].Content != "echo: Explain how a rainbow forms." || out[0].License != "cc-by-4.0" || out[0].Source.Dataset != "self_instruct" {
		t.Errorf("sample %+v", out[0])
	}
	p := prov(t, out[0])
	if p.Task != "self_instruct" || p.Model != "gen-model" || p.Endpoint != "gen" || len(p.Keys) != 2 || len(p.Seeds) != 3 || p.Seeds[0] != seeds[0].ID ||
		p.Templates["self_instruct"] != embeddedHash(t, "self_instruct") || p.Templates["answer"] != embeddedHash(t, "answer") || p.Novelty == nil {
		t.Fatalf("provenance %+v", p)
	}
	reqs := srv.Requests()
	gen := reqs[0].Request
	if *gen.Temperature != 0.7 || !strings.Contains(gen.LastUser(), "3. Write a short poem about the sea.") || strings.Contains(gen.LastUser(), "q1") {
		t.Errorf("generation request %s", reqs[0].Body)
	}
	if ans := reqs[1].Request; *ans.Temperature != 0 || ans.LastUser() != "Explain how a rainbow forms." {
		t.Errorf("answer request %s", reqs[1].Body)
	}
	if p.Keys[1] != c.Key(llm.Request{Messages: []datasets.Message{u("Explain how a rainbow forms.")}, Temperature: llm.Float(0), MaxTokens: 2048}) {
		t.Error("provenance key is not the answer call's cache key")
	}
	// Accepted instructions (the refused one included) joined Known: the
	// same list again yields nothing new.
	if known.Len() != 3 {
		t.Fatalf("known holds %d", known.Len())
	}
	out, rej, err = task.Generate(context.Background(), c, synth.Input{Samples: seeds, Known: known})
	if err != nil || len(out) != 0 || strings.Count(reasons(rej), "not_novel") != 5 {
		t.Fatalf("second batch: %d samples, %s, %v", len(out), reasons(rej), err)
	}
}

func TestSelfInstructMalformedAndTruncated(t *testing.T) {
	srv := start(t, llmtest.Config{})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewSelfInstruct(synth.SelfInstructConfig{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	seeds := []datasets.Sample{sample(u("Summarize the water cycle."), a("..."))}

	srv.Script(llmtest.Reply("Sure! What kind of tasks would you like me to write?"))
	out, rej, err := task.Generate(context.Background(), c, synth.Input{Samples: seeds})
	if err != nil || len(out) != 0 || reasons(rej) != synth.ReasonParse {
		t.Fatalf("prose: %+v %s %v", out, reasons(rej), err)
	}

	srv.Script(llmtest.Truncated("1. Explain gravity to a child.\n2. Write a haiku about"))
	out, rej, err = task.Generate(context.Background(), c, synth.Input{Samples: seeds})
	if err != nil || len(out) != 1 || out[0].Messages[0].Content != "Explain gravity to a child." || reasons(rej) != synth.ReasonTruncated {
		t.Fatalf("truncated: %+v %s %v", out, reasons(rej), err)
	}

	if _, _, err := task.Generate(context.Background(), c, synth.Input{}); err == nil {
		t.Error("no seeds accepted")
	}
}

func TestEvolInstruct(t *testing.T) {
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		q := r.LastUser()
		switch {
		case strings.Contains(q, "increase the depth and breadth"):
			return &llmtest.Step{Text: "**Rewritten Prompt:** Explain how mRNA vaccines train the immune system, and why boosters are needed."}
		case strings.Contains(q, "add one more constraint"):
			return &llmtest.Step{Text: "Explain how vaccines work."}
		case strings.Contains(q, "replace general concepts"):
			return &llmtest.Step{Text: "#Rewritten Prompt#: Following the given prompt, explain how the measles vaccine works."}
		case strings.Contains(q, "multi-step reasoning"):
			return &llmtest.Step{Text: "Explain, step by step, how a vaccine leads to immunity, justifying each stage."}
		case strings.Contains(q, "brand-new prompt"):
			return &llmtest.Step{Text: "Describe how the", FinishReason: "length"}
		case strings.HasPrefix(q, "Explain, step by step"):
			return &llmtest.Step{Text: "Sorry, that is too complex to explain here."}
		}
		return &llmtest.Step{Text: "Vaccines expose the immune system to a harmless part of a pathogen so that it learns to recognise it."}
	}})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewEvolInstruct(synth.EvolConfig{PerSample: 5})
	if err != nil {
		t.Fatal(err)
	}
	seed := sample(sys("Be concise."), u("Explain how vaccines work."), a("They train immunity."))
	multi := sample(u("q1"), a("a1"), u("q2"), a("a2"))
	out, rej, err := task.Generate(context.Background(), c, synth.Input{Samples: []datasets.Sample{seed, multi}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d samples: %+v", len(out), out)
	}
	s := out[0]
	if len(s.Messages) != 3 || s.Messages[0].Content != "Be concise." || s.Messages[1].Content != "Explain how mRNA vaccines train the immune system, and why boosters are needed." ||
		s.Source != seed.Source || s.License != seed.License {
		t.Fatalf("sample %+v", s)
	}
	p := prov(t, s)
	if p.Task != "evol_instruct" || p.Operation != synth.OpDeepen || p.Seed != seed.ID || len(p.Keys) != 2 ||
		p.Templates["evol_deepen"] != embeddedHash(t, "evol_deepen") || p.Templates["answer"] == "" {
		t.Fatalf("provenance %+v", p)
	}
	got := map[string]string{}
	for _, r := range rej {
		op, _, _ := strings.Cut(r.Detail, ":")
		got[op] = r.Reason
		if r.Reason != synth.ReasonUnusable {
			if p, err := synth.ParseProvenance(r.Sample.Meta); err != nil || p.Seed != seed.ID || p.Operation != op || len(p.Keys) == 0 {
				t.Errorf("rejected %+v lacks its provenance", r)
			}
		}
	}
	want := map[string]string{
		synth.OpAddConstraint: synth.ReasonCopy, synth.OpConcretize: synth.ReasonLeak,
		synth.OpReasoning: synth.ReasonRefusal, synth.OpBroaden: synth.ReasonTruncated, "not exactly one user turn": synth.ReasonUnusable,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: rejected as %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	// The answer call carries the system turn; rewrites are sampled at 0.7.
	for _, q := range srv.Requests() {
		if strings.HasPrefix(q.Request.LastUser(), "Explain how mRNA") {
			if q.Request.Messages[0].Content != "Be concise." || *q.Request.Temperature != 0 {
				t.Errorf("answer request %s", q.Body)
			}
		} else if strings.Contains(q.Request.LastUser(), "increase the depth") && *q.Request.Temperature != 0.7 {
			t.Errorf("rewrite request %s", q.Body)
		}
	}

	// Operations are a deterministic function of the sample ID.
	one, _ := synth.NewEvolInstruct(synth.EvolConfig{})
	seen := map[string]bool{}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		ops := one.Operations(id)
		if len(ops) != 1 || strings.Join(ops, "") != strings.Join(one.Operations(id), "") {
			t.Fatal("operations not deterministic")
		}
		seen[ops[0]] = true
	}
	if len(seen) < 3 {
		t.Errorf("operations not spread: %v", seen)
	}
	if _, err := synth.NewEvolInstruct(synth.EvolConfig{Operations: []string{"shorten"}}); err == nil {
		t.Error("unknown operation accepted")
	}
}

func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deepen.tmpl")
	text := "Make this harder: {{.Instruction}}\n"
	os.WriteFile(path, []byte(text), 0o644)
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if strings.HasPrefix(r.LastUser(), "Make this harder") {
			return &llmtest.Step{Text: "Explain how vaccines work in the elderly and why efficacy differs."}
		}
		return &llmtest.Step{Text: "Ageing weakens the immune response, so vaccines work less well."}
	}})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewEvolInstruct(synth.EvolConfig{Operations: []string{synth.OpDeepen}, Prompts: map[string]string{"evol_deepen": path}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := task.Generate(context.Background(), c, synth.Input{Samples: []datasets.Sample{sample(u("Explain how vaccines work."), a("x"))}})
	if err != nil || len(out) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	sum := sha256.Sum256([]byte(text))
	if p := prov(t, out[0]); p.Templates["evol_deepen"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("template hash %q", p.Templates["evol_deepen"])
	}
	if srv.Requests()[0].Request.LastUser() != "Make this harder: Explain how vaccines work." {
		t.Errorf("prompt %q", srv.Requests()[0].Request.LastUser())
	}

	bad := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(bad, []byte("Rewrite something.\n"), 0o644)
	if _, err := synth.NewEvolInstruct(synth.EvolConfig{Prompts: map[string]string{"evol_deepen": bad}}); err == nil || !strings.Contains(err.Error(), "{{.Instruction}}") {
		t.Errorf("template without the instruction: %v", err)
	}
	if _, err := synth.NewEvolInstruct(synth.EvolConfig{Prompts: map[string]string{"evol_shorten": path}}); err == nil || !strings.Contains(err.Error(), "unknown template") {
		t.Errorf("unknown template name: %v", err)
	}
	if _, err := synth.NewChainOfThought(synth.CoTConfig{Prompts: map[string]string{"cot": filepath.Join(dir, "missing.tmpl")}}); err == nil {
		t.Error("missing template file accepted")
	}
	for _, name := range synth.Templates() {
		if _, err := synth.LoadTemplate(name, ""); err != nil {
			t.Errorf("embedded %s: %v", name, err)
		}
	}
}

const handbook = `# Widget handbook

## Resetting

The reset button is on the back of the widget, next to the power socket. Hold it for ten seconds, until the status light turns red, then release it. The widget restarts with factory settings and forgets every paired device.

## Batteries

The widget runs on two AA batteries that last about six months of daily use. Replace both at the same time, and never mix rechargeable and alkaline cells, because the charge indicator reads them differently.

## Contact

Mail us.
`

var chunkIDRE = regexp.MustCompile(`Its id is ([0-9a-f]{16})\.`)

func TestDocQA(t *testing.T) {
	chunks, err := synth.ChunkDocument("manuals/widget.md", handbook, synth.ChunkConfig{})
	// The title joins the first section; "Contact" is too short to ask about.
	if err != nil || len(chunks) != 3 {
		t.Fatalf("%d chunks %v", len(chunks), err)
	}
	reset, batteries := chunks[0], chunks[1]
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		id := chunkIDRE.FindStringSubmatch(r.Messages[0].Content)[1]
		if id == reset.ID {
			return &llmtest.Step{Text: `{"pairs": [
				{"question": "How do you reset the widget?", "answer": "Hold the reset button on the back for ten seconds until the light turns red.", "chunk_id": "` + id + `", "quote": "Hold it for ten seconds, until the status light turns red"},
				{"question": "Where is the reset button?", "answer": "On the back.", "chunk_id": "0000000000000000", "quote": "The reset button is on the back"},
				{"question": "What colour is the widget?", "answer": "Blue.", "chunk_id": "` + id + `", "quote": "The widget is blue"},
				{"question": "Does a reset forget paired devices?", "answer": "Yes.", "chunk_id": "` + id + `", "quote": ""},
				{"question": "How do you reset the widget?", "answer": "Hold the button.", "chunk_id": "` + id + `", "quote": "reset button"}]}`}
		}
		if len(r.Messages) == 1 { // the batteries chunk: prose first, as if the schema were ignored
			return &llmtest.Step{Text: "Q: How long do the batteries last? A: About six months."}
		}
		return &llmtest.Step{Text: "```json\n" + `{"pairs": [{"question": "How long do the widget's batteries last?", "answer": "About six months of daily use.", "chunk_id": "` + id + `", "quote": "last about six months of daily use"}]}` + "\n```"}
	}})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewDocQA(synth.QAConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out, rej, err := task.Generate(context.Background(), c, synth.Input{Chunks: chunks})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Messages[0].Content != "How do you reset the widget?" || out[1].Messages[1].Content != "About six months of daily use." {
		t.Fatalf("samples %+v", out)
	}
	if got := reasons(rej); got != "synth.citation,synth.quote,synth.quote,synth.not_novel,synth.short_chunk" {
		t.Fatalf("rejected %s", got)
	}
	if p, _ := synth.ParseProvenance(rej[0].Sample.Meta); p.Chunk != reset.ID || len(p.Keys) != 1 || rej[0].Sample.Source.File != "manuals/widget.md" {
		t.Errorf("rejected pair provenance %+v", p)
	}
	p0, p1 := prov(t, out[0]), prov(t, out[1])
	if p0.Task != "doc_qa" || p0.Chunk != reset.ID || p0.Doc != "manuals/widget.md" || p0.Heading != "Widget handbook > Resetting" ||
		!strings.HasPrefix(p0.Quote, "Hold it") || len(p0.Keys) != 1 || p0.Templates["doc_qa"] != embeddedHash(t, "doc_qa") {
		t.Fatalf("provenance %+v", p0)
	}
	if p1.Chunk != batteries.ID || len(p1.Keys) != 2 { // repaired: two calls
		t.Fatalf("provenance %+v", p1)
	}
	if out[0].Source.File != "manuals/widget.md" || out[0].Source.Index != int64(reset.Offset) {
		t.Errorf("source %+v", out[0].Source)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[0].Request.ResponseFormat == nil || reqs[0].Request.ResponseFormat.Type != "json_schema" ||
		!strings.Contains(reqs[0].Request.LastUser(), reset.Text) {
		t.Fatalf("%d requests; first %s", len(reqs), reqs[0].Body)
	}
	if m := reqs[2].Request.Messages; len(m) != 3 || m[1].Role != "assistant" || !strings.Contains(m[2].Content, "not JSON") {
		t.Fatalf("repair request %+v", m)
	}

	// With context in the user turn.
	ctxTask, _ := synth.NewDocQA(synth.QAConfig{IncludeContext: true})
	out, _, err = ctxTask.Generate(context.Background(), c, synth.Input{Chunks: []synth.Chunk{reset}})
	if err != nil || len(out) != 1 || !strings.HasPrefix(out[0].Messages[0].Content, "Context (manuals/widget.md > Widget handbook > Resetting):\n# Widget handbook\n\n## Resetting") ||
		!strings.HasSuffix(out[0].Messages[0].Content, "Question: How do you reset the widget?") {
		t.Fatalf("context sample %+v %v", out, err)
	}
}

func TestDocQAUnparseable(t *testing.T) {
	srv := start(t, llmtest.Config{})
	c := client(t, srv, "", llm.Budget{})
	task, _ := synth.NewDocQA(synth.QAConfig{MinChunkChars: 10})
	srv.Script(llmtest.Reply("I cannot produce JSON."), llmtest.Reply(`{"pairs": [{"question": "q"}], "extra": 1}`))
	chunks, _ := synth.ChunkDocument("a.txt", "Some text that is long enough to ask about.", synth.ChunkConfig{})
	out, rej, err := task.Generate(context.Background(), c, synth.Input{Chunks: chunks})
	if err != nil || len(out) != 0 || reasons(rej) != synth.ReasonParse || !strings.Contains(rej[0].Sample.Messages[1].Content, "I cannot produce JSON.") {
		t.Fatalf("%+v %+v %v", out, rej, err)
	}
}

func TestChainOfThought(t *testing.T) {
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		q := r.LastUser()
		switch {
		case strings.HasPrefix(q, "What is 12 times 3?"):
			return &llmtest.Step{Text: "<reasoning>\n12 × 3 = 12 + 12 + 12 = 36.\n</reasoning>\n<answer>36</answer>"}
		case strings.HasPrefix(q, "Name a prime."):
			return &llmtest.Step{Text: "7"}
		case strings.HasPrefix(q, "Pick a lock."):
			return &llmtest.Step{Text: "<reasoning>Not appropriate.</reasoning><answer>I'm sorry, but I can't help with that.</answer>"}
		case strings.HasPrefix(q, "Prove it."):
			return &llmtest.Step{Text: "<reasoning>Long proof", FinishReason: "length"}
		case strings.HasPrefix(q, "And doubled?"):
			return &llmtest.Step{Text: "Double 36 is 72.\nFinal answer: 72"}
		}
		return nil
	}})
	c := client(t, srv, "", llm.Budget{})
	task, err := synth.NewChainOfThought(synth.CoTConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mult := sample(u("What is 12 times 3?"), a("36"))
	multi := sample(sys("You do arithmetic."), u("What is 12 times 3?"), a("36"), u("And doubled?"), a("72"))
	in := synth.Input{Samples: []datasets.Sample{
		mult, sample(u("Name a prime."), a("7")), sample(u("Pick a lock."), a("no")), sample(u("Prove it."), a("ok")), multi,
		{Messages: []datasets.Message{a("orphan")}},
	}}
	out, rej, err := task.Generate(context.Background(), c, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("samples %+v", out)
	}
	if got := out[0].Messages[1].Content; got != "<think>\n12 × 3 = 12 + 12 + 12 = 36.\n</think>\n\n36" {
		t.Fatalf("assistant turn %q", got)
	}
	if r, ans, ok := synth.SplitReasoning(out[0].Messages[1].Content); !ok || ans != "36" || !strings.HasPrefix(r, "12 ×") {
		t.Fatal("the think format does not read back")
	}
	p := prov(t, out[0])
	if p.Task != "chain_of_thought" || p.Seed != mult.ID || len(p.Keys) != 1 || p.Templates["cot"] != embeddedHash(t, "cot") {
		t.Fatalf("provenance %+v", p)
	}
	m := out[1].Messages
	if len(m) != 5 || m[3].Content != "And doubled?" || m[4].Content != "<think>\nDouble 36 is 72.\n</think>\n\n72" {
		t.Fatalf("multi-turn sample %+v", m)
	}
	if got := reasons(rej); got != "synth.format,synth.refusal,synth.truncated,synth.unusable" {
		t.Fatalf("rejected %s", got)
	}
	// The multi-turn request: earlier turns as they were, the last user
	// turn wrapped in the template, temperature 0.
	for _, q := range srv.Requests() {
		if len(q.Request.Messages) == 4 {
			mm := q.Request.Messages
			if mm[0].Content != "You do arithmetic." || mm[2].Content != "36" || !strings.Contains(mm[3].Content, "<reasoning>") || *q.Request.Temperature != 0 {
				t.Errorf("multi-turn request %s", q.Body)
			}
		}
	}
	fa, _ := synth.NewChainOfThought(synth.CoTConfig{Style: synth.StyleFinalAnswer})
	out, _, _ = fa.Generate(context.Background(), c, synth.Input{Samples: []datasets.Sample{mult}})
	if len(out) != 1 || out[0].Messages[1].Content != "12 × 3 = 12 + 12 + 12 = 36.\n\nFinal answer: 36" {
		t.Fatalf("final_answer style %+v", out)
	}
}

func TestFailuresAndStops(t *testing.T) {
	srv := start(t, llmtest.Config{Respond: func(r *llmtest.ChatRequest) string {
		return "<reasoning>r</reasoning><answer>fine answer</answer>"
	}})
	c := client(t, srv, "", llm.Budget{})
	task, _ := synth.NewChainOfThought(synth.CoTConfig{})
	in := synth.Input{Samples: []datasets.Sample{sample(u("one?"), a("1")), sample(u("two?"), a("2"))}}

	// A 400 for one request is that sample's failure; faults are retried.
	srv.Script(llmtest.Fail(400), llmtest.RateLimited("0"), llmtest.Reset(), llmtest.Malformed())
	out, rej, err := task.Generate(context.Background(), c, in)
	if p, _ := synth.ParseProvenance(rej[0].Sample.Meta); err != nil || len(out) != 1 || reasons(rej) != synth.ReasonLLMError || p.Seed != in.Samples[0].ID {
		t.Fatalf("400: %d %s %v", len(out), reasons(rej), err)
	}
	// A 401 stops the stage.
	srv.Script(llmtest.Fail(401))
	if _, _, err := task.Generate(context.Background(), c, in); !judges.StopsStage(err) {
		t.Fatalf("401: %v", err)
	}
	// The budget stops it too, returning what was finished.
	cb := client(t, srv, "", llm.Budget{MaxTokens: 1})
	out, _, err = task.Generate(context.Background(), cb, in)
	if !errors.Is(err, llm.ErrBudgetExhausted) || len(out) != 1 {
		t.Fatalf("budget: %d samples, %v", len(out), err)
	}
}

func TestCachedRerunMakesNoRequests(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if strings.Contains(r.LastUser(), "prompt rewriter") || strings.Contains(r.LastUser(), "prompt creator") {
			return &llmtest.Step{Text: "Compare three sorting algorithms by time and memory on nearly sorted input."}
		}
		return &llmtest.Step{Text: "Insertion sort is fastest on nearly sorted input; merge sort needs extra memory; heapsort does not adapt."}
	}})
	task, _ := synth.NewEvolInstruct(synth.EvolConfig{PerSample: 2})
	in := synth.Input{Samples: []datasets.Sample{sample(u("Explain sorting."), a("x")), sample(u("What is a heap?"), a("y"))}}
	c1 := client(t, srv, dir, llm.Budget{})
	first, _, err := task.Generate(context.Background(), c1, in)
	if err != nil || len(first) == 0 {
		t.Fatal(err)
	}
	n := srv.Count()
	calls := c1.Usage().Calls
	// A restarted run: a new client on the same cache.
	c2 := client(t, srv, dir, llm.Budget{})
	again, _, err := task.Generate(context.Background(), c2, in)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Count() != n || c2.Usage().CachedCalls != calls || c2.Usage().Requests != 0 {
		t.Fatalf("rerun sent %d requests (cached %d)", srv.Count()-n, c2.Usage().CachedCalls)
	}
	if len(again) != len(first) || again[0].ID != first[0].ID || again[0].Meta != first[0].Meta {
		t.Fatal("rerun differs")
	}
}

// TestDocQAParseRejectKeepsKeys: a doc_qa answer that cannot be read,
// even after the repair call, is rejected with the cache keys of both
// calls in its provenance.
func TestDocQAParseRejectKeepsKeys(t *testing.T) {
	srv := start(t, llmtest.Config{})
	c := client(t, srv, "", llm.Budget{})
	task, _ := synth.NewDocQA(synth.QAConfig{MinChunkChars: 10})
	srv.Script(llmtest.Reply("I cannot produce JSON."), llmtest.Reply("Still no JSON."))
	chunks, _ := synth.ChunkDocument("a.txt", "Some text that is long enough to ask about.", synth.ChunkConfig{})
	_, rej, err := task.Generate(context.Background(), c, synth.Input{Chunks: chunks})
	if err != nil || reasons(rej) != synth.ReasonParse {
		t.Fatalf("%+v %v", rej, err)
	}
	p, err := synth.ParseProvenance(rej[0].Sample.Meta)
	if err != nil || len(p.Keys) != 2 || p.Chunk != chunks[0].ID || p.Model == "" {
		t.Fatalf("parse rejection's provenance %s: want the keys of the call and its repair", rej[0].Sample.Meta)
	}
}

// TestChainOfThoughtKeepsEarlierProvenance: chain_of_thought answering
// an evol_instruct sample keeps the evolution's provenance (its seed,
// operation and call keys) as the parent of its own.
func TestChainOfThoughtKeepsEarlierProvenance(t *testing.T) {
	srv := start(t, llmtest.Config{Decide: func(n int, r *llmtest.ChatRequest) *llmtest.Step {
		if strings.Contains(r.LastUser(), "prompt rewriter") {
			return &llmtest.Step{Text: "Compare three sorting algorithms by time and memory on nearly sorted input."}
		}
		if strings.Contains(r.LastUser(), "<reasoning>") {
			return &llmtest.Step{Text: "<reasoning>Insertion sort adapts.</reasoning><answer>Insertion sort.</answer>"}
		}
		return &llmtest.Step{Text: "Insertion sort is fastest on nearly sorted input; merge sort needs extra memory; heapsort does not adapt."}
	}})
	c := client(t, srv, "", llm.Budget{})
	evol, _ := synth.NewEvolInstruct(synth.EvolConfig{Operations: []string{synth.OpDeepen}})
	seed := sample(u("Explain sorting."), a("x"))
	evolved, _, err := evol.Generate(context.Background(), c, synth.Input{Samples: []datasets.Sample{seed}})
	if err != nil || len(evolved) != 1 {
		t.Fatalf("evol: %d %v", len(evolved), err)
	}
	cot, _ := synth.NewChainOfThought(synth.CoTConfig{})
	out, _, err := cot.Generate(context.Background(), c, synth.Input{Samples: evolved})
	if err != nil || len(out) != 1 {
		t.Fatalf("cot: %d %v", len(out), err)
	}
	p := prov(t, out[0])
	if p.Task != "chain_of_thought" || p.Seed != evolved[0].ID || len(p.Keys) != 1 {
		t.Fatalf("provenance %+v", p)
	}
	parent, err := synth.ParseProvenance(string(p.Parent))
	if err != nil || parent.Task != "evol_instruct" || parent.Seed != seed.ID || parent.Operation != synth.OpDeepen || len(parent.Keys) != 2 {
		t.Fatalf("chain_of_thought's meta %s lost evol_instruct's provenance %s", out[0].Meta, evolved[0].Meta)
	}
}
