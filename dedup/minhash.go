package dedup

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	minhashlsh "github.com/ekzhu/minhash-lsh"
	"golang.org/x/text/unicode/norm"

	"github.com/sieve-data/sieve/datasets"
)

// Shingle kinds.
const (
	// ShingleWord makes shingles of N consecutive words of the normalised
	// text (words are maximal runs of non-space characters).
	ShingleWord = "word"
	// ShingleChar makes shingles of N consecutive characters (runes) of
	// the normalised text, spaces included.
	ShingleChar = "char"
)

// Hasher names for TextConfig.Hasher.
const (
	// HasherFast selects FastHasher, sieve's own signature (the default).
	HasherFast = "fast"
	// HasherEkzhu selects EkzhuHasher, the MinHash of
	// github.com/ekzhu/minhash-lsh.
	HasherEkzhu = "ekzhu"
)

// Defaults of TextConfig.
const (
	DefaultShingle = ShingleWord
	// DefaultWordN is the default word n-gram size, the common choice
	// (text-dedup, datatrove) and on sieve's labelled benchmark
	// (bench/dedupbench) at least as good as 4 and 6 at the headline
	// threshold 0.7. Shorter n-grams make unrelated answers built from
	// the same stock phrases look alike (4-grams put over twice as many
	// unplanted pairs above Jaccard 0.5 as 5-grams, 1-grams over twenty
	// times as many); longer ones cost every edited word that many more
	// shingles, so light edits fall below the threshold.
	DefaultWordN = 5
	// DefaultCharN is the default character n-gram size.
	DefaultCharN = 5
	// DefaultNumPerm is the default signature length.
	DefaultNumPerm = 128
)

// TextConfig says how a text becomes a MinHash signature: how it is
// normalised, cut into shingles and hashed. Two signatures are comparable
// only when they come from the same TextConfig (the Seed included).
//
// The boolean normalisation switches are all on in DefaultTextConfig;
// since a bool's zero value is false, decode a recipe into a struct that
// Defaults has filled first, so that absent keys keep their defaults
// (encoding/json and YAML decoders leave absent fields untouched). Zero
// Shingle, N and NumPerm mean their defaults.
type TextConfig struct {
	// Lowercase maps letters to lower case (Unicode simple folding).
	Lowercase bool `yaml:"lowercase" json:"lowercase"`
	// NFKC applies Unicode compatibility composition first, so that
	// full-width letters, ligatures and the like match their plain forms.
	NFKC bool `yaml:"nfkc" json:"nfkc"`
	// FoldPunct turns every punctuation and symbol character (Unicode
	// categories P and S) into a space, so "don't" reads "don t" and
	// "e.g." reads "e g": punctuation separates words but never makes
	// two texts differ.
	FoldPunct bool `yaml:"fold_punct" json:"fold_punct"`
	// FoldDigits maps every decimal digit to 0, so numbers of the same
	// length match ("ticket 4711" and "ticket 1234").
	FoldDigits bool `yaml:"fold_digits" json:"fold_digits"`
	// CollapseWhitespace turns every run of white space into one space
	// and trims both ends.
	CollapseWhitespace bool `yaml:"collapse_whitespace" json:"collapse_whitespace"`
	// Shingle is ShingleWord ("word", the default) or ShingleChar
	// ("char").
	Shingle string `yaml:"shingle" json:"shingle"`
	// N is the n-gram size in words or characters; 0 means DefaultWordN
	// for word shingles and DefaultCharN for character shingles.
	N int `yaml:"n" json:"n"`
	// NumPerm is the signature length (the number of min-hash values);
	// 0 means DefaultNumPerm.
	NumPerm int `yaml:"num_perm" json:"num_perm"`
	// Seed selects the hash functions (shingle hashing and signature).
	Seed uint64 `yaml:"seed" json:"seed"`
	// Hasher is HasherFast ("fast", the default, also when empty) or
	// HasherEkzhu ("ekzhu").
	Hasher string `yaml:"hasher" json:"hasher"`
}

