package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRoundBF16 checks the rounding to bfloat16 against hand-computed
// bit patterns (ties to even, carries into the exponent, overflow to
// infinity, NaN kept and quieted, subnormals), each at every position of
// a slice so that the AVX2 kernel and the Go tail both see it, and the
// two paths against each other on random bit patterns.
func TestRoundBF16(t *testing.T) {
	t.Logf("AVX2 kernels: %v", useAVX2)
	cases := []struct{ in, want uint32 }{
		{0x3f800000, 0x3f800000}, // 1: exact
		{0x3f808000, 0x3f800000}, // 1 + 2⁻⁸: tie, to the even 1
		{0x3f818000, 0x3f820000}, // 1 + 3·2⁻⁸: tie, to the even 1 + 2⁻⁶
		{0x3f808001, 0x3f810000}, // just above the tie: up
		{0x3f807fff, 0x3f800000}, // just below: down
		{0xbf808000, 0xbf800000}, // −(1 + 2⁻⁸): tie, to −1
		{0x3fff8000, 0x40000000}, // 1.99609375: tie, carries into the exponent: 2
		{0x7f7f7fff, 0x7f7f0000}, // below the last tie: the largest finite bfloat16
		{0x7f7f8000, 0x7f800000}, // tie at the top: to even, +Inf
		{0x7f7fffff, 0x7f800000}, // largest float32: +Inf
		{0x7f800000, 0x7f800000}, // +Inf
		{0xff800000, 0xff800000}, // −Inf
		{0x7fc00000, 0x7fc00000}, // quiet NaN
		{0x7f800001, 0x7fc00000}, // signalling NaN, payload in the low half only: stays NaN (quieted)
		{0xff812345, 0xffc10000}, // negative NaN with payload: sign and high payload kept
		{0x00000000, 0x00000000}, // +0
		{0x80000000, 0x80000000}, // −0
		{0x00000001, 0x00000000}, // smallest subnormal: to +0
		{0x80000001, 0x80000000}, // and its negative to −0
		{0x00008000, 0x00000000}, // subnormal tie: to the even 0
		{0x00018000, 0x00020000}, // subnormal tie: to the even 2·2⁻¹³³
		{0x00010000, 0x00010000}, // the smallest bfloat16 subnormal: exact
		{0x007fffff, 0x00800000}, // largest float32 subnormal: up to the smallest normal 2⁻¹²⁶
		{0x3eaaaaab, 0x3eab0000}, // 1/3: 0.333984375
	}
	for _, c := range cases {
		if got := math.Float32bits(RoundBF16(math.Float32frombits(c.in))); got != c.want {
			t.Errorf("RoundBF16(%#08x) = %#08x, want %#08x", c.in, got, c.want)
		}
	}
	const n = 19 // two AVX2 blocks and a tail of 3
	for pos := 0; pos < n; pos++ {
		for _, c := range cases {
			src := make([]float32, n)
			for i := range src {
				src[i] = 1
			}
			src[pos] = math.Float32frombits(c.in)
			dst := make([]float32, n)
			roundBF16(dst, src)
			if got := math.Float32bits(dst[pos]); got != c.want {
				t.Fatalf("roundBF16 at %d of %d: %#08x → %#08x, want %#08x", pos, n, c.in, got, c.want)
			}
			roundBF16(src, src) // in place
			if got := math.Float32bits(src[pos]); got != c.want {
				t.Fatalf("roundBF16 in place at %d: %#08x → %#08x, want %#08x", pos, c.in, got, c.want)
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 1<<16+5)
	for i := range src {
		src[i] = math.Float32frombits(r.Uint32())
	}
	dst := make([]float32, len(src))
	roundBF16(dst, src)
	for i, v := range src {
		if got, want := math.Float32bits(dst[i]), math.Float32bits(RoundBF16(v)); got != want {
			t.Fatalf("roundBF16(%#08x) = %#08x, scalar %#08x", math.Float32bits(v), got, want)
		}
	}
}

// TestResolvePrecision checks --precision's resolution with injected
// CPU features and with and without a hardware bf16 kernel: auto picks
// bf16 only with both; fp32 and bf16 are taken as asked; on this build
// (no hardware kernel) auto is fp32 whatever the CPU.
func TestResolvePrecision(t *testing.T) {
	none, avx, amx := CPUFeatures{}, CPUFeatures{AVX512BF16: true}, CPUFeatures{AMXBF16: true}
	for _, c := range []struct {
		name   string
		cpu    CPUFeatures
		kernel bool
		want   Precision
	}{
		{"auto", none, false, PrecisionFP32},
		{"auto", none, true, PrecisionFP32},
		{"auto", avx, false, PrecisionFP32},
		{"auto", avx, true, PrecisionBF16},
		{"auto", amx, true, PrecisionBF16},
		{"", avx, true, PrecisionBF16},
		{"", none, false, PrecisionFP32},
		{"fp32", avx, true, PrecisionFP32},
		{"bf16", none, false, PrecisionBF16},
		{"bf16", avx, true, PrecisionBF16},
	} {
		got, why, err := resolvePrecision(c.name, c.cpu, c.kernel)
		if err != nil || got != c.want || why == "" {
			t.Errorf("resolve %q on %v, kernel %v: %v (%q, %v), want %v", c.name, c.cpu, c.kernel, got, why, err, c.want)
		}
		t.Logf("%q, %v, kernel %v: %s", c.name, c.cpu, c.kernel, why)
	}
	if _, _, err := resolvePrecision("fp16", avx, true); err == nil {
		t.Error("fp16 accepted")
	}
	host := HostCPU()
	got, why, err := ResolvePrecision("auto", host)
	t.Logf("this machine (%v): %s", host, why)
	if err != nil || got != PrecisionFP32 {
		t.Errorf("auto on this build: %v (%s, %v), want fp32", got, why, err)
	}
	if got, _, _ := ResolvePrecision("auto", CPUFeatures{AVX512BF16: true, AMXBF16: true}); got != PrecisionFP32 {
		t.Error("auto picks bf16 though no kernel of this build uses the hardware")
	}
}

// isBF16 reports whether every value is a bfloat16 (its low 16 bits are
// zero).
func isBF16(v []float32) bool {
	for _, x := range v {
		if math.Float32bits(x)&0xffff != 0 {
			return false
		}
	}
	return true
}

// fracBF16 returns the fraction of v that are bfloat16 values.
func fracBF16(v []float32) float64 {
	k := 0
	for _, x := range v {
		if math.Float32bits(x)&0xffff == 0 {
			k++
		}
	}
	return float64(k) / float64(len(v))
}

// product64 returns alpha·Σₖ a(i,k)·b(k,j) in float64 and Σₖ |a·b|, for
// i < rows, j < cols, k < inner, with a and b given as accessors.
func product64(rows, cols, inner int, alpha float64, a, b func(i, k int) float64) (p, abs []float64) {
	p, abs = make([]float64, rows*cols), make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			var s, sa float64
			for k := 0; k < inner; k++ {
				v := a(i, k) * b(k, j)
				s += v
				sa += math.Abs(v)
			}
			p[i*cols+j], abs[i*cols+j] = alpha*s, math.Abs(alpha)*sa
		}
	}
	return p, abs
}

