// Package recipe reads sieve's YAML recipes: the named sources to merge,
// the ordered stages to run and the output to write. Parsing is strict:
// an unknown key, a bad value or a missing required field is an error
// naming the file, line and key. The package is plain Go; package
// pipelines turns a Recipe into a Beam graph.
package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
	"github.com/sieve-data/sieve/filters"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// Recipe is one job: sources in, stages, one dataset version out.
type Recipe struct {
	// Name is the dataset name the output version is stored under.
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Sources     []Source `yaml:"sources"`
	Stages      []Stage  `yaml:"stages"`
	Output      Output   `yaml:"output"`
	// AllowLicenses, when set, lists the only licenses a source may
	// declare; a source with another (or none) is refused.
	AllowLicenses []string `yaml:"allow_licenses"`
	// Train, when present, holds the settings of `sieve train RECIPE`.
	Train *Train `yaml:"train"`
	// LLM holds defaults for every stage that calls a model: its
	// endpoint (limits and budget included) and cache, written into
	// each such stage when the recipe is parsed, the stage's own keys
	// winning (see LLMDefaults).
	LLM *LLMDefaults `yaml:"llm"`

	// File is the recipe's path and Dir the directory relative paths in
	// it are resolved against. Set by Load.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
}

// Source is one input dataset: a path or glob (local or any scheme of
// Beam's filesystem package, such as gs://) in one record format.
type Source struct {
	Name string `yaml:"name" json:"name,omitempty"`
	Path string `yaml:"path" json:"path,omitempty"`
	// Dataset reads a version of a dataset in the store (NAME[@VERSION],
	// latest by default) instead of Path; the version becomes a parent of
	// the one this recipe writes.
	Dataset string `yaml:"dataset" json:"dataset,omitempty"`
	Format  string `yaml:"format" json:"format,omitempty"`
	License string `yaml:"license" json:"license,omitempty"`
	// Limit reads at most this many records of the source (0: all).
	Limit int64 `yaml:"limit" json:"limit,omitempty"`
	// Roles maps extra role tags of this source (e.g. ShareGPT's "bing")
	// to system, user or assistant.
	Roles map[string]string `yaml:"roles" json:"roles,omitempty"`
	// Config and Split select a Hugging Face dataset's Parquet files when
	// Path is hf://datasets/OWNER/NAME[@REVISION] without a file glob.
	Config string `yaml:"config" json:"config,omitempty"`
	Split  string `yaml:"split" json:"split,omitempty"`
	// Weight is the source's proportion of the output, applied after
	// every stage (deterministically, by a seeded hash of sample ids);
	// give it to every source or to none.
	Weight float64 `yaml:"weight" json:"weight,omitempty"`
	// MaxSamples caps how many of the source's samples the output keeps.
	MaxSamples int64 `yaml:"max_samples" json:"max_samples,omitempty"`
	// TextField names the text field of plain-text records ("text").
	TextField string `yaml:"text_field" json:"text_field,omitempty"`
}

// Output says where and how the dataset version is written.
type Output struct {
	// Store is the root of the version store (default ./store, relative
	// to the working directory; the --store flag overrides it).
	Store string `yaml:"store" json:"store,omitempty"`
	// Shards is the number of train shards (default 1); TestShards the
	// number of test shards (default 1 when TestRatio > 0).
	Shards     int `yaml:"shards" json:"shards,omitempty"`
	TestShards int `yaml:"test_shards" json:"test_shards,omitempty"`
	// Compression of Parquet pages: zstd (default), snappy, gzip, none.
	Compression string `yaml:"compression" json:"compression,omitempty"`
	// TestRatio is the fraction of samples, chosen by a hash of their id
	// and SplitSeed, that go to the test split.
	TestRatio float64 `yaml:"test_ratio" json:"test_ratio,omitempty"`
	SplitSeed string  `yaml:"split_seed" json:"split_seed,omitempty"`
	// MixSeed seeds the choice of samples when sources are mixed by
	// weight or capped by max_samples.
	MixSeed string `yaml:"mix_seed" json:"mix_seed,omitempty"`
	// Report: false skips the version's report (report/index.html and
	// its PNGs; docs/report.md), written by default. Not part of the
	// content id: the report is drawn from the version's files.
	Report *bool `yaml:"report" json:"-"`
}

