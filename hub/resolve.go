package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File is one file of a dataset repo at a commit.
type File struct {
	// Path is the file's path in the repo; its extension tells its format.
	Path string `json:"path"`
	// Size is the file's size in bytes (of the content, for LFS files).
	Size int64 `json:"size"`
	// OID is git's blob id (sha1) of the file; for an LFS file it is the
	// id of the LFS pointer.
	OID string `json:"oid,omitempty"`
	// SHA256 is the LFS object id, the sha256 of the content, for LFS (and
	// Xet) files; "" for files stored in git.
	SHA256 string `json:"sha256,omitempty"`
}

// Resolved is a set of files of a dataset, pinned to the commit read.
type Resolved struct {
	Repo string `json:"repo"`
	// Revision is the revision asked for (a branch, tag or sha).
	Revision string `json:"revision,omitempty"`
	// Commit is the 40-hex commit sha the revision resolved to; Files
	// are those of this commit, and Fetch(Repo, Commit, f) reads them.
	Commit string `json:"commit"`
	// Files are sorted by Path.
	Files []File `json:"files"`
}

// URL is the hf:// URL of file f at the pinned commit.
func (r Resolved) URL(f File) string {
	return Ref{Repo: r.Repo, Revision: r.Commit, Glob: f.Path}.String()
}

// Resolve lists the files of ref.Repo at ref.Revision that match ref.Glob,
// and the commit sha the revision resolved to. A glob matching nothing is
// an error wrapping ErrNoMatch. A ref pinned to a commit sha whose listing
// is cached is resolved without any request.
func (c *Client) Resolve(ctx context.Context, ref Ref) (Resolved, error) {
	if c.initErr != nil {
		return Resolved{}, c.initErr
	}
	if err := checkRepo(ref.Repo); err != nil {
		return Resolved{}, fmt.Errorf("hub: %w", err)
	}
	rev := ref.Revision
	if rev == "" {
		rev = DefaultRevision
	}
	glob := strings.Trim(ref.Glob, "/")
	if glob == "" {
		glob = "**"
	}
	if err := checkGlob(glob); err != nil {
		return Resolved{}, fmt.Errorf("hub: %w", err)
	}
	dir := globDir(glob)
	var entries []File
	commit := ""
	if isCommit(rev) {
		if cached, ok := c.cachedTree(ref.Repo, strings.ToLower(rev), dir); ok {
			commit, entries = strings.ToLower(rev), cached
		}
	}
	if commit == "" {
		var err error
		if commit, err = c.commitOf(ctx, ref.Repo, rev); err != nil {
			return Resolved{}, err
		}
		if entries, err = c.listTree(ctx, ref.Repo, rev, commit, dir); err != nil {
			return Resolved{}, err
		}
	}
	out := Resolved{Repo: ref.Repo, Revision: rev, Commit: commit}
	for _, f := range entries {
		if matchGlob(glob, f.Path) {
			out.Files = append(out.Files, f)
		}
	}
	if len(out.Files) == 0 {
		return Resolved{}, c.newError(target{repo: ref.Repo}, 0, "", fmt.Sprintf(
			"hub: no file of dataset %s at revision %s (commit %s) matches %q", ref.Repo, rev, commit, ref.Glob), ErrNoMatch)
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Path < out.Files[j].Path })
	return out, nil
}

// commitOf resolves a branch, tag or sha to a commit sha.
func (c *Client) commitOf(ctx context.Context, repo, rev string) (string, error) {
	var info struct {
		SHA string `json:"sha"`
	}
	u := fmt.Sprintf("%s/api/datasets/%s/revision/%s", c.base, repo, url.PathEscape(rev))
	if _, err := c.getJSON(ctx, u, target{what: "revision", repo: repo, rev: rev}, &info); err != nil {
		return "", err
	}
	if !isCommit(info.SHA) {
		return "", fmt.Errorf("hub: revision %q of dataset %s: the Hub answered no commit sha", rev, repo)
	}
	return strings.ToLower(info.SHA), nil
}

type treeItem struct {
	Type string `json:"type"`
	OID  string `json:"oid"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

// listTree lists the files under dir ("" for the root) at commit,
// following pagination. A dir that does not exist lists nothing. rev is
// the revision asked for, for messages.
func (c *Client) listTree(ctx context.Context, repo, rev, commit, dir string) ([]File, error) {
	if cached, ok := c.cachedTree(repo, commit, dir); ok {
		return cached, nil
	}
	u := fmt.Sprintf("%s/api/datasets/%s/tree/%s", c.base, repo, commit)
	if dir != "" {
		// Escaped whole, slashes included, as huggingface_hub does.
		u += "/" + url.PathEscape(dir)
	}
	u += "?recursive=true"
	t := target{what: "tree", repo: repo, rev: rev, path: dir}
	var files []File
	for pages := 0; u != ""; pages++ {
		if pages > 1_000_000 {
			return nil, fmt.Errorf("hub: listing dataset %s: too many pages", repo)
		}
		var items []treeItem
		h, err := c.getJSON(ctx, u, t, &items)
		if err != nil {
			var he *Error
			if errors.As(err, &he) && he.StatusCode == 404 && he.Code == "EntryNotFound" {
				return nil, nil
			}
			return nil, err
		}
		for _, it := range items {
			if it.Type != "file" {
				continue
			}
			f := File{Path: it.Path, Size: it.Size, OID: strings.ToLower(it.OID)}
			if it.LFS != nil {
				f.SHA256 = strings.ToLower(it.LFS.OID)
				if it.LFS.Size > 0 {
					f.Size = it.LFS.Size
				}
			}
			files = append(files, f)
		}
		u = nextLink(h, u)
	}
	c.storeTree(repo, commit, dir, files)
	return files, nil
}

// Tree listings of a commit never change, so they are cached on disk.

func (c *Client) treeCachePath(repo, commit, dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(c.cacheDir, "trees", filepath.FromSlash(repo), commit, hex.EncodeToString(sum[:12])+".json")
}

func (c *Client) cachedTree(repo, commit, dir string) ([]File, bool) {
	b, err := os.ReadFile(c.treeCachePath(repo, commit, dir))
	if err != nil {
		return nil, false
	}
	var files []File
	if json.Unmarshal(b, &files) != nil {
		return nil, false
	}
	return files, true
}

func (c *Client) storeTree(repo, commit, dir string, files []File) {
	if files == nil {
		files = []File{}
	}
	b, err := json.Marshal(files)
	if err == nil {
		err = writeFileAtomic(c.treeCachePath(repo, commit, dir), b)
	}
	if err != nil {
		c.log.Warn("hub: caching a tree listing", "repo", repo, "error", err.Error())
	}
}

func writeFileAtomic(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
