package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-data/sieve/hub/hubtest"
)

const (
	goodToken = "hf_GoodTokenDoNotLeak0123456789"
	badToken  = "hf_WrongTokenDoNotLeak987654321"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv   *hubtest.Server
	cache string
	logs  *syncBuffer

	commit1, commit2, devCommit, parquetCommit string
	train0, train1, extraV1, extraV2, deep     []byte
	gatedData                                  []byte
	shards                                     [][]byte
}

func jsonl(n, seed int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"id":"%d-%d","messages":[{"role":"user","content":"question %d"},{"role":"assistant","content":"answer %d"}]}`+"\n", seed, i, i, i*seed)
	}
	return b.Bytes()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{srv: hubtest.NewServer(), cache: t.TempDir(), logs: &syncBuffer{}}
	t.Cleanup(f.srv.Close)
	f.train0, f.train1 = jsonl(2000, 1), jsonl(50, 2) // ~200 KB and ~5 KB
	f.extraV1, f.extraV2 = []byte(`[{"prompt":"a","completion":"b"}]`), []byte(`[{"prompt":"a","completion":"c"}]`)
	f.deep = []byte("\x28\xb5\x2f\xfd not really zstd")
	f.commit1 = f.srv.Commit("acme/chat", "main",
		hubtest.File{Path: ".gitattributes", Data: []byte("*.jsonl filter=lfs diff=lfs merge=lfs -text\n")},
		hubtest.File{Path: "README.md", Data: []byte("# chat\n")},
		hubtest.File{Path: "data/train-00000.jsonl", Data: f.train0, LFS: true},
		hubtest.File{Path: "data/train-00001.jsonl", Data: f.train1, LFS: true},
		hubtest.File{Path: "data/extra.json", Data: f.extraV1},
		hubtest.File{Path: "data/test.parquet", Data: []byte("PAR1 test PAR1"), LFS: true},
		hubtest.File{Path: "nested/deep/x.jsonl.zst", Data: f.deep, LFS: true},
	)
	f.srv.Tag("acme/chat", "v1.0", "main")
	f.devCommit = f.srv.Commit("acme/chat", "dev", hubtest.File{Path: "data/dev-only.jsonl", Data: jsonl(3, 3)})
	f.commit2 = f.srv.Commit("acme/chat", "main", hubtest.File{Path: "data/extra.json", Data: f.extraV2})
	f.shards = [][]byte{[]byte("PAR1 shard zero PAR1"), []byte("PAR1 shard one PAR1")}
	f.srv.AddParquet("acme/chat", "default", "train", f.shards...)
	f.parquetCommit = f.srv.AddParquet("acme/chat", "default", "test", []byte("PAR1 test split PAR1"))

	f.gatedData = jsonl(100, 4)
	f.srv.Commit("acme/gated", "main", hubtest.File{Path: "data/train.jsonl", Data: f.gatedData, LFS: true})
	f.srv.Gate("acme/gated", goodToken)
	return f
}

func (f *fixture) client(token string, mod ...func(*Options)) *Client {
	o := Options{
		Endpoint: f.srv.URL, Token: token, CacheDir: f.cache, Backoff: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&o)
	}
	return New(o)
}

func (f *fixture) count(host, substr string) (n int) {
	for _, r := range f.srv.Requests() {
		if (host == "" || r.Host == host) && strings.Contains(r.Path+"?"+r.RawQuery, substr) {
			n++
		}
	}
	return n
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileByPath(t *testing.T, r Resolved, p string) File {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == p {
			return f
		}
	}
	t.Fatalf("%s not in %+v", p, r.Files)
	return File{}
}

func paths(r Resolved) string {
	var ps []string
	for _, f := range r.Files {
		ps = append(ps, f.Path)
	}
	return strings.Join(ps, ",")
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
	}{
		{"hf://datasets/acme/chat", Ref{Repo: "acme/chat"}},
		{"hf://datasets/acme/chat/data/*.jsonl", Ref{Repo: "acme/chat", Glob: "data/*.jsonl"}},
		{"hf://datasets/acme/chat@v1.0/data/**/*.parquet", Ref{Repo: "acme/chat", Revision: "v1.0", Glob: "data/**/*.parquet"}},
		{"hf://datasets/acme/chat@0123456789abcdef0123456789abcdef01234567/x.json", Ref{Repo: "acme/chat", Revision: "0123456789abcdef0123456789abcdef01234567", Glob: "x.json"}},
		{"hf://datasets/acme/chat@refs%2Fconvert%2Fparquet/default/train/*.parquet", Ref{Repo: "acme/chat", Revision: "refs/convert/parquet", Glob: "default/train/*.parquet"}},
		{"hf://datasets/acme/chat@refs/convert/parquet/default/train/0000.parquet", Ref{Repo: "acme/chat", Revision: "refs/convert/parquet", Glob: "default/train/0000.parquet"}},
		{"hf://datasets/acme/chat@refs/pr/7", Ref{Repo: "acme/chat", Revision: "refs/pr/7"}},
		{"hf://datasets/acme/chat@dev", Ref{Repo: "acme/chat", Revision: "dev"}},
		{"hf://datasets/Org-1/my_data.v2/", Ref{Repo: "Org-1/my_data.v2"}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if back, err := ParseURL(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q via %q = %+v, %v", tc.in, got.String(), back, err)
		}
	}
	for _, bad := range []string{
		"", "datasets/acme/chat", "hf://acme/chat", "hf://models/acme/chat", "hf://datasets/acme",
		"hf://datasets/acme/", "hf://datasets/acme/chat@", "hf://datasets/acme/chat@/x", "hf://datasets/a/b/../c",
		"hf://datasets/acme/ch at", "hf://datasets/acme/chat/data/[", "s3://datasets/acme/chat",
	} {
		if r, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		glob, name string
		want       bool
	}{
		{"data/*.jsonl", "data/a.jsonl", true},
		{"data/*.jsonl", "data/sub/a.jsonl", false},
		{"data/**/*.jsonl", "data/a.jsonl", true},
		{"data/**/*.jsonl", "data/x/y/a.jsonl", true},
		{"**/*.parquet", "a/b/c.parquet", true},
		{"**/*.parquet", "c.parquet", true},
		{"**", "README.md", true},
		{"data", "data/a.jsonl", true},
		{"data", "database/a.jsonl", false},
		{"data/a.jsonl", "data/a.jsonl", true},
		{"train-0000?-of-*.parquet", "train-00001-of-00002.parquet", true},
		{"data/**", "data", false},
	} {
		if got := matchGlob(tc.glob, tc.name); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v", tc.glob, tc.name, got)
		}
	}
	if d := globDir("data/en/**/*.jsonl"); d != "data/en" {
		t.Errorf("globDir = %q", d)
	}
}

func TestResolveGlobPinsCommit(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	ref, _ := ParseURL("hf://datasets/acme/chat/data/*.jsonl")
	r, err := c.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if r.Commit != f.commit2 || r.Revision != "main" || r.Repo != "acme/chat" {
		t.Fatalf("resolved %s@%s commit %s, want commit %s", r.Repo, r.Revision, r.Commit, f.commit2)
	}
	if got := paths(r); got != "data/train-00000.jsonl,data/train-00001.jsonl" {
		t.Fatalf("files %s", got)
	}
	tr := fileByPath(t, r, "data/train-00000.jsonl")
	if tr.Size != int64(len(f.train0)) || tr.SHA256 != hubtest.SHA256(f.train0) || tr.OID == "" {
		t.Errorf("LFS file listed as %+v", tr)
	}
	if u := r.URL(tr); u != "hf://datasets/acme/chat@"+f.commit2+"/data/train-00000.jsonl" {
		t.Errorf("URL = %s", u)
	}

	// A directory, a ** glob, and a single non-LFS file.
	r, err = c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data"})
	if err != nil || paths(r) != "data/extra.json,data/test.parquet,data/train-00000.jsonl,data/train-00001.jsonl" {
		t.Fatalf("dir: %s %v", paths(r), err)
	}
	r, err = c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "**/*.jsonl*"})
	if err != nil || paths(r) != "data/train-00000.jsonl,data/train-00001.jsonl,nested/deep/x.jsonl.zst" {
		t.Fatalf("**: %s %v", paths(r), err)
	}
	r, err = c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/extra.json"})
	if err != nil {
		t.Fatal(err)
	}
	ex := r.Files[0]
	if ex.SHA256 != "" || ex.OID != hubtest.GitBlobID(f.extraV2) || ex.Size != int64(len(f.extraV2)) {
		t.Errorf("git file listed as %+v", ex)
	}
}

func TestRevisionsResolveToCommits(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	for rev, want := range map[string]string{
		"": f.commit2, "main": f.commit2, "v1.0": f.commit1, "dev": f.devCommit, f.commit1: f.commit1,
	} {
		r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Revision: rev, Glob: "**/*.json*"})
		if err != nil {
			t.Fatalf("%q: %v", rev, err)
		}
		if r.Commit != want {
			t.Errorf("revision %q read commit %s, want %s", rev, r.Commit, want)
		}
	}
	// The tag still reads the old content after main moved on.
	old, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Revision: "v1.0", Glob: "data/extra.json"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Fetch(ctx, old.Repo, old.Commit, old.Files[0])
	if err != nil || !bytes.Equal(mustRead(t, p), f.extraV1) {
		t.Fatalf("v1.0 extra.json: %q %v", mustRead(t, p), err)
	}
	cur, _ := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/extra.json"})
	p, err = c.Fetch(ctx, cur.Repo, cur.Commit, cur.Files[0])
	if err != nil || !bytes.Equal(mustRead(t, p), f.extraV2) {
		t.Fatalf("main extra.json: %v", err)
	}
	// The revision went to the Hub escaped.
	if _, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Revision: "refs/convert/parquet", Glob: "default/train/*.parquet"}); err != nil {
		t.Fatal(err)
	}
	if f.count("hub", "/revision/refs%2Fconvert%2Fparquet") != 1 {
		t.Errorf("refs/convert/parquet not escaped: %+v", f.srv.Requests())
	}
}

func TestTreePaginationAndCache(t *testing.T) {
	f := newFixture(t)
	f.srv.TreePageSize = 2
	c := f.client("")
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != 7 {
		t.Fatalf("listed %d files: %s", len(r.Files), paths(r))
	}
	if pages, cursors := f.count("hub", "/tree/"), f.count("hub", "cursor="); pages < 4 || cursors != pages-1 {
		t.Errorf("tree pages %d, with cursor %d", pages, cursors)
	}
	// Pinned to the commit, the listing is not asked again.
	f.srv.ResetRequests()
	again, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Revision: r.Commit})
	if err != nil || paths(again) != paths(r) || again.Commit != r.Commit {
		t.Fatalf("pinned resolve: %s %v", paths(again), err)
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("pinned resolve of a cached listing made %d requests", n)
	}
}

func TestParquetFiles(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	r, err := c.ParquetFiles(ctx, "acme/chat", "default", "train")
	if err != nil {
		t.Fatal(err)
	}
	if r.Commit != f.parquetCommit || r.Revision != ParquetRevision {
		t.Errorf("commit %s revision %s, want %s", r.Commit, r.Revision, f.parquetCommit)
	}
	if paths(r) != "default/train/0000.parquet,default/train/0001.parquet" {
		t.Fatalf("files %s", paths(r))
	}
	if f.count("hub", "/api/datasets/acme/chat/parquet/default/train") != 1 {
		t.Errorf("the Parquet listing was not asked")
	}
	for i, pf := range r.Files {
		p, err := c.Fetch(ctx, r.Repo, r.Commit, pf)
		if err != nil || !bytes.Equal(mustRead(t, p), f.shards[i]) || !strings.HasSuffix(p, ".parquet") {
			t.Fatalf("shard %d: %s %v", i, p, err)
		}
	}
	// config "" means "default".
	if r, err := c.ParquetFiles(ctx, "acme/chat", "", "test"); err != nil || len(r.Files) != 1 {
		t.Fatalf("default config: %+v %v", r, err)
	}
	// A partial conversion lives in partial-{split}.
	f.srv.Commit("acme/chat", hubtest.ParquetBranch, hubtest.File{Path: "default/partial-big/0000.parquet", Data: []byte("PAR1 big PAR1"), LFS: true})
	if r, err := c.ParquetFiles(ctx, "acme/chat", "default", "big"); err != nil || paths(r) != "default/partial-big/0000.parquet" {
		t.Fatalf("partial: %s %v", paths(r), err)
	}
	_, err = c.ParquetFiles(ctx, "acme/chat", "default", "nosuch")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `split "nosuch"`) {
		t.Errorf("missing split: %v", err)
	}
	_, err = c.ParquetFiles(ctx, "acme/gated", "default", "train")
	if !errors.Is(err, ErrAuth) {
		t.Errorf("gated parquet without token: %v", err)
	}
	f.srv.Commit("acme/raw", "main", hubtest.File{Path: "a.jsonl", Data: []byte("{}\n")})
	_, err = c.ParquetFiles(ctx, "acme/raw", "default", "train")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no Parquet conversion") {
		t.Errorf("no conversion: %v", err)
	}
}

func TestFetchLFSRedirectAndCache(t *testing.T) {
	f := newFixture(t)
	c := f.client(goodToken) // a token, to check it stays off the CDN
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/train-00000.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	p, err := c.Fetch(ctx, r.Repo, r.Commit, r.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), f.train0) {
		t.Fatal("wrong bytes")
	}
	if !strings.HasSuffix(p, ".jsonl") || !strings.HasPrefix(p, f.cache) || !strings.Contains(p, hubtest.SHA256(f.train0)) {
		t.Errorf("local path %s", p)
	}
	reqs := f.srv.Requests()
	if len(reqs) != 2 || reqs[0].Host != "hub" || reqs[0].Status != http.StatusFound || reqs[1].Host != "cdn" || reqs[1].Status != http.StatusOK {
		t.Fatalf("requests %+v", reqs)
	}
	if reqs[0].Authorization != "Bearer "+goodToken || reqs[1].Authorization != "" {
		t.Errorf("Authorization sent: hub %v cdn %v", reqs[0].Authorization != "", reqs[1].Authorization != "")
	}
	// Fetched again, by this client or a new one on the same cache: no request.
	f.srv.ResetRequests()
	for _, cl := range []*Client{c, f.client("")} {
		p2, err := cl.Fetch(ctx, r.Repo, r.Commit, r.Files[0])
		if err != nil || p2 != p {
			t.Fatalf("second fetch %s %v", p2, err)
		}
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("cached fetch made %d requests", n)
	}
	// Compressed files keep both extensions.
	deep, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "nested/**"})
	if err != nil {
		t.Fatal(err)
	}
	p, err = c.Fetch(ctx, deep.Repo, deep.Commit, deep.Files[0])
	if err != nil || !strings.HasSuffix(p, ".jsonl.zst") || !bytes.Equal(mustRead(t, p), f.deep) {
		t.Fatalf("deep: %s %v", p, err)
	}
}

func TestFetchWithoutListedHashes(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	for _, tc := range []struct {
		path string
		want []byte
	}{{"data/extra.json", f.extraV2}, {"data/train-00001.jsonl", f.train1}} {
		p, err := c.Fetch(ctx, "acme/chat", f.commit2, File{Path: tc.path})
		if err != nil || !bytes.Equal(mustRead(t, p), tc.want) {
			t.Fatalf("%s: %v", tc.path, err)
		}
		f.srv.ResetRequests()
		p2, err := c.Fetch(ctx, "acme/chat", f.commit2, File{Path: tc.path})
		if err != nil || p2 != p || len(f.srv.Requests()) != 0 {
			t.Fatalf("%s again: %s %v, %d requests", tc.path, p2, err, len(f.srv.Requests()))
		}
	}
	// A branch name is allowed (not pinned, so it asks the Hub).
	p, err := c.Fetch(ctx, "acme/chat", "v1.0", File{Path: "data/extra.json"})
	if err != nil || !bytes.Equal(mustRead(t, p), f.extraV1) {
		t.Fatalf("by tag: %v", err)
	}
}

func TestGatedDataset(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ref, _ := ParseURL("hf://datasets/acme/gated/data/*.jsonl")

	_, err := f.client("").Resolve(ctx, ref)
	var he *Error
	if !errors.Is(err, ErrAuth) || !errors.As(err, &he) || he.StatusCode != 401 {
		t.Fatalf("no token: %v", err)
	}
	for _, want := range []string{"acme/gated", "HF_TOKEN", "accept the dataset's terms", f.srv.URL + "/datasets/acme/gated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no-token error lacks %q: %v", want, err)
		}
	}
	_, err = f.client("").Fetch(ctx, "acme/gated", "main", File{Path: "data/train.jsonl"})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("fetch without token: %v", err)
	}

	_, err = f.client(badToken).Resolve(ctx, ref)
	if !errors.Is(err, ErrAuth) || !errors.As(err, &he) || he.StatusCode != 403 || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), badToken) {
		t.Fatal("the error shows the token")
	}

	c := f.client(goodToken)
	r, err := c.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	p, err := c.Fetch(ctx, r.Repo, r.Commit, r.Files[0])
	if err != nil || !bytes.Equal(mustRead(t, p), f.gatedData) {
		t.Fatalf("with token: %v", err)
	}
	for _, rq := range f.srv.Requests() {
		if (rq.Host == "hub") != (rq.Authorization == "Bearer "+goodToken) {
			t.Errorf("%s %s: token sent = %v", rq.Host, rq.Path, rq.Authorization != "")
		}
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	for _, tc := range []struct {
		ref  Ref
		want string
		kind error
	}{
		{Ref{Repo: "acme/nope", Glob: "*.jsonl"}, "dataset acme/nope not found", ErrNotFound},
		{Ref{Repo: "acme/chat", Revision: "v9", Glob: "*.jsonl"}, `revision "v9" of dataset acme/chat not found`, ErrNotFound},
		{Ref{Repo: "acme/chat", Glob: "data/*.csv"}, `matches "data/*.csv"`, ErrNoMatch},
		{Ref{Repo: "acme/chat", Glob: "nodir/sub/*.jsonl"}, `matches "nodir/sub/*.jsonl"`, ErrNoMatch},
	} {
		_, err := c.Resolve(ctx, tc.ref)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %v %q", tc.ref, err, tc.kind, tc.want)
		}
	}
	_, err := c.Fetch(ctx, "acme/chat", f.commit2, File{Path: "data/missing.jsonl"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "data/missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
	// huggingface.co answers 401 to anonymous requests for missing repos.
	f.srv.MissingRepoStatus = 401
	_, err = c.Resolve(ctx, Ref{Repo: "acme/nope"})
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("401 for a missing repo: %v", err)
	}
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/train-00000.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	const cut = 100_000
	f.srv.Inject(hubtest.Fault{Host: "cdn", Match: "train-00000", DropAfter: cut})
	f.srv.ResetRequests()
	p, err := c.Fetch(ctx, r.Repo, r.Commit, r.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), f.train0) || hubtest.SHA256(mustRead(t, p)) != r.Files[0].SHA256 {
		t.Fatal("wrong bytes after resuming")
	}
	var ranges []string
	for _, rq := range f.srv.Requests() {
		if rq.Host == "cdn" {
			ranges = append(ranges, fmt.Sprintf("%q:%d", rq.Range, rq.Status))
		}
	}
	if got := strings.Join(ranges, " "); got != fmt.Sprintf(`"":200 "bytes=%d-":206`, cut) {
		t.Errorf("CDN requests %s", got)
	}
}

func TestResumeFromPartialFile(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/train-00000.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	file := r.Files[0]
	partial := filepath.Join(f.cache, "partial", "sha256", file.SHA256+".incomplete")
	os.MkdirAll(filepath.Dir(partial), 0o755)

	// A previous run's partial download is resumed.
	os.WriteFile(partial, f.train0[:5000], 0o644)
	f.srv.ResetRequests()
	p, err := c.Fetch(ctx, r.Repo, r.Commit, file)
	if err != nil || !bytes.Equal(mustRead(t, p), f.train0) {
		t.Fatalf("resume: %v", err)
	}
	if f.count("cdn", "") != 1 || f.srv.Requests()[1].Range != "bytes=5000-" {
		t.Errorf("requests %+v", f.srv.Requests())
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("partial file left: %v", err)
	}

	// A partial file with wrong bytes fails the sha256 check and is
	// downloaded again from the start.
	os.Remove(p)
	bad := append([]byte("garbage!"), f.train0[8:6000]...)
	os.WriteFile(partial, bad, 0o644)
	f.srv.ResetRequests()
	p, err = c.Fetch(ctx, r.Repo, r.Commit, file)
	if err != nil || !bytes.Equal(mustRead(t, p), f.train0) {
		t.Fatalf("bad partial: %v", err)
	}
	var ranges []string
	for _, rq := range f.srv.Requests() {
		if rq.Host == "cdn" {
			ranges = append(ranges, rq.Range)
		}
	}
	if fmt.Sprint(ranges) != "[bytes=6000- ]" {
		t.Errorf("CDN ranges %q", ranges)
	}
}

func TestRetries(t *testing.T) {
	f := newFixture(t)
	c := f.client("")
	ctx := context.Background()

	// 429 with Retry-After on the listing: waits as told, then succeeds.
	f.srv.Inject(hubtest.Fault{Host: "hub", Match: "/tree/", Status: 429, RetryAfter: "1"})
	start := time.Now()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/*.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("429 with Retry-After: 1 retried after %v", d)
	}
	if !strings.Contains(f.logs.String(), "hub: retrying") {
		t.Error("the retry was not logged")
	}

	// 500 once on the Hub's resolve, then 503 once on the CDN: both retried.
	f.srv.Inject(hubtest.Fault{Host: "hub", Match: "train-00001", Status: 500})
	f.srv.Inject(hubtest.Fault{Host: "cdn", Match: "train-00001", Status: 503})
	f.srv.ResetRequests()
	p, err := c.Fetch(ctx, r.Repo, r.Commit, fileByPath(t, r, "data/train-00001.jsonl"))
	if err != nil || !bytes.Equal(mustRead(t, p), f.train1) {
		t.Fatalf("after 500 and 503: %v", err)
	}
	if n := f.count("hub", "/resolve/"); n != 3 {
		t.Errorf("resolve requests %d, want 3", n)
	}

	// A server that keeps failing: MaxRetries retries, then the error.
	c2 := f.client("", func(o *Options) { o.MaxRetries = 2 })
	f.srv.Inject(hubtest.Fault{Host: "hub", Match: "/revision/", Status: 500, Times: -1})
	f.srv.ResetRequests()
	_, err = c2.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "*"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("persistent 500: %v", err)
	}
	if n := f.count("hub", "/revision/"); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	f.srv.ClearFaults()

	// Connection errors are retried too: a dropped JSON response.
	f.srv.Inject(hubtest.Fault{Host: "hub", Match: "/revision/", DropAfter: 10})
	if _, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "*.md"}); err != nil {
		t.Fatalf("dropped listing: %v", err)
	}
}

func TestChecksumMismatch(t *testing.T) {
	f := newFixture(t)
	c := f.client("", func(o *Options) { o.MaxRetries = 1 })
	ctx := context.Background()
	r, err := c.Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/train-00001.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Inject(hubtest.Fault{Host: "cdn", Match: "train-00001", Corrupt: true, Times: -1})
	_, err = c.Fetch(ctx, r.Repo, r.Commit, r.Files[0])
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupt download: %v", err)
	}
	if _, err := os.Stat(c.blobPath(fileKey(r.Files[0]), r.Files[0].Path)); !os.IsNotExist(err) {
		t.Error("a corrupt file entered the cache")
	}
}

func TestConcurrentFetchDownloadsOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.client("").Resolve(ctx, Ref{Repo: "acme/chat", Glob: "data/train-00000.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			p, err := f.client("").Fetch(ctx, r.Repo, r.Commit, r.Files[0])
			if err == nil && !bytes.Equal(mustRead(t, p), f.train0) {
				err = errors.New("wrong bytes")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := f.count("cdn", ""); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var texts []string
	for _, tok := range []string{badToken, goodToken} {
		c := f.client(tok)
		f.srv.Inject(hubtest.Fault{Host: "hub", Match: "/tree/", Status: 500})
		f.srv.Inject(hubtest.Fault{Host: "cdn", DropAfter: 1000})
		r, err := c.Resolve(ctx, Ref{Repo: "acme/gated", Glob: "data/*"})
		if err != nil {
			texts = append(texts, err.Error())
			_, err = c.Fetch(ctx, "acme/gated", "main", File{Path: "data/train.jsonl"})
			texts = append(texts, fmt.Sprint(err))
			continue
		}
		b, _ := json.Marshal(r)
		texts = append(texts, string(b))
		if _, err := c.Fetch(ctx, r.Repo, r.Commit, r.Files[0]); err != nil {
			t.Fatal(err)
		}
		_, err = c.Fetch(ctx, r.Repo, r.Commit, File{Path: "data/none.jsonl"})
		texts = append(texts, fmt.Sprint(err))
		texts = append(texts, fmt.Sprint(c.ParquetFiles(ctx, "acme/gated", "default", "train")))
	}
	texts = append(texts, f.logs.String())
	if !strings.Contains(f.logs.String(), "retrying") {
		t.Error("expected retries in the log")
	}
	filepath.WalkDir(f.cache, func(p string, d fs.DirEntry, err error) error {
		texts = append(texts, p)
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			texts = append(texts, string(b))
		}
		return nil
	})
	for _, s := range texts {
		for _, tok := range []string{goodToken, badToken} {
			if strings.Contains(s, tok) {
				t.Errorf("token in %q", s)
			}
		}
	}
}

func TestDefaultsFromEnvironment(t *testing.T) {
	f := newFixture(t)
	home := t.TempDir()
	t.Setenv("HF_ENDPOINT", f.srv.URL+"/")
	t.Setenv("HF_TOKEN", goodToken)
	t.Setenv("HF_HOME", home)
	c := New(Options{Backoff: time.Millisecond})
	if c.Endpoint() != f.srv.URL || c.CacheDir() != filepath.Join(home, "sieve") {
		t.Fatalf("endpoint %s cache %s", c.Endpoint(), c.CacheDir())
	}
	r, err := c.Resolve(context.Background(), Ref{Repo: "acme/gated", Glob: "data/train.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Fetch(context.Background(), r.Repo, r.Commit, r.Files[0])
	if err != nil || !strings.HasPrefix(p, filepath.Join(home, "sieve")) {
		t.Fatalf("%s %v", p, err)
	}
	t.Setenv("HF_ENDPOINT", "")
	t.Setenv("HF_HOME", "")
	if c := New(Options{}); c.Endpoint() != DefaultEndpoint || !strings.HasSuffix(c.CacheDir(), filepath.Join("sieve", "hub")) {
		t.Errorf("defaults: %s %s", c.Endpoint(), c.CacheDir())
	}
	if _, err := New(Options{Endpoint: "ftp://x"}).Resolve(context.Background(), Ref{Repo: "a/b"}); err == nil {
		t.Error("bad endpoint accepted")
	}
}

func TestRedirectsKeepTokenOnHubHost(t *testing.T) {
	var other, hub *httptest.Server
	seen := map[string]string{}
	var mu sync.Mutex
	record := func(r *http.Request) {
		mu.Lock()
		seen[r.Host+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
	}
	other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Write([]byte(`{"sha":"0123456789abcdef0123456789abcdef01234567"}`))
	}))
	defer other.Close()
	hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		switch r.URL.Path {
		case "/api/datasets/old/name/revision/main": // a renamed repo: relative redirect
			http.Redirect(w, r, "/api/datasets/new/name/revision/main", http.StatusTemporaryRedirect)
		case "/api/datasets/new/name/revision/main":
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
		}
	}))
	defer hub.Close()
	c := New(Options{Endpoint: hub.URL, Token: goodToken, CacheDir: t.TempDir()})
	sha, err := c.commitOf(context.Background(), "old/name", "main")
	if err != nil || sha != "0123456789abcdef0123456789abcdef01234567" {
		t.Fatalf("%s %v", sha, err)
	}
	hubHost, otherHost := strings.TrimPrefix(hub.URL, "http://"), strings.TrimPrefix(other.URL, "http://")
	if seen[hubHost+"/api/datasets/old/name/revision/main"] == "" || seen[hubHost+"/api/datasets/new/name/revision/main"] == "" {
		t.Errorf("token not sent to the Hub: %v", seen)
	}
	if a, ok := seen[otherHost+"/elsewhere"]; !ok || a != "" {
		t.Errorf("token sent to another host, or it was not reached: %v", seen)
	}
}

func TestHelpers(t *testing.T) {
	h := http.Header{}
	h.Add("Link", `<https://x/api/a?cursor=1>; rel="next", <https://x/api/a?cursor=0>; rel="prev"`)
	if got := nextLink(h, "https://x/api/a"); got != "https://x/api/a?cursor=1" {
		t.Errorf("nextLink %q", got)
	}
	h = http.Header{"Link": {`</api/a?cursor=2>; rel=next`}}
	if got := nextLink(h, "https://x/api/a?recursive=true"); got != "https://x/api/a?cursor=2" {
		t.Errorf("relative nextLink %q", got)
	}
	if retryAfter(http.Header{"Retry-After": {"3"}}) != 3*time.Second ||
		retryAfter(http.Header{"Ratelimit": {`"api";r=0;t=55`}}) != 55*time.Second ||
		retryAfter(http.Header{}) != 0 {
		t.Error("retryAfter")
	}
	for in, want := range map[string][2]int64{"bytes 5-9/10": {5, 10}, "bytes */10": {0, 10}, "bytes 0-1/*": {0, -1}} {
		s, tot, ok := parseContentRange(in)
		if !ok || s != want[0] || tot != want[1] {
			t.Errorf("parseContentRange(%q) = %d %d %v", in, s, tot, ok)
		}
	}
	for in, want := range map[string]string{"a/b/c.parquet": ".parquet", "x.jsonl.gz": ".jsonl.gz", "README": "", "a.we ird": ""} {
		if got := localExt(in); got != want {
			t.Errorf("localExt(%q) = %q", in, got)
		}
	}
	if redact("https://cdn/x?X-Amz-Signature=abc") != "https://cdn/x" {
		t.Error("redact")
	}
}

