/*
 * group8.h — one group of 8 columns (docs/numerics.md §5) of one tensor: load, widen to fp32, round,
 * store, and the group's keep bits, behind two dtype policies that the kernel bodies take as a type:
 *
 * - darn_dt_static<X, R, RO, W, O>: dtypes known at compile time, raw 16-byte words that can all be issued
 *   before any of them is used, no bounds checks. Needs N % 8 == 0 and every tensor 16-byte aligned
 *   (src/dispatch.c decides).
 * - darn_dt_runtime: dtypes read from the views, any N and alignment (16-byte loads where a view allows
 *   them, element loads at the row's end and elsewhere).
 *
 * Roles name the dtype slot of a tensor: forward x, residual, residual-out (h), weight (= bias), out; the
 * backward's tensors map to the same slots (dx = X, dresidual = R, h and dresidual_out = RO, dy = O).
 * Both policies round exactly as src/contract.h says; they differ only in how bytes move.
 */
#ifndef DARN_HIP_GROUP8_H
#define DARN_HIP_GROUP8_H

#include <type_traits>

#include "args.h"
#include "compat.h"
#include "contract.h"
#include "darn/darn.h"
#include "dispatch.h" /* DARN_DT_FP8 */

enum { DARN_ROLE_X = 0, DARN_ROLE_R = 1, DARN_ROLE_RO = 2, DARN_ROLE_W = 3, DARN_ROLE_O = 4 };
enum { DARN_LD_RO = 0, DARN_LD_RW = 1, DARN_LD_LAST = 2 }; /* read-only cache / coherent / evict-first */

/* darn_unroll<N>(f) calls f(darn_idx<0>{}), …, f(darn_idx<N-1>{}): a loop over register arrays whose
 * index is a compile-time constant by construction (`#pragma unroll` is only a hint, and a run-time index
 * puts the array in scratch / local memory). */
template <int I> struct darn_idx {
    static constexpr int value = I;
};
template <int I, int N, typename F> __device__ __forceinline__ void darn_unroll_from(F &f)
{
    if constexpr (I < N) {
        f(darn_idx<I>{});
        darn_unroll_from<I + 1, N>(f);
    }
}
template <int N, typename F> __device__ __forceinline__ void darn_unroll(F &&f) { darn_unroll_from<0, N>(f); }

__device__ __forceinline__ uint32_t darn_word_of(const uint4 &q, int i)
{
    return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w;
}

template <int MODE> __device__ __forceinline__ uint4 darn_ld16(const uint4 *p)
{
    if constexpr (MODE == DARN_LD_RO) return DARN_LDG(p);
    else if constexpr (MODE == DARN_LD_LAST) return DARN_LD_STREAM(p);
    else return *p;
}
template <bool STREAM> __device__ __forceinline__ void darn_st16(uint4 *p, uint4 v)
{
    if constexpr (STREAM) DARN_ST_STREAM(p, v);
    else *p = v;
}

/* Element e of a 16-bit group packed in one 16-byte word. */
__device__ __forceinline__ uint16_t darn_half_of(const uint4 &q, int e)
{
    return (uint16_t)(darn_word_of(q, e / 2) >> (16 * (e % 2)));
}

/* f[e], f[e + 1] rounded as a store to dt and widened back (§4's hn = load(store(h))). For f32 that is f
 * itself but for a NaN's payload, which no stored bit can see (every store canonicalizes NaNs, and nothing
 * branches on a float): the kernels skip the canonicalization there, and the 16-bit round trips leave a
 * NaN's bits to the hardware (compat.h's _raw conversions). */
__device__ __forceinline__ void darn_round_pair(float &lo, float &hi, int dt)
{
    if (dt == DARN_F32) return;
    if (dt == DARN_F16) {
        const uint32_t u = darn_pack_f16x2_raw(lo, hi);
        lo = darn_widen_f16((uint16_t)u), hi = darn_widen_f16((uint16_t)(u >> 16));
    } else {
        const uint32_t u = darn_pack_bf16x2_raw(lo, hi);
        lo = darn_bits_f32(u << 16), hi = darn_bits_f32(u & 0xFFFF0000u);
    }
}
/* A 16-bit float of dt widened (exact). */
__device__ __forceinline__ float darn_widen16(uint16_t u, int dt)
{
    return dt == DARN_F16 ? darn_widen_f16(u) : darn_bf16_to_f32(u);
}
/* f[2i], f[2i + 1] stored as 16-bit floats of dt, packed (canonical NaNs). */
__device__ __forceinline__ uint32_t darn_pack16x2(float lo, float hi, int dt)
{
    return dt == DARN_F16 ? darn_pack_f16x2(lo, hi) : darn_pack_bf16x2(lo, hi);
}

