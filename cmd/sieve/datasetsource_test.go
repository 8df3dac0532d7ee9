package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTwoCheckoutsDatasetSource: a recipe whose source is an earlier
// version (dataset: demo@v1), run in two checkouts of the recipes and
// their store at different places, writes the same bytes; samples and
// the manifest name the version's shards by dataset name and content id,
// never by the store's path.
func TestTwoCheckoutsDatasetSource(t *testing.T) {
	samples, _ := filepath.Glob("../../datasets/samples/*")
	const derived = "name: derived\nsources:\n  - {name: base, dataset: demo@v1}\nstages:\n  - exact_dedup: {key: prompt}\n"
	var runs []map[string][]byte
	for _, home := range []string{filepath.Join(t.TempDir(), "home", "alice", "proj"), filepath.Join(t.TempDir(), "srv", "bob-clone")} {
		copyFile(t, demo, filepath.Join(home, "pipelines", "recipes", "demo.yaml"))
		for _, f := range samples {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				copyFile(t, f, filepath.Join(home, "datasets", "samples", filepath.Base(f)))
			}
		}
		rec := filepath.Join(home, "pipelines", "recipes", "derived.yaml")
		if err := os.WriteFile(rec, []byte(derived), 0o644); err != nil {
			t.Fatal(err)
		}
		store := filepath.Join(home, "store")
		for _, r := range []string{"demo.yaml", "derived.yaml"} {
			if res := sieve(t, "run", filepath.Join(home, "pipelines", "recipes", r), "--store", store, "--quiet"); res.code != 0 {
				t.Fatalf("%s: exit %d: %s", r, res.code, res.stderr)
			}
		}
		dir := filepath.Join(store, "derived", "v1")
		m := readManifest(t, dir)
		if len(m.Inputs) == 0 {
			t.Fatal("no inputs")
		}
		for _, in := range m.Inputs {
			if strings.Contains(in.File, home) || !strings.HasPrefix(in.File, "dataset:demo@") {
				t.Errorf("manifest input %s, want dataset:demo@CONTENT_ID/…", in.File)
			}
		}
		files := versionFiles(t, dir)
		for name, b := range files {
			if strings.Contains(string(b), home) {
				t.Errorf("%s names the checkout %s", name, home)
			}
		}
		runs = append(runs, files)
	}
	sameFiles(t, "two checkouts, dataset: source", runs[0], runs[1])
}
