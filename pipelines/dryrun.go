package pipelines

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
	"github.com/sieve-data/sieve/filters"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/transforms"
)

// DryRunFuzzySample bounds how many samples a dry run's fuzzy_dedup
// prediction clusters. Up to it the stage runs on every sample that
// reaches it and its count is exact; above it the count is an estimate
// from a sample of that size.
var DryRunFuzzySample = 20000

// Prediction is what a dry run predicts of a run: the funnel the run
// would report, stage by stage, with notes where a row is not an exact
// prediction, and examples.
type Prediction struct {
	Recipe string
	// Funnel has the run's stage names and order. Each stage's counts are
	// over what the stages above it left, as in the run.
	Funnel datasets.Funnel
	// Notes says, by stage name, why a row is not an exact prediction:
	// "estimate: …" (fuzzy dedup on a sample), "not predicted: …" (an LLM
	// stage), "partly predicted: …" (fuzzy dedup against stored
	// versions) or "approximate: …" (a stage below one of those).
	Notes map[string]string
	// Skipped are the stages the run would skip (LLM stages without an
	// API key), one line each, as the run says them.
	Skipped []string
	// Warnings are reasons the run would fail (a fuzzy dedup whose
	// clusters do not converge in its rounds).
	Warnings []string
	// Examples holds, by "stage reason", samples the stage would drop,
	// each with the rule's evidence.
	Examples map[string][]string
	// Near holds, by "stage rule", kept samples closest to the rule's
	// threshold, closest first.
	Near map[string][]string
}

// Exact tells whether every row of the prediction is exact: no stage was
// estimated or left unpredicted.
func (p *Prediction) Exact() bool { return len(p.Notes) == 0 }

// DryRun predicts a recipe's run in this process and writes it to w: the
// funnel the run would report (each stage over what the stages above it
// leave, in the run's order: per-sample stages, exact and fuzzy dedup
// with the run's keys and survivor choice, the mix), examples of every
// drop with the rule's evidence, and kept samples closest to the filters'
// thresholds. LLM stages make no calls and are named as not predicted.
// It writes nothing to the store. It is meant for tuning thresholds on a
// sample of the data (use the sources' limit: settings).
func DryRun(ctx context.Context, r *recipe.Recipe, store datasets.Store, w io.Writer, examples int) error {
	p, err := Predict(ctx, r, store, examples)
	if err != nil {
		return err
	}
	return p.Write(w)
}

