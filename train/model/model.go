package model

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Model runs a Llama model forward and backward on batches of up to
// MaxB×MaxT tokens. All activations and gradient scratch live in buffers
// allocated once by New; Forward and Backward allocate nothing but the
// goroutines that split the work.
//
// A Model is not safe for concurrent use.
type Model struct {
	Config Config
	P      *Params // weights, read by Forward and Backward
	G      *Params // gradients, same layout as P; Backward adds into G

	MaxB, MaxT int

	// Set by Forward.
	batch     *Batch
	n         int     // tokens B·T
	loss      float32 // mean loss over counted tokens
	count     int     // counted tokens
	forwarded bool

	invFreq  []float32 // [hd/2]
	cos, sin []float32 // [n, hd/2]
	pos      []int     // [n] positions when the batch gives none
	lo       []int32   // [n] first token (column) of each token's segment

	acts   []layerActs // per layer
	xf     []float32   // [n, D] output of the last layer
	rf     []float32   // [n] final RMSNorm 1/rms
	hf     []float32   // [n, D] final RMSNorm output
	logits []float32   // [n, V]
	dlog   []float32   // [n, V] (softmax − onehot)/count

	// Backward scratch.
	dx, dh    []float32 // [n, D]
	dq, dy    []float32 // [n, H·hd]
	dk, dv    []float32 // [n, KV·hd]
	da, du    []float32 // [n, F]
	dp        [][]float32
	dwPartial [][]float32 // per worker [D], for RMSNorm weight gradients
	lossPart  []float64   // per worker
	scr       scratch     // transposed operands for linearBackward
	workers   int

	lora  *loraState  // adapters, when EnableLoRA has frozen the base (lora.go)
	quant *quantState // NF4 projections, after QuantizeBase
	prec  Precision   // of the linear layers' products (precision.go)
	bf    *bf16State  // bf16 scratch, from the first SetPrecision(PrecisionBF16)
}

// layerActs are the activations of one decoder layer that Backward
// needs. n tokens, D hidden, F intermediate.
type layerActs struct {
	x       []float32 // [n, D] input (residual stream)
	r1      []float32 // [n] input_layernorm 1/rms
	h1      []float32 // [n, D] input_layernorm output
	q       []float32 // [n, H·hd] rotated queries
	k, v    []float32 // [n, KV·hd] rotated keys, values
	qr, kr  []float32 // [n, H·hd], [n, KV·hd] projections before q_norm, k_norm (Qwen3; nil otherwise)
	rq, rk  []float32 // [n·H], [n·KV] q_norm, k_norm 1/rms per head
	p       []float32 // [B, H, T, T] attention probabilities
	y       []float32 // [n, H·hd] attention output before o_proj
	xm      []float32 // [n, D] residual after attention
	r2      []float32 // [n] post_attention_layernorm 1/rms
	h2      []float32 // [n, D] post_attention_layernorm output
	g, u, a []float32 // [n, F] gate, up, silu(gate)∘up
}

