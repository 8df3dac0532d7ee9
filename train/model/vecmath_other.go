//go:build !amd64 || purego

package model

// useAVX2 is false: only the Go loops of vecmath.go run.
const useAVX2 = false

func expShiftSumAVX2(dst, src *float32, n int, shift float32) float32 { panic("unreachable") }
func maxAVX2(x *float32, n int) float32                               { panic("unreachable") }
func swigluFwdAVX2(a, gate, up *float32, n int)                       { panic("unreachable") }
func swigluBwdAVX2(da, du, gate, up *float32, n int)                  { panic("unreachable") }
func roundBF16AVX2(dst, src *float32, n int)                          { panic("unreachable") }
