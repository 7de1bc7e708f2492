/*
 * fwd_wide.hip — the fast forward for rows of 1024 lanes (N > 16384; docs/numerics.md §4, §5): dtypes
 * fixed at compile time (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned.
 *
 * One row per block of 1024 threads at a time (blocks stride over rows); a thread takes its groups t,
 * t + 1024, ... B at a time with all their loads in flight. h does not fit in registers: the first pass
 * writes it to residual_out and the later ones read it back (from L2), or recompute it from x and the
 * residual when residual_out is not requested.
 *
 * AMD: every loop iteration takes the kernel arguments anew (darn_args_again) and holds the options as
 * one vector value, so that no argument, nor anything derived from it, stays in scalar registers across
 * iterations (a 1024-thread block has 128 VGPRs a thread and ~100 SGPRs a wave; see compat.h).
 */
#include "fast_configs.h"

/* The options of a call as one 32-bit word (bit names below), moved to a vector register on AMD. */
enum : uint32_t { WF_LAYER = 1, WF_ZC = 2, WF_RS = 4, WF_DROP = 8, WF_RES = 16, WF_RESOUT = 32, WF_MASK = 64, WF_BIAS = 128 };

__device__ __forceinline__ uint32_t wide_flags(const darn_gpu_fwd_args &a)
{
    uint32_t f = (a.layer ? WF_LAYER : 0u) | (a.zc ? WF_ZC : 0u) | (a.has_rowscale ? WF_RS : 0u) |
                 (a.rng.dropout ? WF_DROP : 0u) | (a.has_res ? WF_RES : 0u) | (a.resout ? WF_RESOUT : 0u) |
                 (a.mask ? WF_MASK : 0u) | (a.has_bias ? WF_BIAS : 0u);
    DARN_TO_VGPR(f);
    return f;
}

/* Seed and offset, read once per kernel and held as four vector values: the Philox round keys are then
 * computed on the vector unit where they are used, never held in SGPRs across the loops (AMD). */
struct darn_wide_rng {
    uint32_t s_lo, s_hi, o_lo, o_hi; /* halves: as two 64-bit members (darn_to_vgpr64) gfx942 code differs */
    __device__ __forceinline__ explicit darn_wide_rng(const darn_gpu_rng &r)
    {
        uint64_t seed = 0, offset = 0;
        if (r.dropout) darn_rng_state(r, seed, offset);
        s_lo = (uint32_t)seed, s_hi = (uint32_t)(seed >> 32), o_lo = (uint32_t)offset, o_hi = (uint32_t)(offset >> 32);
        DARN_TO_VGPR(s_lo);
        DARN_TO_VGPR(s_hi);
        DARN_TO_VGPR(o_lo);
        DARN_TO_VGPR(o_hi);
    }
    __device__ __forceinline__ uint64_t seed() const { return (uint64_t)s_hi << 32 | s_lo; }
    __device__ __forceinline__ uint64_t offset() const { return (uint64_t)o_hi << 32 | o_lo; }
};

/* Keep bits of group j of row r (all kept without dropout). */
__device__ __forceinline__ uint32_t wide_bits(const darn_gpu_fwd_args &a, uint32_t fl, const darn_wide_rng &g, int64_t r,
                                              int64_t j)
{
    if (!(fl & WF_DROP)) return 0xFFu;
    return darn_keep8_aligned(g.seed(), g.offset(), (uint64_t)(r * a.n + j * 8), a.rng.threshold);
}

/* h (§4) of a group from its raw x and residual and its keep bits. */
template <class C>
__device__ __forceinline__ void wide_h(const darn_gpu_fwd_args &a, uint32_t fl, uint32_t bits, float rs,
                                       const darn_raw8<C::X> &rx, const darn_raw8<C::R> &rr, float (&h)[8])
{
    darn_cvt8(h, rx);
    if (fl & WF_RS) {
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] * rs;
    }
    if (fl & WF_DROP) {
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = (bits >> e) & 1u ? h[e] * a.rng.scale : 0.0f;
    }
    if (fl & WF_RES) {
        float v[8];
        darn_cvt8(v, rr);
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] + v[e];
    }
    darn_round8_t<C::RO>(h);
}

/* h of the B groups j0, j0 + P, ... (those < groups) of row r: read back from residual_out, or
 * recomputed. LAST: the last time the call reads it (streaming loads, compat.h). */
