/*
 * fwd.hip — forward kernels (docs/numerics.md §4, §5).
 *
 * P threads own a row; thread t owns lanes t (and groups t, t + P, ...). Two kernels:
 * - darn_fwd_reg<K>: the row's h stays in registers (K <= 4 groups of 8 per thread);
 * - darn_fwd_stream: any N; h is written (or recomputed) and read back on later passes.
 * Both produce identical bits: the per-element math is one function, the sums are §5's tree.
 */
#include "fast_configs.h"

/* h of group j of row r (§4): loads, rowscale, dropout, residual, rounding to the residual-out dtype.
 * With `store`, also writes residual_out and the mask byte of the group. */
__device__ __forceinline__ void fwd_group_h(const darn_gpu_fwd_args &a, int64_t r, int64_t j, uint64_t seed,
                                            uint64_t offset, float rs, float (&h)[8], bool store)
{
    darn_ld8(h, darn_row(a.x, a.dt_x, r, a.s_x), a.dt_x, j, a.n, a.vec_x);
    if (a.has_rowscale) {
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] * rs;
    }
    uint32_t bits = 0xFFu;
    if (a.rng.dropout) {
        bits = darn_keep8(seed, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = (bits >> e) & 1u ? h[e] * a.rng.scale : 0.0f;
    }
    if (a.has_res) {
        float v[8];
        darn_ld8(v, darn_row(a.res, a.dt_res, r, a.s_res), a.dt_res, j, a.n, a.vec_res);
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] + v[e];
    }
    darn_round8(h, a.dt_resout);
    if (!store) return;
    if (a.resout) darn_st8(darn_row_mut(a.resout, a.dt_resout, r, a.s_resout), a.dt_resout, j, a.n, a.vec_resout, h);
    if (a.mask) {
        const int64_t left = a.n - j * 8;
        if (left < 8) bits &= (1u << left) - 1u; /* bits past N are 0 */
        a.mask[r * a.mask_row_bytes + j] = (uint8_t)bits;
    }
}

/* y of group j from its hn (LayerNorm: minus mean), rstd, weight and bias. */
__device__ __forceinline__ void fwd_group_y(const darn_gpu_fwd_args &a, int64_t r, int64_t j, const float (&hn)[8],
                                            float mean, float rstd)
{
    float w[8], y[8];
    darn_ld8(w, a.w, a.dt_w, j, a.n, a.vec_w);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float wv = a.zc ? w[e] + 1.0f : w[e];
        const float d = a.layer ? hn[e] - mean : hn[e];
        const float xhat = d * rstd;
        y[e] = xhat * wv;
    }
    if (a.has_bias) {
        darn_ld8(w, a.b, a.dt_b, j, a.n, a.vec_b);
#pragma unroll
        for (int e = 0; e < 8; e++) y[e] = y[e] + w[e];
    }
    darn_st8(darn_row_mut(a.out, a.dt_out, r, a.s_out), a.dt_out, j, a.n, a.vec_out, y);
}

/* Lane sum of group j's terms (in increasing column) onto acc: hn^2 (RMSNorm), hn (LayerNorm pass 1)
 * or (hn - mean)^2 (LayerNorm pass 2). */
__device__ __forceinline__ float fwd_lane_add(float acc, const float (&hn)[8], int64_t j, int64_t n, int pass,
                                              float mean)
{
#pragma unroll
    for (int e = 0; e < 8; e++) {
        if (j * 8 + e < n) {
            float term;
            if (pass == 0) {
                term = hn[e] * hn[e];
            } else if (pass == 1) {
                term = hn[e];
            } else {
                const float d = hn[e] - mean;
                term = d * d;
            }
            acc = acc + term;
        }
    }
    return acc;
}

template <int K>
__global__ void DARN_LAUNCH_BOUNDS(1024) darn_fwd_reg(darn_gpu_fwd_args a)
{
    __shared__ float smem[32];
    const int p = a.geom.p;
    const int slot = threadIdx.x / p, t = threadIdx.x % p;
    const int64_t r0 = (int64_t)blockIdx.x * a.geom.rows_per_block + slot;
    const bool active = r0 < a.m;
    const int64_t r = active ? r0 : 0; /* idle slots shadow row 0 so every lane joins the shuffles */
    uint64_t seed, offset;
    darn_rng_state(a.rng, seed, offset);
    const float rs = a.has_rowscale ? a.rowscale[r] : 1.0f;
    const float nf = (float)a.n;

    float h[K][8];
    float acc[1] = {-0.0f};
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        if (j < a.geom.groups) {
            fwd_group_h(a, r, j, seed, offset, rs, h[k], active);
            acc[0] = fwd_lane_add(acc[0], h[k], j, a.n, a.layer ? 1 : 0, 0.0f);
        }
    });
    if (active && a.mask && t == 0) darn_fwd_mask_padding(a, r);
    darn_row_allreduce<1>(acc, p, smem);
    float mean = 0.0f;
    if (a.layer) {
        mean = acc[0] / nf;
        acc[0] = -0.0f;
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
            const int64_t j = t + (int64_t)k * p;
            if (j < a.geom.groups) acc[0] = fwd_lane_add(acc[0], h[k], j, a.n, 2, mean);
        });
        darn_row_allreduce<1>(acc, p, smem);
    }
    const float rstd = 1.0f / sqrtf(acc[0] / nf + a.eps);
    if (!active) return;
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        if (j < a.geom.groups) fwd_group_y(a, r, j, h[k], mean, rstd);
    });
    if (t == 0) {
        if (a.rstd) a.rstd[r] = darn_canonical_f32(rstd);
        if (a.mean) a.mean[r] = darn_canonical_f32(mean);
    }
}