// DefaultTextConfig returns the defaults: every normalisation on, word
// 5-grams, 128 permutations, seed 0, the fast hasher.
func DefaultTextConfig() TextConfig {
	return TextConfig{
		Lowercase:          true,
		NFKC:               true,
		FoldPunct:          true,
		FoldDigits:         true,
		CollapseWhitespace: true,
		Shingle:            DefaultShingle,
		N:                  DefaultWordN,
		NumPerm:            DefaultNumPerm,
		Hasher:             HasherFast,
	}
}

// Defaults sets every field of c to its default (DefaultTextConfig).
// Call it before decoding a recipe into c.
func (c *TextConfig) Defaults() { *c = DefaultTextConfig() }

// Validate checks the fields that have a closed set of values.
func (c TextConfig) Validate() error {
	switch c.Shingle {
	case "", ShingleWord, ShingleChar:
	default:
		return fmt.Errorf("dedup: unknown shingle %q (want word or char)", c.Shingle)
	}
	switch c.Hasher {
	case "", HasherFast, HasherEkzhu:
	default:
		return fmt.Errorf("dedup: unknown hasher %q (want fast or ekzhu)", c.Hasher)
	}
	if c.N < 0 {
		return fmt.Errorf("dedup: negative n-gram size %d", c.N)
	}
	if c.NumPerm < 0 {
		return fmt.Errorf("dedup: negative num_perm %d", c.NumPerm)
	}
	return nil
}

// shingle returns the shingle kind with its default applied.
func (c TextConfig) shingle() string {
	if c.Shingle == "" {
		return DefaultShingle
	}
	return c.Shingle
}

// NGram returns the n-gram size with its default applied.
func (c TextConfig) NGram() int {
	switch {
	case c.N > 0:
		return c.N
	case c.shingle() == ShingleChar:
		return DefaultCharN
	}
	return DefaultWordN
}

// Perms returns the signature length with its default applied.
func (c TextConfig) Perms() int {
	if c.NumPerm > 0 {
		return c.NumPerm
	}
	return DefaultNumPerm
}

// NewHasher returns the Hasher c selects. It panics on an unknown
// Hasher name (Validate reports it as an error).
func (c TextConfig) NewHasher() Hasher {
	switch c.Hasher {
	case "", HasherFast:
		return NewFastHasher(c.Perms(), c.Seed)
	case HasherEkzhu:
		return NewEkzhuHasher(c.Perms(), c.Seed)
	}
	panic(fmt.Sprintf("dedup: unknown hasher %q", c.Hasher))
}

// SampleText returns the text of a conversation that fuzzy dedup signs
// for its candidates: the contents of every message (KeyConversation),
// of the system and user messages (KeyPrompt) or of the assistant
// messages (KeyResponse and KeyTurns: turns draws its candidates from
// the responses and checks the prompts at verification, see Sketcher),
// in order, joined by newlines. Roles are left out, so that they add no
// shingles of their own.
func SampleText(msgs []datasets.Message, mode KeyMode) string {
	if mode == KeyTurns {
		mode = KeyResponse
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Content) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for _, m := range msgs {
		if !mode.keeps(m.Role) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m.Content)
	}
	return b.String()
}