// WantsReport tells whether the version's report is written (the
// default; output.report: false turns it off).
func (o *Output) WantsReport() bool { return o.Report == nil || *o.Report }

// LicenseAllowed tells whether allow_licenses admits license (any
// license when the recipe gives no list); case does not matter.
func (r *Recipe) LicenseAllowed(license string) bool {
	return len(r.AllowLicenses) == 0 || slices.ContainsFunc(r.AllowLicenses, func(l string) bool { return strings.EqualFold(l, license) })
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (r *Recipe) validate() error {
	if r.Name == "" {
		return keyErr("name", "required")
	}
	if !nameRE.MatchString(r.Name) {
		return keyErr("name", "%q: use letters, digits, '.', '_' and '-' only", r.Name)
	}
	if len(r.Sources) == 0 {
		return keyErr("sources", "at least one source is required")
	}
	if len(r.AllowLicenses) > 0 {
		for i, s := range r.Sources {
			if !r.LicenseAllowed(s.License) {
				lic := s.License
				if lic == "" {
					lic = "(none)"
				}
				return keyErr(fmt.Sprintf("sources[%d].license", i), "source %s has license %s, not in allow_licenses %v", s.Name, lic, r.AllowLicenses)
			}
		}
	}
	weighted := 0
	for _, s := range r.Sources {
		if s.Weight > 0 {
			weighted++
		}
	}
	if weighted > 0 && weighted < len(r.Sources) {
		return keyErr("sources", "weight: give every source a weight, or none (%d of %d have one)", weighted, len(r.Sources))
	}
	if err := r.validateTopicStages(); err != nil {
		return err
	}
	seen := map[string]int{}
	for i, s := range r.Sources {
		if j, ok := seen[s.Name]; ok {
			return keyErr(fmt.Sprintf("sources[%d].name", i), "%q is also the name of sources[%d]", s.Name, j)
		}
		seen[s.Name] = i
	}
	return nil
}

func (s *Source) validate() error {
	if s.Name == "" {
		return keyErr("name", "required")
	}
	if !nameRE.MatchString(s.Name) {
		return keyErr("name", "%q: use letters, digits, '.', '_' and '-' only", s.Name)
	}
	switch {
	case s.Path == "" && s.Dataset == "":
		return keyErr("path", "required (or dataset: NAME@VERSION to read a stored version)")
	case s.Path != "" && s.Dataset != "":
		return keyErr("dataset", "give path or dataset, not both")
	case s.Dataset != "":
		if _, err := datasets.ParseRef(s.Dataset); err != nil {
			return keyErr("dataset", "%v", err)
		}
	}
	if _, err := datasets.ParseFormat(s.Format); err != nil {
		return keyErr("format", "%v", err)
	}
	if s.Limit < 0 {
		return keyErr("limit", "must be ≥ 0, got %d", s.Limit)
	}
	if s.Weight < 0 {
		return keyErr("weight", "must be ≥ 0, got %g", s.Weight)
	}
	if s.MaxSamples < 0 {
		return keyErr("max_samples", "must be ≥ 0, got %d", s.MaxSamples)
	}
	for tag, role := range s.Roles {
		switch role {
		case datasets.RoleSystem, datasets.RoleUser, datasets.RoleAssistant:
		default:
			return keyErr("roles", "%q maps to %q; want system, user or assistant", tag, role)
		}
	}
	return nil
}

func (o *Output) validate() error {
	if o.Shards < 0 || o.Shards > 100000 {
		return keyErr("shards", "must be between 1 and 100000, got %d", o.Shards)
	}
	if o.TestShards < 0 || o.TestShards > 100000 {
		return keyErr("test_shards", "must be between 1 and 100000, got %d", o.TestShards)
	}
	switch o.Compression {
	case "", "zstd", "snappy", "gzip", "none":
	default:
		return keyErr("compression", "unknown codec %q (want zstd, snappy, gzip or none)", o.Compression)
	}
	if o.TestRatio < 0 || o.TestRatio >= 1 {
		return keyErr("test_ratio", "must be in [0, 1), got %g", o.TestRatio)
	}
	return nil
}

// Stage is one step of the recipe, written as a one-key mapping from the
// stage kind to its settings, e.g. "- exact_dedup: {key: prompt}".
type Stage struct {
	Kind   string
	Line   int
	Config StageConfig
}

// StageConfig is the settings of one stage kind.
type StageConfig interface {
	defaults()
	validate() error
}

// ExactDedup drops samples whose normalised text (lower case, white space
// collapsed) equals an earlier one's, keeping the smallest id.
type ExactDedup struct {
	// Key is "conversation" (every message, the default), "prompt"
	// (system and user turns only), "response" (assistant turns only) or
	// "turns" (prompt and response both equal: the same key as
	// conversation).
	Key string `yaml:"key" json:"key,omitempty"`
}

func (c *ExactDedup) defaults() {
	if c.Key == "" {
		c.Key = string(dedup.KeyConversation)
	}
}

func (c *ExactDedup) validate() error {
	if _, err := dedup.ParseKeyMode(c.Key); err != nil {
		return keyErr("key", "%v", err)
	}
	return nil
}

// FuzzyDedup removes near duplicates with MinHash-LSH; see
// transforms.FuzzyDedupMarks and docs/dedup.md.
type FuzzyDedup struct {
	// Key is the text compared: "conversation" (every message),
	// "prompt" (system and user turns), "response" (assistant turns) or
	// "turns" (candidates by the response, duplicates only when the
	// prompts' and the responses' Jaccard are both at least the
	// threshold; needs verify exact or estimate, the default unless
	// verify is none or against is given). See docs/dedup.md.
	Key string `yaml:"key" json:"key"`
	// Threshold is the Jaccard similarity of shingle sets from which two
	// samples are duplicates (default 0.7).
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Bands and Rows of the LSH index; both 0 (the default) chooses them
	// from the threshold, weighting misses 0.95 and false candidates 0.05.
	Bands int `yaml:"bands" json:"bands,omitempty"`
	Rows  int `yaml:"rows" json:"rows,omitempty"`
	// Verify candidates: exact (default), estimate or none.
	Verify string `yaml:"verify" json:"verify"`
	// Edges of a bucket: linear (default; every member to the bucket's
	// first three and to its predecessor, linear in the bucket's size),
	// all (every pair, up to 2,000 a bucket) or star.
	Edges string `yaml:"edges" json:"edges"`
	// Keep each cluster's smallest_id (default), longest or quality.
	Keep string `yaml:"keep" json:"keep"`
	// Rounds of large-star/small-star (default 10); a run whose clusters
	// have not converged by then fails rather than commit.
	Rounds int `yaml:"rounds" json:"rounds"`
	// Text says how texts become shingles and signatures.
	Text dedup.TextConfig `yaml:"text" json:"text"`
	// Against lists stored versions (NAME[@VERSION]) to dedup against
	// without re-processing them: samples near-duplicating one of theirs
	// are dropped, looked up in the version's saved MinHash index.
	Against []string `yaml:"against" json:"against,omitempty"`
}

func newFuzzyDedup() StageConfig {
	return &FuzzyDedup{Threshold: 0.7, Verify: "exact", Edges: "linear", Keep: "smallest_id", Rounds: 10, Text: dedup.DefaultTextConfig()}
}

func (c *FuzzyDedup) defaults() {
	if c.Key == "" {
		// turns keeps different answers to one prompt apart (the planted
		// pairs of go run ./bench/dedupbench -keys, docs/dedup.md); it
		// needs verification and has no saved index, so without them the
		// default stays conversation.
		c.Key = string(dedup.KeyTurns)
		if c.Verify == "none" || len(c.Against) > 0 {
			c.Key = string(dedup.KeyConversation)
		}
	}
	if c.Bands == 0 && c.Rows == 0 {
		c.Bands, c.Rows = dedup.OptimalBands(c.Threshold, c.Text.Perms(), dedup.DefaultFPWeight, dedup.DefaultFNWeight)
	}
}

func (c *FuzzyDedup) validate() error {
	if _, err := dedup.ParseKeyMode(c.Key); err != nil {
		return keyErr("key", "%v", err)
	}
	if c.Threshold <= 0 || c.Threshold > 1 {
		return keyErr("threshold", "must be in (0, 1], got %g", c.Threshold)
	}
	if err := c.Text.Validate(); err != nil {
		return keyErr("text", "%v", err)
	}
	if !(c.Bands == 0 && c.Rows == 0) && (c.Bands <= 0 || c.Rows <= 0 || c.Bands*c.Rows > c.Text.Perms()) {
		return keyErr("bands", "bands × rows must be positive and at most num_perm (%d), got %d × %d", c.Text.Perms(), c.Bands, c.Rows)
	}
	switch c.Verify {
	case "exact", "estimate", "none":
	default:
		return keyErr("verify", "want exact, estimate or none, got %q", c.Verify)
	}
	if c.Key == string(dedup.KeyTurns) {
		// Turns compares prompts at verification only: unverified, it
		// would be key response.
		if c.Verify == "none" {
			return keyErr("verify", "key turns needs verification (exact or estimate): its candidates come from the responses alone")
		}
		if len(c.Against) > 0 {
			return keyErr("against", "not supported with key turns (a saved index holds one shingle set a sample); use key response or conversation")
		}
	}
	switch c.Edges {
	case "linear", "all", "star":
	default:
		return keyErr("edges", "want linear, all or star, got %q", c.Edges)
	}
	switch c.Keep {
	case "smallest_id", "longest", "quality":
	default:
		return keyErr("keep", "want smallest_id, longest or quality, got %q", c.Keep)
	}
	for i, a := range c.Against {
		if _, err := datasets.ParseRef(a); err != nil {
			return keyErr(fmt.Sprintf("against[%d]", i), "%v", err)
		}
	}
	if c.Rounds < 1 || c.Rounds > 64 {
		return keyErr("rounds", "must be between 1 and 64, got %d", c.Rounds)
	}
	return nil
}

// Filter runs the rule-based quality filters of package filters (length,
// Gopher quality and repetition, SFT rules, language); see docs/filters.md.
type Filter struct {
	filters.Config `yaml:"-" json:"-"`
}

// Filter's YAML and JSON forms are filters.Config's own.
func (c *Filter) target() any { return &c.Config }
func (c *Filter) defaults()   {}
func (c *Filter) validate() error {
	return c.Config.Validate()
}

// MarshalJSON writes the filter settings.
func (c *Filter) MarshalJSON() ([]byte, error) { return json.Marshal(c.Config) }

// PII scrubs personal data and secrets (redacting by default).
type PII struct {
	filters.PIIConfig `yaml:"-" json:"-"`
}

func (c *PII) target() any     { return &c.PIIConfig }
func (c *PII) defaults()       {}
func (c *PII) validate() error { return c.PIIConfig.Validate() }

// MarshalJSON writes the PII settings.
func (c *PII) MarshalJSON() ([]byte, error) { return json.Marshal(c.PIIConfig) }

// Decontaminate drops samples sharing word n-grams with benchmark items.
type Decontaminate struct {
	filters.DecontamConfig `yaml:"-" json:"-"`
}

func (c *Decontaminate) target() any { return &c.DecontamConfig }
func (c *Decontaminate) defaults()   {}
func (c *Decontaminate) validate() error {
	if len(c.Files) == 0 {
		return keyErr("files", "at least one benchmark file is required")
	}
	return c.DecontamConfig.Validate()
}

// MarshalJSON writes the decontamination settings.
func (c *Decontaminate) MarshalJSON() ([]byte, error) { return json.Marshal(c.DecontamConfig) }

// Judge scores samples with an LLM judge on a rubric (or the heuristic
// judge) and drops those below the threshold.
type Judge struct {
	// Heuristic uses the model-free heuristic judge.
	Heuristic bool `yaml:"heuristic" json:"heuristic,omitempty"`
	// Endpoint is an OpenAI-compatible API; its key comes from the
	// environment variable it names (never from the recipe).
	Endpoint *llm.Endpoint `yaml:"endpoint" json:"endpoint,omitempty"`
	// Rubric is a built-in rubric (helpfulness, correctness, complexity,
	// alpagasus) or a YAML file.
	Rubric    string                 `yaml:"rubric" json:"rubric"`
	Options   judges.LLMOptions      `yaml:"options" json:"options"`
	Threshold judges.ThresholdConfig `yaml:"threshold" json:"threshold"`
	// Cache is the response cache directory (default .sieve-cache/llm
	// beside the store).
	Cache string `yaml:"cache" json:"cache,omitempty"`
	// AllowFailure lets the run go on when every call of the stage
	// failed (the samples pass unjudged); otherwise that fails the run.
	AllowFailure bool `yaml:"allow_failure" json:"allow_failure,omitempty"`
}

// FailureAllowed reports allow_failure.
func (c *Judge) FailureAllowed() bool { return c.AllowFailure }

func (c *Judge) defaults() {
	if c.Rubric == "" {
		c.Rubric = "helpfulness"
	}
}

func (c *Judge) validate() error {
	if !c.Heuristic && c.Endpoint == nil {
		return keyErr("endpoint", "an LLM judge needs an endpoint (base_url, model, api_key_env), or set heuristic: true")
	}
	if c.Endpoint != nil {
		if err := c.Endpoint.Validate(); err != nil {
			return keyErr("endpoint", "%v", err)
		}
	}
	if !c.Heuristic {
		if _, err := judges.LoadRubric(c.Rubric); err != nil {
			return keyErr("rubric", "%v", err)
		}
	}
	return nil
}

// stageKinds maps stage names to constructors of their settings (with
// their defaults filled in, so absent keys keep them).
var stageKinds = map[string]func() StageConfig{
	"exact_dedup": func() StageConfig { return &ExactDedup{} },
	"fuzzy_dedup": newFuzzyDedup,
	"filter": func() StageConfig {
		c := &Filter{}
		c.Config.Defaults()
		return c
	},
	"pii": func() StageConfig {
		c := &PII{}
		c.PIIConfig.Defaults()
		return c
	},
	"judge":            func() StageConfig { return &Judge{} },
	"evol_instruct":    func() StageConfig { return &EvolInstruct{} },
	"chain_of_thought": func() StageConfig { return &ChainOfThought{} },
	"doc_qa":           func() StageConfig { return &DocQA{} },
	"self_instruct":    func() StageConfig { return &SelfInstruct{} },
	"decontaminate": func() StageConfig {
		c := &Decontaminate{}
		c.DecontamConfig.Defaults()
		return c
	},
}

// StageKinds lists the stage kinds this build knows, sorted.
func StageKinds() []string {
	return slices.Sorted(maps.Keys(stageKinds))
}

func (s *Stage) decodeYAML(file string, n *yaml.Node, path string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		// "- exact_dedup" with all defaults.
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Content: []*yaml.Node{n, {Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}}}
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return &Error{File: file, Line: n.Line, Key: path, Msg: "a stage is a one-key mapping such as `- exact_dedup: {key: conversation}`"}
	}
	k, v := n.Content[0], n.Content[1]
	mk, ok := stageKinds[k.Value]
	if !ok {
		return &Error{File: file, Line: k.Line, Key: path, Msg: fmt.Sprintf("unknown stage %q (known: %s)", k.Value, strings.Join(StageKinds(), ", "))}
	}
	cfg := mk()
	var target any = cfg
	if t, ok := cfg.(interface{ target() any }); ok {
		target = t.target() // wrappers of another package's settings
	}
	if err := decodeStrict(file, v, target, join(path, k.Value)); err != nil {
		return err
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return &Error{File: file, Line: v.Line, Key: join(path, k.Value+"."+ke.key), Msg: ke.msg}
		}
		return &Error{File: file, Line: v.Line, Key: join(path, k.Value), Msg: err.Error()}
	}
	s.Kind, s.Line, s.Config = k.Value, k.Line, cfg
	return nil
}

