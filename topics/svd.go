package topics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// csr is an n×f sparse matrix in compressed sparse row form: row i has
// the entries val[ptr[i]:ptr[i+1]] in columns col[ptr[i]:ptr[i+1]].
type csr struct {
	n, f int
	ptr  []int
	col  []int32
	val  []float32
}

// transpose returns the f×n transpose, also in CSR form.
func (a *csr) transpose() *csr {
	t := &csr{n: a.f, f: a.n, ptr: make([]int, a.f+1), col: make([]int32, len(a.col)), val: make([]float32, len(a.val))}
	for _, c := range a.col {
		t.ptr[c+1]++
	}
	for j := 0; j < a.f; j++ {
		t.ptr[j+1] += t.ptr[j]
	}
	next := append([]int(nil), t.ptr[:a.f]...)
	for i := 0; i < a.n; i++ {
		for p := a.ptr[i]; p < a.ptr[i+1]; p++ {
			c := a.col[p]
			q := next[c]
			t.col[q] = int32(i)
			t.val[q] = a.val[p]
			next[c]++
		}
	}
	return t
}

// mulCentered sets out (a.n×l) to (a − 1·mu')·b for b (a.f×l), mu of
// length a.f. Rows are computed in parallel, each by one goroutine, so
// the result does not depend on the number of CPUs.
func (a *csr) mulCentered(b *mat.Dense, mu []float64, out *mat.Dense) {
	_, l := b.Dims()
	// muB = mu'·b.
	muB := make([]float64, l)
	braw := b.RawMatrix()
	for j, m := range mu {
		if m == 0 {
			continue
		}
		row := braw.Data[j*braw.Stride : j*braw.Stride+l]
		for c, x := range row {
			muB[c] += m * x
		}
	}
	oraw := out.RawMatrix()
	parallelRows(a.n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst := oraw.Data[i*oraw.Stride : i*oraw.Stride+l]
			for c := range dst {
				dst[c] = -muB[c]
			}
			for p := a.ptr[i]; p < a.ptr[i+1]; p++ {
				axpy64(float64(a.val[p]), braw.Data[int(a.col[p])*braw.Stride:int(a.col[p])*braw.Stride+l], dst)
			}
		}
	})
}

