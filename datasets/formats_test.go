package datasets

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

func msgs(kv ...string) []Message {
	var out []Message
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Message{Role: kv[i], Content: kv[i+1]})
	}
	return out
}

func TestDecodeFormats(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		roles  map[string]string
		raw    string
		want   []Message
		meta   string
		reason string // DecodeError reason when the record must fail
	}{
		{"alpaca", FormatAlpaca, nil, `{"instruction":"Add","input":"2 and 3","output":"5"}`,
			msgs("user", "Add\n\n2 and 3", "assistant", "5"), "", ""},
		{"alpaca empty input", FormatAlpaca, nil, `{"instruction":"Hi","input":"","output":"Hello"}`,
			msgs("user", "Hi", "assistant", "Hello"), "", ""},
		{"alpaca system and history", FormatAlpaca, nil,
			`{"system":"Be brief.","instruction":"And 3?","output":"9","history":[["Square 2","4"]]}`,
			msgs("system", "Be brief.", "user", "Square 2", "assistant", "4", "user", "And 3?", "assistant", "9"), "", ""},
		{"alpaca missing output", FormatAlpaca, nil, `{"instruction":"x"}`, nil, "", "missing field"},
		{"alpaca bad history", FormatAlpaca, nil, `{"instruction":"x","output":"y","history":[["a"]]}`, nil, "", "bad field"},
		{"alpaca wrong type", FormatAlpaca, nil, `{"instruction":3,"output":"y"}`, nil, "", "bad json"},
		{"sharegpt", FormatShareGPT, nil,
			`{"conversations":[{"from":"system","value":"S"},{"from":"human","value":"Q"},{"from":"gpt","value":"A"}]}`,
			msgs("system", "S", "user", "Q", "assistant", "A"), "", ""},
		{"sharegpt custom tags", FormatShareGPT, map[string]string{"bing": "assistant", "customer": "user"},
			`{"conversations":[{"from":"customer","value":"Q"},{"from":"Bing","value":"A"}]}`,
			msgs("user", "Q", "assistant", "A"), "", ""},
		{"sharegpt unknown tag", FormatShareGPT, nil,
			`{"conversations":[{"from":"narrator","value":"Q"},{"from":"gpt","value":"A"}]}`, nil, "", "unknown role"},
		{"sharegpt empty", FormatShareGPT, nil, `{"conversations":[]}`, nil, "", "empty conversation"},
		{"openai", FormatOpenAI, nil,
			`{"messages":[{"role":"developer","content":"S"},{"role":"user","content":"Q\r\n"},{"role":"assistant","content":"  A  "}]}`,
			msgs("system", "S", "user", "Q", "assistant", "A"), "", ""},
		{"openai content parts", FormatOpenAI, nil,
			`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"c"}]}`,
			msgs("user", "a\nb", "assistant", "c"), "", ""},
		{"openai image part", FormatOpenAI, nil,
			`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]},{"role":"assistant","content":"c"}]}`,
			nil, "", "bad field"},
		{"openai tool role", FormatOpenAI, nil,
			`{"messages":[{"role":"user","content":"q"},{"role":"tool","content":"r"}]}`, nil, "", "unknown role"},
		{"prompt completion strings", FormatPromptCompletion, nil, `{"prompt":"Q","completion":"A"}`,
			msgs("user", "Q", "assistant", "A"), "", ""},
		{"prompt completion lists", FormatPromptCompletion, nil,
			`{"prompt":[{"role":"system","content":"S"},{"role":"user","content":"Q"}],"completion":[{"role":"assistant","content":"A"}]}`,
			msgs("system", "S", "user", "Q", "assistant", "A"), "", ""},
		{"prompt completion missing", FormatPromptCompletion, nil, `{"prompt":"Q"}`, nil, "", "missing field"},
		{"prompt completion number", FormatPromptCompletion, nil, `{"prompt":"Q","completion":7}`, nil, "", "bad field"},
		{"dolly", FormatDolly, nil, `{"instruction":"Summarise","context":"Long text.","response":"Short.","category":"summarization"}`,
			msgs("user", "Summarise\n\nLong text.", "assistant", "Short."), `{"category":"summarization"}`, ""},
		{"dolly missing response", FormatDolly, nil, `{"instruction":"x","context":""}`, nil, "", "missing field"},
		{"text", FormatText, nil, `{"text":"Some words."}`, msgs("assistant", "Some words."), "", ""},
		{"text missing", FormatText, nil, `{"body":"x"}`, nil, "", "missing field"},
		{"bad json", FormatOpenAI, nil, `{"messages": [`, nil, "", "bad json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{Format: tc.format, Roles: tc.roles}
			got, meta, err := d.Decode([]byte(tc.raw))
			if tc.reason != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %q", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("messages = %q, want %q", got, tc.want)
			}
			if meta != tc.meta {
				t.Errorf("meta = %q, want %q", meta, tc.meta)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	tests := map[string]Format{
		`{"instruction":"a","input":"","output":"b"}`:                    FormatAlpaca,
		`{"instruction":"a","context":"","response":"b","category":"x"}`: FormatDolly,
		`{"conversations":[{"from":"human","value":"a"}]}`:               FormatShareGPT,
		`{"messages":[{"from":"human","value":"a"}]}`:                    FormatShareGPT,
		`{"messages":[{"role":"user","content":"a"}]}`:                   FormatOpenAI,
		`{"prompt":"a","completion":"b"}`:                                FormatPromptCompletion,
		`{"text":"a"}`:                                                   FormatText,
	}
	for raw, want := range tests {
		got, err := DetectFormat([]byte(raw))
		if err != nil || got != want {
			t.Errorf("DetectFormat(%s) = %v, %v; want %v", raw, got, err, want)
		}
	}
	if _, err := DetectFormat([]byte(`{"question":"a"}`)); err == nil || !strings.Contains(err.Error(), "question") {
		t.Errorf("unknown layout: err = %v, want one naming the fields", err)
	}
}

func TestSampleFromRecordValidates(t *testing.T) {
	d := Decoder{Format: FormatOpenAI}
	cases := map[string]string{
		"{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"},{\"role\":\"assistant\",\"content\":\"x\"}]}": "invalid utf-8",
		`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"   "}]}`:                       "empty content",
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}]}`:                            "no assistant turn",
	}
	for raw, reason := range cases {
		_, err := d.SampleFromRecord(Record{Raw: []byte(raw)}, Source{}, "")
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != reason {
			t.Errorf("%q: err = %v, want reason %q", raw, err, reason)
		}
	}
	s, err := d.SampleFromRecord(Record{Index: 7, Raw: []byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`)},
		Source{Dataset: "d", File: "f", Index: 7}, "mit")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != ContentID(s.Messages) || len(s.ID) != 32 || s.License != "mit" || s.Source.Index != 7 {
		t.Errorf("sample = %+v", s)
	}
}

