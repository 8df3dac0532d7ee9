// Package corpus builds the labelled near-duplicate corpus of sieve's
// fuzzy-dedup benchmark, and its exact ground truth.
//
// A corpus is a set of base documents (chat records of package chatgen,
// optionally with real instruction data mixed in) and planted variants.
// Each variant copies a parent (a base document or, to make chains, an
// earlier variant of the same base) and is edited until the exact
// Jaccard similarity of its shingle set to the parent's falls to a
// target drawn uniformly from [MinJ, MaxJ]. The edits are those that
// near-duplicates in instruction data show: word substitutions,
// insertions and deletions, a phrase pasted in from another document,
// sentence reordering, template wrappers ("Answer the following: …"),
// and cosmetic changes (case, spacing, punctuation) that normalisation
// should undo.
//
// Ground truth does not trust the planting: TruePairs finds every pair
// of documents whose exact Jaccard similarity (on the normalised shingle
// sets of the TextConfig under test) reaches a threshold, with an exact
// all-pairs similarity join, so unplanted near-duplicates among the base
// documents count too.
package corpus

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/dedup"
)

// Doc is one document of a corpus.
type Doc struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	// Parent is the index of the document a variant was made from, -1
	// for a base document; Base is the base document of its cluster
	// (itself for a base).
	Parent int `json:"parent"`
	Base   int `json:"base"`
	// Target is the Jaccard similarity to the parent the edits aimed at,
	// Achieved the one they reached (both in Config.Text; 0 for a base).
	Target   float64 `json:"target,omitempty"`
	Achieved float64 `json:"achieved,omitempty"`
	// Edits counts the edits applied, by kind.
	Edits map[string]int `json:"edits,omitempty"`
}

// Config says what corpus to build.
type Config struct {
	// N is the number of documents.
	N int
	// Variants is the fraction of documents that are planted variants.
	Variants float64
	// MinJ and MaxJ bound the target Jaccard similarity of a variant to
	// its parent.
	MinJ, MaxJ float64
	// Chain is the probability that a variant is made from an earlier
	// variant of the same base rather than the base itself.
	Chain float64
	// Text is the shingling the targets are measured in.
	Text dedup.TextConfig
	// Seed selects the corpus.
	Seed uint64
	// Extra are more base texts (real instruction data), used in place
	// of chatgen records for an ExtraShare fraction of the bases.
	Extra      []string
	ExtraShare float64
}

// DefaultConfig is the benchmark's corpus: 3,000 documents, a third of
// them variants with targets uniform in [0.3, 1], a quarter of those
// made from other variants.
func DefaultConfig() Config {
	return Config{N: 3000, Variants: 1.0 / 3, MinJ: 0.3, MaxJ: 1, Chain: 0.25, Text: dedup.DefaultTextConfig(), Seed: 1}
}

// Templates wrap a text the way instruction datasets rephrase a prompt:
// a prefix, or a suffix when the string starts with a newline.
var Templates = []string{
	"Answer the following: ",
	"Please respond to the question below. ",
	"Question: ",
	"Here is a task for you. ",
	"Instruction: ",
	"Can you help me with this? ",
	"\nThanks in advance!",
	"\nPlease keep the answer short.",
	"\nAnswer in plain English.",
}

