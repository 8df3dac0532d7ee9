package train

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// LRFinderOptions set the learning rate finder's sweep: Steps optimizer
// steps (default 100) at rates rising exponentially from MinLR (1e-7)
// to MaxLR (10), stopped early when the smoothed loss exceeds
// DivergeFactor (4) × its lowest value or is not finite. Plot, when set,
// is the path of a PNG of the smoothed loss against the rate.
type LRFinderOptions struct {
	MinLR, MaxLR  float64
	Steps         int
	DivergeFactor float64
	Plot          string
}

func (o LRFinderOptions) withDefaults() LRFinderOptions {
	if o.MinLR == 0 {
		o.MinLR = 1e-7
	}
	if o.MaxLR == 0 {
		o.MaxLR = 10
	}
	if o.Steps == 0 {
		o.Steps = 100
	}
	if o.DivergeFactor == 0 {
		o.DivergeFactor = 4
	}
	return o
}

// lrFinderBeta is the smoothing of the finder's loss curve: fastai's
// 0.98 for sweeps of 200 steps or more, less for shorter ones (1 − 4/steps),
// so that the moving average lags by a similar share of the sweep.
func lrFinderBeta(steps int) float64 { return min(0.98, 1-4/float64(steps)) }

// LRFinderRule says how the finder's suggestion is chosen.
const LRFinderRule = "the valley: a tenth of the rate of the lowest smoothed loss, at most 10× the steepest descent's"

// LRFinderResult is a learning rate sweep and its suggestions.
type LRFinderResult struct {
	// LRs, Losses and Smoothed: each step's rate, its loss (mean per
	// counted token, before the step's update) and the loss smoothed by
	// an exponential moving average (β 0.98, less for sweeps under 200 steps; bias corrected).
	LRs      []float64 `json:"lrs"`
	Losses   []float64 `json:"losses"`
	Smoothed []float64 `json:"smoothed"`
	// MinLR is the rate of the lowest smoothed loss; Valley a tenth of
	// it; Steepest the rate of the steepest descent of the smoothed loss
	// against log(rate), before its lowest point.
	MinLR    float64 `json:"min_lr"`
	Valley   float64 `json:"valley"`
	Steepest float64 `json:"steepest"`
	// Suggestion is the rate to train with (LRFinderRule).
	Suggestion float64 `json:"suggestion"`
	// Diverged is the step at which the sweep stopped as the loss
	// diverged (0: it ran every step).
	Diverged int    `json:"diverged,omitempty"`
	Plot     string `json:"plot,omitempty"`
}

// FindLR runs the learning rate finder on the configuration opt
// describes (model, data, LoRA or not): it sweeps the learning rate
// exponentially over a few optimizer steps of the real training data,
// then restores the weights, and returns the curve and a suggestion.
// Nothing is written to opt.Output; the plot goes to
// opt.LRFinder.Plot when set.
func FindLR(ctx context.Context, opt Options) (*LRFinderResult, error) {
	opt.AutoLR = true // the estimate counts the finder's copy of the weights
	t, _, err := setup(ctx, opt)
	if err != nil {
		return nil, err
	}
	defer t.limitMemory()()
	return t.findLR(ctx)
}

// autoLR runs the finder and sets the learning rate to its suggestion.
func (t *trainer) autoLR(ctx context.Context) error {
	res, err := t.findLR(ctx)
	if err != nil {
		return err
	}
	t.finder = res
	t.cfg.LearningRate = res.Suggestion
	t.sched.Peak = res.Suggestion
	slog.Info("lr finder", "suggestion", res.Suggestion, "steepest", res.Steepest, "valley", res.Valley)
	return nil
}

