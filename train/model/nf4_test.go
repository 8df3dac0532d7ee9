package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestNF4Golden compares QuantizeNF4 and Dequantize bit for bit with the
// NumPy reference (testdata/nf4_reference.py, bitsandbytes' semantics).
func TestNF4Golden(t *testing.T) {
	st, err := OpenSafetensors(filepath.Join("testdata", "nf4_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	read := func(name string) []float32 {
		v, _, err := st.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, name := range []string{"normal", "student", "edge", "pairs"} {
		x := read(name + ".x")
		bs := int(read(name + ".blocksize")[0])
		q, err := QuantizeNF4(x, []int{len(x)}, bs)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range read(name + ".packed") {
			if int(q.Codes[i]) != int(v) {
				t.Fatalf("%s: byte %d = %#02x, reference %#02x", name, i, q.Codes[i], int(v))
			}
		}
		codes := read(name + ".codes")
		for i, v := range codes {
			c := q.Codes[i/2] >> 4
			if i%2 == 1 {
				c = q.Codes[i/2] & 15
			}
			if int(c) != int(v) {
				t.Fatalf("%s: code %d = %d, reference %d (x %g)", name, i, c, int(v), x[i])
			}
		}
		if d := maxAbsDiff(q.Absmax, read(name+".absmax")); d != 0 || len(q.Absmax) != len(read(name+".absmax")) {
			t.Fatalf("%s: absmax differs by %g", name, d)
		}
		xhat := make([]float32, len(x))
		q.Dequantize(xhat)
		want := read(name + ".xhat")
		for i := range want {
			if math.Float32bits(xhat[i]) != math.Float32bits(want[i]) && !(xhat[i] == 0 && want[i] == 0) {
				t.Fatalf("%s: dequantized %d = %g, reference %g", name, i, xhat[i], want[i])
			}
		}
		// The parallel dequantization gives the same values.
		par := make([]float32, len(x))
		q.dequantize(par, 3)
		if d := maxAbsDiff(par, xhat); d != 0 {
			t.Fatalf("%s: parallel dequantization differs by %g", name, d)
		}
		t.Logf("%s: %d values, block %d, %d bytes: codes, scales and values match", name, len(x), bs, q.Bytes())
	}
}

// TestNF4Index: the thresholds are the midpoints of adjacent values,
// every NF4 value maps to its own code, and the code is the nearest
// value's.
func TestNF4Index(t *testing.T) {
	for i, th := range nf4Thresholds {
		if mid := (float64(nf4Values[i]) + float64(nf4Values[i+1])) / 2; math.Abs(mid-float64(th)) > 1e-7 {
			t.Errorf("threshold %d = %g, midpoint %g", i, th, mid)
		}
		if nf4Index(th) != byte(i) || nf4Index(math.Nextafter32(th, 2)) != byte(i+1) {
			t.Errorf("threshold %d: %g → %d, just above → %d", i, th, nf4Index(th), nf4Index(math.Nextafter32(th, 2)))
		}
	}
	for i, v := range nf4Values {
		if nf4Index(v) != byte(i) {
			t.Errorf("value %g → code %d, want %d", v, nf4Index(v), i)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 10000 {
		x := float32(2*r.Float64() - 1)
		best := 0
		for j, v := range nf4Values {
			if math.Abs(float64(x-v)) < math.Abs(float64(x-nf4Values[best])) {
				best = j
			}
		}
		if got := nf4Index(x); int(got) != best {
			t.Fatalf("%g → code %d, nearest is %d", x, got, best)
		}
	}
	if nf4Index(float32(math.NaN())) != 0 || nf4Index(-5) != 0 || nf4Index(5) != 15 {
		t.Error("NaN or out-of-range values")
	}
}

// TestNF4RoundTrip: the error of every value is at most half the
// largest gap between NF4 values times its block's absmax; each block's
// largest value is exact; layout of a 2-D tensor.
func TestNF4RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	rows, cols := 37, 24
	x := randVec(r, rows*cols, 0.05)
	q, err := QuantizeNF4(x, []int{rows, cols}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if q.BlockSize != 64 || len(q.Codes) != rows*cols/2 || len(q.Absmax) != (rows*cols+63)/64 || q.Len() != rows*cols {
		t.Fatalf("layout: block %d, %d bytes, %d scales", q.BlockSize, len(q.Codes), len(q.Absmax))
	}
	y := make([]float32, len(x))
	q.Dequantize(y)
	const halfGap = (1 - 0.6961928009986877) / 2
	for i := range x {
		s := q.Absmax[i/64]
		if d := math.Abs(float64(x[i] - y[i])); d > halfGap*float64(s)*(1+1e-6) {
			t.Fatalf("value %d: %g → %g (absmax %g)", i, x[i], y[i], s)
		}
		if float32(math.Abs(float64(x[i]))) == s && x[i] != y[i] {
			t.Fatalf("block maximum %g → %g", x[i], y[i])
		}
	}
}

func TestNF4Errors(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	for _, c := range []struct {
		x     []float32
		shape []int
		bs    int
	}{
		{x, []int{4}, 3}, {x, []int{4}, -2}, {x, []int{5}, 64},
		{[]float32{1, float32(math.NaN())}, []int{2}, 2}, {[]float32{float32(math.Inf(1))}, []int{1}, 2},
	} {
		if _, err := QuantizeNF4(c.x, c.shape, c.bs); err == nil {
			t.Errorf("%v %v block %d: no error", c.x, c.shape, c.bs)
		}
	}
}
