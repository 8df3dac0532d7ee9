package dedup

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

func node(i int) string { return fmt.Sprintf("n%04d", i) }

// bruteComponents labels nodes by repeated min-label propagation, an
// independent reference for Components.
func bruteComponents(edges [][2]string) map[string]string {
	lab := map[string]string{}
	for _, e := range edges {
		lab[e[0]], lab[e[1]] = e[0], e[1]
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			m := min(lab[e[0]], lab[e[1]])
			if lab[e[0]] != m || lab[e[1]] != m {
				lab[e[0]], lab[e[1]] = m, m
				changed = true
			}
		}
	}
	return lab
}

type graph struct {
	name  string
	edges [][2]string
}

func testGraphs(r *rand.Rand) []graph {
	var gs []graph
	chain := func(ids []int) [][2]string {
		var e [][2]string
		for i := 1; i < len(ids); i++ {
			e = append(e, [2]string{node(ids[i-1]), node(ids[i])})
		}
		return e
	}
	// a~b, b~c, a≁c in both orders of ids.
	gs = append(gs, graph{"chain3", [][2]string{{"a", "b"}, {"b", "c"}}})
	gs = append(gs, graph{"chain3-rev", [][2]string{{"c", "b"}, {"b", "a"}}})
	gs = append(gs, graph{"chain3-mid-min", [][2]string{{"b", "a"}, {"a", "c"}}})
	// Long chains, ascending, descending and shuffled ids.
	for _, n := range []int{50, 400} {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		gs = append(gs, graph{fmt.Sprintf("chain%d-asc", n), chain(ids)})
		rev := make([]int, n)
		for i := range ids {
			rev[i] = n - 1 - i
		}
		gs = append(gs, graph{fmt.Sprintf("chain%d-desc", n), chain(rev)})
		r.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		gs = append(gs, graph{fmt.Sprintf("chain%d-shuffled", n), chain(ids)})
	}
	// Large stars, centred on the smallest, the largest and a middle id.
	for _, c := range []int{0, 999, 500} {
		var e [][2]string
		for i := 0; i < 1000; i++ {
			if i != c {
				e = append(e, [2]string{node(i), node(c)})
			}
		}
		gs = append(gs, graph{fmt.Sprintf("star-centre%d", c), e})
	}
	// Cliques.
	var cl [][2]string
	for i := 0; i < 40; i++ {
		for j := i + 1; j < 40; j++ {
			cl = append(cl, [2]string{node(i + 100), node(j + 100)})
		}
	}
	gs = append(gs, graph{"clique40", cl})
	// A binary tree rooted at its largest id.
	var tr [][2]string
	for i := 1; i < 511; i++ {
		tr = append(tr, [2]string{node(1000 - i), node(1000 - (i-1)/2)})
	}
	gs = append(gs, graph{"tree", tr})
	// Random sparse graphs (many components), with repeated edges and
	// self-loops.
	for k := 0; k < 6; k++ {
		n := 50 + r.IntN(500)
		m := r.IntN(n * 3 / 2)
		var e [][2]string
		for i := 0; i < m; i++ {
			e = append(e, [2]string{node(r.IntN(n)), node(r.IntN(n))})
		}
		if len(e) > 0 {
			e = append(e, e[0])
		}
		gs = append(gs, graph{fmt.Sprintf("random%d", k), e})
	}
	// Everything at once: the union of disjoint chains, stars and cliques.
	var all [][2]string
	for i, g := range gs[:8] {
		for _, e := range g.edges {
			all = append(all, [2]string{fmt.Sprintf("g%d-%s", i, e[0]), fmt.Sprintf("g%d-%s", i, e[1])})
		}
	}
	gs = append(gs, graph{"union", all})
	return gs
}

