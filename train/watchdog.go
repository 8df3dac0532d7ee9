package train

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sieve-data/sieve/train/model"
)

// BestCheckpoint is the directory, under a run's output, of the model
// of the best evaluation when early stopping is on.
const BestCheckpoint = "checkpoint-best"

// divergedPrefix renames the checkpoints written after a run started to
// diverge, so that --resume does not pick them.
const divergedPrefix = "diverged-"

// watchdogBeta is the smoothing of the watchdog's moving average.
const watchdogBeta = 0.9

// watchdogState is the watchdog's part of trainer_state.json.
type watchdogState struct {
	EMA      float64 `json:"ema"`
	Weight   float64 `json:"ema_weight"`
	Best     float64 `json:"best"`
	BadFrom  int     `json:"bad_from,omitempty"`
	BadSteps int     `json:"bad_steps,omitempty"`
}

// DivergedError is the error of a run the loss watchdog stopped.
type DivergedError struct {
	Step   int    // the step at which training stopped
	From   int    // the first step of the divergence
	Reason string // what the watchdog saw
	// Lowest is the lowest smoothed loss of the run.
	Lowest float64
	// Checkpoint is the last checkpoint written before From, which
	// --resume continues from ("" when there is none).
	Checkpoint string
}

func (e *DivergedError) Error() string {
	msg := fmt.Sprintf("train: the loss diverged at step %d: %s", e.Step, e.Reason)
	if e.From < e.Step {
		msg += fmt.Sprintf(" (since step %d)", e.From)
	}
	if e.Checkpoint != "" {
		return msg + fmt.Sprintf("; the last good checkpoint is %s (--resume continues from it; or restart with a lower learning rate)", e.Checkpoint)
	}
	return msg + "; no checkpoint was written before it (--save-every); restart with a lower learning rate"
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// watch updates the smoothed loss with the last step's and returns a
// DivergedError when it has stayed above DivergeFactor × its lowest
// value for DivergeSteps steps.
func (t *trainer) watch() *DivergedError {
	if t.cfg.DivergeFactor < 0 {
		return nil
	}
	t.ema = watchdogBeta*t.ema + (1-watchdogBeta)*t.lastLoss
	t.emaW = watchdogBeta*t.emaW + (1 - watchdogBeta)
	smooth := t.ema / t.emaW
	if t.emaBest == 0 || smooth < t.emaBest {
		t.emaBest = smooth
	}
	if smooth <= t.cfg.DivergeFactor*t.emaBest {
		t.badFrom, t.badSteps = 0, 0
		return nil
	}
	if t.badSteps == 0 {
		t.badFrom = t.step
	}
	t.badSteps++
	if t.badSteps < t.cfg.DivergeSteps {
		return nil
	}
	return &DivergedError{Step: t.step, From: t.badFrom, Lowest: t.emaBest,
		Reason: fmt.Sprintf("the smoothed loss %.4g has stayed above %g × its lowest, %.4g, for %d steps", smooth, t.cfg.DivergeFactor, t.emaBest, t.badSteps)}
}

// goodSlack is how far above the lowest smoothed loss a checkpoint's
// smoothed loss may be for the watchdog to call it good.
const goodSlack = 1.25

// diverged handles a watchdog stop: it logs the last training line and
// picks the last good checkpoint: the latest one written before the
// divergence began whose smoothed loss was within goodSlack × the
// lowest (or, when none was, the one of the lowest smoothed loss). The
// checkpoints after it are renamed diverged-checkpoint-STEP, so that
// --resume takes the good one, which the error names.
func (t *trainer) diverged(d *DivergedError) error {
	if t.lossCnt > 0 {
		if err := t.logTrain(); err != nil {
			return errors.Join(d, err)
		}
	}
	entries, err := os.ReadDir(t.opt.Output)
	if err != nil {
		return errors.Join(d, err)
	}
	type ck struct {
		step   int
		smooth float64
	}
	var cks []ck
	for _, e := range entries {
		var n int
		if !e.IsDir() || !strings.HasPrefix(e.Name(), checkpointPrefix) {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), checkpointPrefix+"%d", &n); err != nil || e.Name() != fmt.Sprintf("%s%d", checkpointPrefix, n) {
			continue
		}
		c := ck{step: n, smooth: math.Inf(1)}
		if st, err := readState(filepath.Join(t.opt.Output, e.Name())); err == nil && st.Watchdog != nil && st.Watchdog.Weight > 0 {
			c.smooth = st.Watchdog.EMA / st.Watchdog.Weight
		}
		cks = append(cks, c)
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step < cks[j].step })
	good, lowest := -1, -1
	for i, c := range cks {
		if c.step >= d.From {
			break
		}
		if c.smooth <= goodSlack*t.emaBest {
			good = i
		}
		if lowest < 0 || c.smooth < cks[lowest].smooth {
			lowest = i
		}
	}
	if good < 0 {
		good = lowest
	}
	for i, c := range cks {
		if good >= 0 && i <= good {
			continue
		}
		name := fmt.Sprintf("%s%d", checkpointPrefix, c.step)
		to := filepath.Join(t.opt.Output, divergedPrefix+name)
		if err := os.RemoveAll(to); err != nil {
			return errors.Join(d, err)
		}
		if err := os.Rename(filepath.Join(t.opt.Output, name), to); err != nil {
			return errors.Join(d, err)
		}
	}
	if good >= 0 {
		d.Checkpoint = filepath.Join(t.opt.Output, fmt.Sprintf("%s%d", checkpointPrefix, cks[good].step))
	}
	slog.Info("loss watchdog", "step", d.Step, "from", d.From, "reason", d.Reason, "checkpoint", d.Checkpoint)
	return d
}

