#!/usr/bin/env python3
"""Emulates the tensor-core attention's warp routine (src/backend/cuda/cuda_attention.cu:
tc_load_q, tc_keys, tc_row_sums and the kernels' output mapping) lane by lane, with the fragment
layouts of mma.sync.m16n8k16 .f16 as the PTX ISA documents them, and checks the result against
softmax attention in float64: a decode warp (one token, the G heads of a group as rows) and a
prefill warp (16 / G consecutive tokens x G heads, each row masked to the keys at or before its
position). It checks the index mapping (which lane loads which dims of which key, the prmt
transposition of V, the masks, the output dims of each accumulator), not the CUDA code itself:
the GPU's test_backend_ops does that. Pure Python, no dependencies.
    python3 scripts/tc_attn_emulate.py"""
import math
import random
import struct

LANES = range(32)


def h(x):  # round to f16
    return struct.unpack('<e', struct.pack('<e', x))[0]


def g_(lane):
    return lane >> 2


def c_(lane):
    return lane & 3


def mma(A, B, C):
    """C[lane] += the lane's part of A B; A[lane]: 4 registers of (lo, hi) halves, B[lane]: 2"""
    Am = [[0.0] * 16 for _ in range(16)]
    Bm = [[0.0] * 8 for _ in range(16)]
    for l in LANES:
        g, t = g_(l), c_(l)
        for r, (row, col) in enumerate([(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8),
                                        (g + 8, 2 * t + 8)]):
            Am[row][col], Am[row][col + 1] = A[l][r]
        for r, k in enumerate([2 * t, 2 * t + 8]):
            Bm[k][g], Bm[k + 1][g] = B[l][r]
    D = [[sum(Am[i][k] * Bm[k][j] for k in range(16)) for j in range(8)] for i in range(16)]
    for l in LANES:
        g, t = g_(l), c_(l)
        C[l][0] += D[g][2 * t]
        C[l][1] += D[g][2 * t + 1]
        C[l][2] += D[g + 8][2 * t]
        C[l][3] += D[g + 8][2 * t + 1]