/* The fp8 codes (§9) of f[0 … 7] in encoding dt (a DARN_FP8_* value, uniform across the wave), packed in
 * increasing column: one switch per group, so each encoding's code is straight-line. */
__device__ __forceinline__ void darn_fp8_pack8(const float (&f)[8], int dt, uint32_t (&u)[2])
{
    auto pack = [&](auto enc) {
        u[0] = u[1] = 0u;
#pragma unroll
        for (int e = 0; e < 8; e++) u[e / 4] |= (uint32_t)enc(f[e]) << (8 * (e % 4));
    };
#if DARN_HAVE_HW_FP8 && DARN_FP8_HW_CVT /* compat.h: only after the exhaustive check */
    if (dt == DARN_FP8_E4M3FN || dt == DARN_FP8_E5M2) {
        const bool e5m2 = dt == DARN_FP8_E5M2;
#pragma unroll
        for (int i = 0; i < 2; i++)
            u[i] = darn_hw_fp8x2(f[4 * i], f[4 * i + 1], e5m2) | darn_hw_fp8x2(f[4 * i + 2], f[4 * i + 3], e5m2) << 16;
        return;
    }
#endif /* DARN_HAVE_HW_FP8 && DARN_FP8_HW_CVT */
    switch (dt) {
    case DARN_FP8_E4M3FN: pack([](float v) { return darn_f32_to_e4m3fn(v); }); break;
    case DARN_FP8_E5M2: pack([](float v) { return darn_f32_to_e5m2(v); }); break;
    case DARN_FP8_E4M3FNUZ: pack([](float v) { return darn_f32_to_e4m3fnuz(v); }); break;
    default: pack([](float v) { return darn_f32_to_e5m2fnuz(v); }); break;
    }
}

/* Keep bits (bit e) of elements i0 … i0 + 7 (§3). The 8 words are words s … s + 7 of Philox blocks i0/4,
 * i0/4 + 1, i0/4 + 2 with s = i0 % 4; selects keep every index compile-time (no scratch). */
__device__ __forceinline__ uint32_t darn_keep8(uint64_t seed, uint64_t offset, uint64_t i0, uint64_t threshold)
{
    const uint64_t q = i0 >> 2;
    const unsigned s = (unsigned)(i0 & 3);
    const darn_philox_ctr b0 = darn_philox_block(seed, offset, q);
    const darn_philox_ctr b1 = darn_philox_block(seed, offset, q + 1);
    darn_philox_ctr b2 = b1;
    if (s != 0) b2 = darn_philox_block(seed, offset, q + 2);
    const uint32_t w[12] = {b0.v[0], b0.v[1], b0.v[2], b0.v[3], b1.v[0], b1.v[1],
                            b1.v[2], b1.v[3], b2.v[0], b2.v[1], b2.v[2], b2.v[3]};
    uint32_t bits = 0;
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const uint32_t word = s == 0 ? w[e] : s == 1 ? w[e + 1] : s == 2 ? w[e + 2] : w[e + 3];
        bits |= (uint32_t)darn_keep(word, threshold) << e;
    }
    return bits;
}

/* The same when i0 % 8 == 0 (every group of a row with N % 8 == 0): blocks i0/4 and i0/4 + 1, with the
 * threshold as 32 bits and a mask for p = 1: word >= t as a 64-bit comparison is word >= (uint32)t for
 * t < 2^32 and false for t = 2^32 (one comparison per word instead of two). */
__device__ __forceinline__ uint32_t darn_keep8_aligned(uint64_t seed, uint64_t offset, uint64_t i0, const darn_rng_args &g)
{
    const darn_philox_ctr b0 = darn_philox_block(seed, offset, i0 >> 2);
    const darn_philox_ctr b1 = darn_philox_block(seed, offset, (i0 >> 2) + 1);
    uint32_t bits = 0;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        bits |= (uint32_t)(b0.v[e] >= g.threshold32) << e;
        bits |= (uint32_t)(b1.v[e] >= g.threshold32) << (e + 4);
    }
    return bits & g.keep_mask;
}

/* A group's raw words of ROLE in the kernels that have that tensor (ON), an empty struct in the others. */
struct darn_no_raw {};
template <class Dt, int ROLE, bool ON>
using darn_raw_if = typename std::conditional<ON, typename Dt::template raw<ROLE>, darn_no_raw>::type;

