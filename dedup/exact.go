// Package dedup holds sieve's deduplication algorithms as plain Go; the
// Beam composites that run them at scale live in package transforms.
//
//   - Exact dedup: ExactKey, a hash of the normalised conversation.
//   - Fuzzy dedup, step by step: TextConfig normalises a text and cuts it
//     into hashed shingles (word or character n-grams); a Hasher turns
//     the shingle set into a MinHash signature of NumPerm 64-bit values
//     (FastHasher, sieve's own, or EkzhuHasher, ekzhu/minhash-lsh's);
//     OptimalBands picks bands × rows for a Jaccard threshold and
//     BandKeys gives one 64-bit LSH bucket key per band; documents that
//     share a bucket key are candidate pairs, verified by CompactJaccard
//     (exact, on CompactSet shingle sets) or EstimateJaccard (on the
//     signatures); Components, or the LargeStar and SmallStar rounds that
//     compute the same components in a distributed way, group the
//     verified pairs into duplicate clusters.
//   - Incremental and cross-dataset dedup: Index, a saved and loaded set
//     of signatures under their real ids, queried with the same band
//     keys.
//
// Signatures, band keys and index files depend on the TextConfig
// (normalisation, shingling, NumPerm, Seed, Hasher) and are comparable
// only between equal configurations.
package dedup

import (
	"crypto/sha256"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// KeyMode selects which part of a conversation the exact-dedup key covers.
type KeyMode string

// Key modes.
const (
	// KeyConversation keys on every message, roles included: two samples
	// are duplicates only when whole conversations match.
	KeyConversation KeyMode = "conversation"
	// KeyPrompt keys on the system and user turns only: samples that ask
	// the same thing are duplicates whatever they answer.
	KeyPrompt KeyMode = "prompt"
)

// ParseKeyMode validates a key mode from a recipe.
func ParseKeyMode(s string) (KeyMode, error) {
	switch KeyMode(s) {
	case "", KeyConversation:
		return KeyConversation, nil
	case KeyPrompt:
		return KeyPrompt, nil
	}
	return "", fmt.Errorf("unknown dedup key %q (want conversation or prompt)", s)
}

// Key is a 128-bit exact-dedup key.
type Key [16]byte

// ExactKey hashes the normalised text of the messages selected by mode.
// Normalisation lower-cases (Unicode simple folding to lower case),
// collapses every run of white space to one space and trims both ends, so
// "Hello  World\n" and "hello world" share a key. Each message contributes
// its role, a 0 byte, its normalised content and a 0xff byte.
func ExactKey(msgs []datasets.Message, mode KeyMode) Key {
	h := sha256.New()
	buf := make([]byte, 0, 1024)
	for _, m := range msgs {
		if mode == KeyPrompt && m.Role == datasets.RoleAssistant {
			continue
		}
		buf = append(buf[:0], m.Role...)
		buf = append(buf, 0)
		buf = AppendNormalized(buf, m.Content)
		buf = append(buf, 0xff)
		h.Write(buf)
	}
	var k Key
	var sum [sha256.Size]byte
	copy(k[:], h.Sum(sum[:0]))
	return k
}

// AppendNormalized appends s lower-cased with white-space runs collapsed
// to one space and leading and trailing white space removed.
func AppendNormalized(dst []byte, s string) []byte {
	space := false
	start := len(dst)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				space = true
				continue
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			if space && len(dst) > start {
				dst = append(dst, ' ')
			}
			space = false
			dst = append(dst, c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
	}
	return dst
}