// initEarlyStop sets the best evaluation from the history (of a resumed
// run).
func (t *trainer) initEarlyStop() {
	t.bestStep, t.bestEval, t.sinceBest = -1, math.Inf(1), 0
	if t.cfg.EarlyStopPatience == 0 {
		return
	}
	for _, r := range t.evalAll {
		t.noteEval(*r.EvalLoss, r.Step)
	}
}

// noteEval counts an evaluation for early stopping and reports whether
// it is the new best.
func (t *trainer) noteEval(loss float64, step int) bool {
	if t.bestStep < 0 || loss < t.bestEval-t.cfg.EarlyStopDelta {
		t.bestEval, t.bestStep, t.sinceBest = loss, step, 0
		return true
	}
	t.sinceBest++
	return false
}

// earlyStop counts an evaluation: a new best is saved to
// checkpoint-best; after EarlyStopPatience evaluations without one,
// training stops.
func (t *trainer) earlyStop(loss float64) error {
	if t.cfg.EarlyStopPatience == 0 {
		return nil
	}
	if t.noteEval(loss, t.step) {
		return t.save(filepath.Join(t.opt.Output, BestCheckpoint), true)
	}
	if t.sinceBest >= t.cfg.EarlyStopPatience && t.step < t.total {
		t.stopped = fmt.Sprintf("early stop at step %d: the eval loss has not improved on %.4f (step %d) for %d evaluations",
			t.step, t.bestEval, t.bestStep, t.sinceBest)
		slog.Info("early stop", "step", t.step, "best_step", t.bestStep, "best_eval_loss", t.bestEval)
	}
	return nil
}

// restoreBest loads the weights of checkpoint-best back into the model
// when early stopping is on and the last evaluation was not the best,
// so that the final model is the best one.
func (t *trainer) restoreBest() error {
	if t.cfg.EarlyStopPatience == 0 || t.bestStep < 0 || t.bestStep == t.step {
		return nil
	}
	dir := filepath.Join(t.opt.Output, BestCheckpoint)
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if st.GlobalStep != t.bestStep {
		return fmt.Errorf("train: %s holds step %d, not the best evaluation's step %d", dir, st.GlobalStep, t.bestStep)
	}
	if t.lora != nil {
		if err := t.m.LoadAdapter(dir); err != nil {
			return fmt.Errorf("train: restoring the best model: %w", err)
		}
		return nil
	}
	p, err := model.Load(dir)
	if err != nil {
		return fmt.Errorf("train: restoring the best model: %w", err)
	}
	if len(p.Data) != len(t.p.Data) {
		return fmt.Errorf("train: %s does not match the model", dir)
	}
	copy(t.p.Data, p.Data)
	return nil
}
