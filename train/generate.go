package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// SampleConfig sets up generation. The zero value decodes greedily up to
// 256 new tokens.
type SampleConfig struct {
	// MaxNewTokens caps the reply (default 256).
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 picks the most
	// likely token (greedy decoding).
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose
	// probabilities reach TopP (nucleus sampling); 0 or 1 keeps all.
	TopP float64
	// Seed of the sampler.
	Seed uint64
}

// Generator samples continuations from a model. It keeps each layer's
// keys and values (model.Decoder), so that a new token runs one row
// through the model; with NoCache it runs the whole sequence through
// Model.Forward for each new token instead (quadratic in the length; the
// reference the cache is tested against).
type Generator struct {
	P   *model.Params
	Tok *tokenizer.Tokenizer
	// NoCache recomputes the whole sequence for every token.
	NoCache bool

	stop   map[int]bool
	m      *model.Model
	batch  *model.Batch // of the full recomputation
	dec    *model.Decoder
	decMax int
}

// NewGenerator returns a generator for weights p and tokenizer tok. It
// stops at the tokenizer's end-of-sequence token and at the chat
// template's end of turn.
func NewGenerator(p *model.Params, tok *tokenizer.Tokenizer) *Generator {
	g := &Generator{P: p, Tok: tok, stop: map[int]bool{}}
	for _, s := range []string{tok.EOS(), tok.Chat().EndOfTurn()} {
		if id, ok := tok.TokenID(s); ok && s != "" {
			g.stop[id] = true
		}
	}
	return g
}

// LoadGenerator reads a checkpoint directory (config.json, safetensors,
// tokenizer files) into a Generator; or a PEFT LoRA adapter directory
// (adapter_config.json, adapter_model.safetensors), which is merged into
// the base model its base_model_name_or_path names (the tokenizer is the
// adapter directory's when it has one, else the base model's).
func LoadGenerator(dir string) (*Generator, error) {
	weights, tokDir := dir, dir
	var adapter bool
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		data, aerr := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
		if aerr != nil {
			return nil, fmt.Errorf("generate: %s holds neither a model (config.json) nor a LoRA adapter (adapter_config.json)", dir)
		}
		var ac struct {
			Base string `json:"base_model_name_or_path"`
		}
		if err := json.Unmarshal(data, &ac); err != nil || ac.Base == "" {
			return nil, fmt.Errorf("generate: %s: adapter_config.json names no base model (%v)", dir, err)
		}
		weights, adapter = ac.Base, true
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
			tokDir = ac.Base
		}
	}
	p, err := model.Load(weights)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if adapter {
		m, err := model.New(p, 1, 1)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if err := m.LoadAdapter(dir); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if p, err = m.MergedParams(); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	tok, err := tokenizer.LoadDir(tokDir)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return NewGenerator(p, tok), nil
}

// Generate continues prompt (token ids) and returns the new ids, the stop
// token excluded, calling emit (when not nil) with each as it comes;
// emit returning false stops early. Generation stops at a stop token,
// after MaxNewTokens, or at the model's max_position_embeddings.
func (g *Generator) Generate(prompt []int, cfg SampleConfig, emit func(id int) bool) ([]int, error) {
	if len(prompt) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	c := g.P.Config
	for _, id := range prompt {
		if id < 0 || id >= c.VocabSize {
			return nil, fmt.Errorf("generate: prompt token %d outside the vocabulary of %d", id, c.VocabSize)
		}
	}
	if cfg.MaxNewTokens <= 0 {
		cfg.MaxNewTokens = 256
	}
	if cfg.Temperature < 0 || cfg.TopP < 0 || cfg.TopP > 1 {
		return nil, fmt.Errorf("generate: temperature %g must be ≥ 0 and top-p %g in [0, 1]", cfg.Temperature, cfg.TopP)
	}
	limit := len(prompt) + cfg.MaxNewTokens
	if mp := c.MaxPositionEmbeddings; mp > 0 && limit > mp {
		limit = mp
	}
	if w := c.SlidingWindow(); w > 0 && limit > w { // beyond it attention would slide (not implemented)
		limit = w
	}
	if len(prompt) >= limit {
		return nil, fmt.Errorf("generate: the prompt has %d tokens, the model takes %d", len(prompt), limit)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6e6e))
	var out []int
	probs := make([]float64, c.VocabSize)
	idx := make([]int, c.VocabSize)
	next := g.fullLogits
	if !g.NoCache {
		if g.dec == nil || g.decMax < limit {
			d, err := model.NewDecoder(g.P, limit)
			if err != nil {
				return nil, fmt.Errorf("generate: %w", err)
			}
			g.dec, g.decMax = d, limit
		}
		g.dec.Reset()
		next = func(seq []int, fresh int) ([]float32, error) { return g.dec.Append(seq[len(seq)-fresh:]) }
	} else if g.m == nil || g.m.MaxT < limit {
		m, err := model.New(g.P, 1, limit)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		g.m, g.batch = m, model.NewBatch(1, limit)
	}
	seq := slices.Clone(prompt)
	fresh := len(seq) // tokens not yet run through the model
	for len(seq) < limit {
		logits, err := next(seq, fresh)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		id := pick(logits, cfg, rng, probs, idx)
		if g.stop[id] {
			break
		}
		seq = append(seq, id)
		out = append(out, id)
		fresh = 1
		if emit != nil && !emit(id) {
			break
		}
	}
	return out, nil
}

