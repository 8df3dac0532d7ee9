package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// merge is the result of merging one pair of ids: its rank (position in
// the merge list; lower merges first) and the id of the merged token.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// mergeTable maps pairs of ids to merges: an open-addressing hash table
// with linear probing, at most three quarters full. It is about twice as fast as a
// Go map for this lookup, which dominates the cost of BPE. Ids are below
// 2^31, so bit 63 of a key is free and marks occupied slots.
type mergeTable struct {
	slots []mergeSlot
	shift uint
	n     int
}

type mergeSlot struct {
	key uint64 // pairKey | 1<<63; 0 when empty
	merge
}

const occupied = 1 << 63

func newMergeTable(n int) *mergeTable {
	size, shift := 8, uint(61)
	for size < n+n/3+1 {
		size *= 2
		shift--
	}
	return &mergeTable{slots: make([]mergeSlot, size), shift: shift}
}

func (t *mergeTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

// get returns the merge of pair key k.
func (t *mergeTable) get(k uint64) (merge, bool) {
	k |= occupied
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == k {
			return s.merge, true
		}
		if s.key == 0 {
			return merge{}, false
		}
	}
}

// set adds or replaces the merge of pair key k; the table must have been
// made for at least as many keys as are set.
func (t *mergeTable) set(k uint64, m merge) {
	k |= occupied
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == k || s.key == 0 {
			if s.key == 0 {
				t.n++
			}
			*s = mergeSlot{key: k, merge: m}
			return
		}
	}
}

// bpeModel is a byte-level BPE model. Tokens are kept both as their
// byte-level spelling (as in tokenizer.json) and as the raw bytes they
// stand for; the merge loop works on raw bytes.
type bpeModel struct {
	tokens   []string         // id -> byte-level spelling ("" for holes)
	raw      []string         // id -> raw bytes (spelling itself when not byte-level)
	vocab    map[string]int32 // byte-level spelling -> id
	rawVocab map[string]int32 // raw bytes -> id, only with ignoreMerges
	merges   *mergeTable      // pair of ids -> merge
	pairs    [][2]int32       // merges in rank order
	byteID   [256]int32       // id of each single byte, -1 if absent
	unkID    int32            // -1 without unk_token
	unk      string

	ignoreMerges bool
	noCache      bool // benchmarks only: bypass the word cache

	cache wordCache
}

// cacheLimit bounds the word cache; once full, new words are not cached.
const cacheLimit = 1 << 17

// wordCache caches the ids of words. Reads take no lock: they look up an
// immutable map published through an atomic pointer. A word missing there
// is looked up, or added, in a pending map under a mutex; when pending has
// grown to a quarter of the published map (and at least 256 words), or
// has served more lookups than it holds words (and at least 1024), the two
// are merged into a new published map. Copying is thus amortised to a
// constant per word, and concurrent encoders share the cache without
// writing to a common cache line on hits.
type wordCache struct {
	snap        atomic.Pointer[map[string][]int32]
	mu          sync.Mutex
	pending     map[string][]int32
	pendingHits int
	size        int // words in snap and pending
}

