package main

// Built with -tags openblas (make build does when libopenblas is there),
// the model's matrix products run on OpenBLAS; otherwise on gonum's
// pure-Go kernels (see train/model/openblas).
import _ "github.com/sieve-data/sieve/train/model/openblas"
