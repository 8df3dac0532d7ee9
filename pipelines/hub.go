package pipelines

import (
	"context"
	"fmt"
	"strings"

	"github.com/sieve-data/sieve/hub"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// hubFiles resolves an hf:// source on the Hugging Face Hub (pinned to the
// commit the revision names now), downloads its files into the local
// content-addressed cache and returns their local paths with the
// commit-pinned hf:// URLs that name them in samples and the manifest.
// Token and endpoint come from HF_TOKEN and HF_ENDPOINT.
func hubFiles(ctx context.Context, src recipe.Source) (paths, urls []string, err error) {
	ref, err := hub.ParseURL(src.Path)
	if err != nil {
		return nil, nil, err
	}
	c := hub.New(hub.Options{})
	var res hub.Resolved
	if ref.Glob == "" && src.Split != "" {
		res, err = c.ParquetFiles(ctx, ref.Repo, src.Config, src.Split)
	} else {
		res, err = c.Resolve(ctx, ref)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, f := range res.Files {
		p, err := c.Fetch(ctx, res.Repo, res.Commit, f)
		if err != nil {
			return nil, nil, fmt.Errorf("fetch %s: %w", f.Path, err)
		}
		paths = append(paths, p)
		urls = append(urls, res.URL(f))
	}
	return paths, urls, nil
}

func isHub(path string) bool { return strings.HasPrefix(path, "hf://") }
