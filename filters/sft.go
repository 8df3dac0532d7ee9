package filters

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// turnOrderFilter checks the shape of the conversation: system turns only
// at the start, then user and assistant alternating, starting with the
// user and ending with the assistant.
type turnOrderFilter struct{ on ruleSet }

func (f *turnOrderFilter) Name() string { return FilterTurnOrder }

func (f *turnOrderFilter) Check(s *datasets.Sample) Verdict {
	msgs := s.Messages
	first := -1 // first non-system turn
	for i, m := range msgs {
		if m.Role != datasets.RoleSystem {
			if first < 0 {
				first = i
			}
		} else if first >= 0 && f.on.has(0) {
			return drop("turn_order.system_not_first", "system turn after the conversation started", float64(i), 0, fmt.Sprintf("turn %d", i))
		}
	}
	if first < 0 {
		if f.on.has(4) {
			return drop("turn_order.last_not_assistant", "no user or assistant turn", 0, 0, "")
		}
		return Verdict{Keep: true}
	}
	if f.on.has(1) && msgs[first].Role != datasets.RoleUser {
		return drop("turn_order.first_not_user", "conversation starts with "+msgs[first].Role, float64(first), 0, fmt.Sprintf("turn %d", first))
	}
	for i := first + 1; i < len(msgs); i++ {
		if msgs[i].Role != msgs[i-1].Role {
			continue
		}
		switch msgs[i].Role {
		case datasets.RoleUser:
			if f.on.has(2) {
				return drop("turn_order.consecutive_user", "two user turns in a row", float64(i), 0, fmt.Sprintf("turns %d and %d", i-1, i))
			}
		case datasets.RoleAssistant:
			if f.on.has(3) {
				return drop("turn_order.consecutive_assistant", "two assistant turns in a row", float64(i), 0, fmt.Sprintf("turns %d and %d", i-1, i))
			}
		}
	}
	if last := len(msgs) - 1; f.on.has(4) && msgs[last].Role != datasets.RoleAssistant {
		return drop("turn_order.last_not_assistant", "conversation ends with "+msgs[last].Role, float64(last), 0, fmt.Sprintf("turn %d", last))
	}
	return Verdict{Keep: true}
}

// emptyFilter drops samples with an empty or white-space-only assistant
// turn (datasets.Sample.Validate already refuses them from readers; this
// catches what later stages, such as PII redaction, leave behind).
type emptyFilter struct{}

func (emptyFilter) Name() string { return FilterEmpty }

func (emptyFilter) Check(s *datasets.Sample) Verdict {
	n := 0
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		n++
		if strings.TrimSpace(m.Content) == "" {
			return drop("empty.response", "empty response", 0, 1, fmt.Sprintf("turn %d", i))
		}
	}
	if n == 0 {
		return drop("empty.response", "no assistant turn", 0, 1, "")
	}
	return Verdict{Keep: true}
}

// fenceFilter drops samples with an assistant turn whose code fences are
// not closed.
type fenceFilter struct{}

func (fenceFilter) Name() string { return FilterCodeFences }

func (fenceFilter) Check(s *datasets.Sample) Verdict {
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant || !hasFenceChars(m.Content) {
			continue
		}
		if line, ok := unclosedFence(m.Content); ok {
			return drop("code_fences.unbalanced", "unclosed code fence", 1, 0, fmt.Sprintf("turn %d, fence opened on line %d", i, line))
		}
	}
	return Verdict{Keep: true}
}

// unclosedFence returns the 1-based line of a code fence that is never
// closed.
func unclosedFence(s string) (int, bool) {
	var open fence
	in, openLine, line := false, 0, 0
	for i := 0; i < len(s); {
		l, next := nextLine(s, i)
		line++
		if f, ok := parseFence(l); ok {
			switch {
			case !in:
				in, open, openLine = true, f, line
			case f.closes(open):
				in = false
			}
		}
		i = next
	}
	return openLine, in
}

// truncationFilter drops samples whose last assistant turn stops
// mid-sentence.
type truncationFilter struct{ minWords int }

func (f *truncationFilter) Name() string { return FilterTruncation }

