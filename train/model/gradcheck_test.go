package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Gradient checks: the float32 backward of each layer, and of the whole
// model, against central differences of the float64 reference
// (ref64_test.go). Errors are reported two ways:
//
//	norm: max_i |got_i − want_i| / max_i |want_i|
//	elem: max_i |got_i − want_i| / max(|want_i|, 1e-3·max_j |want_j|)

const fdStep = 1e-5

// fdGrad returns the central-difference gradient of f with respect to
// every element of x (restored afterwards).
func fdGrad(f func() float64, x []float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		v := x[i]
		h := fdStep * math.Max(1, math.Abs(v))
		x[i] = v + h
		fp := f()
		x[i] = v - h
		fm := f()
		x[i] = v
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

type relErr struct{ norm, elem float64 }

func compareGrad(got []float32, want []float64) relErr {
	var mx, diff, elem float64
	for _, w := range want {
		mx = math.Max(mx, math.Abs(w))
	}
	for i, w := range want {
		d := math.Abs(float64(got[i]) - w)
		diff = math.Max(diff, d)
		elem = math.Max(elem, d/math.Max(math.Abs(w), 1e-3*mx+1e-30))
	}
	return relErr{norm: diff / math.Max(mx, 1e-30), elem: elem}
}

func (e relErr) String() string { return fmt.Sprintf("norm %.2e elem %.2e", e.norm, e.elem) }

// checkGrad compares and fails when either error is above tol.
func checkGrad(t *testing.T, name string, got []float32, want []float64, tol float64) relErr {
	t.Helper()
	e := compareGrad(got, want)
	t.Logf("%-50s %s", name, e)
	if e.norm > tol || e.elem > 10*tol || math.IsNaN(e.norm) || math.IsNaN(e.elem) {
		t.Errorf("%s: gradient error %s above %.0e", name, e, tol)
	}
	return e
}

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// dot64 returns Σ r·y in float64.
func dot64(r []float32, y []float64) float64 {
	var s float64
	for i, v := range y {
		s += float64(r[i]) * v
	}
	return s
}

// Per-layer tolerance: float32 arithmetic against an exact reference.
const layerTol = 1e-5

func TestGradLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n, in, out := 5, 7, 6
	x, w, dy := randVec(r, n*in, 1), randVec(r, out*in, 0.5), randVec(r, n*out, 1)
	dx, dw := make([]float32, n*in), make([]float32, out*in)
	linearBackward(dx, dw, dy, x, w, n, in, out, 1, 0, nil)
	x64, w64 := to64(x), to64(w)
	f := func() float64 { return dot64(dy, refLinear(x64, w64, n, in, out)) }
	checkGrad(t, "linear dx", dx, fdGrad(f, x64), layerTol)
	checkGrad(t, "linear dW", dw, fdGrad(f, w64), layerTol)
	// The transposed path (used with gonum's native BLAS), accumulating.
	dx2, dw2 := append([]float32(nil), dx...), append([]float32(nil), dw...)
	linearBackward(dx2, dw2, dy, x, w, n, in, out, 0.5, 1, &scratch{})
	for i := range dx2 {
		dx2[i] /= 1.5
	}
	for i := range dw2 {
		dw2[i] /= 1.5
	}
	checkGrad(t, "linear dx (transposed path, accumulate)", dx2, fdGrad(f, x64), layerTol)
	checkGrad(t, "linear dW (transposed path, accumulate)", dw2, fdGrad(f, w64), layerTol)

	// Forward, and the accumulating variant.
	y := make([]float32, n*out)
	linearForward(y, x, w, n, in, out)
	checkGrad(t, "linear forward", y, refLinear(x64, w64, n, in, out), layerTol)
	linearForwardAdd(y, x, w, n, in, out)
	want := refLinear(x64, w64, n, in, out)
	for i := range want {
		want[i] *= 2
	}
	checkGrad(t, "linear forward-add", y, want, layerTol)
}

func TestGradRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n, d := 4, 8
	eps := 1e-5
	x, dy := randVec(r, n*d, 1), randVec(r, n*d, 1)
	w := randVec(r, d, 0.3)
	for i := range w {
		w[i] += 1
	}
	y, rr := make([]float32, n*d), make([]float32, n)
	rmsnormForward(y, rr, x, w, 0, n, d, float32(eps))
	dx, dw := make([]float32, n*d), make([]float32, d)
	rmsnormBackward(dx, dw, dy, x, rr, w, 0, n, d, false)
	x64, w64 := to64(x), to64(w)
	checkGrad(t, "rmsnorm forward", y, refRMSNorm(x64, w64, n, d, eps), layerTol)
	f := func() float64 { return dot64(dy, refRMSNorm(x64, w64, n, d, eps)) }
	checkGrad(t, "rmsnorm dx", dx, fdGrad(f, x64), layerTol)
	checkGrad(t, "rmsnorm dw", dw, fdGrad(f, w64), layerTol)
}

func TestGradRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	nh, hd, theta := 2, 8, 10000.0
	pos := []int{0, 3, 7, 100}
	n := len(pos)
	x, dy := randVec(r, n*nh*hd, 1), randVec(r, n*nh*hd, 1)
	cos, sin := make([]float32, n*hd/2), make([]float32, n*hd/2)
	ropeTables(cos, sin, ropeInvFreq(hd, theta), pos, 0, n)
	y := append([]float32(nil), x...)
	ropeForward(y, cos, sin, 0, n, nh, hd)
	dx := append([]float32(nil), dy...)
	ropeBackward(dx, cos, sin, 0, n, nh, hd)
	x64 := to64(x)
	checkGrad(t, "rope forward", y, refRope(x64, pos, nh, hd, theta), layerTol)
	f := func() float64 { return dot64(dy, refRope(x64, pos, nh, hd, theta)) }
	checkGrad(t, "rope dx", dx, fdGrad(f, x64), layerTol)
}

func TestGradAttention(t *testing.T) {
	defer func(b int) { attnBlock = b }(attnBlock)
	for _, blk := range []int{64, 3} {
		attnBlock = blk
		r := rand.New(rand.NewPCG(7, 8))
		B, T, H, KV, hd := 2, 9, 4, 2, 4
		x := &Batch{B: B, T: T, Seg: []int{
			0, 0, 0, 0, 1, 1, 1, 1, 1, // two packed samples
			0, 0, 0, 0, 0, 0, -1, -1, -1, // one sample and padding
		}}
		n := B * T
		qd, kvd := H*hd, KV*hd
		q, k, v := randVec(r, n*qd, 1), randVec(r, n*kvd, 1), randVec(r, n*kvd, 1)
		dy := randVec(r, n*qd, 1)
		lo, pos := make([]int32, n), make([]int, n)
		segmentStarts(lo, pos, x)
		ad := attnDims{T: T, H: H, KV: KV, hd: hd, scale: float32(1 / math.Sqrt(float64(hd)))}
		y, p := make([]float32, n*qd), make([]float32, B*H*T*T)
		dq, dk, dv, dp := make([]float32, n*qd), make([]float32, n*kvd), make([]float32, n*kvd), make([]float32, attnBlock*T)
		for b := 0; b < B; b++ {
			for g := 0; g < KV; g++ {
				r := b * T
				attentionForward(ad, y[r*qd:], p[b*H*T*T:], q[r*qd:], k[r*kvd:], v[r*kvd:], lo[r:r+T], g)
				attentionBackward(ad, dq[r*qd:], dk[r*kvd:], dv[r*kvd:], dy[r*qd:], p[b*H*T*T:], q[r*qd:], k[r*kvd:], v[r*kvd:], dp, lo[r:r+T], g)
			}
		}
		q64, k64, v64 := to64(q), to64(k), to64(v)
		name := fmt.Sprintf("attention (block %d) ", blk)
		checkGrad(t, name+"forward", y, refAttention(q64, k64, v64, x.Seg, B, T, H, KV, hd), layerTol)
		f := func() float64 { return dot64(dy, refAttention(q64, k64, v64, x.Seg, B, T, H, KV, hd)) }
		checkGrad(t, name+"dq", dq, fdGrad(f, q64), layerTol)
		checkGrad(t, name+"dk", dk, fdGrad(f, k64), layerTol)
		checkGrad(t, name+"dv", dv, fdGrad(f, v64), layerTol)
	}
}

func TestGradSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n := 24
	g, u, da := randVec(r, n, 2), randVec(r, n, 1), randVec(r, n, 1)
	a := make([]float32, n)
	swigluForward(a, g, u)
	dg, du := append([]float32(nil), da...), make([]float32, n)
	swigluBackward(dg, du, g, u)
	g64, u64 := to64(g), to64(u)
	checkGrad(t, "swiglu forward", a, refSwiGLU(g64, u64), layerTol)
	f := func() float64 { return dot64(da, refSwiGLU(g64, u64)) }
	checkGrad(t, "swiglu dgate", dg, fdGrad(f, g64), layerTol)
	checkGrad(t, "swiglu dup", du, fdGrad(f, u64), layerTol)
}

