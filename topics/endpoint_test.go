package topics

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

func newClient(t *testing.T, srv *llmtest.Server, name, model string, budget llm.Budget, cache string) *llm.Client {
	t.Helper()
	c, err := llm.New(llm.Endpoint{Name: name, Kind: llm.KindOther, BaseURL: srv.URL, Model: model,
		Timeout: llm.Duration(5 * time.Second), Budget: budget},
		llm.Options{CacheDir: cache, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nameFromKeywords answers a naming request with "Name: <first
// keyword> things." (the namer must clean it).
func nameFromKeywords(r *llmtest.ChatRequest) string {
	u := r.LastUser()
	line := strings.SplitN(strings.TrimPrefix(u, "Keywords: "), "\n", 2)[0]
	first := strings.SplitN(line, ", ", 2)[0]
	return "Name: \"" + first + " things.\""
}

func TestEndpointEmbedderAndLLMNamer(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{Respond: nameFromKeywords})
	defer srv.Close()
	cache := t.TempDir()
	emb := &EndpointEmbedder{Client: newClient(t, srv, "emb", "emb-model", llm.Budget{}, cache), Dims: 64, Dimensions: 64, BatchSize: 50}
	namer := LLMNamer{Client: newClient(t, srv, "namer", "chat-model", llm.Budget{}, "")}
	ss, truth := plantedCorpus(4, 40, 21)
	m := fitPlanted(t, ss, Config{Embedder: emb, Namer: namer, KMeans: KMeansConfig{K: 4}, Seed: 2})
	if m.TFIDF != nil || m.Embedder != (EmbedderSpec{Kind: "endpoint", Name: "emb", Model: "emb-model", Dim: 64}) {
		t.Fatalf("embedder %+v", m.Embedder)
	}
	embedReqs := 0
	for _, q := range srv.Requests() {
		if q.Path == "/v1/embeddings" {
			embedReqs++
			var er llmtest.EmbeddingRequest
			if json.Unmarshal(q.Body, &er) != nil || er.Model != "emb-model" || er.Dimensions != 64 || len(er.Inputs()) > 50 {
				t.Fatalf("embeddings request %s", q.Body)
			}
		}
	}
	if embedReqs != 4 { // 160 texts in batches of 50
		t.Fatalf("%d embeddings requests", embedReqs)
	}
	// Names come from the namer, cleaned.
	for _, tp := range m.Topics {
		if want := tp.Keywords[0].Word + " things"; tp.Name != want || tp.DisplayName() != want {
			t.Fatalf("topic %d named %q, want %q", tp.ID, tp.Name, want)
		}
	}
	if len(m.Fit.NamingErrors) != 0 {
		t.Fatal(m.Fit.NamingErrors)
	}
	// The namer saw the keywords and the representatives' texts.
	var sawExample bool
	for _, q := range srv.Requests() {
		if q.Request != nil && len(q.Request.Messages) > 0 && strings.Contains(q.Request.LastUser(), "1. Can you ") {
			sawExample = true
		}
	}
	if !sawExample {
		t.Fatal("no naming request carried examples")
	}

	// Assign later samples: embed with the endpoint, then AssignVector.
	if err := m.CheckEmbedder(emb); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckEmbedder(&EndpointEmbedder{Client: emb.Client, Dims: 32}); err == nil {
		t.Fatal("another dimension passed the check")
	}
	if _, err := m.AssignSample(&ss[0]); err == nil {
		t.Fatal("AssignSample without the built-in embedder")
	}
	texts := make([]string, len(ss))
	for i := range ss {
		texts[i] = FieldPrompt.Text(&ss[i])
	}
	before := srv.Count()
	vecs, err := emb.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Count() != before {
		t.Fatal("embeddings of the fit sample were not cached")
	}
	labels := make([]int32, len(vecs))
	for i, v := range vecs {
		a, err := m.AssignVector(v)
		if err != nil {
			t.Fatal(err)
		}
		labels[i] = a.Topic
	}
	t.Logf("endpoint embedder (bag of hashed words, 64 dims): purity %.3f, ARI %.3f", purity(labels, truth), ari(labels, truth))
	if purity(labels, truth) < 0.8 {
		t.Fatalf("purity %.3f", purity(labels, truth))
	}
	// Saved and loaded, the model keeps the spec and the names.
	var buf bytes.Buffer
	m.Save(&buf)
	m2, err := Load(&buf)
	if err != nil || m2.CheckEmbedder(emb) != nil || m2.Topics[0].Name != m.Topics[0].Name {
		t.Fatalf("reloaded: %v", err)
	}
}

func TestLLMNamerBudgetStopsNaming(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{Respond: nameFromKeywords})
	defer srv.Close()
	namer := LLMNamer{Client: newClient(t, srv, "namer", "chat-model", llm.Budget{MaxTokens: 1}, "")}
	ss, _ := plantedCorpus(4, 30, 22)
	m := fitPlanted(t, ss, Config{Namer: namer, KMeans: KMeansConfig{K: 4}})
	// The first call is admitted and spends the budget; the second is
	// refused and naming stops there.
	if m.Topics[0].Name == "" || m.Topics[1].Name != "" || len(m.Fit.NamingErrors) != 1 ||
		!strings.Contains(m.Fit.NamingErrors[0], "budget") || srv.Count() != 1 {
		t.Fatalf("names %q %q, errors %v, %d requests", m.Topics[0].Name, m.Topics[1].Name, m.Fit.NamingErrors, srv.Count())
	}
	// Empty answers are errors.
	srv2 := llmtest.Start(llmtest.Config{Respond: func(*llmtest.ChatRequest) string { return "\n  \n" }})
	defer srv2.Close()
	if _, err := (LLMNamer{Client: newClient(t, srv2, "n2", "m", llm.Budget{}, "")}).NameTopic(context.Background(), []string{"a"}, nil); err == nil {
		t.Fatal("empty name accepted")
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"Cooking recipes":              "Cooking recipes",
		"\n\"Space and astronomy.\"\n": "Space and astronomy",
		"Name: Tax law\nBecause…":      "Tax law",
		"**Gardening tips**":           "Gardening tips",
		"Name: \"Cooking Recipes\".":   "Cooking Recipes",
		strings.Repeat("long ", 30):    strings.TrimRight(strings.Repeat("long ", 12), " "),
	} {
		if got := cleanName(in); got != want {
			t.Fatalf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
