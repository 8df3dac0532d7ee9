package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
)

// TestWatchdogStopsDivergence warms the learning rate up by 0.01 a step,
// to far too high: the loss first falls, then diverges. The watchdog stops the run
// with a DivergedError naming the last checkpoint written before the
// divergence began; the later ones are renamed diverged-checkpoint-N;
// resuming from the good one works and diverges again at the same step.
func TestWatchdogStopsDivergence(t *testing.T) {
	store, ref := tinyData(t)
	cfgPath := tinyConfig(t, t.TempDir())
	out := t.TempDir()
	opt := Options{Store: store, Data: ref, Init: cfgPath, VocabSize: 320, Output: out,
		Config: Config{LearningRate: 3, WarmupSteps: 300, MaxSteps: 300, SeqLen: 128, BatchSize: 2, Seed: 1, SaveEvery: 2, LogEvery: 1}}
	var losses []float64
	opt.OnStep = func(p Progress) { losses = append(losses, p.Loss) }
	res, err := Run(context.Background(), opt)
	var d *DivergedError
	if !errors.As(err, &d) {
		t.Fatalf("Run: result %+v, error %v; want a DivergedError (losses %.3g)", res, err, losses)
	}
	t.Logf("%v\nlosses %.3g", err, losses)
	if !strings.Contains(err.Error(), "the loss diverged at step") || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("message %q", err)
	}
	if d.Checkpoint == "" || d.From <= 2 || d.Step < d.From {
		t.Fatalf("diverged %+v", d)
	}
	var good int
	fmt.Sscanf(filepath.Base(d.Checkpoint), checkpointPrefix+"%d", &good)
	if good >= d.From {
		t.Errorf("last good checkpoint %s, divergence from step %d", d.Checkpoint, d.From)
	}
	st, err := readState(d.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if sm := st.Watchdog.EMA / st.Watchdog.Weight; sm > goodSlack*d.Lowest {
		t.Errorf("smoothed loss %.3f at the good checkpoint", sm)
	}
	if latest, err := LatestCheckpoint(out); err != nil || latest != d.Checkpoint {
		t.Errorf("latest checkpoint %q (%v), want %q", latest, err, d.Checkpoint)
	}
	renamed, _ := filepath.Glob(filepath.Join(out, divergedPrefix+checkpointPrefix+"*"))
	if len(renamed) != (d.Step/2 - good/2) {
		t.Errorf("renamed %d checkpoints after %d (step %d)", len(renamed), good, d.Step)
	}
	// The loss had fallen by the good checkpoint.
	if losses[good-1] > losses[0]-1 {
		t.Errorf("loss at the good checkpoint %.3f, first %.3f", losses[good-1], losses[0])
	}

	again := opt
	again.Resume = d.Checkpoint
	var resumed []float64
	again.OnStep = func(p Progress) { resumed = append(resumed, p.Loss) }
	_, err = Run(context.Background(), again)
	var d2 *DivergedError
	if !errors.As(err, &d2) || d2.Step != d.Step {
		t.Fatalf("resumed run: %v, want a divergence at step %d", err, d.Step)
	}
	for i, l := range resumed { // the same steps as the first run, to the bit
		if l != losses[good+i] {
			t.Fatalf("resumed step %d: loss %v, first run %v", good+i+1, l, losses[good+i])
		}
	}
}

// TestWatchdogNaN: a NaN loss stops training before the update.
func TestWatchdogNaN(t *testing.T) {
	store, ref := tinyData(t)
	opt := Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: t.TempDir(),
		Config: Config{LearningRate: 1e30, MaxGradNorm: 0, MaxSteps: 20, SeqLen: 128, BatchSize: 2, Seed: 1, SaveEvery: 1, DivergeFactor: -1}}
	_, err := Run(context.Background(), opt)
	var d *DivergedError
	if !errors.As(err, &d) || !strings.Contains(d.Reason, "NaN") && !strings.Contains(d.Reason, "Inf") {
		t.Fatalf("Run: %v; want a NaN/Inf divergence", err)
	}
	t.Log(err)
	st, err := readState(d.Checkpoint)
	if err != nil || st.GlobalStep != d.Step-1 {
		t.Fatalf("checkpoint %s: %+v, %v", d.Checkpoint, st, err)
	}
}

