package tokenizer

import (
	"strings"
	"unicode"

	"github.com/sieve-data/sieve/datasets"
)

// ChatFormat names a chat template.
type ChatFormat int

const (
	// ChatML renders each message as
	// <|im_start|>role\ncontent<|im_end|>\n (Qwen, many others); the
	// generation prompt is <|im_start|>assistant\n. The end of an
	// assistant turn is <|im_end|>.
	ChatML ChatFormat = iota
	// Llama3 renders <|begin_of_text|> once, then each message as
	// <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>, with
	// the content trimmed of surrounding whitespace; the generation
	// prompt is <|start_header_id|>assistant<|end_header_id|>\n\n. The
	// end of an assistant turn is <|eot_id|>.
	Llama3
)

func (f ChatFormat) String() string {
	switch f {
	case ChatML:
		return "chatml"
	case Llama3:
		return "llama3"
	}
	return "unknown"
}

// DetectChatFormat recognises a Jinja chat template by its markers:
// <|start_header_id|>, <|end_header_id|> and <|eot_id|> make it Llama3;
// <|im_start|> and <|im_end|> make it ChatML. ok is false for anything
// else (including an empty template).
//
// Only the message layout is taken from the template: features some
// templates add on top (Llama 3.1's system date header, tool calls,
// Qwen3's <think> block on the last assistant turn) are not rendered.
func DetectChatFormat(jinja string) (ChatFormat, bool) {
	has := func(markers ...string) bool {
		for _, m := range markers {
			if !strings.Contains(jinja, m) {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		return Llama3, true
	case has("<|im_start|>", "<|im_end|>"):
		return ChatML, true
	}
	return ChatML, false
}

// The Jinja source of each format, as written to tokenizer_config.json.
// The assistant part of each turn is wrapped in {% generation %} so that
// transformers' apply_chat_template(return_assistant_tokens_mask=True)
// marks the same tokens as ChatTemplate.Encode.
const (
	jinjaChatML = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}` +
		`{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}` +
		`{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}` +
		`{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`
	jinjaLlama3 = `{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}` +
		`{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}` +
		`{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}` +
		`{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`
)

// ChatTemplate renders conversations for a Tokenizer. Get it with
// Tokenizer.Chat.
type ChatTemplate struct {
	tok    *Tokenizer
	format ChatFormat
}

func newChatTemplate(t *Tokenizer, f ChatFormat) *ChatTemplate {
	return &ChatTemplate{tok: t, format: f}
}

// Chat returns the tokenizer's chat template: the one its
// tokenizer_config.json declares when that is ChatML or Llama-3, else
// ChatML.
func (t *Tokenizer) Chat() *ChatTemplate { return t.chat }

// SetChatFormat selects the chat template. Like ReadConfig, it must not
// run concurrently with encoding.
func (t *Tokenizer) SetChatFormat(f ChatFormat) {
	t.chat = newChatTemplate(t, f)
}

// Format returns the template's format.
func (c *ChatTemplate) Format() ChatFormat { return c.format }

// Jinja returns this package's Jinja source of the template, the one
// WriteConfig saves: it renders exactly as Render does (a loaded
// template, such as Qwen3's with its <think> block, may not), with
// {% generation %} around each assistant part.
func (c *ChatTemplate) Jinja() string {
	if c.format == Llama3 {
		return jinjaLlama3
	}
	return jinjaChatML
}

// EndOfTurn returns the token that closes a turn: <|im_end|> or
// <|eot_id|>. Generation stops at it.
func (c *ChatTemplate) EndOfTurn() string {
	if c.format == Llama3 {
		return "<|eot_id|>"
	}
	return "<|im_end|>"
}

// bos returns the text that starts a Llama-3 conversation.
func (c *ChatTemplate) bos() string {
	if c.tok.bos != "" {
		return c.tok.bos
	}
	return "<|begin_of_text|>"
}

// pyStrip trims what Python's str.strip() (Jinja's trim filter) trims:
// White_Space and the separators U+001C..U+001F.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}

// render writes the conversation. For each assistant message it calls
// mark with the byte range of the content and end-of-turn marker.
func (c *ChatTemplate) render(messages []datasets.Message, addGenerationPrompt bool, content func(string) string, mark func(a, b int)) string {
	var sb strings.Builder
	switch c.format {
	case Llama3:
		sb.WriteString(c.bos())
		for _, m := range messages {
			sb.WriteString("<|start_header_id|>")
			sb.WriteString(content(m.Role))
			sb.WriteString("<|end_header_id|>\n\n")
			a := sb.Len()
			sb.WriteString(content(pyStrip(m.Content)))
			sb.WriteString("<|eot_id|>")
			if m.Role == "assistant" && mark != nil {
				mark(a, sb.Len())
			}
		}
		if addGenerationPrompt {
			sb.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
		}
	default:
		for _, m := range messages {
			sb.WriteString("<|im_start|>")
			sb.WriteString(content(m.Role))
			sb.WriteString("\n")
			a := sb.Len()
			sb.WriteString(content(m.Content))
			sb.WriteString("<|im_end|>")
			if m.Role == "assistant" && mark != nil {
				mark(a, sb.Len())
			}
			sb.WriteString("\n")
		}
		if addGenerationPrompt {
			sb.WriteString("<|im_start|>assistant\n")
		}
	}
	return sb.String()
}

// Render returns the text of the conversation, as transformers'
// apply_chat_template(messages, tokenize=False,
// add_generation_prompt=addGenerationPrompt) gives it for this package's
// templates.
func (c *ChatTemplate) Render(messages []datasets.Message, addGenerationPrompt bool) string {
	return c.render(messages, addGenerationPrompt, func(s string) string { return s }, nil)
}

// Encode renders the conversation and returns its token ids with the
// assistant-only loss mask: lossMask[i] is true when token i holds a byte
// of an assistant message's content or of the end-of-turn marker that
// closes it, and false on system, user and other turns, on role headers
// and on the beginning-of-text token. The ids are those of
// Tokenizer.Encode(Render(messages, false)): special tokens are matched
// in the contents too, as in transformers. A token that straddles a
// header and an assistant content (a newline run across the boundary,
// say) counts as assistant, as in transformers'
// return_assistant_tokens_mask.
func (c *ChatTemplate) Encode(messages []datasets.Message) (ids []int, lossMask []bool) {
	var marks [][2]int
	text := c.render(messages, false, c.tok.normalize, func(a, b int) { marks = append(marks, [2]int{a, b}) })
	var spans [][2]int
	ids = c.tok.encode(text, true, &spans)
	lossMask = make([]bool, len(ids))
	k := 0
	for i, sp := range spans {
		for k < len(marks) && marks[k][1] <= sp[0] {
			k++
		}
		if k == len(marks) {
			break
		}
		m := marks[k]
		if sp[0] == sp[1] {
			lossMask[i] = sp[0] >= m[0] && sp[0] < m[1]
		} else {
			lossMask[i] = sp[0] < m[1] && sp[1] > m[0]
		}
	}
	return ids, lossMask
}

// EncodePrompt returns the ids of the conversation followed by the
// generation prompt (the header of an assistant turn), ready for
// sampling the reply.
func (c *ChatTemplate) EncodePrompt(messages []datasets.Message) []int {
	return c.tok.Encode(c.render(messages, true, c.tok.normalize, nil))
}