// Predict reads a recipe's inputs and runs its stages in memory, in the
// run's order, keeping up to examples examples of each drop and of each
// rule's near misses.
func Predict(ctx context.Context, r *recipe.Recipe, store datasets.Store, examples int) (*Prediction, error) {
	plan, err := NewPlan(ctx, r, store)
	if err != nil {
		return nil, err
	}
	pr := &Prediction{Recipe: r.Name, Notes: map[string]string{}, Skipped: plan.SkipReasons,
		Examples: map[string][]string{}, Near: map[string][]string{}}
	var live []datasets.Sample
	var read int64
	dead := map[string]int64{}
	for _, t := range plan.Tasks {
		err := t.Read(ctx, 1,
			func(s datasets.Sample) error { live = append(live, s); return nil },
			func(d datasets.DeadLetter) error { dead[d.Reason]++; return nil },
			func(st datasets.FileStats) error { read += st.Records; return nil })
		if err != nil {
			return nil, err
		}
	}
	f := &pr.Funnel
	f.Read = read
	for _, n := range dead {
		f.DeadLettered += n
	}
	f.DeadReasons = sortedCounts(dead, "")
	if f.DeadReasons == nil {
		f.DeadReasons = []datasets.Count{}
	}
	flow := f.Read - f.DeadLettered
	inexact := "" // the first stage not exactly predicted: the rows below follow it

	p := &predictor{pr: pr, examples: examples, near: map[string][]nearMiss{}}
	seen := map[string]int{}
	for i, st := range r.Stages {
		if plan.Skipped[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seen[st.Kind]++
		name := st.Kind
		if seen[st.Kind] > 1 {
			name = fmt.Sprintf("%s_%d", st.Kind, seen[st.Kind])
		}
		p.stage = name
		p.drops, p.modified = map[string]int64{}, map[string]int64{}
		var note string
		switch cfg := st.Config.(type) {
		case *recipe.Filter:
			fs, err := filters.New(cfg.Config)
			if err != nil {
				return nil, fmt.Errorf("stage %s: %w", name, err)
			}
			live = p.filter(live, fs)
		case *recipe.PII:
			sc, err := filters.NewScrubber(cfg.PIIConfig)
			if err != nil {
				return nil, fmt.Errorf("stage %s: %w", name, err)
			}
			live = p.pii(live, sc, cfg.Mode == "drop")
		case *recipe.Decontaminate:
			d, err := loadDecontaminator(ctx, r, cfg)
			if err != nil {
				return nil, fmt.Errorf("stage %s: %w", name, err)
			}
			live = p.decontaminate(live, d)
		case *recipe.ExactDedup:
			if err := p.setChecks(ctx, plan, i); err != nil {
				return nil, err
			}
			live = p.exact(live, dedup.KeyMode(cfg.Key))
		case *recipe.FuzzyDedup:
			if err := p.setChecks(ctx, plan, i); err != nil {
				return nil, err
			}
			live, note = p.fuzzy(live, cfg)
			if len(cfg.Against) > 0 {
				note = joinNotes(note, "partly predicted: near duplicates of the versions in against: are not (the run looks them up in their saved indexes)")
			}
		case *recipe.Judge:
			if !cfg.Heuristic {
				note = "not predicted: an LLM judge; a dry run makes no calls (the stages below see every sample it would judge)"
				break
			}
			live, err = p.judge(ctx, live, name, st, r)
			if err != nil {
				return nil, err
			}
		default:
			if _, ok := plan.synth[i]; ok {
				note = "not predicted: generates samples with an LLM; a dry run makes no calls (the stages below see the samples without what it would add or drop)"
			} else {
				note = "not predicted: a dry run does not simulate this stage"
			}
		}
		sf := p.row(name, flow)
		flow = sf.Out
		if note == "" && inexact != "" {
			note = followsNote(inexact)
		}
		if note != "" {
			pr.Notes[name] = note
			if inexact == "" {
				inexact = name
			}
		}
		f.Stages = append(f.Stages, sf)
	}
	// The mix comes after every stage, as in the run.
	var mixCfg transforms.MixConfig
	for _, src := range r.Sources {
		mixCfg.Sources = append(mixCfg.Sources, transforms.MixSource{Source: src.Name, Weight: src.Weight, MaxSamples: src.MaxSamples})
		if src.Weight > 0 || src.MaxSamples > 0 {
			mixCfg.Seed = r.Output.MixSeed
		}
	}
	if mixCfg.Seed != "" {
		p.stage = "mix"
		p.drops, p.modified = map[string]int64{}, map[string]int64{}
		live = p.mix(live, mixCfg)
		sf := p.row("mix", flow)
		flow = sf.Out
		if inexact != "" {
			pr.Notes["mix"] = followsNote(inexact)
		}
		f.Stages = append(f.Stages, sf)
	}
	f.Written = flow
	for key, ex := range p.near {
		sort.SliceStable(ex, func(i, j int) bool { return ex[i].margin < ex[j].margin })
		for _, e := range ex[:min(len(ex), examples)] {
			pr.Near[key] = append(pr.Near[key], e.line)
		}
	}
	return pr, nil
}

// followsNote is the note of a stage below one not exactly predicted.
func followsNote(stage string) string {
	return "approximate: it sees what the prediction of " + stage + " above leaves, which is not exact"
}

// joinNotes joins two notes of one stage.
func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// predictor runs the stages of a dry run over the samples that reach
// them.
type predictor struct {
	// pass says whether a sample passes the checks after the current
	// dedup stage ("0") or not ("1"), prefixed to references and nodes as
	// the run does (transforms' passPrefix): survivors pass when one can.
	pass     func(*datasets.Sample) string
	pr       *Prediction
	examples int
	stage    string
	drops    map[string]int64
	modified map[string]int64
	near     map[string][]nearMiss
}

// nearMargin is how close to its threshold (relative to it) a kept
// sample's value must be to be shown as a near miss.
const nearMargin = 0.5

type nearMiss struct {
	margin float64
	line   string
}

// drop counts a drop of the current stage and keeps it as an example.
func (p *predictor) drop(reason string, n int64, line func() string) {
	p.drops[reason] += n
	key := p.stage + " " + reason
	if len(p.pr.Examples[key]) < p.examples {
		p.pr.Examples[key] = append(p.pr.Examples[key], line())
	}
}

// row is the current stage's funnel row.
func (p *predictor) row(name string, in int64) datasets.StageFunnel {
	sf := datasets.StageFunnel{Stage: name, In: in, Dropped: sortedCounts(p.drops, "")}
	if sf.Dropped == nil {
		sf.Dropped = []datasets.Count{}
	}
	sf.Out = in
	for _, c := range sf.Dropped {
		sf.Out -= c.Count
	}
	for _, k := range sortedKeys(p.modified) {
		sf.Modified = append(sf.Modified, datasets.Count{Reason: k, Count: p.modified[k]})
	}
	return sf
}

// keepIf keeps the samples fn keeps, in order, reusing live's array; fn
// may rewrite the sample.
func keepIf(live []datasets.Sample, fn func(s *datasets.Sample) bool) []datasets.Sample {
	out := live[:0]
	for i := range live {
		if fn(&live[i]) {
			out = append(out, live[i])
		}
	}
	clear(live[len(out):])
	return out[:len(out):len(out)]
}

// filter applies a filter stage as the run does (filters.CheckAll: the
// first failing filter drops), noting the kept samples' closest rules.
func (p *predictor) filter(live []datasets.Sample, fs []filters.Filter) []datasets.Sample {
	return keepIf(live, func(s *datasets.Sample) bool {
		for _, f := range fs {
			v := f.Check(s)
			if !v.Keep {
				p.drop(v.Rule, 1, func() string {
					return fmt.Sprintf("%s  value %.4g, threshold %.4g  %s", where(s), v.Value, v.Threshold, evidence(v, s))
				})
				return false
			}
			if v.Rule != "" && v.Threshold != 0 && p.examples > 0 {
				p.noteNear(v, s)
			}
		}
		return true
	})
}

// noteNear records a kept sample's closest rule, keeping the closest few
// by rule.
func (p *predictor) noteNear(v filters.Verdict, s *datasets.Sample) {
	key := p.stage + " " + v.Rule
	m := math.Abs(v.Value-v.Threshold) / math.Max(math.Abs(v.Threshold), 1e-9)
	if m > nearMargin {
		return
	}
	ex := p.near[key]
	if len(ex) >= p.examples && m >= ex[len(ex)-1].margin {
		return
	}
	ex = append(ex, nearMiss{m, fmt.Sprintf("%s  value %.4g, threshold %.4g  answer: %s", where(s), v.Value, v.Threshold, clip(lastResponse(s), 60))})
	sort.SliceStable(ex, func(i, j int) bool { return ex[i].margin < ex[j].margin })
	p.near[key] = ex[:min(len(ex), p.examples)]
}

// evidence is what a verdict's rule saw: its reason and detail (the
// ending for truncation, the repeated unit for loops, the languages for
// a mismatch).
func evidence(v filters.Verdict, s *datasets.Sample) string {
	out := v.Reason
	switch {
	case v.Detail != "":
		out += ": " + v.Detail
	case strings.HasPrefix(v.Rule, filters.FilterTruncation+"."):
		out += fmt.Sprintf(": ends %q", ending(lastResponse(s), 60))
	}
	return out
}

// ending is the last n runes of s, white space collapsed.
func ending(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) > n {
		return "…" + string(r[len(r)-n:])
	}
	return string(r)
}

