package tokenizer

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata that Go generates (testdata/trained, testdata/chat_cases.json)")

// trainingTexts is the corpus of the trained test tokenizer, built the
// same way by testdata/golden.py: the paragraphs of testdata/corpus.txt,
// then the texts of the cases that hold no "<|" and are not "all" or
// hf_only.
func trainingTexts(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(data), "\n\n")
	for _, c := range loadCases(t) {
		if c.Name == "all" || c.HFOnly != "" || strings.Contains(c.Text, "<|") {
			continue
		}
		texts = append(texts, c.Text)
	}
	return texts
}

// trainedConfig is the configuration of the trained test tokenizer.
var trainedConfig = TrainConfig{VocabSize: 1000, MinFrequency: 2}

func trainedTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := LoadDir("testdata/trained")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func saved(t testing.TB, tok *Tokenizer) (tokJSON, configJSON []byte) {
	t.Helper()
	var a, b bytes.Buffer
	if err := tok.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	if err := tok.WriteConfig(&b); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes()
}

// TestTrainedTestdata trains the test tokenizer and checks it against
// testdata/trained (which -update rewrites): training is reproducible
// across runs and machines.
func TestTrainedTestdata(t *testing.T) {
	tok, err := Train(slices.Values(trainingTexts(t)), trainedConfig)
	if err != nil {
		t.Fatal(err)
	}
	gotTok, gotCfg := saved(t, tok)
	dir := "testdata/trained"
	if *update {
		if err := tok.SaveDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	for name, got := range map[string][]byte{"tokenizer.json": gotTok, "tokenizer_config.json": gotCfg} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh training run (go test -update rewrites it)", name)
		}
	}
	if n := tok.VocabSize(); n != trainedConfig.VocabSize {
		t.Errorf("VocabSize = %d, want %d", n, trainedConfig.VocabSize)
	}
}

// TestTrainDeterministic: the result depends on the multiset of words,
// not on the order or the cutting of the texts.
func TestTrainDeterministic(t *testing.T) {
	texts := trainingTexts(t)
	a, err := Train(slices.Values(texts), trainedConfig)
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(texts)
	slices.Reverse(reversed)
	b, err := Train(slices.Values(reversed), trainedConfig)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := saved(t, a)
	jb, _ := saved(t, b)
	if !bytes.Equal(ja, jb) {
		t.Fatal("training on the texts in reverse order gave another tokenizer")
	}
	c, err := Train(slices.Values(texts), trainedConfig)
	if err != nil {
		t.Fatal(err)
	}
	if jc, _ := saved(t, c); !bytes.Equal(ja, jc) {
		t.Fatal("two training runs differ")
	}
}

