package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines"
	"github.com/sieve-data/sieve/pipelines/recipe"
	"github.com/sieve-data/sieve/train"
	"github.com/sieve-data/sieve/train/model"
)

const trainLong = `Train a model on a dataset version: fine-tune a Hugging Face checkpoint
(--model DIR) or train a new model from a config.json (--init), with a
tokenizer of its own or one trained on the train split.

Each conversation is rendered with the tokenizer's chat template; the loss
counts the assistant tokens only. Conversations are packed into rows of
--seq-len tokens (each attends to itself only) or, with --pack=false, padded.
Training runs AdamW with linear warmup and cosine decay, gradient clipping
and accumulation, and evaluates on the test split before training, after
each epoch and every --eval-every steps.

A recipe given as argument supplies the data (its own dataset, latest
version), the store and the settings of its train: section; flags override
them. The run directory (--output) gets log.jsonl (one JSON object per log
line), checkpoint-STEP directories (--save-every; resumable with --resume)
and the final model in the Hugging Face layout, which transformers loads and
'sieve generate --model DIR' samples from. See docs/train.md.`

// LRFinderPlot is the file name of the LR finder's plot in the run
// directory.
const LRFinderPlot = "lr_finder.png"

// trainFlags are the flags of 'sieve train' that are not hyperparameters.
type trainFlags struct {
	data, store, model, init, tokenizer, output, resume string
	vocabSize                                           int
	pack                                                bool
	json, quiet, verbose                                bool
	// LoRA: rank 0 trains every weight.
	loraR         int
	loraAlpha     float64
	loraTargets   []string
	rslora, qlora bool
	// Finding settings: --find-lr, --lr auto, --batch-size auto,
	// --max-memory.
	findLR, autoLR, autoBatch bool
	findLRSteps               int
	maxMemory                 string
	// runDir is the output_dir of 'sieve export'.
	runDir string
}

// autoFloat is a float flag that also takes "auto".
type autoFloat struct {
	v    *float64
	auto *bool
}

func (a autoFloat) String() string {
	if a.v == nil {
		return ""
	}
	if a.auto != nil && *a.auto {
		return "auto"
	}
	return strconv.FormatFloat(*a.v, 'g', -1, 64)
}

func (a autoFloat) Set(s string) error {
	if s == "auto" {
		*a.auto = true
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number or auto")
	}
	*a.v, *a.auto = v, false
	return nil
}

func (a autoFloat) Type() string { return "float|auto" }

// autoInt is an int flag that also takes "auto".
type autoInt struct {
	v    *int
	auto *bool
}

func (a autoInt) String() string {
	if a.v == nil {
		return ""
	}
	if a.auto != nil && *a.auto {
		return "auto"
	}
	return strconv.Itoa(*a.v)
}

func (a autoInt) Set(s string) error {
	if s == "auto" {
		*a.auto = true
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want an integer or auto")
	}
	*a.v, *a.auto = v, false
	return nil
}

func (a autoInt) Type() string { return "int|auto" }

// parseBytes reads a memory size: a number of bytes with an optional
// unit (K, M, G, T; KB/KiB… all powers of 1024), or "off".
func parseBytes(s string) (int64, error) {
	if s == "off" {
		return -1, nil
	}
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a size such as 8G or 512MiB, or off", s)
	}
	return int64(v * float64(mult)), nil
}

func newTrainCmd(stdout, stderr io.Writer) *cobra.Command {
	var f trainFlags
	cfg := train.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "train [RECIPE] --data NAME@VERSION (--model DIR | --init CONFIG.json) [flags]",
		Short: "Train or fine-tune a model on a dataset version",
		Long:  trainLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			opt, err := trainOptions(cmd.Flags().Changed, file, f, cfg)
			if err != nil {
				return err
			}
			return runTrain(opt, f, stdout, stderr)
		},
	}
	addTrainFlags(cmd, &f, &cfg, false)
	cmd.AddCommand(newSweepCmd(stdout, stderr), newMergeCmd(stdout))
	return cmd
}

