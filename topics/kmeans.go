package topics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// KMeansConfig sets the clustering. The zero value means the defaults:
// k chosen in [2, 20].
type KMeansConfig struct {
	// K is the number of topics; 0 chooses it in [KMin, KMax] (defaults
	// 2 and 20) by the mean silhouette, see FitKMeans. On real
	// instruction text the silhouette tends to grow with k (alpaca_eval:
	// 0.03 at k=4 to 0.11 at k=30), so the choice goes to the top of a
	// wide range: give K, or a range that reflects the topics wanted.
	K    int `json:"k"`
	KMin int `json:"k_min"`
	KMax int `json:"k_max"`
	// MaxCandidates bounds the values of k tried (default 12), evenly
	// spaced over [KMin, KMax] with both ends included.
	MaxCandidates int `json:"max_candidates"`
	// BatchSize and Steps are the mini-batch size and number of
	// mini-batch steps (defaults 1024 and 100; at most ten passes over
	// the points); LloydIters full passes over the fit sample follow
	// (default 3).
	BatchSize  int `json:"batch_size"`
	Steps      int `json:"steps"`
	LloydIters int `json:"lloyd_iters"`
	// NInit is the number of seeded restarts; the one of least inertia
	// is kept (default 3).
	NInit int `json:"n_init"`
	// SilhouetteSample bounds the points the silhouette is measured on
	// (default 2000; cost O(SilhouetteSample²) per candidate k).
	SilhouetteSample int `json:"silhouette_sample"`
}

func (c KMeansConfig) withDefaults() KMeansConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.KMin, 2)
	def(&c.KMax, 20)
	def(&c.MaxCandidates, 12)
	def(&c.BatchSize, 1024)
	def(&c.Steps, 100)
	if c.LloydIters == 0 {
		c.LloydIters = 3
	}
	def(&c.NInit, 3)
	def(&c.SilhouetteSample, 2000)
	return c
}

// KScore is one candidate k with the mean silhouette of its clustering
// on the silhouette sample and its inertia on the fit sample (the sum of
// cosine distances to the nearest centroid).
type KScore struct {
	K          int     `json:"k"`
	Silhouette float64 `json:"silhouette"`
	Inertia    float64 `json:"inertia"`
}

// Clustering is the result of FitKMeans.
type Clustering struct {
	K, Dim int
	// Centroids are K unit rows of length Dim, row-major.
	Centroids []float32
	// Labels and Distances are each fitted point's nearest centroid and
	// cosine distance to it.
	Labels     []int32
	Distances  []float32
	Inertia    float64
	Silhouette float64
	Candidates []KScore
}

// FitKMeans clusters n unit vectors (rows of x, each of length dim) by
// cosine similarity: for each restart, greedy k-means++ seeding (each
// new centre drawn with probability proportional to the cosine distance
// to the nearest chosen centre, the best of 2+ln k draws kept) on up to
// 3·BatchSize points, then Sculley's mini-batch k-means (per-centre
// learning rate 1/count, centres renormalised to unit length: spherical
// k-means), then LloydIters full assignment/mean passes. Everything is
// drawn from seed, so the result is a function of (x, cfg, seed).
//
// With cfg.K == 0, k is chosen among the candidates in [KMin, KMax] as
// the one of highest mean silhouette (cosine distance) on a seeded
// sample of at most SilhouetteSample points, each candidate clustered
// once; ties go to the smaller k. The chosen k is then clustered with
// NInit restarts (the candidate's run among them), and Silhouette is
// that clustering's.
func FitKMeans(x []float32, dim int, cfg KMeansConfig, seed uint64) (*Clustering, error) {
	cfg = cfg.withDefaults()
	if dim <= 0 || len(x)%dim != 0 {
		return nil, fmt.Errorf("kmeans: %d values are not rows of %d", len(x), dim)
	}
	n := len(x) / dim
	ks := []int{cfg.K}
	if cfg.K <= 0 {
		lo, hi := cfg.KMin, min(cfg.KMax, n-1)
		if lo > hi {
			return nil, fmt.Errorf("kmeans: k range [%d, %d] with %d points", cfg.KMin, cfg.KMax, n)
		}
		ks = candidates(lo, hi, cfg.MaxCandidates)
	}
	if ks[0] > n {
		return nil, fmt.Errorf("kmeans: k %d with %d points", ks[0], n)
	}
	if len(ks) == 1 {
		c := bestOf(x, n, dim, ks[0], cfg, seed)
		c.Candidates = []KScore{{K: c.K, Silhouette: math.NaN(), Inertia: c.Inertia}}
		if cfg.K > 0 && n >= 2 {
			sil := newSilhouette(x, n, dim, cfg.SilhouetteSample, seed)
			c.Silhouette = sil.score(c)
			c.Candidates[0].Silhouette = c.Silhouette
		}
		return c, nil
	}
	// Each candidate is scored on one restart; the winner is refitted
	// with NInit restarts.
	sil := newSilhouette(x, n, dim, cfg.SilhouetteSample, seed)
	one := cfg
	one.NInit = 1
	var best *Clustering
	var scores []KScore
	for _, k := range ks {
		c := bestOf(x, n, dim, k, one, seed)
		c.Silhouette = sil.score(c)
		scores = append(scores, KScore{K: k, Silhouette: c.Silhouette, Inertia: c.Inertia})
		if best == nil || c.Silhouette > best.Silhouette+1e-12 {
			best = c
		}
	}
	if cfg.NInit > 1 {
		// Restart 0 is the candidate's own run, so the refit is never
		// worse in inertia.
		best = bestOf(x, n, dim, best.K, cfg, seed)
		best.Silhouette = sil.score(best)
	}
	best.Candidates = scores
	return best, nil
}

