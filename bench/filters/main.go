// Command filters measures the throughput of sieve's rule-based filters
// on one core: it generates n realistic conversations with chatgen (2%
// of them with an e-mail address and a phone number in the user turn),
// then runs PII scrubbing and the default filter set (package filters) on
// each, single-threaded, timing only the filtering. It prints one JSON
// line in the bench format:
//
//	{"bench":"filters_throughput","value":12345,"unit":"samples/s/core",...}
//
// Usage: go run ./bench/filters [-n 1000000] [-seed 1]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/filters"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of samples")
	seed := flag.Uint64("seed", 1, "chatgen seed")
	piiFrac := flag.Float64("pii-frac", 0.02, "fraction of samples given an e-mail address and a phone number")
	batch := flag.Int("batch", 10_000, "samples generated (untimed) between timed runs")
	flag.Parse()
	if err := run(*n, *seed, *piiFrac, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "filters bench:", err)
		os.Exit(1)
	}
}

type result struct {
	Bench    string         `json:"bench"`
	Value    float64        `json:"value"`
	Unit     string         `json:"unit"`
	N        int            `json:"n"`
	Seconds  float64        `json:"seconds"`
	MBPerS   float64        `json:"mb_per_s"`
	Kept     int            `json:"kept"`
	Dropped  map[string]int `json:"dropped"`
	PII      map[string]int `json:"pii"`
	Filters  []string       `json:"filters"`
	Machine  string         `json:"machine"`
	GoMaxPro int            `json:"gomaxprocs"`
}

func run(n int, seed uint64, piiFrac float64, batch int) error {
	runtime.GOMAXPROCS(1) // one core, the garbage collector included
	fs, err := filters.New(filters.Config{})
	if err != nil {
		return err
	}
	sc, err := filters.NewScrubber(filters.PIIConfig{})
	if err != nil {
		return err
	}
	res := result{Bench: "filters_throughput", Unit: "samples/s/core", N: n, Dropped: map[string]int{}, PII: map[string]int{},
		Machine: fmt.Sprintf("%d cores, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH), GoMaxPro: runtime.GOMAXPROCS(0)}
	for _, f := range fs {
		res.Filters = append(res.Filters, f.Name())
	}
	cfg := chatgen.Config{N: n, Seed: seed}
	r := rand.New(rand.NewPCG(seed, 7))
	samples := make([]datasets.Sample, 0, batch)
	var elapsed time.Duration
	var bytes int64
	for start := 0; start < n; start += batch {
		samples = samples[:0]
		for i := start; i < min(start+batch, n); i++ {
			msgs, _ := chatgen.Record(cfg, i)
			s := datasets.Sample{Messages: make([]datasets.Message, len(msgs))}
			for k, m := range msgs {
				s.Messages[k] = datasets.Message{Role: m.Role, Content: m.Content}
				bytes += int64(len(m.Content))
			}
			if r.Float64() < piiFrac {
				for k := range s.Messages {
					if s.Messages[k].Role == datasets.RoleUser {
						s.Messages[k].Content += " You can reach me at jane.roe@gmail.com or +44 20 7946 0958."
						break
					}
				}
			}
			samples = append(samples, s)
		}
		t0 := time.Now()
		for i := range samples {
			s := &samples[i]
			for kind, c := range sc.Scrub(s) {
				res.PII[kind] += c
			}
			if v, keep := filters.CheckAll(fs, s); keep {
				res.Kept++
			} else {
				res.Dropped[v.Rule]++
			}
		}
		elapsed += time.Since(t0)
	}
	res.Seconds = elapsed.Seconds()
	res.Value = float64(n) / res.Seconds
	res.MBPerS = float64(bytes) / 1e6 / res.Seconds
	return json.NewEncoder(os.Stdout).Encode(res)
}
