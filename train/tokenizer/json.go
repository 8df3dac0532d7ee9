package tokenizer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// fileJSON is the part of tokenizer.json that this package reads.
type fileJSON struct {
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         modelJSON       `json:"model"`
}

type modelJSON struct {
	Type                    string         `json:"type"`
	Dropout                 *float64       `json:"dropout"`
	UnkToken                *string        `json:"unk_token"`
	ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string        `json:"end_of_word_suffix"`
	FuseUnk                 bool           `json:"fuse_unk"`
	ByteFallback            bool           `json:"byte_fallback"`
	IgnoreMerges            bool           `json:"ignore_merges"`
	Vocab                   map[string]int `json:"vocab"`
	Merges                  []mergeJSON    `json:"merges"`
}

// mergeJSON reads a merge in either spelling: "a b" (tokenizers before
// 0.20) or ["a", "b"].
type mergeJSON [2]string

func (m *mergeJSON) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return fmt.Errorf("merge %q is not two tokens separated by one space", s)
		}
		*m = mergeJSON{a, b}
		return nil
	}
	var pair []string
	if err := json.Unmarshal(data, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("merge %s is not a pair", data)
	}
	*m = mergeJSON{pair[0], pair[1]}
	return nil
}

// typed is the "type" tag of a component.
type typed struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// Read parses a Hugging Face tokenizer.json.
func Read(r io.Reader) (*Tokenizer, error) {
	var f fileJSON
	dec := json.NewDecoder(bufio.NewReader(r))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tokenizer: reading tokenizer.json: %w", err)
	}
	return fromFile(&f)
}

// Load reads a tokenizer.json file; a name ending in .gz is gunzipped.
// A tokenizer_config.json beside it is not read: see LoadDir.
func Load(path string) (*Tokenizer, error) {
	rc, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	t, err := Read(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LoadDir reads dir/tokenizer.json and, when present,
// dir/tokenizer_config.json (each may also be gzipped, with .gz added to
// its name), which sets the chat template and the bos, eos and pad
// tokens.
func LoadDir(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		path += ".gz"
	}
	t, err := Load(path)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"tokenizer_config.json", "tokenizer_config.json.gz"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		rc, err := openMaybeGzip(p)
		if err != nil {
			return nil, err
		}
		err = t.ReadConfig(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		break
	}
	return t, nil
}

type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzipFile) Close() error {
	g.Reader.Close()
	return g.f.Close()
}

func openMaybeGzip(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return gzipFile{zr, f}, nil
}

func fromFile(f *fileJSON) (*Tokenizer, error) {
	m := f.Model
	if m.Type != "" && m.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: model type %q is not BPE", m.Type)
	}
	if m.Vocab == nil {
		return nil, errors.New("tokenizer: model has no vocab")
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, errors.New("tokenizer: BPE dropout is not supported")
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, errors.New("tokenizer: continuing_subword_prefix is not supported")
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errors.New("tokenizer: end_of_word_suffix is not supported")
	}
	if m.ByteFallback {
		return nil, errors.New("tokenizer: byte_fallback is not supported (not a byte-level BPE)")
	}
	unk := ""
	if m.UnkToken != nil {
		unk = *m.UnkToken
	}
	merges := make([][2]string, len(m.Merges))
	for i, p := range m.Merges {
		merges[i] = p
	}
	model, err := newBPEModel(m.Vocab, merges, unk, m.IgnoreMerges)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{
		model:      model,
		modelExtra: modelOptions{unk: m.UnkToken, fuseUnk: m.FuseUnk, byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges},
	}
	// The normalizer first: normalized added tokens are matched on their
	// normalized content.
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := t.setAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := t.setPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if err := t.setDecoder(f.Decoder); err != nil {
		return nil, err
	}
	t.chat = newChatTemplate(t, ChatML)
	return t, nil
}

