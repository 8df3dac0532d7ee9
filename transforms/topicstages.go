package transforms

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// Stages that work on the topics of an earlier topics stage: semantic
// deduplication within each topic, balancing the topic mix, and choosing
// a generation stage's samples by topic. The decisions are package
// topics' (SemDeDup, NewPlan); these composites key, group and mark.

func init() {
	register.DoFn4x1[context.Context, datasets.Sample, func(*[]byte) bool, func(string, []byte), error](&semKeyFn{})
	register.DoFn4x1[context.Context, string, func(*[]byte) bool, func(string), error](&semDedupFn{})
	register.Emitter2[string, []byte]()
	register.Iter1[[]byte]()

	register.DoFn3x0[datasets.Sample, func(string, string), func(TopicCount)](&balanceKeyFn{})
	register.Emitter1[TopicCount]()
	register.Combiner3[TopicCounts, TopicCount, TopicCounts](&topicCountsFn{})
	register.DoFn3x1[context.Context, TopicCounts, func(string), error](&balancePlanFn{})
	register.DoFn4x1[string, func(*string) bool, func(*string) bool, func(string), error](&balanceSelectFn{})

	register.Function2x0(topicOf)
	register.DoFn3x1[context.Context, TopicCounts, func(string), error](&seedTopicsFn{})
	register.DoFn4x1[datasets.Sample, func(*string) bool, func(datasets.Sample), func(datasets.Sample), error](&splitTopicsFn{})
}

// SemDedupConfig configures SemanticDedupMarks (plain fields: it travels
// in the DoFns).
type SemDedupConfig struct {
	// Stage names the stage (marks, errors).
	Stage string `json:"stage"`
	// Threshold, Keep and Seed: see topics.DedupConfig.
	Threshold float64 `json:"threshold"`
	Keep      string  `json:"keep"`
	Seed      uint64  `json:"seed"`
	// Post are the per-sample checks after the stage (filters,
	// decontamination): samples that fail them are kept last, so a
	// topic's near duplicates keep a member that will be written when one
	// can be (see ExactDedupMarks).
	Post []StepSpec `json:"post,omitempty"`
	// Meter counts the stage's shuffle (nil: not counted).
	Meter *ShuffleMeter `json:"-"`
}

func (c SemDedupConfig) dedup() topics.DedupConfig {
	return topics.DedupConfig{Threshold: c.Threshold, Keep: c.Keep, Seed: c.Seed}
}

// SemanticDedupMarks decides semantic near duplicates (SemDeDup, Abbas et
// al. 2023) within each topic of an earlier topics stage, whose model
// (TopicsWithModel) is a side input: every sample is embedded with the
// model's built-in embedder and grouped by its topic_id (a sample without
// one, made by a stage after the topics stage, by its nearest centroid);
// in each topic, taken in the keep policy's order (samples that fail the
// later checks last, then by datasets.Less), a sample whose cosine
// similarity to a kept one is at least the threshold is marked dropped
// as that one's duplicate, and the kept ones with duplicates are marked
// kept (their dup_cluster is their own id). Only (topic, item) pairs are
// shuffled, an item being the sample's reference, policy fields and its
// embedding (about 100 + 4·Dim bytes). With no model (no sample reached
// the topics stage) nothing is marked.
func SemanticDedupMarks(s beam.Scope, in, model beam.PCollection, cfg SemDedupConfig) StageMarks {
	s = s.Scope("SemanticDedup_" + cfg.Stage)
	items := beam.ParDo(s, &semKeyFn{Cfg: cfg}, in, beam.SideInput{Input: model})
	groups := cfg.Meter.GroupByKey(s, cfg.Stage+".topics", items)
	marks := beam.ParDo(s, &semDedupFn{Cfg: cfg}, groups)
	return StageMarks{Stage: cfg.Stage, Reason: "semantic_duplicate",
		Detail: fmt.Sprintf("cosine similarity ≥ %g to %%s, in the same topic", cfg.Threshold), Marks: marks}
}

// semKeyFn embeds each sample and emits (topic, item).
type semKeyFn struct {
	Cfg    SemDedupConfig `json:"cfg"`
	model  *topics.Model
	loaded bool
	checks stepRunner
	buf    []float32
}

