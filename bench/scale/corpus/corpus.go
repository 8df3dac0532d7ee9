// Package corpus generates the realistic corpus of sieve's scale
// benchmark: real model answers reused under many prompt variants, the
// way synthetic and multi-source SFT mixes look.
//
// The records are the alpaca_eval model outputs kept outside the project
// (../shared/data/alpaca_eval from the module root: JSON arrays of
// {dataset, instruction, output, generator}, one file per generator);
// none of their text is in the repository. Each generated sample takes a
// record chosen uniformly at random; with probability VariantFrac (0.9)
// its prompt becomes "INSTRUCTION (variant I)", I being the sample's index
// in the corpus (unique, so no two variants are exact duplicates),
// otherwise the record is used unchanged. Samples are written as OpenAI
// messages JSONL ({"messages":[{"role":"user",…},{"role":"assistant",…}]})
// or, for every AlpacaEvery-th file, as alpaca JSONL ({"instruction",
// "input":"", "output"}; sieve reads it as the same conversation).
//
// Output is deterministic for a seed: file k holds samples k·PerFile …
// from a generator seeded with (Seed, k), so files are written in
// parallel, their bytes do not depend on the number of workers, and the
// corpus of N samples is a prefix of the corpus of M > N.
package corpus

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// Record is one real (instruction, answer) pair.
type Record struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
}

// ErrNoData is returned by Load when the data folder is absent.
var ErrNoData = errors.New("alpaca_eval data not found")

// DataDir returns the default data folder: ../shared/data/alpaca_eval
// from root (the module root).
func DataDir(root string) string {
	return filepath.Join(filepath.Dir(root), "shared", "data", "alpaca_eval")
}

// Load reads every *.json array in dir, files in name order, records in
// array order. Records whose instruction or output is blank are skipped.
func Load(dir string) ([]Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no *.json in %s (the scale benchmark needs the alpaca_eval model outputs there; see ../shared/data/README.md)", ErrNoData, dir)
	}
	sort.Strings(files)
	var out []Record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var recs []Record
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range recs {
			if strings.TrimSpace(r.Instruction) != "" && strings.TrimSpace(r.Output) != "" {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no records in %s", ErrNoData, dir)
	}
	return out, nil
}

// Config says what to generate.
type Config struct {
	N    int    // samples
	Seed uint64 // 1 in the benchmark
	// PerFile is the number of samples per file (default 250,000).
	PerFile int
	// VariantFrac is the fraction of samples whose prompt is a variant
	// (default 0.9; negative means 0).
	VariantFrac float64
	// AlpacaEvery > 0 writes every AlpacaEvery-th file (k % AlpacaEvery
	// == AlpacaEvery-1) in alpaca format instead of OpenAI messages.
	AlpacaEvery int
	// Workers writing files at once (default GOMAXPROCS).
	Workers int
}