func TestGradEmbedding(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	V, D := 5, 3
	ids := []int{4, 0, 4, 2, 4}
	table, dy := randVec(r, V*D, 1), randVec(r, len(ids)*D, 1)
	x := make([]float32, len(ids)*D)
	embeddingForward(x, table, ids, D)
	dt := make([]float32, V*D)
	embeddingBackward(dt, dy, ids, D)
	t64 := to64(table)
	ref := func() []float64 {
		y := make([]float64, len(ids)*D)
		for i, id := range ids {
			copy(y[i*D:], t64[id*D:(id+1)*D])
		}
		return y
	}
	checkGrad(t, "embedding forward", x, ref(), 0)
	checkGrad(t, "embedding dE", dt, fdGrad(func() float64 { return dot64(dy, ref()) }, t64), layerTol)
}

func TestGradCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	V := 7
	x := &Batch{B: 2, T: 3,
		Targets: []int{3, -100, 6, 0, 2, 2},
		Mask:    []bool{true, true, false, true, true, true}}
	n := x.B * x.T
	z := randVec(r, n*V, 3)
	dz := make([]float32, n*V)
	count := 4
	sum := crossEntropyForward(dz, z, x, 0, n, V, 1/float32(count))
	z64 := to64(z)
	want := refCrossEntropy(z64, x, V)
	if d := math.Abs(sum/float64(count)-want) / want; d > 1e-6 {
		t.Errorf("loss %g, reference %g (rel %.1e)", sum/float64(count), want, d)
	}
	checkGrad(t, "cross-entropy dz", dz, fdGrad(func() float64 { return refCrossEntropy(z64, x, V) }, z64), layerTol)
}

// tinyConfigs are the models of the full gradient check: GQA untied with
// the default head_dim, MQA tied with head_dim ≠ D/H and explicit
// positions, Qwen2 (q/k/v biases, tied) and Qwen3 (q/k norms, head_dim
// 8 so that H·hd = 32 ≠ D, untied).
func tinyConfigs() map[string]Config {
	a := DefaultConfig()
	a.HiddenSize, a.IntermediateSize, a.NumHiddenLayers = 16, 32, 2
	a.NumAttentionHeads, a.NumKeyValueHeads, a.VocabSize = 4, 2, 37
	a.RMSNormEps, a.RopeTheta = 1e-5, 10000
	b := a
	b.NumKeyValueHeads, b.HeadDim, b.TieWordEmbeddings = 1, 6, true
	b.RopeTheta, b.RMSNormEps = 500000, 1e-6
	q2 := a
	q2.TieWordEmbeddings, q2.RopeTheta, q2.RMSNormEps = true, 1e6, 1e-6
	q2.Extra = map[string]json.RawMessage{"model_type": json.RawMessage(`"qwen2"`)}
	q3 := a
	q3.HeadDim, q3.RopeTheta, q3.RMSNormEps = 8, 1e6, 1e-6
	q3.Extra = map[string]json.RawMessage{"model_type": json.RawMessage(`"qwen3"`)}
	return map[string]Config{"untied-gqa": a, "tied-mqa-hd6": b, "qwen2-bias": q2, "qwen3-qknorm": q3}
}

