package dedup

import (
	"encoding/binary"
	"hash/maphash"
	"slices"

	"github.com/sieve-data/sieve/datasets"
)

// Verifications of fuzzy dedup's candidate pairs.
const (
	// VerifyExact compares shingle sets (CompactJaccard).
	VerifyExact = "exact"
	// VerifyEstimate compares signatures (EstimateJaccard).
	VerifyEstimate = "estimate"
	// VerifyNone takes every candidate pair as a duplicate.
	VerifyNone = "none"
)

// Sketcher computes what fuzzy dedup needs of one sample under a key mode
// and a verification: the signature whose band keys make the candidates,
// and the payload that verifies them (PayloadSimilarity). The fuzzy_dedup
// stage and bench/dedupbench both use it, so that they sketch alike.
//
// Under KeyTurns the signature is the response's (an answer must be
// similar for a pair to be a candidate) and the payload carries the
// prompt's and the response's sets (or signatures) apart, so that a pair
// verifies only when both are similar. A KeyTurns payload costs what a
// KeyConversation one does (4 bytes a shingle; twice the signature under
// VerifyEstimate). A Sketcher is not safe for concurrent use.
type Sketcher struct {
	mode   KeyMode
	verify string
	signer *Signer
	hasher Hasher
	memo   sketchMemo
}

// NewSketcher returns a Sketcher for c, mode and verify (VerifyExact,
// VerifyEstimate or VerifyNone).
func (c TextConfig) NewSketcher(mode KeyMode, verify string) *Sketcher {
	return &Sketcher{mode: mode, verify: verify, signer: c.NewSigner(), hasher: c.NewHasher()}
}

// Sketch returns the signature of SampleText(msgs, mode)'s shingles and
// the verification payload (nil under VerifyNone). ok is false when that
// text has no shingle (an empty answer under KeyResponse or KeyTurns, an
// empty prompt under KeyPrompt): such a sample takes no part, since all
// empty signatures collide. Under KeyTurns an empty prompt is allowed: it
// is similar only to another empty prompt. The signature is the caller's
// to keep.
//
// The signature and the compact set of the key text (under KeyTurns the
// answer, most of a sample's text) are remembered for texts met more
// than once (sketchMemo): an answer reused under many prompts is shingled,
// hashed and sorted once, not once per sample.
func (k *Sketcher) Sketch(msgs []datasets.Message) (sig []uint64, payload []byte, ok bool) {
	text := SampleText(msgs, k.mode)
	key := sketchKey(text)
	e, shared := k.memo.get(key)
	if !shared {
		if sh := k.signer.Shingles(text); len(sh) > 0 {
			e.sig = k.hasher.Signature(sh)
			if k.verify == VerifyExact {
				e.set = CompactSet(sh) // before the signer's buffer is reused
			}
		}
		shared = k.memo.add(key, e)
	}
	if len(e.sig) == 0 {
		return nil, nil, false
	}
	sig = e.sig
	if shared {
		sig = slices.Clone(sig) // the memo's copy stays as it is
	}
	switch k.verify {
	case VerifyNone:
		return sig, nil, true
	case VerifyEstimate:
		if k.mode != KeyTurns {
			return sig, EncodeSig(sig), true
		}
		var psig []uint64
		if p := k.signer.Shingles(SampleText(msgs, KeyPrompt)); len(p) > 0 {
			psig = k.hasher.Signature(p)
		}
		return sig, EncodeTurnsSigs(psig, sig), true
	}
	if k.mode != KeyTurns {
		return sig, EncodeSet(e.set), true
	}
	return sig, EncodeTurnsSets(CompactSet(k.signer.Shingles(SampleText(msgs, KeyPrompt))), e.set), true
}

// sketchEntry is what a Sketcher remembers of a key text: its signature
// (nil when it has no shingle) and, under VerifyExact, its compact set.
// Neither is written after it is made.
type sketchEntry struct {
	sig []uint64
	set []uint32
}

