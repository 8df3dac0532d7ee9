// Package hubtest is an in-process stand-in for the Hugging Face Hub that
// speaks the parts of its HTTP API that package hub uses, over real HTTP on
// loopback, for tests.
//
// A Server runs two listeners: the Hub itself (URL; point hub.Options.Endpoint
// or HF_ENDPOINT at it) and a CDN (CDNURL) that LFS files are redirected to,
// the way huggingface.co redirects them to its storage hosts. The CDN, like a
// pre-signed storage URL, refuses requests that carry an Authorization header,
// so a client that leaks the Hub token to it fails.
//
// Modelled endpoints (shapes follow huggingface.co and huggingface_hub):
//
//	GET /api/datasets/{owner}/{name}/revision/{rev}
//	    {"id", "sha", "siblings": [{"rfilename"}], "gated", "private", ...}
//	GET /api/datasets/{owner}/{name}/tree/{rev}[/{path}][?recursive=true][&cursor=...]
//	    [{"type": "file"|"directory", "oid", "size", "path", "lfs": {"oid", "size", "pointerSize"}}]
//	    paginated by TreePageSize with a `Link: <...>; rel="next"` header
//	GET /api/datasets/{owner}/{name}/parquet                  {config: {split: [url]}}
//	GET /api/datasets/{owner}/{name}/parquet/{config}         {split: [url]}
//	GET /api/datasets/{owner}/{name}/parquet/{config}/{split} [url]
//	GET /api/datasets/{owner}/{name}/parquet/{config}/{split}/{n}.parquet
//	    302 to resolve/refs%2Fconvert%2Fparquet/{config}/{split}/{nnnn}.parquet
//	GET|HEAD /datasets/{owner}/{name}/resolve/{rev}/{path}
//	    files in git: 200 with ETag "<git blob sha1>"; LFS files: 302 to the
//	    CDN with X-Linked-Etag "<sha256>" and X-Linked-Size. Both carry
//	    X-Repo-Commit. Range requests are honoured (206).
//
// Revisions are branch names, tags or full commit shas, URL-escaped in the
// path (refs%2Fconvert%2Fparquet). Errors carry X-Error-Code (RepoNotFound,
// RevisionNotFound, EntryNotFound, GatedRepo) and X-Error-Message headers and
// a JSON {"error": ...} body. A gated repo answers 401 without a token, 403
// with a wrong one and 200 with the right "Authorization: Bearer" token.
//
// Faults (Inject) make chosen requests answer a status (429 with
// Retry-After, 500, ...), drop the connection after N body bytes, or corrupt
// the body, a given number of times. Requests lists every request served.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ParquetBranch is the branch the dataset viewer publishes Parquet
// conversions to.
const ParquetBranch = "refs/convert/parquet"

// File is a file to commit to a repo.
type File struct {
	Path string
	Data []byte
	// LFS stores the file in LFS: the tree lists its sha256, and resolve
	// redirects to the CDN.
	LFS bool
}

// Fault makes matching requests misbehave, Times times.
type Fault struct {
	// Host is "hub", "cdn", or "" for either.
	Host string
	// Match is a substring of the request's URL path or of the repo path of
	// the file it serves (CDN requests are matched by the files whose
	// content they serve); "" matches every request.
	Match string
	// Status, if non-zero, answers with this status (and RetryAfter, if
	// set, as the Retry-After header) instead of serving the request.
	Status     int
	RetryAfter string
	// DropAfter, if positive, serves the response but closes the
	// connection after this many body bytes.
	DropAfter int64
	// Corrupt flips the first body byte served.
	Corrupt bool
	// Times is how many requests the fault applies to: 0 means once, a
	// negative number means always.
	Times int
}

// Request is one request the server saw.
type Request struct {
	Host          string // "hub" or "cdn"
	Method        string
	Path          string // escaped URL path
	RawQuery      string
	Range         string
	Authorization string
	Status        int
}

// Server is a fake Hub plus its CDN. Its exported fields may be set before
// the first request.
type Server struct {
	URL    string // the Hub endpoint
	CDNURL string // where LFS files are redirected

	// TreePageSize is the number of entries per page of a tree listing
	// (default 1000, like huggingface.co's recursive listings).
	TreePageSize int
	// MissingRepoStatus is the status for a repo that does not exist
	// (default 404; huggingface.co answers 401 to anonymous requests).
	MissingRepoStatus int

	hub, cdn *httptest.Server

	mu        sync.Mutex
	repos     map[string]*repo
	blobs     map[string][]byte   // sha256 -> content, served by the CDN
	blobPaths map[string][]string // sha256 -> repo paths with that content
	faults    []*Fault
	logMu     sync.Mutex // guards reqs and their Status; never held while serving
	reqs      []*Request
	seq       int
}

