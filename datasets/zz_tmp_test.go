package datasets

import ("testing"; "bytes"; "unicode/utf8")

func BenchmarkZY(b *testing.B) {
	buf := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 100)
	dst := make([]byte, len(buf))
	b.Run("plainRun", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ { plainRun(buf, 0, msb) }
	})
	b.Run("memmove", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ { copy(dst, buf) }
	})
	b.Run("indexbyte", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ { bytes.IndexByte(buf, '"') }
	})
	b.Run("utf8valid", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ { utf8.Valid(buf) }
	})
	b.Run("alloc", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ { _ = string(buf) }
	})
}
