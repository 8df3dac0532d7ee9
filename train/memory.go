package train

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/sieve-data/sieve/train/model"
)

// MemoryEstimate is the planned peak memory of a run, in bytes, by part.
// It counts what the trainer allocates (see EstimateMemory); the Go
// runtime, the data and the tokenizer are RuntimeOverhead.
type MemoryEstimate struct {
	// Weights: the float32 weights; with QLoRA, those that stay float32
	// plus the NF4 codes and scales of the quantized projections.
	Weights int64 `json:"weights"`
	// Grads: one float32 gradient per weight (full training only).
	Grads int64 `json:"grads"`
	// Optimizer: the AdamW moments, two float32 per trainable weight.
	Optimizer int64 `json:"optimizer"`
	// LoRA: the adapters, their gradients and their scratch.
	LoRA int64 `json:"lora"`
	// Activations: the workspace of BatchSize rows of SeqLen tokens
	// (ActivationsPerRow each) plus the backward pass's scratch.
	Activations       int64 `json:"activations"`
	ActivationsPerRow int64 `json:"activations_per_row"`
	// Extra: the LR finder's copy of the trainable weights, or the
	// reload of the best model at the end of an early-stopped full run.
	Extra int64 `json:"extra"`
	// Load: the peak while the model is built, before LoRA and
	// quantization release the float32 base and its gradients (it is
	// the peak of a LoRA run when larger than the training phase).
	Load int64 `json:"load"`
	// Overhead: the Go runtime, the data and the tokenizer.
	Overhead int64 `json:"overhead"`
	// Total is the peak: the larger of the training phase (every part
	// above but Load) and Load, plus Overhead.
	Total int64 `json:"total"`
	// Budget is what Total was checked against (0: not checked).
	Budget    int64 `json:"budget,omitempty"`
	BatchSize int   `json:"batch_size"`
	GradAccum int   `json:"grad_accum"`
	SeqLen    int   `json:"seq_len"`
}

// RuntimeOverhead is the resident memory a run adds beyond the model
// and the process's own resident memory when it starts (the Go runtime
// and binary): reading and tokenizing the data, the tokenizer, the
// garbage collector's slack. Measured on the runs of TestMemoryEstimate.
const RuntimeOverhead = 8 << 20

