package hub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ParquetFiles lists the Parquet shards of split of config ("" means
// "default") of dataset repo, as converted by the dataset viewer, pinned to
// the commit of the refs/convert/parquet branch read.
//
// It asks the Hub's Parquet listing (GET /api/datasets/{repo}/parquet/
// {config}/{split}) which shards exist, then lists them on the
// refs/convert/parquet branch at its current commit, under {config}/{split}/
// (or {config}/partial-{split}/ for a partial conversion), so that each file
// has a size and sha256 and Fetch(repo, Commit, f) reads exactly that
// conversion. Endpoints without the listing (some mirrors) are read from the
// branch alone.
func (c *Client) ParquetFiles(ctx context.Context, repo, config, split string) (Resolved, error) {
	if c.initErr != nil {
		return Resolved{}, c.initErr
	}
	if err := checkRepo(repo); err != nil {
		return Resolved{}, fmt.Errorf("hub: %w", err)
	}
	if config == "" {
		config = "default"
	}
	if split == "" {
		return Resolved{}, fmt.Errorf("hub: dataset %s: a split is needed to read its Parquet conversion", repo)
	}
	if strings.Contains(config, "/") || strings.Contains(split, "/") {
		return Resolved{}, fmt.Errorf("hub: dataset %s: bad config %q or split %q", repo, config, split)
	}
	t := target{what: "parquet", repo: repo, rev: ParquetRevision, path: config + "/" + split}

	var urls []string
	lu := fmt.Sprintf("%s/api/datasets/%s/parquet/%s/%s", c.base, repo, url.PathEscape(config), url.PathEscape(split))
	_, listErr := c.getJSON(ctx, lu, t, &urls)
	var he *Error
	if listErr != nil {
		// Auth failures and a missing dataset end here; a 404 for the
		// config/split (or an endpoint without the listing) is checked
		// against the branch below.
		if !errors.As(listErr, &he) || he.StatusCode != 404 || he.Code == "RepoNotFound" {
			return Resolved{}, listErr
		}
	}

	commit, err := c.commitOf(ctx, repo, ParquetRevision)
	if err != nil {
		if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrAuth) {
			return Resolved{}, c.newError(t, 404, "", fmt.Sprintf(
				"hub: dataset %s has no Parquet conversion (no %s branch); name its files with a path glob instead", repo, ParquetRevision), ErrNotFound)
		}
		return Resolved{}, err
	}
	var files []File
	for _, dir := range []string{config + "/" + split, config + "/partial-" + split} {
		entries, err := c.listTree(ctx, repo, ParquetRevision, commit, dir)
		if err != nil {
			return Resolved{}, err
		}
		for _, f := range entries {
			if strings.HasSuffix(f.Path, ".parquet") && strings.Count(f.Path, "/") == 2 {
				files = append(files, f)
			}
		}
		if len(files) > 0 {
			break
		}
	}
	if len(files) == 0 {
		return Resolved{}, c.newError(t, 404, "", fmt.Sprintf(
			"hub: config %q, split %q of dataset %s not found in its Parquet conversion (commit %s)", config, split, repo, commit), ErrNotFound)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	if listErr == nil && len(urls) != len(files) {
		c.log.Warn("hub: the Parquet listing and the refs/convert/parquet branch disagree; reading the branch",
			"repo", repo, "config", config, "split", split, "listed", len(urls), "on_branch", len(files), "commit", commit)
	}
	return Resolved{Repo: repo, Revision: ParquetRevision, Commit: commit, Files: files}, nil
}
