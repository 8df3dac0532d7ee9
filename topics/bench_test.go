package topics

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
)

// benchCorpus is n conversations: alpaca_eval's instructions with every
// generator's answer, each under prompt variants (the realistic corpus
// of docs/GUIDE), or, when the data is absent, planted-topic prompts
// with short answers. It says which.
func benchCorpus(n int) ([]datasets.Sample, string) {
	var pairs [][2]string
	for _, g := range []string{"gpt4", "claude-2.1", "gemma-7b-it", "falcon-7b-instruct", "Yi-34B-Chat"} {
		b, err := os.ReadFile(alpacaDir + "/" + g + ".json")
		if err != nil {
			continue
		}
		var recs []alpacaRecord
		if json.Unmarshal(b, &recs) != nil {
			continue
		}
		for _, r := range recs {
			if r.Instruction != "" && r.Output != "" {
				pairs = append(pairs, [2]string{r.Instruction, r.Output})
			}
		}
	}
	variants := []string{"", "Please answer: ", "Question: ", "Task: ", "Help me with this. ", "I need help. ", "Quick one: "}
	var out []datasets.Sample
	if len(pairs) > 0 {
		for v := 0; len(out) < n; v++ {
			for _, p := range pairs {
				if len(out) == n {
					break
				}
				out = append(out, sampleOf(variants[v%len(variants)]+p[0], p[1]))
			}
		}
		return out, fmt.Sprintf("alpaca_eval (%d answers under %d prompt variants)", len(pairs), len(variants))
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range n {
		out = append(out, sampleOf(plantedDoc(rng, i%len(plantedVocab)), plantedDoc(rng, i%len(plantedVocab))))
	}
	return out, "planted topics (alpaca_eval absent)"
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func benchLine(name string, value float64, unit string) {
	b, _ := json.Marshal(map[string]any{"bench": name, "value": value, "unit": unit})
	fmt.Println(string(b))
}

var benchModel struct {
	once sync.Once
	m    *Model
	ss   []datasets.Sample
}

// BenchmarkFit20k fits the topic model (conversation text, built-in
// embedder, k = 32) on 20,000 samples and prints the phases: the
// TF-IDF + SVD fit, embedding the sample, k-means, k-means with k chosen
// by silhouette in [8, 64] (12 candidates), and Fit end to end.
func BenchmarkFit20k(b *testing.B) {
	ss, what := benchCorpus(20000)
	b.Logf("corpus: %s", what)
	cfg := Config{Field: FieldConversation, KMeans: KMeansConfig{K: 32}, Seed: 1}
	texts := make([]string, len(ss))
	for i := range ss {
		texts[i] = cfg.Field.Text(&ss[i])
	}
	ctx := context.Background()
	for b.Loop() {
		t0 := time.Now()
		emb, err := FitTFIDF(ctx, texts, cfg.TFIDF, 1)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		vecs, _ := emb.Embed(ctx, texts)
		t2 := time.Now()
		x, _ := unitRows(vecs, emb.Dim())
		cl, err := FitKMeans(x, emb.Dim(), cfg.KMeans, 1)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		choose, err := FitKMeans(x, emb.Dim(), KMeansConfig{KMin: 8, KMax: 64}, 1)
		if err != nil {
			b.Fatal(err)
		}
		tc := time.Since(t3)
		t3 = time.Now()
		m, err := Fit(ctx, ss, cfg)
		if err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		benchLine("topics_fit20k_tfidf_svd", t1.Sub(t0).Seconds(), "s")
		benchLine("topics_fit20k_embed", t2.Sub(t1).Seconds(), "s")
		benchLine("topics_fit20k_kmeans", t3.Sub(t2).Seconds(), "s")
		benchLine("topics_fit20k_kmeans_choose_k", tc.Seconds(), "s")
		benchLine("topics_fit20k_total", t4.Sub(t3).Seconds(), "s")
		benchLine("topics_fit20k_peak_rss", peakRSSMiB(), "MiB")
		b.Logf("k=%d inertia %.0f, silhouette %.3f, %d features; k chosen in [8, 64]: %d (silhouette %.3f)",
			cl.K, cl.Inertia, m.Fit.Silhouette, len(m.TFIDF.Features), choose.K, choose.Silhouette)
	}
}

// BenchmarkAssign is the per-sample cost of assigning with a fitted
// model (embedding included), one goroutine and all of them.
func BenchmarkAssign(b *testing.B) {
	benchModel.once.Do(func() {
		ss, _ := benchCorpus(20000)
		m, err := Fit(context.Background(), ss, Config{Field: FieldConversation, KMeans: KMeansConfig{K: 32}, Seed: 1})
		if err != nil {
			panic(err)
		}
		benchModel.m, benchModel.ss = m, ss
	})
	m, ss := benchModel.m, benchModel.ss
	b.Run("serial", func(b *testing.B) {
		i := 0
		t0 := time.Now()
		for b.Loop() {
			if _, err := m.AssignSample(&ss[i%len(ss)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		rate := float64(i) / time.Since(t0).Seconds()
		b.ReportMetric(rate, "samples/s")
		benchLine("topics_assign_serial", rate, "samples/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(ss))
			for pb.Next() {
				if _, err := m.AssignSample(&ss[i%len(ss)]); err != nil {
					panic(err)
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})
	b.Run("vector", func(b *testing.B) {
		v := m.TFIDF.EmbedText(FieldConversation.Text(&ss[0]), nil)
		for b.Loop() {
			m.AssignVector(v)
		}
	})
}
