// Command dedupbench measures sieve's fuzzy dedup (package dedup) on a
// labelled near-duplicate corpus (package corpus): duplicate-pair
// precision, recall and F1 at Jaccard thresholds 0.5, 0.7 and 0.8, and
// the signature throughput of sieve's own hasher against
// ekzhu/minhash-lsh's MinHash.
//
//	go run ./bench/dedupbench                      # chatgen corpus, ~10 s
//	go run ./bench/dedupbench -alpaca /work/shared/data/alpaca_eval
//	go run ./bench/dedupbench -sweep               # n-grams, normalisation, weights, num_perm
//	go run ./bench/dedupbench -keys -alpaca /work/shared/data/alpaca_eval -thresholds 0.7   # dedup keys on planted SFT pairs
//
// A duplicate pair is a pair of documents whose exact Jaccard similarity
// on the normalised shingle sets (of the TextConfig under test) is at
// least the threshold; the truth is an exact all-pairs similarity join
// over the whole corpus, not the planting, so near-duplicates that the
// base documents happen to form count too. The pipeline under test is
// the one sieve runs at scale: signatures, bands × rows from
// OptimalBands (default weights), candidate pairs from shared band keys
// (every pair in a bucket, or with -edges star each member and the
// bucket's smallest id), verification, connected components (checked
// against the large-star/small-star rounds). Verification is scored both
// ways: "exact" (CompactJaccard of the 32-bit shingle sets, the
// recommended default; its precision is 1 by construction, so it measures
// what the banding misses) and "estimate" (EstimateJaccard of the
// signatures alone, as an index of signatures allows). Scores are the
// verified pairs' ("precision", "recall", "f1", "pairs") and, by pair
// counting, the components' against the components of the true pairs
// ("cluster": what dedup drops).
//
// Output is one JSON object per line: fuzzy_dedup_corpus (what was
// generated), fuzzy_dedup_truth (the true pairs by Jaccard),
// fuzzy_dedup_quality (per hasher, verification and threshold; value is
// the pair F1) and minhash_signature (per hasher; value is signatures per
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
	"github.com/sieve-data/sieve/dedup"
)

type options struct {
	thresholds []float64
	hashers    []string
	fpw, fnw   float64
	margin     float64
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
	flag.Float64Var(&o.margin, "margin", 0, "verify candidates by Jaccard ≥ threshold − margin")
	verify := flag.String("verify", "exact,estimate", "verifications to score: by exact Jaccard of the 32-bit compact shingle sets (exact), by estimated Jaccard (estimate), or none")
	flag.StringVar(&o.edges, "edges", dedup.EdgesLinear, "candidate edges of a bucket, the stage's policies (dedup.BucketEdges): linear, all (every pair up to 2,000 a bucket, then linear) or star")
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

	start := time.Now()
	docs := corpus.Generate(cc)
	emit(corpusLine(o.label, cc, docs, time.Since(start)))

	evaluate(docs, tc, o)
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

// prepared is a corpus under one TextConfig: shingle sets and the true
// pairs down to the smallest threshold.
type prepared struct {
	docs     []corpus.Doc
	c        dedup.TextConfig
	shingles [][]uint64 // sorted sets
	compact  [][]uint32 // dedup.CompactSet of each
	truth    []corpus.Pair
}

func prepare(docs []corpus.Doc, c dedup.TextConfig, minT float64) *prepared {
	p := &prepared{docs: docs, c: c, shingles: make([][]uint64, len(docs)), compact: make([][]uint32, len(docs))}
	for i, d := range docs {
		p.shingles[i] = dedup.SortedSet(c.Shingles(d.Text))
		p.compact[i] = dedup.CompactSet(p.shingles[i])
	}
	p.truth = corpus.TruePairs(p.shingles, minT)
	return p
}

func evaluate(docs []corpus.Doc, c dedup.TextConfig, o options) {
	p := prepare(docs, c, slices.Min(o.thresholds))
	emit(truthLine(p))
	for _, h := range o.hashers {
		c.Hasher = h
		sigs := signAll(p, c)
		for _, v := range o.verify {
			for _, t := range o.thresholds {
				emit(score(p, c, sigs, t, v, o))
			}
		}
	}
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
		"bench": "fuzzy_dedup_truth", "shingle": p.c.Shingle, "n": p.c.NGram(), "normalise": normLabel(p.c),
		"true_pairs": len(p.truth), "by_twentieth": hist, "same_cluster_not_parent": sameBase, "unplanted": unplanted,
	}
}

