package transforms

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

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
// clusters of the verified edges by union-find. Its memory is the
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
	var runs, bandRuns, originRuns []string
	var v string
	for vals(&v) {
		switch {
		case strings.HasPrefix(v, "R"):
			runs = append(runs, v[1:])
		case strings.HasPrefix(v, "B"):
			bandRuns = append(bandRuns, v[1:])
		case strings.HasPrefix(v, "O"):
			originRuns = append(originRuns, v[1:])
		}
	}
	sort.Strings(runs)
	sort.Strings(bandRuns)
	sort.Strings(originRuns)
	// dedup.Cluster, the clustering bench/dedupbench measures, with the
	// band pairs merged from their runs and the candidate edges joined
	// with the sets by external sorts.
	pairs := func(yield func(uint64, string) error) error {
		return mergeRuns(ctx, bandRuns, func(r runRecord) error {
			if len(r.key) < 8 {
				return fmt.Errorf("local fuzzy dedup: malformed band record")
			}
			return yield(binary.BigEndian.Uint64(r.key), string(r.key[8:]))
		})
	}
	j := &runJoiner{ctx: ctx, budget: f.budget(), runs: runs}
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
// go into an external sort by their smaller node; Join merges them with
// the sets' runs (each edge gets a's set, re-keyed by b), sorts again and
// merges with the runs once more for b's set.
type runJoiner struct {
	ctx      context.Context
	budget   int
	runs     []string // the sets' runs, sorted by node
	byA, byB *extSorter
}

func (j *runJoiner) Add(a, b string) error {
	if j.byA == nil {
		j.byA = newExtSorter(j.budget)
	}
	return j.byA.add(j.ctx, []byte(a), []byte(b))
}

func (j *runJoiner) Join(fn func(a, b string, pa, pb []byte) error) error {
	if j.byA == nil {
		return nil
	}
	// Join 1: each edge (a, b) with a's set, re-keyed by b.
	byA := j.byA
	j.byA = nil
	j.byB = newExtSorter(j.budget)
	var prevA, prevB []byte
	var payload []byte
	err := joinSets(j.ctx, byA, j.runs, func(a, b, setA []byte) error {
		if bytes.Equal(a, prevA) && bytes.Equal(b, prevB) {
			return nil // a repeated candidate edge
		}
		prevA, prevB = append(prevA[:0], a...), append(prevB[:0], b...)
		payload = binary.AppendUvarint(payload[:0], uint64(len(a)))
		payload = append(payload, a...)
		payload = append(payload, setA...)
		return j.byB.add(j.ctx, b, payload)
	})
	if err != nil {
		return err
	}
	// Join 2: with b's set.
	byB := j.byB
	j.byB = nil
	return joinSets(j.ctx, byB, j.runs, func(b, p, setB []byte) error {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return fmt.Errorf("local fuzzy dedup: malformed edge record")
		}
		return fn(string(p[k:k+int(n)]), string(b), p[k+int(n):], setB)
	})
}

// release frees the sorts Join did not reach.
func (j *runJoiner) release() {
	for _, s := range []*extSorter{j.byA, j.byB} {
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
