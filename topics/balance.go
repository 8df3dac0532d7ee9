package topics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// BalanceConfig sets topic balancing.
type BalanceConfig struct {
	// Mode is "cap" (keep at most Cap samples per topic), "uniform"
	// (toward equal topic sizes) or "temperature" (toward sizes
	// proportional to n_i^(1/Temperature): 1 keeps the mix, larger values
	// flatten it, ∞ is uniform).
	Mode        string  `json:"mode"`
	Cap         int64   `json:"cap"`
	Temperature float64 `json:"temperature"`
	// Total is the number of samples to keep in the resampling modes;
	// when 0, Fraction (in (0, 1]) of the input. A topic never gets more
	// than it has (or than Cap, when set): what it cannot take goes to
	// the others (water-filling).
	Total    int64   `json:"total"`
	Fraction float64 `json:"fraction"`
	// Seed makes the per-sample choice.
	Seed uint64 `json:"seed"`
}

// Plan is a balancing decision: each topic's target and the hash limit
// under which a sample of that topic is kept. A sample's fate depends
// only on its id, its topic and the plan, so samples are decided in
// parallel with the plan as a side input.
//
// The limits start probabilistic: a topic of n samples with target m
// keeps each sample with probability m/n (binomial count, mean m). After
// Exact, they are the m-th smallest hash of the topic's samples, and
// exactly m samples are kept (samples with equal ids share a fate).
type Plan struct {
	Seed    uint64  `json:"seed"`
	Counts  []int64 `json:"counts"`
	Targets []int64 `json:"targets"`
	// Limits: a sample is kept when its SampleHash ≤ Limits[topic]; All
	// marks topics kept whole, None topics dropped whole.
	Limits []uint64 `json:"limits"`
	All    []bool   `json:"all"`
	None   []bool   `json:"none"`
	// Exact reports whether Exact set the limits.
	IsExact bool `json:"exact"`
}

// NewPlan computes the targets from the topic sizes and sets
// probabilistic limits.
func NewPlan(counts []int64, cfg BalanceConfig) (*Plan, error) {
	k := len(counts)
	for t, n := range counts {
		if n < 0 {
			return nil, fmt.Errorf("balance: topic %d has %d samples", t, n)
		}
	}
	var sum int64
	for _, n := range counts {
		sum += n
	}
	limit := slices.Clone(counts)
	if cfg.Cap > 0 {
		for t := range limit {
			limit[t] = min(limit[t], cfg.Cap)
		}
	}
	var targets []int64
	switch cfg.Mode {
	case "cap":
		if cfg.Cap <= 0 {
			return nil, fmt.Errorf("balance: mode cap needs cap > 0")
		}
		targets = limit
	case "uniform", "temperature":
		w := make([]float64, k)
		for t, n := range counts {
			switch {
			case n == 0:
			case cfg.Mode == "uniform":
				w[t] = 1
			default:
				if !(cfg.Temperature > 0) {
					return nil, fmt.Errorf("balance: temperature %v must be positive", cfg.Temperature)
				}
				w[t] = math.Pow(float64(n), 1/cfg.Temperature)
			}
		}
		total := cfg.Total
		if total <= 0 {
			if !(cfg.Fraction > 0 && cfg.Fraction <= 1) {
				return nil, fmt.Errorf("balance: mode %s needs total > 0 or fraction in (0, 1]", cfg.Mode)
			}
			total = int64(math.Round(cfg.Fraction * float64(sum)))
		}
		targets = waterFill(w, limit, total)
	default:
		return nil, fmt.Errorf("balance: mode %q: want cap, uniform or temperature", cfg.Mode)
	}
	p := &Plan{Seed: cfg.Seed, Counts: slices.Clone(counts), Targets: targets,
		Limits: make([]uint64, k), All: make([]bool, k), None: make([]bool, k)}
	for t := range k {
		switch {
		case targets[t] >= counts[t]:
			p.All[t] = true
		case targets[t] == 0:
			p.None[t] = true
		default:
			frac := float64(targets[t]) / float64(counts[t])
			if l := math.Ldexp(frac, 64); l < math.Ldexp(1, 64) {
				p.Limits[t] = uint64(l)
			} else {
				p.Limits[t] = math.MaxUint64
			}
		}
	}
	return p, nil
}