func (f *semKeyFn) ProcessElement(ctx context.Context, s datasets.Sample, model func(*[]byte) bool, emit func(string, []byte)) error {
	if !f.loaded {
		m, err := loadTopicModel(f.Cfg.Stage, model)
		if err != nil {
			return err
		}
		f.model, f.loaded = m, true
	}
	m := f.model
	if m == nil {
		return nil
	}
	post, err := checksOf(&f.checks, f.Cfg.Post)
	if err != nil {
		return err
	}
	f.buf = m.TFIDF.EmbedText(m.Field.Text(&s), f.buf[:0])
	var topic int32
	if s.TopicID != nil {
		topic = *s.TopicID
	} else {
		a, err := m.AssignVector(f.buf)
		if err != nil {
			return fmt.Errorf("stage %s: sample %s: %w", f.Cfg.Stage, s.ID, err)
		}
		topic = a.Topic
	}
	n := 0
	for _, msg := range s.Messages {
		n += len(msg.Content)
	}
	it := semItem{Ref: sampleRef(&s), Fails: passPrefix(ctx, post, &s) != "0", Quality: s.Quality, Length: n, Vec: f.buf}
	emit(strconv.Itoa(int(topic)), it.append(nil))
	return nil
}

// semItem is one sample as SemDeDup sees it, encoded as: a flags byte
// (1: fails a later check, 2: has a quality), the quality (8 bytes,
// little-endian float64) when present, the length (uvarint), the
// reference (uvarint length and bytes) and the embedding (little-endian
// float32s to the end).
type semItem struct {
	Ref     string
	Fails   bool
	Quality *float64
	Length  int
	Vec     []float32
}

