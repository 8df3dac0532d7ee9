package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// threeTurns is the 3-turn conversation of the chat tests. The assistant
// content has whitespace around it (Llama-3 trims it) and an emoji.
var threeTurns = []datasets.Message{
	{Role: "system", Content: "You are a helpful assistant."},
	{Role: "user", Content: "What is 2+2? Answer briefly."},
	{Role: "assistant", Content: " 2 + 2 = 4.\n\nAnything else? 😊 "},
}

// fiveTurns has two assistant turns; the second starts with newlines,
// which merge with the header's newline into one token.
var fiveTurns = []datasets.Message{
	{Role: "user", Content: "Say hi."},
	{Role: "assistant", Content: "Hi!"},
	{Role: "user", Content: "Now in French, with a list:"},
	{Role: "assistant", Content: "\n\n- Salut !\n- Bonjour, ça va ?"},
	{Role: "user", Content: "Merci."},
}

var chatConversations = [][]datasets.Message{threeTurns, fiveTurns}

// maskedText returns the decoded masked and unmasked parts.
func maskedText(tok *Tokenizer, ids []int, mask []bool) (in, out string) {
	var a, b []int
	for i, id := range ids {
		if mask[i] {
			a = append(a, id)
		} else {
			b = append(b, id)
		}
	}
	return tok.Decode(a), tok.Decode(b)
}

func TestChatMLText(t *testing.T) {
	tok := refTokenizers(t)["qwen3"]
	c := tok.Chat()
	if c.Format() != ChatML {
		t.Fatalf("qwen3's template detected as %v", c.Format())
	}
	want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
		"<|im_start|>user\nWhat is 2+2? Answer briefly.<|im_end|>\n" +
		"<|im_start|>assistant\n 2 + 2 = 4.\n\nAnything else? 😊 <|im_end|>\n"
	if got := c.Render(threeTurns, false); got != want {
		t.Errorf("Render:\n%q\nwant\n%q", got, want)
	}
	if got := c.Render(threeTurns, true); got != want+"<|im_start|>assistant\n" {
		t.Errorf("Render with generation prompt: %q", got)
	}
}

func TestChatMLMask(t *testing.T) {
	tok := refTokenizers(t)["qwen3"]
	ids, mask := tok.Chat().Encode(threeTurns)
	if len(ids) != len(mask) {
		t.Fatalf("%d ids, %d mask entries", len(ids), len(mask))
	}
	if want := tok.Encode(tok.Chat().Render(threeTurns, false)); !slices.Equal(ids, want) {
		t.Errorf("ids differ from Encode(Render())")
	}
	in, out := maskedText(tok, ids, mask)
	if want := " 2 + 2 = 4.\n\nAnything else? 😊 <|im_end|>"; in != want {
		t.Errorf("masked text %q, want %q", in, want)
	}
	wantOut := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
		"<|im_start|>user\nWhat is 2+2? Answer briefly.<|im_end|>\n<|im_start|>assistant\n\n"
	if out != wantOut {
		t.Errorf("unmasked text %q, want %q", out, wantOut)
	}
	imStart, _ := tok.TokenID("<|im_start|>")
	imEnd, _ := tok.TokenID("<|im_end|>")
	// Token by token: the last <|im_end|> is in the loss, the one after
	// system and user turns and every <|im_start|> are not; the final
	// newline is not.
	ends := 0
	for i, id := range ids {
		switch id {
		case imStart:
			if mask[i] {
				t.Errorf("<|im_start|> at %d masked in", i)
			}
		case imEnd:
			ends++
			if mask[i] != (ends == 3) {
				t.Errorf("<|im_end|> number %d: mask %v", ends, mask[i])
			}
		}
	}
	if mask[len(mask)-1] {
		t.Error("the newline after the last <|im_end|> is masked in")
	}
	if !mask[len(mask)-2] || ids[len(ids)-2] != imEnd {
		t.Error("the assistant's <|im_end|> is not the last masked token")
	}
}

