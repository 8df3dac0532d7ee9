package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// Export kinds.
const (
	ExportAxolotl = "axolotl"
	ExportTRL     = "trl"
)

// allTargets are the projections LoRA adapts by default.
var allTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// Export writes the configuration of the run opt describes for another
// trainer, for users who move to GPUs: an Axolotl YAML (kind "axolotl")
// or a Python script that runs TRL's SFTTrainer (kind "trl"). Both read
// the version's Parquet shards (train split to train on, test split to
// evaluate on) from where they are, train opt.Model (written as given:
// a hub id or a path) with the same hyperparameters (opt.Config: rate,
// warmup, cosine decay to MinLRRatio, epochs or steps, sequence length,
// batch and accumulation, AdamW betas/eps/decay, clipping, seed,
// packing; opt.LoRA and QLoRA), the loss on assistant tokens only, and
// the chat template sieve renders with: that of the tokenizer in
// opt.Model when it is a local directory (with its {% generation %}
// markers), else the model's own. opt.Output is the output directory
// written into the configuration.
func Export(ctx context.Context, kind string, opt Options) ([]byte, error) {
	if opt.Model == "" {
		return nil, errors.New("train: export: no base model to fine-tune")
	}
	cfg := opt.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: export: %w", err)
	}
	ref, err := datasets.ParseRef(opt.Data)
	if err != nil {
		return nil, fmt.Errorf("train: export: data: %w", err)
	}
	v, err := opt.Store.OpenVersion(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("train: export: %w", err)
	}
	var e exportSpec
	e.cfg, e.model, e.data, e.output, e.qlora = cfg, opt.Model, v.Ref.String(), opt.Output, opt.QLoRA
	if opt.LoRA != nil {
		l := *opt.LoRA
		if l.Alpha == 0 {
			l.Alpha = float64(l.Rank)
		}
		if len(l.Targets) == 0 || (len(l.Targets) == 1 && l.Targets[0] == "all-linear") {
			l.Targets = allTargets
		}
		e.lora = &l
	}
	for _, s := range v.Manifest.Splits {
		for _, sh := range s.Shards {
			p := v.ShardPath(sh)
			if !strings.Contains(p, "://") {
				if p, err = filepath.Abs(p); err != nil {
					return nil, fmt.Errorf("train: export: %w", err)
				}
			}
			switch s.Name {
			case "train":
				e.train = append(e.train, p)
			case "test":
				e.test = append(e.test, p)
			}
		}
	}
	if len(e.train) == 0 {
		return nil, fmt.Errorf("train: export: %s has no train split", v.Ref)
	}
	if tok, err := tokenizer.LoadDir(opt.Model); err == nil {
		e.template = tok.Chat().Jinja()
	}
	switch kind {
	case ExportAxolotl:
		return e.axolotl()
	case ExportTRL:
		return e.trl(), nil
	}
	return nil, fmt.Errorf("train: export: unknown kind %q (axolotl or trl)", kind)
}

type exportSpec struct {
	cfg                 Config
	model, data, output string
	lora                *model.LoRAConfig
	qlora               bool
	train, test         []string
	template            string // Jinja; "" for the model's own
}

func (e *exportSpec) warmup() (steps int, ratio float64) { return e.cfg.WarmupSteps, e.cfg.WarmupRatio }

// axolotlDataset is one entry of Axolotl's datasets: a Parquet file in
// the messages format, the loss on the assistant turns and their end of
// turn.
type axolotlDataset struct {
	Path          string   `yaml:"path"`
	DSType        string   `yaml:"ds_type"`
	Split         string   `yaml:"split,omitempty"`
	Type          string   `yaml:"type"`
	FieldMessages string   `yaml:"field_messages"`
	RolesToTrain  []string `yaml:"roles_to_train"`
	TrainOnEOS    string   `yaml:"train_on_eos"`
}