func (c *wordCache) get(word string) ([]int32, bool) {
	if p := c.snap.Load(); p != nil {
		if ids, ok := (*p)[word]; ok {
			return ids, true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, ok := c.pending[word]
	if ok {
		c.pendingHits++
		if c.pendingHits >= 1024 && c.pendingHits >= len(c.pending) {
			c.publish()
		}
	}
	return ids, ok
}

func (c *wordCache) put(word string, ids []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size >= cacheLimit {
		return
	}
	if _, dup := c.pending[word]; dup {
		return
	}
	if c.pending == nil {
		c.pending = map[string][]int32{}
	}
	c.pending[strings.Clone(word)] = append([]int32(nil), ids...)
	c.size++
	if old := c.snap.Load(); len(c.pending) >= 256 && (old == nil || len(c.pending) >= len(*old)/4) {
		c.publish()
	}
}

// publish merges pending into a new published map; c.mu is held.
func (c *wordCache) publish() {
	old := c.snap.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	next := make(map[string][]int32, n+len(c.pending))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	for k, v := range c.pending {
		next[k] = v
	}
	c.snap.Store(&next)
	c.pending = nil
	c.pendingHits = 0
}

// maxCachedWord is the longest word (in bytes) that is cached.
const maxCachedWord = 256

// newBPEModel builds a model from a vocabulary of byte-level spellings and
// merges given as pairs of spellings.
func newBPEModel(vocab map[string]int, merges [][2]string, unk string, ignoreMerges bool) (*bpeModel, error) {
	m := &bpeModel{
		vocab:        make(map[string]int32, len(vocab)),
		merges:       newMergeTable(len(merges)),
		pairs:        make([][2]int32, 0, len(merges)),
		unkID:        -1,
		ignoreMerges: ignoreMerges,
	}
	size := 0
	for tok, id := range vocab {
		if id < 0 || id >= 1<<31-1 {
			return nil, fmt.Errorf("tokenizer: token %q has invalid id %d", tok, id)
		}
		if id+1 > size {
			size = id + 1
		}
	}
	if size > 2*len(vocab)+1<<16 {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens has ids up to %d", len(vocab), size-1)
	}
	if ignoreMerges {
		m.rawVocab = make(map[string]int32, len(vocab))
	}
	m.tokens = make([]string, size)
	m.raw = make([]string, size)
	for tok, id := range vocab {
		m.tokens[id] = tok
		m.vocab[tok] = int32(id)
		if r, ok := byteLevelDecode(tok); ok {
			m.raw[id] = r
			if ignoreMerges {
				m.rawVocab[r] = int32(id)
			}
		} else {
			m.raw[id] = tok
		}
	}
	for b := 0; b < 256; b++ {
		m.byteID[b] = -1
		if id, ok := m.vocab[string(byteToRune[b])]; ok {
			m.byteID[b] = id
		}
	}
	if unk != "" {
		id, ok := m.vocab[unk]
		if !ok {
			return nil, fmt.Errorf("tokenizer: unk_token %q is not in the vocabulary", unk)
		}
		m.unkID, m.unk = id, unk
	}
	for rank, p := range merges {
		a, ok := m.vocab[p[0]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q): %q is not in the vocabulary", rank, p[0], p[1], p[0])
		}
		b, ok := m.vocab[p[1]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q): %q is not in the vocabulary", rank, p[0], p[1], p[1])
		}
		id, ok := m.vocab[p[0]+p[1]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q): %q is not in the vocabulary", rank, p[0], p[1], p[0]+p[1])
		}
		// A repeated merge keeps its last rank, as in Hugging Face (which
		// collects the list into a map).
		m.merges.set(pairKey(a, b), merge{rank: int32(rank), id: id})
		m.pairs = append(m.pairs, [2]int32{a, b})
	}
	return m, nil
}

// heapItem is a candidate merge of the symbol at pos with its right
// neighbour; items order by rank, then by position.
type heapItem struct {
	key uint64 // rank<<32 | pos
	id  int32
}

// mergeHeap is a binary min-heap of candidate merges. It is written out
// rather than built on container/heap to avoid interface calls.
type mergeHeap []heapItem

