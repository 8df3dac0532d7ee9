package filters

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/sieve-data/sieve/datasets"
)

// DecontamConfig says which evaluation sets to decontaminate against and
// how to read them.
type DecontamConfig struct {
	// Files are benchmark files, JSONL or a JSON array of objects; the
	// caller opens them (local or remote) and passes each to
	// LoadBenchmark.
	Files []string `yaml:"files" json:"files,omitempty"`
	// N is the n-gram length in words; default 13 (GPT-3, Brown et al.
	// 2020, Appendix C).
	N int `yaml:"n" json:"n,omitempty"`
	// QuestionFields and AnswerFields name the record fields whose text
	// is indexed (strings, numbers, or lists of strings); every one
	// present is used. Defaults: question, prompt, input, problem,
	// instruction, query; answer, canonical_solution, output, solution,
	// response, completion, target.
	QuestionFields []string `yaml:"question_fields" json:"question_fields,omitempty"`
	AnswerFields   []string `yaml:"answer_fields" json:"answer_fields,omitempty"` // see QuestionFields
	// IDFields name the item's id (the first present is used; default
	// id, task_id, question_id, idx, uid); without one, the record's
	// zero-based index is the id.
	IDFields []string `yaml:"id_fields" json:"id_fields,omitempty"`
}

// Defaults fills in the n-gram length and the field names.
func (c *DecontamConfig) Defaults() {
	if c.N == 0 {
		c.N = 13
	}
	if c.QuestionFields == nil {
		c.QuestionFields = []string{"question", "prompt", "input", "problem", "instruction", "query"}
	}
	if c.AnswerFields == nil {
		c.AnswerFields = []string{"answer", "canonical_solution", "output", "solution", "response", "completion", "target"}
	}
	if c.IDFields == nil {
		c.IDFields = []string{"id", "task_id", "question_id", "idx", "uid"}
	}
}

// Validate reports bad settings, keyed "decontam.…".
func (c *DecontamConfig) Validate() error {
	var errs []error
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("decontam.n: must be >= 1, got %d", c.N))
	}
	if len(c.QuestionFields)+len(c.AnswerFields) == 0 {
		errs = append(errs, errors.New("decontam.question_fields: no question or answer fields"))
	}
	for i, f := range c.Files {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("decontam.files: file %d is empty", i))
		}
	}
	return errors.Join(errs...)
}

// Item is one benchmark example.
type Item struct {
	Benchmark string `json:"benchmark"` // the name given to LoadBenchmark
	ID        string `json:"id"`        // the id field, or the record index
	// Question and Answer are the texts of the question and answer
	// fields, each field's text on its own line.
	Question string `json:"question,omitempty"`
	Answer   string `json:"answer,omitempty"` // see Question
}

// Name is "benchmark:id", what Match reports.
func (it Item) Name() string { return it.Benchmark + ":" + it.ID }

// LoadBenchmark reads benchmark items named name from r: JSON Lines (one
// object per line) or one JSON array of objects. Records with none of the
// question or answer fields are skipped; it is an error if no record has
// any.
func LoadBenchmark(name string, r io.Reader, cfg DecontamConfig) ([]Item, error) {
	cfg.Defaults()
	br := bufio.NewReaderSize(r, 1<<16)
	dec := json.NewDecoder(br)
	dec.UseNumber()
	var items []Item
	index := 0
	read := func(rec map[string]any) {
		defer func() { index++ }()
		it := Item{Benchmark: name, ID: strconv.Itoa(index)}
		for _, f := range cfg.IDFields {
			if v, ok := rec[f]; ok {
				if s := fieldText(v); s != "" {
					it.ID = s
					break
				}
			}
		}
		it.Question = joinFields(rec, cfg.QuestionFields)
		it.Answer = joinFields(rec, cfg.AnswerFields)
		if it.Question != "" || it.Answer != "" {
			items = append(items, it)
		}
	}
	// An array or a stream of objects?
	first, err := peekNonSpace(br)
	if err == io.EOF {
		return nil, fmt.Errorf("benchmark %s: empty", name)
	}
	if err != nil {
		return nil, fmt.Errorf("benchmark %s: %w", name, err)
	}
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("benchmark %s: %w", name, err)
		}
		for dec.More() {
			var rec map[string]any
			if err := dec.Decode(&rec); err != nil {
				return nil, fmt.Errorf("benchmark %s: element %d: %w", name, index, err)
			}
			read(rec)
		}
	} else {
		for {
			var rec map[string]any
			err := dec.Decode(&rec)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: record %d: %w", name, index+1, err)
			}
			read(rec)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("benchmark %s: none of %d records has a question field (%s) or an answer field (%s)",
			name, index, strings.Join(cfg.QuestionFields, ", "), strings.Join(cfg.AnswerFields, ", "))
	}
	return items, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		switch c := b[n-1]; c {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xef, 0xbb, 0xbf: // byte-order mark
			continue
		default:
			return c, nil
		}
	}
}

