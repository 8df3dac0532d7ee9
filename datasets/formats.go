package datasets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Format names an open instruction-data record layout.
type Format string

// The record formats sieve reads. FormatAuto detects one per file.
const (
	FormatAuto             Format = "auto"
	FormatAlpaca           Format = "alpaca"            // instruction, input, output[, system, history]
	FormatShareGPT         Format = "sharegpt"          // conversations: [{from, value}]
	FormatOpenAI           Format = "openai"            // messages: [{role, content}] (OpenAI / TRL conversational)
	FormatPromptCompletion Format = "prompt_completion" // prompt, completion: strings or message lists (TRL)
	FormatDolly            Format = "dolly"             // instruction, context, response, category
	FormatText             Format = "text"              // text
)

// Formats lists every concrete format, in detection order.
var Formats = []Format{FormatOpenAI, FormatShareGPT, FormatPromptCompletion, FormatAlpaca, FormatDolly, FormatText}

// ParseFormat accepts a format name as written in a recipe. Common aliases
// (messages, chatml, conversational, vicuna, databricks-dolly, …) are
// accepted.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "alpaca":
		return FormatAlpaca, nil
	case "sharegpt", "vicuna":
		return FormatShareGPT, nil
	case "openai", "messages", "chatml", "conversational":
		return FormatOpenAI, nil
	case "prompt_completion", "prompt-completion", "completion":
		return FormatPromptCompletion, nil
	case "dolly", "databricks-dolly":
		return FormatDolly, nil
	case "text", "plain", "plain_text":
		return FormatText, nil
	}
	names := make([]string, 0, len(Formats)+1)
	names = append(names, string(FormatAuto))
	for _, f := range Formats {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown format %q (want one of %s)", s, strings.Join(names, ", "))
}

// DefaultRoleAliases maps the role spellings found in open datasets onto
// sieve's three roles. Keys are lower case.
var DefaultRoleAliases = map[string]string{
	"system":    RoleSystem,
	"developer": RoleSystem,
	"user":      RoleUser,
	"human":     RoleUser,
	"prompter":  RoleUser,
	"assistant": RoleAssistant,
	"gpt":       RoleAssistant,
	"chatgpt":   RoleAssistant,
	"bot":       RoleAssistant,
	"model":     RoleAssistant,
}

// Decoder turns one raw JSON record of a given format into messages.
// The zero value is not usable: Format must be a concrete format.
type Decoder struct {
	Format Format
	// Roles maps extra role spellings (lower case) to system, user or
	// assistant; they take precedence over DefaultRoleAliases.
	Roles map[string]string
	// TextField is the field holding plain text for FormatText; "text"
	// when empty.
	TextField string
}

// DecodeError is a record that cannot be turned into a conversation. The
// reason is short and stable, so that dead letters can be counted by it.
type DecodeError struct {
	Reason string // e.g. "missing field", "unknown role", "bad json"
	Detail string
}

func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail
}

