package recipe

import (
	"github.com/sieve-data/sieve/datasets"
)

// Train is a recipe's train: section, the settings of `sieve train
// RECIPE` (see docs/train.md); flags given on the command line override
// them. Absent keys keep the trainer's defaults. It does not change the
// dataset the recipe builds (nor its content id).
type Train struct {
	// Data is the version to train on, NAME[@VERSION]; default: the
	// recipe's own dataset, latest version.
	Data string `yaml:"data"`
	// Model is a Hugging Face checkpoint directory to fine-tune; Init a
	// config.json of a new model to train from scratch, with Tokenizer (a
	// directory or tokenizer.json) or, without it, a tokenizer of
	// VocabSize tokens trained on the train split. Relative paths are
	// resolved against the recipe's directory.
	Model     string `yaml:"model"`
	Init      string `yaml:"init"`
	Tokenizer string `yaml:"tokenizer"`
	VocabSize int    `yaml:"vocab_size"`
	// Output is the run directory (default runs/NAME; relative to the
	// recipe's directory, like the other paths).
	Output string `yaml:"output"`

	LearningRate float64  `yaml:"learning_rate"`
	MinLRRatio   float64  `yaml:"min_lr_ratio"`
	WarmupSteps  int      `yaml:"warmup_steps"`
	WarmupRatio  float64  `yaml:"warmup_ratio"`
	Epochs       int      `yaml:"epochs"`
	MaxSteps     int      `yaml:"max_steps"`
	SeqLen       int      `yaml:"seq_len"`
	BatchSize    int      `yaml:"batch_size"`
	GradAccum    int      `yaml:"grad_accum"`
	WeightDecay  float64  `yaml:"weight_decay"`
	Beta1        float64  `yaml:"beta1"`
	Beta2        float64  `yaml:"beta2"`
	Eps          float64  `yaml:"eps"`
	MaxGradNorm  *float64 `yaml:"max_grad_norm"` // 0 turns clipping off
	Pack         *bool    `yaml:"pack"`          // false: one conversation per row, padded
	Seed         *uint64  `yaml:"seed"`
	EvalEvery    int      `yaml:"eval_every"`
	SaveEvery    int      `yaml:"save_every"`
	LogEvery     int      `yaml:"log_every"`
	// LoRA, when present, trains low-rank adapters on the base model
	// instead of every weight.
	LoRA *LoRA `yaml:"lora"`
}

// LoRA is the lora: subsection of train:, with the meaning of PEFT's
// LoraConfig fields.
type LoRA struct {
	R       int      `yaml:"r"`              // rank of the update
	Alpha   float64  `yaml:"alpha"`          // scaling α (default r)
	Targets []string `yaml:"target_modules"` // q_proj … down_proj; default all
	RSLoRA  bool     `yaml:"rslora"`         // scaling α/√r instead of α/r
	QLoRA   bool     `yaml:"qlora"`          // store the frozen projections in NF4
}

func (l *LoRA) validate() error {
	if l.R <= 0 {
		return keyErr("r", "the rank must be positive, got %d", l.R)
	}
	if l.Alpha < 0 {
		return keyErr("alpha", "must be ≥ 0, got %g", l.Alpha)
	}
	for _, t := range l.Targets {
		switch t {
		case "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "all-linear":
		default:
			return keyErr("target_modules", "unknown module %q (want q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear)", t)
		}
	}
	return nil
}

func (t *Train) validate() error {
	if t.Data != "" {
		if _, err := datasets.ParseRef(t.Data); err != nil {
			return keyErr("data", "%v", err)
		}
	}
	if t.Model != "" && t.Init != "" {
		return keyErr("init", "give model (a checkpoint to fine-tune) or init (a config to train from scratch), not both")
	}
	if t.Tokenizer != "" && t.Model != "" {
		return keyErr("tokenizer", "a base model brings its own tokenizer; tokenizer goes with init")
	}
	if t.LoRA != nil && t.Init != "" {
		return keyErr("lora", "LoRA adapts a base model (model:), not a new one (init:)")
	}
	nonNeg := []struct {
		key string
		v   float64
	}{
		{"vocab_size", float64(t.VocabSize)}, {"learning_rate", t.LearningRate}, {"warmup_steps", float64(t.WarmupSteps)},
		{"epochs", float64(t.Epochs)}, {"max_steps", float64(t.MaxSteps)}, {"seq_len", float64(t.SeqLen)},
		{"batch_size", float64(t.BatchSize)}, {"grad_accum", float64(t.GradAccum)}, {"weight_decay", t.WeightDecay},
		{"eps", t.Eps}, {"eval_every", float64(t.EvalEvery)}, {"save_every", float64(t.SaveEvery)}, {"log_every", float64(t.LogEvery)},
	}
	for _, f := range nonNeg {
		if f.v < 0 {
			return keyErr(f.key, "must be ≥ 0, got %g", f.v)
		}
	}
	switch {
	case t.VocabSize != 0 && t.VocabSize < 260:
		return keyErr("vocab_size", "must be at least 260 (the 256 bytes and the special tokens), got %d", t.VocabSize)
	case t.SeqLen == 1:
		return keyErr("seq_len", "must be at least 2, got 1")
	case t.MinLRRatio < 0 || t.MinLRRatio > 1:
		return keyErr("min_lr_ratio", "must be in [0, 1], got %g", t.MinLRRatio)
	case t.WarmupRatio < 0 || t.WarmupRatio >= 1:
		return keyErr("warmup_ratio", "must be in [0, 1), got %g", t.WarmupRatio)
	case t.Beta1 < 0 || t.Beta1 >= 1:
		return keyErr("beta1", "must be in [0, 1), got %g", t.Beta1)
	case t.Beta2 < 0 || t.Beta2 >= 1:
		return keyErr("beta2", "must be in [0, 1), got %g", t.Beta2)
	case t.MaxGradNorm != nil && *t.MaxGradNorm < 0:
		return keyErr("max_grad_norm", "must be ≥ 0 (0 turns clipping off), got %g", *t.MaxGradNorm)
	}
	return nil
}