func (t *Tokenizer) setAdded(tokens []AddedToken) error {
	t.added = nil
	t.addedByID = map[int]*AddedToken{}
	for i := range tokens {
		a := tokens[i]
		if a.ID < 0 {
			return fmt.Errorf("tokenizer: added token %q has invalid id %d", a.Content, a.ID)
		}
		t.added = append(t.added, &a)
		t.addedByID[a.ID] = &a
	}
	var raw, normed []*AddedToken
	for _, a := range t.added {
		if a.Normalized {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawAdded = newAddedMatcher(raw, func(a *AddedToken) string { return a.Content })
	t.normAdded = newAddedMatcher(normed, func(a *AddedToken) string { return t.normalize(a.Content) })
	return nil
}

func (t *Tokenizer) setNormalizer(raw json.RawMessage) error {
	t.normalizerJSON = nil
	t.normalizers = nil
	if isNull(raw) {
		return nil
	}
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		var n struct {
			Type        string            `json:"type"`
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("tokenizer: normalizer: %w", err)
		}
		switch n.Type {
		case "NFC":
			t.normalizers = append(t.normalizers, norm.NFC)
		case "NFD":
			t.normalizers = append(t.normalizers, norm.NFD)
		case "NFKC":
			t.normalizers = append(t.normalizers, norm.NFKC)
		case "NFKD":
			t.normalizers = append(t.normalizers, norm.NFKD)
		case "Sequence":
			for _, sub := range n.Normalizers {
				if err := walk(sub); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("tokenizer: normalizer %q is not supported", n.Type)
		}
		return nil
	}
	if err := walk(raw); err != nil {
		return err
	}
	t.normalizerJSON = append([]byte(nil), raw...)
	return nil
}

func (t *Tokenizer) setPreTokenizer(raw json.RawMessage) error {
	t.pre = nil
	byteLevel := false
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		var p struct {
			Type           string            `json:"type"`
			PreTokenizers  []json.RawMessage `json:"pretokenizers"`
			AddPrefixSpace bool              `json:"add_prefix_space"`
			UseRegex       *bool             `json:"use_regex"`
			Pattern        struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("tokenizer: pre_tokenizer: %w", err)
		}
		switch p.Type {
		case "Sequence":
			for _, sub := range p.PreTokenizers {
				if err := walk(sub); err != nil {
					return err
				}
			}
		case "ByteLevel":
			byteLevel = true
			useRegex := p.UseRegex == nil || *p.UseRegex
			if p.AddPrefixSpace || useRegex {
				t.pre = append(t.pre, &byteLevelStep{addPrefixSpace: p.AddPrefixSpace, useRegex: useRegex})
			}
		case "Split":
			var m matcher
			switch {
			case p.Pattern.Regex != nil:
				var err error
				if m, err = matcherFor(*p.Pattern.Regex); err != nil {
					return err
				}
			case p.Pattern.String != nil:
				m = literalMatcher{lit: *p.Pattern.String}
			default:
				return errors.New("tokenizer: Split pre-tokenizer without a pattern")
			}
			b, ok := behaviorNames[p.Behavior]
			if !ok {
				return fmt.Errorf("tokenizer: Split behavior %q is not supported", p.Behavior)
			}
			t.pre = append(t.pre, &splitStep{m: m, behavior: b, invert: p.Invert})
		default:
			return fmt.Errorf("tokenizer: pre_tokenizer %q is not supported", p.Type)
		}
		return nil
	}
	if isNull(raw) {
		return errors.New("tokenizer: no pre_tokenizer: not a byte-level BPE")
	}
	if err := walk(raw); err != nil {
		return err
	}
	if !byteLevel {
		return errors.New("tokenizer: the pre_tokenizer has no ByteLevel step: not a byte-level BPE")
	}
	t.preJSON = append([]byte(nil), raw...)
	return nil
}

func (t *Tokenizer) setPostProcessor(raw json.RawMessage) error {
	t.template = nil
	t.postJSON = nil
	if isNull(raw) {
		return nil
	}
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		var p struct {
			Type       string            `json:"type"`
			Processors []json.RawMessage `json:"processors"`
			Single     []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("tokenizer: post_processor: %w", err)
		}
		switch p.Type {
		case "ByteLevel":
		case "Sequence":
			for _, sub := range p.Processors {
				if err := walk(sub); err != nil {
					return err
				}
			}
		case "TemplateProcessing":
			tmpl := []int{}
			for _, piece := range p.Single {
				switch {
				case piece.Sequence != nil:
					tmpl = append(tmpl, -1)
				case piece.SpecialToken != nil:
					st, ok := p.SpecialTokens[piece.SpecialToken.ID]
					if !ok {
						return fmt.Errorf("tokenizer: post_processor: special token %q not defined", piece.SpecialToken.ID)
					}
					tmpl = append(tmpl, st.IDs...)
				}
			}
			t.template = tmpl
		default:
			return fmt.Errorf("tokenizer: post_processor %q is not supported", p.Type)
		}
		return nil
	}
	if err := walk(raw); err != nil {
		return err
	}
	t.postJSON = append([]byte(nil), raw...)
	return nil
}

