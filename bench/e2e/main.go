// Command e2e is sieve's end-to-end benchmark harness. It generates a
// synthetic chat dataset with package chatgen, writes two recipes into the
// work folder, and times, as child processes:
//
//	sieve_e2e_dedup     sieve run recipe_dedup.yaml --quiet  (exact dedup, 4 shards)
//	sieve_e2e_plain     sieve run recipe_plain.yaml --quiet  (no stages, 4 shards)
//	sieve_e2e_*_direct  the same on Beam's direct runner (--runner=direct)
//	sieve_e2e_fuzzy_direct  exact then fuzzy dedup (MinHash-LSH) on the direct runner
//	duckdb_dedup_write  node bench/duckdb/bench.mjs IN OUT   (the baseline)
//
// Usage:
//
//	go run ./bench/e2e -sieve ./sieve -n 200000 -workdir /tmp/sieve-bench
//
// Each benchmark runs -reps times (interleaved, so drift hits all alike)
// and prints one JSON line with the medians:
//
//	{"bench":"sieve_e2e_dedup","value":…,"unit":"samples/s","seconds":…,
//	 "peak_rss_mib":…,"baseline":"duckdb_dedup_write","ratio":…,"machine":"…"}
//
// value is input samples divided by the child's wall time (process start
// to exit, startup included, for every tool alike); ratio is value over
// the baseline's value (null when the baseline failed). peak_rss_mib is
// the child's ru_maxrss from wait4, which on Linux is the largest resident
// set of the child and of any descendants it waited for (a maximum over
// processes, not a sum). For sieve, samples_out comes from the committed
// manifest's funnel when it can be read, with a "warning" when it is not
// the expected count. A benchmark that can't run (missing binary, node
// or DuckDB package, non-zero exit) prints a line with "error" instead,
// and the harness goes on with the others. max_other_cpu_s is the most CPU
// time that other processes used during one run (machine busy time from
// /proc/stat minus the child's own user+system time): well above zero
// means the run shared the CPUs and its number is not clean. Progress goes
// to stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/bench/internal/benchenv"
)

const baselineName = "duckdb_dedup_write"

// resultKeys come first in a result line, in this order.
var resultKeys = []string{"bench", "error", "value", "unit", "seconds", "peak_rss_mib", "baseline", "ratio", "machine"}

type options struct {
	sieve   string
	n       int
	dup     float64
	seed    uint64
	corpus  string
	workdir string
	reps    int
	node    string
	script  string
	threads int
	timeout time.Duration
	only    string
}

