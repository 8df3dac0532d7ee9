package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchText is a mixed text of about 64 KB: the project's English docs,
// code and the multilingual test cases.
func benchText(b *testing.B) string {
	b.Helper()
	corpus, err := os.ReadFile("testdata/corpus.txt")
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for sb.Len() < 64<<10 {
		sb.Write(corpus)
		for _, c := range loadCases(b) {
			if c.Name != "all" {
				sb.WriteString(c.Text)
				sb.WriteString("\n")
			}
		}
	}
	return sb.String()
}

var (
	benchMu      sync.Mutex
	benchResults = map[string]float64{}
)

// record keeps the throughput of the last (longest) run of a benchmark
// for the JSON lines that TestMain prints.
func record(b *testing.B, name string, bytes int) {
	if b.N < 2 {
		return
	}
	mbs := float64(bytes) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	benchMu.Lock()
	benchResults[name] = mbs
	benchMu.Unlock()
}

// BenchmarkEncode measures Encode throughput (MB/s of input text) on one
// core: warm is the steady state with the word cache filled, nocache
// runs BPE on every word.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	toks := refTokenizers(b)
	for _, name := range []string{"gpt2", "llama3", "qwen3"} {
		tok := toks[name]
		b.Run(name+"/warm", func(b *testing.B) {
			tok.Encode(text)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				tok.Encode(text)
			}
			record(b, "tokenizer/encode/"+name+"/warm", len(text))
		})
		b.Run(name+"/nocache", func(b *testing.B) {
			tok.model.noCache = true
			defer func() { tok.model.noCache = false }()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(text)
			}
			record(b, "tokenizer/encode/"+name+"/nocache", len(text))
		})
	}
}

// BenchmarkTrain measures training a 4096-token vocabulary on the bench
// text.
func BenchmarkTrain(b *testing.B) {
	text := benchText(b)
	paras := strings.Split(text, "\n\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Train(func(yield func(string) bool) {
			for _, p := range paras {
				if !yield(p) {
					return
				}
			}
		}, TrainConfig{VocabSize: 4096}); err != nil {
			b.Fatal(err)
		}
	}
	record(b, "tokenizer/train/4096", len(text))
}

func TestMain(m *testing.M) {
	code := m.Run()
	names := make([]string, 0, len(benchResults))
	for k := range benchResults {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		line, _ := json.Marshal(map[string]any{"bench": k, "value": benchResults[k], "unit": "MB/s", "when": time.Now().UTC().Format(time.RFC3339)})
		fmt.Println(string(line))
	}
	os.Exit(code)
}
