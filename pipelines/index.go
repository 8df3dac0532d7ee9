package pipelines

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// lastFuzzy returns the recipe's last fuzzy_dedup stage, if any.
func lastFuzzy(r *recipe.Recipe) *recipe.FuzzyDedup {
	var out *recipe.FuzzyDedup
	for _, st := range r.Stages {
		if f, ok := st.Config.(*recipe.FuzzyDedup); ok {
			out = f
		}
	}
	return out
}

// buildIndex computes the MinHash-LSH index of a version's samples with a
// stage's text settings and bands.
func buildIndex(ctx context.Context, v *datasets.Version, cfg *recipe.FuzzyDedup) (*dedup.Index, error) {
	ix, err := dedup.NewIndex(dedup.IndexParams{Text: cfg.Text, Bands: cfg.Bands, Rows: cfg.Rows})
	if err != nil {
		return nil, err
	}
	signer, hasher := cfg.Text.NewSigner(), cfg.Text.NewHasher()
	mode := dedup.KeyMode(cfg.Key)
	err = v.ReadSamples(ctx, func(_ string, s *datasets.Sample) error {
		sh := signer.Shingles(dedup.SampleText(s.Messages, mode))
		if len(sh) == 0 {
			return nil
		}
		return ix.AddWithSet(s.ID, hasher.Signature(sh), dedup.CompactSet(sh))
	})
	return ix, err
}

func saveIndex(ctx context.Context, ix *dedup.Index, path string) error {
	var buf bytes.Buffer
	if err := ix.Save(&buf); err != nil {
		return err
	}
	return datasets.WriteFile(ctx, path, buf.Bytes())
}

// writeVersionIndex saves the index of the version being committed (its
// shards are in staging), so later recipes can dedup against it without
// re-processing it.
func writeVersionIndex(ctx context.Context, staging string, m *datasets.Manifest, cfg *recipe.FuzzyDedup) error {
	v := &datasets.Version{Ref: datasets.Ref{Name: m.Name, Version: "staging"}, Dir: staging, Manifest: m}
	ix, err := buildIndex(ctx, v, cfg)
	if err != nil {
		return fmt.Errorf("minhash index: %w", err)
	}
	return saveIndex(ctx, ix, staging+"/"+transforms.IndexFile)
}

// againstIndexes resolves a fuzzy stage's reference versions to index
// files: the version's own when it has one made with the same settings,
// else one built now from its shards into the run's staging directory.
func againstIndexes(ctx context.Context, store datasets.Store, staging string, cfg *recipe.FuzzyDedup, parents []*datasets.Version) (paths, refs []string, err error) {
	for _, a := range cfg.Against {
		ref, _ := datasets.ParseRef(a)
		ref, err := store.Resolve(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		var v *datasets.Version
		for _, p := range parents {
			if p.Ref == ref {
				v = p
			}
		}
		if v == nil {
			return nil, nil, fmt.Errorf("against %s: not opened", ref)
		}
		own := v.Dir + "/" + transforms.IndexFile
		if ok, _ := sameParams(ctx, own, cfg); ok {
			paths, refs = append(paths, own), append(refs, ref.String())
			continue
		}
		slog.Info("building a MinHash index of the reference version", "version", ref.String())
		ix, err := buildIndex(ctx, v, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("against %s: %w", ref, err)
		}
		path := fmt.Sprintf("%s/_against_%s_%s.idx", staging, ref.Name, ref.Version)
		if err := saveIndex(ctx, ix, path); err != nil {
			return nil, nil, err
		}
		paths, refs = append(paths, path), append(refs, ref.String())
	}
	return paths, refs, nil
}

// sameParams tells whether an index file exists and was built with the
// stage's text settings and bands.
func sameParams(ctx context.Context, path string, cfg *recipe.FuzzyDedup) (bool, error) {
	data, err := datasets.ReadFile(ctx, path)
	if err != nil {
		return false, err
	}
	ix, err := dedup.LoadIndex(bytes.NewReader(data))
	if err != nil {
		return false, err
	}
	p := ix.Params()
	return p.Text == cfg.Text && p.Bands == cfg.Bands && p.Rows == cfg.Rows, nil
}
