package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The regular expressions of the Split pre-tokenizers that this package
// implements, exactly as they appear in tokenizer.json files (and, for
// GPT-2, inside the ByteLevel pre-tokenizer of Hugging Face tokenizers).
const (
	// PatternGPT2 is the GPT-2 pre-tokenizer expression (also GPT-J,
	// RoBERTa, and the ByteLevel pre-tokenizer with use_regex).
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternLlama3 is the Llama-3 expression: numbers in groups of up
	// to three digits, a letter run may take one leading non-letter.
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternQwen2 is the Qwen2/Qwen2.5/Qwen3 expression: the Llama-3
	// one with single digits.
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Character classes of the expressions above. Every rune is in exactly
// one of them: \p{L} (unicode.IsLetter, general category L), \p{N}
// (unicode.IsNumber, category N), \s (unicode.IsSpace, the White_Space
// property, which is also Oniguruma's \s), or none of those ("other",
// which is [^\s\p{L}\p{N}]). Invalid UTF-8 decodes as U+FFFD, an other.
const (
	clsOther uint8 = iota
	clsLetter
	clsNumber
	clsSpace
)

// bmpClass holds the class of every rune below U+10000, built on first
// use by the scanners (64 KiB, about 2 ms); rarer runes are classified
// through the unicode tables.
var (
	bmpClass     [0x10000]uint8
	bmpClassOnce sync.Once
)

func initClasses() {
	bmpClassOnce.Do(func() {
		for r := rune(0); r < 0x10000; r++ {
			bmpClass[r] = classOfSlow(r)
		}
	})
}

func classOfSlow(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

func classOf(r rune) uint8 {
	if uint32(r) < 0x10000 {
		return bmpClass[r]
	}
	return classOfSlow(r)
}

// runeAt decodes the rune at byte offset i and returns it with its class
// and width.
func runeAt(s string, i int) (rune, uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), bmpClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, classOf(r), w
}

// runOf returns the end of the maximal run of runes of class cls that
// starts at i.
func runOf(s string, i int, cls uint8) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if bmpClass[c] != cls {
				return i
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if classOf(r) != cls {
			return i
		}
		i += w
	}
	return i
}

// contraction returns the byte length of the contraction suffix at the
// start of rest (after the apostrophe): s|t|re|ve|m|ll|d, or 0. With
// fold, letters match case-insensitively as Oniguruma's (?i) does, by
// Unicode simple case folding; of these letters only s has a third form,
// U+017F LATIN SMALL LETTER LONG S.
func contraction(rest string, fold bool) int {
	if len(rest) == 0 {
		return 0
	}
	lower := func(b byte) byte {
		if fold && b >= 'A' && b <= 'Z' {
			return b + ('a' - 'A')
		}
		return b
	}
	switch lower(rest[0]) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(rest) >= 2 && lower(rest[1]) == 'e' {
			return 2
		}
	case 'l':
		if len(rest) >= 2 && lower(rest[1]) == 'l' {
			return 2
		}
	case 0xC5: // U+017F is C5 BF in UTF-8.
		if fold && len(rest) >= 2 && rest[1] == 0xBF {
			return 2
		}
	}
	return 0
}

// whitespaceTail handles the last alternatives shared by all three
// expressions, `\s+(?!\S)|\s+`, at a position i that holds whitespace.
//
// \s+ is greedy: it first takes the maximal whitespace run [i, j). If j
// is the end of the text the lookahead (?!\S) holds and the match is
// [i, j). Otherwise s[j] is not whitespace and the lookahead fails; the
// engine gives back one rune, and then the next rune is whitespace, so
// the lookahead holds: the match is the run without its last rune,
// provided that leaves at least one rune. A run of one rune followed by a
// non-space fails the first alternative and the plain \s+ takes it.
func whitespaceTail(s string, i int) int {
	j, last := i, i
	for j < len(s) {
		_, c, w := runeAt(s, j)
		if c != clsSpace {
			break
		}
		last = j
		j += w
	}
	if j == len(s) || last == i {
		return j
	}
	return last
}

// scanGPT2 returns the end of the match of PatternGPT2 that starts at i
// (i < len(s)). Oniguruma, like every backtracking engine, tries the
// alternatives left to right at the leftmost position and takes the
// first that matches; every rune starts some match (the last alternative
// takes any whitespace, and every other rune is a letter, a number or an
// other), so matches tile the text without gaps.
//
//   - 's|'t|'re|'ve|'m|'ll|'d: an apostrophe followed by one of those,
//     case-sensitively, whatever follows ("'sam" gives "'s", "am").
//   - ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the three classes
//     are disjoint, so at most one alternative can match. With a space
//     at i, the optional space is taken when the next rune is a letter,
//     number or other, and the match is the space plus the maximal run
//     of that class (the quantifier is greedy and nothing follows it, so
//     no backtracking can shorten it). The space cannot stand for itself
//     in these classes, so a space followed by whitespace or by the end
//     falls through. A letter, number or other at i takes the maximal
//     run of its class (an apostrophe not starting a contraction is an
//     other).
//   - whitespace at i: whitespaceTail.
func scanGPT2(s string, i int) int {
	initClasses()
	r, c, w := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s[i+1:], false); n > 0 {
			return i + 1 + n
		}
	}
	if r == ' ' && i+1 < len(s) {
		if _, c2, w2 := runeAt(s, i+1); c2 != clsSpace {
			return runOf(s, i+1+w2, c2)
		}
	}
	if c != clsSpace {
		return runOf(s, i+w, c)
	}
	return whitespaceTail(s, i)
}