type repo struct {
	id      string
	token   string // non-empty: gated, needs this Bearer token
	heads   map[string]string
	tags    map[string]string
	commits map[string]*commit
	created time.Time
}

type commit struct {
	sha   string
	files map[string]*entry
	date  time.Time
}

type entry struct {
	path       string
	data       []byte
	lfs        bool
	oid        string // git blob id of what git stores (the pointer for LFS)
	sha256     string
	pointerLen int
}

// NewServer starts a Hub and a CDN on loopback. Close it when done.
func NewServer() *Server {
	s := &Server{
		repos:     map[string]*repo{},
		blobs:     map[string][]byte{},
		blobPaths: map[string][]string{},
	}
	s.hub = httptest.NewServer(s.middleware("hub", http.HandlerFunc(s.serveHub)))
	s.cdn = httptest.NewServer(s.middleware("cdn", http.HandlerFunc(s.serveCDN)))
	s.URL, s.CDNURL = s.hub.URL, s.cdn.URL
	return s
}

// Close shuts both listeners down.
func (s *Server) Close() {
	s.hub.Close()
	s.cdn.Close()
}

// Commit records a new commit on branch of dataset repo id (created, public,
// if new) holding the branch's previous files overlaid with files, and
// returns its sha.
func (s *Server) Commit(id, branch string, files ...File) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(id)
	c := &commit{files: map[string]*entry{}, date: time.Unix(1700000000+int64(s.seq)*60, 0).UTC()}
	h := sha1.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", id, branch, s.seq)
	s.seq++
	if parent, ok := r.heads[branch]; ok {
		fmt.Fprintf(h, "parent %s\x00", parent)
		for p, e := range r.commits[parent].files {
			c.files[p] = e
		}
	}
	for _, f := range files {
		e := &entry{path: strings.TrimPrefix(f.Path, "/"), data: f.Data, lfs: f.LFS}
		sum := sha256.Sum256(f.Data)
		e.sha256 = hex.EncodeToString(sum[:])
		if f.LFS {
			ptr := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", e.sha256, len(f.Data))
			e.oid, e.pointerLen = GitBlobID([]byte(ptr)), len(ptr)
			s.blobs[e.sha256] = f.Data
			s.blobPaths[e.sha256] = append(s.blobPaths[e.sha256], e.path)
		} else {
			e.oid = GitBlobID(f.Data)
		}
		c.files[e.path] = e
		fmt.Fprintf(h, "%s\x00%s\x00", e.path, e.oid)
	}
	c.sha = hex.EncodeToString(h.Sum(nil))
	r.commits[c.sha] = c
	r.heads[branch] = c.sha
	return c.sha
}

// Tag points tag at the commit rev (a branch, tag or sha) resolves to.
func (s *Server) Tag(id, tag, rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(id)
	sha, ok := r.resolve(rev)
	if !ok {
		panic("hubtest: Tag: unknown revision " + rev)
	}
	r.tags[tag] = sha
}

// Gate makes dataset repo id gated: every request needs
// "Authorization: Bearer token".
func (s *Server) Gate(id, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(id).token = token
}

// AddParquet commits Parquet shards for config/split to the
// refs/convert/parquet branch, as {config}/{split}/0000.parquet, ..., as the
// dataset viewer does, and returns the commit sha.
func (s *Server) AddParquet(id, config, split string, shards ...[]byte) string {
	files := make([]File, len(shards))
	for i, b := range shards {
		files[i] = File{Path: fmt.Sprintf("%s/%s/%04d.parquet", config, split, i), Data: b, LFS: true}
	}
	return s.Commit(id, ParquetBranch, files...)
}

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Requests returns the requests served so far, in order.
func (s *Server) Requests() []Request {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
	}
	return out
}

// ResetRequests forgets the requests served so far.
func (s *Server) ResetRequests() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.reqs = nil
}

