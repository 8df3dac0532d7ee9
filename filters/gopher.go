package filters

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// word is one Gopher token of a text: a byte range, its length in code
// points and what it contains.
type word struct {
	start, end int32
	runes      int32
	nonSymbol  bool // has a character outside the punctuation set
	alpha      bool // has a letter
}

// gopherWords splits text into Gopher tokens, appending to dst. It stands
// in for NLTK's word_tokenize, which datatrove uses: white space
// separates chunks; the punctuation at either end of a chunk comes off as
// tokens of their own (one per character, "..." as one); what is left in
// the middle ("e.g", "don't", "x=1") is one token.
func gopherWords(dst []word, text string) []word {
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if asciiSpace[c] {
				i++
				continue
			}
		} else if r, n := utf8.DecodeRuneInString(text[i:]); unicode.IsSpace(r) {
			i += n
			continue
		}
		// A chunk [i, j).
		j := i + 1
		for j < len(text) {
			c := text[j]
			if c < utf8.RuneSelf {
				if asciiSpace[c] {
					break
				}
				j++
				continue
			}
			r, n := utf8.DecodeRuneInString(text[j:])
			if unicode.IsSpace(r) {
				break
			}
			j += n
		}
		dst = appendChunk(dst, text, i, j)
		i = j
	}
	return dst
}

var asciiSpace = [128]bool{' ': true, '\n': true, '\t': true, '\r': true, '\v': true, '\f': true, 0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true}

// appendChunk appends the tokens of the chunk text[a:b].
func appendChunk(dst []word, text string, a, b int) []word {
	// Core: from the first to the last non-punctuation character.
	cs, ce := -1, -1
	var runes int32
	alpha := false
	for i := a; i < b; {
		c := text[i]
		n := 1
		var punct, letter bool
		if c < utf8.RuneSelf {
			punct = asciiPunct[c]
			letter = ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		} else {
			var r rune
			r, n = utf8.DecodeRuneInString(text[i:b])
			punct = isPunct(r)
			letter = !punct && unicode.IsLetter(r)
		}
		if !punct {
			if cs < 0 {
				cs = i
				runes = 0
			}
			ce = i + n
		}
		if cs >= 0 {
			runes++
			alpha = alpha || letter
		}
		i += n
	}
	if cs < 0 {
		return appendPunct(dst, text, a, b)
	}
	dst = appendPunct(dst, text, a, cs)
	// runes counted through the end of the chunk; take off the trailing
	// punctuation.
	tail := utf8.RuneCountInString(text[ce:b])
	dst = append(dst, word{start: int32(cs), end: int32(ce), runes: runes - int32(tail), nonSymbol: true, alpha: alpha})
	return appendPunct(dst, text, ce, b)
}

// appendPunct appends text[a:b], all punctuation, one token per
// character except that "..." is one token.
func appendPunct(dst []word, text string, a, b int) []word {
	for i := a; i < b; {
		if strings.HasPrefix(text[i:b], "...") {
			dst = append(dst, word{start: int32(i), end: int32(i + 3), runes: 3})
			i += 3
			continue
		}
		_, n := utf8.DecodeRuneInString(text[i:b])
		dst = append(dst, word{start: int32(i), end: int32(i + n), runes: 1})
		i += n
	}
	return dst
}

// splitLines calls fn with each line of s as Python's str.splitlines
// splits it on \n, \r\n and \r (no empty line after a final break).
func splitLines(s string, fn func(string)) int {
	n := 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] != '\n' && s[j] != '\r' {
			j++
		}
		fn(s[i:j])
		n++
		if j < len(s) && s[j] == '\r' && j+1 < len(s) && s[j+1] == '\n' {
			j++
		}
		i = j + 1
	}
	return n
}

// qualityRuleNames and repetitionRuleNames are the gopher filter's rules,
// in evaluation order (datatrove's), quality first.
var qualityRuleNames = []string{"gopher.mean_word_length", "gopher.symbol_hash_ratio", "gopher.symbol_ellipsis_ratio",
	"gopher.bullet_lines", "gopher.ellipsis_lines", "gopher.alpha_words", "gopher.stop_words"}

