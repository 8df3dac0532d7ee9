// Command dedupbench measures sieve's fuzzy dedup on a labelled
// near-duplicate corpus (package corpus): precision, recall and cluster
// F1 at Jaccard thresholds 0.5, 0.7 and 0.8, and the signature
// throughput of sieve's own hasher against ekzhu/minhash-lsh's MinHash.
//
//	go run ./bench/dedupbench                      # chatgen corpus, seed 1, ~10 s
//	go run ./bench/dedupbench -seeds 5 -reps 0     # seeds 1–5 and their means: the numbers in docs/dedup.md and docs/bench.md
//	go run ./bench/dedupbench -alpaca /work/shared/data/alpaca_eval
//	go run ./bench/dedupbench -sweep               # n-grams, normalisation, weights, num_perm
//	go run ./bench/dedupbench -keys -alpaca /work/shared/data/alpaca_eval -thresholds 0.7   # dedup keys on planted SFT pairs
//
// The code under test is the fuzzy_dedup stage's own: per document
// dedup.Sketcher.Sketch and dedup.AppendBandKeys (bands × rows from
// OptimalBands, default weights), as the stage's signer calls them, then
// dedup.Cluster — the function the stage's local mode (the in-process
// runners) calls — through dedup.ClusterInMemory, which only holds the
// band pairs and the payloads in memory instead of in sorted runs on
// disk: candidate edges per bucket under the -edges policy (the stage's
// 2,000-pair cap of "all" and its fallback included), verification by
// the -verify payloads, union-find. transforms' TestFuzzyLocalIsClusterInMemory
// checks that the Beam stage and ClusterInMemory give the same marks.
//
// The truth is independent of that code: the Jaccard similarity of the
// documents' sets of n-gram strings (corpus.ReferenceSets: the
// normalisation as TextConfig documents it, no hashing), all pairs
// (an exact similarity join), so near-duplicates that the base documents
// happen to form count too. Scores per hasher, verification and
// threshold:
//
//   - precision: verified edges whose reference Jaccard is at least the
//     threshold, over all verified edges;
//   - recall: planted pairs (a variant and its parent) with reference
//     Jaccard at least the threshold whose two documents end in one
//     cluster, over all such planted pairs;
//   - cluster: pair-counting precision, recall and F1 of the clusters
//     against the connected components of all true pairs (what dedup
//     drops; the line's value).
//
// Output is one JSON object per line: fuzzy_dedup_corpus (what was
// generated), fuzzy_dedup_truth (the true pairs), fuzzy_dedup_quality
// (per seed, hasher, verification and threshold), with -seeds > 1
// fuzzy_dedup_quality_mean (the means over the seeds, rounded to three
// places) and minhash_signature (per hasher; value is signatures per
// second on one core, baseline ekzhu).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-data/sieve/bench/dedupbench/corpus"
	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

type options struct {
	thresholds []float64
	hashers    []string
	fpw, fnw   float64
	verify     []string
	edges      string
	label      string
}

