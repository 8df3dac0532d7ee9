package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/bench/chatgen"
)

// The encoding/json implementation Decode and DetectFormat had before the
// single-pass scanner, kept verbatim (names prefixed with ref) as the oracle
// the scanner must agree with.

type refWire struct {
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

type refTurn struct {
	Role    *string         `json:"role"`
	Content json.RawMessage `json:"content"`
	From    *string         `json:"from"`
	Value   json.RawMessage `json:"value"`
}

func refDetectFormat(raw []byte) (Format, error) {
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

func refDecode(d *Decoder, raw []byte) (msgs []Message, meta string, err error) {
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
		text, err := refContentString(v)
		if err != nil {
			return nil, "", decErr("bad field", "%s: %v", field, err)
		}
		return finish([]Message{{Role: RoleAssistant, Content: text}}), "", nil
	}
	var w refWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, "", decErr("bad json", "%v", err)
	}
	switch d.Format {
	case FormatAlpaca:
		msgs, err = refAlpaca(d, &w)
	case FormatDolly:
		msgs, err = refDolly(d, &w)
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
		msgs, err = refTurns(d, src, "conversations")
	case FormatOpenAI:
		if len(w.Messages) == 0 {
			return nil, "", decErr("missing field", "messages")
		}
		msgs, err = refTurns(d, w.Messages, "messages")
	case FormatPromptCompletion:
		msgs, err = refPromptCompletion(d, &w)
	default:
		return nil, "", fmt.Errorf("decoder: format %q is not concrete", d.Format)
	}
	if err != nil {
		return nil, "", err
	}
	return finish(msgs), meta, nil
}

