package model

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestLlama3RopeFrequencies checks the rescaled frequencies of rope
// type llama3 against Meta's reference (llama-models' apply_scaling),
// written here in float64, for the Llama 3.1 8B settings (head 128,
// theta 500000, factor 8, low 1, high 4, original 8192): every regime
// (kept, interpolated, divided) is hit. TestTransformersFamilies checks
// them against transformers' own buffer on Llama 3.2 1B's settings.
func TestLlama3RopeFrequencies(t *testing.T) {
	c, err := ParseConfig([]byte(`{"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 1, "num_attention_heads": 32,
"num_key_value_heads": 8, "vocab_size": 256, "rope_theta": 500000, "max_position_embeddings": 131072,
"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, plain := ropeInvFreqOf(c), ropeInvFreq(c.Hd(), c.RopeTheta)
	regimes := map[string]int{}
	for i, f := range plain {
		freq := float64(f)
		wave := 2 * math.Pi / freq
		var want float64
		switch {
		case wave < 8192/4.0:
			want, regimes["kept"] = freq, regimes["kept"]+1
		case wave > 8192/1.0:
			want, regimes["divided"] = freq/8, regimes["divided"]+1
		default:
			s := (8192/wave - 1) / (4 - 1)
			want, regimes["interpolated"] = (1-s)*freq/8+s*freq, regimes["interpolated"]+1
		}
		if d := math.Abs(float64(got[i])-want) / want; d > 1e-6 {
			t.Errorf("frequency %d: %g, reference %g (relative %.2g)", i, got[i], want, d)
		}
	}
	if len(regimes) != 3 {
		t.Errorf("regimes hit: %v", regimes)
	}
	t.Logf("%v of %d frequencies", regimes, len(plain))
}

// TestConfigFamilies: the model types, rotary and attention settings a
// config may have, accepted or refused with a line that names them, and
// the sliding window each family reads (New refuses rows longer than
// it).
func TestConfigFamilies(t *testing.T) {
	for _, tc := range []struct {
		extra  string
		want   string // "" accepted
		window int
	}{
		{`"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}`, "", 0},
		{`"rope_parameters": {"rope_type": "llama3", "factor": 32, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192, "rope_theta": 500000}`, "", 0},
		{`"rope_scaling": {"type": "llama3", "factor": 8}`, "llama3 needs", 0},
		{`"rope_scaling": {"rope_type": "yarn", "factor": 4}`, `type "yarn" is not supported`, 0},
		{`"rope_scaling": {"type": "linear", "factor": 2}`, `type "linear" is not supported`, 0},
		{`"sliding_window": null`, "", 0},
		{`"sliding_window": 4096`, "", 4096},
		{`"sliding_window": 4096, "use_sliding_window": false`, "", 0},
		{`"sliding_window": 131072`, "", 0},
		{`"model_type": "mistral"`, "", 4096}, // MistralConfig's default
		{`"model_type": "mistral", "sliding_window": null`, "", 0},
		{`"model_type": "mistral", "sliding_window": 4096, "use_sliding_window": false`, "", 4096}, // not a Mistral key
		{`"model_type": "qwen2", "sliding_window": 4096`, "", 0},                                   // use_sliding_window defaults to false
		{`"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 0`, "", 4096},
		{`"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 1`, "", 0}, // no layer at or above 1
		{`"model_type": "qwen3", "sliding_window": 4096, "layer_types": ["sliding_attention"]`, "", 4096},
		{`"model_type": "qwen3", "layer_types": ["full_attention"]`, "", 0},
		{`"model_type": "qwen3", "layer_types": ["chunked_attention"]`, `layer_types[0] "chunked_attention" is not supported`, 0},
		{`"model_type": "qwen2", "attention_bias": true`, "", 0}, // Qwen2 ignores the key
		{`"model_type": "qwen3", "attention_bias": true`, "attention_bias=true is not supported for model_type qwen3", 0},
		{`"model_type": "llama", "attention_bias": true`, "attention_bias=true is not supported for model_type llama", 0},
		{`"model_type": "mistral", "mlp_bias": true`, "mlp_bias=true is not supported", 0},
		{`"model_type": "gemma"`, `model_type "gemma" is not supported (llama, mistral, qwen2, qwen3 are)`, 0},
		{`"model_type": "qwen3_moe"`, `model_type "qwen3_moe" is not supported`, 0},
	} {
		c, err := ParseConfig([]byte(`{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
"vocab_size": 256, "max_position_embeddings": 32768, ` + tc.extra + `}`))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.extra, err, tc.want)
		}
		if err != nil {
			continue
		}
		if w := c.SlidingWindow(); w != tc.window {
			t.Errorf("%s: sliding window %d, want %d", tc.extra, w, tc.window)
		}
		if tc.window == 0 {
			continue
		}
		p, err := NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.checkWindow(tc.window); err != nil { // (New would allocate B·H·T² attention probabilities)
			t.Errorf("%s: rows of %d tokens refused: %v", tc.extra, tc.window, err)
		}
		_, err = New(p, 1, tc.window+1)
		_, derr := NewDecoder(p, tc.window+1)
		for _, err := range []error{err, derr} {
			if err == nil || !strings.Contains(err.Error(), "exceed the sliding_window") {
				t.Errorf("%s: rows of %d tokens: %v, want a refusal", tc.extra, tc.window+1, err)
			}
		}
	}
}

