package transforms

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

func TestMain(m *testing.M) { ptest.Main(m) }

// answer is a ~120-word pseudo-text drawn from a small vocabulary by rng.
func answer(rng *rand.Rand) string {
	words := strings.Fields("the a model data answer question list table song river mountain city code function value " +
		"return error file line record sample cluster band bucket edge node graph round star small large verify " +
		"jaccard shingle signature hash key order policy keep drop stage filter writer reader shard split seed")
	var b strings.Builder
	for i := 0; i < 120; i++ {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}

// variants makes clusters of near-duplicates: each cluster one answer
// under prompt variants, as synthetic mixes and multi-source sets look.
func variants(clusters, size int) []any {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []any
	for c := 0; c < clusters; c++ {
		ans := answer(rng)
		prompt := answer(rng)[:200]
		for v := 0; v < size; v++ {
			msgs := []datasets.Message{{Role: "user", Content: fmt.Sprintf("%s (variant %d)", prompt, v)}, {Role: "assistant", Content: ans}}
			out = append(out, datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
				Source: datasets.Source{Dataset: "t", File: "f.jsonl", Index: int64(c*size + v)}})
		}
	}
	return out
}

func fuzzyTestConfig() FuzzyConfig {
	text := dedup.DefaultTextConfig()
	bands, rows := dedup.OptimalBands(0.7, text.Perms(), 0.5, 0.5)
	return FuzzyConfig{Text: text, Mode: dedup.KeyConversation, Threshold: 0.7, Bands: bands, Rows: rows,
		Verify: "exact", Edges: dedup.EdgesLinear, MaxBucketPairs: 2000, Keep: "smallest_id", Rounds: 10}
}

// candidateCount builds the signer and the candidate edges of the stage
// on samples and returns the number of distinct candidate edges.
func candidateCount(s beam.Scope, samples beam.PCollection, cfg FuzzyConfig) beam.PCollection {
	priorMarks, stages := marksSideInput(s, nil)
	bandPairs, _, _ := beam.ParDo3(s, &signFn{Cfg: cfg, Stages: stages}, samples, priorMarks)
	return beam.Combine(s, sumInts, beam.ParDo(s, oneEdge, candidateEdges(s, bandPairs, cfg, "fuzzy_dedup")))
}

func oneEdge(a, b string) int { return 1 }

func sumInts(a, b int) int { return a + b }

// atMost says "linear" when count ≤ Bound, else "quadratic".
type atMost struct {
	Bound, N int
}

func (f *atMost) ProcessElement(c int) string {
	if c > f.Bound {
		return "quadratic"
	}
	return "linear"
}

func verdictOf(mark string) string {
	v := mark[strings.LastIndex(mark, markVerdictSep)+1:]
	return v[:1] + " " + v[1:]
}

func formatCount(k string, n int) string { return fmt.Sprintf("%s ×%d", k, n) }

func init() {
	register.Function2x1(oneEdge)
	register.Function2x1(sumInts)
	register.DoFn1x1[int, string](&atMost{})
	register.Function1x1(verdictOf)
	register.Function2x1(formatCount)
}

// edgesPerSample bounds the distinct candidate edges per sample of a
// linear policy: each band's bucket gives at most BucketLeaders+1 a
// member, and the buckets of one cluster mostly share their leaders (the
// smallest nodes), so the union over bands stays a few per sample.
const edgesPerSample = 2 * (dedup.BucketLeaders + 1)

// TestFuzzyCandidatesLinearInClusterSize: many medium clusters (60
// near-identical members each, under the 2,000-pair cap of "all", which
// enumerates 1,770 pairs a bucket) and one bucket of thousands must give
// candidate edges linear in the number of samples, whatever the cluster
// size. The "all" policy (the default before) on the same clusters is
// the negative control: it must exceed the bound.
func TestFuzzyCandidatesLinearInClusterSize(t *testing.T) {
	for _, tc := range []struct {
		clusters, size int
		edges          string
		want           string
	}{{40, 60, dedup.EdgesLinear, "linear"}, {1, 3000, dedup.EdgesLinear, "linear"}, {40, 60, dedup.EdgesAll, "quadratic"}} {
		t.Run(fmt.Sprintf("%dx%d_%s", tc.clusters, tc.size, tc.edges), func(t *testing.T) {
			p, s := beam.NewPipelineWithRoot()
			n := tc.clusters * tc.size
			samples := beam.CreateList(s, variants(tc.clusters, tc.size))
			cfg := fuzzyTestConfig()
			cfg.Edges = tc.edges
			count := candidateCount(s, samples, cfg)
			ok := beam.ParDo(s, &atMost{Bound: edgesPerSample * n, N: n}, count)
			passert.Equals(s, ok, tc.want)
			ptest.RunAndValidate(t, p)
		})
	}
}

