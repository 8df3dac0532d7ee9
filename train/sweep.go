package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// Files a sweep writes in its output directory, beside one run directory
// per trial.
const (
	SweepJSON     = "sweep.json"
	SweepMarkdown = "sweep.md"
	SweepPlot     = "sweep.png"
)

// SweepSpace is the search space of a sweep: the values to try for each
// setting (an empty list keeps the base run's value). The grid is every
// combination, learning rate outermost, sequence length innermost; with
// Random > 0, that many distinct combinations drawn from the grid with
// Seed. A LoRA rank of 0 is full fine-tuning (its alphas collapse into
// one trial); an alpha of 0 is the rank (scaling 1).
type SweepSpace struct {
	LearningRates []float64 `json:"learning_rate,omitempty"`
	Epochs        []int     `json:"epochs,omitempty"`
	LoRARanks     []int     `json:"lora_r,omitempty"`
	LoRAAlphas    []float64 `json:"lora_alpha,omitempty"`
	SeqLens       []int     `json:"seq_len,omitempty"`
	Random        int       `json:"random,omitempty"`
	Seed          uint64    `json:"seed,omitempty"`
}

// SweepPoint is one configuration of a sweep: the settings it sets (the
// swept ones; the others are the base run's).
type SweepPoint struct {
	LearningRate *float64 `json:"learning_rate,omitempty"`
	Epochs       *int     `json:"epochs,omitempty"`
	LoRARank     *int     `json:"lora_r,omitempty"`
	LoRAAlpha    *float64 `json:"lora_alpha,omitempty"`
	SeqLen       *int     `json:"seq_len,omitempty"`
}

// Name is the point's run directory: its settings, e.g.
// lr0.003-ep2-r8-a16-seq256 ("full" for rank 0).
func (p SweepPoint) Name() string {
	var parts []string
	if p.LearningRate != nil {
		parts = append(parts, "lr"+strconv.FormatFloat(*p.LearningRate, 'g', -1, 64))
	}
	if p.Epochs != nil {
		parts = append(parts, fmt.Sprintf("ep%d", *p.Epochs))
	}
	if p.LoRARank != nil {
		if *p.LoRARank == 0 {
			parts = append(parts, "full")
		} else {
			parts = append(parts, fmt.Sprintf("r%d", *p.LoRARank))
		}
	}
	if p.LoRAAlpha != nil {
		parts = append(parts, "a"+strconv.FormatFloat(*p.LoRAAlpha, 'g', -1, 64))
	}
	if p.SeqLen != nil {
		parts = append(parts, fmt.Sprintf("seq%d", *p.SeqLen))
	}
	if len(parts) == 0 {
		return "base"
	}
	return strings.Join(parts, "-")
}

// Trials lists the configurations the space holds, in the order a sweep
// runs them.
func (s SweepSpace) Trials() ([]SweepPoint, error) {
	for _, v := range s.LearningRates {
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("sweep: learning rate %g must be positive", v)
		}
	}
	for _, v := range s.Epochs {
		if v < 1 {
			return nil, fmt.Errorf("sweep: epochs %d must be at least 1", v)
		}
	}
	for _, v := range s.LoRARanks {
		if v < 0 {
			return nil, fmt.Errorf("sweep: LoRA rank %d must not be negative (0: full fine-tuning)", v)
		}
	}
	for _, v := range s.LoRAAlphas {
		if v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("sweep: LoRA alpha %g must not be negative (0: the rank)", v)
		}
	}
	for _, v := range s.SeqLens {
		if v < 2 {
			return nil, fmt.Errorf("sweep: sequence length %d must be at least 2", v)
		}
	}
	if s.Random < 0 {
		return nil, fmt.Errorf("sweep: random %d must not be negative", s.Random)
	}
	points := []SweepPoint{{}}
	expand := func(n int, set func(p *SweepPoint, i int)) {
		if n == 0 {
			return
		}
		var next []SweepPoint
		for _, p := range points {
			for i := 0; i < n; i++ {
				q := p
				set(&q, i)
				next = append(next, q)
			}
		}
		points = next
	}
	expand(len(s.LearningRates), func(p *SweepPoint, i int) { p.LearningRate = &s.LearningRates[i] })
	expand(len(s.Epochs), func(p *SweepPoint, i int) { p.Epochs = &s.Epochs[i] })
	expand(len(s.LoRARanks), func(p *SweepPoint, i int) { p.LoRARank = &s.LoRARanks[i] })
	expand(len(s.LoRAAlphas), func(p *SweepPoint, i int) { p.LoRAAlpha = &s.LoRAAlphas[i] })
	expand(len(s.SeqLens), func(p *SweepPoint, i int) { p.SeqLen = &s.SeqLens[i] })
	// Full fine-tuning has no alpha, and a value listed twice is one trial.
	seen := map[string]bool{}
	var out []SweepPoint
	for _, p := range points {
		if p.LoRARank != nil && *p.LoRARank == 0 {
			p.LoRAAlpha = nil
		}
		if !seen[p.Name()] {
			seen[p.Name()] = true
			out = append(out, p)
		}
	}
	if s.Random > 0 && s.Random < len(out) {
		rng := rand.New(rand.NewPCG(s.Seed, 0x5eeb))
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		out = out[:s.Random]
	}
	return out, nil
}

