package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token added on top of the BPE vocabulary, such as a
// special token (<|im_start|>, <|eot_id|>, ...). Added tokens are matched
// in the text before pre-tokenization and always become one id.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // match only as a whole word
	LStrip     bool   `json:"lstrip"`      // swallow whitespace on the left
	RStrip     bool   `json:"rstrip"`      // swallow whitespace on the right
	Normalized bool   `json:"normalized"`  // match in the normalized text
	Special    bool   `json:"special"`     // a control token (not text)
}

// addedMatcher finds added tokens in text, leftmost-longest and without
// overlaps, as the Aho-Corasick automaton of Hugging Face tokenizers
// (MatchKind::LeftmostLongest) does.
type addedMatcher struct {
	byContent map[string]*AddedToken
	lengths   []int     // distinct content lengths, longest first
	first     [256]bool // bytes that start some content
}

func newAddedMatcher(tokens []*AddedToken, content func(*AddedToken) string) *addedMatcher {
	if len(tokens) == 0 {
		return nil
	}
	m := &addedMatcher{byContent: map[string]*AddedToken{}}
	seen := map[int]bool{}
	for _, t := range tokens {
		c := content(t)
		if c == "" {
			continue
		}
		if _, dup := m.byContent[c]; !dup {
			m.byContent[c] = t
		}
		if !seen[len(c)] {
			seen[len(c)] = true
			m.lengths = append(m.lengths, len(c))
		}
		m.first[c[0]] = true
	}
	if len(m.byContent) == 0 {
		return nil
	}
	sort.Sort(sort.Reverse(sort.IntSlice(m.lengths)))
	return m
}

// find returns the next added token in s at or after from: the match
// [start, end) including the whitespace that lstrip and rstrip take, and
// the token. A single_word token touching a word character on either
// side is passed over, and the search goes on after it.
func (m *addedMatcher) find(s string, from int) (start, end int, tok *AddedToken) {
	if m == nil {
		return 0, 0, nil
	}
scan:
	for i := from; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, l := range m.lengths {
			if i+l > len(s) {
				continue
			}
			t, ok := m.byContent[s[i:i+l]]
			if !ok {
				continue
			}
			start, end = i, i+l
			if t.SingleWord {
				if r, _ := utf8.DecodeLastRuneInString(s[:start]); start > 0 && isWordRune(r) {
					i = end - 1
					continue scan
				}
				if r, _ := utf8.DecodeRuneInString(s[end:]); end < len(s) && isWordRune(r) {
					i = end - 1
					continue scan
				}
			}
			if t.LStrip {
				for start > from {
					r, w := utf8.DecodeLastRuneInString(s[:start])
					if !unicode.IsSpace(r) {
						break
					}
					start -= w
				}
			}
			if t.RStrip {
				for end < len(s) {
					r, w := utf8.DecodeRuneInString(s[end:])
					if !unicode.IsSpace(r) {
						break
					}
					end += w
				}
			}
			return start, end, t
		}
	}
	return 0, 0, nil
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
}
