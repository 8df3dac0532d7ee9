package transforms

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/dedup"
)

// Fuzzy dedup on one machine (FuzzyConfig.Components = ComponentsLocal).
// The verification payloads (shingle sets, about a kilobyte a sample)
// never travel through the runner: each signer writes them, sorted by
// node, into runs under the spill directory and emits only the runs'
// paths. One worker then verifies every candidate edge by two merge
// joins on disk — edges sorted by their smaller node against the sets,
// then by their larger node against the sets again — and finds the
// clusters of the verified edges by union-find. Its inputs come cut into
// partitions (below), which it works on one goroutine each. Its memory is the
// external sorts' budgets and the union-find's nodes, not the sets nor
// the edges' copies of them (which the shuffled joins hold: edges × a
// kilobyte). The clusters are the same as the shuffled path's.

func init() {
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&localFuzzyFn{})
	register.Function2x1(bandRunValue)
	register.Function2x1(setRunValue)
	register.Function2x1(originRunValue)
}

// bandRunValue, setRunValue and originRunValue tag the local worker's
// three inputs: the runs of band pairs, of verification sets and of
// origins.
func bandRunValue(path string, _ []byte) string { return "B" + path }

func setRunValue(path string, _ []byte) string { return "R" + path }

func originRunValue(path, _ string) string { return "O" + path }

// localFuzzy buckets the band pairs in the runs, verifies the candidate
// edges against the sets in the runs, finds the clusters and writes the
// stage's marks (joined with the origins in the runs) into a marks file,
// whose reference it returns.
func localFuzzy(s beam.Scope, bandRuns, setRuns, originRuns beam.PCollection, cfg FuzzyConfig, stage string) beam.PCollection {
	s = s.Scope("LocalVerify")
	in := beam.Flatten(s, beam.ParDo(s, bandRunValue, bandRuns), beam.ParDo(s, setRunValue, setRuns),
		beam.ParDo(s, originRunValue, originRuns))
	return beam.ParDo(s, &localFuzzyFn{Threshold: cfg.Threshold, Verify: cfg.Verify, Budget: cfg.SpillBudget,
		Edges: cfg.Edges, Max: cfg.MaxBucketPairs, Stage: stage, Dir: cfg.SpillDir}, cfg.Meter.GroupByKey(s, stage+".runs", beam.AddFixedKey(s, in)))
}

type localFuzzyFn struct {
	Threshold float64 `json:"threshold"`
	Verify    string  `json:"verify"`
	Budget    int     `json:"budget"`
	Edges     string  `json:"edges"`
	Max       int     `json:"max"`
	Stage     string  `json:"stage"`
	Dir       string  `json:"dir"`
}

func (f *localFuzzyFn) budget() int {
	if f.Budget > 0 {
		return f.Budget
	}
	return DefaultSpillBudget
}

func (f *localFuzzyFn) ProcessElement(ctx context.Context, _ int, vals func(*string) bool, emit func(string)) error {
	var sets, bands partRuns
	var originRuns []string
	var v string
	for vals(&v) {
		var err error
		switch {
		case strings.HasPrefix(v, "R"):
			err = sets.add(v[1:])
		case strings.HasPrefix(v, "B"):
			err = bands.add(v[1:])
		case strings.HasPrefix(v, "O"):
			originRuns = append(originRuns, v[1:])
		}
		if err != nil {
			return fmt.Errorf("local fuzzy dedup: %w", err)
		}
	}
	sets.sort()
	bands.sort()
	sort.Strings(originRuns)
	// dedup.Cluster, the clustering bench/dedupbench measures, with the
	// band pairs merged from their runs (one merge a partition, on its
	// own goroutine) and the candidate edges joined with the sets by
	// external sorts.
	pairs := make([]dedup.BandPairs, len(bands.runs))
	for p, runs := range bands.runs {
		pairs[p] = func(yield func(uint64, string) error) error {
			return mergeRuns(ctx, runs, func(r runRecord) error {
				if len(r.key) < 8 {
					return fmt.Errorf("local fuzzy dedup: malformed band record")
				}
				return yield(binary.BigEndian.Uint64(r.key), string(r.key[8:]))
			})
		}
	}
	j := newRunJoiner(ctx, f.budget(), sets.runs)
	defer j.release()
	// Every member of a cluster gets a verdict: 'D' and its survivor
	// (the cluster's root, first in the keep policy's order), the root
	// 'K' (once per member; repeats are skipped below). They are sorted
	// by node on disk, to be joined with the origins.
	verdicts := newExtSorter(f.budget())
	defer verdicts.release()
	var addErr error
	add := func(node, v string) {
		if addErr == nil {
			addErr = verdicts.add(ctx, []byte(node), []byte(v))
		}
	}
	_, err := dedup.Cluster(pairs, j, dedup.ClusterConfig{Threshold: f.Threshold, Verify: f.Verify, Edges: f.Edges, MaxBucketPairs: f.Max},
		func(node, root string) {
			survivor := nodeID(root)
			add(node, "D"+survivor)
			add(root, "K"+survivor)
		})
	if err == nil {
		err = addErr
	}
	if err != nil {
		return err
	}
	ref, err := writeFuzzyMarks(ctx, verdicts, originRuns, f.Dir, f.Stage)
	if err != nil {
		return err
	}
	emit(ref)
	return nil
}

