/*
 * device_common.h — device building blocks shared by the forward and backward kernels:
 * typed loads/stores of one group of 8 columns, the keep bits of a group, and the canonical row
 * all-reduce (docs/numerics.md §5) over the P threads of a row.
 */
#ifndef DARN_HIP_DEVICE_COMMON_H
#define DARN_HIP_DEVICE_COMMON_H

#include "compat.h"
#include "contract.h"
#include "darn/darn.h"
#include "gpu_args.h"

/* darn_unroll<N>(f) calls f(darn_idx<0>{}), ..., f(darn_idx<N-1>{}): a loop over register arrays whose
 * index is a compile-time constant by construction. `#pragma unroll` is only a hint: clang-15 left a
 * large K = 4 loop rolled, indexed the row array at run time and put it in scratch. */
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

/* Element c of a typed buffer (any dtype), as fp32. */
__device__ __forceinline__ float darn_ld1(const void *row, int dt, int64_t c)
{
    if (dt == DARN_F32) return DARN_LDG((const float *)row + c);
    const uint16_t u = DARN_LDG((const uint16_t *)row + c);
    return dt == DARN_F16 ? darn_f16_to_f32(u) : darn_bf16_to_f32(u);
}

/* v[e] = element 8j + e of row (0 past N). The 16-byte path needs `vec` (base and stride aligned)
 * and a full group. */
__device__ __forceinline__ void darn_ld8(float (&v)[8], const void *row, int dt, int64_t j, int64_t n, bool vec)
{
    const int64_t c0 = j * 8;
    if (vec && c0 + 8 <= n) {
        if (dt == DARN_F32) {
            const float4 *p = (const float4 *)((const float *)row + c0);
            const float4 a = DARN_LDG(p), b = DARN_LDG(p + 1);
            v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
            v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
        } else {
            const uint4 q = DARN_LDG((const uint4 *)((const uint16_t *)row + c0));
            const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const uint16_t u = (uint16_t)(w[e / 2] >> (16 * (e % 2)));
                v[e] = dt == DARN_F16 ? darn_f16_to_f32(u) : darn_bf16_to_f32(u);
            }
        }
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = c0 + e < n ? darn_ld1(row, dt, c0 + e) : 0.0f;
}

/* Store element 8j + e of row for e with 8j + e < N, rounding per §2. */
__device__ __forceinline__ void darn_st8(void *row, int dt, int64_t j, int64_t n, bool vec, const float (&v)[8])
{
    const int64_t c0 = j * 8;
    if (dt == DARN_F32) {
        float o[8];
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = darn_canonical_f32(v[e]);
        float *p = (float *)row + c0;
        if (vec && c0 + 8 <= n) {
            ((float4 *)p)[0] = make_float4(o[0], o[1], o[2], o[3]);
            ((float4 *)p)[1] = make_float4(o[4], o[5], o[6], o[7]);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (c0 + e < n) p[e] = o[e];
        }
        return;
    }
    uint16_t u[8];
#pragma unroll
    for (int e = 0; e < 8; e++) u[e] = dt == DARN_F16 ? darn_f32_to_f16(v[e]) : darn_f32_to_bf16(v[e]);
    uint16_t *p = (uint16_t *)row + c0;
    if (vec && c0 + 8 <= n) {
        *(uint4 *)p = make_uint4(u[0] | ((uint32_t)u[1] << 16), u[2] | ((uint32_t)u[3] << 16),
                                 u[4] | ((uint32_t)u[5] << 16), u[6] | ((uint32_t)u[7] << 16));
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++)
            if (c0 + e < n) p[e] = u[e];
    }
}

/* v[e] = the value element 8j+e reads back as after a store to dtype dt. */
__device__ __forceinline__ void darn_round8(float (&v)[8], int dt)
{
#pragma unroll
    for (int e = 0; e < 8; e++) {
        if (dt == DARN_F32) v[e] = darn_canonical_f32(v[e]);
        else if (dt == DARN_F16) v[e] = darn_f16_to_f32(darn_f32_to_f16(v[e]));
        else v[e] = darn_bf16_to_f32(darn_f32_to_bf16(v[e]));
    }
}

