package model

// LoRA (Hu et al., 2021) and QLoRA (Dettmers et al., 2023) as PEFT lays
// them out. An adapter on the linear projection y = x·Wᵀ of a decoder
// layer (W [out, in]) adds a rank-r update:
//
//	t = x·Aᵀ                 A [r, in]   t [n, r]  (kept for Backward)
//	y = x·Wᵀ + s·t·Bᵀ        B [out, r]  s = α/r (α/√r with rsLoRA)
//
// and its backward, with the base weight W frozen, is
//
//	dB += s·dyᵀ·t,  dt = s·dy·B,  dA += dtᵀ·x,  dx = dy·W + dt·A.
//
// No gradient of any base weight is computed: the products dyᵀ·x that
// full fine-tuning spends on dW, and the head's and embedding's, are
// skipped, which is where LoRA saves time.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/blas"
)

// The projections of a decoder layer that adapters can target, in the
// order of their PEFT names (projNames).
const (
	projQ = iota
	projK
	projV
	projO
	projGate
	projUp
	projDown
	numProj
)

// projNames are PEFT's target_modules names of the projections.
var projNames = [numProj]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// projModule returns the LlamaForCausalLM module path of projection k of
// layer li, e.g. model.layers.0.self_attn.q_proj.
func projModule(li, k int) string {
	block := ".self_attn."
	if k >= projGate {
		block = ".mlp."
	}
	return "model.layers." + strconv.Itoa(li) + block + projNames[k]
}

// projDims returns the input and output sizes of projection k.
func projDims(c Config, k int) (in, out int) {
	D, F := c.HiddenSize, c.IntermediateSize
	qd, kvd := c.NumAttentionHeads*c.Hd(), c.KVHeads()*c.Hd()
	switch k {
	case projQ:
		return D, qd
	case projK, projV:
		return D, kvd
	case projO:
		return qd, D
	case projGate, projUp:
		return D, F
	default:
		return F, D
	}
}

// projWeight returns a pointer to the field of l holding projection k.
func (l *Layer) projWeight(k int) *[]float32 {
	switch k {
	case projQ:
		return &l.Q
	case projK:
		return &l.K
	case projV:
		return &l.V
	case projO:
		return &l.O
	case projGate:
		return &l.Gate
	case projUp:
		return &l.Up
	default:
		return &l.Down
	}
}

// LoRAConfig configures the adapters of EnableLoRA, with the meaning of
// PEFT's LoraConfig fields of the same names (r, lora_alpha,
// target_modules, use_rslora). Dropout is not implemented (lora_dropout
// 0) and the adapters have no bias.
type LoRAConfig struct {
	Rank    int      // r, the rank of the update; > 0
	Alpha   float64  // lora_alpha; 0 means Rank (scaling 1 without RSLoRA)
	Targets []string // target_modules among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; empty or "all-linear" means all
	RSLoRA  bool     // use_rslora: scaling α/√r instead of α/r
	Seed    uint64   // seed of the lora_A initialisation
}

// Scaling returns the factor s of the update s·B·A: Alpha/Rank, or
// Alpha/√Rank with RSLoRA.
func (c LoRAConfig) Scaling() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.Rank))
	}
	return c.Alpha / float64(c.Rank)
}

// normalize checks c, fills in the defaults and returns the targeted
// projections; Targets comes back in canonical order.
func (c LoRAConfig) normalize() (LoRAConfig, [numProj]bool, error) {
	var on [numProj]bool
	if c.Rank <= 0 {
		return c, on, fmt.Errorf("model: LoRA rank %d must be positive", c.Rank)
	}
	if c.Alpha == 0 {
		c.Alpha = float64(c.Rank)
	}
	if !(c.Alpha > 0) || math.IsInf(c.Alpha, 0) {
		return c, on, fmt.Errorf("model: LoRA alpha %g must be positive and finite", c.Alpha)
	}
	if len(c.Targets) == 0 {
		c.Targets = []string{"all-linear"}
	}
	for _, t := range c.Targets {
		if t == "all-linear" {
			for k := range on {
				on[k] = true
			}
			continue
		}
		k := projIndex(t)
		if k < 0 {
			return c, on, fmt.Errorf("model: LoRA target %q is not one of %s or all-linear", t, strings.Join(projNames[:], ", "))
		}
		on[k] = true
	}
	c.Targets = nil
	for k, ok := range on {
		if ok {
			c.Targets = append(c.Targets, projNames[k])
		}
	}
	return c, on, nil
}

func projIndex(name string) int {
	for k, p := range projNames {
		if p == name {
			return k
		}
	}
	return -1
}

// adapter is the LoRA adapter of one projection.
type adapter struct {
	in, out int
	A, B    []float32 // [r, in], [out, r], views into loraState.data
	dA, dB  []float32 // their gradients, views into loraState.grad
	t       []float32 // [maxB·maxT, r] x·Aᵀ of the last Forward
}

