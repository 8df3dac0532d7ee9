package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config.json as transformers 4.x writes it for a Llama model.
const hfConfig = `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0",
  "use_cache": true,
  "vocab_size": 32000
}`

func TestConfig(t *testing.T) {
	c, err := ParseConfig([]byte(hfConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 2048 || c.KVHeads() != 4 || c.Hd() != 64 || c.RMSNormEps != 1e-5 || c.VocabSize != 32000 || c.TieWordEmbeddings {
		t.Errorf("parsed %+v", c)
	}
	// Round trip keeps the extra keys.
	dir := t.TempDir()
	if err := WriteConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	c2, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	json.Unmarshal([]byte(hfConfig), &a)
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	json.Unmarshal(data, &b)
	for k, v := range a {
		if vb, _ := json.Marshal(b[k]); string(vb) != mustJSON(v) {
			t.Errorf("key %s: wrote %s, read %s", k, vb, mustJSON(v))
		}
	}
	if b["head_dim"].(float64) != 64 {
		t.Errorf("head_dim not written: %v", b["head_dim"])
	}
	if c2.HiddenSize != c.HiddenSize || string(c2.Extra["bos_token_id"]) != "1" {
		t.Errorf("round trip lost values: %+v", c2)
	}

	// transformers 5 layout: rope_theta inside rope_parameters.
	c3, err := ParseConfig([]byte(`{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,
		"vocab_size":10,"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"}}`))
	if err != nil || c3.RopeTheta != 500000 || c3.KVHeads() != 4 || c3.RMSNormEps != 1e-6 {
		t.Errorf("v5 config: %+v, %v", c3, err)
	}
	for _, bad := range []string{
		`{"hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_key_value_heads":3,"vocab_size":10}`,
		`{"hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"vocab_size":10,"hidden_act":"gelu"}`,
		`{"hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"vocab_size":10,"rope_scaling":{"rope_type":"llama3","factor":8}}`,
		`{"hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"vocab_size":10,"attention_bias":true}`,
		`{"hidden_size":60,"intermediate_size":128,"num_attention_heads":8,"vocab_size":10}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParamNames(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p, _ := NewParams(c)
	ts := p.Tensors()
	want := map[string][]int{
		"model.embed_tokens.weight":                      {37, 16},
		"model.layers.1.self_attn.q_proj.weight":         {16, 16},
		"model.layers.1.self_attn.k_proj.weight":         {8, 16},
		"model.layers.0.self_attn.o_proj.weight":         {16, 16},
		"model.layers.0.mlp.down_proj.weight":            {16, 32},
		"model.layers.0.mlp.gate_proj.weight":            {32, 16},
		"model.layers.1.post_attention_layernorm.weight": {16},
		"model.norm.weight":                              {16},
		"lm_head.weight":                                 {37, 16},
	}
	if len(ts) != 1+2*9+2 {
		t.Errorf("%d tensors", len(ts))
	}
	for name, shape := range want {
		nt, ok := p.Tensor(name)
		if !ok || !equalShape(nt.Shape, shape) {
			t.Errorf("%s: %v %v, want %v", name, ok, nt.Shape, shape)
		}
	}
	tied, _ := NewParams(tinyConfigs()["tied-mqa-hd6"])
	if _, ok := tied.Tensor("lm_head.weight"); !ok || &tied.LMHead[0] != &tied.Embed[0] {
		t.Error("tied lm_head does not alias the embedding")
	}
	for _, nt := range tied.Tensors() {
		if nt.Name == "lm_head.weight" {
			t.Error("tied Tensors lists lm_head.weight")
		}
	}
	if q, _ := tied.Tensor("model.layers.0.self_attn.q_proj.weight"); !equalShape(q.Shape, []int{24, 16}) {
		t.Errorf("head_dim 6: q_proj %v", q.Shape)
	}
}

func TestSaveLoad(t *testing.T) {
	for name, c := range tinyConfigs() {
		p := randomParams(t, c, 5)
		dir := filepath.Join(t.TempDir(), name)
		if err := p.Save(dir, F32); err != nil {
			t.Fatal(err)
		}
		q, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(p.Data, q.Data); d != 0 || len(p.Data) != len(q.Data) {
			t.Errorf("%s: F32 round trip differs by %g", name, d)
		}
		// Header: 8-byte aligned, names sorted, metadata.
		raw, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
		n := binary.LittleEndian.Uint64(raw)
		if (8+n)%8 != 0 {
			t.Errorf("data starts at %d, not 8-aligned", 8+n)
		}
		st, _ := OpenSafetensors(filepath.Join(dir, "model.safetensors"))
		if st.Metadata["format"] != "pt" {
			t.Errorf("metadata %v", st.Metadata)
		}
		st.Close()
		// BF16: every value within half a bf16 ulp.
		if err := p.Save(dir, BF16); err != nil {
			t.Fatal(err)
		}
		q, err = Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range p.Data {
			if math.Abs(float64(q.Data[i]-v)) > math.Abs(float64(v))/256 {
				t.Fatalf("%s: bf16 %g → %g", name, v, q.Data[i])
			}
		}
	}
}

func TestHalfConversions(t *testing.T) {
	// Every finite half survives f16 → f32 → f16.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN
		}
		if got := f32ToF16(f16ToF32(uint16(h))); got != uint16(h) {
			t.Fatalf("half %#04x → %g → %#04x", h, f16ToF32(uint16(h)), got)
		}
	}
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65519, 0x7bff}, {65520, 0x7c00},
		{1e-8, 0}, {6e-8, 1}, {1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02},
		{float32(math.Inf(-1)), 0xfc00},
	} {
		if got := f32ToF16(tc.f); got != tc.want {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80}, {-1, 0xbf80}, {1 + 1.0/256, 0x3f80}, {1 + 3.0/256, 0x3f82}, {3.0e38, 0x7f62},
	} {
		if got := f32ToBF16(tc.f); got != tc.want {
			t.Errorf("f32ToBF16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

func TestShardedLoad(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p := randomParams(t, c, 6)
	dir := t.TempDir()
	if err := WriteConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	ts := p.Tensors()
	half := len(ts) / 2
	shards := [][]NamedTensor{ts[:half], ts[half:]}
	idx := ShardIndex{Metadata: map[string]any{"total_size": 4 * len(p.Data)}, WeightMap: map[string]string{}}
	for i, sh := range shards {
		fn := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
		if err := WriteSafetensors(filepath.Join(dir, fn), sh, F16, nil); err != nil {
			t.Fatal(err)
		}
		for _, nt := range sh {
			idx.WeightMap[nt.Name] = fn
		}
	}
	data, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), data, 0o644)
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range p.Data {
		if math.Abs(float64(q.Data[i]-v)) > math.Abs(float64(v))/1024+1e-7 {
			t.Fatalf("f16 shard value %g → %g", v, q.Data[i])
		}
	}

	// Errors: a missing tensor, a wrong shape, an unknown tensor.
	bad := t.TempDir()
	WriteSafetensors(filepath.Join(bad, "model.safetensors"), ts[1:], F32, nil)
	if err := q.LoadSafetensors(bad); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing tensor: %v", err)
	}
	wrong := append([]NamedTensor(nil), ts...)
	wrong[0] = NamedTensor{Name: ts[0].Name, Shape: []int{16, 37}, Data: ts[0].Data}
	WriteSafetensors(filepath.Join(bad, "model.safetensors"), wrong, F32, nil)
	if err := q.LoadSafetensors(bad); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
	extra := append(append([]NamedTensor(nil), ts...), NamedTensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{16}, Data: make([]float32, 16)})
	WriteSafetensors(filepath.Join(bad, "model.safetensors"), extra, F32, nil)
	if err := q.LoadSafetensors(bad); err == nil || !strings.Contains(err.Error(), "unexpected") {
		t.Errorf("unexpected tensor: %v", err)
	}
	// A truncated file.
	raw, _ := os.ReadFile(filepath.Join(bad, "model.safetensors"))
	os.WriteFile(filepath.Join(bad, "model.safetensors"), raw[:len(raw)-4], 0o644)
	if _, err := OpenSafetensors(filepath.Join(bad, "model.safetensors")); err == nil {
		t.Error("opened a truncated file")
	}
}