// candidates are at most m integers evenly spaced over [lo, hi], both
// included.
func candidates(lo, hi, m int) []int {
	if hi-lo+1 <= m {
		var ks []int
		for k := lo; k <= hi; k++ {
			ks = append(ks, k)
		}
		return ks
	}
	var ks []int
	for i := range m {
		k := lo + int(math.Round(float64(i)*float64(hi-lo)/float64(m-1)))
		if len(ks) == 0 || ks[len(ks)-1] != k {
			ks = append(ks, k)
		}
	}
	return ks
}

// bestOf runs NInit seeded restarts and keeps the one of least inertia
// (ties: the first).
func bestOf(x []float32, n, dim, k int, cfg KMeansConfig, seed uint64) *Clustering {
	var best *Clustering
	for r := range cfg.NInit {
		rng := rand.New(rand.NewPCG(seed, uint64(k)<<16|uint64(r)))
		c := kmeansOnce(x, n, dim, k, cfg, rng)
		if best == nil || c.Inertia < best.Inertia {
			best = c
		}
	}
	return best
}

func kmeansOnce(x []float32, n, dim, k int, cfg KMeansConfig, rng *rand.Rand) *Clustering {
	cent := seedPlusPlus(x, n, dim, k, min(n, max(3*cfg.BatchSize, 10*k)), rng)
	// Mini-batch steps.
	counts := make([]float64, k)
	batch := make([]int, min(cfg.BatchSize, n))
	near := make([]int32, len(batch))
	// Sculley's steps, at most ten passes' worth of points.
	steps := min(cfg.Steps, (10*n+len(batch)-1)/len(batch))
	for range steps {
		for i := range batch {
			batch[i] = rng.IntN(n)
		}
		parallelRows(len(batch), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				near[i], _ = nearest(cent, k, dim, x[batch[i]*dim:(batch[i]+1)*dim])
			}
		})
		for i, p := range batch {
			c := int(near[i])
			counts[c]++
			eta := float32(1 / counts[c])
			row := cent[c*dim : (c+1)*dim]
			for j, v := range x[p*dim : (p+1)*dim] {
				row[j] += eta * (v - row[j])
			}
		}
		for c := range k {
			normalize(cent[c*dim : (c+1)*dim])
		}
	}
	labels := make([]int32, n)
	dists := make([]float32, n)
	assign := func() {
		parallelRows(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				labels[i], dists[i] = nearest(cent, k, dim, x[i*dim:(i+1)*dim])
			}
		})
	}
	assign()
	sums := make([]float64, k*dim)
	for range cfg.LloydIters {
		clear(sums)
		clear(counts)
		for i, c := range labels {
			counts[c]++
			s := sums[int(c)*dim : int(c+1)*dim]
			for j, v := range x[i*dim : (i+1)*dim] {
				s[j] += float64(v)
			}
		}
		for c := range k {
			if counts[c] == 0 {
				continue // an empty cluster keeps its centre
			}
			row := cent[c*dim : (c+1)*dim]
			for j := range row {
				row[j] = float32(sums[c*dim+j])
			}
			normalize(row)
		}
		assign()
	}
	var inertia float64
	for _, d := range dists {
		inertia += float64(d)
	}
	return &Clustering{K: k, Dim: dim, Centroids: cent, Labels: labels, Distances: dists, Inertia: inertia}
}

