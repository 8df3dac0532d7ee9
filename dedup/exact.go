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
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// KeyMode selects which part of a conversation dedup compares.
type KeyMode string

// Key modes.
const (
	// KeyConversation compares every message: two samples are duplicates
	// when their whole conversations match (exact) or are similar
	// (fuzzy), so a long shared prompt can outweigh different answers.
	KeyConversation KeyMode = "conversation"
	// KeyPrompt compares the system and user turns only: samples that ask
	// the same thing are duplicates whatever they answer.
	KeyPrompt KeyMode = "prompt"
	// KeyResponse compares the assistant turns only: samples that answer
	// alike are duplicates whatever they were asked.
	KeyResponse KeyMode = "response"
	// KeyTurns compares prompt and response separately: samples are
	// duplicates only when their prompts match and their responses match
	// (fuzzy: each Jaccard at least the threshold). Its exact key is the
	// conversation's, since both parts equal is the whole equal.
	KeyTurns KeyMode = "turns"
)

// KeyModes lists the key modes in the order recipes document them.
var KeyModes = []KeyMode{KeyConversation, KeyPrompt, KeyResponse, KeyTurns}

// ParseKeyMode validates a key mode from a recipe; "" is KeyConversation.
func ParseKeyMode(s string) (KeyMode, error) {
	switch m := KeyMode(s); m {
	case "":
		return KeyConversation, nil
	case KeyConversation, KeyPrompt, KeyResponse, KeyTurns:
		return m, nil
	}
	return "", fmt.Errorf("unknown dedup key %q (want conversation, prompt, response or turns)", s)
}

// keeps says whether a message of role takes part in mode's text: the
// assistant's only for KeyResponse, all but the assistant's for
// KeyPrompt, every message otherwise.
func (m KeyMode) keeps(role string) bool {
	switch m {
	case KeyPrompt:
		return role != datasets.RoleAssistant
	case KeyResponse:
		return role == datasets.RoleAssistant
	}
	return true
}

// Key is a 128-bit exact-dedup key.
type Key [16]byte

// ExactKey hashes the normalised text of the messages selected by mode:
// every message for KeyConversation and KeyTurns (prompt and response
// both equal is the whole conversation equal, so the two keys are one),
// the system and user messages for KeyPrompt, the assistant messages for
// KeyResponse.
// Normalisation lower-cases (Unicode simple folding to lower case),
// collapses every run of white space to one space and trims both ends, so
// "Hello  World\n" and "hello world" share a key. Each message contributes
// its role, a 0 byte, its normalised content and a 0xff byte.
func ExactKey(msgs []datasets.Message, mode KeyMode) Key {
	h := sha256.New()
	buf := make([]byte, 0, 1024)
	for _, m := range msgs {
		if !mode.keeps(m.Role) {
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
// to one space and leading and trailing white space removed. Invalid
// UTF-8 bytes become U+FFFD, as ranging over a string gives them.
//
// It is the hot loop of exact dedup (every byte of every sample), so it
// writes through an index into capacity reserved up front and maps ASCII
// bytes through a table; the invariant that makes the writes safe is
// that the room left is at least the input left (ASCII output never
// outgrows its input; a rune's lower case may, so room is checked there).
func AppendNormalized(dst []byte, s string) []byte {
	start := len(dst)
	out := slices.Grow(dst, len(s))
	out = out[:cap(out)]
	n := start
	space := false // a white-space run is pending
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			l := exactNorm[c]
			if l == normSpace {
				space = true
				continue
			}
			if space {
				if n > start {
					out[n] = ' '
					n++
				}
				space = false
			}
			out[n] = l
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		// Room for a space, the rune and every byte still to come.
		if need := 1 + utf8.UTFMax + len(s) - i; len(out)-n < need {
			out = slices.Grow(out[:n], need)
			out = out[:cap(out)]
		}
		if space {
			if n > start {
				out[n] = ' '
				n++
			}
			space = false
		}
		n += utf8.EncodeRune(out[n:], unicode.ToLower(r))
	}
	return out[:n]
}

// exactNorm maps an ASCII byte to its lower case, and white space
// (space, \t, \n, \v, \f, \r) to normSpace, which no ASCII byte is.
var exactNorm = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		switch b := byte(c); {
		case b == ' ' || '\t' <= b && b <= '\r':
			t[c] = normSpace
		case 'A' <= b && b <= 'Z':
			t[c] = b + 'a' - 'A'
		default:
			t[c] = b
		}
	}
	return t
}()

const normSpace = utf8.RuneSelf
