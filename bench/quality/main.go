// Command quality measures how well the default filters (filters.New with
// an empty Config, run through filters.CheckAll as the pipeline runs them)
// separate good answers from broken ones on real model output.
//
// Good answers are the labelled real answers of bench/quality/labels.jsonl
// (file, index, split, label, category; see RUBRIC.md beside it), whose
// texts are read from the alpaca_eval outputs under -data; nothing of them
// is stored in the repository. Broken answers are made by package degen
// from a seeded generator and from the same real answers. Both are split
// into a tune half and a heldout half (labels by their split field,
// generated outputs by a seeded hash of their id); rules are tuned on the
// tune half and the heldout half is the result.
//
// For each split it prints JSON lines in the bench format:
//
//	{"bench":"quality_degenerate_recall","split":"heldout","value":0.97,"unit":"fraction",...}
//	{"bench":"quality_false_drop_rate","split":"heldout","value":0.012,"unit":"fraction",...}
//	{"bench":"quality_rule","split":"heldout","rule":"truncation.mid_sentence","value":0.004,"unit":"false-drop fraction","precision":0.9,...}
//
// With no data directory it prints one line with a note and exits 0.
//
// Usage: go run ./bench/quality [-data DIR] [-labels FILE] [-per-kind 100] [-seed 1] [-show tune]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sieve-data/sieve/bench/quality/degen"
	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/filters"
)

func main() {
	data := flag.String("data", defaultData(), "directory of alpaca_eval model_outputs JSON files")
	labels := flag.String("labels", "bench/quality/labels.jsonl", "labels of the real answers")
	perKind := flag.Int("per-kind", 100, "generated broken answers per kind")
	seed := flag.Uint64("seed", 1, "generator seed")
	show := flag.String("show", "", "print every wrong decision of this split to stderr (tune only)")
	flag.Parse()
	if *show != "" && *show != "tune" {
		fmt.Fprintln(os.Stderr, "quality: -show accepts only tune: the heldout half is not for looking at")
		os.Exit(2)
	}
	if err := run(*data, *labels, *perKind, *seed, *show); err != nil {
		fmt.Fprintln(os.Stderr, "quality:", err)
		os.Exit(1)
	}
}

func defaultData() string {
	if d := os.Getenv("SIEVE_ALPACA_EVAL"); d != "" {
		return d
	}
	for _, d := range []string{"../shared/data/alpaca_eval", "/work/shared/data/alpaca_eval"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return "/work/shared/data/alpaca_eval"
}

// record is one element of an alpaca_eval model_outputs file.
type record struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
}

// label is one line of labels.jsonl.
type label struct {
	File     string `json:"file"`
	Index    int    `json:"index"`
	Split    string `json:"split"`
	Label    string `json:"label"`
	Category string `json:"category"`
}

// item is one answer under test.
type item struct {
	split  string // tune or heldout
	class  string // keep, drop (labelled real answers), degenerate
	kind   degen.Kind
	ref    string // file:index or generated id
	sample datasets.Sample
}

const (
	classKeep  = "keep"
	classDrop  = "drop"
	classDegen = "degenerate"
)

func run(dataDir, labelsPath string, perKind int, seed uint64, show string) error {
	out := json.NewEncoder(os.Stdout)
	files, err := filepath.Glob(filepath.Join(dataDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return out.Encode(map[string]any{"bench": "quality", "value": nil, "unit": "", "note": "no alpaca_eval outputs under " + dataDir + " (see /work/shared/data/README.md); nothing measured"})
	}
	sort.Strings(files)
	recs := map[string][]record{} // by file name without .json
	var pool []degen.Pair
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs []record
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		recs[name] = rs
		for _, r := range rs {
			if strings.TrimSpace(r.Output) != "" {
				pool = append(pool, degen.Pair{Prompt: r.Instruction, Answer: r.Output})
			}
		}
	}
	labs, labNote, err := readLabels(labelsPath)
	if err != nil {
		return err
	}
	var items []item
	seen := map[string]bool{}
	for _, l := range labs {
		name := strings.TrimSuffix(filepath.Base(l.File), ".json")
		rs, ok := recs[name]
		if !ok || l.Index < 0 || l.Index >= len(rs) {
			return fmt.Errorf("%s: no record %s:%d in %s", labelsPath, l.File, l.Index, dataDir)
		}
		ref := fmt.Sprintf("%s:%d", name, l.Index)
		if seen[ref] || (l.Split != "tune" && l.Split != "heldout") || (l.Label != classKeep && l.Label != classDrop) {
			continue
		}
		seen[ref] = true
		items = append(items, item{split: l.Split, class: l.Label, ref: ref + " " + l.Category, sample: qa(rs[l.Index].Instruction, rs[l.Index].Output)})
	}
	for _, o := range degen.Generate(seed, perKind, pool) {
		split := "tune"
		if hashSplit(seed, o.ID) {
			split = "heldout"
		}
		items = append(items, item{split: split, class: classDegen, kind: o.Kind, ref: o.ID + " " + o.Variant, sample: qa(o.Prompt, o.Answer)})
	}
	fs, err := filters.New(filters.Config{})
	if err != nil {
		return err
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name())
	}
	for _, split := range []string{"tune", "heldout"} {
		if err := report(out, split, items, fs, names, labNote, show == split); err != nil {
			return err
		}
	}
	return nil
}

