/*
 * vec8.h — one group of 8 columns (docs/numerics.md §5) with the dtype known at compile time: raw
 * 16-byte loads that can all be issued before any of them is used, conversion to fp32 and rounded
 * stores. The fast kernels (fwd_fast.hip, bwd_fast.hip) are built from these; the generic kernels use
 * the run-time-dtype helpers of device_common.h. Both round exactly as src/contract.h says.
 *
 * Callers guarantee the vector conditions: base and row stride 16-byte aligned, the group full (N % 8 == 0).
 */
#ifndef DARN_HIP_VEC8_H
#define DARN_HIP_VEC8_H

#include "device_common.h"

/* Raw bits of one group: one 16-byte word for 16-bit dtypes, two for f32. */
template <int DT> struct darn_raw8 {
    static constexpr int words = DT == DARN_F32 ? 2 : 1;
    uint4 q[words];
};

template <int DT> __device__ __forceinline__ void darn_load8(darn_raw8<DT> &r, const void *row, int64_t j)
{
    const uint4 *p = (const uint4 *)row + j * darn_raw8<DT>::words;
#pragma unroll
    for (int i = 0; i < darn_raw8<DT>::words; i++) r.q[i] = DARN_LDG(p + i);
}

/* Same, for data this kernel itself writes elsewhere in the call (no read-only cache path). */
template <int DT> __device__ __forceinline__ void darn_load8_rw(darn_raw8<DT> &r, const void *row, int64_t j)
{
    const uint4 *p = (const uint4 *)row + j * darn_raw8<DT>::words;
#pragma unroll
    for (int i = 0; i < darn_raw8<DT>::words; i++) r.q[i] = p[i];
}

/* Same, streaming (compat.h): the last read of this data in the call, so the cache need not keep it. */
template <int DT> __device__ __forceinline__ void darn_load8_last(darn_raw8<DT> &r, const void *row, int64_t j)
{
    const uint4 *p = (const uint4 *)row + j * darn_raw8<DT>::words;
#pragma unroll
    for (int i = 0; i < darn_raw8<DT>::words; i++) r.q[i] = DARN_LD_STREAM(p + i);
}

__device__ __forceinline__ uint32_t darn_word_of(const uint4 &q, int i)
{
    return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w;
}

/* Exact widening to fp32 (§2). */
template <int DT> __device__ __forceinline__ void darn_cvt8(float (&v)[8], const darn_raw8<DT> &r)
{
#pragma unroll
    for (int e = 0; e < 8; e++) {
        if constexpr (DT == DARN_F32) {
            v[e] = darn_bits_f32(darn_word_of(r.q[e / 4], e % 4));
        } else {
            const uint16_t u = (uint16_t)(darn_word_of(r.q[0], e / 2) >> (16 * (e % 2)));
            v[e] = DT == DARN_F16 ? darn_f16_to_f32(u) : darn_bf16_to_f32(u);
        }
    }
}

/* v[e] = the value it reads back as after a store to DT (§4's hn = load(store(h))). */
template <int DT> __device__ __forceinline__ void darn_round8_t(float (&v)[8])
{
#pragma unroll
    for (int e = 0; e < 8; e++) {
        if constexpr (DT == DARN_F32) v[e] = darn_canonical_f32(v[e]);
        else if constexpr (DT == DARN_F16) v[e] = darn_f16_to_f32(darn_f32_to_f16(v[e]));
        else v[e] = darn_bf16_to_f32(darn_f32_to_bf16(v[e]));
    }
}

/* Rounded 16-byte store(s) of group j of row (§2); STREAM: data nothing in the call reads again (compat.h). */
template <bool STREAM> __device__ __forceinline__ void darn_store16(uint4 *p, uint4 v)
{
    if constexpr (STREAM) DARN_ST_STREAM(p, v);
    else *p = v;
}
template <int DT, bool STREAM = false> __device__ __forceinline__ void darn_store8(void *row, int64_t j, const float (&v)[8])
{
    if constexpr (DT == DARN_F32) {
        uint4 *p = (uint4 *)row + 2 * j;
        uint32_t u[8];
#pragma unroll
        for (int e = 0; e < 8; e++) u[e] = darn_f32_bits(darn_canonical_f32(v[e]));
        darn_store16<STREAM>(p, make_uint4(u[0], u[1], u[2], u[3]));
        darn_store16<STREAM>(p + 1, make_uint4(u[4], u[5], u[6], u[7]));
    } else {
        uint32_t u[8];
#pragma unroll
        for (int e = 0; e < 8; e++) u[e] = DT == DARN_F16 ? darn_f32_to_f16(v[e]) : darn_f32_to_bf16(v[e]);
        darn_store16<STREAM>((uint4 *)row + j, make_uint4(u[0] | (u[1] << 16), u[2] | (u[3] << 16),
                                                          u[4] | (u[5] << 16), u[6] | (u[7] << 16)));
    }
}

template <int DT> __device__ __forceinline__ const void *darn_row_t(const void *base, int64_t r, int64_t stride)
{
    return (const char *)base + r * stride * (DT == DARN_F32 ? 4 : 2);
}
template <int DT> __device__ __forceinline__ void *darn_row_mut_t(void *base, int64_t r, int64_t stride)
{
    return (char *)base + r * stride * (DT == DARN_F32 ? 4 : 2);
}

/* Keep bits of elements i0 .. i0 + 7 when i0 % 8 == 0 (every group of a row with N % 8 == 0): the 8
 * words of Philox blocks i0/4 and i0/4 + 1, no selects. Same bits as darn_keep8. */
__device__ __forceinline__ uint32_t darn_keep8_aligned(uint64_t seed, uint64_t offset, uint64_t i0,
                                                       uint64_t threshold)
{
    const darn_philox_ctr b0 = darn_philox_block(seed, offset, i0 >> 2);
    const darn_philox_ctr b1 = darn_philox_block(seed, offset, (i0 >> 2) + 1);
    uint32_t bits = 0;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        bits |= (uint32_t)darn_keep(b0.v[e], threshold) << e;
        bits |= (uint32_t)darn_keep(b1.v[e], threshold) << (e + 4);
    }
    return bits;
}

/* The dtypes of one fast configuration: x, residual, residual-out (= h), weight (= bias), out. */
template <int X_, int R_, int RO_, int W_, int O_> struct darn_cfg {
    static constexpr int X = X_, R = R_, RO = RO_, W = W_, O = O_;
};

#endif /* DARN_HIP_VEC8_H */
