// Command topics is the topic-quality benchmark of sieve's topics stage:
// how well the stage recovers known topics of real text, and what it
// costs in time and memory at 100k and 1M samples.
//
// The corpus is planted from tatsu-lab/alpaca_eval (../shared/data/
// alpaca_eval; five generators' answers to the same 805 instructions).
// The instructions that match exactly one of ten keyword categories
// (cooking, code, poetry, math, travel, health, business, email,
// history, movies: 227 of 805) make ten known groups. Sample i is drawn
// from its own seeded stream: a group (with probability proportional to
// its number of instructions, so the topic sizes are as uneven as the
// data's, 9 to 41 instructions), one of the group's instructions under
// one of seven prompt prefixes as the user turn, and 2 to 4 sentences
// from the five generators' answers to the group's instructions as the
// assistant turn. Every text is real alpaca_eval text; the group of each
// sample is known by construction; samples are distinct (at 1M, all but
// a few).
//
// For each size and k, a child process runs the stage's own code
// (package transforms, as the Beam stage calls it): the fit sample is
// gathered with the stage's bottom-k (TopicsFitSampler, one sampler per
// worker merged as the combine merges bundles), the model is fitted with
// the stage's configuration (FitTopics: the built-in TF-IDF + SVD
// embedder, spherical k-means, labels; field conversation, 20,000 fit
// samples, seed 1), and every sample is assigned (AssignTopic: embed,
// nearest centroid, annotate) on runtime.NumCPU() workers. It counts the
// contingency table of topics against groups and reports NMI (arithmetic
// normalisation) and ARI against the groups, with the same for uniformly
// random labels as the baseline.
//
// Usage:
//
//	go run ./bench/topics [-n "100000 1000000"] [-k "10 0"] [-data DIR] [-workdir DIR]
//	go run ./bench/topics -n 100000 -write corpus.jsonl   # the corpus, for a whole sieve run
//
// One JSON line per measurement on stdout (the NMI line also holds the
// groups, the topics' labels and the topics × groups table):
//
//	{"bench":"topics_nmi_1000000_k10","value":…,"unit":"nmi","baseline":"random labels","baseline_value":…,…}
//	{"bench":"topics_ari_1000000_k10","value":…,"unit":"ari",…}
//	{"bench":"topics_seconds_1000000_k10","value":…,"unit":"s","select_s":…,"fit_s":…,"assign_s":…,…}
//	{"bench":"topics_peak_rss_1000000_k10","value":…,"unit":"MiB",…}
//
// seconds is the stage's work: gathering the fit sample over all n
// samples (select_s, corpus generation included), the fit (fit_s) and
// assigning all n (assign_s, generation included; gen_s is a pass that
// only generates, for comparison). Peak RSS is the child's ru_maxrss
// (wait4): the fit sample, the model and the workers, not a runner's
// PCollections. k 0 chooses k in [2, 20] by silhouette, as the stage
// does.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/transforms"
)

// categories are the planted groups: keyword patterns on the lower-cased
// instruction; an instruction belongs to a group when it matches exactly
// one.
var categories = []struct {
	name string
	re   *regexp.Regexp
}{
	{"cooking", regexp.MustCompile(`\b(recipes?|cook(ing)?|dish(es)?|bak(e|ing)|ingredients?|meals?|soup|sauce|food)\b`)},
	{"code", regexp.MustCompile(`\b(python|code|javascript|programming|sql|algorithm|java|html|css|regex|bash|function|c\+\+)\b`)},
	{"poetry", regexp.MustCompile(`\b(poems?|haikus?|rhymes?|limericks?|lyrics|sonnets?|songs?)\b`)},
	{"math", regexp.MustCompile(`\b(calculate|equations?|solve|math|integers?|probability|derivative|prime|numbers?)\b`)},
	{"travel", regexp.MustCompile(`\b(travel(ing)?|visit(ing)?|trip|vacation|tourists?|itinerary|city|cities)\b`)},
	{"health", regexp.MustCompile(`\b(health|exercise|diet|sleep|doctor|medical|disease|symptoms?|fitness)\b`)},
	{"business", regexp.MustCompile(`\b(business|marketing|company|startup|customers?|sales|product|brand)\b`)},
	{"email", regexp.MustCompile(`\b(e-?mail|letter|cover letter)\b`)},
	{"history", regexp.MustCompile(`\b(history|historical|war|century|ancient|empire)\b`)},
	{"movies", regexp.MustCompile(`\b(movies?|films?|tv|series|shows?|episodes?)\b`)},
}

