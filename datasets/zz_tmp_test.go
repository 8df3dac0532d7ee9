package datasets

import "testing"

func BenchmarkZZ(b *testing.B) {
	lines, total := benchLines(b)
	b.Run("skip", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				s := jsonScanner{data: l}
				if _, err := s.topLevel(func(strSpan) error { return s.skipValue() }); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("copyonly", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				_ = string(l)
			}
		}
	})
	d := Decoder{Format: FormatOpenAI}
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				d.Decode(l)
			}
		}
	})
	b.Run("sample", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				d.SampleFromRecord(Record{Raw: l}, Source{}, "")
			}
		}
	})
	msgs := make([][]Message, len(lines))
	for i, l := range lines {
		msgs[i], _, _ = d.Decode(l)
	}
	b.Run("contentid", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, m := range msgs {
				ContentID(m)
			}
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, m := range msgs {
				s := Sample{ID: ContentID(m), Messages: m}
				s.Validate()
			}
		}
	})
}
