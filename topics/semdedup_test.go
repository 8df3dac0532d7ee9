package topics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// paraphrase rewrites a planted prompt: "Can you" → "Could you please",
// the first two words swapped, the last one dropped, "kindly" added and
// "?" → "!".
func paraphrase(s string) string {
	w := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(s, "Can you "), "?"))
	w[0], w[1] = w[1], w[0]
	w = append(w[:len(w)-1], "kindly")
	return "Could you please " + strings.Join(w, " ") + "!"
}

func TestSemDeDupPlantedParaphrases(t *testing.T) {
	ss, truth := plantedCorpus(4, 50, 11)
	m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{K: 4}, Seed: 1})
	type doc struct {
		id, text string
		orig     int // index of the original for a paraphrase, else -1
	}
	var docs []doc
	for i := range ss {
		docs = append(docs, doc{ss[i].ID, FieldPrompt.Text(&ss[i]), -1})
	}
	for i := 0; i < len(ss); i += 7 {
		p := sampleOf(paraphrase(docs[i].text), "answer")
		docs = append(docs, doc{p.ID, FieldPrompt.Text(&p), i})
		truth = append(truth, truth[i])
	}
	// Group by assigned topic, dedup each group.
	groups := map[int32][]DedupItem{}
	for _, d := range docs {
		v := m.TFIDF.EmbedText(d.text, nil)
		a, _ := m.AssignVector(v)
		groups[a.Topic] = append(groups[a.Topic], DedupItem{ID: d.id, Vec: v})
	}
	dropped := map[string]Dup{}
	for _, g := range groups {
		dups, err := SemDeDup(g, DedupConfig{Threshold: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dups {
			dropped[d.ID] = d
		}
	}
	planted := 0
	for _, d := range docs {
		if d.orig < 0 {
			continue
		}
		planted++
		o := docs[d.orig]
		loser, winner := max(d.id, o.id), min(d.id, o.id)
		got, ok := dropped[loser]
		if !ok || got.Survivor != winner {
			t.Fatalf("paraphrase pair %q / %q: want %s dropped for %s, got %+v", o.text, d.text, loser[:8], winner[:8], got)
		}
	}
	if len(dropped) != planted {
		var extra []string
		for id, d := range dropped {
			extra = append(extra, fmt.Sprintf("%s→%s %.3f", id[:8], d.Survivor[:8], d.Similarity))
		}
		t.Fatalf("%d dropped, %d planted paraphrases: %v", len(dropped), planted, extra)
	}
	// The margin: the least paraphrase similarity and the greatest
	// similarity between distinct prompts.
	vecs := make([][]float32, len(docs))
	for i, d := range docs {
		vecs[i] = m.TFIDF.EmbedText(d.text, nil)
	}
	minPara, maxDistinct := 2.0, -2.0
	for i, d := range docs {
		for j := range i {
			s := float64(dot(vecs[i], vecs[j]))
			switch {
			case d.orig == j:
				minPara = min(minPara, s)
			case d.orig < 0 || docs[j].orig != d.orig:
				maxDistinct = max(maxDistinct, s)
			}
		}
	}
	t.Logf("%d planted paraphrases dropped, %d distinct prompts kept; least paraphrase cos %.3f, greatest distinct cos %.3f",
		planted, len(docs)-planted, minPara, maxDistinct)
}

// clusterVectors are n unit vectors around one direction (pairwise cos
// about 0.36, like the members of one topic) and, for every tenth one, a
// near copy (cos about 0.99).
func clusterVectors(n, dim int, seed uint64) ([]DedupItem, map[string]string) {
	rng := rand.New(rand.NewPCG(seed, 3))
	base := make([]float32, dim)
	for i := range base {
		base[i] = float32(rng.NormFloat64())
	}
	normalize(base)
	noise := func(scale float64) []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64() / 8)
		}
		normalize(v)
		for i := range v {
			v[i] *= float32(scale)
		}
		return v
	}
	var items []DedupItem
	twin := map[string]string{}
	for i := range n {
		v := noise(0.8)
		for j := range v {
			v[j] += 0.6 * base[j]
		}
		id := fmt.Sprintf("s%05d", i)
		items = append(items, DedupItem{ID: id, Vec: v})
		if i%10 == 0 {
			w := slices.Clone(v)
			for j, x := range noise(0.12) {
				w[j] += x
			}
			tid := fmt.Sprintf("t%05d", i)
			items = append(items, DedupItem{ID: tid, Vec: w})
			twin[tid] = id
		}
	}
	return items, twin
}

