package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx" // registers the runners and file systems

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/report"
	"github.com/sieve-data/sieve/transforms"
)

// Version is sieve's version, recorded in every manifest.
var Version = "0.1.0-dev"

// Options are the run's settings that do not belong in the recipe.
type Options struct {
	// Store overrides the recipe's output.store (and the default ./store).
	Store string
	// Force rebuilds a version even when one with the same content id
	// exists (the new version's shards are byte-identical to it).
	Force bool
	// Notice, when set, receives one-line notices for the user (a stage
	// skipped for want of an API key).
	Notice func(string)
	// SpillBudget: see Plan.SpillBudget.
	SpillBudget int
	// Status, when set, is called with a short line whenever the run
	// moves on to a new phase ("listing inputs", "running on prism", …).
	Status func(string)
	// Warn, when set, receives one-line warnings about the run's inputs
	// (a file that broke part way, or lost many records to dead letters).
	Warn func(string)
	// MaxDeadFraction fails the run when an input file loses more than
	// this fraction of its records to dead letters (0: the default,
	// DefaultMaxDeadFraction; 1 or more: never).
	MaxDeadFraction float64
	// NoReport skips the version's report (package report), otherwise
	// written into report/ of every version committed.
	NoReport bool
}

// Result is a committed version.
type Result struct {
	Store    datasets.Store
	Dir      string
	Manifest *datasets.Manifest
	// UpToDate is set when no run happened because a version with the
	// same content id exists; Manifest is then that version's.
	UpToDate bool
	// Report is the path of the version's report page (report/index.html),
	// "" when none was written (Options.NoReport, an up-to-date version,
	// or writing it failed: a warning says why).
	Report string
}

// StoreRoot says where the recipe's versions go: the option, else the
// recipe's output.store (relative to the recipe), else ./store.
func StoreRoot(r *recipe.Recipe, opt Options) string {
	switch {
	case opt.Store != "":
		return opt.Store
	case r.Output.Store != "":
		return r.ResolvePath(r.Output.Store)
	}
	return "store"
}

// RunnerName is the runner Beam's --runner flag selects (prism when
// unset).
func RunnerName() string {
	if *runners.Runner == "" {
		return DefaultRunner
	}
	return *runners.Runner
}

// DefaultRunner is the runner of a run without --runner: Beam's direct
// runner, in this process. Measured on the realistic 50k corpus (pii,
// exact, fuzzy 0.7, filter; docs/scale.md) it ran 3.2× faster than prism
// in a quarter of the memory, with byte-identical shards: prism
// materialises every stage boundary and builds each bundle as one
// buffer. prism, universal and dataflow stay one flag away.
const DefaultRunner = "direct"