// New returns a Model for weights p with a workspace for batches of up to
// maxB rows of maxT tokens (a batch may have fewer rows, or shorter rows
// as long as B·T ≤ maxB·maxT). Its gradients start at zero.
func New(p *Params, maxB, maxT int) (*Model, error) {
	c := p.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if maxB <= 0 || maxT <= 0 {
		return nil, fmt.Errorf("model: workspace %d×%d is empty", maxB, maxT)
	}
	if err := c.checkWindow(maxT); err != nil {
		return nil, err
	}
	g, err := NewParams(c)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: c, P: p, G: g, MaxB: maxB, MaxT: maxT}
	n := maxB * maxT
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	qd, kvd := c.NumAttentionHeads*hd, c.KVHeads()*hd
	f := func(k int) []float32 { return make([]float32, k) }
	m.invFreq = ropeInvFreqOf(c)
	m.cos, m.sin = f(n*hd/2), f(n*hd/2)
	m.pos = make([]int, n)
	m.lo = make([]int32, n)
	m.acts = make([]layerActs, c.NumHiddenLayers)
	for i := range m.acts {
		m.acts[i] = layerActs{
			x: f(n * D), r1: f(n), h1: f(n * D),
			q: f(n * qd), k: f(n * kvd), v: f(n * kvd),
			p: f(n * c.NumAttentionHeads * maxT), y: f(n * qd),
			xm: f(n * D), r2: f(n), h2: f(n * D),
			g: f(n * F), u: f(n * F), a: f(n * F),
		}
		if c.QKNorm() {
			a := &m.acts[i]
			a.qr, a.kr = f(n*qd), f(n*kvd)
			a.rq, a.rk = f(n*c.NumAttentionHeads), f(n*c.KVHeads())
		}
	}
	m.xf, m.rf, m.hf = f(n*D), f(n), f(n*D)
	m.logits, m.dlog = f(n*V), f(n*V)
	m.dx, m.dh = f(n*D), f(n*D)
	m.dq, m.dy = f(n*qd), f(n*qd)
	m.dk, m.dv = f(n*kvd), f(n*kvd)
	m.da, m.du = f(n*F), f(n*F)
	m.workers = max(1, runtime.GOMAXPROCS(0))
	m.scr.workers = m.workers
	m.dp = make([][]float32, m.workers)
	m.dwPartial = make([][]float32, m.workers)
	for w := range m.dp {
		m.dp[w] = f(attnBlock * maxT)
		m.dwPartial[w] = f(max(D, hd))
	}
	m.lossPart = make([]float64, m.workers)
	return m, nil
}

// Logits returns the logits of the last Forward, [B·T, V] row-major
// (a view into the workspace, overwritten by the next Forward).
func (m *Model) Logits() []float32 { return m.logits[:m.n*m.Config.VocabSize] }

// Loss returns the loss of the last Forward and the number of tokens it
// counted.
func (m *Model) Loss() (float32, int) { return m.loss, m.count }

// ZeroGrad sets the gradients to zero: those of G, or with LoRA those
// of the adapters (G is left alone).
func (m *Model) ZeroGrad() {
	if m.lora != nil {
		clear(m.lora.grad)
		return
	}
	m.G.Zero()
}

// parallel runs fn over [0, n) split among the model's workers.
func (m *Model) parallel(n int, fn func(w, lo, hi int)) { parallelFor(m.workers, n, fn) }

// parallelFor splits [0, n) into at most workers contiguous chunks and
// runs fn(worker, lo, hi) on each, in parallel.
func parallelFor(workers, n int, fn func(w, lo, hi int)) {
	k := min(workers, n)
	if k <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < k; w++ {
		lo, hi := w*n/k, (w+1)*n/k
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, lo, hi)
		}()
	}
	wg.Wait()
}