func TestFetchWithoutETag(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("no etag here\n"))
	}))
	defer srv.Close()
	c := New(Options{Endpoint: srv.URL, CacheDir: t.TempDir(), Backoff: time.Millisecond})
	_, err := c.Fetch(context.Background(), "a/b", "0123456789abcdef0123456789abcdef01234567", File{Path: "x.jsonl"})
	if err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Fatalf("got %v", err)
	}
	// With a listed hash it is cached by that.
	data := []byte("no etag here\n")
	p, err := c.Fetch(context.Background(), "a/b", "0123456789abcdef0123456789abcdef01234567",
		File{Path: "x.jsonl", Size: int64(len(data)), SHA256: hubtest.SHA256(data)})
	if err != nil || !bytes.Equal(mustRead(t, p), data) {
		t.Fatalf("%v", err)
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // nothing listens there now
	logs := &syncBuffer{}
	c := New(Options{Endpoint: u, Token: goodToken, CacheDir: t.TempDir(), Backoff: time.Millisecond, MaxRetries: 2,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err := c.Resolve(context.Background(), Ref{Repo: "a/b"})
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), goodToken) {
		t.Fatalf("got %v", err)
	}
	if n := strings.Count(logs.String(), "hub: retrying"); n != 2 {
		t.Errorf("%d retries logged, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Resolve(ctx, Ref{Repo: "a/b"}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}
