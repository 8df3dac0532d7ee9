package topics

import (
	"context"
	"fmt"
	"math"
	"math/bits"
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
	// Oversample and PowerIters tune the randomized SVD (defaults 10 and
	// 3).
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
	def(&c.PowerIters, 3)
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

// scratch holds the per-call buffers of featurisation.
type scratch struct {
	ids  []uint32
	buf  []byte
	pad  []byte
	cols []int32
	vals []float32
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
	eachRun(sc.ids, func(b uint32, tf int) {
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
		v := vals[p]
		row := t.Basis[int(c)*k : int(c)*k+k]
		for j, x := range row {
			dst[j] += v * x
		}
	}
	normalize(dst)
}

// hashFeatures leaves the sorted bucket ids of text's features (with
// repeats) in sc.ids.
func hashFeatures(c *TFIDFConfig, text string, sc *scratch) {
	text = truncate(text, c.MaxBytes)
	half := uint64(c.Buckets / 2)
	mask := half - 1
	sc.ids = sc.ids[:0]
	var prev uint64
	have := false
	sc.buf = eachWord(text, sc.buf, func(w []byte) {
		h := fnv1a(0x77, w)
		sc.ids = append(sc.ids, uint32(h&mask))
		if have {
			sc.ids = append(sc.ids, uint32(splitmix64(prev*0x100000001b3^h^0xb16)&mask))
		}
		prev, have = h, true
		if c.NoChars {
			return
		}
		sc.pad = append(append(append(sc.pad[:0], ' '), w...), ' ')
		for n := c.CharMin; n <= c.CharMax; n++ {
			for i := 0; i+n <= len(sc.pad); i++ {
				sc.ids = append(sc.ids, uint32(fnv1a(uint64(n)<<8, sc.pad[i:i+n])&mask|half))
			}
		}
	})
	slices.Sort(sc.ids)
}

// eachRun calls fn with each distinct id of sorted ids and its count.
func eachRun(ids []uint32, fn func(id uint32, n int)) {
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[i] {
			j++
		}
		fn(ids[i], j-i)
		i = j
	}
}

// FitTFIDF fits the built-in embedder on texts (a bounded sample: every
// text's features are held as one sparse row): document frequencies per
// bucket, the MaxFeatures most frequent buckets with df ≥ MinDF, their
// idf, the tf-idf matrix and its randomized truncated SVD (seeded). It
// fails when fewer than 3 texts or 2 features remain.
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
			eachRun(sc.ids, func(b uint32, _ int) { local[b]++ })
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

	// Pass 2: the unit-length tf-idf rows.
	rows := make([]struct {
		cols []int32
		vals []float32
	}, n)
	parallelRows(n, func(lo, hi int) {
		sc := &scratch{}
		for i := lo; i < hi; i++ {
			hashFeatures(&cfg, texts[i], sc)
			var cols []int32
			var vals []float32
			eachRun(sc.ids, func(b uint32, tf int) {
				if c := t.colOf[b]; c >= 0 {
					cols = append(cols, c)
					vals = append(vals, float32(t.weight(b, tf, float64(t.IDF[c]))))
				}
			})
			normalize(vals)
			rows[i].cols, rows[i].vals = cols, vals
		}
	})
	a := &csr{n: n, f: f, ptr: make([]int, n+1)}
	for i, r := range rows {
		a.ptr[i+1] = a.ptr[i] + len(r.cols)
	}
	a.col = make([]int32, 0, a.ptr[n])
	a.val = make([]float32, 0, a.ptr[n])
	mean := make([]float64, f)
	for _, r := range rows {
		a.col = append(a.col, r.cols...)
		a.val = append(a.val, r.vals...)
		for p, c := range r.cols {
			mean[c] += float64(r.vals[p])
		}
	}
	rows = nil
	for c := range mean {
		mean[c] /= float64(n)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tfidf fit: %w", err)
	}
	k := min(cfg.Dim, f-1, n-1)
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
