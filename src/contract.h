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
#include <string.h>

#include "darn/philox.h" /* DARN_HOST_DEVICE, Philox */

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

/* ---- row reduction shape (docs/numerics.md §5) --------------------------------------------------- */
#define DARN_GROUP 8           /* elements per group: one 16-byte load of 16-bit data */
#define DARN_GROUPS_PER_LANE 4 /* target groups per lane when choosing L(N) */
#define DARN_LANES_MIN 64
#define DARN_LANES_MAX 1024

/* L(N) = min(1024, max(64, next_pow2(ceil(ceil(N / 8) / 4)))). Element c belongs to lane (c / 8) % L. */
DARN_HOST_DEVICE int64_t darn_lanes_for(int64_t n)
{
    const int64_t groups = (n + DARN_GROUP - 1) / DARN_GROUP;
    const int64_t want = (groups + DARN_GROUPS_PER_LANE - 1) / DARN_GROUPS_PER_LANE;
    int64_t l = DARN_LANES_MIN;
    while (l < want && l < DARN_LANES_MAX) l *= 2;
    return l;
}

/* ---- dweight/dbias row chunks (docs/numerics.md §6) ----------------------------------------------- */
#define DARN_WGRAD_BUDGET (INT64_C(1) << 21) /* about this many partial sums in all ... */
#define DARN_WGRAD_MIN_CHUNKS 128            /* ... but at least this many chunks (to fill a GPU) */
#define DARN_WGRAD_MAX_CHUNKS 4096           /* ... and at most this many */

/* Rows per chunk R(M, N): Gcap = clamp(2^21 / N, 128, 4096); R = ceil(M / min(M, Gcap)). */
DARN_HOST_DEVICE int64_t darn_wgrad_chunk_rows(int64_t m, int64_t n)
{
    int64_t cap = DARN_WGRAD_BUDGET / n;
    if (cap < DARN_WGRAD_MIN_CHUNKS) cap = DARN_WGRAD_MIN_CHUNKS;
    if (cap > DARN_WGRAD_MAX_CHUNKS) cap = DARN_WGRAD_MAX_CHUNKS;
    if (m <= 0) return 1;
    const int64_t g = m < cap ? m : cap;
    return (m + g - 1) / g;
}

/* G(M, N) = ceil(M / R(M, N)), 0 for M = 0. */
DARN_HOST_DEVICE int64_t darn_wgrad_chunks_for(int64_t m, int64_t n)
{
    if (m <= 0) return 0;
    const int64_t r = darn_wgrad_chunk_rows(m, n);
    return (m + r - 1) / r;
}

#endif /* DARN_CONTRACT_H */