type axolotlConfig struct {
	BaseModel         string           `yaml:"base_model"`
	ChatTemplate      string           `yaml:"chat_template"`
	ChatTemplateJinja string           `yaml:"chat_template_jinja,omitempty"`
	Datasets          []axolotlDataset `yaml:"datasets"`
	TestDatasets      []axolotlDataset `yaml:"test_datasets,omitempty"`
	OutputDir         string           `yaml:"output_dir"`
	SequenceLen       int              `yaml:"sequence_len"`
	SamplePacking     bool             `yaml:"sample_packing"`
	TrainOnInputs     bool             `yaml:"train_on_inputs"`
	Adapter           string           `yaml:"adapter,omitempty"`
	LoadIn4bit        bool             `yaml:"load_in_4bit,omitempty"`
	LoraR             int              `yaml:"lora_r,omitempty"`
	LoraAlpha         float64          `yaml:"lora_alpha,omitempty"`
	LoraDropout       *float64         `yaml:"lora_dropout,omitempty"`
	LoraTargetModules []string         `yaml:"lora_target_modules,omitempty"`
	PeftUseRSLoRA     bool             `yaml:"peft_use_rslora,omitempty"`
	MicroBatchSize    int              `yaml:"micro_batch_size"`
	GradAccum         int              `yaml:"gradient_accumulation_steps"`
	NumEpochs         int              `yaml:"num_epochs,omitempty"`
	MaxSteps          int              `yaml:"max_steps,omitempty"`
	LearningRate      float64          `yaml:"learning_rate"`
	LRScheduler       string           `yaml:"lr_scheduler"`
	CosineMinLRRatio  float64          `yaml:"cosine_min_lr_ratio,omitempty"`
	WarmupSteps       int              `yaml:"warmup_steps,omitempty"`
	WarmupRatio       float64          `yaml:"warmup_ratio,omitempty"`
	Optimizer         string           `yaml:"optimizer"`
	AdamBeta1         float64          `yaml:"adam_beta1"`
	AdamBeta2         float64          `yaml:"adam_beta2"`
	AdamEpsilon       float64          `yaml:"adam_epsilon"`
	WeightDecay       float64          `yaml:"weight_decay"`
	MaxGradNorm       float64          `yaml:"max_grad_norm"`
	Seed              uint64           `yaml:"seed"`
	EvalsPerEpoch     int              `yaml:"evals_per_epoch,omitempty"`
	EvalSteps         int              `yaml:"eval_steps,omitempty"`
	SaveSteps         int              `yaml:"save_steps,omitempty"`
	LoggingSteps      int              `yaml:"logging_steps"`
	BF16              string           `yaml:"bf16"`
}

