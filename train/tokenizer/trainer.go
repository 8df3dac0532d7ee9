package tokenizer

import (
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/sieve-data/sieve/datasets"
)

// TrainConfig sets up Train. The zero value trains a 4096-token
// vocabulary with the default special tokens and the Qwen2 split.
type TrainConfig struct {
	// VocabSize is the size of the vocabulary to reach, special tokens
	// and the 256 byte tokens included (default 4096). Training stops
	// earlier when no pair is frequent enough.
	VocabSize int
	// MinFrequency is the least number of occurrences of a pair for it to
	// be merged (default 2).
	MinFrequency int
	// SpecialTokens get the first ids, in order, and are cut out of the
	// training text. Default: <|endoftext|>, <|im_start|>, <|im_end|>.
	SpecialTokens []string
	// Pattern is the pre-tokenizer expression: PatternQwen2 (default),
	// PatternLlama3 or PatternGPT2.
	Pattern string
}

// DefaultSpecialTokens are the special tokens of a trained tokenizer when
// TrainConfig.SpecialTokens is empty: ChatML's markers and an
// end-of-text token for padding.
var DefaultSpecialTokens = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// MessageContents yields the content of every message of every
// conversation: a training text stream for Train from a dataset version.
func MessageContents(conversations iter.Seq[[]datasets.Message]) iter.Seq[string] {
	return func(yield func(string) bool) {
		for msgs := range conversations {
			for _, m := range msgs {
				if !yield(m.Content) {
					return
				}
			}
		}
	}
}

// trainWord is a distinct pre-tokenized word: its current symbols and how
// often it occurs.
type trainWord struct {
	syms  []int32
	count int64
}

// pairCount is a heap entry: a pair and its count when pushed.
type pairCount struct {
	count int64
	pair  uint64
}

// before orders the heap: higher count first; among equal counts the
// smaller pair of ids (first id, then second).
func (x pairCount) before(y pairCount) bool {
	if x.count != y.count {
		return x.count > y.count
	}
	return x.pair < y.pair
}

type pairHeap []pairCount

