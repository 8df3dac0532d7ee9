package model

// The layers, each forward beside its backward. Every function works on
// preallocated row-major buffers and allocates nothing; n is the number
// of tokens (B·T). Backward functions add into parameter gradients (so
// that gradients accumulate over micro-batches) and either set or add
// into input gradients, as their comments say.

import (
	"math"
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// mat views data as a rows×cols row-major matrix.
func mat(data []float32, rows, cols int) blas32.General {
	return blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: data[:rows*cols]}
}

// matS views rows×cols with the given stride, starting at data[0].
func matS(data []float32, rows, cols, stride int) blas32.General {
	return blas32.General{Rows: rows, Cols: cols, Stride: stride, Data: data[:(rows-1)*stride+cols]}
}

// ---------------------------------------------------------------------
// Embedding: x[n] = E[ids[n]].  E [V, D], x [n, D].

func embeddingForward(x, table []float32, ids []int, d int) {
	for i, id := range ids {
		copy(x[i*d:(i+1)*d], table[id*d:(id+1)*d])
	}
}

// embeddingBackward adds dx[n] into dE[ids[n]].
func embeddingBackward(dtable, dx []float32, ids []int, d int) {
	for i, id := range ids {
		dst := dtable[id*d : (id+1)*d]
		src := dx[i*d : (i+1)*d]
		for j := range dst {
			dst[j] += src[j]
		}
	}
}

// ---------------------------------------------------------------------
// Linear (no bias): y = x·Wᵀ.  x [n, in], W [out, in], y [n, out].

func linearForward(y, x, w []float32, n, in, out int) {
	gemm(blas.NoTrans, blas.Trans, 1, mat(x, n, in), mat(w, out, in), 0, mat(y, n, out))
}

// linearForwardAdd adds x·Wᵀ into y (a residual connection).
func linearForwardAdd(y, x, w []float32, n, in, out int) {
	gemm(blas.NoTrans, blas.Trans, 1, mat(x, n, in), mat(w, out, in), 1, mat(y, n, out))
}

// addBias adds b [out] to rows [lo, hi) of y [n, out] (out = len(b)).
func addBias(y, b []float32, lo, hi int) {
	out := len(b)
	for i := lo; i < hi; i++ {
		row := y[i*out : (i+1)*out]
		for j, v := range b {
			row[j] += v
		}
	}
}

// linearBackward adds alpha·dyᵀ·x into dW and sets (beta 0) or adds
// (beta 1) alpha·dy·W into dx (dx nil: skipped).
//
// gonum's pure-Go Sgemm is fastest by far in the A·Bᵀ form (dot
// products; ~10 GFLOP/s here against ~7 for A·B and ~5.5 for Aᵀ·B), so
// with that implementation both products run in that form on transposed
// copies held in s (the transposes cost a few percent of the products).
// With any other blas32 implementation (OpenBLAS) they run directly,
// the transposes left to the kernel's Trans flags, and s is unused.
func linearBackward(dx, dw, dy, x, w []float32, n, in, out int, alpha, beta float32, s *scratch) {
	if s == nil || !nativeBLAS() {
		gemm(blas.Trans, blas.NoTrans, alpha, mat(dy, n, out), mat(x, n, in), 1, mat(dw, out, in))
		if dx != nil {
			gemm(blas.NoTrans, blas.NoTrans, alpha, mat(dy, n, out), mat(w, out, in), beta, mat(dx, n, in))
		}
		return
	}
	dyT, xT := s.get(0, out*n), s.get(1, in*n)
	s.transpose(dyT, dy, n, out)
	s.transpose(xT, x, n, in)
	// dW[out,in] += alpha · dyᵀ[out,n] · (xᵀ[in,n])ᵀ
	blas32.Gemm(blas.NoTrans, blas.Trans, alpha, mat(dyT, out, n), mat(xT, in, n), 1, mat(dw, out, in))
	if dx != nil {
		// dx[n,in] = alpha · dy[n,out] · (Wᵀ[in,out])ᵀ + beta·dx
		wT := s.get(2, in*out)
		s.transpose(wT, w, out, in)
		blas32.Gemm(blas.NoTrans, blas.Trans, alpha, mat(dy, n, out), mat(wT, in, out), beta, mat(dx, n, in))
	}
}

// nativeBLAS reports whether blas32 runs gonum's own pure-Go kernels.
func nativeBLAS() bool {
	_, ok := blas32.Implementation().(gonum.Implementation)
	return ok
}

// gemmSplitFlops is the size (m·n·k) from which gemm splits a product
// among goroutines.
const gemmSplitFlops = 1 << 21

