package filters

import (
	"bytes"
	"embed"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// The language identifier is a naive-Bayes classifier over character
// trigrams of lower-cased words (a space marks each word's start and end),
// the method of Cavnar & Trenkle (1994) and of langid.py's byte n-gram
// model in its simplest form. Its profiles are trained, on first use, from
// sentences written for sieve in langdata/ (about 4 KB each for the
// supported languages, 1–2 KB each for eleven more that are reported as
// "other" and keep look-alikes such as Catalan or Danish from landing on a
// supported language). Text mostly outside the Latin script is "other"
// without consulting the profiles.

//go:embed langdata/*.txt
var langData embed.FS

// supportedLangs are the languages DetectLanguage names; every other
// profile, and every non-Latin script, is reported as "other".
var supportedLangs = []string{"en", "de", "fr", "es", "it", "pt", "nl"}

// LangOther is what DetectLanguage returns for a language it does not
// support.
const LangOther = "other"

// Languages returns the language codes DetectLanguage can return and
// LanguageConfig accepts: en, de, fr, es, it, pt, nl and "other".
func Languages() []string {
	return append(slices.Clone(supportedLangs), LangOther)
}

const (
	// langMaxGrams caps the trigrams scored per text: accuracy saturates
	// long before, and the cost stays bounded for long responses.
	langMaxGrams = 192
	// langEvidence is the number of trigrams of independent evidence the
	// confidence assumes at most: naive Bayes multiplies correlated
	// trigram probabilities and is overconfident on long texts otherwise.
	langEvidence = 12.0
	langAlpha    = 0.5
)

type langModel struct {
	names  []string // profile codes; supported first
	index  map[uint64]int32
	rows   []float32 // len(index) × len(names) log-probabilities
	unseen []float32 // per language
}

var (
	langOnce sync.Once
	langM    *langModel
)

func theLangModel() *langModel {
	langOnce.Do(func() { langM = trainLangModel() })
	return langM
}

func trainLangModel() *langModel {
	entries, err := langData.ReadDir("langdata")
	if err != nil {
		panic("filters: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".txt"))
	}
	// Supported languages first, in supportedLangs order.
	slices.SortStableFunc(names, func(a, b string) int {
		ia, ib := slices.Index(supportedLangs, a), slices.Index(supportedLangs, b)
		if ia < 0 {
			ia = len(supportedLangs)
		}
		if ib < 0 {
			ib = len(supportedLangs)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	counts := make([]map[uint64]int, len(names))
	totals := make([]int, len(names))
	vocab := map[uint64]int32{}
	for li, name := range names {
		b, err := langData.ReadFile("langdata/" + name + ".txt")
		if err != nil {
			panic("filters: " + err.Error())
		}
		counts[li] = map[uint64]int{}
		for _, k := range appendTrigrams(nil, string(b), -1) {
			counts[li][k]++
			totals[li]++
			if _, ok := vocab[k]; !ok {
				vocab[k] = int32(len(vocab))
			}
		}
	}
	L := len(names)
	m := &langModel{names: names, index: vocab, rows: make([]float32, len(vocab)*L), unseen: make([]float32, L)}
	V := float64(len(vocab)) + 1
	for li := range names {
		den := float64(totals[li]) + langAlpha*V
		m.unseen[li] = float32(math.Log(langAlpha / den))
		for k, row := range vocab {
			m.rows[int(row)*L+li] = float32(math.Log((float64(counts[li][k]) + langAlpha) / den))
		}
	}
	return m
}

// appendTrigrams appends the keys of the character trigrams of the
// lower-cased words of s (letters only; a space pads each word), until
// dst holds max keys (no limit if max < 0).
func appendTrigrams(dst []uint64, s string, max int) []uint64 {
	dst, _, _ = appendTrigramsCount(dst, s, max)
	return dst
}

// appendTrigramsCount is appendTrigrams that also counts the letters it
// read and how many of them are in the Latin script.
func appendTrigramsCount(dst []uint64, s string, max int) (out []uint64, letters, latin int) {
	var a, b rune = 0, ' '
	inWord := false
	for i := 0; i < len(s); {
		if max >= 0 && len(dst) >= max {
			return dst, letters, latin
		}
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		var letter bool
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			letter = 'a' <= r && r <= 'z'
			if letter {
				letters++
				latin++
			}
		} else {
			letter = unicode.IsLetter(r)
			if letter {
				letters++
				if unicode.Is(unicode.Latin, r) {
					latin++
				}
			}
			r = unicode.ToLower(r)
		}
		switch {
		case letter:
			if !inWord {
				a, b = 0, ' '
				inWord = true
			}
		case inWord:
			inWord = false
			r = ' '
		default:
			continue
		}
		if a != 0 {
			dst = append(dst, uint64(a)<<42|uint64(b)<<21|uint64(r))
		}
		a, b = b, r
	}
	if inWord && a != 0 && (max < 0 || len(dst) < max) {
		dst = append(dst, uint64(a)<<42|uint64(b)<<21|' ')
	}
	return dst, letters, latin
}

// DetectLanguage returns the language of text, one of Languages(), and a
// confidence in [0, 1]. Text with no letters is "other" with confidence 0.
func DetectLanguage(text string) (lang string, confidence float64) {
	lang, confidence, _ = detectLanguage(text)
	return lang, confidence
}

// detectLanguage also returns the number of letters seen.
func detectLanguage(text string) (string, float64, int) {
	var keyBuf [langMaxGrams]uint64
	keys, letters, latin := appendTrigramsCount(keyBuf[:0], text, langMaxGrams)
	if letters == 0 {
		return LangOther, 0, 0
	}
	if frac := float64(latin) / float64(letters); frac < 0.5 {
		return LangOther, 1 - frac, letters
	}
	m := theLangModel()
	L := len(m.names)
	n := len(keys)
	if n == 0 {
		return LangOther, 0, letters
	}
	var accBuf [32]float32
	acc := accBuf[:L]
	if L > len(accBuf) {
		acc = make([]float32, L)
	}
	for _, k := range keys {
		p := m.unseen
		if row, ok := m.index[k]; ok {
			p = m.rows[int(row)*L : int(row)*L+L]
		}
		for i, v := range p[:L] {
			acc[i] += v
		}
	}
	var llBuf [32]float64
	ll := llBuf[:L]
	if L > len(llBuf) {
		ll = make([]float64, L)
	}
	for i, v := range acc {
		ll[i] = float64(v)
	}
	// Posterior with the evidence capped at langEvidence trigrams.
	scale := math.Min(1, langEvidence/float64(n))
	best := 0
	for i := range ll {
		if ll[i] > ll[best] {
			best = i
		}
	}
	var z float64
	for i := range ll {
		z += math.Exp((ll[i] - ll[best]) * scale)
	}
	// The supported languages' probabilities; extra profiles pool into
	// "other".
	name := m.names[best]
	if !slices.Contains(supportedLangs, name) {
		var pOther float64
		for i := len(supportedLangs); i < L; i++ {
			pOther += math.Exp((ll[i]-ll[best])*scale) / z
		}
		return LangOther, pOther, letters
	}
	return name, 1 / z, letters
}

// languageFilter checks the language of the answers: against the
// prompt's (language.prompt_mismatch) and, when targets are set, against
// them (language.non_target).
type languageFilter struct {
	on            ruleSet
	targets       []string // nil: any
	minConfidence float64
	minLetters    int
	scope         string
}

func newLanguageFilter(c LanguageConfig, on ruleSet) (*languageFilter, error) {
	theLangModel() // train now rather than inside the first Check
	return &languageFilter{on: on, targets: c.Languages, minConfidence: c.MinConfidence, minLetters: c.MinLetters, scope: c.Scope}, nil
}

func (f *languageFilter) Name() string { return FilterLanguage }

// detectRoles detects the language of the prose of the turns use
// selects.
func detectRoles(sc *scratch, msgs []datasets.Message, use func(role string) bool) (string, float64, int) {
	b := sc.buf2[:0]
	for _, m := range msgs {
		if !use(m.Role) {
			continue
		}
		if len(b) > 0 {
			b = append(b, "\n\n"...)
		}
		b = appendProse(b, m.Content)
		if len(b) > 4*langMaxGrams {
			break // enough text
		}
	}
	sc.buf2 = b
	text := bstr(b)
	if strings.IndexByte(text, '`') >= 0 {
		sc.buf = appendNoInlineCode(sc.buf[:0], text)
		text = bstr(sc.buf)
	}
	return memoLanguage(text)
}

func (f *languageFilter) Check(s *datasets.Sample) Verdict {
	sc := getScratch()
	defer putScratch(sc)
	var cl closest
	isAnswer := func(r string) bool { return r == datasets.RoleAssistant }
	if f.on.has(0) && f.targets != nil {
		use := isAnswer
		switch f.scope {
		case "prompt":
			use = func(r string) bool { return r == datasets.RoleUser }
		case "conversation":
			use = func(r string) bool { return r != datasets.RoleSystem }
		}
		lang, conf, letters := detectRoles(sc, s.Messages, use)
		const rule = "language.non_target"
		switch {
		case f.minLetters > 0 && letters < f.minLetters:
		case slices.Contains(f.targets, lang):
			cl.note(rule, conf, f.minConfidence, 1)
		case conf < f.minConfidence:
			cl.min(rule, f.minConfidence-conf, 0)
		default:
			return drop(rule, "non-target language", conf, f.minConfidence, lang)
		}
	}
	if f.on.has(1) {
		const rule = "language.prompt_mismatch"
		al, ac, aLetters := detectRoles(sc, s.Messages, isAnswer)
		// Short answers are not judged, unless in another script
		// (a dozen CJK characters say enough).
		if f.minLetters > 0 && aLetters < f.minLetters && !(al == LangOther && ac > 0.9 && aLetters >= 10) {
			return cl.keep()
		}
		cues := 0
		for _, m := range s.Messages {
			if m.Role == datasets.RoleUser {
				if asksForLanguage(sc, m.Content) {
					return cl.keep()
				}
				cues = max(cues, englishCues(sc, m.Content))
			}
		}
		// The prompt's language is detected only where it decides
		// something: the script rule below, or a prompt without two
		// English cue words. (Most prompts have them, and trigram
		// detection of a prompt that is not reused cannot be memoised.)
		var pl string
		var pc float64
		pLetters := -1
		detectPrompt := func() {
			if pLetters < 0 {
				pl, pc, pLetters = detectRoles(sc, s.Messages, func(r string) bool { return r == datasets.RoleUser })
			}
		}
		// Scripts settle it when they differ: a Latin-script prompt
		// answered in Chinese, or the other way round.
		if aLetters >= 10 {
			ps, as := rolesLatinShare(s.Messages, datasets.RoleUser), rolesLatinShare(s.Messages, datasets.RoleAssistant)
			if (ps >= 0.9 && as < 0.5) || (ps < 0.5 && as >= 0.9) {
				if detectPrompt(); pLetters >= 10 {
					return drop(rule, "answer not in the prompt's script", 1-math.Abs(ps-as), 0.5, fmt.Sprintf("prompt %.0f%% Latin letters, answer %.0f%%", 100*ps, 100*as))
				}
			}
		}
		if cues >= 2 {
			pl, pc = "en", 1 // short English prompts look like anything to trigrams
		} else if detectPrompt(); pLetters < minPromptLetters {
			return cl.keep()
		}
		if al == pl || pc < f.minConfidence {
			return cl.keep()
		}
		detail := fmt.Sprintf("prompt %s (%.2f), answer %s (%.2f)", pl, pc, al, ac)
		if ac >= mismatchConfidence {
			return drop(rule, "answer not in the prompt's language", ac, mismatchConfidence, detail)
		}
		cl.max(rule, ac, mismatchConfidence)
		cl.v.Detail = detail
	}
	return cl.keep()
}

// countLatin counts the letters of s and those in the Latin script.
func countLatin(s string) (letters, latin int) {
	for _, r := range s {
		if r < utf8.RuneSelf {
			if ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
				letters++
				latin++
			}
			continue
		}
		if unicode.IsLetter(r) {
			letters++
			if unicode.Is(unicode.Latin, r) {
				latin++
			}
		}
	}
	return letters, latin
}

// rolesLatinShare is the share of Latin-script letters in the first
// 2,000 bytes of each turn of the role (1 with no letters).
func rolesLatinShare(msgs []datasets.Message, role string) float64 {
	letters, latin := 0, 0
	for _, m := range msgs {
		if m.Role == role {
			l, t := memoCountLatin(m.Content)
			letters += l
			latin += t
		}
	}
	if letters == 0 {
		return 1
	}
	return float64(latin) / float64(letters)
}

// mismatchConfidence: an answer is taken to be in another language than
// the prompt only when the identifier is this sure of it (lists of
// names, tables and terse answers come out unsure).
const mismatchConfidence = 0.9

// englishCueWords are frequent English words that are not words of the
// other supported languages.
var englishCueWords = wordSet(`the and what how you your with this that are please can does which why would could
	should write give my have from about there is do i where who when it`)

// englishCues counts the distinct English cue words of s (up to 3).
func englishCues(sc *scratch, s string) int {
	var seen [3]uint64
	n := 0
	for i := 0; i < len(s) && n < len(seen); {
		if !isASCIILetter(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isASCIILetter(s[j]) {
			j++
		}
		if j-i <= 6 {
			sc.buf3 = lowerASCII(sc.buf3[:0], s[i:j])
			if w := bstr(sc.buf3); englishCueWords[w] {
				if h := strHash(w); !slices.Contains(seen[:n], h) {
					seen[n] = h
					n++
				}
			}
		}
		i = j
	}
	return n
}

func isASCIILetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// minPromptLetters: a prompt with fewer letters and no English cue words
// is too short for the trigram identifier ("Is online casino legal in
// India?" reads as Italian) and is not matched.
const minPromptLetters = 60

// languageNames in a prompt mean that it may ask for an answer in another
// language (a translation, a letter in French).
var languageNames = []string{"translat", "french", "german", "spanish", "italian", "portuguese", "dutch", "russian",
	"chinese", "mandarin", "cantonese", "japanese", "korean", "arabic", "hindi", "polish", "swedish", "danish", "norwegian",
	"finnish", "turkish", "greek", "hebrew", "latin", "vietnamese", "thai", "indonesian", "czech", "hungarian", "romanian",
	"ukrainian", "persian", "farsi", "swahili", "catalan", "esperanto", "bengali", "urdu", "tagalog", "malay",
	"français", "deutsch", "español", "italiano", "português", "nederlands", "русск", "中文", "日本語", "한국어",
	"英", "翻译", "翻譯", "traduc", "tradu", "übersetz", "vertaal", "перев"}

// asksForLanguage reports whether prompt names a language or asks for a
// translation.
// It reads the lower-cased prompt once: only where its next two bytes
// begin some name are the names with that beginning compared.
func asksForLanguage(sc *scratch, prompt string) bool {
	sc.buf3 = lowerASCII(sc.buf3[:0], prompt)
	lp := sc.buf3
	idx := theLanguageNameIndex()
	for i := 0; i+1 < len(lp); i++ {
		for _, n := range idx[uint16(lp[i])<<8|uint16(lp[i+1])] {
			if bytes.HasPrefix(lp[i:], n) {
				return true
			}
		}
	}
	return false
}

// theLanguageNameIndex lists languageNames by their first two bytes
// (every name has at least two).
var theLanguageNameIndex = sync.OnceValue(func() *[1 << 16][][]byte {
	var idx [1 << 16][][]byte
	for _, n := range languageNames {
		k := uint16(n[0])<<8 | uint16(n[1])
		idx[k] = append(idx[k], []byte(n))
	}
	return &idx
})

// appendNoInlineCode appends s with its `code spans` replaced by a
// space: identifiers say nothing about the language of the prose.
func appendNoInlineCode(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '`')
		if j < 0 {
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, ' ')
		s = s[i+1+j+1:]
	}
	return append(dst, s...)
}
