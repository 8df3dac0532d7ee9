package train

import (
	"testing"

	"github.com/sieve-data/sieve/internal/goldens"
)

// TestGoldenHashes checks testdata's golden file and scripts against
// testdata/SHA256SUMS.
func TestGoldenHashes(t *testing.T) {
	goldens.Check(t, "testdata")
}