// overfitData is a version whose train split is so small that a tiny
// model memorises it and its eval loss on other sums rises.
func overfitData(t *testing.T) (datasets.Store, string) {
	t.Helper()
	root := t.TempDir()
	ref := writeVersion(t, root, "few", map[string][][]datasets.Message{"train": arithmetic(6, 0), "test": arithmetic(24, 5)})
	return datasets.Store{Root: root}, ref
}

// TestEarlyStopping trains far past the best eval loss: early stopping
// stops after Patience evaluations without improvement, keeps the best
// evaluation's model in checkpoint-best and writes it as the final model.
func TestEarlyStopping(t *testing.T) {
	store, ref := overfitData(t)
	out := t.TempDir()
	opt := Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 300, Output: out,
		Config: Config{LearningRate: 1e-2, MaxSteps: 200, SeqLen: 64, BatchSize: 2, Seed: 3, EvalEvery: 3, EarlyStopPatience: 3}}
	res, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	var evals []float64
	best := 0
	for i, r := range res.Evals {
		evals = append(evals, *r.EvalLoss)
		if *r.EvalLoss < evals[best] {
			best = i
		}
	}
	t.Logf("%s; evals %.3f", res.Stopped, evals)
	if res.Stopped == "" || res.Steps >= 200 {
		t.Fatalf("ran %d steps, stopped %q; evals %.3f", res.Steps, res.Stopped, evals)
	}
	if res.BestStep != res.Evals[best].Step || len(res.Evals)-1-best != 3 {
		t.Errorf("best step %d, evals %.3f", res.BestStep, evals)
	}
	st, err := readState(filepath.Join(out, BestCheckpoint))
	if err != nil || st.GlobalStep != res.BestStep {
		t.Fatalf("checkpoint-best: %+v %v", st, err)
	}
	a, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Load(filepath.Join(out, BestCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if !equalF32(a.Data, b.Data) {
		t.Error("the final model is not the best checkpoint's")
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// trainableBytes copies every weight of the model and every trainable
// tensor (the adapters, with LoRA) and the optimizer's moments.
func trainableBytes(tr *trainer) [][]float32 {
	var out [][]float32
	if tr.m.P.Data != nil {
		out = append(out, append([]float32(nil), tr.m.P.Data...))
	}
	for _, p := range tr.m.Trainable() {
		out = append(out, append([]float32(nil), p.P...))
	}
	for i := range tr.adam.m {
		out = append(out, append([]float32(nil), tr.adam.m[i]...), append([]float32(nil), tr.adam.v[i]...))
	}
	return out
}

// TestLRFinder sweeps the learning rate on a tiny model from scratch and
// with LoRA: the weights and optimizer come back bit for bit; the plot
// is a PNG; the suggestion trains to a lower eval loss than the default
// 2e-5 in the same steps; and Run with AutoLR trains exactly as Run with
// the suggested rate.
func TestLRFinder(t *testing.T) {
	store, ref := tinyData(t)
	plotPath := filepath.Join(t.TempDir(), "lr.png")
	opt := Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: t.TempDir(),
		Config:   Config{MaxSteps: 30, SeqLen: 128, BatchSize: 2, Seed: 1},
		LRFinder: LRFinderOptions{Steps: 60, Plot: plotPath}}
	ctx := context.Background()

	tr, _, err := setup(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	before := trainableBytes(tr)
	res, err := tr.findLR(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := trainableBytes(tr)
	for i := range before {
		if !equalF32(before[i], after[i]) {
			t.Fatalf("tensor %d differs after the sweep", i)
		}
	}
	t.Logf("sweep of %d steps (diverged at %d): lowest smoothed loss at %.3g, valley %.3g, steepest %.3g, suggestion %.3g",
		len(res.LRs), res.Diverged, res.MinLR, res.Valley, res.Steepest, res.Suggestion)
	if png, err := os.ReadFile(plotPath); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("plot: %v", err)
	}
	if !(res.Suggestion > 1e-4 && res.Suggestion < 1) || res.Suggestion > res.MinLR {
		t.Errorf("suggestion %g (lowest at %g)", res.Suggestion, res.MinLR)
	}

	final := func(o Options) (float64, *Result) {
		o.Output = t.TempDir()
		r, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return *r.Evals[len(r.Evals)-1].EvalLoss, r
	}
	def := opt
	def.Config.LearningRate = 2e-5
	lossDefault, _ := final(def)
	sug := opt
	sug.Config.LearningRate = res.Suggestion
	lossSuggested, _ := final(sug)
	auto := opt
	auto.AutoLR, auto.LRFinder.Plot = true, ""
	lossAuto, r := final(auto)
	t.Logf("eval loss after %d steps: %.4f at 2e-5, %.4f at the suggestion %.3g, %.4f with AutoLR", opt.Config.MaxSteps, lossDefault, lossSuggested, res.Suggestion, lossAuto)
	if !(lossSuggested < lossDefault-1) {
		t.Errorf("the suggestion trains to %.4f, the default 2e-5 to %.4f", lossSuggested, lossDefault)
	}
	if lossAuto != lossSuggested || r.LearningRate != res.Suggestion || r.LRFinder == nil {
		t.Errorf("AutoLR: eval loss %v at %g, want %v at %g", lossAuto, r.LearningRate, lossSuggested, res.Suggestion)
	}

	// LoRA on the model trained with the suggestion: the adapters come
	// back too.
	base := t.TempDir()
	sug.Output = base
	if _, err := Run(ctx, sug); err != nil {
		t.Fatal(err)
	}
	lo := Options{Store: store, Data: ref, Model: base, Output: t.TempDir(), LoRA: &model.LoRAConfig{Rank: 4},
		Config: Config{MaxSteps: 5, SeqLen: 128, BatchSize: 2}, LRFinder: LRFinderOptions{Steps: 20}}
	tr, _, err = setup(ctx, lo)
	if err != nil {
		t.Fatal(err)
	}
	before = trainableBytes(tr)
	if _, err := tr.findLR(ctx); err != nil {
		t.Fatal(err)
	}
	after = trainableBytes(tr)
	for i := range before {
		if !equalF32(before[i], after[i]) {
			t.Fatalf("LoRA: tensor %d differs after the sweep", i)
		}
	}
}

// memCase is a model size of TestMemoryEstimate.
type memCase struct {
	Name                         string
	Hidden, Inter, Layers, Heads int
	KV, SeqLen, Batch, LoRARank  int
	QLoRA                        bool
	Base                         string // with LoRARank: the base model's directory
}

func (c memCase) config() string {
	return fmt.Sprintf(`{"hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
"num_key_value_heads": %d, "vocab_size": 1, "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "tie_word_embeddings": false}`,
		c.Hidden, c.Inter, c.Layers, c.Heads, c.KV)
}

// TestMemoryChild is the child process of TestMemoryEstimate: it trains
// the model SIEVE_MEM_CHILD describes for a step and writes the
// trainer's estimate and its peak resident memory to SIEVE_MEM_OUT.
func TestMemoryChild(t *testing.T) {
	spec := os.Getenv("SIEVE_MEM_CHILD")
	if spec == "" {
		t.Skip("the child process of TestMemoryEstimate")
	}
	var c memCase
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, []byte(c.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Conversations longer than a row: every row is full, as the
	// estimate (a peak) assumes.
	long := arithmetic(12, 0)
	for _, m := range long {
		m[2].Content = strings.Repeat(m[2].Content+" ", 80)
	}
	root := t.TempDir()
	ref := writeVersion(t, root, "long", map[string][][]datasets.Message{"train": long, "test": long[:1]})
	store := datasets.Store{Root: root}
	opt := Options{Store: store, Data: ref, Init: cfgPath, VocabSize: 320, Output: filepath.Join(dir, "run"),
		Config: Config{LearningRate: 1e-3, MaxSteps: 1, SeqLen: c.SeqLen, BatchSize: c.Batch, Seed: 1}}
	var est MemoryEstimate
	opt.OnStart = func(p Plan) { est = p.Memory }
	if c.LoRARank > 0 { // LoRA on a base the parent wrote
		opt.Init, opt.Model, opt.LoRA, opt.QLoRA = "", c.Base, &model.LoRAConfig{Rank: c.LoRARank}, c.QLoRA
	}
	if _, err := Run(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	// VmHWM, the peak resident memory of this process's own address
	// space: ru_maxrss, as the parent reads it, starts from the parent's
	// own peak (the child is cloned from it before exec).
	data, _ := json.Marshal(struct {
		Estimate MemoryEstimate
		HWM      int64
	}{est, procKB("/proc/self/status", "VmHWM:")})
	if err := os.WriteFile(os.Getenv("SIEVE_MEM_OUT"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryEstimate runs three model sizes in child processes and
// compares the trainer's estimate of the peak with the child's peak
// resident memory (VmHWM; ru_maxrss when /proc is missing): within 15%.
// SIEVE_MEM_LORA=1 adds LoRA and QLoRA runs on a 12M base.
func TestMemoryEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models in child processes")
	}
	cases := []memCase{
		{Name: "attention-heavy 0.8M", Hidden: 128, Inter: 352, Layers: 4, Heads: 4, KV: 2, SeqLen: 256, Batch: 8},
		{Name: "balanced 5M", Hidden: 256, Inter: 704, Layers: 6, Heads: 8, KV: 4, SeqLen: 128, Batch: 8},
		{Name: "weight-heavy 12M", Hidden: 512, Inter: 1408, Layers: 4, Heads: 8, KV: 4, SeqLen: 64, Batch: 4},
	}
	if os.Getenv("SIEVE_MEM_LORA") != "" {
		// A 12M base for LoRA and QLoRA (off by default: the test's time).
		store, ref := tinyData(t)
		base := filepath.Join(t.TempDir(), "base")
		cfgPath := filepath.Join(t.TempDir(), "config.json")
		c := cases[2]
		if err := os.WriteFile(cfgPath, []byte(c.config()), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Run(context.Background(), Options{Store: store, Data: ref, Init: cfgPath, VocabSize: 320, Output: base,
			Config: Config{MaxSteps: 1, SeqLen: 64, BatchSize: 1}}); err != nil {
			t.Fatal(err)
		}
		lc := memCase{Name: "LoRA r16 on 12M", Hidden: 512, Inter: 1408, Layers: 4, Heads: 8, KV: 4, SeqLen: 256, Batch: 4, LoRARank: 16, Base: base}
		qc := lc
		qc.Name, qc.QLoRA = "QLoRA r16 on 12M", true
		cases = append(cases, lc, qc)
	}
	for _, c := range cases {
		spec, _ := json.Marshal(c)
		out := filepath.Join(t.TempDir(), "estimate.json")
		cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SIEVE_MEM_CHILD="+string(spec), "SIEVE_MEM_OUT="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c.Name, err, b)
		}
		maxrss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Estimate MemoryEstimate
			HWM      int64
		}
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		e, rss := got.Estimate, got.HWM
		if rss == 0 {
			rss = maxrss
		}
		ratio := float64(e.Total) / float64(rss)
		t.Logf("%-22s estimate %s, peak RSS %s (estimate/measured %.3f): %s", c.Name, GiB(e.Total), GiB(rss), ratio, e)
		if math.Abs(ratio-1) > 0.15 {
			t.Errorf("%s: estimate %s, measured %s", c.Name, GiB(e.Total), GiB(rss))
		}
	}
}

// TestMemoryBudget: a run whose estimate exceeds MaxMemory is refused
// before the model is built, and AutoBatch picks the largest
// micro-batch that fits, keeping the effective batch.
func TestMemoryBudget(t *testing.T) {
	store, ref := tinyData(t)
	opt := Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: t.TempDir(), MaxMemory: -1,
		Config: Config{MaxSteps: 2, SeqLen: 1024, BatchSize: 2}}
	ctx := context.Background()
	estimate := func(o Options) (MemoryEstimate, error) {
		tr, _, err := setup(ctx, o)
		if err != nil {
			return MemoryEstimate{}, err
		}
		return tr.memory, nil
	}
	e2, err := estimate(opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Config.BatchSize = 4
	e4, err := estimate(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("batch 2: %s\nbatch 4: %s", e2, e4)
	if d := e4.Activations - e2.Activations; d < 2*e2.ActivationsPerRow || d > 2*e2.ActivationsPerRow*11/10 {
		t.Errorf("activations %d, %d, per row %d", e2.Activations, e4.Activations, e2.ActivationsPerRow)
	}

	opt.MaxMemory = (e2.Total + e4.Total) / 2
	_, err = estimate(opt)
	if err == nil || !strings.Contains(err.Error(), "not enough memory") {
		t.Fatalf("over budget: %v", err)
	}
	t.Log(err)
	opt.Config.BatchSize, opt.Config.GradAccum, opt.AutoBatch = 4, 2, true
	tr, _, err := setup(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if tr.cfg.BatchSize != 2 || tr.cfg.GradAccum != 4 || tr.memory.Total > opt.MaxMemory {
		t.Errorf("auto batch: %d × %d, estimate %s, budget %s", tr.cfg.BatchSize, tr.cfg.GradAccum, GiB(tr.memory.Total), GiB(opt.MaxMemory))
	}
}

// TestNumParamsFamilies: NumParams counts what model.NewParams
// allocates for every family (Qwen2's biases, Qwen3's q/k norms, tied
// or not).
func TestNumParamsFamilies(t *testing.T) {
	for _, extra := range []string{`"model_type": "llama"`, `"model_type": "mistral", "sliding_window": null`,
		`"model_type": "qwen2", "tie_word_embeddings": true`, `"model_type": "qwen3", "head_dim": 24`} {
		c, err := model.ParseConfig([]byte(`{"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
"num_key_value_heads": 2, "vocab_size": 50, ` + extra + `}`))
		if err != nil {
			t.Fatal(err)
		}
		p, err := model.NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := NumParams(c); got != int64(p.NumParams()) {
			t.Errorf("%s: NumParams %d, NewParams allocates %d", extra, got, p.NumParams())
		}
	}
}

// TestTrainFamilies trains Qwen2- and Qwen3-shaped models end to end:
// full fine-tuning from --init moves the q/k/v biases (initialised at
// zero) and the q/k norms (at one), and the checkpoint keeps its
// model_type; LoRA on that checkpoint leaves them, and every other
// non-adapted tensor, as they were in the base.
func TestTrainFamilies(t *testing.T) {
	store, ref := tinyData(t)
	for _, fam := range []struct{ family, extra, marker string }{
		{"qwen2", `"model_type": "qwen2"`, "_proj.bias"},
		{"qwen3", `"model_type": "qwen3", "head_dim": 16`, "_norm.weight"},
	} {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "config.json")
		cfg := `{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 2, "vocab_size": 1, "rms_norm_eps": 1e-6, "max_position_embeddings": 128, "tie_word_embeddings": true, ` + fam.extra + `}`
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(dir, "base")
		if _, err := Run(context.Background(), Options{Store: store, Data: ref, Init: cfgPath, VocabSize: 320, Output: base,
			Config: Config{LearningRate: 1e-2, MaxSteps: 4, SeqLen: 128, BatchSize: 4}}); err != nil {
			t.Fatal(err)
		}
		b, err := model.Load(base)
		if err != nil {
			t.Fatal(err)
		}
		init, _ := model.NewParams(b.Config)
		init.Init(1, 0.02)
		marked := 0
		for _, tt := range b.Tensors() {
			if !strings.Contains(tt.Name, ".self_attn.") || !strings.HasSuffix(tt.Name, fam.marker) {
				continue
			}
			marked++
			it, _ := init.Tensor(tt.Name)
			if d := maxDiff(tt.Data, it.Data); d == 0 {
				t.Errorf("%s: %s did not train (still at its initial value)", fam.extra, tt.Name)
			}
		}
		if marked == 0 || b.Config.Family().String() != fam.family {
			t.Errorf("%s: %d tensors *%s, family %v", fam.extra, marked, fam.marker, b.Config.Family())
		}
		out := filepath.Join(dir, "lora")
		if _, err := Run(context.Background(), Options{Store: store, Data: ref, Model: base, Output: out,
			LoRA:   &model.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "k_proj", "o_proj"}},
			Config: Config{LearningRate: 2e-2, MaxSteps: 3, SeqLen: 128, BatchSize: 2}}); err != nil {
			t.Fatal(err)
		}
		merged, err := model.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range b.Tensors() {
			mt, _ := merged.Tensor(tt.Name)
			adapted := strings.HasSuffix(tt.Name, "q_proj.weight") || strings.HasSuffix(tt.Name, "k_proj.weight") || strings.HasSuffix(tt.Name, "o_proj.weight")
			if changed := maxDiff(tt.Data, mt.Data) != 0; changed != adapted {
				t.Errorf("%s: LoRA: %s changed %v, adapted %v", fam.extra, tt.Name, changed, adapted)
			}
		}
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}
