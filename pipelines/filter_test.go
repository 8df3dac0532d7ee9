package pipelines

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// TestFilterPIIDecontamStages runs the per-sample stages on prism, placed
// both before and after a dedup stage (after it they run in the shard
// writers), and checks the funnel, the rejected records and the redactions.
func TestFilterPIIDecontamStages(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		`{"prompt":"Write to me at jane.doe@acme.io please.","completion":"I will write to jane.doe@acme.io with the details you asked for today."}`,
		`{"prompt":"Tell me a fact about the Moon.","completion":"As an AI language model, I cannot assist with that request."}`,
		`{"prompt":"Which planet is the largest in the solar system?","completion":"Jupiter is the largest planet in the solar system by both mass and volume."}`,
		`{"prompt":"Which planet is the largest in the solar system?","completion":"Jupiter is the largest planet in the solar system by both mass and volume."}`,
		`{"prompt":"Name a colour.","completion":"Blue is a colour that many people like to see in the sky on a clear day."}`,
	}
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bench.jsonl"), []byte(`{"id":"q7","question":"Name a colour.","answer":"Blue is a colour that many people like to see in the sky"}`+"\n"), 0o644)
	yaml := `name: f
sources: [{name: s, path: in.jsonl}]
stages:
  - pii
  - exact_dedup
  - filter: {language: {languages: [en]}}
  - decontaminate: {files: [bench.jsonl], n: 8}
`
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	f := res.Manifest.Funnel
	if f.Read != 5 || f.Written != 2 {
		t.Fatalf("funnel = %+v", f)
	}
	byStage := map[string]datasets.StageFunnel{}
	for _, st := range f.Stages {
		byStage[st.Stage] = st
	}
	if m := byStage["pii"].Modified; len(m) != 1 || m[0] != (datasets.Count{Reason: "pii.email", Count: 2}) {
		t.Errorf("pii modified = %+v", m)
	}
	if d := byStage["filter"].Dropped; len(d) != 1 || !strings.HasPrefix(d[0].Reason, "refusal") {
		t.Errorf("filter dropped = %+v", d)
	}
	if d := byStage["decontaminate"].Dropped; len(d) != 1 || d[0].Reason != "benchmark_overlap" {
		t.Errorf("decontaminate dropped = %+v", d)
	}
	data, _ := os.ReadFile(filepath.Join(res.Dir, "rejected.jsonl"))
	var sawRefusal, sawBench bool
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r datasets.Rejected
		json.Unmarshal([]byte(l), &r)
		if r.Stage == "filter" && strings.Contains(r.Detail, "threshold") {
			sawRefusal = true
		}
		if r.Stage == "decontaminate" && strings.Contains(r.Survivor, "q7") {
			sawBench = true
		}
	}
	if !sawRefusal || !sawBench {
		t.Errorf("rejected lacks the rule detail or the benchmark item:\n%s", data)
	}
	// The redacted sample is written with its new content id.
	v, err := datasets.Store{Root: filepath.Join(dir, "store")}.OpenVersion(t.Context(), datasets.Ref{Name: "f", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	v.ReadSamples(t.Context(), func(_ string, s *datasets.Sample) error {
		if strings.Contains(s.Messages[0].Content, "@") || s.ID != datasets.ContentID(s.Messages) {
			t.Errorf("sample %s not redacted or id stale: %q", s.ID, s.Messages[0].Content)
		}
		return nil
	})
}
