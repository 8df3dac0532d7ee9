package transforms

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/topics"
)

// Files of a topics stage in a version.
const (
	// TopicsModelFile is the fitted topic model (topics.Save), so a later
	// version can be assigned to the same topics.
	TopicsModelFile = "topics/model.json"
	// TopicsReportFile is the topics report (topics.Report as JSON) over
	// every sample that left the stage.
	TopicsReportFile = "topics/report.json"
)

// TopicsConfig sets the Topics composite (plain fields: it travels in
// the DoFns).
type TopicsConfig struct {
	// Stage names the stage (in errors).
	Stage string `json:"stage"`
	// Dir is the staging directory the model and report are written to.
	Dir string `json:"dir"`
	// Files is the directory, inside Dir, of the model and the report
	// (default "topics": TopicsModelFile and TopicsReportFile). A recipe
	// with several topics stages gives each but the last its own.
	Files string `json:"files,omitempty"`
	// Field is the text embedded (topics.Field; default prompt).
	Field string `json:"field"`
	// K topics; 0 chooses k by silhouette (topics.KMeansConfig).
	K int `json:"k"`
	// Seed picks the fit sample and makes every random choice of the fit.
	Seed uint64 `json:"seed"`
	// MaxSamples bounds the fit sample (default 20000).
	MaxSamples int `json:"max_samples"`
	// Representatives per topic in the report (default 5).
	Representatives int `json:"representatives"`
	// MaxPoints bounds the samples placed on the report's 2-D map, those
	// of the smallest seeded id hashes (default 2000).
	MaxPoints int `json:"max_points"`
	// Namer, if set, is the endpoint that names the topics when the model
	// is fitted (topics.LLMNamer), through the process's shared client of
	// the endpoint and CacheDir (llm.Shared); BudgetLedger is the run's
	// ledger directory, which makes the endpoint's budget one budget for
	// every process (as StepSpec.BudgetLedger).
	Namer        *llm.Endpoint `json:"namer,omitempty"`
	CacheDir     string        `json:"cache_dir,omitempty"`
	BudgetLedger string        `json:"budget_ledger,omitempty"`
}

// modelFile and reportFile are where the stage writes its model and
// report, relative to Dir.
func (c TopicsConfig) modelFile() string {
	if c.Files == "" {
		return TopicsModelFile
	}
	return c.Files + "/model.json"
}

func (c TopicsConfig) reportFile() string {
	if c.Files == "" {
		return TopicsReportFile
	}
	return c.Files + "/report.json"
}

func (c TopicsConfig) withDefaults() TopicsConfig {
	if c.MaxSamples <= 0 {
		c.MaxSamples = 20000
	}
	if c.MaxPoints <= 0 {
		c.MaxPoints = 2000
	}
	if c.Representatives <= 0 {
		c.Representatives = 5
	}
	return c
}

// fit is the topics package's configuration (the built-in embedder).
func (c TopicsConfig) fit() topics.Config {
	return topics.Config{Field: topics.Field(c.Field), KMeans: topics.KMeansConfig{K: c.K},
		Representatives: c.Representatives, MaxSamples: c.MaxSamples, Seed: c.Seed}
}

func init() {
	register.Combiner3[TopicsSample, datasets.Sample, TopicsSample](&topicsSampleFn{})
	register.DoFn4x1[context.Context, TopicsSample, func([]byte), func(string), error](&topicsFitFn{})
	register.DoFn5x1[context.Context, datasets.Sample, func(*[]byte) bool, func(datasets.Sample), func(TopicHit), error](&topicsAssignFn{})
	register.Emitter1[TopicHit]()
	register.Iter1[[]byte]()
	beam.RegisterCoder(reflect.TypeOf(topicsAcc{}), encodeTopicsAcc, decodeTopicsAcc)
	register.Combiner3[topicsAcc, TopicHit, topicsAcc](&topicsStatsFn{})
	register.DoFn3x1[context.Context, topicsAcc, func(*[]byte) bool, error](&topicsReportFn{})
}

// Topics fits a topic model on a bounded sample of samples and assigns
// every sample to a topic (topic_id, topic_label). The fit sample is a
// global combine keeping the MaxSamples samples of the smallest
// topics.SampleHash(id, Seed) (bottom-k, so it is the same whatever
// the bundling); one worker fits the model and writes it to
// TopicsModelFile; every sample is then assigned in parallel with the
// model's bytes as a side input. Per-topic stats and a sample of map
// points are combined into TopicsReportFile. Nothing is dropped. With
// no samples nothing is written.
func Topics(s beam.Scope, samples beam.PCollection, cfg TopicsConfig) beam.PCollection {
	assigned, _, _ := TopicsWithModel(s, samples, cfg)
	return assigned
}

