package pipelines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/hub/hubtest"
)

// TestHubSource reads a dataset from a local server that speaks the Hub's
// HTTP API: files are resolved at the commit the branch names, downloaded
// through the CDN redirect into the cache, named by commit-pinned hf://
// URLs in samples and the manifest, and not downloaded again on a rerun.
func TestHubSource(t *testing.T) {
	srv := hubtest.NewServer()
	defer srv.Close()
	sha := srv.Commit("acme/chat", "main",
		hubtest.File{Path: "data/train.jsonl", LFS: true, Data: []byte(`{"prompt":"Hi","completion":"Hello there."}
{"prompt":"Sum 2 and 2","completion":"4"}
not json
`)},
		hubtest.File{Path: "README.md", Data: []byte("# card\n")})
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", t.TempDir())
	dir := t.TempDir()
	yaml := "name: h\nsources:\n  - {name: hub, path: \"hf://datasets/acme/chat/data/*.jsonl\", license: mit}\n"
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	m := res.Manifest
	if m.Funnel.Read != 3 || m.Funnel.Written != 2 || m.Funnel.DeadLettered != 1 {
		t.Fatalf("funnel = %+v", m.Funnel)
	}
	want := "hf://datasets/acme/chat@" + sha + "/data/train.jsonl"
	if len(m.Inputs) != 1 || m.Inputs[0].File != want {
		t.Errorf("inputs = %+v, want the file %s", m.Inputs, want)
	}
	dead, _ := os.ReadFile(filepath.Join(res.Dir, "dead_letters.jsonl"))
	if !strings.Contains(string(dead), want) {
		t.Errorf("dead letter does not name the pinned URL: %s", dead)
	}
	cdn := 0
	for _, r := range srv.Requests() {
		if r.Host == "cdn" {
			cdn++
		}
	}
	runRecipeOpt(t, dir, yaml, Options{Store: filepath.Join(dir, "store"), Force: true})
	after := 0
	for _, r := range srv.Requests() {
		if r.Host == "cdn" {
			after++
		}
	}
	if cdn == 0 || after != cdn {
		t.Errorf("CDN downloads: %d, then %d after a rerun (want no new download)", cdn, after)
	}
}