func (t *Tokenizer) setDecoder(raw json.RawMessage) error {
	t.decoderJSON = nil
	if isNull(raw) {
		return nil
	}
	var d typed
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("tokenizer: decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("tokenizer: decoder %q is not supported", d.Type)
	}
	t.decoderJSON = append([]byte(nil), raw...)
	return nil
}

// jsonString returns s as a JSON string, without HTML escaping.
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

func rawOrNull(b []byte) string {
	if len(b) == 0 {
		return "null"
	}
	return string(b)
}

// WriteJSON writes the tokenizer as a Hugging Face tokenizer.json: the
// vocabulary in id order, merges as pairs, and the normalizer,
// pre-tokenizer, post-processor and decoder as they were loaded (or as
// the trainer made them).
func (t *Tokenizer) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, a := range t.added {
		if i > 0 {
			p(",")
		}
		p("\n    {\"id\": %d, \"content\": %s, \"single_word\": %t, \"lstrip\": %t, \"rstrip\": %t, \"normalized\": %t, \"special\": %t}",
			a.ID, jsonString(a.Content), a.SingleWord, a.LStrip, a.RStrip, a.Normalized, a.Special)
	}
	if len(t.added) > 0 {
		p("\n  ")
	}
	p("],\n")
	p("  \"normalizer\": %s,\n", rawOrNull(t.normalizerJSON))
	p("  \"pre_tokenizer\": %s,\n", rawOrNull(t.preJSON))
	p("  \"post_processor\": %s,\n", rawOrNull(t.postJSON))
	p("  \"decoder\": %s,\n", rawOrNull(t.decoderJSON))
	unk := "null"
	if t.modelExtra.unk != nil {
		unk = jsonString(*t.modelExtra.unk)
	}
	p("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": %s,\n", unk)
	p("    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n")
	p("    \"fuse_unk\": %t,\n    \"byte_fallback\": %t,\n    \"ignore_merges\": %t,\n",
		t.modelExtra.fuseUnk, t.modelExtra.byteFallback, t.modelExtra.ignoreMerges)
	p("    \"vocab\": {")
	first := true
	for id, tok := range t.model.tokens {
		if tok == "" {
			continue
		}
		if !first {
			p(",")
		}
		first = false
		p("\n      %s: %d", jsonString(tok), id)
	}
	p("\n    },\n    \"merges\": [")
	for i, pr := range t.model.pairs {
		if i > 0 {
			p(",")
		}
		p("\n      [%s, %s]", jsonString(t.model.tokens[pr[0]]), jsonString(t.model.tokens[pr[1]]))
	}
	p("\n    ]\n  }\n}\n")
	return bw.Flush()
}

// configJSON is the part of tokenizer_config.json that this package
// reads.
type configJSON struct {
	ChatTemplate   json.RawMessage `json:"chat_template"`
	BOS            json.RawMessage `json:"bos_token"`
	EOS            json.RawMessage `json:"eos_token"`
	Pad            json.RawMessage `json:"pad_token"`
	Unk            json.RawMessage `json:"unk_token"`
	ModelMaxLength *float64        `json:"model_max_length"`
}