// Forward runs the model on x and returns the mean cross-entropy loss
// over the counted tokens (0 when none counts). It keeps what Backward
// needs; the logits are in Logits.
func (m *Model) Forward(x *Batch) (float32, error) {
	c := m.Config
	m.forwarded = false
	if err := x.check(c, m.MaxB, m.MaxT); err != nil {
		return 0, err
	}
	m.batch, m.n, m.forwarded = x, x.B*x.T, true
	n, T := m.n, x.T
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	H, KV := c.NumAttentionHeads, c.KVHeads()
	qd, kvd := H*hd, KV*hd
	eps := float32(c.RMSNormEps)

	// Segments and positions.
	pos := x.Pos
	if pos == nil {
		pos = m.pos[:n]
	}
	segmentStarts(m.lo[:n], m.pos[:n], x)
	m.parallel(n, func(_, lo, hi int) { ropeTables(m.cos, m.sin, m.invFreq, pos, lo, hi) })

	ad := attnDims{T: T, H: H, KV: KV, hd: hd, scale: float32(1 / math.Sqrt(float64(hd)))}
	xin := m.xf
	if len(m.acts) > 0 {
		xin = m.acts[0].x
	}
	embeddingForward(xin, m.P.Embed, x.IDs, D)
	for li := range m.acts {
		a, w := &m.acts[li], &m.P.Layers[li]
		out := m.xf
		if li+1 < len(m.acts) {
			out = m.acts[li+1].x
		}
		// Attention block: xm = x + o_proj(attn(rope(q), rope(k), v)),
		// q = h·Wqᵀ (+ bq), and with Qwen3's q_norm each head of q
		// RMS-normalised before the rotation (k likewise).
		m.parallel(n, func(_, lo, hi int) { rmsnormForward(a.h1, a.r1, a.x, w.InputNorm, lo, hi, D, eps) })
		m.roundActs(a.h1, n, D)
		q, k := a.q, a.k
		if a.qr != nil {
			q, k = a.qr, a.kr
		}
		m.fwdLinear(li, projQ, q, a.h1, w.Q, n, D, qd, false)
		m.fwdLinear(li, projK, k, a.h1, w.K, n, D, kvd, false)
		m.fwdLinear(li, projV, a.v, a.h1, w.V, n, D, kvd, false)
		m.parallel(n, func(_, lo, hi int) {
			if w.QBias != nil {
				addBias(q, w.QBias, lo, hi)
				addBias(k, w.KBias, lo, hi)
				addBias(a.v, w.VBias, lo, hi)
			}
			if a.qr != nil {
				rmsnormForward(a.q, a.rq, a.qr, w.QNorm, lo*H, hi*H, hd, eps)
				rmsnormForward(a.k, a.rk, a.kr, w.KNorm, lo*KV, hi*KV, hd, eps)
			}
			ropeForward(a.q, m.cos, m.sin, lo, hi, H, hd)
			ropeForward(a.k, m.cos, m.sin, lo, hi, KV, hd)
		})
		m.parallel(x.B*KV, func(_, lo, hi int) {
			for j := lo; j < hi; j++ {
				b, g := j/KV, j%KV
				r := b * T
				attentionForward(ad, a.y[r*qd:], a.p[b*H*T*T:], a.q[r*qd:], a.k[r*kvd:], a.v[r*kvd:], m.lo[r:r+T], g)
			}
		})
		m.roundActs(a.y, n, qd)
		copy(a.xm[:n*D], a.x[:n*D])
		m.fwdLinear(li, projO, a.xm, a.y, w.O, n, qd, D, true)
		// MLP block: out = xm + down(silu(gate(h2))∘up(h2)).
		m.parallel(n, func(_, lo, hi int) { rmsnormForward(a.h2, a.r2, a.xm, w.PostNorm, lo, hi, D, eps) })
		m.roundActs(a.h2, n, D)
		m.fwdLinear(li, projGate, a.g, a.h2, w.Gate, n, D, F, false)
		m.fwdLinear(li, projUp, a.u, a.h2, w.Up, n, D, F, false)
		m.parallel(n, func(_, lo, hi int) { swigluForward(a.a[lo*F:hi*F], a.g[lo*F:hi*F], a.u[lo*F:hi*F]) })
		m.roundActs(a.a, n, F)
		copy(out[:n*D], a.xm[:n*D])
		m.fwdLinear(li, projDown, out, a.a, w.Down, n, F, D, true)
	}
	// Final norm, head, loss.
	m.parallel(n, func(_, lo, hi int) { rmsnormForward(m.hf, m.rf, m.xf, m.P.Norm, lo, hi, D, eps) })
	m.roundActs(m.hf, n, D)
	linearForward(m.logits, m.hf, m.opWeight(-1, 0, m.P.LMHead), n, D, V)
	m.count = 0
	for i := 0; i < n; i++ {
		if x.counted(i) {
			m.count++
		}
	}
	var invCount float32
	if m.count > 0 {
		invCount = 1 / float32(m.count)
	}
	clear(m.lossPart)
	m.parallel(n, func(w, lo, hi int) {
		m.lossPart[w] = crossEntropyForward(m.dlog, m.logits, x, lo, hi, V, invCount)
	})
	var total float64
	for _, v := range m.lossPart {
		total += v
	}
	m.loss = 0
	if m.count > 0 {
		m.loss = float32(total / float64(m.count))
	}
	return m.loss, nil
}

