package dedup

import (
	"math"
	"math/rand/v2"
	"testing"

	minhashlsh "github.com/ekzhu/minhash-lsh"
)

// TestOptimalBandsMatchesEkzhu: with equal weights the objective is
// ekzhu/minhash-lsh's, which picks its own rows (k) and bands (l) by it.
func TestOptimalBandsMatchesEkzhu(t *testing.T) {
	for _, tc := range []struct {
		t float64
		n int
	}{{0.5, 128}, {0.7, 128}, {0.8, 128}, {0.9, 64}, {0.6, 256}} {
		b, r := OptimalBands(tc.t, tc.n, 0.5, 0.5)
		k, l := minhashlsh.NewMinhashLSH64(tc.n, tc.t).Params()
		if b != l || r != k {
			t.Errorf("t=%v n=%d: %d bands × %d rows, ekzhu %d × %d", tc.t, tc.n, b, r, l, k)
		}
	}
}

func bandError(t float64, b, r int, fpw, fnw float64) float64 {
	// A fine midpoint rule, independent of OptimalBands' Simpson rule.
	const n = 4000
	var fp, fn float64
	for i := 0; i < n; i++ {
		s := (float64(i) + 0.5) / n
		p := CollisionProbability(s, b, r)
		if s < t {
			fp += p / n
		} else {
			fn += (1 - p) / n
		}
	}
	return fpw*fp + fnw*fn
}

func TestOptimalBands(t *testing.T) {
	for _, th := range []float64{0.5, 0.7, 0.8} {
		for _, w := range [][2]float64{{0.5, 0.5}, {DefaultFPWeight, DefaultFNWeight}, {0.9, 0.1}} {
			b, r := OptimalBands(th, 128, w[0], w[1])
			if b*r > 128 || b < 1 || r < 1 {
				t.Fatalf("t=%v: %d × %d", th, b, r)
			}
			best := bandError(th, b, r, w[0], w[1])
			// No other banding is better by more than the integration
			// error.
			for bb := 1; bb <= 128; bb++ {
				for rr := 1; bb*rr <= 128; rr++ {
					if e := bandError(th, bb, rr, w[0], w[1]); e < best-1e-6 {
						t.Errorf("t=%v w=%v: %d×%d error %.6f beats chosen %d×%d %.6f", th, w, bb, rr, e, b, r, best)
					}
				}
			}
			t.Logf("t=%v weights %v: %d bands × %d rows, P(collide | s=t) = %.3f", th, w, b, r, CollisionProbability(th, b, r))
		}
	}
	// Weighting false negatives more raises the collision probability at
	// the threshold (more recall), and a higher threshold takes more rows
	// per band.
	b1, r1 := OptimalBands(0.7, 128, 0.9, 0.1)
	b2, r2 := OptimalBands(0.7, 128, 0.1, 0.9)
	if CollisionProbability(0.7, b2, r2) <= CollisionProbability(0.7, b1, r1) {
		t.Errorf("fn weight does not raise recall: %d×%d vs %d×%d", b1, r1, b2, r2)
	}
	_, rlo := OptimalBands(0.5, 128, 0.5, 0.5)
	_, rhi := OptimalBands(0.9, 128, 0.5, 0.5)
	if rhi <= rlo {
		t.Errorf("rows at 0.9 (%d) not above rows at 0.5 (%d)", rhi, rlo)
	}
	for _, bad := range []func(){
		func() { OptimalBands(0, 128, 1, 1) },
		func() { OptimalBands(1, 128, 1, 1) },
		func() { OptimalBands(0.5, 0, 1, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic on invalid arguments")
				}
			}()
			bad()
		}()
	}
}

func TestBandKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	sig := make([]uint64, 128)
	for i := range sig {
		sig[i] = r.Uint64()
	}
	keys := BandKeys(sig, 20, 6)
	if len(keys) != 20 {
		t.Fatalf("%d keys", len(keys))
	}
	for i, k := range keys {
		if BandOf(k) != i {
			t.Fatalf("key %d carries band %d", i, BandOf(k))
		}
	}
	// Changing a value changes only its band's key; values past
	// bands·rows are ignored.
	other := append([]uint64(nil), sig...)
	other[6*7+2]++
	other[125]++
	k2 := BandKeys(other, 20, 6)
	for i := range keys {
		if (keys[i] != k2[i]) != (i == 7) {
			t.Errorf("band %d: key changed %v", i, keys[i] != k2[i])
		}
	}
	// Identical rows in different bands still give different keys.
	same := make([]uint64, 12)
	k3 := BandKeys(same, 4, 3)
	for i := range k3 {
		for j := range i {
			if k3[i] == k3[j] {
				t.Errorf("bands %d and %d collide", i, j)
			}
		}
	}
	// The order of values inside a band matters.
	a := BandKeys([]uint64{1, 2}, 1, 2)
	b := BandKeys([]uint64{2, 1}, 1, 2)
	if a[0] == b[0] {
		t.Errorf("band hash ignores order")
	}
	// Keys are part of saved indexes and of the batch pipeline's shuffle:
	// they must not change between versions.
	if got := BandKeys([]uint64{1, 2, 3, 4}, 2, 2); got[0] != 0x0000717a7f00bcb7 || got[1] != 0x0001eb2713efb0c8 {
		t.Errorf("band keys changed: %#016x %#016x", got[0], got[1])
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic when bands × rows exceed the signature")
			}
		}()
		BandKeys(sig, 20, 7)
	}()
}

// TestBandingCollisionRate checks the whole LSH path: for pairs of sets
// at Jaccard s, the rate at which their fast signatures share a band key
// is CollisionProbability(s, bands, rows).
func TestBandingCollisionRate(t *testing.T) {
	h := NewFastHasher(128, 11)
	bands, rows := OptimalBands(0.7, 128, DefaultFPWeight, DefaultFNWeight)
	r := rand.New(rand.NewPCG(2, 3))
	for _, s := range []float64{0.4, 0.6, 0.7, 0.85} {
		const pairs, u = 2000, 300
		inter := int(s * u)
		hit := 0
		for i := 0; i < pairs; i++ {
			a, b := randomPair(r, inter, (u-inter)/2, u-inter-(u-inter)/2)
			ka, kb := BandKeys(h.Signature(a), bands, rows), BandKeys(h.Signature(b), bands, rows)
			for j := range ka {
				if ka[j] == kb[j] {
					hit++
					break
				}
			}
		}
		p := CollisionProbability(float64(inter)/u, bands, rows)
		got := float64(hit) / pairs
		if se := math.Sqrt(p * (1 - p) / pairs); math.Abs(got-p) > 4*se+0.01 {
			t.Errorf("s=%.2f: collision rate %.3f, theory %.3f", s, got, p)
		}
	}
}
