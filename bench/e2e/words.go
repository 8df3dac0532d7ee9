package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/sieve-data/sieve/bench/chatgen"
)

// generateWords writes n chat records whose texts are drawn word by word
// from a Zipf distribution over a large synthetic vocabulary, so that
// unrelated records share almost no 5-gram (unlike chatgen, whose records
// reuse whole sentences). A fraction dup of the records are near
// duplicates of earlier ones (about 5% of their words replaced), the
// workload fuzzy dedup exists for; it measures the pipeline at scale, not
// dedup quality (bench/dedupbench does that on realistic text).
func generateWords(path string, n int, dup float64, seed uint64) (chatgen.Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return chatgen.Stats{}, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 7))
	zipf := newZipf(rng, 50000, 1.1)
	word := func() string { return fmt.Sprintf("w%d", zipf()) }
	doc := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = word()
		}
		return out
	}
	var st chatgen.Stats
	type rec struct{ q, a []string }
	keep := make([]rec, 0, 1024)
	every := 0
	if dup > 0 {
		every = int(math.Round(1 / dup))
	}
	for i := 0; i < n; i++ {
		var r rec
		if every > 0 && i%every == every-1 && len(keep) > 0 {
			base := keep[rng.IntN(len(keep))]
			r = rec{append([]string(nil), base.q...), append([]string(nil), base.a...)}
			for j := range r.a {
				if rng.Float64() < 0.05 {
					r.a[j] = word()
				}
			}
			st.PlantedDups++
		} else {
			r = rec{doc(20 + rng.IntN(20)), doc(120 + rng.IntN(120))}
			if len(keep) < cap(keep) {
				keep = append(keep, r)
			} else {
				keep[rng.IntN(len(keep))] = r
			}
		}
		b, _ := json.Marshal(map[string]any{"messages": []map[string]string{
			{"role": "user", "content": join(r.q)}, {"role": "assistant", "content": join(r.a)}}})
		w.Write(append(b, '\n'))
		st.Records++
		st.Bytes += int64(len(b) + 1)
	}
	return st, w.Flush()
}

func join(ws []string) string {
	n := 0
	for _, w := range ws {
		n += len(w) + 1
	}
	b := make([]byte, 0, n)
	for i, w := range ws {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, w...)
	}
	return string(b)
}

// newZipf returns a sampler of ranks 1..n with P(k) ∝ k^-s.
func newZipf(rng *rand.Rand, n int, s float64) func() int {
	cdf := make([]float64, n)
	var sum float64
	for k := 1; k <= n; k++ {
		sum += math.Pow(float64(k), -s)
		cdf[k-1] = sum
	}
	return func() int {
		u := rng.Float64() * sum
		lo, hi := 0, n-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cdf[mid] < u {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo + 1
	}
}