// Backward adds the gradient of the last Forward's loss into m.G (with
// LoRA, into the adapters' gradients only).
func (m *Model) Backward() error { return m.BackwardScaled(1) }

// BackwardScaled adds the gradient of scale × loss into m.G (for
// gradient accumulation over micro-batches, scale = counted tokens of
// this micro-batch / counted tokens of all of them).
func (m *Model) BackwardScaled(scale float32) error {
	if !m.forwarded {
		return fmt.Errorf("model: Backward without Forward")
	}
	c, x := m.Config, m.batch
	n, T := m.n, x.T
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	H, KV := c.NumAttentionHeads, c.KVHeads()
	qd, kvd := H*hd, KV*hd
	ad := attnDims{T: T, H: H, KV: KV, hd: hd, scale: float32(1 / math.Sqrt(float64(hd)))}
	g := m.grads() // with LoRA, nil tensors: no base gradient is computed

	// Head and final norm: dhf = scale·dlogits·W_lm, dW_lm += scale·dlogitsᵀ·hf.
	m.backLinear(-1, 0, m.dh, g.LMHead, m.gradOperand(m.dlog, n, V, false), m.hf, m.P.LMHead, n, D, V, scale, 0)
	m.rmsnormBackward(m.dx, g.Norm, m.dh, m.xf, m.rf, m.P.Norm, n, D, false)

	for li := len(m.acts) - 1; li >= 0; li-- {
		a, w, gw := &m.acts[li], &m.P.Layers[li], &g.Layers[li]
		// MLP block. m.dx holds d(out) = d(xm) through the residual.
		m.backLinear(li, projDown, m.da, gw.Down, m.gradOperand(m.dx, n, D, true), a.a, w.Down, n, F, D, 1, 0)
		m.parallel(n, func(_, lo, hi int) {
			swigluBackward(m.da[lo*F:hi*F], m.du[lo*F:hi*F], a.g[lo*F:hi*F], a.u[lo*F:hi*F])
		})
		m.backLinear(li, projGate, m.dh, gw.Gate, m.gradOperand(m.da, n, F, false), a.h2, w.Gate, n, D, F, 1, 0)
		m.backLinear(li, projUp, m.dh, gw.Up, m.gradOperand(m.du, n, F, false), a.h2, w.Up, n, D, F, 1, 1)
		m.rmsnormBackward(m.dx, gw.PostNorm, m.dh, a.xm, a.r2, w.PostNorm, n, D, true)

		// Attention block. m.dx holds d(xm) = d(x) through the residual.
		m.backLinear(li, projO, m.dy, gw.O, m.gradOperand(m.dx, n, D, true), a.y, w.O, n, qd, D, 1, 0)
		clear(m.dk[:n*kvd])
		clear(m.dv[:n*kvd])
		m.parallel(x.B*KV, func(wk, lo, hi int) {
			for j := lo; j < hi; j++ {
				b, g := j/KV, j%KV
				r := b * T
				attentionBackward(ad, m.dq[r*qd:], m.dk[r*kvd:], m.dv[r*kvd:], m.dy[r*qd:],
					a.p[b*H*T*T:], a.q[r*qd:], a.k[r*kvd:], a.v[r*kvd:], m.dp[wk], m.lo[r:r+T], g)
			}
		})
		m.parallel(n, func(_, lo, hi int) {
			ropeBackward(m.dq, m.cos, m.sin, lo, hi, H, hd)
			ropeBackward(m.dk, m.cos, m.sin, lo, hi, KV, hd)
		})
		if a.qr != nil { // q_norm, k_norm: per head, in place
			m.rmsnormBackward(m.dq, gw.QNorm, m.dq, a.qr, a.rq, w.QNorm, n*H, hd, false)
			m.rmsnormBackward(m.dk, gw.KNorm, m.dk, a.kr, a.rk, w.KNorm, n*KV, hd, false)
		}
		if gw.QBias != nil {
			m.biasGrad(gw.QBias, m.dq, n, qd)
			m.biasGrad(gw.KBias, m.dk, n, kvd)
			m.biasGrad(gw.VBias, m.dv, n, kvd)
		}
		m.backLinear(li, projQ, m.dh, gw.Q, m.gradOperand(m.dq, n, qd, false), a.h1, w.Q, n, D, qd, 1, 0)
		m.backLinear(li, projK, m.dh, gw.K, m.gradOperand(m.dk, n, kvd, false), a.h1, w.K, n, D, kvd, 1, 1)
		m.backLinear(li, projV, m.dh, gw.V, m.gradOperand(m.dv, n, kvd, false), a.h1, w.V, n, D, kvd, 1, 1)
		m.rmsnormBackward(m.dx, gw.InputNorm, m.dh, a.x, a.r1, w.InputNorm, n, D, true)
	}
	if g.Embed != nil {
		embeddingBackward(g.Embed, m.dx, x.IDs, D)
	}
	return nil
}

