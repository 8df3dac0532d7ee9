package transforms

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	// The meter's lines stay out of the run's report: they go to
	// ShuffleFile.
	dir := t.TempDir()
	WriteReport(s, dir, m.Reports(s), beam.Create(s, `{"kind":"input","counts":{"x":1}}`))
	ptest.RunAndValidate(t, p)

	rep, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(rep) != `{"kind":"input","counts":{"x":1}}`+"\n" {
		t.Errorf("%s holds %q; want the input line only", ReportFile, rep)
	}
	shuf, err := os.ReadFile(filepath.Join(dir, ShuffleFile))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := ReadReport(shuf)
	if err != nil {
		t.Fatal(err)
	}
	if n, by, ok := ShuffleBytes(lines); !ok || n != 27 || by["g"] != 27 {
		t.Errorf("%s: %d bytes (%v); want 27 under g", ShuffleFile, n, by)
	}

	n, by, ok := ShuffleBytes([]Report{{Kind: "shuffle", Counts: map[string]int64{"a": 10, "a.elements": 2, "b": 5}}, {Kind: "shard"}})
	if !ok || n != 15 || by["a"] != 10 || by["b"] != 5 || len(by) != 2 {
		t.Fatalf("ShuffleBytes = %d, %v, %v; want 15, a 10 b 5, true", n, by, ok)
	}
	if _, _, ok := ShuffleBytes(nil); ok {
		t.Fatal("ShuffleBytes of no lines reports a count")
	}
}
