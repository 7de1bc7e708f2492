/*
 * contract.h — the scalar pieces of darn's numerics contract (docs/numerics.md), shared verbatim by the
 * CPU backend (C11) and the HIP kernels (device code), so both produce the same bits by construction.
 *
 * Everything here is integer arithmetic or a single correctly rounded fp32 operation; no function
 * depends on the FPU's rounding mode beyond IEEE round-to-nearest-even, and none lets the compiler
 * contract a multiply and an add (each product is its own statement-level value; builds use
 * -ffp-contract=off / --fmad=false anyway).
 */
#ifndef DARN_CONTRACT_H
#define DARN_CONTRACT_H

#include <stdint.h>
#include <math.h>
#include <string.h>

#include "darn/philox.h" /* DARN_HOST_DEVICE, Philox */
#include "fp8.h"         /* fp8 conversions, scale and amax (docs/numerics.md §9) */

#if !defined(__CUDACC__) && !defined(__HIPCC__) && !defined(__HIP__)
#include <float.h>
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "darn needs FLT_EVAL_METHOD == 0 (fp32 evaluated in fp32, e.g. SSE2 on x86); x87 excess precision breaks the contract"
#endif /* FLT_EVAL_METHOD */
#endif /* !device compiler */

/* ---- bit casts ---------------------------------------------------------------------------------- */
DARN_HOST_DEVICE uint32_t darn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
DARN_HOST_DEVICE float darn_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Canonical NaNs: every NaN a darn call stores is exactly one of these (sign and payload dropped),
 * because vendors disagree on the sign and payload of NaNs made by arithmetic. */
#define DARN_F32_CANONICAL_NAN 0x7FC00000u
#define DARN_F16_CANONICAL_NAN 0x7E00u
#define DARN_BF16_CANONICAL_NAN 0x7FC0u

/* ---- conversions: loads are exact, stores round to nearest even, NaN -> canonical NaN ------------ */
DARN_HOST_DEVICE float darn_bf16_to_f32(uint16_t b) { return darn_bits_f32((uint32_t)b << 16); }

DARN_HOST_DEVICE uint16_t darn_f32_to_bf16(float f)
{
    const uint32_t x = darn_f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)DARN_BF16_CANONICAL_NAN;
    /* round to nearest even on the 16 dropped bits; a carry into the exponent gives inf correctly */
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/* Both f16 conversions are written as selects between candidate results, not branches: on a GPU every
 * lane computes all candidates with no divergent control flow (divergent branches cost AMD saved exec
 * masks in SGPRs, which ran out in the backward kernels). On 2026-11-25 this form was compared with the
 * earlier branchy one for all 2^16 and all 2^32 inputs: identical. */
DARN_HOST_DEVICE float darn_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    const uint32_t mant = h & 0x3FFu;
    const uint32_t sub = darn_f32_bits((float)mant * 5.9604644775390625e-8f) | sign; /* mant * 2^-24, exact */
    const uint32_t special = sign | 0x7F800000u | (mant << 13);                       /* inf, NaN */
    const uint32_t normal = sign | ((exp + 112u) << 23) | (mant << 13);
    return darn_bits_f32(exp == 0 ? sub : exp == 31 ? special : normal);
}

DARN_HOST_DEVICE uint16_t darn_f32_to_f16(float f)
{
    uint32_t x = darn_f32_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7FFFFFFFu;
    /* normal half (|f| >= 2^-14): RNE on the 13 dropped bits */
    const uint32_t xr = x + 0xFFFu + ((x >> 13) & 1u);
    const uint32_t normal = sign | ((xr - (112u << 23)) >> 13);
    /* subnormal half (k * 2^-24) or zero: k = round_even(mant * 2^(exp - 126)); s clamped so that every
     * shift is defined for every input, the result is only selected where 14 <= s <= 24 */
    const uint32_t e = x >> 23;
    const uint32_t s_raw = 126u - e;
    const uint32_t s = s_raw > 24u ? 24u : s_raw < 1u ? 1u : s_raw;
    const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    uint32_t k = m >> s;
    const uint32_t rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    k += (uint32_t)(rem > half) | ((uint32_t)(rem == half) & k & 1u);
    const uint32_t small = (e == 0 || s_raw > 24u) ? sign : (sign | k); /* below 2^-25 (or the tie at it): 0 */
    const uint32_t r = x > 0x7F800000u   ? (uint32_t)DARN_F16_CANONICAL_NAN
                       : x >= 0x477FF000u ? (sign | 0x7C00u) /* >= 65520 (the tie above 65504) -> inf */
                       : x >= 0x38800000u ? normal
                                          : small;
    return (uint16_t)r;
}

