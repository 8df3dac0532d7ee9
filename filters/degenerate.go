package filters

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// DegenerateStats are the measures of the degenerate filter on one text
// (fenced and inline code removed).
type DegenerateStats struct {
	// Tokens are the runs of non-space characters; OddTokens those that
	// are not words, numbers, markdown or common punctuation: tokenizer
	// pieces (Ġ ▁ ##ing), braces and operators (); => {}), identifiers
	// (foo_bar), replacement characters. OddRatio is their share.
	Tokens, OddTokens int
	OddRatio          float64
	// Words are the letter words; BadBigrams the pairs of adjacent
	// function words that English never puts side by side ("the of",
	// "and the and", "to in"). BadBigramRatio is per word.
	Words, BadBigrams int
	BadBigramRatio    float64
	// The longest loop: a unit of LoopPeriod tokens (words, numbers, or a
	// run of one punctuation character) repeated back to back,
	// LoopTokens tokens in all, LoopCopies times. LoopUnit is its text.
	LoopPeriod, LoopTokens int
	LoopCopies             float64
	LoopUnit               string
}

// MeasureDegenerate computes the degenerate filter's measures of text.
func MeasureDegenerate(text string) DegenerateStats {
	sc := getScratch()
	defer putScratch(sc)
	var st DegenerateStats
	measureDegenerate(proseText(text, sc), sc, &st, true, true)
	return st
}

// proseText is text without fenced code blocks and inline code spans,
// over sc.buf.
func proseText(text string, sc *scratch) string {
	if !hasFenceChars(text) && strings.IndexByte(text, '`') < 0 {
		return text
	}
	sc.buf2 = appendProse(sc.buf2[:0], text)
	sc.buf = appendNoInlineCode(sc.buf[:0], bstr(sc.buf2))
	return bstr(sc.buf)
}

func measureDegenerate(text string, sc *scratch, st *DegenerateStats, gib, loop bool) {
	if gib {
		measureOdd(text, st)
	}
	if loop {
		measureLoop(text, sc, st)
	}
}

// measureOdd fills the token composition and bad-bigram counts of the
// lines of text that are not code (see codeLine).
func measureOdd(text string, st *DegenerateStats) {
	for i := 0; i < len(text); {
		line, next := nextLine(text, i)
		i = next
		if !codeLine(line) {
			measureOddLine(line, st)
		}
	}
	if st.Tokens > 0 {
		st.OddRatio = float64(st.OddTokens) / float64(st.Tokens)
	}
	if st.Words > 0 {
		st.BadBigramRatio = float64(st.BadBigrams) / float64(st.Words)
	}
}

// codeLine reports whether a line looks like code outside a fence:
// indented, or opening with a keyword of a common language.
func codeLine(l string) bool {
	if strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "\t") {
		return true
	}
	sp := strings.IndexByte(l, ' ')
	if sp < 0 {
		sp = len(l)
	}
	switch l[:sp] {
	case "def", "class", "import", "from", "return", "#include", "#define", "for", "while", "if", "elif", "else", "else:",
		"var", "let", "const", "function", "public", "private", "int", "void", "}", "{", "//", "SELECT", "print(", "package", "func":
		return true
	}
	return false
}

func measureOddLine(text string, st *DegenerateStats) {
	prevFn := fnNone
	for i := 0; i < len(text); {
		c := text[i]
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
			i++
			continue
		}
		j := i
		for j < len(text) {
			c := text[j]
			if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				break
			}
			j++
		}
		tok := text[i:j]
		i = j
		st.Tokens++
		core, odd := classifyToken(tok)
		if odd {
			st.OddTokens++
		}
		if core == "" || odd {
			prevFn = fnNone
			continue
		}
		fn := fnNone
		if isLetters(core) {
			st.Words++
			fn = functionClass(core)
		}
		if prevFn != fnNone && fn != fnNone && badPair(prevFn, fn) {
			st.BadBigrams++
		}
		// Punctuation at the end of the token ends the pair.
		if strings.ContainsRune(",.;:!?)", rune(tok[len(tok)-1])) {
			fn = fnNone
		}
		prevFn = fn
	}
}

