package model

// bf16 mixed precision. In BF16 mode the products of the linear layers
// (the seven projections of every decoder layer and the head, forward
// and backward) take their operands rounded to bfloat16 and accumulate
// in float32:
//
//	y  = bf(x)·bf(W)ᵀ          forward
//	dW += bf(dy)ᵀ·bf(x)        weight gradient (full fine-tuning)
//	dx = bf(dy)·bf(W)          input gradient
//
// where bf rounds a float32 to the nearest bfloat16 (8 significant bits,
// ties to even, NaN kept NaN, infinities and subnormals as they round)
// and returns it as a float32. The product of two bfloat16 values is
// exact in float32 (8 + 8 significant bits), so a float32 GEMM of the
// rounded operands computes what AVX512_BF16's VDPBF16PS computes (pairs
// of exact products summed in float32), up to the order of the sums; it
// does not flush subnormal operands as VDPBF16PS does. The weights,
// their gradients and the optimizer state stay float32 (master
// weights); attention (q·kᵀ, softmax, P·v), the norms, SwiGLU, the
// residual stream, the loss and the LoRA adapters' own products
// (x·Aᵀ, t·Bᵀ and their gradients, on the same rounded inputs) stay
// float32.
//
// How: an activation that only linear layers read (the normed inputs of
// q/k/v and of gate/up, attention's output, SwiGLU's output, the final
// norm's output) is rounded in place once it is computed, so that the
// forward product and the weight gradient read the same rounded copy
// (and the LoRA adapters too). Output gradients are rounded in place
// where nothing else reads them afterwards (the logits' gradient,
// SwiGLU's, q/k/v's after their bias gradients), and into a scratch
// copy where the residual stream's gradient goes on (o_proj, down_proj).
// Each weight is rounded into a reusable buffer right before its
// product (an NF4 weight is rounded in its dequantization buffer), so
// no second copy of the weights is kept and the rounded weight is always
// that of the current master weight. The rounding runs in AVX2 where the
// CPU has it.
//
// This is an emulation: the products still run on the float32 GEMM, so
// BF16 adds the rounding passes to the same work and is never faster than FP32
// (see docs/train.md for the measured cost). It exists to check the
// numerics (training parity against FP32) and for a kernel that would
// use AVX512_BF16 or AMX to slot in; ResolvePrecision picks BF16 for
// "auto" only where such a kernel exists, which in this build is
// nowhere.

import (
	"fmt"
	"math"

	"golang.org/x/sys/cpu"
)

// Precision is the arithmetic of the linear layers' matrix products.
type Precision uint8

const (
	// PrecisionFP32 multiplies float32 operands (the default).
	PrecisionFP32 Precision = iota
	// PrecisionBF16 rounds the operands to bfloat16 and accumulates in float32.
	PrecisionBF16
)

// String returns fp32 or bf16.
func (p Precision) String() string {
	if p == PrecisionBF16 {
		return "bf16"
	}
	return "fp32"
}

// CPUFeatures are the CPU capabilities that ResolvePrecision looks at.
type CPUFeatures struct {
	AVX512BF16 bool // AVX512_BF16 (VDPBF16PS)
	AMXBF16    bool // AMX tiles with BF16 (TDPBF16PS)
}

// HostCPU returns the features of the CPU this process runs on, as
// golang.org/x/sys/cpu reports them.
func HostCPU() CPUFeatures {
	return CPUFeatures{AVX512BF16: cpu.X86.HasAVX512BF16, AMXBF16: cpu.X86.HasAMXTile && cpu.X86.HasAMXBF16}
}

func (f CPUFeatures) String() string {
	switch {
	case f.AVX512BF16 && f.AMXBF16:
		return "AVX512_BF16 and AMX-BF16"
	case f.AVX512BF16:
		return "AVX512_BF16"
	case f.AMXBF16:
		return "AMX-BF16"
	}
	return "no AVX512_BF16 or AMX-BF16"
}

// hardwareBF16Kernel reports whether this build has a bf16 matrix kernel
// that runs on AVX512_BF16 or AMX. It has none: BF16 is emulated on the
// float32 GEMM (see above), which is never faster than FP32.
const hardwareBF16Kernel = false

// ResolvePrecision turns a --precision setting into the precision to
// train with and a reason to log. name is fp32, bf16, or auto (or "",
// the same as auto): auto picks BF16 only where the CPU has AVX512_BF16
// or AMX-BF16 and this build has a bf16 kernel that uses it, FP32
// otherwise.
func ResolvePrecision(name string, f CPUFeatures) (Precision, string, error) {
	return resolvePrecision(name, f, hardwareBF16Kernel)
}