// TestFuzzyDedupBigCluster: one answer under 2,000 prompt variants is one
// cluster; every member but the smallest id is marked a near duplicate of
// it.
func TestFuzzyDedupBigCluster(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	in := variants(1, 2000)
	smallest := in[0].(datasets.Sample).ID
	for _, v := range in {
		if id := v.(datasets.Sample).ID; id < smallest {
			smallest = id
		}
	}
	samples := beam.CreateList(s, in)
	m, check := FuzzyDedupMarks(s, samples, fuzzyTestConfig(), "fuzzy_dedup", nil, nil)
	passert.Empty(s, check)
	counts := beam.ParDo(s, formatCount, stats.Count(s, beam.ParDo(s, verdictOf, m.Marks)))
	passert.Equals(s, counts, formatCount("D "+smallest, 1999), formatCount("K "+smallest, 1))
	ptest.RunAndValidate(t, p)
}

// TestFuzzyComponentsLocalEqualsRounds: union-find on one worker and the
// large-star/small-star rounds give the same marks (clusters and
// survivors) on clusters of many sizes.
func TestFuzzyComponentsLocalEqualsRounds(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	var in []any
	for i, size := range []int{1, 2, 3, 5, 8, 13, 40} {
		for _, v := range variants(3, size) {
			smp := v.(datasets.Sample)
			smp.Source.Index += int64(1000 * i)
			smp.Source.File = fmt.Sprintf("f%d.jsonl", i)
			in = append(in, smp)
		}
	}
	samples := beam.CreateList(s, in)
	mr, check := FuzzyDedupMarks(s.Scope("rounds"), samples, fuzzyTestConfig(), "fuzzy_dedup", nil, nil)
	passert.Empty(s, check)
	// Union-find after the shuffled verification, and the whole local
	// path with the sets on disk (a small budget, so the external sorts
	// spill).
	local := fuzzyTestConfig()
	local.Components = ComponentsLocal
	ml, _ := FuzzyDedupMarks(s.Scope("local"), samples, local, "fuzzy_dedup", nil, nil)
	disk := local
	disk.SpillDir, disk.SpillBudget = t.TempDir(), 4<<10
	md, _ := FuzzyDedupMarks(s.Scope("disk"), samples, disk, "fuzzy_dedup", nil, nil)
	passert.Equals(s, beam.ParDo(s, &expandMarksFn{}, md.Marks), mr.Marks)
	passert.Equals(s, ml.Marks, mr.Marks)
	passert.NonEmpty(s, ml.Marks)
	ptest.RunAndValidate(t, p)
}

// TestFuzzyLocalVerifyNone: with verify: none the local path (the
// in-process runners' default) finds the clusters the rounds find. It
// found none before it ran dedup.Cluster: no payloads, so no set runs,
// so no candidate edge ever joined.
func TestFuzzyLocalVerifyNone(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	var in []any
	for i, size := range []int{1, 2, 5, 13} {
		for _, v := range variants(3, size) {
			smp := v.(datasets.Sample)
			smp.Source.Index += int64(1000 * i)
			in = append(in, smp)
		}
	}
	samples := beam.CreateList(s, in)
	cfg := fuzzyTestConfig()
	cfg.Verify = dedup.VerifyNone
	mr, _ := FuzzyDedupMarks(s.Scope("rounds"), samples, cfg, "fuzzy_dedup", nil, nil)
	disk := cfg
	disk.Components, disk.SpillDir, disk.SpillBudget = ComponentsLocal, t.TempDir(), 4<<10
	md, _ := FuzzyDedupMarks(s.Scope("disk"), samples, disk, "fuzzy_dedup", nil, nil)
	passert.Equals(s, beam.ParDo(s, &expandMarksFn{}, md.Marks), mr.Marks)
	passert.NonEmpty(s, beam.ParDo(s, &expandMarksFn{}, md.Marks))
	ptest.RunAndValidate(t, p)
}

