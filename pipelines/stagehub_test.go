package pipelines

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/hub/hubtest"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestStageHub: with --stage_hub gs://bucket/hub, a Hub source is copied
// to the (fake) GCS server once, under its pinned commit and sha256, the
// plan reads it from there, a second plan copies nothing (the object's
// generation is unchanged), and the run reads the staged copy into the
// same samples, named by the pinned hf:// URL.
func TestStageHub(t *testing.T) {
	srv := hubtest.NewServer()
	defer srv.Close()
	data := []byte("{\"prompt\":\"Hi\",\"completion\":\"Hello there.\"}\n{\"prompt\":\"Sum 2 and 2\",\"completion\":\"4\"}\nnot json\n")
	sha := srv.Commit("acme/chat", "main", hubtest.File{Path: "data/train.jsonl", LFS: true, Data: data})
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", t.TempDir())

	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer ts.Close()
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, Scheme: "http",
		ExternalURL: ts.URL, PublicHost: ts.Listener.Addr().String(), Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Stop()
	handler = gcs.HTTPHandler()
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "bucket"})
	t.Setenv("STORAGE_EMULATOR_HOST", ts.URL)

	if err := flag.Set("stage_hub", "gs://bucket/hub"); err != nil {
		t.Fatalf("--stage_hub: %v", err)
	}
	defer flag.Set("stage_hub", "")

	dir := t.TempDir()
	yaml := "name: h\nsources:\n  - {name: hub, path: \"hf://datasets/acme/chat/data/*.jsonl\", license: mit}\n"
	file := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plan, err := NewPlan(ctx, r, datasets.Store{Root: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	object := "hub/acme/chat@" + sha + "/" + hubtest.SHA256(data) + "/train.jsonl"
	if len(plan.Tasks) == 0 || len(plan.Tasks[0].Files) != 1 || plan.Tasks[0].Files[0] != "gs://bucket/"+object {
		t.Fatalf("plan reads %+v; want gs://bucket/%s", plan.Tasks, object)
	}
	obj, err := gcs.GetObject("bucket", object)
	if err != nil || string(obj.Content) != string(data) {
		t.Fatalf("staged object: %v (%d bytes)", err, len(obj.Content))
	}
	if _, err := NewPlan(ctx, r, datasets.Store{Root: filepath.Join(dir, "store")}); err != nil {
		t.Fatal(err)
	}
	again, _ := gcs.GetObject("bucket", object)
	if again.Generation != obj.Generation {
		t.Errorf("a second plan copied the file again (generation %d, was %d)", again.Generation, obj.Generation)
	}

	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	m := res.Manifest
	if m.Funnel.Read != 3 || m.Funnel.Written != 2 || m.Funnel.DeadLettered != 1 {
		t.Fatalf("funnel = %+v", m.Funnel)
	}
	want := "hf://datasets/acme/chat@" + sha + "/data/train.jsonl"
	if len(m.Inputs) != 1 || m.Inputs[0].File != want || !strings.HasPrefix(m.Inputs[0].Checksum, "gcs:") {
		t.Errorf("inputs = %+v, want the file %s read from its gs:// copy", m.Inputs, want)
	}
}