// classifyToken strips the brackets, quotes and punctuation around tok
// and reports whether what is left is odd: not a word, number, markdown
// marker or common punctuation.
func classifyToken(tok string) (core string, odd bool) {
	// Markdown and prose punctuation that stands alone.
	switch tok {
	case "-", "–", "—", "*", "**", "***", "|", "#", "##", "###", "####", ">", "&", "/", "+", "=", "...", "…", ":", "•", "→", "x", "×", "÷", "-->", "<-", "->", "=>", "<", "≤", "≥", "~", "(", ")", "\"", "“", "”", "'", "?", "!", ".", ",", "%", "$":
		return "", false
	}
	// Table separators and rules: only - | : = _ * # characters.
	if onlyRuleChars(tok) {
		return "", false
	}
	core = strings.TrimLeftFunc(tok, isOpening)
	core = strings.TrimRightFunc(core, isClosing)
	if core == "" {
		// Brackets and operators only: "});", "{}", "::".
		return "", true
	}
	if strings.HasPrefix(core, "#") || strings.HasPrefix(core, "@") {
		return core, false // hashtag, mention, heading marker
	}
	if strings.Contains(core, "://") || strings.HasPrefix(core, "www.") {
		return core, false
	}
	if strings.IndexByte(core, '\\') >= 0 && strings.IndexFunc(core, unicode.IsLetter) > strings.IndexByte(core, '\\') {
		return core, false // LaTeX: \frac{a}{b}, \sqrt{2}
	}
	if gluedDigits(core) || camelJoin(core) || (strings.HasPrefix(core, "0x") && len(core) > 4) {
		return core, true
	}
	for _, r := range core {
		switch {
		case r < utf8.RuneSelf:
			switch r {
			case '_', '{', '}', '[', ']', ';', '\\', '|', '~', '`':
				return core, true
			}
		case r == 'Ġ' || r == '▁' || r == 'Ċ' || r == 'ĉ' || r == utf8.RuneError:
			return core, true
		}
	}
	if strings.HasPrefix(tok, "##") && len(core) > 2 {
		return core, true // WordPiece continuation
	}
	return core, false
}

// onlyRuleChars reports whether tok is made of - | : = _ * # + only
// (strings.Trim with that cutset, without building the set per call).
func onlyRuleChars(tok string) bool {
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '-', '|', ':', '=', '_', '*', '#', '+':
		default:
			return false
		}
	}
	return true
}

// isOpening: the brackets, quotes and markers trimmed before a token's
// core.
func isOpening(r rune) bool {
	switch r {
	case '(', '[', '{', '"', '\'', '“', '‘', '*', '_', '`', '¡', '¿', '<':
		return true
	}
	return false
}

// isClosing: the brackets, quotes and punctuation trimmed after it.
func isClosing(r rune) bool {
	switch r {
	case ')', ']', '}', '"', '\'', '”', '’', '*', '_', '`', '.', ',', ';', ':', '!', '?', '…', '>':
		return true
	}
	return false
}

// gluedDigits reports whether s glues a number to a word the way
// detokenized junk does ("the130", "5technologies"): three or more
// lower-case letters then three or more digits, or digits then five or
// more lower-case letters.
func gluedDigits(s string) bool {
	i := 0
	for i < len(s) && 'a' <= s[i] && s[i] <= 'z' {
		i++
	}
	if i >= 3 {
		j := i
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		return j-i >= 3
	}
	if i > 0 {
		return false
	}
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return false
	}
	j := i
	for j < len(s) && 'a' <= s[j] && s[j] <= 'z' {
		j++
	}
	return j-i >= 5
}

// camelJoin reports whether s joins two words the way detokenized junk
// and identifiers do: three or more lower-case letters, then an upper-case
// one ("structuralSafe", "eachHave"; not "iPhone", "YouTube" or "eBay").
func camelJoin(s string) bool {
	lower := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
			lower++
		case 'A' <= c && c <= 'Z':
			if lower >= 3 && lower == i {
				return true
			}
			return false
		default:
			return false
		}
	}
	return false
}

func isLetters(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && r != '\'' && r != '’' && r != '-' {
			return false
		}
	}
	return s != ""
}

// Function-word classes for the bad-bigram test.
const (
	fnNone = iota
	fnDet  // the a an
	fnPrep // of to in for with on at by from into
	fnConj // and or but nor
	fnAux  // is are was were be been
)

