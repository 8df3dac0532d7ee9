package transforms

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// FuzzyConfig configures near-duplicate removal with MinHash-LSH.
type FuzzyConfig struct {
	Text      dedup.TextConfig `json:"text"`
	Mode      dedup.KeyMode    `json:"mode"`
	Threshold float64          `json:"threshold"`
	Bands     int              `json:"bands"`
	Rows      int              `json:"rows"`
	// Verify is "exact" (Jaccard of the shingle sets, the default),
	// "estimate" (from the signatures) or "none" (every bucket-mate is a
	// duplicate).
	Verify string `json:"verify"`
	// Edges is the candidate edge policy of a bucket (dedup.BucketEdges):
	// "linear" (the default: every member to the bucket's first
	// dedup.BucketLeaders members and to its predecessor), "all" (every
	// pair; buckets with more than MaxBucketPairs pairs use linear) or
	// "star" (every member to the bucket's first).
	Edges          string `json:"edges"`
	MaxBucketPairs int    `json:"max_bucket_pairs"`
	// Keep picks each cluster's survivor: "smallest_id", "longest" or
	// "quality" (highest Quality, then smallest id).
	Keep string `json:"keep"`
	// Rounds bounds the large-star/small-star round pairs.
	Rounds int `json:"rounds"`
	// Components is how the connected components of the verified graph
	// are found: "" (large-star/small-star rounds, each a shuffle: for
	// runners of many workers) or ComponentsLocal (union-find on one
	// worker: for the in-process runners, where every round's shuffle is
	// paid on one machine anyway). Both give the same clusters.
	Components string `json:"components,omitempty"`
	// SpillDir, with Components = ComponentsLocal, is the staging
	// directory whose spill directory holds the verification sets (see
	// fuzzylocal.go); SpillBudget bounds the external sorts' memory (0:
	// DefaultSpillBudget).
	SpillDir string `json:"spill_dir,omitempty"`
	// Post are the per-sample checks after the stage (filters,
	// decontamination): a cluster's survivor is chosen among the members
	// that pass them when there is one (node keys of passing members get
	// a smaller prefix).
	Post        []StepSpec `json:"post,omitempty"`
	SpillBudget int        `json:"spill_budget,omitempty"`
	// Meter counts the stage's shuffle (nil: not counted).
	Meter *ShuffleMeter `json:"-"`
}

func init() {
	register.DoFn6x1[context.Context, datasets.Sample, func(*string) bool, func(string, []byte), func(string, []byte), func(string, string), error](&signFn{})
	register.DoFn5x1[context.Context, datasets.Sample, func(string, []byte), func(string, []byte), func(string, string), error](&signFreeFn{})
	register.DoFn4x0[string, func(*string) bool, func(*string) bool, func(string)](&joinOriginFn{})
	register.Emitter2[string, []byte]()
	register.DoFn4x1[context.Context, string, func(*[]byte) bool, func(string, string), error](&bucketEdgesFn{})
	register.Function3x0(distinctEdgeFn)
	register.Function3x0(edgeFromKeyFn)
	register.DoFn4x0[string, func(*string) bool, func(*[]byte) bool, func(string, string)](&attachSetFn{})
	register.Iter1[[]byte]()
	register.DoFn5x0[context.Context, string, func(*string) bool, func(*[]byte) bool, func(string, string)](&verifyEdgeFn{})
	register.Function3x0(bothWays)
	register.Function3x0(localComponentsFn)
	register.Function2x1(distinctEdgeKey)
	register.Function2x0(dropEmpty)
	register.Function3x0(largeStarFn)
	register.Function3x0(towardSmaller)
	register.Function3x0(smallStarFn)
	register.Function3x0(convergenceKeys)
	register.DoFn4x1[context.Context, string, func(*string) bool, func(string), error](&nodeCheckFn{})
	register.DoFn4x0[context.Context, string, func(*string) bool, func(string, string)](&fuzzyMarksFn{})
}

