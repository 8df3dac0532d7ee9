package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVecmath checks the vector kernels (assembly where the CPU has it,
// Go loops for the tails) against float64 formulas, over lengths that
// exercise both, with values across exp's range and its edges.
func TestVecmath(t *testing.T) {
	t.Logf("AVX2 kernels: %v", useAVX2)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 33, 4099} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 20)
		}
		x[r.IntN(n)] = -200 // underflows to 0
		// maxf
		want := x[0]
		for _, v := range x {
			want = max(want, v)
		}
		if got := maxf(x); got != want {
			t.Errorf("n %d: maxf %v, want %v", n, got, want)
		}
		// expShiftSum, out of place and in place
		shift := float32(3)
		dst := make([]float32, n)
		sum := expShiftSum(dst, x, shift)
		var want64 float64
		for i, v := range x {
			e := math.Exp(float64(v - shift))
			want64 += e
			if e < 1e-37 {
				e = 0
			}
			if d := math.Abs(float64(dst[i]) - e); d > 3e-7*e {
				t.Fatalf("n %d: exp(%v) = %v, want %v", n, v-shift, dst[i], e)
			}
		}
		if d := math.Abs(float64(sum) - want64); d > 1e-5*want64+1e-37 {
			t.Errorf("n %d: sum %v, want %v", n, sum, want64)
		}
		cp := append([]float32(nil), x...)
		if s2 := expShiftSum(cp, cp, shift); s2 != sum || cp[n-1] != dst[n-1] {
			t.Errorf("n %d: in place differs", n)
		}
		// SwiGLU
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i], u[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64())
		}
		g[0] = -100
		a, da, du := make([]float32, n), make([]float32, n), make([]float32, n)
		swigluForward(a, g, u)
		for i := range da {
			da[i] = float32(r.NormFloat64())
		}
		d0 := append([]float32(nil), da...)
		swigluBackward(da, du, g, u)
		for i := range g {
			gv, uv, dv := float64(g[i]), float64(u[i]), float64(d0[i])
			s := 1 / (1 + math.Exp(-gv))
			wa, wdu, wdg := gv*s*uv, dv*gv*s, dv*uv*s*(1+gv*(1-s))
			for _, c := range [][3]float64{{float64(a[i]), wa, 0}, {float64(du[i]), wdu, 1}, {float64(da[i]), wdg, 2}} {
				if d := math.Abs(c[0] - c[1]); d > 2e-5*math.Abs(c[1])+1e-6 {
					t.Fatalf("n %d, g %v u %v: swiglu output %v = %v, want %v", n, gv, uv, c[2], c[0], c[1])
				}
			}
		}
	}
	// NaN propagates through the exponential.
	x := make([]float32, 16)
	x[5] = float32(math.NaN())
	if s := expShiftSum(x, x, 0); s == s || x[5] == x[5] || x[4] != 1 {
		t.Errorf("NaN: sum %v, x %v", s, x)
	}
}

func BenchmarkVecmath(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200)*0.1 - 15
	}
	dst := make([]float32, len(x))
	b.Run("expShiftSum", func(b *testing.B) {
		for b.Loop() {
			expShiftSum(dst, x, 1)
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*len(x)), "ns/elem")
	})
	b.Run("swigluBackward", func(b *testing.B) {
		u := make([]float32, len(x))
		for b.Loop() {
			swigluBackward(dst, u, x, x)
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*len(x)), "ns/elem")
	})
}
