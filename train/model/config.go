package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Config is the architecture of a model of one of the families this
// package runs (Family: Llama, Mistral, Qwen2, Qwen3), with the keys of
// Hugging Face's LlamaConfig (config.json) that they share. Keys that
// Config does not model (model_type among them) are kept in Extra and
// written back unchanged, so that a base model's config.json survives a
// load and save.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`             // D, width of the residual stream
	IntermediateSize      int     `json:"intermediate_size"`       // F, width of the SwiGLU MLP
	NumHiddenLayers       int     `json:"num_hidden_layers"`       // L
	NumAttentionHeads     int     `json:"num_attention_heads"`     // H, query heads
	NumKeyValueHeads      int     `json:"num_key_value_heads"`     // KV, key/value heads; H % KV == 0
	HeadDim               int     `json:"head_dim"`                // hd; 0 means D/H
	VocabSize             int     `json:"vocab_size"`              // V
	RMSNormEps            float64 `json:"rms_norm_eps"`            // ε added to mean(x²)
	RopeTheta             float64 `json:"rope_theta"`              // base of the rotary frequencies
	MaxPositionEmbeddings int     `json:"max_position_embeddings"` // largest position id + 1
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`     // lm_head.weight shares model.embed_tokens.weight

	// Extra holds the other keys of config.json (model_type,
	// architectures, bos_token_id, torch_dtype, ...), as read.
	Extra map[string]json.RawMessage `json:"-"`
}

// configKeys are the keys Config models; everything else goes to Extra.
var configKeys = map[string]bool{
	"hidden_size": true, "intermediate_size": true, "num_hidden_layers": true,
	"num_attention_heads": true, "num_key_value_heads": true, "head_dim": true,
	"vocab_size": true, "rms_norm_eps": true, "rope_theta": true,
	"max_position_embeddings": true, "tie_word_embeddings": true,
}

// Hd returns the head dimension: HeadDim, or HiddenSize/NumAttentionHeads
// when HeadDim is 0.
func (c Config) Hd() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// KVHeads returns NumKeyValueHeads, or NumAttentionHeads when it is 0.
func (c Config) KVHeads() int {
	if c.NumKeyValueHeads > 0 {
		return c.NumKeyValueHeads
	}
	return c.NumAttentionHeads
}

// Validate reports the first inconsistency of c.
func (c Config) Validate() error {
	switch {
	case c.HiddenSize <= 0:
		return fmt.Errorf("model: hidden_size %d must be positive", c.HiddenSize)
	case c.IntermediateSize <= 0:
		return fmt.Errorf("model: intermediate_size %d must be positive", c.IntermediateSize)
	case c.NumHiddenLayers < 0:
		return fmt.Errorf("model: num_hidden_layers %d must not be negative", c.NumHiddenLayers)
	case c.NumAttentionHeads <= 0:
		return fmt.Errorf("model: num_attention_heads %d must be positive", c.NumAttentionHeads)
	case c.NumKeyValueHeads < 0 || c.KVHeads() > c.NumAttentionHeads || c.NumAttentionHeads%c.KVHeads() != 0:
		return fmt.Errorf("model: num_key_value_heads %d must divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	case c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("model: hidden_size %d is not a multiple of num_attention_heads %d (set head_dim)", c.HiddenSize, c.NumAttentionHeads)
	case c.Hd() <= 0 || c.Hd()%2 != 0:
		return fmt.Errorf("model: head_dim %d must be positive and even", c.Hd())
	case c.VocabSize <= 0:
		return fmt.Errorf("model: vocab_size %d must be positive", c.VocabSize)
	case c.RMSNormEps <= 0:
		return fmt.Errorf("model: rms_norm_eps %g must be positive", c.RMSNormEps)
	case c.RopeTheta <= 0:
		return fmt.Errorf("model: rope_theta %g must be positive", c.RopeTheta)
	}
	fam, err := c.family()
	if err != nil {
		return err
	}
	// Parts of the configs this package does not implement.
	var s string
	if raw, ok := c.Extra["hidden_act"]; ok && json.Unmarshal(raw, &s) == nil && s != "silu" {
		return fmt.Errorf("model: hidden_act %q is not supported (only silu)", s)
	}
	biasKeys := []string{"attention_bias", "mlp_bias"}
	if fam == FamilyQwen2 {
		biasKeys = biasKeys[1:] // Qwen2's q/k/v biases are always there; transformers ignores attention_bias
	}
	for _, k := range biasKeys {
		var b bool
		if raw, ok := c.Extra[k]; ok && json.Unmarshal(raw, &b) == nil && b {
			return fmt.Errorf("model: %s=true is not supported for model_type %s", k, fam)
		}
	}
	if _, err := ropeScalingOf(c); err != nil {
		return err
	}
	types, err := c.layerTypes()
	if err != nil {
		return err
	}
	for i, t := range types {
		if t != "full_attention" && t != "sliding_attention" {
			return fmt.Errorf("model: layer_types[%d] %q is not supported (full_attention and sliding_attention are)", i, t)
		}
	}
	return nil
}

// Family is the architecture of a config, from its model_type: the
// decoder-only models this package runs, which differ from Llama only
// in the parts named here.
type Family int

const (
	// FamilyLlama is LlamaForCausalLM (model_type llama, or none).
	FamilyLlama Family = iota
	// FamilyMistral is MistralForCausalLM: Llama's layers, with a
	// sliding window of attention (SlidingWindow).
	FamilyMistral
	// FamilyQwen2 is Qwen2ForCausalLM (Qwen2, Qwen2.5): biases on the
	// q, k and v projections (none on o_proj or the MLP).
	FamilyQwen2
	// FamilyQwen3 is Qwen3ForCausalLM: an RMSNorm over head_dim with
	// weights of its own on each query and key head (q_norm, k_norm),
	// after the projection and before the rotary embedding; no biases.
	FamilyQwen3
)

var familyNames = [...]string{"llama", "mistral", "qwen2", "qwen3"}

func (f Family) String() string {
	if f < 0 || int(f) >= len(familyNames) {
		return fmt.Sprintf("Family(%d)", int(f))
	}
	return familyNames[f]
}

// family returns the family of c's model_type (llama when absent), or
// an error naming any other model_type.
func (c Config) family() (Family, error) {
	raw, ok := c.Extra["model_type"]
	if !ok || string(raw) == "null" {
		return FamilyLlama, nil
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil {
		return 0, fmt.Errorf("model: model_type: %w", err)
	}
	for f, name := range familyNames {
		if t == name {
			return Family(f), nil
		}
	}
	return 0, fmt.Errorf("model: model_type %q is not supported (%s are)", t, strings.Join(familyNames[:], ", "))
}

// Family returns the family of c's model_type (FamilyLlama when absent
// or unknown; Validate refuses unknown ones).
func (c Config) Family() Family {
	f, _ := c.family()
	return f
}

// QKVBias reports whether the q, k and v projections have biases
// (model.layers.{i}.self_attn.{q,k,v}_proj.bias): Qwen2.
func (c Config) QKVBias() bool { return c.Family() == FamilyQwen2 }

// QKNorm reports whether each query and key head goes through an
// RMSNorm of its own before the rotary embedding
// (model.layers.{i}.self_attn.{q,k}_norm.weight [head_dim]): Qwen3.
func (c Config) QKNorm() bool { return c.Family() == FamilyQwen3 }

// layerTypes returns the layer_types of config.json (transformers 5),
// or nil.
func (c Config) layerTypes() ([]string, error) {
	var types []string
	if raw, ok := c.Extra["layer_types"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &types); err != nil {
			return nil, fmt.Errorf("model: layer_types: %w", err)
		}
	}
	return types, nil
}

// SlidingWindow returns the width W of the sliding attention window of
// c, or 0 when attention is full. It errs on the side of a window:
// Mistral has one (sliding_window, 4096 when the key is absent, none
// when null); Qwen2 and Qwen3 when use_sliding_window is true and some
// layer is at or above max_window_layers, or when layer_types names a
// sliding_attention layer; Llama unless use_sliding_window is false. A
// window that covers max_position_embeddings is no window. Within a
// window of W a token sees itself and the W−1 tokens before it, so rows
// of at most W tokens attend fully: New and NewDecoder accept
// workspaces of up to W tokens a row and refuse longer ones.
func (c Config) SlidingWindow() int {
	fam := c.Family()
	var win *int
	raw, ok := c.Extra["sliding_window"]
	switch {
	case ok:
		if json.Unmarshal(raw, &win) != nil {
			win = nil
		}
	case fam == FamilyMistral:
		w := 4096
		win = &w
	}
	if win == nil || *win <= 0 || *win >= c.MaxPositionEmbeddings {
		return 0
	}
	var use *bool
	if raw, ok := c.Extra["use_sliding_window"]; ok {
		json.Unmarshal(raw, &use)
	}
	switch fam {
	case FamilyQwen2, FamilyQwen3:
		types, _ := c.layerTypes()
		if slices.Contains(types, "sliding_attention") {
			return *win
		}
		if use == nil || !*use {
			return 0
		}
		var from *int
		if raw, ok := c.Extra["max_window_layers"]; ok {
			json.Unmarshal(raw, &from)
		}
		if from != nil && *from >= c.NumHiddenLayers {
			return 0
		}
	case FamilyLlama:
		if use != nil && !*use {
			return 0
		}
	}
	return *win
}

// checkWindow refuses rows longer than c's sliding window.
func (c Config) checkWindow(maxT int) error {
	if w := c.SlidingWindow(); w > 0 && maxT > w {
		return fmt.Errorf("model: %d tokens a row exceed the sliding_window of %d (sliding-window attention is not implemented: rows of at most %d tokens attend fully, as transformers does for them)", maxT, w, w)
	}
	return nil
}

// UnmarshalJSON reads a config.json object; unknown keys go to Extra.
// Missing keys keep the values c had before (so start from
// DefaultConfig to get LlamaConfig's defaults).
func (c *Config) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	type plain Config
	p := (*plain)(c)
	if err := json.Unmarshal(data, p); err != nil {
		return err
	}
	// transformers 5 nests rope_theta in rope_parameters.
	if _, ok := all["rope_theta"]; !ok {
		var rp struct {
			RopeTheta float64 `json:"rope_theta"`
		}
		if raw, ok := all["rope_parameters"]; ok && json.Unmarshal(raw, &rp) == nil && rp.RopeTheta > 0 {
			c.RopeTheta = rp.RopeTheta
		}
	}
	c.Extra = make(map[string]json.RawMessage)
	for k, v := range all {
		if !configKeys[k] {
			c.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON writes c as a config.json object: the modelled keys, the
// keys of Extra, and defaults for model_type, architectures (the
// family's *ForCausalLM),
// hidden_act, torch_dtype, attention_bias and mlp_bias when Extra lacks
// them, so that transformers' AutoModelForCausalLM loads the result.
// Keys are sorted.
func (c Config) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(c.Extra)+16)
	for k, v := range c.Extra {
		m[k] = v
	}
	arch := map[Family]string{FamilyLlama: "LlamaForCausalLM", FamilyMistral: "MistralForCausalLM",
		FamilyQwen2: "Qwen2ForCausalLM", FamilyQwen3: "Qwen3ForCausalLM"}[c.Family()]
	defaults := map[string]any{
		"model_type":        "llama",
		"architectures":     []string{arch},
		"hidden_act":        "silu",
		"torch_dtype":       "float32",
		"attention_bias":    false,
		"mlp_bias":          false,
		"initializer_range": 0.02,
		"use_cache":         true,
	}
	for k, v := range defaults {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	m["hidden_size"] = c.HiddenSize
	m["intermediate_size"] = c.IntermediateSize
	m["num_hidden_layers"] = c.NumHiddenLayers
	m["num_attention_heads"] = c.NumAttentionHeads
	m["num_key_value_heads"] = c.KVHeads()
	m["head_dim"] = c.Hd()
	m["vocab_size"] = c.VocabSize
	m["rms_norm_eps"] = c.RMSNormEps
	m["rope_theta"] = c.RopeTheta
	m["max_position_embeddings"] = c.MaxPositionEmbeddings
	m["tie_word_embeddings"] = c.TieWordEmbeddings
	return json.Marshal(m) // encoding/json sorts map keys
}

// DefaultConfig returns LlamaConfig's defaults for the keys that a
// config.json may leave out (rms_norm_eps 1e-6, rope_theta 10000,
// max_position_embeddings 2048, tie_word_embeddings false); the sizes are
// zero and must be set.
func DefaultConfig() Config {
	return Config{RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048}
}

// ParseConfig parses the contents of a config.json and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("model: parse config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ReadConfig reads dir/config.json (or the file itself when path names a
// file).
func ReadConfig(path string) (Config, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// WriteConfig writes c as dir/config.json, indented, keys sorted.
func WriteConfig(dir string, c Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("model: marshal config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
