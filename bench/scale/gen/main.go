// Command gen writes the realistic corpus of sieve's scale benchmark
// (package bench/scale/corpus): real alpaca_eval answers reused under many
// prompt variants, in OpenAI messages JSONL, deterministic for a seed.
//
//	go run ./bench/scale/gen -n 1000000 -out /tmp/scale/alpaca.jsonl
//
// writes /tmp/scale/alpaca-00000-of-00004.jsonl … (one file per -per-file
// samples; exactly -out when one file is enough; .zst or .gz after .jsonl
// compresses) and prints one JSON line of stats (samples, variants,
// bytes, files, after_exact: the samples exact dedup keeps). It needs
// ../shared/data/alpaca_eval (or -data) and exits 1 with one line saying
// so when it is absent.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
	"github.com/sieve-data/sieve/bench/scale/corpus"
)

func main() {
	var (
		cfg  corpus.Config
		n    int
		out  string
		data string
	)
	flag.IntVar(&n, "n", 100000, "number of samples")
	flag.StringVar(&out, "out", "", "output path, e.g. DIR/alpaca.jsonl (.jsonl.zst or .jsonl.gz compress); several files get -KKKKK-of-FFFFF before the extension")
	flag.StringVar(&data, "data", "", "folder of alpaca_eval JSON arrays (default: ../shared/data/alpaca_eval from the module root)")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed")
	flag.IntVar(&cfg.PerFile, "per-file", 250000, "samples per file")
	flag.Float64Var(&cfg.VariantFrac, "variants", 0.9, "fraction of samples whose prompt is a variant")
	flag.IntVar(&cfg.AlpacaEvery, "alpaca-every", 0, "write every K-th file in alpaca format (0: all OpenAI messages)")
	flag.IntVar(&cfg.Workers, "workers", 0, "files written at once (default GOMAXPROCS)")
	flag.Parse()
	if out == "" || n < 1 {
		fmt.Fprintln(os.Stderr, "gen: want -out PATH and -n > 0")
		os.Exit(2)
	}
	if data == "" {
		root, err := benchenv.ModuleRoot()
		if err != nil {
			fatal(err)
		}
		data = corpus.DataDir(root)
	}
	recs, err := corpus.Load(data)
	if err != nil {
		fatal(err)
	}
	g, err := corpus.NewGenerator(recs, cfg)
	if err != nil {
		fatal(err)
	}
	st, err := g.Generate(out, n)
	if err != nil {
		fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(st); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
