package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// randomGenerator is a generator of a random model with grouped-query
// attention and large weights (peaked, varied predictions), that never
// stops before MaxNewTokens.
func randomGenerator(t testing.TB, c model.Config) *Generator {
	t.Helper()
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(5, 0.5)
	tok, err := tokenizer.Train(func(yield func(string) bool) { yield("the cat sat on the mat") }, tokenizer.TrainConfig{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(p, tok)
	g.stop = map[int]bool{}
	return g
}

// TestKVCacheMatchesFullRecompute generates with the key/value cache and
// with the full recomputation, greedily and sampled, over more than one
// attention block (80 tokens): the same tokens, one for one; and the
// decoder's logits at every step are Forward's within float32 rounding.
func TestKVCacheMatchesFullRecompute(t *testing.T) {
	c := model.DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 32, 64, 2, 4, 2, 300
	g := randomGenerator(t, c)
	prompt := make([]int, 20)
	for i := range prompt {
		prompt[i] = (i*37 + 11) % 300
	}
	for _, cfg := range []SampleConfig{
		{MaxNewTokens: 60},
		{MaxNewTokens: 60, Temperature: 1, TopP: 0.9, Seed: 3},
		{MaxNewTokens: 60, Temperature: 0.7, Seed: 4},
	} {
		g.NoCache = false
		cached, err := g.Generate(prompt, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		g.NoCache = true
		full, err := g.Generate(prompt, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(cached) != fmt.Sprint(full) || len(full) != 60 {
			t.Errorf("%+v:\ncache %v\nfull  %v", cfg, cached, full)
		}
	}
	// Logits, step by step, against one forward pass of the whole sequence.
	g.NoCache = true
	out, _ := g.Generate(prompt, SampleConfig{MaxNewTokens: 60}, nil)
	seq := append(append([]int{}, prompt...), out...)
	m, err := model.New(g.P, 1, len(seq))
	if err != nil {
		t.Fatal(err)
	}
	x := model.NewBatch(1, len(seq))
	if err := x.SetRow(0, model.Sample{IDs: seq}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(x); err != nil {
		t.Fatal(err)
	}
	full := m.Logits()
	d, err := model.NewDecoder(g.P, len(seq))
	if err != nil {
		t.Fatal(err)
	}
	V := c.VocabSize
	var worst, big float64
	for i := len(prompt); i <= len(seq); i++ {
		var got []float32
		if i == len(prompt) {
			got, err = d.Append(seq[:i])
		} else {
			got, err = d.Append(seq[i-1 : i])
		}
		if err != nil {
			t.Fatal(err)
		}
		want := full[(i-1)*V : i*V]
		for j := range got {
			worst = math.Max(worst, math.Abs(float64(got[j]-want[j])))
			big = math.Max(big, math.Abs(float64(want[j])))
		}
	}
	t.Logf("decoder vs Forward logits: largest %.3g, worst difference %.3g", big, worst)
	if worst > 1e-5*math.Max(1, big) {
		t.Errorf("decoder logits differ from Forward's by %g", worst)
	}
	if _, err := d.Append([]int{1}); err == nil {
		t.Error("a token past the decoder's length: no error")
	}
}

// BenchmarkGenerate measures generation on the demo model's shape
// (train/configs/tiny.json: hidden 96, 2 layers, 4 heads, vocabulary
// 1024), random weights: a 32-token prompt and 224 new tokens, with the
// key/value cache and with the full recomputation; tokens_per_s counts
// the new tokens.
func BenchmarkGenerate(b *testing.B) {
	c, err := model.ReadConfig("configs/tiny.json")
	if err != nil {
		b.Fatal(err)
	}
	g := randomGenerator(b, c)
	prompt := make([]int, 32)
	for i := range prompt {
		prompt[i] = (i*37 + 11) % c.VocabSize
	}
	for _, mode := range []string{"cache", "full"} {
		b.Run(mode, func(b *testing.B) {
			g.NoCache = mode == "full"
			n := 0
			for b.Loop() {
				out, err := g.Generate(prompt, SampleConfig{MaxNewTokens: 224}, nil)
				if err != nil {
					b.Fatal(err)
				}
				n += len(out)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
