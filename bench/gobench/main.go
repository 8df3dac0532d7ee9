// Command gobench turns `go test -bench` output on stdin into one JSON
// object per benchmark on stdout, in the bench format every sieve
// benchmark prints:
//
//	{"bench": "datasets/BenchmarkShardWrite", "value": 81.2, "unit": "MB/s", "ns_per_op": ..., "runs": 5, "machine": "..."}
//
// Run the benchmarks with -count N (and the default -benchtime): each
// metric is then the median of the N results, and value_min/value_max
// give the headline's spread.
//
// Usage: go test -run '^$' -bench . -count 5 ./datasets/ | go run ./bench/gobench
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

func main() {
	results, failed := parse(os.Stdin, os.Stderr)
	enc := json.NewEncoder(os.Stdout)
	for _, r := range results {
		enc.Encode(r.summary())
	}
	if failed {
		os.Exit(1)
	}
}

// bench is every result of one benchmark (one line per -count).
type bench struct {
	name, machine string
	metrics       map[string][]float64
	units         []string // in first-seen order
	runs          int
}

// parse reads `go test -bench` output and returns the benchmarks in the
// order first seen, and whether a test or benchmark failed.
func parse(r io.Reader, errs io.Writer) ([]*bench, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg, cpu := "", ""
	byName := map[string]*bench{}
	var order []*bench
	failed := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			pkg = pkg[strings.LastIndexByte(pkg, '/')+1:]
		case strings.HasPrefix(line, "cpu: "):
			cpu = strings.TrimPrefix(line, "cpu: ")
		case strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "--- FAIL"):
			failed = true
			fmt.Fprintln(errs, line)
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			name := pkg + "/" + f[0]
			b := byName[name]
			if b == nil {
				b = &bench{name: name, machine: fmt.Sprintf("%d cores, %s", runtime.NumCPU(), cpu), metrics: map[string][]float64{}}
				byName[name] = b
				order = append(order, b)
			}
			b.runs++
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				key := strings.NewReplacer("/", "_per_", "-", "_").Replace(f[i+1])
				if _, ok := b.metrics[key]; !ok {
					b.units = append(b.units, key)
				}
				b.metrics[key] = append(b.metrics[key], v)
			}
		}
	}
	return order, failed
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary is the benchmark's JSON object: the median of every metric
// over its runs, and the headline: throughput when the benchmark sets
// bytes or reports tokens/s, else ns/op.
func (b *bench) summary() map[string]any {
	out := map[string]any{"bench": b.name, "machine": b.machine, "runs": b.runs}
	for _, k := range b.units {
		out[k] = median(b.metrics[k])
	}
	head := "ns_per_op"
	out["unit"] = "ns/op"
	for _, h := range [][2]string{{"MB_per_s", "MB/s"}, {"tokens_per_s", "tokens/s"}} {
		if _, ok := b.metrics[h[0]]; ok {
			head = h[0]
			out["unit"] = h[1]
		}
	}
	if xs, ok := b.metrics[head]; ok {
		out["value"] = median(xs)
		out["value_min"], out["value_max"] = slices.Min(xs), slices.Max(xs)
	}
	return out
}
