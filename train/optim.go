package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/sieve-data/sieve/train/model"
)

// AdamW is torch.optim.AdamW (PyTorch 1.13, single-tensor path, no
// amsgrad) over a model's trainable tensors. For each tensor, with
// gradient g, at update t = 1, 2, ... and learning rate lr:
//
//	p  ← p·(1 − lr·λ)                       decoupled weight decay (λ = 0 for 1-D tensors)
//	m  ← β₁·m + (1 − β₁)·g
//	v  ← β₂·v + (1 − β₂)·g²
//	p  ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//
// Every operation is done in float32 as torch does it on float32
// tensors, with the scalars (1 − lr·λ, the step size, √(1 − β₂ᵗ))
// computed in float64 first; eps is added after the bias correction, as
// in torch. The moments m and v are float32, zero at the start.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Steps is the number of updates applied (t of the last one).
	Steps int

	params []model.TrainableTensor
	m, v   [][]float32
	decay  []bool
}

// NewAdamW returns an optimizer for params. Weight decay applies to
// tensors of two or more dimensions only: noDecay reports the others
// (norm weights), by name.
func NewAdamW(params []model.TrainableTensor, noDecay func(name string) bool, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, params: params}
	o.m = make([][]float32, len(params))
	o.v = make([][]float32, len(params))
	o.decay = make([]bool, len(params))
	for i, t := range params {
		o.m[i] = make([]float32, len(t.P))
		o.v[i] = make([]float32, len(t.P))
		o.decay[i] = noDecay == nil || !noDecay(t.Name)
	}
	return o
}

// Update applies one AdamW step with learning rate lr to every tensor,
// from its gradient G.
func (o *AdamW) Update(lr float64) {
	o.Steps++
	t := float64(o.Steps)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	stepSize := float32(-(lr / bc1))
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	c1, c2 := float32(1-o.Beta1), float32(1-o.Beta2)
	eps := float32(o.Eps)
	for k, tt := range o.params {
		p, g, m, v := tt.P, tt.G, o.m[k], o.v[k]
		if o.decay[k] && o.WeightDecay != 0 {
			decay := float32(1 - lr*o.WeightDecay)
			for i := range p {
				p[i] *= decay
			}
		}
		for i := range p {
			gi := g[i]
			m[i] = fma32(c1, gi, m[i]*b1)
			v[i] = float32(v[i]*b2) + float32(float32(c2*gi)*gi)
			denom := float32(sqrt32(v[i])/bc2Sqrt) + eps
			p[i] += float32(stepSize*m[i]) / denom
		}
	}
}

// fma32 is x·y + z rounded once to float32 (the product of two float32
// values is exact in float64).
func fma32(x, y, z float32) float32 { return float32(float64(x)*float64(y) + float64(z)) }

// sqrt32 is the correctly rounded float32 square root.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// State returns the optimizer's moments as named tensors for a
// checkpoint: exp_avg.NAME and exp_avg_sq.NAME for each trainable
// tensor NAME, views of the optimizer's own storage.
func (o *AdamW) State() []model.NamedTensor {
	out := make([]model.NamedTensor, 0, 2*len(o.params))
	for i, t := range o.params {
		out = append(out,
			model.NamedTensor{Name: "exp_avg." + t.Name, Shape: []int{len(t.P)}, Data: o.m[i]},
			model.NamedTensor{Name: "exp_avg_sq." + t.Name, Shape: []int{len(t.P)}, Data: o.v[i]})
	}
	return out
}

// LoadState fills the moments from a safetensors file written from
// State; every tensor must be there with the right size.
func (o *AdamW) LoadState(path string) error {
	st, err := model.OpenSafetensors(path)
	if err != nil {
		return fmt.Errorf("optimizer state: %w", err)
	}
	defer st.Close()
	for _, t := range o.State() {
		if _, shape, ok := st.Info(t.Name); !ok || len(shape) != 1 || shape[0] != len(t.Data) {
			return fmt.Errorf("optimizer state %s: tensor %s missing or of another size (the checkpoint is of another model)", path, t.Name)
		}
		if err := st.ReadInto(t.Name, t.Data); err != nil {
			return fmt.Errorf("optimizer state: %w", err)
		}
	}
	return nil
}

// ClipGradNorm is torch.nn.utils.clip_grad_norm_ with the 2-norm: it
// returns the norm of all gradients taken together (before clipping) and
// multiplies every gradient by min(1, maxNorm/(norm + 1e-6)), in
// float32. The sums of squares run in float64.
func ClipGradNorm(params []model.TrainableTensor, maxNorm float64) float64 {
	var s float64
	for _, t := range params {
		for _, g := range t.G {
			s += float64(g) * float64(g)
		}
	}
	total := float32(math.Sqrt(s))
	coef := float32(maxNorm) / (total + float32(1e-6))
	if coef < 1 {
		for _, t := range params {
			for i := range t.G {
				t.G[i] *= coef
			}
		}
	}
	return float64(total)
}

// GradNorm returns the 2-norm of all gradients taken together.
func GradNorm(params []model.TrainableTensor) float64 {
	var s float64
	for _, t := range params {
		for _, g := range t.G {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// NoDecay reports the tensors AdamW does not decay: the RMSNorm weights
// (model.norm.weight and each layer's input_layernorm and
// post_attention_layernorm, the only 1-D tensors of a Llama model) and
// any bias.
func NoDecay(name string) bool {
	return strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, ".bias")
}

// CosineSchedule is transformers' get_cosine_schedule_with_warmup (and,
// with MinLRRatio > 0, get_cosine_with_min_lr_schedule_with_warmup with
// min_lr_rate): the learning rate of update number step (0-based; the
// first update uses step 0) is Peak·f(step) with
//
//	f(s) = s / max(1, W)                                            s < W
//	f(s) = max(0, r + (1 − r)·½(1 + cos(π·(s − W)/max(1, N − W))))  otherwise
//
// for W warmup steps, N training steps and minimum ratio r. With W > 0
// the first update has learning rate 0, as in transformers' Trainer.
type CosineSchedule struct {
	Peak       float64
	Warmup     int
	Total      int
	MinLRRatio float64
}

// LR returns the learning rate of update number step (0-based).
func (s CosineSchedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step) / float64(max(1, s.Warmup))
	}
	progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	f := 0.5 * (1 + math.Cos(math.Pi*0.5*2*progress))
	f = f*(1-s.MinLRRatio) + s.MinLRRatio
	return s.Peak * max(0, f)
}
