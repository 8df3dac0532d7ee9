package model

// Vector kernels of the element-wise layers: exponentials (softmax,
// cross-entropy) and SwiGLU. On amd64 with AVX2 and FMA they run eight
// lanes at a time in assembly (vecmath_amd64.s); elsewhere, and for the
// tails, the Go loops below compute the same functions with expf.

// expShiftSum sets dst[i] = exp(src[i] − shift) and returns Σ dst
// (src may be dst; len(src) ≥ len(dst)).
func expShiftSum(dst, src []float32, shift float32) float32 {
	src = src[:len(dst)]
	var sum float32
	i := 0
	if useAVX2 && len(dst) >= 8 {
		i = len(dst) &^ 7
		sum = expShiftSumAVX2(&dst[0], &src[0], i, shift)
	}
	for ; i < len(dst); i++ {
		e := expf(src[i] - shift)
		dst[i] = e
		sum += e
	}
	return sum
}

// maxf returns the largest element of x (non-empty).
func maxf(x []float32) float32 {
	mx := x[0]
	i := 0
	if useAVX2 && len(x) >= 8 {
		i = len(x) &^ 7
		mx = maxAVX2(&x[0], i)
	}
	for _, v := range x[i:] {
		mx = max(mx, v)
	}
	return mx
}

// scale multiplies x by a.
func scale(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}

// swigluForward sets a = silu(g)∘u, silu(g) = g·σ(g); g, u, a [n, F]
// (flat ranges of equal length).
func swigluForward(a, g, u []float32) {
	a, u = a[:len(g)], u[:len(g)]
	i := 0
	if useAVX2 && len(g) >= 8 {
		i = len(g) &^ 7
		swigluFwdAVX2(&a[0], &g[0], &u[0], i)
	}
	for ; i < len(g); i++ {
		gv := g[i]
		a[i] = gv * sigmoidf(gv) * u[i]
	}
}

// swigluBackward turns da into dg in place and sets du:
//
//	du = da∘silu(g),  dg = da∘u∘(σ(g) + silu(g)·(1−σ(g)))
func swigluBackward(da, du, g, u []float32) {
	da, du, u = da[:len(g)], du[:len(g)], u[:len(g)]
	i := 0
	if useAVX2 && len(g) >= 8 {
		i = len(g) &^ 7
		swigluBwdAVX2(&da[0], &du[0], &g[0], &u[0], i)
	}
	for ; i < len(g); i++ {
		gv := g[i]
		s := sigmoidf(gv)
		silu := gv * s
		d := da[i]
		du[i] = d * silu
		da[i] = d * u[i] * (s + silu*(1-s))
	}
}