// TopicsWithModel is Topics that also returns the fitted model: a
// PCollection of at most one element, the model's bytes (topics.Save),
// for later stages that work on the topics (SemanticDedupMarks) to take
// as a side input. It is empty when no sample reached the stage.
// reports are the run report lines of the fit: the namer's usage
// ("usage"), none without a namer.
func TopicsWithModel(s beam.Scope, samples beam.PCollection, cfg TopicsConfig) (assigned, model, reports beam.PCollection) {
	s = s.Scope("Topics_" + cfg.Stage)
	cfg = cfg.withDefaults()
	fitSample := beam.Combine(s, &topicsSampleFn{Seed: cfg.Seed, Max: cfg.MaxSamples}, samples)
	model, reports = beam.ParDo2(s, &topicsFitFn{Cfg: cfg}, fitSample)
	var hits beam.PCollection
	assigned, hits = beam.ParDo2(s, &topicsAssignFn{Stage: cfg.Stage, Seed: cfg.Seed},
		samples, beam.SideInput{Input: model})
	stats := beam.Combine(s, &topicsStatsFn{Reps: cfg.Representatives, MaxPoints: cfg.MaxPoints}, hits)
	beam.ParDo0(s, &topicsReportFn{Cfg: cfg}, stats, beam.SideInput{Input: model})
	return assigned, model, reports
}

// TopicsSample is the fit sample as the combine accumulates it: each item
// the sample's seeded id hash (8 bytes, big-endian) and its binary
// encoding, kept sorted and capped (ties by encoding, so the sample does
// not depend on order).
type TopicsSample struct {
	Items [][]byte
}

type topicsSampleFn struct {
	Seed uint64 `json:"seed"`
	Max  int    `json:"max"`
}

func (f *topicsSampleFn) CreateAccumulator() TopicsSample { return TopicsSample{} }

func (f *topicsSampleFn) AddInput(p TopicsSample, s datasets.Sample) TopicsSample {
	b := binary.BigEndian.AppendUint64(nil, topics.SampleHash(s.ID, f.Seed))
	p.Items = append(p.Items, s.AppendBinary(b))
	if len(p.Items) >= 2*f.Max {
		p = f.trim(p)
	}
	return p
}

func (f *topicsSampleFn) MergeAccumulators(a, b TopicsSample) TopicsSample {
	a.Items = append(a.Items, b.Items...)
	return f.trim(a)
}

func (f *topicsSampleFn) ExtractOutput(p TopicsSample) TopicsSample { return f.trim(p) }

func (f *topicsSampleFn) trim(p TopicsSample) TopicsSample {
	slices.SortFunc(p.Items, bytes.Compare)
	if len(p.Items) > f.Max {
		p.Items = p.Items[:f.Max:f.Max]
	}
	return p
}

// TopicsFitSampler gathers a topics stage's fit sample outside Beam, as
// the stage's combine does (for benchmarks and tools that call the
// stage's code directly): Add every sample, in any order, then Sample.
type TopicsFitSampler struct {
	fn  topicsSampleFn
	acc TopicsSample
}

// NewTopicsFitSampler is the sampler of a stage's configuration.
func NewTopicsFitSampler(cfg TopicsConfig) *TopicsFitSampler {
	cfg = cfg.withDefaults()
	return &TopicsFitSampler{fn: topicsSampleFn{Seed: cfg.Seed, Max: cfg.MaxSamples}}
}

// Add adds one sample.
func (f *TopicsFitSampler) Add(s datasets.Sample) { f.acc = f.fn.AddInput(f.acc, s) }

// Merge adds what another sampler of the same configuration gathered
// (as the combine merges bundles' accumulators).
func (f *TopicsFitSampler) Merge(o *TopicsFitSampler) { f.acc = f.fn.MergeAccumulators(f.acc, o.acc) }

// Sample is the fit sample so far.
func (f *TopicsFitSampler) Sample() TopicsSample { return f.fn.ExtractOutput(f.acc) }