// waterFill splits total among topics in proportion to w, no topic
// above its limit: targets are min(limit, λ·w) with λ set so they sum to
// total (or to the sum of limits, if smaller), rounded to integers by
// largest remainder (ties: lower topic).
func waterFill(w []float64, limit []int64, total int64) []int64 {
	k := len(w)
	out := make([]int64, k)
	var capSum int64
	for t := range k {
		if w[t] > 0 {
			capSum += limit[t]
		}
	}
	if total >= capSum {
		for t := range k {
			if w[t] > 0 {
				out[t] = limit[t]
			}
		}
		return out
	}
	// Topics by the λ at which they saturate, limit/w ascending.
	idx := []int{}
	for t := range k {
		if w[t] > 0 {
			idx = append(idx, t)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(float64(limit[a])/w[a], float64(limit[b])/w[b]), cmp.Compare(a, b))
	})
	left := float64(total)
	var wLeft float64
	for _, t := range idx {
		wLeft += w[t]
	}
	share := make([]float64, k)
	for i, t := range idx {
		lam := left / wLeft
		if float64(limit[t]) <= lam*w[t] {
			share[t] = float64(limit[t])
			left -= share[t]
			wLeft -= w[t]
			continue
		}
		for _, u := range idx[i:] {
			share[u] = lam * w[u]
		}
		break
	}
	var got int64
	for t := range k {
		out[t] = min(int64(math.Floor(share[t]+1e-9)), limit[t])
		got += out[t]
	}
	rem := idx[:0:0]
	for _, t := range idx {
		if out[t] < limit[t] {
			rem = append(rem, t)
		}
	}
	slices.SortStableFunc(rem, func(a, b int) int {
		fa, fb := share[a]-float64(out[a]), share[b]-float64(out[b])
		return cmp.Or(cmp.Compare(fb, fa), cmp.Compare(a, b))
	})
	for i := 0; got < total && len(rem) > 0; i = (i + 1) % len(rem) {
		t := rem[i]
		if out[t] < limit[t] {
			out[t]++
			got++
		}
	}
	return out
}

// Hash is the sample's hash under the plan's seed.
func (p *Plan) Hash(id string) uint64 { return SampleHash(id, p.Seed) }

// Keep reports whether the sample of this id and topic is kept.
func (p *Plan) Keep(id string, topic int32) bool {
	t := int(topic)
	if t < 0 || t >= len(p.Targets) {
		return true // not a topic of the plan: nothing to balance
	}
	switch {
	case p.All[t]:
		return true
	case p.None[t]:
		return false
	}
	return p.Hash(id) <= p.Limits[t]
}

// Exact sets exact limits from each topic's smallest hashes: smallest[t]
// must hold (at least) the Targets[t] smallest Hash values of topic t's
// samples, in any order (a bottom-k combine gathers them). Afterwards
// Keep keeps exactly Targets[t] samples of each topic.
func (p *Plan) Exact(smallest [][]uint64) error {
	if len(smallest) != len(p.Targets) {
		return fmt.Errorf("balance: %d hash lists for %d topics", len(smallest), len(p.Targets))
	}
	for t, hs := range smallest {
		if p.All[t] || p.None[t] {
			continue
		}
		m := int(p.Targets[t])
		if len(hs) < m {
			return fmt.Errorf("balance: topic %d: %d hashes for a target of %d", t, len(hs), m)
		}
		s := slices.Clone(hs)
		slices.Sort(s)
		p.Limits[t] = s[m-1]
	}
	p.IsExact = true
	return nil
}