// Generate builds the corpus cfg describes. The same Config gives the same
// corpus.
func Generate(cfg Config) []Doc {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	nVar := int(float64(cfg.N) * cfg.Variants)
	nBase := cfg.N - nVar
	docs := make([]Doc, 0, cfg.N)
	// Base documents: chatgen originals, and real texts if given.
	extra := slices.Clone(cfg.Extra)
	r.Shuffle(len(extra), func(i, j int) { extra[i], extra[j] = extra[j], extra[i] })
	gc := chatgen.Config{N: 1 << 30, Seed: cfg.Seed}
	next := 0
	for i := 0; i < nBase; i++ {
		var text string
		if len(extra) > 0 && r.Float64() < cfg.ExtraShare {
			text, extra = extra[0], extra[1:]
		} else {
			msgs, _ := chatgen.Record(gc, next)
			next++
			parts := make([]string, len(msgs))
			for k, m := range msgs {
				parts[k] = m.Content
			}
			text = strings.Join(parts, "\n")
		}
		docs = append(docs, Doc{Text: text, Parent: -1, Base: i})
	}
	// A vocabulary of real tokens for substitutions and insertions.
	var vocab []string
	for _, d := range docs {
		vocab = append(vocab, strings.Fields(d.Text)...)
	}
	slices.Sort(vocab)
	vocab = slices.Compact(vocab)
	members := make([][]int, nBase) // variants per base
	for v := 0; v < nVar; v++ {
		base := r.IntN(nBase)
		parent := base
		if len(members[base]) > 0 && r.Float64() < cfg.Chain {
			parent = members[base][r.IntN(len(members[base]))]
		}
		target := cfg.MinJ + r.Float64()*(cfg.MaxJ-cfg.MinJ)
		e := editor{r: r, vocab: vocab, c: cfg.Text, donors: docs[:nBase]}
		text, achieved, edits := e.variant(docs[parent].Text, target)
		members[base] = append(members[base], len(docs))
		docs = append(docs, Doc{Text: text, Parent: parent, Base: base, Target: target, Achieved: achieved, Edits: edits})
	}
	// Shuffle so that ids say nothing about roles; keep the links.
	perm := r.Perm(len(docs))
	out := make([]Doc, len(docs))
	for old, nw := range perm {
		d := docs[old]
		if d.Parent >= 0 {
			d.Parent = perm[d.Parent]
		}
		d.Base = perm[d.Base]
		d.ID = fmt.Sprintf("doc-%05d", nw)
		out[nw] = d
	}
	return out
}

type editor struct {
	r      *rand.Rand
	vocab  []string
	c      dedup.TextConfig
	donors []Doc
}

// variant edits a copy of text until its Jaccard similarity to text falls
// to target or below (or no edit is left to try), then adds cosmetic
// noise that normalisation removes.
func (e *editor) variant(text string, target float64) (string, float64, map[string]int) {
	ref := dedup.SortedSet(e.c.Shingles(text))
	toks := strings.Fields(text)
	edits := map[string]int{}
	j := 1.0
	if e.r.IntN(4) == 0 { // a template wrapper first, a quarter of the time
		toks = e.template(toks)
		edits["template"]++
		j = dedup.SortedJaccard(ref, dedup.SortedSet(e.c.Shingles(strings.Join(toks, " "))))
	}
	for step := 0; j > target && step < 10000; step++ {
		var kind string
		switch p := e.r.IntN(100); {
		case p < 35:
			kind = "substitute"
			if len(toks) > 0 {
				toks[e.r.IntN(len(toks))] = e.word()
			}
		case p < 55:
			kind = "insert"
			toks = slices.Insert(toks, e.r.IntN(len(toks)+1), e.word())
		case p < 75:
			kind = "delete"
			if len(toks) > 1 {
				i := e.r.IntN(len(toks))
				toks = slices.Delete(toks, i, i+1)
			}
		case p < 85:
			kind = "reorder"
			toks = e.reorder(toks)
		default:
			kind = "paste"
			toks = e.paste(toks)
		}
		edits[kind]++
		j = dedup.SortedJaccard(ref, dedup.SortedSet(e.c.Shingles(strings.Join(toks, " "))))
	}
	if e.r.IntN(2) == 0 {
		toks = e.cosmetic(toks)
		edits["cosmetic"]++
	}
	out := strings.Join(toks, " ")
	return out, dedup.SortedJaccard(ref, dedup.SortedSet(e.c.Shingles(out))), edits
}

func (e *editor) word() string { return e.vocab[e.r.IntN(len(e.vocab))] }

