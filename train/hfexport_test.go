package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
)

// TestExportForHFCheck writes what testdata/hf_check.py compares with
// transformers and peft, into the directory $SIEVE_HF_EXPORT (skipped
// when unset): a model trained from scratch (A), a LoRA fine-tune of it
// (B, merged, and B/adapter), and what sieve computes on each.
//
//	SIEVE_HF_EXPORT=/tmp/hf go test ./train/ -run TestExportForHFCheck
//	python3 train/testdata/hf_check.py /tmp/hf      # where transformers is
func TestExportForHFCheck(t *testing.T) {
	root := os.Getenv("SIEVE_HF_EXPORT")
	if root == "" {
		t.Skip("SIEVE_HF_EXPORT not set")
	}
	store, ref := tinyData(t)
	a, b := filepath.Join(root, "A"), filepath.Join(root, "B")
	for _, d := range []string{a, b} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Run(context.Background(), Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: a,
		Config: Config{LearningRate: 1e-2, WarmupSteps: 2, Epochs: 4, SeqLen: 128, BatchSize: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{Store: store, Data: ref, Model: a, Output: b,
		LoRA:   &model.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "up_proj"}},
		Config: Config{LearningRate: 2e-2, MaxSteps: 10, SeqLen: 128, BatchSize: 4}}); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"A": a, "B": b, "Badapter": filepath.Join(b, AdapterDir)} {
		exportExpected(t, dir, filepath.Join(root, name+"_expected.json"))
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "optim_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "optim_golden.json"), golden, 0o644); err != nil {
		t.Fatal(err)
	}
}

// exportExpected writes, for the model in dir, the ids and assistant
// mask of a conversation, the loss and logits of one forward pass over
// it, and the greedy continuation of its first turn.
func exportExpected(t *testing.T, dir, out string) {
	t.Helper()
	g, err := LoadGenerator(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []datasets.Message{
		{Role: "system", Content: "You add numbers."},
		{Role: "user", Content: "What is 4 + 5?"},
		{Role: "assistant", Content: "four plus five is 9.  "},
		{Role: "user", Content: "And 2 + 2?"},
		{Role: "assistant", Content: "two plus two is 4."},
	}
	ids, mask := g.Tok.Chat().Encode(msgs)
	m, err := model.New(g.P, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	x := model.NewBatch(1, len(ids))
	if err := x.SetRow(0, model.Sample{IDs: ids, LossMask: mask}); err != nil {
		t.Fatal(err)
	}
	loss, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	logits := append([]float32(nil), m.Logits()...)
	prompt := g.Tok.Chat().EncodePrompt(msgs[:2])
	greedy, err := g.Generate(prompt, SampleConfig{MaxNewTokens: 24}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"messages": msgs, "ids": ids, "mask": mask, "loss": loss, "logits": logits,
		"prompt_ids": prompt, "greedy": greedy, "greedy_text": g.Tok.Decode(greedy), "text": g.Tok.Chat().Render(msgs, false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: loss %.4f, greedy %q", dir, loss, g.Tok.Decode(greedy))
}
