package recipe

import (
	"encoding/json"
	"strings"
	"testing"
)

const good = `name: demo
description: a test
sources:
  - name: alpaca
    path: data/*.jsonl
    format: alpaca
    license: cc-by-4.0
    limit: 10
  - name: chats
    path: gs://bucket/chats.json
    roles: {Bing: assistant}
stages:
  - exact_dedup: {key: prompt}
  - exact_dedup
output:
  shards: 4
  test_ratio: 0.1
`

func TestParseGood(t *testing.T) {
	r, err := Parse("r.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "demo" || len(r.Sources) != 2 || r.Sources[0].Limit != 10 || r.Sources[1].Format != "auto" {
		t.Errorf("recipe = %+v", r)
	}
	if r.Sources[1].Roles["bing"] != "assistant" {
		t.Errorf("roles not lower-cased: %v", r.Sources[1].Roles)
	}
	if len(r.Stages) != 2 || r.Stages[0].Config.(*ExactDedup).Key != "prompt" || r.Stages[1].Config.(*ExactDedup).Key != "conversation" {
		t.Errorf("stages = %+v", r.Stages)
	}
	if r.Stages[0].Line != 13 {
		t.Errorf("stage line = %d, want 13", r.Stages[0].Line)
	}
	o := r.Output
	if o.Shards != 4 || o.TestShards != 1 || o.Compression != "zstd" || o.TestRatio != 0.1 || o.SplitSeed != "sieve" {
		t.Errorf("output = %+v", o)
	}
	c, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(c, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c), `"stages":[{"exact_dedup":{"key":"prompt"}},{"exact_dedup":{"key":"conversation"}}]`) {
		t.Errorf("canonical = %s", c)
	}
	r2, _ := Parse("r.yaml", []byte(good))
	c2, _ := r2.Canonical()
	if string(c) != string(c2) {
		t.Error("canonical form not deterministic")
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "name: x\nsource: []\n", "r.yaml:2: source: unknown key"},
		{"unknown source key", "name: x\nsources:\n  - name: a\n    path: p\n    fromat: alpaca\n", "r.yaml:5: sources[0].fromat: unknown key"},
		{"bad format", "name: x\nsources:\n  - name: a\n    path: p\n    format: csv\n", `r.yaml:5: sources[0].format: unknown format "csv"`},
		{"missing path", "name: x\nsources:\n  - name: a\n", "r.yaml:3: sources[0].path: required"},
		{"duplicate source", "name: x\nsources:\n  - {name: a, path: p}\n  - {name: a, path: q}\n", `r.yaml:4: sources[1].name: "a" is also the name of sources[0]`},
		{"bad ratio", "name: x\nsources: [{name: a, path: p}]\noutput:\n  test_ratio: 1.5\n", "r.yaml:4: output.test_ratio: must be in [0, 1)"},
		{"bad shards type", "name: x\nsources: [{name: a, path: p}]\noutput:\n  shards: many\n", "r.yaml:4: output.shards: cannot unmarshal"},
		{"negative limit", "name: x\nsources:\n  - name: a\n    path: p\n    limit: -1\n", "r.yaml:5: sources[0].limit: must be ≥ 0"},
		{"unknown stage", "name: x\nsources: [{name: a, path: p}]\nstages:\n  - fuzzy_dedupe: {}\n", `r.yaml:4: stages[0]: unknown stage "fuzzy_dedupe"`},
		{"bad stage key", "name: x\nsources: [{name: a, path: p}]\nstages:\n  - exact_dedup: {kee: prompt}\n", "r.yaml:4: stages[0].exact_dedup.kee: unknown key"},
		{"bad stage value", "name: x\nsources: [{name: a, path: p}]\nstages:\n  - exact_dedup: {key: answer}\n", `r.yaml:4: stages[0].exact_dedup.key: unknown dedup key "answer"`},
		{"bad role", "name: x\nsources:\n  - name: a\n    path: p\n    roles: {bot: robot}\n", `r.yaml:5: sources[0].roles: "bot" maps to "robot"`},
		{"bad codec", "name: x\nsources: [{name: a, path: p}]\noutput: {compression: lz5}\n", `r.yaml:3: output.compression: unknown codec "lz5"`},
		{"no sources", "name: x\n", "r.yaml:1: sources: at least one source is required"},
		{"bad name", "name: ../x\nsources: [{name: a, path: p}]\n", `r.yaml:1: name: "../x"`},
		{"empty", "", "r.yaml: empty recipe"},
		{"license not allowed", "name: x\nallow_licenses: [mit, apache-2.0]\nsources:\n  - {name: a, path: p, license: mit}\n  - {name: b, path: q, license: cc-by-nc-4.0}\n", `r.yaml:5: sources[1].license: source b has license cc-by-nc-4.0, not in allow_licenses [mit apache-2.0]`},
		{"weights partial", "name: x\nsources:\n  - {name: a, path: p, weight: 1}\n  - {name: b, path: q}\n", "r.yaml:2: sources: weight: give every source a weight, or none"},
		{"syntax", "name: [x\n", "r.yaml: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("r.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	r := &Recipe{Dir: "/recipes"}
	for in, want := range map[string]string{"data/a.jsonl": "/recipes/data/a.jsonl", "/abs/a.jsonl": "/abs/a.jsonl", "gs://b/a.jsonl": "gs://b/a.jsonl"} {
		if got := r.ResolvePath(in); got != want {
			t.Errorf("ResolvePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOutputReport: output.report is on by default, off with false, and
// not part of the canonical recipe (the content id).
func TestOutputReport(t *testing.T) {
	on, err := Parse("r.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	off, err := Parse("r.yaml", []byte(good+"  report: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !on.Output.WantsReport() || off.Output.WantsReport() {
		t.Errorf("wants report: default %v, report: false %v", on.Output.WantsReport(), off.Output.WantsReport())
	}
	a, _ := on.Canonical()
	b, _ := off.Canonical()
	if string(a) != string(b) {
		t.Errorf("output.report changes the canonical recipe:\n%s\n%s", a, b)
	}
	if _, err := Parse("r.yaml", []byte(good+"  report: maybe\n")); err == nil || !strings.Contains(err.Error(), "output.report") {
		t.Errorf("report: maybe: %v", err)
	}
}