// checkProduct checks got against the float64 product want within
// float32 accumulation, |got − want| ≤ inner·2⁻²⁴·Σ|a·b| (+ a float32
// ulp of the tiniest sums), and returns the fraction of entries where
// other (the same product on operands not rounded) differs from got by
// more than that bound.
func checkProduct(t *testing.T, what string, got []float32, want, abs, other []float64, inner int) float64 {
	t.Helper()
	bad, differ := 0, 0
	for i, g := range got {
		tol := float64(inner+2)*0x1p-24*abs[i] + 1e-30
		if d := math.Abs(float64(g) - want[i]); d > tol {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %g, want %g (bf16 operands, float32 sums) within %.3g", what, i, g, want[i], tol)
			}
		}
		if math.Abs(float64(g)-other[i]) > tol {
			differ++
		}
	}
	return float64(differ) / float64(len(got))
}

// bf16TestConfig is a small untied Llama with grouped-query heads whose
// products have inner dimensions of 48 to 192.
func bf16TestConfig() Config {
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 48, 96, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize = 4, 2, 61
	c.RMSNormEps, c.RopeTheta = 1e-5, 10000
	return c
}

// TestBF16Products checks that BF16 mode computes what it says, on both
// kinds of BLAS kernels: after a Forward and Backward, for layer 0 and
// the head,
//
//   - the inputs of the projections are bfloat16 values, and v = h·Wvᵀ
//     equals the float64 product of bf16(h) and bf16(Wv) within float32
//     accumulation;
//   - against FP32 on the same input, v differs (in most entries) but by
//     at most the derived bound |Δ| ≤ (2⁻⁷ + 2⁻¹⁶ + 2·K·2⁻²⁴)·Σₖ|h·W|: each
//     operand is off by at most 2⁻⁸ relative (8 significant bits, round
//     to nearest), so each product by (1+2⁻⁸)² − 1, plus float32
//     accumulation on both sides;
//   - the weight gradients are bf16(dy)ᵀ·bf16(x) (v_proj; the head, whose
//     output gradient is the logits' gradient rounded) and the input
//     gradient of q/k/v is Σ bf16(dy)·bf16(W), not the products of the
//     unrounded values;
//   - the residual stream's gradient is not rounded.
func TestBF16Products(t *testing.T) {
	withBLAS(t, func(t *testing.T) {
		c := bf16TestConfig()
		p := randomParams(t, c, 11)
		B, T := 2, 24
		m := newModel(t, p, B, T)
		x := NewBatch(B, T)
		r := rand.New(rand.NewPCG(7, 8))
		for i := range x.IDs {
			x.IDs[i], x.Targets[i], x.Mask[i] = r.IntN(c.VocabSize), r.IntN(c.VocabSize), true
			x.Pos[i], x.Seg[i] = i%T, 0
		}
		n, D, hd := B*T, c.HiddenSize, c.Hd()
		qd, kvd := c.NumAttentionHeads*hd, c.KVHeads()*hd

		// FP32 reference of layer 0's v on the same input.
		lossFP32 := step(t, m, x)
		vFP32 := append([]float32(nil), m.acts[0].v[:n*kvd]...)
		hFP32 := append([]float32(nil), m.acts[0].h1[:n*D]...)

		m.SetPrecision(PrecisionBF16)
		if m.Precision() != PrecisionBF16 {
			t.Fatal("precision not set")
		}
		m.ZeroGrad()
		lossBF16, err := m.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		dlog := append([]float32(nil), m.dlog[:n*c.VocabSize]...) // before Backward rounds it
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
		t.Logf("loss fp32 %.6f, bf16 %.6f", lossFP32, lossBF16)
		if lossBF16 == lossFP32 || math.Abs(float64(lossBF16-lossFP32)) > 1e-2*float64(lossFP32) {
			t.Errorf("loss bf16 %v, fp32 %v", lossBF16, lossFP32)
		}
		a, w, g := &m.acts[0], &m.P.Layers[0], &m.G.Layers[0]
		for _, v := range []struct {
			name string
			x    []float32
		}{{"h1", a.h1[:n*D]}, {"h2", a.h2[:n*D]}, {"y", a.y[:n*qd]}, {"a", a.a[:n*c.IntermediateSize]}, {"hf", m.hf[:n*D]},
			{"dq", m.dq[:n*qd]}, {"dk", m.dk[:n*kvd]}, {"dv", m.dv[:n*kvd]}} {
			if !isBF16(v.x) {
				t.Errorf("%s holds values that are not bfloat16", v.name)
			}
		}
		if f := fracBF16(m.dx[:n*D]); f > 0.1 {
			t.Errorf("%.0f%% of the residual gradient are bfloat16 values: it was rounded", 100*f)
		}
		keep := []float32{1.00390625, 3.14159265}
		if r := m.gradOperand(keep, 1, 2, true); keep[0] != 1.00390625 || keep[1] != 3.14159265 || r[0] != 1 || r[1] != 3.140625 {
			t.Errorf("gradOperand(keep): %v → %v", keep, r)
		}
		bf := func(v float32) float64 { return float64(RoundBF16(v)) }

		// Forward: v = bf(h)·bf(Wv)ᵀ, h = bf(h_fp32) (same input).
		for i := range hFP32 {
			if a.h1[i] != RoundBF16(hFP32[i]) {
				t.Fatalf("h1[%d] = %v, want bf16(%v)", i, a.h1[i], hFP32[i])
			}
		}
		want, abs := product64(n, kvd, D, 1, func(i, k int) float64 { return float64(a.h1[i*D+k]) },
			func(k, j int) float64 { return bf(w.V[j*D+k]) })
		plain, plainAbs := product64(n, kvd, D, 1, func(i, k int) float64 { return float64(hFP32[i*D+k]) },
			func(k, j int) float64 { return float64(w.V[j*D+k]) })
		if f := checkProduct(t, "v", a.v[:n*kvd], want, abs, plain, D); f < 0.9 {
			t.Errorf("v differs from the product of unrounded operands in %.0f%% of entries only", 100*f)
		}
		bound := 0x1p-7 + 0x1p-16 + 2*float64(D)*0x1p-24
		differ, worst := 0, 0.0
		for i, v := range a.v[:n*kvd] {
			d := math.Abs(float64(v - vFP32[i]))
			if d > bound*plainAbs[i] {
				t.Fatalf("v[%d]: bf16 %v, fp32 %v: |Δ| %.3g over the bound %.3g", i, v, vFP32[i], d, bound*plainAbs[i])
			}
			if d > 0 {
				differ++
			}
			worst = max(worst, d/plainAbs[i])
		}
		t.Logf("v: %d of %d entries differ from fp32; worst |Δ|/Σ|h·W| %.2e, bound %.2e", differ, n*kvd, worst, bound)
		if differ < n*kvd*9/10 {
			t.Errorf("bf16 v equals fp32 in %d of %d entries: the bf16 path is not taken", n*kvd-differ, n*kvd)
		}

		// Weight gradient of v_proj: dWv = bf(dv)ᵀ·bf(h1), dv rounded in place.
		want, abs = product64(kvd, D, n, 1, func(j, i int) float64 { return float64(m.dv[i*kvd+j]) },
			func(i, k int) float64 { return float64(a.h1[i*D+k]) })
		plain, _ = product64(kvd, D, n, 1, func(j, i int) float64 { return float64(m.dv[i*kvd+j]) },
			func(i, k int) float64 { return float64(hFP32[i*D+k]) })
		if f := checkProduct(t, "dWv", g.V, want, abs, plain, n); f < 0.5 {
			t.Errorf("dWv matches unrounded activations in %.0f%% of entries", 100*(1-f))
		}

		// Head: dWlm = bf(dlogits)ᵀ·bf(hf).
		V := c.VocabSize
		want, abs = product64(V, D, n, 1, func(j, i int) float64 { return bf(dlog[i*V+j]) },
			func(i, k int) float64 { return float64(m.hf[i*D+k]) })
		plain, _ = product64(V, D, n, 1, func(j, i int) float64 { return float64(dlog[i*V+j]) },
			func(i, k int) float64 { return float64(m.hf[i*D+k]) })
		if f := checkProduct(t, "dWlm", m.G.LMHead, want, abs, plain, n); f < 0.5 {
			t.Errorf("dWlm matches the unrounded logits' gradient in %.0f%% of entries", 100*(1-f))
		}

		// Input gradient of layer 0's q/k/v: dh = Σ bf(dy)·bf(W).
		inner := qd + 2*kvd
		dy := func(i, k int) float64 { // dq, dk, dv side by side
			switch {
			case k < qd:
				return float64(m.dq[i*qd+k])
			case k < qd+kvd:
				return float64(m.dk[i*kvd+k-qd])
			}
			return float64(m.dv[i*kvd+k-qd-kvd])
		}
		wAt := func(k, j int, round bool) float64 {
			var v float32
			switch {
			case k < qd:
				v = w.Q[k*D+j]
			case k < qd+kvd:
				v = w.K[(k-qd)*D+j]
			default:
				v = w.V[(k-qd-kvd)*D+j]
			}
			if round {
				return bf(v)
			}
			return float64(v)
		}
		want, abs = product64(n, D, inner, 1, dy, func(k, j int) float64 { return wAt(k, j, true) })
		plain, _ = product64(n, D, inner, 1, dy, func(k, j int) float64 { return wAt(k, j, false) })
		if f := checkProduct(t, "dh", m.dh[:n*D], want, abs, plain, inner+2); f < 0.9 {
			t.Errorf("dh matches the unrounded weights in %.0f%% of entries", 100*(1-f))
		}

		// With the norms' weights at zero the layers add nothing, forward
		// or backward, and the gradient that reaches the embeddings is
		// the final norm's, passed down the residual stream: it must
		// arrive unrounded, while o_proj and down_proj got it rounded.
		saved := append([]float32(nil), m.P.Data...)
		for i := range m.P.Layers {
			clear(m.P.Layers[i].InputNorm)
			clear(m.P.Layers[i].PostNorm)
		}
		m.ZeroGrad()
		step(t, m, x)
		if f := fracBF16(m.dx[:n*D]); f > 0.1 {
			t.Errorf("%.0f%% of the gradient passed down the residual stream are bfloat16 values: it was rounded in place", 100*f)
		}
		for i, v := range m.dx[:n*D] {
			if m.bf.dy[i] != RoundBF16(v) {
				t.Fatalf("o_proj's output gradient [%d] = %v, want bf16(%v)", i, m.bf.dy[i], v)
			}
		}
		copy(m.P.Data, saved)

		// Back to FP32: the same loss as before.
		m.SetPrecision(PrecisionFP32)
		if l2, _ := m.Forward(x); l2 != lossFP32 {
			t.Errorf("fp32 again: loss %v, want %v", l2, lossFP32)
		}
	})
}