// The local worker's inputs are cut into partitions so that it buckets
// and joins on every core: the signers write band pairs into one run a
// partition of their band key, sets into one a partition of their node,
// and tag each run's path with its partition ("p/n:path"). The worker
// buckets each band partition on its own goroutine, and joins each node
// partition's edges with that partition's sets on its own goroutine. The
// partitions change where work happens, never its result.

// localParts is how many partitions a signer cuts its runs into:
// GOMAXPROCS, at most 8.
func localParts() int { return min(runtime.GOMAXPROCS(0), 8) }

// bandPart is the partition of a band key.
func bandPart(key uint64, parts int) int { return int(key % uint64(parts)) }

// nodePart is the partition of a node (FNV-1a of its bytes).
func nodePart[T string | []byte](node T, parts int) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * 1099511628211
	}
	return int(h % uint64(parts))
}

// emitParts emits each non-empty path of paths (by partition) tagged
// with its partition.
func emitParts(paths []string, emit func(string)) {
	for p, path := range paths {
		if path != "" {
			emit(strconv.Itoa(p) + "/" + strconv.Itoa(len(paths)) + ":" + path)
		}
	}
}

// partRuns collects tagged run paths by partition.
type partRuns struct {
	runs [][]string
}

// add files a tagged path under its partition; every tag must name the
// same number of partitions.
func (r *partRuns) add(v string) error {
	tag, path, ok := strings.Cut(v, ":")
	ps, ns, ok2 := strings.Cut(tag, "/")
	p, err1 := strconv.Atoi(ps)
	n, err2 := strconv.Atoi(ns)
	switch {
	case !ok || !ok2 || err1 != nil || err2 != nil || n < 1 || p < 0 || p >= n:
		return fmt.Errorf("malformed run tag %q", tag)
	case r.runs == nil:
		r.runs = make([][]string, n)
	case len(r.runs) != n:
		return fmt.Errorf("runs cut into %d and %d partitions", len(r.runs), n)
	}
	r.runs[p] = append(r.runs[p], path)
	return nil
}

// sort orders each partition's paths (the merges' order of runs).
func (r *partRuns) sort() {
	for _, runs := range r.runs {
		sort.Strings(runs)
	}
}

// writeFuzzyMarks merge-joins the verdicts (sorted by node) with the
// origins' runs (sorted by node) into the stage's marks file and returns
// its reference.
func writeFuzzyMarks(ctx context.Context, verdicts *extSorter, originRuns []string, dir, stage string) (string, error) {
	it, err := verdicts.iter(ctx)
	if err != nil {
		return "", err
	}
	defer it.close()
	origins, err := openMerger(ctx, originRuns)
	if err != nil {
		return "", err
	}
	defer origins.close()
	out, err := createMarksFile(ctx, dir, stage)
	if err != nil {
		return "", err
	}
	org, more, err := origins.next()
	var prev []byte
	for err == nil {
		var r runRecord
		var ok bool
		if r, ok, err = it.next(); err != nil || !ok {
			break
		}
		if bytes.Equal(r.key, prev) {
			continue // a root's repeated 'K'
		}
		prev = append(prev[:0], r.key...)
		for more && err == nil && bytes.Compare(org.key, r.key) < 0 {
			org, more, err = origins.next()
		}
		if err != nil {
			break
		}
		if !more || !bytes.Equal(org.key, r.key) {
			err = fmt.Errorf("local fuzzy dedup: node %q has no origin", r.key)
			break
		}
		err = out.add(string(org.payload), r.payload[0] == 'K', string(r.payload[1:]))
	}
	if err != nil {
		out.w.abort()
		return "", fmt.Errorf("fuzzy dedup: marks: %w", err)
	}
	return out.finish()
}

