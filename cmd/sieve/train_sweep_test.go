package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestTrainSweepMergeEvalExport runs, as a user would: a sweep of a tiny
// model (2 learning rates × 2 sequence lengths), LoRA on its best trial
// named by a relative path, 'sieve train merge' of the adapter, 'sieve
// eval' of the run, its adapter and the merged model side by side (the
// same loss: the same weights), generation with and without the
// key/value cache (the same reply), and both exports.
func TestTrainSweepMergeEvalExport(t *testing.T) {
	dir := t.TempDir()
	store := sumsStore(t, dir, 64, 12)
	cfg := tinyConfig(t, dir, 2, 128)
	sweep := filepath.Join(dir, "sweep")
	r := sieve(t, "train", "sweep", "--store", store, "--data", "sums", "--init", cfg, "--vocab-size", "300", "--lr", "3e-3,2e-2",
		"--seq-len", "64,96", "--epochs", "2", "--batch-size", "4", "-o", sweep)
	if r.code != 0 {
		t.Fatalf("train sweep: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var table struct {
		Trials []struct {
			Name     string   `json:"name"`
			EvalLoss *float64 `json:"eval_loss"`
		} `json:"trials"`
		BestName string `json:"best_name"`
	}
	data, err := os.ReadFile(filepath.Join(sweep, "sweep.json"))
	if err != nil || json.Unmarshal(data, &table) != nil || len(table.Trials) != 4 || table.BestName == "" {
		t.Fatalf("sweep.json: %v\n%s", err, data)
	}
	if !strings.Contains(r.stdout, "best: "+filepath.Join(sweep, table.BestName)) || !strings.Contains(r.stdout, "| **"+table.BestName+"** |") {
		t.Errorf("sweep output:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(sweep, "sweep.png")); err != nil {
		t.Error(err)
	}

	wd, _ := os.Getwd()
	base, _ := filepath.Rel(wd, filepath.Join(sweep, table.BestName))
	run := filepath.Join(dir, "lora")
	if r := sieve(t, "train", "--store", store, "--data", "sums", "--model", base, "--lora-r", "4", "--lora-alpha", "8", "--lr", "2e-2",
		"--max-steps", "4", "--seq-len", "96", "--output", run, "--quiet"); r.code != 0 {
		t.Fatalf("train --lora-r: exit %d\n%s", r.code, r.stderr)
	}
	merged := filepath.Join(dir, "merged")
	if r := sieve(t, "train", "merge", filepath.Join(run, "adapter"), "-o", merged); r.code != 0 || !strings.Contains(r.stdout, "merged") {
		t.Fatalf("train merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ev := sieve(t, "eval", run, filepath.Join(run, "adapter"), merged, "--store", store, "--data", "sums", "--seq-len", "96", "--json")
	if ev.code != 0 {
		t.Fatalf("eval: exit %d\n%s", ev.code, ev.stderr)
	}
	var losses []float64
	for _, line := range strings.Split(strings.TrimSpace(ev.stdout), "\n") {
		var e struct{ Loss float64 }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, e.Loss)
	}
	if len(losses) != 3 || losses[0] != losses[1] || losses[1] != losses[2] {
		t.Errorf("eval of the run, its adapter and the merged model: %v, want one loss", losses)
	}
	if human := sieve(t, "eval", run, merged, "--store", store, "--data", "sums"); human.code != 0 || !strings.Contains(human.stdout, "perplexity") {
		t.Errorf("eval: exit %d\n%s%s", human.code, human.stdout, human.stderr)
	}
	g1 := sieve(t, "generate", "--model", merged, "--max-new-tokens", "16", "What is 2 + 3?")
	g2 := sieve(t, "generate", "--model", merged, "--max-new-tokens", "16", "--no-kv-cache", "What is 2 + 3?")
	if g1.code != 0 || g1.stdout != g2.stdout {
		t.Errorf("generate with the cache %q, without %q (%s)", g1.stdout, g2.stdout, g1.stderr)
	}

	script := filepath.Join(dir, "train_trl.py")
	if r := sieve(t, "export", "trl", "sums@latest", "--store", store, "--model", base, "--lr", "2e-4", "--lora-r", "8", "-o", script); r.code != 0 {
		t.Fatalf("export trl: exit %d\n%s", r.code, r.stderr)
	}
	if out, err := exec.Command("python3", "-m", "py_compile", script).CombinedOutput(); err != nil {
		t.Errorf("py_compile: %v\n%s", err, out)
	}
	ax := sieve(t, "export", "axolotl", "sums", "--store", store, "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--lr", "2e-5", "--epochs", "2")
	var y map[string]any
	if ax.code != 0 || yaml.Unmarshal([]byte(ax.stdout), &y) != nil || y["base_model"] != "Qwen/Qwen2.5-0.5B-Instruct" || y["num_epochs"] != 2 || y["output_dir"] != "runs/sums-axolotl" {
		t.Errorf("export axolotl: exit %d, %v\n%s%s", ax.code, y, ax.stdout, ax.stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "sweep", "--store", store, "--data", "sums", "--init", cfg}, "nothing to sweep"},
		{[]string{"train", "sweep", "--store", store, "--data", "sums", "--init", cfg, "--lora-r", "2,4"}, "give --model"},
		{[]string{"train", "merge", dir, "-o", filepath.Join(dir, "x")}, "not a LoRA adapter"},
		{[]string{"export", "deepspeed", "sums", "--model", base}, "axolotl or trl"},
		{[]string{"export", "trl", "sums", "--store", store}, "--model"},
		{[]string{"eval", merged}, "--data"},
	} {
		r := sieve(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "sieve: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
