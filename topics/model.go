package topics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// ModelVersion is the version of the serialised Model.
const ModelVersion = 1

// Embedder turns texts into vectors of Dim() float32 values, one per
// text, in order. Implementations: *TFIDF (built in, fitted by Fit) and
// *EndpointEmbedder.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
}

// Config sets Fit. The zero value works: the prompt embedded by the
// built-in TF-IDF embedder, k chosen in [2, 20], seed 0.
type Config struct {
	// Field is the text embedded and labelled (default prompt).
	Field Field `json:"field"`
	// Embedder, if set, embeds the texts (an endpoint, say); nil fits
	// the built-in TF-IDF embedder on the sample with TFIDF.
	Embedder Embedder     `json:"-"`
	TFIDF    TFIDFConfig  `json:"tfidf"`
	KMeans   KMeansConfig `json:"kmeans"`
	// Keywords per topic (default 10), of which LabelWords make the
	// label (default 3); a keyword needs MinKeywordCount occurrences in
	// its topic when enough words have them (default 2).
	Keywords        int `json:"keywords"`
	LabelWords      int `json:"label_words"`
	MinKeywordCount int `json:"min_keyword_count"`
	// Representatives is the number of sample ids kept per topic, those
	// closest to its centroid (default 5).
	Representatives int `json:"representatives"`
	// Namer, if set, names each topic from its keywords and the texts of
	// its first NamerExamples representatives (default 3).
	Namer         Namer `json:"-"`
	NamerExamples int   `json:"namer_examples"`
	// MaxSamples bounds the fit sample (default 20000): with more
	// samples, those of the smallest seeded hashes of their ids are used,
	// whatever their order.
	MaxSamples int `json:"max_samples"`
	// Seed makes every random choice.
	Seed uint64 `json:"seed"`
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Field == "" {
		c.Field = FieldPrompt
	}
	def(&c.Keywords, 10)
	def(&c.LabelWords, 3)
	def(&c.MinKeywordCount, 2)
	def(&c.Representatives, 5)
	def(&c.NamerExamples, 3)
	def(&c.MaxSamples, 20000)
	return c
}

// Topic is one cluster of a Model, described on the fit sample.
type Topic struct {
	ID int `json:"id"`
	// Label is the first keywords joined by " · "; Name is the namer's
	// name ("" without a namer or when naming failed).
	Label    string    `json:"label"`
	Name     string    `json:"name,omitempty"`
	Keywords []Keyword `json:"keywords"`
	// Size is the number of fit samples in the topic and MeanDistance
	// their mean cosine distance to the centroid.
	Size         int     `json:"size"`
	MeanDistance float64 `json:"mean_distance"`
	// Representatives are the ids of the fit samples closest to the
	// centroid (distance ascending, then id).
	Representatives []string `json:"representatives"`
}

// DisplayName is the topic's name, or its label without one.
func (t Topic) DisplayName() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Label
}

// Model is a fitted topic model: how texts are embedded, the unit
// centroids and the topics' descriptions. It serialises to JSON (Save,
// Load); vectors are base64 float32. A Model is read-only once fitted or
// loaded and safe for concurrent use: Assign* are pure functions of the
// model and their argument.
type Model struct {
	Version  int          `json:"version"`
	Field    Field        `json:"field"`
	Embedder EmbedderSpec `json:"embedder"`
	// TFIDF is the fitted built-in embedder (nil for other embedders).
	TFIDF *TFIDF `json:"tfidf,omitempty"`
	// K topics of Dim-long centroids, row-major, unit length.
	K         int     `json:"k"`
	Dim       int     `json:"dim"`
	Centroids Vec32   `json:"centroids"`
	Topics    []Topic `json:"topics"`
	// ProjMean (Dim) and Proj (2×Dim, row-major) map an embedding to 2-D
	// map coordinates: its first two principal components on the fit
	// sample.
	ProjMean Vec32 `json:"proj_mean"`
	Proj     Vec32 `json:"proj"`
	// Fit describes how the model was fitted.
	Fit FitInfo `json:"fit"`
}

// FitInfo records a fit.
type FitInfo struct {
	Seed       uint64       `json:"seed"`
	Samples    int          `json:"samples"`
	Silhouette float64      `json:"silhouette"`
	Inertia    float64      `json:"inertia"`
	Candidates []KScore     `json:"candidates"`
	KMeans     KMeansConfig `json:"kmeans"`
	// NamingErrors are the namer's failures (topics left unnamed).
	NamingErrors []string `json:"naming_errors,omitempty"`
}