// pii scrubs as the run does: redacted samples get their new content id
// (the stages below see the redacted text); in drop mode a sample with a
// finding is dropped under its first kind.
func (p *predictor) pii(live []datasets.Sample, sc *filters.Scrubber, drop bool) []datasets.Sample {
	return keepIf(live, func(s *datasets.Sample) bool {
		id := s.ID
		counts := sc.Scrub(s)
		if len(counts) == 0 {
			return true
		}
		kinds := sortedKeys(counts)
		if drop {
			p.drop("pii."+kinds[0], 1, func() string {
				return fmt.Sprintf("%s (%s#%d)  contains %v", shortID(id), s.Source.Dataset, s.Source.Index, counts)
			})
			return false
		}
		for k, n := range counts {
			p.modified["pii."+k] += int64(n)
		}
		s.ID = datasets.ContentID(s.Messages)
		return true
	})
}

func loadDecontaminator(ctx context.Context, r *recipe.Recipe, cfg *recipe.Decontaminate) (*filters.Decontaminator, error) {
	var items []filters.Item
	for _, f := range cfg.Files {
		rc, err := datasets.Open(ctx, r.ResolvePath(f))
		if err != nil {
			return nil, err
		}
		its, err := filters.LoadBenchmark(r.ResolvePath(f), rc, cfg.DecontamConfig)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("benchmark %s: %w", f, err)
		}
		items = append(items, its...)
	}
	return filters.NewDecontaminator(items, cfg.N), nil
}

