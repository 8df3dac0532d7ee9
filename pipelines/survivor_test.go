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
