package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Layer holds the weights of one decoder layer, each a row-major view
// into Params.Data. Linear weights are [out, in], as torch.nn.Linear
// stores them.
type Layer struct {
	InputNorm []float32 // [D]          input_layernorm.weight
	Q         []float32 // [H·hd, D]    self_attn.q_proj.weight
	QBias     []float32 // [H·hd]       self_attn.q_proj.bias (Qwen2; nil otherwise)
	K         []float32 // [KV·hd, D]   self_attn.k_proj.weight
	KBias     []float32 // [KV·hd]      self_attn.k_proj.bias (Qwen2)
	V         []float32 // [KV·hd, D]   self_attn.v_proj.weight
	VBias     []float32 // [KV·hd]      self_attn.v_proj.bias (Qwen2)
	O         []float32 // [D, H·hd]    self_attn.o_proj.weight
	QNorm     []float32 // [hd]         self_attn.q_norm.weight (Qwen3; nil otherwise)
	KNorm     []float32 // [hd]         self_attn.k_norm.weight (Qwen3)
	PostNorm  []float32 // [D]          post_attention_layernorm.weight
	Gate      []float32 // [F, D]       mlp.gate_proj.weight
	Up        []float32 // [F, D]       mlp.up_proj.weight
	Down      []float32 // [D, F]       mlp.down_proj.weight
}

// small returns pointers to the layer's float32 tensors that are not
// projection weights: the norms, and the biases and q/k norms where the
// family has them (nil otherwise). QLoRA keeps them in float32.
func (l *Layer) small() [7]*[]float32 {
	return [7]*[]float32{&l.InputNorm, &l.QBias, &l.KBias, &l.VBias, &l.QNorm, &l.KNorm, &l.PostNorm}
}

// Params is the set of weights of a model (or, with the same
// layout, their gradients). All tensors are views into one flat buffer,
// Data, so that an optimizer or a gradient norm can run over Data alone.
// With tied embeddings LMHead is the same slice as Embed, and Data holds
// it once.
type Params struct {
	Config Config
	Data   []float32 // every parameter, in the order of Tensors

	Embed  []float32 // [V, D] model.embed_tokens.weight
	Layers []Layer
	Norm   []float32 // [D]    model.norm.weight
	LMHead []float32 // [V, D] lm_head.weight (aliases Embed when tied)
}

// NamedTensor is a view of one parameter: its Hugging Face name, its
// shape ([out, in] for linear weights) and its data.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// NewParams allocates zeroed parameters for c (see Init to initialise
// them).
func NewParams(c Config) (*Params, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Params{Config: c}
	specs := paramSpecs(c)
	n := 0
	for _, s := range specs {
		n += s.size()
	}
	p.Data = make([]float32, n)
	off := 0
	take := func(k int) []float32 {
		v := p.Data[off : off+k : off+k]
		off += k
		return v
	}
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	qd, kvd := c.NumAttentionHeads*hd, c.KVHeads()*hd
	bias, qkNorm := c.QKVBias(), c.QKNorm()
	p.Embed = take(V * D)
	p.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range p.Layers {
		l := &p.Layers[i]
		l.InputNorm = take(D)
		l.Q = take(qd * D)
		if bias {
			l.QBias = take(qd)
		}
		l.K = take(kvd * D)
		if bias {
			l.KBias = take(kvd)
		}
		l.V = take(kvd * D)
		if bias {
			l.VBias = take(kvd)
		}
		l.O = take(D * qd)
		if qkNorm {
			l.QNorm, l.KNorm = take(hd), take(hd)
		}
		l.PostNorm = take(D)
		l.Gate = take(F * D)
		l.Up = take(F * D)
		l.Down = take(D * F)
	}
	p.Norm = take(D)
	if c.TieWordEmbeddings {
		p.LMHead = p.Embed
	} else {
		p.LMHead = take(V * D)
	}
	if off != n {
		panic("model: parameter layout mismatch")
	}
	return p, nil
}

type paramSpec struct {
	name  string
	shape []int
}

func (s paramSpec) size() int {
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	return n
}