func (p *predictor) decontaminate(live []datasets.Sample, d *filters.Decontaminator) []datasets.Sample {
	return keepIf(live, func(s *datasets.Sample) bool {
		item, gram, ok := d.Match(s)
		if ok {
			p.drop("benchmark_overlap", 1, func() string { return fmt.Sprintf("%s  shares the n-gram %q with %s", where(s), gram, item) })
		}
		return !ok
	})
}

// judge runs a model-free (heuristic) judge stage with the run's own step.
func (p *predictor) judge(ctx context.Context, live []datasets.Sample, name string, st recipe.Stage, r *recipe.Recipe) ([]datasets.Sample, error) {
	spec, _, err := stepSpec(name, st, r.ResolvePath)
	if err != nil {
		return nil, err
	}
	steps, err := transforms.BuildSteps([]transforms.StepSpec{spec})
	if err != nil {
		return nil, err
	}
	return keepIf(live, func(s *datasets.Sample) bool {
		rej := steps[0].Apply(ctx, s)
		if rej != nil {
			p.drop(rej.Reason, 1, func() string { return fmt.Sprintf("%s  %s", where(s), rej.Detail) })
		}
		return rej == nil
	}), nil
}

// setChecks builds the later checks of dedup stage i (laterChecks) into
// p.pass.
func (p *predictor) setChecks(ctx context.Context, plan *Plan, i int) error {
	steps, err := transforms.BuildSteps(laterChecks(plan, i))
	if err != nil {
		return err
	}
	p.pass = func(s *datasets.Sample) string {
		c := *s
		c.Messages = append([]datasets.Message(nil), s.Messages...)
		for _, st := range steps {
			if st.Apply(ctx, &c) != nil {
				return "1"
			}
		}
		return "0"
	}
	return nil
}

// exact drops exact duplicates as the run's exact_dedup does: samples
// with equal dedup.ExactKey form a group, and the one with the smallest
// reference (id, source, file, index) survives.
func (p *predictor) exact(live []datasets.Sample, mode dedup.KeyMode) []datasets.Sample {
	keys := make([]dedup.Key, len(live))
	best := map[dedup.Key]int{}
	for i := range live {
		k := dedup.ExactKey(live[i].Messages, mode)
		keys[i] = k
		if j, ok := best[k]; !ok || p.pass(&live[i])+sampleRef(&live[i]) < p.pass(&live[j])+sampleRef(&live[j]) {
			best[k] = i
		}
	}
	i := -1
	survivors := make([]string, len(live))
	for j, k := range keys {
		survivors[j] = where(&live[best[k]])
	}
	return keepIf(live, func(s *datasets.Sample) bool {
		i++
		if best[keys[i]] == i {
			return true
		}
		p.drop("exact_duplicate", 1, func() string {
			return fmt.Sprintf("%s  same normalised %s as %s: %s", where(s), mode, survivors[i], clip(dedup.SampleText(s.Messages, mode), 60))
		})
		return false
	})
}

