package model

import "math"

// expf returns eˣ in float32 arithmetic, within 2 ulp of the correctly
// rounded result (Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, a
// degree-6 polynomial for eʳ, the exponent field for 2ⁿ). It is several
// times faster than math.Exp, which works in float64; the softmaxes, the
// cross-entropy and SwiGLU spend their time here. Results below the
// smallest normal float32 flush to 0; above the largest finite one it
// returns +Inf; NaN gives NaN.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
		maxX  = 88.72283905206835 // ln(MaxFloat32)
		minX  = -87.33654475      // ln(smallest normal)
		magic = 12582912          // 1.5·2²³: adding it rounds to an integer
	)
	if !(x < maxX) { // also NaN
		if x != x {
			return x
		}
		return float32(math.Inf(1))
	}
	if x < minX {
		return 0
	}
	t := x*log2e + magic
	n := int32(math.Float32bits(t)&0x7fffff) - 0x400000 // t − magic, as an integer
	fn := t - magic
	r := x - fn*ln2hi - fn*ln2lo
	z := r * r
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*z + r + 1
	if n <= -126 { // 2ⁿ is subnormal: scale in two steps
		return p * math.Float32frombits(uint32(n+126+127)<<23) * 0x1p-126
	}
	if n == 128 { // 2ⁿ overflows though the result does not
		return p * 0x1p127 * 2
	}
	return p * math.Float32frombits(uint32(n+127)<<23)
}

// sigmoidf returns 1/(1+e⁻ˣ) in float32 arithmetic.
func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }
