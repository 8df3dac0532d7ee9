package datasets

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkDecodeOpenAI decodes realistic chat records (bench/gen output
// when present in $SIEVE_BENCH_JSONL, else a synthetic record).
func BenchmarkDecodeOpenAI(b *testing.B) {
	var lines [][]byte
	if f := os.Getenv("SIEVE_BENCH_JSONL"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		lines = bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	} else {
		rec := []byte(`{"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` + string(bytes.Repeat([]byte("How do plants know which way is up? "), 10)) + `"},{"role":"assistant","content":"` + string(bytes.Repeat([]byte("Plants sense gravity with specialised cells.\\n"), 25)) + `"}]}`)
		lines = [][]byte{rec}
	}
	var total int64
	for _, l := range lines {
		total += int64(len(l))
	}
	d := Decoder{Format: FormatOpenAI}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			if _, err := d.SampleFromRecord(Record{Raw: l}, Source{}, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
}