// Normalize applies c's normalisation to s, in this order: NFKC, lower
// case, punctuation and digit folding, white-space collapsing.
func (c TextConfig) Normalize(s string) string {
	return string(c.appendNormalized(make([]byte, 0, len(s)), s))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendNormalized appends the normalised s to dst.
func (c TextConfig) appendNormalized(dst []byte, s string) []byte {
	if c.NFKC && !isASCII(s) { // ASCII is NFKC-invariant
		s = norm.NFKC.String(s)
	}
	start := len(dst)
	space := false // a white-space run is pending (collapse mode)
	tab := &asciiTables[c.asciiFlags()]
	for i := 0; i < len(s); {
		r := rune(s[i])
		if r < utf8.RuneSelf {
			i++
			b := tab[r]
			if b == asciiSpace {
				space = true
				continue
			}
			if space && len(dst) > start {
				dst = append(dst, ' ')
			}
			space = false
			dst = append(dst, b)
			continue
		}
		var n int
		r, n = utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case c.FoldPunct && (unicode.IsPunct(r) || unicode.IsSymbol(r)):
			r = ' '
		case c.FoldDigits && unicode.IsDigit(r):
			r = '0'
		case c.Lowercase:
			r = unicode.ToLower(r)
		}
		if c.CollapseWhitespace {
			if isSpace(r) {
				space = true
				continue
			}
			if space && len(dst) > start {
				dst = append(dst, ' ')
			}
			space = false
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// asciiSpace marks, in an ASCII table, a byte that starts or continues a
// white-space run to collapse.
const asciiSpace = 0xff

// asciiTables maps each ASCII byte to its normalised byte for every
// combination of the switches that act on ASCII (asciiFlags).
var asciiTables [16][128]byte

func init() {
	for f := range asciiTables {
		lower, digits, punct, collapse := f&1 != 0, f&2 != 0, f&4 != 0, f&8 != 0
		for b := range 128 {
			r := byte(b)
			switch {
			case lower && 'A' <= r && r <= 'Z':
				r += 'a' - 'A'
			case digits && '0' <= r && r <= '9':
				r = '0'
			case punct && asciiPunct(rune(r)):
				r = ' '
			}
			if collapse && isSpace(rune(r)) {
				r = asciiSpace
			}
			asciiTables[f][b] = r
		}
	}
}

func (c TextConfig) asciiFlags() int {
	f := 0
	if c.Lowercase {
		f |= 1
	}
	if c.FoldDigits {
		f |= 2
	}
	if c.FoldPunct {
		f |= 4
	}
	if c.CollapseWhitespace {
		f |= 8
	}
	return f
}

func asciiPunct(r rune) bool {
	return '!' <= r && r <= '/' || ':' <= r && r <= '@' || '[' <= r && r <= '`' || '{' <= r && r <= '~'
}

func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return unicode.IsSpace(r)
}

// Shingles normalises text and returns one 64-bit hash per shingle
// position, in text order: word or character n-grams as c says. A
// repeated shingle repeats its hash (MinHash is indifferent to
// repetition; ExactJaccard treats its arguments as sets). A text shorter
// than one n-gram but not empty gives a single shingle of all of it; an
// empty text (after normalisation) gives none; its signature is all
// math.MaxUint64, equal to every other empty text's, so leave such
// samples out of fuzzy dedup (exact dedup still sees them). Equal n-grams
// get equal hashes for equal c.Seed, whatever else is in the texts, on
// every machine: no hash here is randomised per process.
func (c TextConfig) Shingles(text string) []uint64 {
	if c.asciiWords(text) {
		return c.appendASCIIWordShingles(nil, text)
	}
	norm := c.appendNormalized(make([]byte, 0, len(text)), text)
	return c.appendShingles(make([]uint64, 0, c.shingleCap(norm)), norm)
}

// asciiWords says whether text takes the fused path: word shingles of an
// ASCII text, which normalise byte by byte (NFKC leaves ASCII alone), so
// the words can be hashed as the table maps each byte, without writing
// the normalised text first.
func (c TextConfig) asciiWords(text string) bool {
	return c.shingle() == ShingleWord && isASCII(text)
}

// appendASCIIWordShingles is appendShingles(appendNormalized(text)) for
// an ASCII text in word mode, in one pass: a byte the table maps to white
// space (or to a space, as folded punctuation) ends a word, any other
// byte is hashed as the table maps it. Word boundaries, hence shingles,
// do not depend on white-space collapsing.
func (c TextConfig) appendASCIIWordShingles(dst []uint64, text string) []uint64 {
	tab := &asciiTables[c.asciiFlags()]
	var r roller
	c.initRoller(&r)
	w := newWordHash()
	for i := 0; i < len(text); i++ {
		b := tab[text[i]&0x7f]
		if b == asciiSpace || b == ' ' || '\t' <= b && b <= '\r' {
			dst, w = w.end(&r, dst)
			continue
		}
		w = w.add(b)
	}
	dst, _ = w.end(&r, dst)
	return r.finish(dst)
}

// shingleCap bounds the number of shingles of a normalised text: its
// bytes in char mode, its spaces plus one in word mode (exact after
// white-space collapsing). Sizing by it saves the appends' regrowth.
func (c TextConfig) shingleCap(norm []byte) int {
	if c.shingle() == ShingleChar {
		return len(norm)
	}
	return bytes.Count(norm, []byte{' '}) + 1
}

// Signer turns texts into signatures for one TextConfig, reusing its
// buffers between calls: the allocation-free path for a worker that signs
// many texts. A Signer is not safe for concurrent use; give each
// goroutine (or DoFn instance) its own.
type Signer struct {
	c    TextConfig
	h    Hasher
	norm []byte
	sh   []uint64
}

// NewSigner returns a Signer for c (with c's hasher).
func (c TextConfig) NewSigner() *Signer { return &Signer{c: c, h: c.NewHasher()} }

// Shingles is c.Shingles(text), valid until the next call.
func (s *Signer) Shingles(text string) []uint64 {
	if s.c.asciiWords(text) {
		s.sh = s.c.appendASCIIWordShingles(s.sh[:0], text)
		return s.sh
	}
	s.norm = s.c.appendNormalized(s.norm[:0], text)
	s.sh = s.c.appendShingles(s.sh[:0], s.norm)
	return s.sh
}

// Signature returns the signature of text's shingles (a new slice).
func (s *Signer) Signature(text string) []uint64 {
	return s.h.Signature(s.Shingles(text))
}

// Shingle hashing: each token (a word, or a rune in char mode) gets a
// 64-bit hash t_i seeded by c.Seed; an n-gram is the polynomial
// Σ t_{i+j}·P^(n−1−j) mod 2^64 (rolled in O(1) per position), finished by
// a strong mixer so that shingle hashes look uniform to the signatures.
const (
	shinglePoly = 0x9e3779b97f4a7c15
	fnvOffset   = 0xcbf29ce484222325
	fnvPrime    = 0x100000001b3
)

// initRoller makes r the empty rolling hash of c's n-grams (in place:
// its ring may point into r itself).
func (c TextConfig) initRoller(r *roller) {
	n := c.NGram()
	*r = roller{n: n, seed: mix64(c.Seed ^ 0x5f3759df5f3759df), pw: 1}
	for i := 1; i < n; i++ {
		r.pw *= shinglePoly
	}
	if n <= len(r.small) {
		r.ring = r.small[:n]
	} else {
		r.ring = make([]uint64, n)
	}
}

func (c TextConfig) appendShingles(dst []uint64, text []byte) []uint64 {
	var r roller
	c.initRoller(&r)
	if c.shingle() == ShingleChar {
		for _, ch := range string(text) {
			dst = r.push(dst, mix64(uint64(ch)^r.seed))
		}
	} else {
		w := newWordHash()
		for i := 0; i < len(text); i++ {
			b := text[i]
			if b < utf8.RuneSelf {
				if b == ' ' || '\t' <= b && b <= '\r' {
					dst, w = w.end(&r, dst)
					continue
				}
			} else if ch, size := utf8.DecodeRune(text[i:]); unicode.IsSpace(ch) {
				i += size - 1
				dst, w = w.end(&r, dst)
				continue
			}
			w = w.add(b)
		}
		dst, _ = w.end(&r, dst)
	}
	return r.finish(dst)
}

// roller keeps the rolling polynomial hash of the last n tokens.
type roller struct {
	n, count int
	slot     int // ring index of the oldest token
	seed     uint64
	pw       uint64 // P^(n−1)
	acc      uint64
	ring     []uint64
	small    [8]uint64
}

// wordHash is the FNV-1a hash of the word being read, in word mode. Both
// word paths (the normalised text's and the fused ASCII one) hash words
// only through it, so their shingles cannot drift apart. Its methods take
// and return it by value, so that it stays in registers in the hot loops.
type wordHash struct {
	h  uint64
	in bool
}

func newWordHash() wordHash { return wordHash{h: fnvOffset} }

// add adds a byte of the current word.
func (w wordHash) add(b byte) wordHash { return wordHash{(w.h ^ uint64(b)) * fnvPrime, true} }

// end pushes the current word, if any, into r as a token, and starts
// the next.
func (w wordHash) end(r *roller, dst []uint64) ([]uint64, wordHash) {
	if w.in {
		dst = r.push(dst, mix64(w.h^r.seed))
		w = newWordHash()
	}
	return dst, w
}

// finish appends the one shingle of a text shorter than one n-gram (but
// not empty): the hash of all its tokens.
func (r *roller) finish(dst []uint64) []uint64 {
	if r.count > 0 && r.count < r.n {
		dst = append(dst, mix64(r.acc^r.seed))
	}
	return dst
}

func (r *roller) push(dst []uint64, t uint64) []uint64 {
	r.acc = r.acc*shinglePoly + t - r.ring[r.slot]*r.pw*shinglePoly
	r.ring[r.slot] = t
	if r.slot++; r.slot == r.n {
		r.slot = 0
	}
	if r.count++; r.count >= r.n {
		dst = append(dst, mix64(r.acc^r.seed))
	}
	return dst
}

// mix64 is a strong 64-bit finaliser (Stafford variant 13 / splitmix64).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Hasher computes MinHash-style signatures of shingle-hash sets: for
// equal-length signatures of two sets A and B, the expected fraction of
// positions where they agree is the Jaccard similarity |A∩B|/|A∪B|.
// Signature returns a fresh slice the caller owns. Implementations are
// safe for concurrent use.
type Hasher interface {
	Signature(shingles []uint64) []uint64
}

// EkzhuHasher is the MinHash of github.com/ekzhu/minhash-lsh (which
// pushes each shingle through two seeded FNV-1a hashes h1, h2 and keeps
// min over the set of h1 + i·h2 for i < NumPerm), the reference sieve's
// own FastHasher is measured against. Each shingle hash is pushed as its
// 8 little-endian bytes.
type EkzhuHasher struct {
	numPerm int
	seed    int64
}

// NewEkzhuHasher returns ekzhu/minhash-lsh's MinHash with numPerm hash
// functions, seeded by seed.
func NewEkzhuHasher(numPerm int, seed uint64) *EkzhuHasher {
	return &EkzhuHasher{numPerm: numPerm, seed: int64(seed)}
}

// Signature implements Hasher. A Minhash is built per call (the library
// has no reset), and its signature, which is the library's internal
// slice, is copied.
func (h *EkzhuHasher) Signature(shingles []uint64) []uint64 {
	m := minhashlsh.NewMinhash(h.seed, h.numPerm)
	var b [8]byte
	for _, s := range shingles {
		binary.LittleEndian.PutUint64(b[:], s)
		m.Push(b[:])
	}
	return slices.Clone(m.Signature())
}

// FastHasher is sieve's own signature: the "fast similarity sketch" of
// Dahlgaard, Knudsen and Thorup (FOCS 2017). It has k = NumPerm bins.
// Round i (i = 0, 1, …) gives every element a of the set one candidate
// value i + r_i(a) (r_i uniform in [0, 1), here 32 random bits below the
// round number) in a bin: a pseudo-random bin for i < k, bin i − k for
// k ≤ i < 2k. Each bin keeps its smallest candidate, and the sketch stops
// after the first round at whose end every bin holds a value, since later
// rounds only offer larger ones.
//
// Why the estimate is MinHash's: stopping early changes nothing, so bin
// j holds min over a ∈ A of m_j(a), where m_j(a) is the smallest
// candidate element a ever puts in bin j (every element reaches every bin
// by round 2k). The m_j(a) are independent and identically distributed
// across elements, so bin j is a min-hash under the hash function m_j:
// for two sets it agrees exactly when the minimum over A∪B lies in A∩B,
// with probability J(A, B). Every bin is an unbiased estimator and the
// fraction of agreeing bins estimates J; for sets larger than k the bins
// hold disjoint samples of the elements, so its variance is below the
// J(1−J)/k of k independent permutations.
//
// The cost is O(|A| + k log k) hashes instead of k per element: about 4
// rounds of one multiply each for a 200-shingle document and k = 128.
type FastHasher struct {
	k    int
	keys []uint64 // one random key per round, 2k of them
}

// NewFastHasher returns the fast sketch with numPerm bins, seeded by
// seed.
func NewFastHasher(numPerm int, seed uint64) *FastHasher {
	if numPerm <= 0 {
		panic("dedup: numPerm must be positive")
	}
	keys := make([]uint64, 2*numPerm)
	s := seed ^ 0x2545f4914f6cdd1d
	for i := range keys {
		s += 0x9e3779b97f4a7c15
		keys[i] = mix64(s)
	}
	return &FastHasher{k: numPerm, keys: keys}
}

// fastMul is the odd multiplier of the per-round element hash.
const fastMul = 0xd6e8feb86659fd93

// Signature implements Hasher. Values are round<<32 | r, so a bin's
// value also tells the round that filled it; an empty set gives all
// math.MaxUint64.
func (h *FastHasher) Signature(shingles []uint64) []uint64 {
	sig := make([]uint64, h.k)
	h.signature(sig, shingles)
	return sig
}

func (h *FastHasher) signature(sig []uint64, shingles []uint64) {
	for i := range sig {
		sig[i] = math.MaxUint64
	}
	if len(shingles) == 0 {
		return
	}
	k := uint64(h.k)
	filled := 0
	for round := 0; round < 2*h.k && filled < h.k; round++ {
		key := h.keys[round]
		hi := uint64(round) << 32
		if round < h.k {
			for _, x := range shingles {
				p1, p0 := bits.Mul64(x^key, fastMul)
				y := p1 ^ p0
				j := ((y >> 32) * k) >> 32 // bin from the top 32 bits
				v := hi | y&0xffffffff     // value from the low 32 bits
				if v < sig[j] {
					if sig[j] == math.MaxUint64 {
						filled++
					}
					sig[j] = v
				}
			}
			continue
		}
		j := round - h.k
		for _, x := range shingles {
			p1, p0 := bits.Mul64(x^key, fastMul)
			v := hi | (p1^p0)&0xffffffff
			if v < sig[j] {
				if sig[j] == math.MaxUint64 {
					filled++
				}
				sig[j] = v
			}
		}
	}
}

// EstimateJaccard returns the fraction of positions where two signatures
// agree, the MinHash estimate of the Jaccard similarity of their sets.
// It panics when the lengths differ; two empty signatures give 0.
func EstimateJaccard(a, b []uint64) float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("dedup: signature lengths differ: %d and %d", len(a), len(b)))
	}
	if len(a) == 0 {
		return 0
	}
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}

