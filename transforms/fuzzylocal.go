package transforms

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/dedup"
)

// Fuzzy dedup on one machine (FuzzyConfig.Components = ComponentsLocal).
// The verification payloads (shingle sets, about a kilobyte a sample)
// never travel through the runner: each signer writes them, sorted by
// node, into runs under the spill directory and emits only the runs'
// paths. One worker then verifies every candidate edge by two merge
// joins on disk — edges sorted by their smaller node against the sets,
// then by their larger node against the sets again — and finds the
// clusters of the verified edges by union-find. Its memory is the
// external sorts' budgets and the union-find's nodes, not the sets nor
// the edges' copies of them (which the shuffled joins hold: edges × a
// kilobyte). The clusters are the same as the shuffled path's.

func init() {
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string, string), error](&localFuzzyFn{})
	register.Function2x1(bandRunValue)
	register.Function2x1(setRunValue)
}

// bandRunValue and setRunValue tag the local verifier's two inputs: the
// runs of band pairs and of verification sets.
func bandRunValue(path string, _ []byte) string { return "B" + path }

func setRunValue(path string, _ []byte) string { return "R" + path }

// localFuzzy buckets the band pairs in the runs, verifies the candidate
// edges against the sets in the runs and returns the (node, root) edges
// of the clusters.
func localFuzzy(s beam.Scope, bandRuns, setRuns beam.PCollection, cfg FuzzyConfig) beam.PCollection {
	s = s.Scope("LocalVerify")
	in := beam.Flatten(s, beam.ParDo(s, bandRunValue, bandRuns), beam.ParDo(s, setRunValue, setRuns))
	return beam.ParDo(s, &localFuzzyFn{Threshold: cfg.Threshold, Verify: cfg.Verify, Budget: cfg.SpillBudget,
		Edges: cfg.Edges, Max: cfg.MaxBucketPairs}, beam.GroupByKey(s, beam.AddFixedKey(s, in)))
}

type localFuzzyFn struct {
	Threshold float64 `json:"threshold"`
	Verify    string  `json:"verify"`
	Budget    int     `json:"budget"`
	Edges     string  `json:"edges"`
	Max       int     `json:"max"`
}

func (f *localFuzzyFn) budget() int {
	if f.Budget > 0 {
		return f.Budget
	}
	return DefaultSpillBudget
}

