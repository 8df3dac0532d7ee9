// Command gen writes a synthetic chat dataset for sieve's benchmarks: n
// JSONL records in the OpenAI messages format, about 1.5 KB each, with a
// fraction of planted exact duplicates (see package chatgen).
//
//	go run ./bench/gen -n 200000 -dup 0.05 -seed 1 -o /tmp/x.jsonl
//
// It prints a one-line JSON summary to stderr.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sieve-data/sieve/bench/chatgen"
)

func main() {
	n := flag.Int("n", 200000, "number of records")
	dup := flag.Float64("dup", 0.05, "fraction of records that are planted exact duplicates of earlier ones")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("o", "-", "output file (- for stdout)")
	flag.Parse()
	if err := run(*n, *dup, *seed, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(n int, dup float64, seed uint64, out string) (err error) {
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	start := time.Now()
	st, err := chatgen.Generate(w, chatgen.Config{N: n, Dup: dup, Seed: seed})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	line, _ := json.Marshal(struct {
		chatgen.Stats
		Seed       uint64  `json:"seed"`
		AvgBytes   float64 `json:"avg_bytes"`
		Seconds    float64 `json:"seconds"`
		Output     string  `json:"output"`
		UniqueKeys int64   `json:"unique_after_exact_dedup"`
	}{st, seed, float64(st.Bytes) / float64(max(st.Records, 1)), secs, out, st.Records - st.PlantedDups})
	fmt.Fprintln(os.Stderr, string(line))
	return nil
}
