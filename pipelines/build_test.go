package pipelines

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestBuildErrorNamesStage: a plan with a stage that has no transform
// makes Build return an error naming the stage (it used to panic).
func TestBuildErrorNamesStage(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	path := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(fixtureRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r.Stages = append(r.Stages, recipe.Stage{Kind: "no_such_stage", Line: 7, Config: &recipe.Filter{}})
	plan, err := NewPlan(context.Background(), r, datasets.Store{Root: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	p, names, err := Build(plan, t.TempDir())
	if err == nil {
		t.Fatalf("Build made a pipeline (%v, stages %v) of a stage with no transform", p, names)
	}
	if !strings.Contains(err.Error(), "no_such_stage") {
		t.Errorf("error %q does not name the stage", err)
	}
}