// ResidentMemory returns the process's resident memory that a new run
// cannot reuse, in bytes: VmRSS of /proc/self/status less the Go heap's
// free pages, after a garbage collection (0 when /proc cannot be read).
func ResidentMemory() int64 {
	rss := procKB("/proc/self/status", "VmRSS:")
	if rss == 0 {
		return 0
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return max(0, rss-int64(ms.HeapIdle-ms.HeapReleased))
}

// MemorySettings are what EstimateMemory needs besides the model's
// config.
type MemorySettings struct {
	BatchSize, SeqLen int
	LoRA              *model.LoRAConfig
	QLoRA             bool
	// Snapshot: the LR finder runs (a copy of the trainable weights);
	// BestReload: early stopping reloads the best full model at the end.
	Snapshot, BestReload bool
	// BF16: the products run in bf16 (model.PrecisionBF16), whose
	// scratch holds one rounded weight and one [n, D] gradient.
	BF16 bool
	// DataTokens: tokens of both splits (8 bytes each as ids, 1 as mask).
	DataTokens int64
	// Resident is the process's resident memory before the run (see
	// ResidentMemory).
	Resident int64
}

// EstimateMemory returns the planned peak of training a model of config
// c: it mirrors the allocations of model.New (the activation workspace:
// per layer the inputs, norms, q/k/v, attention probabilities B·H·T² ,
// MLP values; the logits and their gradient; the backward buffers), of
// the pure-Go kernels' transposes, of LoRA and NF4, of bf16's scratch,
// and of AdamW.
func EstimateMemory(c model.Config, s MemorySettings) (MemoryEstimate, error) {
	e := MemoryEstimate{BatchSize: s.BatchSize, SeqLen: s.SeqLen, GradAccum: 1}
	if err := c.Validate(); err != nil {
		return e, err
	}
	const f4 = 4
	params := NumParams(c)
	D, F, V, hd := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize), int64(c.Hd())
	H, L := int64(c.NumAttentionHeads), int64(c.NumHiddenLayers)
	qd, kvd := H*hd, int64(c.KVHeads())*hd
	T := int64(s.SeqLen)
	n := int64(s.BatchSize) * T

	perTok := L*(4*D+2+2*qd+2*kvd+3*F+H*T) + // layer activations
		hd + 8 + 4/f4 + 2*D + 1 + // rope tables, positions, segment starts, final norm
		2*V + 2*D + 2*qd + 2*kvd + 2*F // logits and backward buffers
	if c.QKNorm() { // Qwen3: q and k before their norms, and the norms' 1/rms
		perTok += L * (qd + kvd + H + int64(c.KVHeads()))
	}
	e.ActivationsPerRow = f4 * perTok * T
	// The pure-Go kernels' transposes: dyᵀ and xᵀ of the largest
	// product's shapes, and the largest transposed weight.
	scratch := n*max(V, F, D, qd) + n*max(D, F, qd) + max(V*D, D*F, qd*D)
	if s.BF16 {
		scratch += max(V*D, D*F, qd*D) + n*D
	}
	e.Activations = e.ActivationsPerRow*int64(s.BatchSize) + f4*scratch

	trainable := params
	weights := f4 * params
	proj := func(k int) (in, out int64) {
		switch k {
		case 0:
			return D, qd
		case 1, 2:
			return D, kvd
		case 3:
			return qd, D
		case 4, 5:
			return D, F
		default:
			return F, D
		}
	}
	e.Load = weights + f4*params + e.Activations
	if s.LoRA != nil {
		targets := s.LoRA.Targets
		if len(targets) == 0 {
			targets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
		}
		names := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
		r := int64(s.LoRA.Rank)
		trainable = 0
		var largestOut, largestProj, quantized, nf4 int64
		for k, name := range names {
			on := false
			for _, t := range targets {
				on = on || t == name
			}
			if !on {
				continue
			}
			in, out := proj(k)
			trainable += L * r * (in + out)
			largestOut = max(largestOut, out)
			largestProj = max(largestProj, in*out)
			e.LoRA += f4 * L * n * r // x·Aᵀ kept for backward
			quantized += L * in * out
			nf4 += L * (in*out/2 + f4*((in*out+63)/64))
		}
		e.LoRA += f4 * (2*trainable + 3*n*r + 2*r*largestOut)
		if s.QLoRA {
			weights = f4*(params-quantized) + nf4 + f4*largestProj
		}
	} else {
		e.Grads = f4 * params
	}
	e.Weights = weights
	e.Optimizer = 2 * f4 * trainable
	if s.Snapshot {
		e.Extra = f4 * trainable
	}
	if s.BestReload && s.LoRA == nil {
		e.Extra = max(e.Extra, f4*params)
	}
	e.Overhead = s.Resident + RuntimeOverhead + 9*s.DataTokens + 2*33*n // ids, masks; the train and test batch buffers
	train := e.Weights + e.Grads + e.Optimizer + e.LoRA + e.Activations + e.Extra
	e.Total = max(train, e.Load) + e.Overhead
	return e, nil
}

// String sums the estimate up in one line.
func (e MemoryEstimate) String() string {
	s := fmt.Sprintf("peak memory about %s: weights %s, gradients %s, optimizer %s", GiB(e.Total), GiB(e.Weights), GiB(e.Grads), GiB(e.Optimizer))
	if e.LoRA > 0 {
		s += ", LoRA " + GiB(e.LoRA)
	}
	s += fmt.Sprintf(", activations %s (%d rows × %s at %d tokens)", GiB(e.Activations), e.BatchSize, GiB(e.ActivationsPerRow), e.SeqLen)
	if e.Extra > 0 {
		s += ", copies " + GiB(e.Extra)
	}
	return s + ", runtime and data " + GiB(e.Overhead)
}

