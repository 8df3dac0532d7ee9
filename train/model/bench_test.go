package model

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/sieve-data/sieve/train/model/openblas"
)

// benchEnv reads an integer setting from the environment (DIM, LAYERS,
// HEADS, KVHEADS, VOCAB, SEQ, BATCH, HIDDEN, TIE), as torch_tiny_llama.py
// does.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// benchConfig is the reference configuration of the issue and of
// torch_tiny_llama.py: dim 256, 4 layers, 4 heads, vocab 4096, tied,
// intermediate size by the llama2.c rule (704).
func benchConfig() (Config, int, int) {
	dim := benchEnv("DIM", 256)
	heads := benchEnv("HEADS", 4)
	hidden := benchEnv("HIDDEN", 0)
	if hidden == 0 {
		hidden = 32 * ((2*4*dim/3 + 31) / 32)
	}
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = dim, hidden, benchEnv("LAYERS", 4)
	c.NumAttentionHeads, c.NumKeyValueHeads = heads, benchEnv("KVHEADS", heads)
	c.VocabSize, c.TieWordEmbeddings = benchEnv("VOCAB", 4096), benchEnv("TIE", 1) != 0
	c.RMSNormEps = 1e-5
	return c, benchEnv("BATCH", 8), benchEnv("SEQ", 256)
}

// BenchmarkTrainStep measures Forward+Backward (no optimizer step) on the
// reference configuration and prints one JSON line with the median
// tokens/s over the steps run (use -benchtime 5x). With -tags openblas
// the products run on OpenBLAS (OPENBLAS_CORETYPE=SkylakeX on this
// machine, in benchmark commands only). The baseline is PyTorch CPU full
// fine-tuning on this machine with OpenBLAS, 2 threads (about 3,000
// tokens/s; its step also includes AdamW and clipping): go run
// ./bench/train compares whole training steps with PyTorch in one run.
func BenchmarkTrainStep(b *testing.B) {
	c, B, T := benchConfig()
	p, err := NewParams(c)
	if err != nil {
		b.Fatal(err)
	}
	p.Init(1, 0.02)
	m, err := New(p, B, T)
	if err != nil {
		b.Fatal(err)
	}
	mode, baseline, trainable := benchMode(b, m) // MODE=full|lora|qlora (lora_test.go)
	r := rand.New(rand.NewPCG(1, 1))
	x := NewBatch(B, T)
	for i := range x.IDs {
		x.IDs[i], x.Targets[i], x.Mask[i] = r.IntN(c.VocabSize), r.IntN(c.VocabSize), true
		x.Pos[i], x.Seg[i] = i%T, 0
	}
	step := func() {
		if _, err := m.Forward(x); err != nil {
			b.Fatal(err)
		}
		m.ZeroGrad()
		m.Backward()
	}
	step() // warm-up
	b.ReportAllocs()
	var times []float64
	for b.Loop() {
		t0 := time.Now()
		step()
		times = append(times, time.Since(t0).Seconds())
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	tps := float64(B*T) / med
	b.ReportMetric(tps, "tokens/s")
	line, _ := json.Marshal(map[string]any{
		"bench": "model_train_step_fwd_bwd" + mode, "value": round1(tps), "unit": "tokens/s",
		"baseline": baseline, "ratio": round3(tps / baseline),
		"step_ms_median": round1(med * 1e3), "runs": len(times), "blas": openblas.Name(),
		"threads": runtime.GOMAXPROCS(0), "dim": c.HiddenSize, "layers": c.NumHiddenLayers,
		"heads": c.NumAttentionHeads, "kv_heads": c.KVHeads(), "hidden": c.IntermediateSize,
		"vocab": c.VocabSize, "seq": T, "batch": B, "tied": c.TieWordEmbeddings, "params": p.NumParams(),
		"trainable": trainable,
	})
	fmt.Printf("\n%s\n", line) // on its own line, after the "BenchmarkTrainStep-2" prefix
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