func (h *mergeHeap) push(it heapItem) {
	*h = append(*h, it)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].key <= s[i].key {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *mergeHeap) pop() heapItem {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].key < s[l].key {
			m = r
		}
		if s[i].key <= s[m].key {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// scratch holds the buffers of one encoding call.
type scratch struct {
	ids    []int32
	prev   []int32
	next   []int32
	heap   mergeHeap
	pieces []piece
	tmp    []piece
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// encodeWord appends the ids of one pre-tokenized word (raw bytes) to out,
// and the end offset of each token within word to ends when ends is not
// nil.
func (m *bpeModel) encodeWord(word string, sc *scratch, out []int, ends *[]int) []int {
	if word == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.rawVocab[word]; ok {
			if ends != nil {
				*ends = append(*ends, len(word))
			}
			return append(out, int(id))
		}
	}
	var ids []int32
	cached := false
	cacheable := len(word) <= maxCachedWord && !m.noCache
	if cacheable {
		ids, cached = m.cache.get(word)
	}
	if !cached {
		ids = m.merge(word, sc)
		if cacheable {
			m.cache.put(word, ids)
		}
	}
	pos := 0
	for _, id := range ids {
		out = append(out, int(id))
		if ends != nil {
			if id == m.unkID {
				pos++ // an unknown byte stands for one byte
			} else {
				pos += len(m.raw[id])
			}
			*ends = append(*ends, pos)
		}
	}
	return out
}

// merge runs BPE on one word: each byte starts as its own symbol in a
// doubly linked list; a min-heap holds every adjacent pair that has a
// merge, keyed by (rank, position of the left symbol). The lowest item
// is popped; if its left symbol is gone, has no right neighbour, or the
// pair at that position no longer yields the item's token (a neighbour
// merged meanwhile), the item is stale and skipped. Otherwise the two
// symbols merge and the pairs with the new neighbours are pushed. Each
// merge pushes at most two items, so a word of n bytes costs
// O(n log n). This is the algorithm of Hugging Face's Word::merge_all,
// with the same order among equal ranks (leftmost first).
//
// The returned slice is sc.ids and is valid until the next call.
func (m *bpeModel) merge(word string, sc *scratch) []int32 {
	n := len(word)
	ids, prev, next := sc.ids[:0], sc.prev[:0], sc.next[:0]
	for i := 0; i < n; i++ {
		id := m.byteID[word[i]]
		if id < 0 {
			if m.unkID < 0 {
				continue // Hugging Face drops a byte it has no token for.
			}
			id = m.unkID
		}
		ids = append(ids, id)
	}
	n = len(ids)
	for i := 0; i < n; i++ {
		prev = append(prev, int32(i-1))
		next = append(next, int32(i+1))
	}
	if n > 0 {
		next[n-1] = -1
	}
	h := sc.heap[:0]
	for i := 0; i+1 < n; i++ {
		if mg, ok := m.merges.get(pairKey(ids[i], ids[i+1])); ok {
			h = append(h, heapItem{key: uint64(mg.rank)<<32 | uint64(i), id: mg.id})
		}
	}
	// Heapify.
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	alive := n
	for len(h) > 0 && alive > 1 {
		it := h.pop()
		pos := int32(uint32(it.key))
		if ids[pos] < 0 {
			continue
		}
		r := next[pos]
		if r < 0 {
			continue
		}
		mg, ok := m.merges.get(pairKey(ids[pos], ids[r]))
		if !ok || mg.id != it.id {
			continue
		}
		// Merge r into pos.
		ids[pos] = it.id
		ids[r] = -1
		rr := next[r]
		next[pos] = rr
		if rr >= 0 {
			prev[rr] = pos
		}
		alive--
		if p := prev[pos]; p >= 0 {
			if mg, ok := m.merges.get(pairKey(ids[p], ids[pos])); ok {
				h.push(heapItem{key: uint64(mg.rank)<<32 | uint64(p), id: mg.id})
			}
		}
		if rr >= 0 {
			if mg, ok := m.merges.get(pairKey(ids[pos], ids[rr])); ok {
				h.push(heapItem{key: uint64(mg.rank)<<32 | uint64(pos), id: mg.id})
			}
		}
	}
	// Compact the surviving symbols in order.
	out := ids[:0]
	for i := 0; i < n; i++ {
		if ids[i] >= 0 {
			out = append(out, ids[i])
		}
	}
	sc.ids, sc.prev, sc.next, sc.heap = ids, prev, next, h
	return out
}

func siftDown(s mergeHeap, i int) {
	n := len(s)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s[r].key < s[l].key {
			m = r
		}
		if s[i].key <= s[m].key {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}
