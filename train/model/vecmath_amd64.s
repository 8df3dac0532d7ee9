//go:build amd64 && !purego

#include "textflag.h"

// AVX2+FMA kernels for vecmath_amd64.go. Eight float32 lanes at a time;
// the Go wrappers handle the tails. eˣ is Cephes' expf as in expf.go:
// x = n·ln2 + r, a degree-6 polynomial for eʳ, 2ⁿ from the exponent
// field; x is clamped above at 88.376 (no overflow) and lanes below
// −87.337 are set to 0. NaN stays NaN.

// log2e = 1.4426950408889634
DATA expc<>+0(SB)/4, $0x3fb8aa3b
DATA expc<>+4(SB)/4, $0x3fb8aa3b
DATA expc<>+8(SB)/4, $0x3fb8aa3b
DATA expc<>+12(SB)/4, $0x3fb8aa3b
DATA expc<>+16(SB)/4, $0x3fb8aa3b
DATA expc<>+20(SB)/4, $0x3fb8aa3b
DATA expc<>+24(SB)/4, $0x3fb8aa3b
DATA expc<>+28(SB)/4, $0x3fb8aa3b
// ln2hi = 0.693359375
DATA expc<>+32(SB)/4, $0x3f318000
DATA expc<>+36(SB)/4, $0x3f318000
DATA expc<>+40(SB)/4, $0x3f318000
DATA expc<>+44(SB)/4, $0x3f318000
DATA expc<>+48(SB)/4, $0x3f318000
DATA expc<>+52(SB)/4, $0x3f318000
DATA expc<>+56(SB)/4, $0x3f318000
DATA expc<>+60(SB)/4, $0x3f318000
// ln2lo = -0.00021219444
DATA expc<>+64(SB)/4, $0xb95e8083
DATA expc<>+68(SB)/4, $0xb95e8083
DATA expc<>+72(SB)/4, $0xb95e8083
DATA expc<>+76(SB)/4, $0xb95e8083
DATA expc<>+80(SB)/4, $0xb95e8083
DATA expc<>+84(SB)/4, $0xb95e8083
DATA expc<>+88(SB)/4, $0xb95e8083
DATA expc<>+92(SB)/4, $0xb95e8083
// maxx = 88.3762626647949
DATA expc<>+96(SB)/4, $0x42b0c0a5
DATA expc<>+100(SB)/4, $0x42b0c0a5
DATA expc<>+104(SB)/4, $0x42b0c0a5
DATA expc<>+108(SB)/4, $0x42b0c0a5
DATA expc<>+112(SB)/4, $0x42b0c0a5
DATA expc<>+116(SB)/4, $0x42b0c0a5
DATA expc<>+120(SB)/4, $0x42b0c0a5
DATA expc<>+124(SB)/4, $0x42b0c0a5
// minx = -87.33654475
DATA expc<>+128(SB)/4, $0xc2aeac50
DATA expc<>+132(SB)/4, $0xc2aeac50
DATA expc<>+136(SB)/4, $0xc2aeac50
DATA expc<>+140(SB)/4, $0xc2aeac50
DATA expc<>+144(SB)/4, $0xc2aeac50
DATA expc<>+148(SB)/4, $0xc2aeac50
DATA expc<>+152(SB)/4, $0xc2aeac50
DATA expc<>+156(SB)/4, $0xc2aeac50
// p0 = 0.000198756915
DATA expc<>+160(SB)/4, $0x39506967
DATA expc<>+164(SB)/4, $0x39506967
DATA expc<>+168(SB)/4, $0x39506967
DATA expc<>+172(SB)/4, $0x39506967
DATA expc<>+176(SB)/4, $0x39506967
DATA expc<>+180(SB)/4, $0x39506967
DATA expc<>+184(SB)/4, $0x39506967
DATA expc<>+188(SB)/4, $0x39506967
// p1 = 0.0013981999507
DATA expc<>+192(SB)/4, $0x3ab743ce
DATA expc<>+196(SB)/4, $0x3ab743ce
DATA expc<>+200(SB)/4, $0x3ab743ce
DATA expc<>+204(SB)/4, $0x3ab743ce
DATA expc<>+208(SB)/4, $0x3ab743ce
DATA expc<>+212(SB)/4, $0x3ab743ce
DATA expc<>+216(SB)/4, $0x3ab743ce
DATA expc<>+220(SB)/4, $0x3ab743ce
// p2 = 0.0083334519073
DATA expc<>+224(SB)/4, $0x3c088908
DATA expc<>+228(SB)/4, $0x3c088908
DATA expc<>+232(SB)/4, $0x3c088908
DATA expc<>+236(SB)/4, $0x3c088908
DATA expc<>+240(SB)/4, $0x3c088908
DATA expc<>+244(SB)/4, $0x3c088908
DATA expc<>+248(SB)/4, $0x3c088908
DATA expc<>+252(SB)/4, $0x3c088908
// p3 = 0.041665795894
DATA expc<>+256(SB)/4, $0x3d2aa9c1
DATA expc<>+260(SB)/4, $0x3d2aa9c1
DATA expc<>+264(SB)/4, $0x3d2aa9c1
DATA expc<>+268(SB)/4, $0x3d2aa9c1
DATA expc<>+272(SB)/4, $0x3d2aa9c1
DATA expc<>+276(SB)/4, $0x3d2aa9c1
DATA expc<>+280(SB)/4, $0x3d2aa9c1
DATA expc<>+284(SB)/4, $0x3d2aa9c1
// p4 = 0.16666665459
DATA expc<>+288(SB)/4, $0x3e2aaaaa
DATA expc<>+292(SB)/4, $0x3e2aaaaa
DATA expc<>+296(SB)/4, $0x3e2aaaaa
DATA expc<>+300(SB)/4, $0x3e2aaaaa
DATA expc<>+304(SB)/4, $0x3e2aaaaa
DATA expc<>+308(SB)/4, $0x3e2aaaaa
DATA expc<>+312(SB)/4, $0x3e2aaaaa
DATA expc<>+316(SB)/4, $0x3e2aaaaa
// p5 = 0.50000001201
DATA expc<>+320(SB)/4, $0x3f000000
DATA expc<>+324(SB)/4, $0x3f000000
DATA expc<>+328(SB)/4, $0x3f000000
DATA expc<>+332(SB)/4, $0x3f000000
DATA expc<>+336(SB)/4, $0x3f000000
DATA expc<>+340(SB)/4, $0x3f000000
DATA expc<>+344(SB)/4, $0x3f000000
DATA expc<>+348(SB)/4, $0x3f000000
// one = 1.0
DATA expc<>+352(SB)/4, $0x3f800000
DATA expc<>+356(SB)/4, $0x3f800000
DATA expc<>+360(SB)/4, $0x3f800000
DATA expc<>+364(SB)/4, $0x3f800000
DATA expc<>+368(SB)/4, $0x3f800000
DATA expc<>+372(SB)/4, $0x3f800000
DATA expc<>+376(SB)/4, $0x3f800000
DATA expc<>+380(SB)/4, $0x3f800000
// 127, the float32 exponent bias (int32 lanes)
DATA expc<>+384(SB)/4, $127
DATA expc<>+388(SB)/4, $127
DATA expc<>+392(SB)/4, $127
DATA expc<>+396(SB)/4, $127
DATA expc<>+400(SB)/4, $127
DATA expc<>+404(SB)/4, $127
DATA expc<>+408(SB)/4, $127
DATA expc<>+412(SB)/4, $127
GLOBL expc<>(SB), RODATA|NOPTR, $416

