// Command gobench turns `go test -bench` output on stdin into one JSON
// object per benchmark result on stdout, in the bench format every sieve
// benchmark prints:
//
//	{"bench": "datasets/BenchmarkShardWrite", "value": 81.2, "unit": "MB/s", "ns_per_op": ..., "machine": "..."}
//
// Usage: go test -run '^$' -bench . ./datasets/ | go run ./bench/gobench
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	pkg := ""
	cpu := ""
	enc := json.NewEncoder(os.Stdout)
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
			fmt.Fprintln(os.Stderr, line)
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			out := map[string]any{"bench": pkg + "/" + f[0], "machine": fmt.Sprintf("%d cores, %s", runtime.NumCPU(), cpu)}
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				key := strings.NewReplacer("/", "_per_", "-", "_").Replace(f[i+1])
				out[key] = v
			}
			// The headline value: throughput when the benchmark sets bytes,
			// else ns/op.
			if v, ok := out["MB_per_s"]; ok {
				out["value"], out["unit"] = v, "MB/s"
			} else if v, ok := out["ns_per_op"]; ok {
				out["value"], out["unit"] = v, "ns/op"
			}
			enc.Encode(out)
		}
	}
	if failed {
		os.Exit(1)
	}
}