// Run executes a recipe end to end and commits a new version.
func Run(ctx context.Context, r *recipe.Recipe, opt Options) (*Result, error) {
	status := opt.Status
	if status == nil {
		status = func(string) {}
	}
	if !beam.Initialized() {
		beam.Init()
	}
	// What can be checked before the pipeline starts is: the runner, its
	// job server, the store, then (with the plan) the inputs.
	if err := CheckRunner(); err != nil {
		return nil, err
	}
	if err := checkJobServer(ctx); err != nil {
		return nil, err
	}
	status("listing and hashing inputs")
	store := datasets.Store{Root: StoreRoot(r, opt)}
	if err := checkStore(store.Root, r.Name); err != nil {
		return nil, err
	}
	plan, err := NewPlan(ctx, r, store)
	if err != nil {
		return nil, err
	}
	if err := checkRemoteRunner(plan); err != nil {
		return nil, err
	}
	if err := checkPlan(ctx, plan); err != nil {
		return nil, err
	}
	for _, why := range plan.SkipReasons {
		if opt.Notice != nil {
			opt.Notice(why)
		}
	}
	// One run of a dataset at a time: a second waits, then finds the
	// first's version by content id.
	unlock, err := store.Lock(ctx, r.Name, opt.Notice)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !opt.Force {
		if v, ok, err := store.FindIntact(ctx, r.Name, plan.ContentID, opt.Notice); err != nil {
			return nil, err
		} else if ok {
			m, err := store.ReadManifest(ctx, r.Name, v)
			if err != nil {
				return nil, err
			}
			return &Result{Store: store, Dir: store.VersionDir(r.Name, v), Manifest: m, UpToDate: true}, nil
		}
	}
	if n, err := store.CleanStaging(r.Name, time.Hour); err == nil && n > 0 {
		slog.Info("removed stale staging directories", "dataset", r.Name, "count", n)
	}
	staging := store.NewStaging(r.Name)
	defer datasets.RemoveBudgetLedger(context.WithoutCancel(ctx), staging)
	against := map[*recipe.FuzzyDedup]transforms.AgainstConfig{}
	for _, st := range r.Stages {
		if f, ok := st.Config.(*recipe.FuzzyDedup); ok && len(f.Against) > 0 {
			paths, refs, err := againstIndexes(ctx, store, staging, f, plan.Parents)
			if err != nil {
				store.Discard(staging)
				return nil, err
			}
			against[f] = transforms.AgainstConfig{Indexes: paths, Refs: refs, Threshold: f.Threshold, Mode: dedup.KeyMode(f.Key)}
		}
	}
	plan.against = against
	plan.SpillBudget = opt.SpillBudget
	p, stageNames, err := Build(plan, staging)
	if err != nil {
		store.Discard(staging)
		return nil, err
	}

	status("running on " + RunnerName())
	start := time.Now()
	res, err := runPipeline(ctx, p)
	if ctx.Err() != nil {
		store.Discard(staging)
		return nil, ErrInterrupted
	}
	if err != nil {
		store.Discard(staging)
		slog.Info("pipeline failed", "runner", RunnerName(), "err", err)
		return nil, fmt.Errorf("pipeline failed on %s: %s", RunnerName(), pipelineCause(err))
	}
	slog.Info("pipeline finished", "runner", RunnerName(), "seconds", time.Since(start).Seconds())
	if lookups, hits := transforms.CheckMemoStats(); lookups > 0 {
		slog.Debug("dedup survivor checks", "lookups", lookups, "memo_hits", hits)
	}
	if err := transforms.RemoveSpill(ctx, staging); err != nil {
		store.Discard(staging)
		return nil, err
	}

	status("committing")
	m, err := assemble(ctx, plan, staging, stageNames)
	if err != nil {
		store.Discard(staging)
		return nil, err
	}
	if res != nil {
		checkCounters(res, m)
		addModified(res, m)
	}
	warnings, err := checkDeadLetters(ctx, staging, m, opt.MaxDeadFraction)
	if err != nil {
		store.Discard(staging)
		return nil, err
	}
	if f := lastFuzzy(r); f != nil {
		status("indexing for later dedup")
		if err := writeVersionIndex(ctx, staging, m, f); err != nil {
			store.Discard(staging)
			return nil, err
		}
	}
	pauseBeforeCommit(ctx, staging)
	if ctx.Err() != nil {
		store.Discard(staging)
		return nil, ErrInterrupted
	}
	version, err := store.Commit(ctx, staging, m)
	if err != nil {
		store.Discard(staging)
		return nil, err
	}
	if opt.Warn != nil {
		for _, w := range warnings {
			opt.Warn(w)
		}
	}
	out := &Result{Store: store, Dir: store.VersionDir(r.Name, version), Manifest: m}
	if !opt.NoReport && r.Output.WantsReport() {
		// After the commit, from the committed files alone (the same
		// bytes as 'sieve report' writes later): a report that fails
		// leaves the version as it is, with a warning.
		status("writing the report")
		if w, err := report.Build(ctx, out.Dir, "", "", report.Options{}); err != nil {
			slog.Warn("report not written", "version", r.Name+"@"+version, "err", err)
			if opt.Warn != nil {
				opt.Warn(fmt.Sprintf("%s@%s: report not written ('sieve report %s@%s' retries): %v", r.Name, version, r.Name, version, err))
			}
		} else {
			out.Report = w.Index
		}
	}
	return out, nil
}

