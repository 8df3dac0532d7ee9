package train

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// exportBase writes a base model's tokenizer (all Export reads of a
// local model) and returns the directory.
func exportBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tok, err := tokenizer.Train(func(yield func(string) bool) { yield("one plus two is three") }, tokenizer.TrainConfig{VocabSize: 280})
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SaveDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestExportAxolotl: the YAML loads (yaml.v3) with the base model as
// given, the version's shards (existing files), the hyperparameters and
// LoRA settings, and the chat template sieve renders with.
func TestExportAxolotl(t *testing.T) {
	store, ref := tinyData(t)
	base := exportBase(t)
	opt := Options{Store: store, Data: ref, Model: base, Output: "out/axo", LoRA: &model.LoRAConfig{Rank: 16, Alpha: 32, Targets: []string{"q_proj", "v_proj"}},
		Config: Config{LearningRate: 2e-4, MinLRRatio: 0.1, WarmupRatio: 0.03, Epochs: 2, SeqLen: 512, BatchSize: 4, GradAccum: 8, WeightDecay: 0.01, Seed: 7}}
	data, err := Export(context.Background(), ExportAxolotl, opt)
	if err != nil {
		t.Fatal(err)
	}
	var y map[string]any
	if err := yaml.Unmarshal(data, &y); err != nil {
		t.Fatalf("YAML does not load: %v\n%s", err, data)
	}
	want := map[string]any{"base_model": base, "learning_rate": 2e-4, "cosine_min_lr_ratio": 0.1, "warmup_ratio": 0.03, "num_epochs": 2,
		"sequence_len": 512, "micro_batch_size": 4, "gradient_accumulation_steps": 8, "weight_decay": 0.01, "seed": 7, "adapter": "lora",
		"lora_r": 16, "lora_alpha": 32, "sample_packing": true, "train_on_inputs": false, "output_dir": "out/axo", "max_grad_norm": 0,
		"adam_beta2": 0.999, "chat_template": "jinja"}
	for k, v := range want {
		if got := y[k]; fmtAny(got) != fmtAny(v) {
			t.Errorf("%s: %v, want %v", k, got, v)
		}
	}
	tok, _ := tokenizer.LoadDir(base)
	if y["chat_template_jinja"] != tok.Chat().Jinja() || !strings.Contains(tok.Chat().Jinja(), "generation") {
		t.Errorf("chat_template_jinja %q", y["chat_template_jinja"])
	}
	if fmtAny(y["lora_target_modules"]) != "[q_proj v_proj]" {
		t.Errorf("lora_target_modules %v", y["lora_target_modules"])
	}
	for _, key := range []string{"datasets", "test_datasets"} {
		ds, _ := y[key].([]any)
		if len(ds) != 1 {
			t.Fatalf("%s: %v", key, y[key])
		}
		d := ds[0].(map[string]any)
		p, _ := d["path"].(string)
		if _, err := os.Stat(p); err != nil || !filepath.IsAbs(p) || d["ds_type"] != "parquet" || d["type"] != "chat_template" ||
			d["field_messages"] != "messages" || fmtAny(d["roles_to_train"]) != "[assistant]" {
			t.Errorf("%s: %v (%v)", key, d, err)
		}
	}
}

func fmtAny(v any) string {
	data, _ := json.Marshal(v)
	return strings.Trim(strings.ReplaceAll(strings.ReplaceAll(string(data), `"`, ""), ",", " "), "")
}

// TestExportTRL: the script is valid Python (py_compile), and its
// literals, read back by Python's ast, hold the model as given, the
// shards, the chat template and the hyperparameters.
func TestExportTRL(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	store, ref := tinyData(t)
	base := exportBase(t)
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"full", Options{Model: "Qwen/Qwen2.5-0.5B-Instruct", Output: "out/trl", Config: Config{LearningRate: 2e-5, Epochs: 3, SeqLen: 1024, BatchSize: 8, WarmupSteps: 10, EvalEvery: 50}}},
		{"qlora", Options{Model: base, Output: "out/q", QLoRA: true, LoRA: &model.LoRAConfig{Rank: 8, RSLoRA: true},
			Config: Config{LearningRate: 2e-4, MinLRRatio: 0.1, MaxSteps: 100, SeqLen: 256, BatchSize: 2, GradAccum: 4, Pad: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.Store, opt.Data = store, ref
			data, err := Export(context.Background(), ExportTRL, opt)
			if err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(t.TempDir(), "train_trl.py")
			if err := os.WriteFile(script, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(py, "-m", "py_compile", script).CombinedOutput(); err != nil {
				t.Fatalf("py_compile: %v\n%s\n%s", err, out, data)
			}
			const read = `import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
out = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        out[node.targets[0].id] = ast.literal_eval(node.value)
print(json.dumps(out))`
			raw, err := exec.Command(py, "-c", read, script).Output()
			if err != nil {
				t.Fatal(err)
			}
			var lit struct {
				MODEL         string
				TRAIN_FILES   []string
				TEST_FILES    []string
				CHAT_TEMPLATE *string
				ARGS          map[string]any
				LORA          map[string]any
			}
			if err := json.Unmarshal(raw, &lit); err != nil {
				t.Fatal(err)
			}
			if lit.MODEL != opt.Model || len(lit.TRAIN_FILES) != 1 || len(lit.TEST_FILES) != 1 {
				t.Errorf("MODEL %q, files %v %v", lit.MODEL, lit.TRAIN_FILES, lit.TEST_FILES)
			}
			for _, f := range append(lit.TRAIN_FILES, lit.TEST_FILES...) {
				if _, err := os.Stat(f); err != nil {
					t.Error(err)
				}
			}
			c := opt.Config.withDefaults()
			want := map[string]any{"learning_rate": c.LearningRate, "max_length": c.SeqLen, "per_device_train_batch_size": c.BatchSize,
				"gradient_accumulation_steps": c.GradAccum, "packing": !c.Pad, "assistant_only_loss": true, "seed": c.Seed, "output_dir": opt.Output,
				"max_grad_norm": c.MaxGradNorm, "adam_epsilon": 1e-8}
			for k, v := range want {
				if fmtAny(lit.ARGS[k]) != fmtAny(v) {
					t.Errorf("ARGS[%s] = %v, want %v", k, lit.ARGS[k], v)
				}
			}
			if tc.name == "full" {
				if lit.CHAT_TEMPLATE != nil || lit.LORA != nil || fmtAny(lit.ARGS["warmup_steps"]) != "10" || fmtAny(lit.ARGS["eval_steps"]) != "50" {
					t.Errorf("template %v, LORA %v, args %v", lit.CHAT_TEMPLATE, lit.LORA, lit.ARGS)
				}
			} else {
				tok, _ := tokenizer.LoadDir(base)
				if lit.CHAT_TEMPLATE == nil || *lit.CHAT_TEMPLATE != tok.Chat().Jinja() {
					t.Errorf("CHAT_TEMPLATE %v", lit.CHAT_TEMPLATE)
				}
				if fmtAny(lit.LORA["r"]) != "8" || fmtAny(lit.LORA["lora_alpha"]) != "8" || lit.LORA["use_rslora"] != true ||
					len(lit.LORA["target_modules"].([]any)) != 7 || fmtAny(lit.ARGS["max_steps"]) != "100" || lit.ARGS["lr_scheduler_type"] != "cosine_with_min_lr" {
					t.Errorf("LORA %v, ARGS %v", lit.LORA, lit.ARGS)
				}
				if !strings.Contains(string(data), "BitsAndBytesConfig(load_in_4bit=True") {
					t.Error("QLoRA without 4-bit loading")
				}
			}
		})
	}
}
