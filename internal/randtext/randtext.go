// Package randtext makes random test texts by joining pieces chosen to
// stress a text routine's edges (white-space runs, case changes,
// multi-byte and invalid UTF-8): the inputs of differential tests that
// check a fast path against its plain definition.
package randtext

import (
	"math/rand/v2"
	"strings"
)

// Texts returns n texts, each the concatenation of up to maxPieces-1
// pieces drawn from pieces with r.
func Texts(r *rand.Rand, pieces []string, n, maxPieces int) []string {
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range r.IntN(maxPieces) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		out[i] = b.String()
	}
	return out
}
