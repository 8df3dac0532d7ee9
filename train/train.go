package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// Options say what to train, from what, and where to write it.
type Options struct {
	// Store and Data name the dataset version: NAME[@VERSION] (latest by
	// default) in the store. Its train split is trained on, its test
	// split evaluated on.
	Store datasets.Store
	Data  string

	// The base model: Model, a Hugging Face checkpoint directory
	// (config.json, model.safetensors or sharded safetensors with their
	// index, tokenizer.json and tokenizer_config.json); or Init, a
	// config.json for a new model initialised from Config.Seed.
	Model string
	Init  string
	// Tokenizer, with Init: a tokenizer directory or tokenizer.json. When
	// empty a byte-level BPE tokenizer of VocabSize tokens (default 4096)
	// is trained on the train split.
	Tokenizer string
	VocabSize int

	// LoRA, when set, trains low-rank adapters (PEFT's LoRA) on the
	// frozen base model instead of every weight; a zero Seed takes
	// Config.Seed. QLoRA also stores the frozen projections in NF4.
	LoRA  *model.LoRAConfig
	QLoRA bool

	// Output is the directory of the run: log.jsonl, checkpoint-STEP
	// directories and, at the end, the final model (with LoRA, the
	// adapters merged in; the adapter itself in Output/adapter).
	Output string
	// Resume continues from a checkpoint directory (see
	// LatestCheckpoint): the model, tokenizer and optimizer state come
	// from it, and Model, Init and Tokenizer are not used.
	Resume string

	Config Config

	// Log also receives the JSON lines written to log.jsonl (nil: only
	// the file).
	Log io.Writer
	// OnStart is called once the data is tokenized and the model built,
	// before the first step; OnRecord with each record logged; OnStep
	// after each optimizer step. Each may be nil.
	OnStart  func(Plan)
	OnRecord func(Record)
	OnStep   func(Progress)

	// AutoLR runs the learning rate finder (FindLR, with LRFinder's
	// settings) before training and trains with its suggestion instead
	// of Config.LearningRate. It is ignored when resuming (the
	// checkpoint's rate is used).
	AutoLR   bool
	LRFinder LRFinderOptions
	// MaxMemory is the memory budget in bytes that the estimate of the
	// run's peak must fit (0: the memory available, from
	// /proc/meminfo; negative: no check). AutoBatch picks the micro-batch
	// size: the largest divisor of BatchSize·GradAccum whose estimate
	// fits, with the accumulation that keeps their product.
	MaxMemory int64
	AutoBatch bool

	// cache, when set, holds what the trials of a sweep share: the
	// splits, a tokenizer trained on the train split and the encoded
	// conversations.
	cache *dataCache
}

// Plan describes a run about to start.
type Plan struct {
	Data          string // NAME@vN
	Train, Test   DataStats
	Steps         int // optimizer steps in all
	StepsPerEpoch int
	FirstStep     int // steps already done (when resuming)
	NumParams     int // trainable parameters
	VocabSize     int // of the tokenizer
	// TokenizerTrained is set when the tokenizer was trained on the
	// train split for this run.
	TokenizerTrained bool
	// Memory is the estimate of the run's peak memory.
	Memory MemoryEstimate
	// LearningRate is the peak learning rate; LRFinder the sweep that
	// chose it, with AutoLR.
	LearningRate float64
	LRFinder     *LRFinderResult
	// Precision is the arithmetic of the products (fp32 or bf16) and
	// PrecisionReason why (Config.Precision resolved on this CPU).
	Precision, PrecisionReason string
}

// Record is one line of log.jsonl: a training line (loss, lr, grad_norm,
// tokens_per_s, averaged over the steps since the previous line) or an
// evaluation line (eval_loss).
type Record struct {
	Step  int     `json:"step"`  // optimizer steps done
	Epoch float64 `json:"epoch"` // step / steps per epoch
	// Loss is the mean loss per counted token over the steps since the
	// previous training line (nats).
	Loss *float64 `json:"loss,omitempty"`
	// LR is the learning rate of the last of those steps.
	LR *float64 `json:"lr,omitempty"`
	// GradNorm is the global gradient norm of that step, before clipping.
	GradNorm *float64 `json:"grad_norm,omitempty"`
	// Tokens is the number of tokens trained on so far, padding excluded.
	Tokens int64 `json:"tokens"`
	// TokensPerS is the training throughput since the previous line
	// (forward, backward and update; evaluation and saving excluded).
	TokensPerS *float64 `json:"tokens_per_s,omitempty"`
	// EvalLoss is the mean loss per counted token on the test split.
	EvalLoss *float64 `json:"eval_loss,omitempty"`
	// Elapsed is the wall time of the run so far, in seconds.
	Elapsed float64 `json:"elapsed"`
}

