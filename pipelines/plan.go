// Package pipelines turns a recipe into an Apache Beam pipeline, runs it
// on the runner Beam's standard flags select (prism in-process by
// default, any portable job server with --runner=universal, Dataflow with
// --runner=dataflow) and commits the result as a new dataset version: the
// manifest is assembled from what the writers actually wrote, the funnel
// is checked to add up, and the version becomes visible only once
// complete.
package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// Plan is a recipe resolved against the file system: every source's files
// listed, sized and hashed. Building it is the recipe's second validation:
// a missing file or an empty glob fails here, before any runner starts.
type Plan struct {
	Recipe *recipe.Recipe
	Tasks  []transforms.ReadTask
	Inputs []datasets.Input // one per file, Records etc. still zero
}

// NewPlan lists and hashes the recipe's input files.
func NewPlan(ctx context.Context, r *recipe.Recipe) (*Plan, error) {
	p := &Plan{Recipe: r}
	for _, src := range r.Sources {
		pattern := r.ResolvePath(src.Path)
		files, err := datasets.Glob(ctx, pattern)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
		format, _ := datasets.ParseFormat(src.Format)
		opt := datasets.ReadOptions{Source: src.Name, Format: format, Roles: src.Roles,
			TextField: src.TextField, License: src.License, Limit: src.Limit}
		for _, f := range files {
			if _, _, err := datasets.DetectContainer(f); err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			size, sum, err := hashFile(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			p.Inputs = append(p.Inputs, datasets.Input{Source: src.Name, File: f, Bytes: size, SHA256: sum})
		}
		if src.Limit > 0 {
			p.Tasks = append(p.Tasks, transforms.ReadTask{Options: opt, Files: files})
			continue
		}
		for _, f := range files {
			p.Tasks = append(p.Tasks, transforms.ReadTask{Options: opt, Files: []string{f}})
		}
	}
	return p, nil
}

func hashFile(ctx context.Context, file string) (int64, string, error) {
	rc, err := datasets.Open(ctx, file)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", file, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