/* ---- compile-time dtypes ------------------------------------------------------------------------- */
/* O_ may be DARN_DT_FP8 (forward only): out is one byte per element in the fp8 encoding of the out view's dtype. */
template <int X_, int R_, int RO_, int W_, int O_> struct darn_dt_static {
    static constexpr bool is_static = true;
    template <int ROLE> __host__ __device__ static constexpr int dt()
    {
        return ROLE == DARN_ROLE_X ? X_ : ROLE == DARN_ROLE_R ? R_ : ROLE == DARN_ROLE_RO ? RO_ : ROLE == DARN_ROLE_W ? W_ : O_;
    }
    template <int ROLE> __host__ __device__ static constexpr int words() { return dt<ROLE>() == DARN_F32 ? 2 : 1; }
    template <int ROLE> struct raw {
        uint4 q[words<ROLE>()];
    };

    template <int ROLE> __host__ __device__ static constexpr int64_t bytes()
    {
        return dt<ROLE>() == DARN_F32 ? 4 : dt<ROLE>() == DARN_DT_FP8 ? 1 : 2;
    }
    /* Group j of row r: 16-byte aligned (8-byte for fp8). */
    template <int ROLE> static __device__ __forceinline__ const uint4 *at(const darn_view &v, int64_t r, int64_t j)
    {
        return (const uint4 *)((const char *)v.p + (r * v.stride + j * 8) * bytes<ROLE>());
    }
    template <int ROLE, int MODE = DARN_LD_RO>
    static __device__ __forceinline__ void load(raw<ROLE> &w, const darn_view &v, int64_t r, int64_t j, int64_t)
    {
        const uint4 *p = at<ROLE>(v, r, j);
#pragma unroll
        for (int i = 0; i < words<ROLE>(); i++) w.q[i] = darn_ld16<MODE>(p + i);
    }
    template <int ROLE> static __device__ __forceinline__ void cvt(float (&f)[8], const raw<ROLE> &w, const darn_view &)
    {
#pragma unroll
        for (int e = 0; e < 8; e++) {
            if constexpr (dt<ROLE>() == DARN_F32) f[e] = darn_bits_f32(darn_word_of(w.q[e / 4], e % 4));
            else f[e] = darn_widen16(darn_half_of(w.q[0], e), dt<ROLE>());
        }
    }
    template <int ROLE> static __device__ __forceinline__ void round(float (&f)[8], const darn_view &)
    {
#pragma unroll
        for (int e = 0; e < 8; e += 2) darn_round_pair(f[e], f[e + 1], dt<ROLE>());
    }
    template <int ROLE, bool STREAM = false>
    static __device__ __forceinline__ void store(const darn_view &v, int64_t r, int64_t j, int64_t, const float (&f)[8])
    {
        uint4 *p = (uint4 *)at<ROLE>(v, r, j);
        uint32_t u[8];
        if constexpr (dt<ROLE>() == DARN_DT_FP8) { /* f holds y * scale (§9) */
            uint32_t c[2];
            darn_fp8_pack8(f, v.dt, c);
            *(uint2 *)p = make_uint2(c[0], c[1]);
        } else if constexpr (dt<ROLE>() == DARN_F32) {
#pragma unroll
            for (int e = 0; e < 8; e++) u[e] = darn_f32_bits(darn_canonical_f32(f[e]));
            darn_st16<STREAM>(p, make_uint4(u[0], u[1], u[2], u[3]));
            darn_st16<STREAM>(p + 1, make_uint4(u[4], u[5], u[6], u[7]));
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++) u[i] = darn_pack16x2(f[2 * i], f[2 * i + 1], dt<ROLE>());
            darn_st16<STREAM>(p, make_uint4(u[0], u[1], u[2], u[3]));
        }
    }
    static __device__ __forceinline__ uint32_t keep8(uint64_t seed, uint64_t offset, uint64_t i0, const darn_rng_args &g)
    {
        return darn_keep8_aligned(seed, offset, i0, g);
    }
    /* Elements of group j that exist: all 8 (N % 8 == 0). */
    static __device__ __forceinline__ int valid(int64_t, int64_t) { return 8; }
};

/* ---- run-time dtypes ----------------------------------------------------------------------------- */
struct darn_dt_runtime {
    static constexpr bool is_static = false;
    template <int ROLE> struct raw {
        float f[8];
    };

