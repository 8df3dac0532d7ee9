package pipelines

import (
	"context"
	"fmt"
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
)

// DryRun reads a recipe's inputs in this process and reports, for every
// rule of its per-sample stages, how many samples it would drop on its
// own (each filter judged independently of the others) with examples of
// drops and of samples just inside the threshold, plus PII findings and
// exact duplicates. It writes nothing. Whole-dataset stages other than
// exact dedup are only named. It is meant for tuning thresholds on a
// sample of the data (use the sources' limit: settings).
func DryRun(ctx context.Context, r *recipe.Recipe, store datasets.Store, w io.Writer, examples int) error {
	plan, err := NewPlan(ctx, r, store)
	if err != nil {
		return err
	}
	var samples []datasets.Sample
	var read int64
	for _, t := range plan.Tasks {
		err := t.Read(ctx, 1,
			func(s datasets.Sample) error { samples = append(samples, s); return nil },
			func(d datasets.DeadLetter) error { return nil },
			func(st datasets.FileStats) error { read += st.Records; return nil })
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "dry run of %s: %d records read, %d samples, %d dead letters (nothing is written)\n\n", r.Name, read, len(samples), read-int64(len(samples)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tRULE\tWOULD DROP\tOF SAMPLES")
	pct := func(n int) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/math.Max(1, float64(len(samples)))) }
	type example struct {
		margin float64
		line   string
	}
	var notes []string
	near := map[string][]example{}
	drops := map[string][]example{}
	for _, st := range r.Stages {
		switch cfg := st.Config.(type) {
		case *recipe.Filter:
			fs, err := filters.New(cfg.Config)
			if err != nil {
				return err
			}
			counts := map[string]int{}
			for i := range samples {
				s := &samples[i]
				for _, f := range fs {
					v := f.Check(s)
					key := st.Kind + " " + v.Rule
					line := fmt.Sprintf("%s  value %.4g threshold %.4g  %s", s.ID[:12], v.Value, v.Threshold, clip(lastResponse(s), 100))
					if !v.Keep {
						counts[v.Rule]++
						if len(drops[key]) < examples {
							drops[key] = append(drops[key], example{0, line})
						}
					} else if v.Rule != "" && v.Threshold != 0 {
						m := math.Abs(v.Value-v.Threshold) / math.Abs(v.Threshold)
						near[key] = append(near[key], example{m, line})
					}
				}
			}
			for _, rule := range sortedKeys(counts) {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", st.Kind, rule, counts[rule], pct(counts[rule]))
			}
			if len(counts) == 0 {
				fmt.Fprintf(tw, "%s\t(none)\t0\t\n", st.Kind)
			}
		case *recipe.PII:
			sc, err := filters.NewScrubber(cfg.PIIConfig)
			if err != nil {
				return err
			}
			found := map[string]int{}
			with := 0
			for i := range samples {
				cp := samples[i]
				cp.Messages = append([]datasets.Message(nil), cp.Messages...)
				c := sc.Scrub(&cp)
				if len(c) > 0 {
					with++
				}
				for k, n := range c {
					found[k] += n
				}
			}
			verb := "would redact in"
			if cfg.Mode == "drop" {
				verb = "would drop"
			}
			fmt.Fprintf(tw, "%s\t(%s)\t%d\t%s\n", st.Kind, verb, with, pct(with))
			for _, k := range sortedKeys(found) {
				fmt.Fprintf(tw, "%s\tpii.%s\t%d found\t\n", st.Kind, k, found[k])
			}
		case *recipe.ExactDedup:
			seen := map[dedup.Key]bool{}
			dups := 0
			for i := range samples {
				k := dedup.ExactKey(samples[i].Messages, dedup.KeyMode(cfg.Key))
				if seen[k] {
					dups++
				}
				seen[k] = true
			}
			fmt.Fprintf(tw, "%s\texact_duplicate\t%d\t%s\n", st.Kind, dups, pct(dups))
		case *recipe.Decontaminate:
			var items []filters.Item
			for _, f := range cfg.Files {
				rc, err := datasets.Open(ctx, r.ResolvePath(f))
				if err != nil {
					return err
				}
				its, err := filters.LoadBenchmark(f, rc, cfg.DecontamConfig)
				rc.Close()
				if err != nil {
					return err
				}
				items = append(items, its...)
			}
			d := filters.NewDecontaminator(items, cfg.N)
			hits := 0
			for i := range samples {
				if item, gram, ok := d.Match(&samples[i]); ok {
					hits++
					key := st.Kind + " benchmark_overlap"
					if len(drops[key]) < examples {
						drops[key] = append(drops[key], example{0, fmt.Sprintf("%s  %s  %q", samples[i].ID[:12], item, gram)})
					}
				}
			}
			fmt.Fprintf(tw, "%s\tbenchmark_overlap\t%d\t%s\n", st.Kind, hits, pct(hits))
		default:
			if es, ok := st.Config.(endpointStage); ok && es.LLMEndpoint() != nil {
				note := fmt.Sprintf("%s: calls %s; a dry run makes no calls", st.Kind, es.LLMEndpoint())
				if err := es.LLMEndpoint().CheckKey(); err != nil {
					note = fmt.Sprintf("%s: would be skipped: it needs %s", st.Kind, es.LLMEndpoint().Describe())
				}
				notes = append(notes, note)
				continue
			}
			notes = append(notes, fmt.Sprintf("%s: decided over the whole dataset; run the recipe to see its effect", st.Kind))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	for _, key := range sortedKeys(drops) {
		fmt.Fprintf(w, "\n%s — would drop, e.g.:\n", key)
		for _, e := range drops[key] {
			fmt.Fprintf(w, "  %s\n", e.line)
		}
	}
	for _, key := range sortedKeys(near) {
		ex := near[key]
		sort.SliceStable(ex, func(i, j int) bool { return ex[i].margin < ex[j].margin })
		if len(ex) > examples {
			ex = ex[:examples]
		}
		fmt.Fprintf(w, "\n%s — kept, closest to the threshold:\n", key)
		for _, e := range ex {
			fmt.Fprintf(w, "  %s\n", e.line)
		}
	}
	return nil
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