template <class C, int B, bool LAST>
__device__ __forceinline__ void wide_h_again(const darn_gpu_fwd_args &a, uint32_t fl, const darn_wide_rng &g,
                                             int64_t r, int64_t j0, float rs, float (&h)[B][8])
{
    constexpr int p = DARN_WIDE_LANES;
    if (fl & WF_RESOUT) {
        darn_raw8<C::RO> rh[B] = {};
        const void *row = darn_row_t<C::RO>(DARN_GLOBAL(a.resout), r, a.s_resout);
        darn_unroll<B>([&](auto bb) {
            constexpr int b = decltype(bb)::value;
            if (j0 + (int64_t)b * p < a.geom.groups) {
                if constexpr (LAST) darn_load8_last(rh[b], row, j0 + (int64_t)b * p);
                else darn_load8_rw(rh[b], row, j0 + (int64_t)b * p);
            }
        });
        darn_unroll<B>([&](auto bb) {
            constexpr int b = decltype(bb)::value;
            darn_cvt8(h[b], rh[b]);
        });
        return;
    }
    uint32_t bits[B];
    darn_unroll<B>([&](auto bb) {
        constexpr int b = decltype(bb)::value;
        bits[b] = wide_bits(a, fl, g, r, j0 + (int64_t)b * p);
    });
    darn_raw8<C::X> rx[B] = {};
    darn_raw8<C::R> rr[B] = {};
    darn_unroll<B>([&](auto bb) {
        constexpr int b = decltype(bb)::value;
        const int64_t j = j0 + (int64_t)b * p;
        if (j < a.geom.groups) {
            darn_load8_last(rx[b], darn_row_t<C::X>(DARN_GLOBAL(a.x), r, a.s_x), j);
            if (fl & WF_RES) darn_load8_last(rr[b], darn_row_t<C::R>(DARN_GLOBAL(a.res), r, a.s_res), j);
        }
    });
    darn_unroll<B>([&](auto bb) {
        constexpr int b = decltype(bb)::value;
        wide_h<C>(a, fl, bits[b], rs, rx[b], rr[b], h[b]);
    });
}

