package main

import "math"

// Clustering quality from a contingency table: table[t*g+j] counts the
// samples of topic t (of k) in known group j (of g).

// NMI is the normalised mutual information of topics and groups,
// I(T;G) / ((H(T)+H(G))/2) (arithmetic normalisation, as scikit-learn's
// default): 1 when the topics are the groups, about 0 when independent.
func NMI(table []int64, k, g int) float64 {
	rows, cols, n := margins(table, k, g)
	if n == 0 {
		return 0
	}
	N := float64(n)
	var mi, ht, hg float64
	for t := range k {
		for j := range g {
			if c := float64(table[t*g+j]); c > 0 {
				mi += c / N * math.Log(c*N/(float64(rows[t])*float64(cols[j])))
			}
		}
	}
	for _, r := range rows {
		if r > 0 {
			ht -= float64(r) / N * math.Log(float64(r)/N)
		}
	}
	for _, c := range cols {
		if c > 0 {
			hg -= float64(c) / N * math.Log(float64(c)/N)
		}
	}
	if ht+hg == 0 {
		return 1
	}
	return 2 * mi / (ht + hg)
}

// ARI is the adjusted Rand index of topics and groups (Hubert and
// Arabie): 1 for identical partitions, 0 in expectation for random ones.
func ARI(table []int64, k, g int) float64 {
	rows, cols, n := margins(table, k, g)
	pairs := func(x int64) float64 { return float64(x) * float64(x-1) / 2 }
	var idx, sr, sc float64
	for _, c := range table {
		idx += pairs(c)
	}
	for _, r := range rows {
		sr += pairs(r)
	}
	for _, c := range cols {
		sc += pairs(c)
	}
	all := pairs(n)
	if all == 0 {
		return 1
	}
	exp := sr * sc / all
	maxIdx := (sr + sc) / 2
	if maxIdx == exp {
		return 1
	}
	return (idx - exp) / (maxIdx - exp)
}

// Purity is the share of samples in their topic's majority group.
func Purity(table []int64, k, g int) float64 {
	var best, n int64
	for t := range k {
		var m int64
		for j := range g {
			m = max(m, table[t*g+j])
			n += table[t*g+j]
		}
		best += m
	}
	if n == 0 {
		return 0
	}
	return float64(best) / float64(n)
}

func margins(table []int64, k, g int) (rows, cols []int64, n int64) {
	rows, cols = make([]int64, k), make([]int64, g)
	for t := range k {
		for j := range g {
			c := table[t*g+j]
			rows[t] += c
			cols[j] += c
			n += c
		}
	}
	return rows, cols, n
}
