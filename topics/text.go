package topics

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// Field selects which text of a sample is embedded and labelled.
type Field string

// Fields. The zero Field means FieldPrompt.
const (
	// FieldPrompt is the system and user turns.
	FieldPrompt Field = "prompt"
	// FieldResponse is the assistant turns.
	FieldResponse Field = "response"
	// FieldConversation is every turn.
	FieldConversation Field = "conversation"
)

// Valid reports whether f is one of the fields (or empty).
func (f Field) Valid() bool {
	switch f {
	case "", FieldPrompt, FieldResponse, FieldConversation:
		return true
	}
	return false
}

// Text returns the sample's text for the field: the contents of the
// selected turns, in order, joined by newlines.
func (f Field) Text(s *datasets.Sample) string {
	var b strings.Builder
	for _, m := range s.Messages {
		switch f {
		case FieldResponse:
			if m.Role != datasets.RoleAssistant {
				continue
			}
		case FieldConversation:
		default:
			if m.Role == datasets.RoleAssistant {
				continue
			}
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m.Content)
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a rune boundary (n ≤ 0: no cut).
func truncate(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// eachWord calls fn with every word of text: maximal runs of letters and
// digits, lower-cased, at least two runes long, stop words left out. The
// slice passed to fn is reused; fn must copy what it keeps.
func eachWord(text string, buf []byte, fn func(w []byte)) []byte {
	buf = buf[:0]
	runes := 0
	flush := func() {
		if runes >= 2 {
			if _, stop := stopWords[string(buf)]; !stop {
				fn(buf)
			}
		}
		buf = buf[:0]
		runes = 0
	}
	for _, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if r < utf8.RuneSelf {
				if 'A' <= r && r <= 'Z' {
					r += 'a' - 'A'
				}
				buf = append(buf, byte(r))
			} else {
				buf = utf8.AppendRune(buf, unicode.ToLower(r))
			}
			runes++
			continue
		}
		// An apostrophe inside a word ("don't") ends it; the stop list
		// has the pieces.
		flush()
	}
	flush()
	return buf
}

// isLabelWord reports whether a word may be a keyword: not only digits.
func isLabelWord(w []byte) bool {
	for _, c := range w {
		if c < '0' || c > '9' {
			return true
		}
	}
	return false
}

// stopWords are common English function words (and a few instruction
// boilerplate words) that say nothing about a topic. Written for sieve.
var stopWords = func() map[string]struct{} {
	const list = `a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing don done down during each either else even ever every
few for from further get gets got had has have having he her here hers herself him himself his how however i
if in into is it its itself just let like ll may me might more most much must my myself no nor not now of off
often on once one only or other others our ours ourselves out over own per please re same shall she should so
some such than that the their theirs them themselves then there these they this those though through to too
under until up upon us use used using ve very via was we well were what when where whether which while who
whom whose why will with within without would yes yet you your yours yourself yourselves s t d m
give write tell make know want need think something someone thing things way ways also etc e g ie eg`
	m := map[string]struct{}{}
	for _, w := range strings.Fields(list) {
		m[w] = struct{}{}
	}
	return m
}()
