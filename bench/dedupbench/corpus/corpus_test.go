package corpus

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/dedup"
)

func smallConfig() Config {
	c := DefaultConfig()
	c.N = 300
	return c
}

func TestGenerate(t *testing.T) {
	cfg := smallConfig()
	docs := Generate(cfg)
	if len(docs) != cfg.N {
		t.Fatalf("%d docs", len(docs))
	}
	if again := Generate(cfg); !reflect.DeepEqual(docs, again) {
		t.Fatalf("same config, different corpus")
	}
	cfg2 := cfg
	cfg2.Seed++
	if other := Generate(cfg2); other[0].Text == docs[0].Text && other[1].Text == docs[1].Text {
		t.Fatalf("seed ignored")
	}
	ids := map[string]bool{}
	variants := 0
	for i, d := range docs {
		if ids[d.ID] {
			t.Fatalf("id %s twice", d.ID)
		}
		ids[d.ID] = true
		if d.Parent < 0 {
			if d.Base != i {
				t.Fatalf("base doc %d has base %d", i, d.Base)
			}
			continue
		}
		variants++
		p := docs[d.Parent]
		if docs[d.Base].Parent != -1 || p.Base != d.Base {
			t.Fatalf("doc %d: broken links", i)
		}
		// Achieved is the exact Jaccard to the parent, at or below the
		// target unless no edit was needed (target 1), and not far below.
		c := cfg.Text
		j := dedup.ExactJaccard(c.Shingles(d.Text), c.Shingles(p.Text))
		if j != d.Achieved {
			t.Fatalf("doc %d: achieved %v, measured %v", i, d.Achieved, j)
		}
		if d.Achieved > d.Target+1e-9 {
			t.Fatalf("doc %d: achieved %.3f above target %.3f", i, d.Achieved, d.Target)
		}
		if d.Achieved < d.Target-0.15 {
			t.Fatalf("doc %d: achieved %.3f far below target %.3f", i, d.Achieved, d.Target)
		}
		if d.Target < cfg.MinJ || d.Target > cfg.MaxJ {
			t.Fatalf("target %v out of range", d.Target)
		}
	}
	if want := int(float64(cfg.N) * cfg.Variants); variants != want {
		t.Fatalf("%d variants, want %d", variants, want)
	}
}

func TestGenerateExtra(t *testing.T) {
	cfg := smallConfig()
	cfg.Extra = []string{"alpha beta gamma delta epsilon zeta", "one two three four five six seven"}
	cfg.ExtraShare = 1
	docs := Generate(cfg)
	found := 0
	for _, d := range docs {
		if d.Parent < 0 && slices.Contains(cfg.Extra, d.Text) {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("%d extra texts used, want 2", found)
	}
}

func TestEdits(t *testing.T) {
	e := &editor{r: rand.New(rand.NewPCG(1, 2)), vocab: []string{"x"}, c: dedup.DefaultTextConfig()}
	toks := strings.Fields("One two. Three four! Five six?")
	re := e.reorder(slices.Clone(toks))
	slices.Sort(re)
	sorted := slices.Clone(toks)
	slices.Sort(sorted)
	if !slices.Equal(re, sorted) {
		t.Fatalf("reorder lost tokens")
	}
	if s := sentences(toks); len(s) != 3 {
		t.Fatalf("%d sentences", len(s))
	}
	// Cosmetic edits leave the normalised text unchanged.
	c := dedup.DefaultTextConfig()
	for i := 0; i < 50; i++ {
		got := strings.Join(e.cosmetic(toks), " ")
		if c.Normalize(got) != c.Normalize(strings.Join(toks, " ")) {
			t.Fatalf("cosmetic edit changed %q", got)
		}
	}
}

func TestTruePairs(t *testing.T) {
	// Random sets with planted overlaps, against all pairs by brute force.
	r := rand.New(rand.NewPCG(3, 4))
	var sets [][]uint64
	for i := 0; i < 250; i++ {
		var s []uint64
		if i > 0 && r.IntN(2) == 0 {
			src := sets[r.IntN(len(sets))]
			for _, v := range src {
				if r.IntN(20) < 19 {
					s = append(s, v)
				}
			}
		}
		for k := 1 + r.IntN(12); k > 0; k-- {
			s = append(s, uint64(r.IntN(3000)))
		}
		sets = append(sets, dedup.SortedSet(s))
	}
	for _, th := range []float64{0.3, 0.5, 0.7} {
		var want []Pair
		for i := range sets {
			for j := i + 1; j < len(sets); j++ {
				if len(sets[i]) == 0 || len(sets[j]) == 0 {
					continue
				}
				if jac := dedup.SortedJaccard(sets[i], sets[j]); jac >= th {
					want = append(want, Pair{int32(i), int32(j), jac})
				}
			}
		}
		got := TruePairs(sets, th)
		if !slices.Equal(got, want) {
			t.Fatalf("t=%v: %d pairs, brute force %d", th, len(got), len(want))
		}
		if len(want) < 20 {
			t.Fatalf("t=%v: only %d pairs; the test needs more", th, len(want))
		}
	}
}

func TestScores(t *testing.T) {
	s := NewScores(3, 4, 6)
	if s.Precision != 0.75 || s.Recall != 0.5 || s.F1 != 0.6 {
		t.Fatalf("%+v", s)
	}
	if s := NewScores(0, 0, 0); s.Precision != 1 || s.Recall != 1 || s.F1 != 1 {
		t.Fatalf("empty: %+v", s)
	}
	pred := map[uint64]bool{PairKey(1, 2): true, PairKey(3, 4): true}
	truth := map[uint64]bool{PairKey(2, 1): true, PairKey(5, 6): true, PairKey(7, 8): true}
	if s := PairScores(pred, truth); s.TP != 1 || s.Predicted != 2 || s.Truth != 3 {
		t.Fatalf("pairs: %+v", s)
	}
	// Items 0..5: predicted {0,1,2} {3,4} {5}; true {0,1} {2,3,4,5}.
	p := Labels(6, [][2]int32{{0, 1}, {1, 2}, {4, 3}})
	if !slices.Equal(p, []int32{0, 0, 0, 3, 3, 5}) {
		t.Fatalf("labels %v", p)
	}
	tr := Labels(6, [][2]int32{{1, 0}, {2, 5}, {3, 4}, {4, 5}})
	// Predicted pairs: 3 + 1 = 4; true pairs: 1 + 6 = 7; both: (0,1), (3,4) = 2.
	if s := ClusterScores(p, tr); s.TP != 2 || s.Predicted != 4 || s.Truth != 7 {
		t.Fatalf("clusters: %+v", s)
	}
}
