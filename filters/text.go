package filters

import (
	"hash/maphash"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// scratch is the per-call working memory of the filters, reused through
// scratchPool so that checking a sample allocates nothing in the steady
// state.
type scratch struct {
	buf   []byte
	buf2  []byte
	buf3  []byte
	words []word
	loop  []loopToken
	hs    []uint64
	hs2   []uint64
	spans []int32
	pw    []uint64
	tab   hashTable
	prev  []int32 // measureLoop: previous position of each 4-gram
	per   []bool  // measureLoop: candidate periods
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch  { return scratchPool.Get().(*scratch) }
func putScratch(s *scratch) { scratchPool.Put(s) }

// bstr views b as a string without copying. The string must not outlive
// the next change to b.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

var hashSeed = maphash.MakeSeed()

// strHash is a 64-bit hash of s, never 0 (0 marks an empty table slot).
func strHash(s string) uint64 {
	h := maphash.String(hashSeed, s)
	if h == 0 {
		h = 1
	}
	return h
}

// mix combines an n-gram hash with the next element's hash.
func mix(h, x uint64) uint64 {
	h ^= x + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// hashTable is an open-addressing map from non-zero uint64 keys to a count
// and the index of the key's first insertion, cleared in place between
// uses.
type hashTable struct {
	keys  []uint64
	count []int32
	first []int32
	mask  uint64
}

// reset empties the table and sizes it for about n keys.
func (t *hashTable) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if cap(t.keys) < size {
		t.keys = make([]uint64, size)
		t.count = make([]int32, size)
		t.first = make([]int32, size)
	} else {
		t.keys = t.keys[:size]
		t.count = t.count[:size]
		t.first = t.first[:size]
		clear(t.keys)
	}
	t.mask = uint64(size - 1)
}

// add counts key k, first seen at index i, and returns its slot.
func (t *hashTable) add(k uint64, i int32) int {
	if k == 0 {
		k = 1
	}
	p := k & t.mask
	for {
		switch t.keys[p] {
		case 0:
			t.keys[p] = k
			t.count[p] = 1
			t.first[p] = i
			return int(p)
		case k:
			t.count[p]++
			return int(p)
		}
		p = (p + 1) & t.mask
	}
}

// slot returns k's slot, or -1 if k is absent.
func (t *hashTable) slot(k uint64) int {
	if k == 0 {
		k = 1
	}
	p := k & t.mask
	for {
		switch t.keys[p] {
		case 0:
			return -1
		case k:
			return int(p)
		}
		p = (p + 1) & t.mask
	}
}

// insert adds k (with count 0) and reports whether it was already
// present.
func (t *hashTable) insert(k uint64) bool {
	if k == 0 {
		k = 1
	}
	p := k & t.mask
	for {
		switch t.keys[p] {
		case 0:
			t.keys[p] = k
			t.count[p] = 0
			return false
		case k:
			return true
		}
		p = (p + 1) & t.mask
	}
}

// fence describes a CommonMark code-fence line: up to three spaces of
// indentation, then at least three backticks or tildes.
type fence struct {
	char byte
	n    int
	// bare: nothing but white space after the fence characters (a
	// closing fence must be bare).
	bare bool
}

// parseFence reports whether line opens or closes a code fence.
func parseFence(line string) (fence, bool) {
	i := 0
	for i < len(line) && i < 3 && line[i] == ' ' {
		i++
	}
	if i >= len(line) || (line[i] != '`' && line[i] != '~') {
		return fence{}, false
	}
	c := line[i]
	j := i
	for j < len(line) && line[j] == c {
		j++
	}
	if j-i < 3 {
		return fence{}, false
	}
	rest := line[j:]
	if c == '`' && strings.IndexByte(rest, '`') >= 0 {
		return fence{}, false // inline code such as ```x```
	}
	return fence{char: c, n: j - i, bare: strings.TrimSpace(rest) == ""}, true
}

// closes reports whether f closes the block opened by open.
func (f fence) closes(open fence) bool {
	return f.char == open.char && f.n >= open.n && f.bare
}

// nextLine returns the line of s starting at i (without its '\n') and the
// index after it.
func nextLine(s string, i int) (string, int) {
	j := strings.IndexByte(s[i:], '\n')
	if j < 0 {
		return s[i:], len(s)
	}
	return s[i : i+j], i + j + 1
}

// hasFenceChars is a cheap test that s may contain a code fence.
func hasFenceChars(s string) bool {
	return strings.Contains(s, "```") || strings.Contains(s, "~~~")
}

// appendProse appends s without its fenced code blocks (fence lines
// included; an unclosed block runs to the end).
func appendProse(dst []byte, s string) []byte {
	if !hasFenceChars(s) {
		return append(dst, s...)
	}
	var open fence
	in := false
	for i := 0; i < len(s); {
		line, next := nextLine(s, i)
		f, ok := parseFence(line)
		switch {
		case in:
			if ok && f.closes(open) {
				in = false
			}
		case ok:
			in, open = true, f
		default:
			dst = append(dst, s[i:next]...)
		}
		i = next
	}
	return dst
}

// countWords counts runs of non-space characters and code points.
func countWords(s string) (words, chars int) {
	in := false
	for i := 0; i < len(s); {
		c := s[i]
		var sp bool
		if c < utf8.RuneSelf {
			sp = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
			i++
		} else {
			r, n := utf8.DecodeRuneInString(s[i:])
			sp = unicode.IsSpace(r)
			i += n
		}
		chars++
		if sp {
			in = false
		} else if !in {
			in = true
			words++
		}
	}
	return words, chars
}

// hasWords reports whether s has at least n runs of non-space
// characters, reading no further than needed.
func hasWords(s string, n int) bool {
	words := 0
	in := false
	for i := 0; i < len(s); {
		c := s[i]
		var sp bool
		if c < utf8.RuneSelf {
			sp = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			sp = unicode.IsSpace(r)
			i += size
		}
		if sp {
			in = false
		} else if !in {
			in = true
			words++
			if words >= n {
				return true
			}
		}
	}
	return false
}

// asciiPunct marks ASCII punctuation and symbols.
var asciiPunct = func() (t [128]bool) {
	for _, c := range "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" {
		t[c] = true
	}
	for c := 0; c < 32; c++ {
		t[c] = true
	}
	t[127] = true
	return
}()

// isPunct reports whether r is in datatrove's PUNCTUATION_SET: ASCII
// punctuation and symbols, control characters, Unicode punctuation and a
// few symbols it lists (► ━ ´ ～ ％ ＋).
func isPunct(r rune) bool {
	if r < 128 {
		return asciiPunct[r]
	}
	if r >= 0x80 && r < 0xa0 {
		return true
	}
	switch r {
	case '►', '━', '´', '～', '％', '＋', '１':
		return true
	}
	return unicode.IsPunct(r)
}

// lowerASCII appends s to dst with ASCII letters lower-cased and curly
// apostrophes (’ ‘) read as '.
func lowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0x99 || s[i+2] == 0x98):
			dst = append(dst, '\'')
			i += 2
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// countNormWords is len(normWordHashes(s)) without the hashing: the
// number of runs of letters, digits and nonspacing marks in s.
func countNormWords(s string) int {
	words := 0
	in := false
	for i := 0; i < len(s); {
		var word bool
		if c := s[i]; c < utf8.RuneSelf { // isWordRune's ASCII half, inline
			word = wordByte[c]
			i++
		} else {
			r, n := utf8.DecodeRuneInString(s[i:])
			word = isWordRune(r)
			i += n
		}
		if word && !in {
			words++
		}
		in = word
	}
	return words
}

// wordByte says which ASCII bytes are word characters (isWordRune).
var wordByte = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z'
	}
	return t
}()