// TestBF16LoRA runs LoRA and QLoRA models in both precisions: the loss
// and the adapters' gradients change (the path is taken), by little,
// and stay finite.
func TestBF16LoRA(t *testing.T) {
	for _, q := range []bool{false, true} {
		c := bf16TestConfig()
		m := newModel(t, randomParams(t, c, 3), 2, 16)
		if err := m.EnableLoRA(LoRAConfig{Rank: 4, Alpha: 8, Seed: 2}); err != nil {
			t.Fatal(err)
		}
		randomizeB(m, 4, 0.05)
		if q {
			if err := m.QuantizeBase(0); err != nil {
				t.Fatal(err)
			}
		}
		x := tinyBatch(c.VocabSize)
		grads := func() (float32, []float32) {
			m.ZeroGrad()
			loss := step(t, m, x)
			var g []float32
			for _, tt := range m.Trainable() {
				g = append(g, tt.G...)
			}
			return loss, g
		}
		l32, g32 := grads()
		m.SetPrecision(PrecisionBF16)
		l16, g16 := grads()
		m.SetPrecision(PrecisionFP32)
		var num, den float64
		for i := range g32 {
			if math.IsNaN(float64(g16[i])) || math.IsInf(float64(g16[i]), 0) {
				t.Fatalf("qlora %v: gradient %d is %v", q, i, g16[i])
			}
			d := float64(g16[i] - g32[i])
			num += d * d
			den += float64(g32[i]) * float64(g32[i])
		}
		rel := math.Sqrt(num / den)
		t.Logf("qlora %v: loss fp32 %.6f bf16 %.6f; adapter gradients' relative difference %.2e", q, l32, l16, rel)
		if l16 == l32 || math.Abs(float64(l16-l32)) > 1e-2*float64(l32) || rel == 0 || rel > 0.05 {
			t.Errorf("qlora %v: loss %v vs %v, gradient difference %.3g", q, l16, l32, rel)
		}
	}
}

// BenchmarkRoundBF16 measures the rounding kernel on 1 MiB of float32
// (in cache) and on 64 MiB (from memory): the AVX2 kernel where the CPU
// has it, the Go loop with -tags purego.
func BenchmarkRoundBF16(b *testing.B) {
	for _, mib := range []int{1, 64} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			src := make([]float32, mib<<18)
			for i := range src {
				src[i] = float32(i) * 1.0001
			}
			dst := make([]float32, len(src))
			b.SetBytes(4 * int64(len(src)))
			for b.Loop() {
				roundBF16(dst, src)
			}
		})
	}
}