func (it semItem) append(dst []byte) []byte {
	var flags byte
	if it.Fails {
		flags |= 1
	}
	if it.Quality != nil {
		flags |= 2
	}
	dst = append(dst, flags)
	if it.Quality != nil {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*it.Quality))
	}
	dst = binary.AppendUvarint(dst, uint64(it.Length))
	dst = binary.AppendUvarint(dst, uint64(len(it.Ref)))
	dst = append(dst, it.Ref...)
	for _, x := range it.Vec {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

func decodeSemItem(b []byte) (semItem, error) {
	bad := errors.New("semantic dedup: malformed item")
	var it semItem
	if len(b) < 1 {
		return it, bad
	}
	flags := b[0]
	b = b[1:]
	it.Fails = flags&1 != 0
	if flags&2 != 0 {
		if len(b) < 8 {
			return it, bad
		}
		q := math.Float64frombits(binary.LittleEndian.Uint64(b))
		it.Quality = &q
		b = b[8:]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 {
		return it, bad
	}
	it.Length = int(l)
	b = b[n:]
	r, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < r {
		return it, bad
	}
	it.Ref = string(b[n : n+int(r)])
	b = b[n+int(r):]
	if len(b)%4 != 0 {
		return it, bad
	}
	it.Vec = make([]float32, len(b)/4)
	for i := range it.Vec {
		it.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return it, nil
}

// semDedupFn runs SemDeDup over one topic's items and emits the marks.
type semDedupFn struct {
	Cfg SemDedupConfig `json:"cfg"`
}

func (f *semDedupFn) ProcessElement(ctx context.Context, topic string, items func(*[]byte) bool, emit func(string)) error {
	var all []topics.DedupItem
	var b []byte
	for items(&b) {
		it, err := decodeSemItem(b)
		if err != nil {
			return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
		}
		all = append(all, topics.DedupItem{ID: it.Ref, Vec: it.Vec, Quality: it.Quality, Length: it.Length, Fails: it.Fails})
	}
	// References are unique in a run and sort like datasets.Less: the
	// order SemDeDup takes them in is fixed by the policy and them alone.
	slices.SortFunc(all, func(a, b topics.DedupItem) int { return cmp.Compare(a.ID, b.ID) })
	dups, err := topics.SemDeDup(all, f.Cfg.dedup())
	if err != nil {
		return fmt.Errorf("stage %s: topic %s: %w", f.Cfg.Stage, topic, err)
	}
	survivors := map[string]bool{}
	for _, d := range dups {
		emit(formatMark(f.Cfg.Stage, d.ID, false, refID(d.Survivor)))
		survivors[d.Survivor] = true
	}
	for _, ref := range slices.Sorted(maps.Keys(survivors)) {
		emit(formatMark(f.Cfg.Stage, ref, true, refID(ref)))
	}
	if len(dups) > 0 {
		slog.Debug("semantic dedup", "stage", f.Cfg.Stage, "topic", topic, "samples", len(all), "dropped", len(dups))
	}
	return nil
}

// BalanceConfig configures BalanceMarks.
type BalanceConfig struct {
	// Stage names the stage (marks, the plan file).
	Stage string `json:"stage"`
	// Dir is the staging directory the plan is written to
	// (BalancePlanFile).
	Dir string `json:"dir"`
	// Plan is the balancing (topics.NewPlan).
	Plan topics.BalanceConfig `json:"plan"`
	// Meter counts the stage's shuffle (nil: not counted).
	Meter *ShuffleMeter `json:"-"`
}

// BalancePlanFile is where a balance stage writes its plan in the
// version: every topic's samples reaching the stage and target.
func BalancePlanFile(stage string) string { return "topics/" + stage + ".json" }

// BalancePlan is the content of BalancePlanFile.
type BalancePlan struct {
	Stage  string               `json:"stage"`
	Config topics.BalanceConfig `json:"config"`
	// Available and Target per topic id (index); Kept is their sum of
	// targets and Total of availables.
	Available []int64 `json:"available"`
	Target    []int64 `json:"target"`
	Total     int64   `json:"total"`
	Kept      int64   `json:"kept"`
}

// BalanceMarks balances the topic mix (topics.NewPlan): it counts the
// samples of each topic_id, computes every topic's target and, in each
// topic, keeps the target's number of samples of smallest
// topics.SampleHash(id, seed) (ties by reference, so exactly the target)
// and marks the others dropped. Samples without a topic are not touched.
// The plan is written to BalancePlanFile. Only (topic, hash and
// reference) pairs are shuffled.
func BalanceMarks(s beam.Scope, in beam.PCollection, cfg BalanceConfig) StageMarks {
	s = s.Scope("Balance_" + cfg.Stage)
	keyed, ones := beam.ParDo2(s, &balanceKeyFn{Seed: cfg.Plan.Seed}, in)
	counts := beam.Combine(s, &topicCountsFn{}, ones)
	plan := beam.ParDo(s, &balancePlanFn{Cfg: cfg}, counts)
	groups := cfg.Meter.GroupByKey(s, cfg.Stage+".topics", keyed)
	marks := beam.ParDo(s, &balanceSelectFn{Stage: cfg.Stage}, groups, beam.SideInput{Input: plan})
	return StageMarks{Stage: cfg.Stage, Reason: "over_topic_target", Detail: "beyond its topic's target%.0s", Marks: marks}
}

// TopicCount is one sample's topic (id and label) as counted.
type TopicCount struct {
	ID    int32
	Label string
}

// TopicCounts counts samples per topic id; Labels holds each topic's
// label (the first seen in label order, so it does not depend on order).
type TopicCounts struct {
	N      []int64
	Labels []string
}

type topicCountsFn struct{}

func (f *topicCountsFn) CreateAccumulator() TopicCounts { return TopicCounts{} }

func (f *topicCountsFn) grow(a *TopicCounts, k int) {
	for len(a.N) < k {
		a.N = append(a.N, 0)
		a.Labels = append(a.Labels, "")
	}
}

func (f *topicCountsFn) AddInput(a TopicCounts, c TopicCount) TopicCounts {
	if c.ID < 0 {
		return a
	}
	f.grow(&a, int(c.ID)+1)
	a.N[c.ID]++
	if l := a.Labels[c.ID]; l == "" || (c.Label != "" && c.Label < l) {
		a.Labels[c.ID] = c.Label
	}
	return a
}

func (f *topicCountsFn) MergeAccumulators(a, b TopicCounts) TopicCounts {
	f.grow(&a, len(b.N))
	for i, n := range b.N {
		a.N[i] += n
		if l := b.Labels[i]; l != "" && (a.Labels[i] == "" || l < a.Labels[i]) {
			a.Labels[i] = l
		}
	}
	return a
}

func (f *topicCountsFn) ExtractOutput(a TopicCounts) TopicCounts { return a }

// balanceKeyFn emits (topic, hash \x06 ref) for the selection and the
// topic for counting, for samples with a topic.
type balanceKeyFn struct {
	Seed uint64 `json:"seed"`
}

func (f *balanceKeyFn) ProcessElement(s datasets.Sample, keys func(string, string), count func(TopicCount)) {
	if s.TopicID == nil || *s.TopicID < 0 {
		return
	}
	keys(strconv.Itoa(int(*s.TopicID)), fmt.Sprintf("%016x\x06%s", topics.SampleHash(s.ID, f.Seed), sampleRef(&s)))
	count(TopicCount{ID: *s.TopicID})
}

// balancePlanFn computes the plan from the counts, writes it and emits
// it as JSON.
type balancePlanFn struct {
	Cfg BalanceConfig `json:"cfg"`
}

func (f *balancePlanFn) ProcessElement(ctx context.Context, c TopicCounts, emit func(string)) error {
	p, err := topics.NewPlan(c.N, f.Cfg.Plan)
	if err != nil {
		return fmt.Errorf("stage %s: %w", f.Cfg.Stage, err)
	}
	bp := BalancePlan{Stage: f.Cfg.Stage, Config: f.Cfg.Plan, Available: p.Counts, Target: p.Targets}
	if bp.Available == nil {
		bp.Available, bp.Target = []int64{}, []int64{}
	}
	for t := range p.Counts {
		bp.Total += p.Counts[t]
		bp.Kept += p.Targets[t]
	}
	b, err := json.MarshalIndent(bp, "", "  ")
	if err != nil {
		return err
	}
	err = writeFile(ctx, joinPath(f.Cfg.Dir, BalancePlanFile(f.Cfg.Stage)), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("stage %s: writing the plan: %w", f.Cfg.Stage, err)
	}
	slog.Info("balance", "stage", f.Cfg.Stage, "mode", f.Cfg.Plan.Mode, "topics", len(p.Counts), "samples", bp.Total, "kept", bp.Kept)
	emit(string(b))
	return nil
}

// balanceSelectFn keeps, of one topic's (hash, ref) values, the target's
// number of smallest and marks the rest dropped.
type balanceSelectFn struct {
	Stage   string `json:"stage"`
	targets []int64
}

func (f *balanceSelectFn) ProcessElement(topic string, refs func(*string) bool, plan func(*string) bool, emit func(string)) error {
	if f.targets == nil {
		var line string
		if !plan(&line) {
			return fmt.Errorf("stage %s: no balancing plan", f.Stage)
		}
		var bp BalancePlan
		if err := json.Unmarshal([]byte(line), &bp); err != nil {
			return fmt.Errorf("stage %s: plan: %w", f.Stage, err)
		}
		f.targets = bp.Target
		if f.targets == nil {
			f.targets = []int64{}
		}
	}
	t, err := strconv.Atoi(topic)
	if err != nil || t < 0 || t >= len(f.targets) {
		return fmt.Errorf("stage %s: topic %q is not in the plan", f.Stage, topic)
	}
	all := collect(refs)
	if int64(len(all)) <= f.targets[t] {
		return nil
	}
	slices.Sort(all)
	for _, hr := range all[f.targets[t]:] {
		emit(formatMark(f.Stage, hr[strings.IndexByte(hr, 6)+1:], false, ""))
	}
	return nil
}

// TopicSelect chooses a generation stage's samples by topic: the topics
// whose id is in IDs or whose label is in Labels (case and surrounding
// space ignored), or the Thin topics with the fewest samples reaching the
// stage (ties: the lower id). The choice is written to SeedTopicsFile.
type TopicSelect struct {
	Stage  string   `json:"stage"`
	Dir    string   `json:"dir"`
	IDs    []int32  `json:"ids,omitempty"`
	Labels []string `json:"labels,omitempty"`
	Thin   int      `json:"thin,omitempty"`
}

// SeedTopicsFile is where a topic-seeded generation stage writes the
// topics it chose, with their sizes, in the version.
func SeedTopicsFile(stage string) string { return "topics/seeds-" + stage + ".json" }

// SeedTopics is the content of SeedTopicsFile.
type SeedTopics struct {
	Stage string `json:"stage"`
	// How: "thin_topics: N" or "seeds_from".
	How    string      `json:"how"`
	Chosen []SeedTopic `json:"chosen"`
	// Samples is the number of samples of the chosen topics.
	Samples int64 `json:"samples"`
	// Unmatched are seeds_from entries no sample's topic matched.
	Unmatched []string `json:"unmatched,omitempty"`
}

// SeedTopic is one chosen topic.
type SeedTopic struct {
	ID      int32  `json:"id"`
	Label   string `json:"label"`
	Samples int64  `json:"samples"`
}

// Choose picks the topics from the counts.
func (c TopicSelect) Choose(counts TopicCounts) SeedTopics {
	out := SeedTopics{Stage: c.Stage, Chosen: []SeedTopic{}}
	var present []int32
	for t, n := range counts.N {
		if n > 0 {
			present = append(present, int32(t))
		}
	}
	pick := func(t int32) {
		out.Chosen = append(out.Chosen, SeedTopic{ID: t, Label: counts.Labels[t], Samples: counts.N[t]})
		out.Samples += counts.N[t]
	}
	if c.Thin > 0 {
		out.How = fmt.Sprintf("thin_topics: %d", c.Thin)
		slices.SortStableFunc(present, func(a, b int32) int { return cmp.Compare(counts.N[a], counts.N[b]) })
		present = present[:min(c.Thin, len(present))]
		slices.Sort(present)
		for _, t := range present {
			pick(t)
		}
		return out
	}
	out.How = "seeds_from"
	norm := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	matched := map[string]bool{}
	for _, t := range present {
		hit := false
		for _, id := range c.IDs {
			if id == t {
				hit = true
				matched[strconv.Itoa(int(id))] = true
			}
		}
		for _, l := range c.Labels {
			if norm(l) == norm(counts.Labels[t]) && norm(l) != "" {
				hit = true
				matched[l] = true
			}
		}
		if hit {
			pick(t)
		}
	}
	for _, id := range c.IDs {
		if k := strconv.Itoa(int(id)); !matched[k] {
			out.Unmatched = append(out.Unmatched, k)
		}
	}
	for _, l := range c.Labels {
		if !matched[l] {
			out.Unmatched = append(out.Unmatched, l)
		}
	}
	return out
}

// SelectTopics splits samples into those of the chosen topics (see
// TopicSelect) and the rest (samples without a topic among them). The
// counts are a global combine; the choice travels as a side input.
func SelectTopics(s beam.Scope, in beam.PCollection, sel TopicSelect) (selected, rest beam.PCollection) {
	s = s.Scope("SelectTopics_" + sel.Stage)
	counts := beam.Combine(s, &topicCountsFn{}, beam.ParDo(s, topicOf, in))
	chosen := beam.ParDo(s, &seedTopicsFn{Sel: sel}, counts)
	return beam.ParDo2(s, &splitTopicsFn{Stage: sel.Stage}, in, beam.SideInput{Input: chosen})
}

// topicOf emits a sample's topic for counting (nothing without one).
func topicOf(s datasets.Sample, emit func(TopicCount)) {
	if s.TopicID != nil && *s.TopicID >= 0 {
		emit(TopicCount{ID: *s.TopicID, Label: s.TopicLabel})
	}
}

type seedTopicsFn struct {
	Sel TopicSelect `json:"sel"`
}

func (f *seedTopicsFn) ProcessElement(ctx context.Context, c TopicCounts, emit func(string)) error {
	st := f.Sel.Choose(c)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	err = writeFile(ctx, joinPath(f.Sel.Dir, SeedTopicsFile(f.Sel.Stage)), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("stage %s: writing the seed topics: %w", f.Sel.Stage, err)
	}
	ids := make([]int32, len(st.Chosen))
	for i, t := range st.Chosen {
		ids[i] = t.ID
	}
	slog.Info("generation seeded by topic", "stage", f.Sel.Stage, "how", st.How, "topics", ids, "samples", st.Samples)
	if len(st.Unmatched) > 0 {
		slog.Warn("seeds_from names topics no sample reaching the stage has", "stage", f.Sel.Stage, "topics", st.Unmatched)
	}
	emit(string(b))
	return nil
}

type splitTopicsFn struct {
	Stage  string `json:"stage"`
	chosen map[int32]bool
}

func (f *splitTopicsFn) ProcessElement(s datasets.Sample, chosen func(*string) bool, sel, rest func(datasets.Sample)) error {
	if f.chosen == nil {
		f.chosen = map[int32]bool{}
		var line string
		if chosen(&line) {
			var st SeedTopics
			if err := json.Unmarshal([]byte(line), &st); err != nil {
				return fmt.Errorf("stage %s: seed topics: %w", f.Stage, err)
			}
			for _, t := range st.Chosen {
				f.chosen[t.ID] = true
			}
		}
	}
	if s.TopicID != nil && f.chosen[*s.TopicID] {
		sel(s)
	} else {
		rest(s)
	}
	return nil
}
