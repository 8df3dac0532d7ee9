package topics

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
)

// TFIDFConfig sets the built-in embedder. The zero value means the
// defaults below.
type TFIDFConfig struct {
	// Buckets is the size of the hashed feature space, a power of two
	// (default 1<<18): words and word bigrams hash into one half, the
	// character n-grams of words into the other.
	Buckets int `json:"buckets"`
	// MaxFeatures bounds the buckets kept, the most frequent by document
	// frequency (default 1<<14); MinDF is the least document frequency
	// of a kept bucket (default 2). The basis holds MaxFeatures×Dim
	// float32 values (6 MiB at the defaults).
	MaxFeatures int `json:"max_features"`
	MinDF       int `json:"min_df"`
	// Dim is the embedding length, the rank of the truncated SVD
	// (default 96; at most the number of features or documents less one).
	Dim int `json:"dim"`
	// CharMin and CharMax are the character n-gram lengths taken inside
	// words padded with a space each side (defaults 3 and 5); NoChars
	// turns character n-grams off. CharWeight scales their tf-idf
	// weights against the word features' (default 0.5).
	CharMin    int     `json:"char_min"`
	CharMax    int     `json:"char_max"`
	NoChars    bool    `json:"no_chars,omitempty"`
	CharWeight float64 `json:"char_weight"`
	// MaxBytes cuts each text to its first MaxBytes bytes (default
	// 4000), bounding the cost of one embedding.
	MaxBytes int `json:"max_bytes"`
	// SVDRows bounds the texts (a seeded subset) whose rows the SVD
	// factorises (default 4000); idf and the mean use every text.
	// Oversample and PowerIters tune the randomized SVD (defaults 10 and
	// 1).
	SVDRows    int `json:"svd_rows"`
	Oversample int `json:"oversample"`
	PowerIters int `json:"power_iters"`
}

func (c TFIDFConfig) withDefaults() TFIDFConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Buckets, 1<<18)
	def(&c.MaxFeatures, 1<<14)
	def(&c.MinDF, 2)
	def(&c.Dim, 96)
	def(&c.CharMin, 3)
	def(&c.CharMax, 5)
	def(&c.MaxBytes, 4000)
	def(&c.Oversample, 10)
	def(&c.PowerIters, 1)
	def(&c.SVDRows, 4000)
	if c.CharWeight <= 0 {
		c.CharWeight = 0.5
	}
	return c
}

func (c TFIDFConfig) validate() error {
	switch {
	case c.Buckets < 4 || bits.OnesCount(uint(c.Buckets)) != 1:
		return fmt.Errorf("tfidf: buckets %d is not a power of two ≥ 4", c.Buckets)
	case c.CharMin > c.CharMax:
		return fmt.Errorf("tfidf: char_min %d > char_max %d", c.CharMin, c.CharMax)
	}
	return nil
}

// TFIDF is the built-in embedder: sublinear tf-idf over hashed word
// unigrams, word bigrams and character n-grams, L2-normalised, centred
// on the fitted sample's mean and projected on the top right singular
// vectors of the centred sample matrix (latent semantic analysis); the
// result is scaled to unit length. Fit it with FitTFIDF; it is part of a
// Model and serialises with it. Safe for concurrent use.
type TFIDF struct {
	Config TFIDFConfig `json:"config"`
	// Docs is the number of documents it was fitted on.
	Docs int `json:"docs"`
	// Features are the kept buckets, ascending; IDF their weights
	// ln((1+n)/(1+df))+1.
	Features U32   `json:"features"`
	IDF      Vec32 `json:"idf"`
	// Basis is the len(Features)×Dim projection, row-major; MeanProj is
	// the fitted mean tf-idf vector projected on it (Dim).
	Basis    Vec32 `json:"basis"`
	MeanProj Vec32 `json:"mean_proj"`
	// Singular are the singular values of the centred sample matrix.
	Singular []float64 `json:"singular"`
	K        int       `json:"k"`

	once  sync.Once
	colOf []int32 // bucket → column, -1 when not kept
	pool  sync.Pool
}

// Dim is the embedding length.
func (t *TFIDF) Dim() int { return t.K }

// Embed embeds each text. It never fails on text (an empty or unknown
// text gets the embedding of the mean document); ctx is checked between
// texts.
func (t *TFIDF) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var err error
	parallelRows(len(texts), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if ctx.Err() != nil {
				return
			}
			out[i] = t.EmbedText(texts[i], nil)
		}
	})
	if e := ctx.Err(); e != nil {
		err = fmt.Errorf("tfidf embed: %w", e)
	}
	return out, err
}

