package tokenizer

// The byte-level alphabet of GPT-2: every byte is shown as one printable
// rune so that vocabulary entries are readable strings. Printable Latin-1
// bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
// bytes map, in increasing order, to U+0100, U+0101, ... (so ' ' is 'Ġ'
// and '\n' is 'Ċ').
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelDecode maps a byte-level string back to raw bytes. ok is false
// when s holds a rune outside the byte-level alphabet.
func byteLevelDecode(s string) (raw string, ok bool) {
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		b, found := runeToByte[r]
		if !found {
			return "", false
		}
		buf = append(buf, b)
	}
	return string(buf), true
}

// byteLevelAlphabet returns the 256 byte-level runes as strings sorted by
// code point, the order Hugging Face's trainer gives them ids in.
func byteLevelAlphabet() []string {
	out := make([]string, 0, 256)
	var runes []rune
	for b := 0; b < 256; b++ {
		runes = append(runes, byteToRune[b])
	}
	// Insertion sort is plenty for 256 runes.
	for i := 1; i < len(runes); i++ {
		for j := i; j > 0 && runes[j] < runes[j-1]; j-- {
			runes[j], runes[j-1] = runes[j-1], runes[j]
		}
	}
	for _, r := range runes {
		out = append(out, string(r))
	}
	return out
}