func decErr(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// wire is the union of every supported format's fields. Polymorphic fields
// stay raw.
type wire struct {
	// alpaca / dolly
	Instruction *string    `json:"instruction"`
	Input       *string    `json:"input"`
	Output      *string    `json:"output"`
	System      *string    `json:"system"`
	History     [][]string `json:"history"`
	Context     *string    `json:"context"`
	Response    *string    `json:"response"`
	Category    *string    `json:"category"`
	// sharegpt / openai
	Conversations json.RawMessage `json:"conversations"`
	Messages      json.RawMessage `json:"messages"`
	// prompt / completion
	Prompt     json.RawMessage `json:"prompt"`
	Completion json.RawMessage `json:"completion"`
}

// turn is a chat turn in either the OpenAI (role/content) or the ShareGPT
// (from/value) spelling.
type turn struct {
	Role    *string         `json:"role"`
	Content json.RawMessage `json:"content"`
	From    *string         `json:"from"`
	Value   json.RawMessage `json:"value"`
}

// DetectFormat guesses the format of one JSON object record from its keys.
func DetectFormat(raw []byte) (Format, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return "", decErr("bad json", "%v", err)
	}
	has := func(k string) bool { v, ok := keys[k]; return ok && !bytes.Equal(v, []byte("null")) }
	switch {
	case has("conversations"):
		return FormatShareGPT, nil
	case has("messages"):
		if bytes.Contains(keys["messages"], []byte(`"from"`)) && !bytes.Contains(keys["messages"], []byte(`"role"`)) {
			return FormatShareGPT, nil
		}
		return FormatOpenAI, nil
	case has("prompt") && has("completion"):
		return FormatPromptCompletion, nil
	case has("instruction") && has("output"):
		return FormatAlpaca, nil
	case has("instruction") && has("response"):
		return FormatDolly, nil
	case has("text"):
		return FormatText, nil
	}
	ks := make([]string, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return "", decErr("unknown format", "no known format has fields [%s]", strings.Join(ks, ", "))
}

// Decode turns one raw record into a normalised conversation: roles mapped
// to system/user/assistant, contents with CRLF turned into LF and
// surrounding whitespace trimmed. It returns the record's extra metadata as
// a JSON object (or "") for fields worth keeping, such as dolly's category.
func (d *Decoder) Decode(raw []byte) (msgs []Message, meta string, err error) {
	if d.Format == FormatText {
		field := d.TextField
		if field == "" {
			field = "text"
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, "", decErr("bad json", "%v", err)
		}
		v, ok := obj[field]
		if !ok {
			return nil, "", decErr("missing field", "%s", field)
		}
		text, err := contentString(v)
		if err != nil {
			return nil, "", decErr("bad field", "%s: %v", field, err)
		}
		return finish([]Message{{Role: RoleAssistant, Content: text}}), "", nil
	}
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, "", decErr("bad json", "%v", err)
	}
	switch d.Format {
	case FormatAlpaca:
		msgs, err = d.alpaca(&w)
	case FormatDolly:
		msgs, err = d.dolly(&w)
		if err == nil && w.Category != nil && *w.Category != "" {
			b, _ := json.Marshal(map[string]string{"category": *w.Category})
			meta = string(b)
		}
	case FormatShareGPT:
		src := w.Conversations
		if len(src) == 0 {
			src = w.Messages
		}
		if len(src) == 0 {
			return nil, "", decErr("missing field", "conversations")
		}
		msgs, err = d.turns(src, "conversations")
	case FormatOpenAI:
		if len(w.Messages) == 0 {
			return nil, "", decErr("missing field", "messages")
		}
		msgs, err = d.turns(w.Messages, "messages")
	case FormatPromptCompletion:
		msgs, err = d.promptCompletion(&w)
	default:
		return nil, "", fmt.Errorf("decoder: format %q is not concrete", d.Format)
	}
	if err != nil {
		return nil, "", err
	}
	return finish(msgs), meta, nil
}

func (d *Decoder) alpaca(w *wire) ([]Message, error) {
	if w.Instruction == nil {
		return nil, decErr("missing field", "instruction")
	}
	if w.Output == nil {
		return nil, decErr("missing field", "output")
	}
	var msgs []Message
	if w.System != nil && strings.TrimSpace(*w.System) != "" {
		msgs = append(msgs, Message{RoleSystem, *w.System})
	}
	for i, pair := range w.History {
		if len(pair) != 2 {
			return nil, decErr("bad field", "history[%d] has %d items, want [user, assistant]", i, len(pair))
		}
		msgs = append(msgs, Message{RoleUser, pair[0]}, Message{RoleAssistant, pair[1]})
	}
	msgs = append(msgs, Message{RoleUser, joinInput(*w.Instruction, w.Input)}, Message{RoleAssistant, *w.Output})
	return msgs, nil
}

func (d *Decoder) dolly(w *wire) ([]Message, error) {
	if w.Instruction == nil {
		return nil, decErr("missing field", "instruction")
	}
	if w.Response == nil {
		return nil, decErr("missing field", "response")
	}
	return []Message{{RoleUser, joinInput(*w.Instruction, w.Context)}, {RoleAssistant, *w.Response}}, nil
}