var generators = []string{"gpt4", "claude-2.1", "gemma-7b-it", "falcon-7b-instruct", "Yi-34B-Chat"}

var prefixes = []string{"", "Please answer: ", "Question: ", "Task: ", "Help me with this. ", "I need help. ", "Quick one: "}

// group is one planted topic.
type group struct {
	name         string
	instructions []string
	sentences    []string
}

// corpus draws planted samples.
type corpus struct {
	groups []group
	cum    []float64 // cumulative group probabilities
	seed   uint64
}

type record struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
}

var sentenceEnd = regexp.MustCompile(`[.!?]["')\]]?\s+|\n+`)

func loadCorpus(dir string, seed uint64) (*corpus, error) {
	answers := map[string][]string{}
	var order []string
	for gi, g := range generators {
		b, err := os.ReadFile(filepath.Join(dir, g+".json"))
		if err != nil {
			return nil, fmt.Errorf("alpaca_eval: %w", err)
		}
		var recs []record
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, fmt.Errorf("alpaca_eval %s: %w", g, err)
		}
		for _, r := range recs {
			if gi == 0 {
				order = append(order, r.Instruction)
			}
			answers[r.Instruction] = append(answers[r.Instruction], r.Output)
		}
	}
	c := &corpus{groups: make([]group, len(categories)), seed: seed}
	for i, cat := range categories {
		c.groups[i].name = cat.name
	}
	for _, ins := range order {
		low := strings.ToLower(ins)
		g := -1
		for i, cat := range categories {
			if cat.re.MatchString(low) {
				if g >= 0 {
					g = -2
					break
				}
				g = i
			}
		}
		if g < 0 {
			continue
		}
		c.groups[g].instructions = append(c.groups[g].instructions, strings.TrimSpace(ins))
		for _, a := range answers[ins] {
			for _, s := range sentenceEnd.Split(a, -1) {
				if s = strings.TrimSpace(s); len(s) >= 20 {
					c.groups[g].sentences = append(c.groups[g].sentences, s)
				}
			}
		}
	}
	total := 0
	for _, g := range c.groups {
		if len(g.instructions) == 0 || len(g.sentences) == 0 {
			return nil, fmt.Errorf("alpaca_eval: group %s is empty", g.name)
		}
		total += len(g.instructions)
	}
	acc := 0
	for _, g := range c.groups {
		acc += len(g.instructions)
		c.cum = append(c.cum, float64(acc)/float64(total))
	}
	return c, nil
}

// sample is sample i and its group.
func (c *corpus) sample(i int) (datasets.Sample, int) {
	rng := rand.New(rand.NewPCG(c.seed, uint64(i)))
	u := rng.Float64()
	g := 0
	for g < len(c.cum)-1 && u >= c.cum[g] {
		g++
	}
	gr := &c.groups[g]
	prompt := prefixes[rng.IntN(len(prefixes))] + gr.instructions[rng.IntN(len(gr.instructions))]
	var b strings.Builder
	for j := range 2 + rng.IntN(3) {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(gr.sentences[rng.IntN(len(gr.sentences))])
	}
	msgs := []datasets.Message{{Role: datasets.RoleUser, Content: prompt}, {Role: datasets.RoleAssistant, Content: b.String()}}
	return datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
		Source: datasets.Source{Dataset: "planted", File: "alpaca_eval", Index: int64(i)}}, g
}

