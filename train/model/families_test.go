package model

import (
	"math"
	"strings"
	"testing"
)

// TestLlama3RopeFrequencies checks the rescaled frequencies of rope
// type llama3 against Meta's reference (llama-models' apply_scaling),
// written here in float64, for the Llama 3.1 8B settings (head 128,
// theta 500000, factor 8, low 1, high 4, original 8192): every regime
// (kept, interpolated, divided) is hit. Not yet checked against
// transformers' own implementation (no GPU machine was available).
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

// TestConfigFamilies: the rotary and attention settings a config may
// have, accepted or refused with a line that names them.
func TestConfigFamilies(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  string // "" accepted
	}{
		{`"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}`, ""},
		{`"rope_parameters": {"rope_type": "llama3", "factor": 32, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192, "rope_theta": 500000}`, ""},
		{`"rope_scaling": {"type": "llama3", "factor": 8}`, "llama3 needs"},
		{`"rope_scaling": {"rope_type": "yarn", "factor": 4}`, `type "yarn" is not supported`},
		{`"rope_scaling": {"type": "linear", "factor": 2}`, `type "linear" is not supported`},
		{`"sliding_window": null`, ""},
		{`"sliding_window": 4096`, "sliding_window 4096"},
		{`"sliding_window": 4096, "use_sliding_window": false`, ""},
		{`"sliding_window": 131072`, ""},
	} {
		c, err := ParseConfig([]byte(`{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
"vocab_size": 256, "max_position_embeddings": 32768, ` + tc.extra + `}`))
		if err == nil {
			err = c.Validate()
		}
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.extra, err, tc.want)
		}
	}
}