// rmsnormBackward runs rmsnormBackward over n rows of d values in
// parallel, reducing the weight gradient through per-worker partial sums
// (dw nil: no weight gradient). dx may be dy (in place): each worker
// takes its rows' weight gradient before it overwrites them.
func (m *Model) rmsnormBackward(dx, dw, dy, x, r, w []float32, n, d int, add bool) {
	m.parallel(n, func(wk, lo, hi int) {
		if dw != nil {
			part := m.dwPartial[wk][:d]
			clear(part)
			rmsnormWeightGrad(part, dy, x, r, lo, hi, d)
		}
		rmsnormBackward(dx, nil, dy, x, r, w, lo, hi, d, add)
	})
	if dw == nil {
		return
	}
	for wk := 0; wk < min(m.workers, n); wk++ {
		for j, v := range m.dwPartial[wk][:d] {
			dw[j] += v
		}
	}
}

// biasGrad adds the column sums of dy [n, out] into db [out], the
// columns split among the workers (each column summed in row order).
func (m *Model) biasGrad(db, dy []float32, n, out int) {
	m.parallel(out, func(_, lo, hi int) {
		d := db[lo:hi]
		for i := 0; i < n; i++ {
			row := dy[i*out+lo : i*out+hi]
			for j, v := range row {
				d[j] += v
			}
		}
	})
}

// segmentStarts sets lo[i] to the column where token i's segment starts
// (its run of equal Seg values in the row) and, when x has no positions,
// pos[i] to the index of token i in its segment.
func segmentStarts(lo []int32, pos []int, x *Batch) {
	T := x.T
	for b := 0; b < x.B; b++ {
		start := 0
		for t := 0; t < T; t++ {
			i := b*T + t
			if t > 0 && x.Seg != nil && x.Seg[i] != x.Seg[i-1] {
				start = t
			}
			lo[i] = int32(start)
			if x.Pos == nil {
				pos[i] = t - start
			}
		}
	}
}

// TrainableTensor is one tensor the optimizer updates: its name (the
// Hugging Face state-dict name, or the PEFT adapter name), its values and
// its gradient, views into the model's storage.
type TrainableTensor struct {
	Name string
	P, G []float32
}

// Trainable returns the tensors training updates, in a fixed order: every
// weight for full fine-tuning, or with LoRA the adapters (PEFT names,
// base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight, ...;
// layer by layer, q_proj to down_proj, lora_A before lora_B).
func (m *Model) Trainable() []TrainableTensor {
	if m.lora != nil {
		return m.lora.trainable()
	}
	pt, gt := m.P.Tensors(), m.G.Tensors()
	out := make([]TrainableTensor, len(pt))
	for i := range pt {
		out[i] = TrainableTensor{Name: pt[i].Name, P: pt[i].Data, G: gt[i].Data}
	}
	return out
}
