package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/synth"
	"github.com/sieve-data/sieve/transforms"
)

// endpointStage is a recipe stage that calls a model.
type endpointStage interface {
	LLMEndpoint() *llm.Endpoint
}

// skipLLMStages marks the stages whose endpoint's API key is not in the
// environment: they are skipped, each with one line that says how to
// enable it. A topics stage whose name_with lacks its key runs unnamed
// (its own line says so).
func (p *Plan) skipLLMStages() {
	p.Skipped = map[int]bool{}
	for i, st := range p.Recipe.Stages {
		es, ok := st.Config.(endpointStage)
		if !ok || es.LLMEndpoint() == nil {
			continue
		}
		ep := es.LLMEndpoint()
		if err := ep.CheckKey(); err != nil {
			if _, ok := st.Config.(*recipe.Topics); ok {
				// Naming is optional: the stage runs, with keyword labels.
				if p.unnamed == nil {
					p.unnamed = map[int]bool{}
				}
				p.unnamed[i] = true
				p.SkipReasons = append(p.SkipReasons, fmt.Sprintf("stage %s (stages[%d]) does not name its topics (keyword labels): name_with needs %s; set the variable to enable it", st.Kind, i, ep.Describe()))
				continue
			}
			p.Skipped[i] = true
			p.SkipReasons = append(p.SkipReasons, fmt.Sprintf("stage %s (stages[%d]) skipped: it needs %s; set the variable to enable it", st.Kind, i, ep.Describe()))
		}
	}
}

// splitFailedCalls takes a generation stage's failed calls out of its
// rejected counts: they are in rejected.jsonl, with their error, but made
// no candidate, so the funnel counts them apart (neither generated nor
// dropped).
func splitFailedCalls(rejected []datasets.Count) (dropped []datasets.Count, failed int64) {
	for _, c := range rejected {
		if transforms.FailedCall(c.Reason) {
			failed += c.Count
			continue
		}
		dropped = append(dropped, c)
	}
	return dropped, failed
}

// cacheDir is where an LLM stage keeps its response cache.
func cacheDir(dir string, resolve func(string) string) string {
	if dir != "" {
		return resolve(dir)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "sieve", "llm")
}

func resolvePrompts(m map[string]string, resolve func(string) string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out[k] = resolve(m[k])
	}
	return out
}

// planSynth resolves the generation stages that run: their workers'
// configuration, doc_qa's documents (read, hashed and chunked here, and
// recorded as inputs) and self_instruct's seed file. Templates are loaded
// once here so that a bad prompt file fails before the run.
func (p *Plan) planSynth(ctx context.Context) error {
	r := p.Recipe
	p.synth = map[int]transforms.SynthConfig{}
	p.chunks = map[int][]synth.Chunk{}
	for i, st := range r.Stages {
		if p.Skipped[i] {
			continue
		}
		base := func(l recipe.LLMStage) transforms.SynthConfig {
			return transforms.SynthConfig{Stage: st.Kind, Kind: st.Kind, Endpoint: *l.Endpoint, CacheDir: cacheDir(l.Cache, r.ResolvePath)}
		}
		var cfg transforms.SynthConfig
		switch c := st.Config.(type) {
		case *recipe.EvolInstruct:
			e := c.EvolConfig
			e.Prompts = resolvePrompts(e.Prompts, r.ResolvePath)
			cfg = base(c.LLMStage)
			cfg.Mode, cfg.Evol = c.Mode, &e
		case *recipe.ChainOfThought:
			e := c.CoTConfig
			e.Prompts = resolvePrompts(e.Prompts, r.ResolvePath)
			cfg = base(c.LLMStage)
			cfg.Mode, cfg.CoT = c.Mode, &e
		case *recipe.DocQA:
			if !r.LicenseAllowed(c.License) {
				return fmt.Errorf("stage %s: documents have license %q, not in allow_licenses %v", st.Kind, c.License, r.AllowLicenses)
			}
			e := c.QAConfig
			e.Prompts = resolvePrompts(e.Prompts, r.ResolvePath)
			cfg = base(c.LLMStage)
			cfg.QA, cfg.License = &e, c.License
			chunks, err := p.readDocuments(ctx, st.Kind, c)
			if err != nil {
				return err
			}
			p.chunks[i] = chunks
		case *recipe.SelfInstruct:
			if err := selfInstructLicense(r, i, c); err != nil {
				return err
			}
			e := c.SelfInstructConfig
			e.Prompts = resolvePrompts(e.Prompts, r.ResolvePath)
			d := &transforms.SelfInstructDriver{Instructions: c.Instructions, SeedsPerPrompt: c.SeedsPerPrompt,
				MachinePerPrompt: c.MachinePerPrompt, MaxSeeds: c.MaxSeeds, MaxPrompts: c.MaxPrompts, Seed: c.Seed}
			if c.Seeds != "" {
				seeds, err := p.readSeeds(ctx, st.Kind, r.ResolvePath(c.Seeds), c.License)
				if err != nil {
					return err
				}
				d.Seeds = seeds
			}
			cfg = base(c.LLMStage)
			cfg.Self, cfg.SelfDriver, cfg.License = &e, d, c.License
		default:
			continue
		}
		if _, err := cfg.Task(); err != nil {
			return err
		}
		p.synth[i] = cfg
	}
	return nil
}