func (h *pairHeap) push(x pairCount) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() pairCount {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].before(s[l]) {
			m = r
		}
		if !s[m].before(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// Train learns a byte-level BPE tokenizer from texts.
//
// Each text is cut at the special tokens and pre-tokenized with the
// configured expression; identical words are counted once with their
// frequency. Every word starts as its bytes (the 256 byte tokens follow
// the special tokens, in the code-point order of their byte-level
// spelling, as Hugging Face's trainer orders them). Then, until the
// vocabulary is full: the most frequent adjacent pair is merged into a
// new token (ties go to the smaller pair of ids), in every word that
// holds it, and the counts of the pairs around each merge are updated
// incrementally (only the words that held the pair are visited). The
// result depends only on the multiset of words, not on the order of the
// texts.
//
// The tokenizer has the special tokens as added tokens, no normalizer,
// the Split and ByteLevel pre-tokenizers, the ChatML chat template, eos
// <|im_end|> and pad <|endoftext|> when those are among the special
// tokens.
func Train(texts iter.Seq[string], cfg TrainConfig) (*Tokenizer, error) {
	if cfg.VocabSize == 0 {
		cfg.VocabSize = 4096
	}
	if cfg.MinFrequency <= 0 {
		cfg.MinFrequency = 2
	}
	if cfg.SpecialTokens == nil {
		cfg.SpecialTokens = DefaultSpecialTokens
	}
	if cfg.Pattern == "" {
		cfg.Pattern = PatternQwen2
	}
	if cfg.VocabSize < len(cfg.SpecialTokens)+256 {
		return nil, fmt.Errorf("tokenizer: vocabulary size %d is less than the %d special tokens and 256 bytes", cfg.VocabSize, len(cfg.SpecialTokens))
	}
	m, err := matcherFor(cfg.Pattern)
	if err != nil {
		return nil, err
	}
	split := &splitStep{m: m, behavior: behaviorIsolated}

	// Vocabulary: special tokens, then the byte alphabet.
	var spellings []string // id -> byte-level spelling
	index := map[string]int32{}
	var added []*AddedToken
	for _, s := range cfg.SpecialTokens {
		if s == "" {
			return nil, errors.New("tokenizer: empty special token")
		}
		if _, dup := index[s]; dup {
			return nil, fmt.Errorf("tokenizer: special token %q given twice", s)
		}
		id := int32(len(spellings))
		index[s] = id
		spellings = append(spellings, s)
		added = append(added, &AddedToken{ID: int(id), Content: s, Special: true})
	}
	var byteID [256]int32
	for _, sp := range byteLevelAlphabet() {
		id := int32(len(spellings))
		r, _ := byteLevelDecode(sp)
		if _, clash := index[sp]; clash {
			return nil, fmt.Errorf("tokenizer: special token %q is a byte token", sp)
		}
		index[sp] = id
		spellings = append(spellings, sp)
		byteID[r[0]] = id
	}

	// Count words.
	specials := newAddedMatcher(added, func(a *AddedToken) string { return a.Content })
	counts := map[string]int64{}
	var pieces []piece
	countText := func(s string) {
		if s == "" {
			return
		}
		pieces = split.split(piece{text: s}, pieces[:0])
		for _, p := range pieces {
			counts[p.text]++
		}
	}
	for text := range texts {
		pos := 0
		for pos < len(text) {
			a, b, tok := specials.find(text, pos)
			if tok == nil {
				countText(text[pos:])
				break
			}
			countText(text[pos:a])
			pos = b
		}
	}
	// Words in byte order, so that everything below is deterministic.
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	words := make([]trainWord, len(keys))
	for i, k := range keys {
		syms := make([]int32, len(k))
		for j := 0; j < len(k); j++ {
			syms[j] = byteID[k[j]]
		}
		words[i] = trainWord{syms: syms, count: counts[k]}
	}
	counts = nil

	// Pair counts and where each pair occurs.
	pairCounts := map[uint64]int64{}
	where := map[uint64][]int32{}
	for w, word := range words {
		for j := 0; j+1 < len(word.syms); j++ {
			p := pairKey(word.syms[j], word.syms[j+1])
			pairCounts[p] += word.count
			if l := where[p]; len(l) == 0 || l[len(l)-1] != int32(w) {
				where[p] = append(l, int32(w))
			}
		}
	}
	h := make(pairHeap, 0, len(pairCounts))
	for p, c := range pairCounts {
		h.push(pairCount{count: c, pair: p})
	}

	var merges [][2]int32
	delta := map[uint64]int64{}
	visited := make([]int32, len(words)) // merge number + 1 that last visited each word
	for len(spellings) < cfg.VocabSize && len(h) > 0 {
		top := h.pop()
		cur := pairCounts[top.pair]
		if cur != top.count {
			if cur > 0 {
				h.push(pairCount{count: cur, pair: top.pair})
			}
			continue
		}
		if cur < int64(cfg.MinFrequency) {
			break
		}
		a, b := int32(top.pair>>32), int32(uint32(top.pair))
		sp := spellings[a] + spellings[b]
		id, exists := index[sp]
		if !exists {
			id = int32(len(spellings))
			index[sp] = id
			spellings = append(spellings, sp)
		}
		merges = append(merges, [2]int32{a, b})
		stamp := int32(len(merges))

		clear(delta)
		for _, w := range where[top.pair] {
			if visited[w] == stamp {
				continue
			}
			visited[w] = stamp
			word := &words[w]
			if !hasPair(word.syms, a, b) {
				continue
			}
			for j := 0; j+1 < len(word.syms); j++ {
				delta[pairKey(word.syms[j], word.syms[j+1])] -= word.count
			}
			word.syms = mergePair(word.syms, a, b, id)
			for j := 0; j+1 < len(word.syms); j++ {
				p := pairKey(word.syms[j], word.syms[j+1])
				delta[p] += word.count
				if word.syms[j] == id || word.syms[j+1] == id {
					if l := where[p]; len(l) == 0 || l[len(l)-1] != w {
						where[p] = append(l, w)
					}
				}
			}
		}
		delete(where, top.pair)
		// Apply the changes in pair order so that pushes are deterministic.
		changed := make([]uint64, 0, len(delta))
		for p, d := range delta {
			if d != 0 {
				changed = append(changed, p)
			}
		}
		slices.Sort(changed)
		for _, p := range changed {
			c := pairCounts[p] + delta[p]
			if c <= 0 {
				delete(pairCounts, p)
			} else {
				pairCounts[p] = c
			}
			if delta[p] > 0 {
				h.push(pairCount{count: c, pair: p})
			}
		}
		delete(pairCounts, top.pair)
	}

	vocab := make(map[string]int, len(spellings))
	for id, sp := range spellings {
		vocab[sp] = id
	}
	mergeSpellings := make([][2]string, len(merges))
	for i, mg := range merges {
		mergeSpellings[i] = [2]string{spellings[mg[0]], spellings[mg[1]]}
	}
	f := &fileJSON{
		Normalizer: nil,
		PreTokenizer: []byte(`{"type": "Sequence", "pretokenizers": [` +
			`{"type": "Split", "pattern": {"Regex": ` + jsonString(cfg.Pattern) + `}, "behavior": "Isolated", "invert": false}, ` +
			`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}`),
		PostProcessor: []byte(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`),
		Decoder:       []byte(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`),
		Model:         modelJSON{Type: "BPE", Vocab: vocab},
	}
	for _, a := range added {
		f.AddedTokens = append(f.AddedTokens, *a)
	}
	for _, ms := range mergeSpellings {
		f.Model.Merges = append(f.Model.Merges, mergeJSON(ms))
	}
	t, err := fromFile(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: building the trained tokenizer: %w", err)
	}
	has := func(s string) bool { return slices.Contains(cfg.SpecialTokens, s) }
	if has("<|im_end|>") {
		t.eos = "<|im_end|>"
	}
	if has("<|endoftext|>") {
		t.pad = "<|endoftext|>"
	}
	return t, nil
}

func hasPair(syms []int32, a, b int32) bool {
	for j := 0; j+1 < len(syms); j++ {
		if syms[j] == a && syms[j+1] == b {
			return true
		}
	}
	return false
}

// mergePair replaces each occurrence of a followed by b, left to right
// and without overlap, by id, in place.
func mergePair(syms []int32, a, b, id int32) []int32 {
	out := syms[:0]
	for j := 0; j < len(syms); j++ {
		if j+1 < len(syms) && syms[j] == a && syms[j+1] == b {
			out = append(out, id)
			j++
			continue
		}
		out = append(out, syms[j])
	}
	return out
}