func (f *localFuzzyFn) ProcessElement(ctx context.Context, _ int, vals func(*string) bool, emit func(string, string)) error {
	var runs, bandRuns []string
	var v string
	for vals(&v) {
		switch {
		case strings.HasPrefix(v, "R"):
			runs = append(runs, v[1:])
		case strings.HasPrefix(v, "B"):
			bandRuns = append(bandRuns, v[1:])
		}
	}
	sort.Strings(runs)
	sort.Strings(bandRuns)
	// Buckets: the band runs merged by (band key, node); each bucket's
	// distinct nodes give candidate edges (dedup.BucketEdges) into an
	// external sort by the smaller node.
	byA := newExtSorter(f.budget())
	var seen edgeSet
	var nodes []string
	var hs [][2]uint64
	var cur []byte
	bucket := func() error {
		hs = hs[:0]
		for _, nd := range nodes {
			hs = append(hs, [2]uint64{fnvString(nd, fnvBasis), fnvString(nd, fnvBasis2)})
		}
		var err error
		dedup.BucketEdges(len(nodes), f.Edges, f.Max, func(a, b int) {
			if err == nil && seen.add(hs[a], hs[b]) {
				err = byA.add(ctx, []byte(nodes[a]), []byte(nodes[b]))
			}
		})
		nodes = nodes[:0]
		return err
	}
	err := mergeRuns(ctx, bandRuns, func(r runRecord) error {
		if len(r.key) < 8 {
			return fmt.Errorf("local fuzzy dedup: malformed band record")
		}
		if cur != nil && !bytes.Equal(cur, r.key[:8]) {
			if err := bucket(); err != nil {
				return err
			}
		}
		cur = append(cur[:0], r.key[:8]...)
		node := string(r.key[8:])
		if len(nodes) == 0 || nodes[len(nodes)-1] != node {
			nodes = append(nodes, node)
		}
		return nil
	})
	if err == nil {
		err = bucket()
	}
	if err != nil {
		byA.release()
		return err
	}
	// Join 1: each edge (a, b) with a's set, re-keyed by b.
	byB := newExtSorter(f.budget())
	var prevA, prevB []byte
	var payload []byte
	err = joinSets(ctx, byA, runs, func(a, b, setA []byte) error {
		if bytes.Equal(a, prevA) && bytes.Equal(b, prevB) {
			return nil // a repeated candidate edge
		}
		prevA, prevB = append(prevA[:0], a...), append(prevB[:0], b...)
		payload = binary.AppendUvarint(payload[:0], uint64(len(a)))
		payload = append(payload, a...)
		payload = append(payload, setA...)
		return byB.add(ctx, b, payload)
	})
	if err != nil {
		byB.release()
		return err
	}
	// Join 2: with b's set; verified edges go to the union-find.
	uf := newUnionFind()
	type pending struct {
		a, b       string
		setA, setB []byte
	}
	var batch []pending
	ok := make([]bool, 0, 4096)
	flush := func() {
		ok = ok[:len(batch)]
		forEach(len(batch), 2, func(i int) {
			if f.Verify == "none" {
				ok[i] = true
				return
			}
			ok[i] = dedup.PayloadSimilarity(batch[i].setA, batch[i].setB) >= f.Threshold
		})
		for i := range batch {
			if ok[i] {
				uf.union(batch[i].a, batch[i].b)
			}
		}
		batch = batch[:0]
	}
	err = joinSets(ctx, byB, runs, func(b, p, setB []byte) error {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return fmt.Errorf("local fuzzy dedup: malformed edge record")
		}
		batch = append(batch, pending{a: string(p[k : k+int(n)]), b: string(b),
			setA: append([]byte(nil), p[k+int(n):]...), setB: append([]byte(nil), setB...)})
		if len(batch) == cap(ok) {
			flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	flush()
	uf.each(emit)
	return nil
}

// joinSets merge-joins the records of sorted (key: node) with the sets in
// runs (key: node) and calls fn(node, payload, set) for every record
// whose node has a set; records of nodes without one (samples with no
// shingle have no node) are skipped. It releases sorted.
func joinSets(ctx context.Context, sorted *extSorter, runs []string, fn func(node, payload, set []byte) error) error {
	it, err := sorted.iter(ctx)
	if err != nil {
		sorted.release()
		return err
	}
	defer func() { it.close(); sorted.release() }()
	sets, err := openMerger(ctx, runs)
	if err != nil {
		return err
	}
	defer sets.close()
	set, more, err := sets.next()
	if err != nil {
		return err
	}
	for {
		r, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		for more && bytes.Compare(set.key, r.key) < 0 {
			if set, more, err = sets.next(); err != nil {
				return err
			}
		}
		if more && bytes.Equal(set.key, r.key) {
			if err := fn(r.key, r.payload, set.payload); err != nil {
				return err
			}
		}
	}
}

// unionFind keeps clusters of node keys; each root is its cluster's
// smallest node (node keys sort in the keep policy's order).
type unionFind struct {
	idx    map[string]int32
	names  []string
	parent []int32
}

func newUnionFind() *unionFind { return &unionFind{idx: map[string]int32{}} }

func (u *unionFind) id(n string) int32 {
	if i, ok := u.idx[n]; ok {
		return i
	}
	i := int32(len(u.names))
	u.idx[n] = i
	u.names = append(u.names, n)
	u.parent = append(u.parent, i)
	return i
}

func (u *unionFind) find(x int32) int32 {
	r := x
	for u.parent[r] != r {
		r = u.parent[r]
	}
	for u.parent[x] != r {
		u.parent[x], x = r, u.parent[x]
	}
	return r
}

func (u *unionFind) union(a, b string) {
	x, y := u.find(u.id(a)), u.find(u.id(b))
	if x == y {
		return
	}
	if u.names[x] < u.names[y] {
		u.parent[y] = x
	} else {
		u.parent[x] = y
	}
}

// each emits (node, root) for every node that is not its cluster's root.
func (u *unionFind) each(emit func(string, string)) {
	for i := range u.names {
		if r := u.find(int32(i)); r != int32(i) {
			emit(u.names[i], u.names[r])
		}
	}
}
