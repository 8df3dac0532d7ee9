//go:build amd64 && !purego

package model

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2+FMA kernels of vecmath_amd64.s.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The kernels take n, a multiple of 8 (maxAVX2: at least 8).

//go:noescape
func expShiftSumAVX2(dst, src *float32, n int, shift float32) float32

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func swigluFwdAVX2(a, gate, up *float32, n int)

//go:noescape
func swigluBwdAVX2(da, du, gate, up *float32, n int)

//go:noescape
func roundBF16AVX2(dst, src *float32, n int)