/* fp32 store: the value itself, except NaN -> the canonical NaN. */
DARN_HOST_DEVICE float darn_canonical_f32(float f)
{
    return (darn_f32_bits(f) & 0x7FFFFFFFu) > 0x7F800000u ? darn_bits_f32(DARN_F32_CANONICAL_NAN) : f;
}

/* ---- dropout ------------------------------------------------------------------------------------ */
/* Host-computed once per call: keep iff (uint64_t)word >= threshold; threshold = floor(p * 2^32) is
 * exact in double (a power-of-two scaling), 2^32 for p = 1 (nothing kept). scale = (float)(1/(1-p)),
 * 0 for p = 1 (never used). */
typedef struct darn_dropout {
    uint64_t threshold;
    float scale;
} darn_dropout;

DARN_HOST_DEVICE int darn_keep(uint32_t word, uint64_t threshold) { return (uint64_t)word >= threshold; }

/* ---- the options of a call as one word, built once by the plan (src/validate.c) ------------------ */
#define DARN_OPT_LAYER 0x01u    /* LayerNorm (else RMSNorm) */
#define DARN_OPT_ZC 0x02u       /* zero-centered weight: w' = w + 1 */
#define DARN_OPT_ROWSCALE 0x04u /* x is multiplied by rowscale[r] */
#define DARN_OPT_DROPOUT 0x08u  /* p > 0: keep bits are computed and applied */
#define DARN_OPT_RESIDUAL 0x10u /* a residual is added */
#define DARN_OPT_BIAS 0x20u     /* y += b; backward: dbias */
#define DARN_OPT_X1 0x40u       /* parallel residual: x1 is added, with its own keep bits (§4) */
#define DARN_OPT_Y1 0x80u       /* a second output y1 = xhat * w1' [+ b1]; backward: dy1, dweight1 */
#define DARN_OPT_BIAS1 0x100u   /* y1 += b1; backward: dbias1 */
#define DARN_OPT_PARALLEL (DARN_OPT_X1 | DARN_OPT_Y1 | DARN_OPT_BIAS1)

/* The element index of x1's keep bit (§3, §4): x0's index + 2^63. Indices of x0 are below 2^63 (M * N fits
 * int64), so the two streams never share a Philox word. */
#define DARN_X1_INDEX (UINT64_C(1) << 63)

/* ---- per-element formulas (docs/numerics.md §4, §6): the only place each one is written ----------
 * Every kernel and the CPU reference call these, element by element, so all of them round the same
 * operations in the same order. Each statement is one rounding (no contraction: see §1). */

/* §4: h before it is rounded to the residual-out dtype. `keep` / `keep1` are the keep bits of x and x1
 * (ignored without DARN_OPT_DROPOUT); x1 counts only with DARN_OPT_X1. A dropped element is +0 whatever x is
 * (a select, not a multiply). The order is flash-attn's: (x' + x1') + res. */
DARN_HOST_DEVICE float darn_fwd_h(float x, float x1, float res, float rs, uint32_t keep, uint32_t keep1, float scale,
                                  uint32_t opt)
{
    float v = x;
    if (opt & DARN_OPT_ROWSCALE) v = v * rs;
    if (opt & DARN_OPT_DROPOUT) v = keep ? v * scale : 0.0f;
    if (opt & DARN_OPT_X1) {
        float u = x1;
        if (opt & DARN_OPT_DROPOUT) u = keep1 ? u * scale : 0.0f;
        v = v + u;
    }
    if (opt & DARN_OPT_RESIDUAL) v = v + res;
    return v;
}

/* w' of §4: w, or w + 1 for zero-centered weights. */
DARN_HOST_DEVICE float darn_weight(float w, uint32_t opt) { return (opt & DARN_OPT_ZC) ? w + 1.0f : w; }

/* xhat = (hn - mean) * rstd (LayerNorm) or hn * rstd (RMSNorm): the forward's and the backward's. */
DARN_HOST_DEVICE float darn_xhat(float hn, float mean, float rstd, uint32_t opt)
{
    const float d = (opt & DARN_OPT_LAYER) ? hn - mean : hn;
    return d * rstd;
}

/* §4: y = xhat * w' [+ b], with wp = darn_weight(w). */
DARN_HOST_DEVICE float darn_fwd_y(float hn, float mean, float rstd, float wp, float b, uint32_t opt)
{
    const float y = darn_xhat(hn, mean, rstd, opt) * wp;
    return (opt & DARN_OPT_BIAS) ? y + b : y;
}