func (f *truncationFilter) Check(s *datasets.Sample) Verdict {
	last := -1
	for i, m := range s.Messages {
		if m.Role == datasets.RoleAssistant {
			last = i
		}
	}
	if last < 0 {
		return Verdict{Keep: true}
	}
	text := s.Messages[last].Content
	if f.minWords > 0 && !hasWords(text, f.minWords) {
		return Verdict{Keep: true}
	}
	if ok, why := endsCleanly(text); !ok {
		return drop("truncation.mid_sentence", "ends mid-sentence", 1, 0, fmt.Sprintf("%s: %q", why, ending(text, 40)))
	}
	return Verdict{Keep: true}
}

// endsCleanly reports whether a response ends where a writer could have
// stopped, and otherwise says how it ends. SFT answers end in many ways a
// web page does not, so it drops only what really ends mid-sentence:
//
//   - a comma (unless on a short closing line such as "Best regards,"), a
//     colon, a dash or an opening bracket;
//   - a dangling function word ("the", "of", "and", "with", "your");
//   - a table row cut before its closing "|";
//   - a list item without the final punctuation the earlier items have;
//   - a prose line of 8+ words whose last sentence (3+ words) has no end.
//
// Everything else is clean: terminal punctuation, closing brackets and
// quotes (placeholders such as "[Your Name]"), code, digits, symbols and
// emoji, headings, short lines (signatures, titles, verse), and a turn
// inside an unclosed fence, which is left to the code_fences rule.
func endsCleanly(s string) (bool, string) {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if s == "" {
		return true, ""
	}
	lineStart := strings.LastIndexByte(s, '\n') + 1
	lastLine := s[lineStart:]
	if hasFenceChars(s) {
		if _, open := unclosedFence(s); open {
			return true, ""
		}
		if _, ok := parseFence(lastLine); ok {
			return true, "" // closing fence
		}
	}
	if strings.HasPrefix(lastLine, "    ") || strings.HasPrefix(lastLine, "\t") {
		return true, "" // indented code
	}
	trimmed := strings.TrimLeft(lastLine, " ")
	if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ">") {
		return true, ""
	}
	if strings.HasPrefix(trimmed, "|") {
		if strings.HasSuffix(trimmed, "|") || strings.Count(s, "|")-strings.Count(trimmed, "|") < 4 {
			return true, ""
		}
		return false, "table row cut off"
	}
	r, _ := utf8.DecodeLastRuneInString(s)
	switch {
	case strings.ContainsRune(".!?…。！？;}>/%$€£=‽؟।)]\"'”’»」』）*_`~", r):
		return true, "" // terminal punctuation, a closing bracket or quote, code
	case r >= '0' && r <= '9':
		return true, ""
	case r == ',':
		if len(strings.Fields(trimmed)) <= 4 {
			return true, "" // "Best regards,", "Dear Sam,"
		}
		return false, "ends with a comma"
	case r == ':':
		return false, "ends with a colon"
	case r == '(' || r == '[' || r == '{' || r == '-' || r == '–' || r == '—':
		return false, fmt.Sprintf("ends with %q", r)
	case !unicode.IsLetter(r):
		return true, "" // emoji, symbols, other marks
	}
	// The text ends with a letter.
	if blockIsVerse(s, lineStart) {
		return true, "" // verse, lyrics, records: no line of the block has an end
	}
	w := s[strings.LastIndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' && r != '’' })+1:]
	item := isListItem(trimmed)
	body := trimmed
	if item {
		body = strings.TrimLeft(trimmed, "-*+•0123456789.) ")
	}
	if k := strings.LastIndexAny(trimmed, " \t"); trimmed[k+1] == '#' || trimmed[k+1] == '@' {
		return true, "" // hashtags and mentions close posts
	}
	lw := strings.ToLower(w)
	if w != "A" && (danglingWords[lw] || (weakDangling[lw] && len(strings.Fields(body)) >= 6)) {
		return false, fmt.Sprintf("ends on %q", w)
	}
	if item {
		return listEndsCleanly(s, lineStart, body)
	}
	// A prose line: a last sentence with no end is cut off, if it is long
	// (8+ words on the line), follows a sentence end on its line, or reads
	// as running text (lower-case words around a function word).
	words := strings.Fields(body)
	last := 0
	for k, wd := range words[:len(words)-1] {
		if c := wd[len(wd)-1]; c == '.' || c == '!' || c == '?' {
			last = k + 1
		}
	}
	frag := words[last:]
	switch {
	case len(words) >= 8 && len(frag) >= 3, last > 0 && len(frag) >= 2:
		return false, "sentence without an end"
	case len(frag) >= 4 && runningText(frag):
		return false, "sentence without an end"
	}
	return true, "" // signature, title, verse
}