// scanLlama3 returns the end of the match of PatternLlama3 (maxDigits 3)
// or PatternQwen2 (maxDigits 1) that starts at i (i < len(s)). As in
// scanGPT2 the alternatives are tried in order and matches tile the text.
//
//  1. (?i:'s|'t|'re|'ve|'m|'ll|'d): apostrophe and contraction, folding
//     case (see contraction).
//  2. [^\r\n\p{L}\p{N}]?\p{L}+: a letter at i is not in the optional
//     class, so the match is the maximal letter run. A rune at i that is
//     neither \r, \n, a letter nor a number (a space, tab, punctuation,
//     emoji, ...) is taken as the prefix when the next rune is a letter,
//     followed by the maximal letter run; if the next rune is not a
//     letter the alternative fails (without the prefix \p{L}+ would have
//     to start at a non-letter).
//  3. \p{N}{1,k}: a number at i takes up to k number runes, greedily.
//  4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`: a space at i followed by an other
//     takes the space, the maximal run of others and then the maximal run
//     of \r and \n; an other at i takes the run of others and the \r\n
//     run. Both quantified parts are greedy and end the alternative.
//  5. \s*[\r\n]+: only whitespace is left at i. \s* first takes the
//     maximal whitespace run [i, j); [\r\n]+ then needs a \r or \n at j,
//     which is not whitespace, so the engine gives back runes until
//     [\r\n]+ can start: at the last \r or \n of the run, after which the
//     run holds no further \r or \n. The match ends just after the last
//     \r or \n of the whitespace run; without one the alternative fails.
//  6. and 7.: whitespaceTail.
func scanLlama3(s string, i int, maxDigits int) int {
	initClasses()
	r, c, w := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s[i+1:], true); n > 0 {
			return i + 1 + n
		}
	}
	if c == clsLetter {
		return runOf(s, i+w, clsLetter)
	}
	if c != clsNumber && r != '\r' && r != '\n' && i+w < len(s) {
		if _, c2, w2 := runeAt(s, i+w); c2 == clsLetter {
			return runOf(s, i+w+w2, clsLetter)
		}
	}
	if c == clsNumber {
		j := i + w
		for n := 1; n < maxDigits && j < len(s); n++ {
			_, c2, w2 := runeAt(s, j)
			if c2 != clsNumber {
				break
			}
			j += w2
		}
		return j
	}
	if r == ' ' && i+1 < len(s) {
		if _, c2, w2 := runeAt(s, i+1); c2 == clsOther {
			return crlfRun(s, runOf(s, i+1+w2, clsOther))
		}
	}
	if c == clsOther {
		return crlfRun(s, runOf(s, i+w, clsOther))
	}
	// Whitespace at i.
	j, nl := i, -1
	for j < len(s) {
		r2, c2, w2 := runeAt(s, j)
		if c2 != clsSpace {
			break
		}
		j += w2
		if r2 == '\r' || r2 == '\n' {
			nl = j
		}
	}
	if nl >= 0 {
		return nl
	}
	return whitespaceTail(s, i)
}