/* Row r of darn_fwd_stream. AMD: the arguments are taken anew (darn_args_again) per row and per group, so
 * that no loop holds them or values derived from them (row pointers, dtype tests) in SGPRs. */
__device__ __forceinline__ void darn_fwd_stream_row(const darn_gpu_fwd_args &a0, int64_t r)
{
    __shared__ float smem[32];
    const darn_gpu_fwd_args &ar = darn_args_again(a0);
    const int p = ar.geom.p;
    const int t = threadIdx.x;
    uint64_t seed, offset;
    darn_rng_state(ar.rng, seed, offset);
    const float rs = ar.has_rowscale ? ar.rowscale[r] : 1.0f;
    const float nf = (float)ar.n;
    float hn[8];
    float acc[1] = {-0.0f};
    for (int64_t j = t; j < ar.geom.groups; j += p) {
        const darn_gpu_fwd_args &a = darn_args_again(a0);
        fwd_group_h(a, r, j, seed, offset, rs, hn, true);
        acc[0] = fwd_lane_add(acc[0], hn, j, a.n, a.layer ? 1 : 0, 0.0f);
    }
    if (ar.mask && t == 0) darn_fwd_mask_padding(ar, r);
    darn_row_allreduce<1>(acc, p, smem);
    float mean = 0.0f;
    if (ar.layer) {
        mean = acc[0] / nf;
        acc[0] = -0.0f;
        for (int64_t j = t; j < ar.geom.groups; j += p) {
            const darn_gpu_fwd_args &a = darn_args_again(a0);
            if (a.resout) darn_ld8(hn, darn_row(a.resout, a.dt_resout, r, a.s_resout), a.dt_resout, j, a.n, a.vec_resout);
            else fwd_group_h(a, r, j, seed, offset, rs, hn, false);
            acc[0] = fwd_lane_add(acc[0], hn, j, a.n, 2, mean);
        }
        darn_row_allreduce<1>(acc, p, smem);
    }
    const float rstd = 1.0f / sqrtf(acc[0] / nf + ar.eps);
    for (int64_t j = t; j < ar.geom.groups; j += p) {
        const darn_gpu_fwd_args &a = darn_args_again(a0);
        if (a.resout) darn_ld8(hn, darn_row(a.resout, a.dt_resout, r, a.s_resout), a.dt_resout, j, a.n, a.vec_resout);
        else fwd_group_h(a, r, j, seed, offset, rs, hn, false);
        fwd_group_y(a, r, j, hn, mean, rstd);
    }
    if (t == 0) {
        if (ar.rstd) ar.rstd[r] = darn_canonical_f32(rstd);
        if (ar.mean) ar.mean[r] = darn_canonical_f32(mean);
    }
    __syncthreads(); /* smem is reused by the next row */
}

/* Any N: one row per block of P threads (blocks stride over rows), geom.k groups per thread, re-read. */
__global__ void DARN_LAUNCH_BOUNDS(1024) darn_fwd_stream(darn_gpu_fwd_args a)
{
    for (int64_t r = blockIdx.x; r < a.m; r += gridDim.x) darn_fwd_stream_row(a, r);
}

darn_status darn_launch_fwd(const darn_gpu_fwd_args &a, hipStream_t stream)
{
    const darn_gpu_geom &g = a.geom;
    if (darn_launch_fwd_fast(a, stream)) {
        /* launched */
    } else if (g.k <= 4) {
        const dim3 grid((unsigned)((a.m + g.rows_per_block - 1) / g.rows_per_block)), block((unsigned)g.block);
        switch (g.k) {
        case 1: hipLaunchKernelGGL(darn_fwd_reg<1>, grid, block, 0, stream, a); break;
        case 2: hipLaunchKernelGGL(darn_fwd_reg<2>, grid, block, 0, stream, a); break;
        case 3: hipLaunchKernelGGL(darn_fwd_reg<3>, grid, block, 0, stream, a); break;
        default: hipLaunchKernelGGL(darn_fwd_reg<4>, grid, block, 0, stream, a); break;
        }
    } else {
        const int64_t blocks = a.m < 65535 * 16 ? a.m : 65535 * 16;
        hipLaunchKernelGGL(darn_fwd_stream, dim3((unsigned)blocks), dim3((unsigned)g.p), 0, stream, a);
    }
    return darn_check_launch("darn_fwd");
}
