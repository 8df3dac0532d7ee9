package pipelines

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// TestFuzzyDedupMatchesBruteForce plants chains of near duplicates (each
// link edits one word, so the ends of a chain can be less similar than the
// threshold while the chain is one cluster), runs fuzzy dedup on prism and
// compares the clusters with the brute-force answer: exact Jaccard of all
// pairs, then connected components in memory.
func TestFuzzyDedupMatchesBruteForce(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	words := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega river stone cloud paper garden window bridge candle forest harbor")
	doc := func() []string {
		w := make([]string, 70)
		for i := range w {
			w[i] = words[rng.Intn(len(words))] + fmt.Sprint(rng.Intn(50))
		}
		return w
	}
	type rec struct{ prompt, answer string }
	var recs []rec
	for c := 0; c < 6; c++ {
		base := doc()
		for k := 0; k < 5; k++ {
			recs = append(recs, rec{fmt.Sprintf("Question %d", c), strings.Join(base, " ")})
			base = append([]string(nil), base...)
			base[rng.Intn(len(base))] = "edited" + fmt.Sprint(rng.Intn(1000))
			base[rng.Intn(len(base))] = "edited" + fmt.Sprint(rng.Intn(1000))
		}
	}
	for i := 0; i < 30; i++ {
		recs = append(recs, rec{fmt.Sprintf("Other %d", i), strings.Join(doc(), " ")})
	}
	f, _ := os.Create(filepath.Join(dir, "in.jsonl"))
	w := bufio.NewWriter(f)
	var samples []datasets.Sample
	for _, r := range recs {
		b, _ := json.Marshal(map[string]string{"prompt": r.prompt, "completion": r.answer})
		w.Write(append(b, '\n'))
		msgs := []datasets.Message{{Role: "user", Content: r.prompt}, {Role: "assistant", Content: r.answer}}
		samples = append(samples, datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs})
	}
	w.Flush()
	f.Close()

	// Brute force.
	tc := dedup.DefaultTextConfig()
	sets := make([][]uint64, len(samples))
	for i := range samples {
		sets[i] = dedup.SortedSet(tc.Shingles(dedup.SampleText(samples[i].Messages, dedup.KeyConversation)))
	}
	var edges [][2]string
	for i := range samples {
		for j := i + 1; j < len(samples); j++ {
			if dedup.SortedJaccard(sets[i], sets[j]) >= 0.7 {
				edges = append(edges, [2]string{samples[i].ID, samples[j].ID})
			}
		}
	}
	want := dedup.Components(edges) // id → smallest id of its cluster
	wantDropped := 0
	for id, label := range want {
		if id != label {
			wantDropped++
		}
	}
	if wantDropped < 15 {
		t.Fatalf("fixture too weak: brute force finds %d duplicates", wantDropped)
	}

	res := runRecipe(t, dir, "name: fz\nsources: [{name: s, path: in.jsonl}]\nstages:\n  - fuzzy_dedup: {threshold: 0.7, key: conversation}\n", filepath.Join(dir, "store"))
	f2, err := os.Open(filepath.Join(res.Dir, "rejected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	dec := json.NewDecoder(f2)
	got := 0
	for {
		var r datasets.Rejected
		if err := dec.Decode(&r); err != nil {
			break
		}
		got++
		if r.Reason != "near_duplicate" || want[r.Sample.ID] != r.Survivor || r.Sample.ID == r.Survivor {
			t.Errorf("dropped %s with survivor %s; brute force puts it in the cluster of %s", r.Sample.ID, r.Survivor, want[r.Sample.ID])
		}
	}
	if got != wantDropped || res.Manifest.Funnel.Written != int64(len(samples)-wantDropped) {
		t.Errorf("dropped %d, written %d; brute force drops %d of %d", got, res.Manifest.Funnel.Written, wantDropped, len(samples))
	}
}