// fuzzyNode is one sample in the dry run's fuzzy dedup.
type fuzzyNode struct {
	live int    // index in the samples
	key  string // node key: sorts in the keep policy's order
	// payload is what verification compares (dedup.Sketcher,
	// dedup.PayloadSimilarity), as in the run.
	payload []byte
}

// fuzzy runs near-duplicate removal as the run's fuzzy_dedup does, with
// package dedup's functions: shingles and signatures of the stage's text
// settings, LSH band keys, candidate edges of each bucket
// (dedup.BucketEdges over the members in node order), verification
// (dedup.CompactJaccard of the shingle sets, or the signatures'
// estimate, or none), connected components, and the smallest node of
// each component (keep policy, then id) as its survivor. Up to
// DryRunFuzzySample samples it runs on all of them; above, on a sample
// chosen by a MinHash of the shingles (so that near duplicates, which
// share their minimum with probability their Jaccard, are chosen
// together), and the count is scaled up and noted as an estimate.
func (p *predictor) fuzzy(live []datasets.Sample, cfg *recipe.FuzzyDedup) ([]datasets.Sample, string) {
	mode := dedup.KeyMode(cfg.Key)
	signer := cfg.Text.NewSigner()
	verify := cfg.Verify
	if verify == "" {
		verify = dedup.VerifyExact
	}
	sketcher := cfg.Text.NewSketcher(mode, verify)
	text := func(s *datasets.Sample) string { return dedup.SampleText(s.Messages, mode) }

	// Samples without a shingle take no part, as in the run.
	var eligible []int
	var coord []uint64
	sampled := len(live) > DryRunFuzzySample
	for i := range live {
		sh := signer.Shingles(text(&live[i]))
		if len(sh) == 0 {
			continue
		}
		eligible = append(eligible, i)
		if sampled {
			c := uint64(math.MaxUint64)
			for _, h := range sh {
				c = min(c, mixHash(h))
			}
			coord = append(coord, c)
		}
	}
	chosen := eligible
	if sampled && len(eligible) > DryRunFuzzySample {
		sorted := slices.Clone(coord)
		slices.Sort(sorted)
		cut := sorted[DryRunFuzzySample-1]
		chosen = nil
		for j, i := range eligible {
			if coord[j] <= cut {
				chosen = append(chosen, i)
			}
		}
	} else {
		sampled = false
	}

	// The stage's own clustering (dedup.Cluster, here over nodes in
	// memory): the same buckets, candidate edges, verification and
	// clusters as the run.
	nodes := make([]fuzzyNode, len(chosen))
	in := make([]dedup.Node, len(chosen))
	for n, i := range chosen {
		s := &live[i]
		sig, payload, _ := sketcher.Sketch(s.Messages)
		nodes[n] = fuzzyNode{live: i, key: p.pass(s) + transforms.NodeKey(cfg.Keep, s), payload: payload}
		in[n] = dedup.Node{Key: nodes[n].key, Bands: dedup.AppendBandKeys(nil, sig, cfg.Bands, cfg.Rows), Payload: payload}
	}
	sim := func(a, b int32) float64 {
		if cfg.Verify == "none" {
			return 1
		}
		return dedup.PayloadSimilarity(nodes[a].payload, nodes[b].payload)
	}
	var edges [][2]string
	res, err := dedup.ClusterInMemory(in, dedup.ClusterConfig{Threshold: cfg.Threshold, Verify: cfg.Verify,
		Edges: cfg.Edges, MaxBucketPairs: fuzzyMaxBucketPairs,
		OnVerified: func(a, b string) { edges = append(edges, [2]string{a, b}) }})
	if err != nil { // a MemoryJoiner fails nothing; say so if it ever does
		p.pr.Warnings = append(p.pr.Warnings, fmt.Sprintf("%s: not predicted: %v", p.stage, err))
		return live, ""
	}
	index := make(map[string]int32, len(nodes))
	for n := range nodes {
		index[nodes[n].key] = int32(n)
	}
	labels := res.Roots
	if _, _, ok := dedup.StarComponents(edges, cfg.Rounds); !ok {
		p.pr.Warnings = append(p.pr.Warnings, fmt.Sprintf("%s: its duplicate clusters do not converge in %d rounds (here, on %d samples): the run would fail; raise its rounds: setting", p.stage, cfg.Rounds, len(nodes)))
	}
	size := map[string]int{}
	for _, l := range labels {
		size[l]++
	}
	type dup struct {
		survivor string
		sim      float64
		size     int
	}
	dropped := map[int]dup{} // by sample index
	for node, l := range labels {
		if node == l {
			continue
		}
		a, b := index[node], index[l]
		d := dup{survivor: where(&live[nodes[b].live]), sim: -1, size: size[l]}
		if cfg.Verify != "none" {
			d.sim = sim(a, b)
		}
		dropped[nodes[a].live] = d
	}
	i := -1
	out := keepIf(live, func(s *datasets.Sample) bool {
		i++
		d, ok := dropped[i]
		if !ok {
			return true
		}
		p.drop("near_duplicate", 1, func() string {
			how := "a bucket-mate of"
			if d.sim >= 0 {
				how = fmt.Sprintf("Jaccard %.2f with", d.sim)
			}
			return fmt.Sprintf("%s  %s %s (cluster of %d): %s", where(s), how, d.survivor, d.size, clip(text(s), 60))
		})
		return false
	})
	if !sampled {
		return out, ""
	}
	// Scale the sample's count to every sample that reaches the stage; the
	// samples below are those the sample leaves, so their counts follow an
	// estimate.
	found := int64(len(dropped))
	est := int64(math.Round(float64(found) * float64(len(eligible)) / float64(len(chosen))))
	p.drops["near_duplicate"] += est - found
	if p.drops["near_duplicate"] == 0 {
		delete(p.drops, "near_duplicate")
	}
	return out, fmt.Sprintf("estimate: on a sample of %d of the %d samples that reach it (chosen by a MinHash of their shingles, so near duplicates are chosen together); %d found there, scaled to %d",
		len(chosen), len(eligible), found, est)
}