func (e *exportSpec) axolotl() ([]byte, error) {
	c := e.cfg
	a := axolotlConfig{BaseModel: e.model, ChatTemplate: "tokenizer_default", OutputDir: e.output, SequenceLen: c.SeqLen,
		SamplePacking: !c.Pad, MicroBatchSize: c.BatchSize, GradAccum: c.GradAccum, LearningRate: c.LearningRate,
		LRScheduler: "cosine", CosineMinLRRatio: c.MinLRRatio, Optimizer: "adamw_torch", AdamBeta1: c.Beta1, AdamBeta2: c.Beta2,
		AdamEpsilon: c.Eps, WeightDecay: c.WeightDecay, MaxGradNorm: c.MaxGradNorm, Seed: c.Seed, SaveSteps: c.SaveEvery,
		LoggingSteps: c.LogEvery, BF16: "auto"}
	if e.template != "" {
		a.ChatTemplate, a.ChatTemplateJinja = "jinja", e.template
	}
	a.WarmupSteps, a.WarmupRatio = e.warmup()
	if c.MaxSteps > 0 {
		a.MaxSteps = c.MaxSteps
	} else {
		a.NumEpochs = c.Epochs
	}
	if c.EvalEvery > 0 {
		a.EvalSteps = c.EvalEvery
	} else if len(e.test) > 0 {
		a.EvalsPerEpoch = 1
	}
	ds := func(paths []string, split string) []axolotlDataset {
		var out []axolotlDataset
		for _, p := range paths {
			out = append(out, axolotlDataset{Path: p, DSType: "parquet", Split: split, Type: "chat_template", FieldMessages: "messages",
				RolesToTrain: []string{"assistant"}, TrainOnEOS: "turn"})
		}
		return out
	}
	a.Datasets, a.TestDatasets = ds(e.train, ""), ds(e.test, "train")
	if l := e.lora; l != nil {
		zero := 0.0
		a.Adapter, a.LoraR, a.LoraAlpha, a.LoraDropout, a.LoraTargetModules, a.PeftUseRSLoRA = "lora", l.Rank, l.Alpha, &zero, l.Targets, l.RSLoRA
		if e.qlora {
			a.Adapter, a.LoadIn4bit = "qlora", true
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Axolotl configuration of a sieve run on %s, written by 'sieve export axolotl'.\n", e.data)
	b.WriteString("# The data is the version's Parquet shards (messages column); the loss counts the\n")
	b.WriteString("# assistant turns and their end-of-turn token only, as 'sieve train' does.\n")
	b.WriteString("# Run: axolotl train THIS_FILE\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(a); err != nil {
		return nil, fmt.Errorf("train: export: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("train: export: %w", err)
	}
	return b.Bytes(), nil
}

// py writes a Python literal: a string (JSON's escapes are Python's),
// an int, a float (always with a point or an exponent), a bool or a
// list of strings.
func py(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case nil:
		return "None"
	}
	data, _ := json.Marshal(v)
	return string(data)
}

func (e *exportSpec) trl() []byte {
	c := e.cfg
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# TRL SFTTrainer script of a sieve run on %s, written by 'sieve export trl'.\n", e.data)
	w("# The data is the version's Parquet shards (messages column); the loss counts the\n")
	w("# assistant turns and their end-of-turn token only (assistant_only_loss, which\n")
	w("# needs {%% generation %%} markers in the chat template), as 'sieve train' does.\n")
	w("# Packed rows attend within each conversation only with a padding-free attention\n")
	w("# (attn_implementation flash_attention_2), as sieve's packing does.\n")
	w("# Run: python3 THIS_FILE (transformers, trl, peft, datasets)\n")
	w("from datasets import load_dataset\n")
	if e.lora != nil {
		w("from peft import LoraConfig\n")
	}
	w("from transformers import AutoTokenizer\n")
	w("from trl import SFTConfig, SFTTrainer\n\n")
	w("MODEL = %s\n", py(e.model))
	w("TRAIN_FILES = %s\n", py(e.train))
	if len(e.test) > 0 {
		w("TEST_FILES = %s\n", py(e.test))
	} else {
		w("TEST_FILES = []\n")
	}
	if e.template != "" {
		w("CHAT_TEMPLATE = %s\n", py(e.template))
	} else {
		w("CHAT_TEMPLATE = None  # the model's own\n")
	}
	w("\nARGS = {\n")
	arg := func(k string, v any) { w("    %s: %s,\n", py(k), py(v)) }
	arg("output_dir", e.output)
	arg("learning_rate", c.LearningRate)
	if c.MinLRRatio > 0 {
		arg("lr_scheduler_type", "cosine_with_min_lr")
		w("    \"lr_scheduler_kwargs\": {\"min_lr_rate\": %s},\n", py(c.MinLRRatio))
	} else {
		arg("lr_scheduler_type", "cosine")
	}
	if c.WarmupSteps > 0 {
		arg("warmup_steps", c.WarmupSteps)
	} else {
		arg("warmup_ratio", c.WarmupRatio)
	}
	if c.MaxSteps > 0 {
		arg("max_steps", c.MaxSteps)
	} else {
		arg("num_train_epochs", c.Epochs)
	}
	arg("max_length", c.SeqLen)
	arg("packing", !c.Pad)
	arg("assistant_only_loss", true)
	arg("per_device_train_batch_size", c.BatchSize)
	arg("per_device_eval_batch_size", c.BatchSize)
	arg("gradient_accumulation_steps", c.GradAccum)
	arg("optim", "adamw_torch")
	arg("adam_beta1", c.Beta1)
	arg("adam_beta2", c.Beta2)
	arg("adam_epsilon", c.Eps)
	arg("weight_decay", c.WeightDecay)
	arg("max_grad_norm", c.MaxGradNorm)
	arg("seed", c.Seed)
	arg("logging_steps", c.LogEvery)
	if c.EvalEvery > 0 {
		arg("eval_strategy", "steps")
		arg("eval_steps", c.EvalEvery)
	} else {
		arg("eval_strategy", "epoch")
	}
	if c.SaveEvery > 0 {
		arg("save_strategy", "steps")
		arg("save_steps", c.SaveEvery)
	}
	w("}\n")
	if l := e.lora; l != nil {
		w("LORA = {\n")
		w("    \"r\": %d,\n", l.Rank)
		w("    \"lora_alpha\": %s,\n", py(l.Alpha))
		w("    \"lora_dropout\": 0.0,\n")
		w("    \"target_modules\": %s,\n", py(l.Targets))
		w("    \"use_rslora\": %s,\n", py(l.RSLoRA))
		w("    \"task_type\": \"CAUSAL_LM\",\n")
		w("}\n")
	}
	w(`

def main():
    files = {"train": TRAIN_FILES}
    if TEST_FILES:
        files["test"] = TEST_FILES
    data = load_dataset("parquet", data_files=files).select_columns(["messages"])
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    if CHAT_TEMPLATE is not None:
        tokenizer.chat_template = CHAT_TEMPLATE
    args = dict(ARGS)
    if not TEST_FILES:
        args["eval_strategy"] = "no"
`)
	modelInit := "{}"
	if e.qlora {
		w("    import torch\n    from transformers import BitsAndBytesConfig\n")
		w("    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", bnb_4bit_compute_dtype=torch.bfloat16)\n")
		modelInit = "{\"quantization_config\": quant}"
	}
	w("    args[\"model_init_kwargs\"] = %s\n", modelInit)
	w("    trainer = SFTTrainer(\n        model=MODEL,\n        args=SFTConfig(**args),\n        train_dataset=data[\"train\"],\n")
	w("        eval_dataset=data[\"test\"] if TEST_FILES else None,\n        processing_class=tokenizer,\n")
	if e.lora != nil {
		w("        peft_config=LoraConfig(**LORA),\n")
	}
	w("    )\n    trainer.train()\n    trainer.save_model()\n\n\nif __name__ == \"__main__\":\n    main()\n")
	return []byte(b.String())
}
