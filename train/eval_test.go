package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

// TestEvaluate trains a tiny model with a checkpoint at step 6 and
// evaluates the checkpoint and the final model side by side: each loss
// is the eval_loss the run logged at its step, to the bit.
func TestEvaluate(t *testing.T) {
	store, ref := tinyData(t)
	out := t.TempDir()
	res, err := Run(context.Background(), Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: out,
		Config: Config{LearningRate: 1e-2, MaxSteps: 12, EvalEvery: 6, SaveEvery: 6, SeqLen: 128, BatchSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	logged := map[int]float64{}
	for _, e := range res.Evals {
		logged[e.Step] = *e.EvalLoss
	}
	got, err := Evaluate(context.Background(), EvalOptions{Store: store, Data: ref, Checkpoints: []string{filepath.Join(out, "checkpoint-6"), out}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d results", len(got))
	}
	for i, step := range []int{6, 12} {
		r := got[i]
		t.Logf("%s: loss %.4f perplexity %.2f (logged %.4f)", r.Checkpoint, r.Loss, r.Perplexity, logged[step])
		if r.Loss != logged[step] || r.Perplexity != math.Exp(r.Loss) || r.SeqLen != 128 || r.Stats.Samples != 16 {
			t.Errorf("%s: %+v, logged eval loss %v", r.Checkpoint, r, logged[step])
		}
	}
	if !(got[1].Loss < got[0].Loss) {
		t.Errorf("final %.4f not below step 6's %.4f", got[1].Loss, got[0].Loss)
	}
	if _, err := Evaluate(context.Background(), EvalOptions{Store: store, Data: ref, Checkpoints: []string{t.TempDir()}}); err == nil {
		t.Error("an empty directory: no error")
	}
}
