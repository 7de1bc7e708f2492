/*
 * fp8.h — the fp8 pieces of darn's numerics contract (docs/numerics.md §9): fp32 <-> fp8 conversions in
 * the four encodings darn stores, the per-tensor scale multiply and the amax term. Host + device
 * (DARN_HOST_DEVICE, as in contract.h, which includes this header): the CPU reference uses them now, GPU
 * kernels are to call the same functions (or instructions checked equal to them over all inputs).
 *
 * Encodings (S = sign bit, E = exponent field, M = mantissa field; code = S.E.M, 8 bits):
 *
 *   name      E  M  bias  max finite      NaN codes           inf     -0     min subnormal
 *   e4m3fn    4  3   7    448  (S.1111.110)  S.1111.111        none    0x80   2^-9
 *   e5m2      5  2  15    57344 (S.11110.11) S.11111.{01,10,11} S.11111.00  0x80   2^-16
 *   e4m3fnuz  4  3   8    240  (S.1111.111)  0x80 only         none    none   2^-10
 *   e5m2fnuz  5  2  16    57344 (S.11111.11) 0x80 only         none    none   2^-17
 *
 * Every function is integer arithmetic on the fp32 bits plus selects (no branches on GPU lanes, as with
 * darn_f32_to_f16): nothing depends on an FPU mode, a denormal setting or a compiler's choice.
 *
 * Encode (fp32 -> fp8), for every fp32 bit pattern f:
 *   - NaN (any sign, any payload) -> the canonical NaN of the encoding: e4m3fn 0x7F, e5m2 0x7E, FNUZ 0x80.
 *   - |f| >= max finite (including +-inf) -> +-max finite (saturation; e5m2's inf codes are never made).
 *   - otherwise round to nearest, ties to even, to the representable magnitudes (subnormals included);
 *     below max nothing can round past max, since max is representable.
 *   - a result of magnitude 0 keeps the sign in the OCP encodings (+0 -> 0x00, -0 and negatives that
 *     round to 0 -> 0x80) and is 0x00 in the FNUZ encodings (no negative zero there).
 *   - fp32 subnormals and every |f| <= half the smallest fp8 subnormal round to (signed) zero; exactly half
 *     is a tie and goes to the even code, zero.
 * Decode (fp8 -> fp32) is exact for every non-NaN code (every fp8 value is an fp32 value); every NaN code
 * decodes to the canonical fp32 NaN 0x7FC00000, and e5m2's S.11111.00 to +-inf.
 */
#ifndef DARN_FP8_H
#define DARN_FP8_H

#include <stdint.h>
#include <string.h>

#include "darn/darn.h"   /* the DARN_FP8_* dtypes */
#include "darn/philox.h" /* DARN_HOST_DEVICE */

/* Canonical NaN codes: the one NaN each encoding stores (sign and payload of the input dropped). */
#define DARN_E4M3FN_CANONICAL_NAN 0x7Fu
#define DARN_E5M2_CANONICAL_NAN 0x7Eu   /* the top byte of f16's canonical NaN 0x7E00 */
#define DARN_FNUZ_NAN 0x80u             /* the only NaN of e4m3fnuz and e5m2fnuz */
/* Largest finite magnitude codes. */
#define DARN_E4M3FN_MAX_CODE 0x7Eu      /* 448 */
#define DARN_E5M2_MAX_CODE 0x7Bu        /* 57344 */
#define DARN_E4M3FNUZ_MAX_CODE 0x7Fu    /* 240 */
#define DARN_E5M2FNUZ_MAX_CODE 0x7Fu    /* 57344 */

DARN_HOST_DEVICE uint32_t darn_fp8_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
DARN_HOST_DEVICE float darn_fp8_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The generic encoder: `m` mantissa bits (2 or 3), exponent `bias`, the largest finite magnitude code
 * `max_code`, the NaN code, and `fnuz` (no negative zero). Called only through the four wrappers below,
 * whose constant arguments fold away. */
DARN_HOST_DEVICE uint8_t darn_f32_to_fp8_generic(float f, uint32_t m, uint32_t bias, uint32_t max_code,
                                                 uint32_t nan_code, uint32_t fnuz)
{
    const uint32_t x = darn_fp8_f32_bits(f);
    const uint32_t sign = (x >> 24) & 0x80u;
    const uint32_t a = x & 0x7FFFFFFFu;
    const uint32_t sh = 23u - m; /* fp32 mantissa bits dropped by a normal fp8 */
    /* fp32 bits of the largest finite value and of the smallest normal 2^(1 - bias) */
    const uint32_t max_bits = (((max_code >> m) + 127u - bias) << 23) | ((max_code & ((1u << m) - 1u)) << sh);
    const uint32_t min_normal_bits = (128u - bias) << 23;
    /* normal fp8: RNE on the `sh` dropped bits, then re-bias the exponent (a carry into it is right) */
    const uint32_t ar = a + ((1u << (sh - 1u)) - 1u) + ((a >> sh) & 1u);
    const uint32_t normal = (ar >> sh) - ((127u - bias) << m);
    /* subnormal fp8 (or zero): k = RNE(|f| / 2^(1 - bias - m)) in [0, 2^m]; k = 2^m is the smallest normal.
     * |f| = q * 2^(e - 150) with q the 24-bit significand, so k = RNE(q / 2^s), s = 151 - bias - m - e.
     * s is clamped so that every shift is defined for every input; the result is used only where
     * a < min_normal_bits, i.e. s >= 24 - m; s = 25 (also every fp32 subnormal, e = 0) gives 0. */
    const uint32_t e = a >> 23;
    const uint32_t s_raw = 151u - bias - m - e; /* wraps for large e: clamped below, never selected */
    const uint32_t s = s_raw > 25u ? 25u : s_raw < 1u ? 1u : s_raw;
    const uint32_t q = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t k = q >> s;
    const uint32_t rem = q & ((1u << s) - 1u), half = 1u << (s - 1u);
    k += (uint32_t)(rem > half) | ((uint32_t)(rem == half) & k & 1u);
    const uint32_t mag = a >= max_bits ? max_code : a >= min_normal_bits ? normal : k;
    const uint32_t signed_code = (fnuz && mag == 0u) ? 0u : (sign | mag);
    return (uint8_t)(a > 0x7F800000u ? nan_code : signed_code);
}

