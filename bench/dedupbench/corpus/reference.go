package corpus

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/sieve-data/sieve/dedup"
)

// Reference shingling: the benchmark's ground truth is the Jaccard
// similarity of the sets of n-gram strings of the normalised texts,
// computed here from TextConfig's documented meaning and nothing of
// package dedup's code (no hashing, no compact sets, no payloads): words
// are strings.Fields of the normalised text, shingles are the n-grams
// joined by one space (characters: n consecutive runes), and the sets are
// of distinct strings, numbered by a dictionary so that two shingles get
// one number only when they are equal. Where dedup's hashed, 32-bit
// compacted sets or its normaliser disagree with this, the production
// code's precision and recall show it.

// ReferenceNormalize applies c's switches to s as TextConfig documents
// them: NFKC, lower case, punctuation and symbols to spaces, decimal
// digits to 0, white-space runs to one space.
func ReferenceNormalize(s string, c dedup.TextConfig) string {
	if c.NFKC {
		s = norm.NFKC.String(s)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case c.FoldPunct && (unicode.IsPunct(r) || unicode.IsSymbol(r)):
			r = ' '
		case c.FoldDigits && unicode.IsDigit(r):
			r = '0'
		case c.Lowercase:
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	s = b.String()
	if c.CollapseWhitespace {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s
}

// ReferenceShingles returns the distinct shingle strings of text under c.
// A text shorter than one n-gram is one shingle (the whole text), as long
// as it is not empty.
func ReferenceShingles(text string, c dedup.TextConfig) []string {
	s := ReferenceNormalize(text, c)
	n := c.NGram()
	var units []string
	sep := " "
	if c.Shingle == dedup.ShingleChar {
		for _, r := range s {
			units = append(units, string(r))
		}
		sep = ""
	} else {
		units = strings.Fields(s)
	}
	if len(units) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for i := 0; i+n <= len(units) || i == 0; i++ {
		g := strings.Join(units[i:min(i+n, len(units))], sep)
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// ReferenceSets returns every text's shingle set as sorted dictionary
// numbers (equal numbers for equal strings only), for TruePairs and
// ReferenceJaccard.
func ReferenceSets(texts []string, c dedup.TextConfig) [][]uint64 {
	dict := map[string]uint64{}
	out := make([][]uint64, len(texts))
	for i, t := range texts {
		for _, g := range ReferenceShingles(t, c) {
			id, ok := dict[g]
			if !ok {
				id = uint64(len(dict))
				dict[g] = id
			}
			out[i] = append(out[i], id)
		}
		slices.Sort(out[i])
	}
	return out
}

// ReferenceJaccard is the Jaccard similarity of two ReferenceSets.
func ReferenceJaccard(a, b []uint64) float64 { return sortedJaccard(a, b) }
