package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Decoder runs the model forward for generation with a key/value cache:
// each layer's rotated keys and values of the tokens seen so far are
// kept, so that a new token costs one row through every projection and
// attention over the cache, instead of the whole sequence again. It
// computes what Forward computes for one conversation row (causal
// attention, positions 0, 1, ...), in float32, with the same kernels;
// the logits differ from Forward's only by the order of float32 sums.
// It uses the weights as they are (no LoRA adapters, no NF4: merge
// first) and holds about 2·layers·maxT·KV·hd floats of cache.
type Decoder struct {
	c    Config
	p    *Params
	maxT int
	n    int         // tokens in the cache
	k, v [][]float32 // per layer [maxT, KV·hd]

	// Scratch for up to maxT new tokens at once (the prompt).
	x, h, xm []float32 // [maxT, D]
	r        []float32 // [maxT]
	q, y     []float32 // [maxT, H·hd]
	g, u, a  []float32 // [maxT, F]
	rh       []float32 // [maxT·H] q_norm/k_norm 1/rms (Qwen3)
	s        []float32 // [maxT, maxT] attention scores of one head
	cos, sin []float32 // [maxT, hd/2]
	invFreq  []float32
	pos      []int
	logits   []float32 // [V]
}

// NewDecoder returns a decoder for weights p with room for maxT tokens.
func NewDecoder(p *Params, maxT int) (*Decoder, error) {
	c := p.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if maxT <= 0 {
		return nil, fmt.Errorf("model: decoder of %d tokens", maxT)
	}
	if err := c.checkWindow(maxT); err != nil {
		return nil, err
	}
	D, F, hd := c.HiddenSize, c.IntermediateSize, c.Hd()
	qd, kvd := c.NumAttentionHeads*hd, c.KVHeads()*hd
	f := func(k int) []float32 { return make([]float32, k) }
	d := &Decoder{c: c, p: p, maxT: maxT,
		x: f(maxT * D), h: f(maxT * D), xm: f(maxT * D), r: f(maxT),
		q: f(maxT * qd), y: f(maxT * qd), g: f(maxT * F), u: f(maxT * F), a: f(maxT * F),
		s: f(maxT * maxT), cos: f(maxT * hd / 2), sin: f(maxT * hd / 2),
		invFreq: ropeInvFreqOf(c), pos: make([]int, maxT), logits: f(c.VocabSize)}
	if c.QKNorm() {
		d.rh = f(maxT * c.NumAttentionHeads)
	}
	for range c.NumHiddenLayers {
		d.k = append(d.k, f(maxT*kvd))
		d.v = append(d.v, f(maxT*kvd))
	}
	return d, nil
}

// Len is the number of tokens in the cache.
func (d *Decoder) Len() int { return d.n }

// Reset empties the cache.
func (d *Decoder) Reset() { d.n = 0 }

// Append runs ids, at the positions after the cached tokens, through the
// model, adds their keys and values to the cache and returns the logits
// of the last of them ([V], a view overwritten by the next call).
func (d *Decoder) Append(ids []int) ([]float32, error) {
	c := d.c
	nq, P := len(ids), d.n
	if nq == 0 {
		return nil, fmt.Errorf("model: decoder: no token")
	}
	if P+nq > d.maxT {
		return nil, fmt.Errorf("model: decoder: %d tokens exceed its %d", P+nq, d.maxT)
	}
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	H, KV := c.NumAttentionHeads, c.KVHeads()
	qd, kvd, rep := H*hd, KV*hd, H/KV
	eps := float32(c.RMSNormEps)
	for _, id := range ids {
		if id < 0 || id >= V {
			return nil, fmt.Errorf("model: decoder: token %d outside the vocabulary of %d", id, V)
		}
	}
	for i := range nq {
		d.pos[i] = P + i
	}
	ropeTables(d.cos, d.sin, d.invFreq, d.pos[:nq], 0, nq)
	scaleQK := float32(1 / math.Sqrt(float64(hd)))
	x := d.x[:nq*D]
	embeddingForward(x, d.p.Embed, ids, D)
	nk := P + nq
	for li := range d.p.Layers {
		w := &d.p.Layers[li]
		kc, vc := d.k[li], d.v[li]
		rmsnormForward(d.h, d.r, x, w.InputNorm, 0, nq, D, eps)
		linearForward(d.q, d.h, w.Q, nq, D, qd)
		linearForward(kc[P*kvd:], d.h, w.K, nq, D, kvd)
		linearForward(vc[P*kvd:], d.h, w.V, nq, D, kvd)
		if w.QBias != nil {
			addBias(d.q, w.QBias, 0, nq)
			addBias(kc[P*kvd:], w.KBias, 0, nq)
			addBias(vc[P*kvd:], w.VBias, 0, nq)
		}
		if w.QNorm != nil { // in place, per head
			rmsnormForward(d.q, d.rh, d.q, w.QNorm, 0, nq*H, hd, eps)
			rmsnormForward(kc[P*kvd:], d.rh, kc[P*kvd:], w.KNorm, 0, nq*KV, hd, eps)
		}
		ropeForward(d.q, d.cos, d.sin, 0, nq, H, hd)
		ropeForward(kc[P*kvd:], d.cos, d.sin, 0, nq, KV, hd)
		for h := range H {
			g := h / rep
			s := d.s[:nq*nk]
			// S = scale · Q_h · K_gᵀ over every cached key, [nq, nk].
			blas32.Gemm(blas.NoTrans, blas.Trans, scaleQK, matS(d.q[h*hd:], nq, hd, qd), matS(kc[g*hd:], nk, hd, kvd), 0, mat(s, nq, nk))
			for i := range nq {
				row := s[i*nk : (i+1)*nk]
				live := row[:P+i+1] // causal: keys up to the token itself
				scale(live, 1/expShiftSum(live, live, maxf(live)))
				clear(row[P+i+1:])
			}
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, mat(s, nq, nk), matS(vc[g*hd:], nk, hd, kvd), 0, matS(d.y[h*hd:], nq, hd, qd))
		}
		copy(d.xm[:nq*D], x)
		linearForwardAdd(d.xm, d.y, w.O, nq, qd, D)
		rmsnormForward(d.h, d.r, d.xm, w.PostNorm, 0, nq, D, eps)
		linearForward(d.g, d.h, w.Gate, nq, D, F)
		linearForward(d.u, d.h, w.Up, nq, D, F)
		swigluForward(d.a[:nq*F], d.g[:nq*F], d.u[:nq*F])
		copy(x, d.xm[:nq*D])
		linearForwardAdd(x, d.a, w.Down, nq, F, D)
	}
	last := x[(nq-1)*D : nq*D]
	rmsnormForward(d.h, d.r, last, d.p.Norm, 0, 1, D, eps)
	linearForward(d.logits, d.h, d.p.LMHead, 1, D, V)
	d.n = nk
	return d.logits, nil
}
