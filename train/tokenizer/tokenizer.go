package tokenizer

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a byte-level BPE tokenizer with its added tokens,
// normalizer, pre-tokenizer, post-processor and chat template. Build one
// with Load, LoadDir, Read, FromGPT2 or Train.
type Tokenizer struct {
	model *bpeModel

	added       []*AddedToken
	addedByID   map[int]*AddedToken
	rawAdded    *addedMatcher // tokens matched in the raw text
	normAdded   *addedMatcher // tokens matched in the normalized text
	normalizers []norm.Form
	pre         []preStep

	// template is the single-sequence template of a TemplateProcessing
	// post-processor: ids to put around the sequence (-1 marks the
	// sequence itself).
	template []int

	// The JSON of the parts kept verbatim for saving.
	normalizerJSON, preJSON, postJSON, decoderJSON []byte
	modelExtra                                     modelOptions

	// From tokenizer_config.json (or the trainer).
	bos, eos, pad, unk string
	chat               *ChatTemplate
	maxLength          int
}

// modelOptions are the options of the BPE model kept for saving.
type modelOptions struct {
	unk          *string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
}

// Encode returns the token ids of text as Hugging Face's
// tokenizer.encode(text, add_special_tokens=False) does: added tokens in
// the text (special ones included) become their ids; the rest is
// normalized, pre-tokenized and merged by BPE.
func (t *Tokenizer) Encode(text string) []int {
	return t.encode(text, true, nil)
}

// EncodeOrdinary is Encode without matching added tokens: a string such
// as "<|im_end|>" in text is encoded as ordinary text.
func (t *Tokenizer) EncodeOrdinary(text string) []int {
	return t.encode(text, false, nil)
}

// encode returns the ids of text. With spans not nil, it also records
// for each token its byte range in the text (exact when normalization
// leaves the text unchanged, as it does for text already normalized).
func (t *Tokenizer) encode(text string, matchAdded bool, spans *[][2]int) []int {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ids := make([]int, 0, len(text)/3+1)
	pos := 0
	for pos < len(text) {
		var a, b int
		var tok *AddedToken
		if matchAdded {
			a, b, tok = t.rawAdded.find(text, pos)
		}
		if tok == nil {
			a, b = len(text), len(text)
		}
		ids = t.encodeNormalized(text[pos:a], pos, matchAdded, sc, ids, spans)
		if tok == nil {
			break
		}
		ids = append(ids, tok.ID)
		if spans != nil {
			*spans = append(*spans, [2]int{a, b})
		}
		pos = b
	}
	return ids
}

// encodeNormalized normalizes one stretch of text between raw-matched
// added tokens, matches the normalized added tokens in it and encodes the
// rest.
func (t *Tokenizer) encodeNormalized(s string, off int, matchAdded bool, sc *scratch, ids []int, spans *[][2]int) []int {
	if s == "" {
		return ids
	}
	s = t.normalize(s)
	pos := 0
	for pos < len(s) {
		var a, b int
		var tok *AddedToken
		if matchAdded {
			a, b, tok = t.normAdded.find(s, pos)
		}
		if tok == nil {
			a, b = len(s), len(s)
		}
		ids = t.encodePlain(piece{text: s[pos:a], off: off + pos}, sc, ids, spans)
		if tok == nil {
			break
		}
		ids = append(ids, tok.ID)
		if spans != nil {
			*spans = append(*spans, [2]int{off + a, off + b})
		}
		pos = b
	}
	return ids
}

func (t *Tokenizer) normalize(s string) string {
	for _, f := range t.normalizers {
		s = f.String(s)
	}
	return s
}