// joinInput appends alpaca's input (or dolly's context) to the
// instruction, separated by a blank line, as the original Alpaca template
// does.
func joinInput(instruction string, input *string) string {
	if input == nil || strings.TrimSpace(*input) == "" {
		return instruction
	}
	return strings.TrimSpace(instruction) + "\n\n" + strings.TrimSpace(*input)
}

func (d *Decoder) promptCompletion(w *wire) ([]Message, error) {
	if len(w.Prompt) == 0 || bytes.Equal(w.Prompt, []byte("null")) {
		return nil, decErr("missing field", "prompt")
	}
	if len(w.Completion) == 0 || bytes.Equal(w.Completion, []byte("null")) {
		return nil, decErr("missing field", "completion")
	}
	part := func(raw json.RawMessage, field, role string) ([]Message, error) {
		if s, err := contentString(raw); err == nil {
			return []Message{{role, s}}, nil
		}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
			return d.turns(raw, field)
		}
		return nil, decErr("bad field", "%s is neither a string nor a message list", field)
	}
	p, err := part(w.Prompt, "prompt", RoleUser)
	if err != nil {
		return nil, err
	}
	c, err := part(w.Completion, "completion", RoleAssistant)
	if err != nil {
		return nil, err
	}
	return append(p, c...), nil
}

// turns decodes a list of chat turns in either spelling.
func (d *Decoder) turns(raw json.RawMessage, field string) ([]Message, error) {
	var ts []turn
	if err := json.Unmarshal(raw, &ts); err != nil {
		return nil, decErr("bad field", "%s: %v", field, err)
	}
	if len(ts) == 0 {
		return nil, decErr("empty conversation", "%s is empty", field)
	}
	msgs := make([]Message, 0, len(ts))
	for i, t := range ts {
		var tag string
		var body json.RawMessage
		switch {
		case t.Role != nil:
			tag, body = *t.Role, t.Content
		case t.From != nil:
			tag, body = *t.From, t.Value
		default:
			return nil, decErr("missing field", "%s[%d] has neither role nor from", field, i)
		}
		role, ok := d.role(tag)
		if !ok {
			return nil, decErr("unknown role", "%s[%d]: %q (map it with the source's roles: setting)", field, i, tag)
		}
		if len(body) == 0 || bytes.Equal(body, []byte("null")) {
			return nil, decErr("missing field", "%s[%d] has no content", field, i)
		}
		text, err := contentString(body)
		if err != nil {
			return nil, decErr("bad field", "%s[%d]: %v", field, i, err)
		}
		msgs = append(msgs, Message{role, text})
	}
	return msgs, nil
}

func (d *Decoder) role(tag string) (string, bool) {
	key := strings.ToLower(strings.TrimSpace(tag))
	if r, ok := d.Roles[key]; ok {
		return r, true
	}
	r, ok := DefaultRoleAliases[key]
	return r, ok
}

// contentString accepts a JSON string or an OpenAI content-part list whose
// parts are all text ({"type":"text","text":...}), joined with newlines.
func contentString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	if len(raw) > 0 && raw[0] == '[' {
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf("content is not a string or a list of text parts")
		}
		texts := make([]string, 0, len(parts))
		for i, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return "", fmt.Errorf("content part %d has type %q; only text parts are supported", i, p.Type)
			}
			texts = append(texts, *p.Text)
		}
		return strings.Join(texts, "\n"), nil
	}
	return "", fmt.Errorf("content is not a string")
}

// finish normalises contents: CRLF and CR become LF and surrounding
// whitespace is trimmed.
func finish(msgs []Message) []Message {
	for i := range msgs {
		c := msgs[i].Content
		if strings.IndexByte(c, '\r') >= 0 {
			c = strings.ReplaceAll(c, "\r\n", "\n")
			c = strings.ReplaceAll(c, "\r", "\n")
		}
		msgs[i].Content = strings.TrimSpace(c)
	}
	return msgs
}
