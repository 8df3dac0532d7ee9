package train

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweep runs a 2×2 grid (learning rate × sequence length) of a tiny
// model from scratch: every trial is the run Run makes alone with its
// settings (bit for bit), the tokenizer is trained once and each split
// encoded once per sequence length, the best trial is the one of the
// lowest eval loss, and the table (JSON and Markdown) and the plot are
// written.
func TestSweep(t *testing.T) {
	store, ref := tinyData(t)
	init := tinyConfig(t, t.TempDir())
	out := t.TempDir()
	base := Options{Store: store, Data: ref, Init: init, VocabSize: 320,
		Config: Config{LearningRate: 1e-2, Epochs: 1, SeqLen: 128, BatchSize: 4, Seed: 1}}
	res, err := Sweep(context.Background(), SweepOptions{Base: base, Output: out,
		Space: SweepSpace{LearningRates: []float64{3e-3, 2e-2}, SeqLens: []int{64, 128}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 4 {
		t.Fatalf("%d trials, want 4", len(res.Trials))
	}
	if res.TokenizerTrainings != 1 || res.Encodings != 4 {
		t.Errorf("tokenizer trained %d times, splits encoded %d times; want 1 and 4 (2 splits × 2 sequence lengths)", res.TokenizerTrainings, res.Encodings)
	}
	best := 0
	for i, tr := range res.Trials {
		if tr.Error != "" {
			t.Fatalf("trial %s: %s", tr.Name, tr.Error)
		}
		if tr.EvalLoss < res.Trials[best].EvalLoss {
			best = i
		}
		t.Logf("%s: lr %g seq %d eval loss %.4f", tr.Name, tr.LearningRate, tr.SeqLen, tr.EvalLoss)
	}
	if res.Best != best || res.Trials[best].Name != res.BestName() {
		t.Errorf("best %d (%s), want %d", res.Best, res.BestName(), best)
	}
	// A trial is the run Run makes alone.
	alone := base
	alone.Output = t.TempDir()
	alone.Config.LearningRate, alone.Config.SeqLen = res.Trials[3].LearningRate, res.Trials[3].SeqLen
	r, err := Run(context.Background(), alone)
	if err != nil {
		t.Fatal(err)
	}
	if got := *r.Evals[len(r.Evals)-1].EvalLoss; got != res.Trials[3].EvalLoss {
		t.Errorf("trial %s: eval loss %v in the sweep, %v alone", res.Trials[3].Name, res.Trials[3].EvalLoss, got)
	}
	var table SweepResult
	data, err := os.ReadFile(filepath.Join(out, SweepJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &table); err != nil || len(table.Trials) != 4 || table.Best != best {
		t.Errorf("%s: %v, %+v", SweepJSON, err, table)
	}
	md, err := os.ReadFile(filepath.Join(out, SweepMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(md), "\n|"); n != 6 || !strings.Contains(string(md), "**"+res.BestName()+"**") {
		t.Errorf("%s: %d table rows, best %s not in bold:\n%s", SweepMarkdown, n, res.BestName(), md)
	}
	f, err := os.Open(filepath.Join(out, SweepPlot))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("%s: %v", SweepPlot, err)
	}
	for _, tr := range res.Trials {
		if _, err := os.Stat(filepath.Join(out, tr.Name, "model.safetensors")); err != nil {
			t.Error(err)
		}
	}
}

// TestSweepLoRARandom draws 3 of the 8 configurations of a LoRA grid
// (rank × alpha × epochs) at random: distinct, repeatable from the seed,
// each trained with its rank and alpha.
func TestSweepLoRARandom(t *testing.T) {
	store, ref := tinyData(t)
	base := t.TempDir()
	if _, err := Run(context.Background(), Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: base,
		Config: Config{LearningRate: 1e-2, MaxSteps: 4, SeqLen: 128, BatchSize: 4}}); err != nil {
		t.Fatal(err)
	}
	space := SweepSpace{LoRARanks: []int{2, 4}, LoRAAlphas: []float64{4, 8}, Epochs: []int{1, 2}, Random: 3, Seed: 7}
	opts := SweepOptions{Base: Options{Store: store, Data: ref, Model: base, Config: Config{LearningRate: 1e-2, SeqLen: 128, BatchSize: 8}},
		Space: space, Output: t.TempDir()}
	res, err := Sweep(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 3 {
		t.Fatalf("%d trials", len(res.Trials))
	}
	seen := map[string]bool{}
	for _, tr := range res.Trials {
		if tr.Error != "" {
			t.Fatalf("%s: %s", tr.Name, tr.Error)
		}
		if seen[tr.Name] {
			t.Errorf("%s drawn twice", tr.Name)
		}
		seen[tr.Name] = true
		var ac struct {
			R     int     `json:"r"`
			Alpha float64 `json:"lora_alpha"`
		}
		data, err := os.ReadFile(filepath.Join(opts.Output, tr.Name, AdapterDir, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &ac); err != nil || ac.R != tr.LoRARank || ac.Alpha != tr.LoRAAlpha {
			t.Errorf("%s: adapter r %d alpha %g (%v)", tr.Name, ac.R, ac.Alpha, err)
		}
	}
	plan, err := space.Trials()
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range plan {
		if tr.Name() != res.Trials[i].Name {
			t.Errorf("trial %d: %s, then %s from the same seed", i, res.Trials[i].Name, tr.Name())
		}
	}
}
