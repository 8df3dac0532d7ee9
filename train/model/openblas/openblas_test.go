package openblas

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestSgemm compares the installed Sgemm with gonum's pure-Go kernel for
// every transpose pair, padded strides and alpha/beta cases.
func TestSgemm(t *testing.T) {
	t.Logf("kernels: %s (enabled %v)", Name(), Enabled)
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(k int) []float32 {
		s := make([]float32, k)
		for i := range s {
			s[i] = r.Float32()*2 - 1
		}
		return s
	}
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			for _, d := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 65, 17}, {128, 96, 200}} {
				m, n, k := d[0], d[1], d[2]
				rowA, colA := m, k
				if tA == blas.Trans {
					rowA, colA = k, m
				}
				rowB, colB := k, n
				if tB == blas.Trans {
					rowB, colB = n, k
				}
				lda, ldb, ldc := colA+3, colB+1, n+2
				a, b := fill(rowA*lda), fill(rowB*ldb)
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}, {0, 3}} {
					c0 := fill(m * ldc)
					want := append([]float32(nil), c0...)
					got := append([]float32(nil), c0...)
					gonum.Implementation{}.Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
					blas32.Implementation().Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], got, ldc)
					for i := range want {
						if d := math.Abs(float64(want[i] - got[i])); d > 1e-4*float64(k+1) {
							t.Fatalf("tA %v tB %v %v alpha,beta %v: c[%d] = %v, want %v", tA, tB, d, ab, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkSgemm reports GFLOP/s of the installed Sgemm on the shapes of
// the reference model's linear layers (n = 2048 tokens, D = 256, F = 704,
// V = 4096): the product on one goroutine, and split in row blocks over
// GOMAXPROCS goroutines as train/model runs it.
func BenchmarkSgemm(b *testing.B) {
	shapes := []struct {
		name    string
		tA, tB  blas.Transpose
		m, n, k int
	}{
		{"fwd_x.Wt_2048x704x256", blas.NoTrans, blas.Trans, 2048, 704, 256},
		{"dx_dy.W_2048x256x704", blas.NoTrans, blas.NoTrans, 2048, 256, 704},
		{"dW_dyt.x_704x256x2048", blas.Trans, blas.NoTrans, 704, 256, 2048},
		{"head_2048x4096x256", blas.NoTrans, blas.Trans, 2048, 4096, 256},
	}
	for _, s := range shapes {
		rowA, colA := s.m, s.k
		if s.tA == blas.Trans {
			rowA, colA = s.k, s.m
		}
		rowB, colB := s.k, s.n
		if s.tB == blas.Trans {
			rowB, colB = s.n, s.k
		}
		a, bb, c := make([]float32, rowA*colA), make([]float32, rowB*colB), make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(i%7) * 0.1
		}
		for i := range bb {
			bb[i] = float32(i%5) * 0.1
		}
		impl := blas32.Implementation()
		run := func(workers int) {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				lo, hi := w*s.m/workers, (w+1)*s.m/workers
				wg.Add(1)
				go func() {
					defer wg.Done()
					if s.tA == blas.NoTrans {
						impl.Sgemm(s.tA, s.tB, hi-lo, s.n, s.k, 1, a[lo*colA:], colA, bb, colB, 0, c[lo*s.n:], s.n)
					} else {
						impl.Sgemm(s.tA, s.tB, hi-lo, s.n, s.k, 1, a[lo:], colA, bb, colB, 0, c[lo*s.n:], s.n)
					}
				}()
			}
			wg.Wait()
		}
		runN := func(workers int) {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				lo, hi := w*s.n/workers, (w+1)*s.n/workers
				wg.Add(1)
				go func() {
					defer wg.Done()
					off := lo
					if s.tB == blas.Trans {
						off = lo * colB
					}
					impl.Sgemm(s.tA, s.tB, s.m, hi-lo, s.k, 1, a, colA, bb[off:], colB, 0, c[lo:], s.n)
				}()
			}
			wg.Wait()
		}
		b.Run(s.name+"/colsplit", func(b *testing.B) {
			for b.Loop() {
				runN(runtime.GOMAXPROCS(0))
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(s.name+"/goroutines="+itoa(w), func(b *testing.B) {
				for b.Loop() {
					run(w)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		if Enabled {
			// OpenBLAS's own threads instead of goroutines, for comparison.
			b.Run(s.name+"/openblas_threads="+itoa(runtime.GOMAXPROCS(0)), func(b *testing.B) {
				SetThreads(runtime.GOMAXPROCS(0))
				defer SetThreads(1)
				for b.Loop() {
					run(1)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}