func TestContentIDStable(t *testing.T) {
	a := ContentID(msgs("user", "ab", "assistant", "c"))
	b := ContentID(msgs("user", "a", "assistant", "bc"))
	if a == b {
		t.Error("message boundaries must change the id")
	}
	if ContentID(msgs("user", "ab", "assistant", "c")) != a {
		t.Error("id not deterministic")
	}
	if ContentID(msgs("assistant", "ab", "user", "c")) == ContentID(msgs("user", "ab", "assistant", "c")) {
		t.Error("roles must change the id")
	}
}

// writeContainers writes the same three records (one malformed) in every
// container and compression.
func writeContainers(t *testing.T, dir string) map[string]int {
	t.Helper()
	lines := []string{
		`{"prompt":"What is 2+2?","completion":"4"}`,
		`{"prompt": broken`,
		`{"prompt":"Capital of France?","completion":"Paris"}`,
	}
	jsonl := strings.Join(lines, "\n") + "\n\n"
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.jsonl", []byte(jsonl))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(jsonl))
	zw.Close()
	write("b.jsonl.gz", gz.Bytes())
	enc, _ := zstd.NewWriter(nil)
	write("c.ndjson.zst", enc.EncodeAll([]byte(jsonl), nil))
	write("d.json", []byte(`[{"prompt":"What is 2+2?","completion":"4"}, {"prompt":"x"}, {"prompt":"Capital of France?","completion":"Paris"}]`))
	write("e.json", []byte(jsonl)) // JSONL named .json
	type row struct {
		Prompt     string `parquet:"prompt"`
		Completion string `parquet:"completion"`
	}
	var pq bytes.Buffer
	if err := parquet.Write(&pq, []row{{"What is 2+2?", "4"}, {"", "empty prompt"}, {"Capital of France?", "Paris"}}); err != nil {
		t.Fatal(err)
	}
	write("f.parquet", pq.Bytes())
	return map[string]int{"a.jsonl": 2, "b.jsonl.gz": 2, "c.ndjson.zst": 2, "d.json": 2, "e.json": 2, "f.parquet": 2}
}

