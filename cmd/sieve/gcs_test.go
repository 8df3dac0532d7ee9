package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/internal/arrowcheck"
	"github.com/sieve-data/sieve/pipelines"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// fakeGCS is an in-process GCS server (fake-gcs-server) on a loopback
// port, which sieve's storage clients reach through STORAGE_EMULATOR_HOST
// (cloud.google.com/go/storage's emulator setting: plain HTTP, no
// credentials), in this process and in the sieve binary it starts. It
// counts the bytes of object bodies it serves, by object, and can run a
// hook before an object upload goes through.
type fakeGCS struct {
	srv *fakestorage.Server
	url string

	mu       sync.Mutex
	served   map[string]int64 // object name -> body bytes served
	onUpload func(object string)
}

func newFakeGCS(t *testing.T, buckets ...string) *fakeGCS {
	t.Helper()
	f := &fakeGCS{served: map[string]int64{}}
	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(handler, w, r)
	}))
	t.Cleanup(ts.Close)
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		ExternalURL: ts.URL,
		PublicHost:  ts.Listener.Addr().String(), // the XML API's object reads
		Writer:      io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	handler = srv.HTTPHandler()
	f.srv, f.url = srv, ts.URL
	t.Setenv("STORAGE_EMULATOR_HOST", ts.URL)
	return f
}

// uploadName finds the object name of an upload's metadata.
var uploadName = regexp.MustCompile(`"name"\s*:\s*"([^"]+)"`)

func (f *fakeGCS) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		name := r.URL.Query().Get("name")
		if m := uploadName.FindSubmatch(body); name == "" && m != nil {
			name = string(m[1])
		}
		f.mu.Lock()
		hook := f.onUpload
		f.mu.Unlock()
		if hook != nil && name != "" {
			hook(name)
		}
	}
	object := ""
	switch {
	case r.Method != http.MethodGet:
	case r.URL.Query().Get("alt") == "media": // JSON API: /storage/v1/b/B/o/O?alt=media
		if _, o, ok := strings.Cut(r.URL.Path, "/o/"); ok {
			object = o
		}
	case !strings.HasPrefix(r.URL.Path, "/storage/") && !strings.HasPrefix(r.URL.Path, "/upload/"): // XML API: /B/O
		if parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2); len(parts) == 2 {
			object = parts[1]
		}
	}
	if object == "" {
		h.ServeHTTP(w, r)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	h.ServeHTTP(cw, r)
	f.mu.Lock()
	f.served[object] += cw.n
	f.mu.Unlock()
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// put uploads an object.
func (f *fakeGCS) put(bucket, name string, data []byte) {
	f.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: name}, Content: data})
}

// get reads an object straight from the server's backend.
func (f *fakeGCS) get(t *testing.T, bucket, name string) []byte {
	t.Helper()
	obj, err := f.srv.GetObject(bucket, name)
	if err != nil {
		t.Fatalf("gs://%s/%s: %v", bucket, name, err)
	}
	return obj.Content
}

// servedBytes returns the body bytes served of objects whose name has
// the prefix.
func (f *fakeGCS) servedBytes(prefix string) map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for o, n := range f.served {
		if strings.HasPrefix(o, prefix) && n > 0 {
			out[o] = n
		}
	}
	return out
}

// uploadSamples puts the bundled sample files under gs://bucket/prefix/.
func (f *fakeGCS) uploadSamples(t *testing.T, bucket, prefix string) {
	t.Helper()
	files, err := filepath.Glob("../../datasets/samples/*.*")
	if err != nil || len(files) == 0 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f.put(bucket, prefix+filepath.Base(file), data)
	}
}