func functionClass(w string) int {
	if len(w) > 5 {
		return fnNone
	}
	var lb [5]byte
	for i := 0; i < len(w); i++ {
		lb[i] = w[i] | 0x20 // ASCII letters only reach the cases below
	}
	switch string(lb[:len(w)]) {
	case "the", "a", "an":
		return fnDet
	case "of", "to", "in", "for", "with", "on", "at", "by", "from", "into":
		return fnPrep
	case "and", "or", "but", "nor":
		return fnConj
	case "is", "are", "was", "were", "been":
		return fnAux
	}
	return fnNone
}

// badPair reports whether function word classes a then b never follow
// each other in English prose: a determiner before any function word
// ("the of", "a and"), a preposition before a preposition, conjunction or
// auxiliary ("of in", "to and", "with is"), a conjunction before a
// conjunction ("and or" is allowed in "and/or" only, which is one token).
func badPair(a, b int) bool {
	switch a {
	case fnDet:
		return true
	case fnPrep:
		return b == fnPrep || b == fnConj || b == fnAux
	case fnConj:
		return b == fnConj
	}
	return false
}

// loopToken is one token of the loop detector: its hash, whether it is a
// letter word (or an emoji), and its byte span.
type loopToken struct {
	h          uint64
	word       bool
	start, end int32
}

// measureLoop finds the longest run where the text repeats itself with a
// fixed period of tokens. Numbers compare equal to each other, so "Step
// 7: … Step 8: …" loops too; a unit must then hold letter words, so
// tables of numbers and "2 x 3 = 6" lines do not.
func measureLoop(text string, sc *scratch, st *DegenerateStats) {
	toks := loopTokens(sc, text)
	n := len(toks)
	if n < 2*minLoopCheck {
		return
	}
	// Cheap test first: a loop repeats many 4-grams. Each 4-gram's
	// previous occurrence is kept to find the candidate periods below.
	sc.tab.reset(n)
	prev := slices.Grow(sc.prev[:0], n)[:n-3]
	sc.prev = prev
	rep := 0
	for i := range prev {
		slot := sc.tab.add(mix(mix(mix(toks[i].h, toks[i+1].h), toks[i+2].h), toks[i+3].h), int32(i))
		prev[i] = -1
		if sc.tab.count[slot] > 1 {
			rep++
			prev[i] = sc.tab.first[slot]
		}
		sc.tab.first[slot] = int32(i) // now the last occurrence
	}
	if rep < minLoopCheck {
		return
	}
	maxP := min(n/2, 200)
	// A run that can win at period p ≥ 4 repeats at least p ≥ 4 tokens
	// at distance p, so some 4-gram recurs exactly p tokens later: only
	// those periods (and 1–3) are searched, in increasing order as
	// before, which finds the same loop as searching every period.
	per := slices.Grow(sc.per[:0], maxP+1)[:maxP+1]
	clear(per)
	sc.per = per
	for p := 1; p <= min(3, maxP); p++ {
		per[p] = true
	}
	for i, j := range prev {
		for j >= 0 && i-int(j) <= maxP {
			per[i-int(j)] = true
			j = prev[j]
		}
	}
	bestRun, bestP, bestEnd := 0, 0, 0
	for p := 1; p <= maxP; p++ {
		if !per[p] {
			continue
		}
		run := 0
		for i := p; i < n; i++ {
			if toks[i].h != toks[i-p].h {
				run = 0
				continue
			}
			run++
			// Keep the run with the most repeated tokens whose unit has
			// enough words (checked only when it would win).
			if run+p > bestRun+bestP && run >= p {
				words := 0
				for _, t := range toks[i-run-p+1 : i-run+1] {
					if t.word {
						words++
					}
				}
				if words >= (p+2)/3 {
					bestRun, bestP, bestEnd = run, p, i
				}
			}
		}
	}
	if bestP == 0 {
		return
	}
	st.LoopPeriod = bestP
	st.LoopTokens = bestRun + bestP
	st.LoopCopies = float64(bestRun+bestP) / float64(bestP)
	u := toks[bestEnd-bestRun-bestP+1 : bestEnd-bestRun+1]
	st.LoopUnit = text[u[0].start:u[len(u)-1].end]
}

