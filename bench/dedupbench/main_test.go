package main

import (
	"testing"

	"github.com/sieve-data/sieve/bench/dedupbench/corpus"
	"github.com/sieve-data/sieve/dedup"
)

// TestScore runs the benchmark pipeline on a small corpus: exact
// verification can only lose pairs at the banding, and both verifications
// find most duplicates.
func TestScore(t *testing.T) {
	cc := corpus.DefaultConfig()
	cc.N = 600
	docs := corpus.Generate(cc)
	c := dedup.DefaultTextConfig()
	o := options{thresholds: []float64{0.7}, fpw: dedup.DefaultFPWeight, fnw: dedup.DefaultFNWeight, edges: "clique"}
	p := prepare(docs, c, 0.7)
	if len(p.truth) < 30 {
		t.Fatalf("only %d true pairs", len(p.truth))
	}
	sigs := signAll(p, c)
	ex := score(p, c, sigs, 0.7, "exact", o)
	if ex["precision"].(float64) != 1 {
		t.Errorf("exact verification precision %v", ex["precision"])
	}
	if ex["recall"].(float64) != ex["candidate_recall"].(float64) {
		t.Errorf("exact verification recall %v, candidate recall %v", ex["recall"], ex["candidate_recall"])
	}
	if ex["f1"].(float64) < 0.95 {
		t.Errorf("exact verification F1 %v", ex["f1"])
	}
	est := score(p, c, sigs, 0.7, "estimate", o)
	if est["f1"].(float64) < 0.85 {
		t.Errorf("estimated verification F1 %v", est["f1"])
	}
	none := score(p, c, sigs, 0.7, "none", o)
	if none["recall"].(float64) != ex["candidate_recall"].(float64) || none["precision"].(float64) >= ex["precision"].(float64) {
		t.Errorf("unverified candidates: %v", none["pairs"])
	}
}