// scratch holds the per-call buffers of featurisation: per-bucket
// counts (all zero between texts) and the buckets seen.
type scratch struct {
	cnt  []int32
	uniq []uint32
	buf  []byte
	pad  []byte
	cols []int32
	vals []float32
}

func (sc *scratch) add(b uint32) {
	if sc.cnt[b] == 0 {
		sc.uniq = append(sc.uniq, b)
	}
	sc.cnt[b]++
}

// each calls fn with each bucket hashFeatures saw, in the order of
// first sight (a function of the text, so sums over a row are taken in
// the same order at fit and at embedding), and its count, and clears
// the counts.
func (sc *scratch) each(fn func(b uint32, tf int)) {
	for _, b := range sc.uniq {
		fn(b, int(sc.cnt[b]))
		sc.cnt[b] = 0
	}
	sc.uniq = sc.uniq[:0]
}

func (t *TFIDF) scratch() *scratch {
	if s, ok := t.pool.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

func (t *TFIDF) index() {
	t.once.Do(func() {
		t.colOf = make([]int32, t.Config.Buckets)
		for i := range t.colOf {
			t.colOf[i] = -1
		}
		for c, b := range t.Features {
			t.colOf[b] = int32(c)
		}
	})
}

// EmbedText embeds one text into dst (reused when it has capacity Dim)
// and returns it.
func (t *TFIDF) EmbedText(text string, dst []float32) []float32 {
	t.index()
	sc := t.scratch()
	defer t.pool.Put(sc)
	hashFeatures(&t.Config, text, sc)
	sc.cols, sc.vals = sc.cols[:0], sc.vals[:0]
	sc.each(func(b uint32, tf int) {
		if c := t.colOf[b]; c >= 0 {
			sc.cols = append(sc.cols, c)
			sc.vals = append(sc.vals, float32(t.weight(b, tf, float64(t.IDF[c]))))
		}
	})
	normalize(sc.vals)
	if cap(dst) >= t.K {
		dst = dst[:t.K]
	} else {
		dst = make([]float32, t.K)
	}
	t.project(sc.cols, sc.vals, dst)
	return dst
}

// weight is the tf-idf weight of a bucket seen tf times.
func (t *TFIDF) weight(b uint32, tf int, idf float64) float64 {
	w := (1 + math.Log(float64(tf))) * idf
	if int(b) >= t.Config.Buckets/2 {
		w *= t.Config.CharWeight
	}
	return w
}

// project sets dst to the unit-length (x − mean)·Basis for the sparse,
// unit-length x.
func (t *TFIDF) project(cols []int32, vals []float32, dst []float32) {
	k := t.K
	for j := range dst {
		dst[j] = -t.MeanProj[j]
	}
	for p, c := range cols {
		axpy32(vals[p], t.Basis[int(c)*k:int(c)*k+k], dst)
	}
	normalize(dst)
}

// hashFeatures counts text's features into sc (consume them with
// sc.each).
func hashFeatures(c *TFIDFConfig, text string, sc *scratch) {
	if len(sc.cnt) != c.Buckets {
		sc.cnt = make([]int32, c.Buckets)
	}
	text = truncate(text, c.MaxBytes)
	half := uint64(c.Buckets / 2)
	mask := half - 1
	sc.uniq = sc.uniq[:0]
	var prev uint64
	have := false
	sc.buf = eachWord(text, sc.buf, func(w []byte) {
		h := fnv1a(0x77, w)
		sc.add(uint32(h & mask))
		if have {
			sc.add(uint32(splitmix64(prev*0x100000001b3^h^0xb16) & mask))
		}
		prev, have = h, true
		if c.NoChars {
			return
		}
		sc.pad = append(append(append(sc.pad[:0], ' '), w...), ' ')
		for n := c.CharMin; n <= c.CharMax; n++ {
			for i := 0; i+n <= len(sc.pad); i++ {
				sc.add(uint32(fnv1a(uint64(n)<<8, sc.pad[i:i+n])&mask | half))
			}
		}
	})
}

// FitTFIDF fits the built-in embedder on texts (a bounded sample):
// document frequencies per bucket, the MaxFeatures most frequent buckets
// with df ≥ MinDF, their idf, the mean tf-idf row, and the randomized
// truncated SVD (seeded) of the centred tf-idf rows of at most SVDRows
// texts. Memory: two bucket-count arrays per CPU (4·Buckets bytes each)
// and the SVDRows sparse rows. It fails when fewer than 3 texts or 2
// features remain.
func FitTFIDF(ctx context.Context, texts []string, cfg TFIDFConfig, seed uint64) (*TFIDF, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := len(texts)
	if n < 3 {
		return nil, fmt.Errorf("tfidf: %d texts, want at least 3", n)
	}
	// Pass 1: document frequencies (integer sums, so the split across
	// goroutines does not matter).
	var mu sync.Mutex
	df := make([]int32, cfg.Buckets)
	parallelRows(n, func(lo, hi int) {
		local := make([]int32, cfg.Buckets)
		sc := &scratch{}
		for i := lo; i < hi; i++ {
			hashFeatures(&cfg, texts[i], sc)
			sc.each(func(b uint32, _ int) { local[b]++ })
		}
		mu.Lock()
		for b, x := range local {
			df[b] += x
		}
		mu.Unlock()
	})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tfidf fit: %w", err)
	}
	var cand []uint32
	for b, x := range df {
		if int(x) >= cfg.MinDF {
			cand = append(cand, uint32(b))
		}
	}
	slices.SortFunc(cand, func(a, b uint32) int {
		if df[a] != df[b] {
			return int(df[b]) - int(df[a])
		}
		return int(a) - int(b)
	})
	if len(cand) > cfg.MaxFeatures {
		cand = cand[:cfg.MaxFeatures]
	}
	slices.Sort(cand)
	f := len(cand)
	if f < 2 {
		return nil, fmt.Errorf("tfidf: only %d features occur in %d or more of %d texts", f, cfg.MinDF, n)
	}
	t := &TFIDF{Config: cfg, Docs: n, Features: U32(cand), IDF: make(Vec32, f)}
	for c, b := range cand {
		t.IDF[c] = float32(math.Log(float64(1+n)/float64(1+df[b])) + 1)
	}
	t.index()

	// Pass 2: the unit-length tf-idf rows. Their mean is summed over
	// all texts in fixed blocks of rows (so the float sums do not depend
	// on the number of CPUs); the SVD sees a seeded subset of at most
	// SVDRows rows.
	rng := rand.New(rand.NewPCG(seed, 0x5ab5e7))
	keep := make([]bool, n)
	for _, i := range rng.Perm(n)[:min(n, cfg.SVDRows)] {
		keep[i] = true
	}
	type row struct {
		cols []int32
		vals []float32
	}
	rows := make([]row, n)
	const block = 256
	partial := make([][]float64, (n+block-1)/block)
	parallelRows(len(partial), func(lo, hi int) {
		sc := &scratch{}
		for blk := lo; blk < hi; blk++ {
			sum := make([]float64, f)
			for i := blk * block; i < min(n, (blk+1)*block); i++ {
				hashFeatures(&cfg, texts[i], sc)
				sc.cols, sc.vals = sc.cols[:0], sc.vals[:0]
				sc.each(func(b uint32, tf int) {
					if c := t.colOf[b]; c >= 0 {
						sc.cols = append(sc.cols, c)
						sc.vals = append(sc.vals, float32(t.weight(b, tf, float64(t.IDF[c]))))
					}
				})
				normalize(sc.vals)
				for p, c := range sc.cols {
					sum[c] += float64(sc.vals[p])
				}
				if keep[i] {
					rows[i] = row{slices.Clone(sc.cols), slices.Clone(sc.vals)}
				}
			}
			partial[blk] = sum
		}
	})
	mean := make([]float64, f)
	for _, sum := range partial {
		for c, x := range sum {
			mean[c] += x
		}
	}
	partial = nil
	for c := range mean {
		mean[c] /= float64(n)
	}
	a := &csr{f: f, ptr: []int{0}}
	for i, r := range rows {
		if keep[i] {
			a.col = append(a.col, r.cols...)
			a.val = append(a.val, r.vals...)
			a.ptr = append(a.ptr, len(a.col))
			a.n++
		}
	}
	rows = nil
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tfidf fit: %w", err)
	}
	k := min(cfg.Dim, f-1, a.n-1)
	res, err := randomizedSVD(a, mean, k, cfg.Oversample, cfg.PowerIters, seed)
	if err != nil {
		return nil, fmt.Errorf("tfidf fit: %w", err)
	}
	k = len(res.S)
	t.K = k
	t.Singular = res.S
	t.Basis = make(Vec32, f*k)
	t.MeanProj = make(Vec32, k)
	mp := make([]float64, k)
	vraw := res.V.RawMatrix()
	for c := range f {
		for j := range k {
			x := vraw.Data[c*vraw.Stride+j]
			t.Basis[c*k+j] = float32(x)
			mp[j] += mean[c] * x
		}
	}
	for j, x := range mp {
		t.MeanProj[j] = float32(x)
	}
	return t, nil
}
