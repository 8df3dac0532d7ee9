package datasets

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoBeamInPlainPackages: datasets, train, dedup and filters link no
// Beam (datasets reads and writes through its own FS; the Beam-backed
// one is registered by transforms).
func TestNoBeamInPlainPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := []string{"github.com/sieve-data/sieve/datasets", "github.com/sieve-data/sieve/train",
		"github.com/sieve-data/sieve/dedup", "github.com/sieve-data/sieve/filters"}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var beam []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/apache/beam") {
			beam = append(beam, p)
		}
	}
	if len(beam) > 0 {
		t.Errorf("%d Beam packages linked by %v, e.g. %v", len(beam), pkgs, beam[:min(len(beam), 3)])
	}
}