// FitTopics fits the stage's model on its fit sample, as the stage does
// (topics.Fit with the stage's configuration; with a Namer, the topics
// are named through the shared client of its endpoint, which Client
// returns).
func FitTopics(ctx context.Context, cfg TopicsConfig, p TopicsSample) (*topics.Model, error) {
	cfg = cfg.withDefaults()
	samples := make([]datasets.Sample, len(p.Items))
	for i, it := range p.Items {
		if err := samples[i].UnmarshalBinary(it[8:]); err != nil {
			return nil, fmt.Errorf("stage %s: fit sample: %w", cfg.Stage, err)
		}
	}
	k := cfg.K
	if k > len(samples) {
		return nil, fmt.Errorf("stage %s: k is %d but only %d samples reach the stage", cfg.Stage, k, len(samples))
	}
	fc := cfg.fit()
	if cfg.Namer != nil {
		c, err := cfg.Client()
		if err != nil {
			return nil, fmt.Errorf("stage %s: name_with: %w", cfg.Stage, err)
		}
		fc.Namer = topics.LLMNamer{Client: c}
	}
	m, err := topics.Fit(ctx, samples, fc)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", cfg.Stage, err)
	}
	return m, nil
}

// Client is the process's shared client of the namer's endpoint (nil
// without a Namer), as the LLM stages make theirs.
func (c TopicsConfig) Client() (*llm.Client, error) {
	if c.Namer == nil {
		return nil, nil
	}
	return llm.Shared(*c.Namer, llm.Options{CacheDir: c.CacheDir, Logger: slog.Default(),
		Ledger: budgetLedger(c.BudgetLedger, *c.Namer, c.CacheDir)})
}

// AssignTopic assigns a sample with a model of the built-in embedder as
// the stage does: it embeds the model's field of s (into buf, returned
// for reuse), assigns the embedding to the nearest centroid, annotates s
// (topic_id, topic_label, topic_distance) and returns the assignment and
// the embedding's map coordinates.
func AssignTopic(m *topics.Model, s *datasets.Sample, buf []float32) (a topics.Assignment, x, y float64, out []float32, err error) {
	buf = m.TFIDF.EmbedText(m.Field.Text(s), buf[:0])
	a, err = m.AssignVector(buf)
	if err != nil {
		return a, 0, 0, buf, fmt.Errorf("sample %s: %w", s.ID, err)
	}
	m.Annotate(s, a)
	x, y = m.Project(buf)
	return a, x, y, buf, nil
}

// topicsFitFn fits the model on the fit sample, writes it to the
// version and emits its bytes (nothing for an empty sample), and reports
// the namer's usage.
type topicsFitFn struct {
	Cfg TopicsConfig `json:"cfg"`
}

func (f *topicsFitFn) ProcessElement(ctx context.Context, p TopicsSample, emit func([]byte), report func(string)) error {
	if len(p.Items) == 0 {
		return nil
	}
	m, err := FitTopics(ctx, f.Cfg, p)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
	}
	err = writeFile(ctx, joinPath(f.Cfg.Dir, f.Cfg.modelFile()), func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return fmt.Errorf("stage %s: writing the model: %w", f.Cfg.Stage, err)
	}
	emit(buf.Bytes())
	if f.Cfg.Namer != nil {
		c, err := f.Cfg.Client()
		if err != nil {
			return fmt.Errorf("stage %s: name_with: %w", f.Cfg.Stage, err)
		}
		return emitUsage(report, c)
	}
	return nil
}

// TopicHit is one assigned sample as the report gathers it.
type TopicHit struct {
	ID       string
	Hash     uint64
	Topic    int32
	Distance float64
	X, Y     float64
}

// topicsAssignFn assigns each sample with the model (loaded once per
// worker from the side input) and emits it annotated, with its hit.
type topicsAssignFn struct {
	Stage string `json:"stage"`
	Seed  uint64 `json:"seed"`
	model *topics.Model
	buf   []float32
}

func (f *topicsAssignFn) ProcessElement(ctx context.Context, s datasets.Sample, model func(*[]byte) bool,
	out func(datasets.Sample), hit func(TopicHit)) error {
	if f.model == nil {
		m, err := loadTopicModel(f.Stage, model)
		if err != nil {
			return err
		}
		if m == nil {
			return fmt.Errorf("stage %s: no topic model was fitted", f.Stage)
		}
		f.model = m
	}
	a, x, y, buf, err := AssignTopic(f.model, &s, f.buf)
	f.buf = buf
	if err != nil {
		return fmt.Errorf("stage %s: %w", f.Stage, err)
	}
	hit(TopicHit{ID: s.ID, Hash: topics.SampleHash(s.ID, f.Seed), Topic: a.Topic, Distance: float64(a.Distance), X: x, Y: y})
	out(s)
	return nil
}