func (e sketchEntry) size() int { return 8*len(e.sig) + 4*len(e.set) + 96 }

// Bounds of a sketchMemo: it remembers the keys of up to 2 ×
// sketchMemoKeys texts met once (24 bytes each, about 3 MiB) and the
// entries of texts met again in two generations of up to sketchMemoBytes
// each.
const (
	sketchMemoKeys  = 1 << 16
	sketchMemoBytes = 8 << 20
)

// sketchMemo is a Sketcher's memory of key texts met more than once,
// keyed by a 128-bit hash of the text. A text met for the first time
// leaves only its key (a stream of unique texts costs no copies); met
// again within the next sketchMemoKeys texts, its entry is kept. Entries
// and keys live in two generations each: when the current one is full it
// becomes the old one and the older is dropped, and a hit in the old one
// moves the entry back, so texts met again and again stay. A miss costs a
// recomputation, never a different answer; a false hit needs two equal
// 128-bit hashes of different texts.
type sketchMemo struct {
	seen, seenOld      map[[2]uint64]struct{}
	cur, old           map[[2]uint64]sketchEntry
	curBytes, oldBytes int
	hits               int
}

var sketchSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func sketchKey(text string) [2]uint64 {
	return [2]uint64{maphash.String(sketchSeeds[0], text), maphash.String(sketchSeeds[1], text)}
}

// get returns the entry remembered for key, if any.
func (m *sketchMemo) get(key [2]uint64) (sketchEntry, bool) {
	if e, ok := m.cur[key]; ok {
		m.hits++
		return e, true
	}
	e, ok := m.old[key]
	if ok {
		m.hits++
		delete(m.old, key)
		m.oldBytes -= e.size()
		m.store(key, e)
	}
	return e, ok
}

// add records a text's entry: kept when its key was met before (add
// reports true: the memo now shares e), else only the key is noted.
func (m *sketchMemo) add(key [2]uint64, e sketchEntry) bool {
	_, again := m.seen[key]
	if !again {
		_, again = m.seenOld[key]
	}
	if !again {
		if m.seen == nil || len(m.seen) >= sketchMemoKeys {
			m.seenOld, m.seen = m.seen, map[[2]uint64]struct{}{}
		}
		m.seen[key] = struct{}{}
		return false
	}
	m.store(key, e)
	return true
}

func (m *sketchMemo) store(key [2]uint64, e sketchEntry) {
	if m.cur == nil || m.curBytes+e.size() > sketchMemoBytes {
		m.old, m.oldBytes = m.cur, m.curBytes
		m.cur, m.curBytes = map[[2]uint64]sketchEntry{}, 0
	}
	m.cur[key] = e
	m.curBytes += e.size()
}

// bytes is what the memo's entries hold, about.
func (m *sketchMemo) bytes() int { return m.curBytes + m.oldBytes }

// Payload kinds, the first byte of a payload.
const (
	payloadSet       = 's' // one compact set
	payloadSig       = 'g' // one signature
	payloadTurnsSets = 't' // uvarint count of prompt values, prompt set, response set
	payloadTurnsSigs = 'u' // the same with signatures (an empty prompt has none)
)

// EncodeSet encodes a compact shingle set (CompactSet) as a payload: 's'
// and 4 little-endian bytes a value.
func EncodeSet(v []uint32) []byte {
	b := make([]byte, 0, len(v)*4+1)
	b = append(b, payloadSet)
	return appendU32(b, v)
}

// EncodeSig encodes a signature as a payload: 'g' and 8 bytes a value.
func EncodeSig(v []uint64) []byte {
	b := make([]byte, 0, len(v)*8+1)
	b = append(b, payloadSig)
	return appendU64(b, v)
}