// gemm computes C = alpha·op(A)·op(B) + beta·C through blas32.Gemm.
// gonum's kernels split large products among goroutines themselves; any
// other implementation (OpenBLAS, set to one thread: see
// train/model/openblas) gets the rows of C split into GOMAXPROCS blocks,
// multiples of 16 rows, run in parallel (one kernel call per block, on
// its goroutine's core).
func gemm(tA, tB blas.Transpose, alpha float32, a, b blas32.General, beta float32, c blas32.General) {
	m, k := c.Rows, a.Cols
	if tA != blas.NoTrans {
		k = a.Rows
	}
	workers := runtime.GOMAXPROCS(0)
	if workers == 1 || m < 32 || m*c.Cols*k < gemmSplitFlops || nativeBLAS() {
		blas32.Gemm(tA, tB, alpha, a, b, beta, c)
		return
	}
	blocks := (m + 15) / 16
	parallelFor(workers, blocks, func(_, lo, hi int) {
		r0, r1 := lo*16, min(hi*16, m)
		sa := a
		if tA == blas.NoTrans { // rows r0:r1 of A
			sa.Rows, sa.Data = r1-r0, a.Data[r0*a.Stride:]
		} else { // columns r0:r1 of A (stored k×m)
			sa.Cols, sa.Data = r1-r0, a.Data[r0:]
		}
		sc := c
		sc.Rows, sc.Data = r1-r0, c.Data[r0*c.Stride:]
		blas32.Gemm(tA, tB, alpha, sa, b, beta, sc)
	})
}

// scratch holds buffers that grow to the largest size asked for and are
// then reused.
type scratch struct {
	buf     [3][]float32
	workers int
}

func (s *scratch) get(i, n int) []float32 {
	if cap(s.buf[i]) < n {
		s.buf[i] = make([]float32, n)
	}
	return s.buf[i][:n]
}

