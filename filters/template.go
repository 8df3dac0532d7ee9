package filters

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// templateTokens are chat-template special tokens and markers that never
// belong in an answer's prose (ChatML, Llama 2 and 3, Gemma, Zephyr,
// Alpaca, Vicuna). `<|…|>` tokens are found by their shape as well.
var templateTokens = []string{
	"</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<start_of_turn>", "<end_of_turn>",
	"<eos>", "<bos>", "<unk>", "<pad>", "<noinput>", "<nooutput>",
}

// templateRoleLines are line starts that open a new turn in Alpaca and
// Vicuna style transcripts.
var templateRoleLines = []string{"### Human:", "### Assistant:", "### Instruction:", "### Response:", "### Input:", "### Output:", "### User:", "### System:"}

// plainRoleLines open a new turn in plain transcripts. They count only
// when the prompt does not itself use them or ask for a dialogue.
var plainRoleLines = []string{"Human:", "User:", "USER:", "ASSISTANT:", "Assistant:", "HUMAN:"}

// dialogueWords in a prompt make plain role lines expected.
var dialogueWords = []string{"dialog", "conversation", "chat", "script", "role", "interview", "transcript", "user:", "human:", "assistant:"}

// templateFilter drops answers holding leftover chat-template tokens or a
// runaway next turn (template.leftover_tokens).
type templateFilter struct{}

func (templateFilter) Name() string { return FilterTemplate }

func (templateFilter) Check(s *datasets.Sample) Verdict {
	sc := getScratch()
	defer putScratch(sc)
	prompt := ""
	for i, m := range s.Messages {
		switch m.Role {
		case datasets.RoleUser:
			prompt = m.Content
			continue
		case datasets.RoleAssistant:
		default:
			continue
		}
		text := proseText(m.Content, sc)
		if tok, at, ok := findTemplateToken(text, prompt); ok {
			return drop("template.leftover_tokens", "chat-template token in the answer", 1, 0, fmt.Sprintf("turn %d: %q at %s", i, tok, where(text, at)))
		}
	}
	return Verdict{Keep: true}
}

// where describes byte offset at of text as "char N of M".
func where(text string, at int) string {
	return fmt.Sprintf("char %d of %d", utf8.RuneCountInString(text[:at]), utf8.RuneCountInString(text))
}

// findTemplateToken returns the first template token of text and its
// byte offset.
func findTemplateToken(text, prompt string) (string, int, bool) {
	best, bestAt := "", -1
	note := func(tok string, at int) {
		if at >= 0 && (bestAt < 0 || at < bestAt) {
			best, bestAt = tok, at
		}
	}
	if strings.IndexByte(text, '<') >= 0 || strings.IndexByte(text, '[') >= 0 {
		for _, t := range templateTokens {
			note(t, strings.Index(text, t))
		}
		// <|name|> tokens.
		for i := 0; ; {
			j := strings.Index(text[i:], "<|")
			if j < 0 {
				break
			}
			j += i
			k := strings.Index(text[j+2:min(len(text), j+40)], "|>")
			if k > 0 && isTokenName(text[j+2:j+2+k]) {
				note(text[j:j+2+k+2], j)
				break
			}
			i = j + 2
		}
	}
	plainOK := true
	for _, w := range dialogueWords {
		if promptHasWord(prompt, w) {
			plainOK = false
			break
		}
	}
	for i := 0; i < len(text); {
		line, next := nextLine(text, i)
		l := strings.TrimLeft(line, " *")
		if strings.HasPrefix(l, "###") {
			for _, t := range templateRoleLines {
				if strings.HasPrefix(l, t) {
					note(t, i)
				}
			}
		} else if plainOK && i > 0 {
			for _, t := range plainRoleLines {
				if strings.HasPrefix(l, t) {
					note(t, i)
				}
			}
		}
		if bestAt >= 0 && bestAt <= i {
			break
		}
		i = next
	}
	return best, bestAt, bestAt >= 0
}

// promptHasWord reports whether s contains the lower-case ASCII word w,
// ignoring ASCII case.
func promptHasWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && strings.EqualFold(s[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

func isTokenName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z') && c != '_' && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// mojibakeFilter drops answers with UTF-8 text decoded as Windows-1252 or
// Latin-1 (mojibake.sequences): runs of characters whose single-byte
// encodings form a valid multi-byte UTF-8 sequence, such as "â€™" for ’
// or "Ã©" for é.
type mojibakeFilter struct{ min int }

func (f *mojibakeFilter) Name() string { return FilterMojibake }

func (f *mojibakeFilter) Check(s *datasets.Sample) Verdict {
	for i, m := range s.Messages {
		if m.Role != datasets.RoleAssistant {
			continue
		}
		n, first, fixed := countMojibake(m.Content)
		if n >= f.min {
			return drop("mojibake.sequences", "UTF-8 read as Windows-1252", float64(n), float64(f.min), fmt.Sprintf("turn %d: %q (%q) and %d more", i, first, fixed, n-1))
		}
	}
	return Verdict{Keep: true}
}

// CountMojibake returns the number of mojibake sequences in text.
func CountMojibake(text string) int {
	n, _, _ := countMojibake(text)
	return n
}

// countMojibake counts the mojibake sequences of s and returns the first
// one with the character it stands for.
func countMojibake(s string) (n int, first, fixed string) {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		b0, ok := cp1252Byte(r)
		if !ok || b0 < 0xc2 || b0 > 0xf4 {
			i += size
			continue
		}
		need := 1
		switch {
		case b0 >= 0xf0:
			need = 3
		case b0 >= 0xe0:
			need = 2
		}
		var buf [4]byte
		buf[0] = b0
		j := i + size
		good := true
		for k := 1; k <= need; k++ {
			if j >= len(s) {
				good = false
				break
			}
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			b, ok := cp1252Byte(r2)
			if !ok || b < 0x80 || b > 0xbf {
				good = false
				break
			}
			buf[k] = b
			j += n2
		}
		if good && utf8.Valid(buf[:need+1]) {
			if n == 0 {
				first, fixed = s[i:j], string(buf[:need+1])
			}
			n++
			i = j
			continue
		}
		i += size
	}
	return n, first, fixed
}

// cp1252Byte returns the Windows-1252 byte of r (Latin-1 for the five
// bytes Windows-1252 leaves undefined, as decoders that fall back do).
func cp1252Byte(r rune) (byte, bool) {
	if r < 0x100 {
		return byte(r), true
	}
	switch r {
	case '€':
		return 0x80, true
	case '‚':
		return 0x82, true
	case 'ƒ':
		return 0x83, true
	case '„':
		return 0x84, true
	case '…':
		return 0x85, true
	case '†':
		return 0x86, true
	case '‡':
		return 0x87, true
	case 'ˆ':
		return 0x88, true
	case '‰':
		return 0x89, true
	case 'Š':
		return 0x8a, true
	case '‹':
		return 0x8b, true
	case 'Œ':
		return 0x8c, true
	case 'Ž':
		return 0x8e, true
	case '‘':
		return 0x91, true
	case '’':
		return 0x92, true
	case '“':
		return 0x93, true
	case '”':
		return 0x94, true
	case '•':
		return 0x95, true
	case '–':
		return 0x96, true
	case '—':
		return 0x97, true
	case '˜':
		return 0x98, true
	case '™':
		return 0x99, true
	case 'š':
		return 0x9a, true
	case '›':
		return 0x9b, true
	case 'œ':
		return 0x9c, true
	case 'ž':
		return 0x9e, true
	case 'Ÿ':
		return 0x9f, true
	}
	return 0, false
}
