package dedup

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestEdgeSetExactBelowCapacity: below its largest size the set never
// forgets: every distinct key is new once and a repeat never is, across
// many doublings, with keys whose low bits (the slot) collide too.
func TestEdgeSetExactBelowCapacity(t *testing.T) {
	var s edgeSet
	r := rand.New(rand.NewPCG(1, 2))
	var keys []edgeKey
	for i := range 1 << 20 {
		k := edgeKey{r.Uint64(), r.Uint64()}
		if i%7 == 0 {
			k[0] &^= 0xf // crowd some sets: overflows before half full
		}
		keys = append(keys, k)
		if !s.add(k) {
			t.Fatalf("key %d reported present", i)
		}
		if j := r.IntN(i + 1); s.add(keys[j]) {
			t.Fatalf("repeat of key %d (after %d keys) reported new; %d slots, %d held", j, i+1, len(s.keys), s.n)
		}
	}
	if s.n != len(keys) {
		t.Fatalf("holds %d keys, added %d", s.n, len(keys))
	}
	for i, k := range keys {
		if s.add(k) {
			t.Fatalf("key %d forgotten", i)
		}
	}
}

// TestEdgeSetBounded: at its largest size the set empties rather than
// grows, and reports a forgotten key new again (never the opposite).
func TestEdgeSetBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 128 MiB")
	}
	var s edgeSet
	r := rand.New(rand.NewPCG(3, 4))
	n := edgeSetMaxSlots * 3 / 4
	for i := range n {
		if !s.add(edgeKey{r.Uint64(), r.Uint64()}) {
			t.Fatalf("fresh key %d reported present", i)
		}
	}
	if len(s.keys) != edgeSetMaxSlots || s.n > edgeSetMaxSlots/2 {
		t.Fatalf("table has %d slots and %d keys, bound %d slots", len(s.keys), s.n, edgeSetMaxSlots)
	}
}

// TestCandidatesEmitEachEdgeOnce: across many buckets sharing members (a
// sample's bands), every distinct candidate edge is emitted exactly once.
func TestCandidatesEmitEachEdgeOnce(t *testing.T) {
	c := Candidates{Policy: EdgesLinear}
	emitted := map[[2]string]int{}
	made := map[[2]string]bool{}
	emit := func(a, b string) error { emitted[[2]string{a, b}]++; return nil }
	for g := range 100000 {
		bucket := []string{fmt.Sprintf("n%06d", g), fmt.Sprintf("n%06d", g+1), fmt.Sprintf("n%06d", g+2)}
		BucketEdges(len(bucket), EdgesLinear, 0, func(a, b int) { made[[2]string{bucket[a], bucket[b]}] = true })
		for range 2 { // the same bucket in another band
			if _, err := c.Bucket(bucket, emit); err != nil {
				t.Fatal(err)
			}
		}
	}
	for e := range made {
		if emitted[e] != 1 {
			t.Fatalf("edge %v emitted %d times", e, emitted[e])
		}
	}
	if len(emitted) != len(made) {
		t.Fatalf("%d edges emitted, %d made", len(emitted), len(made))
	}
}