// loraState is the adapters of a Model and their scratch.
type loraState struct {
	cfg        LoRAConfig // normalized
	on         [numProj]bool
	r          int
	scale      float32
	data, grad []float32           // every adapter weight and gradient, in Trainable order
	ad         [][numProj]*adapter // per layer; nil where not targeted
	dt, tT     []float32           // [maxB·maxT, r], [r, maxB·maxT] backward scratch
	dtT        []float32           // [r, maxB·maxT]
	bT, dBT    []float32           // [r, largest out]
	wT         []float32           // transposed frozen weight, grown on demand
	noGrad     *Params             // stands in for Model.G: every tensor nil
	names      []string            // PEFT names, in Trainable order
	views      [][2][]float32      // weight and gradient views, in Trainable order
	shapes     [][]int             // their shapes
}

// peftPrefix is the prefix PEFT's PeftModelForCausalLM adds to the
// module names of the base model in saved adapters.
const peftPrefix = "base_model.model."

// newLoRA allocates zeroed adapters for cfg on a model of config c with
// a workspace of maxN tokens.
func newLoRA(c Config, cfg LoRAConfig, maxN int) (*loraState, error) {
	cfg, on, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := cfg.Rank
	l := &loraState{cfg: cfg, on: on, r: r, scale: float32(cfg.Scaling())}
	L := c.NumHiddenLayers
	size := 0
	for k, ok := range on {
		if ok {
			in, out := projDims(c, k)
			size += L * r * (in + out)
		}
	}
	l.data, l.grad = make([]float32, size), make([]float32, size)
	l.ad = make([][numProj]*adapter, L)
	l.dt, l.tT, l.dtT = make([]float32, maxN*r), make([]float32, maxN*r), make([]float32, maxN*r)
	largest := 0
	for k, ok := range on {
		if _, out := projDims(c, k); ok {
			largest = max(largest, out)
		}
	}
	l.bT, l.dBT = make([]float32, r*largest), make([]float32, r*largest)
	off := 0
	take := func(k int) ([]float32, []float32) {
		a, g := l.data[off:off+k:off+k], l.grad[off:off+k:off+k]
		off += k
		return a, g
	}
	for li := 0; li < L; li++ {
		for k, ok := range on {
			if !ok {
				continue
			}
			in, out := projDims(c, k)
			ad := &adapter{in: in, out: out, t: make([]float32, maxN*r)}
			ad.A, ad.dA = take(r * in)
			ad.B, ad.dB = take(out * r)
			l.ad[li][k] = ad
			name := peftPrefix + projModule(li, k)
			l.names = append(l.names, name+".lora_A.weight", name+".lora_B.weight")
			l.views = append(l.views, [2][]float32{ad.A, ad.dA}, [2][]float32{ad.B, ad.dB})
			l.shapes = append(l.shapes, []int{r, in}, []int{out, r})
		}
	}
	l.noGrad = &Params{Config: c, Layers: make([]Layer, L)}
	return l, nil
}