// addTrainFlags registers the flags of 'sieve train' on fl; for 'sieve
// train sweep', all but those a sweep lists values of (--lr, --epochs,
// --seq-len, --lora-r, --lora-alpha), --resume and --find-lr.
func addTrainFlags(cmd *cobra.Command, f *trainFlags, cfg *train.Config, sweep bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "dataset version to train on, NAME[@VERSION] (default: the recipe's dataset, latest)")
	fl.StringVar(&f.store, "store", "store", "version store root")
	fl.StringVar(&f.model, "model", "", "base model: a Hugging Face checkpoint directory (its tokenizer too)")
	fl.StringVar(&f.init, "init", "", "config.json of a new model to train from scratch")
	fl.StringVar(&f.tokenizer, "tokenizer", "", "with --init: tokenizer directory or tokenizer.json (default: train one on the train split)")
	fl.IntVar(&f.vocabSize, "vocab-size", 4096, "vocabulary of a tokenizer trained on the train split")
	fl.StringVarP(&f.output, "output", "o", "", "run directory (default runs/NAME)")
	if !sweep {
		fl.StringVar(&f.resume, "resume", "", "continue from a checkpoint directory (--resume alone: the latest in --output)")
		fl.Lookup("resume").NoOptDefVal = "latest"
	}
	if !sweep {
		fl.Var(autoFloat{&cfg.LearningRate, &f.autoLR}, "lr", "peak learning rate (auto: run the LR finder first and train with its suggestion)")
	}
	fl.Float64Var(&cfg.MinLRRatio, "min-lr-ratio", cfg.MinLRRatio, "final learning rate of the cosine decay, as a fraction of --lr")
	fl.IntVar(&cfg.WarmupSteps, "warmup-steps", cfg.WarmupSteps, "steps of linear warmup")
	fl.Float64Var(&cfg.WarmupRatio, "warmup-ratio", cfg.WarmupRatio, "warmup as a fraction of the steps (when --warmup-steps is 0)")
	if !sweep {
		fl.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "epochs over the train split")
	}
	fl.IntVar(&cfg.MaxSteps, "max-steps", cfg.MaxSteps, "optimizer steps to run instead of --epochs (0: by epochs)")
	if !sweep {
		fl.IntVar(&cfg.SeqLen, "seq-len", cfg.SeqLen, "tokens per row; longer conversations are cut")
	}
	fl.Var(autoInt{&cfg.BatchSize, &f.autoBatch}, "batch-size", "rows per micro-batch (auto: the largest divisor of --batch-size × --grad-accum, default 8, that fits --max-memory, with the accumulation that keeps the product)")
	fl.IntVar(&cfg.GradAccum, "grad-accum", cfg.GradAccum, "micro-batches per optimizer step")
	fl.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "AdamW decoupled weight decay (not on norm weights)")
	fl.Float64Var(&cfg.Beta1, "beta1", cfg.Beta1, "AdamW β₁")
	fl.Float64Var(&cfg.Beta2, "beta2", cfg.Beta2, "AdamW β₂")
	fl.Float64Var(&cfg.Eps, "eps", cfg.Eps, "AdamW ε")
	fl.Float64Var(&cfg.MaxGradNorm, "max-grad-norm", cfg.MaxGradNorm, "clip the global gradient norm to this (0: no clipping)")
	fl.BoolVar(&f.pack, "pack", true, "pack several conversations into each row (--pack=false: one per row, padded)")
	fl.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the initial weights and of the data order")
	fl.IntVar(&cfg.EvalEvery, "eval-every", 0, "also evaluate every N steps (0: after each epoch only)")
	fl.IntVar(&cfg.SaveEvery, "save-every", 0, "write a checkpoint every N steps (0: the final model only)")
	fl.IntVar(&cfg.LogEvery, "log-every", cfg.LogEvery, "a log line every N steps")
	if !sweep {
		fl.IntVar(&f.loraR, "lora-r", 0, "train LoRA adapters of this rank on the base model (0: train every weight)")
		fl.Float64Var(&f.loraAlpha, "lora-alpha", 0, "LoRA scaling α (default: the rank)")
	}
	fl.StringSliceVar(&f.loraTargets, "lora-targets", nil, "projections to adapt: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (default all)")
	fl.BoolVar(&f.rslora, "rslora", false, "rank-stabilised LoRA: scaling α/√r")
	fl.BoolVar(&f.qlora, "qlora", false, "QLoRA: store the frozen projections in NF4 (with --lora-r)")
	if !sweep {
		fl.BoolVar(&f.findLR, "find-lr", false, "run the learning rate finder (an exponential sweep, weights restored), print its suggestion, write OUTPUT/lr_finder.png and stop")
	}
	fl.IntVar(&f.findLRSteps, "find-lr-steps", 100, "steps of the learning rate finder's sweep (from 1e-7 to 10)")
	fl.StringVar(&f.maxMemory, "max-memory", "", "memory budget the estimate of the peak must fit, e.g. 8G (default: MemAvailable; off: no check)")
	fl.Float64Var(&cfg.DivergeFactor, "diverge-factor", train.DefaultDivergeFactor, "stop when the smoothed loss stays above this multiple of its lowest (negative: off)")
	fl.IntVar(&cfg.DivergeSteps, "diverge-steps", train.DefaultDivergeSteps, "... for this many steps in a row")
	fl.IntVar(&cfg.EarlyStopPatience, "early-stop", 0, "stop after N evaluations without a better eval loss; the best model is kept (checkpoint-best) and is the final one (0: off)")
	fl.Float64Var(&cfg.EarlyStopDelta, "early-stop-delta", 0, "improvement of the eval loss that counts as better")
	fl.StringVar(&cfg.Precision, "precision", "auto", "arithmetic of the linear layers' products: fp32, bf16 (bfloat16 operands, float32 sums and weights; emulated, slower) or auto (bf16 only with a hardware bf16 kernel: none yet, so fp32)")
	fl.BoolVar(&f.json, "json", false, "print the log lines (JSON) on stdout instead of the summary")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	fl.BoolVar(&f.verbose, "verbose", false, "log progress (log/slog, INFO level)")
}

