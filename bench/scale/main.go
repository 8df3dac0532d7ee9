// Command scale is sieve's benchmark for large jobs. For each corpus size
// it generates the realistic corpus (package bench/scale/corpus: real
// alpaca_eval answers reused under prompt variants, OpenAI messages JSONL
// in files of 250k samples), writes the recipes into the work folder and
// times, as child processes:
//
//	scale_full_N           sieve run recipe_full.yaml --quiet --force
//	                       (pii, exact_dedup, fuzzy_dedup 0.7, filter; default runner)
//	scale_exact_N          sieve run recipe_exact.yaml --quiet --force (exact_dedup only)
//	duckdb_dedup_write_N   node bench/duckdb/bench.mjs 'corpus/alpaca*.jsonl' OUT (the
//	                       baseline of scale_exact_N: the same key, zstd Parquet)
//
// and, for each runner of -runners other than "default", the sieve jobs
// again with --runner=R (scale_full_N_R, scale_exact_N_R; "universal"
// runs on a `sieve prism` job server the harness starts, with
// --environment_type=LOOPBACK). With two runners or more, a line
//
//	{"bench":"scale_identical_full_N","value":true,"unit":"identical","runners":[…],"distinct_shard_sets":1}
//
// per kind and size says whether every runner committed byte-identical
// shards (SHA-256 over the shards' names and bytes, shards_sha256 in each
// run's line).
//
// Usage:
//
//	go run ./bench/scale -sieve bin/sieve -n 100000,1000000 -exact-n 200000,1000000 \
//	    -workdir /tmp/sieve-scale [-runners default,prism,direct] [-cpuprofile DIR -heapprofile DIR]
//
// Each result is one JSON line on stdout (and appended to
// WORKDIR/results.jsonl), printed when its corpus size is done:
//
//	{"bench":"scale_full_1000000","value":…,"unit":"samples/s","seconds":…,
//	 "peak_rss_mib":…,"samples_in":…,"samples_out":…,"shuffled_bytes_per_sample":…,
//	 "baseline":…,"ratio":…,"rss_ratio":…,"targets_met":{…},"machine":"…",
//	 "max_other_cpu_s":…, …}
//
// value is input samples over the child's wall time (start to exit);
// peak_rss_mib is ru_maxrss from wait4 (benchenv.RunChild); samples_out
// and the stages' outputs come from the committed manifest's funnel;
// shuffled_bytes_per_sample is the manifest's shuffle_bytes over the
// input samples (null when the run did not record it), and
// shuffle_bytes_by_grouping the manifest's per-grouping counts. ratio and rss_ratio compare an exact-dedup
// run with DuckDB's at the same size (null elsewhere). targets_met checks,
// without asserting, the targets of the lines they apply to (default
// runner only): full recipe at 1M within 100 s and 8 GiB, at 5M within
// 8 GiB; exact dedup at 200k and 1M at least 1.5× DuckDB's samples/s at no
// more than its peak RSS. cpu_s is the child's own CPU time (user and
// system, median), which other work on the machine changes much less
// than the wall time; max_other_cpu_s well above zero means the run
// shared the CPUs. A bench that fails prints a line with "error" and the
// harness goes on.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
	"github.com/sieve-data/sieve/bench/scale/corpus"
)

// resultKeys come first in a result line, in this order.
var resultKeys = []string{"bench", "error", "value", "unit", "seconds", "peak_rss_mib", "samples_in", "samples_out",
	"shuffled_bytes_per_sample", "baseline", "ratio", "rss_ratio", "targets_met", "runner", "machine", "max_other_cpu_s"}

type options struct {
	sieve, data, workdir    string
	fullN, exactN           []int
	runners                 []string
	seed                    uint64
	perFile, shards, reps   int
	node, script            string
	threads                 int
	timeout                 time.Duration
	only                    string
	cpuprofile, heapprofile string
	keep                    bool
}