func (e *editor) template(toks []string) []string {
	t := Templates[e.r.IntN(len(Templates))]
	w := strings.Fields(t)
	if strings.HasPrefix(t, "\n") {
		return append(toks, w...)
	}
	return append(w, toks...)
}

// sentences splits tokens into sentences ending in . ? ! or :.
func sentences(toks []string) [][]string {
	var out [][]string
	start := 0
	for i, t := range toks {
		if strings.HasSuffix(t, ".") || strings.HasSuffix(t, "?") || strings.HasSuffix(t, "!") || strings.HasSuffix(t, ":") {
			out = append(out, toks[start:i+1])
			start = i + 1
		}
	}
	if start < len(toks) {
		out = append(out, toks[start:])
	}
	return out
}

// reorder swaps two sentences.
func (e *editor) reorder(toks []string) []string {
	s := sentences(toks)
	if len(s) < 2 {
		return toks
	}
	i, j := e.r.IntN(len(s)), e.r.IntN(len(s)-1)
	if j >= i {
		j++
	}
	s[i], s[j] = s[j], s[i]
	out := make([]string, 0, len(toks))
	for _, x := range s {
		out = append(out, x...)
	}
	return out
}

// paste inserts a run of 3 to 10 tokens taken from another document.
func (e *editor) paste(toks []string) []string {
	d := strings.Fields(e.donors[e.r.IntN(len(e.donors))].Text)
	if len(d) == 0 {
		return toks
	}
	n := min(3+e.r.IntN(8), len(d))
	s := e.r.IntN(len(d) - n + 1)
	return slices.Insert(toks, e.r.IntN(len(toks)+1), d[s:s+n]...)
}

// cosmetic changes case, spacing or punctuation only.
func (e *editor) cosmetic(toks []string) []string {
	toks = slices.Clone(toks)
	for k := 0; k < 1+e.r.IntN(4) && len(toks) > 0; k++ {
		i := e.r.IntN(len(toks))
		switch e.r.IntN(4) {
		case 0:
			toks[i] = strings.ToUpper(toks[i])
		case 1:
			toks[i] = strings.ToLower(toks[i])
		case 2:
			toks[i] += ","
		default:
			toks[i] = "  " + toks[i] + "\n"
		}
	}
	return toks
}

// LoadAlpacaEval reads "instruction\noutput" texts from the alpaca_eval
// model-output files (JSON arrays of {instruction, output}) in dir.
func LoadAlpacaEval(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var recs []struct {
			Instruction string `json:"instruction"`
			Output      string `json:"output"`
		}
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range recs {
			out = append(out, r.Instruction+"\n"+r.Output)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no alpaca_eval records in %s", dir)
	}
	return out, nil
}

// AlpacaRecord is one model output of alpaca_eval.
type AlpacaRecord struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
}

// LoadAlpacaEvalByInstruction reads the alpaca_eval model-output files in
// dir (sorted by name) and returns the generators' outputs grouped by
// instruction, instructions in the first file's order, outputs in file
// order; only instructions every file answers are kept.
func LoadAlpacaEvalByInstruction(dir string) (instructions []string, outputs [][]string, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	by := map[string][]string{}
	for k, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var recs []AlpacaRecord
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range recs {
			if k == 0 {
				if _, dup := by[r.Instruction]; !dup {
					instructions = append(instructions, r.Instruction)
				}
			}
			if len(by[r.Instruction]) == k {
				by[r.Instruction] = append(by[r.Instruction], r.Output)
			}
		}
	}
	for _, in := range instructions {
		if len(by[in]) == len(files) {
			outputs = append(outputs, by[in])
		}
	}
	kept := instructions[:0]
	for _, in := range instructions {
		if len(by[in]) == len(files) {
			kept = append(kept, in)
		}
	}
	if len(kept) == 0 {
		return nil, nil, fmt.Errorf("no alpaca_eval instructions answered by every file in %s", dir)
	}
	return kept, outputs, nil
}