// TestTrainReload: a trained tokenizer saved as tokenizer.json loads
// back and encodes every case as before, and decodes to the text.
func TestTrainReload(t *testing.T) {
	tok, err := Train(slices.Values(trainingTexts(t)), trainedConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tok.SaveDir(dir); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Chat().Format() != ChatML || back.EOS() != "<|im_end|>" || back.Pad() != "<|endoftext|>" {
		t.Errorf("reloaded config: chat %v eos %q pad %q", back.Chat().Format(), back.EOS(), back.Pad())
	}
	for _, c := range loadCases(t) {
		want := tok.Encode(c.Text)
		if got := back.Encode(c.Text); !slices.Equal(got, want) {
			t.Errorf("%s: reloaded tokenizer encodes %v, trained one %v", c.Name, got, want)
		}
		if got := back.Decode(want); got != c.Text {
			t.Errorf("%s: Decode(Encode(x)) = %q", c.Name, got)
		}
		for _, id := range want {
			if id < 0 || id >= trainedConfig.VocabSize {
				t.Fatalf("%s: id %d outside the vocabulary", c.Name, id)
			}
		}
	}
	// Special tokens are single ids, and the text around them is
	// encoded on its own.
	ids := back.Encode("<|im_start|>user\nhi<|im_end|>")
	if ids[0] != 1 || ids[len(ids)-1] != 2 {
		t.Errorf("special tokens: %v, want 1 first and 2 last", ids)
	}
	// Saving the reloaded tokenizer gives the same files.
	j1, c1 := saved(t, tok)
	j2, c2 := saved(t, back)
	if !bytes.Equal(j1, j2) || !bytes.Equal(c1, c2) {
		t.Error("saving the reloaded tokenizer gives other files")
	}
}

// TestTrainSmall checks the merges on a corpus small enough to count by
// hand. Words (GPT-2 split): "ab" once, " ab" and " cd" twice each.
// Pairs: a b 3, Ġ a 2, Ġ c 2, c d 2. First a b (most frequent); then Ġ ab,
// Ġ c and c d all count 2 and the smallest pair of ids wins: c (id 69) d
// before Ġ (id 223) anything; then Ġ ab (ab is id 259) before Ġ cd (260).
// No pair is left twice.
func TestTrainSmall(t *testing.T) {
	tok, err := Train(slices.Values([]string{"ab ab ab cd cd"}), TrainConfig{VocabSize: 300, Pattern: PatternGPT2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range tok.model.pairs {
		got = append(got, tok.Token(int(p[0]))+" "+tok.Token(int(p[1])))
	}
	want := []string{"a b", "c d", "Ġ ab", "Ġ cd"}
	if !slices.Equal(got, want) {
		t.Errorf("merges %q, want %q", got, want)
	}
	if id, _ := tok.TokenID("c"); id != 69 {
		t.Errorf("id of c = %d, want 69", id)
	}
	if id, _ := tok.TokenID("Ġ"); id != 223 {
		t.Errorf("id of Ġ = %d, want 223", id)
	}
	if got := tok.Encode("ab cd abcd"); !slices.Equal(got, []int{259, 262, 261, 260}) {
		t.Errorf("Encode = %v", got)
	}
	if tok.VocabSize() != 263 {
		t.Errorf("VocabSize = %d, want 263", tok.VocabSize())
	}
}

// TestTrainParityHF compares the merges and vocabulary with those of
// Hugging Face's BpeTrainer on the same corpus and settings
// (testdata/golden.py writes testdata/train_hf.json).
func TestTrainParityHF(t *testing.T) {
	data, err := os.ReadFile("testdata/train_hf.json")
	if err != nil {
		t.Fatal(err) // a committed golden (testdata/SHA256SUMS)
	}
	var hf struct {
		Vocab  map[string]int `json:"vocab"`
		Merges [][2]string    `json:"merges"`
	}
	if err := json.Unmarshal(data, &hf); err != nil {
		t.Fatal(err)
	}
	tok := trainedTokenizer(t)
	if len(hf.Vocab) != len(tok.model.tokens) {
		t.Errorf("vocabulary: %d tokens, Hugging Face %d", len(tok.model.tokens), len(hf.Vocab))
	}
	for s, id := range hf.Vocab {
		if got, ok := tok.model.vocab[s]; !ok || int(got) != id {
			t.Errorf("token %q: id %d (present %v), Hugging Face %d", s, got, ok, id)
		}
	}
	if len(hf.Merges) != len(tok.model.pairs) {
		t.Errorf("%d merges, Hugging Face %d", len(tok.model.pairs), len(hf.Merges))
	}
	for i := range min(len(hf.Merges), len(tok.model.pairs)) {
		p := tok.model.pairs[i]
		got := [2]string{tok.Token(int(p[0])), tok.Token(int(p[1]))}
		if got != hf.Merges[i] {
			t.Errorf("merge %d: %q, Hugging Face %q", i, got, hf.Merges[i])
			break
		}
	}
	t.Logf("trained vocabulary (%d tokens, %d merges) identical to Hugging Face BpeTrainer", len(hf.Vocab), len(hf.Merges))
}
