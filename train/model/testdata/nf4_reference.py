#!/usr/bin/env python3
"""NumPy reference of NF4 blockwise quantization for sieve's train/model (nf4.go).

Writes nf4_golden.safetensors, which nf4_test.go compares with QuantizeNF4 and
Dequantize bit for bit:

    /usr/bin/python3 nf4_reference.py

The semantics are bitsandbytes' CUDA kernels (csrc/kernels.cu,
kQuantizeBlockwise/kDequantizeBlockwise with NF4), written here without its
decision tree so that the Go code is checked against a second formulation:

    the tensor, flattened, is cut into blocks of `blocksize` values
    absmax_b = max |x| over block b                                  (float32)
    code     = #{thresholds t : x * (1/absmax_b) > t}                (float32 product,
               thresholds = dQuantizeNF4's constants)                 searchsorted)
    packed   = code[2i] << 4 | code[2i+1]                            (0 past the end)
    x_hat    = NF4[code] * absmax_b                                   (float32)

A block of zeros gets 1/absmax = 0, hence code 7 (the value 0); bitsandbytes
computes 0 * inf = NaN there, code 0, and dequantizes to -1 * 0 = -0.

The script also checks that the thresholds are the midpoints of adjacent NF4
values and that the codes are the nearest NF4 value (argmin of the distance)
everywhere except on a threshold itself, where the lower code wins.

Each case <c> in the file holds:
    <c>.x [n] F32        input values
    <c>.blocksize [] I64
    <c>.codes [n] I64    unpacked 4-bit codes
    <c>.packed [ceil(n/2)] I64  packed bytes
    <c>.absmax [nb] F32
    <c>.xhat [n] F32     dequantized values
"""
import json
import os
import sys
from decimal import Decimal, getcontext

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ beside the golden files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity import write_safetensors  # noqa: E402

# bitsandbytes' NF4 values (dDequantizeNF4) and dQuantizeNF4 thresholds, float32.
NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], np.float32)
getcontext().prec = 50
THRESHOLD_LITERALS = [  # as written in dQuantizeNF4, float literals ("...f")
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]


def f32_literal(s):
    """The float32 nearest to the decimal s, as a C compiler reads "<s>f".

    np.float32(float(s)) rounds twice (decimal -> float64 -> float32), which
    differs here: the literals are float32 midpoints printed to 16-17 digits,
    so their float64 value is exactly halfway between two float32 values.
    """
    d = Decimal(s)
    a = np.float32(float(s))
    best = None
    for c in (np.nextafter(a, np.float32(-2)), a, np.nextafter(a, np.float32(2))):
        e = abs(Decimal(float(c)) - d)
        if best is None or e < best[0]:
            best = (e, c)
    return best[1]


THRESHOLDS = np.array([f32_literal(s) for s in THRESHOLD_LITERALS], np.float32)


def quantize(x, blocksize):
    x = np.asarray(x, np.float32)
    n = x.size
    nb = -(-n // blocksize)
    padded = np.zeros(nb * blocksize, np.float32)
    padded[:n] = x
    blocks = padded.reshape(nb, blocksize)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    inv = np.zeros_like(absmax)
    nz = absmax > 0
    inv[nz] = np.float32(1) / absmax[nz]
    normed = (blocks * inv[:, None]).astype(np.float32)
    codes = np.searchsorted(THRESHOLDS, normed.ravel(), side="left").astype(np.int64)[:n]
    # Nearest-value check (float64 distances): differs only on a threshold.
    nearest = np.abs(normed.ravel()[:n, None].astype(np.float64) - NF4[None, :].astype(np.float64)).argmin(axis=1)
    off = np.nonzero(nearest != codes)[0]
    for i in off:
        v = normed.ravel()[i]
        assert np.min(np.abs(THRESHOLDS.astype(np.float64) - v)) < 1e-7, (i, v, codes[i], nearest[i])
    pc = np.zeros(2 * ((n + 1) // 2), np.int64)
    pc[:n] = codes
    packed = (pc[0::2] << 4) | pc[1::2]
    xhat = (NF4[codes] * np.repeat(absmax, blocksize)[:n]).astype(np.float32)
    return codes, packed, absmax, xhat, len(off)


def cases():
    rng = np.random.default_rng(20240601)
    out = {}
    # Llama-like weights, an odd length (the last byte half used, the last block short).
    out["normal"] = (rng.normal(0, 0.02, 1001).astype(np.float32), 64)
    # Heavy tails, larger blocks.
    out["student"] = ((rng.standard_t(3, 4096) * 0.05).astype(np.float32), 128)
    # Hand-made: a zero block; values exactly on every threshold and on every
    # NF4 value (absmax 1, so they normalize to themselves); just above the
    # thresholds; +-absmax; tiny values; a negative absmax.
    edge = np.zeros(16, np.float32)
    on = np.concatenate([[1.0], THRESHOLDS]).astype(np.float32)  # 16 values, absmax 1
    above = np.concatenate([[1.0], np.nextafter(THRESHOLDS, np.float32(2))]).astype(np.float32)
    values = np.concatenate([[-1.0], NF4[1:]]).astype(np.float32)
    tiny = np.array([3e-38, -3e-38, 1e-45, 0, 2e-30] + [0] * 10 + [1e-30], np.float32)
    neg = np.array([-7.5, 1, -1, 3.75, -3.75, 0.5, 2, -2, 7.4, 0, 6, -6, 1e-3, 5, -5, 4], np.float32)
    out["edge"] = (np.concatenate([edge, on, above, values, tiny, neg]), 16)
    # Block size 2: every pair has its own scale.
    out["pairs"] = (rng.normal(0, 1, 10).astype(np.float32), 2)
    return out


def main():
    double = sum(np.float32(float(v)) != t for v, t in zip(THRESHOLD_LITERALS, THRESHOLDS))
    print(json.dumps(dict(thresholds_differing_from_double_rounding=int(double))))
    assert np.all(np.abs((NF4[:-1].astype(np.float64) + NF4[1:]) / 2 - THRESHOLDS) < 1e-7), "thresholds are midpoints"
    tensors, summary = {}, {}
    for name, (x, bs) in cases().items():
        codes, packed, absmax, xhat, ties = quantize(x, bs)
        tensors.update({f"{name}.x": x, f"{name}.blocksize": np.array(bs, np.int64), f"{name}.codes": codes,
                        f"{name}.packed": packed, f"{name}.absmax": absmax, f"{name}.xhat": xhat})
        err = np.abs(x - xhat) / np.repeat(np.maximum(absmax, 1e-30), bs)[:x.size]
        summary[name] = dict(n=int(x.size), blocksize=bs, on_threshold=ties, max_err_over_absmax=float(err.max()))
    write_safetensors("nf4_golden.safetensors", tensors, {"generator": "nf4_reference.py", "numpy": np.__version__})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