def warp(q, K, V, HD, lim, scale):
    """the warp over keys 0 .. len(K) - 1; lim[row]: the row's last key (-1: masked out)"""
    kend = len(K) - 1
    sc = scale * 1.4426950408889634  # log2(e) folded into q
    qa = {l: [[None] * 4 for _ in range(HD // 16)] for l in LANES}
    for l in LANES:  # tc_load_q
        c, g = c_(l), g_(l)
        for s in range(HD // 32):
            v = [q[g][32 * s + 8 * c:32 * s + 8 * c + 8], q[g + 8][32 * s + 8 * c:32 * s + 8 * c + 8]]
            for hh in range(2):
                qa[l][2 * s + hh][0] = (h(v[0][4 * hh] * sc), h(v[0][4 * hh + 1] * sc))
                qa[l][2 * s + hh][1] = (h(v[1][4 * hh] * sc), h(v[1][4 * hh + 1] * sc))
                qa[l][2 * s + hh][2] = (h(v[0][4 * hh + 2] * sc), h(v[0][4 * hh + 3] * sc))
                qa[l][2 * s + hh][3] = (h(v[1][4 * hh + 2] * sc), h(v[1][4 * hh + 3] * sc))
    o = {l: [[0.0] * 4 for _ in range(HD // 8)] for l in LANES}
    m = {l: [-math.inf, -math.inf] for l in LANES}
    L = {l: [0.0, 0.0] for l in LANES}
    for kb in range(0, kend + 1, 16):  # tc_keys
        slot = lambda k: min(k, kend)
        kw, vw = {}, {}
        for l in LANES:
            g, c = g_(l), c_(l)
            kw[l] = [[K[slot(kb + 8 * n + g)][32 * s + 8 * c:32 * s + 8 * c + 8]
                      for s in range(HD // 32)] for n in range(2)]
            ks = [kb + 2 * c, kb + 2 * c + 1, kb + 2 * c + 8, kb + 2 * c + 9]
            vw[l] = [[V[slot(k)][64 * d + 8 * g:64 * d + 8 * g + 8] for d in range(HD // 64)]
                     for k in ks]
        S = {l: [[0.0] * 4 for _ in range(2)] for l in LANES}
        for n in range(2):
            for s in range(HD // 32):
                for hh in range(2):
                    A = {l: qa[l][2 * s + hh] for l in LANES}
                    B = {l: [(kw[l][n][s][4 * hh], kw[l][n][s][4 * hh + 1]),
                             (kw[l][n][s][4 * hh + 2], kw[l][n][s][4 * hh + 3])] for l in LANES}
                    mma(A, B, {l: S[l][n] for l in LANES})
        mx = {}
        for l in LANES:
            g, c = g_(l), c_(l)
            mx[l] = [-math.inf, -math.inf]
            for n in range(2):
                for e in range(4):
                    key = kb + 8 * n + 2 * c + (e & 1)
                    if key > (lim[g] if e < 2 else lim[g + 8]):
                        S[l][n][e] = -math.inf
                    mx[l][e >> 1] = max(mx[l][e >> 1], S[l][n][e])
        for r in range(2):  # the row max over the 4 lanes of a group
            red = {l: max(mx[l][r], mx[l ^ 1][r]) for l in LANES}
            red = {l: max(red[l], red[l ^ 2]) for l in LANES}
            for l in LANES:
                mx[l][r] = red[l]
        pa, alpha = {}, {}
        for l in LANES:
            al, mu = [0.0, 0.0], [0.0, 0.0]
            for r in range(2):
                mn = max(m[l][r], mx[l][r])
                mu[r] = 0.0 if mn == -math.inf else mn
                al[r] = 2.0 ** (m[l][r] - mu[r]) if m[l][r] != -math.inf else 0.0
                m[l][r] = mn
            p = [[2.0 ** (S[l][n][e] - mu[e >> 1]) if S[l][n][e] != -math.inf else 0.0
                  for e in range(4)] for n in range(2)]
            L[l][0] = L[l][0] * al[0] + p[0][0] + p[0][1] + p[1][0] + p[1][1]
            L[l][1] = L[l][1] * al[1] + p[0][2] + p[0][3] + p[1][2] + p[1][3]
            pa[l] = [(h(p[0][0]), h(p[0][1])), (h(p[0][2]), h(p[0][3])),
                     (h(p[1][0]), h(p[1][1])), (h(p[1][2]), h(p[1][3]))]
            alpha[l] = al
        for d in range(HD // 64):
            for j in range(8):
                B = {}
                for l in LANES:  # prmt: element j of the four keys' 8-dim loads
                    B[l] = [(vw[l][0][d][j], vw[l][1][d][j]), (vw[l][2][d][j], vw[l][3][d][j])]
                    oo, al = o[l][8 * d + j], alpha[l]
                    oo[0] *= al[0]
                    oo[1] *= al[0]
                    oo[2] *= al[1]
                    oo[3] *= al[1]
                mma(pa, B, {l: o[l][8 * d + j] for l in LANES})
    for r in range(2):  # tc_row_sums
        red = {l: L[l][r] + L[l ^ 1][r] for l in LANES}
        red = {l: red[l] + red[l ^ 2] for l in LANES}
        for l in LANES:
            L[l][r] = red[l]
    O = [[0.0] * HD for _ in range(16)]
    for l in LANES:  # the output mapping of the kernels
        g, c = g_(l), c_(l)
        for r in range(2):
            row = g + 8 * r
            if L[l][r] == 0:
                continue
            for d in range(HD // 64):
                for j in range(8):
                    O[row][64 * d + 16 * c + j] = o[l][8 * d + j][2 * r] / L[l][r]
                    O[row][64 * d + 16 * c + 8 + j] = o[l][8 * d + j][2 * r + 1] / L[l][r]
    return O


def check(name, HD, G, NK, prefill, seed):
    random.seed(seed)
    scale = 1 / math.sqrt(HD)
    K = [[h(random.uniform(-1, 1)) for _ in range(HD)] for _ in range(NK)]
    V = [[h(random.uniform(-1, 1)) for _ in range(HD)] for _ in range(NK)]
    if prefill:  # tokens at positions NK - tpw .. NK - 1; rows past tpw * G are padding
        tpw = 16 // G
        lim = [NK - tpw + r // G if r < tpw * G else -1 for r in range(16)]
    else:
        lim = [NK - 1 if r < G else -1 for r in range(16)]
    q = [[random.uniform(-2, 2) if lim[r] >= 0 else 0.0 for _ in range(HD)] for r in range(16)]
    if not prefill:  # decode: padding rows are scored too (q = 0), their output unused
        lim = [NK - 1] * 16
    O = warp(q, K, V, HD, lim, scale)
    num = den = 0.0
    for r in range(16):
        if not any(q[r]):
            continue
        S = [sum(q[r][d] * K[k][d] for d in range(HD)) * scale for k in range(lim[r] + 1)]
        mx = max(S)
        P = [math.exp(x - mx) for x in S]
        z = sum(P)
        for d in range(HD):
            ref = sum(P[k] / z * V[k][d] for k in range(len(S)))
            num += (O[r][d] - ref) ** 2
            den += ref * ref
    err = math.sqrt(num / den)
    print('tc attention %s: head_dim %d, G %d, %d keys: relative error %.3g (f16 q and P)'
          % (name, HD, G, NK, err))
    assert err < 2e-3, 'the fragment mapping is wrong'


check('decode', 128, 4, 45, False, 1)
check('decode', 64, 3, 37, False, 2)
check('prefill', 128, 4, 29, True, 3)
check('prefill', 64, 3, 21, True, 4)
