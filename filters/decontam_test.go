package filters

import (
	"fmt"
	"strings"
	"testing"
)

const benchJSONL = `{"task_id": "HumanEval/0", "prompt": "def has_close_elements(numbers, threshold):\n    \"\"\" Check if in given list of numbers, are any two numbers closer to each other than given threshold.\"\"\"\n", "canonical_solution": "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n            if idx != idx2:\n                distance = abs(elem - elem2)\n                if distance < threshold:\n                    return True\n    return False\n"}
{"task_id": "HumanEval/1", "prompt": "def truncate_number(number: float) -> float:\n    \"\"\" Given a positive floating point number, it can be decomposed into an integer part and decimals.\"\"\"\n", "canonical_solution": "    return number % 1.0\n"}
`

const benchJSON = `[
 {"id": 7, "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May. #### 72"},
 {"id": 8, "question": "Which planet in our solar system has the most moons today?", "answer": "Saturn"},
 {"id": 9, "foo": "no known fields"}
]`

func TestLoadBenchmark(t *testing.T) {
	items, err := LoadBenchmark("humaneval", strings.NewReader(benchJSONL), DecontamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Name() != "humaneval:HumanEval/0" || !strings.Contains(items[1].Answer, "number % 1.0") {
		t.Errorf("items %+v", items)
	}
	items, err = LoadBenchmark("gsm8k", strings.NewReader(benchJSON), DecontamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].ID != "7" || items[1].Answer != "Saturn" {
		t.Errorf("items %+v", items)
	}
	// Custom field names.
	items, err = LoadBenchmark("x", strings.NewReader(`{"q": "a question", "a": ["one", "two"]}`), DecontamConfig{QuestionFields: []string{"q"}, AnswerFields: []string{"a"}})
	if err != nil || len(items) != 1 || items[0].Answer != "one\ntwo" || items[0].ID != "0" {
		t.Errorf("items %+v, err %v", items, err)
	}
	if _, err := LoadBenchmark("x", strings.NewReader(`{"foo": 1}`), DecontamConfig{}); err == nil || !strings.Contains(err.Error(), "question field") {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadBenchmark("x", strings.NewReader("{\"question\": \"a\"}\n{oops"), DecontamConfig{}); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadBenchmark("x", strings.NewReader("  "), DecontamConfig{}); err == nil {
		t.Error("empty file accepted")
	}
}

func TestDecontaminator(t *testing.T) {
	a, _ := LoadBenchmark("gsm8k", strings.NewReader(benchJSON), DecontamConfig{})
	b, _ := LoadBenchmark("humaneval", strings.NewReader(benchJSONL), DecontamConfig{})
	d := NewDecontaminator(append(a, b...), 13)
	q := strings.Fields("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.")
	cases := []struct {
		name, prompt, response string
		want                   string
	}{
		{"exact 13 words, other case and punctuation", "Quick one: " + strings.ToUpper(strings.Join(q[:13], " ")) + "!!", "ok", "gsm8k:7"},
		{"12 words is not enough", strings.Join(q[:12], " ") + " and something else entirely different here", "ok", ""},
		{"answer in the response", "Solve it.", "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips", "gsm8k:7"},
		{"short item matched whole", "Tell me: which planet in our solar system has the most moons today? Thanks.", "Saturn.", "gsm8k:8"},
		{"short item needs all its words", "Which planet in our solar system has the most moons?", "Saturn.", ""},
		{"code solution", "Write it.", "```python\n    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n            if idx != idx2:\n```", "humaneval:HumanEval/0"},
		{"unrelated", "What is the capital of France?", "Paris is the capital of France.", ""},
	}
	for _, tc := range cases {
		item, gram, ok := d.Match(qa(tc.prompt, tc.response))
		if ok != (tc.want != "") || item != tc.want {
			t.Errorf("%s: got %q %q %v, want %q", tc.name, item, gram, ok, tc.want)
		}
		if ok && len(strings.Fields(gram)) < 8 {
			t.Errorf("%s: n-gram %q", tc.name, gram)
		}
	}
	v := d.Filter().Check(qa("Quick one: "+strings.Join(q[:13], " "), "ok"))
	if v.Keep || v.Rule != "decontam.ngram_overlap" || !strings.Contains(v.Detail, "gsm8k:7") || !strings.Contains(v.Detail, "Natalia sold clips to 48") {
		t.Errorf("verdict %+v", v)
	}
}

// TestDecontamBoilerplate: an n-gram shared by more than MaxItemsPerNGram
// items is an instruction template, not contamination.
func TestDecontamBoilerplate(t *testing.T) {
	var items []Item
	tpl := "Answer the following multiple choice question by giving the letter of the correct option only."
	for i := 0; i <= MaxItemsPerNGram; i++ {
		items = append(items, Item{Benchmark: "mc", ID: fmt.Sprint(i), Question: tpl + fmt.Sprintf(" Question %d: what is %d plus %d?", i, i, i)})
	}
	d := NewDecontaminator(items, 13)
	if _, _, ok := d.Match(qa(tpl, "B")); ok {
		t.Error("template matched")
	}
	few := NewDecontaminator(items[:3], 13)
	if item, _, ok := few.Match(qa(tpl, "B")); !ok || item != "mc:0" {
		t.Errorf("shared by 3 items: %q %v", item, ok)
	}
}