var repetitionRuleNames = []string{"gopher.dup_para_frac", "gopher.dup_para_char_frac", "gopher.dup_line_frac", "gopher.dup_line_char_frac",
	"gopher.top_2gram", "gopher.top_3gram", "gopher.top_4gram",
	"gopher.dup_5gram", "gopher.dup_6gram", "gopher.dup_7gram", "gopher.dup_8gram", "gopher.dup_9gram", "gopher.dup_10gram"}

// gopherFilter applies Gopher's quality and repetition rules to each
// assistant turn. One tokenisation serves both.
type gopherFilter struct {
	quality     ruleSet // bits 0..6
	repetition  ruleSet // bits 0..12
	c           GopherConfig
	maxStopLen  int
	thresholds  [13]float64
	includeCode bool
}

func newGopherFilter(c GopherConfig, on ruleSet) *gopherFilter {
	f := &gopherFilter{quality: on & (1<<7 - 1), repetition: on >> 7, c: c, includeCode: c.IncludeCode}
	for _, w := range c.StopWords {
		f.maxStopLen = max(f.maxStopLen, len(w))
	}
	f.thresholds = [13]float64{c.DupParaFrac, c.DupParaCharFrac, c.DupLineFrac, c.DupLineCharFrac,
		c.Top2Gram, c.Top3Gram, c.Top4Gram, c.Dup5Gram, c.Dup6Gram, c.Dup7Gram, c.Dup8Gram, c.Dup9Gram, c.Dup10Gram}
	for i, t := range f.thresholds {
		if t <= 0 {
			f.repetition &^= 1 << i
		}
	}
	return f
}

func (f *gopherFilter) Name() string { return FilterGopher }

func (f *gopherFilter) Check(s *datasets.Sample) Verdict {
	sc := getScratch()
	defer putScratch(sc)
	var cl closest
	judged := 0
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		text := turnText(m.Content, sc, f.includeCode)
		st := measureGopher(text, sc, f.c.StopWords, f.maxStopLen) // leaves the tokens in sc.words
		if f.c.MinWords > 0 && st.NonSymbolWords < f.c.MinWords {
			continue
		}
		judged++
		if f.quality != 0 {
			if v, ok := f.judge(&st, &cl); !ok {
				v.Detail = fmt.Sprintf("turn %d", i)
				return v
			}
		}
		if f.repetition == 0 {
			continue
		}
		var rs RepetitionStats
		measureRepetition(text, sc, &rs, f.repetition, true)
		values := [13]float64{rs.DupParaFrac, rs.DupParaCharFrac, rs.DupLineFrac, rs.DupLineCharFrac,
			rs.TopNGram[0], rs.TopNGram[1], rs.TopNGram[2],
			rs.DupNGram[0], rs.DupNGram[1], rs.DupNGram[2], rs.DupNGram[3], rs.DupNGram[4], rs.DupNGram[5]}
		for k, v := range values {
			if !f.repetition.has(k) {
				continue
			}
			if v > f.thresholds[k] {
				return drop(repetitionRuleNames[k], "too repetitive", v, f.thresholds[k], fmt.Sprintf("turn %d", i))
			}
			cl.max(repetitionRuleNames[k], v, f.thresholds[k])
		}
	}
	if judged == 0 {
		return Verdict{Keep: true, Detail: "responses too short to judge"}
	}
	return cl.keep()
}

// turnText is content without its fenced code blocks unless withCode
// (then content itself), possibly over sc.buf.
func turnText(content string, sc *scratch, withCode bool) string {
	if withCode || !hasFenceChars(content) {
		return content
	}
	sc.buf = appendProse(sc.buf[:0], content)
	return bstr(sc.buf)
}

// GopherStats are the Gopher quality measures of a text.
type GopherStats struct {
	Words          int     // tokens, punctuation included
	NonSymbolWords int     // tokens with a character outside the punctuation set
	MeanWordLength float64 // code points, over non-symbol words
	HashRatio      float64 // "#" per token
	EllipsisRatio  float64 // "..." and "…" per token
	BulletLines    float64 // share of lines starting with • or -
	EllipsisLines  float64 // share of lines ending with ... or …
	AlphaWords     float64 // share of non-symbol words with a letter
	StopWords      int     // distinct stop words present (case-insensitive)
}

