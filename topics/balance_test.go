package topics

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// idsPerTopic makes counts[t] distinct ids for each topic.
func idsPerTopic(counts []int64) [][]string {
	out := make([][]string, len(counts))
	for t, n := range counts {
		for i := range n {
			out[t] = append(out[t], fmt.Sprintf("topic%d-sample%06d", t, i))
		}
	}
	return out
}

func keptPerTopic(p *Plan, ids [][]string) []int64 {
	out := make([]int64, len(ids))
	for t, list := range ids {
		for _, id := range list {
			if p.Keep(id, int32(t)) {
				out[t]++
			}
		}
	}
	return out
}

func smallestHashes(p *Plan, ids [][]string) [][]uint64 {
	out := make([][]uint64, len(ids))
	for t, list := range ids {
		for _, id := range list {
			out[t] = append(out[t], p.Hash(id))
		}
		slices.Sort(out[t])
		out[t] = out[t][:min(len(out[t]), int(p.Targets[t]))]
	}
	return out
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func TestBalanceTargets(t *testing.T) {
	counts := []int64{20000, 8000, 2000, 300, 0}
	for _, tc := range []struct {
		cfg  BalanceConfig
		want []int64
	}{
		{BalanceConfig{Mode: "cap", Cap: 1000}, []int64{1000, 1000, 1000, 300, 0}},
		// Uniform over 6000: the 300 topic is kept whole, the rest share
		// 5700 equally.
		{BalanceConfig{Mode: "uniform", Total: 6000}, []int64{1900, 1900, 1900, 300, 0}},
		// Temperature 2: sizes ∝ √n, below each topic's size.
		{BalanceConfig{Mode: "temperature", Temperature: 2, Fraction: 0.25}, nil},
		// Temperature 1 keeps the mix.
		{BalanceConfig{Mode: "temperature", Temperature: 1, Total: 3030}, []int64{2000, 800, 200, 30, 0}},
		// A total above what there is keeps everything.
		{BalanceConfig{Mode: "uniform", Total: 1 << 40}, []int64{20000, 8000, 2000, 300, 0}},
		// Uniform with a cap.
		{BalanceConfig{Mode: "uniform", Total: 6000, Cap: 1500}, []int64{1500, 1500, 1500, 300, 0}},
	} {
		p, err := NewPlan(counts, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want != nil && !slices.Equal(p.Targets, tc.want) {
			t.Fatalf("%+v: targets %v, want %v", tc.cfg, p.Targets, tc.want)
		}
		if tc.cfg.Mode == "temperature" && tc.cfg.Temperature == 2 {
			total := int64(math.Round(0.25 * float64(sum(counts))))
			if sum(p.Targets) != total {
				t.Fatalf("targets %v sum to %d, want %d", p.Targets, sum(p.Targets), total)
			}
			// ∝ √n among the unsaturated topics: ratio of the two largest.
			r := float64(p.Targets[0]) / float64(p.Targets[1])
			if math.Abs(r-math.Sqrt(20000.0/8000)) > 0.01 {
				t.Fatalf("targets %v: ratio %.4f, want √2.5", p.Targets, r)
			}
		}
	}
	for _, bad := range []BalanceConfig{{Mode: "cap"}, {Mode: "uniform"}, {Mode: "temperature", Total: 5},
		{Mode: "zipf", Total: 5}, {Mode: "uniform", Fraction: 1.5}} {
		if _, err := NewPlan(counts, bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

func TestBalanceKeepHitsTargets(t *testing.T) {
	counts := []int64{20000, 8000, 2000, 300}
	ids := idsPerTopic(counts)
	for _, cfg := range []BalanceConfig{
		{Mode: "uniform", Total: 6000, Seed: 1},
		{Mode: "temperature", Temperature: 3, Fraction: 0.3, Seed: 2},
		{Mode: "cap", Cap: 1000, Seed: 3},
	} {
		p, err := NewPlan(counts, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Per sample, with only the counts: binomial around the target.
		got := keptPerTopic(p, ids)
		for tp := range counts {
			m, n := float64(p.Targets[tp]), float64(counts[tp])
			sd := math.Sqrt(m * (1 - m/n))
			if math.Abs(float64(got[tp])-m) > 4*sd+0.5 {
				t.Fatalf("%+v: topic %d kept %d, target %.0f ± %.1f", cfg, tp, got[tp], m, sd)
			}
		}
		t.Logf("%s: targets %v, kept per sample %v", cfg.Mode, p.Targets, got)
		// Exact, from each topic's smallest hashes.
		if err := p.Exact(smallestHashes(p, ids)); err != nil {
			t.Fatal(err)
		}
		if got := keptPerTopic(p, ids); !slices.Equal(got, p.Targets) {
			t.Fatalf("%+v exact: kept %v, targets %v", cfg, got, p.Targets)
		}
	}
	// Another seed keeps other samples.
	p1, _ := NewPlan(counts, BalanceConfig{Mode: "cap", Cap: 100, Seed: 1})
	p2, _ := NewPlan(counts, BalanceConfig{Mode: "cap", Cap: 100, Seed: 2})
	same := 0
	for _, id := range ids[0] {
		if p1.Keep(id, 0) && p2.Keep(id, 0) {
			same++
		}
	}
	if same > 10 {
		t.Fatalf("seeds 1 and 2 agree on %d of ~100 kept", same)
	}
	// A topic the plan does not know is kept.
	if !p1.Keep("x", 99) {
		t.Fatal("unknown topic dropped")
	}
}