// blockIsVerse reports whether the lines before the last one in its block
// (the lines since the last blank line) mostly end without punctuation,
// as verse, lyrics and records do.
func blockIsVerse(s string, lineStart int) bool {
	lines, bare := 0, 0
	for end := lineStart - 1; end > 0 && lines < 8; {
		start := strings.LastIndexByte(s[:end], '\n') + 1
		l := strings.TrimSpace(s[start:end])
		end = start - 1
		if l == "" {
			break
		}
		lines++
		if r, _ := utf8.DecodeLastRuneInString(l); unicode.IsLetter(r) || unicode.IsDigit(r) {
			bare++
		}
	}
	return lines >= 1 && bare*2 >= lines
}

// runningText reports whether words read as a sentence rather than a
// title or a signature: three or more lower-case words, one of them a
// function word.
func runningText(words []string) bool {
	lower, fn := 0, false
	for _, w := range words {
		r, _ := utf8.DecodeRuneInString(w)
		if unicode.IsLower(r) {
			lower++
			w = strings.ToLower(strings.TrimRight(w, ",;"))
			fn = fn || danglingWords[w] || weakDangling[w]
		}
	}
	return lower >= 3 && fn
}

// listEndsCleanly judges a last line that is a list item (body without
// its marker) by the items of its list: it is cut off when most earlier
// items end with punctuation or a closing mark and it does not, or when
// it is far shorter than they are.
func listEndsCleanly(s string, lineStart int, body string) (bool, string) {
	var lens []int
	withEnd := 0
	// Walk back over the list: items, their continuation lines and blank
	// lines, until other text.
	for end := lineStart - 1; end > 0; {
		start := strings.LastIndexByte(s[:end], '\n') + 1
		l := strings.TrimSpace(s[start:end])
		end = start - 1
		if l == "" {
			continue
		}
		if !isListItem(l) {
			if strings.HasPrefix(s[start:], "  ") {
				continue // continuation of an item
			}
			break
		}
		b := strings.TrimLeft(l, "-*+•0123456789.) ")
		lens = append(lens, len(strings.Fields(b)))
		if r, _ := utf8.DecodeLastRuneInString(l); !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			withEnd++
		}
	}
	n := len(strings.Fields(body))
	if len(lens) >= 2 && withEnd*4 >= len(lens)*3 {
		return false, "list item cut off"
	}
	if len(lens) >= 2 {
		sorted := slices.Clone(lens)
		slices.Sort(sorted)
		if med := sorted[len(sorted)/2]; med >= 6 && n*3 < med {
			return false, "list item cut off"
		}
	}
	return true, ""
}