// FuzzyDedupMarks finds clusters of near-duplicates and marks all but one
// survivor per cluster dropped (see StageMarks). Per sample it computes a
// MinHash signature of the normalised shingles and emits one (band key,
// node) pair per LSH band; buckets become candidate edges, which are
// verified (by default by the exact Jaccard of the shingle sets, joined to
// the edges by node), and the exact connected components of the verified
// graph are found by large-star/small-star rounds (Kiveris et al. 2014),
// each a GroupByKey, unrolled cfg.Rounds times with a convergence count. A
// cluster's survivor is the node first in the keep policy's order. Only
// ids, band keys and (compressed) shingle sets are shuffled.
//
// It returns the marks and a PCollection<string> of report lines: the
// number of nodes not converged after the last round (a run commits only
// when it is zero).
func FuzzyDedupMarks(s beam.Scope, in beam.PCollection, cfg FuzzyConfig, stage string, prior []StageMarks, pre []StepSpec) (StageMarks, beam.PCollection) {
	s = s.Scope("FuzzyDedup")
	// Samples earlier stages dropped take no part: their marks (few, and
	// small) reach the signer as a side input, so that no band pair of
	// theirs is ever made.
	var bandPairs, sets, origins beam.PCollection
	if len(prior) == 0 {
		// No side input: an in-process runner then streams the samples
		// through the signer instead of buffering them for the marks.
		bandPairs, sets, origins = beam.ParDo3(s, &signFreeFn{Cfg: cfg, Pre: pre}, in)
	} else {
		priorMarks, stages := marksSideInput(s, prior)
		bandPairs, sets, origins = beam.ParDo3(s, &signFn{Cfg: cfg, Pre: pre, Stages: stages}, in, priorMarks)
	}
	detail := "near duplicate (Jaccard ≥ " + strconv.FormatFloat(cfg.Threshold, 'g', -1, 64) + ") of %s"
	if cfg.local() {
		// Verification, clusters and the marks on one worker, the band
		// pairs, sets and origins on disk.
		marks := localFuzzy(s, bandPairs, sets, origins, cfg, stage)
		check := beam.ParDo(s, dropEmpty, beam.Create(s.Scope("Converged"), ""))
		return StageMarks{Stage: stage, Reason: "near_duplicate", Detail: detail, Marks: marks}, check
	}
	var edges, check beam.PCollection
	{
		cand := candidateEdges(s, bandPairs, cfg, stage)
		edges = cand
		if cfg.Verify != "none" {
			m := cfg.Meter
			byA := beam.CoGroupByKey(s, m.Count(s, stage+".verify_edges", cand), m.Count(s, stage+".verify_sets", sets))
			withA := beam.ParDo(s, &attachSetFn{}, byA)
			byB := beam.CoGroupByKey(s, m.Count(s, stage+".verify_edges_with_a", withA), m.Count(s, stage+".verify_sets", sets))
			edges = beam.ParDo(s, &verifyEdgeFn{Threshold: cfg.Threshold, Stage: stage}, byB)
		}
	}
	switch {
	case cfg.Components == ComponentsLocal:
		// One worker finds the components of the verified graph by
		// union-find: exact, so no convergence check; the same (child,
		// survivor) edges as converged rounds give.
		edges = beam.ParDo(s, localComponentsFn, cfg.Meter.GroupByKey(s, stage+".components", beam.AddFixedKey(s, beam.ParDo(s, distinctEdgeKey, edges))))
		check = beam.Create(s.Scope("Converged"), "")
		check = beam.ParDo(s, dropEmpty, check)
	default:
		// Large-star / small-star rounds on (child, parent) edges.
		for i := 0; i < cfg.Rounds; i++ {
			rs := s.Scope(fmt.Sprintf("Round%d", i+1))
			large := beam.ParDo(rs, largeStarFn, cfg.Meter.GroupByKey(rs, stage+".rounds", beam.ParDo(rs, bothWays, edges)))
			edges = beam.ParDo(rs, smallStarFn, cfg.Meter.GroupByKey(rs, stage+".rounds", beam.ParDo(rs, towardSmaller, large)))
		}
		check = beam.ParDo(s, &nodeCheckFn{Stage: stage}, cfg.Meter.GroupByKey(s, stage+".convergence", beam.ParDo(s, convergenceKeys, edges)))
	}
	verdicts := beam.ParDo(s, &fuzzyMarksFn{Stage: stage}, cfg.Meter.GroupByKey(s, stage+".verdicts", edges))
	marks := beam.ParDo(s, &joinOriginFn{Stage: stage}, beam.CoGroupByKey(s, cfg.Meter.Count(s, stage+".origins_verdicts", verdicts), cfg.Meter.Count(s, stage+".origins", origins)))
	return StageMarks{Stage: stage, Reason: "near_duplicate", Detail: detail, Marks: marks}, check
}