// mixHash is a 64-bit mixer (splitmix64's finaliser): min over a text's
// shingles of mixHash is a MinHash independent of the signatures'.
func mixHash(x uint64) uint64 {
	x ^= 0x5bd1e9955bd1e995
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// mix keeps each source's share as the run's mix does: targets by
// transforms.Targets over what reaches it, and within a source the
// samples first by a seeded hash of their id, then reference.
func (p *predictor) mix(live []datasets.Sample, cfg transforms.MixConfig) []datasets.Sample {
	avail := map[string]int64{}
	bySource := map[string][]int{}
	order := make([]string, len(live))
	for i := range live {
		s := &live[i]
		avail[s.Source.Dataset]++
		bySource[s.Source.Dataset] = append(bySource[s.Source.Dataset], i)
		order[i] = fmt.Sprintf("%016x\x06%s", mixSeededHash(cfg.Seed, s.ID), sampleRef(s))
	}
	targets := map[string]transforms.MixTarget{}
	for _, t := range transforms.Targets(cfg, avail) {
		targets[t.Source] = t
	}
	drop := make([]bool, len(live))
	for src, idx := range bySource {
		t, ok := targets[src]
		if !ok {
			continue // generated samples: a source of their own, kept whole
		}
		sort.Slice(idx, func(a, b int) bool { return order[idx[a]] < order[idx[b]] })
		for k, i := range idx {
			drop[i] = int64(k) >= t.Target
		}
	}
	i := -1
	return keepIf(live, func(s *datasets.Sample) bool {
		i++
		if !drop[i] {
			return true
		}
		t := targets[s.Source.Dataset]
		p.drop("mix.over_target", 1, func() string {
			return fmt.Sprintf("%s  beyond source %s's share: target %d of %d available", where(s), t.Source, t.Target, t.Available)
		})
		return false
	})
}

// mixSeededHash is the mix's ordering hash (transforms' seededHash):
// FNV-1a of the seed, a zero byte and the id.
func mixSeededHash(seed, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(seed))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return h.Sum64()
}