func TestChatMultiTurnMask(t *testing.T) {
	for _, name := range []string{"qwen3", "llama3", "gpt2"} {
		tok := refTokenizers(t)[name]
		ids, mask := tok.Chat().Encode(fiveTurns)
		in, _ := maskedText(tok, ids, mask)
		eot := tok.Chat().EndOfTurn()
		var want string
		switch tok.Chat().Format() {
		case Llama3:
			want = "Hi!" + eot + "- Salut !\n- Bonjour, ça va ?" + eot
		default:
			// The newlines that open the second answer merge with the
			// header's newline into one token ("\n\n\n"), which counts as
			// assistant.
			want = "Hi!" + eot + "\n\n\n- Salut !\n- Bonjour, ça va ?" + eot
		}
		if in != want {
			t.Errorf("%s: masked text %q, want %q", name, in, want)
		}
	}
}

func TestLlama3Chat(t *testing.T) {
	tok := refTokenizers(t)["llama3"]
	c := tok.Chat()
	if c.Format() != Llama3 {
		t.Fatalf("llama3's template detected as %v", c.Format())
	}
	want := "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2? Answer briefly.<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.\n\nAnything else? 😊<|eot_id|>"
	if got := c.Render(threeTurns, false); got != want {
		t.Errorf("Render:\n%q\nwant\n%q", got, want)
	}
	ids, mask := c.Encode(threeTurns)
	in, _ := maskedText(tok, ids, mask)
	if want := "2 + 2 = 4.\n\nAnything else? 😊<|eot_id|>"; in != want {
		t.Errorf("masked text %q, want %q", in, want)
	}
	bos, _ := tok.TokenID("<|begin_of_text|>")
	eot, _ := tok.TokenID("<|eot_id|>")
	if ids[0] != bos || mask[0] {
		t.Errorf("first token %d (mask %v), want <|begin_of_text|> unmasked", ids[0], mask[0])
	}
	if ids[len(ids)-1] != eot || !mask[len(ids)-1] {
		t.Error("last token is not a masked <|eot_id|>")
	}
	// The saved config declares this package's Llama-3 template, which
	// loads back as Llama-3.
	var cfg bytes.Buffer
	if err := tok.WriteConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.String(), "{% generation %}") || !strings.Contains(cfg.String(), `"bos_token": "<|begin_of_text|>"`) {
		t.Errorf("saved config lacks the template or bos: %.300s", cfg.String())
	}
	back := *tok
	if err := back.ReadConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if back.Chat().Format() != Llama3 {
		t.Errorf("saved Llama-3 config loads as %v", back.Chat().Format())
	}
	prompt := c.EncodePrompt(threeTurns[:2])
	if got := tok.Decode(prompt); !strings.HasSuffix(got, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") {
		t.Errorf("EncodePrompt decodes to %q", got)
	}
}

// TestChatGPT2 uses ChatML on a tokenizer without its markers: they are
// encoded as text and the mask still covers the assistant's closing
// marker.
func TestChatGPT2(t *testing.T) {
	tok := refTokenizers(t)["gpt2"]
	ids, mask := tok.Chat().Encode(threeTurns)
	in, _ := maskedText(tok, ids, mask)
	if want := " 2 + 2 = 4.\n\nAnything else? 😊 <|im_end|>"; in != want {
		t.Errorf("masked text %q, want %q", in, want)
	}
}

func TestDetectChatFormat(t *testing.T) {
	for jinja, want := range map[string]ChatFormat{
		jinjaChatML: ChatML,
		jinjaLlama3: Llama3,
		"{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{{ m.content }}<|eot_id|>{% endfor %}": Llama3,
	} {
		if got, ok := DetectChatFormat(jinja); !ok || got != want {
			t.Errorf("DetectChatFormat(%.40q) = %v, %v", jinja, got, ok)
		}
	}
	if _, ok := DetectChatFormat("{{ messages }}"); ok {
		t.Error("an unknown template was recognised")
	}
}

