package recipe

import (
	"strings"
	"testing"
)

// TestGenerationStageErrors: generation stages are checked strictly, with
// the file, line and key of the problem.
func TestGenerationStageErrors(t *testing.T) {
	ep := `{name: e, kind: other, base_url: "http://localhost:1/v1", model: m}`
	for _, tc := range []struct{ stage, want string }{
		{`evol_instruct: {operations: [deepen]}`, "r.yaml:4: stages[0].evol_instruct.endpoint: evol_instruct needs an endpoint"},
		{`evol_instruct: {endpoint: ` + ep + `, mode: both}`, `stages[0].evol_instruct.mode: want add or replace, got "both"`},
		{`evol_instruct: {endpoint: ` + ep + `, operations: [shorten]}`, "shorten"},
		{`chain_of_thought: {endpoint: ` + ep + `, style: poem}`, `style "poem"`},
		{`chain_of_thought: {endpoint: ` + ep + `, tone: dry}`, "stages[0].chain_of_thought.tone: unknown key"},
		{`doc_qa: {endpoint: ` + ep + `}`, "stages[0].doc_qa.documents: at least one document"},
		{`self_instruct: {endpoint: ` + ep + `}`, "stages[0].self_instruct.instructions"},
		{`self_instruct: {endpoint: ` + ep + `, instructions: 10, seeds_per_prompt: 2, machine_per_prompt: 2}`, "machine_per_prompt"},
	} {
		_, err := Parse("r.yaml", []byte("name: x\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - "+tc.stage+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.stage, err, tc.want)
		}
	}
	r, err := Parse("r.yaml", []byte("name: x\nsources: [{name: s, path: a.jsonl}]\nstages:\n  - evol_instruct: {endpoint: "+ep+", per_sample: 2}\n  - chain_of_thought: {endpoint: "+ep+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev, cot := r.Stages[0].Config.(*EvolInstruct), r.Stages[1].Config.(*ChainOfThought)
	if ev.Mode != "add" || ev.PerSample != 2 || cot.Mode != "replace" || ev.LLMEndpoint().Model != "m" {
		t.Errorf("defaults: evol %+v, cot mode %q", ev, cot.Mode)
	}
}
