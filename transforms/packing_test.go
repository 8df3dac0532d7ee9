package transforms

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/dedup"
)

type keyNode struct {
	key  uint64
	node string
}

// TestPackPairsRoundTrip: unpackPairs gives back the pairs packPair
// appended, in order (empty and long nodes, keys of every width); a pack
// cut short or with a length past its end is an error.
func TestPackPairsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	in := []keyNode{{0, ""}, {^uint64(0), "x"}, {1 << 63, strings.Repeat("n", 300)}}
	for i := 0; i < 500; i++ {
		in = append(in, keyNode{rng.Uint64() >> rng.IntN(64), fmt.Sprintf("node\x00%d\x01%s", i, strings.Repeat("z", rng.IntN(200)))})
	}
	var b []byte
	var ends []int
	for _, p := range in {
		b = packPair(b, p.key, p.node)
		ends = append(ends, len(b))
	}
	var got []keyNode
	if err := unpackPairs(b, func(k uint64, n string) { got = append(got, keyNode{k, n}) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, in) {
		t.Fatalf("round trip: %d pairs back of %d, or different", len(got), len(in))
	}
	if err := unpackPairs(nil, func(uint64, string) { t.Error("pair from an empty pack") }); err != nil {
		t.Errorf("empty pack: %v", err)
	}
	// Every cut that is not a pair boundary is an error; cuts at pair
	// boundaries give the pairs before them.
	for cut := 1; cut < ends[5]; cut++ {
		n := 0
		err := unpackPairs(b[:cut], func(uint64, string) { n++ })
		boundary := slices.Index(ends, cut)
		switch {
		case boundary >= 0 && (err != nil || n != boundary+1):
			t.Errorf("cut at pair boundary %d: %d pairs, err %v", cut, n, err)
		case boundary < 0 && err == nil:
			t.Errorf("pack cut at byte %d: no error", cut)
		case boundary < 0:
			prev := 0
			if n > 0 {
				prev = ends[n-1]
			}
			want := "bad length"
			if cut-prev < 9 {
				want = "truncated" // inside the key or before the length
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("pack cut at byte %d after %d pairs: %v, want %q", cut, n, err, want)
			}
		}
	}
	// A node length past the end of the pack; a length that overflows.
	bad := packPair(nil, 7, "abc")
	bad[8] = 4
	if err := unpackPairs(bad, func(uint64, string) {}); err == nil || !strings.Contains(err.Error(), "bad length") {
		t.Errorf("length past the end: %v", err)
	}
	over := append(make([]byte, 8), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'a')
	if err := unpackPairs(over, func(uint64, string) {}); err == nil {
		t.Error("length of 2^64-1: no error")
	}
	// A key without its length.
	if err := unpackPairs(make([]byte, 8), func(uint64, string) {}); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("key without a length: %v", err)
	}
}

// bucketEdgesOf runs bucketEdgesFn on packs of one band group and
// returns the edges it emits, in order.
func bucketEdgesOf(t *testing.T, edges string, packs [][]byte) []string {
	t.Helper()
	f := &bucketEdgesFn{Edges: edges, Max: 50, Stage: "test"}
	f.Setup()
	i := 0
	next := func(b *[]byte) bool {
		if i >= len(packs) {
			return false
		}
		*b = packs[i]
		i++
		return true
	}
	var out []string
	if err := f.ProcessElement(context.Background(), "7", next, func(a, b string) { out = append(out, a+" "+b) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBucketEdgesPackBoundaries: where the signer cuts its packs (bundle
// ends, maxPack) and the order packs arrive in do not change a band
// group's buckets: the same candidate edges, in the same order, as one
// pack. The edges are those of dedup.BucketEdges on each bucket's
// distinct sorted nodes, each edge once.
func TestBucketEdgesPackBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var pairs []keyNode
	for k := 0; k < 40; k++ {
		key := rng.Uint64()
		size := 1 + rng.IntN(30)
		if k%10 == 0 {
			size = 200 // more pairs than Max: "all" falls back to linear
		}
		for j := 0; j < size; j++ {
			pairs = append(pairs, keyNode{key, fmt.Sprintf("n%04d", rng.IntN(400))})
		}
	}
	// Some nodes repeated within a bucket (a sample in two bundles).
	for j := 0; j < 30; j++ {
		pairs = append(pairs, pairs[rng.IntN(len(pairs))])
	}
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })

	for _, policy := range []string{dedup.EdgesLinear, dedup.EdgesAll, dedup.EdgesStar} {
		// Reference: buckets by key, distinct sorted nodes, first
		// occurrence of each edge.
		byKey := map[uint64][]string{}
		for _, p := range pairs {
			byKey[p.key] = append(byKey[p.key], p.node)
		}
		keys := slices.Sorted(func(yield func(uint64) bool) {
			for k := range byKey {
				if !yield(k) {
					return
				}
			}
		})
		seen := map[string]bool{}
		var want []string
		for _, k := range keys {
			nodes := slices.Compact(slices.Sorted(slices.Values(byKey[k])))
			dedup.BucketEdges(len(nodes), policy, 50, func(a, b int) {
				e := nodes[a] + " " + nodes[b]
				if !seen[e] {
					seen[e] = true
					want = append(want, e)
				}
			})
		}
		var one []byte
		for _, p := range pairs {
			one = packPair(one, p.key, p.node)
		}
		got := bucketEdgesOf(t, policy, [][]byte{one})
		if !slices.Equal(got, want) {
			t.Fatalf("%s, one pack: %d edges, want %d", policy, len(got), len(want))
		}
		for trial := 0; trial < 5; trial++ {
			var packs [][]byte
			var cur []byte
			for _, p := range pairs {
				cur = packPair(cur, p.key, p.node)
				if rng.IntN(1+trial*20) == 0 {
					packs = append(packs, cur)
					cur = nil
				}
			}
			packs = append(packs, cur)
			rng.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
			if got := bucketEdgesOf(t, policy, packs); !slices.Equal(got, want) {
				t.Errorf("%s, %d packs: %d edges, want the %d of one pack", policy, len(packs), len(got), len(want))
			}
		}
	}
	// A bad pack fails the group.
	f := &bucketEdgesFn{Edges: dedup.EdgesLinear}
	f.Setup()
	bad := []byte{1, 2, 3}
	given := false
	err := f.ProcessElement(context.Background(), "9", func(b *[]byte) bool {
		if given {
			return false
		}
		*b, given = bad, true
		return true
	}, func(string, string) {})
	if err == nil || !strings.Contains(err.Error(), "band group 9") {
		t.Errorf("bad pack: %v", err)
	}
}
