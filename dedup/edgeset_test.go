package dedup

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// TestCandidatesRepeatedBucket: a bucket whose members were a bucket
// before (a cluster agreeing in another band) emits nothing again but
// counts its edges as BucketEdges made them; a bucket with one member
// more emits exactly the edges that are new.
func TestCandidatesRepeatedBucket(t *testing.T) {
	var nodes []string
	for i := range 1000 {
		nodes = append(nodes, fmt.Sprintf("n%04d", i))
	}
	c := Candidates{Policy: EdgesLinear}
	emitted := map[[2]string]int{}
	emit := func(a, b string) error { emitted[[2]string{a, b}]++; return nil }
	want := BucketEdges(len(nodes), EdgesLinear, 0, func(int, int) {})
	for band := range 20 {
		n, err := c.Bucket(nodes, emit)
		if err != nil || n != want {
			t.Fatalf("band %d: counted %d edges (%v), want %d", band, n, err, want)
		}
	}
	if len(emitted) != want {
		t.Fatalf("%d distinct edges, want %d", len(emitted), want)
	}
	more := append(slices.Clone(nodes), "n9999")
	fresh := map[[2]string]bool{}
	BucketEdges(len(more), EdgesLinear, 0, func(a, b int) {
		if e := [2]string{more[a], more[b]}; emitted[e] == 0 {
			fresh[e] = true
		}
	})
	before := len(emitted)
	if _, err := c.Bucket(more, emit); err != nil {
		t.Fatal(err)
	}
	if len(emitted)-before != len(fresh) {
		t.Fatalf("bucket with one member more emitted %d new edges, want %d", len(emitted)-before, len(fresh))
	}
	for e, k := range emitted {
		if k != 1 {
			t.Fatalf("edge %v emitted %d times", e, k)
		}
	}
}