// MeasureGopher computes the Gopher quality measures of text with the
// given stop words (DefaultStopWords if nil).
func MeasureGopher(text string, stopWords []string) GopherStats {
	if stopWords == nil {
		stopWords = DefaultStopWords
	}
	maxLen := 0
	for _, w := range stopWords {
		maxLen = max(maxLen, len(w))
	}
	sc := getScratch()
	defer putScratch(sc)
	return measureGopher(text, sc, stopWords, maxLen)
}

func measureGopher(text string, sc *scratch, stopWords []string, maxStopLen int) GopherStats {
	words := gopherWords(sc.words[:0], text)
	sc.words = words
	var st GopherStats
	st.Words = len(words)
	if len(words) == 0 {
		return st
	}
	var sumLen, alpha int
	var seen uint64 // bit per stop word
	minStopLen := maxStopLen
	for _, w := range stopWords {
		minStopLen = min(minStopLen, len(w))
	}
	for _, w := range words {
		if w.alpha {
			alpha++
		}
		if !w.nonSymbol {
			continue
		}
		st.NonSymbolWords++
		sumLen += int(w.runes)
		if l := int(w.end - w.start); l <= maxStopLen && l >= minStopLen {
			tok := text[w.start:w.end]
			c0 := tok[0] | 0x20
			for k, sw := range stopWords {
				if k < 64 && len(sw) == l && sw[0]|0x20 == c0 && strings.EqualFold(tok, sw) {
					seen |= 1 << k
				}
			}
		}
	}
	for ; seen != 0; seen &= seen - 1 {
		st.StopWords++
	}
	if st.NonSymbolWords > 0 {
		st.MeanWordLength = float64(sumLen) / float64(st.NonSymbolWords)
	}
	n := float64(len(words))
	st.HashRatio = float64(strings.Count(text, "#")) / n
	st.EllipsisRatio = float64(strings.Count(text, "...")+strings.Count(text, "…")) / n
	var bullets, ellipses int
	lines := splitLines(text, func(l string) {
		t := strings.TrimLeftFunc(l, unicode.IsSpace)
		if strings.HasPrefix(t, "•") || strings.HasPrefix(t, "-") {
			bullets++
		}
		t = strings.TrimRightFunc(l, unicode.IsSpace)
		if strings.HasSuffix(t, "...") || strings.HasSuffix(t, "…") {
			ellipses++
		}
	})
	if lines > 0 {
		st.BulletLines = float64(bullets) / float64(lines)
		st.EllipsisLines = float64(ellipses) / float64(lines)
	}
	if st.NonSymbolWords > 0 {
		st.AlphaWords = float64(alpha) / float64(st.NonSymbolWords)
	}
	return st
}