// Progress is the state after an optimizer step, for a progress display.
type Progress struct {
	Step, Total int
	Epoch       float64
	Loss        float64 // of this step
	LR          float64
	TokensPerS  float64 // over the run so far
	Elapsed     time.Duration
}

// Result sums up a finished run.
type Result struct {
	Dir         string // the final model: Output
	Data        string // NAME@vN trained on
	Steps       int
	Train, Test DataStats
	Evals       []Record // every evaluation, in order
	Tokens      int64
	TokensPerS  float64 // mean training throughput of this process
	Elapsed     float64 // seconds
	NumParams   int     // trainable parameters
	// Stopped says why training stopped before its last step (early
	// stopping), or is empty.
	Stopped string
	// BestStep and BestEvalLoss: the best evaluation, with early
	// stopping (whose model is the final model).
	BestStep     int
	BestEvalLoss float64
	// LearningRate is the peak learning rate trained with (the LR
	// finder's suggestion with AutoLR); LRFinder the sweep, with AutoLR.
	LearningRate float64
	LRFinder     *LRFinderResult
	// Precision is what the products ran in (fp32 or bf16) and
	// PrecisionReason why.
	Precision, PrecisionReason string
}

// Files of a run directory and of a checkpoint.
const (
	LogFile            = "log.jsonl"
	TrainerStateFile   = "trainer_state.json"
	OptimizerStateFile = "optimizer.safetensors"
	checkpointPrefix   = "checkpoint-"
)

// trainerState is trainer_state.json: where a checkpoint stands.
type trainerState struct {
	GlobalStep    int     `json:"global_step"`
	MaxSteps      int     `json:"max_steps"`
	StepsPerEpoch int     `json:"steps_per_epoch"`
	Epoch         float64 `json:"epoch"`
	Data          string  `json:"data"`
	Config        Config  `json:"config"`
	// With LoRA: the base model's directory, as an absolute path and as
	// the user gave it (written as the adapter's
	// base_model_name_or_path), and the adapters' settings.
	BaseModel     string     `json:"base_model,omitempty"`
	BaseModelName string     `json:"base_model_name_or_path,omitempty"`
	LoRA          *loraState `json:"lora,omitempty"`
	Tokens        int64      `json:"tokens"`
	Elapsed       float64    `json:"elapsed"`
	TrainData     DataStats  `json:"train_data"`
	TestData      DataStats  `json:"test_data"`
	LogHistory    []Record   `json:"log_history"`
	// Watchdog is the loss watchdog's state, so that a resumed run
	// watches as the uninterrupted one would.
	Watchdog *watchdogState `json:"watchdog,omitempty"`
	// Precision is what the products ran in (config.precision resolved
	// on the machine: fp32 or bf16), and PrecisionReason why.
	Precision       string `json:"precision,omitempty"`
	PrecisionReason string `json:"precision_reason,omitempty"`
}

// loraState is the LoRA part of trainer_state.json.
type loraState struct {
	Rank    int      `json:"r"`
	Alpha   float64  `json:"lora_alpha"`
	Targets []string `json:"target_modules"`
	RSLoRA  bool     `json:"use_rslora"`
	Seed    uint64   `json:"seed"`
	QLoRA   bool     `json:"qlora"`
}

func newLoRAState(c *model.LoRAConfig, qlora bool) *loraState {
	if c == nil {
		return nil
	}
	return &loraState{Rank: c.Rank, Alpha: c.Alpha, Targets: c.Targets, RSLoRA: c.RSLoRA, Seed: c.Seed, QLoRA: qlora}
}

// AdapterDir is the subdirectory of a LoRA run's output that holds the
// PEFT adapter.
const AdapterDir = "adapter"

