package dedup

import (
	"fmt"
	"math"
	"math/bits"
)

// Default weights of OptimalBands for sieve's fuzzy dedup. Every
// candidate pair is verified afterwards (by exact or estimated Jaccard),
// so a false positive of the banding costs one comparison while a false
// negative is a duplicate lost for good: false negatives weigh 19 times
// more. On the labelled benchmark (bench/dedupbench) these weights find
// 99% of the pairs at or above 0.7 (21 bands × 6 rows at 128
// permutations) where equal weights (14 × 9) find 83%, for 8 times the
// candidates.
const (
	DefaultFPWeight = 0.05
	DefaultFNWeight = 0.95
)

// integrationSteps is the number of Simpson intervals per integral.
const integrationSteps = 200

// CollisionProbability is the probability that two sets of Jaccard
// similarity s share at least one of bands LSH buckets of rows MinHash
// values each: 1 − (1 − s^rows)^bands.
func CollisionProbability(s float64, bands, rows int) float64 {
	return 1 - math.Pow(1-math.Pow(s, float64(rows)), float64(bands))
}

// OptimalBands returns the bands × rows banding (bands·rows ≤ numPerm)
// minimising
//
//	fpWeight·∫₀ᵗ P(s) ds + fnWeight·∫ₜ¹ (1 − P(s)) ds
//
// where t is the threshold and P(s) = CollisionProbability(s, bands,
// rows): the weighted areas of false positives (pairs below the threshold
// that share a bucket) and false negatives (pairs at or above it that do
// not), as datatrove and text-dedup choose their bands. The integrals are
// taken numerically (composite Simpson's rule, 200 intervals each). Ties
// go to fewer bands, then fewer rows. It panics unless 0 < threshold < 1
// and numPerm ≥ 1.
func OptimalBands(threshold float64, numPerm int, fpWeight, fnWeight float64) (bands, rows int) {
	if !(threshold > 0 && threshold < 1) || numPerm < 1 {
		panic(fmt.Sprintf("dedup: OptimalBands(%v, %d): want 0 < threshold < 1 and numPerm ≥ 1", threshold, numPerm))
	}
	best := math.Inf(1)
	for b := 1; b <= numPerm; b++ {
		for r := 1; b*r <= numPerm; r++ {
			fp := simpson(func(s float64) float64 { return CollisionProbability(s, b, r) }, 0, threshold)
			fn := simpson(func(s float64) float64 { return 1 - CollisionProbability(s, b, r) }, threshold, 1)
			if e := fpWeight*fp + fnWeight*fn; e < best {
				best, bands, rows = e, b, r
			}
		}
	}
	return bands, rows
}

// simpson integrates f over [a, b] with composite Simpson's rule.
func simpson(f func(float64) float64, a, b float64) float64 {
	const n = integrationSteps // even
	h := (b - a) / n
	sum := f(a) + f(b)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(a+float64(i)*h)
	}
	return sum * h / 3
}

// Band keys: the top bandBits bits hold the band index and the low
// 64 − bandBits bits a hash of the band's rows, so keys of different
// bands never collide and keys of one band collide by accident with
// probability 2^−48 per pair.
const (
	bandBits  = 16
	MaxBands  = 1 << bandBits
	bucketMsk = 1<<(64-bandBits) - 1
)

// BandKeys returns one LSH bucket key per band: band i covers signature
// positions [i·rows, (i+1)·rows), and its key is i<<48 | h, where h is a
// 48-bit hash of those values. Two signatures share band i's key exactly
// when they agree on all of band i's rows (up to a 2^−48 chance), and
// keys of different bands always differ. It panics if bands·rows exceeds
// the signature length or bands exceeds MaxBands.
func BandKeys(sig []uint64, bands, rows int) []uint64 {
	return AppendBandKeys(make([]uint64, 0, bands), sig, bands, rows)
}

// AppendBandKeys appends BandKeys(sig, bands, rows) to dst.
func AppendBandKeys(dst, sig []uint64, bands, rows int) []uint64 {
	if bands < 1 || rows < 1 || bands*rows > len(sig) || bands > MaxBands {
		panic(fmt.Sprintf("dedup: %d bands × %d rows do not fit a signature of %d", bands, rows, len(sig)))
	}
	for i := 0; i < bands; i++ {
		h := uint64(i)*0x9e3779b97f4a7c15 + 0x243f6a8885a308d3
		for _, v := range sig[i*rows : (i+1)*rows] {
			hi, lo := bits.Mul64(h^v, 0xa0761d6478bd642f)
			h = hi ^ lo ^ v
		}
		dst = append(dst, uint64(i)<<(64-bandBits)|mix64(h)&bucketMsk)
	}
	return dst
}

// BandOf returns the band index a key of BandKeys carries.
func BandOf(key uint64) int { return int(key >> (64 - bandBits)) }