// gcsDemoRecipe is the demo recipe with its sources on gs:// (JSONL, a
// JSON array, a .gz, a .zst, a glob over Parquet and JSONL).
func gcsDemoRecipe(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "../../datasets/samples/", src)
	if strings.Count(text, src) != 6 {
		t.Fatalf("the demo recipe's sources moved: %d gs:// paths", strings.Count(text, src))
	}
	file := filepath.Join(t.TempDir(), "demo.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestGCSEndToEnd runs the demo recipe with its sources and its store on
// gs:// (a fake GCS server), then lists, inspects and verifies the
// version there and reads its shards back with Apache Arrow. While the
// manifest of a version is being uploaded, every shard must be there
// already and a reader listing versions must not yet see the version.
func TestGCSEndToEnd(t *testing.T) {
	t.Setenv("SIEVE_DEMO_API_KEY", "")
	gcs := newFakeGCS(t, "bucket")
	gcs.uploadSamples(t, "bucket", "src/")
	recipe := gcsDemoRecipe(t, "gs://bucket/src/")
	store := datasets.Store{Root: "gs://bucket/store"}

	type seen struct {
		object     string
		versions   []string
		incomplete []string
		err        error
	}
	var (
		mu      sync.Mutex
		commits []seen
	)
	gcs.onUpload = func(object string) {
		if !strings.HasPrefix(object, "store/demo/v") || !strings.HasSuffix(object, "/"+datasets.ManifestFile) {
			return
		}
		// A reader looking at the store while the manifest is on its way.
		ctx := context.Background()
		s := seen{object: object}
		s.versions, s.err = store.Versions(ctx, "demo")
		if s.err == nil {
			s.incomplete, s.err = store.Incomplete(ctx, "demo")
		}
		mu.Lock()
		commits = append(commits, s)
		mu.Unlock()
	}

	r := sieve(t, "run", recipe, "--store", store.Root, "--quiet")
	if r.code != 0 {
		t.Fatalf("run on gs://: exit %d\n%s", r.code, r.stderr)
	}
	mu.Lock()
	if len(commits) != 1 {
		t.Fatalf("manifest uploads seen: %+v", commits)
	}
	c := commits[0]
	mu.Unlock()
	if c.err != nil {
		t.Fatalf("listing mid-commit: %v", c.err)
	}
	if c.object != "store/demo/v1/manifest.json" || len(c.versions) != 0 || strings.Join(c.incomplete, ",") != "v1" {
		t.Errorf("mid-commit of %s a reader saw versions %v and directories without manifest %v; want none and [v1] (the shards before the manifest)",
			c.object, c.versions, c.incomplete)
	}

	var m datasets.Manifest
	if err := json.Unmarshal(gcs.get(t, "bucket", "store/demo/v1/manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Funnel.Read != 319 || m.Totals.Rows != 276 {
		t.Errorf("funnel read %d, rows %d; want the demo's 319 and 276", m.Funnel.Read, m.Totals.Rows)
	}
	var rows int64
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			data := gcs.get(t, "bucket", "store/demo/v1/"+sh.Path)
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != sh.SHA256 {
				t.Errorf("%s: sha256 differs from the manifest's", sh.Path)
			}
			info, err := arrowcheck.Inspect(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("arrow reads %s: %v", sh.Path, err)
			}
			if info.Rows != sh.Rows || !strings.Contains(info.MessagesType, "role") {
				t.Errorf("%s: arrow reads %d rows of messages %q; manifest says %d", sh.Path, info.Rows, info.MessagesType, sh.Rows)
			}
			rows += info.Rows
		}
	}
	if rows != m.Totals.Rows {
		t.Errorf("arrow read %d rows in all, manifest says %d", rows, m.Totals.Rows)
	}
	for _, in := range m.Inputs {
		if !strings.HasPrefix(in.File, "gs://bucket/src/") || !strings.HasPrefix(in.Checksum, "gcs:crc32c=") {
			t.Errorf("input %s: checksum %q; want the object's stored one", in.File, in.Checksum)
		}
	}
	for _, f := range []string{"README.md", "dead_letters.jsonl", "rejected.jsonl"} {
		if len(gcs.get(t, "bucket", "store/demo/v1/"+f)) == 0 {
			t.Errorf("%s is empty", f)
		}
	}

	out := sieve(t, "datasets", "list", "--store", store.Root)
	if out.code != 0 || !strings.Contains(out.stdout, "demo") || !strings.Contains(out.stdout, "v1") || !strings.Contains(out.stdout, "276") {
		t.Errorf("datasets list: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	out = sieve(t, "inspect", "demo@latest", "--store", store.Root, "-n", "1")
	if out.code != 0 || !strings.Contains(out.stdout, "276") {
		t.Errorf("inspect: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	out = sieve(t, "datasets", "verify", "demo@v1", "--store", store.Root)
	if out.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}

	// An unchanged recipe is recognised on gs:// too.
	r = sieve(t, "run", recipe, "--store", store.Root)
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "up to date") {
		t.Errorf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A damaged shard is named by verify.
	sh := m.Splits[0].Shards[0]
	damaged := append([]byte(nil), gcs.get(t, "bucket", "store/demo/v1/"+sh.Path)...)
	damaged[len(damaged)/2] ^= 0xff
	gcs.put("bucket", "store/demo/v1/"+sh.Path, damaged)
	out = sieve(t, "datasets", "verify", "demo@v1", "--store", store.Root)
	if out.code != 1 || !strings.Contains(out.stdout+out.stderr, sh.Path) {
		t.Errorf("verify of a damaged shard: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
}

// TestGCSPlanReadsNoObjectBodies plans the demo recipe on gs:// sources:
// the inputs' checksums come from the objects' stored CRC32C, MD5 and
// generation, so the fake server serves no byte of any source object,
// and rewriting one object changes its checksum and the content id.
func TestGCSPlanReadsNoObjectBodies(t *testing.T) {
	t.Setenv("SIEVE_DEMO_API_KEY", "")
	gcs := newFakeGCS(t, "bucket")
	gcs.uploadSamples(t, "bucket", "src/")
	r, err := recipe.Load(gcsDemoRecipe(t, "gs://bucket/src/"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store := datasets.Store{Root: "gs://bucket/store"}
	plan, err := pipelines.NewPlan(ctx, r, store)
	if err != nil {
		t.Fatal(err)
	}
	if served := gcs.servedBytes("src/"); len(served) > 0 {
		t.Errorf("planning read source object bodies (bytes by object): %v", served)
	}
	if len(plan.Inputs) != 7 {
		t.Fatalf("inputs: %+v", plan.Inputs)
	}
	sums := map[string]string{}
	for _, in := range plan.Inputs {
		data := gcs.get(t, "bucket", strings.TrimPrefix(in.File, "gs://bucket/"))
		if in.Bytes != int64(len(data)) || !regexp.MustCompile(`^gcs:crc32c=[0-9a-f]{8},generation=\d+,md5=[0-9a-f]{32}$`).MatchString(in.Checksum) {
			t.Errorf("%s: %d bytes (object has %d), checksum %q", in.File, in.Bytes, len(data), in.Checksum)
		}
		sums[in.File] = in.Checksum
	}

	changed := "gs://bucket/src/alpaca.jsonl"
	data := append(gcs.get(t, "bucket", "src/alpaca.jsonl"), []byte(`{"instruction": "One more", "output": "record."}`+"\n")...)
	gcs.put("bucket", "src/alpaca.jsonl", data)
	again, err := pipelines.NewPlan(ctx, r, store)
	if err != nil {
		t.Fatal(err)
	}
	if again.ContentID == plan.ContentID {
		t.Errorf("content id unchanged after %s was rewritten", changed)
	}
	for _, in := range again.Inputs {
		if (in.Checksum != sums[in.File]) != (in.File == changed) {
			t.Errorf("%s: checksum %q, was %q", in.File, in.Checksum, sums[in.File])
		}
	}
	if served := gcs.servedBytes("src/"); len(served) > 0 {
		t.Errorf("planning read source object bodies (bytes by object): %v", served)
	}
}

// putTree uploads a local directory's files under gs://bucket/prefix/.
func (f *fakeGCS) putTree(t *testing.T, dir, bucket, prefix string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f.put(bucket, prefix+filepath.ToSlash(rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGCSAgainstTrainAndCard: on a gs:// store, a recipe's
// fuzzy_dedup drops the near duplicates of a stored version
// (against: [sums@v1], its index built from the version's shards on
// gs://); the committed version has its dataset card (README.md) naming
// it; and 'sieve train --data' trains from the gs:// version.
func TestGCSAgainstTrainAndCard(t *testing.T) {
	gcs := newFakeGCS(t, "bucket")
	dir := t.TempDir()
	local := filepath.Join(dir, "local")
	commitVersion(t, local, "sums", map[string][][]datasets.Message{"train": distinctSums(64, 0), "test": distinctSums(12, 100)})
	gcs.putTree(t, filepath.Join(local, "sums"), "bucket", "store/sums/")
	store := "gs://bucket/store"

	// Ten samples: five the same as sums@v1's, five new (words, not
	// numbers: fuzzy dedup folds digits).
	var src bytes.Buffer
	old := distinctSums(5, 0)
	fresh := [][]datasets.Message{}
	for _, q := range []string{"Name a colour of the sky at dusk over the sea.", "Which animal sleeps hanging upside down in caves?",
		"Why do leaves change their colour every autumn?", "How does a lighthouse keeper signal passing ships?",
		"What makes bread rise before it is baked?"} {
		fresh = append(fresh, []datasets.Message{{Role: "user", Content: q}, {Role: "assistant", Content: "A short answer about: " + q}})
	}
	for _, msgs := range append(old, fresh...) {
		line, _ := json.Marshal(map[string]string{"prompt": msgs[0].Content, "completion": msgs[1].Content})
		src.Write(append(line, '\n'))
	}
	gcs.put("bucket", "src/more.jsonl", src.Bytes())
	recipe := filepath.Join(dir, "more.yaml")
	os.WriteFile(recipe, []byte(`name: more
sources: [{name: more, path: gs://bucket/src/more.jsonl}]
stages:
  - fuzzy_dedup: {threshold: 0.7, against: [sums@v1]}
`), 0o644)
	r := sieve(t, "run", recipe, "--store", store, "--quiet")
	if r.code != 0 {
		t.Fatalf("run on gs://: exit %d\n%s", r.code, r.stderr)
	}
	var m datasets.Manifest
	if err := json.Unmarshal(gcs.get(t, "bucket", "store/more/v1/manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Funnel.Read != 10 || m.Totals.Rows != 5 {
		t.Errorf("against sums@v1 on gs://: read %d, kept %d rows; want 10 read and the 5 stored ones dropped", m.Funnel.Read, m.Totals.Rows)
	}
	card := string(gcs.get(t, "bucket", "store/more/v1/"+datasets.CardFile))
	if !strings.Contains(card, "# more v1") || !strings.Contains(card, "--data more@v1") {
		t.Errorf("the card does not name the version:\n%s", card)
	}

	cfg := tinyConfig(t, dir, 2, 128)
	out := filepath.Join(dir, "run")
	r = sieve(t, "train", "--store", store, "--data", "sums@latest", "--init", cfg, "--vocab-size", "300",
		"--epochs", "1", "--seq-len", "96", "--batch-size", "4", "--lr", "1e-2", "--output", out)
	if r.code != 0 {
		t.Fatalf("train from gs://: exit %d\n%s", r.code, r.stderr)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*")); len(files) == 0 {
		t.Errorf("train from gs:// wrote nothing to %s", out)
	}
}

// distinctSums is n additions, each its own (sums repeats after ten).
func distinctSums(n, offset int) [][]datasets.Message {
	out := make([][]datasets.Message, n)
	for i := range out {
		a, b := i+offset, 3*i+offset+7
		out[i] = []datasets.Message{
			{Role: "user", Content: fmt.Sprintf("What is %d + %d?", a, b)},
			{Role: "assistant", Content: fmt.Sprintf("%d plus %d is %d.", a, b, a+b)},
		}
	}
	return out
}