func signAll(p *prepared, c dedup.TextConfig) [][]uint64 {
	h := c.NewHasher()
	sigs := make([][]uint64, len(p.shingles))
	for i, s := range p.shingles {
		sigs[i] = h.Signature(s)
	}
	return sigs
}

// score runs the dedup pipeline at threshold t and scores it.
func score(p *prepared, c dedup.TextConfig, sigs [][]uint64, t float64, verify string, o options) map[string]any {
	start := time.Now()
	bands, rows := dedup.OptimalBands(t, c.Perms(), o.fpw, o.fnw)
	// Band keys → buckets → candidate pairs.
	buckets := map[uint64][]int32{}
	for i, s := range sigs {
		for _, k := range dedup.BandKeys(s, bands, rows) {
			buckets[k] = append(buckets[k], int32(i))
		}
	}
	// Candidate edges by the production policy (dedup.BucketEdges): each
	// bucket's members sorted as the stage sorts its nodes (by id, and
	// ids follow the index order here).
	cand := map[uint64]bool{}
	for _, b := range buckets {
		slices.Sort(b)
		dedup.BucketEdges(len(b), o.edges, 2000, func(x, y int) { cand[corpus.PairKey(b[x], b[y])] = true })
	}
	// Verification by estimated Jaccard, then components.
	pred := map[uint64]bool{}
	var edges [][2]string
	for k := range cand {
		a, b := int32(k>>32), int32(uint32(k))
		j := 1.0
		switch verify {
		case "exact":
			j = dedup.CompactJaccard(p.compact[a], p.compact[b])
		case "estimate":
			j = dedup.EstimateJaccard(sigs[a], sigs[b])
		case "none":
		default:
			fail(fmt.Errorf("unknown verification %q", verify))
		}
		if j >= t-o.margin {
			pred[k] = true
			edges = append(edges, [2]string{p.docs[a].ID, p.docs[b].ID})
		}
	}
	comp := dedup.Components(edges)
	took := time.Since(start)
	// The distributed algorithm must agree with union-find.
	slices.SortFunc(edges, func(x, y [2]string) int { return strings.Compare(x[0]+x[1], y[0]+y[1]) })
	stars, rounds, ok := dedup.StarComponents(edges, 64)
	if !ok || len(stars) != len(comp) {
		fail(fmt.Errorf("star components did not converge or disagree (%d rounds)", rounds))
	}
	for k, v := range comp {
		if stars[k] != v {
			fail(fmt.Errorf("star components disagree at %s", k))
		}
	}
	// Truth at t.
	truth := map[uint64]bool{}
	var tedges [][2]int32
	for _, q := range p.truth {
		if q.J >= t {
			truth[corpus.PairKey(q.A, q.B)] = true
			tedges = append(tedges, [2]int32{q.A, q.B})
		}
	}
	var candTP int64
	for k := range truth {
		if cand[k] {
			candTP++
		}
	}
	idx := make(map[string]int32, len(p.docs))
	for i, d := range p.docs {
		idx[d.ID] = int32(i)
	}
	plabels := make([]int32, len(p.docs))
	for i := range plabels {
		plabels[i] = int32(i)
		if l, ok := comp[p.docs[i].ID]; ok {
			plabels[i] = idx[l]
		}
	}
	pairs := corpus.PairScores(pred, truth)
	clusters := corpus.ClusterScores(plabels, corpus.Labels(len(p.docs), tedges))
	return map[string]any{
		"bench": "fuzzy_dedup_quality", "value": round4(pairs.F1), "unit": "F1", "threshold": t, "hasher": c.Hasher,
		"precision": round4(pairs.Precision), "recall": round4(pairs.Recall), "f1": round4(pairs.F1),
		"pairs": pairs, "cluster": clusters,
		"candidates": len(cand), "candidate_recall": round4(float64(candTP) / float64(max(len(truth), 1))),
		"bands": bands, "rows": rows, "fp_weight": o.fpw, "fn_weight": o.fnw, "margin": o.margin, "verify": verify, "edges": o.edges,
		"shingle": c.Shingle, "n": c.NGram(), "num_perm": c.Perms(), "normalise": normLabel(c),
		"docs": len(p.docs), "star_rounds": rounds, "pipeline_seconds": round4(took.Seconds()),
	}
}

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