func TestReadSamplesContainers(t *testing.T) {
	dir := t.TempDir()
	want := writeContainers(t, dir)
	for name, n := range want {
		t.Run(name, func(t *testing.T) {
			var got []Sample
			var dead []DeadLetter
			st, err := ReadSamples(context.Background(), filepath.Join(dir, name), ReadOptions{Source: "s", Format: FormatAuto},
				func(s Sample) error { got = append(got, s); return nil },
				func(d DeadLetter) error { dead = append(dead, d); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n || len(dead) != 1 || st.Records != 3 || st.Format != FormatPromptCompletion {
				t.Fatalf("samples %d dead %d stats %+v; want %d samples, 1 dead letter, 3 records", len(got), len(dead), st, n)
			}
			if got[1].Messages[1].Content != "Paris" || got[1].Source.Index != 2 {
				t.Errorf("second sample = %+v", got[1])
			}
			if dead[0].Index != 1 || dead[0].File != filepath.Join(dir, name) {
				t.Errorf("dead letter = %+v", dead[0])
			}
			if strings.HasSuffix(name, "jsonl") && dead[0].Line != 2 {
				t.Errorf("dead letter line = %d, want 2", dead[0].Line)
			}
		})
	}
}

func TestReadSamplesLimitAndBrokenArray(t *testing.T) {
	dir := t.TempDir()
	writeContainers(t, dir)
	var n int
	st, err := ReadSamples(context.Background(), filepath.Join(dir, "a.jsonl"), ReadOptions{Format: FormatAuto, Limit: 2},
		func(Sample) error { n++; return nil }, func(DeadLetter) error { return nil })
	if err != nil || st.Records != 2 || n != 1 {
		t.Fatalf("limit 2: records %d samples %d err %v", st.Records, n, err)
	}
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`[{"text":"one"}, {"text":"two"}, {"text": tr`), 0o644)
	var dead []DeadLetter
	n = 0
	st, err = ReadSamples(context.Background(), broken, ReadOptions{Format: FormatAuto},
		func(Sample) error { n++; return nil }, func(d DeadLetter) error { dead = append(dead, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(dead) != 1 || dead[0].Reason != "unreadable file" || st.Records != 3 {
		t.Fatalf("broken array: samples %d, dead %+v, stats %+v", n, dead, st)
	}
}

func TestGlobErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Glob(context.Background(), filepath.Join(dir, "*.jsonl")); err == nil || !strings.Contains(err.Error(), "no files match") {
		t.Errorf("empty glob: %v", err)
	}
	if _, err := Glob(context.Background(), filepath.Join(dir, "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := DetectContainer("x.csv"); err == nil {
		t.Error("csv accepted")
	}
}

func TestSampleCodecRoundTrip(t *testing.T) {
	q, js := 0.0, 4.5
	topic := int32(3)
	dist := float32(0.125)
	in := []Sample{
		{ID: "a", Messages: msgs("user", "héllo", "assistant", "wörld")},
		{ID: "b", Messages: msgs("system", "", "user", "q", "assistant", strings.Repeat("x", 5000)), Source: Source{"d", "f", -1},
			License: "mit", DupCluster: "a", Quality: &q, JudgeScore: &js, Judge: `{"s":1}`, TopicID: &topic, TopicLabel: "t", TopicDistance: &dist, Meta: "{}"},
	}
	for _, s := range in {
		b, _ := s.MarshalBinary()
		var out Sample
		if err := out.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, s) {
			t.Errorf("round trip: got %+v want %+v", out, s)
		}
		if err := out.UnmarshalBinary(b[:len(b)-1]); err == nil {
			t.Error("truncated encoding accepted")
		}
	}
}