// judge applies the quality thresholds to st in datatrove's order.
func (f *gopherFilter) judge(st *GopherStats, cl *closest) (Verdict, bool) {
	c := &f.c
	on := f.quality
	if on.has(0) {
		const rule = "gopher.mean_word_length"
		if c.MinMeanWordLength > 0 {
			if st.MeanWordLength < c.MinMeanWordLength {
				return drop(rule, "below min", st.MeanWordLength, c.MinMeanWordLength, ""), false
			}
			cl.min(rule, st.MeanWordLength, c.MinMeanWordLength)
		}
		if c.MaxMeanWordLength > 0 {
			if st.MeanWordLength > c.MaxMeanWordLength {
				return drop(rule, "above max", st.MeanWordLength, c.MaxMeanWordLength, ""), false
			}
			cl.max(rule, st.MeanWordLength, c.MaxMeanWordLength)
		}
	}
	if c.MaxSymbolWordRatio > 0 {
		if on.has(1) {
			if st.HashRatio > c.MaxSymbolWordRatio {
				return drop("gopher.symbol_hash_ratio", "too many #", st.HashRatio, c.MaxSymbolWordRatio, ""), false
			}
			cl.max("gopher.symbol_hash_ratio", st.HashRatio, c.MaxSymbolWordRatio)
		}
		if on.has(2) {
			if st.EllipsisRatio > c.MaxSymbolWordRatio {
				return drop("gopher.symbol_ellipsis_ratio", "too many ellipses", st.EllipsisRatio, c.MaxSymbolWordRatio, ""), false
			}
			cl.max("gopher.symbol_ellipsis_ratio", st.EllipsisRatio, c.MaxSymbolWordRatio)
		}
	}
	if on.has(3) && c.MaxBulletLines > 0 {
		if st.BulletLines > c.MaxBulletLines {
			return drop("gopher.bullet_lines", "too many bullet lines", st.BulletLines, c.MaxBulletLines, ""), false
		}
		cl.max("gopher.bullet_lines", st.BulletLines, c.MaxBulletLines)
	}
	if on.has(4) && c.MaxEllipsisLines > 0 {
		if st.EllipsisLines > c.MaxEllipsisLines {
			return drop("gopher.ellipsis_lines", "too many lines end with an ellipsis", st.EllipsisLines, c.MaxEllipsisLines, ""), false
		}
		cl.max("gopher.ellipsis_lines", st.EllipsisLines, c.MaxEllipsisLines)
	}
	if on.has(5) && c.MinAlphaWords > 0 {
		if st.AlphaWords < c.MinAlphaWords {
			return drop("gopher.alpha_words", "too few words with a letter", st.AlphaWords, c.MinAlphaWords, ""), false
		}
		cl.min("gopher.alpha_words", st.AlphaWords, c.MinAlphaWords)
	}
	if on.has(6) && c.MinStopWords > 0 {
		if st.StopWords < c.MinStopWords {
			return drop("gopher.stop_words", "too few stop words", float64(st.StopWords), float64(c.MinStopWords), ""), false
		}
		cl.min("gopher.stop_words", float64(st.StopWords), float64(c.MinStopWords))
	}
	return Verdict{}, true
}

// RepetitionStats are the Gopher repetition measures of a text (Rae et
// al. 2021, Table A1), computed as datatrove's GopherRepetitionFilter
// computes them. Character counts are code points; every *Char* fraction
// is over the length of the whole text.
type RepetitionStats struct {
	DupParaFrac     float64 // paragraphs (split on 2+ newlines) that repeat an earlier one
	DupParaCharFrac float64 // characters in those paragraphs
	DupLineFrac     float64 // lines (split on 1+ newlines) that repeat an earlier one
	DupLineCharFrac float64 // characters in those lines
	// TopNGram[n-2], n = 2, 3, 4: characters of the most frequent word
	// n-gram (joined by spaces) times its count.
	TopNGram [3]float64
	// DupNGram[n-5], n = 5..10: characters (words joined without spaces)
	// of n-grams that repeat an earlier n-gram, skipping past each repeat
	// so that no character counts twice.
	DupNGram [6]float64
}

// MeasureRepetition computes the Gopher repetition measures of text.
func MeasureRepetition(text string) RepetitionStats {
	sc := getScratch()
	defer putScratch(sc)
	var st RepetitionStats
	measureRepetition(text, sc, &st, ^ruleSet(0), false)
	return st
}

// measureRepetition fills st with the measures whose rules are in on. If
// tokenized, sc.words already holds the Gopher tokens of text.
func measureRepetition(text string, sc *scratch, st *RepetitionStats, on ruleSet, tokenized bool) {
	total := float64(utf8.RuneCountInString(text))
	if total == 0 {
		return
	}
	if on.has(0) || on.has(1) {
		dups, dupChars, n := dupParagraphs(strings.TrimFunc(text, unicode.IsSpace), &sc.tab)
		st.DupParaFrac = float64(dups) / float64(n)
		st.DupParaCharFrac = float64(dupChars) / total
	}
	if on.has(2) || on.has(3) {
		dups, dupChars, n := dupLines(text, &sc.tab)
		st.DupLineFrac = float64(dups) / float64(n)
		st.DupLineCharFrac = float64(dupChars) / total
	}
	words := sc.words
	if !tokenized {
		words = gopherWords(sc.words[:0], text)
		sc.words = words
	}
	if len(words) == 0 {
		return
	}
	hs := sc.hs[:0]
	runes := sc.spans[:0]
	for _, w := range words {
		hs = append(hs, strHash(text[w.start:w.end]))
		runes = append(runes, w.runes)
	}
	sc.hs, sc.spans = hs, runes
	pre, pw := prefixHashes(sc.hs2[:0], sc.pw, hs)
	sc.hs2, sc.pw = pre, pw
	for n := 2; n <= 4; n++ {
		if !on.has(4+n-2) || len(words) < n {
			continue
		}
		st.TopNGram[n-2] = float64(topNGramChars(pre, pw, runes, n, &sc.tab)) / total
	}
	// A repeated n-gram (n > 5) starts with a repeated 5-gram, so when
	// there is none, every duplicated n-gram share is 0.
	none := false
	for n := 5; n <= 10; n++ {
		if none || !(on.has(7+n-5) || (n == 5 && on>>7 != 0)) {
			continue
		}
		chars := dupNGramChars(pre, pw, runes, n, &sc.tab)
		st.DupNGram[n-5] = float64(chars) / total
		none = n == 5 && chars == 0
	}
}