// trainOptions merges the defaults, the recipe's train: section and the
// flags given, in that order of precedence (last wins).
func trainOptions(changed func(flag string) bool, file string, f trainFlags, flagCfg train.Config) (train.Options, error) {
	cfg := train.DefaultConfig()
	opt := train.Options{VocabSize: f.vocabSize, Store: datasets.Store{Root: f.store}}
	if file != "" {
		r, err := recipe.Load(file)
		if err != nil {
			var re *recipe.Error
			if errors.As(err, &re) {
				return opt, &exitError{code: 2, err: err}
			}
			return opt, err
		}
		storeFlag := ""
		if changed("store") {
			storeFlag = f.store
		}
		opt.Store = datasets.Store{Root: pipelines.StoreRoot(r, pipelines.Options{Store: storeFlag})}
		opt.Data = r.Name
		if t := r.Train; t != nil {
			applyRecipeTrain(&opt, &cfg, r, t)
		}
	}
	// Flags given on the command line win.
	strFlags := []struct {
		name     string
		dst, val *string
	}{{"data", &opt.Data, &f.data}, {"model", &opt.Model, &f.model}, {"init", &opt.Init, &f.init},
		{"tokenizer", &opt.Tokenizer, &f.tokenizer}, {"output", &opt.Output, &f.output}}
	for _, s := range strFlags {
		if changed(s.name) {
			*s.dst = *s.val
		}
	}
	if changed("model") && !changed("init") {
		opt.Init = ""
	}
	if changed("init") && !changed("model") {
		opt.Model = ""
	}
	if changed("vocab-size") {
		opt.VocabSize = f.vocabSize
	}
	copyChanged(changed, &cfg, flagCfg)
	// Zero is not "the default" for these: Config treats 0 as unset, so a
	// given 0 would silently train with the default.
	for _, f := range []struct {
		name     string
		val, min int
	}{{"seq-len", flagCfg.SeqLen, 2}, {"batch-size", flagCfg.BatchSize, 1}, {"epochs", flagCfg.Epochs, 1}, {"grad-accum", flagCfg.GradAccum, 1}} {
		if changed(f.name) && f.val < f.min {
			return opt, usageError("train: --%s %d: want at least %d", f.name, f.val, f.min)
		}
	}
	if changed("pack") {
		cfg.Pad = !f.pack
	}
	if err := loraFlags(changed, &opt, f); err != nil {
		return opt, err
	}
	if changed("diverge-factor") && cfg.DivergeFactor == 0 {
		cfg.DivergeFactor = -1 // --diverge-factor 0: off
	}
	opt.Config = cfg
	opt.AutoLR, opt.AutoBatch = f.autoLR, f.autoBatch
	if opt.AutoLR && !changed("lr") {
		opt.AutoLR = false
	}
	if f.maxMemory != "" {
		b, err := parseBytes(f.maxMemory)
		if err != nil {
			return opt, usageError("train: --max-memory %v", err)
		}
		opt.MaxMemory = b
	}
	if f.findLRSteps < 3 {
		return opt, usageError("train: --find-lr-steps %d: want at least 3", f.findLRSteps)
	}
	opt.LRFinder.Steps = f.findLRSteps

	if opt.Data == "" {
		return opt, usageError("train: no data: give --data NAME@VERSION or a recipe")
	}
	ref, err := datasets.ParseRef(opt.Data)
	if err != nil {
		return opt, usageError("train: --data: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		return opt, usageError("train: %v", err)
	}
	if opt.Output == "" {
		opt.Output = filepath.Join("runs", ref.Name)
	}
	if f.findLR || opt.AutoLR {
		opt.LRFinder.Plot = filepath.Join(opt.Output, LRFinderPlot)
	}
	if f.resume != "" {
		opt.Resume = f.resume
		if f.resume == "latest" {
			if opt.Resume, err = train.LatestCheckpoint(opt.Output); err != nil {
				return opt, err
			}
		}
	} else if opt.Model == "" && opt.Init == "" {
		return opt, usageError("train: no base model: give --model DIR (a checkpoint to fine-tune) or --init CONFIG.json (a new model)")
	}
	if opt.Model != "" && opt.Init != "" {
		return opt, usageError("train: give --model or --init, not both")
	}
	if opt.LoRA != nil && opt.Init != "" {
		return opt, usageError("train: LoRA adapts a base model (--model), not a new one (--init)")
	}
	if opt.Tokenizer != "" && opt.Init == "" && opt.Resume == "" {
		return opt, usageError("train: --tokenizer goes with --init (a base model brings its own)")
	}
	if opt.VocabSize < 260 {
		return opt, usageError("train: --vocab-size %d: want at least 260", opt.VocabSize)
	}
	for _, p := range []struct{ flag, path string }{{"model", opt.Model}, {"init", opt.Init}, {"tokenizer", opt.Tokenizer}, {"resume", opt.Resume}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return opt, usageError("train: --%s: %v", p.flag, err)
		}
	}
	return opt, nil
}

