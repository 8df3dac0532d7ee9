package transforms

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/sieve-data/sieve/dedup"
)

// splitEdge turns "child parent" into the (child, parent) edge.
func splitEdge(e string, emit func(string, string)) {
	c, p, _ := strings.Cut(e, " ")
	emit(c, p)
}

// smallestParent is each child's smallest parent, "child root".
func smallestParent(child string, parents func(*string) bool, emit func(string)) {
	best := ""
	var p string
	for parents(&p) {
		if best == "" || p < best {
			best = p
		}
	}
	emit(child + " " + best)
}

func init() {
	register.Function2x0(splitEdge)
	register.Function3x0(smallestParent)
}

// starRounds is FuzzyDedupMarks's components step: rounds of large star
// then small star over (child, parent) edges, the convergence check, and
// each node's smallest parent after the last round.
func starRounds(s beam.Scope, edges beam.PCollection, rounds int) (labels, check beam.PCollection) {
	for i := 0; i < rounds; i++ {
		rs := s.Scope(fmt.Sprintf("Round%d", i+1))
		large := beam.ParDo(rs, largeStarFn, beam.GroupByKey(rs, beam.ParDo(rs, bothWays, edges)))
		edges = beam.ParDo(rs, smallStarFn, beam.GroupByKey(rs, beam.ParDo(rs, towardSmaller, large)))
	}
	check = beam.ParDo(s, &nodeCheckFn{Stage: "t"}, beam.GroupByKey(s, beam.ParDo(s, convergenceKeys, edges)))
	return beam.ParDo(s, smallestParent, beam.GroupByKey(s, edges)), check
}

// randomGraph is a graph of n nodes (ids in random order, so that
// components are not ranges of ids) and m random edges, as
// "larger smaller" lines; plus a path through extra nodes in random id
// order, the deepest tree the rounds meet.
func randomGraph(seed uint64, n, m, path int) (lines []string, edges [][2]string) {
	rng := rand.New(rand.NewPCG(seed, 9))
	ids := rng.Perm(n + path)
	name := func(i int) string { return fmt.Sprintf("n%05d", ids[i]) }
	add := func(a, b string) {
		if a < b {
			a, b = b, a
		}
		lines = append(lines, a+" "+b)
		edges = append(edges, [2]string{a, b})
	}
	for i := 0; i < m; i++ {
		a, b := rng.IntN(n), rng.IntN(n)
		add(name(a), name(b)) // self-loops included
	}
	for i := n + 1; i < n+path; i++ {
		add(name(i-1), name(i))
	}
	return lines, edges
}

// TestStarRoundsEqualComponents: the large-star/small-star rounds of
// FuzzyDedupMarks, run as Beam transforms, leave every node that is not
// its component's smallest one child of exactly that smallest node
// (dedup.Components' label), and the convergence check reports nothing;
// on random graphs sparse (many small components) and dense (a giant
// one), with a long path. One round pair on the long path does not
// converge, and the check says so.
func TestStarRoundsEqualComponents(t *testing.T) {
	for _, tc := range []struct {
		name            string
		seed            uint64
		n, m, path      int
		rounds          int
		wantUnconverged bool
	}{
		{"sparse", 1, 300, 150, 0, 10, false},
		{"dense", 2, 200, 400, 0, 10, false},
		{"path", 3, 100, 60, 64, 10, false},
		{"path_one_round", 3, 100, 60, 64, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, edges := randomGraph(tc.seed, tc.n, tc.m, tc.path)
			var want []any
			for node, root := range dedup.Components(edges) {
				if node != root {
					want = append(want, node+" "+root)
				}
			}
			p, s := beam.NewPipelineWithRoot()
			in := beam.ParDo(s, splitEdge, beam.CreateList(s, lines))
			labels, check := starRounds(s, in, tc.rounds)
			if tc.wantUnconverged {
				passert.NonEmpty(s, check)
			} else {
				passert.Empty(s, check)
				passert.Equals(s, labels, want...)
			}
			ptest.RunAndValidate(t, p)
		})
	}
}
