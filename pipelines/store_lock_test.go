package pipelines

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestStoreRebuildsADamagedVersion: a version with a shard deleted is
// not "up to date"; the run says what is missing and commits anew.
func TestStoreRebuildsADamagedVersion(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	first := runRecipe(t, dir, fixtureRecipe, store)
	gone := first.Manifest.Splits[0].Shards[0].Path
	if err := os.Remove(filepath.Join(first.Dir, gone)); err != nil {
		t.Fatal(err)
	}
	var notices []string
	res := runRecipeOpt(t, dir, fixtureRecipe, Options{Store: store, Notice: func(s string) { notices = append(notices, s) }})
	if res.UpToDate {
		t.Fatalf("%s@%s called up to date with %s deleted", res.Manifest.Name, res.Manifest.Version, gone)
	}
	if !strings.Contains(strings.Join(notices, "\n"), gone) {
		t.Errorf("notices %q do not name %s", notices, gone)
	}
	if res.Manifest.ContentID != first.Manifest.ContentID || res.Manifest.Version != "v2" {
		t.Errorf("rebuilt as %s, content id %s (want v2, %s)", res.Manifest.Version, res.Manifest.ContentID, first.Manifest.ContentID)
	}
}

// TestStoreConcurrentRunsOfARecipeCommitOnce: two runs of one recipe at
// once commit one version; the other finds it and is up to date.
func TestStoreConcurrentRunsOfARecipeCommitOnce(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(fixtureRecipe), 0o644)
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := recipe.Load(path)
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = Run(context.Background(), r, Options{Store: store})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	vs, _ := datasets.Store{Root: store}.Versions(context.Background(), "unit")
	if len(vs) != 1 || results[0].UpToDate == results[1].UpToDate {
		t.Errorf("versions %v, up to date %v and %v; want one version, one run up to date", vs, results[0].UpToDate, results[1].UpToDate)
	}
}

// TestLineageRecordsParentContentIDs: a child records its parent by name
// and content id.
func TestLineageRecordsParentContentIDs(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	parent := runRecipe(t, dir, fixtureRecipe, store)
	c := runRecipe(t, dir, "name: child\nsources:\n  - {name: up, dataset: unit}\n", store)
	if got, ok := c.Manifest.ParentContentID("unit@v1"); !ok || got != parent.Manifest.ContentID {
		t.Errorf("recorded parent content id %q %v, want %s", got, ok, parent.Manifest.ContentID)
	}
	if c.Manifest.SieveBuild == "" {
		t.Error("no sieve_build in the manifest")
	}
}
