package dedup

import (
	"fmt"
	"testing"
)

// TestClusterInMemory: buckets {a b c}, {c d}, {e f}; payloads make a–b,
// b–c and e–f similar but c–d not: clusters {a b c} and {e f} under
// exact verification, {a b c d} and {e f} without verification.
func TestClusterInMemory(t *testing.T) {
	same := EncodeSet([]uint32{1, 2, 3, 4})
	other := EncodeSet([]uint32{7, 8, 9})
	nodes := []Node{
		{Key: "a", Bands: []uint64{1}, Payload: same},
		{Key: "b", Bands: []uint64{1}, Payload: same},
		{Key: "c", Bands: []uint64{1, 2}, Payload: same},
		{Key: "d", Bands: []uint64{2}, Payload: other},
		{Key: "e", Bands: []uint64{3}, Payload: other},
		{Key: "f", Bands: []uint64{3}, Payload: other},
	}
	for _, tc := range []struct {
		verify string
		want   string
	}{
		{VerifyExact, "map[a:a b:a c:a e:e f:e]"},
		{VerifyNone, "map[a:a b:a c:a d:a e:e f:e]"},
	} {
		var verified int
		res, err := ClusterInMemory(nodes, ClusterConfig{Threshold: 0.7, Verify: tc.verify, OnVerified: func(string, string) { verified++ }})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(res.Roots); got != tc.want {
			t.Errorf("%s: roots %s, want %s", tc.verify, got, tc.want)
		}
		if len(res.Candidates) != 5 || verified != res.Verified {
			t.Errorf("%s: candidates %v, verified %d (stats %d)", tc.verify, res.Candidates, verified, res.Verified)
		}
	}
}
