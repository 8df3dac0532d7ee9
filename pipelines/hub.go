package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/hub"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// StageHub is the --stage_hub flag (a Beam-style pipeline option, so
// 'sieve run' takes it beside --runner): a prefix on an object store
// (gs://bucket/prefix) where Hub sources are copied once, so that
// workers on other machines (Dataflow) read them from there. Each file
// goes to PREFIX/<repo>@<commit>/<sha256>/<name>, addressed by the pinned
// commit and the file's content, and is not copied again when an object
// of its size is there.
var StageHub = flag.String("stage_hub", "", "copy Hugging Face Hub sources once to this gs:// prefix (content-addressed by commit and sha256) and read them from there, as workers on other machines must")

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
		if *StageHub != "" {
			if p, err = stageHubFile(ctx, *StageHub, res, f, p); err != nil {
				return nil, nil, err
			}
		}
		paths = append(paths, p)
		urls = append(urls, res.URL(f))
	}
	return paths, urls, nil
}

func isHub(path string) bool { return strings.HasPrefix(path, "hf://") }

// stageHubFile copies a fetched Hub file (local) under prefix, unless an
// object of its size is there already, and returns the copy's path.
func stageHubFile(ctx context.Context, prefix string, res hub.Resolved, f hub.File, local string) (string, error) {
	sum := f.SHA256
	if sum == "" { // stored in git: hash the downloaded file
		h := sha256.New()
		in, err := os.Open(local)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, in)
		in.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", local, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	dst := fmt.Sprintf("%s/%s@%s/%s/%s", strings.TrimRight(prefix, "/"), res.Repo, res.Commit, sum, path.Base(f.Path))
	info, err := os.Stat(local)
	if err != nil {
		return "", err
	}
	if size, err := datasets.Size(ctx, dst); err == nil && size == info.Size() {
		return dst, nil // staged before
	}
	in, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer in.Close()
	w, err := datasets.Create(ctx, dst)
	if err != nil {
		return "", fmt.Errorf("--stage_hub: %w", err)
	}
	if _, err := io.Copy(w, in); err != nil {
		w.Close()
		return "", fmt.Errorf("--stage_hub: copy %s to %s: %w", f.Path, dst, err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("--stage_hub: copy %s to %s: %w", f.Path, dst, err)
	}
	slog.Info("staged a Hub file", "file", res.URL(f), "to", dst, "bytes", info.Size())
	return dst, nil
}
