package model

import (
	"os"
	"path/filepath"
	"testing"
)

// familyCheckpointConfigs are the tiny checkpoints of each family that
// sieve writes and families.py loads with transformers'
// AutoModelForCausalLM.from_pretrained and PEFT's
// PeftModel.from_pretrained (testdata/families/hf_<family>).
var familyCheckpointConfigs = map[string]string{
	"qwen2": `{"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 128,
"tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 128, "max_window_layers": 2}`,
	"qwen3": `{"model_type": "qwen3", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 2, "head_dim": 16, "vocab_size": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
"max_position_embeddings": 128, "tie_word_embeddings": false, "attention_bias": false}`,
	"llama": `{"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 1024,
"tie_word_embeddings": true, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
"original_max_position_embeddings": 64}}`,
	"mistral": `{"model_type": "mistral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 1, "vocab_size": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 32768,
"sliding_window": 4096, "tie_word_embeddings": false}`,
}

// familyCheckpointBatch is the ids the checkpoints' logits are of: 2
// rows of 12 tokens, positions from 0.
func familyCheckpointBatch(V int) *Batch {
	x := NewBatch(2, 12)
	for b := 0; b < 2; b++ {
		ids := make([]int, 12)
		for i := range ids {
			ids[i] = (b*31 + i*7 + 5) % V
		}
		must(x.SetRow(b, Sample{IDs: ids}))
	}
	return x
}

// TestWriteFamilyCheckpoints writes testdata/families/hf_<family>/
// (config.json, model.safetensors, adapter/ with a LoRA adapter of rank
// 2 on all projections, expected_logits.safetensors with sieve's logits
// of the base and of base + adapter) for families.py. Run with
// SIEVE_WRITE_HF_CHECKPOINTS=1.
func TestWriteFamilyCheckpoints(t *testing.T) {
	if os.Getenv("SIEVE_WRITE_HF_CHECKPOINTS") == "" {
		t.Skip("set SIEVE_WRITE_HF_CHECKPOINTS=1 to write testdata/families/hf_*")
	}
	for name, js := range familyCheckpointConfigs {
		c, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		p := randomParams(t, c, 17)
		dir := filepath.Join("testdata", "families", "hf_"+name)
		if err := p.Save(dir, F32); err != nil {
			t.Fatal(err)
		}
		x := familyCheckpointBatch(c.VocabSize)
		m := newModel(t, p, x.B, x.T)
		step(t, m, x)
		logits := append([]float32(nil), m.Logits()...)
		if err := m.EnableLoRA(LoRAConfig{Rank: 2, Alpha: 4, Seed: 3}); err != nil {
			t.Fatal(err)
		}
		randomizeB(m, 4, 0.3)
		if err := m.SaveAdapter(filepath.Join(dir, "adapter"), "hf_"+name); err != nil {
			t.Fatal(err)
		}
		step(t, m, x)
		ids := make([]float32, len(x.IDs))
		for i, id := range x.IDs {
			ids[i] = float32(id)
		}
		V := c.VocabSize
		if err := WriteSafetensors(filepath.Join(dir, "expected_logits.safetensors"), []NamedTensor{
			{Name: "ids", Shape: []int{x.B, x.T}, Data: ids},
			{Name: "logits", Shape: []int{x.B, x.T, V}, Data: logits},
			{Name: "adapter_logits", Shape: []int{x.B, x.T, V}, Data: m.Logits()},
		}, F32, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// familyCkptTol bounds TestFamilyCheckpoints' logits differences. The
// stored logits come from the pure-Go kernels; the OpenBLAS build (make
// test's test-blas) sums in another order and differs by up to 8.7e-6 on
// logits of about 8 (measured); a misplaced or mis-transposed tensor
// moves them by O(1).
const familyCkptTol = 5e-5

// TestFamilyCheckpoints loads the committed tiny checkpoints and
// adapters (which families.py loaded with transformers and PEFT) and
// checks that they give the logits stored beside them.
func TestFamilyCheckpoints(t *testing.T) {
	for name, js := range familyCheckpointConfigs {
		dir := filepath.Join("testdata", "families", "hf_"+name)
		p, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ParseConfig([]byte(js))
		if p.Config.Family() != want.Family() || p.Config.SlidingWindow() != want.SlidingWindow() {
			t.Errorf("%s: family %v window %d, want %v %d", name, p.Config.Family(), p.Config.SlidingWindow(), want.Family(), want.SlidingWindow())
		}
		st, err := OpenSafetensors(filepath.Join(dir, "expected_logits.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		logits, _, _ := st.Read("logits")
		adapted, _, _ := st.Read("adapter_logits")
		st.Close()
		x := familyCheckpointBatch(p.Config.VocabSize)
		m := newModel(t, p, x.B, x.T)
		step(t, m, x)
		if d := maxAbsDiff(m.Logits(), logits); d > familyCkptTol {
			t.Errorf("%s: logits differ by %g", name, d)
		}
		if err := m.LoadAdapter(filepath.Join(dir, "adapter")); err != nil {
			t.Fatal(err)
		}
		step(t, m, x)
		if d := maxAbsDiff(m.Logits(), adapted); d > familyCkptTol {
			t.Errorf("%s: adapter logits differ by %g", name, d)
		}
	}
}