func main() {
	cc := corpus.DefaultConfig()
	flag.IntVar(&cc.N, "n", cc.N, "documents in the corpus (all pairs are compared)")
	flag.Float64Var(&cc.Variants, "variants", cc.Variants, "fraction of documents that are planted variants")
	flag.Float64Var(&cc.MinJ, "minj", cc.MinJ, "smallest target Jaccard of a variant to its parent")
	flag.Float64Var(&cc.MaxJ, "maxj", cc.MaxJ, "largest target Jaccard")
	flag.Float64Var(&cc.Chain, "chain", cc.Chain, "probability that a variant is made from another variant")
	flag.Uint64Var(&cc.Seed, "seed", cc.Seed, "corpus seed")
	alpaca := flag.String("alpaca", "", "directory of alpaca_eval model-output JSON files to mix into the base documents (optional)")
	flag.Float64Var(&cc.ExtraShare, "alpaca-share", 0.5, "fraction of base documents taken from -alpaca")
	ths := flag.String("thresholds", "0.5,0.7,0.8", "Jaccard thresholds")
	hs := flag.String("hashers", "fast,ekzhu", "hashers to score")
	shingle := flag.String("shingle", dedup.DefaultShingle, "word or char")
	ngram := flag.Int("ngram", 0, "n-gram size (0: default)")
	perm := flag.Int("perm", dedup.DefaultNumPerm, "signature length")
	off := flag.String("off", "", "normalisations to switch off: comma list of lowercase,nfkc,punct,digits,space")
	var o options
	flag.Float64Var(&o.fpw, "fpw", dedup.DefaultFPWeight, "false-positive weight of OptimalBands")
	flag.Float64Var(&o.fnw, "fnw", dedup.DefaultFNWeight, "false-negative weight of OptimalBands")
	verify := flag.String("verify", "exact,estimate", "verifications to score, the stage's verify: exact (Jaccard of the 32-bit compact shingle sets), estimate (from the signatures) or none")
	flag.StringVar(&o.edges, "edges", dedup.EdgesLinear, "candidate edges of a bucket, the stage's policies (dedup.BucketEdges): linear, all (every pair up to 2,000 a bucket, then linear) or star")
	seeds := flag.Int("seeds", 1, "corpora to score, seeds -seed … -seed+seeds−1; with more than one, also the mean of each score (fuzzy_dedup_quality_mean)")
	reps := flag.Int("reps", 5, "repetitions of the throughput measurement (median reported); 0 skips it")
	sweep := flag.Bool("sweep", false, "also score other n-gram sizes, normalisations, weights and signature lengths")
	keys := flag.Bool("keys", false, "score the dedup keys (conversation, prompt, response, turns) on planted SFT pairs instead (see keys.go); uses -alpaca, -thresholds, -edges, -seed")
	keysN := flag.Int("keys-n", 805, "instructions of the chatgen fallback of -keys (without -alpaca)")
	flag.Parse()

	for _, s := range strings.Split(*ths, ",") {
		t, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || t <= 0 || t >= 1 {
			fail(fmt.Errorf("bad threshold %q", s))
		}
		o.thresholds = append(o.thresholds, t)
	}
	if *keys {
		tc := dedup.DefaultTextConfig()
		tc.Shingle, tc.N, tc.NumPerm = *shingle, *ngram, *perm
		if err := runKeys(*alpaca, tc, o.thresholds, o.edges, cc.Seed, *keysN); err != nil {
			fail(err)
		}
		return
	}
	o.hashers = strings.Split(*hs, ",")
	o.verify = strings.Split(*verify, ",")
	o.label = "chatgen"
	if *alpaca != "" {
		extra, err := corpus.LoadAlpacaEval(*alpaca)
		if err != nil {
			fail(err)
		}
		cc.Extra = extra
		o.label = fmt.Sprintf("chatgen+alpaca_eval(%.0f%%)", 100*cc.ExtraShare)
	}
	tc := dedup.DefaultTextConfig()
	tc.Shingle, tc.N, tc.NumPerm = *shingle, *ngram, *perm
	if err := setOff(&tc, *off); err != nil {
		fail(err)
	}
	if err := tc.Validate(); err != nil {
		fail(err)
	}

	var runs [][]map[string]any
	var seedList []uint64
	var docs []corpus.Doc
	for k := 0; k < max(*seeds, 1); k++ {
		cs := cc
		cs.Seed = cc.Seed + uint64(k)
		curSeed = cs.Seed
		seedList = append(seedList, cs.Seed)
		start := time.Now()
		docs = corpus.Generate(cs)
		emit(corpusLine(o.label, cs, docs, time.Since(start)))
		runs = append(runs, evaluate(docs, tc, o))
	}
	meanLines(runs, seedList)
	if *sweep {
		runSweep(docs, tc, o)
	}
	if *reps > 0 {
		throughput(docs, tc, *reps)
	}
}