func crlfRun(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// piece is a part of the text on its way through the pre-tokenizers.
// text may begin with virt bytes that are not in the input (the space
// that ByteLevel's add_prefix_space inserts); off is the byte offset in
// the normalized input of text[virt:].
type piece struct {
	text string
	off  int
	virt int
}

// sub returns the part [a, b) of p.
func (p piece) sub(a, b int) piece {
	virt := p.virt - a
	if virt < 0 {
		virt = 0
	}
	if virt > b-a {
		virt = b - a
	}
	off := p.off
	if a > p.virt {
		off += a - p.virt
	}
	return piece{text: p.text[a:b], off: off, virt: virt}
}

// preStep is one pre-tokenizer: it appends the pieces that p splits into.
type preStep interface {
	split(p piece, out []piece) []piece
}

// matcher finds the next match at or after byte offset from.
type matcher interface {
	find(s string, from int) (start, end int, ok bool)
}

type gpt2Matcher struct{}

func (gpt2Matcher) find(s string, from int) (int, int, bool) {
	if from >= len(s) {
		return 0, 0, false
	}
	return from, scanGPT2(s, from), true
}

type llama3Matcher struct{ maxDigits int }

func (m llama3Matcher) find(s string, from int) (int, int, bool) {
	if from >= len(s) {
		return 0, 0, false
	}
	return from, scanLlama3(s, from, m.maxDigits), true
}

type literalMatcher struct{ lit string }

func (m literalMatcher) find(s string, from int) (int, int, bool) {
	if m.lit == "" || from >= len(s) {
		return 0, 0, false
	}
	k := strings.Index(s[from:], m.lit)
	if k < 0 {
		return 0, 0, false
	}
	return from + k, from + k + len(m.lit), true
}

// matcherFor returns the scanner for one of the supported expressions:
// the GPT-2 one, or the Llama-3 family with \p{N} or \p{N}{1,k} for the
// numbers.
func matcherFor(pattern string) (matcher, error) {
	if pattern == PatternGPT2 {
		return gpt2Matcher{}, nil
	}
	const pre = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|`
	const post = `| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	if rest, ok := strings.CutPrefix(pattern, pre); ok {
		if digits, ok := strings.CutSuffix(rest, post); ok {
			if digits == `\p{N}` {
				return llama3Matcher{maxDigits: 1}, nil
			}
			var k int
			if n, err := fmt.Sscanf(digits, `\p{N}{1,%d}`, &k); err == nil && n == 1 && k >= 1 &&
				digits == fmt.Sprintf(`\p{N}{1,%d}`, k) {
				return llama3Matcher{maxDigits: k}, nil
			}
		}
	}
	return nil, fmt.Errorf("tokenizer: unsupported Split regex %q (supported: the GPT-2, Llama-3 and Qwen2 expressions)", pattern)
}

// Split behaviours, as in Hugging Face's SplitDelimiterBehavior.
const (
	behaviorRemoved = iota
	behaviorIsolated
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

var behaviorNames = map[string]int{
	"Removed":            behaviorRemoved,
	"Isolated":           behaviorIsolated,
	"MergedWithPrevious": behaviorMergedWithPrevious,
	"MergedWithNext":     behaviorMergedWithNext,
	"Contiguous":         behaviorContiguous,
}

// splitStep is the Split pre-tokenizer.
type splitStep struct {
	m        matcher
	behavior int
	invert   bool
}

type span struct {
	a, b  int
	match bool
}

func (st *splitStep) split(p piece, out []piece) []piece {
	s := p.text
	if st.behavior == behaviorIsolated && !st.invert {
		// Fast path: every match and every gap between matches is a piece.
		pos := 0
		for pos < len(s) {
			a, b, ok := st.m.find(s, pos)
			if !ok {
				break
			}
			if a > pos {
				out = append(out, p.sub(pos, a))
			}
			if b > a {
				out = append(out, p.sub(a, b))
			}
			if b <= a { // An empty match cannot advance; step one byte.
				b = a + 1
			}
			pos = b
		}
		if pos < len(s) {
			out = append(out, p.sub(pos, len(s)))
		}
		return out
	}
	// General path: list matches and gaps, then apply the behaviour as
	// Hugging Face's NormalizedString::split does.
	var spans []span
	pos := 0
	for pos < len(s) {
		a, b, ok := st.m.find(s, pos)
		if !ok {
			break
		}
		if a > pos {
			spans = append(spans, span{pos, a, false})
		}
		if b > a {
			spans = append(spans, span{a, b, true})
		} else {
			b = a + 1
		}
		pos = b
	}
	if pos < len(s) {
		spans = append(spans, span{pos, len(s), false})
	}
	if st.invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var res []span
	switch st.behavior {
	case behaviorIsolated:
		res = spans
	case behaviorRemoved:
		for _, sp := range spans {
			if !sp.match {
				res = append(res, sp)
			}
		}
	case behaviorContiguous:
		prev := false
		for _, sp := range spans {
			if sp.match == prev && len(res) > 0 {
				res[len(res)-1].b = sp.b
			} else {
				res = append(res, sp)
			}
			prev = sp.match
		}
	case behaviorMergedWithPrevious:
		prev := false
		for _, sp := range spans {
			if sp.match && !prev && len(res) > 0 {
				res[len(res)-1].b = sp.b
			} else {
				res = append(res, sp)
			}
			prev = sp.match
		}
	case behaviorMergedWithNext:
		prev := false
		for k := len(spans) - 1; k >= 0; k-- {
			sp := spans[k]
			if sp.match && !prev && len(res) > 0 {
				res[len(res)-1].a = sp.a
			} else {
				res = append(res, sp)
			}
			prev = sp.match
		}
		for l, r := 0, len(res)-1; l < r; l, r = l+1, r-1 {
			res[l], res[r] = res[r], res[l]
		}
	}
	for _, sp := range res {
		if sp.b > sp.a {
			out = append(out, p.sub(sp.a, sp.b))
		}
	}
	return out
}

// byteLevelStep is the ByteLevel pre-tokenizer. The byte-to-rune mapping
// itself is implicit: this package runs BPE on raw bytes.
type byteLevelStep struct {
	addPrefixSpace bool
	useRegex       bool
}

func (st *byteLevelStep) split(p piece, out []piece) []piece {
	if p.text == "" {
		return out
	}
	if st.addPrefixSpace && p.text[0] != ' ' {
		p = piece{text: " " + p.text, off: p.off, virt: p.virt + 1}
	}
	if !st.useRegex {
		return append(out, p)
	}
	s := p.text
	for pos := 0; pos < len(s); {
		end := scanGPT2(s, pos)
		out = append(out, p.sub(pos, end))
		pos = end
	}
	return out
}