// TestFamilyTensors: the tensors of each family carry transformers'
// names and shapes (Qwen2: q/k/v biases, no o_proj bias; Qwen3: q_norm
// and k_norm over head_dim, no biases); Init zeroes biases and sets
// norms to 1; a checkpoint of one family does not load as another.
func TestFamilyTensors(t *testing.T) {
	cs := tinyConfigs()
	for _, tc := range []struct {
		model string
		want  map[string][]int // tensors of layer 1 beyond Llama's
	}{
		{"untied-gqa", map[string][]int{}},
		{"qwen2-bias", map[string][]int{"q_proj.bias": {16}, "k_proj.bias": {8}, "v_proj.bias": {8}}},
		{"qwen3-qknorm", map[string][]int{"q_norm.weight": {8}, "k_norm.weight": {8}}},
	} {
		c := cs[tc.model]
		p, err := NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		p.Init(1, 0.02)
		extra := map[string][]int{}
		for _, nt := range p.Tensors() {
			rest, ok := strings.CutPrefix(nt.Name, "model.layers.1.self_attn.")
			if !ok || strings.HasSuffix(rest, "_proj.weight") {
				continue
			}
			extra[rest] = nt.Shape
			for _, v := range nt.Data {
				if want := float32(map[bool]int{true: 0, false: 1}[strings.HasSuffix(rest, ".bias")]); v != want {
					t.Fatalf("%s: %s initialised to %g, want %g", tc.model, nt.Name, v, want)
				}
			}
		}
		if len(extra) != len(tc.want) {
			t.Errorf("%s: layer tensors beyond Llama's %v, want %v", tc.model, extra, tc.want)
		}
		for k, shape := range tc.want {
			if !equalShape(extra[k], shape) {
				t.Errorf("%s: %s shape %v, want %v", tc.model, k, extra[k], shape)
			}
		}
	}

	// A Qwen3 checkpoint read as a Llama config: k_norm (first in name order) is named.
	q3 := randomParams(t, cs["qwen3-qknorm"], 2)
	dir := t.TempDir()
	if err := q3.Save(dir, F32); err != nil {
		t.Fatal(err)
	}
	asLlama := cs["qwen3-qknorm"]
	asLlama.Extra = nil
	p, _ := NewParams(asLlama)
	if err := p.LoadSafetensors(dir); err == nil || !strings.Contains(err.Error(), `unexpected tensor "model.layers.0.self_attn.k_norm.weight" (not a parameter of this llama config)`) {
		t.Errorf("Qwen3 weights as Llama: %v", err)
	}
	// A Llama checkpoint read as Qwen2: the biases are missing.
	l := randomParams(t, cs["untied-gqa"], 3)
	if err := l.Save(dir, F32); err != nil {
		t.Fatal(err)
	}
	q2 := cs["untied-gqa"]
	q2.Extra = map[string]json.RawMessage{"model_type": json.RawMessage(`"qwen2"`)}
	p, _ = NewParams(q2)
	if err := p.LoadSafetensors(dir); err == nil || !strings.Contains(err.Error(), "model.layers.0.self_attn.q_proj.bias") {
		t.Errorf("Llama weights as Qwen2: %v", err)
	}
	// The config.json written keeps the family.
	if c, err := ReadConfig(dir); err != nil || c.Family() != FamilyLlama {
		t.Errorf("config: %v %v", c.Family(), err)
	}
	if err := q3.Save(dir, F32); err != nil {
		t.Fatal(err)
	}
	if c, err := ReadConfig(dir); err != nil || c.Family() != FamilyQwen3 || !c.QKNorm() || c.QKVBias() {
		t.Errorf("config: %v %v", c.Family(), err)
	}
}

// TestFamilyDecoder: the key/value-cache decoder computes Forward's
// logits for every family (Qwen2's biases and Qwen3's q/k norms applied
// to the cached keys too), a prompt at once and then token by token.
func TestFamilyDecoder(t *testing.T) {
	for name, c := range tinyConfigs() {
		p := randomParams(t, c, 9)
		const T = 12
		x := NewBatch(1, T)
		ids := make([]int, T)
		for i := range ids {
			ids[i] = (i*7 + 3) % c.VocabSize
		}
		must(x.SetRow(0, Sample{IDs: ids}))
		m := newModel(t, p, 1, T)
		if _, err := m.Forward(x); err != nil {
			t.Fatal(err)
		}
		V := c.VocabSize
		d, err := NewDecoder(p, T)
		if err != nil {
			t.Fatal(err)
		}
		logits, err := d.Append(ids[:5])
		for i := 4; i < T; i++ {
			if err != nil {
				t.Fatal(err)
			}
			if e := compareGrad(logits, to64(m.Logits()[i*V:(i+1)*V])); e.norm > 1e-5 {
				t.Errorf("%s: token %d: decoder logits differ from Forward's: %s", name, i, e)
			}
			if i+1 < T {
				logits, err = d.Append(ids[i+1 : i+2])
			}
		}
	}
}
