package pipelines

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/transforms"
)

func TestMixTargetsWithinOneSample(t *testing.T) {
	for _, tc := range []struct {
		w     []float64
		avail []int64
		caps  []int64
	}{
		{[]float64{0.7, 0.3}, []int64{100, 40}, nil},
		{[]float64{1, 1, 1}, []int64{10, 1000, 7}, nil},
		{[]float64{0.5, 0.25, 0.25}, []int64{1000, 1000, 1000}, []int64{0, 0, 100}},
		{[]float64{0.2, 0.8}, []int64{3, 1_000_000}, nil},
	} {
		cfg := transforms.MixConfig{Seed: "s"}
		avail := map[string]int64{}
		var wsum float64
		for i, w := range tc.w {
			src := fmt.Sprint("s", i)
			ms := transforms.MixSource{Source: src, Weight: w}
			if tc.caps != nil {
				ms.MaxSamples = tc.caps[i]
			}
			cfg.Sources = append(cfg.Sources, ms)
			avail[src] = tc.avail[i]
			wsum += w
		}
		ts := transforms.Targets(cfg, avail)
		var n int64
		for _, x := range ts {
			n += x.Target
		}
		for i, x := range ts {
			limit := tc.avail[i]
			if tc.caps != nil && tc.caps[i] > 0 && tc.caps[i] < limit {
				limit = tc.caps[i]
			}
			if x.Target > limit {
				t.Errorf("%v: %s target %d over what is available (%d)", tc, x.Source, x.Target, limit)
			}
			if want := tc.w[i] / wsum * float64(n); math.Abs(float64(x.Target)-want) >= 1 {
				t.Errorf("%v: %s target %d, share of %d is %.2f", tc, x.Source, x.Target, n, want)
			}
		}
	}
}

func TestMixAchievesProportionsDeterministically(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, `{"prompt":"%s question %d","completion":"answer %d"}`+"\n", name, i, i)
		}
		os.WriteFile(filepath.Join(dir, name+".jsonl"), []byte(b.String()), 0o644)
	}
	write("a", 100)
	write("b", 40)
	yaml := "name: m\nsources:\n  - {name: a, path: a.jsonl, weight: 0.7}\n  - {name: b, path: b.jsonl, weight: 0.3}\noutput: {shards: 2}\n"
	store := filepath.Join(dir, "store")
	res := runRecipe(t, dir, yaml, store)
	m := res.Manifest
	// N = min(100/0.7, 40/0.3) = 133: a 93.1 → 93, b 39.9 → 40 by the
	// larger fraction.
	if len(m.Mix) != 2 || m.Mix[0].Target != 93 || m.Mix[0].Achieved != 93 || m.Mix[1].Target != 40 || m.Mix[1].Achieved != 40 {
		t.Fatalf("mix = %+v", m.Mix)
	}
	last := m.Funnel.Stages[len(m.Funnel.Stages)-1]
	if last.Stage != "mix" || last.Dropped[0].Count != 7 || m.Funnel.Written != 133 {
		t.Errorf("funnel = %+v", m.Funnel)
	}
	again := runRecipeOpt(t, dir, yaml, Options{Store: store, Force: true})
	for i, sp := range m.Splits {
		for j, sh := range sp.Shards {
			if again.Manifest.Splits[i].Shards[j].SHA256 != sh.SHA256 {
				t.Errorf("%s differs on rerun", sh.Path)
			}
		}
	}
}
