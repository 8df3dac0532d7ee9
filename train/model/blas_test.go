package model

// The tests and benchmarks run on OpenBLAS when built with -tags openblas
// (the import installs it into blas32) and on gonum's kernels otherwise.
import _ "github.com/sieve-data/sieve/train/model/openblas"