// parallelRows splits [0, n) into contiguous ranges run on up to
// GOMAXPROCS goroutines.
func parallelRows(n int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), max(1, n/64))
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + w - 1) / w
	for lo := 0; lo < n; lo += step {
		hi := min(n, lo+step)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// orthonormalize replaces the columns of y (m×l, m ≥ l) by an
// orthonormal basis of their span and returns R (l×l, upper triangular)
// with y_before = y_after·R. It tries CholeskyQR2 (two rounds of
// G = Y'Y, G = R'R, Y ← Y·R⁻¹: matrix products that run at BLAS-3
// speed) and falls back to Householder QR when the Gram matrix is not
// safely positive definite (condition number above 1e8, as with
// rank-deficient y).
func orthonormalize(y *mat.Dense) *mat.Dense {
	orig := mat.DenseCopyOf(y)
	if r1, ok := cholQR(y); ok {
		if r2, ok := cholQR(y); ok {
			var r mat.Dense
			r.Mul(r2, r1)
			return &r
		}
	}
	y.Copy(orig)
	return householderQR(y)
}

// cholQR is one round of CholeskyQR; it leaves y alone when it fails.
// The products go through Gemm (blocked and parallel in gonum), with R⁻¹
// formed explicitly (l×l, condition at most 1e4).
func cholQR(y *mat.Dense) (*mat.Dense, bool) {
	_, l := y.Dims()
	var g mat.Dense
	g.Mul(y.T(), y)
	gs := mat.NewSymDense(l, nil)
	for i := range l {
		for j := i; j < l; j++ {
			gs.SetSym(i, j, g.At(i, j))
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(gs) || ch.Cond() > 1e8 {
		return nil, false
	}
	var r, rinv mat.TriDense
	ch.UTo(&r)
	if err := rinv.InverseTri(&r); err != nil {
		return nil, false
	}
	var q mat.Dense
	q.Mul(y, mat.DenseCopyOf(&rinv)) // Dense, so Mul takes Gemm, not Trmm
	y.Copy(&q)
	out := mat.NewDense(l, l, nil)
	for i := range l {
		for j := i; j < l; j++ {
			out.Set(i, j, r.At(i, j))
		}
	}
	return out, true
}

// householderQR is the thin QR of LAPACK's geqrf and orgqr.
func householderQR(y *mat.Dense) *mat.Dense {
	raw := y.RawMatrix()
	_, l := y.Dims()
	tau := make([]float64, l)
	work := make([]float64, 1)
	lapack64.Geqrf(raw, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Geqrf(raw, tau, work, len(work))
	r := mat.NewDense(l, l, nil)
	for i := range l {
		for j := i; j < l; j++ {
			r.Set(i, j, y.At(i, j))
		}
	}
	work = work[:1]
	lapack64.Orgqr(raw, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Orgqr(raw, tau, work, len(work))
	return r
}

// svdResult is a rank-k truncated SVD of a centered sparse matrix
// (a − 1·mu') ≈ U·diag(S)·V'; only V (f×k, orthonormal columns) and the
// singular values are kept.
type svdResult struct {
	V *mat.Dense
	S []float64
}

// randomizedSVD computes the top-k right singular vectors and singular
// values of a − 1·mu' (the column-centered matrix, never formed) by the
// randomized range finder with subspace iteration of Halko, Martinsson
// and Tropp (2011, algorithms 4.4 and 5.1): a Gaussian test matrix Ω
// (f×(k+oversample)) drawn from seed, Y = AΩ, power iterations
// alternating QR-orthonormalised products with A' and A, then the small
// SVD of B = Q'A through a QR of B'. Cost: about (2·iters+2)·nnz·l
// multiply-adds for the products plus O((n+f)·l²) for the QRs, with
// l = k+oversample.
func randomizedSVD(a *csr, mu []float64, k, oversample, iters int, seed uint64) (svdResult, error) {
	l := k + oversample
	if lim := min(a.n, a.f); l > lim {
		l = lim
	}
	if k > l {
		k = l
	}
	if k <= 0 {
		return svdResult{}, fmt.Errorf("svd: rank %d of a %d×%d matrix", k, a.n, a.f)
	}
	at := a.transpose()
	rng := rand.New(rand.NewPCG(seed, 0x5eed5eed))
	omega := mat.NewDense(a.f, l, nil)
	od := omega.RawMatrix().Data
	for i := range od {
		od[i] = rng.NormFloat64()
	}
	y := mat.NewDense(a.n, l, nil)
	z := mat.NewDense(a.f, l, nil)
	a.mulCentered(omega, mu, y)
	orthonormalize(y)
	for range iters {
		at.mulCenteredT(y, mu, z)
		orthonormalize(z)
		a.mulCentered(z, mu, y)
		orthonormalize(y)
	}
	// B' = A_c'·Q (f×l); B' = Qb·R; R = Ur·S·Vr'; so the right singular
	// vectors of A_c are Qb·Ur.
	at.mulCenteredT(y, mu, z)
	r := orthonormalize(z)
	var svd mat.SVD
	if !svd.Factorize(r, mat.SVDFull) {
		return svdResult{}, fmt.Errorf("svd: the %d×%d core did not converge", l, l)
	}
	var ur mat.Dense
	svd.UTo(&ur)
	v := mat.NewDense(a.f, l, nil)
	v.Mul(z, &ur)
	s := svd.Values(nil)
	vk := mat.DenseCopyOf(v.Slice(0, a.f, 0, k))
	// Fix signs: the entry of largest magnitude of each vector is
	// positive, so the basis is reproducible whatever the LAPACK path.
	for c := range k {
		best, at := 0.0, 0
		for i := range a.f {
			if x := math.Abs(vk.At(i, c)); x > best {
				best, at = x, i
			}
		}
		if vk.At(at, c) < 0 {
			for i := range a.f {
				vk.Set(i, c, -vk.At(i, c))
			}
		}
	}
	return svdResult{V: vk, S: s[:k]}, nil
}

// mulCenteredT, on the transpose t = a' (f×n), sets out (f×l) to
// (a − 1·mu')'·q = a'·q − mu·(1'·q) for q (n×l).
func (t *csr) mulCenteredT(q *mat.Dense, mu []float64, out *mat.Dense) {
	_, l := q.Dims()
	colSum := make([]float64, l)
	qraw := q.RawMatrix()
	for i := 0; i < t.f; i++ {
		for c, x := range qraw.Data[i*qraw.Stride : i*qraw.Stride+l] {
			colSum[c] += x
		}
	}
	oraw := out.RawMatrix()
	parallelRows(t.n, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			dst := oraw.Data[j*oraw.Stride : j*oraw.Stride+l]
			m := mu[j]
			for c := range dst {
				dst[c] = -m * colSum[c]
			}
			for p := t.ptr[j]; p < t.ptr[j+1]; p++ {
				axpy64(float64(t.val[p]), qraw.Data[int(t.col[p])*qraw.Stride:int(t.col[p])*qraw.Stride+l], dst)
			}
		}
	})
}
