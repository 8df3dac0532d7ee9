package synth

import (
	"strings"
	"sync"
	"unicode"
)

// RougeTokens splits text into ROUGE tokens: lower-cased runs of letters
// and digits, everything else a separator. This is the tokenizer of
// Google's rouge_score package (which Self-Instruct used, without
// stemming), except that letters and digits of every script count, not
// only a-z and 0-9.
func RougeTokens(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// LCS is the length of the longest common subsequence of two token
// sequences.
func LCS(a, b []string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(b) == 0 {
		return 0
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// RougeL is the ROUGE-L F-measure (β = 1) of a candidate against a
// reference: with l the LCS of their tokens, precision l/|candidate|,
// recall l/|reference| and F = 2PR/(P+R) = 2l/(|candidate|+|reference|).
// It is symmetric, in [0, 1], and 0 when either text has no tokens.
func RougeL(candidate, reference string) float64 {
	return rougeLTokens(RougeTokens(candidate), RougeTokens(reference))
}

func rougeLTokens(c, r []string) float64 {
	if len(c) == 0 || len(r) == 0 {
		return 0
	}
	l := LCS(c, r)
	if l == 0 {
		return 0
	}
	p := float64(l) / float64(len(c))
	rec := float64(l) / float64(len(r))
	return 2 * p * rec / (p + rec)
}

// DefaultNoveltyThreshold is Self-Instruct's: a new instruction is kept
// only when its ROUGE-L F against every known one is below 0.7.
const DefaultNoveltyThreshold = 0.7

// NoveltyIndex holds instructions and tells whether a new one is novel:
// its ROUGE-L F against every held text is below the threshold. It is
// safe for concurrent use. Checks scan the held texts (as Self-Instruct
// does) but skip those whose length alone bounds the F below the best
// found so far (F ≤ 2·min(n,m)/(n+m)), and Novel and TryAdd stop at the
// first text at or above the threshold.
type NoveltyIndex struct {
	threshold float64

	mu    sync.RWMutex
	texts []string
	toks  [][]string
}

// NewNoveltyIndex returns an index holding texts; threshold ≤ 0 means
// DefaultNoveltyThreshold.
func NewNoveltyIndex(threshold float64, texts ...string) *NoveltyIndex {
	if threshold <= 0 {
		threshold = DefaultNoveltyThreshold
	}
	x := &NoveltyIndex{threshold: threshold}
	for _, t := range texts {
		x.add(t, RougeTokens(t))
	}
	return x
}

// Threshold returns the index's threshold.
func (x *NoveltyIndex) Threshold() float64 { return x.threshold }

// Len is the number of texts held.
func (x *NoveltyIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.texts)
}

// Nearest returns the held text most similar to text and its ROUGE-L F
// (0 and "" when nothing shares a token with it).
func (x *NoveltyIndex) Nearest(text string) (score float64, nearest string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.nearest(RougeTokens(text), 2)
}

// nearest scans for the best ROUGE-L F, stopping once it reaches stopAt.
func (x *NoveltyIndex) nearest(t []string, stopAt float64) (float64, string) {
	best, arg := 0.0, ""
	n := len(t)
	for i, h := range x.toks {
		m := len(h)
		if n == 0 || m == 0 || 2*float64(min(n, m))/float64(n+m) <= best {
			continue
		}
		if f := rougeLTokens(t, h); f > best {
			best, arg = f, x.texts[i]
			if best >= stopAt {
				break
			}
		}
	}
	return best, arg
}

// Novel reports whether text is novel. When it is not, score and nearest
// are the first held text found at or above the threshold; when it is,
// they are the most similar held text.
func (x *NoveltyIndex) Novel(text string) (ok bool, score float64, nearest string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	score, nearest = x.nearest(RougeTokens(text), x.threshold)
	return score < x.threshold, score, nearest
}

// Add holds text without checking it.
func (x *NoveltyIndex) Add(text string) {
	x.mu.Lock()
	x.add(text, RougeTokens(text))
	x.mu.Unlock()
}

// TryAdd holds text if it is novel, atomically, so concurrent callers
// never both admit near-duplicates; it reports what Novel would.
func (x *NoveltyIndex) TryAdd(text string) (ok bool, score float64, nearest string) {
	t := RougeTokens(text)
	x.mu.Lock()
	defer x.mu.Unlock()
	score, nearest = x.nearest(t, x.threshold)
	if score >= x.threshold {
		return false, score, nearest
	}
	x.add(text, t)
	return true, score, nearest
}

func (x *NoveltyIndex) add(text string, t []string) {
	x.texts = append(x.texts, text)
	x.toks = append(x.toks, t)
}