// readDocuments reads and chunks doc_qa's documents, recording each as an
// input (it holds no records: what is made from it counts as generated).
func (p *Plan) readDocuments(ctx context.Context, stage string, c *recipe.DocQA) ([]synth.Chunk, error) {
	var chunks []synth.Chunk
	seen := map[string]bool{}
	for _, pat := range c.Documents {
		files, err := datasets.Glob(ctx, p.Recipe.ResolvePath(pat))
		if err != nil {
			return nil, fmt.Errorf("stage %s: documents: %w", stage, err)
		}
		for _, f := range files {
			if seen[f] {
				continue // matched by two patterns: chunked once
			}
			seen[f] = true
			data, err := datasets.ReadFile(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("stage %s: document %s: %w", stage, f, err)
			}
			sum := sha256.Sum256(data)
			// The name the model, the cache key and the provenance see: as
			// the recipe wrote it (relative to the recipe), not where this
			// checkout happens to be.
			name := f
			if local := !strings.Contains(pat, "://") && !filepath.IsAbs(pat); local && p.Recipe.Dir != "" {
				if rel, err := filepath.Rel(p.Recipe.Dir, f); err == nil {
					name = filepath.ToSlash(rel)
				}
			}
			cs, err := synth.ChunkDocument(name, string(data), c.Chunk)
			if err != nil {
				return nil, fmt.Errorf("stage %s: document %s: %w", stage, f, err)
			}
			chunks = append(chunks, cs...)
			p.Inputs = append(p.Inputs, datasets.Input{Source: stage, File: name, Format: "document",
				Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		}
	}
	return chunks, nil
}

// selfInstructLicense checks the license self_instruct's samples will
// have against allow_licenses: the stage's license: when given, else
// the seeds' common license. A seeds file without license:, or seeds
// that may have several licenses (the new samples would have none), is
// refused when there is an allow list: an empty license never passes it.
func selfInstructLicense(r *recipe.Recipe, at int, c *recipe.SelfInstruct) error {
	if c.License != "" {
		if !r.LicenseAllowed(c.License) {
			return fmt.Errorf("stage self_instruct (stages[%d]): license %q is not in allow_licenses %v", at, c.License, r.AllowLicenses)
		}
		return nil
	}
	if len(r.AllowLicenses) == 0 {
		return nil
	}
	if c.Seeds != "" {
		return fmt.Errorf("stage self_instruct (stages[%d]): the seeds file %s has no license, and allow_licenses %v admits no sample without one: set license: to the seeds' license", at, c.Seeds, r.AllowLicenses)
	}
	// The samples reaching the stage: the sources' and earlier generation
	// stages' licenses.
	lic := map[string]bool{}
	for _, s := range r.Sources {
		lic[strings.ToLower(s.License)] = true
	}
	for _, st := range r.Stages[:at] {
		switch e := st.Config.(type) {
		case *recipe.DocQA:
			lic[strings.ToLower(e.License)] = true
		case *recipe.SelfInstruct:
			if e.License != "" {
				lic[strings.ToLower(e.License)] = true
			}
		}
	}
	if len(lic) > 1 {
		return fmt.Errorf("stage self_instruct (stages[%d]): its seeds may have licenses %s, so the new samples' license is unknown and allow_licenses %v would not admit them: set license: to their license",
			at, strings.Join(slices.Sorted(maps.Keys(lic)), ", "), r.AllowLicenses)
	}
	return nil
}

// readSeeds reads self_instruct's seed file (any format sieve reads),
// giving the seeds license; a malformed seed fails the plan.
func (p *Plan) readSeeds(ctx context.Context, stage, file, license string) ([]datasets.Sample, error) {
	info, err := datasets.ScanFile(ctx, file, 0)
	if err != nil {
		return nil, fmt.Errorf("stage %s: seeds: %w", stage, err)
	}
	var seeds []datasets.Sample
	_, err = datasets.ReadSamples(ctx, file, datasets.ReadOptions{Source: stage + ".seeds", Format: datasets.FormatAuto, License: license},
		func(s datasets.Sample) error { seeds = append(seeds, s); return nil },
		func(d datasets.DeadLetter) error {
			return fmt.Errorf("line %d: %s", d.Line, d.Reason)
		})
	if err != nil {
		return nil, fmt.Errorf("stage %s: seeds %s: %w", stage, file, err)
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("stage %s: seeds %s: no samples", stage, file)
	}
	p.Inputs = append(p.Inputs, datasets.Input{Source: stage, File: file, Format: "seeds",
		Bytes: info.Bytes, SHA256: info.SHA256})
	return seeds, nil
}