// loraFlags applies the LoRA flags given over the recipe's lora:.
func loraFlags(changed func(string) bool, opt *train.Options, f trainFlags) error {
	if changed("lora-r") {
		if f.loraR == 0 {
			opt.LoRA, opt.QLoRA = nil, false
		} else {
			if opt.LoRA == nil {
				opt.LoRA = &model.LoRAConfig{}
			}
			opt.LoRA.Rank = f.loraR
		}
	}
	other := changed("lora-alpha") || changed("lora-targets") || changed("rslora") || changed("qlora")
	if opt.LoRA == nil {
		if other {
			return usageError("train: --lora-alpha, --lora-targets, --rslora and --qlora go with --lora-r")
		}
		return nil
	}
	if f.loraR < 0 {
		return usageError("train: --lora-r %d must not be negative", f.loraR)
	}
	if changed("lora-alpha") {
		opt.LoRA.Alpha = f.loraAlpha
	}
	if changed("lora-targets") {
		opt.LoRA.Targets = f.loraTargets
	}
	if changed("rslora") {
		opt.LoRA.RSLoRA = f.rslora
	}
	if changed("qlora") {
		opt.QLoRA = f.qlora
	}
	return nil
}

// applyRecipeTrain copies the settings a recipe's train: section gives.
func applyRecipeTrain(opt *train.Options, cfg *train.Config, r *recipe.Recipe, t *recipe.Train) {
	path := func(p string) string {
		if p == "" {
			return ""
		}
		return r.ResolvePath(p)
	}
	if t.Data != "" {
		opt.Data = t.Data
	}
	opt.Model, opt.Init, opt.Tokenizer, opt.Output = path(t.Model), path(t.Init), path(t.Tokenizer), path(t.Output)
	if t.VocabSize > 0 {
		opt.VocabSize = t.VocabSize
	}
	setF := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	setI := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setF(&cfg.LearningRate, t.LearningRate)
	setF(&cfg.MinLRRatio, t.MinLRRatio)
	setI(&cfg.WarmupSteps, t.WarmupSteps)
	setF(&cfg.WarmupRatio, t.WarmupRatio)
	setI(&cfg.Epochs, t.Epochs)
	setI(&cfg.MaxSteps, t.MaxSteps)
	setI(&cfg.SeqLen, t.SeqLen)
	setI(&cfg.BatchSize, t.BatchSize)
	setI(&cfg.GradAccum, t.GradAccum)
	setF(&cfg.WeightDecay, t.WeightDecay)
	setF(&cfg.Beta1, t.Beta1)
	setF(&cfg.Beta2, t.Beta2)
	setF(&cfg.Eps, t.Eps)
	setI(&cfg.EvalEvery, t.EvalEvery)
	setI(&cfg.SaveEvery, t.SaveEvery)
	setI(&cfg.LogEvery, t.LogEvery)
	if t.MaxGradNorm != nil {
		cfg.MaxGradNorm = *t.MaxGradNorm
	}
	if t.Pack != nil {
		cfg.Pad = !*t.Pack
	}
	if t.Seed != nil {
		cfg.Seed = *t.Seed
	}
	if l := t.LoRA; l != nil {
		opt.LoRA = &model.LoRAConfig{Rank: l.R, Alpha: l.Alpha, Targets: l.Targets, RSLoRA: l.RSLoRA}
		opt.QLoRA = l.QLoRA
	}
}

