package model

// A float64 reference of the model, written independently of the float32
// code with plain loops and an explicit attention mask, for the gradient
// checks: finite differences of this reference are accurate to ~1e-10,
// so they measure the error of the float32 forward and backward alone.

import (
	"math"
)

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// refLinear: y[n,out] = x[n,in]·W[out,in]ᵀ
func refLinear(x, w []float64, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func refRMSNorm(x, w []float64, n, d int, eps float64) []float64 {
	y := make([]float64, n*d)
	for i := 0; i < n; i++ {
		var ss float64
		for j := 0; j < d; j++ {
			ss += x[i*d+j] * x[i*d+j]
		}
		r := 1 / math.Sqrt(ss/float64(d)+eps)
		for j := 0; j < d; j++ {
			y[i*d+j] = w[j] * x[i*d+j] * r
		}
	}
	return y
}

// refRope rotates x [n, nh·hd] (a copy) with positions pos.
func refRope(x []float64, pos []int, nh, hd int, theta float64) []float64 {
	y := append([]float64(nil), x...)
	half := hd / 2
	for i := range pos {
		for h := 0; h < nh; h++ {
			v := y[(i*nh+h)*hd:]
			for j := 0; j < half; j++ {
				f := math.Pow(theta, -float64(2*j)/float64(hd))
				a := float64(pos[i]) * f
				c, s := math.Cos(a), math.Sin(a)
				x1, x2 := v[j], v[j+half]
				v[j] = x1*c - x2*s
				v[j+half] = x2*c + x1*s
			}
		}
	}
	return y
}

// refVisible reports whether token i may attend to token j of the same
// row (indices within the row): j ≤ i and no segment change in (j, i].
func refVisible(seg []int, i, j int) bool {
	if j > i {
		return false
	}
	if seg == nil {
		return true
	}
	for t := j + 1; t <= i; t++ {
		if seg[t] != seg[t-1] {
			return false
		}
	}
	return true
}

// refAttention: q [B·T, H·hd], k, v [B·T, KV·hd] → y [B·T, H·hd].
func refAttention(q, k, v []float64, seg []int, B, T, H, KV, hd int) []float64 {
	y := make([]float64, B*T*H*hd)
	rep := H / KV
	scale := 1 / math.Sqrt(float64(hd))
	for b := 0; b < B; b++ {
		var rs []int
		if seg != nil {
			rs = seg[b*T : (b+1)*T]
		}
		for h := 0; h < H; h++ {
			g := h / rep
			for i := 0; i < T; i++ {
				qi := q[((b*T+i)*H+h)*hd:]
				sc := make([]float64, T)
				mx := math.Inf(-1)
				for j := 0; j < T; j++ {
					if !refVisible(rs, i, j) {
						sc[j] = math.Inf(-1)
						continue
					}
					kj := k[((b*T+j)*KV+g)*hd:]
					var s float64
					for d := 0; d < hd; d++ {
						s += qi[d] * kj[d]
					}
					sc[j] = s * scale
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				yi := y[((b*T+i)*H+h)*hd:]
				for j := 0; j < T; j++ {
					if sc[j] == 0 {
						continue
					}
					vj := v[((b*T+j)*KV+g)*hd:]
					for d := 0; d < hd; d++ {
						yi[d] += sc[j] / sum * vj[d]
					}
				}
			}
		}
	}
	return y
}

func refSwiGLU(g, u []float64) []float64 {
	a := make([]float64, len(g))
	for i := range g {
		a[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
	}
	return a
}

// refCrossEntropy returns the mean loss over counted tokens.
func refCrossEntropy(z []float64, x *Batch, V int) float64 {
	var total float64
	count := 0
	for i := 0; i < x.B*x.T; i++ {
		if !x.counted(i) {
			continue
		}
		zr := z[i*V : (i+1)*V]
		mx := math.Inf(-1)
		for _, v := range zr {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range zr {
			s += math.Exp(v - mx)
		}
		total += mx + math.Log(s) - zr[x.Targets[i]]
		count++
	}
	if count == 0 {
		return 0
	}
	return total / float64(count)
}

// refPositions returns the batch positions, or the index within the
// segment when the batch gives none.
func refPositions(x *Batch) []int {
	if x.Pos != nil {
		return x.Pos
	}
	pos := make([]int, x.B*x.T)
	for b := 0; b < x.B; b++ {
		p := 0
		for t := 0; t < x.T; t++ {
			i := b*x.T + t
			if t > 0 && x.Seg != nil && x.Seg[i] != x.Seg[i-1] {
				p = 0
			}
			pos[i] = p
			p++
		}
	}
	return pos
}

// refForward runs the whole model in float64 from named weights.
func refForward(c Config, w map[string][]float64, x *Batch) (loss float64, logits []float64) {
	return refForwardLoRA(c, w, nil, x)
}

// refForwardLoRA is refForward with LoRA adapters (lora nil: none) on
// the projections.
func refForwardLoRA(c Config, w map[string][]float64, lora *refLoRA, x *Batch) (loss float64, logits []float64) {
	n := x.B * x.T
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.Hd()
	H, KV := c.NumAttentionHeads, c.KVHeads()
	pos := refPositions(x)
	h := make([]float64, n*D)
	emb := w["model.embed_tokens.weight"]
	for i, id := range x.IDs {
		copy(h[i*D:(i+1)*D], emb[id*D:(id+1)*D])
	}
	L := func(i int, s string) []float64 { return w["model.layers."+itoa(i)+"."+s] }
	proj := func(x []float64, i int, s string, in, out int) []float64 {
		mod := "model.layers." + itoa(i) + "." + s
		y := lora.add(refLinear(x, w[mod+".weight"], n, in, out), x, mod, n, in, out)
		if b := w[mod+".bias"]; b != nil { // Qwen2's q/k/v biases
			for i := range y {
				y[i] += b[i%out]
			}
		}
		return y
	}
	// Qwen3's q_norm/k_norm: RMSNorm over each head's hd values.
	headNorm := func(y []float64, i int, s string, nh int) []float64 {
		if nw := L(i, "self_attn."+s+".weight"); nw != nil {
			return refRMSNorm(y, nw, n*nh, hd, c.RMSNormEps)
		}
		return y
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		a := refRMSNorm(h, L(l, "input_layernorm.weight"), n, D, c.RMSNormEps)
		q := refRope(headNorm(proj(a, l, "self_attn.q_proj", D, H*hd), l, "q_norm", H), pos, H, hd, c.RopeTheta)
		k := refRope(headNorm(proj(a, l, "self_attn.k_proj", D, KV*hd), l, "k_norm", KV), pos, KV, hd, c.RopeTheta)
		v := proj(a, l, "self_attn.v_proj", D, KV*hd)
		y := refAttention(q, k, v, x.Seg, x.B, x.T, H, KV, hd)
		o := proj(y, l, "self_attn.o_proj", H*hd, D)
		for i := range h {
			h[i] += o[i]
		}
		a = refRMSNorm(h, L(l, "post_attention_layernorm.weight"), n, D, c.RMSNormEps)
		g := proj(a, l, "mlp.gate_proj", D, F)
		u := proj(a, l, "mlp.up_proj", D, F)
		d := proj(refSwiGLU(g, u), l, "mlp.down_proj", F, D)
		for i := range h {
			h[i] += d[i]
		}
	}
	hf := refRMSNorm(h, w["model.norm.weight"], n, D, c.RMSNormEps)
	head := w["lm_head.weight"]
	if c.TieWordEmbeddings {
		head = emb
	}
	logits = refLinear(hf, head, n, D, V)
	return refCrossEntropy(logits, x, V), logits
}

// refLoRA holds LoRA adapters for refForwardLoRA: for a module
// (model.layers.{i}.self_attn.q_proj, ...) A [r, in] and B [out, r]; the
// projection adds scale·(x·Aᵀ)·Bᵀ.
type refLoRA struct {
	r     int
	scale float64
	A, B  map[string][]float64
}

// add adds the adapter of module mod, if any, to y = x·Wᵀ.
func (l *refLoRA) add(y, x []float64, mod string, n, in, out int) []float64 {
	if l == nil || l.A[mod] == nil {
		return y
	}
	t := refLinear(x, l.A[mod], n, in, l.r)
	d := refLinear(t, l.B[mod], n, l.r, out)
	for i := range y {
		y[i] += l.scale * d[i]
	}
	return y
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	k := len(b)
	for ; i > 0; i /= 10 {
		k--
		b[k] = byte('0' + i%10)
	}
	return string(b[k:])
}
