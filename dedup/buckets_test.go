package dedup

import (
	"fmt"
	"testing"
)

func TestBucketEdgesLinear(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 10, 5000} {
		seen := map[[2]int]bool{}
		got := BucketEdges(n, EdgesLinear, 0, func(i, j int) {
			if i >= j || j >= n {
				t.Fatalf("n=%d: bad edge (%d, %d)", n, i, j)
			}
			if seen[[2]int{i, j}] {
				t.Fatalf("n=%d: edge (%d, %d) twice", n, i, j)
			}
			seen[[2]int{i, j}] = true
		})
		if got != len(seen) {
			t.Fatalf("n=%d: returned %d, emitted %d", n, got, len(seen))
		}
		if n <= BucketLeaders+1 && got != n*(n-1)/2 {
			t.Errorf("n=%d: %d edges, want every pair (%d)", n, got, n*(n-1)/2)
		}
		if got > (BucketLeaders+1)*n {
			t.Errorf("n=%d: %d edges, more than linear (%d)", n, got, (BucketLeaders+1)*n)
		}
		// Connected: every member reaches member 0.
		if n > 1 {
			parent := make([]int, n)
			for i := range parent {
				parent[i] = i
			}
			find := func(x int) int {
				for parent[x] != x {
					x = parent[x]
				}
				return x
			}
			for e := range seen {
				parent[find(e[1])] = find(e[0])
			}
			for i := 0; i < n; i++ {
				if find(i) != find(0) {
					t.Fatalf("n=%d: member %d not connected", n, i)
				}
			}
		}
	}
}

func TestBucketEdgesPolicies(t *testing.T) {
	count := func(n int, policy string, max int) int {
		return BucketEdges(n, policy, max, func(int, int) {})
	}
	if got := count(100, EdgesAll, 0); got != 4950 {
		t.Errorf("all, uncapped: %d edges, want 4950", got)
	}
	if got, lin := count(100, EdgesAll, 2000), count(100, EdgesLinear, 0); got != lin {
		t.Errorf("all above its cap: %d edges, want the linear fallback's %d", got, lin)
	}
	if got := count(100, EdgesStar, 0); got != 99 {
		t.Errorf("star: %d edges, want 99", got)
	}
	for _, p := range []string{"", EdgesLinear} {
		if got := count(5000, p, 0); got != 4*5000-10 {
			t.Errorf("policy %q: %s", p, fmt.Sprint(got))
		}
	}
}
