package pipelines

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestSurvivorPassesLaterFilter: a duplicate cluster whose smallest member
// fails a filter further down the recipe keeps a member that passes it,
// for exact and fuzzy dedup alike (before, the smallest id survived the
// dedup and the filter then dropped it: the cluster lost every member).
func TestSurvivorPassesLaterFilter(t *testing.T) {
	answer := "Jupiter is the largest planet in the solar system by both mass and volume, more than twice all the others together."
	prompt := "Which planet is the largest in the solar system, and by how much?"
	// Exact duplicates after normalisation: the same words, one with its
	// spaces doubled (longer in characters, so a length rule drops it).
	padded := strings.ReplaceAll(answer, " ", "  ")
	// Make the padded copy the one with the smaller id: try prompt
	// variants until its id sorts first.
	var p string
	for i := 0; ; i++ {
		p = fmt.Sprintf("%s (%d)", prompt, i)
		a := datasets.ContentID([]datasets.Message{{Role: "user", Content: p}, {Role: "assistant", Content: padded}})
		b := datasets.ContentID([]datasets.Message{{Role: "user", Content: p}, {Role: "assistant", Content: answer}})
		if a < b {
			break
		}
	}
	line := func(q, a string) string { return fmt.Sprintf(`{"prompt":%q,"completion":%q}`, q, a) }
	for _, stage := range []string{"exact_dedup", "fuzzy_dedup: {threshold: 0.7}"} {
		t.Run(strings.Fields(stage)[0], func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(line(p, padded)+"\n"+line(p, answer)+"\n"), 0o644)
			yaml := fmt.Sprintf(`name: s
sources: [{name: s, path: in.jsonl}]
stages:
  - %s
  - filter: {length: {response: {max_chars: %d}}}
`, stage, len(answer)+5)
			res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
			if f := res.Manifest.Funnel; f.Read != 2 || f.Written != 1 {
				t.Fatalf("a cluster with a passing member wrote %d of %d: %+v", f.Written, f.Read, f.Stages)
			}
			// The dry run predicts the same survivor.
			r, err := recipe.Load(filepath.Join(dir, "recipe.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			pred, err := Predict(context.Background(), r, datasets.Store{Root: filepath.Join(dir, "dry")}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if pred.Funnel.Written != 1 {
				t.Errorf("dry run predicts %d written, the run wrote 1", pred.Funnel.Written)
			}
		})
	}
}

// TestKeepQualityUsesTheJudgeScore: with a judge before it, fuzzy dedup's
// keep: quality keeps the member the judge scored highest (the judge's
// score on [0, 1] is the sample's quality), not the smallest id.
func TestKeepQualityUsesTheJudgeScore(t *testing.T) {
	prompt := "Explain in a few sentences why the sky looks blue on a clear day."
	good := "Sunlight is made of many colours. Air molecules scatter the short blue wavelengths far more than the long red ones (Rayleigh scattering), so blue light reaches our eyes from every direction of the sky, and the sky looks blue."
	poor := "Sunlight is made of many colours. Air molecules scatter the short blue wavelengths"
	yaml := `name: q
sources: [{name: s, path: in.jsonl}]
stages:
  - judge: {heuristic: true, threshold: {min_score: 0}}
  - fuzzy_dedup: {threshold: 0.3, keep: quality, key: conversation}
`
	// The poorer answer gets the smaller id, so that smallest-id order
	// alone would keep it.
	id := func(a string) string {
		return datasets.ContentID([]datasets.Message{{Role: "user", Content: prompt}, {Role: "assistant", Content: a}})
	}
	for id(poor) > id(good) {
		poor += " indeed"
	}
	dir := t.TempDir()
	line := func(q, a string) string { return fmt.Sprintf(`{"prompt":%q,"completion":%q}`, q, a) }
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(line(prompt, good)+"\n"+line(prompt, poor)+"\n"), 0o644)
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	if f := res.Manifest.Funnel; f.Written != 1 {
		t.Fatalf("wrote %d, want the cluster's best: %+v", f.Written, f.Stages)
	}
	v, err := datasets.Store{Root: filepath.Join(dir, "store")}.OpenVersion(t.Context(), datasets.Ref{Name: "q", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	v.ReadSamples(t.Context(), func(_ string, s *datasets.Sample) error {
		if s.Quality == nil || s.JudgeScore == nil {
			t.Errorf("survivor has no quality: %+v", s)
		}
		if s.Messages[1].Content != good {
			t.Errorf("survivor is not the better answer: %.60s", s.Messages[1].Content)
		}
		return nil
	})
}