func (c Config) withDefaults() Config {
	if c.PerFile <= 0 {
		c.PerFile = 250000
	}
	if c.VariantFrac == 0 {
		c.VariantFrac = 0.9
	} else if c.VariantFrac < 0 {
		c.VariantFrac = 0
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Stats describe a generated corpus.
type Stats struct {
	Samples   int64    `json:"samples"`
	Variants  int64    `json:"variants"`
	Unchanged int64    `json:"unchanged"`
	Bytes     int64    `json:"bytes"` // uncompressed JSONL
	Files     []string `json:"files"`
	// AfterExact is how many samples exact dedup by conversation keeps:
	// every variant plus one per distinct normalised conversation among
	// the unchanged samples (sieve's dedup.ExactKey).
	AfterExact int64   `json:"after_exact"`
	Seconds    float64 `json:"seconds"`
}

// Generator writes corpus files from a record set.
type Generator struct {
	cfg Config
	// Per record: the JSON string of the instruction without its closing
	// quote (variants append to it), and the whole JSON string of the
	// output; encoded once, so writing a sample is a few appends.
	instrOpen [][]byte
	output    [][]byte
	// class numbers records by exact-dedup key (equal keys, equal class).
	class   []int32
	classes int
}

// NewGenerator prepares recs for cfg.
func NewGenerator(recs []Record, cfg Config) (*Generator, error) {
	if len(recs) == 0 {
		return nil, errors.New("corpus: no records")
	}
	cfg = cfg.withDefaults()
	g := &Generator{cfg: cfg, instrOpen: make([][]byte, len(recs)), output: make([][]byte, len(recs)), class: make([]int32, len(recs))}
	keys := map[dedup.Key]int32{}
	for i, r := range recs {
		in, err := json.Marshal(r.Instruction)
		if err != nil {
			return nil, err
		}
		out, err := json.Marshal(r.Output)
		if err != nil {
			return nil, err
		}
		g.instrOpen[i] = in[:len(in)-1]
		g.output[i] = out
		k := dedup.ExactKey([]datasets.Message{{Role: datasets.RoleUser, Content: r.Instruction},
			{Role: datasets.RoleAssistant, Content: r.Output}}, dedup.KeyConversation)
		c, ok := keys[k]
		if !ok {
			c = int32(len(keys))
			keys[k] = c
		}
		g.class[i] = c
	}
	g.classes = len(keys)
	return g, nil
}

// Files returns the number of files for N samples.
func (g *Generator) Files(n int) int {
	return (n + g.cfg.PerFile - 1) / g.cfg.PerFile
}

// FileStats is what one file holds.
type FileStats struct {
	Samples, Variants, Bytes int64
	// Seen marks the record classes used unchanged.
	Seen []bool
}

// WriteFile writes file k of a corpus of n samples to w (uncompressed).
func (g *Generator) WriteFile(w io.Writer, n, k int) (FileStats, error) {
	first := k * g.cfg.PerFile
	count := min(g.cfg.PerFile, n-first)
	st := FileStats{Seen: make([]bool, g.classes)}
	if count <= 0 {
		return st, nil
	}
	alpaca := g.cfg.AlpacaEvery > 0 && k%g.cfg.AlpacaEvery == g.cfg.AlpacaEvery-1
	rng := rand.New(rand.NewPCG(g.cfg.Seed, uint64(k)))
	bw := bufio.NewWriterSize(w, 1<<20)
	line := make([]byte, 0, 16<<10)
	for i := first; i < first+count; i++ {
		r := rng.IntN(len(g.instrOpen))
		variant := rng.Float64() < g.cfg.VariantFrac
		if alpaca {
			line = append(line[:0], `{"instruction":`...)
		} else {
			line = append(line[:0], `{"messages":[{"role":"user","content":`...)
		}
		line = append(line, g.instrOpen[r]...)
		if variant {
			line = append(line, " (variant "...)
			line = strconv.AppendInt(line, int64(i), 10)
			line = append(line, ')')
			st.Variants++
		} else {
			st.Seen[g.class[r]] = true
		}
		if alpaca {
			line = append(line, `","input":"","output":`...)
			line = append(line, g.output[r]...)
			line = append(line, "}\n"...)
		} else {
			line = append(line, `"},{"role":"assistant","content":`...)
			line = append(line, g.output[r]...)
			line = append(line, "}]}\n"...)
		}
		if _, err := bw.Write(line); err != nil {
			return st, err
		}
		st.Samples++
		st.Bytes += int64(len(line))
	}
	return st, bw.Flush()
}

// FilePath names file k of files for the output path out: out itself
// when there is one file, else out with "-KKKKK-of-FFFFF" before its
// extensions (".jsonl", ".jsonl.zst", ".json.gz", …).
func FilePath(out string, k, files int) string {
	if files == 1 {
		return out
	}
	dir, base := filepath.Split(out)
	stem, ext := base, ""
	if i := strings.Index(base, "."); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%05d-of-%05d%s", stem, k, files, ext))
}

// Generate writes the corpus of n samples to the files named by FilePath
// (compressed with zstd or gzip when out ends in .zst or .gz), Workers at
// a time.
func (g *Generator) Generate(out string, n int) (Stats, error) {
	start := time.Now()
	files := g.Files(n)
	if files == 0 {
		return Stats{}, errors.New("corpus: n must be positive")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Stats{}, err
	}
	per := make([]FileStats, files)
	errs := make([]error, files)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(g.cfg.Workers, files) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				per[k], errs[k] = g.writePath(FilePath(out, k, files), n, k)
			}
		}()
	}
	for k := range files {
		next <- k
	}
	close(next)
	wg.Wait()
	st := Stats{}
	seen := make([]bool, g.classes)
	for k := range files {
		if errs[k] != nil {
			return Stats{}, fmt.Errorf("%s: %w", FilePath(out, k, files), errs[k])
		}
		st.Files = append(st.Files, FilePath(out, k, files))
		st.Samples += per[k].Samples
		st.Variants += per[k].Variants
		st.Bytes += per[k].Bytes
		for c, s := range per[k].Seen {
			seen[c] = seen[c] || s
		}
	}
	st.Unchanged = st.Samples - st.Variants
	st.AfterExact = st.Variants
	for _, s := range seen {
		if s {
			st.AfterExact++
		}
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

func (g *Generator) writePath(path string, n, k int) (FileStats, error) {
	f, err := os.Create(path)
	if err != nil {
		return FileStats{}, err
	}
	var w io.Writer = f
	var c io.WriteCloser
	switch {
	case strings.HasSuffix(path, ".zst"):
		c, err = zstd.NewWriter(f, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			f.Close()
			return FileStats{}, err
		}
	case strings.HasSuffix(path, ".gz"):
		c, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
	}
	if c != nil {
		w = c
	}
	st, err := g.WriteFile(w, n, k)
	if c != nil {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}