// dupParagraphs splits s on runs of two or more newlines and counts the
// paragraphs equal to an earlier one and their characters.
func dupParagraphs(s string, t *hashTable) (dups, dupChars, n int) {
	t.reset(strings.Count(s, "\n\n") + 1)
	for i := 0; ; {
		j := strings.Index(s[i:], "\n\n")
		end := len(s)
		if j >= 0 {
			end = i + j
		}
		p := s[i:end]
		n++
		if t.insert(strHash(p)) {
			dups++
			dupChars += utf8.RuneCountInString(p)
		}
		if j < 0 {
			return
		}
		i = end
		for i < len(s) && s[i] == '\n' {
			i++
		}
	}
}

// dupLines splits s on runs of newlines (a leading or trailing newline
// gives an empty line, as Python's re.split does) and counts the lines
// equal to an earlier one and their characters.
func dupLines(s string, t *hashTable) (dups, dupChars, n int) {
	t.reset(strings.Count(s, "\n") + 1)
	for i := 0; ; {
		j := strings.IndexByte(s[i:], '\n')
		end := len(s)
		if j >= 0 {
			end = i + j
		}
		l := s[i:end]
		n++
		if t.insert(strHash(l)) {
			dups++
			dupChars += utf8.RuneCountInString(l)
		}
		if j < 0 {
			return
		}
		i = end
		for i < len(s) && s[i] == '\n' {
			i++
		}
	}
}

// ngramHash is the polynomial hash of words [i, i+n) from the prefix
// hashes pre and the powers pw (see prefixHashes).
func ngramHash(pre, pw []uint64, i, n int) uint64 {
	return pre[i+n] - pre[i]*pw[n]
}

// topNGramChars returns the characters of the most frequent n-gram (ties:
// the first seen, as Counter.most_common) joined by spaces, times its
// count.
func topNGramChars(pre, pw []uint64, runes []int32, n int, t *hashTable) int {
	m := len(runes) - n + 1
	t.reset(m)
	bestSlot, bestCount, bestFirst := -1, int32(0), int32(0)
	for i := 0; i < m; i++ {
		slot := t.add(ngramHash(pre, pw, i, n), int32(i))
		c, first := t.count[slot], t.first[slot]
		if c > bestCount || (c == bestCount && first < bestFirst) {
			bestSlot, bestCount, bestFirst = slot, c, first
		}
	}
	if bestSlot < 0 {
		return 0
	}
	chars := n - 1
	for _, r := range runes[bestFirst : int(bestFirst)+n] {
		chars += int(r)
	}
	return chars * int(bestCount)
}

// dupNGramChars returns the characters (words joined without spaces) of
// the n-grams that repeat an earlier one, jumping n words past each
// repeat, as datatrove's find_all_duplicate.
func dupNGramChars(pre, pw []uint64, runes []int32, n int, t *hashTable) int {
	t.reset(len(runes))
	chars := 0
	for i := 0; i < len(runes)-n+1; {
		if t.insert(ngramHash(pre, pw, i, n)) {
			for _, r := range runes[i : i+n] {
				chars += int(r)
			}
			i += n
		} else {
			i++
		}
	}
	return chars
}