// copyChanged copies into cfg the hyperparameters whose flags were given.
func copyChanged(changed func(flag string) bool, cfg *train.Config, from train.Config) {
	for _, c := range []struct {
		flag string
		set  func()
	}{
		{"lr", func() { cfg.LearningRate = from.LearningRate }},
		{"min-lr-ratio", func() { cfg.MinLRRatio = from.MinLRRatio }},
		{"warmup-steps", func() { cfg.WarmupSteps = from.WarmupSteps }},
		{"warmup-ratio", func() { cfg.WarmupRatio = from.WarmupRatio }},
		{"epochs", func() { cfg.Epochs = from.Epochs }},
		{"max-steps", func() { cfg.MaxSteps = from.MaxSteps }},
		{"seq-len", func() { cfg.SeqLen = from.SeqLen }},
		{"batch-size", func() { cfg.BatchSize = from.BatchSize }},
		{"grad-accum", func() { cfg.GradAccum = from.GradAccum }},
		{"weight-decay", func() { cfg.WeightDecay = from.WeightDecay }},
		{"beta1", func() { cfg.Beta1 = from.Beta1 }},
		{"beta2", func() { cfg.Beta2 = from.Beta2 }},
		{"eps", func() { cfg.Eps = from.Eps }},
		{"max-grad-norm", func() { cfg.MaxGradNorm = from.MaxGradNorm }},
		{"seed", func() { cfg.Seed = from.Seed }},
		{"eval-every", func() { cfg.EvalEvery = from.EvalEvery }},
		{"save-every", func() { cfg.SaveEvery = from.SaveEvery }},
		{"log-every", func() { cfg.LogEvery = from.LogEvery }},
		{"diverge-factor", func() { cfg.DivergeFactor = from.DivergeFactor }},
		{"diverge-steps", func() { cfg.DivergeSteps = from.DivergeSteps }},
		{"early-stop", func() { cfg.EarlyStopPatience = from.EarlyStopPatience }},
		{"early-stop-delta", func() { cfg.EarlyStopDelta = from.EarlyStopDelta }},
		{"precision", func() { cfg.Precision = from.Precision }},
	} {
		if changed(c.flag) {
			c.set()
		}
	}
}