// GitBlobID is git's object id of a blob with this content.
func GitBlobID(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the hex sha256 of data, the LFS object id.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (s *Server) repo(id string) *repo {
	r, ok := s.repos[id]
	if !ok {
		r = &repo{id: id, heads: map[string]string{}, tags: map[string]string{},
			commits: map[string]*commit{}, created: time.Unix(1690000000, 0).UTC()}
		s.repos[id] = r
	}
	return r
}

func (r *repo) resolve(rev string) (string, bool) {
	if sha, ok := r.heads[rev]; ok {
		return sha, true
	}
	if sha, ok := r.tags[rev]; ok {
		return sha, true
	}
	if _, ok := r.commits[rev]; ok {
		return rev, true
	}
	return "", false
}

// ---- middleware: request log and faults ----

type recorder struct {
	http.ResponseWriter
	s         *Server
	req       *Request // its entry in the log
	status    int
	written   int64
	dropAfter int64
	corrupt   bool
}

// setStatus records the status before the client can see it.
func (w *recorder) setStatus(code int) {
	if w.status == 0 {
		w.status = code
		w.s.logMu.Lock()
		w.req.Status = code
		w.s.logMu.Unlock()
	}
}

func (w *recorder) WriteHeader(code int) {
	w.setStatus(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	w.setStatus(http.StatusOK)
	if w.corrupt && len(p) > 0 {
		q := append([]byte(nil), p...)
		q[0] ^= 0xff
		p, w.corrupt = q, false
	}
	if w.dropAfter > 0 && w.written+int64(len(p)) >= w.dropAfter {
		n := w.dropAfter - w.written
		w.ResponseWriter.Write(p[:n])
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		// Abort: net/http closes the connection mid-body.
		panic(http.ErrAbortHandler)
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) middleware(host string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &Request{Host: host, Method: r.Method, Path: r.URL.EscapedPath(),
			RawQuery: r.URL.RawQuery, Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization")}
		rec := &recorder{ResponseWriter: w, s: s, req: req}
		s.logMu.Lock()
		s.reqs = append(s.reqs, req)
		s.logMu.Unlock()
		s.mu.Lock()
		f := s.fault(host, r)
		s.mu.Unlock()
		if f != nil {
			if f.Status != 0 {
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				writeError(rec, f.Status, "", fmt.Sprintf("injected fault: %d", f.Status))
				return
			}
			rec.dropAfter, rec.corrupt = f.DropAfter, f.Corrupt
		}
		next.ServeHTTP(rec, r)
	})
}

// fault returns the first live fault matching r and uses it up. s.mu is held.
func (s *Server) fault(host string, r *http.Request) *Fault {
	for _, f := range s.faults {
		if f.Times == 0 || (f.Host != "" && f.Host != host) {
			continue
		}
		if !s.matches(f, host, r) {
			continue
		}
		if f.Times > 0 {
			f.Times--
		}
		return f
	}
	return nil
}

func (s *Server) matches(f *Fault, host string, r *http.Request) bool {
	if f.Match == "" || strings.Contains(r.URL.Path, f.Match) {
		return true
	}
	if host == "cdn" {
		for _, p := range s.blobPaths[path.Base(r.URL.Path)] {
			if strings.Contains(p, f.Match) {
				return true
			}
		}
	}
	return false
}

// ---- the Hub ----

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

// segments splits an escaped URL path into unescaped segments, so that an
// escaped slash (refs%2Fconvert%2Fparquet) stays inside its segment.
func segments(escaped string) ([]string, bool) {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	seg, ok := segments(r.URL.EscapedPath())
	if !ok {
		writeError(w, http.StatusBadRequest, "", "bad path")
		return
	}
	switch {
	case len(seg) >= 5 && seg[0] == "api" && seg[1] == "datasets":
		s.serveAPI(w, r, seg[2]+"/"+seg[3], seg[4], seg[5:])
	case len(seg) >= 6 && seg[0] == "datasets" && seg[3] == "resolve":
		s.serveResolve(w, r, seg[1]+"/"+seg[2], seg[4], strings.Join(seg[5:], "/"))
	default:
		writeError(w, http.StatusNotFound, "", "Not Found")
	}
}

// lookup finds repo id and checks access. s.mu must not be held.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, id string) (*repo, bool) {
	s.mu.Lock()
	rp := s.repos[id]
	s.mu.Unlock()
	if rp == nil {
		status := s.MissingRepoStatus
		if status == 0 {
			status = http.StatusNotFound
		}
		writeError(w, status, "RepoNotFound", "Repository not found")
		return nil, false
	}
	if rp.token != "" {
		auth := r.Header.Get("Authorization")
		switch {
		case auth == "":
			writeError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf(
				"Access to dataset %s is restricted. You must have access to it and be authenticated to access it. Please log in.", id))
			return nil, false
		case auth != "Bearer "+rp.token:
			writeError(w, http.StatusForbidden, "GatedRepo", fmt.Sprintf(
				"Access to dataset %s is restricted and you are not in the authorized list. Visit %s/datasets/%s to ask for access.", id, s.URL, id))
			return nil, false
		}
	}
	return rp, true
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, id, op string, rest []string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	rp, ok := s.lookup(w, r, id)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case op == "revision" && len(rest) == 1:
		s.serveRevision(w, rp, rest[0])
	case op == "tree" && len(rest) >= 1:
		s.serveTree(w, r, rp, rest[0], strings.Join(rest[1:], "/"))
	case op == "parquet":
		s.serveParquet(w, r, rp, rest)
	default:
		writeError(w, http.StatusNotFound, "", "Not Found")
	}
}

