package model

import (
	"encoding/json"
	"fmt"
	"math"
)

// ropeScaling is the rope_scaling (transformers 4) or rope_parameters
// (transformers 5) entry of config.json: the rotary frequencies' type
// and, for Llama 3.x's "llama3", its settings.
type ropeScaling struct {
	RopeType         string  `json:"rope_type"`
	Type             string  `json:"type"` // older name of rope_type
	Factor           float64 `json:"factor"`
	LowFreqFactor    float64 `json:"low_freq_factor"`
	HighFreqFactor   float64 `json:"high_freq_factor"`
	OriginalMaxPos   int     `json:"original_max_position_embeddings"`
	present, isLlama bool
}

// ropeScalingOf reads the rotary scaling of c: none (default rotary
// embeddings) or Llama 3's; any other type is an error naming it.
func ropeScalingOf(c Config) (ropeScaling, error) {
	var rs ropeScaling
	for _, k := range []string{"rope_scaling", "rope_parameters"} {
		raw, ok := c.Extra[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var r ropeScaling
		if err := json.Unmarshal(raw, &r); err != nil {
			return rs, fmt.Errorf("model: %s: %w", k, err)
		}
		t := r.RopeType
		if t == "" {
			t = r.Type
		}
		switch t {
		case "", "default":
			continue
		case "llama3":
			if !(r.Factor > 0) || !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) || r.OriginalMaxPos <= 0 {
				return rs, fmt.Errorf("model: %s type llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0 (got %s)", k, raw)
			}
			r.present, r.isLlama = true, true
			rs = r
		default:
			return rs, fmt.Errorf("model: %s type %q is not supported (default and llama3 rotary embeddings are)", k, t)
		}
	}
	return rs, nil
}

// ropeInvFreqOf returns the rotary frequencies of c: the default ones
// (ropeInvFreq), rescaled as transformers' _compute_llama3_parameters
// does for rope type llama3 (in float32): wavelengths 2π/f longer than
// original/low_freq_factor are divided by factor, shorter than
// original/high_freq_factor kept, and those between interpolated with
// s = (original/wavelength − low)/(high − low): (1−s)·f/factor + s·f.
// Llama 3's attention factor is 1: cos and sin are not scaled.
func ropeInvFreqOf(c Config) []float32 {
	f := ropeInvFreq(c.Hd(), c.RopeTheta)
	rs, err := ropeScalingOf(c)
	if err != nil || !rs.isLlama {
		return f
	}
	factor, low, high := float32(rs.Factor), float32(rs.LowFreqFactor), float32(rs.HighFreqFactor)
	old := float32(rs.OriginalMaxPos)
	lowWave, highWave := old/low, old/high
	for i, v := range f {
		wave := float32(2*math.Pi) / v
		scaled := v
		if wave > lowWave {
			scaled = v / factor
		}
		if !(wave < highWave) && !(wave > lowWave) {
			s := (old/wave - low) / (high - low)
			scaled = (1-s)*scaled/factor + s*scaled
		}
		f[i] = scaled
	}
	return f
}
