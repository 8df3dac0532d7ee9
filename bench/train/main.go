// Command train benchmarks sieve's trainer against PyTorch on the CPU, in
// the same run: training tokens/s and peak RSS of full fine-tuning and of
// LoRA on the reference configuration (dim 256, 4 layers, 4 heads, vocab
// 4096, tied embeddings, seq 256, batch 8), with the same number of
// threads on both sides.
//
// Usage:
//
//	go run -tags openblas ./bench/train [-modes full,lora] [-bf16 full] [-reps 3] [-steps 10] [-threads 2]
//
// Each side runs as a child process, so that its peak RSS (ru_maxrss from
// wait4) is its own:
//
//   - sieve: this binary re-run with -worker, which builds the model with
//     train/model, then times steps of forward, backward,
//     train.ClipGradNorm(1.0) and train.AdamW (lr 3e-4, betas 0.9/0.95,
//     weight decay 0.1) on a fixed random batch, GOMAXPROCS = threads.
//     Built with -tags openblas its products run on OpenBLAS (see
//     train/model/openblas), otherwise on gonum's pure-Go kernels.
//   - PyTorch: torch_train.py beside this file under /usr/bin/python3,
//     the same model, step and optimizer, torch.set_num_threads(threads).
//
// Both children get Debian's OpenMP build of OpenBLAS first on their
// library path where it is installed (-openblas-dir): libopenblas-dev
// makes the pthread build the system default, and Debian's torch, whose
// own threads are OpenMP's, runs about 1.7× slower on that one here;
// sieve runs the same on either (one thread per call, see
// train/model/openblas).
//
// The two alternate -reps times (so that drift hits both alike). With an
// AVX-512 CPU that OpenBLAS 0.3.21 does not recognise (it falls back to
// its SSE3 "Prescott" kernels), both children get OPENBLAS_CORETYPE
// (-coretype; "auto" sets SkylakeX where /proc/cpuinfo lists avx512f),
// which only this benchmark sets. Settings DIM, LAYERS, HEADS, KVHEADS,
// VOCAB, SEQ, BATCH and HIDDEN come from the environment, as
// torch_train.py reads them.
//
// One JSON line per mode:
//
//	{"bench":"train_step_full","value":…,"unit":"tokens/s","peak_rss_mib":…,
//	 "baseline":"pytorch_train_step_full","ratio":…,"machine":"…",
//	 "baseline_value":…,"baseline_peak_rss_mib":…,"rss_ratio":…,…}
//
// and, for each mode of -bf16 (default full), one line of sieve's bf16
// mixed precision (model.PrecisionBF16: products on operands rounded to
// bfloat16, float32 sums and master weights) against its fp32 runs of
// that mode (a third child in each rep):
//
//	{"bench":"train_step_full_bf16","value":…,"unit":"tokens/s",
//	 "baseline":"train_step_full","ratio":…(bf16 speed-up),"machine":"…",
//	 "cpu_bf16":"…","precision_auto":"…","loss_last":…,"baseline_loss_last":…}
//
// The ratio compares children run one after the other, which the load
// of a shared machine skews; paired_cpu_speedup is steadier: in each
// timed step of the bf16 child an fp32 forward and backward on the same
// weights runs first, and the median over steps and runs of its CPU
// time over that of the bf16 forward and backward is the speed-up.
// cpu_bf16 says whether the CPU has AVX512_BF16 or AMX-BF16 and
// precision_auto what --precision auto resolves to here: on a CPU
// without them, and in any build without a kernel that uses them, bf16 is
// emulated and the ratio is below 1.
//
// value and baseline_value are the medians over reps of each child's
// median step (tokens per step / seconds); ratio is value/baseline_value
// (above 1: sieve is faster); fwd_bwd_ms_median and
// clip_adamw_ms_median split sieve's step; rss_ratio is sieve's peak RSS over
// PyTorch's (below 1: sieve uses less). max_other_cpu_s is the most CPU
// time other processes used while one child ran: well above zero means
// the machine was shared and the numbers are not clean. Progress goes to
// stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
	"github.com/sieve-data/sieve/train"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/model/openblas"
)

// resultKeys come first in a result line, in this order.
var resultKeys = []string{"bench", "error", "value", "unit", "step_ms_median", "peak_rss_mib", "baseline", "ratio",
	"baseline_value", "baseline_peak_rss_mib", "rss_ratio", "machine"}