// minLoopCheck: texts with fewer repeated 4-grams are not searched.
const minLoopCheck = 12

// loopTokens splits text into words (letters and digits; digit runs all
// hash alike), runs of one punctuation or symbol character, and emoji.
func loopTokens(sc *scratch, text string) []loopToken {
	toks := sc.loop[:0]
	for i := 0; i < len(text); {
		r, n := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(text[i:])
		}
		switch {
		case r == ' ' || r == '\n' || r == '\t' || r == '\r' || unicode.IsSpace(r):
			i += n
		case isWordRune(r):
			j, digits := i, true
			for j < len(text) {
				r2, n2 := rune(text[j]), 1
				if r2 >= utf8.RuneSelf {
					r2, n2 = utf8.DecodeRuneInString(text[j:])
				}
				if !isWordRune(r2) {
					break
				}
				digits = digits && '0' <= r2 && r2 <= '9'
				j += n2
			}
			h := uint64(0x5eed)
			if !digits {
				sc.buf3 = lowerASCII(sc.buf3[:0], text[i:j])
				h = strHash(bstr(sc.buf3))
			}
			toks = append(toks, loopToken{h: h, word: !digits, start: int32(i), end: int32(j)})
			i = j
		default:
			j := i + n
			for j < len(text) && strings.HasPrefix(text[j:], text[i:i+n]) {
				j += n
			}
			toks = append(toks, loopToken{h: strHash(text[i : i+n]), word: unicode.Is(unicode.So, r), start: int32(i), end: int32(j)})
			i = j
		}
	}
	sc.loop = toks
	return toks
}

// isWordRune says whether r belongs to a word: an ASCII letter or digit
// (wordByte), or a Unicode letter, digit or nonspacing mark. The loop
// tokens, normWordHashes and countNormWords all read words by it.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return wordByte[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// degenerateFilter drops answers that are not text a model should learn
// from: token junk (degenerate.gibberish) and generation loops
// (degenerate.loop).
type degenerateFilter struct {
	on ruleSet
	c  DegenerateConfig
}

func (f *degenerateFilter) Name() string { return FilterDegenerate }

func (f *degenerateFilter) Check(s *datasets.Sample) Verdict {
	sc := getScratch()
	defer putScratch(sc)
	var cl closest
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		text := proseText(m.Content, sc)
		var st DegenerateStats
		memoDegenerate(text, sc, &st, f.on.has(0), f.on.has(1))
		if f.on.has(0) && st.Tokens >= f.c.MinTokens {
			const rule = "degenerate.gibberish"
			if f.c.MaxOddTokens > 0 {
				if st.OddRatio > f.c.MaxOddTokens {
					return drop(rule, "too many tokens that are not words", st.OddRatio, f.c.MaxOddTokens, fmt.Sprintf("turn %d: %d of %d tokens odd", i, st.OddTokens, st.Tokens))
				}
				cl.max(rule, st.OddRatio, f.c.MaxOddTokens)
			}
			if f.c.MaxBadBigrams > 0 && st.Words >= f.c.MinTokens {
				if st.BadBigramRatio > f.c.MaxBadBigrams && st.BadBigrams >= 3 {
					return drop(rule, "words in no grammatical order", st.BadBigramRatio, f.c.MaxBadBigrams, fmt.Sprintf("turn %d: %d function-word pairs English never has in %d words", i, st.BadBigrams, st.Words))
				}
				cl.max(rule, st.BadBigramRatio, f.c.MaxBadBigrams)
			}
		}
		if f.on.has(1) && st.LoopPeriod > 0 && st.LoopTokens >= f.c.MinLoopTokens {
			const rule = "degenerate.loop"
			if st.LoopCopies >= f.c.MinLoopCopies {
				u := st.LoopUnit
				if len(u) > 80 {
					u = cutUTF8(u, 80) + "…"
				}
				return drop(rule, "loops", st.LoopCopies, f.c.MinLoopCopies, fmt.Sprintf("turn %d: %q repeated %.1f times", i, u, st.LoopCopies))
			}
			cl.max(rule, st.LoopCopies, f.c.MinLoopCopies)
		}
	}
	return cl.keep()
}

// cutUTF8 cuts s to at most n bytes at a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