// LOADC puts the constants used in registers into Y8–Y15.
#define LOADC \
	VMOVUPS expc<>+0(SB), Y8 \
	VMOVUPS expc<>+32(SB), Y9 \
	VMOVUPS expc<>+64(SB), Y10 \
	VMOVUPS expc<>+96(SB), Y11 \
	VMOVUPS expc<>+128(SB), Y12 \
	VMOVUPS expc<>+160(SB), Y13 \
	VMOVUPS expc<>+352(SB), Y14 \
	VMOVUPS expc<>+384(SB), Y15

// EXP sets Y0 = exp(Y0); clobbers Y1–Y4.
#define EXP \
	VMINPS Y0, Y11, Y0 \
	VCMPPS $1, Y12, Y0, Y4 \
	VMULPS Y8, Y0, Y1 \
	VCVTPS2DQ Y1, Y2 \
	VCVTDQ2PS Y2, Y1 \
	VFNMADD231PS Y9, Y1, Y0 \
	VFNMADD231PS Y10, Y1, Y0 \
	VMULPS Y0, Y0, Y3 \
	VMOVAPS Y13, Y1 \
	VFMADD213PS expc<>+192(SB), Y0, Y1 \
	VFMADD213PS expc<>+224(SB), Y0, Y1 \
	VFMADD213PS expc<>+256(SB), Y0, Y1 \
	VFMADD213PS expc<>+288(SB), Y0, Y1 \
	VFMADD213PS expc<>+320(SB), Y0, Y1 \
	VFMADD213PS Y0, Y3, Y1 \
	VADDPS Y14, Y1, Y1 \
	VPADDD Y15, Y2, Y2 \
	VPSLLD $23, Y2, Y2 \
	VMULPS Y2, Y1, Y0 \
	VANDNPS Y0, Y4, Y0

