package corpus

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// sortedJaccard is |a ∩ b| / |a ∪ b| of two sorted sets without
// repetitions (1 for two empty sets), by a merge: the truth's own, not
// the code under test's.
func sortedJaccard(a, b []uint64) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			inter++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// Pair is a pair of document indices, A < B, with their exact Jaccard
// similarity.
type Pair struct {
	A, B int32
	J    float64
}

// TruePairs returns every pair of sets whose exact Jaccard similarity is
// at least minJ, ordered by (A, B). Sets are sorted and free of
// repetitions (ReferenceSets); empty sets pair with nothing.
//
// It is an exact similarity join: prefix filtering (Chaudhuri et al.
// 2006, Bayardo et al. 2007) only skips pairs that provably cannot reach
// minJ, and every remaining pair is measured exactly. If J(x, y) ≥ t then
// |x ∩ y| ≥ t·max(|x|, |y|), so under any global order of the values the
// first |x| − ⌈t|x|⌉ + 1 values of x and the first |y| − ⌈t|y|⌉ + 1 of y
// share one; the order used is rarest first, which keeps the candidate
// lists short.
func TruePairs(sets [][]uint64, minJ float64) []Pair {
	// Rank values by document frequency, rarest first.
	df := map[uint64]int32{}
	for _, s := range sets {
		for _, v := range s {
			df[v]++
		}
	}
	vals := make([]uint64, 0, len(df))
	for v := range df {
		vals = append(vals, v)
	}
	slices.SortFunc(vals, func(a, b uint64) int {
		if df[a] != df[b] {
			return int(df[a] - df[b])
		}
		if a < b {
			return -1
		}
		return 1
	})
	rank := make(map[uint64]int32, len(vals))
	for i, v := range vals {
		rank[v] = int32(i)
	}
	ranked := make([][]int32, len(sets))
	for i, s := range sets {
		r := make([]int32, len(s))
		for k, v := range s {
			r[k] = rank[v]
		}
		slices.Sort(r)
		ranked[i] = r
	}
	prefix := func(n int) int { return n - int(math.Ceil(minJ*float64(n)-1e-9)) + 1 }
	// Inverted index over prefixes.
	index := map[int32][]int32{}
	for i, r := range ranked {
		for _, t := range r[:min(prefix(len(r)), len(r))] {
			index[t] = append(index[t], int32(i))
		}
	}
	// Probe in parallel: each document collects partners with a larger
	// index.
	results := make([][]Pair, len(sets))
	var wg sync.WaitGroup
	work := make(chan int, 256)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Go(func() {
			seen := map[int32]bool{}
			for i := range work {
				r := ranked[i]
				if len(r) == 0 {
					continue
				}
				clear(seen)
				var out []Pair
				for _, t := range r[:min(prefix(len(r)), len(r))] {
					for _, j := range index[t] {
						if int(j) <= i || seen[j] {
							continue
						}
						seen[j] = true
						a, b := len(r), len(ranked[j])
						if float64(min(a, b)) < minJ*float64(max(a, b))-1e-9 {
							continue // size filter
						}
						if jac := sortedJaccard(sets[i], sets[j]); jac >= minJ {
							out = append(out, Pair{int32(i), j, jac})
						}
					}
				}
				slices.SortFunc(out, func(x, y Pair) int { return int(x.B - y.B) })
				results[i] = out
			}
		})
	}
	for i := range sets {
		work <- i
	}
	close(work)
	wg.Wait()
	var all []Pair
	for _, r := range results {
		all = append(all, r...)
	}
	return all
}

// PairKey packs a pair of indices, smaller first, into one map key.
func PairKey(a, b int32) uint64 {
	if a > b {
		a, b = b, a
	}
	return uint64(a)<<32 | uint64(uint32(b))
}

// Scores are precision, recall and F1 with the counts behind them.
type Scores struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	TP        int64   `json:"tp"`
	Predicted int64   `json:"predicted"`
	Truth     int64   `json:"truth"`
}

// NewScores computes the scores from true positives, predicted and true
// counts. With nothing predicted precision is 1, with nothing true recall
// is 1.
func NewScores(tp, predicted, truth int64) Scores {
	s := Scores{TP: tp, Predicted: predicted, Truth: truth, Precision: 1, Recall: 1}
	if predicted > 0 {
		s.Precision = float64(tp) / float64(predicted)
	}
	if truth > 0 {
		s.Recall = float64(tp) / float64(truth)
	}
	if s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	return s
}

// PairScores compares predicted duplicate pairs with true ones (pairs
// given as PairKey values, each once).
func PairScores(predicted, truth map[uint64]bool) Scores {
	var tp int64
	for k := range predicted {
		if truth[k] {
			tp++
		}
	}
	return NewScores(tp, int64(len(predicted)), int64(len(truth)))
}

// ClusterScores compares two clusterings of n items (label per item) by
// pair counting: a pair is predicted when both items share a predicted
// label, true when they share a true label. This scores what dedup does
// with the pairs: everything in a component goes but one.
func ClusterScores(predicted, truth []int32) Scores {
	pairs := func(counts map[uint64]int64) int64 {
		var s int64
		for _, c := range counts {
			s += c * (c - 1) / 2
		}
		return s
	}
	pc, tc, both := map[uint64]int64{}, map[uint64]int64{}, map[uint64]int64{}
	for i := range predicted {
		p, t := uint64(uint32(predicted[i])), uint64(uint32(truth[i]))
		pc[p]++
		tc[t]++
		both[p<<32|t]++
	}
	return NewScores(pairs(both), pairs(pc), pairs(tc))
}

// Labels returns, for n items and a list of edges, the connected
// component of each item as the smallest item index in it.
func Labels(n int, edges [][2]int32) []int32 {
	parent := make([]int32, n)
	for i := range parent {
		parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, e := range edges {
		a, b := find(e[0]), find(e[1])
		if a == b {
			continue
		}
		if b < a {
			a, b = b, a
		}
		parent[b] = a
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = find(int32(i))
	}
	return out
}