// tokenName reads a token given as a string or as {"content": ...}.
func tokenName(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

// ReadConfig applies a tokenizer_config.json: the bos, eos, pad and unk
// tokens and the chat template. The template is recognised by its
// markers (see DetectChatFormat); a template that is neither ChatML nor
// Llama-3 leaves the default, ChatML. It must not run concurrently with
// encoding.
func (t *Tokenizer) ReadConfig(r io.Reader) error {
	var c configJSON
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return fmt.Errorf("tokenizer: reading tokenizer_config.json: %w", err)
	}
	t.bos, t.eos, t.pad, t.unk = tokenName(c.BOS), tokenName(c.EOS), tokenName(c.Pad), tokenName(c.Unk)
	if c.ModelMaxLength != nil && *c.ModelMaxLength > 0 && *c.ModelMaxLength < 1<<40 {
		t.maxLength = int(*c.ModelMaxLength)
	}
	jinja := ""
	if !isNull(c.ChatTemplate) {
		var s string
		if err := json.Unmarshal(c.ChatTemplate, &s); err != nil {
			// A list of named templates: take "default", else the first.
			var named []struct {
				Name     string `json:"name"`
				Template string `json:"template"`
			}
			if err := json.Unmarshal(c.ChatTemplate, &named); err != nil {
				return fmt.Errorf("tokenizer: chat_template: %w", err)
			}
			for i, n := range named {
				if i == 0 || n.Name == "default" {
					s = n.Template
				}
			}
		}
		jinja = s
	}
	format, ok := DetectChatFormat(jinja)
	if !ok {
		format = ChatML
	}
	t.chat = newChatTemplate(t, format)
	return nil
}

// WriteConfig writes a tokenizer_config.json for transformers: the
// tokenizer class, the bos, eos, pad and unk tokens, the added tokens and
// the Jinja source of the chat template (ChatTemplate.Jinja), which
// renders as ChatTemplate.Render and, through its {% generation %}
// markers, gives transformers' return_assistant_tokens_mask the mask of
// ChatTemplate.Encode.
func (t *Tokenizer) WriteConfig(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	name := func(s string) string {
		if s == "" {
			return "null"
		}
		return jsonString(s)
	}
	p("{\n  \"added_tokens_decoder\": {")
	for i, a := range t.added {
		if i > 0 {
			p(",")
		}
		p("\n    \"%d\": {\"content\": %s, \"lstrip\": %t, \"normalized\": %t, \"rstrip\": %t, \"single_word\": %t, \"special\": %t}",
			a.ID, jsonString(a.Content), a.LStrip, a.Normalized, a.RStrip, a.SingleWord, a.Special)
	}
	if len(t.added) > 0 {
		p("\n  ")
	}
	p("},\n")
	p("  \"bos_token\": %s,\n", name(t.bos))
	p("  \"eos_token\": %s,\n", name(t.eos))
	p("  \"pad_token\": %s,\n", name(t.pad))
	p("  \"unk_token\": %s,\n", name(t.unk))
	p("  \"chat_template\": %s,\n", jsonString(t.chat.Jinja()))
	p("  \"clean_up_tokenization_spaces\": false,\n")
	maxLen := t.maxLength
	if maxLen == 0 {
		maxLen = 1 << 20
	}
	p("  \"model_max_length\": %d,\n", maxLen)
	p("  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n")
	return bw.Flush()
}

// SaveDir writes dir/tokenizer.json and dir/tokenizer_config.json, the
// files transformers' AutoTokenizer.from_pretrained(dir) reads.
func (t *Tokenizer) SaveDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	write := func(name string, fn func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("tokenizer: writing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("tokenizer: writing %s: %w", path, err)
		}
		return nil
	}
	if err := write("tokenizer.json", t.WriteJSON); err != nil {
		return err
	}
	return write("tokenizer_config.json", t.WriteConfig)
}
