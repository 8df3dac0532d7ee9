package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// errStalled cancels a download that received nothing for idleTimeout.
var errStalled = errors.New("download stalled")

// Fetch downloads file f of dataset repo at commit (a sha, as in Resolved;
// a branch works but is not pinned) into the cache and returns the local
// path. The path ends in the extension(s) of f.Path (".jsonl.zst",
// ".parquet"), so format detection by name works on it; it must be treated
// as read-only.
//
// A file whose SHA256 or OID is known and already cached is returned
// without any request. Otherwise it is downloaded to a partial file,
// resumed with Range requests after dropped connections, checked against
// f.Size and its sha256 (or git blob id), and moved into place.
func (c *Client) Fetch(ctx context.Context, repo, commit string, f File) (string, error) {
	if c.initErr != nil {
		return "", c.initErr
	}
	if err := checkRepo(repo); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if commit == "" || f.Path == "" || strings.HasPrefix(f.Path, "/") {
		return "", fmt.Errorf("hub: Fetch needs a commit and a repo-relative file path")
	}
	pinned := isCommit(commit)
	key := fileKey(f)
	if key == "" && pinned {
		key = c.readIndex(repo, commit, f.Path)
	}
	if key != "" {
		if p := c.blobPath(key, f.Path); complete(p, f.Size) {
			c.log.Debug("hub: cached", "repo", repo, "path", f.Path, "file", p)
			return p, nil
		}
	}

	// One download per file: the partial file is locked across processes.
	pkey := key
	if pkey == "" {
		sum := sha256.Sum256([]byte(repo + "\x00" + commit + "\x00" + f.Path))
		pkey = "path/" + hex.EncodeToString(sum[:16])
	}
	partial := filepath.Join(c.cacheDir, "partial", filepath.FromSlash(pkey)+".incomplete")
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		return "", fmt.Errorf("hub: cache: %w", err)
	}
	unlock, err := lockFile(ctx, partial+".lock")
	if err != nil {
		return "", fmt.Errorf("hub: cache lock: %w", err)
	}
	defer unlock()
	if key != "" {
		if p := c.blobPath(key, f.Path); complete(p, f.Size) {
			return p, nil // another fetcher finished it
		}
	}

	u := fmt.Sprintf("%s/datasets/%s/resolve/%s/%s", c.base, repo, url.PathEscape(commit), escapePath(f.Path))
	t := target{what: "file", repo: repo, rev: commit, path: f.Path}
	for restarted := false; ; restarted = true {
		// done reports whether a key-less file turns out to be cached
		// already once the response names its ETag.
		done := func(m meta) bool {
			k := m.key()
			return key == "" && k != "" && complete(c.blobPath(k, f.Path), f.Size)
		}
		m, resumed, err := c.download(ctx, u, partial, f, t, done)
		if err != nil {
			return "", err
		}
		if pinned && m.commit != "" && !strings.EqualFold(m.commit, commit) {
			c.log.Warn("hub: the Hub served another commit than asked", "repo", repo, "path", f.Path, "asked", commit, "served", m.commit)
		}
		k := key
		if k == "" {
			k = m.key()
		}
		if k == "" {
			return "", fmt.Errorf("hub: %s of dataset %s: the Hub sent no ETag and no hash is listed, so it cannot be cached", f.Path, repo)
		}
		final := c.blobPath(k, f.Path)
		if !complete(final, f.Size) {
			if err := c.verify(partial, f, m, t); err != nil {
				os.Remove(partial)
				if resumed && !restarted {
					c.log.Warn("hub: resumed download failed verification; downloading again", "repo", repo, "path", f.Path)
					continue
				}
				return "", err
			}
			if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
				return "", fmt.Errorf("hub: cache: %w", err)
			}
			if err := os.Rename(partial, final); err != nil {
				return "", fmt.Errorf("hub: cache: %w", err)
			}
		} else {
			os.Remove(partial)
		}
		if key == "" && pinned {
			c.writeIndex(repo, commit, f.Path, k)
		}
		return final, nil
	}
}

// meta is what the Hub told about a file it served.
type meta struct {
	commit     string // X-Repo-Commit
	linkedEtag string // X-Linked-Etag: an LFS file's sha256
	etag       string // ETag of the response that carried the bytes
	size       int64  // X-Linked-Size or the full length from the response, -1 if unknown
}

// key is the cache key the response's ETags give.
func (m meta) key() string {
	for _, e := range []string{m.linkedEtag, m.etag} {
		switch {
		case isHex(e, 64):
			return "sha256/" + strings.ToLower(e)
		case isHex(e, 40):
			return "oid/" + strings.ToLower(e)
		}
	}
	if e := m.linkedEtag + m.etag; e != "" {
		sum := sha256.Sum256([]byte(e))
		return "etag/" + hex.EncodeToString(sum[:16])
	}
	return ""
}