// normWordHashes appends the hashes of the normalised words of s: runs of
// letters and digits, lower-cased (Unicode simple folding), everything
// else a separator. It is the word sequence of echo and decontamination.
// With wantSpans, the byte offsets of each word's start and end are
// appended to spans too. It stops after limit words (limit < 0: no
// limit).
func normWordHashes(hs []uint64, spans []int32, wantSpans bool, s string, tmp []byte, limit int) ([]uint64, []int32, []byte) {
	n0 := len(hs)
	start := -1
	tmp = tmp[:0]
	for i := 0; i <= len(s); {
		var r rune
		n := 1
		if i == len(s) {
			r = ' '
		} else if c := s[i]; c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		var word bool
		if r < utf8.RuneSelf { // isWordRune's ASCII half, inline
			word = wordByte[r]
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
		} else {
			word = isWordRune(r)
			r = unicode.ToLower(r)
		}
		if word {
			if start < 0 {
				start = i
				tmp = tmp[:0]
			}
			tmp = utf8.AppendRune(tmp, r)
		} else if start >= 0 {
			hs = append(hs, strHash(bstr(tmp)))
			if wantSpans {
				spans = append(spans, int32(start), int32(i))
			}
			start = -1
			if limit >= 0 && len(hs)-n0 >= limit {
				return hs, spans, tmp
			}
		}
		i += n
	}
	return hs, spans, tmp
}
