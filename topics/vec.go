package topics

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// Vec32 is a float32 slice that JSON encodes compactly and exactly: as
// base64 of its values in little-endian IEEE 754 binary32. Models carry
// their centroids, idf weights and SVD basis in this form.
type Vec32 []float32

// MarshalJSON writes the base64 string.
func (v Vec32) MarshalJSON() ([]byte, error) {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads the base64 string.
func (v *Vec32) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("vector: want a base64 string: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("vector: %w", err)
	}
	if len(b)%4 != 0 {
		return fmt.Errorf("vector: %d bytes is not a whole number of float32 values", len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	*v = out
	return nil
}

// axpy64 sets y += a·x (gonum's assembly kernel).
func axpy64(a float64, x, y []float64) { blasF64.Daxpy(len(x), a, x, 1, y, 1) }

// axpy32 sets y += a·x (gonum's assembly kernel).
func axpy32(a float32, x, y []float32) { blasF32.Saxpy(len(x), a, x, 1, y, 1) }

var (
	blasF64 = blas64.Implementation()
	blasF32 = blas32.Implementation()
)

// dot is the inner product of two vectors of equal length (gonum's
// assembly kernel).
func dot(a, b []float32) float32 { return blasF32.Sdot(len(a), a, 1, b[:len(a)], 1) }

// normalize scales v to unit length in place and returns its former
// length; a zero vector stays zero.
func normalize(v []float32) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := math.Sqrt(ss)
	if n == 0 {
		return 0
	}
	inv := float32(1 / n)
	for i := range v {
		v[i] *= inv
	}
	return n
}

// unitRows copies vectors into one row-major block of unit rows. Every
// vector must have length dim.
func unitRows(vecs [][]float32, dim int) ([]float32, error) {
	out := make([]float32, len(vecs)*dim)
	for i, v := range vecs {
		if len(v) != dim {
			return nil, fmt.Errorf("vector %d has %d dimensions, want %d", i, len(v), dim)
		}
		row := out[i*dim : (i+1)*dim]
		copy(row, v)
		for _, x := range row {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("vector %d is not finite", i)
			}
		}
		normalize(row)
	}
	return out, nil
}

// splitmix64 is a 64-bit mixing function (the finaliser of SplitMix64).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fnv1a hashes b with FNV-1a 64 starting from seed-dependent state.
func fnv1a(seed uint64, b []byte) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// U32 is a uint32 slice that JSON encodes as base64 of its values, little
// endian.
type U32 []uint32

// MarshalJSON writes the base64 string.
func (v U32) MarshalJSON() ([]byte, error) {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads the base64 string.
func (v *U32) UnmarshalJSON(data []byte) error {
	var f Vec32
	if err := f.UnmarshalJSON(data); err != nil {
		return err
	}
	out := make([]uint32, len(f))
	for i, x := range f {
		out[i] = math.Float32bits(x)
	}
	*v = out
	return nil
}