func normalizeEtag(e string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(e), "W/"), `"`)
}

// fileKey is the cache key of f from its listed hashes, "" if none.
func fileKey(f File) string {
	switch {
	case isHex(f.SHA256, 64):
		return "sha256/" + strings.ToLower(f.SHA256)
	case isHex(f.OID, 40):
		return "oid/" + strings.ToLower(f.OID)
	}
	return ""
}

// blobPath is where content with key is stored, named with the
// extension(s) of repo path p.
func (c *Client) blobPath(key, p string) string {
	algo, sum, _ := strings.Cut(key, "/")
	return filepath.Join(c.cacheDir, "blobs", algo, sum[:2], sum+localExt(p))
}

// localExt is the extension of p to keep on the cached copy: the last one,
// and the one before it when the last is a compression (".jsonl.gz").
func localExt(p string) string {
	base := path.Base(p)
	ext := path.Ext(base)
	switch strings.ToLower(ext) {
	case ".gz", ".zst", ".zstd", ".bz2", ".xz", ".lz4", ".br":
		ext = path.Ext(strings.TrimSuffix(base, ext)) + ext
	}
	if len(ext) > 32 {
		return ""
	}
	for _, r := range ext {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return ""
		}
	}
	return ext
}

// complete reports whether the cached file p exists with the right size.
func complete(p string, size int64) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && (size <= 0 || st.Size() == size)
}

// The index maps a pinned (repo, commit, path) to the cache key learnt from
// the Hub, for files fetched without a listed hash.

func (c *Client) indexPath(repo, commit, p string) string {
	sum := sha256.Sum256([]byte(p))
	return filepath.Join(c.cacheDir, "index", filepath.FromSlash(repo), strings.ToLower(commit), hex.EncodeToString(sum[:16]))
}

func (c *Client) readIndex(repo, commit, p string) string {
	b, err := os.ReadFile(c.indexPath(repo, commit, p))
	if err != nil {
		return ""
	}
	k := strings.TrimSpace(string(b))
	if algo, sum, ok := strings.Cut(k, "/"); !ok || (algo != "sha256" && algo != "oid" && algo != "etag") || len(sum) < 4 || !isHex(sum, len(sum)) {
		return ""
	}
	return k
}

func (c *Client) writeIndex(repo, commit, p, key string) {
	if err := writeFileAtomic(c.indexPath(repo, commit, p), []byte(key+"\n")); err != nil {
		c.log.Warn("hub: caching an index entry", "repo", repo, "path", p, "error", err.Error())
	}
}

// download fills partial with the file at u, resuming what partial holds,
// retrying transient failures. resumed tells whether bytes of an earlier
// attempt (or run) were kept. If stop, called once the Hub's headers are
// in, returns true, it stops there.
func (c *Client) download(ctx context.Context, u, partial string, f File, t target, stop func(meta) bool) (m meta, resumed bool, err error) {
	m.size = -1
	for attempt := 0; ; {
		off := int64(0)
		if st, err := os.Stat(partial); err == nil {
			off = st.Size()
		}
		if f.Size > 0 && off > f.Size {
			if err := os.Truncate(partial, 0); err != nil {
				return m, false, fmt.Errorf("hub: cache: %w", err)
			}
			off = 0
		}
		if f.Size > 0 && off == f.Size && fileKey(f) != "" {
			return m, true, nil // a previous run got every byte
		}
		got, wrote, kept, stopped, err := c.downloadOnce(ctx, u, partial, off, t, stop)
		if got.commit != "" || got.etag != "" || got.linkedEtag != "" {
			m = got
		}
		resumed = resumed || kept
		if err == nil || stopped {
			return m, resumed, err
		}
		var te *transient
		if !errors.As(err, &te) {
			return m, resumed, final(err)
		}
		if wrote > 0 {
			attempt = 0 // progress: a flaky connection, not a dead one
		}
		if attempt >= c.maxRetries {
			return m, resumed, final(err)
		}
		if werr := c.wait(ctx, attempt, te.after, u, te.err); werr != nil {
			return m, resumed, werr
		}
		attempt++
	}
}