// loadTopicModel loads the model of a topics stage from its side input
// (TopicsWithModel's model): nil when there is none (no sample reached
// that stage), an error when it is not of the built-in embedder, whose
// embeddings the workers compute.
func loadTopicModel(stage string, model func(*[]byte) bool) (*topics.Model, error) {
	var b []byte
	if !model(&b) {
		return nil, nil
	}
	m, err := topics.Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stage, err)
	}
	if m.TFIDF == nil {
		return nil, fmt.Errorf("stage %s: the model's embedder is %s, not built in", stage, m.Embedder.Kind)
	}
	return m, nil
}

// topicsAcc gathers the hits: per-topic stats (merged exactly, in fixed
// point) and the MaxPoints hits of the smallest (hash, id).
type topicsAcc struct {
	Stats  []topics.TopicStats `json:"stats"`
	Points []TopicHit          `json:"points"`
}

func encodeTopicsAcc(a topicsAcc) ([]byte, error) { return json.Marshal(a) }

func decodeTopicsAcc(b []byte) (topicsAcc, error) {
	var a topicsAcc
	err := json.Unmarshal(b, &a)
	return a, err
}

type topicsStatsFn struct {
	Reps      int `json:"reps"`
	MaxPoints int `json:"max_points"`
}

func (f *topicsStatsFn) CreateAccumulator() topicsAcc { return topicsAcc{} }

func (f *topicsStatsFn) grow(a *topicsAcc, k int) {
	for len(a.Stats) < k {
		a.Stats = append(a.Stats, topics.TopicStats{})
	}
}

func (f *topicsStatsFn) AddInput(a topicsAcc, h TopicHit) topicsAcc {
	f.grow(&a, int(h.Topic)+1)
	a.Stats[h.Topic].Add(h.ID, h.Distance, f.Reps)
	a.Points = append(a.Points, h)
	if len(a.Points) >= 2*f.MaxPoints {
		a = f.trim(a)
	}
	return a
}

func (f *topicsStatsFn) MergeAccumulators(a, b topicsAcc) topicsAcc {
	f.grow(&a, len(b.Stats))
	for i := range b.Stats {
		a.Stats[i].Merge(b.Stats[i], f.Reps)
	}
	a.Points = append(a.Points, b.Points...)
	return f.trim(a)
}

func (f *topicsStatsFn) ExtractOutput(a topicsAcc) topicsAcc { return f.trim(a) }

func (f *topicsStatsFn) trim(a topicsAcc) topicsAcc {
	slices.SortFunc(a.Points, func(x, y TopicHit) int {
		if c := cmp.Compare(x.Hash, y.Hash); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	if len(a.Points) > f.MaxPoints {
		a.Points = a.Points[:f.MaxPoints:f.MaxPoints]
	}
	return a
}

// topicsReportFn builds the report from the model and the gathered stats
// and writes it to the version.
type topicsReportFn struct {
	Cfg TopicsConfig `json:"cfg"`
}

func (f *topicsReportFn) ProcessElement(ctx context.Context, a topicsAcc, model func(*[]byte) bool) error {
	var b []byte
	if !model(&b) {
		return nil // no samples, no model
	}
	m, err := topics.Load(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
	}
	if len(a.Stats) > m.K {
		return fmt.Errorf("stage %s: report: topic %d of a model of %d", f.Cfg.Stage, len(a.Stats)-1, m.K)
	}
	stats := make([]topics.TopicStats, m.K)
	copy(stats, a.Stats)
	points := make([]topics.Point, len(a.Points))
	for i, h := range a.Points {
		points[i] = topics.Point{ID: h.ID, Topic: h.Topic, X: h.X, Y: h.Y, Distance: float32(h.Distance)}
	}
	rep, err := m.BuildReport(stats, points)
	if err != nil {
		return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
	}
	err = writeFile(ctx, joinPath(f.Cfg.Dir, f.Cfg.reportFile()), rep.WriteJSON)
	if err != nil {
		return fmt.Errorf("stage %s: writing the report: %w", f.Cfg.Stage, err)
	}
	return nil
}
