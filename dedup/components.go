package dedup

import (
	"slices"
)

// Components returns the connected components of the undirected graph
// whose edges are given, as a map from every node that appears in an
// edge to the smallest node id (in string order) of its component.
// Self-loops and repeated edges are allowed; nodes without edges do not
// appear (they are components of their own). It is an in-memory
// union-find: the exact reference for small graphs and for checking the
// distributed LargeStar/SmallStar rounds.
func Components(edges [][2]string) map[string]string {
	idx := make(map[string]int32, len(edges))
	var names []string
	id := func(s string) int32 {
		i, ok := idx[s]
		if !ok {
			i = int32(len(names))
			idx[s] = i
			names = append(names, s)
		}
		return i
	}
	var parent []int32
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]] // path halving
			x = parent[x]
		}
		return x
	}
	for _, e := range edges {
		a, b := id(e[0]), id(e[1])
		for int(max(a, b)) >= len(parent) {
			parent = append(parent, int32(len(parent)))
		}
		ra, rb := find(a), find(b)
		if ra == rb {
			continue
		}
		// The root is the smaller name, so the root is the label.
		if names[rb] < names[ra] {
			ra, rb = rb, ra
		}
		parent[rb] = ra
	}
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = names[find(int32(i))]
	}
	return out
}

// Large-star / small-star connected components (Kiveris, Lattanzi,
// Mirrokni, Rastogi, Vassilvitskii: "Connected Components in MapReduce
// and Beyond", SoCC 2014), one round per function, so that each round is
// a GroupByKey and a ParDo in Beam.
//
// Conventions. Nodes are ordered by string comparison. Every edge the
// rounds emit is a [2]string{child, parent} with parent < child: it
// points from the larger node to the smaller. Self-loops are never
// emitted. Edges of the input graph may be given either way round.
//
// One round of each, for an edge collection E:
//
//   - LargeStar: for every edge {a, b} emit (a → b) and (b → a), group by
//     the first node u into its neighbour set Γ(u) and call
//     LargeStar(u, Γ(u)). It links every neighbour of u larger than u to
//     m = min(Γ(u) ∪ {u}).
//   - SmallStar: for every edge {a, b} emit (max(a,b) → min(a,b)), group
//     by the larger node u into the set N(u) of its smaller neighbours
//     and call SmallStar(u, N(u)). It links u and every member of N(u) to
//     m = min(N(u) ∪ {u}).
//
// Both rounds keep the connectivity of every component. Run LargeStar
// then SmallStar, and repeat until Converged holds for the output of a
// SmallStar round; Kiveris et al. prove O(log² n) rounds. Repeated edges
// between rounds are harmless (the functions take neighbour lists as
// sets), but dropping them (Distinct) keeps the shuffles small.
//
// At convergence the edges are exactly {(v, min of v's component)} for
// every node v that is not its component's minimum: the parent of a child
// is its label, and a node that appears only as a parent is the minimum
// of its component and its own label (Labels computes this map).

// LargeStar is one node's step of a large-star round: node u with all its
// neighbours Γ(u) (in any order, repetitions and u itself allowed). It
// returns the edges (v, m) for every distinct neighbour v > u, where m is
// the smallest of u and its neighbours.
func LargeStar(node string, neighbors []string) [][2]string {
	m := node
	for _, v := range neighbors {
		m = min(m, v)
	}
	var out [][2]string
	for _, v := range distinct(neighbors) {
		if v > node {
			out = append(out, [2]string{v, m})
		}
	}
	return out
}

// SmallStar is one node's step of a small-star round: node u with its
// neighbours N(u) that are smaller than u (larger ones, u itself and
// repetitions are ignored). With m the smallest of u and N(u), it returns
// the edges (v, m) for u and every distinct member v of N(u) other than
// m.
func SmallStar(node string, neighbors []string) [][2]string {
	m := node
	for _, v := range neighbors {
		if v < node {
			m = min(m, v)
		}
	}
	if m == node {
		return nil
	}
	out := [][2]string{{node, m}}
	for _, v := range distinct(neighbors) {
		if v < node && v != m {
			out = append(out, [2]string{v, m})
		}
	}
	return out
}