func main() {
	var o options
	var fullN, exactN, runners string
	flag.StringVar(&o.sieve, "sieve", "", "path to the sieve binary")
	flag.StringVar(&fullN, "n", "100000,1000000", "corpus sizes of the full-recipe benches (comma-separated; empty: none)")
	flag.StringVar(&exactN, "exact-n", "200000,1000000", "corpus sizes of the exact-dedup benches against DuckDB (empty: none)")
	flag.StringVar(&runners, "runners", "default", "runners of the sieve benches: default (no --runner flag), prism, direct, universal (on a sieve prism job server the harness starts), …; with two or more, a scale_identical line per size compares their shards")
	flag.StringVar(&o.data, "data", "", "alpaca_eval folder (default: ../shared/data/alpaca_eval from the module root)")
	flag.StringVar(&o.workdir, "workdir", "", "work folder for corpora, recipes, outputs and logs (default: a new temporary folder)")
	flag.Uint64Var(&o.seed, "seed", 1, "corpus seed")
	flag.IntVar(&o.perFile, "per-file", 250000, "samples per corpus file")
	flag.IntVar(&o.shards, "shards", 8, "output shards of the sieve recipes")
	flag.IntVar(&o.reps, "reps", 1, "runs per bench; medians are reported")
	flag.StringVar(&o.node, "node", "node", "node executable")
	flag.StringVar(&o.script, "duckdb-script", "", "path to bench.mjs (default: bench/duckdb/bench.mjs in the module)")
	flag.IntVar(&o.threads, "duckdb-threads", 2, "DuckDB threads")
	flag.DurationVar(&o.timeout, "timeout", time.Hour, "limit for one run")
	flag.StringVar(&o.only, "only", "", "comma-separated bench names or patterns (scale_exact_*) to run (default: all)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "folder: each sieve run writes a CPU profile there (sieve run --cpuprofile; perturbs timings)")
	flag.StringVar(&o.heapprofile, "heapprofile", "", "folder: each sieve run writes a heap profile there (sieve run --memprofile)")
	flag.BoolVar(&o.keep, "keep", false, "keep corpora and output stores (default: removed once measured)")
	flag.Parse()
	var err error
	if o.fullN, err = parseSizes(fullN); err == nil {
		o.exactN, err = parseSizes(exactN)
	}
	if err != nil {
		fatal(err)
	}
	for _, r := range strings.Split(runners, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.runners = append(o.runners, r)
		}
	}
	if err := run(o, os.Stdout); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad corpus size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is one benchmark at one corpus size.
type bench struct {
	name    string
	kind    string // "full", "exact" or "duckdb"
	runner  string // "default", "prism", "direct", … ("" for DuckDB)
	n       int
	store   string // sieve's output store
	cmd     func(rep int) *exec.Cmd
	check   func(stdout []byte) (map[string]any, error)
	err     error
	runs    []result
	profile bool
}

type result struct {
	m     benchenv.Measurement
	extra map[string]any
}

func run(o options, stdout io.Writer) error {
	if o.reps < 1 {
		return errors.New("-reps must be positive")
	}
	if len(o.fullN)+len(o.exactN) == 0 {
		return errors.New("nothing to run: -n and -exact-n are both empty")
	}
	root, rootErr := benchenv.ModuleRoot()
	if o.data == "" {
		if rootErr != nil {
			return rootErr
		}
		o.data = corpus.DataDir(root)
	}
	recs, err := corpus.Load(o.data)
	if err != nil {
		return err // says that the benchmark needs the data, and where
	}
	gen, err := corpus.NewGenerator(recs, corpus.Config{Seed: o.seed, PerFile: o.perFile})
	if err != nil {
		return err
	}
	if o.workdir == "" {
		if o.workdir, err = os.MkdirTemp("", "sieve-scale-"); err != nil {
			return err
		}
	}
	wd, err := filepath.Abs(o.workdir)
	if err != nil {
		return err
	}
	for _, d := range []string{wd, filepath.Join(wd, "logs"), o.cpuprofile, o.heapprofile} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	for _, d := range []*string{&o.cpuprofile, &o.heapprofile} {
		if *d != "" {
			if *d, err = filepath.Abs(*d); err != nil {
				return err
			}
		}
	}
	results, err := os.OpenFile(filepath.Join(wd, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer results.Close()
	out := json.NewEncoder(io.MultiWriter(stdout, results))
	logf("work folder %s; %d records from %s", wd, len(recs), o.data)

	sieveBin, sieveErr := resolveSieve(o.sieve)
	nodeBin, script, duckErr := resolveDuckDB(o, root)
	machine := benchenv.Machine()
	// The universal runner needs a job server: sieve prism, started once.
	var jobServer string
	if slices.Contains(o.runners, "universal") && sieveErr == nil {
		addr, stop, err := startJobServer(sieveBin, wd)
		if err != nil {
			return err
		}
		defer stop()
		jobServer = addr
	}

	full, exact := set(o.fullN), set(o.exactN)
	sizes := append(append([]int(nil), o.fullN...), o.exactN...)
	sort.Ints(sizes)
	sizes = uniq(sizes)
	for _, n := range sizes {
		// The corpus.
		dir := filepath.Join(wd, fmt.Sprintf("corpus_%d", n))
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		st, err := gen.Generate(filepath.Join(dir, "alpaca.jsonl"), n)
		if err != nil {
			return fmt.Errorf("generating %d samples: %w", n, err)
		}
		logf("corpus %d: %d files, %.1f MiB, %d variants, %d samples after exact dedup, %.1fs",
			n, len(st.Files), float64(st.Bytes)/(1<<20), st.Variants, st.AfterExact, st.Seconds)
		genLine := map[string]any{"bench": fmt.Sprintf("scale_gen_%d", n), "value": round(float64(n)/st.Seconds, 1),
			"unit": "samples/s", "seconds": round(st.Seconds, 3), "samples_in": n, "bytes": st.Bytes,
			"mb_per_s": round(float64(st.Bytes)/1e6/st.Seconds, 1), "files": len(st.Files),
			"variants": st.Variants, "after_exact": st.AfterExact, "machine": machine}
		if err := out.Encode(benchenv.Ordered(genLine, resultKeys...)); err != nil {
			return err
		}
		input := filepath.Join(dir, "alpaca*.jsonl")

		// The benches at this size.
		var benches []*bench
		sieveBench := func(kind, runner, stages string, wantOut int64) *bench {
			name := fmt.Sprintf("scale_%s_%d", kind, n)
			if runner != "default" {
				name += "_" + runner
			}
			store := filepath.Join(wd, "store_"+name)
			recipe := filepath.Join(wd, "recipe_"+strings.TrimPrefix(name, "scale_")+".yaml") // one per runner: each has its store
			b := &bench{name: name, kind: kind, runner: runner, n: n, store: store, err: sieveErr}
			if err := os.WriteFile(recipe, []byte(recipeYAML("scale_"+kind, input, store, stages, o.shards)), 0o644); err != nil && b.err == nil {
				b.err = err
			}
			b.cmd = func(rep int) *exec.Cmd {
				args := []string{"run", recipe, "--quiet", "--force"}
				if kind == "exact" {
					// The job DuckDB does: read, dedup, write Parquet.
					// The full recipe keeps the version's report (the
					// default), as users get it.
					args = append(args, "--no-report")
				}
				switch runner {
				case "default":
				case "universal":
					// On the job server the harness started (sieve prism).
					args = append(args, "--runner=universal", "--endpoint="+jobServer, "--environment_type=LOOPBACK")
				default:
					args = append(args, "--runner="+runner)
				}
				if o.cpuprofile != "" {
					args = append(args, "--cpuprofile", filepath.Join(o.cpuprofile, fmt.Sprintf("%s.%d.cpu.prof", name, rep)))
					b.profile = true
				}
				if o.heapprofile != "" {
					args = append(args, "--memprofile", filepath.Join(o.heapprofile, fmt.Sprintf("%s.%d.heap.prof", name, rep)))
					b.profile = true
				}
				return exec.Command(sieveBin, args...)
			}
			b.check = func([]byte) (map[string]any, error) { return checkSieve(store, int64(n), wantOut) }
			return b
		}
		if exact[n] {
			outParquet := filepath.Join(wd, fmt.Sprintf("duckdb_%d.parquet", n))
			duck := &bench{name: fmt.Sprintf("duckdb_dedup_write_%d", n), kind: "duckdb", n: n, err: duckErr}
			duck.cmd = func(int) *exec.Cmd {
				_ = os.Remove(outParquet)
				return exec.Command(nodeBin, script, input, outParquet, strconv.Itoa(o.threads))
			}
			duck.check = func(stdout []byte) (map[string]any, error) {
				defer func() {
					if !o.keep {
						_ = os.Remove(outParquet)
					}
				}()
				return checkDuckDB(stdout, int64(n), st.AfterExact)
			}
			benches = append(benches, duck)
			for _, r := range o.runners {
				benches = append(benches, sieveBench("exact", r, "  - exact_dedup: {}\n", st.AfterExact))
			}
		}
		if full[n] {
			for _, r := range o.runners {
				benches = append(benches, sieveBench("full", r,
					"  - pii: {}\n  - exact_dedup: {}\n  - fuzzy_dedup: {threshold: 0.7}\n  - filter: {}\n", -1))
			}
		}
		benches = selectBenches(benches, o.only)

		for rep := 1; rep <= o.reps; rep++ {
			for _, b := range benches {
				if b.err != nil {
					continue
				}
				if b.store != "" {
					if err := os.RemoveAll(b.store); err != nil {
						return err
					}
				}
				cmd := b.cmd(rep)
				cmd.Dir = wd
				logPath := filepath.Join(wd, "logs", fmt.Sprintf("%s.%d.log", b.name, rep))
				logf("%s run %d …", b.name, rep)
				m, err := benchenv.RunChild(cmd, logPath, o.timeout)
				var extra map[string]any
				if err == nil {
					extra, err = b.check(m.Stdout)
				}
				if b.store != "" && !o.keep && err == nil {
					_ = os.RemoveAll(b.store) // a failed run's store stays for inspection
				}
				if err != nil {
					b.err = fmt.Errorf("run %d: %w (log: %s)", rep, err, logPath)
					logf("%s: %v", b.name, b.err)
					continue
				}
				logf("%s run %d: %.2fs, peak RSS %.0f MiB, %.1f CPU s used by other processes meanwhile",
					b.name, rep, m.Seconds, float64(m.MaxRSSKiB)/1024, m.OtherCPU)
				b.runs = append(b.runs, result{m: m, extra: extra})
			}
		}

		var duck *bench
		for _, b := range benches {
			if b.kind == "duckdb" && b.err == nil && len(b.runs) > 0 {
				duck = b
			}
		}
		for _, b := range benches {
			if err := out.Encode(benchenv.Ordered(resultLine(b, duck, machine), resultKeys...)); err != nil {
				return err
			}
		}
		for _, l := range identicalLines(benches, n, machine) {
			if err := out.Encode(benchenv.Ordered(l, resultKeys...)); err != nil {
				return err
			}
		}
		if !o.keep {
			_ = os.RemoveAll(dir)
		}
	}
	return nil
}

// resultLine is b's JSON line; duck is the DuckDB bench at b's size, if
// it ran.
func resultLine(b, duck *bench, machine string) map[string]any {
	line := map[string]any{"bench": b.name, "machine": machine, "samples_in": b.n}
	if b.kind != "duckdb" {
		line["runner"] = b.runner
	}
	switch b.kind {
	case "exact":
		line["baseline"] = fmt.Sprintf("duckdb_dedup_write_%d", b.n)
	case "duckdb":
		line["baseline"] = b.name
	default:
		line["baseline"] = nil
	}
	line["ratio"], line["rss_ratio"] = nil, nil
	if b.err != nil || len(b.runs) == 0 {
		if b.err == nil {
			b.err = errors.New("not run")
		}
		line["error"] = b.err.Error()
		if t := targets(b, false, 0, 0, nil, nil); t != nil {
			line["targets_met"] = t
		}
		return line
	}
	secs := median(b.runs, func(r result) float64 { return r.m.Seconds })
	rssMiB := median(b.runs, func(r result) float64 { return float64(r.m.MaxRSSKiB) / 1024 })
	value := float64(b.n) / secs
	line["value"] = round(value, 1)
	line["unit"] = "samples/s"
	line["seconds"] = round(secs, 3)
	line["peak_rss_mib"] = round(rssMiB, 1)
	line["cpu_s"] = round(median(b.runs, func(r result) float64 { return r.m.OwnCPU }), 2)
	line["reps"] = len(b.runs)
	maxOther := 0.0
	var runs []float64
	for _, r := range b.runs {
		maxOther = max(maxOther, r.m.OtherCPU)
		runs = append(runs, round(r.m.Seconds, 3))
	}
	line["max_other_cpu_s"] = round(maxOther, 2)
	line["runs_seconds"] = runs
	if b.kind != "duckdb" {
		line["shuffled_bytes_per_sample"] = nil
	}
	for k, v := range b.runs[len(b.runs)-1].extra {
		line[k] = v
	}
	if sb, ok := line["shuffle_bytes"].(int64); ok {
		line["shuffled_bytes_per_sample"] = round(float64(sb)/float64(b.n), 1)
	}
	var ratio, rssRatio *float64
	if duck != nil && (b.kind == "exact" || b.kind == "duckdb") {
		dSecs := median(duck.runs, func(r result) float64 { return r.m.Seconds })
		dRSS := median(duck.runs, func(r result) float64 { return float64(r.m.MaxRSSKiB) / 1024 })
		rt, rr := round(dSecs/secs, 3), round(rssMiB/dRSS, 3)
		ratio, rssRatio = &rt, &rr
		line["ratio"], line["rss_ratio"] = rt, rr
	}
	if b.profile {
		line["profiled"] = true
	}
	if t := targets(b, true, secs, rssMiB, ratio, rssRatio); t != nil {
		line["targets_met"] = t
	}
	return line
}

// targets returns the targets that apply to b, met or not (nil
// when none applies). ok is false when b failed.
func targets(b *bench, ok bool, secs, rssMiB float64, ratio, rssRatio *float64) map[string]any {
	if b.runner != "default" {
		return nil
	}
	const capMiB = 8 * 1024
	switch {
	case b.kind == "full" && b.n == 1000000:
		return map[string]any{"seconds_le_100": ok && secs <= 100, "peak_rss_le_8gib": ok && rssMiB <= capMiB}
	case b.kind == "full" && b.n == 5000000:
		return map[string]any{"completed": ok, "peak_rss_le_8gib": ok && rssMiB <= capMiB}
	case b.kind == "exact" && (b.n == 200000 || b.n == 1000000):
		return map[string]any{
			"ratio_ge_1_5":     ok && ratio != nil && *ratio >= 1.5,
			"rss_le_duckdb":    ok && rssRatio != nil && *rssRatio <= 1,
			"duckdb_completed": ratio != nil,
		}
	}
	return nil
}

// checkSieve reads what the run committed under store: the funnel, the
// runner, the output size and the bytes shuffled when recorded.
func checkSieve(store string, read, wantOut int64) (map[string]any, error) {
	paths, _ := filepath.Glob(filepath.Join(store, "*", "*", "manifest.json"))
	if len(paths) != 1 {
		var found []string
		_ = filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
			if err == nil && len(found) < 12 {
				rel, _ := filepath.Rel(store, p)
				found = append(found, rel)
			}
			return nil
		})
		return nil, fmt.Errorf("want one manifest under %s, found %d (store holds %v)", store, len(paths), found)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return nil, err
	}
	var m struct {
		Runner string `json:"runner"`
		Funnel struct {
			Read         int64 `json:"read"`
			DeadLettered int64 `json:"dead_lettered"`
			Written      int64 `json:"written"`
			Stages       []struct {
				Stage string `json:"stage"`
				Out   int64  `json:"out"`
			} `json:"stages"`
		} `json:"funnel"`
		Totals struct {
			Bytes int64 `json:"bytes"`
		} `json:"totals"`
		ShuffleBytes *int64           `json:"shuffle_bytes"`
		Shuffle      map[string]int64 `json:"shuffle"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", paths[0], err)
	}
	extra := map[string]any{"samples_out": m.Funnel.Written, "runner_used": m.Runner, "output_bytes": m.Totals.Bytes}
	if h, err := shardsHash(filepath.Join(filepath.Dir(paths[0]), "data")); err == nil {
		extra["shards_sha256"] = h
	} else {
		return nil, err
	}
	stages := map[string]int64{}
	for _, s := range m.Funnel.Stages {
		stages[s.Stage] = s.Out
	}
	extra["stages_out"] = stages
	if m.Funnel.DeadLettered != 0 {
		extra["dead_lettered"] = m.Funnel.DeadLettered
	}
	if m.ShuffleBytes != nil {
		extra["shuffle_bytes"] = *m.ShuffleBytes
		if len(m.Shuffle) > 0 {
			extra["shuffle_bytes_by_grouping"] = m.Shuffle
		}
	}
	if m.Funnel.Read != read || (wantOut >= 0 && m.Funnel.Written != wantOut) {
		w := fmt.Sprintf("manifest funnel read %d, written %d; want %d", m.Funnel.Read, m.Funnel.Written, read)
		if wantOut >= 0 {
			w += fmt.Sprintf(", %d", wantOut)
		}
		extra["warning"] = w
		logf("%s: %s", store, w)
	}
	return extra, nil
}

// checkDuckDB reads bench.mjs's report line.
func checkDuckDB(stdout []byte, read, wantOut int64) (map[string]any, error) {
	var rep struct {
		SamplesIn  int64   `json:"samples_in"`
		SamplesOut int64   `json:"samples_out"`
		Seconds    float64 `json:"seconds"`
		DuckDB     string  `json:"duckdb"`
		Error      string  `json:"error"`
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	last := lines[len(lines)-1]
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		return nil, fmt.Errorf("unreadable report %q: %w", last, err)
	}
	if rep.Error != "" {
		return nil, errors.New(rep.Error)
	}
	if rep.SamplesIn != read {
		return nil, fmt.Errorf("samples_in %d, want %d", rep.SamplesIn, read)
	}
	extra := map[string]any{"samples_out": rep.SamplesOut, "inner_seconds": rep.Seconds, "duckdb": rep.DuckDB}
	if rep.SamplesOut != wantOut {
		extra["warning"] = fmt.Sprintf("samples_out %d, want %d (the generator's count of distinct conversations)", rep.SamplesOut, wantOut)
	}
	return extra, nil
}

// recipeYAML is a scale recipe in the shape sieve's parser accepts.
func recipeYAML(name, input, store, stages string, shards int) string {
	return fmt.Sprintf(`name: %s
sources:
  - name: alpaca_eval_variants
    path: %s
    format: openai
    license: apache-2.0
stages:
%soutput:
  store: %s
  shards: %d
  test_ratio: 0.0
`, name, yamlQuote(input), stages, yamlQuote(store), shards)
}

// yamlQuote quotes a path when plain YAML would misread it.
func yamlQuote(s string) string {
	if strings.ContainsAny(s, ":#'\"{}[],&*!|>%@` \t") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return s
}

func selectBenches(bs []*bench, only string) []*bench {
	if only == "" {
		return bs
	}
	var out []*bench
	for _, b := range bs {
		for _, p := range strings.Split(only, ",") {
			if ok, _ := path.Match(strings.TrimSpace(p), b.name); ok {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

func resolveSieve(p string) (string, error) {
	if p == "" {
		return "", errors.New("no sieve binary given (-sieve)")
	}
	p, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("sieve binary: %w", err)
	}
	return filepath.Abs(p)
}

func resolveDuckDB(o options, root string) (node, script string, err error) {
	node, err = exec.LookPath(o.node)
	if err != nil {
		return "", "", fmt.Errorf("node not found: %w", err)
	}
	script = o.script
	if script == "" {
		if root == "" {
			return "", "", errors.New("not inside the sieve module; give -duckdb-script")
		}
		script = filepath.Join(root, "bench", "duckdb", "bench.mjs")
	}
	if script, err = filepath.Abs(script); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(script); err != nil {
		return "", "", fmt.Errorf("duckdb script: %w", err)
	}
	pkg := filepath.Join(filepath.Dir(script), "node_modules", "@duckdb", "node-api", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		return "", "", fmt.Errorf("@duckdb/node-api is not installed (run npm ci in %s)", filepath.Dir(script))
	}
	return node, script, nil
}

func set(ns []int) map[int]bool {
	m := map[int]bool{}
	for _, n := range ns {
		m[n] = true
	}
	return m
}

func uniq(s []int) []int {
	var out []int
	for i, n := range s {
		if i == 0 || n != s[i-1] {
			out = append(out, n)
		}
	}
	return out
}

func median(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
}

// shardsHash is the SHA-256 over the names and bytes of the Parquet
// shards under dir, in name order: equal for byte-identical versions.
func shardsHash(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("no shards under %s", dir)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", filepath.Base(n))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// identicalLines compares, per kind of sieve bench at one size, the
// shards that its runners committed: one line per kind run on two
// runners or more, "identical" true when every run of every runner
// wrote the same bytes.
func identicalLines(benches []*bench, n int, machine string) []map[string]any {
	byKind := map[string]map[string][]string{}
	var kinds []string
	for _, b := range benches {
		if b.kind == "duckdb" || b.err != nil {
			continue
		}
		if byKind[b.kind] == nil {
			byKind[b.kind] = map[string][]string{}
			kinds = append(kinds, b.kind)
		}
		for _, r := range b.runs {
			if h, ok := r.extra["shards_sha256"].(string); ok {
				byKind[b.kind][b.runner] = append(byKind[b.kind][b.runner], h)
			}
		}
	}
	var out []map[string]any
	for _, k := range kinds {
		runs := byKind[k]
		if len(runs) < 2 {
			continue
		}
		var runners []string
		seen := map[string]bool{}
		for r, hs := range runs {
			runners = append(runners, r)
			for _, h := range hs {
				seen[h] = true
			}
		}
		sort.Strings(runners)
		out = append(out, map[string]any{"bench": fmt.Sprintf("scale_identical_%s_%d", k, n), "value": len(seen) == 1,
			"unit": "identical", "runners": runners, "distinct_shard_sets": len(seen), "samples_in": n, "machine": machine})
	}
	return out
}

// startJobServer starts `sieve prism` on a free loopback port for the
// universal-runner benches and returns its address and a stop function.
func startJobServer(sieveBin, wd string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logFile, err := os.Create(filepath.Join(wd, "logs", "prism-job-server.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(sieveBin, "prism", "--job_port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", nil, fmt.Errorf("sieve prism: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logFile.Close() }
	addr := fmt.Sprintf("localhost:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("sieve prism job server did not start on %s (log: %s)", addr, logFile.Name())
}