func joinFields(rec map[string]any, fields []string) string {
	var parts []string
	for _, f := range fields {
		if v, ok := rec[f]; ok {
			if s := fieldText(v); s != "" {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(parts, "\n")
}

// fieldText renders a field value: strings and numbers as they are, lists
// of those one per line; objects and nulls as nothing.
func fieldText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		var parts []string
		for _, e := range x {
			if s := fieldText(e); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "\n")
	}
	return ""
}

// Decontaminator finds samples that share a word n-gram with a benchmark
// item. Words are runs of letters and digits, lower-cased; everything
// else (punctuation, white space) separates them. Items shorter than n
// words but at least MinShortWords long are matched whole. N-grams found
// in more than MaxItemsPerNGram items are boilerplate ("answer the
// following question") and ignored. It is safe for concurrent use.
type Decontaminator struct {
	n       int
	items   []Item
	grams   map[uint64]int32 // n-gram (or whole short item) hash → item
	lengths []int            // n and the lengths of short items, ascending
}

// MinShortWords is the shortest item matched whole: GPT-3's decontamination
// (Brown et al. 2020) used no n-gram shorter than 8 words.
const MinShortWords = 8

// MaxItemsPerNGram: an n-gram shared by more items is ignored.
const MaxItemsPerNGram = 10

const polyBase uint64 = 0x9e3779b97f4a7c15

// NewDecontaminator indexes the word n-grams (n <= 0: 13) of every item's
// question and answer. When several items share an n-gram, the first
// listed is reported.
func NewDecontaminator(items []Item, n int) *Decontaminator {
	if n <= 0 {
		n = 13
	}
	d := &Decontaminator{n: n, items: items, grams: map[uint64]int32{}}
	shared := map[uint64]int32{} // items per n-gram, beyond the first
	var hs []uint64
	var pre, pw []uint64
	var tmp []byte
	short := map[int]bool{}
	for idx, it := range items {
		seen := map[uint64]bool{}
		for _, text := range []string{it.Question, it.Answer} {
			hs, _, tmp = normWordHashes(hs[:0], nil, false, text, tmp, -1)
			if len(hs) == 0 {
				continue
			}
			pre, pw = prefixHashes(pre, pw, hs)
			L := n
			if len(hs) < n {
				if len(hs) < min(MinShortWords, n) {
					continue
				}
				L = len(hs)
				short[L] = true
			}
			for i := 0; i+L <= len(hs); i++ {
				h := rangeHash(pre, pw, i, L)
				if seen[h] {
					continue
				}
				seen[h] = true
				if _, ok := d.grams[h]; ok {
					shared[h]++
				} else {
					d.grams[h] = int32(idx)
				}
			}
		}
	}
	for h, c := range shared {
		if c+1 > MaxItemsPerNGram {
			delete(d.grams, h)
		}
	}
	d.lengths = []int{n}
	for L := range short {
		d.lengths = append(d.lengths, L)
	}
	slices.Sort(d.lengths)
	return d
}

// prefixHashes computes polynomial prefix hashes of hs: pre[i] covers
// hs[:i]; pw[i] is polyBase^i.
func prefixHashes(pre, pw []uint64, hs []uint64) ([]uint64, []uint64) {
	pre = append(pre[:0], 0)
	if len(pw) == 0 {
		pw = append(pw, 1)
	}
	for len(pw) <= len(hs) {
		pw = append(pw, pw[len(pw)-1]*polyBase)
	}
	for _, h := range hs {
		pre = append(pre, pre[len(pre)-1]*polyBase+h)
	}
	return pre, pw
}

// rangeHash is the hash of words [i, i+L), mixed with L.
func rangeHash(pre, pw []uint64, i, L int) uint64 {
	return mix(pre[i+L]-pre[i]*pw[L], uint64(L))
}

// Len returns the number of indexed n-grams and short items.
func (d *Decontaminator) Len() int { return len(d.grams) }

// Match looks for a benchmark n-gram in the sample's messages, prompt
// and response alike, in order, and returns the first item hit
// (Item.Name) and the n-gram as it appears in the sample, its words
// joined by single spaces.
func (d *Decontaminator) Match(s *datasets.Sample) (item string, ngram string, ok bool) {
	if len(d.grams) == 0 {
		return "", "", false
	}
	sc := getScratch()
	defer putScratch(sc)
	for _, m := range s.Messages {
		hs, spans, tmp := normWordHashes(sc.hs[:0], sc.spans[:0], true, m.Content, sc.buf, -1)
		sc.hs, sc.spans, sc.buf = hs, spans, tmp
		if len(hs) < d.lengths[0] {
			continue
		}
		pre, pw := prefixHashes(sc.hs2[:0], sc.pw, hs)
		sc.hs2, sc.pw = pre, pw
		for i := range hs {
			for _, L := range d.lengths {
				if i+L > len(hs) {
					break
				}
				if idx, ok := d.grams[rangeHash(pre, pw, i, L)]; ok {
					return d.items[idx].Name(), joinWords(m.Content, spans, i, L), true
				}
			}
		}
	}
	return "", "", false
}

// joinWords returns words [i, i+L) of s, as spans locates them, joined by
// single spaces.
func joinWords(s string, spans []int32, i, L int) string {
	var b strings.Builder
	for k := i; k < i+L; k++ {
		if k > i {
			b.WriteByte(' ')
		}
		b.WriteString(s[spans[2*k]:spans[2*k+1]])
	}
	return b.String()
}

// Filter wraps d as a Filter named "decontam" whose drops carry the
// matched item and n-gram in Detail (rule "decontam.ngram_overlap").
func (d *Decontaminator) Filter() Filter { return decontamFilter{d} }

type decontamFilter struct{ d *Decontaminator }

func (decontamFilter) Name() string { return "decontam" }

func (f decontamFilter) Check(s *datasets.Sample) Verdict {
	item, gram, ok := f.d.Match(s)
	if !ok {
		return Verdict{Keep: true}
	}
	return Verdict{Rule: "decontam.ngram_overlap", Reason: "benchmark overlap", Value: 1, Threshold: 0,
		Detail: fmt.Sprintf("%s: %q", item, gram)}
}