/* §4: the second output y1 = xhat * w1' [+ b1], wp1 = darn_weight(w1): darn_fwd_y with b1's flag. */
DARN_HOST_DEVICE float darn_fwd_y1(float hn, float mean, float rstd, float wp1, float b1, uint32_t opt)
{
    const float y = darn_xhat(hn, mean, rstd, opt) * wp1;
    return (opt & DARN_OPT_BIAS1) ? y + b1 : y;
}

/* The term each element adds to the forward's row sums: pass 0 is hn^2 (RMSNorm) or hn (LayerNorm),
 * pass 1 (LayerNorm only) is (hn - mean)^2. */
DARN_HOST_DEVICE float darn_fwd_term(float hn, float mean, int pass, uint32_t opt)
{
    if (pass == 1) {
        const float d = hn - mean;
        return d * d;
    }
    return (opt & DARN_OPT_LAYER) ? hn : hn * hn;
}

/* Per row (§4): mean = sum / N and rstd = 1 / sqrt(sum / N + eps); nf = (float)N, rounded to nearest. */
DARN_HOST_DEVICE float darn_row_mean(float sum, float nf) { return sum / nf; }
DARN_HOST_DEVICE float darn_row_rstd(float sum, float nf, float eps) { return 1.0f / sqrtf(sum / nf + eps); }

/* §6: g = gy * w' (wp = darn_weight(w)), and with a second output g + gy1 * w1'; the row sums add xhat * g
 * and (LayerNorm) g. */
DARN_HOST_DEVICE float darn_bwd_g(float gy, float wp, float gy1, float wp1, uint32_t opt)
{
    const float g = gy * wp;
    if (!(opt & DARN_OPT_Y1)) return g;
    const float g1 = gy1 * wp1;
    return g + g1;
}
DARN_HOST_DEVICE float darn_bwd_term(float xhat, float g) { return xhat * g; }

/* §6: dh from the row's c1 = sum(xhat * g) / N and c2 = sum(g) / N (LayerNorm). */
DARN_HOST_DEVICE float darn_bwd_dh(float g, float xhat, float c1, float c2, float rstd, uint32_t opt)
{
    const float xc = xhat * c1;
    const float inner = (opt & DARN_OPT_LAYER) ? xc + c2 : xc;
    return (g - inner) * rstd;
}

/* §6: dx from dh (after dresidual_out is added): the dropout select, then rowscale. */
DARN_HOST_DEVICE float darn_bwd_dx(float dh, uint32_t keep, float scale, float rs, uint32_t opt)
{
    float u = dh;
    if (opt & DARN_OPT_DROPOUT) u = keep ? u * scale : 0.0f;
    if (opt & DARN_OPT_ROWSCALE) u = u * rs;
    return u;
}

/* §6: dx1 from dh (after dresidual_out is added): the dropout select with x1's keep bit (no rowscale). */
DARN_HOST_DEVICE float darn_bwd_dx1(float dh, uint32_t keep1, float scale, uint32_t opt)
{
    return (opt & DARN_OPT_DROPOUT) ? (keep1 ? dh * scale : 0.0f) : dh;
}

/* §6: the dweight term of an element (the dbias term is gy itself). */
DARN_HOST_DEVICE float darn_wgrad_term(float gy, float xhat) { return gy * xhat; }

/* ---- row sums (docs/numerics.md §5): groups of 8, then a pairwise tree over the groups ----------- */
#define DARN_GROUP 8 /* elements per group: one 16-byte load of 16-bit data */

/* ceil(N / 8), for N >= 1 (no overflow for any int64 N). */
DARN_HOST_DEVICE int64_t darn_groups_for(int64_t n) { return n / DARN_GROUP + (n % DARN_GROUP != 0); }

/* ---- column slices (docs/numerics.md §5, "Column slices"): a row's tree from the subtrees of slices ---------
 * A slice of the groups [a, b) of a row of G groups (a, b multiples of nothing in particular; a < b <= G) is cut
 * into nodes of the tree: from i = a on, the node at i has length darn_slice_node_len(i, b), the largest power of
 * two 2^l that divides i (any, for i = 0) with i + 2^l <= b. Each node's value is the tree of §5 over its groups
 * (an aligned power-of-two run is a subtree). darn_tree_* rebuilds the row's sum from all the nodes of a split,
 * in column order, and gives the tree's bits (the proof: docs/numerics.md §5). */
DARN_HOST_DEVICE int64_t darn_slice_node_len(int64_t i, int64_t b)
{
    int64_t len = 1;
    while (len <= (INT64_MAX >> 2) && (i & (2 * len - 1)) == 0 && 2 * len <= b - i) len *= 2;
    return len;
}