// paramSpecs lists the parameters of c in storage order (lm_head.weight
// last, absent when tied): per layer input_layernorm, q_proj (weight,
// bias), k_proj, v_proj, o_proj, q_norm, k_norm,
// post_attention_layernorm, gate_proj, up_proj, down_proj, the biases
// and q/k norms only where the family has them.
func paramSpecs(c Config) []paramSpec {
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	qd, kvd := c.NumAttentionHeads*hd, c.KVHeads()*hd
	bias, qkNorm := c.QKVBias(), c.QKNorm()
	s := []paramSpec{{"model.embed_tokens.weight", []int{V, D}}}
	for i := 0; i < c.NumHiddenLayers; i++ {
		pre := fmt.Sprintf("model.layers.%d.", i)
		s = append(s, paramSpec{pre + "input_layernorm.weight", []int{D}})
		for _, pr := range []struct {
			name    string
			out, in int
		}{{"q_proj", qd, D}, {"k_proj", kvd, D}, {"v_proj", kvd, D}} {
			s = append(s, paramSpec{pre + "self_attn." + pr.name + ".weight", []int{pr.out, pr.in}})
			if bias {
				s = append(s, paramSpec{pre + "self_attn." + pr.name + ".bias", []int{pr.out}})
			}
		}
		s = append(s, paramSpec{pre + "self_attn.o_proj.weight", []int{D, qd}})
		if qkNorm {
			s = append(s,
				paramSpec{pre + "self_attn.q_norm.weight", []int{hd}},
				paramSpec{pre + "self_attn.k_norm.weight", []int{hd}})
		}
		s = append(s,
			paramSpec{pre + "post_attention_layernorm.weight", []int{D}},
			paramSpec{pre + "mlp.gate_proj.weight", []int{F, D}},
			paramSpec{pre + "mlp.up_proj.weight", []int{F, D}},
			paramSpec{pre + "mlp.down_proj.weight", []int{D, F}},
		)
	}
	s = append(s, paramSpec{"model.norm.weight", []int{D}})
	if !c.TieWordEmbeddings {
		s = append(s, paramSpec{"lm_head.weight", []int{V, D}})
	}
	return s
}

// Tensors returns every parameter with its Hugging Face state-dict name,
// in storage order. With tied embeddings lm_head.weight is not listed (as
// save_pretrained leaves it out).
func (p *Params) Tensors() []NamedTensor {
	specs := paramSpecs(p.Config)
	out := make([]NamedTensor, 0, len(specs))
	off := 0
	for _, s := range specs {
		n := s.size()
		out = append(out, NamedTensor{Name: s.name, Shape: s.shape, Data: p.Data[off : off+n : off+n]})
		off += n
	}
	return out
}

// Tensor returns the parameter named name ("lm_head.weight" too when
// tied), or false.
func (p *Params) Tensor(name string) (NamedTensor, bool) {
	for _, t := range p.Tensors() {
		if t.Name == name {
			return t, true
		}
	}
	if name == "lm_head.weight" && p.Config.TieWordEmbeddings {
		return NamedTensor{Name: name, Shape: []int{p.Config.VocabSize, p.Config.HiddenSize}, Data: p.LMHead}, true
	}
	return NamedTensor{}, false
}

// NumParams returns the number of distinct parameters (len(Data)).
func (p *Params) NumParams() int { return len(p.Data) }

// Init sets the weights as transformers' PreTrainedModel does:
// linear and embedding weights from N(0, std²), RMSNorm weights to 1,
// biases to 0. The result depends only on seed.
func (p *Params) Init(seed uint64, std float64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed_11a3a))
	for _, t := range p.Tensors() {
		if strings.HasSuffix(t.Name, ".bias") {
			clear(t.Data)
			continue
		}
		if len(t.Shape) == 1 {
			for i := range t.Data {
				t.Data[i] = 1
			}
			continue
		}
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64() * std)
		}
	}
}

// Zero sets every value to 0 (for gradients).
func (p *Params) Zero() {
	clear(p.Data)
}

// CopyFrom copies q's values into p; both must have the same Config
// sizes.
func (p *Params) CopyFrom(q *Params) {
	if len(p.Data) != len(q.Data) {
		panic("model: CopyFrom between different layouts")
	}
	copy(p.Data, q.Data)
}

// Norm2 returns the Euclidean norm of all values, accumulated in float64
// (the gradient norm for clipping when p holds gradients).
func (p *Params) Norm2() float64 {
	var s float64
	for _, v := range p.Data {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}
