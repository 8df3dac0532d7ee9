package transforms

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/sieve-data/sieve/datasets"
)

// gcsServer is an in-process fake GCS server (fake-gcs-server) that the
// storage clients in this process reach through STORAGE_EMULATOR_HOST.
// onUpload, when set, runs before an upload goes through, with the
// object's name.
type gcsServer struct {
	srv      *fakestorage.Server
	mu       sync.Mutex
	onUpload func(object string)
}

var gcsUploadName = regexp.MustCompile(`"name"\s*:\s*"([^"]+)"`)

func newGCSServer(t *testing.T, bucket string) *gcsServer {
	t.Helper()
	g := &gcsServer{}
	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			name := r.URL.Query().Get("name")
			if m := gcsUploadName.FindSubmatch(body); name == "" && m != nil {
				name = string(m[1])
			}
			g.mu.Lock()
			hook := g.onUpload
			g.mu.Unlock()
			if hook != nil && name != "" {
				hook(name)
			}
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true, Scheme: "http", ExternalURL: ts.URL,
		PublicHost: ts.Listener.Addr().String(), Writer: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	handler = srv.HTTPHandler()
	g.srv = srv
	t.Setenv("STORAGE_EMULATOR_HOST", ts.URL)
	return g
}

func (g *gcsServer) hook(f func(object string)) {
	g.mu.Lock()
	g.onUpload = f
	g.mu.Unlock()
}

// TestGCSConcurrentCommits commits two runs of one dataset to a gs://
// store at the same time, held so that both have looked for the next
// version number before either writes anything under the dataset. Each
// must get its own version number, with its own files, neither lost nor
// overwritten; and a reader listing versions while the commits upload
// never sees a version whose manifest or files are not all there.
func TestGCSConcurrentCommits(t *testing.T) {
	gcs := newGCSServer(t, "bucket")
	store := datasets.Store{Root: "gs://bucket/store"}
	ctx := context.Background()

	var (
		mu       sync.Mutex
		arrived  int
		both     = make(chan struct{})
		problems []string
	)
	gcs.hook(func(object string) {
		if !strings.HasPrefix(object, "store/ds/") || strings.Contains(object, "/_staging/") {
			return
		}
		// The first write under the dataset by each commit waits for the
		// other's (at most 5 s), so both chose a number before either
		// wrote.
		mu.Lock()
		arrived++
		n := arrived
		if n == 2 {
			close(both)
		}
		mu.Unlock()
		if n <= 2 {
			select {
			case <-both:
			case <-time.After(5 * time.Second):
			}
		}
		// A reader, mid-commit: every version it lists is whole.
		vs, err := store.Versions(ctx, "ds")
		if err != nil {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("while %s uploads: %v", object, err))
			mu.Unlock()
			return
		}
		for _, v := range vs {
			if p := checkVersion(ctx, store, v); p != "" {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("while %s uploads, listed %s: %s", object, v, p))
				mu.Unlock()
			}
		}
	})

	var wg sync.WaitGroup
	got := make([]string, 2)
	errs := make([]error, 2)
	for i, cid := range []string{"run-a", "run-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			staging := store.NewStaging("ds")
			if err := datasets.WriteFile(ctx, staging+"/data/part-0.bin", []byte(cid)); err != nil {
				errs[i] = err
				return
			}
			m := &datasets.Manifest{Name: "ds", ContentID: cid}
			got[i], errs[i] = store.Commit(ctx, staging, m)
		}()
	}
	wg.Wait()
	gcs.hook(nil)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if got[0] == got[1] {
		t.Errorf("both commits got %s", got[0])
	}
	vs, err := store.Versions(ctx, "ds")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(vs, ",") != "v1,v2" {
		t.Errorf("versions %v; want [v1 v2]", vs)
	}
	var cids []string
	for _, v := range vs {
		if p := checkVersion(ctx, store, v); p != "" {
			t.Errorf("%s: %s", v, p)
		}
		if m, err := store.ReadManifest(ctx, "ds", v); err == nil {
			cids = append(cids, m.ContentID)
		}
	}
	sort.Strings(cids)
	if strings.Join(cids, ",") != "run-a,run-b" {
		t.Errorf("content ids of the versions: %v; want both runs'", cids)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// checkVersion says what is wrong with a listed version of dataset ds:
// its manifest must read and name it, and its data file must hold the
// content id of its manifest (so no other commit's files overwrote it).
func checkVersion(ctx context.Context, store datasets.Store, v string) string {
	m, err := store.ReadManifest(ctx, "ds", v)
	if err != nil {
		return err.Error()
	}
	if m.Version != v {
		return fmt.Sprintf("manifest says %s", m.Version)
	}
	data, err := datasets.ReadFile(ctx, store.VersionDir("ds", v)+"/data/part-0.bin")
	if err != nil {
		return err.Error()
	}
	if string(data) != m.ContentID {
		return fmt.Sprintf("data holds %q, manifest's content id is %q", data, m.ContentID)
	}
	return ""
}

// TestGCSLock: a second run of a dataset on a gs:// store waits for the
// first's lock (an object created only if absent), and a lock left by a
// process of this host that is gone is broken.
func TestGCSLock(t *testing.T) {
	newGCSServer(t, "bucket")
	store := datasets.Store{Root: "gs://bucket/store"}
	ctx := context.Background()

	unlock, err := store.Lock(ctx, "ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	told := make(chan string, 1)
	locked := make(chan func(), 1)
	go func() {
		u, err := store.Lock(ctx, "ds", func(s string) { told <- s })
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		locked <- u
	}()
	select {
	case <-locked:
		t.Fatal("a second Lock of the dataset on gs:// went through while the first was held")
	case <-time.After(time.Second):
	}
	select {
	case s := <-told:
		if !strings.Contains(s, "gs://bucket/store/ds/_lock") {
			t.Errorf("waiting notice %q does not name the lock object", s)
		}
	default:
		t.Error("the waiting run was not told whom it waits for")
	}
	unlock()
	select {
	case u := <-locked:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the second Lock did not go through after the first was released")
	}

	// A lock of a dead process of this host (pid 2^22+1 is above Linux's
	// pid_max) is broken.
	host, _ := os.Hostname()
	if err := datasets.WriteFile(ctx, "gs://bucket/store/ds/_lock", []byte(fmt.Sprintf("4194305 %s %s\n", host, time.Now().UTC().Format(time.RFC3339)))); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u, err := store.Lock(lctx, "ds", nil)
	if err != nil {
		t.Fatalf("a dead process's lock was not broken: %v", err)
	}
	u()
	if _, err := datasets.ReadFile(ctx, "gs://bucket/store/ds/_lock"); err == nil {
		t.Error("the lock object is still there after unlock")
	}
}