// SweepOptions say what to sweep: Base is the run every trial starts
// from (its Output and Resume are not used), Space the settings to vary,
// Output the sweep's directory (a run directory per trial, named by
// SweepPoint.Name, and the table and plot). OnTrial, when set, is called
// before each trial.
type SweepOptions struct {
	Base    Options
	Space   SweepSpace
	Output  string
	OnTrial func(i, n int, p SweepPoint)
}

// SweepTrial is one row of a sweep's table: the settings it trained with
// (swept or not), and how it did.
type SweepTrial struct {
	Name         string  `json:"name"`
	Dir          string  `json:"dir"`
	LearningRate float64 `json:"learning_rate"`
	Epochs       int     `json:"epochs"`
	LoRARank     int     `json:"lora_r"` // 0: every weight trained
	LoRAAlpha    float64 `json:"lora_alpha,omitempty"`
	SeqLen       int     `json:"seq_len"`
	Steps        int     `json:"steps"`
	// EvalLoss is the final model's eval loss (with early stopping, the
	// best one's); Perplexity its exponential.
	EvalLoss   float64     `json:"eval_loss"`
	Perplexity float64     `json:"perplexity"`
	Evals      []SweepEval `json:"evals"`
	TokensPerS float64     `json:"tokens_per_s"`
	Seconds    float64     `json:"seconds"`
	Error      string      `json:"error,omitempty"` // the trial failed (e.g. diverged); it is not a candidate
	Point      SweepPoint  `json:"point"`
	Data       string      `json:"data"`
	Train      DataStats   `json:"train_data"`
	Test       DataStats   `json:"test_data"`
}

// SweepEval is one evaluation of a trial.
type SweepEval struct {
	Step     int     `json:"step"`
	Epoch    float64 `json:"epoch"`
	EvalLoss float64 `json:"eval_loss"`
}

// SweepResult is a finished sweep: its trials in the order run, and the
// index of the best (the lowest eval loss of the trials that finished).
type SweepResult struct {
	Space  SweepSpace   `json:"space"`
	Trials []SweepTrial `json:"trials"`
	Best   int          `json:"best"`
	// What the trials shared: the tokenizer was trained (with Init and
	// no Tokenizer) TokenizerTrainings times and a split encoded
	// Encodings times, in all.
	TokenizerTrainings int `json:"tokenizer_trainings"`
	Encodings          int `json:"encodings"`
}

// BestName is the name of the best trial.
func (r *SweepResult) BestName() string {
	if r.Best < 0 || r.Best >= len(r.Trials) {
		return ""
	}
	return r.Trials[r.Best].Name
}

