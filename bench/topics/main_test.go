package main

import (
	"math"
	"path/filepath"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestMetricsKnownValues checks NMI, ARI and purity on tables with known
// values: a perfect clustering (relabelled), independent labels, and
// scikit-learn's documented examples (adjusted_rand_score([0,0,1,1],
// [0,0,1,2]) = 0.5714285714285715; normalized_mutual_info_score of the
// same, arithmetic, = 0.8).
func TestMetricsKnownValues(t *testing.T) {
	// Topics 0,1 are groups 1,0: perfect.
	perfect := []int64{0, 5, 7, 0}
	if NMI(perfect, 2, 2) != 1 || ARI(perfect, 2, 2) != 1 || Purity(perfect, 2, 2) != 1 {
		t.Errorf("perfect: nmi %v ari %v purity %v", NMI(perfect, 2, 2), ARI(perfect, 2, 2), Purity(perfect, 2, 2))
	}
	// Every topic holds the groups in the same proportions: independent.
	indep := []int64{10, 20, 30, 60}
	if n, a := NMI(indep, 2, 2), ARI(indep, 2, 2); !near(n, 0) || a > 0.01 || a < -0.05 {
		t.Errorf("independent: nmi %v ari %v", n, a)
	}
	// labels [0,0,1,2] (rows, k=3) against truth [0,0,1,1] (cols, g=2).
	sk := []int64{
		2, 0,
		0, 1,
		0, 1,
	}
	if a := ARI(sk, 3, 2); !near(a, 0.5714285714285715) {
		t.Errorf("ARI %v, want 0.5714285714285715", a)
	}
	if n := NMI(sk, 3, 2); !near(n, 0.8) {
		t.Errorf("NMI %v, want 0.8", n)
	}
	if p := Purity(sk, 3, 2); p != 1 {
		t.Errorf("purity %v", p)
	}
}

// TestCorpusPlantedGroups: the planted corpus has ten non-empty groups,
// draws the same sample for the same index, and distinct samples.
func TestCorpusPlantedGroups(t *testing.T) {
	c, err := loadCorpus(filepath.Join("..", "..", "..", "shared", "data", "alpaca_eval"), 1)
	if err != nil {
		t.Skipf("alpaca_eval data: %v", err)
	}
	seen := map[string]bool{}
	groups := map[int]int{}
	for i := range 5000 {
		s, g := c.sample(i)
		if s2, g2 := c.sample(i); s2.ID != s.ID || g2 != g {
			t.Fatalf("sample %d differs between draws", i)
		}
		seen[s.ID] = true
		groups[g]++
	}
	if len(seen) < 4990 || len(groups) != len(categories) {
		t.Errorf("%d distinct of 5000, groups %v", len(seen), groups)
	}
}