// runPipeline runs p on the selected runner and returns when it is done,
// or soon after ctx is cancelled: the direct runner does not watch ctx,
// and an interrupted run must not wait for it (the caller discards the
// staging directory and the process exits).
func runPipeline(ctx context.Context, p *beam.Pipeline) (beam.PipelineResult, error) {
	runnerErrors.reset()
	type outcome struct {
		res beam.PipelineResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := beam.Run(ctx, RunnerName(), p)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
		return nil, ctx.Err()
	}
}

// pauseBeforeCommit is the PauseAfterPipelineEnv test hook.
func pauseBeforeCommit(ctx context.Context, staging string) {
	marker := os.Getenv(PauseAfterPipelineEnv)
	if marker == "" {
		return
	}
	if err := os.WriteFile(marker, []byte(staging), 0o644); err != nil {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
}

// checkRemoteRunner refuses local paths on runners whose workers run on
// other machines (Dataflow, Flink, Spark): they could neither read the
// inputs nor write the shards.
func checkRemoteRunner(p *Plan) error {
	switch RunnerName() {
	case "dataflow", "DataflowRunner", "flink", "spark":
	default:
		return nil
	}
	if !strings.Contains(p.Store.Root, "://") {
		return fmt.Errorf("runner %s runs workers on other machines: the store must be remote (--store gs://bucket/prefix), not %s", RunnerName(), p.Store.Root)
	}
	for _, t := range p.Tasks {
		for _, f := range t.Files {
			if !strings.Contains(f, "://") {
				return fmt.Errorf("runner %s runs workers on other machines: source %s reads the local file %s; use gs:// paths (Hub sources are downloaded locally: --stage_hub gs://BUCKET/PREFIX copies them to gs:// once)", RunnerName(), t.Options.Source, f)
			}
		}
	}
	return nil
}

// Build constructs the Beam pipeline of a plan writing into dir. It
// returns the pipeline and the funnel names of the recipe's stages, in
// order, or an error naming the stage that could not be built.
func Build(plan *Plan, dir string) (*beam.Pipeline, []string, error) {
	r := plan.Recipe
	p, s := beam.NewPipelineWithRoot()
	// LLM budgets hold across the workers: see datasets.BudgetLedger.
	ledger := datasets.BudgetLedgerDir(dir)
	samples, dead, inputReports := transforms.Read(s, plan.Tasks)
	out := r.Output
	// Every grouping's input is counted: "shuffle" report lines.
	meter := &transforms.ShuffleMeter{}
	t := &pendingTail{s: s, samples: samples,
		write: transforms.WriteConfig{Dir: dir, Shards: out.Shards, TestShards: out.TestShards,
			TestRatio: out.TestRatio, SplitSeed: out.SplitSeed, Compression: out.Compression},
		spill: transforms.SpillConfig{Dir: dir, Budget: plan.SpillBudget, Meter: meter}}
	stageName := stageNames(plan)
	var names []string
	// topicModel is the latest topics stage's model, for the stages that
	// work on its topics (see topics.go).
	var topicModel beam.PCollection
	for i, st := range r.Stages {
		if plan.Skipped[i] {
			continue
		}
		name := stageName[i]
		names = append(names, name)
		if sc, ok := plan.synth[i]; ok {
			sc.BudgetLedger = ledger
			// A generation stage sees the samples as the stages before it
			// left them (it should not pay for duplicates).
			samples := t.flush()
			sc.Stage = name
			sel, seeded := topicSelect(name, dir, st.Config)
			var made, dropped, reps beam.PCollection
			switch {
			case st.Kind == "doc_qa":
				made, dropped, reps = transforms.GenerateFromChunks(s, plan.chunks[i], sc)
				samples = beam.Flatten(s, samples, made)
			case st.Kind == "self_instruct":
				seeds := samples
				if seeded {
					seeds, _ = transforms.SelectTopics(s, samples, sel)
				}
				made, dropped, reps = transforms.SelfInstruct(s, seeds, sc)
				samples = beam.Flatten(s, samples, made)
			case seeded:
				chosen, rest := transforms.SelectTopics(s, samples, sel)
				made, dropped, reps = transforms.Expand(s, chosen, sc)
				samples = beam.Flatten(s, made, rest)
			default:
				samples, dropped, reps = transforms.Expand(s, samples, sc)
			}
			t.applied(samples, dropped, reps)
			continue
		}
		switch cfg := st.Config.(type) {
		case *recipe.ExactDedup:
			ec := transforms.ExactConfig{Mode: dedup.KeyMode(cfg.Key), Post: laterChecks(plan, i), Meter: meter}
			if componentsFor(RunnerName()) == transforms.ComponentsLocal {
				ec.Local = t.spill
			}
			t.mark(transforms.ExactDedupMarks(s, t.live(), ec, name, nil))
		case *recipe.FuzzyDedup:
			if ac, ok := plan.against[cfg]; ok {
				raw, _ := json.Marshal(ac)
				t.step(transforms.StepSpec{Stage: name, Kind: "fuzzy_against", Config: raw})
			}
			fc := transforms.FuzzyConfig{Text: cfg.Text, Mode: dedup.KeyMode(cfg.Key), Threshold: cfg.Threshold,
				Bands: cfg.Bands, Rows: cfg.Rows, Verify: cfg.Verify, Edges: cfg.Edges, MaxBucketPairs: fuzzyMaxBucketPairs,
				Keep: cfg.Keep, Rounds: cfg.Rounds, Components: componentsFor(RunnerName()),
				SpillDir: dir, SpillBudget: plan.SpillBudget, Post: laterChecks(plan, i), Meter: meter}
			m, check := transforms.FuzzyDedupMarks(s, t.live(), fc, name, nil, nil)
			t.report(check)
			t.mark(m)
		case *recipe.Topics:
			// The model is fitted on the samples as the stages before it
			// left them: apply what is pending first, as for generation
			// stages (see topics.go).
			var reps beam.PCollection
			t.samples, topicModel, reps = transforms.TopicsWithModel(s, t.flush(), topicsConfig(plan, i, name, dir, ledger))
			t.report(reps)
		case *recipe.SemanticDedup:
			if !topicModel.IsValid() {
				return nil, nil, fmt.Errorf("stage %s (line %d): needs an earlier topics stage", name, st.Line)
			}
			t.mark(transforms.SemanticDedupMarks(s, t.live(), topicModel, semDedupConfig(name, cfg, laterChecks(plan, i), meter)))
		case *recipe.Balance:
			if !topicModel.IsValid() {
				return nil, nil, fmt.Errorf("stage %s (line %d): needs an earlier topics stage", name, st.Line)
			}
			t.mark(transforms.BalanceMarks(s, t.live(), transforms.BalanceConfig{Stage: name, Dir: dir, Plan: cfg.BalanceConfig(), Meter: meter}))
		default:
			spec, ok, err := stepSpec(name, st, r.ResolvePath)
			if err != nil {
				return nil, nil, fmt.Errorf("stage %s (line %d): %w", name, st.Line, err)
			}
			if !ok {
				return nil, nil, fmt.Errorf("stage %s (line %d): no transform for stage kind %q", name, st.Line, st.Kind)
			}
			spec.BudgetLedger = ledger
			t.step(spec)
		}
	}
	// Mixing by weight or cap comes after every stage.
	var mixCfg transforms.MixConfig
	for _, src := range r.Sources {
		mixCfg.Sources = append(mixCfg.Sources, transforms.MixSource{Source: src.Name, Weight: src.Weight, MaxSamples: src.MaxSamples})
		if src.Weight > 0 || src.MaxSamples > 0 {
			mixCfg.Seed = r.Output.MixSeed
		}
	}
	if mixCfg.Seed != "" {
		names = append(names, "mix")
		m, targets := transforms.MixMarks(s, t.live(), mixCfg, "mix", nil, nil)
		t.report(targets)
		t.mark(m)
	}
	shardReports, rejReport := t.writeShards(dir)
	deadReport := transforms.WriteDeadLetters(s, dead, dir)
	reports := append([]beam.PCollection{inputReports, shardReports, deadReport, rejReport}, t.reports...)
	reports = append(reports, meter.Reports(s.Scope("Shuffle")))
	transforms.WriteReport(s, dir, reports...)
	return p, names, nil
}

// stageNames are the funnel names of the plan's stages that run, by
// index: the stage kind, with _2, _3, … for its later stages.
func stageNames(plan *Plan) map[int]string {
	out := map[int]string{}
	seen := map[string]int{}
	for i, st := range plan.Recipe.Stages {
		if plan.Skipped[i] {
			continue
		}
		seen[st.Kind]++
		out[i] = st.Kind
		if seen[st.Kind] > 1 {
			out[i] = fmt.Sprintf("%s_%d", st.Kind, seen[st.Kind])
		}
	}
	return out
}

// laterChecks are the per-sample checks that come after stage i in the
// recipe (filter and decontaminate stages, which only keep or drop): a
// dedup stage picks each cluster's survivor among the members that pass
// them, so a cluster never loses every member to a later filter while
// one would have passed.
func laterChecks(plan *Plan, i int) []transforms.StepSpec {
	var out []transforms.StepSpec
	names := stageNames(plan)
	for j, st := range plan.Recipe.Stages {
		if plan.Skipped[j] || j <= i || (st.Kind != "filter" && st.Kind != "decontaminate") {
			continue
		}
		name := names[j]
		if spec, ok, err := stepSpec(name, st, plan.Recipe.ResolvePath); err == nil && ok {
			out = append(out, spec)
		}
	}
	return out
}

// componentsFor picks how fuzzy dedup finds its clusters on a runner:
// union-find on one worker for the in-process runners (every shuffle of
// the rounds is paid on this machine), rounds elsewhere. The clusters
// are the same.
func componentsFor(runner string) string {
	switch runner {
	case "direct", "DirectRunner", "prism", "PrismRunner":
		return transforms.ComponentsLocal
	}
	return ""
}

// stepSpec turns a per-sample stage of the recipe into a step spec.
func stepSpec(name string, st recipe.Stage, resolve func(string) string) (transforms.StepSpec, bool, error) {
	kind, ok := stepKinds[st.Kind]
	if !ok {
		return transforms.StepSpec{}, false, nil
	}
	var cfg []byte
	var err error
	if j, ok := st.Config.(*recipe.Judge); ok {
		cache := cacheDir(j.Cache, resolve)
		jc := transforms.JudgeConfig{Heuristic: j.Heuristic, Rubric: j.Rubric, Options: j.Options, Threshold: j.Threshold, CacheDir: cache}
		if j.Endpoint != nil {
			jc.Endpoint = *j.Endpoint
		}
		cfg, err = json.Marshal(jc)
	} else if d, ok := st.Config.(*recipe.Decontaminate); ok {
		c := d.DecontamConfig
		// Globs expanded relative to the recipe (Run checks before the
		// pipeline starts that each matches).
		files, gerr := decontamFiles(context.Background(), c.Files, resolve)
		if gerr != nil {
			files = nil
			for _, f := range c.Files {
				files = append(files, resolve(f))
			}
		}
		c.Files = files
		cfg, err = json.Marshal(c)
	} else {
		cfg, err = json.Marshal(st.Config)
	}
	if err != nil {
		return transforms.StepSpec{}, true, err
	}
	return transforms.StepSpec{Stage: name, Kind: kind, Config: cfg}, true, nil
}

// readShuffle reads the shuffle meter's lines and removes their file
// from the staging directory: they measure the run, not the data, and
// go to the manifest only (the version's files stay byte-identical
// across runners and checkouts).
func readShuffle(ctx context.Context, dir string) ([]transforms.Report, error) {
	file := dir + "/" + transforms.ShuffleFile
	data, err := datasets.ReadFile(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("run report: %w", err)
	}
	reports, err := transforms.ReadReport(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := datasets.Remove(ctx, file); err != nil {
		return nil, fmt.Errorf("run report: %w", err)
	}
	return reports, nil
}

// fuzzyMaxBucketPairs is the fuzzy stage's bucket cap (buckets of more
// pairs link members to the bucket's first, whatever the edges policy),
// which the dry run's prediction uses too.
const fuzzyMaxBucketPairs = 2000

// stepKinds maps recipe stage kinds that are per-sample steps to their
// transforms step kinds.
var stepKinds = map[string]string{"filter": "filter", "pii": "pii", "decontaminate": "decontaminate", "judge": "judge"}

// assemble reads the run's report and builds the manifest, checking that
// the funnel adds up.
func assemble(ctx context.Context, plan *Plan, dir string, stageNames []string) (*datasets.Manifest, error) {
	data, err := datasets.ReadFile(ctx, dir+"/"+transforms.ReportFile)
	if err != nil {
		return nil, fmt.Errorf("run report: %w", err)
	}
	reports, err := transforms.ReadReport(data)
	if err != nil {
		return nil, err
	}
	shuffle, err := readShuffle(ctx, dir)
	if err != nil {
		return nil, err
	}
	canon, err := plan.Recipe.Canonical()
	if err != nil {
		return nil, err
	}
	m := &datasets.Manifest{
		Format:      datasets.ManifestFormat,
		Name:        plan.Recipe.Name,
		ContentID:   plan.ContentID,
		Skipped:     plan.SkipReasons,
		CreatedAt:   time.Now().UTC().Format(time.RFC3339),
		Sieve:       Version,
		SieveBuild:  CodeVersion(),
		Runner:      RunnerName(),
		Recipe:      canon,
		Schema:      datasets.ShardColumns(),
		DeadLetters: transforms.DeadLettersFile,
		Rejected:    transforms.RejectedFile,
	}
	inputs := map[string]*datasets.Input{}
	m.Inputs = append(m.Inputs, plan.Inputs...)
	for _, v := range plan.Parents {
		m.AddParent(v.Ref.String(), v.Manifest.ContentID)
	}
	for i := range m.Inputs {
		inputs[m.Inputs[i].Source+"\x00"+m.Inputs[i].File] = &m.Inputs[i]
	}
	splits := map[string]*datasets.Split{}
	var deadCounts, rejCounts map[string]int64
	var sawDead, sawRej bool
	unconverged := map[string]int{}
	generated, modified := map[string]int64{}, map[string]int64{}
	stopped := map[string]bool{}
	// Why a stage stopped, and the error of its first failed call.
	detail, failure := map[string]string{}, map[string]string{}
	calls := map[string]int64{} // "STAGE\x00calls.ok" and "STAGE\x00calls.failed"
	usage := map[string]llm.Usage{}
	achieved := map[string]int64{}
	for _, rep := range reports {
		switch rep.Kind {
		case "input":
			in, ok := inputs[rep.Input.Source+"\x00"+rep.Input.File]
			if !ok {
				return nil, fmt.Errorf("run report names an unplanned input %s", rep.Input.File)
			}
			// A file read as several byte ranges reports once a range.
			in.Format = rep.Input.Format
			in.Records += rep.Input.Records
			in.Samples += rep.Input.Samples
			in.Dead += rep.Input.Dead
		case "shard":
			sp := splits[rep.Split]
			if sp == nil {
				sp = &datasets.Split{Name: rep.Split}
				splits[rep.Split] = sp
			}
			sp.Shards = append(sp.Shards, *rep.Shard)
			sp.Rows += rep.Shard.Rows
			sp.Bytes += rep.Shard.Bytes
			if rep.Stats != nil {
				sp.Stats.Merge(rep.Stats)
			}
		case "dead_letters":
			deadCounts, sawDead = rep.Counts, true
		case "rejected":
			rejCounts, sawRej = rep.Counts, true
		case "unconverged":
			unconverged[rep.Stage]++
		case "generated":
			for k, n := range rep.Counts {
				if transforms.IsCallCount(k) {
					calls[rep.Stage+"\x00"+k] += n
					continue
				}
				if k == transforms.CountGenerated {
					generated[rep.Stage] += n
				} else {
					modified[rep.Stage+"\x00"+k] += n
				}
			}
			if rep.Detail != "" && !stopped[rep.Stage] {
				stopped[rep.Stage] = true
				detail[rep.Stage] = rep.Detail
				m.Stopped = append(m.Stopped, fmt.Sprintf("stage %s stopped: %s", rep.Stage, rep.Detail))
			}
			if failure[rep.Stage] == "" {
				failure[rep.Stage] = rep.Failure
			}
		case "usage":
			k := rep.Endpoint + "\x00" + rep.Model
			usage[k] = usage[k].Add(*rep.Usage)
		case "mix":
			m.Mix = append(m.Mix, datasets.MixEntry{Source: rep.Mix.Source, Weight: rep.Mix.Weight, Available: rep.Mix.Available, Target: rep.Mix.Target})
		}
		for src, n := range rep.Sources {
			achieved[src] += n
		}
	}
	sort.Strings(m.Stopped)
	if n, by, ok := transforms.ShuffleBytes(shuffle); ok {
		m.ShuffleBytes, m.Shuffle = &n, by
	}
	allowed := failureAllowed(plan)
	for _, name := range stageNames {
		ok, failed := calls[name+"\x00"+transforms.CountCallsOK], calls[name+"\x00"+transforms.CountCallsFailed]
		if failed == 0 || ok > 0 || allowed[name] {
			continue
		}
		cause := detail[name]
		if cause == "" {
			cause = failure[name]
		}
		if cause == "" {
			cause = "see the rejected samples' details"
		}
		return nil, fmt.Errorf("stage %s: every call failed (%d), nothing committed: %s (allow_failure: true lets the run go on)",
			name, failed, oneLine(cause))
	}
	for _, k := range slices.Sorted(maps.Keys(usage)) {
		ep, model, _ := strings.Cut(k, "\x00")
		u := usage[k]
		m.LLM = append(m.LLM, datasets.LLMUsage{Endpoint: ep, Model: model, Calls: u.Calls, CachedCalls: u.CachedCalls,
			Requests: u.Requests, Retries: u.Retries, Failures: u.Failures, BudgetRefusals: u.BudgetRefusals,
			PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens,
			CachedTokens: u.CachedTokens, Cost: u.Cost})
	}
	sort.Slice(m.Mix, func(i, j int) bool { return m.Mix[i].Source < m.Mix[j].Source })
	for i := range m.Mix {
		m.Mix[i].Achieved = achieved[m.Mix[i].Source]
		if m.Mix[i].Achieved != m.Mix[i].Target {
			return nil, fmt.Errorf("mix: source %s has %d samples written, target %d", m.Mix[i].Source, m.Mix[i].Achieved, m.Mix[i].Target)
		}
	}
	for stage, n := range unconverged {
		return nil, fmt.Errorf("stage %s: duplicate clusters did not converge (%d nodes unsettled after the last round); raise its rounds: setting", stage, n)
	}
	if !sawDead || !sawRej {
		return nil, fmt.Errorf("run report is incomplete (dead letters: %v, rejected: %v)", sawDead, sawRej)
	}
	for _, name := range []string{"train", "test"} {
		if sp, ok := splits[name]; ok {
			sort.Slice(sp.Shards, func(i, j int) bool { return sp.Shards[i].Path < sp.Shards[j].Path })
			m.Splits = append(m.Splits, *sp)
			m.Totals.Rows += sp.Rows
			m.Totals.Bytes += sp.Bytes
			m.Totals.Shards += len(sp.Shards)
		}
	}
	f := &m.Funnel
	for _, in := range m.Inputs {
		f.Read += in.Records
		f.DeadLettered += in.Dead
	}
	f.DeadReasons = sortedCounts(deadCounts, "")
	flow := f.Read - f.DeadLettered
	for _, name := range stageNames {
		st := datasets.StageFunnel{Stage: name, In: flow, Generated: generated[name]}
		st.Dropped, st.Failed = splitFailedCalls(sortedCounts(rejCounts, name+"/"))
		for _, k := range slices.Sorted(maps.Keys(modified)) {
			if stage, what, _ := strings.Cut(k, "\x00"); stage == name {
				st.Modified = append(st.Modified, datasets.Count{Reason: what, Count: modified[k]})
			}
		}
		f.Generated += st.Generated
		st.Out = st.In + st.Generated
		for _, c := range st.Dropped {
			st.Out -= c.Count
		}
		if st.Dropped == nil {
			st.Dropped = []datasets.Count{}
		}
		f.Stages = append(f.Stages, st)
		flow = st.Out
	}
	f.Written = m.Totals.Rows
	if f.Written != flow {
		return nil, fmt.Errorf("funnel does not add up: stages passed %d samples but the shards hold %d", flow, f.Written)
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	return m, nil
}

// failureAllowed returns the names (as Build names them) of the stages
// that set allow_failure.
func failureAllowed(plan *Plan) map[string]bool {
	out := map[string]bool{}
	names := stageNames(plan)
	for i, st := range plan.Recipe.Stages {
		if plan.Skipped[i] {
			continue
		}
		name := names[i]
		if a, ok := st.Config.(interface{ FailureAllowed() bool }); ok && a.FailureAllowed() {
			out[name] = true
		}
	}
	return out
}

// oneLine joins s's lines.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// sortedCounts picks the counts whose key starts with prefix, strips it
// and sorts by count (descending), then reason.
func sortedCounts(counts map[string]int64, prefix string) []datasets.Count {
	var out []datasets.Count
	for k, v := range counts {
		if strings.HasPrefix(k, prefix) {
			out = append(out, datasets.Count{Reason: strings.TrimPrefix(k, prefix), Count: v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// checkCounters compares Beam's committed counters with the manifest and
// logs a mismatch at debug level only: counters are for monitoring, the
// funnel comes from the files, and prism's counters have disagreed with
// them (a runner that retried bundles may report attempted rather than
// committed counts), so sieve reports no counter to the user.
func checkCounters(res beam.PipelineResult, m *datasets.Manifest) {
	want := map[string]int64{"read_records": m.Funnel.Read, "written_rows": m.Funnel.Written, "dead_letters": m.Funnel.DeadLettered}
	for _, c := range res.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace != transforms.Namespace {
			continue
		}
		if w, ok := want[c.Key.Name]; ok && c.Committed != w {
			slog.Debug("Beam counter disagrees with the files written", "counter", c.Key.Name, "counter_value", c.Committed, "files", w)
		}
	}
}

// addModified copies the stages' "modified/STAGE/WHAT" counters (PII
// redactions) into the funnel.
func addModified(res beam.PipelineResult, m *datasets.Manifest) {
	for _, c := range res.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace != transforms.Namespace || !strings.HasPrefix(c.Key.Name, "modified/") || c.Committed == 0 {
			continue
		}
		parts := strings.SplitN(strings.TrimPrefix(c.Key.Name, "modified/"), "/", 2)
		if len(parts) != 2 {
			continue
		}
		for i := range m.Funnel.Stages {
			if m.Funnel.Stages[i].Stage == parts[0] {
				m.Funnel.Stages[i].Modified = append(m.Funnel.Stages[i].Modified, datasets.Count{Reason: parts[1], Count: c.Committed})
			}
		}
	}
	for i := range m.Funnel.Stages {
		mod := m.Funnel.Stages[i].Modified
		sort.Slice(mod, func(a, b int) bool { return mod[a].Reason < mod[b].Reason })
	}
}