// fullLogits runs the whole of seq through the model and returns the
// logits of its last token.
func (g *Generator) fullLogits(seq []int, _ int) ([]float32, error) {
	V, T := g.P.Config.VocabSize, len(seq)
	x := g.batch
	b := &model.Batch{B: 1, T: T, IDs: x.IDs[:T], Pos: x.Pos[:T], Seg: x.Seg[:T], Targets: x.Targets[:T], Mask: x.Mask[:T]}
	if err := b.SetRow(0, model.Sample{IDs: seq}); err != nil {
		return nil, err
	}
	for i := range b.Targets {
		b.Targets[i] = -1 // logits only, no loss
	}
	if _, err := g.m.Forward(b); err != nil {
		return nil, err
	}
	return g.m.Logits()[(T-1)*V : T*V], nil
}

// Chat renders messages with the chat template and its generation
// prompt, generates the assistant's reply and returns it as text
// (special tokens dropped).
func (g *Generator) Chat(messages []datasets.Message, cfg SampleConfig) (string, error) {
	ids, err := g.Generate(g.Tok.Chat().EncodePrompt(messages), cfg, nil)
	if err != nil {
		return "", err
	}
	return g.Tok.DecodeSkipSpecial(ids), nil
}

// pick chooses the next token from logits: the argmax (lowest id among
// ties) at temperature 0, else a draw from softmax(logits/temperature)
// restricted to the top-p nucleus. probs and idx are scratch of the
// vocabulary's size.
func pick(logits []float32, cfg SampleConfig, rng *rand.Rand, probs []float64, idx []int) int {
	if cfg.Temperature == 0 {
		return argmax(logits)
	}
	hi := math.Inf(-1)
	for _, v := range logits {
		hi = math.Max(hi, float64(v))
	}
	var sum float64
	for i, v := range logits {
		probs[i] = math.Exp((float64(v) - hi) / cfg.Temperature)
		sum += probs[i]
		idx[i] = i
	}
	n := len(logits)
	if cfg.TopP > 0 && cfg.TopP < 1 {
		// Most likely first (ties by id); keep tokens until their mass
		// reaches top-p, as transformers' TopPLogitsWarper (which drops
		// the tokens whose cumulative probability, from the least likely
		// up, is at most 1 − top-p).
		slices.SortFunc(idx, func(a, b int) int {
			switch {
			case probs[a] > probs[b]:
				return -1
			case probs[a] < probs[b]:
				return 1
			}
			return a - b
		})
		var cum float64
		for k, i := range idx {
			cum += probs[i] / sum
			if cum >= cfg.TopP {
				n = k + 1
				break
			}
		}
		sum = 0
		for _, i := range idx[:n] {
			sum += probs[i]
		}
	}
	u := rng.Float64() * sum
	for _, i := range idx[:n] {
		u -= probs[i]
		if u < 0 {
			return i
		}
	}
	return idx[n-1]
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