func main() {
	var o options
	flag.StringVar(&o.sieve, "sieve", "", "path to the sieve binary (sieve benchmarks report an error without it)")
	flag.IntVar(&o.n, "n", 200000, "number of input samples")
	flag.Float64Var(&o.dup, "dup", 0.05, "fraction of planted exact duplicates")
	flag.Uint64Var(&o.seed, "seed", 1, "generator seed")
	flag.StringVar(&o.corpus, "corpus", "chat", "input corpus: chat (chatgen's realistic, templated chat records) or words (Zipf words, near-duplicates planted; for fuzzy dedup at scale)")
	flag.StringVar(&o.workdir, "workdir", "", "work folder for input, recipes, outputs and logs (default: a new temporary folder)")
	flag.IntVar(&o.reps, "reps", 3, "runs per benchmark; medians are reported")
	flag.StringVar(&o.node, "node", "node", "node executable")
	flag.StringVar(&o.script, "duckdb-script", "", "path to bench.mjs (default: bench/duckdb/bench.mjs in the module)")
	flag.IntVar(&o.threads, "duckdb-threads", 2, "DuckDB threads")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "limit for one run")
	flag.StringVar(&o.only, "only", "", "comma-separated benchmark names to run (default: all)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// bench is one benchmark: how to prepare and start a run.
type bench struct {
	name    string
	prepare func() error              // before each run, untimed
	cmd     func() (*exec.Cmd, error) // the child to time
	check   func(stdout []byte) (map[string]any, error)
	err     error // set when the benchmark can't run at all
	runs    []result
}

type result struct {
	seconds  float64
	rssKiB   int64
	otherCPU float64 // CPU seconds used by other processes during the run
	extra    map[string]any
}

func run(o options) error {
	if o.reps < 1 || o.n < 1 {
		return errors.New("-reps and -n must be positive")
	}
	if o.workdir == "" {
		d, err := os.MkdirTemp("", "sieve-bench-")
		if err != nil {
			return err
		}
		o.workdir = d
	}
	wd, err := filepath.Abs(o.workdir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(wd, "logs"), 0o755); err != nil {
		return err
	}
	logf("work folder %s", wd)

	// Input.
	input := filepath.Join(wd, "input.jsonl")
	var st chatgen.Stats
	if o.corpus == "words" {
		st, err = generateWords(input, o.n, o.dup, o.seed)
	} else {
		st, err = generate(input, chatgen.Config{N: o.n, Dup: o.dup, Seed: o.seed})
	}
	if err != nil {
		return fmt.Errorf("generating input: %w", err)
	}
	logf("input: %d samples, %.1f MiB, %d planted duplicates (%d expected after exact dedup)",
		st.Records, float64(st.Bytes)/(1<<20), st.PlantedDups, st.Records-st.PlantedDups)

	// Recipes.
	dedupRecipe := filepath.Join(wd, "recipe_dedup.yaml")
	plainRecipe := filepath.Join(wd, "recipe_plain.yaml")
	dedupStore := filepath.Join(wd, "store_dedup")
	plainStore := filepath.Join(wd, "store_plain")
	if err := os.WriteFile(dedupRecipe, []byte(recipe(input, dedupStore, true)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(plainRecipe, []byte(recipe(input, plainStore, false)), 0o644); err != nil {
		return err
	}
	fuzzyRecipePath := filepath.Join(wd, "recipe_fuzzy.yaml")
	fuzzyStore := filepath.Join(wd, "store_fuzzy")
	if err := os.WriteFile(fuzzyRecipePath, []byte(fuzzyRecipe(input, fuzzyStore)), 0o644); err != nil {
		return err
	}

	sieveBin, sieveErr := resolveSieve(o.sieve)
	sieveBench := func(name, recipePath, store string, wantOut int64, extraArgs ...string) *bench {
		return &bench{
			name:    name,
			err:     sieveErr,
			prepare: func() error { return os.RemoveAll(store) },
			cmd: func() (*exec.Cmd, error) {
				return exec.Command(sieveBin, append([]string{"run", recipePath, "--quiet", "--force"}, extraArgs...)...), nil
			},
			check: func([]byte) (map[string]any, error) {
				if filepath.Base(sieveBin) == "true" {
					return nil, nil // plumbing test
				}
				size, err := dirSize(store)
				if err != nil {
					return nil, fmt.Errorf("no output store: %w", err)
				}
				extra := map[string]any{"output_bytes": size}
				// Best effort: the funnel from the committed manifest.
				if read, written, ok := sieveFunnel(store); ok {
					extra["samples_out"] = written
					if read != st.Records || (wantOut >= 0 && written != wantOut) {
						extra["warning"] = fmt.Sprintf("manifest funnel read %d, written %d; want %d, %d",
							read, written, st.Records, wantOut)
						logf("%s: %s", name, extra["warning"])
					}
				}
				return extra, nil
			},
		}
	}
	outParquet := filepath.Join(wd, "duckdb_out.parquet")
	duck := &bench{
		name:    baselineName,
		prepare: func() error { return removeIfExists(outParquet) },
	}
	nodeBin, script, duckErr := resolveDuckDB(o)
	duck.err = duckErr
	duck.cmd = func() (*exec.Cmd, error) {
		return exec.Command(nodeBin, script, input, outParquet, fmt.Sprint(o.threads)), nil
	}
	duck.check = func(stdout []byte) (map[string]any, error) {
		var rep struct {
			SamplesIn  int64   `json:"samples_in"`
			SamplesOut int64   `json:"samples_out"`
			Seconds    float64 `json:"seconds"`
			DuckDB     string  `json:"duckdb"`
			Error      string  `json:"error"`
		}
		line := lastLine(stdout)
		if err := json.Unmarshal(line, &rep); err != nil {
			return nil, fmt.Errorf("unreadable report %q: %w", line, err)
		}
		if rep.Error != "" {
			return nil, errors.New(rep.Error)
		}
		if rep.SamplesIn != st.Records {
			return nil, fmt.Errorf("samples_in %d, want %d", rep.SamplesIn, st.Records)
		}
		if want := st.Records - st.PlantedDups; rep.SamplesOut != want {
			return nil, fmt.Errorf("samples_out %d, want %d", rep.SamplesOut, want)
		}
		return map[string]any{"samples_out": rep.SamplesOut, "inner_seconds": rep.Seconds, "duckdb": rep.DuckDB}, nil
	}

	benches := []*bench{
		sieveBench("sieve_e2e_dedup", dedupRecipe, dedupStore, st.Records-st.PlantedDups),
		sieveBench("sieve_e2e_plain", plainRecipe, plainStore, st.Records),
		sieveBench("sieve_e2e_dedup_direct", dedupRecipe, dedupStore, st.Records-st.PlantedDups, "--runner=direct"),
		sieveBench("sieve_e2e_plain_direct", plainRecipe, plainStore, st.Records, "--runner=direct"),
		duck,
	}
	// Fuzzy dedup runs only when asked for (-only sieve_e2e_fuzzy_direct):
	// on chatgen's templated text its candidate edges grow much faster
	// than the input (see docs/dedup.md).
	fuzzy := sieveBench("sieve_e2e_fuzzy_direct", fuzzyRecipePath, fuzzyStore, -1, "--runner=direct")
	if strings.Contains(o.only, fuzzy.name) {
		benches = append(benches, fuzzy)
	}
	if o.only != "" {
		keep := map[string]bool{}
		for _, s := range strings.Split(o.only, ",") {
			keep[strings.TrimSpace(s)] = true
		}
		var sel []*bench
		for _, b := range benches {
			if keep[b.name] {
				sel = append(sel, b)
			}
		}
		benches = sel
	}

	for rep := 1; rep <= o.reps; rep++ {
		for _, b := range benches {
			if b.err != nil {
				continue
			}
			res, err := measure(b, wd, rep, o.timeout)
			if err != nil {
				b.err = fmt.Errorf("run %d: %w", rep, err)
				logf("%s: %v", b.name, b.err)
				continue
			}
			logf("%s run %d: %.2fs, peak RSS %.0f MiB, %.1f CPU s used by other processes meanwhile",
				b.name, rep, res.seconds, float64(res.rssKiB)/1024, res.otherCPU)
			b.runs = append(b.runs, res)
		}
	}

	machine := benchenv.Machine()
	var baseValue float64
	for _, b := range benches {
		if b.name == baselineName && b.err == nil && len(b.runs) > 0 {
			baseValue = float64(st.Records) / median(seconds(b.runs))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, b := range benches {
		line := map[string]any{"bench": b.name, "machine": machine, "baseline": baselineName}
		if b.err != nil || len(b.runs) == 0 {
			if b.err == nil {
				b.err = errors.New("not run")
			}
			line["error"] = b.err.Error()
			if err := enc.Encode(benchenv.Ordered(line, resultKeys...)); err != nil {
				return err
			}
			continue
		}
		secs := median(seconds(b.runs))
		value := float64(st.Records) / secs
		line["value"] = round(value, 1)
		line["unit"] = "samples/s"
		line["seconds"] = round(secs, 3)
		line["peak_rss_mib"] = round(median(rss(b.runs))/1024, 1)
		if baseValue > 0 {
			line["ratio"] = round(value/baseValue, 3)
		} else {
			line["ratio"] = nil
		}
		line["samples_in"] = st.Records
		line["reps"] = len(b.runs)
		line["runs_seconds"] = roundAll(seconds(b.runs), 3)
		maxOther := 0.0
		for _, r := range b.runs {
			maxOther = max(maxOther, r.otherCPU)
		}
		line["max_other_cpu_s"] = round(maxOther, 2)
		for k, v := range b.runs[len(b.runs)-1].extra {
			line[k] = v
		}
		if err := enc.Encode(benchenv.Ordered(line, resultKeys...)); err != nil {
			return err
		}
	}
	return nil
}

// measure runs b once and returns its wall time and peak RSS.
func measure(b *bench, wd string, rep int, timeout time.Duration) (result, error) {
	if err := b.prepare(); err != nil {
		return result{}, fmt.Errorf("prepare: %w", err)
	}
	cmd, err := b.cmd()
	if err != nil {
		return result{}, err
	}
	cmd.Dir = wd
	logPath := filepath.Join(wd, "logs", fmt.Sprintf("%s.%d.log", b.name, rep))
	m, err := benchenv.RunChild(cmd, logPath, timeout)
	if err != nil {
		return result{}, err
	}
	extra, err := b.check(m.Stdout)
	if err != nil {
		return result{}, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	return result{seconds: m.Seconds, rssKiB: m.MaxRSSKiB, otherCPU: m.OtherCPU, extra: extra}, nil
}

func generate(path string, cfg chatgen.Config) (chatgen.Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return chatgen.Stats{}, err
	}
	st, err := chatgen.Generate(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// recipe returns the benchmark recipe in the YAML shape sieve's parser
// accepts.
func recipe(input, store string, dedup bool) string {
	name, stages := "bench_plain", "stages: []\n"
	if dedup {
		name, stages = "bench_dedup", "stages:\n  - exact_dedup: {key: conversation}\n"
	}
	return recipeWith(name, input, store, stages)
}

// fuzzyRecipe is exact then near-duplicate removal (MinHash-LSH).
func fuzzyRecipe(input, store string) string {
	return recipeWith("bench_fuzzy", input, store, "stages:\n  - exact_dedup: {key: conversation}\n  - fuzzy_dedup: {threshold: 0.7}\n")
}

func recipeWith(name, input, store, stages string) string {
	return fmt.Sprintf(`name: %s
sources:
  - name: chat
    path: %s
    format: openai
    license: cc-by-4.0
%soutput:
  store: %s
  shards: 4
  test_ratio: 0.0
`, name, yamlQuote(input), stages, yamlQuote(store))
}

// yamlQuote quotes a path when plain YAML would misread it.
func yamlQuote(s string) string {
	if strings.ContainsAny(s, ":#'\"{}[],&*!|>%@` \t") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return s
}

func resolveSieve(path string) (string, error) {
	if path == "" {
		return "", errors.New("no sieve binary given (-sieve)")
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("sieve binary: %w", err)
	}
	return filepath.Abs(p)
}

func resolveDuckDB(o options) (node, script string, err error) {
	node, err = exec.LookPath(o.node)
	if err != nil {
		return "", "", fmt.Errorf("node not found: %w", err)
	}
	script = o.script
	if script == "" {
		root, err := benchenv.ModuleRoot()
		if err != nil {
			return "", "", err
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
		return "", "", fmt.Errorf("@duckdb/node-api is not installed (run npm install in %s)", filepath.Dir(script))
	}
	return node, script, nil
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// sieveFunnel reads funnel.read and funnel.written from the manifest sieve
// committed under store (STORE/NAME/VERSION/manifest.json).
func sieveFunnel(store string) (read, written int64, ok bool) {
	paths, _ := filepath.Glob(filepath.Join(store, "*", "*", "manifest.json"))
	if len(paths) != 1 {
		return 0, 0, false
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return 0, 0, false
	}
	var m struct {
		Funnel *struct {
			Read    int64 `json:"read"`
			Written int64 `json:"written"`
		} `json:"funnel"`
	}
	if json.Unmarshal(b, &m) != nil || m.Funnel == nil {
		return 0, 0, false
	}
	return m.Funnel.Read, m.Funnel.Written, true
}

func removeIfExists(path string) error {
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return bytes.TrimSpace(lines[len(lines)-1])
}

func seconds(rs []result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.seconds
	}
	return out
}

func rss(rs []result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = float64(r.rssKiB)
	}
	return out
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func roundAll(xs []float64, digits int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round(x, digits)
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}