/* The number of nodes of the slice [a, b) of groups (0 for a >= b). */
DARN_HOST_DEVICE int64_t darn_slice_nodes(int64_t a, int64_t b)
{
    int64_t k = 0;
    for (int64_t i = a; i < b; i += darn_slice_node_len(i, b)) k++;
    return k;
}

/* A stack of complete subtrees (start, length, value), pushed in column order. Pushing merges a node with its
 * left sibling as soon as both are there; darn_tree_total passes the open right edge up unchanged (a node whose
 * right sibling lies past the row's end keeps its value one level up), which is the tree's rule for a missing
 * partner. 64 levels cover any int64 group count. */
typedef struct darn_tree {
    int64_t start[64], len[64];
    float v[64];
    int top;
} darn_tree;

DARN_HOST_DEVICE void darn_tree_reset(darn_tree *t) { t->top = 0; }

DARN_HOST_DEVICE void darn_tree_push(darn_tree *t, int64_t start, int64_t len, float v)
{
    while (t->top > 0) {
        const int k = t->top - 1; /* left sibling: same length, starts on a 2 * len boundary, ends where we start */
        if (t->len[k] != len || t->start[k] + len != start || (t->start[k] & (2 * len - 1)) != 0) break;
        v = t->v[k] + v;
        start = t->start[k];
        len *= 2;
        t->top--;
    }
    t->start[t->top] = start;
    t->len[t->top] = len;
    t->v[t->top] = v;
    t->top++;
}

DARN_HOST_DEVICE float darn_tree_total(darn_tree *t)
{
    if (t->top == 0) return -0.0f;
    float v = t->v[--t->top];
    while (t->top > 0) v = t->v[--t->top] + v; /* the open right edge, promoted to its left neighbour's level */
    return v;
}

/* The row sum of statistic `stat` of row r from every slice's nodes: gathered [ranks, m, stats, slots] in rank
 * order, the slices' column bounds [ranks + 1] (each bound but the last a multiple of 8; cols.c checks). */
DARN_HOST_DEVICE float darn_cols_total(const int64_t *bounds, int64_t ranks, const float *gathered, int64_t m,
                                       int64_t r, int stat, int stats, int64_t slots)
{
    darn_tree t;
    darn_tree_reset(&t);
    for (int64_t k = 0; k < ranks; k++) {
        const float *v = gathered + ((k * m + r) * stats + stat) * slots;
        const int64_t b = darn_groups_for(bounds[k + 1]);
        for (int64_t i = bounds[k] / DARN_GROUP; i < b; v++) {
            const int64_t len = darn_slice_node_len(i, b);
            darn_tree_push(&t, i, len, *v);
            i += len;
        }
    }
    return darn_tree_total(&t);
}

/* ---- dweight/dbias row chunks (docs/numerics.md §6) ----------------------------------------------- */
#define DARN_WGRAD_BUDGET (INT64_C(1) << 21) /* about this many chunk partials (G * N) per call */

/* Rows per chunk R(M, N) = max(1, floor(M * N / 2^21)) for M >= 0, N >= 1. M * N is computed as
 * floor(M / 2^21) * N + floor((M mod 2^21) * N / 2^21) so that nothing overflows for any M, N >= 1
 * whose product fits int64 (the call validates that); INT64_MAX when even that quotient does not fit. */
DARN_HOST_DEVICE int64_t darn_wgrad_chunk_rows_for(int64_t m, int64_t n)
{
    if (m <= 0 || n <= 0) return 1;
    const int64_t hi = m / DARN_WGRAD_BUDGET, lo = m % DARN_WGRAD_BUDGET; /* m = hi * 2^21 + lo */
    if (hi > 0 && n > INT64_MAX / hi) return INT64_MAX;
    const int64_t a = hi * n; /* floor(m * n / 2^21) = a + floor(lo * n / 2^21), lo < 2^21 */
    const int64_t nq = n / DARN_WGRAD_BUDGET, nr = n % DARN_WGRAD_BUDGET;
    /* lo * n / 2^21 = lo * nq + lo * nr / 2^21, with lo * nr < 2^42 */
    if (nq > 0 && lo > INT64_MAX / nq) return INT64_MAX;
    const int64_t b = lo * nq + (lo * nr) / DARN_WGRAD_BUDGET;
    if (a > INT64_MAX - b) return INT64_MAX;
    const int64_t r = a + b;
    return r < 1 ? 1 : r;
}

/* G(M, N) = ceil(M / R(M, N)), 0 for M <= 0. */
DARN_HOST_DEVICE int64_t darn_wgrad_chunks_for(int64_t m, int64_t n)
{
    if (m <= 0) return 0;
    const int64_t r = darn_wgrad_chunk_rows_for(m, n);
    return m / r + (m % r != 0);
}

#endif /* DARN_CONTRACT_H */