// Load reads and validates a recipe file.
func Load(file string) (*Recipe, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	r, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	r.File, r.Dir = file, filepath.Dir(abs)
	return r, nil
}

// Parse reads a recipe from YAML text; file names it in errors.
func Parse(file string, data []byte) (*Recipe, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &Error{File: file, Msg: "empty recipe"}
		}
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &Error{File: file, Line: extra.Line, Msg: "more than one YAML document; a recipe is one"}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty recipe"}
	}
	applyLLMDefaults(doc.Content[0])
	r := &Recipe{}
	if err := decodeStrict(file, doc.Content[0], r, ""); err != nil {
		return nil, err
	}
	r.applyDefaults()
	return r, nil
}

func (r *Recipe) applyDefaults() {
	for i := range r.Sources {
		if r.Sources[i].Format == "" {
			r.Sources[i].Format = string(datasets.FormatAuto)
		}
		if r.Sources[i].Roles != nil {
			low := make(map[string]string, len(r.Sources[i].Roles))
			for k, v := range r.Sources[i].Roles {
				low[strings.ToLower(k)] = v
			}
			r.Sources[i].Roles = low
		}
	}
	o := &r.Output
	if o.Shards == 0 {
		o.Shards = 1
	}
	if o.TestShards == 0 {
		o.TestShards = 1
	}
	if o.Compression == "" {
		o.Compression = "zstd"
	}
	if o.SplitSeed == "" {
		o.SplitSeed = "sieve"
	}
	if o.MixSeed == "" {
		o.MixSeed = "sieve"
	}
}