// TestFuzzyLocalIsClusterInMemory: the stage's local path on disk and
// dedup.ClusterInMemory (what bench/dedupbench measures) give the same
// marks: one clustering function, two ways of holding the data. The local
// path cuts its runs into GOMAXPROCS partitions: one and three give the
// same marks.
func TestFuzzyLocalIsClusterInMemory(t *testing.T) {
	for _, procs := range []int{1, 3} {
		t.Run(fmt.Sprintf("parts=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			if localParts() != procs {
				t.Fatalf("localParts() = %d with GOMAXPROCS %d", localParts(), procs)
			}
			testFuzzyLocalIsClusterInMemory(t)
		})
	}
}

func testFuzzyLocalIsClusterInMemory(t *testing.T) {
	var in []any
	var nodes []dedup.Node
	origins := map[string]string{}
	cfg := fuzzyTestConfig()
	sk := cfg.Text.NewSketcher(cfg.Mode, cfg.Verify)
	for i, size := range []int{1, 2, 3, 5, 8, 13, 40} {
		for _, v := range variants(3, size) {
			smp := v.(datasets.Sample)
			smp.Source.Index += int64(1000 * i)
			in = append(in, smp)
			sig, payload, ok := sk.Sketch(smp.Messages)
			if !ok {
				continue
			}
			key := "0" + nodeKey(cfg.Keep, &smp, shortRef(&smp))
			origins[key] = sampleOrigin(&smp)
			nodes = append(nodes, dedup.Node{Key: key, Bands: dedup.AppendBandKeys(nil, sig, cfg.Bands, cfg.Rows), Payload: payload})
		}
	}
	res, err := dedup.ClusterInMemory(nodes, dedup.ClusterConfig{Threshold: cfg.Threshold, Verify: cfg.Verify, Edges: cfg.Edges, MaxBucketPairs: cfg.MaxBucketPairs})
	if err != nil {
		t.Fatal(err)
	}
	var want []any
	for n, r := range res.Roots {
		v := "D" + nodeID(r)
		if n == r {
			v = "K" + nodeID(r)
		}
		want = append(want, "fuzzy_dedup"+markStageSep+origins[n]+markVerdictSep+v)
	}
	if len(want) == 0 {
		t.Fatal("no clusters")
	}
	p, s := beam.NewPipelineWithRoot()
	disk := cfg
	disk.Components, disk.SpillDir, disk.SpillBudget = ComponentsLocal, t.TempDir(), 4<<10
	md, _ := FuzzyDedupMarks(s, beam.CreateList(s, in), disk, "fuzzy_dedup", nil, nil)
	passert.Equals(s, beam.ParDo(s, &expandMarksFn{}, md.Marks), want...)
	ptest.RunAndValidate(t, p)
}

// TestPartRuns: tagged run paths are filed by partition; a malformed tag
// or two different partition counts are errors.
func TestPartRuns(t *testing.T) {
	var r partRuns
	var tagged []string
	emitParts([]string{"/s/b.run", "", "/s/a.run"}, func(v string) { tagged = append(tagged, v) })
	emitParts([]string{"/s/c.run", "/s/0.run", ""}, func(v string) { tagged = append(tagged, v) })
	for _, v := range tagged {
		if err := r.add(v); err != nil {
			t.Fatal(err)
		}
	}
	r.sort()
	want := [][]string{{"/s/b.run", "/s/c.run"}, {"/s/0.run"}, {"/s/a.run"}}
	if fmt.Sprint(r.runs) != fmt.Sprint(want) {
		t.Errorf("runs = %v, want %v", r.runs, want)
	}
	for _, bad := range []string{"/s/x.run", "3/3:/s/x.run", "-1/3:/s/x.run", "a/3:/s/x.run", "0/0:/s/x.run", "1/2:/s/x.run"} {
		if err := r.add(bad); err == nil {
			t.Errorf("add(%q) = nil, want an error", bad)
		}
	}
	for _, node := range []string{"", "0\x05abc\x00def", strings.Repeat("z", 51)} {
		if p := nodePart(node, 3); p != nodePart([]byte(node), 3) || p < 0 || p >= 3 {
			t.Errorf("nodePart(%q, 3) = %d: not one partition for the string and its bytes", node, p)
		}
	}
}