// distinct returns the distinct values of s, sorted (a new slice).
func distinct(s []string) []string {
	d := slices.Clone(s)
	slices.Sort(d)
	return slices.Compact(d)
}

// Converged reports whether the (child, parent) edges of a round are a
// forest of stars: every child has exactly one distinct parent, and no
// parent is itself a child. Since the rounds keep connectivity, each star
// is then a whole component and its centre, being smaller than all its
// children, is the component's minimum.
//
// In Beam, key every edge (c, p) twice, as (c, "child of p") and (p,
// "parent"), group by node and count the nodes for which NodeConverged is
// false; the rounds have converged when the count is 0.
func Converged(edges [][2]string) bool {
	parents := make(map[string][]string)
	isParent := make(map[string]bool)
	for _, e := range edges {
		parents[e[0]] = append(parents[e[0]], e[1])
		isParent[e[1]] = true
	}
	for n, ps := range parents {
		if !NodeConverged(ps, isParent[n]) {
			return false
		}
	}
	return true
}

// NodeConverged is Converged's test for one node: parents are the
// parents of the edges in which the node is the child, isParent says
// whether it is the parent of any edge. The node is settled when it is a
// child of exactly one distinct parent and no parent itself, or when it
// is not a child at all.
func NodeConverged(parents []string, isParent bool) bool {
	if len(parents) == 0 {
		return true
	}
	if isParent {
		return false
	}
	for _, p := range parents[1:] {
		if p != parents[0] {
			return false
		}
	}
	return true
}

// Labels turns converged (child, parent) edges into the node → label map
// Components returns: each child maps to its parent, each parent to
// itself.
func Labels(edges [][2]string) map[string]string {
	out := make(map[string]string, len(edges)+1)
	for _, e := range edges {
		out[e[0]] = e[1]
		if _, ok := out[e[1]]; !ok {
			out[e[1]] = e[1]
		}
	}
	return out
}

// StarComponents runs LargeStar and SmallStar rounds in memory until
// Converged, at most maxRounds pairs of them, and returns Labels of the
// result, the number of round pairs run, and whether it converged. It is
// the plain-Go model of the Beam rounds.
func StarComponents(edges [][2]string, maxRounds int) (labels map[string]string, rounds int, converged bool) {
	cur := make([][2]string, 0, len(edges))
	var loops []string // nodes with self-loops, their own components
	for _, e := range edges {
		if e[0] == e[1] {
			loops = append(loops, e[0])
		} else {
			cur = append(cur, e)
		}
	}
	for rounds < maxRounds {
		rounds++
		cur = largeStarRound(cur)
		cur = smallStarRound(cur)
		if Converged(cur) {
			converged = true
			break
		}
	}
	labels = Labels(cur)
	for _, n := range loops {
		if _, ok := labels[n]; !ok {
			labels[n] = n
		}
	}
	return labels, rounds, converged
}

func largeStarRound(edges [][2]string) [][2]string {
	nb := make(map[string][]string)
	for _, e := range edges {
		nb[e[0]] = append(nb[e[0]], e[1])
		nb[e[1]] = append(nb[e[1]], e[0])
	}
	var out [][2]string
	for _, u := range sortedKeys(nb) {
		out = append(out, LargeStar(u, nb[u])...)
	}
	return distinctEdges(out)
}

func smallStarRound(edges [][2]string) [][2]string {
	nb := make(map[string][]string)
	for _, e := range edges {
		a, b := e[0], e[1]
		if a < b {
			a, b = b, a
		}
		nb[a] = append(nb[a], b)
	}
	var out [][2]string
	for _, u := range sortedKeys(nb) {
		out = append(out, SmallStar(u, nb[u])...)
	}
	return distinctEdges(out)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func distinctEdges(e [][2]string) [][2]string {
	slices.SortFunc(e, func(a, b [2]string) int {
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		if a[1] < b[1] {
			return -1
		}
		if a[1] > b[1] {
			return 1
		}
		return 0
	})
	return slices.Compact(e)
}