// Sweep trains one run per configuration of the space, one after the
// other, sharing the data read from the store, the tokenizer trained on
// the train split and the encoded conversations (per sequence length).
// A trial that fails (a diverged loss, a run that does not fit in
// memory) is recorded with its error and the sweep goes on; a cancelled
// context stops it. It writes SweepJSON, SweepMarkdown and SweepPlot to
// Output and names the best trial: the lowest eval loss on the test
// split, which a sweep needs.
func Sweep(ctx context.Context, opt SweepOptions) (*SweepResult, error) {
	if opt.Output == "" {
		return nil, errors.New("train: sweep: no output directory")
	}
	if opt.Base.Resume != "" {
		return nil, errors.New("train: sweep: a sweep does not resume")
	}
	points, err := opt.Space.Trials()
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if (len(opt.Space.LoRARanks) > 0 || len(opt.Space.LoRAAlphas) > 0) && opt.Base.Model == "" {
		return nil, errors.New("train: sweep: LoRA trains adapters on a base model: give Model, not Init")
	}
	if len(opt.Space.LoRAAlphas) > 0 && opt.Base.LoRA == nil && len(opt.Space.LoRARanks) == 0 {
		return nil, errors.New("train: sweep: LoRA alphas need a LoRA rank (in the base run or swept)")
	}
	if err := os.MkdirAll(opt.Output, 0o755); err != nil {
		return nil, fmt.Errorf("train: sweep: %w", err)
	}
	cache := &dataCache{}
	res := &SweepResult{Space: opt.Space, Best: -1}
	for i, p := range points {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("train: sweep interrupted before trial %d of %d: %w", i+1, len(points), err)
		}
		if opt.OnTrial != nil {
			opt.OnTrial(i, len(points), p)
		}
		o := trialOptions(opt.Base, p)
		o.Output = filepath.Join(opt.Output, p.Name())
		o.cache = cache
		tr := SweepTrial{Name: p.Name(), Dir: o.Output, Point: p, LearningRate: o.Config.withDefaults().LearningRate,
			Epochs: o.Config.withDefaults().Epochs, SeqLen: o.Config.withDefaults().SeqLen}
		if o.LoRA != nil {
			tr.LoRARank, tr.LoRAAlpha = o.LoRA.Rank, o.LoRA.Alpha
			if tr.LoRAAlpha == 0 {
				tr.LoRAAlpha = float64(tr.LoRARank)
			}
		}
		started := time.Now()
		r, err := Run(ctx, o)
		tr.Seconds = time.Since(started).Seconds()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("train: sweep: trial %s: %w", p.Name(), err)
			}
			slog.Warn("sweep trial failed", "trial", p.Name(), "err", err)
			tr.Error = err.Error()
			tr.EvalLoss, tr.Perplexity = math.Inf(1), math.Inf(1)
			res.Trials = append(res.Trials, tr)
			continue
		}
		if len(r.Evals) == 0 {
			return nil, fmt.Errorf("train: sweep: %s has no test split to compare the trials on", r.Data)
		}
		tr.Steps, tr.TokensPerS, tr.Data, tr.Train, tr.Test, tr.LearningRate = r.Steps, r.TokensPerS, r.Data, r.Train, r.Test, r.LearningRate
		for _, e := range r.Evals {
			tr.Evals = append(tr.Evals, SweepEval{Step: e.Step, Epoch: e.Epoch, EvalLoss: *e.EvalLoss})
		}
		tr.EvalLoss = *r.Evals[len(r.Evals)-1].EvalLoss
		if o.Config.EarlyStopPatience > 0 {
			tr.EvalLoss = r.BestEvalLoss
		}
		tr.Perplexity = math.Exp(tr.EvalLoss)
		if res.Best < 0 || tr.EvalLoss < res.Trials[res.Best].EvalLoss {
			res.Best = len(res.Trials)
		}
		res.Trials = append(res.Trials, tr)
	}
	res.TokenizerTrainings, res.Encodings = cache.trainings, cache.encodings
	if err := res.write(opt.Output); err != nil {
		return nil, err
	}
	if res.Best < 0 {
		return res, fmt.Errorf("train: sweep: every trial failed (the first: %s)", res.Trials[0].Error)
	}
	return res, nil
}