// danglingWords cannot end an English sentence: articles, most
// prepositions, conjunctions, possessives and auxiliaries. weakDangling
// can (a particle: "log in", "what for"; a pronoun: "this"), so they
// count only at the end of a prose line of 6+ words.
var danglingWords, weakDangling = wordSet(`the a an of with from into onto than and or but nor because although
	whereas whether unless whose your my our their is are was were been being am`),
	wordSet(`to in for on at by about as if that which who this these those will would shall should can
	could may might must has have had does did be very`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// ending returns the last n characters of s (white space trimmed), with
// "…" in front when cut.
func ending(s string, n int) string {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := len(s)
	for k := 0; k < n; k++ {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return "…" + s[i:]
}

// isListItem reports whether line starts like a markdown list item.
func isListItem(line string) bool {
	if len(line) >= 2 && (line[0] == '-' || line[0] == '*' || line[0] == '+') && line[1] == ' ' {
		return true
	}
	if strings.HasPrefix(line, "• ") {
		return true
	}
	i := 0
	for i < len(line) && i < 3 && '0' <= line[i] && line[i] <= '9' {
		i++
	}
	return i > 0 && i+1 < len(line) && (line[i] == '.' || line[i] == ')') && line[i+1] == ' '
}

// refusalFilter drops samples whose assistant turns contain a refusal or
// boilerplate phrase and give no help besides: fewer than minHelp words
// outside the sentences holding a phrase (minHelp < 0: any phrase drops).
type refusalFilter struct {
	id      uint64 // hash of the phrases (refusalMemo's key)
	minHelp int
	phrases [][]byte // lower-cased, ’ read as '
	byFirst [256][]int
	// second[c0] has bit c1 set when a phrase starts with c0, c1 (an
	// apostrophe also sets 0xe2, the first byte of ’).
	second [256][4]uint64
}

func newRefusalFilter(phrases []string, minHelp int) *refusalFilter {
	f := &refusalFilter{minHelp: minHelp}
	for _, p := range phrases {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		b := lowerASCII(nil, p)
		f.byFirst[b[0]] = append(f.byFirst[b[0]], len(f.phrases))
		f.phrases = append(f.phrases, b)
		if len(b) > 1 {
			c1 := b[1]
			f.second[b[0]][c1>>6] |= 1 << (c1 & 63)
			if c1 == '\'' {
				f.second[b[0]][0xe2>>6] |= 1 << (0xe2 & 63)
			}
		} else {
			f.second[b[0]] = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		}
	}
	f.id = phrasesID(f.phrases)
	return f
}

// phrasesID is a 64-bit hash of a phrase list: the refusal memo's tag,
// so that filters with different lists never share an entry.
func phrasesID(phrases [][]byte) uint64 {
	var h maphash.Hash
	h.SetSeed(memoSeeds[0])
	for _, p := range phrases {
		h.Write(p)
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (f *refusalFilter) Name() string { return FilterRefusal }

func (f *refusalFilter) Check(s *datasets.Sample) Verdict {
	if len(f.phrases) == 0 {
		return Verdict{Keep: true}
	}
	const rule = "refusal.phrase"
	var cl closest
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		text := m.Content
		k, at, ok := f.memoFind(text)
		if !ok {
			continue
		}
		if f.minHelp < 0 {
			return drop(rule, "refusal or boilerplate phrase", 1, 0, fmt.Sprintf("turn %d: %q", i, f.phrases[k]))
		}
		// Words outside the sentences that hold a phrase.
		total, _ := countWords(text)
		refusing := 0
		for pos := 0; ok; {
			a, b := sentenceAround(text, pos+at, pos+at+len(f.phrases[k]))
			if boilerplate(f.phrases[k]) {
				// Identity boilerplate opens answers as often as refusals:
				// only the phrase itself is not help.
				a, b = pos+at, min(len(text), pos+at+len(f.phrases[k]))
			}
			n, _ := countWords(text[a:b])
			refusing += n
			pos = b
			var k2 int
			k2, at, ok = f.find(text[pos:])
			if ok {
				k = k2
			}
		}
		help := total - refusing
		if help < f.minHelp {
			k0, _, _ := f.find(text)
			return drop(rule, "refuses without helping", float64(help), float64(f.minHelp), fmt.Sprintf("turn %d: %q, %d other words", i, f.phrases[k0], help))
		}
		cl.min(rule, float64(help), float64(f.minHelp))
	}
	return cl.keep()
}

// boilerplate reports whether a lower-case phrase is model-identity or
// knowledge-cutoff boilerplate rather than a refusal.
func boilerplate(p []byte) bool {
	s := string(p)
	return strings.HasPrefix(s, "as a") || strings.HasPrefix(s, "as of") || strings.Contains(s, "openai") || strings.Contains(s, "knowledge cutoff")
}

// sentenceAround returns the bounds of the sentence of s holding [a, b):
// from after the previous sentence end or line break to the next.
func sentenceAround(s string, a, b int) (int, int) {
	start := 0
	for i := a - 1; i >= 0; i-- {
		c := s[i]
		if c == '\n' || ((c == '.' || c == '!' || c == '?') && i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\n')) {
			start = i + 1
			break
		}
	}
	end := len(s)
	for i := b; i < len(s); i++ {
		c := s[i]
		if c == '\n' || ((c == '.' || c == '!' || c == '?') && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n')) {
			end = i + 1
			break
		}
	}
	return start, end
}

// find returns the index of a phrase occurring in s at a word start and
// its byte offset, comparing ASCII letters case-insensitively and reading
// ’ and ‘ as '.
func (f *refusalFilter) find(s string) (int, int, bool) {
	prevWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !prevWord && len(f.byFirst[c]) > 0 && i+1 < len(s) {
			c1 := s[i+1]
			if 'A' <= c1 && c1 <= 'Z' {
				c1 += 'a' - 'A'
			}
			if f.second[c][c1>>6]&(1<<(c1&63)) == 0 {
				prevWord = c >= 0x80 || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
				continue
			}
			for _, k := range f.byFirst[c] {
				if hasPrefixFold(s[i:], f.phrases[k]) {
					return k, i, true
				}
			}
		}
		prevWord = c >= 0x80 || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
	}
	return 0, 0, false
}

// hasPrefixFold reports whether s starts with the lower-case phrase p,
// ignoring ASCII case and reading ’ and ‘ in s as '.
func hasPrefixFold(s string, p []byte) bool {
	j := 0
	for _, pc := range p {
		if j >= len(s) {
			return false
		}
		c := s[j]
		if pc == '\'' && c == 0xe2 && j+2 < len(s) && s[j+1] == 0x80 && (s[j+2] == 0x99 || s[j+2] == 0x98) {
			j += 3
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != pc {
			return false
		}
		j++
	}
	return true
}

// echoFilter drops samples where an assistant turn merely repeats the
// user turn before it: the turn holds more than threshold of the
// prompt's distinct word 3-grams, adds few words of its own (at most
// max(4, 10%) words not in the prompt) and does not end on a new word
// (an answer that restates the question and then gives the answer, "…
// is called OrganizerRole", ends on one). A colon at the end ("…
// Answer:") does not count as an answer.
type echoFilter struct {
	threshold float64
	minWords  int
}

func (f *echoFilter) Name() string { return FilterEcho }

func (f *echoFilter) Check(s *datasets.Sample) Verdict {
	if f.threshold < 0 {
		return Verdict{Keep: true}
	}
	sc := getScratch()
	defer putScratch(sc)
	var cl closest
	const rule = "echo.prompt_repeat"
	user := -1
	for i, m := range s.Messages {
		switch m.Role {
		case datasets.RoleUser:
			user = i
			continue
		case datasets.RoleAssistant:
		default:
			continue
		}
		if user < 0 {
			continue
		}
		uh, _, buf := normWordHashes(sc.hs2[:0], nil, false, s.Messages[user].Content, sc.buf, -1)
		sc.hs2, sc.buf = uh, buf
		if len(uh) < 3 {
			continue
		}
		// An echo is about as long as the prompt, or a few copies of it.
		// The response's word count (memoised: an answer reused under
		// many prompts is counted once) rules most responses out before
		// their words are hashed.
		limit := 4*len(uh) + 20
		if n := memoCountNormWords(m.Content); n < max(f.minWords, 3) || n > limit {
			continue
		}
		rh, _, buf := normWordHashes(sc.hs[:0], nil, false, m.Content, sc.buf, -1)
		sc.hs, sc.buf = rh, buf
		// Prompt words, then prompt 3-grams, in one table (3-gram keys
		// are mixed, so they do not collide with word keys in practice).
		sc.tab.reset(2 * len(uh))
		for _, h := range uh {
			sc.tab.insert(h)
		}
		distinct := 0
		for j := 0; j+3 <= len(uh); j++ {
			if !sc.tab.insert(mix(mix(uh[j], uh[j+1]), uh[j+2])) {
				distinct++
			}
		}
		covered := 0
		for j := 0; j+3 <= len(rh); j++ {
			if slot := sc.tab.slot(mix(mix(rh[j], rh[j+1]), rh[j+2])); slot >= 0 && sc.tab.count[slot] == 0 {
				sc.tab.count[slot] = 1 // count each prompt 3-gram once
				covered++
			}
		}
		novel := 0
		for _, h := range rh {
			if sc.tab.slot(h) < 0 {
				novel++
			}
		}
		v := float64(covered) / float64(distinct)
		endsNew := sc.tab.slot(rh[len(rh)-1]) < 0 && !strings.HasSuffix(strings.TrimSpace(m.Content), ":")
		if v > f.threshold && novel <= max(4, len(rh)/10) && !endsNew {
			return drop(rule, "response repeats the prompt", v, f.threshold, fmt.Sprintf("turn %d repeats turn %d: %.0f%% of its 3-grams, %d new words", i, user, 100*v, novel))
		}
		cl.max(rule, v, f.threshold)
	}
	return cl.keep()
}
