package main

import (
	"io"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/sieve-data/sieve/datasets
cpu: Test CPU
BenchmarkDecodeOnly/scanner-2         	     100	  10000000 ns/op	  80.00 MB/s	 0 B/op	 0 allocs/op
BenchmarkDecodeOnly/encoding_json-2   	      30	  40000000 ns/op	  20.00 MB/s
BenchmarkDecodeOnly/scanner-2         	     100	  12000000 ns/op	  70.00 MB/s	 0 B/op	 0 allocs/op
BenchmarkDecodeOnly/encoding_json-2   	      30	  41000000 ns/op	  21.00 MB/s
BenchmarkDecodeOnly/scanner-2         	     100	   9000000 ns/op	  90.00 MB/s	 0 B/op	 0 allocs/op
BenchmarkDecodeOnly/encoding_json-2   	      30	  39000000 ns/op	  19.00 MB/s
BenchmarkDecodeOnly/scanner-2         	     100	  50000000 ns/op	  15.00 MB/s	 0 B/op	 0 allocs/op
BenchmarkDecodeOnly/encoding_json-2   	      30	  42000000 ns/op	  22.00 MB/s
BenchmarkDecodeOnly/scanner-2         	     100	  11000000 ns/op	  75.00 MB/s	 0 B/op	 0 allocs/op
BenchmarkDecodeOnly/encoding_json-2   	      30	  38000000 ns/op	  18.00 MB/s
pkg: github.com/sieve-data/sieve/dedup
BenchmarkSignature/fast-2   	 2	 4000 ns/op	 4.0 us/doc
BenchmarkSignature/fast-2   	 2	 6000 ns/op	 5.0 us/doc
pkg: github.com/sieve-data/sieve/train
BenchmarkGenerate/cache-2   	 5	 60000000 ns/op	 3700 tokens/s
BenchmarkGenerate/cache-2   	 5	 50000000 ns/op	 4100 tokens/s
BenchmarkGenerate/cache-2   	 5	 70000000 ns/op	 3000 tokens/s
PASS
`

// TestMedianOverCounts checks that -count runs of one benchmark become
// one result whose metrics are medians (an outlier run moves nothing).
func TestMedianOverCounts(t *testing.T) {
	rs, failed := parse(strings.NewReader(sample), io.Discard)
	if failed || len(rs) != 4 {
		t.Fatalf("failed %v, %d results", failed, len(rs))
	}
	s := rs[0].summary()
	if s["bench"] != "datasets/BenchmarkDecodeOnly/scanner-2" || s["runs"] != 5 || s["value"] != 75.0 || s["unit"] != "MB/s" ||
		s["ns_per_op"] != 11000000.0 || s["value_min"] != 15.0 || s["value_max"] != 90.0 {
		t.Errorf("scanner: %v", s)
	}
	if s := rs[1].summary(); s["value"] != 20.0 {
		t.Errorf("encoding_json: %v", s)
	}
	if s := rs[2].summary(); s["bench"] != "dedup/BenchmarkSignature/fast-2" || s["unit"] != "ns/op" || s["value"] != 5000.0 || s["us_per_doc"] != 4.5 {
		t.Errorf("signature: %v", s)
	}
	if s := rs[3].summary(); s["unit"] != "tokens/s" || s["value"] != 3700.0 || s["value_min"] != 3000.0 || s["ns_per_op"] != 60000000.0 {
		t.Errorf("generate: a benchmark reporting tokens/s has it as its headline: %v", s)
	}
	if _, failed := parse(strings.NewReader("--- FAIL: BenchmarkX\nFAIL\n"), io.Discard); !failed {
		t.Error("a failure is not reported")
	}
}