// trainer is one run in progress.
type trainer struct {
	opt Options
	cfg Config
	ref datasets.Ref
	tok *tokenizer.Tokenizer
	p   *model.Params

	tokTrained bool
	lora       *loraState // nil without LoRA
	baseModel  string     // directory of the base model, with LoRA
	baseName   string     // the base model as the user named it
	m          *model.Model
	adam       *AdamW
	sched      CosineSchedule

	train, test      *batcher
	trainSt, testSt  DataStats
	stepsPerEpoch    int
	total            int
	step             int
	tokens           int64
	elapsedBefore    float64
	start            time.Time
	trainTime        time.Duration // of this process, training steps only
	trainTokens      int64         // of this process
	history          []Record
	log              io.Writer
	logFile          *os.File
	lossSum, lossCnt float64 // since the last training line
	winTokens        int64
	winTime          time.Duration
	lastLR, lastNorm float64
	lastLoss         float64 // of the last step
	evalAll          []Record
	orderEpoch       int   // the epoch of order
	order            []int // the row order of orderEpoch

	memory    MemoryEstimate
	precision model.Precision // of the products (cfg.Precision resolved)
	precWhy   string          // why, for the log
	available int64           // MemAvailable when the run started
	resident  int64           // the process's resident memory then
	finder    *LRFinderResult // the sweep of AutoLR

	// The loss watchdog: the smoothed loss, its bias correction, its
	// lowest value, and the first step of the current run of steps
	// above the threshold (0: none).
	ema, emaW, emaBest float64
	badFrom, badSteps  int
	// Early stopping: the best eval loss and its step (-1: none), the
	// evaluations since, and why training stopped early.
	bestEval  float64
	bestStep  int
	sinceBest int
	stopped   string
}

// Run trains a model as opt says and writes it to opt.Output. It
// evaluates on the test split before training, at the end of each epoch
// and every Config.EvalEvery steps; writes checkpoints every
// Config.SaveEvery steps and the final model at the end. When ctx is
// cancelled it saves a checkpoint of the last finished step and returns
// ctx's error.
func Run(ctx context.Context, opt Options) (*Result, error) {
	t, state, err := setup(ctx, opt)
	if err != nil {
		return nil, err
	}
	defer t.limitMemory()()
	if opt.AutoLR && state == nil {
		if err := t.autoLR(ctx); err != nil {
			return nil, err
		}
	}
	return t.run(ctx, state)
}