// runJoiner is dedup.Cluster's EdgeJoiner on disk: the candidate edges
// go into external sorts by their smaller node, one a node partition;
// Join merges each with its partition's sets (each edge gets a's set,
// re-keyed by b), sorts again by b's partition and merges with the sets
// once more for b's set. Each partition's merges run on their own
// goroutine.
type runJoiner struct {
	ctx    context.Context
	budget int        // each sort's: the worker's budget over the partitions
	runs   [][]string // the sets' runs by partition, sorted by node
	mu     []sync.Mutex
	byA    []*extSorter
	byB    []*extSorter
}

func newRunJoiner(ctx context.Context, budget int, runs [][]string) *runJoiner {
	if len(runs) == 0 {
		runs = make([][]string, 1) // no sets: edges (if any) join nothing
	}
	n := len(runs)
	return &runJoiner{ctx: ctx, budget: max(budget/n, 1<<20), runs: runs, mu: make([]sync.Mutex, n),
		byA: make([]*extSorter, n), byB: make([]*extSorter, n)}
}

// Add is safe for concurrent use.
func (j *runJoiner) Add(a, b string) error {
	p := nodePart(a, len(j.runs))
	j.mu[p].Lock()
	defer j.mu[p].Unlock()
	if j.byA[p] == nil {
		j.byA[p] = newExtSorter(j.budget)
	}
	return j.byA[p].add(j.ctx, []byte(a), []byte(b))
}

func (j *runJoiner) Join(fn func(a, b string, pa, pb []byte) error) error {
	n := len(j.runs)
	// Join 1: each edge (a, b) with a's set, re-keyed by b, into b's
	// partition's sort.
	err := forEachErr(n, n, func(p int) error {
		byA := j.byA[p]
		j.byA[p] = nil
		if byA == nil {
			return nil
		}
		var prevA, prevB, payload []byte
		return joinSets(j.ctx, byA, j.runs[p], func(a, b, setA []byte) error {
			if bytes.Equal(a, prevA) && bytes.Equal(b, prevB) {
				return nil // a repeated candidate edge
			}
			prevA, prevB = append(prevA[:0], a...), append(prevB[:0], b...)
			payload = binary.AppendUvarint(payload[:0], uint64(len(a)))
			payload = append(payload, a...)
			payload = append(payload, setA...)
			q := nodePart(b, n)
			j.mu[q].Lock()
			defer j.mu[q].Unlock()
			if j.byB[q] == nil {
				j.byB[q] = newExtSorter(j.budget)
			}
			return j.byB[q].add(j.ctx, b, payload)
		})
	})
	if err != nil {
		return err
	}
	// Join 2: with b's set.
	return forEachErr(n, n, func(q int) error {
		byB := j.byB[q]
		j.byB[q] = nil
		if byB == nil {
			return nil
		}
		return joinSets(j.ctx, byB, j.runs[q], func(b, p, setB []byte) error {
			k, w := binary.Uvarint(p)
			if w <= 0 || uint64(len(p)-w) < k {
				return fmt.Errorf("local fuzzy dedup: malformed edge record")
			}
			return fn(string(p[w:w+int(k)]), string(b), p[w+int(k):], setB)
		})
	})
}

// release frees the sorts Join did not reach.
func (j *runJoiner) release() {
	for _, s := range slices.Concat(j.byA, j.byB) {
		if s != nil {
			s.release()
		}
	}
}

// joinSets merge-joins the records of sorted (key: node) with the sets in
// runs (key: node) and calls fn(node, payload, set) for every record
// whose node has a set; records of nodes without one (samples with no
// shingle have no node) are skipped. It releases sorted.
func joinSets(ctx context.Context, sorted *extSorter, runs []string, fn func(node, payload, set []byte) error) error {
	it, err := sorted.iter(ctx)
	if err != nil {
		sorted.release()
		return err
	}
	defer func() { it.close(); sorted.release() }()
	sets, err := openMerger(ctx, runs)
	if err != nil {
		return err
	}
	defer sets.close()
	set, more, err := sets.next()
	if err != nil {
		return err
	}
	for {
		r, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		for more && bytes.Compare(set.key, r.key) < 0 {
			if set, more, err = sets.next(); err != nil {
				return err
			}
		}
		if more && bytes.Equal(set.key, r.key) {
			if err := fn(r.key, r.payload, set.payload); err != nil {
				return err
			}
		}
	}
}
