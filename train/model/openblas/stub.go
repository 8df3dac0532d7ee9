//go:build !openblas

package openblas

// Enabled reports whether this build has the OpenBLAS implementation
// (build tag openblas).
const Enabled = false

// Name returns a short description of the kernel library, for benchmark
// output.
func Name() string { return "gonum (pure Go)" }

// SetThreads does nothing without OpenBLAS.
func SetThreads(int) {}
