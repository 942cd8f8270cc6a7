#!/usr/bin/env python3
"""Writes MLX affine quantization fixtures for tests/unit/test_mlx_quant.c.

For each (input dtype, bits, group size) one small matrix whose rows cover the cases MLX's
quantizer treats specially: ordinary random weights, wide and tiny ranges, all-positive and
all-negative groups, constant groups (zero range: the 1e-7 scale floor), all-zero groups
(q0 == 0: bias 0), groups whose edge is the max rather than the min. mlx.core.quantize gives
the packed weights, scales and biases; mlx.core.dequantize gives the dequantized matrix.

Files: cases.tsv (name dtype bits group_size rows k) and, per case, NAME.bin holding, in order,
w [rows][k] (dtype), wq [rows][k*bits/32] (u32), scales and biases [rows][k/group] (dtype),
deq [rows][k] (dtype), all little-endian.

Usage: /tmp/mlxvenv/bin/python scripts/golden/make_mlx_quant_golden.py [OUT_DIR]
(needs `pip install "mlx[cpu]"`; fixtures were made with mlx 0.32.4 on Linux CPU).
"""
import os
import sys

import mlx.core as mx
import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "tests", "golden", "mlx_quant")
ROWS, K = 8, 256


def make_matrix(rng):
    w = np.zeros((ROWS, K), dtype=np.float32)
    w[0] = rng.standard_normal(K) * 0.02
    w[1] = rng.uniform(-10, 10, K)
    w[2] = rng.uniform(0.5, 1.5, K)            # all positive: edge is the max
    w[3] = -rng.uniform(1e-4, 3e-3, K)         # all negative, small
    w[4, :] = 0.37                             # constant groups
    w[4, 64:128] = -2.5
    w[4, 128:192] = rng.uniform(-1, 1, 64)
    w[5, :] = 0.0                              # zero groups, then tiny values
    w[5, 128:] = rng.standard_normal(128) * 1e-8
    w[6] = rng.standard_normal(K) * 4 + 1      # mixed signs, max edge
    w[6, ::17] = 30.0                          # outliers
    w[7] = np.round(rng.standard_normal(K) * 8) / 8  # values on a grid: ties in rounding
    return w


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261125)
    lines = []
    for dname, dt in (("f32", mx.float32), ("f16", mx.float16), ("bf16", mx.bfloat16)):
        for bits in (2, 3, 4, 5, 6, 8):
            for gs in (32, 64, 128):
                w = mx.array(make_matrix(rng)).astype(dt)
                wq, s, b = mx.quantize(w, group_size=gs, bits=bits)
                deq = mx.dequantize(wq, s, b, group_size=gs, bits=bits)
                mx.eval(wq, s, b, deq)
                assert wq.dtype == mx.uint32 and wq.shape == (ROWS, K * bits // 32)
                assert s.dtype == dt and b.dtype == dt and deq.dtype == dt
                name = f"{dname}_b{bits}_g{gs}"
                with open(os.path.join(OUT, name + ".bin"), "wb") as f:
                    for a in (w, wq, s, b, deq):
                        f.write(bytes(memoryview(a)))
                lines.append(f"{name}\t{dname}\t{bits}\t{gs}\t{ROWS}\t{K}")
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# name dtype bits group_size rows k (mlx %s)\n" % mx.__version__)
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