func refAlpaca(d *Decoder, w *refWire) ([]Message, error) {
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

func refDolly(d *Decoder, w *refWire) ([]Message, error) {
	if w.Instruction == nil {
		return nil, decErr("missing field", "instruction")
	}
	if w.Response == nil {
		return nil, decErr("missing field", "response")
	}
	return []Message{{RoleUser, joinInput(*w.Instruction, w.Context)}, {RoleAssistant, *w.Response}}, nil
}

func refPromptCompletion(d *Decoder, w *refWire) ([]Message, error) {
	if len(w.Prompt) == 0 || bytes.Equal(w.Prompt, []byte("null")) {
		return nil, decErr("missing field", "prompt")
	}
	if len(w.Completion) == 0 || bytes.Equal(w.Completion, []byte("null")) {
		return nil, decErr("missing field", "completion")
	}
	part := func(raw json.RawMessage, field, role string) ([]Message, error) {
		if s, err := refContentString(raw); err == nil {
			return []Message{{role, s}}, nil
		}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
			return refTurns(d, raw, field)
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

func refTurns(d *Decoder, raw json.RawMessage, field string) ([]Message, error) {
	var ts []refTurn
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
		text, err := refContentString(body)
		if err != nil {
			return nil, decErr("bad field", "%s[%d]: %v", field, i, err)
		}
		msgs = append(msgs, Message{role, text})
	}
	return msgs, nil
}

func refContentString(raw json.RawMessage) (string, error) {
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

// diffDecoders are the decoders every record is run through: each
// concrete format, a custom text field, custom roles (one overriding a
// default), and a format that is not concrete.
var diffDecoders = func() []Decoder {
	var ds []Decoder
	for _, f := range Formats {
		ds = append(ds, Decoder{Format: f})
	}
	roles := map[string]string{"bing": RoleAssistant, "user": RoleAssistant, "narrator": RoleSystem, "ünïcode": RoleUser}
	return append(ds,
		Decoder{Format: FormatText, TextField: "body"},
		Decoder{Format: FormatText, TextField: "Text"},
		Decoder{Format: FormatOpenAI, Roles: roles},
		Decoder{Format: FormatShareGPT, Roles: roles},
		Decoder{Format: FormatPromptCompletion, Roles: roles},
		Decoder{Format: FormatAuto},
	)
}()

// checkMatchesOracle fails t when the scanner and the encoding/json oracle
// disagree on raw for any decoder or for DetectFormat. It returns the
// number of decoders that accepted the record.
func checkMatchesOracle(t *testing.T, raw []byte) int {
	t.Helper()
	ok := 0
	for i := range diffDecoders {
		d := &diffDecoders[i]
		got, gotMeta, gotErr := d.Decode(raw)
		want, wantMeta, wantErr := refDecode(d, raw)
		if msg := sameOutcome(got, gotMeta, gotErr, want, wantMeta, wantErr); msg != "" {
			t.Errorf("%s (text field %q, roles %v) on %q:\n%s", d.Format, d.TextField, d.Roles != nil, raw, msg)
		}
		if wantErr == nil {
			ok++
		}
		if de := (*DecodeError)(nil); errors.As(gotErr, &de) && de.Detail == "" {
			t.Errorf("%s on %q: error %v has no detail", d.Format, raw, gotErr)
		}
	}
	gotF, gotErr := DetectFormat(raw)
	wantF, wantErr := refDetectFormat(raw)
	if msg := sameOutcome(nil, string(gotF), gotErr, nil, string(wantF), wantErr); msg != "" {
		t.Errorf("DetectFormat on %q:\n%s", raw, msg)
	}
	var gde, wde *DecodeError
	if errors.As(gotErr, &gde) && errors.As(wantErr, &wde) && wde.Reason == "unknown format" && gde.Detail != wde.Detail {
		t.Errorf("DetectFormat on %q: detail %q, want %q", raw, gde.Detail, wde.Detail)
	}
	return ok
}

func sameOutcome(got []Message, gotMeta string, gotErr error, want []Message, wantMeta string, wantErr error) string {
	if wantErr != nil || gotErr != nil {
		var gde, wde *DecodeError
		switch {
		case gotErr == nil:
			return fmt.Sprintf("  got  %q meta %q\n  want error %v", got, gotMeta, wantErr)
		case wantErr == nil:
			return fmt.Sprintf("  got  error %v\n  want %q meta %q", gotErr, want, wantMeta)
		case errors.As(gotErr, &gde) != errors.As(wantErr, &wde):
			return fmt.Sprintf("  got  error %v\n  want error %v", gotErr, wantErr)
		case gde == nil && gotErr.Error() != wantErr.Error(), gde != nil && gde.Reason != wde.Reason:
			return fmt.Sprintf("  got  error %v\n  want error %v", gotErr, wantErr)
		}
		return ""
	}
	if gotMeta != wantMeta {
		return fmt.Sprintf("  got  meta %q\n  want meta %q", gotMeta, wantMeta)
	}
	if len(got) != len(want) {
		return fmt.Sprintf("  got  %q\n  want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("  got  %q\n  want %q", got, want)
		}
	}
	return ""
}

// diffRecords is the hand-written table for the differential test and the
// fuzz corpus seeds.
var diffRecords = []string{
	// every format
	`{"instruction":"Add","input":"2 and 3","output":"5"}`,
	`{"instruction":"Hi","input":"","output":"Hello"}`,
	`{"system":"Be brief.","instruction":"And 3?","output":"9","history":[["Square 2","4"]]}`,
	`{"system":"   ","instruction":" x ","input":" y ","output":"z"}`,
	`{"instruction":"x"}`,
	`{"output":"x"}`,
	`{"instruction":"x","output":"y","history":[["a"]]}`,
	`{"instruction":"x","output":"y","history":[]}`,
	`{"instruction":"x","output":"y","history":null}`,
	`{"instruction":"x","output":"y","history":[null]}`,
	`{"instruction":"x","output":"y","history":[["a","b"],["c","d"],["e","f","g"]]}`,
	`{"instruction":"x","output":"y","history":[["a",null]]}`,
	`{"instruction":"x","output":"y","history":[[],["a","b"]]}`,
	`{"instruction":3,"output":"y"}`,
	`{"instruction":"x","output":"y","history":"x"}`,
	`{"instruction":"x","output":"y","history":[1]}`,
	`{"instruction":"x","output":"y","history":[[1,"a"]]}`,
	`{"instruction":"x","output":"y","history":[{"a":1}]}`,
	`{"instruction":"x","output":"y","history":{}}`,
	`{"instruction":"x","output":"y","input":true}`,
	`{"instruction":"x","output":"y","system":{}}`,
	`{"instruction":"x","output":"y","system":[]}`,
	`{"instruction":null,"output":"y"}`,
	`{"instruction":"a","instruction":null,"output":"y"}`,
	`{"instruction":null,"instruction":"b","output":"y"}`,
	// history decoded into the slice a duplicate key left behind
	`{"instruction":"x","output":"y","history":[["a","b"],["c","d"]],"history":[[null,"e"]]}`,
	`{"instruction":"x","output":"y","history":[["a","b","c"]],"history":[["d"]],"history":[[null,null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"],["c","d"]],"history":[["e","f"]],"history":[[null,"g"],[null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"]],"history":[],"history":[[null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"]],"history":null,"history":[[null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"]],"history":[null],"history":[[null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"]],"history":[[]],"history":[[null,null]]}`,
	`{"instruction":"x","output":"y","history":[["a","b"],["c","d"]],"history":[["e","f"]],"history":[["g","h"],null]}`,
	`{"instruction":"Summarise","context":"Long text.","response":"Short.","category":"summarization"}`,
	`{"instruction":"x","context":""}`,
	`{"instruction":"x","response":"y","category":""}`,
	`{"instruction":"x","response":"y","category":null}`,
	`{"instruction":"x","response":"y","category":"<a & b> \u2028 \u00e9"}`,
	`{"instruction":"x","response":"y","category":"caf\u00e9 \ud800"}`,
	`{"instruction":"x","response":"y","category":1}`,
	`{"instruction":"x","response":"y","context":"  "}`,
	`{"conversations":[{"from":"system","value":"S"},{"from":"human","value":"Q"},{"from":"gpt","value":"A"}]}`,
	`{"conversations":[{"from":"customer","value":"Q"},{"from":"Bing","value":"A"}]}`,
	`{"conversations":[{"from":"narrator","value":"Q"},{"from":"gpt","value":"A"}]}`,
	`{"conversations":[]}`,
	`{"conversations":null,"messages":[{"from":"human","value":"Q"},{"from":"gpt","value":"A"}]}`,
	`{"messages":[{"from":"human","value":"Q"},{"from":"gpt","value":"A"}]}`,
	`{"messages":[{"from":"human","value":"Q","role":"user"},{"from":"gpt","value":"A"}]}`,
	`{"messages":[{"role":"developer","content":"S"},{"role":"user","content":"Q\r\n"},{"role":"assistant","content":"  A  "}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"c"}]}`,
	`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]},{"role":"assistant","content":"c"}]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"tool","content":"r"}]}`,
	`{"prompt":"Q","completion":"A"}`,
	`{"prompt":[{"role":"system","content":"S"},{"role":"user","content":"Q"}],"completion":[{"role":"assistant","content":"A"}]}`,
	`{"prompt":"Q"}`,
	`{"prompt":"Q","completion":7}`,
	`{"text":"Some words."}`,
	`{"body":"x"}`,
	`{"messages": [`,
	// escapes, unicode, surrogates
	`{"messages":[{"role":"user","content":"a\"b\\c\/d\b\f\n\r\tx"},{"role":"assistant","content":"\u00e9\u4e2d\ud83d\ude00\u0000\u001f"}]}`,
	`{"messages":[{"role":"user","content":"lone \ud800 high"},{"role":"assistant","content":"lone \udc00 low"}]}`,
	`{"messages":[{"role":"user","content":"\ud800\u0041 \ud800\ud800\udc00 \udc00\ud800 \ud800"},{"role":"assistant","content":"\uDBFF\uDFFF\uD800\uDC00"}]}`,
	`{"messages":[{"role":"user","content":"\ud800\\u0041 \ud800\n"},{"role":"assistant","content":"x\ud83d"}]}`,
	`{"messages":[{"role":"user","content":"ünïcödé 中文 😀"},{"role":"assistant","content":"\u00fc"}]}`,
	"{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9 \xff\xfe \xed\xa0\x80 \xe2\x82\"},{\"role\":\"assistant\",\"content\":\"a\xc3\"}]}",
	"{\"messages\":[{\"role\":\"user\",\"content\":\"\xe2\x82\\n\xe2\x82\xac\\u00e9\xff\"},{\"role\":\"assistant\",\"content\":\"x\"}]}",
	"{\"messages\":[{\"role\":\"us\xffer\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"x\"}]}",
	"{\"mess\xffages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"x\"}]}",
	"{\"text\":\"\xff\\u00e9\\ud800\"}",
	"{\"te\xffxt\":\"x\",\"text\":\"\xef\xbf\xbd\"}",
	`{"messages":[{"role":"user","content":"a\u2028b\u2029c"},{"role":"assistant","content":"\"quoted\""}]}`,
	`{"messages":[{"role":"user","content":"\r\n  q \r"},{"role":"assistant","content":"\u000d\u000a"}]}`,
	// roles in other spellings
	`{"messages":[{"role":" USER ","content":"q"},{"role":"Assistant","content":"a"}]}`,
	`{"messages":[{"role":"\u0075ser","content":"q"},{"role":"ASSISTANT\t","content":"a"}]}`,
	`{"messages":[{"role":"user\u00a0","content":"q"},{"role":"\u2003model","content":"a"}]}`,
	`{"messages":[{"role":"ÜNÏCODE","content":"q"},{"role":"bot","content":"a"}]}`,
	`{"messages":[{"role":"\u000buser\f","content":"q"},{"role":"gpt","content":"a"}]}`,
	`{"messages":[{"role":"a-very-long-role-name-that-is-not-known-anywhere","content":"q"}]}`,
	`{"messages":[{"role":"","content":"q"}]}`,
	`{"messages":[{"role":"İ","content":"q"}]}`,
	// keys in other cases (struct fields match case-insensitively)
	`{"Messages":[{"Role":"user","CONTENT":"q"},{"rOLE":"assistant","Content":"a"}]}`,
	`{"MESSAGES":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	`{"meſſages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	`{"mess\u0061ges":[{"r\u006fle":"user","cont\u0065nt":"q"},{"role":"assistant","content":"a"}]}`,
	`{"ſystem":"S","INSTRUCTION":"i","Output":"o","Input":"n","hiſtory":[["a","b"]]}`,
	`{"Conversations":[{"FROM":"human","VALUE":"q"},{"From":"gpt","Value":"a"}]}`,
	`{"Prompt":"q","COMPLETION":"a"}`,
	`{"Instruction":"i","Response":"r","Category":"c","conteXt":"x"}`,
	`{"Text":"x"}`,
	`{"text":"x","Text":"y","TEXT":"z"}`,
	`{"messages":[{"role":"user","content":[{"TYPE":"text","Text":"a"},{"tyPe":"text","teſt":"b"}]},{"role":"assistant","content":"c"}]}`,
	`{"messageſ":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	`{"messages\u0000":[{"role":"user","content":"q"}]}`,
	`{"conversationsconversations":1,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	// nested unknown values
	`{"id":{"a":[1,2,{"b":null}],"c":"x"},"messages":[{"role":"user","content":"q","name":"n","tool_calls":[{"x":[[[]]]}]},{"role":"assistant","content":"a","weight":0.5}],"meta":[true,false,null,-1.5e10,0,"s",-0,1E+2,2e-3]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"extra":{"messages":"nope","role":1}}`,
	`{"a":{},"b":[],"c":{"d":{}},"text":"t"}`,
	// nulls
	`{"messages":null}`,
	`{"conversations":null}`,
	`{"messages":[null]}`,
	`{"messages":[{"role":"user","content":null}]}`,
	`{"messages":[{"role":null,"from":"human","value":"q"},{"from":"gpt","value":"a"}]}`,
	`{"messages":[{"role":null,"content":"q"}]}`,
	`{"messages":[{"role":"user"}]}`,
	`{"messages":[{"from":"human","content":"q"}]}`,
	`{"messages":[{"role":"user","value":"q"}]}`,
	`{"messages":[{"role":"user","content":[null]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":null}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":null,"text":"a"}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","type":null,"text":"a"}]},{"role":"assistant","content":"x"}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"a","text":null}]}]}`,
	`{"messages":[{"role":"user","content":[]},{"role":"assistant","content":"x"}]}`,
	`{"messages":[{"role":"user","content":[{}]}]}`,
	`{"prompt":null,"completion":"a"}`,
	`{"prompt":"q","completion":null}`,
	`{"text":null}`,
	`{"text":"a","text":null}`,
	`{"text":null,"text":"b"}`,
	`null`,
	` null `,
	// wrong types
	`{"messages":"x"}`,
	`{"messages":{}}`,
	`{"messages":1}`,
	`{"messages":true}`,
	`{"messages":[1]}`,
	`{"messages":["x"]}`,
	`{"messages":[[]]}`,
	`{"messages":[{"role":"narrator","content":"q"},1]}`,
	`{"messages":[{"role":1,"content":"q"}]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":true}]}`,
	`{"messages":[{"from":{},"value":"q"}]}`,
	`{"messages":[{"role":"user","content":1}]}`,
	`{"messages":[{"role":"user","content":{}}]}`,
	`{"messages":[{"role":"user","content":true}]}`,
	`{"messages":[{"role":"user","content":[1]}]}`,
	`{"messages":[{"role":"user","content":["x"]}]}`,
	`{"messages":[{"role":"user","content":[{"type":1,"text":"a"}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":1}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"image"},{"type":2}]}]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"instruction":1}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"history":[[1]]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"category":false}`,
	`{"prompt":{},"completion":"a"}`,
	`{"prompt":true,"completion":"a"}`,
	`{"prompt":"q","completion":[1]}`,
	`{"prompt":"q","completion":{"role":"assistant"}}`,
	`{"text":1}`,
	`{"text":{}}`,
	`{"text":true}`,
	`{"text":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}`,
	`{"text":[{"type":"text"}]}`,
	`{"text":[]}`,
	`{"body":"x","text":[1]}`,
	// prompt/completion lists
	`{"prompt":[],"completion":"a"}`,
	`{"prompt":[null],"completion":"a"}`,
	`{"prompt":[{"type":"text","text":"q"}],"completion":[{"type":"text","text":"a"}]}`,
	`{"prompt":[{"type":"text","text":"q"},{"role":"user","content":"r"}],"completion":"a"}`,
	`{"prompt":[{"role":"user","content":"q","type":"text","text":"t"}],"completion":"a"}`,
	`{"prompt":[{"role":"user","content":"q","type":5}],"completion":"a"}`,
	`{"prompt":[{"role":"user","content":"q"}],"completion":[]}`,
	`{"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"narrator","content":"a"}]}`,
	`{"prompt":"q","prompt":[{"role":"user","content":"q2"}],"completion":"a"}`,
	// duplicate keys
	`{"messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"messages":null}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"Messages":"x"}`,
	`{"messages":[{"role":"user","role":"assistant","content":"q","content":"a"}]}`,
	`{"messages":[{"role":"user","role":null,"content":"q"}]}`,
	`{"messages":[{"role":"user","content":"q","content":null}]}`,
	`{"messages":[{"from":"human","from":null,"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	`{"conversations":[{"from":"human","value":"q"}],"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}`,
	`{"prompt":"q","completion":"a","prompt":null}`,
	`{"text":"a","text":"b"}`,
	// whitespace everywhere
	" \t\n\r{ \"messages\" \t:\n [ { \"role\" : \"user\" , \"content\" : \"q\" } ,\r\n{\"role\":\"assistant\",\"content\":\"a\"} ] , \"x\" : [ 1 , { } ] } \n",
	" { \"text\" : \"x\" } ",
	"{\"text\":\"x\"}\n\n",
	// truncated and malformed JSON
	`{`,
	`{"`,
	`{"text`,
	`{"text"`,
	`{"text":`,
	`{"text":"x`,
	`{"text":"x"`,
	`{"text":"x",`,
	`{"text":"x",}`,
	`{"text":"x" "y":1}`,
	`{"text":"x",,"y":1}`,
	`{text:"x"}`,
	`{'text':'x'}`,
	`{"text":"x"]`,
	`{"messages":[{"role":"user","content":"q"},]}`,
	`{"messages":[{"role":"user","content":"q"} {"role":"assistant"}]}`,
	`{"messages":[{"role":"user","content":"q"}}`,
	`{"a":01,"text":"x"}`,
	`{"a":-,"text":"x"}`,
	`{"a":1.,"text":"x"}`,
	`{"a":.5,"text":"x"}`,
	`{"a":1e,"text":"x"}`,
	`{"a":1e+,"text":"x"}`,
	`{"a":+1,"text":"x"}`,
	`{"a":-01,"text":"x"}`,
	`{"a":0x1,"text":"x"}`,
	`{"a":1.5e3,"b":-0.0,"c":0E0,"d":123456789012345678901234567890,"text":"x"}`,
	`{"a":tru,"text":"x"}`,
	`{"a":nul}`,
	`{"a":nulls,"text":"x"}`,
	`{"a":True,"text":"x"}`,
	`{"a":NaN,"text":"x"}`,
	"{\"text\":\"a\tb\"}",
	"{\"text\":\"a\nb\"}",
	"{\"text\":\"a\x00b\"}",
	"{\"text\":\"a\x7fb\"}",
	`{"text":"a\xb"}`,
	`{"text":"a\'b"}`,
	`{"text":"a\u12"}`,
	`{"text":"a\u12g4"}`,
	`{"text":"a\U0041"}`,
	`{"text":"a\`,
	`{"text":"a\u`,
	`{"text":"a\u00`,
	"\xef\xbb\xbf{\"text\":\"x\"}",
	"{\"text\":\"x\"}\x00",
	// trailing garbage
	`{"text":"x"} x`,
	`{"text":"x"}{}`,
	`{"text":"x"},`,
	`{"text":"x"}]`,
	`{"text":"x"}}`,
	`{"text":"x"} null`,
	// top-level non-objects
	`[1]`,
	`[]`,
	`"x"`,
	`1`,
	`-2.5`,
	`true`,
	`false`,
	`{}`,
	``,
	` `,
	`nul`,
	`[{"text":"x"}]`,
	`"{\"text\":\"x\"}"`,
	// DetectFormat corners
	`{"messages":[{"from":"human","value":"\"role\""}]}`,
	`{"messages":[{"role":"user","content":"\"from\""}]}`,
	`{"messages":"\"from\""}`,
	`{"messages":[{"fr\u006fm":"human","value":"q"}]}`,
	`{"prompt":"q","completion":null,"text":"t"}`,
	`{"instruction":"i","output":null,"response":"r"}`,
	`{"question":"a","answer":"b","question":"c"}`,
	`{"z":1,"a":2,"m\u00e9":3,"\ud800":4}`,
}

// deepRecord nests n arrays inside an unknown field of a valid record.
func deepRecord(n int) string {
	return `{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"text":"t"}`
}

// TestDecodeMatchesEncodingJSON runs the hand-written table, and records
// nested right up to encoding/json's depth limit, through both decoders.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	accepted := 0
	for _, raw := range diffRecords {
		accepted += checkMatchesOracle(t, []byte(raw))
	}
	if accepted < 100 {
		t.Errorf("only %d (record, decoder) pairs decoded: the table tests little but failures", accepted)
	}
	for _, n := range []int{9998, 9999, 10000} {
		checkMatchesOracle(t, []byte(deepRecord(n)))
	}
	deep := `{"messages":[{"role":"user","content":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`
	checkMatchesOracle(t, []byte(deep))
	deep = `{"messages":[{"role":"user","content":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`
	checkMatchesOracle(t, []byte(deep))
}

// TestDecodeMatchesEncodingJSONPrefixes checks every prefix, and every
// record with one byte dropped or swapped for a significant one, of some
// valid records: truncation and corruption at every position.
func TestDecodeMatchesEncodingJSONPrefixes(t *testing.T) {
	base := []string{
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a\u00e9\ud83d\ude00"}]},{"role":"assistant","content":"b\n"}],"x":[1.5e-3,true,null,{"y":false}]}`,
		`{"instruction":"i","input":"n","output":"o","history":[["a","b"]],"system":"s","context":"c","response":"r","category":"k"}`,
		`{"prompt":[{"from":"human","value":"q"}],"completion":"a","text":"t","conversations":null}`,
	}
	swaps := []byte(`"\{}[],:0-ntu `)
	for _, b := range base {
		for i := 0; i <= len(b); i++ {
			checkMatchesOracle(t, []byte(b[:i]))
			if i < len(b) {
				checkMatchesOracle(t, []byte(b[:i]+b[i+1:]))
				for _, c := range swaps {
					checkMatchesOracle(t, []byte(b[:i]+string(c)+b[i+1:]))
				}
			}
		}
	}
}

// TestPlainRun checks the word-at-a-time search of scanString's slow path.
func TestPlainRun(t *testing.T) {
	// Every special byte at every position of a 20-byte run, with and
	// without high bytes counting as special.
	for _, special := range []byte{'"', '\\', 0, 0x1f, 0x80, 0xff} {
		for pos := 0; pos < 20; pos++ {
			for _, filler := range []byte{'a', ' ', '#', '[', 0x7f, 0x21, 0x5d, 0x5b} {
				data := bytes.Repeat([]byte{filler}, 20)
				data[pos] = special
				want := pos
				if special >= 0x80 {
					if got := plainRun(data, 0, 0); got != 20 {
						t.Errorf("high off, %q: got %d, want 20", data, got)
					}
				}
				if got := plainRun(data, 0, msb); got != want {
					t.Errorf("%q: got %d, want %d", data, got, want)
				}
			}
		}
	}
}

// TestCtrlOrHigh checks the word-at-a-time byte class tests at every
// length and position.
func TestCtrlOrHigh(t *testing.T) {
	for n := 0; n < 40; n++ {
		for pos := -1; pos < n; pos++ {
			for _, special := range []byte{0, 0x1f, 0x80, 0xff} {
				data := bytes.Repeat([]byte{'a'}, n)
				for _, filler := range []byte{'a', ' ', 0x7f, '!', '@', '`'} {
					for i := range data {
						data[i] = filler
					}
					if pos >= 0 {
						data[pos] = special
					}
					if got, want := ctrlOrHigh(data), pos >= 0; got != want {
						t.Errorf("ctrlOrHigh(%q) = %v", data, got)
					}
					if got, want := hasCtrl(data), pos >= 0 && special < 0x20; got != want {
						t.Errorf("hasCtrl(%q) = %v", data, got)
					}
				}
			}
		}
	}
}

// FuzzDecodeMatchesEncodingJSON asserts that, for every decoder of
// diffDecoders and for DetectFormat, the scanner and encoding/json agree on
// any input: same messages and meta, or failures with the same reason.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, raw := range diffRecords {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkMatchesOracle(t, raw)
	})
}

// benchLines loads $SIEVE_BENCH_JSONL (bench/gen output), else 2,000
// records of bench/chatgen (about 3 MB of varied chat: system prompts,
// several turns, code), so that a benchmark measures a corpus, not one
// record hot in the cache.
func benchLines(b *testing.B) ([][]byte, int64) {
	var data []byte
	if f := os.Getenv("SIEVE_BENCH_JSONL"); f != "" {
		var err error
		if data, err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := chatgen.Generate(&buf, chatgen.Config{N: 2000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		data = buf.Bytes()
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	var total int64
	for _, l := range lines {
		total += int64(len(l))
	}
	return lines, total
}

// BenchmarkDecodeOnly measures Decode alone (the scanner) and the old
// encoding/json implementation on the same records.
func BenchmarkDecodeOnly(b *testing.B) {
	lines, total := benchLines(b)
	d := Decoder{Format: FormatOpenAI}
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(total)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				if _, _, err := d.Decode(l); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(total)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, l := range lines {
				if _, _, err := refDecode(&d, l); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