// trialOptions applies a sweep point to the base run's options.
func trialOptions(base Options, p SweepPoint) Options {
	o := base
	o.Resume = ""
	if p.LearningRate != nil {
		o.Config.LearningRate, o.AutoLR = *p.LearningRate, false
	}
	if p.Epochs != nil {
		o.Config.Epochs, o.Config.MaxSteps = *p.Epochs, 0
	}
	if p.SeqLen != nil {
		o.Config.SeqLen = *p.SeqLen
	}
	if base.LoRA != nil {
		l := *base.LoRA
		o.LoRA = &l
	}
	if p.LoRARank != nil {
		if *p.LoRARank == 0 {
			o.LoRA, o.QLoRA = nil, false
		} else {
			if o.LoRA == nil {
				o.LoRA = &model.LoRAConfig{}
			}
			o.LoRA.Rank = *p.LoRARank
		}
	}
	if p.LoRAAlpha != nil && o.LoRA != nil {
		o.LoRA.Alpha = *p.LoRAAlpha
	}
	return o
}

// write saves the table (JSON and Markdown) and the plot.
func (r *SweepResult) write(dir string) error {
	// JSON has no infinity: a failed trial's loss is written as null.
	type row struct {
		SweepTrial
		EvalLoss   *float64 `json:"eval_loss"`
		Perplexity *float64 `json:"perplexity"`
	}
	out := struct {
		Space              SweepSpace `json:"space"`
		Trials             []row      `json:"trials"`
		Best               int        `json:"best"`
		BestName           string     `json:"best_name"`
		TokenizerTrainings int        `json:"tokenizer_trainings"`
		Encodings          int        `json:"encodings"`
	}{Space: r.Space, Best: r.Best, BestName: r.BestName(), TokenizerTrainings: r.TokenizerTrainings, Encodings: r.Encodings}
	for _, t := range r.Trials {
		rw := row{SweepTrial: t}
		if t.Error == "" {
			l, p := t.EvalLoss, t.Perplexity
			rw.EvalLoss, rw.Perplexity = &l, &p
		}
		out.Trials = append(out.Trials, rw)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("train: sweep: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SweepJSON), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: sweep: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SweepMarkdown), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("train: sweep: %w", err)
	}
	return r.plot(filepath.Join(dir, SweepPlot))
}

// UnmarshalJSON reads a sweep.json back (a failed trial's null loss as
// +Inf).
func (t *SweepTrial) UnmarshalJSON(data []byte) error {
	type plain SweepTrial
	var v struct {
		plain
		EvalLoss   *float64 `json:"eval_loss"`
		Perplexity *float64 `json:"perplexity"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*t = SweepTrial(v.plain)
	t.EvalLoss, t.Perplexity = math.Inf(1), math.Inf(1)
	if v.EvalLoss != nil {
		t.EvalLoss = *v.EvalLoss
	}
	if v.Perplexity != nil {
		t.Perplexity = *v.Perplexity
	}
	return nil
}

// Markdown is the sweep's table, best trial in bold.
func (r *SweepResult) Markdown() string {
	var b strings.Builder
	b.WriteString("# Sweep\n\n")
	b.WriteString("| trial | lr | epochs | LoRA r | alpha | seq len | steps | eval loss | perplexity | tokens/s | seconds |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, t := range r.Trials {
		name := t.Name
		if i == r.Best {
			name = "**" + name + "**"
		}
		rank, alpha := "full", ""
		if t.LoRARank > 0 {
			rank, alpha = strconv.Itoa(t.LoRARank), strconv.FormatFloat(t.LoRAAlpha, 'g', -1, 64)
		}
		loss, ppl := "failed: "+strings.ReplaceAll(t.Error, "|", "/"), ""
		if t.Error == "" {
			loss, ppl = fmt.Sprintf("%.4f", t.EvalLoss), fmt.Sprintf("%.2f", t.Perplexity)
		}
		fmt.Fprintf(&b, "| %s | %.3g | %d | %s | %s | %d | %d | %s | %s | %.0f | %.1f |\n",
			name, t.LearningRate, t.Epochs, rank, alpha, t.SeqLen, t.Steps, loss, ppl, t.TokensPerS, t.Seconds)
	}
	if name := r.BestName(); name != "" {
		fmt.Fprintf(&b, "\nBest: %s (eval loss %.4f).\n", name, r.Trials[r.Best].EvalLoss)
	}
	return b.String()
}

// plot draws each trial's eval loss against the epoch, the best trial
// thicker.
func (r *SweepResult) plot(path string) error {
	p := plot.New()
	p.Title.Text = "Sweep: eval loss per configuration"
	if name := r.BestName(); name != "" {
		p.Title.Text += fmt.Sprintf(" (best %s, %.4f)", name, r.Trials[r.Best].EvalLoss)
	}
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "eval loss"
	p.Add(plotter.NewGrid())
	for i, t := range r.Trials {
		if len(t.Evals) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(t.Evals))
		for k, e := range t.Evals {
			xy[k] = plotter.XY{X: e.Epoch, Y: e.EvalLoss}
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("train: sweep plot: %w", err)
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		if i == r.Best {
			l.Width = vg.Points(2.5)
		}
		p.Add(l, pts)
		p.Legend.Add(fmt.Sprintf("%s %.4f", t.Name, t.EvalLoss), l, pts)
	}
	p.Legend.Top = true
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("train: sweep plot: %w", err)
	}
	return nil
}

// dataCache holds what the trials of a sweep share. Its methods work on
// a nil cache (then nothing is kept).
type dataCache struct {
	mu         sync.Mutex
	ref        string
	splits     *Splits
	tok        map[int]*tokenizer.Tokenizer // trained, by vocabulary size
	enc        map[encKey]encoded
	trainings  int
	encodings  int
	splitReads int
}

type encKey struct {
	tok, split string
	seqLen     int
}

type encoded struct {
	samples []model.Sample
	stats   DataStats
}

// readSplits reads the version's splits, once per cache.
func (c *dataCache) readSplits(ctx context.Context, v *datasets.Version) (Splits, error) {
	if c == nil {
		return ReadSplits(ctx, v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.splits != nil && c.ref == v.Ref.String() {
		return *c.splits, nil
	}
	s, err := ReadSplits(ctx, v)
	if err != nil {
		return s, err
	}
	c.splits, c.ref, c.tok, c.enc = &s, v.Ref.String(), nil, nil
	c.splitReads++
	return s, nil
}

// trainTokenizer trains a byte-level BPE tokenizer on the message
// contents of the train split, once per vocabulary size and cache. The
// tokenizer is not changed by use, so trials share it.
func (c *dataCache) trainTokenizer(splits Splits, vocab int) (*tokenizer.Tokenizer, error) {
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if tok := c.tok[vocab]; tok != nil {
			return tok, nil
		}
	}
	started := time.Now()
	convs := func(yield func([]datasets.Message) bool) {
		for _, c := range splits.Train {
			if !yield(c) {
				return
			}
		}
	}
	tok, err := tokenizer.Train(tokenizer.MessageContents(convs), tokenizer.TrainConfig{VocabSize: vocab})
	if err != nil {
		return nil, fmt.Errorf("train: training a tokenizer: %w", err)
	}
	slog.Info("trained tokenizer", "vocab", tok.VocabSize(), "seconds", time.Since(started).Seconds())
	if c != nil {
		if c.tok == nil {
			c.tok = map[int]*tokenizer.Tokenizer{}
		}
		c.tok[vocab] = tok
		c.trainings++
	}
	return tok, nil
}

// encode is Encode, kept per tokenizer (tokKey names it), split and
// sequence length.
func (c *dataCache) encode(tokKey, split string, tok *tokenizer.Tokenizer, convs [][]datasets.Message, seqLen int) ([]model.Sample, DataStats) {
	if c == nil || tokKey == "" {
		return Encode(tok, convs, seqLen)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := encKey{tokKey, split, seqLen}
	if e, ok := c.enc[k]; ok {
		return e.samples, e.stats
	}
	s, st := Encode(tok, convs, seqLen)
	if c.enc == nil {
		c.enc = map[encKey]encoded{}
	}
	c.enc[k] = encoded{s, st}
	c.encodings++
	return s, st
}

// tokenizerKey names the run's tokenizer for the encoding cache: the
// same key, the same tokenizer ("" when it cannot be told).
func (t *trainer) tokenizerKey() string {
	o := t.opt
	switch {
	case o.Resume != "":
		return ""
	case o.Model != "":
		return "model:" + t.baseModel
	case o.Tokenizer != "":
		if abs, err := filepath.Abs(o.Tokenizer); err == nil {
			return "file:" + abs
		}
		return ""
	case t.tokTrained:
		return fmt.Sprintf("trained:%d", o.VocabSize)
	}
	return ""
}
