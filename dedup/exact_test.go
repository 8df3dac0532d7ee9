package dedup

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/internal/randtext"
)

// appendNormalizedRef is AppendNormalized written the plain way, rune by
// rune with append: the definition the table-driven AppendNormalized
// must match byte for byte (exact keys, hence every exact-dedup result,
// depend on it).
func appendNormalizedRef(dst []byte, s string) []byte {
	space := false
	start := len(dst)
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
	}
	return dst
}

func TestAppendNormalizedMatchesReference(t *testing.T) {
	// Pieces chosen for the edges: ASCII and Unicode white space, upper
	// case letters whose lower case is longer in UTF-8 (Ⱥ, 2 → 3 bytes)
	// or shorter (K Kelvin sign, 3 → 1 byte), invalid UTF-8, and runs of
	// them, at the start, middle and end.
	pieces := []string{"a", "Z", "Hello", " ", "  ", "\t", "\n\r", "\v\f", "\u00a0", "\u2003", "\u3000",
		"Ⱥ", "ȺȺȺȺ", "\u212a", "É", "ß", "İ", "ǅ", "日本", "\xff", "\xc3", "x\xe2\x82", "😀", "ΣΑΣ", ".,;", "0129", "\x00", "\x1f"}
	r := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", " ", "   a   ", "ȺȺȺȺȺȺȺȺȺȺȺȺȺȺȺȺ", strings.Repeat("Ⱥ ", 50), strings.Repeat(" ", 100)}
	cases = append(cases, randtext.Texts(r, pieces, 20000, 40)...)
	for _, s := range cases {
		for _, prefix := range []string{"", "user\x00"} {
			// A dst with spare capacity and one without: the fast path
			// writes into the spare capacity and must not overrun it.
			for _, spare := range []int{0, 3, 64} {
				dst := make([]byte, len(prefix), len(prefix)+spare)
				copy(dst, prefix)
				got := AppendNormalized(dst, s)
				want := appendNormalizedRef([]byte(prefix), s)
				if string(got) != string(want) {
					t.Fatalf("AppendNormalized(%q, %q) = %q, want %q", prefix, s, got, want)
				}
			}
		}
	}
}

func BenchmarkAppendNormalized(b *testing.B) {
	text := strings.Repeat("The quick  brown Fox jumps over the lazy dog.\n", 40)
	b.SetBytes(int64(len(text)))
	var dst []byte
	for b.Loop() {
		dst = AppendNormalized(dst[:0], text)
	}
}
