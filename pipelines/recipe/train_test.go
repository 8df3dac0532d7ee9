package recipe

import (
	"strings"
	"testing"
)

func TestParseTrainSection(t *testing.T) {
	r, err := Parse("r.yaml", []byte(good+`train:
  model: ../../runs/base
  vocab_size: 2048
  learning_rate: 3e-3
  epochs: 4
  seq_len: 256
  max_grad_norm: 0
  pack: false
  seed: 7
  lora: {r: 8, alpha: 16, target_modules: [q_proj, v_proj], qlora: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Train
	if tr == nil || tr.Model != "../../runs/base" || tr.VocabSize != 2048 || tr.LearningRate != 3e-3 ||
		tr.Epochs != 4 || tr.SeqLen != 256 || tr.MaxGradNorm == nil || *tr.MaxGradNorm != 0 ||
		tr.Pack == nil || *tr.Pack || tr.Seed == nil || *tr.Seed != 7 || tr.BatchSize != 0 ||
		tr.LoRA == nil || tr.LoRA.R != 8 || tr.LoRA.Alpha != 16 || len(tr.LoRA.Targets) != 2 || !tr.LoRA.QLoRA {
		t.Errorf("train = %+v", tr)
	}
	// The train section does not change the dataset's content id.
	plain, _ := Parse("r.yaml", []byte(good))
	a, _ := r.ContentCanonical()
	b, _ := plain.ContentCanonical()
	if string(a) != string(b) {
		t.Error("train: section changes the recipe's canonical form")
	}
	if plain.Train != nil {
		t.Error("no train: section, yet Train is set")
	}
}

func TestTrainSectionErrors(t *testing.T) {
	base := "name: x\nsources: [{name: a, path: p}]\ntrain:\n"
	tests := []struct{ yaml, want string }{
		{"  learning_rat: 1e-3\n", "r.yaml:4: train.learning_rat: unknown key"},
		{"  epochs: -1\n", "r.yaml:4: train.epochs: must be ≥ 0"},
		{"  epochs: many\n", "r.yaml:4: train.epochs: cannot unmarshal"},
		{"  model: m\n  init: c.json\n", "r.yaml:5: train.init: give model"},
		{"  data: a/b\n", "r.yaml:4: train.data:"},
		{"  warmup_ratio: 1.5\n", "r.yaml:4: train.warmup_ratio: must be in [0, 1)"},
		{"  max_grad_norm: -1\n", "r.yaml:4: train.max_grad_norm: must be ≥ 0"},
		{"  vocab_size: 100\n", "r.yaml:4: train.vocab_size: must be at least 260"},
		{"  model: m\n  lora: {r: 0}\n", "r.yaml:5: train.lora.r: the rank must be positive"},
		{"  model: m\n  lora: {r: 8, target_modules: [qproj]}\n", `r.yaml:5: train.lora.target_modules: unknown module "qproj"`},
		{"  init: c.json\n  lora: {r: 8}\n", "r.yaml:5: train.lora: LoRA adapts a base model"},
	}
	for _, tc := range tests {
		_, err := Parse("r.yaml", []byte(base+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
