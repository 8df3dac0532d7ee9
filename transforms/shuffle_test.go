package transforms

import (
	"encoding/json"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
)

func init() {
	register.Function2x0(kvPair)
	register.Function1x1(shuffleLineBytes)
	register.Function2x1(countGroup)
}

type kv struct{ K, V string }

func kvPair(x kv, emit func(string, string)) { emit(x.K, x.V) }

// shuffleLineBytes is the byte count of a "shuffle" report line for the
// grouping "g" (0 for other lines).
func shuffleLineBytes(line string) int {
	var r Report
	if json.Unmarshal([]byte(line), &r) != nil || r.Kind != "shuffle" {
		return 0
	}
	return int(r.Counts["g"])
}

func countGroup(k string, vs func(*string) bool) int {
	n := 0
	var v string
	for vs(&v) {
		n++
	}
	return n
}

// TestShuffleMeterCounts: the meter's GroupByKey groups as
// beam.GroupByKey does and reports the bytes of the keys and values it
// took in (here 3 pairs of 2+3 bytes and one of 2+10), whatever the
// bundling; ShuffleBytes sums the lines.
func TestShuffleMeterCounts(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	pairs := beam.ParDo(s, kvPair, beam.Create(s, kv{"k1", "abc"}, kv{"k1", "def"}, kv{"k2", "ghi"}, kv{"k3", "0123456789"}))
	m := &ShuffleMeter{}
	groups := m.GroupByKey(s, "g", pairs)
	passert.Equals(s, beam.ParDo(s, countGroup, groups), 2, 1, 1)
	total := stats.Sum(s, beam.ParDo(s, shuffleLineBytes, m.Reports(s)))
	passert.Equals(s, total, 3*(2+3)+2+10)
	ptest.RunAndValidate(t, p)

	n, ok := ShuffleBytes([]Report{{Kind: "shuffle", Counts: map[string]int64{"a": 10, "a.elements": 2, "b": 5}}, {Kind: "shard"}})
	if !ok || n != 15 {
		t.Fatalf("ShuffleBytes = %d, %v; want 15, true", n, ok)
	}
	if _, ok := ShuffleBytes(nil); ok {
		t.Fatal("ShuffleBytes of no lines reports a count")
	}
}
