// Package openblas installs OpenBLAS's cblas_sgemm behind gonum's blas32
// interface, so that train/model (which multiplies matrices only through
// blas32.Gemm) runs its products on an optimised kernel.
//
// The cgo implementation is compiled only with the build tag openblas
// (go build -tags openblas; it links -lopenblas, Debian's
// libopenblas-dev). Importing the package then installs it from init with
// blas32.Use. Without the tag the package is an empty stub and blas32
// keeps gonum's pure-Go kernels, so the default build needs neither cgo
// nor OpenBLAS. Import it for its side effect wherever a program or test
// trains:
//
//	import _ "github.com/sieve-data/sieve/train/model/openblas"
//
// # Threads
//
// OpenBLAS is set to one thread. The model splits each large product into
// row blocks itself and runs them on GOMAXPROCS goroutines (see
// train/model), so OpenBLAS's own thread pool, whose idle threads spin
// after each call, never competes with the Go scheduler for the cores.
// Products called from several goroutines at once (attention's per-head
// products) each run single-threaded on their caller's core. Measured on
// the reference model (2 cores): 6,000–6,800 training tokens/s this way
// against 2,500–2,700 with OpenBLAS's own two threads and no split.
// Either OpenBLAS build works: pthreads (what libopenblas-dev installs) or
// OpenMP (libopenblas0-openmp), whose per-thread OpenMP setting is set to
// one thread before each call.
package openblas
