package model

// NF4, the 4-bit NormalFloat data type of QLoRA (Dettmers et al., 2023,
// "QLoRA: Efficient Finetuning of Quantized LLMs"), as bitsandbytes
// implements it (csrc/kernels.cu: kQuantizeBlockwise with dQuantizeNF4,
// kDequantizeBlockwise with dDequantizeNF4):
//
//	the tensor, flattened row-major, is cut into blocks of BlockSize values;
//	absmax_b = max |x| over block b
//	code(x)  = the index of the NF4 value nearest to x·(1/absmax_b), by
//	           bitsandbytes' thresholds (midpoints of adjacent values; a
//	           value exactly on a threshold takes the lower code)
//	x̂        = nf4Values[code]·absmax_b
//
// Two codes share a byte, the first element in the high nibble. A block
// of zeros gets code 7 (the value 0), where bitsandbytes, dividing by
// zero, gets code 0 and the value −1·0; both dequantize to zero.
// Double quantization of the absmax constants is not implemented: the
// scales cost 32/BlockSize bits per value (0.5 at the default 64).

import (
	"fmt"
	"math"
)

// DefaultNF4BlockSize is the block size of bitsandbytes' 4-bit
// quantization (bnb_4bit blocksize 64).
const DefaultNF4BlockSize = 64

// nf4Values are the 16 NormalFloat4 values, as bitsandbytes stores them
// (float32): quantiles of N(0, 1) scaled to [−1, 1], with an exact 0.
var nf4Values = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// nf4Thresholds[i] separates codes i and i+1: the constants of
// bitsandbytes' dQuantizeNF4 decision tree, rounded from decimal to
// float32 directly as a C compiler reads "...f" literals (each is a
// float32 midpoint printed to 16 digits, so rounding through float64
// would land on the other side for four of them).
var nf4Thresholds = [15]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// nf4Index returns the code of a normalized value: the number of
// thresholds below x (four comparisons, as bitsandbytes' tree). NaN
// gives 0, as there.
func nf4Index(x float32) byte {
	t := &nf4Thresholds
	var i byte
	if x > t[7] {
		i = 8
	}
	if x > t[i+3] {
		i += 4
	}
	if x > t[i+1] {
		i += 2
	}
	if x > t[i] {
		i++
	}
	return i
}

// nf4Pairs maps a byte to the two values it encodes (high nibble first).
var nf4Pairs = func() (p [256][2]float32) {
	for b := range p {
		p[b] = [2]float32{nf4Values[b>>4], nf4Values[b&15]}
	}
	return p
}()

// NF4 is a tensor stored in 4-bit NormalFloat with one float32 absmax
// scale per block of BlockSize consecutive values (row-major order).
type NF4 struct {
	Shape     []int     // e.g. [out, in] for a linear weight
	BlockSize int       // values per scale; positive and even
	Codes     []byte    // ⌈n/2⌉ bytes; value 2i in the high nibble of byte i, 2i+1 in the low one (0 past the end)
	Absmax    []float32 // ⌈n/BlockSize⌉ scales
}

// QuantizeNF4 quantizes x, a tensor of the given shape, to NF4 with
// blocks of blockSize values (0 means DefaultNF4BlockSize). blockSize
// must be even so that no byte straddles two blocks; bitsandbytes uses
// powers of two from 64 to 4096. Values must be finite.
func QuantizeNF4(x []float32, shape []int, blockSize int) (*NF4, error) {
	if blockSize == 0 {
		blockSize = DefaultNF4BlockSize
	}
	if blockSize < 0 || blockSize%2 != 0 {
		return nil, fmt.Errorf("model: NF4 block size %d must be positive and even", blockSize)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(x) {
		return nil, fmt.Errorf("model: NF4: shape %v holds %d values, got %d", shape, n, len(x))
	}
	q := &NF4{
		Shape:     append([]int(nil), shape...),
		BlockSize: blockSize,
		Codes:     make([]byte, (n+1)/2),
		Absmax:    make([]float32, (n+blockSize-1)/blockSize),
	}
	for b := range q.Absmax {
		lo, hi := b*blockSize, min((b+1)*blockSize, n)
		var amax float32
		for _, v := range x[lo:hi] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("model: NF4: value %g at %d is not finite", v, lo)
			}
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		q.Absmax[b] = amax
		var inv float32 // a block of zeros: every value normalizes to 0
		if amax > 0 {
			inv = 1 / amax
		}
		for i := lo; i < hi; i++ {
			c := nf4Index(x[i] * inv)
			if i%2 == 0 {
				q.Codes[i/2] = c << 4
			} else {
				q.Codes[i/2] |= c
			}
		}
	}
	return q, nil
}

// Len returns the number of values.
func (q *NF4) Len() int {
	n := 1
	for _, d := range q.Shape {
		n *= d
	}
	return n
}

// Bytes returns the storage held: codes and scales.
func (q *NF4) Bytes() int64 { return int64(len(q.Codes)) + 4*int64(len(q.Absmax)) }

// Dequantize sets dst (Len values) to the dequantized tensor.
func (q *NF4) Dequantize(dst []float32) { q.dequantize(dst, 1) }

// dequantize splits the blocks among workers goroutines.
func (q *NF4) dequantize(dst []float32, workers int) {
	n := q.Len()
	if len(dst) < n {
		panic(fmt.Sprintf("model: NF4 dequantize: %d values into %d", n, len(dst)))
	}
	bs := q.BlockSize
	parallelFor(workers, len(q.Absmax), func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			s := q.Absmax[b]
			e0, e1 := b*bs, min((b+1)*bs, n)
			codes := q.Codes[e0/2 : e1/2] // whole bytes; e0 is even
			out := dst[e0:e1]
			for j, c := range codes {
				v := &nf4Pairs[c]
				out[2*j] = v[0] * s
				out[2*j+1] = v[1] * s
			}
			if e1%2 == 1 { // the last value of an odd-sized tensor
				out[len(out)-1] = nf4Values[q.Codes[e1/2]>>4] * s
			}
		}
	})
}