// parallel runs fn(w, i) for i in [0, n) on workers goroutines, worker w
// taking i ≡ w (mod workers).
func parallel(n, workers int, fn func(w, i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := fn(w, i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// childResult is what a child prints.
type childResult struct {
	N          int       `json:"n"`
	K          int       `json:"k"`
	KChosen    int       `json:"k_chosen"`
	Workers    int       `json:"workers"`
	GenS       float64   `json:"gen_s"`
	SelectS    float64   `json:"select_s"`
	FitS       float64   `json:"fit_s"`
	AssignS    float64   `json:"assign_s"`
	FitSamples int       `json:"fit_samples"`
	Silhouette float64   `json:"silhouette"`
	NMI        float64   `json:"nmi"`
	ARI        float64   `json:"ari"`
	Purity     float64   `json:"purity"`
	RandomNMI  float64   `json:"random_nmi"`
	RandomARI  float64   `json:"random_ari"`
	GroupSizes []int64   `json:"group_sizes"`
	TopicSizes []int64   `json:"topic_sizes"`
	Table      [][]int64 `json:"table"`
	Labels     []string  `json:"labels"`
	MeanDist   float64   `json:"mean_distance"`
}

func child(dataDir string, n, k int, field string, seed uint64) error {
	c, err := loadCorpus(dataDir, seed)
	if err != nil {
		return err
	}
	ctx := context.Background()
	workers := runtime.NumCPU()
	cfg := transforms.TopicsConfig{Stage: "topics", Field: field, K: k, Seed: seed, MaxSamples: 20000}
	res := childResult{N: n, K: k, Workers: workers}

	t0 := time.Now()
	if err := parallel(n, workers, func(_, i int) error { c.sample(i); return nil }); err != nil {
		return err
	}
	res.GenS = time.Since(t0).Seconds()

	// The fit sample: one sampler per worker (a bundle), merged.
	t0 = time.Now()
	samplers := make([]*transforms.TopicsFitSampler, workers)
	for w := range samplers {
		samplers[w] = transforms.NewTopicsFitSampler(cfg)
	}
	if err := parallel(n, workers, func(w, i int) error {
		s, _ := c.sample(i)
		samplers[w].Add(s)
		return nil
	}); err != nil {
		return err
	}
	for _, s := range samplers[1:] {
		samplers[0].Merge(s)
	}
	fitSample := samplers[0].Sample()
	samplers = nil
	res.SelectS = time.Since(t0).Seconds()
	res.FitSamples = len(fitSample.Items)

	t0 = time.Now()
	m, err := transforms.FitTopics(ctx, cfg, fitSample)
	if err != nil {
		return err
	}
	res.FitS = time.Since(t0).Seconds()
	fitSample = transforms.TopicsSample{}
	res.KChosen, res.Silhouette = m.K, m.Fit.Silhouette
	for _, tp := range m.Topics {
		res.Labels = append(res.Labels, tp.Label)
	}

	// Assign every sample; count topics × groups, and random labels ×
	// groups for the baseline.
	G := len(c.groups)
	tables := make([][]int64, workers)
	random := make([][]int64, workers)
	dist := make([]float64, workers)
	bufs := make([][]float32, workers)
	for w := range workers {
		tables[w] = make([]int64, m.K*G)
		random[w] = make([]int64, m.K*G)
	}
	t0 = time.Now()
	err = parallel(n, workers, func(w, i int) error {
		s, g := c.sample(i)
		a, _, _, buf, err := transforms.AssignTopic(m, &s, bufs[w])
		bufs[w] = buf
		if err != nil {
			return err
		}
		tables[w][int(a.Topic)*G+g]++
		r := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(i))).IntN(m.K)
		random[w][r*G+g]++
		dist[w] += float64(a.Distance)
		return nil
	})
	if err != nil {
		return err
	}
	res.AssignS = time.Since(t0).Seconds()
	table, rtable := make([]int64, m.K*G), make([]int64, m.K*G)
	for w := range workers {
		for j := range table {
			table[j] += tables[w][j]
			rtable[j] += random[w][j]
		}
		res.MeanDist += dist[w]
	}
	res.MeanDist /= float64(n)
	res.NMI, res.ARI, res.Purity = NMI(table, m.K, G), ARI(table, m.K, G), Purity(table, m.K, G)
	res.RandomNMI, res.RandomARI = NMI(rtable, m.K, G), ARI(rtable, m.K, G)
	res.GroupSizes, res.TopicSizes = make([]int64, G), make([]int64, m.K)
	for t := range m.K {
		res.Table = append(res.Table, table[t*G:(t+1)*G])
		for g := range G {
			res.GroupSizes[g] += table[t*G+g]
			res.TopicSizes[t] += table[t*G+g]
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// resultKeys come first in a result line, in this order.
var resultKeys = []string{"bench", "error", "value", "unit", "baseline", "baseline_value", "seconds", "peak_rss_mib",
	"n", "k", "k_chosen", "machine", "other_cpu_s"}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench/topics: ")
	var (
		ns       = flag.String("n", "100000 1000000", "corpus sizes (space or comma separated)")
		ks       = flag.String("k", "10 0", "k values (0: chosen by silhouette in [2, 20])")
		dataDir  = flag.String("data", "", "alpaca_eval directory (default: ../shared/data/alpaca_eval beside the module)")
		workdir  = flag.String("workdir", filepath.Join(os.TempDir(), "sieve-bench-topics"), "folder for the children's logs")
		field    = flag.String("field", "conversation", "text embedded: prompt, response or conversation")
		seed     = flag.Uint64("seed", 1, "corpus and fit seed")
		timeout  = flag.Duration("timeout", time.Hour, "limit per child")
		write    = flag.String("write", "", "write the first n (of -n, one size) planted samples to this JSONL file (OpenAI messages, group in metadata.group) and exit, for whole runs of sieve")
		isChild  = flag.Bool("child", false, "internal: run one measurement")
		childN   = flag.Int("child-n", 0, "internal")
		childK   = flag.Int("child-k", 0, "internal")
		childDir = flag.String("child-data", "", "internal")
	)
	flag.Parse()
	if *isChild {
		if err := child(*childDir, *childN, *childK, *field, *seed); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *dataDir == "" {
		root, err := benchenv.ModuleRoot()
		if err != nil {
			log.Fatal(err)
		}
		*dataDir = filepath.Join(root, "..", "shared", "data", "alpaca_eval")
	}
	if _, err := os.Stat(filepath.Join(*dataDir, "gpt4.json")); err != nil {
		log.Printf("skipped: alpaca_eval data not found (%v)", err)
		return
	}
	if *write != "" {
		if err := writeCorpus(*write, *dataDir, ints(*ns)[0], *seed); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(*workdir, 0o755); err != nil {
		log.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	machine := benchenv.Machine()
	enc := json.NewEncoder(os.Stdout)
	emit := func(line map[string]any) {
		if err := enc.Encode(benchenv.Ordered(line, resultKeys...)); err != nil {
			log.Fatal(err)
		}
	}
	for _, n := range ints(*ns) {
		for _, k := range ints(*ks) {
			name := fmt.Sprintf("%d_k%d", n, k)
			if k == 0 {
				name = fmt.Sprintf("%d_kauto", n)
			}
			cmd := exec.Command(self, "-child", "-child-n", strconv.Itoa(n), "-child-k", strconv.Itoa(k),
				"-child-data", *dataDir, "-field", *field, "-seed", strconv.FormatUint(*seed, 10))
			meas, err := benchenv.RunChild(cmd, filepath.Join(*workdir, "topics_"+name+".log"), *timeout)
			var r childResult
			if err == nil {
				err = json.Unmarshal(meas.Stdout, &r)
			}
			if err != nil {
				emit(map[string]any{"bench": "topics_" + name, "error": err.Error(), "machine": machine})
				continue
			}
			common := func(m map[string]any) map[string]any {
				m["n"], m["k"], m["k_chosen"], m["machine"], m["other_cpu_s"] = n, k, r.KChosen, machine, round(meas.OtherCPU, 1)
				return m
			}
			emit(common(map[string]any{"bench": "topics_nmi_" + name, "value": round(r.NMI, 4), "unit": "nmi",
				"baseline": "random labels", "baseline_value": round(r.RandomNMI, 4), "purity": round(r.Purity, 4),
				"groups": groupNames(), "group_sizes": r.GroupSizes, "topic_sizes": r.TopicSizes, "labels": r.Labels, "table": r.Table, "silhouette": round(r.Silhouette, 4)}))
			emit(common(map[string]any{"bench": "topics_ari_" + name, "value": round(r.ARI, 4), "unit": "ari",
				"baseline": "random labels", "baseline_value": round(r.RandomARI, 4)}))
			total := r.SelectS + r.FitS + r.AssignS
			emit(common(map[string]any{"bench": "topics_seconds_" + name, "value": round(total, 2), "unit": "s",
				"select_s": round(r.SelectS, 2), "fit_s": round(r.FitS, 2), "assign_s": round(r.AssignS, 2), "gen_s": round(r.GenS, 2),
				"assign_samples_per_s": round(float64(n)/r.AssignS, 0), "fit_samples": r.FitSamples, "workers": r.Workers,
				"child_wall_s": round(meas.Seconds, 2), "child_cpu_s": round(meas.OwnCPU, 1)}))
			emit(common(map[string]any{"bench": "topics_peak_rss_" + name, "value": round(float64(meas.MaxRSSKiB)/1024, 1), "unit": "MiB"}))
		}
	}
}

// writeCorpus writes n planted samples as OpenAI messages JSONL, each
// with its group's name in metadata.group.
func writeCorpus(file, dataDir string, n int, seed uint64) error {
	c, err := loadCorpus(dataDir, seed)
	if err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for i := range n {
		s, g := c.sample(i)
		rec := map[string]any{"messages": s.Messages, "metadata": map[string]string{"group": c.groups[g].name}}
		if err := enc.Encode(rec); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// groupNames are the planted groups' names, in order.
func groupNames() []string {
	var out []string
	for _, c := range categories {
		out = append(out, c.name)
	}
	return out
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		v, err := strconv.Atoi(f)
		if err != nil {
			log.Fatalf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out
}

func round(x float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(x*p) / p
}