// nearest returns the centre of highest cosine similarity to the unit
// vector v (ties: the lowest index) and the cosine distance 1 − cos,
// clamped to [0, 2].
func nearest(cent []float32, k, dim int, v []float32) (int32, float32) {
	best, bi := float32(math.Inf(-1)), 0
	for c := range k {
		if s := dot(v, cent[c*dim:(c+1)*dim]); s > best {
			best, bi = s, c
		}
	}
	return int32(bi), min(max(1-best, 0), 2)
}

// seedPlusPlus is greedy k-means++ on m points drawn without replacement
// from the n rows of x; it returns k unit centres, row-major.
func seedPlusPlus(x []float32, n, dim, k, m int, rng *rand.Rand) []float32 {
	idx := rng.Perm(n)[:m]
	sort.Ints(idx) // the draw decides the subset, not its order
	pt := func(i int) []float32 { return x[idx[i]*dim : (idx[i]+1)*dim] }
	cent := make([]float32, k*dim)
	d := make([]float64, m)
	first := rng.IntN(m)
	copy(cent[:dim], pt(first))
	var total float64
	for i := range m {
		d[i] = max(0, 1-float64(dot(pt(i), cent[:dim])))
		total += d[i]
	}
	trials := 2 + int(math.Log(float64(k)))
	cand := make([]float64, m)
	bestD := make([]float64, m)
	for c := 1; c < k; c++ {
		bestPot, bestI := math.Inf(1), -1
		for range trials {
			var ci int
			if total <= 0 {
				ci = rng.IntN(m)
			} else {
				r := rng.Float64() * total
				acc := 0.0
				ci = m - 1
				for i, w := range d {
					acc += w
					if acc > r {
						ci = i
						break
					}
				}
			}
			cv := pt(ci)
			pot := 0.0
			for i := range m {
				cand[i] = min(d[i], max(0, 1-float64(dot(pt(i), cv))))
				pot += cand[i]
			}
			if pot < bestPot {
				bestPot, bestI = pot, ci
				copy(bestD, cand)
			}
		}
		copy(cent[c*dim:(c+1)*dim], pt(bestI))
		copy(d, bestD)
		total = bestPot
	}
	return cent
}

// silhouette holds a seeded sample of the points and their Gram matrix,
// shared by every candidate k.
type silhouette struct {
	idx  []int
	gram []float64
	x    []float32
	dim  int
}

func newSilhouette(x []float32, n, dim, size int, seed uint64) *silhouette {
	rng := rand.New(rand.NewPCG(seed, 0x511))
	idx := rng.Perm(n)
	if len(idx) > size {
		idx = idx[:size]
	}
	sort.Ints(idx)
	s := len(idx)
	a := make([]float64, s*dim)
	for i, p := range idx {
		for j, v := range x[p*dim : (p+1)*dim] {
			a[i*dim+j] = float64(v)
		}
	}
	g := make([]float64, s*s)
	am := blas64.General{Rows: s, Cols: dim, Stride: dim, Data: a}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, am, am, 0, blas64.General{Rows: s, Cols: s, Stride: s, Data: g})
	return &silhouette{idx: idx, gram: g, x: x, dim: dim}
}

// score is the mean silhouette of the sample under c's labels, with
// cosine distance 1 − cos; a point alone in its cluster scores 0.
func (s *silhouette) score(c *Clustering) float64 {
	m := len(s.idx)
	lab := make([]int32, m)
	cnt := make([]float64, c.K)
	for i, p := range s.idx {
		lab[i] = c.Labels[p]
		cnt[lab[i]]++
	}
	sum := make([]float64, c.K)
	var total float64
	for i := range m {
		clear(sum)
		row := s.gram[i*m : (i+1)*m]
		for j, g := range row {
			if j != i {
				sum[lab[j]] += 1 - g
			}
		}
		own := lab[i]
		if cnt[own] <= 1 {
			continue
		}
		a := sum[own] / (cnt[own] - 1)
		b := math.Inf(1)
		for q := range c.K {
			if int32(q) != own && cnt[q] > 0 {
				b = min(b, sum[q]/cnt[q])
			}
		}
		if math.IsInf(b, 1) {
			continue
		}
		if den := max(a, b); den > 0 {
			total += (b - a) / den
		}
	}
	return total / float64(m)
}
