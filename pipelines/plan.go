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
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/synth"
	"github.com/sieve-data/sieve/transforms"
)

// Plan is a recipe resolved against the file system: every source's files
// listed, sized and hashed. Building it is the recipe's second validation:
// a missing file or an empty glob fails here, before any runner starts.
type Plan struct {
	Recipe  *recipe.Recipe
	Store   datasets.Store
	Tasks   []transforms.ReadTask
	Inputs  []datasets.Input // one per file, Records etc. still zero
	Parents []*datasets.Version
	against map[*recipe.FuzzyDedup]transforms.AgainstConfig
	// synth holds the workers' configuration of each generation stage
	// that runs (by stage index), chunks doc_qa's document chunks.
	synth  map[int]transforms.SynthConfig
	chunks map[int][]synth.Chunk
	// Skipped marks stages (by index) that cannot run here: LLM stages
	// whose endpoint's API key is not in the environment. SkipReasons
	// says why, one line each.
	Skipped     map[int]bool
	SkipReasons []string
	// unnamed marks topics stages whose name_with endpoint's API key is
	// not in the environment: they run with keyword labels (a line of
	// SkipReasons says so).
	unnamed map[int]bool
	// SpillBudget is the bytes of samples each spiller and writer keeps
	// in memory before it writes sorted runs (0: the default,
	// transforms.DefaultSpillBudget); it bounds the run's memory and
	// does not change its output.
	SpillBudget int
	// ContentID hashes what determines the output's bytes: the code
	// (CodeVersion: sieve's version and VCS revision), the recipe (less
	// the store root), every input file's path and SHA-256, and the
	// parents' content ids.
	ContentID string
}

// SplitBytes is the size above which an uncompressed JSONL input is read
// in parallel as byte ranges of about this size.
var SplitBytes int64 = 16 << 20

// NewPlan lists and hashes the recipe's input files.
func NewPlan(ctx context.Context, r *recipe.Recipe, store datasets.Store) (*Plan, error) {
	p := &Plan{Recipe: r, Store: store}
	for _, src := range r.Sources {
		var files, aliases []string
		format, _ := datasets.ParseFormat(src.Format)
		if src.Dataset != "" {
			ref, _ := datasets.ParseRef(src.Dataset)
			v, err := store.OpenVersion(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			p.Parents = append(p.Parents, v)
			for _, sh := range v.Shards() {
				files = append(files, v.ShardPath(sh))
				aliases = append(aliases, v.ShardName(sh)) // not the store's path
			}
			format = datasets.FormatSieve
		} else if isHub(src.Path) {
			var err error
			files, aliases, err = hubFiles(ctx, src)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
		} else {
			var err error
			files, err = datasets.Glob(ctx, r.ResolvePath(src.Path))
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			// Samples, dead letters and the manifest name a local file as
			// the recipe does (relative to it), not by where this checkout
			// is: two clones then write the same bytes.
			if r.ResolvePath(src.Path) != src.Path {
				for _, f := range files {
					rel, err := filepath.Rel(r.Dir, f)
					if err != nil {
						aliases = nil
						break
					}
					aliases = append(aliases, filepath.ToSlash(rel))
				}
			}
		}
		alias := func(i int) string {
			if i < len(aliases) {
				return aliases[i]
			}
			return files[i]
		}
		opt := datasets.ReadOptions{Source: src.Name, Format: format, Roles: src.Roles,
			TextField: src.TextField, License: src.License, Limit: src.Limit}
		split := SplitBytes
		if src.Limit > 0 {
			split = 0 // a limit counts records in file order: one reader
		}
		var limited, limitedAliases []string
		for i, f := range files {
			if _, _, err := datasets.DetectContainer(f); err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			info, stored, err := scanInput(ctx, f, split)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", src.Name, err)
			}
			p.Inputs = append(p.Inputs, datasets.Input{Source: src.Name, File: alias(i), Bytes: info.Bytes, SHA256: info.SHA256, Checksum: stored})
			if src.Limit > 0 {
				limited = append(limited, f)
				limitedAliases = append(limitedAliases, alias(i))
				continue
			}
			fopt := opt
			if len(info.Splits) > 0 && fopt.Format == datasets.FormatAuto {
				// Every range must decode the same way: detect once.
				if f, err := datasets.DetectFileFormat(ctx, f); err == nil {
					fopt.Format = f
				}
			}
			if len(info.Splits) == 0 {
				p.Tasks = append(p.Tasks, transforms.ReadTask{Options: fopt, Files: []string{f}, Aliases: []string{alias(i)}})
			}
			for _, rg := range info.Splits {
				ropt := fopt
				ropt.Range = rg
				p.Tasks = append(p.Tasks, transforms.ReadTask{Options: ropt, Files: []string{f}, Aliases: []string{alias(i)}})
			}
		}
		if len(limited) > 0 {
			p.Tasks = append(p.Tasks, transforms.ReadTask{Options: opt, Files: limited, Aliases: limitedAliases})
		}
	}
	p.skipLLMStages()
	if err := p.planSynth(ctx); err != nil {
		return nil, err
	}
	// Versions a fuzzy_dedup stage dedups against are inputs too.
	for _, st := range r.Stages {
		f, ok := st.Config.(*recipe.FuzzyDedup)
		if !ok {
			continue
		}
		for _, a := range f.Against {
			ref, _ := datasets.ParseRef(a)
			v, err := store.OpenVersion(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("stage %s: against %s: %w", st.Kind, a, err)
			}
			p.Parents = append(p.Parents, v)
		}
	}
	cid, err := p.contentID()
	if err != nil {
		return nil, err
	}
	p.ContentID = cid
	return p, nil
}

func (p *Plan) contentID() (string, error) {
	recipeJSON, err := p.Recipe.ContentCanonical()
	if err != nil {
		return "", err
	}
	type input struct {
		Source, File, SHA256 string
		Checksum             string `json:",omitempty"` // an object store's (gs://), not read
	}
	type parent struct {
		Ref, ContentID string
	}
	doc := struct {
		Sieve   string
		Recipe  json.RawMessage
		Inputs  []input
		Parents []parent
		Skipped []string
	}{Sieve: CodeVersion(), Recipe: recipeJSON, Skipped: p.SkipReasons}
	for _, in := range p.Inputs {
		doc.Inputs = append(doc.Inputs, input{in.Source, in.File, in.SHA256, in.Checksum})
	}
	for _, v := range p.Parents {
		doc.Parents = append(doc.Parents, parent{v.Ref.String(), v.Manifest.ContentID})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}