// ComponentsLocal selects union-find on one worker (FuzzyConfig.Components).
const ComponentsLocal = "local"

// local reports whether verification and clusters run on one worker
// with the sets on disk.
func (c FuzzyConfig) local() bool { return c.Components == ComponentsLocal && c.SpillDir != "" }

// dropEmpty passes non-empty strings.
func dropEmpty(v string, emit func(string)) {
	if v != "" {
		emit(v)
	}
}

// localComponentsFn finds the connected components of all verified edges
// (child, parent) by union-find, each component's root being its
// smallest node (node keys sort in the keep policy's order), and emits
// (node, root) for every other node.
func localComponentsFn(_ int, edges func(*string) bool, emit func(string, string)) {
	uf := dedup.NewUnionFind()
	var e string
	for edges(&e) {
		i := strings.IndexByte(e, 3)
		uf.Union(e[:i], e[i+1:])
	}
	uf.Each(emit)
}

// candidateEdges turns packed (band key, node) pairs into the distinct
// candidate edges (a, b), a < b, of their buckets under cfg.Edges
// (dedup.BucketEdges: linear in the bucket's size by default, whatever
// the cluster sizes).
func candidateEdges(s beam.Scope, bandPairs beam.PCollection, cfg FuzzyConfig, stage string) beam.PCollection {
	cand := bucketEdges(s, bandPairs, cfg, stage)
	// Distinct candidate edges "a\x03b", a < b.
	return beam.ParDo(s, edgeFromKeyFn, cfg.Meter.GroupByKey(s, stage+".distinct_edges", beam.ParDo(s, distinctEdgeFn, cand)))
}

// bucketEdges is candidateEdges before the distinct step (an edge may
// come from several bundles).
func bucketEdges(s beam.Scope, bandPairs beam.PCollection, cfg FuzzyConfig, stage string) beam.PCollection {
	buckets := cfg.Meter.GroupByKey(s, stage+".band_pairs", bandPairs)
	return beam.ParDo(s, &bucketEdgesFn{Edges: cfg.Edges, Max: cfg.MaxBucketPairs, Stage: stage}, buckets)
}

// node keys sort in keep-policy order: a fixed-width policy prefix, then
// the sample reference (which sorts by id).
func nodeKey(keep string, s *datasets.Sample, ref string) string {
	switch keep {
	case "longest":
		n := 0
		for _, m := range s.Messages {
			n += len(m.Content)
		}
		return fmt.Sprintf("%012d\x05%s", 999999999999-n, ref)
	case "quality":
		q := 0.0
		if s.Quality != nil {
			q = *s.Quality
		}
		return fmt.Sprintf("%012d\x05%s", int64((1-q)*1e9), ref)
	}
	return "\x05" + ref
}

// NodeKey is the node key of a sample in fuzzy dedup's shuffles (before
// the pass prefix): it sorts in the keep policy's order, then by id. The
// dry run orders its predicted clusters by it.
func NodeKey(keep string, s *datasets.Sample) string { return nodeKey(keep, s, shortRef(s)) }

// nodeID is the sample id inside a node key.
func nodeID(node string) string {
	rest := node[strings.IndexByte(node, 5)+1:]
	return rest[:strings.IndexByte(rest, 0)]
}

// shortRef stands for a sample in the shuffles of fuzzy dedup: its id and
// a 64-bit hash of its origin (source, file, index), about 50 bytes
// instead of a full reference; nodes are joined back to their origins
// only for the marks. It sorts by id first, like datasets.Less, breaking
// ties between byte-identical samples by the origin hash.
func shortRef(s *datasets.Sample) string {
	return s.ID + "\x00" + originHash(s)
}

// originHash is a 64-bit hash of a sample's origin in hex: unique within
// a run for all practical purposes, and short.
func originHash(s *datasets.Sample) string {
	h := fnv.New64a()
	h.Write([]byte(sampleOrigin(s)))
	return fmt.Sprintf("%016x", h.Sum64())
}

