#!/usr/bin/env python3
"""Emulates the tensor-core attention's warp routine (src/backend/cuda/cuda_attention.cu:
tc_load_q, tc_keys, tc_row_sums, the decode kernel's output mapping) lane by lane, with the
fragment layouts of mma.sync.m16n8k16 .f16 as the PTX ISA documents them, and checks the result
against softmax attention in float64. It checks the index mapping (which lane loads which dims of
which key, the prmt transposition of V, the output dims of each accumulator), not the CUDA code
itself: the GPU's test_backend_ops does that. Pure Python, no dependencies.
    python3 scripts/tc_attn_emulate.py"""
import math
import random
import struct

random.seed(1)
HD, G, NK = 128, 4, 45  # the 8B shape's head_dim and group; 45 keys: a masked partial block


def h(x):  # round to f16
    return struct.unpack('<e', struct.pack('<e', x))[0]


q = [[random.uniform(-2, 2) if r < G else 0.0 for _ in range(HD)] for r in range(16)]
K = [[h(random.uniform(-1, 1)) for _ in range(HD)] for _ in range(NK)]
V = [[h(random.uniform(-1, 1)) for _ in range(HD)] for _ in range(NK)]
scale = 1 / math.sqrt(HD)
sc = scale * 1.4426950408889634
lanes = range(32)
def g_(l): return l >> 2
def c_(l): return l & 3
def mma(A, B, C):
    # A[lane] = 4 regs each (lo, hi); B[lane] = 2 regs; C[lane] = 4 floats (in place)
    Am = [[0.0] * 16 for _ in range(16)]
    Bm = [[0.0] * 8 for _ in range(16)]
    for l in lanes:
        g, t = g_(l), c_(l)
        for r, (row, col) in enumerate([(g, 2*t), (g+8, 2*t), (g, 2*t+8), (g+8, 2*t+8)]):
            Am[row][col], Am[row][col + 1] = A[l][r]
        for r, k in enumerate([2*t, 2*t+8]):
            Bm[k][g], Bm[k + 1][g] = B[l][r]
    D = [[sum(Am[i][k] * Bm[k][j] for k in range(16)) for j in range(8)] for i in range(16)]
    for l in lanes:
        g, t = g_(l), c_(l)
        C[l][0] += D[g][2*t]; C[l][1] += D[g][2*t+1]; C[l][2] += D[g+8][2*t]; C[l][3] += D[g+8][2*t+1]