func setOff(c *dedup.TextConfig, list string) error {
	for _, s := range strings.Split(list, ",") {
		switch strings.TrimSpace(s) {
		case "":
		case "lowercase":
			c.Lowercase = false
		case "nfkc":
			c.NFKC = false
		case "punct":
			c.FoldPunct = false
		case "digits":
			c.FoldDigits = false
		case "space":
			c.CollapseWhitespace = false
		case "all":
			c.Lowercase, c.NFKC, c.FoldPunct, c.FoldDigits, c.CollapseWhitespace = false, false, false, false, false
		default:
			return fmt.Errorf("unknown normalisation %q", s)
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dedupbench:", err)
	os.Exit(1)
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func corpusLine(label string, cc corpus.Config, docs []corpus.Doc, took time.Duration) map[string]any {
	var variants, bytes int
	edits := map[string]int{}
	hist := make([]int, 10) // achieved Jaccard of variants to parents, by tenth
	for _, d := range docs {
		bytes += len(d.Text)
		if d.Parent < 0 {
			continue
		}
		variants++
		hist[min(int(d.Achieved*10), 9)]++
		for k, n := range d.Edits {
			edits[k] += n
		}
	}
	return map[string]any{
		"bench": "fuzzy_dedup_corpus", "corpus": label, "docs": len(docs), "variants": variants,
		"avg_bytes": bytes / max(len(docs), 1), "target_jaccard": []float64{cc.MinJ, cc.MaxJ},
		"chain": cc.Chain, "seed": cc.Seed, "edits": edits, "variant_jaccard_by_tenth": hist,
		"seconds": took.Seconds(),
	}
}

// prepared is a corpus under one TextConfig: the reference shingle sets
// (corpus.ReferenceSets, independent of package dedup) and the true pairs
// by their Jaccard, down to the smallest threshold.
type prepared struct {
	docs  []corpus.Doc
	c     dedup.TextConfig
	ref   [][]uint64
	truth []corpus.Pair
}

func prepare(docs []corpus.Doc, c dedup.TextConfig, minT float64) *prepared {
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = d.Text
	}
	p := &prepared{docs: docs, c: c, ref: corpus.ReferenceSets(texts, c)}
	p.truth = corpus.TruePairs(p.ref, minT)
	return p
}

// evaluate scores every hasher, verification and threshold of o on docs
// and returns the quality lines (also emitted).
func evaluate(docs []corpus.Doc, c dedup.TextConfig, o options) []map[string]any {
	p := prepare(docs, c, slices.Min(o.thresholds))
	emit(truthLine(p))
	var out []map[string]any
	for _, h := range o.hashers {
		c.Hasher = h
		for _, v := range o.verify {
			for _, t := range o.thresholds {
				q := score(p, c, t, v, o)
				emit(q)
				out = append(out, q)
			}
		}
	}
	return out
}

// truthLine describes the true pairs: how many by Jaccard (in twentieths
// from the smallest threshold up), and how many were not planted (no
// parent link between the two, nor a common base).
func truthLine(p *prepared) map[string]any {
	hist := make([]int, 20)
	var unplanted, sameBase int
	for _, q := range p.truth {
		hist[min(int(q.J*20), 19)]++
		a, b := p.docs[q.A], p.docs[q.B]
		switch {
		case a.Parent == int(q.B) || b.Parent == int(q.A):
		case a.Base == b.Base:
			sameBase++
		default:
			unplanted++
		}
	}
	return map[string]any{
		"bench": "fuzzy_dedup_truth", "shingle": p.c.Shingle, "n": p.c.NGram(), "normalise": normLabel(p.c), "seed": curSeed,
		"true_pairs": len(p.truth), "by_twentieth": hist, "same_cluster_not_parent": sameBase, "unplanted": unplanted,
		"truth": "all-pairs Jaccard of reference n-gram string sets (corpus.ReferenceSets)",
	}
}

// maxBucketPairs is the stage's cap of EdgesAll (pipelines.Build sets
// FuzzyConfig.MaxBucketPairs to it).
const maxBucketPairs = 2000

// score runs the fuzzy_dedup stage's own code at threshold t — per
// document dedup.Sketcher.Sketch and dedup.AppendBandKeys as the signer
// does, then dedup.Cluster (through ClusterInMemory), which the stage's
// local mode calls — and scores its output against the reference truth:
//
//   - precision: the share of the verified edges whose reference Jaccard
//     is at least t (not 1 by construction: the truth is not the
//     verification's code);
//   - recall: the share of the planted pairs (variant, parent) with
//     reference Jaccard ≥ t whose two documents end in one cluster;
//   - cluster: pair-counting scores of the clusters against the
//     connected components of all true pairs at t (what dedup drops).
func score(p *prepared, c dedup.TextConfig, t float64, verify string, o options) map[string]any {
	start := time.Now()
	bands, rows := dedup.OptimalBands(t, c.Perms(), o.fpw, o.fnw)
	sk := c.NewSketcher(dedup.KeyConversation, verify)
	nodes := make([]dedup.Node, 0, len(p.docs))
	idx := make(map[string]int32, len(p.docs))
	for i, d := range p.docs {
		idx[d.ID] = int32(i)
		sig, payload, ok := sk.Sketch([]datasets.Message{{Role: "user", Content: d.Text}})
		if !ok {
			continue
		}
		// Node keys as the stage's sort (smallest_id: by id; the corpus's
		// ids follow its order).
		nodes = append(nodes, dedup.Node{Key: d.ID, Bands: dedup.AppendBandKeys(nil, sig, bands, rows), Payload: payload})
	}
	var verified [][2]int32
	res, err := dedup.ClusterInMemory(nodes, dedup.ClusterConfig{Threshold: t, Verify: verify, Edges: o.edges, MaxBucketPairs: maxBucketPairs,
		OnVerified: func(a, b string) { verified = append(verified, [2]int32{idx[a], idx[b]}) }})
	if err != nil {
		fail(err)
	}
	took := time.Since(start)
	label := make([]int32, len(p.docs))
	for i, d := range p.docs {
		label[i] = int32(i)
		if r, ok := res.Roots[d.ID]; ok {
			label[i] = idx[r]
		}
	}
	// Precision of the verified edges against the reference Jaccard.
	var good int64
	for _, e := range verified {
		if corpus.ReferenceJaccard(p.ref[e[0]], p.ref[e[1]]) >= t {
			good++
		}
	}
	// Recall on planted pairs.
	var planted, found int64
	for i, d := range p.docs {
		if d.Parent < 0 || corpus.ReferenceJaccard(p.ref[i], p.ref[d.Parent]) < t {
			continue
		}
		planted++
		if label[i] == label[d.Parent] {
			found++
		}
	}
	var tedges [][2]int32
	for _, q := range p.truth {
		if q.J >= t {
			tedges = append(tedges, [2]int32{q.A, q.B})
		}
	}
	edges := corpus.NewScores(good, int64(len(verified)), 0)
	recall := corpus.NewScores(found, found, planted)
	clusters := corpus.ClusterScores(label, corpus.Labels(len(p.docs), tedges))
	return map[string]any{
		"bench": "fuzzy_dedup_quality", "value": round4(clusters.F1), "unit": "cluster F1", "threshold": t, "hasher": c.Hasher,
		"seed": curSeed, "precision": round4(edges.Precision), "recall": round4(recall.Recall),
		"verified_edges": len(verified), "verified_true": good, "planted_pairs": planted, "planted_found": found,
		"cluster": clusters, "candidates": len(res.Candidates),
		"bands": bands, "rows": rows, "fp_weight": o.fpw, "fn_weight": o.fnw, "verify": verify, "edges": o.edges,
		"shingle": c.Shingle, "n": c.NGram(), "num_perm": c.Perms(), "normalise": normLabel(c),
		"docs": len(p.docs), "pipeline_seconds": round4(took.Seconds()),
	}
}

// curSeed is the seed of the corpus being scored (for the output lines).
var curSeed uint64

// meanLines averages the quality lines of several seeds per hasher,
// verification and threshold: one fuzzy_dedup_quality_mean line each.
func meanLines(runs [][]map[string]any, seeds []uint64) {
	if len(runs) < 2 {
		return
	}
	for i, first := range runs[0] {
		var prec, rec, cf1, cp, cr float64
		for _, r := range runs {
			q := r[i]
			prec += q["precision"].(float64)
			rec += q["recall"].(float64)
			cl := q["cluster"].(corpus.Scores)
			cf1 += cl.F1
			cp += cl.Precision
			cr += cl.Recall
		}
		n := float64(len(runs))
		emit(map[string]any{
			"bench": "fuzzy_dedup_quality_mean", "value": round3(cf1 / n), "unit": "cluster F1", "seeds": seeds,
			"threshold": first["threshold"], "hasher": first["hasher"], "verify": first["verify"], "edges": first["edges"],
			"precision": round3(prec / n), "recall": round3(rec / n),
			"cluster_precision": round3(cp / n), "cluster_recall": round3(cr / n), "cluster_f1": round3(cf1 / n),
		})
	}
}

func round3(x float64) float64 { return float64(int64(x*1e3+0.5)) / 1e3 }

func normLabel(c dedup.TextConfig) string {
	var on []string
	for _, x := range []struct {
		b bool
		s string
	}{{c.Lowercase, "lowercase"}, {c.NFKC, "nfkc"}, {c.FoldPunct, "punct"}, {c.FoldDigits, "digits"}, {c.CollapseWhitespace, "space"}} {
		if x.b {
			on = append(on, x.s)
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ",")
}

func round4(x float64) float64 { return float64(int64(x*1e4+0.5)) / 1e4 }

// runSweep scores variations of c, one change at a time.
func runSweep(docs []corpus.Doc, c dedup.TextConfig, o options) {
	fast := o
	fast.hashers = []string{dedup.HasherFast}
	for _, n := range []int{1, 2, 3, 4, 6, 7} {
		v := c
		v.Shingle, v.N = dedup.ShingleWord, n
		evaluate(docs, v, fast)
	}
	for _, n := range []int{3, 5, 7, 9} {
		v := c
		v.Shingle, v.N = dedup.ShingleChar, n
		evaluate(docs, v, fast)
	}
	for _, off := range []string{"all", "lowercase", "punct", "digits"} {
		v := c
		setOff(&v, off)
		evaluate(docs, v, fast)
	}
	for _, w := range [][2]float64{{0.5, 0.5}, {0.2, 0.8}, {0.1, 0.9}} {
		ow := fast
		ow.fpw, ow.fnw = w[0], w[1]
		evaluate(docs, c, ow)
	}
	for _, k := range []int{64, 256} {
		v := c
		v.NumPerm = k
		evaluate(docs, v, fast)
	}
}

// throughput measures signatures per second on one core: from shingle
// hashes alone (the hasher) and from raw text (normalise, shingle, sign
// with a reused Signer).
func throughput(docs []corpus.Doc, c dedup.TextConfig, reps int) {
	sh := make([][]uint64, len(docs))
	var nsh, nbytes int
	for i, d := range docs {
		sh[i] = c.Shingles(d.Text)
		nsh += len(sh[i])
		nbytes += len(d.Text)
	}
	median := func(f func()) float64 {
		var ts []float64
		for r := 0; r < reps; r++ {
			s := time.Now()
			f()
			ts = append(ts, time.Since(s).Seconds())
		}
		slices.Sort(ts)
		return ts[len(ts)/2]
	}
	res := map[string][2]float64{}
	for _, h := range []string{dedup.HasherEkzhu, dedup.HasherFast} {
		v := c
		v.Hasher = h
		hs := v.NewHasher()
		sig := median(func() {
			for _, s := range sh {
				hs.Signature(s)
			}
		})
		sg := v.NewSigner()
		txt := median(func() {
			for _, d := range docs {
				sg.Signature(d.Text)
			}
		})
		res[h] = [2]float64{sig, txt}
	}
	base := res[dedup.HasherEkzhu]
	for _, h := range []string{dedup.HasherEkzhu, dedup.HasherFast} {
		r := res[h]
		emit(map[string]any{
			"bench": "minhash_signature", "hasher": h, "value": round4(float64(len(docs)) / r[0]), "unit": "docs/s/core",
			"us_per_doc": round4(r[0] / float64(len(docs)) * 1e6), "avg_shingles": nsh / len(docs), "num_perm": c.Perms(),
			"text_us_per_doc": round4(r[1] / float64(len(docs)) * 1e6), "text_mb_per_s": round4(float64(nbytes) / r[1] / 1e6),
			"baseline": dedup.HasherEkzhu, "ratio": round4(base[0] / r[0]), "text_ratio": round4(base[1] / r[1]), "reps": reps,
		})
	}
}