DARN_HOST_DEVICE uint8_t darn_f32_to_e4m3fn(float f)
{
    return darn_f32_to_fp8_generic(f, 3u, 7u, DARN_E4M3FN_MAX_CODE, DARN_E4M3FN_CANONICAL_NAN, 0u);
}
DARN_HOST_DEVICE uint8_t darn_f32_to_e5m2(float f)
{
    return darn_f32_to_fp8_generic(f, 2u, 15u, DARN_E5M2_MAX_CODE, DARN_E5M2_CANONICAL_NAN, 0u);
}
DARN_HOST_DEVICE uint8_t darn_f32_to_e4m3fnuz(float f)
{
    return darn_f32_to_fp8_generic(f, 3u, 8u, DARN_E4M3FNUZ_MAX_CODE, DARN_FNUZ_NAN, 1u);
}
DARN_HOST_DEVICE uint8_t darn_f32_to_e5m2fnuz(float f)
{
    return darn_f32_to_fp8_generic(f, 2u, 16u, DARN_E5M2FNUZ_MAX_CODE, DARN_FNUZ_NAN, 1u);
}

/* The generic decoder: every non-NaN code exactly; `kind` 0 = e4m3fn (S.1111.111 is NaN), 1 = e5m2
 * (E = 31: inf or NaN), 2 = FNUZ (0x80 is NaN). */
DARN_HOST_DEVICE float darn_fp8_to_f32_generic(uint8_t c, uint32_t m, uint32_t bias, uint32_t kind)
{
    const uint32_t sign = (uint32_t)(c & 0x80u) << 24;
    const uint32_t emax = (1u << (7u - m)) - 1u;
    const uint32_t ef = ((uint32_t)c >> m) & emax;
    const uint32_t mf = (uint32_t)c & ((1u << m) - 1u);
    /* subnormal: mf * 2^(1 - bias - m), exact (mf < 8; the power of two is a normal fp32) */
    const float unit = darn_fp8_bits_f32((128u - bias - m) << 23);
    const uint32_t sub = darn_fp8_f32_bits((float)mf * unit) | sign;
    const uint32_t normal = sign | ((ef + 127u - bias) << 23) | (mf << (23u - m));
    const uint32_t finite = ef == 0u ? sub : normal;
    const uint32_t is_nan = kind == 0u ? (uint32_t)((c & 0x7Fu) == 0x7Fu)
                            : kind == 1u ? (uint32_t)(ef == emax && mf != 0u)
                                         : (uint32_t)(c == 0x80u);
    const uint32_t is_inf = kind == 1u && ef == emax && mf == 0u;
    return darn_fp8_bits_f32(is_nan ? 0x7FC00000u : is_inf ? (sign | 0x7F800000u) : finite);
}

DARN_HOST_DEVICE float darn_e4m3fn_to_f32(uint8_t c) { return darn_fp8_to_f32_generic(c, 3u, 7u, 0u); }
DARN_HOST_DEVICE float darn_e5m2_to_f32(uint8_t c) { return darn_fp8_to_f32_generic(c, 2u, 15u, 1u); }
DARN_HOST_DEVICE float darn_e4m3fnuz_to_f32(uint8_t c) { return darn_fp8_to_f32_generic(c, 3u, 8u, 2u); }
DARN_HOST_DEVICE float darn_e5m2fnuz_to_f32(uint8_t c) { return darn_fp8_to_f32_generic(c, 2u, 16u, 2u); }

/* The code of v in fp8 dtype dt (a DARN_FP8_* value; darn.h's enum, as an int for device code). */
DARN_HOST_DEVICE uint8_t darn_f32_to_fp8(float v, int dt)
{
    return dt == DARN_FP8_E4M3FN    ? darn_f32_to_e4m3fn(v)
           : dt == DARN_FP8_E5M2    ? darn_f32_to_e5m2(v)
           : dt == DARN_FP8_E4M3FNUZ ? darn_f32_to_e4m3fnuz(v)
                                     : darn_f32_to_e5m2fnuz(v);
}
/* Whether dtype dt is one of the fp8 ones. */
DARN_HOST_DEVICE int darn_is_fp8(int dt) { return dt >= DARN_FP8_E4M3FN && dt <= DARN_FP8_E5M2FNUZ; }

/* §9: the value an fp8 output encodes: y * scale, one fp32 multiply (nothing to contract it with). */
DARN_HOST_DEVICE float darn_fp8_scaled(float y, float scale) { return y * scale; }

/* §9: an element's amax term, as bits: |y| (the sign bit cleared, no arithmetic), NaN -> 0x7FC00000.
 * For these non-negative patterns uint32 order is the float order with NaN above +inf, so amax is the
 * uint32 maximum of the terms (start: 0, i.e. +0): exact, and the same in any order or grouping. */
DARN_HOST_DEVICE uint32_t darn_amax_term(float y)
{
    const uint32_t a = darn_fp8_f32_bits(y) & 0x7FFFFFFFu;
    return a > 0x7F800000u ? 0x7FC00000u : a;
}
DARN_HOST_DEVICE uint32_t darn_amax_combine(uint32_t a, uint32_t b) { return a > b ? a : b; }

#endif /* DARN_FP8_H */
