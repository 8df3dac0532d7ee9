package train

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Config holds the hyperparameters of a training run. The zero value of
// a field means its default (see DefaultConfig), except for the fields
// whose zero is a setting of its own: WeightDecay, MinLRRatio, warmup,
// MaxSteps, MaxGradNorm (0: no clipping), Pad, Seed and the *Every
// intervals (0: never, beyond their defaults).
type Config struct {
	// LearningRate is the peak learning rate, reached after warmup.
	LearningRate float64 `json:"learning_rate"`
	// MinLRRatio is the learning rate at the end of the cosine decay, as
	// a fraction of LearningRate (0: decay to zero).
	MinLRRatio float64 `json:"min_lr_ratio"`
	// WarmupSteps of linear warmup; when 0, WarmupRatio of the total
	// steps (rounded up), as transformers' TrainingArguments.
	WarmupSteps int     `json:"warmup_steps"`
	WarmupRatio float64 `json:"warmup_ratio"`
	// Epochs over the training split, unless MaxSteps > 0 sets the
	// number of optimizer steps instead.
	Epochs   int `json:"epochs"`
	MaxSteps int `json:"max_steps"`
	// SeqLen is the length of a row: conversations longer than this are
	// cut, shorter ones are packed together (or padded, with Pad).
	SeqLen int `json:"seq_len"`
	// BatchSize rows per micro-batch; GradAccum micro-batches per
	// optimizer step (weighted by their counted tokens).
	BatchSize int `json:"batch_size"`
	GradAccum int `json:"grad_accum"`
	// AdamW: decoupled weight decay (not on norm weights), betas, eps.
	WeightDecay float64 `json:"weight_decay"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	// MaxGradNorm clips the global gradient norm (0: no clipping).
	MaxGradNorm float64 `json:"max_grad_norm"`
	// Pad puts one conversation per row, padded to the longest of its
	// batch, instead of packing several into each row.
	Pad bool `json:"pad"`
	// Seed sets the initial weights of a new model and the order of rows
	// in each epoch.
	Seed uint64 `json:"seed"`
	// EvalEvery evaluates on the test split every so many steps, besides
	// the end of each epoch (0: at epoch ends only).
	EvalEvery int `json:"eval_every"`
	// SaveEvery writes a checkpoint every so many steps (0: only the
	// final model).
	SaveEvery int `json:"save_every"`
	// LogEvery writes a log line every so many steps (default 10).
	LogEvery int `json:"log_every"`

	// The loss watchdog: training stops when the smoothed training loss
	// (an exponential moving average of the step losses, β 0.9, bias
	// corrected) stays above DivergeFactor × its lowest value so far for
	// DivergeSteps steps in a row (defaults 3 and 10; a negative
	// DivergeFactor turns this test off). A NaN or infinite loss or
	// gradient norm always stops training, before the step's update.
	DivergeFactor float64 `json:"diverge_factor,omitempty"`
	DivergeSteps  int     `json:"diverge_steps,omitempty"`
	// EarlyStopPatience stops training when the eval loss has not
	// improved on its best by more than EarlyStopDelta for that many
	// evaluations in a row (0: never). With it, the model of the best
	// evaluation is written to checkpoint-best and is the final model.
	EarlyStopPatience int     `json:"early_stop_patience,omitempty"`
	EarlyStopDelta    float64 `json:"early_stop_delta,omitempty"`
	// Precision of the linear layers' products: fp32, bf16 (operands
	// rounded to bfloat16, float32 sums and master weights; see
	// model.PrecisionBF16), or auto ("" too): bf16 only where the CPU
	// has AVX512_BF16 or AMX and a bf16 kernel uses it, which no build
	// has yet, so fp32 (model.ResolvePrecision).
	Precision string `json:"precision,omitempty"`
}

// The loss watchdog's defaults (see Config.DivergeFactor).
const (
	DefaultDivergeFactor = 3
	DefaultDivergeSteps  = 10
)

// DefaultConfig returns the defaults: learning rate 2e-5 (TRL's SFT
// default, for fine-tuning), 3 epochs, rows of 1024 tokens, 8 rows per
// batch, no accumulation, AdamW with betas (0.9, 0.999), eps 1e-8, no
// weight decay, clipping at norm 1, no warmup, seed 42, a log line every
// 10 steps.
func DefaultConfig() Config {
	return Config{
		LearningRate: 2e-5,
		Epochs:       3,
		SeqLen:       1024,
		BatchSize:    8,
		GradAccum:    1,
		Beta1:        0.9,
		Beta2:        0.999,
		Eps:          1e-8,
		MaxGradNorm:  1,
		Seed:         42,
		LogEvery:     10,
	}
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.LearningRate, d.LearningRate)
	set(&c.Beta1, d.Beta1)
	set(&c.Beta2, d.Beta2)
	set(&c.Eps, d.Eps)
	seti(&c.Epochs, d.Epochs)
	seti(&c.SeqLen, d.SeqLen)
	seti(&c.BatchSize, d.BatchSize)
	seti(&c.GradAccum, d.GradAccum)
	seti(&c.LogEvery, d.LogEvery)
	set(&c.DivergeFactor, DefaultDivergeFactor)
	seti(&c.DivergeSteps, DefaultDivergeSteps)
	return c
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	switch {
	case c.LearningRate < 0:
		return fmt.Errorf("learning rate %g must not be negative", c.LearningRate)
	case c.MinLRRatio < 0 || c.MinLRRatio > 1:
		return fmt.Errorf("min LR ratio %g must be in [0, 1]", c.MinLRRatio)
	case c.WarmupSteps < 0:
		return fmt.Errorf("warmup steps %d must not be negative", c.WarmupSteps)
	case c.WarmupRatio < 0 || c.WarmupRatio >= 1:
		return fmt.Errorf("warmup ratio %g must be in [0, 1)", c.WarmupRatio)
	case c.Epochs < 0:
		return fmt.Errorf("epochs %d must not be negative", c.Epochs)
	case c.MaxSteps < 0:
		return fmt.Errorf("max steps %d must not be negative", c.MaxSteps)
	case c.SeqLen < 0 || c.SeqLen == 1:
		return fmt.Errorf("sequence length %d must be at least 2", c.SeqLen)
	case c.BatchSize < 0:
		return fmt.Errorf("batch size %d must be positive", c.BatchSize)
	case c.GradAccum < 0:
		return fmt.Errorf("gradient accumulation %d must be positive", c.GradAccum)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight decay %g must not be negative", c.WeightDecay)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("betas (%g, %g) must be in [0, 1)", c.Beta1, c.Beta2)
	case c.Eps < 0:
		return fmt.Errorf("eps %g must not be negative", c.Eps)
	case c.MaxGradNorm < 0:
		return fmt.Errorf("max grad norm %g must not be negative (0 turns clipping off)", c.MaxGradNorm)
	case c.EvalEvery < 0 || c.SaveEvery < 0 || c.LogEvery < 0:
		return errors.New("eval, save and log intervals must not be negative")
	case c.DivergeFactor > 0 && c.DivergeFactor <= 1:
		return fmt.Errorf("diverge factor %g must be above 1 (negative: off)", c.DivergeFactor)
	case c.DivergeSteps < 0:
		return fmt.Errorf("diverge steps %d must not be negative", c.DivergeSteps)
	case c.EarlyStopPatience < 0 || c.EarlyStopDelta < 0:
		return errors.New("early stopping patience and delta must not be negative")
	case c.Precision != "" && c.Precision != "auto" && c.Precision != "fp32" && c.Precision != "bf16":
		return fmt.Errorf("precision %q: want fp32, bf16 or auto", c.Precision)
	}
	return nil
}

// sameTrajectory reports the first setting that differs between c and
// a checkpoint's d and changes the path of training (the intervals of
// evaluation, saving and logging, the watchdog and early stopping do
// not; nor, here, does the precision, which changes the rounding of the
// products as another BLAS would, so that a run may resume on a
// machine that picks another).
func (c Config) sameTrajectory(d Config) error {
	c.EvalEvery, c.SaveEvery, c.LogEvery, c.Precision = d.EvalEvery, d.SaveEvery, d.LogEvery, d.Precision
	c.DivergeFactor, c.DivergeSteps, c.EarlyStopPatience, c.EarlyStopDelta = d.DivergeFactor, d.DivergeSteps, d.EarlyStopPatience, d.EarlyStopDelta
	if c == d {
		return nil
	}
	var diffs []string
	cv, dv := reflect.ValueOf(c), reflect.ValueOf(d)
	for i := 0; i < cv.NumField(); i++ {
		if a, b := cv.Field(i).Interface(), dv.Field(i).Interface(); a != b {
			name := strings.Split(cv.Type().Field(i).Tag.Get("json"), ",")[0]
			diffs = append(diffs, fmt.Sprintf("%s %v (checkpoint: %v)", name, a, b))
		}
	}
	return fmt.Errorf("settings differ from the checkpoint's: %s", strings.Join(diffs, ", "))
}