template <class C>
__global__ void DARN_LAUNCH_BOUNDS(DARN_WIDE_LANES) darn_fwd_wide(darn_gpu_fwd_args a)
{
    /* Groups per batch: x, residual and h of two 16-bit groups fit 64 registers (NVIDIA) / 128 VGPRs
     * (AMD wave64 at 1024 threads); fp32 x takes one group at a time, and so does the second pass with
     * fp32 weights (h, weight and bias of a group: 24 registers) or f16 out (its rounding is longer). */
    constexpr int B = C::X == DARN_F32 ? 1 : 2;
    constexpr int B2 = C::X == DARN_F32 || C::W == DARN_F32 || C::O == DARN_F16 ? 1 : 2;
    __shared__ float smem[32];
    constexpr int p = DARN_WIDE_LANES; /* a compile-time constant: no run-time tests of it */
    const int t = threadIdx.x;
    const int64_t groups = a.geom.groups;
    const float nf = (float)a.n;
    const darn_wide_rng g(a.rng);
    for (int64_t r_u = blockIdx.x; r_u < a.m; r_u += gridDim.x) {
        /* The row as a vector value: its pointers then live in VGPRs, not in AMD's scarce SGPRs. */
        const int64_t r = (int64_t)darn_to_vgpr64((uint64_t)r_u);
        const float rs = a.has_rowscale ? DARN_LDG(a.rowscale + r) : 1.0f;
        float acc[1] = {-0.0f};
        /* Pass 1: h, residual_out, mask, lane sums (hn^2 or hn). */
        for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B * p) {
            const darn_gpu_fwd_args &A = darn_args_again(a);
            const uint32_t fl = wide_flags(A);
            uint32_t bits[B]; /* before the loads: the Philox work then needs no registers while they land */
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                bits[b] = wide_bits(A, fl, g, r, j0 + (int64_t)b * p);
            });
            darn_raw8<C::X> rx[B] = {};
            darn_raw8<C::R> rr[B] = {};
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    darn_load8_last(rx[b], darn_row_t<C::X>(DARN_GLOBAL(A.x), r, A.s_x), j);
                    if (fl & WF_RES) darn_load8_last(rr[b], darn_row_t<C::R>(DARN_GLOBAL(A.res), r, A.s_res), j);
                }
            });
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    float h[8];
                    wide_h<C>(A, fl, bits[b], rs, rx[b], rr[b], h);
                    if (fl & WF_RESOUT) darn_store8<C::RO>(darn_row_mut_t<C::RO>(DARN_GLOBAL(A.resout), r, A.s_resout), j, h);
                    if (fl & WF_MASK) DARN_GLOBAL(A.mask)[r * A.mask_row_bytes + j] = (uint8_t)bits[b];
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[0] = acc[0] + (fl & WF_LAYER ? h[e] : h[e] * h[e]);
                }
            });
        }
        if (a.mask && t == 0) darn_fwd_mask_padding(a, r);
        /* The barrier inside the all-reduce also orders this block's residual_out stores before the
         * re-reads below (same block, __syncthreads makes them visible). */
        darn_row_allreduce<1>(acc, p, smem);
        float mean = 0.0f;
        if (a.layer) {
            mean = acc[0] / nf;
            acc[0] = -0.0f;
            for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B * p) {
                const darn_gpu_fwd_args &A = darn_args_again(a);
                const uint32_t fl = wide_flags(A);
                float h[B][8];
                wide_h_again<C, B, false>(A, fl, g, r, j0, rs, h);
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    if (j0 + (int64_t)b * p < groups) {
#pragma unroll
                        for (int e = 0; e < 8; e++) {
                            const float d = h[b][e] - mean;
                            acc[0] = acc[0] + d * d;
                        }
                    }
                });
            }
            darn_row_allreduce<1>(acc, p, smem);
        }
        const float rstd = 1.0f / sqrtf(acc[0] / nf + a.eps);
        /* Pass 2: y. */
        for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B2 * p) {
            const darn_gpu_fwd_args &A = darn_args_again(a);
            const uint32_t fl = wide_flags(A);
            float h[B2][8];
            darn_raw8<C::W> rw[B2] = {}, rb[B2] = {};
            darn_unroll<B2>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    darn_load8(rw[b], DARN_GLOBAL(A.w), j);
                    if (fl & WF_BIAS) darn_load8(rb[b], DARN_GLOBAL(A.b), j);
                }
            });
            wide_h_again<C, B2, true>(A, fl, g, r, j0, rs, h);
            darn_unroll<B2>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    float w[8], y[8];
                    darn_cvt8(w, rw[b]);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float wv = fl & WF_ZC ? w[e] + 1.0f : w[e];
                        const float d = fl & WF_LAYER ? h[b][e] - mean : h[b][e];
                        const float xhat = d * rstd;
                        y[e] = xhat * wv;
                    }
                    if (fl & WF_BIAS) {
                        darn_cvt8(w, rb[b]);
#pragma unroll
                        for (int e = 0; e < 8; e++) y[e] = y[e] + w[e];
                    }
                    darn_store8<C::O, true>(darn_row_mut_t<C::O>(DARN_GLOBAL(A.out), r, A.s_out), j, y);
                }
            });
        }
        if (t == 0) {
            const darn_gpu_fwd_args &A = darn_args_again(a);
            if (A.rstd) DARN_GLOBAL(A.rstd)[r] = darn_canonical_f32(rstd);
            if (A.mean) DARN_GLOBAL(A.mean)[r] = darn_canonical_f32(mean);
        }
        __syncthreads(); /* smem is reused by the next row */
    }
}

bool darn_launch_fwd_wide(const darn_gpu_fwd_args &a, hipStream_t s)
{
    const int res_dt = a.has_res ? a.dt_res : a.dt_resout; /* without a residual only its out dtype counts */
    const unsigned blocks = (unsigned)(a.m < 65535 * 16 ? a.m : 65535 * 16);
#define DARN_WIDE_CASE(X, R, RO, W, O)                                                                      \
    if (a.dt_x == X && res_dt == R && a.dt_resout == RO && a.dt_w == W && a.dt_out == O) {                 \
        hipLaunchKernelGGL((darn_fwd_wide<darn_cfg<X, R, RO, W, O>>), dim3(blocks), dim3(DARN_WIDE_LANES), 0, s, a);   \
        return true;                                                                                        \
    }
    DARN_FAST_CONFIGS(DARN_WIDE_CASE)
#undef DARN_WIDE_CASE
    return false;
}