// ResolvePath makes a recipe-relative path absolute; URLs (gs://…) and
// absolute paths are returned unchanged.
func (r *Recipe) ResolvePath(p string) string {
	if strings.Contains(p, "://") || filepath.IsAbs(p) || r.Dir == "" {
		return p
	}
	return filepath.Join(r.Dir, p)
}

// MarshalJSON writes a stage as its one-key form, {"exact_dedup": {...}}.
func (s Stage) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]StageConfig{s.Kind: s.Config})
}

// Canonical is the recipe's canonical JSON form, with defaults applied and
// fields in a fixed order: what a manifest records and what a content id
// hashes. Paths are kept as written; the inputs' checksums, not their
// paths, say what was read.
func (r *Recipe) Canonical() ([]byte, error) {
	type canon struct {
		Name          string   `json:"name"`
		Description   string   `json:"description,omitempty"`
		AllowLicenses []string `json:"allow_licenses,omitempty"`
		Sources       []Source `json:"sources"`
		Stages        []Stage  `json:"stages"`
		Output        Output   `json:"output"`
	}
	stages := r.Stages
	if stages == nil {
		stages = []Stage{}
	}
	return json.Marshal(canon{r.Name, r.Description, r.AllowLicenses, r.Sources, stages, r.Output})
}

// ContentCanonical is Canonical without what does not change the
// output's bytes (the store root, the description): the recipe part of a
// version's content id.
func (r *Recipe) ContentCanonical() ([]byte, error) {
	c := *r
	c.Description = ""
	c.Output.Store = ""
	return c.Canonical()
}
