package dedup

import (
	"fmt"
	"testing"
)

// TestCandidatesEmitEveryEdge: across many buckets that share members
// (as a sample's bands do), every distinct candidate edge is emitted at
// least once, a repeat right after its edge almost never is, and the memory of
// emitted edges grows past its first size without losing an edge.
func TestCandidatesEmitEveryEdge(t *testing.T) {
	c := Candidates{Policy: EdgesLinear}
	emitted := map[[2]string]int{}
	made := map[[2]string]bool{}
	again := 0
	total := 0
	emit := func(a, b string) error { emitted[[2]string{a, b}]++; total++; return nil }
	for g := 0; g < 40000; g++ {
		bucket := []string{fmt.Sprintf("n%06d", g), fmt.Sprintf("n%06d", g+1), fmt.Sprintf("n%06d", g+2)}
		BucketEdges(len(bucket), EdgesLinear, 0, func(a, b int) { made[[2]string{bucket[a], bucket[b]}] = true })
		if _, err := c.Bucket(bucket, emit); err != nil {
			t.Fatal(err)
		}
		// The same bucket again (another band): nothing new.
		before := len(emitted)
		n := total
		size := len(c.seen)
		c.Bucket(bucket, emit)
		if len(c.seen) != size {
			continue // it grew, forgetting: repeats are allowed then
		}
		m := total
		if len(emitted) != before {
			t.Fatalf("bucket %d: the repeat emitted a new edge", g)
		}
		if m != n {
			again++ // two of its edges took one slot
		}
	}
	if again > 400 {
		t.Fatalf("%d of 40000 repeated buckets were emitted again; want almost none", again)
	}
	for e := range made {
		if emitted[e] == 0 {
			t.Fatalf("edge %v never emitted", e)
		}
	}
	if len(c.seen) <= 1<<14 {
		t.Fatalf("memory of edges stayed at %d slots", len(c.seen))
	}
}
