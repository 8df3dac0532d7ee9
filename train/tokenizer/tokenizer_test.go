package tokenizer

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// variant returns the trained test tokenizer's tokenizer.json with some
// top-level parts replaced, loaded.
func variant(t *testing.T, parts map[string]any) (*Tokenizer, error) {
	t.Helper()
	base, _ := saved(t, trainedTokenizer(t))
	var f map[string]any
	if err := json.Unmarshal(base, &f); err != nil {
		t.Fatal(err)
	}
	for k, v := range parts {
		if k == "merges" || k == "ignore_merges" {
			f["model"].(map[string]any)[k] = v
			continue
		}
		f[k] = v
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return Read(bytes.NewReader(data))
}

func mustVariant(t *testing.T, parts map[string]any) *Tokenizer {
	t.Helper()
	tok, err := variant(t, parts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMergeSpellings: merges written as "a b" strings load as the same
// model as ["a", "b"] pairs.
func TestMergeSpellings(t *testing.T) {
	tok := trainedTokenizer(t)
	var asStrings []string
	for _, p := range tok.model.pairs {
		asStrings = append(asStrings, tok.Token(int(p[0]))+" "+tok.Token(int(p[1])))
	}
	legacy := mustVariant(t, map[string]any{"merges": asStrings})
	for _, c := range loadCases(t) {
		if a, b := tok.Encode(c.Text), legacy.Encode(c.Text); !slices.Equal(a, b) {
			t.Fatalf("%s: pair merges give %v, string merges %v", c.Name, a, b)
		}
	}
	if _, err := variant(t, map[string]any{"merges": []string{"a b c"}}); err == nil {
		t.Error("a merge of three tokens was accepted")
	}
}

func TestByteLevelPrefixSpace(t *testing.T) {
	tok := mustVariant(t, map[string]any{
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true},
	})
	if a, b := tok.Encode("hello world"), tok.Encode(" hello world"); !slices.Equal(a, b) {
		t.Errorf("with add_prefix_space, %v != %v", a, b)
	}
	// The prefix space is added to each stretch between added tokens.
	a := tok.Encode("hi<|im_end|>there")
	want := slices.Concat(tok.Encode(" hi"), []int{2}, tok.Encode(" there"))
	if !slices.Equal(a, want) {
		t.Errorf("Encode = %v, want %v", a, want)
	}
	if got := tok.Decode(tok.Encode("hello")); got != " hello" {
		t.Errorf("Decode = %q", got)
	}
}

func TestTemplateProcessing(t *testing.T) {
	tok := mustVariant(t, map[string]any{
		"post_processor": map[string]any{
			"type": "Sequence",
			"processors": []any{
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
				map[string]any{
					"type": "TemplateProcessing",
					"single": []any{
						map[string]any{"SpecialToken": map[string]any{"id": "<|im_start|>", "type_id": 0}},
						map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
						map[string]any{"SpecialToken": map[string]any{"id": "<|endoftext|>", "type_id": 0}},
					},
					"pair": []any{},
					"special_tokens": map[string]any{
						"<|im_start|>":  map[string]any{"id": "<|im_start|>", "ids": []int{1}, "tokens": []string{"<|im_start|>"}},
						"<|endoftext|>": map[string]any{"id": "<|endoftext|>", "ids": []int{0}, "tokens": []string{"<|endoftext|>"}},
					},
				},
			},
		},
	})
	ids := tok.Encode("hi")
	if got := tok.AddSpecialTokens(ids); !slices.Equal(got, slices.Concat([]int{1}, ids, []int{0})) {
		t.Errorf("AddSpecialTokens = %v", got)
	}
	if got := trainedTokenizer(t).AddSpecialTokens(ids); !slices.Equal(got, ids) {
		t.Errorf("without a template AddSpecialTokens = %v", got)
	}
}

func TestAddedTokenOptions(t *testing.T) {
	added := []any{
		map[string]any{"id": 0, "content": "<|endoftext|>", "special": true},
		map[string]any{"id": 1, "content": "<|im_start|>", "special": true, "rstrip": true},
		map[string]any{"id": 2, "content": "<|im_end|>", "special": true, "lstrip": true},
		map[string]any{"id": 1000, "content": "cat", "single_word": true},
	}
	tok := mustVariant(t, map[string]any{"added_tokens": added})
	// lstrip and rstrip swallow the whitespace next to the token.
	if got, want := tok.Encode("a  <|im_end|>"), slices.Concat(tok.Encode("a"), []int{2}); !slices.Equal(got, want) {
		t.Errorf("lstrip: %v, want %v", got, want)
	}
	if got, want := tok.Encode("<|im_start|> \n x"), slices.Concat([]int{1}, tok.Encode("x")); !slices.Equal(got, want) {
		t.Errorf("rstrip: %v, want %v", got, want)
	}
	// single_word: only where no word character touches it.
	if got := tok.Encode("a cat sat"); !slices.Contains(got, 1000) {
		t.Errorf("single word not matched: %v", got)
	}
	if got := tok.Encode("concatenate"); slices.Contains(got, 1000) {
		t.Errorf("single word matched inside a word: %v", got)
	}
	// Leftmost-longest: the longer of two tokens at the same place wins.
	added = append(added, map[string]any{"id": 1001, "content": "<|im", "special": true})
	tok = mustVariant(t, map[string]any{"added_tokens": added})
	if got := tok.Encode("<|im_start|><|im"); !slices.Equal(got, []int{1, 1001}) {
		t.Errorf("leftmost-longest: %v", got)
	}
	if !tok.IsSpecial(1001) || tok.IsSpecial(1000) {
		t.Error("IsSpecial")
	}
	if got := tok.DecodeSkipSpecial(tok.Encode("<|im_start|>a cat")); got != "a cat" {
		t.Errorf("DecodeSkipSpecial = %q", got)
	}
}

// TestSplitBehaviors checks the Split behaviours on the example of
// Hugging Face's documentation (SplitDelimiterBehavior).
func TestSplitBehaviors(t *testing.T) {
	want := map[int][]string{
		behaviorRemoved:            {"the", "final", "countdown"},
		behaviorIsolated:           {"the", "-", "final", "-", "-", "countdown"},
		behaviorMergedWithPrevious: {"the-", "final-", "-", "countdown"},
		behaviorMergedWithNext:     {"the", "-final", "-", "-countdown"},
		behaviorContiguous:         {"the", "-", "final", "--", "countdown"},
	}
	for b, w := range want {
		st := &splitStep{m: literalMatcher{lit: "-"}, behavior: b}
		var got []string
		for _, p := range st.split(piece{text: "the-final--countdown"}, nil) {
			got = append(got, p.text)
		}
		if !slices.Equal(got, w) {
			t.Errorf("behavior %d: %q, want %q", b, got, w)
		}
	}
	// invert: the pattern describes the pieces to keep.
	st := &splitStep{m: literalMatcher{lit: "-"}, behavior: behaviorRemoved, invert: true}
	var got []string
	for _, p := range st.split(piece{text: "a-b"}, nil) {
		got = append(got, p.text)
	}
	if !slices.Equal(got, []string{"-"}) {
		t.Errorf("inverted Removed: %q", got)
	}
}

// TestScanners spells out the pre-tokenization of tricky inputs.
func TestScanners(t *testing.T) {
	split := func(s string, scan func(string, int) int) []string {
		var out []string
		for i := 0; i < len(s); {
			j := scan(s, i)
			out = append(out, s[i:j])
			i = j
		}
		return out
	}
	gpt2 := func(s string, i int) int { return scanGPT2(s, i) }
	llama := func(s string, i int) int { return scanLlama3(s, i, 3) }
	qwen := func(s string, i int) int { return scanLlama3(s, i, 1) }
	for _, c := range []struct {
		in   string
		scan func(string, int) int
		want []string
	}{
		{"Hello   world  ", gpt2, []string{"Hello", "  ", " world", "  "}},
		{"I'm HE'S 'sup", gpt2, []string{"I", "'m", " HE", "'", "S", " '", "sup"}},
		{"\tx\n\ny 12345", gpt2, []string{"\t", "x", "\n", "\n", "y", " 12345"}},
		{"I'm HE'S 'sup", llama, []string{"I", "'m", " HE", "'S", " '", "sup"}},
		{"12345 x", llama, []string{"123", "45", " x"}},
		{"12345 x", qwen, []string{"1", "2", "3", "4", "5", " x"}},
		{"(hello) \thi", llama, []string{"(hello", ")", " ", "\thi"}},
		{"end.\n\nNext  \n  x", llama, []string{"end", ".\n\n", "Next", "  \n", " ", " x"}},
		{"a  \n\t\n  ", llama, []string{"a", "  \n\t\n", "  "}},
		{"it'ſ", llama, []string{"it", "'ſ"}},
		{"it'ſ", gpt2, []string{"it", "'", "ſ"}},
	} {
		if got := split(c.in, c.scan); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	for name, parts := range map[string]map[string]any{
		"regex":         {"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\w+`}, "behavior": "Isolated"}},
		"no byte level": {"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "Isolated"}},
		"normalizer":    {"normalizer": map[string]any{"type": "Lowercase"}},
		"decoder":       {"decoder": map[string]any{"type": "WordPiece"}},
	} {
		if _, err := variant(t, parts); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "tokenizer: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	if _, err := Read(strings.NewReader(`{"model": {"type": "WordPiece", "vocab": {}}}`)); err == nil {
		t.Error("WordPiece accepted")
	}
	if _, err := matcherFor(strings.Replace(PatternLlama3, "{1,3}", "{1,x}", 1)); err == nil {
		t.Error("malformed digit group accepted")
	}
	if m, err := matcherFor(strings.Replace(PatternLlama3, "{1,3}", "{1,4}", 1)); err != nil || m.(llama3Matcher).maxDigits != 4 {
		t.Errorf("\\p{N}{1,4}: %v %v", m, err)
	}
}

func TestVocabAccessors(t *testing.T) {
	tok := refTokenizers(t)["llama3"]
	if n := tok.VocabSize(); n != 128256 {
		t.Errorf("llama3 VocabSize = %d, want 128256", n)
	}
	if id, ok := tok.TokenID("<|eot_id|>"); !ok || id != 128009 {
		t.Errorf("<|eot_id|> = %d %v", id, ok)
	}
	if id, ok := tok.TokenID("Ġthe"); !ok || tok.Token(id) != "Ġthe" || tok.Decode([]int{id}) != " the" {
		t.Errorf("Ġthe = %d %v", id, ok)
	}
	if tok.BOS() != "<|begin_of_text|>" || tok.EOS() != "<|end_of_text|>" {
		t.Errorf("bos %q eos %q", tok.BOS(), tok.EOS())
	}
	if got := len(tok.AddedTokens()); got != 256 {
		t.Errorf("%d added tokens, want 256", got)
	}
	if tok.Decode([]int{-1, 1 << 30}) != "" {
		t.Error("unknown ids decode to text")
	}
}

// TestConcurrentEncode runs encoders in parallel on a cold cache (for the
// race detector) and checks they agree.
func TestConcurrentEncode(t *testing.T) {
	tok, err := LoadDir("testdata/trained")
	if err != nil {
		t.Fatal(err)
	}
	cases := loadCases(t)
	want := make([][]int, len(cases))
	for i, c := range cases {
		want[i] = tok.model.noCacheEncode(tok, c.Text)
	}
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for r := 0; r < 20; r++ {
				for i, c := range cases {
					if !slices.Equal(tok.Encode(c.Text), want[i]) {
						ok = false
					}
				}
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("concurrent Encode disagrees")
		}
	}
}

// noCacheEncode encodes with a fresh tokenizer state: a reference for
// cache tests.
func (m *bpeModel) noCacheEncode(tok *Tokenizer, text string) []int {
	m.noCache = true
	defer func() { m.noCache = false }()
	return tok.Encode(text)
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello world", "I'm  \n\n x", "<|im_start|>a<|im_end|>", "\xff\xfe", "12345 ١٢٣", "👨‍👩‍👧"} {
		f.Add(s)
	}
	tok, err := LoadDir("testdata/trained")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
		if got := tok.Decode(tok.EncodeOrdinary(s)); got != s {
			t.Errorf("Decode(EncodeOrdinary(%q)) = %q", s, got)
		}
		if utf8.ValidString(s) {
			// Pre-tokenizer pieces tile the text.
			for i := 0; i < len(s); {
				j := scanLlama3(s, i, 3)
				if j <= i || j > len(s) {
					t.Fatalf("scanLlama3(%q, %d) = %d", s, i, j)
				}
				i = j
			}
		}
	})
}