// transpose sets dst [cols, rows] to srcᵀ, src [rows, cols], in 16×16
// tiles that write dst rows contiguously (the faster direction when the
// strides are powers of two); the columns of src are split among
// s.workers goroutines.
func (s *scratch) transpose(dst, src []float32, rows, cols int) {
	parallelFor(s.workers, (cols+15)/16, func(_, lo, hi int) {
		const tile = 16
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

// ---------------------------------------------------------------------
// RMSNorm: r = 1/√(mean(x²)+ε), x̂ = x·r, y = w∘x̂.  x, y [n, d], r [n], w [d].
// Rows [lo, hi) only, so that callers can split the work.

func rmsnormForward(y, r, x, w []float32, lo, hi, d int, eps float32) {
	for i := lo; i < hi; i++ {
		xr := x[i*d : (i+1)*d]
		yr := y[i*d : (i+1)*d]
		ss := sumProd(xr, xr)
		ri := float32(1 / math.Sqrt(float64(float32(ss/float64(d))+eps)))
		r[i] = ri
		for j, v := range xr {
			yr[j] = w[j] * (v * ri)
		}
	}
}

// rmsnormBackward sets (add false) or adds (add true) into dx
//
//	dx = r·(w∘dy − x̂·mean(x̂∘w∘dy)),
//
// and adds Σₙ dy∘x̂ into dw (dw is written only when dw != nil, so that a
// caller splitting the rows can reduce dw itself with rmsnormWeightGrad).
func rmsnormBackward(dx, dw, dy, x, r, w []float32, lo, hi, d int, add bool) {
	for i := lo; i < hi; i++ {
		xr, dyr, dxr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d], dx[i*d:(i+1)*d]
		ri := r[i]
		// mean(x̂∘w∘dy) = r·Σ x∘w∘dy / d
		m := float32(dot3(xr, w[:d], dyr) * float64(ri) / float64(d))
		if add {
			for j, v := range xr {
				dxr[j] += ri * (dyr[j]*w[j] - v*ri*m)
			}
		} else {
			for j, v := range xr {
				dxr[j] = ri * (dyr[j]*w[j] - v*ri*m)
			}
		}
	}
	if dw != nil {
		rmsnormWeightGrad(dw, dy, x, r, lo, hi, d)
	}
}

// sumProd returns Σ a∘b (len(b) ≥ len(a)) in float64, four sums at a time.
func sumProd(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dot3 returns Σ a∘b∘c (len(b), len(c) ≥ len(a)) in float64, with a∘b
// rounded to float32 first, four sums at a time.
func dot3(a, b, c []float32) float64 {
	b, c = b[:len(a)], c[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]*b[i]) * float64(c[i])
		s1 += float64(a[i+1]*b[i+1]) * float64(c[i+1])
		s2 += float64(a[i+2]*b[i+2]) * float64(c[i+2])
		s3 += float64(a[i+3]*b[i+3]) * float64(c[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]*b[i]) * float64(c[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsnormWeightGrad adds Σₙ dy[n]∘x̂[n] over rows [lo, hi) into dw.
func rmsnormWeightGrad(dw, dy, x, r []float32, lo, hi, d int) {
	for i := lo; i < hi; i++ {
		xr, dyr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d]
		ri := r[i]
		for j, v := range xr {
			dw[j] += dyr[j] * (v * ri)
		}
	}
}

// ---------------------------------------------------------------------
// Rotary embeddings, Hugging Face rotate-half convention. For a head
// vector x of size hd, h = hd/2, and per-token tables c = cos(pos·f),
// s = sin(pos·f) of size h:
//
//	y[i]   = x[i]·c[i] − x[i+h]·s[i]
//	y[i+h] = x[i+h]·c[i] + x[i]·s[i]      (i < h)
//
// x [n, nh·hd] is rotated in place; cos, sin [n, h].

// ropeInvFreq returns f[i] = 1/θ^(2i/hd) computed in float32 steps as
// transformers does.
func ropeInvFreq(hd int, theta float64) []float32 {
	f := make([]float32, hd/2)
	for i := range f {
		e := float32(2*i) / float32(hd)
		f[i] = 1 / float32(math.Pow(theta, float64(e)))
	}
	return f
}

// ropeTables fills cos, sin [n, hd/2] for positions pos[lo:hi].
func ropeTables(cos, sin, invFreq []float32, pos []int, lo, hi int) {
	h := len(invFreq)
	for i := lo; i < hi; i++ {
		p := float32(pos[i])
		for j, f := range invFreq {
			a := float64(p * f) // the float32 product, as torch's matmul of [h,1]@[1,T]
			cos[i*h+j] = float32(math.Cos(a))
			sin[i*h+j] = float32(math.Sin(a))
		}
	}
}

func ropeForward(x, cos, sin []float32, lo, hi, nh, hd int) {
	h := hd / 2
	for i := lo; i < hi; i++ {
		c, s := cos[i*h:(i+1)*h], sin[i*h:(i+1)*h]
		for head := 0; head < nh; head++ {
			v := x[(i*nh+head)*hd : (i*nh+head+1)*hd]
			a, b := v[:h], v[h:]
			for j := range a {
				a[j], b[j] = a[j]*c[j]-b[j]*s[j], b[j]*c[j]+a[j]*s[j]
			}
		}
	}
}

// ropeBackward applies the transposed rotation to the gradient dx in
// place.
func ropeBackward(dx, cos, sin []float32, lo, hi, nh, hd int) {
	h := hd / 2
	for i := lo; i < hi; i++ {
		c, s := cos[i*h:(i+1)*h], sin[i*h:(i+1)*h]
		for head := 0; head < nh; head++ {
			v := dx[(i*nh+head)*hd : (i*nh+head+1)*hd]
			a, b := v[:h], v[h:]
			for j := range a {
				a[j], b[j] = a[j]*c[j]+b[j]*s[j], b[j]*c[j]-a[j]*s[j]
			}
		}
	}
}

// ---------------------------------------------------------------------
// Causal self-attention with grouped-query heads and segment masks, for
// one (row b, key/value head g) pair and its rep = H/KV query heads
// h = g·rep … g·rep+rep−1 (as transformers' repeat_kv). With T tokens
// in the row and, for token i, lo[i] the first token of its segment:
//
//	S[i,j] = scale · q_i·k_j        for lo[i] ≤ j ≤ i, −∞ otherwise
//	P = softmax_j(S),  y_i = Σ_j P[i,j]·v_j
//
// The views: q, y [T, H·hd]; k, v [T, KV·hd] (row starts of this batch
// row); p [H, T, T] for this row. Query rows go in blocks of attnBlock;
// a block starting at i0 and ending at i1 only touches keys [lo[i0], i1),
// so that masked-out work is mostly skipped. Entries of p outside those
// ranges are never read or written.

// attnBlock is the number of query rows per block (a variable so that
// tests can exercise blocks that cut through segments).
var attnBlock = 64

type attnDims struct {
	T, H, KV, hd int
	scale        float32
}

func (a attnDims) qd() int  { return a.H * a.hd }
func (a attnDims) kvd() int { return a.KV * a.hd }

func attentionForward(a attnDims, y, p, q, k, v []float32, lo []int32, g int) {
	rep := a.H / a.KV
	qd, kvd, T, hd := a.qd(), a.kvd(), a.T, a.hd
	kg, vg := k[g*hd:], v[g*hd:]
	for h := g * rep; h < (g+1)*rep; h++ {
		qh, yh, ph := q[h*hd:], y[h*hd:], p[h*T*T:(h+1)*T*T]
		for i0 := 0; i0 < T; i0 += attnBlock {
			i1 := min(i0+attnBlock, T)
			k0 := int(lo[i0])
			nq, nk := i1-i0, i1-k0
			pb := ph[i0*T+k0:]
			// S = scale · Q[i0:i1] · K[k0:i1]ᵀ, into p.
			blas32.Gemm(blas.NoTrans, blas.Trans, a.scale,
				matS(qh[i0*qd:], nq, hd, qd), matS(kg[k0*kvd:], nk, hd, kvd), 0, matS(pb, nq, nk, T))
			for i := i0; i < i1; i++ {
				row := ph[i*T : i*T+i1] // columns [k0, i1) are live
				l := int(lo[i])
				live := row[l : i+1]
				scale(live, 1/expShiftSum(live, live, maxf(live)))
				clear(row[k0:l])
				clear(row[i+1 : i1])
			}
			// Y[i0:i1] = P[i0:i1, k0:i1] · V[k0:i1]
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
				matS(pb, nq, nk, T), matS(vg[k0*kvd:], nk, hd, kvd), 0, matS(yh[i0*qd:], nq, hd, qd))
		}
	}
}

// attentionBackward sets dq for the rep query heads of group g and adds
// into dk, dv of group g (which the caller zeroes first); dp is scratch
// of attnBlock·T values.
//
//	dP = dY·Vᵀ,  dV += Pᵀ·dY,  dS = P∘(dP − rowsum(dP∘P)),
//	dQ = scale·dS·K,  dK += scale·dSᵀ·Q
func attentionBackward(a attnDims, dq, dk, dv, dy, p, q, k, v, dp []float32, lo []int32, g int) {
	rep := a.H / a.KV
	qd, kvd, T, hd := a.qd(), a.kvd(), a.T, a.hd
	kg, vg, dkg, dvg := k[g*hd:], v[g*hd:], dk[g*hd:], dv[g*hd:]
	for h := g * rep; h < (g+1)*rep; h++ {
		qh, dqh, dyh, ph := q[h*hd:], dq[h*hd:], dy[h*hd:], p[h*T*T:(h+1)*T*T]
		for i0 := 0; i0 < T; i0 += attnBlock {
			i1 := min(i0+attnBlock, T)
			k0 := int(lo[i0])
			nq, nk := i1-i0, i1-k0
			pb := ph[i0*T+k0:]
			dY := matS(dyh[i0*qd:], nq, hd, qd)
			// dP = dY · V[k0:i1]ᵀ   [nq, nk], in scratch with stride nk
			blas32.Gemm(blas.NoTrans, blas.Trans, 1, dY, matS(vg[k0*kvd:], nk, hd, kvd), 0, mat(dp, nq, nk))
			// dV[k0:i1] += Pᵀ · dY
			blas32.Gemm(blas.Trans, blas.NoTrans, 1, matS(pb, nq, nk, T), dY, 1, matS(dvg[k0*kvd:], nk, hd, kvd))
			for r := 0; r < nq; r++ {
				pr := pb[r*T : r*T+nk]
				dr := dp[r*nk : (r+1)*nk]
				var dot float32
				for j, pv := range pr {
					dot += pv * dr[j]
				}
				for j, pv := range pr {
					dr[j] = pv * (dr[j] - dot)
				}
			}
			dS := mat(dp, nq, nk)
			// dQ[i0:i1] = scale · dS · K[k0:i1]
			blas32.Gemm(blas.NoTrans, blas.NoTrans, a.scale, dS, matS(kg[k0*kvd:], nk, hd, kvd), 0, matS(dqh[i0*qd:], nq, hd, qd))
			// dK[k0:i1] += scale · dSᵀ · Q[i0:i1]
			blas32.Gemm(blas.Trans, blas.NoTrans, a.scale, dS, matS(qh[i0*qd:], nq, hd, qd), 1, matS(dkg[k0*kvd:], nk, hd, kvd))
		}
	}
}

// ---------------------------------------------------------------------
// SwiGLU: a = silu(g)∘u, silu(g) = g·σ(g).  g, u, a [n, F] (flat ranges):
// swigluForward and swigluBackward are in vecmath.go.

// ---------------------------------------------------------------------
// Cross-entropy over logits z [n, V] for rows [lo, hi): for a counted row
// with target t, loss = logsumexp(z) − z[t], and the gradient of the
// mean loss is (softmax(z) − onehot(t))·invCount; uncounted rows get a
// zero gradient. Returns the sum of the row losses.

func crossEntropyForward(dz, z []float32, x *Batch, lo, hi, V int, invCount float32) float64 {
	var total float64
	for i := lo; i < hi; i++ {
		zr, dr := z[i*V:(i+1)*V], dz[i*V:(i+1)*V]
		if !x.counted(i) {
			clear(dr)
			continue
		}
		mx := maxf(zr)
		sum := expShiftSum(dr, zr, mx)
		t := x.Targets[i]
		total += float64(mx) + math.Log(float64(sum)) - float64(zr[t])
		scale(dr, 1/sum*invCount)
		dr[t] -= invCount
	}
	return total
}
