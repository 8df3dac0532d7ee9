package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// commitVersion writes a dataset version with train and test splits
// straight through the datasets API (no pipeline run).
func commitVersion(t *testing.T, root, name string, splits map[string][][]datasets.Message) {
	t.Helper()
	st := datasets.Store{Root: root}
	staging := st.NewStaging(name)
	if err := os.MkdirAll(filepath.Join(staging, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &datasets.Manifest{Format: datasets.ManifestFormat, Name: name, Recipe: []byte("{}")}
	for _, split := range []string{"train", "test"} {
		var buf bytes.Buffer
		w, err := datasets.NewShardWriter(&buf, datasets.ShardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, msgs := range splits[split] {
			s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "t", File: "t.jsonl", Index: int64(i)}}
			if err := w.Write(&s); err != nil {
				t.Fatal(err)
			}
		}
		ss, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		path := "data/" + split + "-00000-of-00001.parquet"
		if err := os.WriteFile(filepath.Join(staging, path), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		m.Splits = append(m.Splits, datasets.Split{Name: split, Rows: ss.Rows, Bytes: ss.Bytes,
			Shards: []datasets.Shard{{Path: path, Rows: ss.Rows, Bytes: ss.Bytes, SHA256: ss.SHA256}}})
	}
	if _, err := st.Commit(context.Background(), staging, m); err != nil {
		t.Fatal(err)
	}
}

// sumsStore commits the sums data set (train samples, and test samples
// from offset 5) as sums@v1 into DIR/store and returns the store's path.
func sumsStore(t *testing.T, dir string, train, test int) string {
	t.Helper()
	store := filepath.Join(dir, "store")
	commitVersion(t, store, "sums", map[string][][]datasets.Message{"train": sums(train, 0), "test": sums(test, 5)})
	return store
}

// tinyConfig writes the config of a tiny Llama (hidden 32, 2 heads,
// vocabulary 300, tied embeddings) with the given layers and positions
// to DIR/tiny.json and returns its path.
func tinyConfig(t *testing.T, dir string, layers, positions int) string {
	t.Helper()
	cfg := filepath.Join(dir, "tiny.json")
	js := fmt.Sprintf(`{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": %d, "num_attention_heads": 2,
"vocab_size": 300, "max_position_embeddings": %d, "tie_word_embeddings": true}`, layers, positions)
	if err := os.WriteFile(cfg, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func sums(n, offset int) [][]datasets.Message {
	out := make([][]datasets.Message, n)
	for i := range out {
		a, b := (i+offset)%10, (i*7+offset)%10
		out[i] = []datasets.Message{
			{Role: "user", Content: fmt.Sprintf("What is %d + %d?", a, b)},
			{Role: "assistant", Content: fmt.Sprintf("%d plus %d is %d.", a, b, a+b)},
		}
	}
	return out
}

// TestTrainAndGenerate trains a tiny model from scratch for a few steps
// with the CLI, checks the JSON log, the checkpoint (which loads back),
// resumes from it, samples from the result, and runs the same training
// from a recipe's train: section.
func TestTrainAndGenerate(t *testing.T) {
	dir := t.TempDir()
	store := sumsStore(t, dir, 64, 12)
	cfg := tinyConfig(t, dir, 2, 128)
	out := filepath.Join(dir, "run")
	args := []string{"train", "--store", store, "--data", "sums@latest", "--init", cfg, "--vocab-size", "300",
		"--epochs", "2", "--seq-len", "96", "--batch-size", "4", "--lr", "1e-2", "--warmup-steps", "2", "--log-every", "2",
		"--save-every", "5", "--output", out}
	r := sieve(t, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("train: exit %d\n%s", r.code, r.stderr)
	}
	var evals []float64
	steps := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		if v, ok := rec["eval_loss"].(float64); ok {
			evals = append(evals, v)
		}
		if _, ok := rec["loss"]; ok {
			for _, k := range []string{"step", "epoch", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("log line without %s: %s", k, line)
				}
			}
			steps = int(rec["step"].(float64))
		}
	}
	if len(evals) != 3 || !(evals[2] < evals[0]) {
		t.Errorf("eval losses %v: want 3 (start, 2 epochs), falling", evals)
	}
	log, _ := os.ReadFile(filepath.Join(out, "log.jsonl"))
	if string(log) != r.stdout {
		t.Error("log.jsonl differs from the --json output")
	}
	// The final model and a checkpoint, in the Hugging Face layout.
	for _, d := range []string{out, filepath.Join(out, "checkpoint-5")} {
		p, err := model.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.LoadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if p.Config.VocabSize != tok.VocabSize() {
			t.Errorf("%s: config vocab %d, tokenizer %d", d, p.Config.VocabSize, tok.VocabSize())
		}
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-5", "optimizer.safetensors")); err != nil {
		t.Error(err)
	}

	// Resuming from the latest checkpoint ends at the same step.
	res := sieve(t, append(args, "--resume")...)
	if res.code != 0 || !strings.Contains(res.stdout, "resuming at step") || !strings.Contains(res.stdout, fmt.Sprintf("saved %s: %d steps", out, steps)) {
		t.Errorf("resume: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	g := sieve(t, "generate", "--model", out, "--max-new-tokens", "12", "What is 2 + 3?")
	if g.code != 0 || strings.TrimSpace(g.stdout) == "" {
		t.Errorf("generate: exit %d, stdout %q\n%s", g.code, g.stdout, g.stderr)
	}
	gj := sieve(t, "generate", "--model", out, "--max-new-tokens", "5", "--temperature", "0.9", "--top-p", "0.8", "--json", "What is 1 + 1?")
	var reply struct {
		Reply     string `json:"reply"`
		NewTokens int    `json:"new_tokens"`
	}
	if gj.code != 0 || json.Unmarshal([]byte(gj.stdout), &reply) != nil || reply.NewTokens == 0 {
		t.Errorf("generate --json: exit %d, stdout %q\n%s", gj.code, gj.stdout, gj.stderr)
	}

	// LoRA on the model just trained: the merged model and the adapter
	// both generate.
	lora := filepath.Join(dir, "lora")
	lr := sieve(t, "train", "--store", store, "--data", "sums", "--model", out, "--lora-r", "4", "--lora-targets", "q_proj,v_proj",
		"--max-steps", "2", "--seq-len", "96", "--output", lora, "--quiet")
	if lr.code != 0 {
		t.Fatalf("train --lora-r: exit %d\n%s", lr.code, lr.stderr)
	}
	for _, d := range []string{lora, filepath.Join(lora, "adapter")} {
		if g := sieve(t, "generate", "--model", d, "--max-new-tokens", "4", "What is 2 + 2?"); g.code != 0 {
			t.Errorf("generate --model %s: exit %d\n%s", d, g.code, g.stderr)
		}
	}

	// The same run from a recipe's train: section (flags override it).
	recipeFile := filepath.Join(dir, "sums.yaml")
	os.WriteFile(recipeFile, []byte(`name: sums
sources: [{name: a, path: a.jsonl}]
output: {store: store}
train:
  init: tiny.json
  vocab_size: 300
  output: run2
  seq_len: 96
  batch_size: 4
  learning_rate: 1e-2
  epochs: 5
`), 0o644)
	rr := sieve(t, "train", recipeFile, "--max-steps", "3", "--quiet")
	if rr.code != 0 || rr.stdout != "" {
		t.Fatalf("train RECIPE: exit %d, stdout %q\n%s", rr.code, rr.stdout, rr.stderr)
	}
	state, err := os.ReadFile(filepath.Join(dir, "run2", "trainer_state.json"))
	if err != nil || !strings.Contains(string(state), `"global_step": 3`) || !strings.Contains(string(state), `"seq_len": 96`) {
		t.Errorf("recipe run state: %v\n%s", err, state)
	}
}

func TestTrainBadInputsExitWithOneLine(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	commitVersion(t, store, "sums", map[string][][]datasets.Message{"train": sums(4, 0), "test": sums(2, 1)})
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nsources: [{name: a, path: p}]\ntrain:\n  epoch: 3\n"), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train", "--store", store, "--data", "sums"}, 2, "no base model"},
		{[]string{"train", "--store", store, "--data", "sums", "--model", filepath.Join(dir, "nowhere")}, 2, "--model"},
		{[]string{"train", "--store", store, "--data", "a/b", "--init", bad}, 2, "--data"},
		{[]string{"train", "--store", store, "--data", "sums", "--init", bad, "--lr", "-1"}, 2, "learning rate"},
		{[]string{"train", "--store", store, "--data", "sums", "--init", bad, "--epochs", "x"}, 2, "invalid argument"},
		{[]string{"train", "--store", store, "--data", "other", "--init", bad}, 1, "other"},
		{[]string{"train", "--store", store, "--data", "sums", "--init", bad}, 1, "config"},
		{[]string{"train", bad}, 2, "bad.yaml:4: train.epoch: unknown key"},
		{[]string{"train", "--store", store, "--data", "sums", "--resume", "--output", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"train", "--store", store, "--data", "sums", "--init", bad, "--lora-r", "4"}, 2, "LoRA adapts a base model"},
		{[]string{"train", "--store", store, "--data", "sums", "--model", dir, "--qlora"}, 2, "go with --lora-r"},
		{[]string{"generate", "hello"}, 2, "--model"},
		{[]string{"generate", "--model", filepath.Join(dir, "nowhere"), "hello"}, 2, "--model"},
		{[]string{"generate", "--model", dir, "--top-p", "2", "hello"}, 2, "top-p"},
		{[]string{"generate", "--model", dir, "hello"}, 1, "config.json"},
	}
	for _, tc := range tests {
		r := sieve(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || len(lines) != 1 || !strings.HasPrefix(lines[0], "sieve: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