// encodePlain pre-tokenizes p and merges each word.
func (t *Tokenizer) encodePlain(p piece, sc *scratch, ids []int, spans *[][2]int) []int {
	if p.text == "" {
		return ids
	}
	pieces := append(sc.pieces[:0], p)
	for _, st := range t.pre {
		next := sc.tmp[:0]
		for _, q := range pieces {
			next = st.split(q, next)
		}
		sc.tmp = pieces
		pieces = next
	}
	var ends []int
	for _, q := range pieces {
		if spans == nil {
			ids = t.model.encodeWord(q.text, sc, ids, nil)
			continue
		}
		ends = ends[:0]
		ids = t.model.encodeWord(q.text, sc, ids, &ends)
		prev := 0
		for _, e := range ends {
			a, b := prev-q.virt, e-q.virt
			*spans = append(*spans, [2]int{q.off + max(a, 0), q.off + max(b, 0)})
			prev = e
		}
	}
	sc.pieces = pieces
	return ids
}

// AddSpecialTokens wraps ids in the special tokens of the tokenizer's
// TemplateProcessing post-processor (for example a leading
// <|begin_of_text|>), as add_special_tokens=True does in Hugging Face.
// Without such a post-processor it returns ids unchanged.
func (t *Tokenizer) AddSpecialTokens(ids []int) []int {
	if t.template == nil {
		return ids
	}
	out := make([]int, 0, len(ids)+len(t.template))
	for _, id := range t.template {
		if id < 0 {
			out = append(out, ids...)
		} else {
			out = append(out, id)
		}
	}
	return out
}

// Decode returns the text of ids: the bytes of each BPE token and the
// content of each added token, concatenated. The result is not
// necessarily valid UTF-8 (a token may hold part of a character); ids
// outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(t.tokenBytes(id))
	}
	return sb.String()
}

// DecodeSkipSpecial is Decode without the special added tokens, as
// skip_special_tokens=True in Hugging Face.
func (t *Tokenizer) DecodeSkipSpecial(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		if a, ok := t.addedByID[id]; ok && a.Special {
			continue
		}
		sb.WriteString(t.tokenBytes(id))
	}
	return sb.String()
}

// tokenBytes returns the bytes that id stands for.
func (t *Tokenizer) tokenBytes(id int) string {
	if a, ok := t.addedByID[id]; ok {
		return a.Content
	}
	if id >= 0 && id < len(t.model.raw) {
		return t.model.raw[id]
	}
	return ""
}

// VocabSize is one more than the largest id, added tokens included: the
// number of rows of a model's embedding matrix.
func (t *Tokenizer) VocabSize() int {
	n := len(t.model.tokens)
	for id := range t.addedByID {
		if id+1 > n {
			n = id + 1
		}
	}
	return n
}

// TokenID returns the id of an added token's content or of a vocabulary
// entry's byte-level spelling ("Ġthe" for " the").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	for _, a := range t.added {
		if a.Content == token {
			return a.ID, true
		}
	}
	if id, ok := t.model.vocab[token]; ok {
		return int(id), true
	}
	return 0, false
}

// Token returns the spelling of id: an added token's content or the
// byte-level spelling of a vocabulary entry; "" for an unknown id.
func (t *Tokenizer) Token(id int) string {
	if a, ok := t.addedByID[id]; ok {
		return a.Content
	}
	if id >= 0 && id < len(t.model.tokens) {
		return t.model.tokens[id]
	}
	return ""
}

// AddedTokens returns a copy of the added tokens, in file order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := make([]AddedToken, len(t.added))
	for i, a := range t.added {
		out[i] = *a
	}
	return out
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool {
	a, ok := t.addedByID[id]
	return ok && a.Special
}

// BOS, EOS and Pad return the beginning-of-sequence, end-of-sequence and
// padding tokens named by tokenizer_config.json (or the trainer); "" when
// none is set.
func (t *Tokenizer) BOS() string { return t.bos }

// EOS returns the end-of-sequence token; see BOS.
func (t *Tokenizer) EOS() string { return t.eos }

// Pad returns the padding token; see BOS.
func (t *Tokenizer) Pad() string { return t.pad }
