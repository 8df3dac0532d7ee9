//go:build openblas

package openblas

/*
#cgo LDFLAGS: -lopenblas -ldl
#include <cblas.h>
#include <dlfcn.h>

// OpenBLAS built for OpenMP (Debian's libopenblas0-openmp) takes its
// thread count from the calling thread's OpenMP setting, not from
// openblas_set_num_threads, and Go calls from many threads; so with that
// build every call first sets the caller's OpenMP thread count to 1.
static void (*omp_set_threads)(int);

static void sieve_blas_init(void) {
	openblas_set_num_threads(1);
	if (openblas_get_parallel() == 2) {
		omp_set_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
	}
}

static void sieve_sgemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
		float alpha, const float *a, blasint lda, const float *b, blasint ldb, float beta, float *c, blasint ldc) {
	if (omp_set_threads) {
		omp_set_threads(1);
	}
	cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
*/
import "C"

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// Enabled reports whether this build has the OpenBLAS implementation
// (build tag openblas).
const Enabled = true

// Implementation is gonum's pure-Go blas.Float32 with Sgemm replaced by
// OpenBLAS's cblas_sgemm. Other routines (unused by train/model's hot
// path) stay gonum's.
type Implementation struct {
	gonum.Implementation
}

var _ blas.Float32 = Implementation{}

func init() {
	// One OpenBLAS thread: the callers split the work (see the package
	// documentation).
	C.sieve_blas_init()
	blas32.Use(Implementation{})
}

// Name returns a short description of the kernel library, for benchmark
// output.
func Name() string {
	par := [...]string{"serial", "pthreads", "openmp"}[min(2, max(0, int(C.openblas_get_parallel())))]
	return "openblas " + C.GoString(C.openblas_get_config()) + " " + C.GoString(C.openblas_get_corename()) + " " + par
}

// SetThreads sets the number of threads OpenBLAS uses inside one call
// (1 after init; for comparisons: train/model splits the work itself).
// It has no effect on an OpenMP build of OpenBLAS.
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
// with gonum's argument order and checks.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		// cblas handles this too, but a nil A or B must not reach C.
		gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.sieve_sgemm(trans(tA), trans(tB), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

func trans(t blas.Transpose) C.enum_CBLAS_TRANSPOSE {
	switch t {
	case blas.NoTrans:
		return C.CblasNoTrans
	case blas.Trans:
		return C.CblasTrans
	case blas.ConjTrans:
		return C.CblasConjTrans
	}
	panic(badTranspose)
}

// checkGemm panics, with gonum's messages, on arguments that would make
// cblas_sgemm read or write outside the slices.
func checkGemm(tA, tB blas.Transpose, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if tA != blas.NoTrans && tA != blas.Trans && tA != blas.ConjTrans {
		panic(badTranspose)
	}
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic(badTranspose)
	}
	if m < 0 || n < 0 || k < 0 {
		panic("blas: negative dimension")
	}
	rowA, colA := m, k
	if tA != blas.NoTrans {
		rowA, colA = k, m
	}
	rowB, colB := k, n
	if tB != blas.NoTrans {
		rowB, colB = n, k
	}
	if lda < max(1, colA) || ldb < max(1, colB) || ldc < max(1, n) {
		panic("blas: bad leading dimension")
	}
	if m == 0 || n == 0 {
		return
	}
	if (rowA > 0 && colA > 0 && la < lda*(rowA-1)+colA) ||
		(rowB > 0 && colB > 0 && lb < ldb*(rowB-1)+colB) || lc < ldc*(m-1)+n {
		panic("blas: insufficient matrix slice length")
	}
}

const badTranspose = "blas: illegal transpose"