// NumParams is the number of weights of a model of config c (with
// Qwen2's q/k/v biases and Qwen3's q/k norms), as model.NewParams
// allocates.
func NumParams(c model.Config) int64 {
	D, F, V, hd := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize), int64(c.Hd())
	qd, kvd := int64(c.NumAttentionHeads)*hd, int64(c.KVHeads())*hd
	layer := 2*D + D*qd + 2*D*kvd + qd*D + 3*D*F
	if c.QKVBias() {
		layer += qd + 2*kvd
	}
	if c.QKNorm() {
		layer += 2 * hd
	}
	n := V*D + int64(c.NumHiddenLayers)*layer + D
	if !c.TieWordEmbeddings {
		n += V * D
	}
	return n
}

// GiB writes a byte count in GiB (MiB below one GiB).
func GiB(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}

// AvailableMemory returns MemAvailable of /proc/meminfo, in bytes (0
// when it cannot be read).
func AvailableMemory() int64 { return procKB("/proc/meminfo", "MemAvailable:") }

// procKB reads the value in kB of a key of a /proc file, in bytes.
func procKB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// planMemory estimates the run's peak memory, picks the micro-batch
// size with AutoBatch, and refuses a run whose estimate exceeds the
// budget.
func (t *trainer) planMemory() error {
	// Collect the garbage of reading and tokenizing the data now, so that
	// the model's memory reuses it instead of adding to it.
	runtime.GC()
	settings := func(b int) MemorySettings {
		return MemorySettings{BatchSize: b, SeqLen: t.cfg.SeqLen, LoRA: t.opt.LoRA, QLoRA: t.opt.QLoRA,
			Snapshot: t.opt.AutoLR, BestReload: t.cfg.EarlyStopPatience > 0, DataTokens: t.trainSt.Tokens + t.testSt.Tokens, Resident: t.resident,
			BF16: t.precision == model.PrecisionBF16}
	}
	budget := t.opt.MaxMemory
	if budget == 0 {
		budget = t.available
	}
	c := t.p.Config
	if t.opt.AutoBatch {
		eff := t.cfg.BatchSize * t.cfg.GradAccum
		for b := eff; b >= 1; b-- {
			if eff%b != 0 {
				continue
			}
			e, err := EstimateMemory(c, settings(b))
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			if budget <= 0 || e.Total <= budget || b == 1 {
				t.cfg.BatchSize, t.cfg.GradAccum = b, eff/b
				break
			}
		}
	}
	e, err := EstimateMemory(c, settings(t.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	e.GradAccum = t.cfg.GradAccum
	if t.train.buf.B != t.cfg.BatchSize {
		t.train.buf = model.NewBatch(t.cfg.BatchSize, t.cfg.SeqLen)
		if t.test != nil {
			t.test.buf = model.NewBatch(t.cfg.BatchSize, t.cfg.SeqLen)
		}
	}
	if budget > 0 {
		e.Budget = budget
		if e.Total > budget {
			return fmt.Errorf("train: not enough memory: this run needs %s; the budget is %s (lower --batch-size or --seq-len, use --batch-size auto, --lora-r or --qlora, or raise --max-memory)", e, GiB(budget))
		}
	}
	t.memory = e
	return nil
}

// limitMemory makes the estimate the garbage collector's soft memory
// limit (debug.SetMemoryLimit) while the run trains, unless GOMEMLIMIT
// is set: the steps' garbage (the pure-Go kernels' buffers) is then
// collected before the heap grows past the estimate, instead of at
// twice the live heap (GOGC). It returns the function that puts the
// previous limit back.
func (t *trainer) limitMemory() func() {
	if os.Getenv("GOMEMLIMIT") != "" || t.memory.Total <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(t.memory.Total)
	return func() { debug.SetMemoryLimit(prev) }
}