func (s *Server) commitAt(w http.ResponseWriter, rp *repo, rev string) *commit {
	sha, ok := rp.resolve(rev)
	if !ok {
		writeError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return nil
	}
	return rp.commits[sha]
}

func (s *Server) serveRevision(w http.ResponseWriter, rp *repo, rev string) {
	c := s.commitAt(w, rp, rev)
	if c == nil {
		return
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
	}
	var sibs []sibling
	for _, p := range sortedPaths(c.files) {
		sibs = append(sibs, sibling{p})
	}
	var gated any = false
	if rp.token != "" {
		gated = "manual"
	}
	owner, _, _ := strings.Cut(rp.id, "/")
	writeJSON(w, map[string]any{
		"_id": GitBlobID([]byte(rp.id))[:24], "id": rp.id, "author": owner, "sha": c.sha,
		"lastModified": c.date.Format(time.RFC3339), "createdAt": rp.created.Format(time.RFC3339),
		"private": false, "gated": gated, "disabled": false, "downloads": 0, "likes": 0,
		"tags": []string{}, "siblings": sibs,
	})
}

func sortedPaths(files map[string]*entry) []string {
	ps := make([]string, 0, len(files))
	for p := range files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

type treeEntry struct {
	Type string    `json:"type"`
	OID  string    `json:"oid"`
	Size int64     `json:"size"`
	Path string    `json:"path"`
	LFS  *lfsEntry `json:"lfs,omitempty"`
}

type lfsEntry struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

func (s *Server) serveTree(w http.ResponseWriter, r *http.Request, rp *repo, rev, dir string) {
	c := s.commitAt(w, rp, rev)
	if c == nil {
		return
	}
	dir = strings.Trim(dir, "/")
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "1"
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var entries []treeEntry
	dirs := map[string]bool{}
	for _, p := range sortedPaths(c.files) {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		rel := strings.TrimPrefix(p, prefix)
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			if i > 1 && !recursive {
				break
			}
			d := prefix + strings.Join(parts[:i], "/")
			if !dirs[d] {
				dirs[d] = true
				entries = append(entries, treeEntry{Type: "directory", OID: GitBlobID([]byte(c.sha + d)), Path: d})
			}
		}
		if len(parts) > 1 && !recursive {
			continue
		}
		e := c.files[p]
		te := treeEntry{Type: "file", OID: e.oid, Size: int64(len(e.data)), Path: p}
		if e.lfs {
			te.LFS = &lfsEntry{OID: e.sha256, Size: int64(len(e.data)), PointerSize: e.pointerLen}
		}
		entries = append(entries, te)
	}
	if dir != "" && len(entries) == 0 {
		writeError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", dir, rev))
		return
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	page := s.TreePageSize
	if page <= 0 {
		page = 1000
	}
	start := 0
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(entries) {
			writeError(w, http.StatusBadRequest, "", "invalid cursor")
			return
		}
		start = n
	}
	end := min(start+page, len(entries))
	if end < len(entries) {
		q := r.URL.Query()
		q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		w.Header().Set("Link", fmt.Sprintf("<%s%s?%s>; rel=\"next\"", s.URL, r.URL.EscapedPath(), q.Encode()))
	}
	out := entries[start:end]
	if out == nil {
		out = []treeEntry{}
	}
	writeJSON(w, out)
}