// Fit fits a topic model on a bounded sample: it selects at most
// MaxSamples samples (those of the smallest SampleHash(id, Seed), ties
// by datasets.Less, so the input order does not matter and a bottom-k
// combine on that hash gathers the same sample), embeds Field's text (fitting the
// built-in embedder when cfg.Embedder is nil), clusters the unit
// embeddings (FitKMeans), labels each cluster by class-based tf-idf,
// keeps the representatives closest to each centroid, fits the 2-D map
// projection and, with a Namer, names the topics. The result is a
// function of the sample set, cfg and cfg.Seed.
func Fit(ctx context.Context, samples []datasets.Sample, cfg Config) (*Model, error) {
	cfg = cfg.withDefaults()
	if !cfg.Field.Valid() {
		return nil, fmt.Errorf("topics fit: unknown field %q (want prompt, response or conversation)", cfg.Field)
	}
	sample := fitSample(samples, cfg.MaxSamples, cfg.Seed)
	texts := make([]string, len(sample))
	for i := range sample {
		texts[i] = cfg.Field.Text(sample[i])
	}
	m := &Model{Version: ModelVersion, Field: cfg.Field}
	emb := cfg.Embedder
	if emb == nil {
		t, err := FitTFIDF(ctx, texts, cfg.TFIDF, cfg.Seed^0x7f1df)
		if err != nil {
			return nil, fmt.Errorf("topics fit: %w", err)
		}
		m.TFIDF, emb = t, t
	}
	if s, ok := emb.(Specer); ok {
		m.Embedder = s.Spec()
	} else {
		m.Embedder = EmbedderSpec{Kind: "custom", Dim: emb.Dim()}
	}
	vecs, err := emb.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("topics fit: embedding %d texts: %w", len(texts), err)
	}
	m.Dim = emb.Dim()
	x, err := unitRows(vecs, m.Dim)
	if err != nil {
		return nil, fmt.Errorf("topics fit: %w", err)
	}
	cl, err := FitKMeans(x, m.Dim, cfg.KMeans, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("topics fit: %w", err)
	}
	m.K, m.Centroids = cl.K, Vec32(cl.Centroids)
	m.Fit = FitInfo{Seed: cfg.Seed, Samples: len(sample), Silhouette: finite(cl.Silhouette), Inertia: cl.Inertia,
		Candidates: cl.Candidates, KMeans: cfg.KMeans.withDefaults()}
	for i := range m.Fit.Candidates {
		m.Fit.Candidates[i].Silhouette = finite(m.Fit.Candidates[i].Silhouette)
	}

	// Sizes, distances, representatives and keywords on the fit sample.
	m.Topics = make([]Topic, m.K)
	stats := make([]TopicStats, m.K)
	words := make([]WordCounts, m.K)
	for c := range m.K {
		words[c] = WordCounts{}
	}
	for i, c := range cl.Labels {
		stats[c].Add(sample[i].ID, float64(cl.Distances[i]), cfg.Representatives)
		words[c].Add(texts[i])
	}
	kws := ClassTFIDF(words, cfg.Keywords, cfg.MinKeywordCount)
	for c := range m.K {
		t := &m.Topics[c]
		t.ID = c
		t.Keywords = kws[c]
		if t.Keywords == nil {
			t.Keywords = []Keyword{}
		}
		t.Label = LabelOf(kws[c], cfg.LabelWords)
		t.Size = int(stats[c].Count)
		t.MeanDistance = stats[c].MeanDistance()
		t.Representatives = stats[c].RepIDs()
	}
	m.ProjMean, m.Proj = pca2(x, len(sample), m.Dim)

	if cfg.Namer != nil {
		textOf := map[string]string{}
		for i := range sample {
			textOf[sample[i].ID] = texts[i]
		}
		m.Fit.NamingErrors = m.name(ctx, cfg.Namer, cfg.NamerExamples, func(id string) string { return textOf[id] })
	}
	return m, nil
}

