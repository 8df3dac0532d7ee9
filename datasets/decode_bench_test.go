package datasets

import (
	"testing"
)

// BenchmarkDecodeOpenAI decodes chat records into samples (Decode, then
// the sample's id and the rest of SampleFromRecord) on the records of
// benchLines; compare with BenchmarkDecodeOnly on the same records.
func BenchmarkDecodeOpenAI(b *testing.B) {
	lines, total := benchLines(b)
	d := Decoder{Format: FormatOpenAI}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, err := d.SampleFromRecord(Record{Raw: l}, Source{}, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
}