// chatCase is one rendering of a conversation by Go, compared with
// transformers' apply_chat_template in testdata/chat_hf.json.
type chatCase struct {
	Text    string `json:"text"`
	TextGen string `json:"text_gen"`
	IDs     []int  `json:"ids"`
	Mask    []int  `json:"mask"`
}

// chatSetups are the tokenizer and template pairs that golden.py runs
// through transformers: the key names the tokenizer and the template
// ("own" is the template of the tokenizer's own config).
var chatSetups = []struct {
	key, tok string
	format   ChatFormat
}{
	{"trained/own", "trained", ChatML},
	{"qwen3/chatml", "qwen3", ChatML},
	{"llama3/llama3", "llama3", Llama3},
	{"llama3/own", "llama3", Llama3},
}

// TestChatCasesFile keeps testdata/chat_cases.json (the input of
// golden.py's chat part) in step with this file; -update rewrites it.
func TestChatCasesFile(t *testing.T) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	err := enc.Encode(map[string]any{
		"conversations": chatConversations,
		"templates":     map[string]string{"chatml": jinjaChatML, "llama3": jinjaLlama3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/chat_cases.json", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/chat_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("testdata/chat_cases.json is stale (go test -update rewrites it; then rerun golden.py)")
	}
}

// TestChatHF compares rendering, ids and the assistant mask with
// transformers' apply_chat_template (return_assistant_tokens_mask) on
// this package's Jinja templates, and the rendering with the Llama-3
// tokenizer's own template.
func TestChatHF(t *testing.T) {
	data, err := os.ReadFile("testdata/chat_hf.json")
	if err != nil {
		t.Fatal(err) // a committed golden (testdata/SHA256SUMS)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	hf := map[string][]chatCase{}
	for _, s := range chatSetups {
		var cases []chatCase
		if json.Unmarshal(raw[s.key], &cases) == nil {
			hf[s.key] = cases
		}
	}
	toks := refTokenizers(t)
	toks = map[string]*Tokenizer{"qwen3": toks["qwen3"], "llama3": toks["llama3"], "trained": trainedTokenizer(t)}
	for _, s := range chatSetups {
		got, ok := hf[s.key]
		if !ok || len(got) != len(chatConversations) {
			t.Errorf("%s: missing in chat_hf.json", s.key)
			continue
		}
		tok := toks[s.tok]
		c := newChatTemplate(tok, s.format)
		for i, conv := range chatConversations {
			h := got[i]
			if s.key == "llama3/own" {
				// Meta's original Llama-3 template always ends with the
				// assistant header.
				if want := c.Render(conv, true); h.TextGen != want {
					t.Errorf("%s conversation %d: transformers renders\n%q\nGo\n%q", s.key, i, h.TextGen, want)
				}
				continue
			}
			if want := c.Render(conv, false); h.Text != want {
				t.Errorf("%s conversation %d: transformers renders\n%q\nGo\n%q", s.key, i, h.Text, want)
			}
			if want := c.Render(conv, true); h.TextGen != want {
				t.Errorf("%s conversation %d (generation prompt): transformers renders\n%q\nGo\n%q", s.key, i, h.TextGen, want)
			}
			ids, mask := c.Encode(conv)
			if !slices.Equal(ids, h.IDs) {
				t.Errorf("%s conversation %d: ids\n got %v\nwant %v", s.key, i, ids, h.IDs)
			}
			m := make([]int, len(mask))
			for j, b := range mask {
				if b {
					m[j] = 1
				}
			}
			if !slices.Equal(m, h.Mask) {
				t.Errorf("%s conversation %d: mask\n got %v\nwant %v", s.key, i, m, h.Mask)
			}
		}
	}
}