// name asks the namer for each topic's name; it stops at a spent budget
// or a fatal endpoint error, and returns the failures.
func (m *Model) name(ctx context.Context, namer Namer, nEx int, text func(id string) string) []string {
	var errs []string
	for c := range m.Topics {
		t := &m.Topics[c]
		words := make([]string, len(t.Keywords))
		for i, k := range t.Keywords {
			words[i] = k.Word
		}
		var ex []string
		for _, id := range t.Representatives[:min(nEx, len(t.Representatives))] {
			ex = append(ex, text(id))
		}
		name, err := namer.NameTopic(ctx, words, ex)
		if err != nil {
			errs = append(errs, fmt.Sprintf("topic %d: %v", c, err))
			var le *llm.Error
			if errors.Is(err, llm.ErrBudgetExhausted) || (errors.As(err, &le) && le.Fatal()) || ctx.Err() != nil {
				break
			}
			continue
		}
		t.Name = name
	}
	return errs
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// fitSample picks at most max samples by their seeded id hash and
// returns them in datasets.Less order.
func fitSample(samples []datasets.Sample, limit int, seed uint64) []*datasets.Sample {
	ptrs := make([]*datasets.Sample, len(samples))
	for i := range samples {
		ptrs[i] = &samples[i]
	}
	if len(ptrs) > limit {
		slices.SortFunc(ptrs, func(a, b *datasets.Sample) int {
			if c := cmp.Compare(SampleHash(a.ID, seed), SampleHash(b.ID, seed)); c != 0 {
				return c
			}
			return lessCmp(a, b)
		})
		ptrs = ptrs[:limit]
	}
	slices.SortFunc(ptrs, lessCmp)
	return ptrs
}

func lessCmp(a, b *datasets.Sample) int {
	switch {
	case datasets.Less(a, b):
		return -1
	case datasets.Less(b, a):
		return 1
	}
	return 0
}

// SampleHash is a sample id's seeded 64-bit hash (FNV-1a, then
// SplitMix64), the basis of every per-sample random choice here.
func SampleHash(id string, seed uint64) uint64 {
	return splitmix64(fnv1a(seed, []byte(id)) ^ seed)
}

// pca2 returns the mean of the n rows of x and the top two principal
// directions (2×dim), each with its largest-magnitude entry positive.
func pca2(x []float32, n, dim int) (Vec32, Vec32) {
	mean := make([]float64, dim)
	for i := range n {
		for j, v := range x[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	cov := mat.NewSymDense(dim, nil)
	raw := cov.RawSymmetric()
	row := make([]float64, dim)
	for i := range n {
		for j, v := range x[i*dim : (i+1)*dim] {
			row[j] = float64(v) - mean[j]
		}
		for a := range dim {
			ra := row[a]
			dst := raw.Data[a*raw.Stride : a*raw.Stride+dim]
			for b := a; b < dim; b++ {
				dst[b] += ra * row[b]
			}
		}
	}
	pm := make(Vec32, dim)
	for j, v := range mean {
		pm[j] = float32(v)
	}
	proj := make(Vec32, 2*dim)
	var eig mat.EigenSym
	if dim < 2 || !eig.Factorize(cov, true) {
		return pm, proj
	}
	var vec mat.Dense
	eig.VectorsTo(&vec)
	// Eigenvalues ascend: the last two columns.
	for r := range 2 {
		col := dim - 1 - r
		best, at := 0.0, 0
		for j := range dim {
			if a := math.Abs(vec.At(j, col)); a > best {
				best, at = a, j
			}
		}
		sign := 1.0
		if vec.At(at, col) < 0 {
			sign = -1
		}
		for j := range dim {
			proj[r*dim+j] = float32(sign * vec.At(j, col))
		}
	}
	return pm, proj
}

// Assignment is a sample's topic and its cosine distance (1 − cos, in
// [0, 2]) to the topic's centroid.
type Assignment struct {
	Topic    int32   `json:"topic"`
	Distance float32 `json:"distance"`
}

// AssignVector assigns an embedding (of any non-zero length scale) to
// the nearest centroid by cosine similarity; ties go to the lower topic.
// A zero vector is assigned topic 0 at distance 1.
func (m *Model) AssignVector(v []float32) (Assignment, error) {
	if len(v) != m.Dim {
		return Assignment{}, fmt.Errorf("topics assign: vector of %d dimensions, model has %d", len(v), m.Dim)
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return Assignment{Topic: 0, Distance: 1}, nil
	}
	inv := float32(1 / math.Sqrt(ss))
	best, bi := float32(math.Inf(-1)), 0
	for c := range m.K {
		if s := dot(v, m.Centroids[c*m.Dim:(c+1)*m.Dim]) * inv; s > best {
			best, bi = s, c
		}
	}
	return Assignment{Topic: int32(bi), Distance: min(max(1-best, 0), 2)}, nil
}

// AssignText embeds text with the model's built-in embedder and assigns
// it. Models of other embedders need the caller to embed (AssignVector).
func (m *Model) AssignText(text string) (Assignment, error) {
	if m.TFIDF == nil {
		return Assignment{}, fmt.Errorf("topics assign: the model's embedder is %s, not built in: embed with it and call AssignVector", m.Embedder.Kind)
	}
	var buf [128]float32
	return m.AssignVector(m.TFIDF.EmbedText(text, buf[:0]))
}

// AssignSample assigns the model's field of s with the built-in
// embedder (see AssignText).
func (m *Model) AssignSample(s *datasets.Sample) (Assignment, error) {
	return m.AssignText(m.Field.Text(s))
}

// Annotate writes an assignment into a sample: TopicID, TopicLabel (the
// topic's name, or its keyword label) and TopicDistance.
func (m *Model) Annotate(s *datasets.Sample, a Assignment) {
	id, dist := a.Topic, a.Distance
	s.TopicID = &id
	s.TopicDistance = &dist
	s.TopicLabel = ""
	if int(id) >= 0 && int(id) < len(m.Topics) {
		s.TopicLabel = m.Topics[id].DisplayName()
	}
}

// CheckEmbedder reports whether e embeds as the model's embedder did
// (same spec), so its vectors may be assigned.
func (m *Model) CheckEmbedder(e Embedder) error {
	spec := EmbedderSpec{Kind: "custom", Dim: e.Dim()}
	if s, ok := e.(Specer); ok {
		spec = s.Spec()
	}
	if spec != m.Embedder {
		return fmt.Errorf("topics: model was fitted with embedder %+v, not %+v", m.Embedder, spec)
	}
	return nil
}

// Project maps an embedding to the 2-D map coordinates.
func (m *Model) Project(v []float32) (x, y float64) {
	var u [2]float64
	var ss float64
	for _, a := range v {
		ss += float64(a) * float64(a)
	}
	inv := 1.0
	if ss > 0 {
		inv = 1 / math.Sqrt(ss)
	}
	for r := range 2 {
		p := m.Proj[r*m.Dim : (r+1)*m.Dim]
		for j, a := range v[:m.Dim] {
			u[r] += (float64(a)*inv - float64(m.ProjMean[j])) * float64(p[j])
		}
	}
	return u[0], u[1]
}

// Save writes the model as JSON.
func (m *Model) Save(w io.Writer) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("topics: saving model: %w", err)
	}
	return nil
}

// Load reads a model written by Save and checks its shapes.
func Load(r io.Reader) (*Model, error) {
	var m Model
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("topics: loading model: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("topics: loading model: %w", err)
	}
	return &m, nil
}

func (m *Model) validate() error {
	switch {
	case m.Version != ModelVersion:
		return fmt.Errorf("version %d, want %d", m.Version, ModelVersion)
	case m.K <= 0 || m.Dim <= 0:
		return fmt.Errorf("k %d, dim %d", m.K, m.Dim)
	case len(m.Centroids) != m.K*m.Dim:
		return fmt.Errorf("%d centroid values for %d×%d", len(m.Centroids), m.K, m.Dim)
	case len(m.Topics) != m.K:
		return fmt.Errorf("%d topics for k %d", len(m.Topics), m.K)
	case len(m.ProjMean) != m.Dim || len(m.Proj) != 2*m.Dim:
		return fmt.Errorf("projection of %d and %d values for dim %d", len(m.ProjMean), len(m.Proj), m.Dim)
	case !m.Field.Valid():
		return fmt.Errorf("unknown field %q", m.Field)
	}
	if t := m.TFIDF; t != nil {
		f := len(t.Features)
		c := t.Config
		switch {
		case t.K != m.Dim:
			return fmt.Errorf("tfidf dim %d, model dim %d", t.K, m.Dim)
		case len(t.IDF) != f || len(t.Basis) != f*t.K || len(t.MeanProj) != t.K:
			return fmt.Errorf("tfidf of %d features has %d idf, %d basis and %d mean values", f, len(t.IDF), len(t.Basis), len(t.MeanProj))
		case c.validate() != nil:
			return c.validate()
		case c.MaxBytes <= 0 || c.CharWeight <= 0 || (!c.NoChars && c.CharMin <= 0):
			return fmt.Errorf("tfidf config %+v is incomplete", c)
		}
		for i, b := range t.Features {
			if int(b) >= c.Buckets || (i > 0 && b <= t.Features[i-1]) {
				return fmt.Errorf("tfidf features are not ascending buckets below %d", c.Buckets)
			}
		}
	}
	return nil
}