// SIGMOID sets Y0 = 1/(1+exp(−Y6)); clobbers Y1–Y4.
#define SIGMOID \
	VXORPS Y0, Y0, Y0 \
	VSUBPS Y6, Y0, Y0 \
	EXP \
	VADDPS Y14, Y0, Y0 \
	VDIVPS Y0, Y14, Y0

// HSUM sets X5[0] to the sum of Y5's lanes; clobbers Y6.
#define HSUM \
	VEXTRACTF128 $1, Y5, X6 \
	VADDPS X6, X5, X5 \
	VPERMILPS $0x0e, X5, X6 \
	VADDPS X6, X5, X5 \
	VPERMILPS $0x01, X5, X6 \
	VADDSS X6, X5, X5

// func expShiftSumAVX2(dst, src *float32, n int, shift float32) float32
TEXT ·expShiftSumAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y7
	LOADC
	VXORPS Y5, Y5, Y5
expLoop:
	CMPQ CX, $8
	JLT expDone
	VMOVUPS (SI), Y0
	VSUBPS Y7, Y0, Y0
	EXP
	VMOVUPS Y0, (DI)
	VADDPS Y0, Y5, Y5
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP expLoop
expDone:
	HSUM
	VMOVSS X5, ret+32(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y5
	ADDQ $32, SI
	SUBQ $8, CX
maxLoop:
	CMPQ CX, $8
	JLT maxDone
	VMAXPS (SI), Y5, Y5
	ADDQ $32, SI
	SUBQ $8, CX
	JMP maxLoop
maxDone:
	VEXTRACTF128 $1, Y5, X6
	VMAXPS X6, X5, X5
	VPERMILPS $0x0e, X5, X6
	VMAXPS X6, X5, X5
	VPERMILPS $0x01, X5, X6
	VMAXSS X6, X5, X5
	VMOVSS X5, ret+16(FP)
	VZEROUPPER
	RET

// func swigluFwdAVX2(a, gate, up *float32, n int)
TEXT ·swigluFwdAVX2(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	LOADC
fwdLoop:
	CMPQ CX, $8
	JLT fwdDone
	VMOVUPS (SI), Y6
	SIGMOID
	VMULPS Y6, Y0, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP fwdLoop
fwdDone:
	VZEROUPPER
	RET

// func swigluBwdAVX2(da, du, gate, up *float32, n int)
TEXT ·swigluBwdAVX2(SB), NOSPLIT, $0-40
	MOVQ da+0(FP), DI
	MOVQ du+8(FP), R8
	MOVQ gate+16(FP), SI
	MOVQ up+24(FP), DX
	MOVQ n+32(FP), CX
	LOADC
bwdLoop:
	CMPQ CX, $8
	JLT bwdDone
	VMOVUPS (SI), Y6
	SIGMOID
	VMULPS Y6, Y0, Y1
	VMOVUPS (DI), Y2
	VMULPS Y2, Y1, Y3
	VMOVUPS Y3, (R8)
	VSUBPS Y0, Y14, Y3
	VFMADD213PS Y0, Y1, Y3
	VMULPS (DX), Y2, Y2
	VMULPS Y3, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	ADDQ $32, R8
	SUBQ $8, CX
	JMP bwdLoop
bwdDone:
	VZEROUPPER
	RET

// func roundBF16AVX2(dst, src *float32, n int)
// dst[i] = src[i] rounded to bfloat16 (as float32): the bits plus
// 0x7fff plus bit 16, low half cleared (ties to even); NaN lanes take
// the bits with the quiet bit set, low half cleared.
TEXT ·roundBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7fff, AX
	MOVD AX, X10
	VPBROADCASTD X10, Y10 // rounding bias
	MOVL $1, AX
	MOVD AX, X11
	VPBROADCASTD X11, Y11 // 1
	MOVL $0xffff0000, AX
	MOVD AX, X12
	VPBROADCASTD X12, Y12 // high half
	MOVL $0x00400000, AX
	MOVD AX, X13
	VPBROADCASTD X13, Y13 // quiet bit
bfLoop:
	VMOVDQU (SI), Y0
	VPSRLD $16, Y0, Y1
	VPAND Y11, Y1, Y1
	VPADDD Y10, Y1, Y1
	VPADDD Y0, Y1, Y1
	VPAND Y12, Y1, Y1      // rounded
	VCMPPS $3, Y0, Y0, Y2  // unordered: NaN lanes
	VPOR Y13, Y0, Y3
	VPAND Y12, Y3, Y3      // quieted NaN
	VBLENDVPS Y2, Y3, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ bfLoop
	VZEROUPPER
	RET