func resolvePrecision(name string, f CPUFeatures, kernel bool) (Precision, string, error) {
	const emulated = "emulated: operands rounded to bfloat16, products on the float32 GEMM, slower than fp32"
	hw := f.AVX512BF16 || f.AMXBF16
	switch name {
	case "fp32":
		return PrecisionFP32, "fp32 (asked)", nil
	case "bf16":
		if kernel && hw {
			return PrecisionBF16, "bf16 (asked; the CPU has " + f.String() + ")", nil
		}
		return PrecisionBF16, "bf16 (asked; " + emulated + ")", nil
	case "", "auto":
		switch {
		case !hw:
			return PrecisionFP32, "fp32 (auto: the CPU has " + f.String() + ")", nil
		case !kernel:
			return PrecisionFP32, "fp32 (auto: the CPU has " + f.String() + ", but no bf16 kernel of this build uses it; bf16 would be " + emulated + ")", nil
		}
		return PrecisionBF16, "bf16 (auto: the CPU has " + f.String() + ")", nil
	}
	return PrecisionFP32, "", fmt.Errorf("model: precision %q: want fp32, bf16 or auto", name)
}

// SetPrecision sets the arithmetic of the linear layers' products for
// the following Forward and Backward calls (FP32 until set). A Backward
// must follow a Forward of the same precision. BF16's scratch is
// allocated on the first switch to it and kept.
func (m *Model) SetPrecision(p Precision) {
	m.prec = p
	if p != PrecisionBF16 || m.bf != nil {
		return
	}
	c := m.Config
	largest := c.VocabSize * c.HiddenSize // the head
	for k := 0; k < numProj; k++ {
		in, out := projDims(c, k)
		largest = max(largest, in*out)
	}
	m.bf = &bf16State{w: make([]float32, largest), dy: make([]float32, m.MaxB*m.MaxT*c.HiddenSize)}
}

// Precision returns the precision set by SetPrecision.
func (m *Model) Precision() Precision { return m.prec }

// bf16State is the scratch of BF16 mode.
type bf16State struct {
	w  []float32 // the rounded weight of the current product
	dy []float32 // [n, D] the rounded gradient of the residual stream
}

// bf16Bytes returns the bytes of BF16 mode's scratch (0 until BF16 is
// set).
func (m *Model) bf16Bytes() int64 {
	if m.bf == nil {
		return 0
	}
	return 4 * int64(cap(m.bf.w)+cap(m.bf.dy))
}

// opWeight returns the weight to multiply by for projection k of layer
// li (li < 0: the head, w given): w itself in FP32, or the NF4 weight
// dequantized when w is nil; in BF16, that weight rounded.
func (m *Model) opWeight(li, k int, w []float32) []float32 {
	if w == nil {
		w = m.quant.weight(li, k, m.workers)
		if m.prec == PrecisionBF16 {
			m.roundBF16(w, w) // the dequantization buffer is ours
		}
		return w
	}
	if m.prec != PrecisionBF16 {
		return w
	}
	dst := m.bf.w[:len(w)]
	m.roundBF16(dst, w)
	return dst
}

// roundActs rounds x [n, d], an input of linear layers only, in place
// in BF16 mode.
func (m *Model) roundActs(x []float32, n, d int) {
	if m.prec == PrecisionBF16 {
		m.roundBF16(x[:n*d], x[:n*d])
	}
}

// gradOperand returns the output gradient dy [n, out] as a product
// operand: dy in FP32; in BF16 dy rounded, in place when nothing reads
// dy after the product, otherwise (keep) into scratch.
func (m *Model) gradOperand(dy []float32, n, out int, keep bool) []float32 {
	if m.prec != PrecisionBF16 {
		return dy
	}
	dy = dy[:n*out]
	dst := dy
	if keep {
		dst = m.bf.dy[:n*out]
	}
	m.roundBF16(dst, dy)
	return dst
}

// roundBF16 sets dst to src rounded to bfloat16, the work split among
// the workers in blocks of 4096 values.
func (m *Model) roundBF16(dst, src []float32) {
	const block = 4096
	n := len(dst)
	if n < 4*block || m.workers == 1 {
		roundBF16(dst, src)
		return
	}
	m.parallel((n+block-1)/block, func(_, lo, hi int) {
		roundBF16(dst[lo*block:min(hi*block, n)], src[lo*block:min(hi*block, n)])
	})
}

// RoundBF16 returns v rounded to the nearest bfloat16 (ties to even; NaN
// stays NaN, quieted), as a float32.
func RoundBF16(v float32) float32 { return math.Float32frombits(uint32(f32ToBF16(v)) << 16) }

// roundBF16 sets dst[i] = RoundBF16(src[i]) (src may be dst;
// len(src) ≥ len(dst)).
func roundBF16(dst, src []float32) {
	src = src[:len(dst)]
	i := 0
	if useAVX2 && len(dst) >= 8 {
		i = len(dst) &^ 7
		roundBF16AVX2(&dst[0], &src[0], i)
	}
	for ; i < len(dst); i++ {
		dst[i] = RoundBF16(src[i])
	}
}
