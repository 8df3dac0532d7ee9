package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// TestCollectAnyParallelism: Collect reads the shards on several
// goroutines and merges their parts; the report's data are the same with
// one goroutine and with several, and the bounded row sample is exactly
// the rows of smallest hash over all shards (computed here from every
// row, read back with the plain shard reader), with sizes that make both
// shards' parts compete for it.
func TestCollectAnyParallelism(t *testing.T) {
	for _, withTopics := range []bool{true, false} {
		dir := t.TempDir()
		man := testVersion(t, dir, 40, withTopics, 3)
		opt := Options{Rows: 37, Examples: 2}
		prev := runtime.GOMAXPROCS(1)
		one, err := Collect(context.Background(), dir, opt)
		runtime.GOMAXPROCS(4)
		four, err4 := Collect(context.Background(), dir, opt)
		runtime.GOMAXPROCS(prev)
		if err != nil || err4 != nil {
			t.Fatal(err, err4)
		}
		if !reflect.DeepEqual(one, four) {
			t.Fatalf("topics %v: Collect differs between 1 and 4 goroutines", withTopics)
		}
		// Independently: every row's key, hash and assistant length.
		type r struct {
			hash uint64
			key  string
			alen float64
		}
		var all []r
		for _, sh := range man.Splits[0].Shards {
			data, err := os.ReadFile(filepath.Join(dir, sh.Path))
			if err != nil {
				t.Fatal(err)
			}
			ss, err := datasets.ReadShard(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for i := range ss {
				k := rowKey(&ss[i])
				n := 0
				for _, m := range ss[i].Messages {
					if m.Role == datasets.RoleAssistant {
						n += utf8.RuneCountInString(m.Content)
					}
				}
				all = append(all, r{hash64(k), k, float64(n)})
			}
		}
		if one.Rows != int64(len(all)) {
			t.Fatalf("Rows = %d, want %d", one.Rows, len(all))
		}
		slices.SortFunc(all, func(a, b r) int {
			if a.hash != b.hash {
				if a.hash < b.hash {
					return -1
				}
				return 1
			}
			return 0
		})
		var want []float64
		for _, x := range all[:opt.Rows] {
			want = append(want, x.alen)
		}
		slices.Sort(want)
		var got []float64
		for _, l := range one.Lengths {
			if l.Role == datasets.RoleAssistant {
				got = l.Sample
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("topics %v: assistant lengths of the row sample %v, want those of the %d rows of smallest hash %v", withTopics, got, opt.Rows, want)
		}
	}
}