// findLR sweeps the learning rate from the model's current weights,
// then puts the weights and the optimizer back as they were.
func (t *trainer) findLR(ctx context.Context) (*LRFinderResult, error) {
	o := t.opt.LRFinder.withDefaults()
	if o.MinLR <= 0 || o.MaxLR <= o.MinLR || o.Steps < 3 {
		return nil, fmt.Errorf("train: LR finder: want 0 < min rate %g < max rate %g and at least 3 steps (%d)", o.MinLR, o.MaxLR, o.Steps)
	}
	params := t.m.Trainable()
	saved := make([][]float32, len(params))
	for i, p := range params {
		saved[i] = append([]float32(nil), p.P...)
	}
	steps := t.adam.Steps
	restore := func() {
		for i, p := range params {
			copy(p.P, saved[i])
		}
		for i := range t.adam.m {
			clear(t.adam.m[i])
			clear(t.adam.v[i])
		}
		t.adam.Steps = steps
		t.m.ZeroGrad()
	}
	if steps != 0 {
		return nil, errors.New("train: LR finder: run it before training (the optimizer has taken steps)")
	}
	defer restore()

	res := &LRFinderResult{}
	var ema, w, best float64
	beta := lrFinderBeta(o.Steps)
	for i := 0; i < o.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lr := o.MinLR * math.Pow(o.MaxLR/o.MinLR, float64(i)/float64(o.Steps-1))
		lossSum, count, _, err := accumulate(t.m, t.train, t.stepRows(i), t.cfg.BatchSize)
		if err != nil {
			return nil, fmt.Errorf("train: LR finder: step %d: %w", i+1, err)
		}
		loss := lossSum / float64(max(1, count))
		if bad(loss) {
			res.Diverged = i + 1
			break
		}
		ema = beta*ema + (1-beta)*loss
		w = beta*w + (1 - beta)
		smooth := ema / w
		res.LRs = append(res.LRs, lr)
		res.Losses = append(res.Losses, loss)
		res.Smoothed = append(res.Smoothed, smooth)
		if i == 0 || smooth < best {
			best = smooth
		}
		if smooth > o.DivergeFactor*best {
			res.Diverged = i + 1
			break
		}
		if t.cfg.MaxGradNorm > 0 {
			ClipGradNorm(params, t.cfg.MaxGradNorm)
		}
		t.adam.Update(lr)
	}
	if len(res.LRs) < 3 {
		return nil, fmt.Errorf("train: LR finder: the loss diverged within %d steps from %g; lower the sweep's minimum rate", len(res.LRs), o.MinLR)
	}
	res.suggest()
	if o.Plot != "" {
		if err := res.plot(o.Plot); err != nil {
			return nil, err
		}
		res.Plot = o.Plot
	}
	return res, nil
}

// suggest sets MinLR, Valley, Steepest and Suggestion from the curve.
func (r *LRFinderResult) suggest() {
	lo := 0
	for i, s := range r.Smoothed {
		if s < r.Smoothed[lo] {
			lo = i
		}
	}
	r.MinLR = r.LRs[lo]
	r.Valley = r.MinLR / 10
	// Steepest descent: the most negative slope of the smoothed loss
	// against log(rate), by central differences, before the minimum.
	steep, slope := 0, math.Inf(1)
	for i := 1; i < lo; i++ {
		d := (r.Smoothed[i+1] - r.Smoothed[i-1]) / math.Log(r.LRs[i+1]/r.LRs[i-1])
		if d < slope {
			steep, slope = i, d
		}
	}
	r.Steepest = r.LRs[steep]
	r.Suggestion = min(r.Valley, 10*r.Steepest)
}

// plot writes a PNG of the smoothed (and raw) loss against the rate, on
// a log scale, with the suggestion marked.
func (r *LRFinderResult) plot(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("LR finder: suggestion %.3g", r.Suggestion)
	p.X.Label.Text = "learning rate"
	p.Y.Label.Text = "loss"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decadeTicks{}
	raw, smooth := make(plotter.XYs, len(r.LRs)), make(plotter.XYs, len(r.LRs))
	for i := range r.LRs {
		raw[i] = plotter.XY{X: r.LRs[i], Y: r.Losses[i]}
		smooth[i] = plotter.XY{X: r.LRs[i], Y: r.Smoothed[i]}
	}
	lr, err := plotter.NewLine(raw)
	if err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	lr.Color = color.Gray{Y: 190}
	ls, err := plotter.NewLine(smooth)
	if err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	ls.Width = vg.Points(2)
	ls.Color = color.RGBA{B: 200, A: 255}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range r.Smoothed {
		lo, hi = min(lo, v), max(hi, v)
	}
	for _, v := range r.Losses {
		lo = min(lo, v)
	}
	// Up to a little above the start: the divergence goes off the top.
	hi = r.Smoothed[0] + 0.5*(r.Smoothed[0]-lo)
	mark := func(x float64, c color.Color) (*plotter.Line, error) {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return nil, err
		}
		l.Color = c
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		return l, nil
	}
	sug, err := mark(r.Suggestion, color.RGBA{R: 220, A: 255})
	if err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	steep, err := mark(r.Steepest, color.RGBA{G: 150, A: 255})
	if err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	p.Add(plotter.NewGrid(), lr, ls, sug, steep)
	p.Legend.Add("loss", lr)
	p.Legend.Add("smoothed", ls)
	p.Legend.Add(fmt.Sprintf("suggestion %.3g", r.Suggestion), sug)
	p.Legend.Add(fmt.Sprintf("steepest %.3g", r.Steepest), steep)
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = lo-0.05*(hi-lo), hi // after Add, which widens them to the data
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("train: LR finder plot: %w", err)
	}
	return nil
}

// decadeTicks labels the powers of ten of a log axis.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		v := math.Pow(10, e)
		if v >= lo && v <= hi {
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("1e%d", int(e))})
		}
		for k := 2.0; k < 10; k++ {
			if m := k * v; m >= lo && m <= hi {
				ticks = append(ticks, plot.Tick{Value: m})
			}
		}
	}
	return ticks
}