// downloadOnce makes one request for the bytes of u from off on and
// appends them to partial. kept tells whether the server resumed at off > 0.
func (c *Client) downloadOnce(ctx context.Context, u, partial string, off int64, t target, stop func(meta) bool) (m meta, wrote int64, kept, stopped bool, err error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if off > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, first, err := c.send(actx, u, hdr)
	if err != nil {
		return m, 0, false, false, err
	}
	defer resp.Body.Close()
	m = meta{
		commit:     first.Get("X-Repo-Commit"),
		linkedEtag: normalizeEtag(first.Get("X-Linked-Etag")),
		etag:       normalizeEtag(resp.Header.Get("ETag")),
		size:       -1,
	}
	if n, err := strconv.ParseInt(first.Get("X-Linked-Size"), 10, 64); err == nil {
		m.size = n
	}
	flag := os.O_WRONLY | os.O_CREATE
	switch resp.StatusCode {
	case http.StatusOK:
		flag |= os.O_TRUNC
		if m.size < 0 && resp.ContentLength >= 0 {
			m.size = resp.ContentLength
		}
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			os.Truncate(partial, 0)
			return m, 0, false, false, &transient{err: fmt.Errorf("hub: GET %s: asked for bytes from %d, got %q", redact(u), off, resp.Header.Get("Content-Range"))}
		}
		if m.size < 0 {
			m.size = total
		}
		flag |= os.O_APPEND
		kept = off > 0
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is as long as the file, or longer (stale).
		_, total, _ := parseContentRange(resp.Header.Get("Content-Range"))
		if total >= 0 && total == off {
			return m, 0, true, false, nil
		}
		os.Truncate(partial, 0)
		return m, 0, false, false, &transient{err: fmt.Errorf("hub: GET %s: range from %d not satisfiable", redact(u), off)}
	default:
		return m, 0, false, false, c.statusErr(resp, t)
	}
	if stop != nil && stop(m) {
		return m, 0, false, true, nil
	}
	out, err := os.OpenFile(partial, flag, 0o644)
	if err != nil {
		return m, 0, false, false, fmt.Errorf("hub: cache: %w", err)
	}
	idle := time.AfterFunc(c.idleTimeout, func() { cancel(errStalled) })
	defer idle.Stop()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			idle.Reset(c.idleTimeout)
			if _, werr := out.Write(buf[:n]); werr != nil {
				out.Close()
				return m, wrote, kept, false, fmt.Errorf("hub: cache: %w", werr)
			}
			wrote += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			if ctx.Err() != nil {
				return m, wrote, kept, false, context.Cause(ctx)
			}
			if errors.Is(context.Cause(actx), errStalled) {
				rerr = errStalled
			}
			return m, wrote, kept, false, &transient{err: fmt.Errorf("hub: GET %s: after %d bytes: %s", redact(u), off+wrote, c.scrub(rerr.Error()))}
		}
	}
	if err := out.Close(); err != nil {
		return m, wrote, kept, false, fmt.Errorf("hub: cache: %w", err)
	}
	return m, wrote, kept, false, nil
}

// parseContentRange parses "bytes START-END/TOTAL" or "bytes */TOTAL";
// TOTAL is -1 when "*".
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, -1, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, -1, false
	}
	total = -1
	if tot != "*" {
		n, err := strconv.ParseInt(tot, 10, 64)
		if err != nil {
			return 0, -1, false
		}
		total = n
	}
	if rng == "*" {
		return 0, total, true
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, total, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	return start, total, err == nil
}

// verify checks the downloaded partial file against the listed size and
// hashes, or, failing those, the hash the Hub's ETag gives.
func (c *Client) verify(partial string, f File, m meta, t target) error {
	fail := func(format string, args ...any) error {
		return c.newError(t, 0, "", fmt.Sprintf("hub: %s of dataset %s at %s: ", f.Path, t.repo, t.rev)+fmt.Sprintf(format, args...), ErrChecksum)
	}
	st, err := os.Stat(partial)
	if err != nil {
		return fmt.Errorf("hub: cache: %w", err)
	}
	want := f.Size
	if want <= 0 {
		want = m.size
	}
	if want >= 0 && st.Size() != want {
		return fail("got %d bytes, want %d", st.Size(), want)
	}
	wantSHA := strings.ToLower(f.SHA256)
	if wantSHA == "" && isHex(m.linkedEtag, 64) {
		wantSHA = strings.ToLower(m.linkedEtag)
	}
	wantOID := ""
	if wantSHA == "" && m.linkedEtag == "" { // not LFS: the OID is the content's
		if isHex(f.OID, 40) {
			wantOID = strings.ToLower(f.OID)
		} else if isHex(m.etag, 40) {
			wantOID = strings.ToLower(m.etag)
		}
	}
	if wantSHA == "" && wantOID == "" {
		return nil
	}
	in, err := os.Open(partial)
	if err != nil {
		return fmt.Errorf("hub: cache: %w", err)
	}
	defer in.Close()
	var h hash.Hash
	if wantSHA != "" {
		h = sha256.New()
	} else {
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", st.Size())
	}
	if _, err := io.Copy(h, in); err != nil {
		return fmt.Errorf("hub: cache: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if wantSHA != "" && got != wantSHA {
		return fail("sha256 %s, want %s", got, wantSHA)
	}
	if wantOID != "" && got != wantOID {
		return fail("git blob id %s, want %s", got, wantOID)
	}
	return nil
}
