package dedup

import (
	"bytes"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Fuzzy dedup's clustering on one machine: LSH buckets → candidate edges
// (Candidates) → verification (ClusterConfig.Verified) → connected
// components (UnionFind). Cluster composes the three; the fuzzy_dedup
// stage's local mode (transforms, buckets and payloads in sorted runs on
// disk) and bench/dedupbench (ClusterInMemory) both call it, so that the
// benchmark measures the code the stage runs.

// ClusterConfig says how fuzzy dedup turns LSH buckets into clusters.
type ClusterConfig struct {
	// Threshold is the similarity (PayloadSimilarity) at or above which a
	// candidate edge is a duplicate.
	Threshold float64
	// Verify is VerifyExact, VerifyEstimate (the payloads tell which) or
	// VerifyNone (every candidate edge is a duplicate).
	Verify string
	// Edges and MaxBucketPairs are BucketEdges' policy and cap.
	Edges          string
	MaxBucketPairs int
	// OnVerified, when set, is called for every verified edge (a, b),
	// a < b, once; for measurement (bench/dedupbench).
	OnVerified func(a, b string)
}

// Verified reports whether a candidate edge whose ends have payloads pa
// and pb is a duplicate.
func (c ClusterConfig) Verified(pa, pb []byte) bool {
	return c.Verify == VerifyNone || PayloadSimilarity(pa, pb) >= c.Threshold
}

// BandPairs streams the (band key, node) pairs of every sample, sorted by
// band key, then node; a node may repeat within a bucket. It stops at
// the first error of yield and returns it.
type BandPairs func(yield func(key uint64, node string) error) error

// EdgeJoiner holds candidate edges until they are joined with both ends'
// verification payloads: in memory (MemoryJoiner) or, in the stage, by
// external sorts on disk.
type EdgeJoiner interface {
	// Add records the candidate edge (a, b), a < b. An edge may be added
	// more than once. Add is safe for concurrent use.
	Add(a, b string) error
	// Join calls fn once for every distinct edge added whose ends both
	// have a payload, with the payloads; its arguments are valid only
	// during the call. It may call fn from several goroutines at once.
	Join(fn func(a, b string, pa, pb []byte) error) error
}

// ClusterStats counts what Cluster did.
type ClusterStats struct {
	// Candidates is the number of candidate edges BucketEdges made over
	// all buckets (repeats across buckets included).
	Candidates int
	// Verified is the number of distinct edges that verified.
	Verified int
}

// Cluster finds the clusters of near-duplicates among the nodes of parts:
// the members of each bucket (the nodes sharing a band key) give
// candidate edges (Candidates: BucketEdges under c.Edges), which j joins
// with their ends' payloads and c.Verified keeps (under VerifyNone every
// candidate edge is kept, no join); the connected components of the kept
// edges are the clusters. emit gets (node, root) for every node of a
// cluster other than its root, the cluster's smallest node: the survivor
// when node keys sort in the keep policy's order.
//
// The band pairs come in parts that share no band key (a bucket lies in
// one part), bucketed concurrently, one goroutine a part; j may verify
// concurrently too. The result does not depend on the parts, on the order
// of the buckets or on that of the joined edges.
func Cluster(parts []BandPairs, j EdgeJoiner, c ClusterConfig, emit func(node, root string)) (ClusterStats, error) {
	var st ClusterStats
	var mu sync.Mutex // guards st.Verified, uf, seen and c.OnVerified's calls
	uf := NewUnionFind()
	verified := func(a, b string) {
		st.Verified++
		if c.OnVerified != nil {
			c.OnVerified(a, b)
		}
		uf.Union(a, b)
	}
	add := j.Add
	if c.Verify == VerifyNone {
		seen := map[[2]string]bool{}
		add = func(a, b string) error {
			mu.Lock()
			defer mu.Unlock()
			if !seen[[2]string{a, b}] {
				seen[[2]string{a, b}] = true
				verified(a, b)
			}
			return nil
		}
	}
	counts := make([]int, len(parts))
	err := parallelErr(len(parts), func(p int) error {
		cand := Candidates{Policy: c.Edges, MaxPairs: c.MaxBucketPairs}
		// The parts share the memory one Candidates may hold.
		cand.seen.limit = max(edgeSetMaxSlots>>bits.Len(uint(len(parts)-1)), edgeSetMinSlots)
		cand.buckets.limit = cand.seen.limit
		var nodes []string
		var cur uint64
		bucket := func() error {
			n, err := cand.Bucket(nodes, add)
			counts[p] += n
			nodes = nodes[:0]
			return err
		}
		err := parts[p](func(key uint64, node string) error {
			if len(nodes) > 0 && key != cur {
				if err := bucket(); err != nil {
					return err
				}
			}
			cur = key
			if len(nodes) == 0 || nodes[len(nodes)-1] != node {
				nodes = append(nodes, node)
			}
			return nil
		})
		if err == nil {
			err = bucket()
		}
		return err
	})
	for _, n := range counts {
		st.Candidates += n
	}
	if err != nil {
		return st, err
	}
	if c.Verify != VerifyNone {
		err = j.Join(func(a, b string, pa, pb []byte) error {
			if c.Verified(pa, pb) {
				mu.Lock()
				verified(a, b)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return st, err
		}
	}
	uf.Each(emit)
	return st, nil
}

// parallelErr calls fn(i) for i in [0, n), each on its own goroutine
// (inline when n is 1), and returns the first error by i.
func parallelErr(n int, fn func(i int) error) error {
	if n == 1 {
		return fn(0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Candidates makes the candidate edges of LSH buckets, one bucket at a
// time, and remembers the edges it made, so that a cluster's buckets in
// every band (up to bands × the same edges) do not all travel on: by
// 128-bit hashes of the ends in an edgeSet, and a bucket whose member list
// it has bucketed before is skipped whole (a second edgeSet, of member
// lists). Each set forgets only beyond 4M entries, so memory is bounded
// (128 MiB each at most). Skipping a repeat is only an optimisation:
// consumers still remove repeats. The zero value (Policy EdgesLinear, no cap) is ready to
// use; a Candidates is not safe for concurrent use.
type Candidates struct {
	Policy   string
	MaxPairs int
	seen     edgeSet
	buckets  edgeSet // hashes of the member lists of buckets already done
	hs       [][2]uint64
}

// Bucket calls emit(nodes[i], nodes[j]), i < j, for the candidate edges
// among the sorted, distinct members of one bucket (BucketEdges under
// c.Policy and c.MaxPairs) that c has not emitted before (or has
// forgotten). It returns the number of edges BucketEdges made (repeats
// included) and the first error of emit, after which it emits nothing
// more.
func (c *Candidates) Bucket(nodes []string, emit func(a, b string) error) (int, error) {
	c.hs = c.hs[:0]
	var whole edgeKey
	for _, nd := range nodes {
		h := [2]uint64{fnv1a(nd, fnvBasis), fnv1a(nd, fnvBasis2)}
		c.hs = append(c.hs, h)
		whole = edgeKey{mix64(whole[0]^h[0]) + 1, mix64(whole[1] ^ h[1] + 0x9e3779b97f4a7c15)}
	}
	// A bucket with the same members as one done before (a cluster
	// agreeing in another band) makes the same edges: all repeats.
	if len(nodes) > 2 && !c.buckets.add(whole) {
		return BucketEdges(len(nodes), c.Policy, c.MaxPairs, func(int, int) {}), nil
	}
	var err error
	n := BucketEdges(len(nodes), c.Policy, c.MaxPairs, func(a, b int) {
		if err == nil && c.add(c.hs[a], c.hs[b]) {
			err = emit(nodes[a], nodes[b])
		}
	})
	return n, err
}

// add reports whether the edge between nodes of 128-bit hashes a and b
// is new.
func (c *Candidates) add(a, b [2]uint64) bool {
	return c.seen.add(edgeKey{mix64(a[0]*0x9e3779b97f4a7c15 ^ (b[0] + 0x632be59bd9b4e019)), (a[1]<<1 | a[1]>>63) ^ b[1]*1099511628211})
}

// FNV-1a bases of Candidates' two node hashes.
const (
	fnvBasis  = 14695981039346656037
	fnvBasis2 = 0x9e3779b97f4a7c15
)

// fnv1a is FNV-1a of s from basis.
func fnv1a[T string | []byte](s T, basis uint64) uint64 {
	const prime = 1099511628211
	h := uint64(basis)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return h
}

// UnionFind keeps clusters of node keys; each root is its cluster's
// smallest node. The zero value is not ready: use NewUnionFind.
//
// It holds the keys in one arena, back to back, and finds a key's index
// through an open-addressing table of indexes (linear probing, at most
// half full): about 51 + 8 + 4 + 6 bytes a fuzzy-dedup node key of 51
// bytes, where a Go map of strings and their headers held ~138
// (BenchmarkUnionFind). Its memory is still one entry a clustered node.
type UnionFind struct {
	slots  []int32 // index+1 of the node whose key hashes here; 0 empty
	arena  []byte  // the keys, back to back
	ends   []int   // ends[i]: where key i ends in arena
	parent []int32
}

// NewUnionFind returns an empty UnionFind.
func NewUnionFind() *UnionFind { return &UnionFind{slots: make([]int32, 1<<10)} }

func (u *UnionFind) key(i int32) []byte {
	lo := 0
	if i > 0 {
		lo = u.ends[i-1]
	}
	return u.arena[lo:u.ends[i]]
}

func (u *UnionFind) name(i int32) string { return string(u.key(i)) }

// id returns n's index, adding n if it is new.
func (u *UnionFind) id(n string) int32 {
	mask := uint64(len(u.slots) - 1)
	for s := fnv1a(n, fnvBasis) & mask; ; s = (s + 1) & mask {
		v := u.slots[s]
		if v == 0 {
			i := int32(len(u.parent))
			u.arena = append(u.arena, n...)
			u.ends = append(u.ends, len(u.arena))
			u.parent = append(u.parent, i)
			u.slots[s] = i + 1
			if 2*len(u.parent) > len(u.slots) {
				u.grow()
			}
			return i
		}
		if string(u.key(v-1)) == n {
			return v - 1
		}
	}
}

// grow doubles the table and re-files every key.
func (u *UnionFind) grow() {
	u.slots = make([]int32, 2*len(u.slots))
	mask := uint64(len(u.slots) - 1)
	for i := range int32(len(u.parent)) {
		s := fnv1a(u.key(i), fnvBasis) & mask
		for u.slots[s] != 0 {
			s = (s + 1) & mask
		}
		u.slots[s] = i + 1
	}
}

func (u *UnionFind) find(x int32) int32 {
	r := x
	for u.parent[r] != r {
		r = u.parent[r]
	}
	for u.parent[x] != r {
		u.parent[x], x = r, u.parent[x]
	}
	return r
}

// Union joins the clusters of a and b.
func (u *UnionFind) Union(a, b string) {
	x, y := u.find(u.id(a)), u.find(u.id(b))
	if x == y {
		return
	}
	if bytes.Compare(u.key(x), u.key(y)) < 0 {
		u.parent[y] = x
	} else {
		u.parent[x] = y
	}
}

// Each calls emit(node, root) for every node that is not its cluster's
// root, in the order the nodes were first seen.
func (u *UnionFind) Each(emit func(node, root string)) {
	for i := range int32(len(u.parent)) {
		if r := u.find(i); r != i {
			emit(u.name(i), u.name(r))
		}
	}
}

// Node is one sample as fuzzy dedup's clustering sees it: its node key
// (which sorts in the keep policy's order), its band keys (AppendBandKeys
// of its signature) and its verification payload (Sketcher.Sketch).
type Node struct {
	Key     string
	Bands   []uint64
	Payload []byte
}

// ClusterResult is what ClusterInMemory found.
type ClusterResult struct {
	// Roots maps every node of a cluster of two or more to the cluster's
	// root (the root to itself).
	Roots map[string]string
	// Candidates are the distinct candidate edges (a, b), a < b, sorted.
	Candidates [][2]string
	ClusterStats
}

// ClusterInMemory runs Cluster on nodes held in memory: their band pairs
// sorted in memory, their edges joined by a MemoryJoiner.
func ClusterInMemory(nodes []Node, c ClusterConfig) (ClusterResult, error) {
	type pair struct {
		key  uint64
		node string
	}
	var ps []pair
	j := &MemoryJoiner{Payloads: make(map[string][]byte, len(nodes))}
	for _, n := range nodes {
		for _, k := range n.Bands {
			ps = append(ps, pair{k, n.Key})
		}
		if n.Payload != nil {
			j.Payloads[n.Key] = n.Payload
		}
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if a.key != b.key {
			if a.key < b.key {
				return -1
			}
			return 1
		}
		if a.node < b.node {
			return -1
		}
		if a.node > b.node {
			return 1
		}
		return 0
	})
	out := ClusterResult{Roots: map[string]string{}}
	if c.Verify == VerifyNone {
		// Every distinct candidate edge is verified and never joined.
		on := c.OnVerified
		c.OnVerified = func(a, b string) {
			_ = j.Add(a, b)
			if on != nil {
				on(a, b)
			}
		}
	}
	st, err := Cluster([]BandPairs{func(yield func(uint64, string) error) error {
		for _, p := range ps {
			if err := yield(p.key, p.node); err != nil {
				return err
			}
		}
		return nil
	}}, j, c, func(n, r string) { out.Roots[n] = r; out.Roots[r] = r })
	out.ClusterStats, out.Candidates = st, j.Edges()
	return out, err
}

// MemoryJoiner is an EdgeJoiner in memory: the payloads by node, and the
// distinct edges added.
type MemoryJoiner struct {
	Payloads map[string][]byte
	mu       sync.Mutex
	edges    map[[2]string]struct{}
}

// Add records the edge (a, b).
func (m *MemoryJoiner) Add(a, b string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.edges == nil {
		m.edges = map[[2]string]struct{}{}
	}
	m.edges[[2]string{a, b}] = struct{}{}
	return nil
}

// Edges returns the distinct edges added, sorted.
func (m *MemoryJoiner) Edges() [][2]string {
	out := make([][2]string, 0, len(m.edges))
	for e := range m.edges {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y [2]string) int {
		if c := strings.Compare(x[0], y[0]); c != 0 {
			return c
		}
		return strings.Compare(x[1], y[1])
	})
	return out
}

// Join calls fn for every distinct edge whose ends have payloads, on
// GOMAXPROCS goroutines, each over a range of the sorted edges.
func (m *MemoryJoiner) Join(fn func(a, b string, pa, pb []byte) error) error {
	edges := m.Edges()
	workers := min(runtime.GOMAXPROCS(0), max(1, len(edges)/1024))
	chunk := (len(edges) + workers - 1) / workers
	return parallelErr(workers, func(w int) error {
		for _, e := range edges[min(w*chunk, len(edges)):min((w+1)*chunk, len(edges))] {
			pa, okA := m.Payloads[e[0]]
			pb, okB := m.Payloads[e[1]]
			if !okA || !okB {
				continue
			}
			if err := fn(e[0], e[1], pa, pb); err != nil {
				return err
			}
		}
		return nil
	})
}
