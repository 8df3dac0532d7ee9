package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/train/model"
)

// TestMerge trains LoRA adapters on a tiny base (named by a relative
// path, as a user types it), merges them with Merge and checks: the
// adapter's base_model_name_or_path is the path as given; every merged
// projection equals float32(W + scale·B·A) computed here in float64 from
// the files (exactly), every other tensor is the base's; the merged
// model's logits equal those of the base with the adapter loaded; the
// tokenizer comes along.
func TestMerge(t *testing.T) {
	store, ref := tinyData(t)
	baseAbs := t.TempDir()
	if _, err := Run(context.Background(), Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: baseAbs,
		Config: Config{LearningRate: 1e-2, MaxSteps: 6, SeqLen: 128, BatchSize: 4}}); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	base, err := filepath.Rel(wd, baseAbs)
	if err != nil || filepath.IsAbs(base) {
		t.Fatalf("relative path of %s: %q, %v", baseAbs, base, err)
	}
	run := t.TempDir()
	if _, err := Run(context.Background(), Options{Store: store, Data: ref, Model: base, Output: run,
		LoRA:   &model.LoRAConfig{Rank: 4, Alpha: 12, Targets: []string{"q_proj", "v_proj", "up_proj"}},
		Config: Config{LearningRate: 2e-2, MaxSteps: 6, SeqLen: 128, BatchSize: 4}}); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(run, AdapterDir)
	var ac struct {
		Base string `json:"base_model_name_or_path"`
	}
	data, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
	if err != nil || json.Unmarshal(data, &ac) != nil || ac.Base != base {
		t.Errorf("adapter_config.json: base_model_name_or_path %q, want %q as given (%v)", ac.Base, base, err)
	}

	out := t.TempDir()
	if err := Merge(adapter, baseAbs, out); err != nil {
		t.Fatal(err)
	}
	bp, err := model.Load(baseAbs)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	af, err := model.OpenSafetensors(filepath.Join(adapter, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	scale := 12.0 / 4
	merged := 0
	for _, bt := range bp.Tensors() {
		mt, ok := mp.Tensor(bt.Name)
		if !ok {
			t.Fatalf("%s missing from the merged model", bt.Name)
		}
		mod := strings.TrimSuffix(bt.Name, ".weight")
		A, ash, errA := af.Read("base_model.model." + mod + ".lora_A.weight")
		B, bsh, errB := af.Read("base_model.model." + mod + ".lora_B.weight")
		if errA != nil || errB != nil {
			for i := range bt.Data {
				if mt.Data[i] != bt.Data[i] {
					t.Fatalf("%s is not adapted but changed at %d: %v → %v", bt.Name, i, bt.Data[i], mt.Data[i])
				}
			}
			continue
		}
		merged++
		r, in, outDim := ash[0], ash[1], bsh[0]
		bNonzero := false
		for i := 0; i < outDim; i++ {
			for j := 0; j < in; j++ {
				var s float64
				for k := 0; k < r; k++ {
					s += float64(B[i*r+k]) * float64(A[k*in+j])
					bNonzero = bNonzero || B[i*r+k] != 0
				}
				want := float32(float64(bt.Data[i*in+j]) + scale*s)
				if got := mt.Data[i*in+j]; got != want {
					t.Fatalf("%s[%d,%d]: merged %v, W + scale·B·A = %v", bt.Name, i, j, got, want)
				}
			}
		}
		if !bNonzero {
			t.Errorf("%s: B is zero, the test proves nothing", bt.Name)
		}
	}
	if merged != 3*bp.Config.NumHiddenLayers {
		t.Errorf("%d projections merged, want %d", merged, 3*bp.Config.NumHiddenLayers)
	}

	// Logits: base + adapter against the merged model.
	g, err := LoadGenerator(out)
	if err != nil {
		t.Fatal(err)
	}
	seq := g.Tok.Chat().EncodePrompt(arithmetic(1, 4)[0][:2])
	x := model.NewBatch(1, len(seq))
	if err := x.SetRow(0, model.Sample{IDs: seq}); err != nil {
		t.Fatal(err)
	}
	ma, err := model.New(bp, 1, len(seq))
	if err != nil {
		t.Fatal(err)
	}
	if err := ma.LoadAdapter(adapter); err != nil {
		t.Fatal(err)
	}
	mm, err := model.New(mp, 1, len(seq))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ma.Forward(x); err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Forward(x); err != nil {
		t.Fatal(err)
	}
	la, lm := ma.Logits(), mm.Logits()
	var worst, big float64
	for i := range la {
		worst = math.Max(worst, math.Abs(float64(la[i]-lm[i])))
		big = math.Max(big, math.Abs(float64(la[i])))
	}
	t.Logf("logits: largest %.3g, base+adapter vs merged differ by at most %.3g", big, worst)
	if worst > 1e-5*math.Max(1, big) {
		t.Errorf("logits differ by %g (largest %g)", worst, big)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if err := Merge(filepath.Join(run, "nowhere"), baseAbs, t.TempDir()); err == nil {
		t.Error("merging a missing adapter: no error")
	}
}