func main() {
	var (
		modes   = flag.String("modes", "full,lora", "comma-separated training modes: full, lora")
		bf16    = flag.String("bf16", "full", "modes of -modes also timed in bf16 mixed precision against sieve's fp32 (\"\": none)")
		prec    = flag.String("precision", "fp32", "internal: the worker's precision (fp32 or bf16)")
		reps    = flag.Int("reps", 3, "runs of each side per mode (alternating)")
		steps   = flag.Int("steps", 10, "timed steps per run")
		warmup  = flag.Int("warmup", 2, "untimed steps per run first")
		threads = flag.Int("threads", 2, "threads of each side (GOMAXPROCS; torch.set_num_threads)")
		python  = flag.String("python", "/usr/bin/python3", "Python with torch")
		script  = flag.String("script", "", "PyTorch script (default: torch_train.py beside this file)")
		core    = flag.String("coretype", "auto", `OPENBLAS_CORETYPE for both children ("auto": SkylakeX on AVX-512 CPUs; "": unset)`)
		blasDir = flag.String("openblas-dir", "auto", `directory put first on both children's LD_LIBRARY_PATH ("auto": Debian's openblas-openmp, where installed; "": none)`)
		worker  = flag.String("worker", "", "internal: run sieve's side in this mode and print its JSON")
	)
	flag.Parse()
	if *worker != "" {
		if err := runWorker(*worker, *prec, *steps, *warmup); err != nil {
			fmt.Fprintln(os.Stderr, "train bench worker:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(strings.Split(*modes, ","), strings.Split(*bf16, ","), *reps, *steps, *warmup, *threads, *python, *script, *core, *blasDir); err != nil {
		fmt.Fprintln(os.Stderr, "train bench:", err)
		os.Exit(1)
	}
}

// result is one child's report and what wait4 said about it.
type result struct {
	TokensPerS float64 `json:"tokens_per_s"`
	StepMS     float64 `json:"step_ms_median"`
	FwdBwdMS   float64 `json:"fwd_bwd_ms_median"`    // sieve: zero grad, forward, backward
	OptMS      float64 `json:"clip_adamw_ms_median"` // sieve: clipping and AdamW
	LossFirst  float64 `json:"loss_first"`
	LossLast   float64 `json:"loss_last"`
	Params     int     `json:"params"`
	Trainable  int     `json:"trainable"`
	Threads    int     `json:"threads"`
	BLAS       string  `json:"blas,omitempty"`
	// PairedCPU is the bf16 worker's median over steps of the CPU time
	// of an fp32 forward and backward over that of the bf16 one after it.
	PairedCPU float64 `json:"paired_cpu_speedup"`
	Torch     string  `json:"torch,omitempty"`

	rssMiB, otherCPU float64
}

func run(modes, bf16Modes []string, reps, steps, warmup, threads int, python, script, core, blasDir string) error {
	if script == "" {
		root, err := benchenv.ModuleRoot()
		if err != nil {
			return fmt.Errorf("%w; pass -script", err)
		}
		script = filepath.Join(root, "bench", "train", "torch_train.py")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if core == "auto" {
		core = ""
		if benchenv.CPUFlag("avx512f") {
			core = "SkylakeX"
		}
	}
	env := os.Environ()
	if core != "" {
		env = append(env, "OPENBLAS_CORETYPE="+core)
	}
	th := strconv.Itoa(threads)
	goEnv := append(append([]string(nil), env...), "GOMAXPROCS="+th)
	pyEnv := append(append([]string(nil), env...), "THREADS="+th, "OMP_NUM_THREADS="+th,
		"OPENBLAS_NUM_THREADS="+th, "STEPS="+strconv.Itoa(steps), "WARMUP="+strconv.Itoa(warmup))
	if blasDir == "auto" {
		blasDir = ""
		if m, _ := filepath.Glob("/usr/lib/*/openblas-openmp/libopenblas.so.0"); len(m) > 0 {
			blasDir = filepath.Dir(m[0])
		}
	}
	if blasDir != "" {
		ld := "LD_LIBRARY_PATH=" + strings.TrimSuffix(blasDir+":"+os.Getenv("LD_LIBRARY_PATH"), ":")
		goEnv, pyEnv = append(goEnv, ld), append(pyEnv, ld)
	}
	machine := benchenv.Machine()
	enc := json.NewEncoder(os.Stdout)
	for _, mode := range modes {
		var goRuns, pyRuns, bfRuns []result
		var goErr, pyErr, bfErr error
		bf16 := slices.Contains(bf16Modes, mode)
		for rep := 0; rep < reps; rep++ {
			fmt.Fprintf(os.Stderr, "train bench: %s, run %d/%d: sieve\n", mode, rep+1, reps)
			r, err := child(goEnv, self, "-worker", mode, "-steps", strconv.Itoa(steps), "-warmup", strconv.Itoa(warmup))
			if err != nil {
				goErr = err
			} else {
				goRuns = append(goRuns, r)
			}
			fmt.Fprintf(os.Stderr, "train bench: %s, run %d/%d: pytorch\n", mode, rep+1, reps)
			r, err = child(append(pyEnv, "MODE="+mode), python, script)
			if err != nil {
				pyErr = err
			} else {
				pyRuns = append(pyRuns, r)
			}
			if !bf16 {
				continue
			}
			fmt.Fprintf(os.Stderr, "train bench: %s, run %d/%d: sieve bf16\n", mode, rep+1, reps)
			r, err = child(goEnv, self, "-worker", mode, "-precision", "bf16", "-steps", strconv.Itoa(steps), "-warmup", strconv.Itoa(warmup))
			if err != nil {
				bfErr = err
			} else {
				bfRuns = append(bfRuns, r)
			}
		}
		line := map[string]any{"bench": "train_step_" + mode, "baseline": "pytorch_train_step_" + mode,
			"machine": machine, "threads": threads, "openblas_coretype": core, "unit": "tokens/s", "openblas_dir": blasDir}
		if len(goRuns) == 0 {
			line["error"] = fmt.Sprint(goErr)
		} else {
			v, rss := median(goRuns, tps), median(goRuns, rssOf)
			last := goRuns[len(goRuns)-1]
			line["value"], line["peak_rss_mib"] = round(v, 1), round(rss, 1)
			line["runs_tokens_per_s"] = roundAll(goRuns, tps)
			line["step_ms_median"] = round(median(goRuns, stepMS), 1)
			line["fwd_bwd_ms_median"] = round(median(goRuns, func(r result) float64 { return r.FwdBwdMS }), 1)
			line["clip_adamw_ms_median"] = round(median(goRuns, func(r result) float64 { return r.OptMS }), 1)
			line["blas"], line["params"], line["trainable"] = last.BLAS, last.Params, last.Trainable
			line["loss_first"], line["loss_last"] = last.LossFirst, last.LossLast
		}
		if len(pyRuns) == 0 {
			line["baseline_error"] = fmt.Sprint(pyErr)
		} else {
			v, rss := median(pyRuns, tps), median(pyRuns, rssOf)
			last := pyRuns[len(pyRuns)-1]
			line["baseline_value"], line["baseline_peak_rss_mib"] = round(v, 1), round(rss, 1)
			line["baseline_runs_tokens_per_s"] = roundAll(pyRuns, tps)
			line["baseline_step_ms_median"] = round(median(pyRuns, stepMS), 1)
			line["torch"], line["baseline_trainable"] = last.Torch, last.Trainable
			line["baseline_loss_first"], line["baseline_loss_last"] = last.LossFirst, last.LossLast
		}
		if len(goRuns) > 0 && len(pyRuns) > 0 {
			line["ratio"] = round(line["value"].(float64)/line["baseline_value"].(float64), 3)
			line["rss_ratio"] = round(line["peak_rss_mib"].(float64)/line["baseline_peak_rss_mib"].(float64), 3)
		}
		other := 0.0
		for _, r := range append(goRuns, pyRuns...) {
			other = max(other, r.otherCPU)
		}
		line["max_other_cpu_s"] = round(other, 2)
		if err := enc.Encode(benchenv.Ordered(line, resultKeys...)); err != nil {
			return err
		}
		if bf16 {
			if err := enc.Encode(benchenv.Ordered(bf16Line(mode, machine, threads, bfRuns, goRuns, bfErr, goErr), resultKeys...)); err != nil {
				return err
			}
		}
	}
	return nil
}

// bf16Line is the result line of mode in bf16 against sieve's fp32 runs
// of the same mode: the ratio is the bf16 speed-up.
func bf16Line(mode, machine string, threads int, bf, fp []result, bfErr, fpErr error) map[string]any {
	_, why, _ := model.ResolvePrecision("auto", model.HostCPU())
	var flags []string
	for _, f := range []string{"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"} {
		if benchenv.CPUFlag(f) {
			flags = append(flags, f)
		}
	}
	line := map[string]any{"bench": "train_step_" + mode + "_bf16", "baseline": "train_step_" + mode, "unit": "tokens/s",
		"machine": machine, "cpu_flags": strings.Join(flags, " "), "cpu_bf16": model.HostCPU().String(),
		"precision_auto": why, "threads": threads}
	if len(bf) == 0 {
		line["error"] = fmt.Sprint(bfErr)
		return line
	}
	v := median(bf, tps)
	line["value"], line["peak_rss_mib"] = round(v, 1), round(median(bf, rssOf), 1)
	line["runs_tokens_per_s"] = roundAll(bf, tps)
	line["step_ms_median"] = round(median(bf, stepMS), 1)
	line["fwd_bwd_ms_median"] = round(median(bf, func(r result) float64 { return r.FwdBwdMS }), 1)
	line["blas"], line["loss_first"], line["loss_last"] = bf[len(bf)-1].BLAS, bf[len(bf)-1].LossFirst, bf[len(bf)-1].LossLast
	if len(fp) == 0 {
		line["baseline_error"] = fmt.Sprint(fpErr)
		return line
	}
	b := median(fp, tps)
	line["baseline_value"], line["baseline_peak_rss_mib"] = round(b, 1), round(median(fp, rssOf), 1)
	line["ratio"] = round(v/b, 3)
	line["paired_cpu_speedup"] = round(median(bf, func(r result) float64 { return r.PairedCPU }), 3)
	line["baseline_step_ms_median"] = round(median(fp, stepMS), 1)
	line["baseline_loss_first"], line["baseline_loss_last"] = fp[len(fp)-1].LossFirst, fp[len(fp)-1].LossLast
	line["baseline_runs_tokens_per_s"] = roundAll(fp, tps)
	other := 0.0
	for _, r := range append(bf, fp...) {
		other = max(other, r.otherCPU)
	}
	line["max_other_cpu_s"] = round(other, 2)
	return line
}

// child runs name with args and env, parses the last line of its stdout
// as a result and adds its peak RSS and the CPU time others used
// meanwhile.
func child(env []string, name string, args ...string) (result, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	busy0 := benchenv.CPUBusySeconds()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %v: %s", filepath.Base(name), err, tailString(stderr.String(), 400))
	}
	busy1 := benchenv.CPUBusySeconds()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return result{}, fmt.Errorf("%s: output %q: %v", filepath.Base(name), tailString(stdout.String(), 200), err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, errors.New("no rusage")
	}
	r.rssMiB = float64(ru.Maxrss) / 1024
	own := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	if busy0 >= 0 && busy1 >= 0 {
		r.otherCPU = max(0, busy1-busy0-own)
	}
	return r, nil
}

// runWorker is sieve's side: the model of the reference configuration
// (or the environment's), a fixed random batch, warmup untimed steps and
// steps timed ones; it prints one JSON result.
func runWorker(mode, precision string, steps, warmup int) error {
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	dim, heads := env("DIM", 256), env("HEADS", 4)
	c := model.DefaultConfig()
	c.HiddenSize, c.NumHiddenLayers = dim, env("LAYERS", 4)
	c.IntermediateSize = env("HIDDEN", 0)
	if c.IntermediateSize == 0 {
		c.IntermediateSize = 32 * ((2*4*dim/3 + 31) / 32) // llama2.c's rule
	}
	c.NumAttentionHeads, c.NumKeyValueHeads = heads, env("KVHEADS", heads)
	c.VocabSize, c.TieWordEmbeddings, c.RMSNormEps = env("VOCAB", 4096), true, 1e-5
	B, T := env("BATCH", 8), env("SEQ", 256)

	p, err := model.NewParams(c)
	if err != nil {
		return err
	}
	p.Init(1, 0.02)
	m, err := model.New(p, B, T)
	if err != nil {
		return err
	}
	switch mode {
	case "full":
	case "lora":
		if err := m.EnableLoRA(model.LoRAConfig{Rank: 8, Alpha: 16, Seed: 1}); err != nil {
			return err
		}
		m.G = nil // base gradients are not used with LoRA
	default:
		return fmt.Errorf("mode %q: want full or lora", mode)
	}
	switch precision {
	case "fp32":
	case "bf16":
		m.SetPrecision(model.PrecisionBF16)
	default:
		return fmt.Errorf("precision %q: want fp32 or bf16", precision)
	}
	params := m.Trainable()
	trainable := 0
	for _, t := range params {
		trainable += len(t.P)
	}
	opt := train.NewAdamW(params, nil, 0.9, 0.95, 1e-8, 0.1)

	r := rand.New(rand.NewPCG(1, 1))
	x := model.NewBatch(B, T)
	for i := range x.IDs {
		x.IDs[i], x.Targets[i], x.Mask[i] = r.IntN(c.VocabSize), r.IntN(c.VocabSize), true
		x.Pos[i], x.Seg[i] = i%T, 0
	}
	// step runs one training step and returns its loss and the seconds of
	// its two parts.
	// cpu32 and cpu16 are the CPU seconds of the forward and backward
	// passes of the timed steps in bf16 and of an fp32 pass on the same
	// weights run just before each (bf16 only; not timed in the step).
	var cpu32, cpu16 []float64
	step := func() (loss float32, fwdBwd, opti float64, err error) {
		if m.Precision() == model.PrecisionBF16 {
			m.SetPrecision(model.PrecisionFP32)
			c0 := cpuSeconds()
			m.ZeroGrad()
			if _, err = m.Forward(x); err == nil {
				err = m.Backward()
			}
			cpu32 = append(cpu32, cpuSeconds()-c0)
			m.SetPrecision(model.PrecisionBF16)
			if err != nil {
				return 0, 0, 0, err
			}
		}
		t0, c0 := time.Now(), cpuSeconds()
		m.ZeroGrad()
		if loss, err = m.Forward(x); err != nil {
			return 0, 0, 0, err
		}
		if err := m.Backward(); err != nil {
			return 0, 0, 0, err
		}
		cpu16 = append(cpu16, cpuSeconds()-c0)
		t1 := time.Now()
		train.ClipGradNorm(params, 1.0)
		opt.Update(3e-4)
		return loss, t1.Sub(t0).Seconds(), time.Since(t1).Seconds(), nil
	}
	for i := 0; i < warmup; i++ {
		if _, _, _, err := step(); err != nil {
			return err
		}
	}
	cpu32, cpu16 = nil, nil
	times, fb, op := make([]float64, steps), make([]float64, steps), make([]float64, steps)
	losses := make([]float32, steps)
	for i := range times {
		if losses[i], fb[i], op[i], err = step(); err != nil {
			return err
		}
		times[i] = fb[i] + op[i]
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	var paired float64
	if len(cpu32) > 0 {
		ratios := make([]float64, len(cpu32))
		for i := range ratios {
			ratios[i] = cpu32[i] / cpu16[i]
		}
		paired = round(med(ratios), 3)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"impl": "sieve", "blas": openblas.Name(), "threads": runtime.GOMAXPROCS(0), "mode": mode, "precision": precision,
		"paired_cpu_speedup": paired,
		"params":             p.NumParams(), "trainable": trainable, "steps": steps,
		"step_ms_median": round(med(times)*1e3, 1), "tokens_per_s": round(float64(B*T)/med(times), 1),
		"step_ms_min":       round(slices.Min(times)*1e3, 1),
		"fwd_bwd_ms_median": round(med(fb)*1e3, 1), "clip_adamw_ms_median": round(med(op)*1e3, 1),
		"loss_first": round(float64(losses[0]), 4), "loss_last": round(float64(losses[steps-1]), 4),
	})
}

// cpuSeconds returns the user and system CPU time of this process.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func tps(r result) float64    { return r.TokensPerS }
func rssOf(r result) float64  { return r.rssMiB }
func stepMS(r result) float64 { return r.StepMS }

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func roundAll(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = round(f(r), 1)
	}
	return out
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