# tc_load_q
qa = {l: [[None]*4 for _ in range(HD//16)] for l in lanes}
for l in lanes:
    c = c_(l); g = g_(l)
    for s in range(HD//32):
        v = [q[g][32*s+8*c:32*s+8*c+8], q[g+8][32*s+8*c:32*s+8*c+8]]
        for hh in range(2):
            qa[l][2*s+hh][0] = (h(v[0][4*hh]*sc), h(v[0][4*hh+1]*sc))
            qa[l][2*s+hh][1] = (h(v[1][4*hh]*sc), h(v[1][4*hh+1]*sc))
            qa[l][2*s+hh][2] = (h(v[0][4*hh+2]*sc), h(v[0][4*hh+3]*sc))
            qa[l][2*s+hh][3] = (h(v[1][4*hh+2]*sc), h(v[1][4*hh+3]*sc))
o = {l: [[0.0]*4 for _ in range(HD//8)] for l in lanes}
m = {l: [-math.inf, -math.inf] for l in lanes}; L = {l: [0.0, 0.0] for l in lanes}
kend = NK - 1
for kb in range(0, NK, 16):
    slot = lambda k: min(k, kend)
    kw = {}; vw = {}
    for l in lanes:
        g, c = g_(l), c_(l)
        kw[l] = [[K[slot(kb+8*n+g)][32*s+8*c:32*s+8*c+8] for s in range(HD//32)] for n in range(2)]
        ks = [kb+2*c, kb+2*c+1, kb+2*c+8, kb+2*c+9]
        vw[l] = [[V[slot(k)][64*d+8*g:64*d+8*g+8] for d in range(HD//64)] for k in ks]
    S = {l: [[0.0]*4 for _ in range(2)] for l in lanes}
    for n in range(2):
        for s in range(HD//32):
            for hh in range(2):
                A = {l: qa[l][2*s+hh] for l in lanes}
                B = {l: [(kw[l][n][s][4*hh], kw[l][n][s][4*hh+1]),
                         (kw[l][n][s][4*hh+2], kw[l][n][s][4*hh+3])] for l in lanes}
                Cn = {l: S[l][n] for l in lanes}
                mma(A, B, Cn)
    mx = {}
    for l in lanes:
        c = c_(l); mx[l] = [-math.inf, -math.inf]
        for n in range(2):
            for e in range(4):
                key = kb + 8*n + 2*c + (e & 1)
                if key > kend: S[l][n][e] = -math.inf
                mx[l][e >> 1] = max(mx[l][e >> 1], S[l][n][e])
    for r in range(2):
        red = {l: max(mx[l][r], mx[l ^ 1][r]) for l in lanes}
        red = {l: max(red[l], red[l ^ 2]) for l in lanes}
        for l in lanes: mx[l][r] = red[l]
    P = {}; pa = {}
    for l in lanes:
        al = [0, 0]; mu = [0, 0]
        for r in range(2):
            mn = max(m[l][r], mx[l][r]); mu[r] = 0.0 if mn == -math.inf else mn
            al[r] = 2.0 ** (m[l][r] - mu[r]); m[l][r] = mn
        p = [[2.0 ** (S[l][n][e] - mu[e >> 1]) for e in range(4)] for n in range(2)]
        L[l][0] = L[l][0]*al[0] + p[0][0]+p[0][1]+p[1][0]+p[1][1]
        L[l][1] = L[l][1]*al[1] + p[0][2]+p[0][3]+p[1][2]+p[1][3]
        pa[l] = [(h(p[0][0]), h(p[0][1])), (h(p[0][2]), h(p[0][3])), (h(p[1][0]), h(p[1][1])), (h(p[1][2]), h(p[1][3]))]
        P[l] = al
    for d in range(HD//64):
        for j in range(8):
            B = {}
            for l in lanes:
                # prmt: element j of key rows (j>>1 word, j&1 half): b0 = (key0, key1), b1 = (key2, key3)
                B[l] = [(vw[l][0][d][j], vw[l][1][d][j]), (vw[l][2][d][j], vw[l][3][d][j])]
                oo = o[l][8*d+j]; al = P[l]
                oo[0] *= al[0]; oo[1] *= al[0]; oo[2] *= al[1]; oo[3] *= al[1]
            mma(pa, B, {l: o[l][8*d+j] for l in lanes})
for r in range(2):
    red = {l: L[l][r] + L[l ^ 1][r] for l in lanes}
    red = {l: red[l] + red[l ^ 2] for l in lanes}
    for l in lanes: L[l][r] = red[l]
O = [[0.0] * HD for _ in range(16)]
for l in lanes:
    g, c = g_(l), c_(l)
    for r in range(2):
        row = g + 8*r
        for d in range(HD//64):
            for j in range(8):
                O[row][64*d+16*c+j] = o[l][8*d+j][2*r] / L[l][r]
                O[row][64*d+16*c+8+j] = o[l][8*d+j][2*r+1] / L[l][r]
num = den = 0.0
for r in range(G):
    S = [sum(q[r][d] * K[k][d] for d in range(HD)) * scale for k in range(NK)]
    mx = max(S)
    P = [math.exp(x - mx) for x in S]
    z = sum(P)
    for d in range(HD):
        ref = sum(P[k] / z * V[k][d] for k in range(NK))
        num += (O[r][d] - ref) ** 2
        den += ref * ref
err = math.sqrt(num / den)
print('tc attention layout, %d keys, head_dim %d, %d heads: relative error %.3g (f16 q and P)'
      % (NK, HD, G, err))
assert err < 2e-3, 'the fragment mapping is wrong'
