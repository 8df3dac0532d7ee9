package filters

import (
	"hash/maphash"
	"strings"
	"sync"
)

// textMemo remembers a measurement of a text by the text's 128-bit hash,
// so that a text met again (an answer reused under many prompt variants,
// a system prompt shared by a whole source, a sample checked by two
// stages) is measured once. The measurements memoised are pure functions
// of the text, so a hit gives exactly what a recomputation would.
//
// Memory is bounded: each of memoShards shards holds two generations of
// at most memoShardSize entries. New entries go into the current one;
// when it is full it becomes the old one and the older is dropped; a hit
// in the old generation moves the entry back into the current one. So a
// text met again and again (an answer reused under many prompts) stays,
// while a stream of texts met once (unique prompts) passes through
// without flushing it. A miss costs a recomputation, never a different
// answer; a false hit needs two equal 128-bit hashes of different texts.
type textMemo[V any] struct {
	shards [memoShards]memoShard[V]
}

const (
	memoShards    = 64
	memoShardSize = 1024
)

type memoShard[V any] struct {
	mu       sync.Mutex
	cur, old map[memoKey]V
}

type memoKey [2]uint64

var memoSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// textKey hashes text and a tag (the measurement and its options).
func textKey(text string, tag uint64) memoKey {
	var h0, h1 maphash.Hash
	h0.SetSeed(memoSeeds[0])
	h1.SetSeed(memoSeeds[1])
	var tb [8]byte
	for i := range tb {
		tb[i] = byte(tag >> (8 * i))
	}
	h0.Write(tb[:])
	h1.Write(tb[:])
	h0.WriteString(text)
	h1.WriteString(text)
	return memoKey{h0.Sum64(), h1.Sum64()}
}

func (t *textMemo[V]) get(k memoKey) (V, bool) {
	sh := &t.shards[k[0]%memoShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.cur[k]; ok {
		return v, true
	}
	v, ok := sh.old[k]
	if ok {
		delete(sh.old, k)
		sh.putLocked(k, v)
	}
	return v, ok
}

func (t *textMemo[V]) put(k memoKey, v V) {
	sh := &t.shards[k[0]%memoShards]
	sh.mu.Lock()
	sh.putLocked(k, v)
	sh.mu.Unlock()
}

func (sh *memoShard[V]) putLocked(k memoKey, v V) {
	if sh.cur == nil || len(sh.cur) >= memoShardSize {
		sh.old, sh.cur = sh.cur, make(map[memoKey]V, memoShardSize)
	}
	sh.cur[k] = v
}

// len is the number of entries held (tests).
func (t *textMemo[V]) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.old)
		sh.mu.Unlock()
	}
	return n
}

// Memoised measurements. The texts they are keyed by are what the
// measurement reads (after proseText or detectRoles' joining), so two
// samples share an entry exactly when the measurement would read the
// same bytes.
var (
	degenerateMemo textMemo[DegenerateStats]
	languageMemo   textMemo[langResult]
	lengthMemo     textMemo[[3]int]
	latinMemo      textMemo[[2]int]
	wordCountMemo  textMemo[int]
	refusalMemo    textMemo[refusalHit]
	piiMemo        textMemo[[]piiSpan] // shared read-only: callers copy
)

type langResult struct {
	lang    string
	conf    float64
	letters int
}

// do returns the value stored under k, or computes, stores and returns it.
func (t *textMemo[V]) do(k memoKey, compute func() V) V {
	if v, ok := t.get(k); ok {
		return v
	}
	v := compute()
	t.put(k, v)
	return v
}

// memoDegenerate is measureDegenerate through degenerateMemo, keyed by
// the text and which measures are on. The stats' LoopUnit is cloned (text
// may be a view of a scratch buffer).
func memoDegenerate(text string, sc *scratch, st *DegenerateStats, gib, loop bool) {
	var tag uint64
	if gib {
		tag |= 1
	}
	if loop {
		tag |= 2
	}
	*st = degenerateMemo.do(textKey(text, tag), func() DegenerateStats {
		var v DegenerateStats
		measureDegenerate(text, sc, &v, gib, loop)
		v.LoopUnit = strings.Clone(v.LoopUnit)
		return v
	})
}

// memoLanguage is detectLanguage through languageMemo.
func memoLanguage(text string) (string, float64, int) {
	v := languageMemo.do(textKey(text, 0), func() langResult {
		lang, conf, letters := detectLanguage(text)
		return langResult{lang, conf, letters}
	})
	return v.lang, v.conf, v.letters
}

// cheapMemoMin is the length from which the one-pass scans (length
// measures, Latin letters, word count) go through their memos: a shorter
// text (most prompts) is scanned in less time than its key is hashed and
// looked up, so it is scanned.
const cheapMemoMin = 256

// memoMeasureText is measureText through lengthMemo.
func memoMeasureText(text string) (chars, words, tokens int) {
	if len(text) < cheapMemoMin {
		return measureText(text)
	}
	v := lengthMemo.do(textKey(text, 0), func() [3]int {
		c, w, t := measureText(text)
		return [3]int{c, w, t}
	})
	return v[0], v[1], v[2]
}

// memoCountLatin is countLatin of text's first 2000 bytes (rolesLatinShare)
// through latinMemo.
func memoCountLatin(text string) (letters, latin int) {
	if len(text) < cheapMemoMin {
		return countLatin(text) // shorter than the 2000-byte cut
	}
	v := latinMemo.do(textKey(text, 0), func() [2]int {
		l, n := countLatin(cutUTF8(text, 2000))
		return [2]int{l, n}
	})
	return v[0], v[1]
}

// memoCountNormWords is countNormWords through wordCountMemo.
func memoCountNormWords(text string) int {
	if len(text) < cheapMemoMin {
		return countNormWords(text)
	}
	return wordCountMemo.do(textKey(text, 0), func() int { return countNormWords(text) })
}

// refusalHit is refusalFilter.find's result.
type refusalHit struct {
	phrase, at int
	ok         bool
}

// memoFind is f.find through refusalMemo, keyed by the text and f's
// phrases (f.id).
func (f *refusalFilter) memoFind(text string) (int, int, bool) {
	v := refusalMemo.do(textKey(text, f.id), func() refusalHit {
		phrase, at, ok := f.find(text)
		return refusalHit{phrase, at, ok}
	})
	return v.phrase, v.at, v.ok
}
