package dedup

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// refClusters is the plain definition: connected components of edges by
// repeated relabelling, each named by its smallest node.
func refClusters(edges [][2]string) map[string]string {
	label := map[string]string{}
	for _, e := range edges {
		for _, n := range e {
			if _, ok := label[n]; !ok {
				label[n] = n
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			a, b := label[e[0]], label[e[1]]
			if a == b {
				continue
			}
			lo := min(a, b)
			for n, l := range label {
				if l == a || l == b {
					label[n] = lo
				}
			}
			changed = true
		}
	}
	return label
}

// TestUnionFindMatchesDefinition: Each gives (node, root) for exactly the
// nodes that are not the smallest of their component, with that smallest
// node as root, in the order the nodes were first seen; over names that
// are prefixes of one another, empty, long and many (the table grows).
func TestUnionFindMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 2, 10, 300, 5000} {
		names := make([]string, n)
		for i := range names {
			switch i % 4 {
			case 0:
				names[i] = fmt.Sprintf("0\x05%032x\x00%016x", rng.Uint64(), rng.Uint64())
			case 1:
				names[i] = strings.Repeat("a", i%9) // "", "a", "aa", …: prefixes
			case 2:
				names[i] = fmt.Sprintf("1\x05%d", i)
			default:
				names[i] = strings.Repeat(string(rune('b'+i%20)), 1+i%300)
			}
		}
		var edges [][2]string
		for range n + n/2 {
			edges = append(edges, [2]string{names[rng.IntN(n)], names[rng.IntN(n)]})
		}
		uf := NewUnionFind()
		var order []string
		seen := map[string]bool{}
		for _, e := range edges {
			uf.Union(e[0], e[1])
			for _, x := range e {
				if !seen[x] {
					seen[x] = true
					order = append(order, x)
				}
			}
		}
		ref := refClusters(edges)
		var want, got []string
		for _, x := range order {
			if ref[x] != x {
				want = append(want, x+" → "+ref[x])
			}
		}
		uf.Each(func(node, root string) { got = append(got, node+" → "+root) })
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: %d pairs, want %d; first difference in %q vs %q", n, len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
		}
	}
}

// BenchmarkUnionFind: a million 51-byte node keys (fuzzy dedup's) joined
// in clusters of 250, each passed as a fresh string as the disk join makes
// them; reports the heap the UnionFind holds a node.
func BenchmarkUnionFind(b *testing.B) {
	const n = 1 << 20
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("0\x05%032x\x00%016x", uint64(i)*0x9e3779b97f4a7c15, i)
	}
	var perNode float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		uf := NewUnionFind()
		for i := 1; i < n; i++ {
			if i%250 != 0 {
				uf.Union(strings.Clone(names[i-1]), strings.Clone(names[i]))
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perNode = float64(m1.HeapAlloc-m0.HeapAlloc) / n
		runtime.KeepAlive(uf)
	}
	b.ReportMetric(perNode, "B/node")
}
