package filters

import (
	"fmt"
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
		return drop("truncation.mid_sentence", "ends mid-sentence", 1, 0, why)
	}
	return Verdict{Keep: true}
}

// endsCleanly reports whether a response ends where a writer could have
// stopped: after terminal punctuation (also inside closing quotes or
// brackets), a closing code fence, a closing bracket of code, a number, an
// emoji or symbol, or on a line that is a list item, a table row, a
// heading or indented code. Otherwise it says what the text ends with.
// A response inside an unclosed fence is left to the code_fences rule.
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
	// Structured last lines: indented code, list items, tables, headings.
	if strings.HasPrefix(lastLine, "    ") || strings.HasPrefix(lastLine, "\t") {
		return true, ""
	}
	trimmed := strings.TrimLeft(lastLine, " ")
	if isListItem(trimmed) || strings.HasPrefix(trimmed, "|") || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ">") {
		return true, ""
	}
	// Look through closing quotes, brackets and markdown emphasis.
	end := s
	for len(end) > 0 {
		r, n := utf8.DecodeLastRuneInString(end)
		switch r {
		case '"', '\'', '”', '’', '»', ')', ']', '*', '_', '`', '」', '』', '）':
			end = end[:len(end)-n]
			continue
		}
		break
	}
	if end == "" {
		return true, ""
	}
	r, _ := utf8.DecodeLastRuneInString(end)
	switch r {
	case '.', '!', '?', '…', '。', '！', '？', ';', '}', '>', '/', '%', '$', '€', '£', '=', '‽', '؟', '।':
		return true, ""
	case ':':
		return false, "ends with a colon"
	case ',':
		return false, "ends with a comma"
	}
	// Anything closing that is not a letter (the closing bracket case was
	// looked through above, so a text ending "(see" stays a letter).
	if r >= '0' && r <= '9' {
		return true, ""
	}
	if unicode.IsLetter(r) {
		w := end[strings.LastIndexFunc(end, func(r rune) bool { return !unicode.IsLetter(r) })+1:]
		if len(w) > 24 {
			w = w[len(w)-24:]
		}
		return false, fmt.Sprintf("ends with the word %q", w)
	}
	if unicode.Is(unicode.So, r) || unicode.Is(unicode.Sk, r) || unicode.Is(unicode.Sm, r) || unicode.Is(unicode.Sc, r) {
		return true, ""
	}
	return false, fmt.Sprintf("ends with %q", r)
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
// boilerplate phrase.
type refusalFilter struct {
	phrases [][]byte // lower-cased, ’ read as '
	byFirst [256][]int
	// second[c0] has bit c1 set when a phrase starts with c0, c1 (an
	// apostrophe also sets 0xe2, the first byte of ’).
	second [256][4]uint64
}

func newRefusalFilter(phrases []string) *refusalFilter {
	f := &refusalFilter{}
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
	return f
}

func (f *refusalFilter) Name() string { return FilterRefusal }

func (f *refusalFilter) Check(s *datasets.Sample) Verdict {
	if len(f.phrases) == 0 {
		return Verdict{Keep: true}
	}
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		if k, ok := f.find(m.Content); ok {
			return drop("refusal.phrase", "refusal or boilerplate phrase", 1, 0, fmt.Sprintf("turn %d: %q", i, f.phrases[k]))
		}
	}
	return Verdict{Keep: true}
}

// find returns the index of a phrase occurring in s at a word start,
// comparing ASCII letters case-insensitively and reading ’ and ‘ as '.
func (f *refusalFilter) find(s string) (int, bool) {
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
					return k, true
				}
			}
		}
		prevWord = c >= 0x80 || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
	}
	return 0, false
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
// user turn before it: the share of the response's word 3-grams that
// occur in that user turn is above the threshold.
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
		sc.tab.reset(len(uh))
		distinct := 0
		for j := 0; j+3 <= len(uh); j++ {
			if !sc.tab.insert(mix(mix(uh[j], uh[j+1]), uh[j+2])) {
				distinct++
			}
		}
		// Each prompt 3-gram counts once, so a response of more than
		// distinct/threshold 3-grams cannot repeat the prompt enough:
		// stop reading it there.
		limit := int(float64(distinct)/f.threshold) + 3
		rh, _, buf := normWordHashes(sc.hs[:0], nil, false, m.Content, sc.buf, limit+1)
		sc.hs, sc.buf = rh, buf
		if len(rh) < max(f.minWords, 3) || len(rh) > limit {
			continue
		}
		hits, total := 0, 0
		for j := 0; j+3 <= len(rh); j++ {
			total++
			if slot := sc.tab.slot(mix(mix(rh[j], rh[j+1]), rh[j+2])); slot >= 0 && sc.tab.count[slot] >= 0 {
				sc.tab.count[slot] = -1 // count each prompt 3-gram once
				hits++
			}
		}
		v := float64(hits) / float64(total)
		if v > f.threshold {
			return drop(rule, "response repeats the prompt", v, f.threshold, fmt.Sprintf("turn %d repeats turn %d", i, user))
		}
		cl.max(rule, v, f.threshold)
	}
	return cl.keep()
}