// parquetIndex maps config -> split -> shard paths, from the
// refs/convert/parquet branch. A "partial-{split}" directory lists as split.
func (s *Server) parquetIndex(rp *repo) (map[string]map[string][]string, bool) {
	sha, ok := rp.heads[ParquetBranch]
	if !ok {
		return nil, false
	}
	idx := map[string]map[string][]string{}
	for _, p := range sortedPaths(rp.commits[sha].files) {
		parts := strings.Split(p, "/")
		if len(parts) != 3 || !strings.HasSuffix(p, ".parquet") {
			continue
		}
		split := strings.TrimPrefix(parts[1], "partial-")
		if idx[parts[0]] == nil {
			idx[parts[0]] = map[string][]string{}
		}
		idx[parts[0]][split] = append(idx[parts[0]][split], p)
	}
	return idx, true
}

func (s *Server) serveParquet(w http.ResponseWriter, r *http.Request, rp *repo, rest []string) {
	idx, ok := s.parquetIndex(rp)
	if !ok {
		writeError(w, http.StatusNotFound, "", "no parquet conversion for "+rp.id)
		return
	}
	shardURLs := func(config, split string) []string {
		urls := make([]string, len(idx[config][split]))
		for i := range urls {
			urls[i] = fmt.Sprintf("%s/api/datasets/%s/parquet/%s/%s/%d.parquet", s.URL, rp.id,
				url.PathEscape(config), url.PathEscape(split), i)
		}
		return urls
	}
	switch len(rest) {
	case 0:
		out := map[string]map[string][]string{}
		for config, splits := range idx {
			out[config] = map[string][]string{}
			for split := range splits {
				out[config][split] = shardURLs(config, split)
			}
		}
		writeJSON(w, out)
	case 1:
		if idx[rest[0]] == nil {
			writeError(w, http.StatusNotFound, "", "config not found: "+rest[0])
			return
		}
		out := map[string][]string{}
		for split := range idx[rest[0]] {
			out[split] = shardURLs(rest[0], split)
		}
		writeJSON(w, out)
	case 2:
		if len(idx[rest[0]][rest[1]]) == 0 {
			writeError(w, http.StatusNotFound, "", "config/split not found: "+rest[0]+"/"+rest[1])
			return
		}
		writeJSON(w, shardURLs(rest[0], rest[1]))
	case 3:
		shards := idx[rest[0]][rest[1]]
		n, err := strconv.Atoi(strings.TrimSuffix(rest[2], ".parquet"))
		if err != nil || n < 0 || n >= len(shards) {
			writeError(w, http.StatusNotFound, "", "shard not found")
			return
		}
		loc := fmt.Sprintf("%s/datasets/%s/resolve/%s/%s", s.URL, rp.id, url.PathEscape(ParquetBranch), escapePath(shards[n]))
		http.Redirect(w, r, loc, http.StatusFound)
	default:
		writeError(w, http.StatusNotFound, "", "Not Found")
	}
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func (s *Server) sign(sha string) string {
	sum := sha256.Sum256([]byte("hubtest-cdn-secret/" + sha))
	return hex.EncodeToString(sum[:8])
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, id, rev, p string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	rp, ok := s.lookup(w, r, id)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.commitAt(w, rp, rev)
	if c == nil {
		s.mu.Unlock()
		return
	}
	e := c.files[p]
	s.mu.Unlock()
	w.Header().Set("X-Repo-Commit", c.sha)
	if e == nil {
		writeError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	if e.lfs {
		w.Header().Set("X-Linked-Etag", `"`+e.sha256+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(e.data)))
		w.Header().Set("ETag", `"`+e.oid+`"`)
		q := url.Values{}
		q.Set("response-content-disposition", fmt.Sprintf("inline; filename*=UTF-8''%s", url.PathEscape(path.Base(p))))
		q.Set("X-Amz-Expires", "3600")
		q.Set("X-Amz-Signature", s.sign(e.sha256))
		loc := fmt.Sprintf("%s/repos/%s/%s/%s?%s", s.CDNURL, e.sha256[:2], e.sha256[2:4], e.sha256, q.Encode())
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+e.oid+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", c.date, bytes.NewReader(e.data))
}

// ---- the CDN ----

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		// Like S3 with a pre-signed URL: a second credential is an error.
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>")
		return
	}
	sha := path.Base(r.URL.Path)
	s.mu.Lock()
	data, ok := s.blobs[sha]
	s.mu.Unlock()
	if !ok || r.URL.Query().Get("X-Amz-Signature") != s.sign(sha) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "<Error><Code>AccessDenied</Code></Error>")
		return
	}
	w.Header().Set("ETag", `"`+sha+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	if cd := r.URL.Query().Get("response-content-disposition"); cd != "" {
		w.Header().Set("Content-Disposition", cd)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}