// ExactJaccard returns |A∩B|/|A∪B| of the sets of values in a and b
// (repetitions ignored). Two empty sets are identical: 1. The arguments
// are not modified.
func ExactJaccard(a, b []uint64) float64 {
	sa, sb := SortedSet(a), SortedSet(b)
	return SortedJaccard(sa, sb)
}

// SortedSet returns the distinct values of a in increasing order (a new
// slice).
func SortedSet(a []uint64) []uint64 {
	s := slices.Clone(a)
	slices.Sort(s)
	return slices.Compact(s)
}

// SortedJaccard is ExactJaccard for arguments that are already sorted
// and free of repetitions (as SortedSet returns them).
func SortedJaccard(a, b []uint64) float64 { return sortedJaccard(a, b) }

// sortedJaccard is the Jaccard similarity of two sorted, distinct sets by
// one merge pass. Two empty sets give 1.
func sortedJaccard[T uint32 | uint64](a, b []T) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			inter++
			i++
			j++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// CompactSet returns the distinct shingle hashes cut to their top 32
// bits, sorted: the form in which a pipeline ships a text's shingle set to
// exact verification (4 bytes a shingle). Cutting to 32 bits merges two
// distinct shingles of a pair of texts with probability about
// |A|·|B|/2^32 (10^−5 for 200-shingle texts), so CompactJaccard agrees
// with ExactJaccard but for that.
func CompactSet(shingles []uint64) []uint32 {
	out := make([]uint32, len(shingles))
	for i, v := range shingles {
		out[i] = uint32(v >> 32)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CompactJaccard is the exact Jaccard similarity of two sets as
// CompactSet returns them (sorted, distinct). Two empty sets give 1.
func CompactJaccard(a, b []uint32) float64 { return sortedJaccard(a, b) }