type signFn struct {
	Cfg FuzzyConfig `json:"cfg"`
	Pre []StepSpec  `json:"pre,omitempty"`
	// Stages are the earlier mark stages, whose drops are skipped.
	Stages []string `json:"stages,omitempty"`
	marks  markSet
	runner stepRunner
	checks stepRunner
	// sketchers (one per worker) give the signature and the verification payload
	// (dedup.Sketcher: under key turns, the response's signature and
	// both turns' sets).
	sketchers []*dedup.Sketcher
	batch     []datasets.Sample
	// sets and bands buffer the verification sets and the band pairs in
	// local mode, written as runs, one a partition (localParts): sets by
	// their node's partition, band pairs by their band key's.
	sets      [][]runRecord
	setBytes  int
	bands     [][]runRecord
	bandBytes int
	bandsCap  int // the longest flushed buffer's length
	// origins buffers (node, origin) records in local mode.
	origins     []runRecord
	originBytes int
	// bg writes the runs of sets, bands and origins in the background.
	bg backgroundRuns
	// packed holds the bundle's (band key, node) pairs by band group,
	// emitted at the end of the bundle: a few thousand compact elements
	// instead of one per pair (bands × samples), which is what the
	// runners' shuffles pay for per element.
	packed map[uint16][]byte
}

// bandGroups is how many groups band keys are packed into; maxPack caps
// a pack's bytes.
const (
	bandGroups = 1024
	maxPack    = 256 << 10
)

// packPair appends a (band key, node) pair: 8 bytes of key, a uvarint
// length and the node.
func packPair(b []byte, key uint64, node string) []byte {
	b = binary.LittleEndian.AppendUint64(b, key)
	b = binary.AppendUvarint(b, uint64(len(node)))
	return append(b, node...)
}

// unpackPairs calls fn for every pair of a packed group.
func unpackPairs(b []byte, fn func(key uint64, node string)) error {
	for len(b) > 0 {
		if len(b) < 9 {
			return fmt.Errorf("packed band pairs: truncated")
		}
		key := binary.LittleEndian.Uint64(b)
		n, k := binary.Uvarint(b[8:])
		if k <= 0 || uint64(len(b)-8-k) < n {
			return fmt.Errorf("packed band pairs: bad length")
		}
		fn(key, string(b[8+k:8+k+int(n)]))
		b = b[8+k+int(n):]
	}
	return nil
}

// ProcessElement emits (band key, node) per band and (node, payload),
// the payload that verification compares (dedup.PayloadSimilarity).
// Samples without a single shingle in the key's text take no part (their
// signatures would all collide).
func (f *signFn) ProcessElement(ctx context.Context, s datasets.Sample, marks func(*string) bool, band func(string, []byte), set func(string, []byte), origin func(string, string)) error {
	if f.marks == nil {
		ms, err := loadMarks(ctx, marks)
		if err != nil {
			return err
		}
		f.marks = ms
	}
	f.batch = append(f.batch, s)
	if len(f.batch) >= signBatch {
		return f.flush(ctx, band, set, origin)
	}
	return nil
}

// signBatch is how many samples a signer sketches at once, on
// GOMAXPROCS goroutines (the in-process runners call a DoFn from one
// goroutine).
const signBatch = 1024

// signed is what the signer made of one sample of a batch.
type signed struct {
	ok      bool
	node    string
	origin  string
	keys    []uint64
	payload []byte
}