// sampleRef is the run's reference of a sample (transforms' sampleRef):
// id, source, file and zero-padded index, in datasets.Less's order. Exact
// dedup keeps the smallest.
func sampleRef(s *datasets.Sample) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%020d", s.ID, s.Source.Dataset, s.Source.File, s.Source.Index)
}

// Write prints the prediction: the funnel as a table with a note column,
// the notes, the skipped stages, examples and near misses.
func (p *Prediction) Write(w io.Writer) error {
	f := &p.Funnel
	exact := "every row exact"
	if !p.Exact() {
		exact = "rows with a note are not exact"
	}
	fmt.Fprintf(w, "dry run of %s: %d records read; the run's funnel, predicted (%s); nothing is written\n\n", p.Recipe, f.Read, exact)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	pct := func(n int64) string {
		if f.Read == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(f.Read))
	}
	fmt.Fprintf(tw, "stage\treason\twould drop\tof read\tchanges\tnote\t\n")
	for _, c := range f.DeadReasons {
		fmt.Fprintf(tw, "dead letter\t%s\t%d\t%s\t\t\t\n", c.Reason, c.Count, pct(c.Count))
	}
	for _, s := range f.Stages {
		note := ""
		if n, ok := p.Notes[s.Stage]; ok {
			note, _, _ = strings.Cut(n, ":") // estimate, not predicted, partly predicted, approximate
		}
		if len(s.Dropped) == 0 {
			fmt.Fprintf(tw, "%s\t(none)\t0\t\t\t%s\t\n", s.Stage, note)
		}
		for _, c := range s.Modified {
			fmt.Fprintf(tw, "%s\t%s\t\t\t%d\t%s\t\n", s.Stage, c.Reason, c.Count, note)
		}
		for _, c := range s.Dropped {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\t%s\t\n", s.Stage, c.Reason, c.Count, pct(c.Count), note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nwould write %d of %d records read (%s)\n", f.Written, f.Read, pct(f.Written))
	if len(p.Notes)+len(p.Skipped)+len(p.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	for _, s := range p.Warnings {
		fmt.Fprintln(w, "warning: "+s)
	}
	for _, s := range f.Stages {
		if n, ok := p.Notes[s.Stage]; ok {
			fmt.Fprintf(w, "%s: %s\n", s.Stage, n)
		}
	}
	for _, s := range p.Skipped {
		fmt.Fprintln(w, s)
	}
	for _, s := range f.Stages {
		for _, c := range s.Dropped {
			key := s.Stage + " " + c.Reason
			if ex := p.Examples[key]; len(ex) > 0 {
				fmt.Fprintf(w, "\n%s %s — would drop, e.g.:\n", s.Stage, c.Reason)
				for _, e := range ex {
					fmt.Fprintf(w, "  %s\n", e)
				}
			}
		}
	}
	for _, key := range sortedKeys(p.Near) {
		fmt.Fprintf(w, "\n%s — kept, closest to the threshold:\n", key)
		for _, e := range p.Near[key] {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	return nil
}

// where names a sample by its short id and where it was read (source
// and record index), which tells apart samples of equal content.
func where(s *datasets.Sample) string {
	return fmt.Sprintf("%s (%s#%d)", shortID(s.ID), s.Source.Dataset, s.Source.Index)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func lastResponse(s *datasets.Sample) string {
	for i := len(s.Messages) - 1; i >= 0; i-- {
		if s.Messages[i].Role == datasets.RoleAssistant {
			return s.Messages[i].Content
		}
	}
	return ""
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