func TestComponents(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, g := range testGraphs(r) {
		got := Components(g.edges)
		want := bruteComponents(g.edges)
		if !maps.Equal(got, want) {
			t.Errorf("%s: Components differs from label propagation", g.name)
		}
	}
	got := Components([][2]string{{"a", "b"}, {"b", "c"}, {"x", "y"}, {"z", "z"}})
	want := map[string]string{"a": "a", "b": "a", "c": "a", "x": "x", "y": "x", "z": "z"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(Components(nil)) != 0 {
		t.Errorf("empty graph has components")
	}
}

func TestStarComponents(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, g := range testGraphs(r) {
		labels, rounds, ok := StarComponents(g.edges, 100)
		if !ok {
			t.Errorf("%s: not converged after %d rounds", g.name, rounds)
			continue
		}
		if want := Components(g.edges); !maps.Equal(labels, want) {
			t.Errorf("%s: star rounds differ from Components", g.name)
		}
		t.Logf("%s: %d edges, %d round pairs", g.name, len(g.edges), rounds)
	}
	// A self-loop alone is a component of one.
	if l, _, ok := StarComponents([][2]string{{"q", "q"}}, 5); !ok || !maps.Equal(l, map[string]string{"q": "q"}) {
		t.Errorf("self-loop: %v", l)
	}
	// Too few rounds for a long chain: not converged, and said so.
	var ch [][2]string
	for i := 1; i < 300; i++ {
		ch = append(ch, [2]string{node(i - 1), node(i)})
	}
	if _, _, ok := StarComponents(ch, 1); ok {
		t.Errorf("a 300-chain converged in one round pair")
	}
}

func TestLargeSmallStar(t *testing.T) {
	// Large-star at b with neighbours a, c, d (a smallest): the larger
	// neighbours c and d are linked to a.
	got := LargeStar("b", []string{"d", "a", "c", "c", "b"})
	want := [][2]string{{"c", "a"}, {"d", "a"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LargeStar = %v, want %v", got, want)
	}
	// A local minimum links all its neighbours to itself.
	if got := LargeStar("a", []string{"c", "b"}); fmt.Sprint(got) != fmt.Sprint([][2]string{{"b", "a"}, {"c", "a"}}) {
		t.Errorf("LargeStar at minimum = %v", got)
	}
	// A local maximum emits nothing.
	if got := LargeStar("z", []string{"a", "b"}); got != nil {
		t.Errorf("LargeStar at maximum = %v", got)
	}
	// Small-star at d with smaller neighbours b, a, c: d, b and c are
	// linked to a; larger neighbours are ignored.
	got = SmallStar("d", []string{"b", "a", "c", "b", "e"})
	want = [][2]string{{"d", "a"}, {"b", "a"}, {"c", "a"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SmallStar = %v, want %v", got, want)
	}
	if got := SmallStar("a", []string{"b"}); got != nil {
		t.Errorf("SmallStar without smaller neighbours = %v", got)
	}
}

func TestConverged(t *testing.T) {
	for _, tc := range []struct {
		edges [][2]string
		want  bool
	}{
		{nil, true},
		{[][2]string{{"b", "a"}, {"c", "a"}}, true},
		{[][2]string{{"b", "a"}, {"c", "b"}}, false},             // depth 2
		{[][2]string{{"c", "a"}, {"c", "b"}}, false},             // two parents
		{[][2]string{{"c", "a"}, {"c", "a"}, {"d", "a"}}, true},  // repeats
		{[][2]string{{"b", "a"}, {"y", "x"}, {"z", "x"}}, true},  // two stars
		{[][2]string{{"b", "a"}, {"y", "x"}, {"x", "b"}}, false}, // x both
	} {
		if got := Converged(tc.edges); got != tc.want {
			t.Errorf("Converged(%v) = %v", tc.edges, got)
		}
	}
	if !maps.Equal(Labels([][2]string{{"b", "a"}, {"c", "a"}}), map[string]string{"a": "a", "b": "a", "c": "a"}) {
		t.Errorf("Labels wrong")
	}
}