func TestSemDeDupLSHAgreesWithExact(t *testing.T) {
	items, twin := clusterVectors(3000, 64, 1)
	t0 := time.Now()
	exact, err := SemDeDup(items, DedupConfig{Threshold: 0.95, ExactBelow: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	tExact := time.Since(t0)
	t0 = time.Now()
	cfg := DedupConfig{Threshold: 0.95, ExactBelow: 1, Seed: 3}
	lsh, err := SemDeDup(items, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tLSH := time.Since(t0)
	t.Logf("%d items, %d planted near copies: exact drops %d in %v, LSH (%d bands of %d bits) drops %d in %v",
		len(items), len(twin), len(exact), tExact, cfg.withDefaults().Bands, cfg.withDefaults().Bits, len(lsh), tLSH)
	if len(exact) != len(twin) {
		t.Fatalf("exact dropped %d, planted %d", len(exact), len(twin))
	}
	for _, d := range exact {
		if twin[d.ID] != d.Survivor || d.Similarity < 0.95 {
			t.Fatalf("exact drop %+v", d)
		}
	}
	// LSH verifies every candidate, so it never drops more; at the
	// default bands it finds ≥ 99% of the pairs at the threshold, and
	// these are above it.
	if !slices.Equal(exact, lsh) {
		found := 0
		for _, d := range lsh {
			if twin[d.ID] == d.Survivor {
				found++
			}
		}
		if len(lsh) > len(exact) || float64(found) < 0.99*float64(len(exact)) {
			t.Fatalf("LSH dropped %d (%d planted found), exact %d", len(lsh), found, len(exact))
		}
	}
	// Deterministic.
	again, _ := SemDeDup(items, cfg)
	if !slices.Equal(again, lsh) {
		t.Fatal("LSH result differs between runs")
	}
}

func TestSemDeDupKeepPolicies(t *testing.T) {
	v := []float32{1, 0, 0}
	w := []float32{0.999, 0.04, 0}
	q := func(x float64) *float64 { return &x }
	items := []DedupItem{
		{ID: "c", Vec: v, Quality: nil, Length: 9},
		{ID: "a", Vec: w, Quality: q(0.1), Length: 5},
		{ID: "b", Vec: v, Quality: q(0.9), Length: 3},
		{ID: "z", Vec: []float32{0, 1, 0}, Length: 100}, // distinct
	}
	for keep, want := range map[string]string{"smallest_id": "a", "quality": "b", "longest": "c"} {
		dups, err := SemDeDup(items, DedupConfig{Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		if len(dups) != 2 {
			t.Fatalf("%s: %+v", keep, dups)
		}
		for _, d := range dups {
			if d.Survivor != want || d.ID == want || d.ID == "z" {
				t.Fatalf("%s: %+v, want survivor %s", keep, dups, want)
			}
		}
	}
	if _, err := SemDeDup(items, DedupConfig{Keep: "newest"}); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if _, err := SemDeDup([]DedupItem{{ID: "a", Vec: v}, {ID: "b", Vec: w[:2]}}, DedupConfig{}); err == nil {
		t.Fatal("mixed dimensions accepted")
	}
}

func TestBandsFor(t *testing.T) {
	for _, th := range []float64{0.8, 0.9, 0.95} {
		b := bandsFor(th, 12, 0.99)
		t.Logf("threshold %.2f: %d bands of 12 bits", th, b)
		if b < 1 || b > 64 {
			t.Fatal(b)
		}
	}
}

// TestSemDeDupFailingItemsRankLast: an item marked Fails (a later check
// drops it) is ranked after every item that passes, whatever the policy,
// so a pair keeps the member that will be written (as exact and fuzzy
// dedup pick survivors among the members that pass later filters).
func TestSemDeDupFailingItemsRankLast(t *testing.T) {
	v := []float32{1, 2, 3}
	q := func(x float64) *float64 { return &x }
	for _, keep := range []string{"smallest_id", "longest", "quality"} {
		items := []DedupItem{
			{ID: "a", Vec: v, Fails: true, Length: 100, Quality: q(1)},
			{ID: "b", Vec: v, Length: 10, Quality: q(0)},
		}
		dups, err := SemDeDup(items, DedupConfig{Threshold: 0.9, Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		if len(dups) != 1 || dups[0].ID != "a" || dups[0].Survivor != "b" {
			t.Errorf("keep %s: %+v, want a dropped for b (a fails a later check)", keep, dups)
		}
	}
}
