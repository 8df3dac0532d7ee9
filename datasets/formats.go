package datasets

import (
	"encoding/json"
	"fmt"
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
	// FormatSieve reads sieve's own Parquet shards (a stored version read
	// as a source), keeping every column but the source.
	FormatSieve Format = "sieve"
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
	case "sieve":
		return FormatSieve, nil
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

// DetectFormat guesses the format of one JSON object record from its keys.
func DetectFormat(raw []byte) (Format, error) {
	return detectFormat(raw)
}

// Decode turns one raw record into a normalised conversation: roles mapped
// to system/user/assistant, contents with CRLF turned into LF and
// surrounding whitespace trimmed. It returns the record's extra metadata as
// a JSON object (or "") for fields worth keeping, such as dolly's category.
//
// Records are parsed in a single pass (see jsonscan.go) with exactly the
// results, and failure reasons, that decoding them with encoding/json
// gives.
func (d *Decoder) Decode(raw []byte) (msgs []Message, meta string, err error) {
	if d.Format == FormatText {
		return d.decodeText(raw)
	}
	s := getScanner(raw)
	defer putScanner(s)
	var w wireScan
	if err := d.scanWire(s, &w); err != nil {
		return nil, "", err
	}
	switch d.Format {
	case FormatAlpaca:
		msgs, err = d.alpacaScan(s, &w)
	case FormatDolly:
		msgs, err = d.dollyScan(s, &w)
		if cat := w.optStr(s, wCategory); err == nil && cat != nil && *cat != "" {
			b, _ := json.Marshal(map[string]string{"category": *cat})
			meta = string(b)
		}
	case FormatShareGPT:
		k := wConversations
		if !w.raw(k).present {
			k = wMessages
		}
		if !w.raw(k).present {
			return nil, "", decErr("missing field", "conversations")
		}
		t := w.turns[k-wConversations]
		msgs, err = t.msgs, t.fail
	case FormatOpenAI:
		if !w.raw(wMessages).present {
			return nil, "", decErr("missing field", "messages")
		}
		t := w.turns[wMessages-wConversations]
		msgs, err = t.msgs, t.fail
	case FormatPromptCompletion:
		msgs, err = d.promptCompletionScan(s, &w)
	default:
		return nil, "", fmt.Errorf("decoder: format %q is not concrete", d.Format)
	}
	if err != nil {
		return nil, "", err
	}
	return finish(msgs), meta, nil
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

func (d *Decoder) role(tag string) (string, bool) {
	key := strings.ToLower(strings.TrimSpace(tag))
	if r, ok := d.Roles[key]; ok {
		return r, true
	}
	r, ok := DefaultRoleAliases[key]
	return r, ok
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