    static __device__ __forceinline__ const char *row_of(const darn_view &v, int64_t r)
    {
        return (const char *)v.p + r * v.stride * (v.dt == DARN_F32 ? 4 : darn_is_fp8(v.dt) ? 1 : 2);
    }
    template <int MODE> static __device__ __forceinline__ float ld1(const darn_view &v, const char *row, int64_t c)
    {
        if (v.dt == DARN_F32) {
            const float *p = (const float *)row + c;
            if constexpr (MODE == DARN_LD_RO) return DARN_LDG(p);
            else return *p;
        }
        const uint16_t *p = (const uint16_t *)row + c;
        uint16_t u;
        if constexpr (MODE == DARN_LD_RO) u = DARN_LDG(p);
        else u = *p;
        return darn_widen16(u, v.dt);
    }
    /* Group j of row r, 0 past N. */
    template <int ROLE, int MODE = DARN_LD_RO>
    static __device__ __forceinline__ void load(raw<ROLE> &w, const darn_view &v, int64_t r, int64_t j, int64_t n)
    {
        const char *row = row_of(v, r);
        const int64_t c0 = j * 8;
        if (v.vec && c0 + 8 <= n) {
            if (v.dt == DARN_F32) {
                const uint4 *p = (const uint4 *)((const float *)row + c0);
                const uint4 a = darn_ld16<MODE>(p), b = darn_ld16<MODE>(p + 1);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    w.f[e] = darn_bits_f32(darn_word_of(a, e));
                    w.f[e + 4] = darn_bits_f32(darn_word_of(b, e));
                }
            } else {
                const uint4 q = darn_ld16<MODE>((const uint4 *)((const uint16_t *)row + c0));
#pragma unroll
                for (int e = 0; e < 8; e++)
                    w.f[e] = darn_widen16(darn_half_of(q, e), v.dt);
            }
            return;
        }
#pragma unroll
        for (int e = 0; e < 8; e++) w.f[e] = c0 + e < n ? ld1<MODE>(v, row, c0 + e) : 0.0f;
    }
    template <int ROLE> static __device__ __forceinline__ void cvt(float (&f)[8], const raw<ROLE> &w, const darn_view &)
    {
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = w.f[e];
    }
    template <int ROLE> static __device__ __forceinline__ void round(float (&f)[8], const darn_view &v)
    {
#pragma unroll
        for (int e = 0; e < 8; e += 2) darn_round_pair(f[e], f[e + 1], v.dt);
    }
    /* Elements 8j + e < N of group j of row r, rounded per §2. */
    template <int ROLE, bool STREAM = false>
    static __device__ __forceinline__ void store(const darn_view &v, int64_t r, int64_t j, int64_t n, const float (&f)[8])
    {
        char *row = (char *)row_of(v, r);
        const int64_t c0 = j * 8;
        const bool full = v.vec && c0 + 8 <= n;
        if (darn_is_fp8(v.dt)) { /* fp8 out: f holds y * scale (§9); 8 bytes per full group */
            uint32_t u[2];
            darn_fp8_pack8(f, v.dt, u);
            uint8_t *p = (uint8_t *)row + c0;
            if (full) {
                *(uint2 *)p = make_uint2(u[0], u[1]);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (c0 + e < n) p[e] = (uint8_t)(u[e / 4] >> (8 * (e % 4)));
            }
            return;
        }
        if (v.dt == DARN_F32) {
            uint32_t u[8];
#pragma unroll
            for (int e = 0; e < 8; e++) u[e] = darn_f32_bits(darn_canonical_f32(f[e]));
            uint32_t *p = (uint32_t *)row + c0;
            if (full) {
                ((uint4 *)p)[0] = make_uint4(u[0], u[1], u[2], u[3]);
                ((uint4 *)p)[1] = make_uint4(u[4], u[5], u[6], u[7]);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (c0 + e < n) p[e] = u[e];
            }
            return;
        }
        uint32_t u[4];
#pragma unroll
        for (int i = 0; i < 4; i++) u[i] = darn_pack16x2(f[2 * i], f[2 * i + 1], v.dt);
        uint16_t *p = (uint16_t *)row + c0;
        if (full) {
            *(uint4 *)p = make_uint4(u[0], u[1], u[2], u[3]);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (c0 + e < n) p[e] = (uint16_t)(u[e / 2] >> (16 * (e % 2)));
        }
    }
    static __device__ __forceinline__ uint32_t keep8(uint64_t seed, uint64_t offset, uint64_t i0, const darn_rng_args &g)
    {
        return darn_keep8(seed, offset, i0, g.threshold);
    }
    static __device__ __forceinline__ int valid(int64_t j, int64_t n)
    {
        const int64_t left = n - j * 8;
        return left >= 8 ? 8 : (int)left;
    }
};

/* The group's sum of §5: -0.0, then its first `valid` terms in increasing column. */
__device__ __forceinline__ float darn_group_sum(const float (&t)[8], int valid)
{
    float a = -0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (e < valid) a = a + t[e];
    return a;
}

/* (seed, offset) of the call: the values, or read through the graph-safe device pointers. */
__device__ __forceinline__ void darn_rng_state(const darn_rng_args &g, uint64_t &seed, uint64_t &offset)
{
    if (g.seed_ptr) {
        seed = *g.seed_ptr;
        offset = *g.offset_ptr + g.offset;
    } else {
        seed = g.seed;
        offset = g.offset;
    }
}

#endif /* DARN_HIP_GROUP8_H */