func runTrain(opt train.Options, f trainFlags, stdout, stderr io.Writer) error {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	if f.quiet {
		level = slog.LevelError
	}
	setupLogging(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	human := !f.json && !f.quiet
	bar := &trainBar{w: stderr, on: !f.quiet && !f.verbose && isTerminal(stderr)}
	if f.json {
		opt.Log = stdout
	}
	// The training loss of an eval line is the mean over the steps since
	// the previous one.
	var stepLoss float64
	var steps int
	opt.OnStart = func(p train.Plan) {
		if !human {
			return
		}
		resumed := ""
		if p.FirstStep > 0 {
			resumed = fmt.Sprintf(", resuming at step %d", p.FirstStep)
		}
		tok := ""
		if p.TokenizerTrained {
			tok = " (tokenizer trained on the train split)"
		}
		bar.println(stdout, "%s: train %s; test %s\n%s trainable parameters, vocabulary %d%s; %d steps (%d per epoch)%s",
			p.Data, dataLine(p.Train), dataLine(p.Test), humanCount(p.NumParams), p.VocabSize, tok, p.Steps, p.StepsPerEpoch, resumed)
		bar.println(stdout, "%s", memoryLine(p.Memory))
		bar.println(stdout, "precision: %s", p.PrecisionReason)
		if r := p.LRFinder; r != nil {
			bar.println(stdout, "%s\ntraining at --lr %.3g", finderLine(r), p.LearningRate)
		}
	}
	opt.OnRecord = func(r train.Record) {
		if !human || r.EvalLoss == nil {
			return
		}
		line := fmt.Sprintf("epoch %5.2f  step %5d  eval loss %.4f", r.Epoch, r.Step, *r.EvalLoss)
		if steps > 0 {
			line += fmt.Sprintf("  train loss %.4f", stepLoss/float64(steps))
		}
		stepLoss, steps = 0, 0
		bar.println(stdout, "%s", line)
	}
	opt.OnStep = func(p train.Progress) {
		stepLoss += p.Loss
		steps++
		bar.step(p)
	}
	if f.findLR {
		r, err := train.FindLR(ctx, opt)
		if err != nil {
			return err
		}
		if f.json {
			data, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", data)
		} else if human {
			fmt.Fprintf(stdout, "%s\n", finderLine(r))
		}
		return nil
	}
	res, err := train.Run(ctx, opt)
	bar.clear()
	if err != nil {
		return err
	}
	if human && res.Stopped != "" {
		fmt.Fprintf(stdout, "%s\n", res.Stopped)
	}
	if human && opt.Config.EarlyStopPatience > 0 {
		fmt.Fprintf(stdout, "best eval loss %.4f at step %d: the final model (also in %s)\n", res.BestEvalLoss, res.BestStep, filepath.Join(res.Dir, train.BestCheckpoint))
	}
	if human {
		fmt.Fprintf(stdout, "saved %s: %d steps, %s tokens in %s, %s tokens/s\n", res.Dir, res.Steps, humanCount(int(res.Tokens)),
			time.Duration(res.Elapsed*float64(time.Second)).Round(time.Second), humanCount(int(res.TokensPerS)))
	}
	return nil
}

func memoryLine(e train.MemoryEstimate) string {
	s := "memory: " + e.String()
	if e.GradAccum > 1 {
		s += fmt.Sprintf("; micro-batch %d × %d accumulated", e.BatchSize, e.GradAccum)
	}
	if e.Budget > 0 {
		s += "; budget " + train.GiB(e.Budget)
	}
	return s
}

func finderLine(r *train.LRFinderResult) string {
	s := fmt.Sprintf("lr finder: %d steps from %.3g to %.3g", len(r.LRs), r.LRs[0], r.LRs[len(r.LRs)-1])
	if r.Diverged > 0 {
		s += " (stopped: diverged)"
	}
	s += fmt.Sprintf("; lowest smoothed loss at %.3g, steepest descent at %.3g\nsuggested --lr %.3g (%s)", r.MinLR, r.Steepest, r.Suggestion, train.LRFinderRule)
	if r.Plot != "" {
		s += "; plot " + r.Plot
	}
	return s
}

func dataLine(s train.DataStats) string {
	if s.Samples == 0 {
		return "none"
	}
	return fmt.Sprintf("%d conversations (%d truncated, %d skipped), %s tokens in %d rows", s.Samples, s.Truncated, s.Skipped, humanCount(int(s.Tokens)), s.Rows)
}

// humanCount writes n with thousands separators (1,234,567), or in
// millions above ten million.
func humanCount(n int) string {
	if n >= 10_000_000 {
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// trainBar draws a one-line progress bar of the training steps on a
// terminal (as 'sieve run' draws its spinner); elsewhere it draws
// nothing. Lines printed through println clear it first.
type trainBar struct {
	w     io.Writer
	on    bool
	mu    sync.Mutex
	last  time.Time
	shown bool
}

func (b *trainBar) step(p train.Progress) {
	if !b.on {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Step < p.Total && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	const width = 24
	frac := float64(p.Step) / float64(max(1, p.Total))
	full := int(frac * width)
	bar := strings.Repeat("█", full) + strings.Repeat("░", width-full)
	eta := ""
	if p.Step > 0 && p.Step < p.Total {
		left := time.Duration(float64(p.Elapsed) / frac * (1 - frac))
		eta = "  eta " + left.Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r\033[Kstep %d/%d %s %3.0f%%  loss %.4f  lr %.2e  %s tok/s%s",
		p.Step, p.Total, bar, 100*frac, p.Loss, p.LR, humanCount(int(p.TokensPerS)), eta)
	b.shown = true
}

// println clears the bar, then prints a line to w.
func (b *trainBar) println(w io.Writer, format string, args ...any) {
	b.clear()
	fmt.Fprintf(w, format+"\n", args...)
}

func (b *trainBar) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown {
		fmt.Fprint(b.w, "\r\033[K")
		b.shown = false
	}
}