/* Byte row + j of row (as raw pointer helpers). */
__device__ __forceinline__ const void *darn_row(const void *base, int dt, int64_t r, int64_t stride)
{
    return (const char *)base + r * stride * (dt == DARN_F32 ? 4 : 2);
}
__device__ __forceinline__ void *darn_row_mut(void *base, int dt, int64_t r, int64_t stride)
{
    return (char *)base + r * stride * (dt == DARN_F32 ? 4 : 2);
}

/* (seed, offset) of the call: the values, or read through the graph-safe device pointers. */
__device__ __forceinline__ void darn_rng_state(const darn_gpu_rng &g, uint64_t &seed, uint64_t &offset)
{
    if (g.seed_ptr) {
        seed = *g.seed_ptr;
        offset = *g.offset_ptr + g.offset;
    } else {
        seed = g.seed;
        offset = g.offset;
    }
}

/* Keep bits (bit e) of elements i0 .. i0 + 7 (§3). The 8 words are words s .. s + 7 of Philox blocks
 * i0/4, i0/4 + 1, i0/4 + 2 with s = i0 % 4; selects keep every index compile-time (no scratch). */
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

/* Mask padding bytes [ceil(N/8), row bytes) of row r of the forward: 0. */
__device__ __forceinline__ void darn_fwd_mask_padding(const darn_gpu_fwd_args &a, int64_t r)
{
    for (int64_t b = a.geom.groups; b < a.mask_row_bytes; b++) a.mask[r * a.mask_row_bytes + b] = 0;
}

/* Xor-butterfly over distances 1, 2, ..., width / 2 (width a power of two <= DARN_WAVE): afterwards each
 * lane holds the adjacent-pair tree (§5) of its aligned group of `width` lanes. A run-time loop, not an
 * unrolled one: unrolled per-distance conditions become 64-bit lane masks that exhaust AMD's SGPRs. */
template <int NV>
__device__ __forceinline__ void darn_butterfly(float (&v)[NV], int width)
{
    for (int d = 1; d < width; d *= 2) {
#pragma unroll
        for (int i = 0; i < NV; i++) v[i] = v[i] + DARN_SHFL_XOR(v[i], d);
    }
}

/* Canonical all-reduce of NV values over the P threads of a row (§5): butterfly inside the wave, then,
 * when a row spans several waves (P > DARN_WAVE; then the block is exactly one row), the same butterfly
 * over the nw = P / DARN_WAVE wave totals: lane l of every wave reads total l % nw from shared memory, so
 * each aligned group of nw lanes holds all of them and every lane ends with the full tree.
 * Every thread of the block must call it. `smem` holds >= 32 * NV floats. */
template <int NV>
__device__ __forceinline__ void darn_row_allreduce(float (&v)[NV], int p, float *smem)
{
    darn_butterfly<NV>(v, p < DARN_WAVE ? p : DARN_WAVE);
    if (p > DARN_WAVE) {
        const int nw = p / DARN_WAVE, lane = threadIdx.x % DARN_WAVE;
        __syncthreads(); /* smem may still be read by an earlier call */
        if (lane == 0) {
#pragma unroll
            for (int i = 0; i < NV; i++) smem[i * 32 + threadIdx.x / DARN_WAVE] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < NV; i++) v[i] = smem[i * 32 + lane % nw];
        darn_butterfly<NV>(v, nw);
    }
}

/* The kernel's arguments `a` (the kernel's parameter: its first, darn's kernels have one), read again
 * from the kernel-argument segment wherever this reference is used (AMD). A loop that takes the
 * reference anew in each iteration holds none of the ~40 uniform values of the arguments, nor what is
 * derived from them, in SGPRs across iterations: it reloads them with scalar loads (scalar cache hits)
 * instead of spilling them. Take it inside a darn_unroll lambda rather than capturing one from outside:
 * through the capture the compiler loses the address space and reads arguments and tensors with flat
 * instead of scalar and global loads. NVIDIA: `a` itself. */
template <class T> __device__ __forceinline__ const T &darn_args_again(const T &a)
{
#if defined(__HIP_PLATFORM_NVIDIA__)
    return a;
#else
    (void)a;
    typedef const __attribute__((address_space(4))) T *kernarg_ptr;
    kernarg_ptr p = (kernarg_ptr)__builtin_amdgcn_kernarg_segment_ptr(); /* the first parameter is at 0 */
    DARN_TO_SGPR(p);
    return *(const T *)p;
#endif /* __HIP_PLATFORM_NVIDIA__ */
}

#endif /* DARN_HIP_DEVICE_COMMON_H */