func qa(prompt, answer string) datasets.Sample {
	return datasets.Sample{Messages: []datasets.Message{{Role: datasets.RoleUser, Content: prompt}, {Role: datasets.RoleAssistant, Content: answer}}}
}

// hashSplit puts a generated output in the heldout half when a seeded
// FNV-1a hash of its id is odd.
func hashSplit(seed uint64, id string) bool {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, id)
	return h.Sum64()&1 == 1
}

// readLabels reads labels.jsonl, skipping a last line that is still being
// written. A missing file means no labels.
func readLabels(path string) ([]label, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "no labels file " + path + ": only broken answers measured", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var out []label
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	bad := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l label
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			bad++
			continue
		}
		out = append(out, l)
	}
	note := ""
	if bad > 0 {
		note = fmt.Sprintf("%d unreadable label lines skipped", bad)
	}
	return out, note, sc.Err()
}

type ruleStats struct {
	Drops      int     `json:"drops"`
	KeepDrops  int     `json:"keep_drops"`  // drops of keep-labelled answers
	DropDrops  int     `json:"drop_drops"`  // drops of drop-labelled answers
	DegenDrops int     `json:"degen_drops"` // drops of generated broken answers
	Value      float64 `json:"false_drop_rate"`
	Precision  float64 `json:"precision"`
}

func report(out *json.Encoder, split string, items []item, fs []filters.Filter, names []string, labNote string, show bool) error {
	var nKeep, nDrop, nDegen, falseDrops, caughtDrop, caught int
	perKind := map[degen.Kind][2]int{} // caught, n
	perRule := map[string]*ruleStats{}
	for i := range items {
		it := &items[i]
		if it.split != split {
			continue
		}
		v, keep := filters.CheckAll(fs, &it.sample)
		switch it.class {
		case classKeep:
			nKeep++
		case classDrop:
			nDrop++
		case classDegen:
			nDegen++
			k := perKind[it.kind]
			k[1]++
			if !keep {
				k[0]++
			}
			perKind[it.kind] = k
		}
		if !keep {
			rs := perRule[v.Rule]
			if rs == nil {
				rs = &ruleStats{}
				perRule[v.Rule] = rs
			}
			rs.Drops++
			switch it.class {
			case classKeep:
				rs.KeepDrops++
				falseDrops++
			case classDrop:
				rs.DropDrops++
				caughtDrop++
			case classDegen:
				rs.DegenDrops++
				caught++
			}
		}
		if show && (keep == (it.class != classKeep)) {
			verdict := "kept"
			if !keep {
				verdict = fmt.Sprintf("DROPPED by %s (%s; %s)", v.Rule, v.Reason, v.Detail)
			}
			fmt.Fprintf(os.Stderr, "== %s [%s] %s\n-- prompt: %.300q\n-- answer: %.1500q\n\n", it.ref, it.class, verdict, it.sample.Messages[0].Content, it.sample.Messages[1].Content)
		}
	}
	kinds := map[string]any{}
	for _, k := range degen.Kinds() {
		c := perKind[k]
		kinds[string(k)] = map[string]any{"n": c[1], "caught": c[0], "recall": frac(c[0], c[1])}
	}
	base := func(bench string, value any, unit string) map[string]any {
		return map[string]any{"bench": bench, "split": split, "value": value, "unit": unit}
	}
	m := base("quality_degenerate_recall", frac(caught, nDegen), "fraction")
	m["n"], m["caught"], m["per_kind"], m["target"] = nDegen, caught, kinds, 0.95
	if err := out.Encode(m); err != nil {
		return err
	}
	m = base("quality_false_drop_rate", frac(falseDrops, nKeep), "fraction")
	m["keep_labelled"], m["false_drops"], m["target"], m["filters"] = nKeep, falseDrops, 0.02, names
	if labNote != "" {
		m["note"] = labNote
	}
	if err := out.Encode(m); err != nil {
		return err
	}
	m = base("quality_labelled_drop_recall", frac(caughtDrop, nDrop), "fraction")
	m["drop_labelled"], m["caught"] = nDrop, caughtDrop
	if err := out.Encode(m); err != nil {
		return err
	}
	rules := make([]string, 0, len(perRule))
	for r := range perRule {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	for _, r := range rules {
		rs := perRule[r]
		rs.Value = frac(rs.KeepDrops, nKeep)
		rs.Precision = frac(rs.DropDrops+rs.DegenDrops, rs.Drops)
		m = base("quality_rule", rs.Value, "false-drop fraction")
		m["rule"], m["drops"], m["keep_drops"], m["drop_drops"], m["degen_drops"], m["precision"] = r, rs.Drops, rs.KeepDrops, rs.DropDrops, rs.DegenDrops, rs.Precision
		if err := out.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(float64(a)/float64(b)*10000+0.5)) / 10000
}