// tinyBatch is 2 rows of 9: row 0 packs two samples (5 + 4 tokens),
// row 1 holds one sample of 6 tokens and 3 of padding; loss masks leave
// out prompt tokens.
func tinyBatch(V int) *Batch {
	x := NewBatch(2, 9)
	r := rand.New(rand.NewPCG(21, 22))
	id := func(k int) []int {
		s := make([]int, k)
		for i := range s {
			s[i] = r.IntN(V)
		}
		return s
	}
	must(x.SetRow(0, Sample{id(5), []bool{false, false, true, true, true}}, Sample{id(4), []bool{false, true, true, true}}))
	must(x.SetRow(1, Sample{IDs: id(6)}))
	return x
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// perturb makes the RMSNorm weights differ from 1 so that their
// gradients are not special.
func randomParams(t testing.TB, c Config, seed uint64) *Params {
	p, err := NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(seed, 0.3)
	r := rand.New(rand.NewPCG(seed, 99))
	for _, nt := range p.Tensors() {
		if len(nt.Shape) == 1 {
			for i := range nt.Data {
				nt.Data[i] = float32(1 + 0.2*r.NormFloat64())
			}
		}
	}
	return p
}

func TestGradModel(t *testing.T) {
	defer func(b int) { attnBlock = b }(attnBlock)
	attnBlock = 4 // blocks cut through segments
	for name, c := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			p := randomParams(t, c, 7)
			x := tinyBatch(c.VocabSize)
			if c.TieWordEmbeddings {
				// Explicit positions that do not restart, to check Pos is used.
				x.Pos = []int{3, 4, 5, 6, 7, 0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 0, 0, 0}
			}
			m, err := New(p, 2, 9)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := m.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Backward(); err != nil {
				t.Fatal(err)
			}
			w := map[string][]float64{}
			for _, nt := range p.Tensors() {
				w[nt.Name] = to64(nt.Data)
			}
			refLoss, refLogits := refForward(c, w, x)
			if d := math.Abs(float64(loss)-refLoss) / refLoss; d > 1e-6 {
				t.Errorf("loss %g, float64 reference %g (rel %.1e)", loss, refLoss, d)
			}
			t.Logf("loss %.7f float64 reference %.7f", loss, refLoss)
			// Norm-wise 1e-5; element-wise 1e-3 rather than 10× that: a
			// logit near zero (1e-3 of the largest) carries the rounding of
			// the whole float32 chain, which differs with the BLAS
			// kernel's summation order (OpenBLAS reaches 2.8e-4 here).
			if e := compareGrad(m.Logits(), refLogits); e.norm > 1e-5 || e.elem > 1e-3 || math.IsNaN(e.norm) {
				t.Errorf("logits vs float64 reference: error %s above 1e-05 (elem 1e-3)", e)
			}
			worst := relErr{}
			for _, nt := range m.G.Tensors() {
				f := func() float64 { l, _ := refForward(c, w, x); return l }
				e := checkGrad(t, nt.Name, nt.Data, fdGrad(f, w[nt.Name]), 1e-4)
				worst.norm, worst.elem = math.Max(worst.norm, e.norm), math.Max(worst.elem, e.elem)
			}
			t.Logf("worst gradient error over all parameters: %s", worst)
		})
	}
}

// TestGradModelFloat32 differentiates the float32 Forward itself along
// one direction per parameter tensor, with a fourth-order central
// difference in float32.
func TestGradModelFloat32(t *testing.T) {
	for name, c := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			p := randomParams(t, c, 8)
			x := tinyBatch(c.VocabSize)
			m, err := New(p, 2, 9)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Forward(x); err != nil {
				t.Fatal(err)
			}
			m.Backward()
			r := rand.New(rand.NewPCG(5, 5))
			for _, nt := range p.Tensors() {
				g, _ := m.G.Tensor(nt.Name)
				// A unit direction halfway between the gradient and a
				// random one, so that the derivative is large.
				u := randVec(r, len(nt.Data), 1)
				var gn, un float64
				for i := range u {
					gn += float64(g.Data[i]) * float64(g.Data[i])
					un += float64(u[i]) * float64(u[i])
				}
				gn, un = math.Sqrt(gn), math.Sqrt(un)
				var norm float64
				for i := range u {
					u[i] = float32(float64(g.Data[i])/gn + float64(u[i])/un)
					norm += float64(u[i]) * float64(u[i])
				}
				for i := range u {
					u[i] /= float32(math.Sqrt(norm))
				}
				var want float64
				for i := range u {
					want += float64(u[i]) * float64(g.Data[i])
				}
				orig := append([]float32(nil), nt.Data...)
				const h = 1e-2
				lossAt := func(s float32) float64 {
					for i := range nt.Data {
						nt.Data[i] = orig[i] + s*u[i]
					}
					l, _ := m.Forward(x)
					return float64(l)
				}
				// Fourth-order central difference.
				fd := (-lossAt(2*h) + 8*lossAt(h) - 8*lossAt(-h) + lossAt(-2*h)) / (12 * h)
				copy(nt.Data, orig)
				rel := math.Abs(fd-want) / math.Max(math.Abs(want), 1e-3)
				t.Logf("%-45s directional %+.6f fd %+.6f rel %.1e", nt.Name, want, fd, rel)
				if rel > 1e-3 {
					t.Errorf("%s: directional derivative %g, finite difference %g", nt.Name, want, fd)
				}
			}
		})
	}
}
