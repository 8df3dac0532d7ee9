package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
)

// smallRecords is an in-memory record set with the awkward cases: JSON
// escapes, non-ASCII, HTML characters, and two records that are the same
// conversation once normalised (case and white space), which exact dedup
// must count once.
func smallRecords() []Record {
	return []Record{
		{"What is 2+2?", "4"},
		{"Quote \"this\" and a \\ backslash", "Line one\nline two\ttabbed <b>&</b>"},
		{"Écris un haïku", "Le vieil étang — une grenouille saute"},
		{"what is  2+2?", "4 "}, // same conversation as the first after normalisation
		{"Name a colour", "Blue\u2028."},
	}
}

type sample struct {
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Instruction *string `json:"instruction"`
	Input       *string `json:"input"`
	Output      *string `json:"output"`
}

func generate(t *testing.T, recs []Record, cfg Config, n int) (string, Stats) {
	t.Helper()
	g, err := NewGenerator(recs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "c.jsonl")
	st, err := g.Generate(out, n)
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

func readAll(t *testing.T, files []string) []byte {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

var variantRE = regexp.MustCompile(`^(?s)(.*) \(variant (\d+)\)$`)

// checkCorpus parses every line, checks it against recs and returns the
// number of variant prompts.
func checkCorpus(t *testing.T, recs []Record, data []byte, n int) int {
	t.Helper()
	answers := map[string]map[string]bool{} // output -> instructions
	for _, r := range recs {
		if answers[r.Output] == nil {
			answers[r.Output] = map[string]bool{}
		}
		answers[r.Output][r.Instruction] = true
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	lines, variants := 0, 0
	for sc.Scan() {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("line %d: %v: %s", lines, err, sc.Bytes())
		}
		var prompt, answer string
		if s.Instruction != nil {
			if s.Input == nil || *s.Input != "" || s.Output == nil || len(s.Messages) != 0 {
				t.Fatalf("line %d: bad alpaca record %s", lines, sc.Bytes())
			}
			prompt, answer = *s.Instruction, *s.Output
		} else {
			if len(s.Messages) != 2 || s.Messages[0].Role != "user" || s.Messages[1].Role != "assistant" {
				t.Fatalf("line %d: want user then assistant: %s", lines, sc.Bytes())
			}
			prompt, answer = s.Messages[0].Content, s.Messages[1].Content
		}
		instrs, ok := answers[answer]
		if !ok {
			t.Fatalf("line %d: answer %q is not a record's", lines, answer)
		}
		if m := variantRE.FindStringSubmatch(prompt); m != nil {
			if m[2] != itoa(lines) {
				t.Fatalf("line %d: variant number %s, want the sample index", lines, m[2])
			}
			prompt = m[1]
			variants++
		}
		if !instrs[prompt] {
			t.Fatalf("line %d: prompt %q does not go with its answer", lines, prompt)
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != n {
		t.Fatalf("%d lines, want %d", lines, n)
	}
	return variants
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestGeneratorInMemory(t *testing.T) {
	recs := smallRecords()
	const n = 20000
	cfg := Config{Seed: 1, PerFile: 6000}
	out1, st1 := generate(t, recs, cfg, n)
	if len(st1.Files) != 4 || !strings.HasSuffix(st1.Files[3], "c-00003-of-00004.jsonl") {
		t.Fatalf("files %v", st1.Files)
	}
	data1 := readAll(t, st1.Files)
	if int64(len(data1)) != st1.Bytes || st1.Samples != n || st1.Variants+st1.Unchanged != n {
		t.Fatalf("stats %+v, %d bytes", st1, len(data1))
	}
	_ = out1

	// Determinism: same seed, same bytes, whatever the number of workers.
	cfg1 := cfg
	cfg1.Workers = 1
	_, st2 := generate(t, recs, cfg1, n)
	if !bytes.Equal(data1, readAll(t, st2.Files)) {
		t.Fatal("same seed gave different bytes")
	}
	cfg3 := cfg
	cfg3.Seed = 2
	_, st3 := generate(t, recs, cfg3, n)
	if bytes.Equal(data1, readAll(t, st3.Files)) {
		t.Fatal("another seed gave the same bytes")
	}
	// A smaller corpus is a prefix.
	_, st4 := generate(t, recs, cfg, 7000)
	if d := readAll(t, st4.Files); !bytes.HasPrefix(data1, d) {
		t.Fatal("corpus of 7000 is not a prefix of the corpus of 20000")
	}

	variants := checkCorpus(t, recs, data1, n)
	if int64(variants) != st1.Variants {
		t.Fatalf("counted %d variants, stats say %d", variants, st1.Variants)
	}
	if f := float64(variants) / n; math.Abs(f-0.9) > 0.01 {
		t.Fatalf("variant fraction %.3f, want 0.9", f)
	}
	// Four distinct conversations among five records; with 2,000
	// unchanged samples every one appears.
	if want := st1.Variants + 4; st1.AfterExact != want {
		t.Fatalf("after exact %d, want %d", st1.AfterExact, want)
	}
}

func TestGeneratorAlpacaAndCompression(t *testing.T) {
	recs := smallRecords()
	cfg := Config{Seed: 1, PerFile: 1000, AlpacaEvery: 2}
	_, plain := generate(t, recs, cfg, 3000)
	g, err := NewGenerator(recs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "c.jsonl.zst")
	st, err := g.Generate(out, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(st.Files[1], "c-00001-of-00003.jsonl.zst") || st.Bytes != plain.Bytes {
		t.Fatalf("files %v, bytes %d want %d", st.Files, st.Bytes, plain.Bytes)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, f := range st.Files {
		z, err := dec.DecodeAll(readAll(t, []string{f}), nil)
		if err != nil || !bytes.Equal(z, readAll(t, plain.Files[i:i+1])) {
			t.Fatalf("%s: does not decompress to the plain file (%v)", f, err)
		}
	}
	data := readAll(t, plain.Files)
	if v := checkCorpus(t, recs, data, 3000); int64(v) != plain.Variants {
		t.Fatalf("variants %d, want %d", v, plain.Variants)
	}
	second := readAll(t, plain.Files[1:2])
	if !bytes.HasPrefix(second, []byte(`{"instruction":`)) || bytes.HasPrefix(data, []byte(`{"instruction":`)) {
		t.Fatal("want file 1 (only) in alpaca format")
	}
}

func TestFilePath(t *testing.T) {
	for _, c := range []struct {
		out      string
		k, files int
		want     string
	}{
		{"/d/a.jsonl", 0, 1, "/d/a.jsonl"},
		{"/d/a.jsonl", 2, 12, "/d/a-00002-of-00012.jsonl"},
		{"/d/a.jsonl.zst", 0, 2, "/d/a-00000-of-00002.jsonl.zst"},
		{"/d/a", 1, 2, "/d/a-00001-of-00002"},
	} {
		if got := FilePath(c.out, c.k, c.files); got != c.want {
			t.Errorf("FilePath(%q, %d, %d) = %q, want %q", c.out, c.k, c.files, got, c.want)
		}
	}
}

// TestRealData runs on the alpaca_eval files when they are present.
func TestRealData(t *testing.T) {
	root, err := benchenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Load(DataDir(root))
	if errors.Is(err, ErrNoData) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 4000 {
		t.Fatalf("%d records, want the five generators' 805 each", len(recs))
	}
	const n = 20000
	cfg := Config{Seed: 1, PerFile: 8000}
	_, st1 := generate(t, recs, cfg, n)
	_, st2 := generate(t, recs, cfg, n)
	data := readAll(t, st1.Files)
	if !bytes.Equal(data, readAll(t, st2.Files)) {
		t.Fatal("same seed gave different bytes")
	}
	v := checkCorpus(t, recs, data, n)
	if f := float64(v) / n; math.Abs(f-0.9) > 0.01 {
		t.Fatalf("variant fraction %.3f, want 0.9", f)
	}
	if st1.AfterExact <= st1.Variants || st1.AfterExact > st1.Variants+st1.Unchanged {
		t.Fatalf("after exact %d: variants %d, unchanged %d", st1.AfterExact, st1.Variants, st1.Unchanged)
	}
}

func TestLoadAbsent(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, ErrNoData) {
		t.Fatalf("got %v, want ErrNoData", err)
	}
}