// flush sketches the batch in parallel and emits in batch order.
func (f *signFn) flush(ctx context.Context, band func(string, []byte), set func(string, []byte), origin func(string, string)) error {
	if len(f.batch) == 0 {
		return nil
	}
	steps, err := f.runner.get(f.Pre)
	if err != nil {
		return err
	}
	post, err := checksOf(&f.checks, quiet(f.Cfg.Post))
	if err != nil {
		return err
	}
	workers := runtime.GOMAXPROCS(0)
	if len(f.sketchers) < workers {
		for len(f.sketchers) < workers {
			f.sketchers = append(f.sketchers, f.Cfg.Text.NewSketcher(f.Cfg.Mode, f.Cfg.Verify))
		}
	}
	out := make([]signed, len(f.batch))
	var wg sync.WaitGroup
	chunk := (len(f.batch) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(f.batch))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(sk *dedup.Sketcher, lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				s := &f.batch[i]
				org := sampleOrigin(s)
				if _, _, dropped := f.marks.dropped(org, f.Stages); dropped {
					continue
				}
				if runSteps(ctx, steps, s) != nil {
					continue
				}
				sig, payload, ok := sk.Sketch(s.Messages)
				if !ok {
					continue
				}
				out[i] = signed{ok: true, node: passPrefix(ctx, post, s) + nodeKey(f.Cfg.Keep, s, shortRef(s)), origin: org,
					keys: dedup.AppendBandKeys(nil, sig, f.Cfg.Bands, f.Cfg.Rows), payload: payload}
			}
		}(f.sketchers[w], lo, hi)
	}
	wg.Wait()
	f.batch = f.batch[:0]
	if f.packed == nil {
		f.packed = map[uint16][]byte{}
	}
	for i := range out {
		o := &out[i]
		if !o.ok {
			continue
		}
		// The node's bytes, shared read-only by its origin, set and band
		// records (local mode), and one slab for its band records: a
		// sample costs two allocations here, not one per band.
		var node []byte
		if f.Cfg.local() {
			node = []byte(o.node)
			// Origins into sorted runs (node, origin): the local worker
			// joins them with its verdicts on disk.
			f.origins = append(f.origins, runRecord{key: node, payload: []byte(o.origin)})
			f.originBytes += len(o.node) + len(o.origin) + 48
			if f.originBytes >= (SpillConfig{Budget: f.Cfg.SpillBudget}).budget() {
				if err := f.flushOrigins(ctx, origin); err != nil {
					return err
				}
			}
		} else {
			origin(o.node, o.origin)
		}
		if f.Cfg.local() {
			// Band pairs into a sorted run (band key, node): the bucketing
			// merges the runs on disk instead of the runner grouping them.
			if f.bands == nil {
				f.bands = make([][]runRecord, localParts())
				for p := range f.bands {
					f.bands[p] = make([]runRecord, 0, f.bandsCap)
				}
			}
			w := 8 + len(node)
			slab := make([]byte, len(o.keys)*w)
			for i, k := range o.keys {
				key := slab[i*w : (i+1)*w : (i+1)*w]
				binary.BigEndian.PutUint64(key, k)
				copy(key[8:], node)
				p := bandPart(k, len(f.bands))
				f.bands[p] = append(f.bands[p], runRecord{key: key})
				f.bandBytes += w + 48
			}
			if f.bandBytes >= (SpillConfig{Budget: f.Cfg.SpillBudget}).budget() {
				if err := f.flushBands(ctx, band); err != nil {
					return err
				}
			}
		}
		for _, k := range o.keys {
			if f.Cfg.local() {
				break
			}
			g := uint16(k % bandGroups)
			f.packed[g] = packPair(f.packed[g], k, o.node)
			if len(f.packed[g]) >= maxPack {
				// Bounded memory on runners that make one bundle of everything;
				// the groups are sorted on the other side, so where a pack ends
				// does not change the result.
				band(strconv.Itoa(int(g)), f.packed[g])
				f.packed[g] = nil
			}
		}
		if o.payload == nil {
			continue
		}
		if !f.Cfg.local() {
			set(o.node, o.payload)
			continue
		}
		if f.sets == nil {
			f.sets = make([][]runRecord, localParts())
		}
		p := nodePart(node, len(f.sets))
		f.sets[p] = append(f.sets[p], runRecord{key: node, payload: o.payload})
		f.setBytes += len(o.node) + len(o.payload) + 64
		if f.setBytes >= (SpillConfig{Budget: f.Cfg.SpillBudget}).budget() {
			if err := f.flushSets(ctx, set); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushBands writes the buffered band pairs as runs sorted by (band
// key, node), one a partition, and emits their paths tagged with their
// partitions (local mode).
func (f *signFn) flushBands(ctx context.Context, band func(string, []byte)) error {
	if f.bandBytes == 0 {
		return nil
	}
	paths, err := f.bg.spillParts(ctx, f.Cfg.SpillDir, "bands", f.bands)
	if err != nil {
		return err
	}
	// The next buffers start at these ones' size, so that they do not
	// regrow from nothing (a buffer holds millions of band records).
	for _, b := range f.bands {
		f.bandsCap = max(f.bandsCap, len(b))
	}
	emitParts(paths, func(v string) { band(v, nil) })
	f.bands, f.bandBytes = nil, 0
	return nil
}

// flushSets writes the buffered verification sets as runs sorted by
// node, one a partition, and emits their paths tagged with their
// partitions (local mode).
func (f *signFn) flushSets(ctx context.Context, set func(string, []byte)) error {
	if f.setBytes == 0 {
		return nil
	}
	paths, err := f.bg.spillParts(ctx, f.Cfg.SpillDir, "sets", f.sets)
	if err != nil {
		return err
	}
	emitParts(paths, func(v string) { set(v, nil) })
	f.sets, f.setBytes = nil, 0
	return nil
}

// flushOrigins writes the buffered (node, origin) records as one run
// sorted by node and emits its path (local mode).
func (f *signFn) flushOrigins(ctx context.Context, origin func(string, string)) error {
	if len(f.origins) == 0 {
		return nil
	}
	path, err := f.bg.spill(ctx, f.Cfg.SpillDir, "origins", f.origins)
	if err != nil {
		return err
	}
	f.origins, f.originBytes = nil, 0
	origin(path, "")
	return nil
}

// signFreeFn is signFn without earlier marks (no side input).
type signFreeFn struct {
	Cfg   FuzzyConfig `json:"cfg"`
	Pre   []StepSpec  `json:"pre,omitempty"`
	inner *signFn
}

func (f *signFreeFn) get() *signFn {
	if f.inner == nil {
		f.inner = &signFn{Cfg: f.Cfg, Pre: f.Pre, marks: markSet{}}
	}
	return f.inner
}

func (f *signFreeFn) ProcessElement(ctx context.Context, s datasets.Sample, band func(string, []byte), set func(string, []byte), origin func(string, string)) error {
	return f.get().ProcessElement(ctx, s, nil, band, set, origin)
}

func (f *signFreeFn) FinishBundle(ctx context.Context, band func(string, []byte), set func(string, []byte), origin func(string, string)) error {
	return f.get().FinishBundle(ctx, nil, band, set, origin)
}

// FinishBundle emits the bundle's packed band pairs, one element per
// band group.
func (f *signFn) FinishBundle(ctx context.Context, _ func(*string) bool, band func(string, []byte), set func(string, []byte), origin func(string, string)) error {
	if err := f.flush(ctx, band, set, origin); err != nil {
		return err
	}
	if err := f.flushSets(ctx, set); err != nil {
		return err
	}
	if err := f.flushBands(ctx, band); err != nil {
		return err
	}
	if err := f.flushOrigins(ctx, origin); err != nil {
		return err
	}
	if err := f.bg.wait(); err != nil {
		return err
	}
	for g, b := range f.packed {
		band(strconv.Itoa(int(g)), b)
	}
	f.packed = nil
	return nil
}

// bucketEdgesFn turns the LSH buckets of one band group into candidate
// edges (a, b), a < b.
type bucketEdgesFn struct {
	Edges string `json:"edges"`
	Max   int    `json:"max"`
	Stage string `json:"stage"`
	// edges counts candidate edges before the distinct step (monitoring
	// only: counters are not the funnel).
	edges beam.Counter
	cand  *dedup.Candidates
}

func (f *bucketEdgesFn) Setup() {
	f.edges = beam.NewCounter(Namespace, f.Stage+"_candidate_edges")
}

type bandPair struct {
	key  uint64
	node string
}

func (f *bucketEdgesFn) ProcessElement(ctx context.Context, group string, packs func(*[]byte) bool, emit func(string, string)) error {
	var pairs []bandPair
	var b []byte
	for packs(&b) {
		if err := unpackPairs(b, func(k uint64, n string) { pairs = append(pairs, bandPair{k, n}) }); err != nil {
			return fmt.Errorf("band group %s: %w", group, err)
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].key != pairs[j].key {
			return pairs[i].key < pairs[j].key
		}
		return pairs[i].node < pairs[j].node
	})
	if f.cand == nil {
		f.cand = &dedup.Candidates{Policy: f.Edges, MaxPairs: f.Max}
	}
	var bucket []string
	for i := 0; i < len(pairs); {
		j := i
		bucket = bucket[:0]
		for ; j < len(pairs) && pairs[j].key == pairs[i].key; j++ {
			bucket = append(bucket, pairs[j].node)
		}
		n, _ := f.cand.Bucket(uniq(bucket), func(a, b string) error {
			emit(a, b)
			return nil
		})
		f.edges.Inc(ctx, int64(n))
		i = j
	}
	return nil
}

func uniq(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func distinctEdgeFn(a, b string, emit func(string, string)) { emit(a+"\x03"+b, "") }

// distinctEdgeKey is an edge (a, b) as one string "a\x03b".
func distinctEdgeKey(a, b string) string { return a + "\x03" + b }

func edgeFromKeyFn(k string, _ func(*string) bool, emit func(string, string)) {
	i := strings.IndexByte(k, 3)
	emit(k[:i], k[i+1:])
}

// attachSetFn joins each edge (a, b) with a's set: emits (b, a + set).
type attachSetFn struct{}

func (f *attachSetFn) ProcessElement(a string, bs func(*string) bool, sets func(*[]byte) bool, emit func(string, string)) {
	var set []byte
	if !sets(&set) {
		return
	}
	var b string
	for bs(&b) {
		emit(b, a+"\x03"+string(set))
	}
}

// verifyEdgeFn joins with b's set and keeps edges similar enough, as
// (child, parent) = (larger, smaller).
type verifyEdgeFn struct {
	Threshold float64 `json:"threshold"`
	Stage     string  `json:"stage"`
	kept      beam.Counter
}

func (f *verifyEdgeFn) Setup() { f.kept = beam.NewCounter(Namespace, f.Stage+"_verified_edges") }

func (f *verifyEdgeFn) ProcessElement(ctx context.Context, b string, as func(*string) bool, sets func(*[]byte) bool, emit func(string, string)) {
	var setB []byte
	if !sets(&setB) {
		return
	}
	var v string
	for as(&v) {
		i := strings.IndexByte(v, 3)
		a, setA := v[:i], []byte(v[i+1:])
		if dedup.PayloadSimilarity(setA, setB) >= f.Threshold {
			f.kept.Inc(ctx, 1)
			emit(b, a)
		}
	}
}

func bothWays(c, p string, emit func(string, string)) {
	emit(c, p)
	emit(p, c)
}

func largeStarFn(u string, nbrs func(*string) bool, emit func(string, string)) {
	for _, e := range dedup.LargeStar(u, collect(nbrs)) {
		emit(e[0], e[1])
	}
}

func towardSmaller(c, p string, emit func(string, string)) {
	if c > p {
		emit(c, p)
	} else if p > c {
		emit(p, c)
	}
}

func smallStarFn(u string, nbrs func(*string) bool, emit func(string, string)) {
	for _, e := range dedup.SmallStar(u, collect(nbrs)) {
		emit(e[0], e[1])
	}
}

func collect(it func(*string) bool) []string {
	var out []string
	var v string
	for it(&v) {
		out = append(out, v)
	}
	return out
}

// convergenceKeys keys each edge (c, p) as (c, "c"+p) and (p, "p").
func convergenceKeys(c, p string, emit func(string, string)) {
	emit(c, "c"+p)
	emit(p, "p")
}

// nodeCheckFn counts nodes that are not settled after the last round and
// reports them (see dedup.NodeConverged).
type nodeCheckFn struct {
	Stage string `json:"stage"`
}

func (f *nodeCheckFn) ProcessElement(ctx context.Context, _ string, vals func(*string) bool, emit func(string)) error {
	var parents []string
	isParent := false
	var v string
	for vals(&v) {
		if v == "p" {
			isParent = true
		} else {
			parents = append(parents, v[1:])
		}
	}
	if !dedup.NodeConverged(parents, isParent) {
		return emitReport(emit, Report{Kind: "unconverged", Stage: f.Stage})
	}
	return nil
}

// fuzzyMarksFn groups converged (child, parent) edges by child: the
// parent is the cluster's survivor.
type fuzzyMarksFn struct {
	Stage string `json:"stage"`
}

func (f *fuzzyMarksFn) ProcessElement(ctx context.Context, child string, parents func(*string) bool, emit func(string, string)) {
	var p string
	best := ""
	for parents(&p) {
		if best == "" || p < best {
			best = p
		}
	}
	if best == "" {
		return
	}
	survivor := nodeID(best)
	emit(child, "D"+survivor)
	// The survivor's own verdict: once per child; joinOriginFn keeps one.
	emit(best, "K"+survivor)
}

// joinOriginFn turns (node, verdicts) and (node, origin) into a mark.
type joinOriginFn struct {
	Stage string `json:"stage"`
}

func (f *joinOriginFn) ProcessElement(_ string, verdicts func(*string) bool, origins func(*string) bool, emit func(string)) {
	var v, o string
	if !verdicts(&v) || !origins(&o) {
		return
	}
	emit(f.Stage + markStageSep + o + markVerdictSep + v)
}