// setup checks the options, reads and tokenizes the data, and builds
// the model and optimizer (from the checkpoint, when resuming, whose
// state it returns).
func setup(ctx context.Context, opt Options) (*trainer, *trainerState, error) {
	cfg := opt.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	if opt.Output == "" {
		return nil, nil, errors.New("train: no output directory")
	}
	ref, err := datasets.ParseRef(opt.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("train: data: %w", err)
	}
	v, err := opt.Store.OpenVersion(ctx, ref)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	if opt.LoRA != nil {
		if opt.Model == "" && opt.Resume == "" {
			return nil, nil, errors.New("train: LoRA trains adapters on a base model: give Model, not Init")
		}
		l := *opt.LoRA
		if l.Seed == 0 {
			l.Seed = cfg.Seed
		}
		opt.LoRA = &l
	} else if opt.QLoRA {
		return nil, nil, errors.New("train: QLoRA needs LoRA")
	}
	t := &trainer{opt: opt, cfg: cfg, ref: v.Ref, lora: newLoRAState(opt.LoRA, opt.QLoRA)}
	if t.precision, t.precWhy, err = model.ResolvePrecision(cfg.Precision, model.HostCPU()); err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	t.available, t.resident = AvailableMemory(), ResidentMemory()
	if opt.Model != "" {
		if t.baseModel, err = filepath.Abs(opt.Model); err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		t.baseName = opt.Model
	}
	var state *trainerState
	if opt.Resume != "" {
		if state, err = readState(opt.Resume); err != nil {
			return nil, nil, err
		}
		if state.Data != v.Ref.String() {
			return nil, nil, fmt.Errorf("train: checkpoint %s was trained on %s, not %s", opt.Resume, state.Data, v.Ref)
		}
		if opt.AutoLR { // the rate the finder chose for the checkpoint's run
			cfg.LearningRate = state.Config.LearningRate
		}
		if sc := state.Config; opt.AutoBatch && sc.BatchSize*sc.GradAccum == cfg.BatchSize*cfg.GradAccum {
			cfg.BatchSize, cfg.GradAccum = sc.BatchSize, sc.GradAccum
		}
		if err := cfg.sameTrajectory(state.Config); err != nil {
			return nil, nil, fmt.Errorf("train: resume %s: %w", opt.Resume, err)
		}
		if a, b := fmt.Sprintf("%+v", t.lora), fmt.Sprintf("%+v", state.LoRA); (t.lora == nil) != (state.LoRA == nil) || (t.lora != nil && a != b) {
			return nil, nil, fmt.Errorf("train: resume %s: LoRA settings %s differ from the checkpoint's, %s", opt.Resume, a, b)
		}
		t.baseModel, t.baseName = state.BaseModel, state.BaseModelName
		if t.baseName == "" {
			t.baseName = state.BaseModel
		}
	}
	splits, err := opt.cache.readSplits(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	if len(splits.Train) == 0 {
		return nil, nil, fmt.Errorf("train: %s has no train split", v.Ref)
	}
	if err := t.loadBase(splits); err != nil {
		return nil, nil, err
	}
	if err := t.prepareData(splits); err != nil {
		return nil, nil, err
	}
	if err := t.planMemory(); err != nil {
		return nil, nil, err
	}
	if t.m, err = model.New(t.p, cfg.BatchSize, cfg.SeqLen); err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	if err := t.setupLoRA(); err != nil {
		return nil, nil, err
	}
	t.m.SetPrecision(t.precision)
	params := t.m.Trainable()
	t.adam = NewAdamW(params, NoDecay, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	if state != nil {
		if err := t.adam.LoadState(filepath.Join(opt.Resume, OptimizerStateFile)); err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		t.adam.Steps = state.GlobalStep
		t.step, t.tokens, t.elapsedBefore, t.history = state.GlobalStep, state.Tokens, state.Elapsed, state.LogHistory
		if w := state.Watchdog; w != nil {
			t.ema, t.emaW, t.emaBest, t.badFrom, t.badSteps = w.EMA, w.Weight, w.Best, w.BadFrom, w.BadSteps
		}
		for _, r := range state.LogHistory {
			if r.EvalLoss != nil {
				t.evalAll = append(t.evalAll, r)
			}
		}
	}
	return t, state, nil
}

// run trains from where setup left off.
func (t *trainer) run(ctx context.Context, state *trainerState) (*Result, error) {
	opt, cfg := t.opt, t.cfg
	params := t.m.Trainable()
	var err error
	if err := os.MkdirAll(opt.Output, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if t.logFile, err = os.Create(filepath.Join(opt.Output, LogFile)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer t.logFile.Close()
	t.log = t.logFile
	if opt.Log != nil {
		t.log = io.MultiWriter(t.logFile, opt.Log)
	}
	for _, r := range t.history { // a resumed run's log starts with the checkpoint's history
		if err := writeRecord(t.logFile, r); err != nil {
			return nil, err
		}
	}
	slog.Info("train", "data", t.ref.String(), "params", t.p.NumParams(), "steps", t.total, "steps_per_epoch", t.stepsPerEpoch,
		"train_rows", t.trainSt.Rows, "test_rows", t.testSt.Rows, "resume_step", t.step, "precision", t.precWhy)

	numTrainable := 0
	for _, tt := range params {
		numTrainable += len(tt.P)
	}
	if opt.OnStart != nil {
		opt.OnStart(Plan{Data: t.ref.String(), Memory: t.memory, LearningRate: t.cfg.LearningRate, LRFinder: t.finder, Train: t.trainSt, Test: t.testSt, Steps: t.total, StepsPerEpoch: t.stepsPerEpoch,
			FirstStep: t.step, NumParams: numTrainable, VocabSize: t.tok.VocabSize(), TokenizerTrained: t.tokTrained,
			Precision: t.precision.String(), PrecisionReason: t.precWhy})
	}
	t.start = time.Now()
	t.initEarlyStop()
	if t.step == 0 && t.test != nil {
		if err := t.evaluate(); err != nil {
			return nil, err
		}
	}
	for t.step < t.total && t.stopped == "" {
		if err := ctx.Err(); err != nil {
			dir := t.checkpointDir()
			if serr := t.save(dir, true); serr != nil {
				return nil, errors.Join(fmt.Errorf("train: interrupted: %w", err), serr)
			}
			return nil, fmt.Errorf("train: interrupted at step %d (checkpoint %s): %w", t.step, dir, err)
		}
		if err := t.trainStep(params); err != nil {
			var d *DivergedError
			if errors.As(err, &d) {
				return nil, t.diverged(d)
			}
			return nil, err
		}
		if d := t.watch(); d != nil {
			return nil, t.diverged(d)
		}
		last := t.step == t.total
		if t.step%cfg.LogEvery == 0 || last {
			if err := t.logTrain(); err != nil {
				return nil, err
			}
		}
		epochEnd := t.step%t.stepsPerEpoch == 0
		if t.test != nil && (epochEnd || last || (cfg.EvalEvery > 0 && t.step%cfg.EvalEvery == 0)) {
			if err := t.evaluate(); err != nil {
				return nil, err
			}
		}
		if t.stopped != "" && t.lossCnt > 0 {
			if err := t.logTrain(); err != nil {
				return nil, err
			}
		}
		if cfg.SaveEvery > 0 && t.step%cfg.SaveEvery == 0 && !last && t.stopped == "" {
			if err := t.save(t.checkpointDir(), true); err != nil {
				return nil, err
			}
		}
	}
	if err := t.restoreBest(); err != nil {
		return nil, err
	}
	if err := t.save(opt.Output, false); err != nil {
		return nil, err
	}
	res := &Result{Dir: opt.Output, Data: t.ref.String(), Steps: t.step, Train: t.trainSt, Test: t.testSt,
		Evals: t.evalAll, Tokens: t.tokens, Elapsed: t.elapsed(), NumParams: numTrainable, Stopped: t.stopped,
		LearningRate: t.cfg.LearningRate, LRFinder: t.finder, Precision: t.precision.String(), PrecisionReason: t.precWhy}
	if t.bestStep >= 0 {
		res.BestStep, res.BestEvalLoss = t.bestStep, t.bestEval
	}
	if s := t.trainTime.Seconds(); s > 0 {
		res.TokensPerS = float64(t.trainTokens) / s
	}
	return res, nil
}

// loadBase sets the tokenizer and the weights: from the checkpoint to
// resume, the base model, or a new model.
func (t *trainer) loadBase(splits Splits) error {
	opt := t.opt
	var err error
	switch {
	case opt.Resume != "" || opt.Model != "":
		dir := opt.Resume
		if dir == "" {
			dir = opt.Model
			if opt.Init != "" {
				return errors.New("train: give a base model or a config to initialise, not both")
			}
		}
		weights := dir
		if t.lora != nil {
			weights = t.baseModel // a LoRA checkpoint holds the adapters only
		}
		if t.p, err = model.Load(weights); err != nil {
			return fmt.Errorf("train: base model: %w", err)
		}
		if t.tok, err = tokenizer.LoadDir(dir); err != nil {
			return fmt.Errorf("train: base model's tokenizer: %w", err)
		}
		if n := t.tok.VocabSize(); n > t.p.Config.VocabSize {
			return fmt.Errorf("train: the tokenizer of %s has %d tokens, the model only %d", dir, n, t.p.Config.VocabSize)
		}
	case opt.Init != "":
		c, err := model.ReadConfig(opt.Init)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if opt.Tokenizer != "" {
			if t.tok, err = LoadTokenizer(opt.Tokenizer); err != nil {
				return err
			}
		} else {
			if t.tok, err = opt.cache.trainTokenizer(splits, opt.VocabSize); err != nil {
				return err
			}
			t.tokTrained = true
		}
		c.VocabSize = t.tok.VocabSize()
		c.MaxPositionEmbeddings = max(c.MaxPositionEmbeddings, t.cfg.SeqLen)
		setTokenIDs(&c, t.tok)
		if t.p, err = model.NewParams(c); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		std := 0.02
		if raw, ok := c.Extra["initializer_range"]; ok {
			if err := json.Unmarshal(raw, &std); err != nil {
				return fmt.Errorf("train: %s: initializer_range: %w", opt.Init, err)
			}
		}
		t.p.Init(t.cfg.Seed, std)
	default:
		return errors.New("train: no base model: give a checkpoint directory (Model) or a config to initialise (Init)")
	}
	return nil
}

// setupLoRA turns LoRA on for a LoRA run: fresh adapters, or the
// checkpoint's when resuming; then quantizes the base for QLoRA.
func (t *trainer) setupLoRA() error {
	if t.lora == nil {
		return nil
	}
	if t.opt.Resume != "" {
		if err := t.m.LoadAdapter(t.opt.Resume); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
	} else if err := t.m.EnableLoRA(*t.opt.LoRA); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.m.G = nil // LoRA never writes the base's gradients: free them
	if t.lora.QLoRA {
		if err := t.m.QuantizeBase(0); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		t.p = t.m.P // let the float32 projections go
	}
	return nil
}

// LoadTokenizer reads a tokenizer directory, or a tokenizer.json file
// (with the tokenizer_config.json beside it, when there is one).
func LoadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("train: tokenizer: %w", err)
	}
	dir := path
	if !fi.IsDir() {
		dir = filepath.Dir(path)
		if filepath.Base(path) != "tokenizer.json" {
			tok, err := tokenizer.Load(path)
			if err != nil {
				return nil, fmt.Errorf("train: tokenizer: %w", err)
			}
			return tok, nil
		}
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("train: tokenizer: %w", err)
	}
	return tok, nil
}

// setTokenIDs writes the tokenizer's bos, eos and pad ids into a new
// model's config.json keys, which transformers' generate reads; the end
// of an assistant turn is the eos when the tokenizer names none.
func setTokenIDs(c *model.Config, tok *tokenizer.Tokenizer) {
	if c.Extra == nil {
		c.Extra = map[string]json.RawMessage{}
	}
	id := func(name string) json.RawMessage {
		if i, ok := tok.TokenID(name); ok && name != "" {
			return json.RawMessage(fmt.Sprint(i))
		}
		return json.RawMessage("null")
	}
	eos := tok.EOS()
	if eos == "" {
		eos = tok.Chat().EndOfTurn()
	}
	c.Extra["bos_token_id"] = id(tok.BOS())
	c.Extra["eos_token_id"] = id(eos)
	c.Extra["pad_token_id"] = id(tok.Pad())
}

// prepareData encodes both splits, packs (or pads) them into rows and
// sets the schedule.
func (t *trainer) prepareData(splits Splits) error {
	cfg := t.cfg
	rowsOf := func(s []model.Sample) [][]int {
		if cfg.Pad {
			return OnePerRow(s)
		}
		return Pack(s, cfg.SeqLen)
	}
	started := time.Now()
	tokKey := t.tokenizerKey()
	trainS, st := t.opt.cache.encode(tokKey, "train", t.tok, splits.Train, cfg.SeqLen)
	if len(trainS) == 0 {
		return fmt.Errorf("train: no conversation of %s's train split has an assistant token to learn within %d tokens", t.ref, cfg.SeqLen)
	}
	trainRows := rowsOf(trainS)
	st.Rows = len(trainRows)
	t.trainSt = st
	t.train = newBatcher(trainS, trainRows, cfg.BatchSize, cfg.SeqLen)
	if len(splits.Test) > 0 {
		testS, st := t.opt.cache.encode(tokKey, "test", t.tok, splits.Test, cfg.SeqLen)
		testRows := rowsOf(testS)
		st.Rows = len(testRows)
		t.testSt = st
		if len(testS) > 0 {
			t.test = newBatcher(testS, testRows, cfg.BatchSize, cfg.SeqLen)
		}
	}
	if t.test == nil {
		slog.Warn("no test split to evaluate on", "data", t.ref.String())
	}
	slog.Info("tokenized", "seconds", time.Since(started).Seconds(), "train", t.trainSt, "test", t.testSt)
	perStep := cfg.BatchSize * cfg.GradAccum
	t.stepsPerEpoch = (len(trainRows) + perStep - 1) / perStep
	t.total = cfg.MaxSteps
	if t.total == 0 {
		t.total = cfg.Epochs * t.stepsPerEpoch
	}
	warmup := cfg.WarmupSteps
	if warmup == 0 && cfg.WarmupRatio > 0 {
		warmup = int(math.Ceil(cfg.WarmupRatio * float64(t.total)))
	}
	t.sched = CosineSchedule{Peak: cfg.LearningRate, Warmup: warmup, Total: t.total, MinLRRatio: cfg.MinLRRatio}
	return nil
}

// stepRows returns the rows of optimizer step s (0-based): the epoch's
// shuffled order, cut in slices of BatchSize·GradAccum rows.
func (t *trainer) stepRows(s int) []int {
	epoch, k := s/t.stepsPerEpoch, s%t.stepsPerEpoch
	if t.order == nil || t.orderEpoch != epoch {
		t.order, t.orderEpoch = epochOrder(t.cfg.Seed, epoch, len(t.train.rows)), epoch
	}
	perStep := t.cfg.BatchSize * t.cfg.GradAccum
	return t.order[k*perStep : min((k+1)*perStep, len(t.order))]
}

// trainStep runs one optimizer step: the micro-batches forward and
// backward, each weighted by its share of the step's counted tokens,
// then clipping and AdamW.
func (t *trainer) trainStep(params []model.TrainableTensor) error {
	started := time.Now()
	lossSum, count, tokens, err := accumulate(t.m, t.train, t.stepRows(t.step), t.cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("train: step %d: %w", t.step+1, err)
	}
	var norm float64
	if t.cfg.MaxGradNorm > 0 {
		norm = ClipGradNorm(params, t.cfg.MaxGradNorm)
	} else {
		norm = GradNorm(params)
	}
	loss := lossSum / float64(max(1, count))
	if bad(loss) || bad(norm) {
		what, v := "loss", loss
		if !bad(loss) {
			what, v = "gradient norm", norm
		}
		return &DivergedError{Step: t.step + 1, From: t.step + 1, Reason: fmt.Sprintf("the %s is %g", what, v)}
	}
	lr := t.sched.LR(t.step)
	t.adam.Update(lr)
	t.step++
	d := time.Since(started)
	t.tokens += int64(tokens)
	t.trainTokens += int64(tokens)
	t.trainTime += d
	t.winTokens += int64(tokens)
	t.winTime += d
	t.lossSum += lossSum
	t.lossCnt += float64(count)
	t.lastLR, t.lastNorm, t.lastLoss = lr, norm, loss
	if t.opt.OnStep != nil {
		p := Progress{Step: t.step, Total: t.total, Epoch: t.epoch(), Loss: loss, LR: lr, Elapsed: time.Duration(t.elapsed() * float64(time.Second))}
		if s := t.trainTime.Seconds(); s > 0 {
			p.TokensPerS = float64(t.trainTokens) / s
		}
		t.opt.OnStep(p)
	}
	return nil
}

// accumulate sets m.G to the gradient of the mean loss per counted token
// over the given rows, run in micro-batches of b rows: each micro-batch's
// gradient is weighted by its share of the counted tokens. It returns
// the summed loss (mean × count over the micro-batches), the counted
// tokens and the tokens processed (padding excluded).
func accumulate(m *model.Model, bt *batcher, rows []int, b int) (lossSum float64, count, tokens int, err error) {
	for _, r := range rows {
		count += bt.rowLoss(r)
	}
	m.ZeroGrad()
	for lo := 0; lo < len(rows); lo += b {
		x, n, err := bt.batch(rows[lo:min(lo+b, len(rows))])
		if err != nil {
			return 0, 0, 0, err
		}
		loss, err := m.Forward(x)
		if err != nil {
			return 0, 0, 0, err
		}
		tokens += n
		_, c := m.Loss()
		if c == 0 {
			continue
		}
		if err := m.BackwardScaled(float32(c) / float32(count)); err != nil {
			return 0, 0, 0, err
		}
		lossSum += float64(loss) * float64(c)
	}
	return lossSum, count, tokens, nil
}

func (t *trainer) epoch() float64 { return float64(t.step) / float64(t.stepsPerEpoch) }

func (t *trainer) elapsed() float64 { return t.elapsedBefore + time.Since(t.start).Seconds() }

// logTrain writes a training line for the steps since the last one.
func (t *trainer) logTrain() error {
	loss := t.lossSum / math.Max(1, t.lossCnt)
	lr, norm := t.lastLR, t.lastNorm
	r := Record{Step: t.step, Epoch: t.epoch(), Loss: &loss, LR: &lr, GradNorm: &norm, Tokens: t.tokens, Elapsed: t.elapsed()}
	if s := t.winTime.Seconds(); s > 0 {
		tps := float64(t.winTokens) / s
		r.TokensPerS = &tps
	}
	t.lossSum, t.lossCnt, t.winTokens, t.winTime = 0, 0, 0, 0
	return t.record(r)
}

// evaluate computes the loss per counted token on the test split and
// logs it.
func (t *trainer) evaluate() error {
	loss, err := evalLoss(t.m, t.test, t.cfg.BatchSize)
	if err != nil {
		return err
	}
	r := Record{Step: t.step, Epoch: t.epoch(), EvalLoss: &loss, Tokens: t.tokens, Elapsed: t.elapsed()}
	t.evalAll = append(t.evalAll, r)
	if err := t.record(r); err != nil {
		return err
	}
	return t.earlyStop(loss)
}

// evalLoss is the mean loss per counted token over every row of bt, in
// batches of b rows.
func evalLoss(m *model.Model, bt *batcher, b int) (float64, error) {
	var sum, count float64
	rows := make([]int, 0, b)
	for lo := 0; lo < len(bt.rows); lo += b {
		rows = rows[:0]
		for r := lo; r < min(lo+b, len(bt.rows)); r++ {
			rows = append(rows, r)
		}
		x, _, err := bt.batch(rows)
		if err != nil {
			return 0, fmt.Errorf("train: eval: %w", err)
		}
		loss, err := m.Forward(x)
		if err != nil {
			return 0, fmt.Errorf("train: eval: %w", err)
		}
		_, c := m.Loss()
		sum += float64(loss) * float64(c)
		count += float64(c)
	}
	return sum / math.Max(1, count), nil
}

func (t *trainer) record(r Record) error {
	t.history = append(t.history, r)
	if err := writeRecord(t.log, r); err != nil {
		return err
	}
	if t.opt.OnRecord != nil {
		t.opt.OnRecord(r)
	}
	return nil
}

func writeRecord(w io.Writer, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("train: writing the log: %w", err)
	}
	return nil
}

func (t *trainer) checkpointDir() string {
	return filepath.Join(t.opt.Output, fmt.Sprintf("%s%d", checkpointPrefix, t.step))
}

// save writes the model in the Hugging Face layout (config.json,
// model.safetensors in float32, tokenizer.json, tokenizer_config.json)
// and trainer_state.json to dir; with optimizer, the AdamW moments too
// (a checkpoint to resume from). A checkpoint directory is written
// beside its final name and renamed into place.
func (t *trainer) save(dir string, optimizer bool) error {
	target := dir
	if optimizer {
		target = dir + ".tmp"
		if err := os.RemoveAll(target); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if err := t.saveModel(target, optimizer); err != nil {
		return fmt.Errorf("train: saving %s: %w", dir, err)
	}
	if err := t.tok.SaveDir(target); err != nil {
		return fmt.Errorf("train: saving %s: %w", dir, err)
	}
	st := trainerState{GlobalStep: t.step, MaxSteps: t.total, StepsPerEpoch: t.stepsPerEpoch, Epoch: t.epoch(),
		Data: t.ref.String(), Config: t.cfg, BaseModel: t.baseModel, BaseModelName: t.baseName, LoRA: t.lora, Tokens: t.tokens, Elapsed: t.elapsed(),
		TrainData: t.trainSt, TestData: t.testSt, LogHistory: t.history,
		Watchdog:  &watchdogState{EMA: t.ema, Weight: t.emaW, Best: t.emaBest, BadFrom: t.badFrom, BadSteps: t.badSteps},
		Precision: t.precision.String(), PrecisionReason: t.precWhy}
	if t.lora == nil {
		st.BaseModel, st.BaseModelName = "", ""
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(target, TrainerStateFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if !optimizer {
		slog.Info("saved model", "dir", dir, "step", t.step)
		return nil
	}
	if err := model.WriteSafetensors(filepath.Join(target, OptimizerStateFile), t.adam.State(), model.F32,
		map[string]string{"format": "sieve.adamw", "step": fmt.Sprint(t.adam.Steps)}); err != nil {
		return fmt.Errorf("train: saving optimizer state: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := os.Rename(target, dir); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	slog.Info("saved checkpoint", "dir", dir, "step", t.step)
	return nil
}

// saveModel writes the weights to dir: the full model in the Hugging
// Face layout; with LoRA, the PEFT adapter in a checkpoint, and in the
// final model the weights with the adapters merged in plus the adapter
// (with the tokenizer) in dir/adapter.
func (t *trainer) saveModel(dir string, checkpoint bool) error {
	if t.lora == nil {
		return t.m.P.Save(dir, model.F32)
	}
	if checkpoint {
		return t.m.SaveAdapter(dir, t.baseName)
	}
	ad := filepath.Join(dir, AdapterDir)
	if err := t.m.SaveAdapter(ad, t.baseName); err != nil {
		return err
	}
	if err := t.tok.SaveDir(ad); err != nil {
		return err
	}
	merged, err := t.m.MergedParams()
	if err != nil {
		return err
	}
	return merged.Save(dir, model.F32)
}

func readState(dir string) (*trainerState, error) {
	data, err := os.ReadFile(filepath.Join(dir, TrainerStateFile))
	if err != nil {
		return nil, fmt.Errorf("train: resume: %w", err)
	}
	var st trainerState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("train: resume: %s: %w", filepath.Join(dir, TrainerStateFile), err)
	}
	if _, err := os.Stat(filepath.Join(dir, OptimizerStateFile)); err != nil {
		return nil, fmt.Errorf("train: resume: %s is not a checkpoint (no %s): %w", dir, OptimizerStateFile, err)
	}
	return &st, nil
}

// LatestCheckpoint returns the checkpoint-STEP directory of output with
// the largest STEP that holds a trainer state, or an error when there is
// none.
func LatestCheckpoint(output string) (string, error) {
	entries, err := os.ReadDir(output)
	if err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	best, dir := -1, ""
	for _, e := range entries {
		var n int
		if !e.IsDir() {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), checkpointPrefix+"%d", &n); err != nil || e.Name() != fmt.Sprintf("%s%d", checkpointPrefix, n) {
			continue
		}
		if _, err := os.Stat(filepath.Join(output, e.Name(), TrainerStateFile)); err != nil {
			continue
		}
		if n > best {
			best, dir = n, filepath.Join(output, e.Name())
		}
	}
	if dir == "" {
		return "", fmt.Errorf("train: no checkpoint in %s", output)
	}
	return dir, nil
}