// initA sets every lora_A as PEFT does, torch.nn.init.kaiming_uniform_
// with a = √5: U(−1/√in, 1/√in) (gain √(2/(1+a²)) = √(1/3), bound
// gain·√(3/in)); lora_B stays zero, so that the adapted model starts
// equal to the base.
func (l *loraState) initA(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x10_4a_5eed))
	for _, row := range l.ad {
		for _, ad := range row {
			if ad == nil {
				continue
			}
			bound := 1 / math.Sqrt(float64(ad.in))
			for i := range ad.A {
				ad.A[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
	}
}

// EnableLoRA freezes the base weights and adds zero-initialised adapters
// (lora_B = 0, lora_A from Kaiming-uniform as PEFT) to the targeted
// projections of every layer. From then on Forward adds the adapters'
// updates, Backward computes the adapters' gradients and the input
// gradients through base and adapters but no base weight gradient
// (m.G is neither read nor written, and may be set to nil to free it),
// ZeroGrad clears the adapter gradients, and Trainable returns the
// adapters with their PEFT names. MergeLoRA folds the adapters back
// into the weights.
func (m *Model) EnableLoRA(cfg LoRAConfig) error {
	if m.lora != nil {
		return errors.New("model: LoRA is already enabled")
	}
	l, err := newLoRA(m.Config, cfg, m.MaxB*m.MaxT)
	if err != nil {
		return err
	}
	l.initA(l.cfg.Seed)
	m.lora = l
	return nil
}

// LoRA returns the adapters' configuration (Alpha and Targets filled
// in) and whether LoRA is enabled.
func (m *Model) LoRA() (LoRAConfig, bool) {
	if m.lora == nil {
		return LoRAConfig{}, false
	}
	c := m.lora.cfg
	c.Targets = append([]string(nil), c.Targets...)
	return c, true
}

// trainable returns the adapter tensors in storage order: layer by
// layer, q_proj … down_proj, lora_A before lora_B.
func (l *loraState) trainable() []TrainableTensor {
	out := make([]TrainableTensor, len(l.names))
	for i, n := range l.names {
		out[i] = TrainableTensor{Name: n, P: l.views[i][0], G: l.views[i][1]}
	}
	return out
}

// fwdLinear computes projection k of layer li: y = x·Wᵀ, or y += x·Wᵀ
// when add, plus the adapter's s·(x·Aᵀ)·Bᵀ when there is one. A nil w is
// a quantized weight, dequantized first. x [n, in], y [n, out].
func (m *Model) fwdLinear(li, k int, y, x, w []float32, n, in, out int, add bool) {
	w = m.opWeight(li, k, w)
	if add {
		linearForwardAdd(y, x, w, n, in, out)
	} else {
		linearForward(y, x, w, n, in, out)
	}
	if m.lora != nil {
		if ad := m.lora.ad[li][k]; ad != nil {
			m.lora.forward(ad, y, x, n)
		}
	}
}

// backLinear is the backward of a linear layer: projection k of layer li,
// or the head when li < 0. Without LoRA it is linearBackward: it adds
// alpha·dyᵀ·x into dw and sets (beta 0) or adds (beta 1) alpha·dy·W
// into dx. With LoRA the weight is frozen: dw is not touched, dx gets
// alpha·dy·W and the adapter's input gradient, and the adapter's
// gradients accumulate.
func (m *Model) backLinear(li, k int, dx, dw, dy, x, w []float32, n, in, out int, alpha, beta float32) {
	l := m.lora
	w = m.opWeight(li, k, w)
	if l == nil {
		linearBackward(dx, dw, dy, x, w, n, in, out, alpha, beta, &m.scr)
		return
	}
	l.inputGrad(dx, dy, w, n, in, out, alpha, beta, m.workers)
	if li >= 0 {
		if ad := l.ad[li][k]; ad != nil {
			l.backward(ad, dx, dy, x, n, alpha)
		}
	}
}

// grads returns where Backward adds base gradients: m.G, or with LoRA a
// Params of nil tensors that nothing writes.
func (m *Model) grads() *Params {
	if m.lora != nil {
		return m.lora.noGrad
	}
	return m.G
}

// forward sets t = x·Aᵀ and adds s·t·Bᵀ into y.
//
// With gonum's native kernels each product runs in the form they compute
// fast for its shape: A·Bᵀ (dot products) when the inner dimension is
// long, A·B (row updates) when it is the rank r; the small transposed
// copies (Bᵀ, tᵀ, dtᵀ) go to the scratch in l. Other implementations
// (OpenBLAS) get the products as written.
func (l *loraState) forward(ad *adapter, y, x []float32, n int) {
	r, s, in, out := l.r, l.scale, ad.in, ad.out
	t := ad.t[:n*r]
	gemm(blas.NoTrans, blas.Trans, 1, mat(x, n, in), mat(ad.A, r, in), 0, mat(t, n, r))
	if !nativeBLAS() {
		gemm(blas.NoTrans, blas.Trans, s, mat(t, n, r), mat(ad.B, out, r), 1, mat(y, n, out))
		return
	}
	bT := l.bT[:r*out]
	transposeTo(bT, ad.B, out, r, 1)
	gemm(blas.NoTrans, blas.NoTrans, s, mat(t, n, r), mat(bT, r, out), 1, mat(y, n, out))
}

// backward accumulates the adapter's gradients for the output gradient
// dy, scaled by alpha, and adds the adapter's input gradient into dx:
//
//	dt = s·dy·B,  dB += s·dyᵀ·t,  dA += dtᵀ·x,  dx += dt·A   (s = alpha·scaling)
func (l *loraState) backward(ad *adapter, dx, dy, x []float32, n int, alpha float32) {
	r, s, in, out := l.r, alpha*l.scale, ad.in, ad.out
	t, dt := ad.t[:n*r], l.dt[:n*r]
	if !nativeBLAS() {
		gemm(blas.NoTrans, blas.NoTrans, s, mat(dy, n, out), mat(ad.B, out, r), 0, mat(dt, n, r))
		gemm(blas.Trans, blas.NoTrans, s, mat(dy, n, out), mat(t, n, r), 1, mat(ad.dB, out, r))
		gemm(blas.Trans, blas.NoTrans, 1, mat(dt, n, r), mat(x, n, in), 1, mat(ad.dA, r, in))
		gemm(blas.NoTrans, blas.NoTrans, 1, mat(dt, n, r), mat(ad.A, r, in), 1, mat(dx, n, in))
		return
	}
	bT, tT, dtT, dBT := l.bT[:r*out], l.tT[:r*n], l.dtT[:r*n], l.dBT[:r*out]
	// dt = s·dy·(Bᵀ)ᵀ
	transposeTo(bT, ad.B, out, r, 1)
	gemm(blas.NoTrans, blas.Trans, s, mat(dy, n, out), mat(bT, r, out), 0, mat(dt, n, r))
	// dBᵀ = s·tᵀ·dy, added transposed into dB
	transposeTo(tT, t, n, r, 1)
	gemm(blas.NoTrans, blas.NoTrans, s, mat(tT, r, n), mat(dy, n, out), 0, mat(dBT, r, out))
	for o := 0; o < out; o++ {
		row := ad.dB[o*r : (o+1)*r]
		for k := range row {
			row[k] += dBT[k*out+o]
		}
	}
	// dA += dtᵀ·x
	transposeTo(dtT, dt, n, r, 1)
	gemm(blas.NoTrans, blas.NoTrans, 1, mat(dtT, r, n), mat(x, n, in), 1, mat(ad.dA, r, in))
	// dx += dt·A
	gemm(blas.NoTrans, blas.NoTrans, 1, mat(dt, n, r), mat(ad.A, r, in), 1, mat(dx, n, in))
}

// inputGrad sets (beta 0) or adds (beta 1) alpha·dy·W into dx for a
// frozen W [out, in]. With gonum's native kernels the product runs in
// their fast A·Bᵀ form on a transposed copy of W (as linearBackward).
func (l *loraState) inputGrad(dx, dy, w []float32, n, in, out int, alpha, beta float32, workers int) {
	if !nativeBLAS() {
		gemm(blas.NoTrans, blas.NoTrans, alpha, mat(dy, n, out), mat(w, out, in), beta, mat(dx, n, in))
		return
	}
	if cap(l.wT) < in*out {
		l.wT = make([]float32, in*out)
	}
	wT := l.wT[:in*out]
	transposeTo(wT, w, out, in, workers)
	gemm(blas.NoTrans, blas.Trans, alpha, mat(dy, n, out), mat(wT, in, out), beta, mat(dx, n, in))
}

// transposeTo sets dst [cols, rows] to srcᵀ, src [rows, cols], in 16×16
// tiles; the columns of src are split among workers goroutines.
func transposeTo(dst, src []float32, rows, cols, workers int) {
	const tile = 16
	parallelFor(workers, (cols+tile-1)/tile, func(_, lo, hi int) {
		for j0 := lo * tile; j0 < min(hi*tile, cols); j0 += tile {
			j1 := min(j0+tile, cols)
			for i0 := 0; i0 < rows; i0 += tile {
				i1 := min(i0+tile, rows)
				for j := j0; j < j1; j++ {
					d := dst[j*rows+i0 : j*rows+i1]
					for k := range d {
						d[k] = src[(i0+k)*cols+j]
					}
				}
			}
		}
	})
}

// fold adds s·B·A into the weights of p for every adapter; p must hold
// every targeted projection in float32. Each merged weight is computed
// in float64 and rounded once, w ← float32(w + s·Σₖ B[i,k]·A[k,j]) with
// k in order, so the result does not depend on the BLAS in use and can
// be recomputed exactly from the files.
func (l *loraState) fold(p *Params, workers int) {
	s := l.cfg.Scaling()
	for li, row := range l.ad {
		for k, ad := range row {
			if ad == nil {
				continue
			}
			w := *p.Layers[li].projWeight(k)
			r, in := l.r, ad.in
			parallelFor(workers, ad.out, func(_, lo, hi int) {
				b := make([]float64, r)
				for i := lo; i < hi; i++ {
					for q := range b {
						b[q] = float64(ad.B[i*r+q])
					}
					wi := w[i*in : (i+1)*in]
					for j := range wi {
						var d float64
						for q, bq := range b {
							d += bq * float64(ad.A[q*in+j])
						}
						wi[j] = float32(float64(wi[j]) + s*d)
					}
				}
			})
		}
	}
}

// MergedParams returns new float32 weights equal to the base (quantized
// projections dequantized) with every adapter folded in, W + s·B·A; the
// model is unchanged. Save the result with Params.Save for a full
// checkpoint of the adapted model.
func (m *Model) MergedParams() (*Params, error) {
	if m.lora == nil {
		return nil, errors.New("model: MergedParams: LoRA is not enabled")
	}
	p, err := m.baseParams()
	if err != nil {
		return nil, err
	}
	m.lora.fold(p, m.workers)
	return p, nil
}

// baseParams returns a full float32 copy of the base weights.
func (m *Model) baseParams() (*Params, error) {
	p, err := NewParams(m.Config)
	if err != nil {
		return nil, err
	}
	if m.quant == nil {
		p.CopyFrom(m.P)
		return p, nil
	}
	src := m.P
	copy(p.Embed, src.Embed)
	copy(p.Norm, src.Norm)
	if !m.Config.TieWordEmbeddings {
		copy(p.LMHead, src.LMHead)
	}
	for li := range p.Layers {
		d, s := &p.Layers[li], &src.Layers[li]
		ds, ss := d.small(), s.small()
		for i := range ds {
			copy(*ds[i], *ss[i])
		}
		for k := 0; k < numProj; k++ {
			if q := m.quant.w[li][k]; q != nil {
				q.dequantize(*d.projWeight(k), m.workers)
			} else {
				copy(*d.projWeight(k), *s.projWeight(k))
			}
		}
	}
	return p, nil
}

// MergeLoRA folds the adapters into the base weights (W += s·B·A, as
// PEFT's merge_and_unload) and turns LoRA off: the model is then a plain
// float32 model whose P can be saved with Params.Save and trained in
// full. Float32 weights are updated in place; a quantized base is
// dequantized into a new Params first. m.G is allocated again if it was
// released.
func (m *Model) MergeLoRA() error {
	if m.lora == nil {
		return errors.New("model: MergeLoRA: LoRA is not enabled")
	}
	p := m.P
	if m.quant != nil {
		var err error
		if p, err = m.MergedParams(); err != nil {
			return err
		}
	} else {
		m.lora.fold(p, m.workers)
	}
	g := m.G
	if g == nil {
		var err error
		if g, err = NewParams(m.Config); err != nil {
			return err
		}
	}
	m.P, m.G, m.lora, m.quant = p, g, nil, nil
	return nil
}

// ---------------------------------------------------------------------
// QLoRA: the frozen projections in NF4.

// quantState holds the quantized projections and the buffer they are
// dequantized into, one at a time, right before their products.
type quantState struct {
	blockSize int
	w         [][numProj]*NF4 // per layer; nil where float32
	buf       []float32       // the largest projection
}

// weight dequantizes projection k of layer li into the shared buffer
// and returns it (valid until the next call).
func (q *quantState) weight(li, k, workers int) []float32 {
	t := q.w[li][k]
	buf := q.buf[:t.Len()]
	t.dequantize(buf, workers)
	return buf
}

// QuantizeBase stores the targeted projections of the frozen base in NF4
// with blocks of blockSize values (0: DefaultNF4BlockSize, 64) and frees
// their float32 copies: m.P is replaced by a compact Params that holds
// only the weights that stay float32 (embeddings, norms, head and
// untargeted projections; the targeted Layer fields are nil, and its
// Tensors, Save and LoadSafetensors do not apply), and m.G, which LoRA
// never writes, is released. Forward and Backward dequantize each
// weight into one reusable buffer right before its product; MergeLoRA
// and MergedParams dequantize. The memory of the float32 weights is
// returned to the garbage collector only when the caller holds no other
// reference to the Params given to New. LoRA must be enabled first.
func (m *Model) QuantizeBase(blockSize int) error {
	if m.lora == nil {
		return errors.New("model: QuantizeBase: enable LoRA first (a quantized base is trained through adapters only)")
	}
	if m.quant != nil {
		return errors.New("model: QuantizeBase: the base is already quantized")
	}
	if blockSize == 0 {
		blockSize = DefaultNF4BlockSize
	}
	c := m.Config
	q := &quantState{blockSize: blockSize, w: make([][numProj]*NF4, c.NumHiddenLayers)}
	largest := 0
	for li := range q.w {
		for k, on := range m.lora.on {
			if !on {
				continue
			}
			in, out := projDims(c, k)
			t, err := QuantizeNF4(*m.P.Layers[li].projWeight(k), []int{out, in}, blockSize)
			if err != nil {
				return fmt.Errorf("model: quantize %s: %w", projModule(li, k), err)
			}
			q.w[li][k] = t
			largest = max(largest, in*out)
		}
	}
	q.buf = make([]float32, largest)
	m.P, m.G, m.quant = compactParams(m.P, m.lora.on), nil, q
	return nil
}

// Quantized reports whether QuantizeBase has put the base in NF4.
func (m *Model) Quantized() bool { return m.quant != nil }

// compactParams copies src without the projections marked in drop into
// a new Params whose Data holds only what is kept.
func compactParams(src *Params, drop [numProj]bool) *Params {
	c := src.Config
	size := len(src.Embed) + len(src.Norm)
	if !c.TieWordEmbeddings {
		size += len(src.LMHead)
	}
	for i := range src.Layers {
		s := &src.Layers[i]
		for _, t := range s.small() {
			size += len(*t)
		}
		for k := 0; k < numProj; k++ {
			if !drop[k] {
				size += len(*s.projWeight(k))
			}
		}
	}
	p := &Params{Config: c, Data: make([]float32, size), Layers: make([]Layer, len(src.Layers))}
	off := 0
	take := func(v []float32) []float32 {
		d := p.Data[off : off+len(v) : off+len(v)]
		copy(d, v)
		off += len(v)
		return d
	}
	p.Embed = take(src.Embed)
	for i := range src.Layers {
		s, d := &src.Layers[i], &p.Layers[i]
		ds, ss := d.small(), s.small()
		for j := range ds {
			if *ss[j] != nil {
				*ds[j] = take(*ss[j])
			}
		}
		for k := 0; k < numProj; k++ {
			if !drop[k] {
				*d.projWeight(k) = take(*s.projWeight(k))
			}
		}
	}
	p.Norm = take(src.Norm)
	if c.TieWordEmbeddings {
		p.LMHead = p.Embed
	} else {
		p.LMHead = take(src.LMHead)
	}
	return p
}

// Footprint is the memory a Model holds for its weights, in bytes (the
// activation workspace of New, which depends on the batch size, is not
// counted).
type Footprint struct {
	Weights   int64 // float32 base weights (P.Data)
	Quantized int64 // NF4 codes and block scales of the quantized projections
	Grads     int64 // float32 base gradients (G.Data); 0 once released
	Adapters  int64 // LoRA weights and gradients
	Scratch   int64 // LoRA activations x·Aᵀ, backward scratch, dequantized and transposed weight buffers, bf16 buffers
}

// Total returns the sum of the parts.
func (f Footprint) Total() int64 { return f.Weights + f.Quantized + f.Grads + f.Adapters + f.Scratch }

// Footprint returns the memory the model holds for weights, gradients
// and adapters.
func (m *Model) Footprint() Footprint {
	var f Footprint
	f.Weights = 4 * int64(len(m.P.Data))
	if m.G != nil {
		f.Grads = 4 * int64(len(m.G.Data))
	}
	if l := m.lora; l != nil {
		f.Adapters = 4 * int64(len(l.data)+len(l.grad))
		f.Scratch += 4 * int64(cap(l.dt)+cap(l.tT)+cap(l.dtT)+cap(l.bT)+cap(l.dBT)+cap(l.wT))
		for _, row := range l.ad {
			for _, ad := range row {
				if ad != nil {
					f.Scratch += 4 * int64(cap(ad.t))
				}
			}
		}
	}
	f.Scratch += m.bf16Bytes()
	if q := m.quant; q != nil {
		f.Scratch += 4 * int64(cap(q.buf))
		for _, row := range q.w {
			for _, t := range row {
				if t != nil {
					f.Quantized += t.Bytes()
				}
			}
		}
	}
	return f
}

// ---------------------------------------------------------------------
// PEFT's adapter format: adapter_config.json and
// adapter_model.safetensors, names base_model.model.<module>.lora_A.weight
// [r, in] and .lora_B.weight [out, r].

// peftConfig is the adapter_config.json that SaveAdapter writes: the
// keys of PEFT's LoraConfig that describe a plain LoRA adapter.
type peftConfig struct {
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	BaseModel         string             `json:"base_model_name_or_path"`
	Bias              string             `json:"bias"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	InferenceMode     bool               `json:"inference_mode"`
	InitLoraWeights   bool               `json:"init_lora_weights"`
	LayersToTransform []int              `json:"layers_to_transform"`
	LoraAlpha         float64            `json:"lora_alpha"`
	LoraDropout       float64            `json:"lora_dropout"`
	ModulesToSave     []string           `json:"modules_to_save"`
	PeftType          string             `json:"peft_type"`
	R                 int                `json:"r"`
	RankPattern       map[string]int     `json:"rank_pattern"`
	TargetModules     []string           `json:"target_modules"`
	TaskType          string             `json:"task_type"`
	UseDora           bool               `json:"use_dora"`
	UseRSLoRA         bool               `json:"use_rslora"`
}

// SaveAdapter writes the adapters to dir (created if needed) as PEFT's
// save_pretrained does: adapter_config.json (LoraConfig, peft_type LORA,
// task_type CAUSAL_LM, base_model_name_or_path baseModel) and
// adapter_model.safetensors (F32). peft.PeftModel.from_pretrained loads
// the result onto the base model.
func (m *Model) SaveAdapter(dir string, baseModel string) error {
	l := m.lora
	if l == nil {
		return errors.New("model: SaveAdapter: LoRA is not enabled")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: save adapter: %w", err)
	}
	cfg := peftConfig{
		AlphaPattern: map[string]float64{}, BaseModel: baseModel, Bias: "none",
		InferenceMode: true, InitLoraWeights: true, LoraAlpha: l.cfg.Alpha, PeftType: "LORA",
		R: l.r, RankPattern: map[string]int{}, TargetModules: l.cfg.Targets,
		TaskType: "CAUSAL_LM", UseRSLoRA: l.cfg.RSLoRA,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("model: save adapter: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("model: save adapter: %w", err)
	}
	ts := make([]NamedTensor, len(l.names))
	for i, n := range l.names {
		ts[i] = NamedTensor{Name: n, Shape: l.shapes[i], Data: l.views[i][0]}
	}
	return WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), ts, F32, map[string]string{"format": "pt"})
}

// peftConfigIn is adapter_config.json as read: fields whose type varies
// between PEFT versions and uses are kept raw.
type peftConfigIn struct {
	PeftType          string          `json:"peft_type"`
	R                 int             `json:"r"`
	LoraAlpha         float64         `json:"lora_alpha"`
	TargetModules     json.RawMessage `json:"target_modules"`
	Bias              string          `json:"bias"`
	FanInFanOut       bool            `json:"fan_in_fan_out"`
	UseRSLoRA         bool            `json:"use_rslora"`
	UseDora           bool            `json:"use_dora"`
	LoraBias          bool            `json:"lora_bias"`
	RankPattern       map[string]any  `json:"rank_pattern"`
	AlphaPattern      map[string]any  `json:"alpha_pattern"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	LayerReplication  json.RawMessage `json:"layer_replication"`
	ModulesToSave     []string        `json:"modules_to_save"`
	TargetParameters  []string        `json:"target_parameters"`
	TrainableTokens   json.RawMessage `json:"trainable_token_indices"`
	// Variants that change the forward pass without tensors of their own.
	ALoRATokens json.RawMessage `json:"alora_invocation_tokens"`
	UseQALoRA   bool            `json:"use_qalora"`
	UseBDLoRA   json.RawMessage `json:"use_bdlora"`
	ArrowConfig json.RawMessage `json:"arrow_config"`
	MonteCLoRA  json.RawMessage `json:"monteclora_config"`
}

// rawTrue reports whether a JSON value is set to something other than
// null or false.
func rawTrue(r json.RawMessage) bool { return rawSet(r) && string(r) != "false" }

func rawSet(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }

// readAdapterConfig parses dir/adapter_config.json and rejects the PEFT
// features this package does not implement.
func readAdapterConfig(dir string) (peftConfigIn, error) {
	var c peftConfigIn
	path := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("model: load adapter: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("model: load adapter: parse %s: %w", path, err)
	}
	var unsupported []string
	switch {
	case c.PeftType != "LORA":
		unsupported = append(unsupported, fmt.Sprintf("peft_type %q", c.PeftType))
	case c.Bias != "" && c.Bias != "none":
		unsupported = append(unsupported, fmt.Sprintf("bias %q", c.Bias))
	}
	for _, f := range []struct {
		set  bool
		name string
	}{
		{c.FanInFanOut, "fan_in_fan_out"}, {c.UseDora, "use_dora"}, {c.LoraBias, "lora_bias"},
		{len(c.RankPattern) > 0, "rank_pattern"}, {len(c.AlphaPattern) > 0, "alpha_pattern"},
		{rawSet(c.LayersToTransform), "layers_to_transform"}, {rawSet(c.LayerReplication), "layer_replication"},
		{len(c.ModulesToSave) > 0, "modules_to_save"}, {len(c.TargetParameters) > 0, "target_parameters"},
		{rawSet(c.TrainableTokens), "trainable_token_indices"}, {rawSet(c.ALoRATokens), "alora_invocation_tokens"},
		{c.UseQALoRA, "use_qalora"}, {rawTrue(c.UseBDLoRA), "use_bdlora"}, {rawSet(c.ArrowConfig), "arrow_config"},
		{rawSet(c.MonteCLoRA), "monteclora_config"},
	} {
		if f.set {
			unsupported = append(unsupported, f.name)
		}
	}
	if len(unsupported) > 0 {
		return c, fmt.Errorf("model: load adapter %s: unsupported: %s", path, strings.Join(unsupported, ", "))
	}
	if c.R <= 0 {
		return c, fmt.Errorf("model: load adapter %s: r %d must be positive", path, c.R)
	}
	return c, nil
}

// LoadAdapter reads a PEFT LoRA adapter (adapter_config.json and
// adapter_model.safetensors, as SaveAdapter or PEFT's save_pretrained
// write them) from dir. The targeted projections are those with tensors
// in the file, which must match a target_modules list when the config
// gives one; every layer must have them. Without LoRA enabled it enables
// LoRA with the adapter's rank, alpha, rsLoRA and targets; with LoRA
// enabled (quantized base or not) the rank and targets must match, and
// the adapter's weights and scaling replace the current ones (gradients
// are cleared). lora_dropout is ignored (this package has no dropout);
// DoRA, biases, rank or alpha patterns and other PEFT extensions are
// rejected.
func (m *Model) LoadAdapter(dir string) error {
	cfg, err := readAdapterConfig(dir)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	st, err := OpenSafetensors(path)
	if err != nil {
		return fmt.Errorf("model: load adapter: %w", err)
	}
	defer st.Close()

	// Which projections the file adapts, and that every layer has both
	// matrices of each.
	c := m.Config
	var on [numProj]bool
	have := map[string]bool{}
	for _, name := range st.Names() {
		k, ok := parseAdapterName(name, c.NumHiddenLayers)
		if !ok {
			return fmt.Errorf("model: load adapter %s: unexpected tensor %q (not a LoRA matrix of a Llama projection)", path, name)
		}
		on[k] = true
		have[name] = true
	}
	var targets []string
	for k, ok := range on {
		if ok {
			targets = append(targets, projNames[k])
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("model: load adapter %s: no LoRA tensors", path)
	}
	if err := checkTargetModules(cfg.TargetModules, on, c.NumHiddenLayers); err != nil {
		return fmt.Errorf("model: load adapter %s: %w", path, err)
	}
	for li := 0; li < c.NumHiddenLayers; li++ {
		for k, ok := range on {
			for _, ab := range []string{".lora_A.weight", ".lora_B.weight"} {
				if n := peftPrefix + projModule(li, k) + ab; ok && !have[n] {
					return fmt.Errorf("model: load adapter %s: missing %q", path, n)
				}
			}
		}
	}

	want := LoRAConfig{Rank: cfg.R, Alpha: cfg.LoraAlpha, Targets: targets, RSLoRA: cfg.UseRSLoRA}
	want, _, err = want.normalize()
	if err != nil {
		return fmt.Errorf("model: load adapter %s: %w", path, err)
	}
	l := m.lora
	if l == nil {
		if l, err = newLoRA(c, want, m.MaxB*m.MaxT); err != nil {
			return err
		}
	} else if l.r != want.Rank || l.on != on {
		return fmt.Errorf("model: load adapter %s: rank %d targets %v do not match the enabled LoRA (rank %d targets %v)",
			path, want.Rank, want.Targets, l.r, l.cfg.Targets)
	}
	// Read into a copy so that a failure leaves the model as it was.
	vals := make([]float32, len(l.data))
	off := 0
	for i, name := range l.names {
		n := len(l.views[i][0])
		_, shape, _ := st.Info(name)
		if !equalShape(shape, l.shapes[i]) {
			return fmt.Errorf("model: load adapter %s: tensor %q has shape %v, want %v", path, name, shape, l.shapes[i])
		}
		if err := st.ReadInto(name, vals[off:off+n]); err != nil {
			return fmt.Errorf("model: load adapter: %w", err)
		}
		off += n
	}
	copy(l.data, vals)
	clear(l.grad)
	want.Seed = l.cfg.Seed
	l.cfg, l.scale = want, float32(want.Scaling())
	m.lora = l
	return nil
}

// parseAdapterName returns the projection of a tensor named
// base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.lora_{A|B}.weight
// with i < layers.
func parseAdapterName(name string, layers int) (k int, ok bool) {
	rest, ok := strings.CutPrefix(name, peftPrefix+"model.layers.")
	if !ok {
		return 0, false
	}
	idx, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	li, err := strconv.Atoi(idx)
	if err != nil || li < 0 || li >= layers || strconv.Itoa(li) != idx {
		return 0, false
	}
	for k := range projNames {
		mod := peftPrefix + projModule(li, k)
		if name == mod+".lora_A.weight" || name == mod+".lora_B.weight" {
			return k, true
		}
	}
	return 0, false
}

// checkTargetModules checks a target_modules value against the
// projections that have tensors in the file (on, in every layer). A
// string (all-linear, or a regular expression) is left to the tensors. A
// list matches a module when an entry equals its name or a suffix of it
// after a dot, as PEFT matches (q_proj, self_attn.q_proj and
// model.layers.0.self_attn.q_proj all match layer 0's q_proj; PEFT saves
// the full names when it resolved all-linear): every module with
// tensors must match, every projection that matches must have tensors,
// and every entry must match a projection.
func checkTargetModules(raw json.RawMessage, on [numProj]bool, layers int) error {
	if !rawSet(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("target_modules: %w", err)
	}
	used := make([]bool, len(list))
	for li := 0; li < layers; li++ {
		for k := range projNames {
			mod := projModule(li, k)
			matched := false
			for i, e := range list {
				if e == mod || strings.HasSuffix(mod, "."+e) {
					matched, used[i] = true, true
				}
			}
			switch {
			case on[k] && !matched:
				return fmt.Errorf("the file adapts %s, which target_modules %v does not name", mod, list)
			case matched && !on[k]:
				return fmt.Errorf("target_modules %v names %s, which has no tensors in the file", list, mod)
			}
		}
	}
	for i, e := range list {
		if !used[i] {
			return fmt.Errorf("target_modules entry %q matches no projection of this model", e)
		}
	}
	return nil
}