// EncodeTurnsSets encodes a prompt's and a response's compact sets: 't',
// the uvarint number of prompt values, the prompt's values and the
// response's, 4 bytes each.
func EncodeTurnsSets(prompt, response []uint32) []byte {
	b := make([]byte, 0, 4*(len(prompt)+len(response))+1+binary.MaxVarintLen32)
	b = binary.AppendUvarint(append(b, payloadTurnsSets), uint64(len(prompt)))
	return appendU32(appendU32(b, prompt), response)
}

// EncodeTurnsSigs encodes a prompt's and a response's signatures as
// EncodeTurnsSets does sets ('u'); an empty prompt has an empty
// signature.
func EncodeTurnsSigs(prompt, response []uint64) []byte {
	b := make([]byte, 0, 8*(len(prompt)+len(response))+1+binary.MaxVarintLen32)
	b = binary.AppendUvarint(append(b, payloadTurnsSigs), uint64(len(prompt)))
	return appendU64(appendU64(b, prompt), response)
}

// PayloadSimilarity is the similarity of two payloads of one kind:
// CompactJaccard of sets, EstimateJaccard of signatures and, for the
// turns payloads, the smaller of the prompts' and the responses'
// similarities, so that a pair is at least a threshold only when both
// are. Two empty prompts are identical (1), an empty and a non-empty one
// unrelated (0). Payloads of different or unknown kinds, or malformed
// ones, give 0.
func PayloadSimilarity(a, b []byte) float64 {
	if len(a) == 0 || len(b) == 0 || a[0] != b[0] {
		return 0
	}
	switch a[0] {
	case payloadSet:
		return encodedJaccard32(a[1:], b[1:])
	case payloadSig:
		return estimate(decodeU64(a[1:]), decodeU64(b[1:]))
	case payloadTurnsSets, payloadTurnsSigs:
		w := 4
		if a[0] == payloadTurnsSigs {
			w = 8
		}
		pa, ra, okA := splitTurns(a[1:], w)
		pb, rb, okB := splitTurns(b[1:], w)
		if !okA || !okB {
			return 0
		}
		var jp, jr float64
		switch {
		case len(pa) == 0 && len(pb) == 0:
			jp = 1
		case len(pa) == 0 || len(pb) == 0:
			return 0
		case w == 4:
			jp = encodedJaccard32(pa, pb)
		default:
			jp = estimate(decodeU64(pa), decodeU64(pb))
		}
		if w == 4 {
			jr = encodedJaccard32(ra, rb)
		} else {
			jr = estimate(decodeU64(ra), decodeU64(rb))
		}
		return min(jp, jr)
	}
	return 0
}

// splitTurns splits a turns payload (after its kind byte) into the
// prompt's and the response's bytes, w bytes a value.
func splitTurns(b []byte, w int) (prompt, response []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k)/uint64(w) {
		return nil, nil, false
	}
	b = b[k:]
	return b[:int(n)*w], b[int(n)*w:], (len(b)-int(n)*w)%w == 0
}

// estimate is EstimateJaccard, 0 for signatures of different lengths
// (malformed payloads) instead of a panic.
func estimate(a, b []uint64) float64 {
	if len(a) != len(b) {
		return 0
	}
	return EstimateJaccard(a, b)
}

func appendU32(b []byte, v []uint32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func appendU64(b []byte, v []uint64) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

// encodedJaccard32 is CompactJaccard(decodeU32(a), decodeU32(b)) read
// straight from the little-endian bytes: verification runs once per
// candidate edge, and decoding both sets first cost an allocation each.
func encodedJaccard32(a, b []byte) float64 {
	na, nb := len(a)/4, len(b)/4
	if na == 0 && nb == 0 {
		return 1
	}
	inter := 0
	for i, j := 0, 0; i < na && j < nb; {
		x, y := binary.LittleEndian.Uint32(a[4*i:]), binary.LittleEndian.Uint32(b[4*j:])
		switch {
		case x < y:
			i++
		case x > y:
			j++
		default:
			inter++
			i++
			j++
		}
	}
	return float64(inter) / float64(na+nb-inter)
}

func decodeU32(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func decodeU64(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}
