/*
 * bwd.hip — backward kernels (docs/numerics.md §6).
 *
 * Rows come in the chunks of §6 (a function of M and N only). One "slot" of P threads takes whole
 * chunks and walks their rows in order, so each column's chunk partial is the sequential sum the
 * contract names, whichever slot, block or SM does it. Partials go to the workspace; darn_wgrad_pass
 * then applies the adjacent-pair tree over chunks. Generic kernels (run-time dtypes; the fast ones are in
 * bwd_fast.hip):
 * - darn_bwd_reg<K>: K <= 4 groups per thread and P <= 256; partials in registers;
 * - darn_bwd_stream: any N; one slot per block; partials accumulated in the workspace.
 */
#include "fast_configs.h"

/* xhat, gy and g = gy * w' of group j of row r. */
__device__ __forceinline__ void bwd_group_terms(const darn_gpu_bwd_args &a, int64_t r, int64_t j, float mean,
                                                float rstd, float (&xhat)[8], float (&gy)[8], float (&g)[8])
{
    darn_ld8(xhat, darn_row(a.h, a.dt_h, r, a.s_h), a.dt_h, j, a.n, a.vec_h);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float d = a.layer ? xhat[e] - mean : xhat[e];
        xhat[e] = d * rstd;
    }
    darn_ld8(gy, darn_row(a.dy, a.dt_dy, r, a.s_dy), a.dt_dy, j, a.n, a.vec_dy);
    darn_ld8(g, a.w, a.dt_w, j, a.n, a.vec_w);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float wv = a.zc ? g[e] + 1.0f : g[e];
        g[e] = gy[e] * wv;
    }
}

__device__ __forceinline__ void bwd_lane_add(float (&acc)[2], const float (&xhat)[8], const float (&g)[8], int64_t j,
                                             int64_t n)
{
#pragma unroll
    for (int e = 0; e < 8; e++) {
        if (j * 8 + e < n) {
            const float t = xhat[e] * g[e];
            acc[0] = acc[0] + t;
            acc[1] = acc[1] + g[e];
        }
    }
}

/* dh -> dresidual, dx for group j of row r (the part after the row's dot products). */
__device__ __forceinline__ void bwd_group_out(const darn_gpu_bwd_args &a, int64_t r, int64_t j, uint64_t seed,
                                              uint64_t offset, float rstd, float c1, float c2, float rs,
                                              const float (&xhat)[8], const float (&g)[8])
{
    float dh[8];
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float xc = xhat[e] * c1;
        const float inner = a.layer ? xc + c2 : xc;
        dh[e] = (g[e] - inner) * rstd;
    }
    if (a.dresout) {
        float v[8];
        darn_ld8(v, darn_row(a.dresout, a.dt_h, r, a.s_dresout), a.dt_h, j, a.n, a.vec_dresout);
#pragma unroll
        for (int e = 0; e < 8; e++) dh[e] = dh[e] + v[e];
    }
    if (a.dres) darn_st8(darn_row_mut(a.dres, a.dt_dres, r, a.s_dres), a.dt_dres, j, a.n, a.vec_dres, dh);
    uint32_t bits = 0xFFu;
    if (a.mask) bits = a.mask[r * a.mask_row_bytes + j];
    else if (a.rng.dropout) bits = darn_keep8(seed, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        float u = (bits >> e) & 1u ? dh[e] * a.rng.scale : 0.0f;
        if (a.has_rowscale) u = u * rs;
        dh[e] = u;
    }
    darn_st8(darn_row_mut(a.dx, a.dt_dx, r, a.s_dx), a.dt_dx, j, a.n, a.vec_dx, dh);
}

/* AMD: the arguments are taken anew (darn_args_again) per row and per group, so that the row loop holds
 * neither them nor values derived from them (row pointers, dtype tests) in SGPRs. */
template <int K>
__global__ void DARN_LAUNCH_BOUNDS(256) darn_bwd_reg(darn_gpu_bwd_args a0)
{
    __shared__ float smem[64];
    const int p = a0.geom.p;
    const int slot = threadIdx.x / p, t = threadIdx.x % p;
    const int rpb = a0.geom.rows_per_block;
    uint64_t seed, offset;
    darn_rng_state(a0.rng, seed, offset);

    /* Loops are uniform across the block: idle slots shadow row 0 and store nothing. */
    for (int64_t g0 = (int64_t)blockIdx.x * rpb; g0 < a0.chunks; g0 += (int64_t)gridDim.x * rpb) {
        const int64_t gch = g0 + slot;
        const bool chunk_on = gch < a0.chunks;
        const int64_t rbeg = gch * a0.chunk_rows;
        float pw[K][8], pb[K][8];
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
#pragma unroll
            for (int e = 0; e < 8; e++) pw[k][e] = pb[k][e] = -0.0f;
        });
        for (int64_t i = 0; i < a0.chunk_rows; i++) {
            const darn_gpu_bwd_args &ar = darn_args_again(a0);
            const bool on = chunk_on && rbeg + i < ar.m;
            const int64_t r = on ? rbeg + i : 0;
            const float rstd = ar.rstd[r], mean = ar.layer ? ar.mean[r] : 0.0f;
            /* From K = 2 on, xhat, gy and g are computed again after the all-reduce (same loads, same
             * operations, same bits) instead of being kept across it, which takes 24 registers per group:
             * more than AMD has at K = 4. (At K = 1, nvcc allocates more registers for the second form.) */
            constexpr bool again = K >= 2;
            float xhat[K][8], gy[K][8], g[K][8];
            float acc[2] = {-0.0f, -0.0f};
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const darn_gpu_bwd_args &a = darn_args_again(a0);
                const int64_t j = t + (int64_t)k * p;
                if (j < a.geom.groups) {
                    bwd_group_terms(a, r, j, mean, rstd, xhat[k], gy[k], g[k]);
                    bwd_lane_add(acc, xhat[k], g[k], j, a.n);
                }
            });
            darn_row_allreduce<2>(acc, p, smem);
            if (!on) continue;
            const float nf = (float)ar.n;
            const float c1 = acc[0] / nf, c2 = ar.layer ? acc[1] / nf : 0.0f;
            const float rs = ar.has_rowscale ? ar.rowscale[r] : 1.0f;
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const darn_gpu_bwd_args &a = darn_args_again(a0);
                const int64_t j = t + (int64_t)k * p;
                if (j < a.geom.groups) {
                    if constexpr (again) bwd_group_terms(a, r, j, mean, rstd, xhat[k], gy[k], g[k]);
                    bwd_group_out(a, r, j, seed, offset, rstd, c1, c2, rs, xhat[k], g[k]);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float tw = gy[k][e] * xhat[k][e];
                        pw[k][e] = pw[k][e] + tw;
                        pb[k][e] = pb[k][e] + gy[k][e];
                    }
                }
            });
        }
        if (!chunk_on) continue;
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
            const darn_gpu_bwd_args &a = darn_args_again(a0);
            const bool vec_part = (a.n % 4) == 0; /* partial rows are 16-byte aligned */
            const int64_t j = t + (int64_t)k * p;
            if (j < a.geom.groups) {
                darn_st8(a.partial_w + gch * a.n, DARN_F32, j, a.n, vec_part, pw[k]);
                if (a.partial_b) darn_st8(a.partial_b + gch * a.n, DARN_F32, j, a.n, vec_part, pb[k]);
            }
        });
    }
}

/* Any N: one chunk per block (one slot of P threads; G <= 4096 chunks always fit one grid); partials live
 * in the workspace. AMD: each loop iteration takes the arguments anew (darn_args_again), so that no loop
 * holds them or values derived from them (row and partial-row pointers) in SGPRs. */
__global__ void DARN_LAUNCH_BOUNDS(1024) darn_bwd_stream(darn_gpu_bwd_args a0)
{
    __shared__ float smem[64];
    const int t = threadIdx.x;
    uint64_t seed, offset;
    darn_rng_state(a0.rng, seed, offset);
    const int64_t gch = blockIdx.x;
    const int64_t rbeg = gch * a0.chunk_rows;
    const int64_t rend = rbeg + a0.chunk_rows < a0.m ? rbeg + a0.chunk_rows : a0.m;
    for (int64_t r = rbeg; r < rend; r++) {
        const darn_gpu_bwd_args &ar = darn_args_again(a0);
        const int p = ar.geom.p;
        const float nf = (float)ar.n;
        const float rstd = ar.rstd[r], mean = ar.layer ? ar.mean[r] : 0.0f;
        float xhat[8], gy[8], g[8];
        float acc[2] = {-0.0f, -0.0f};
        for (int64_t j = t; j < ar.geom.groups; j += p) {
            const darn_gpu_bwd_args &a = darn_args_again(a0);
            bwd_group_terms(a, r, j, mean, rstd, xhat, gy, g);
            bwd_lane_add(acc, xhat, g, j, a.n);
        }
        darn_row_allreduce<2>(acc, p, smem);
        const float c1 = acc[0] / nf, c2 = ar.layer ? acc[1] / nf : 0.0f;
        const float rs = ar.has_rowscale ? ar.rowscale[r] : 1.0f;
        for (int64_t j = t; j < ar.geom.groups; j += p) {
            const darn_gpu_bwd_args &a = darn_args_again(a0);
            const bool vec_part = (a.n % 4) == 0;
            float *pw_row = a.partial_w + gch * a.n;
            float *pb_row = a.partial_b ? a.partial_b + gch * a.n : nullptr;
            bwd_group_terms(a, r, j, mean, rstd, xhat, gy, g);
            bwd_group_out(a, r, j, seed, offset, rstd, c1, c2, rs, xhat, g);
            float pw[8], pb[8];
            if (r == rbeg) {
#pragma unroll
                for (int e = 0; e < 8; e++) pw[e] = pb[e] = -0.0f;
            } else { /* this thread wrote these columns for the previous row */
                darn_ld8(pw, pw_row, DARN_F32, j, a.n, vec_part);
                if (pb_row) darn_ld8(pb, pb_row, DARN_F32, j, a.n, vec_part);
            }
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float tw = gy[e] * xhat[e];
                pw[e] = pw[e] + tw;
                pb[e] = pb[e] + gy[e];
            }
            darn_st8(pw_row, DARN_F32, j, a.n, vec_part, pw);
            if (pb_row) darn_st8(pb_row, DARN_F32, j, a.n, vec_part, pb);
        }
    }
}

/* dweight (dbias) per column: the adjacent-pair tree of §6 over the G chunk partials, in passes. The
 * levels d = 1 .. 16 of the tree stay inside aligned blocks of 32 partials, so one pass turns each
 * block into its subtree sum (a missing partner is −0.0, which passes a value through unchanged), and
 * the next pass does the same to those sums at step 32, then 1024: at most 3 passes for G <= 4096.
 * A thread owns one column of one block: 32 independent loads (coalesced across the columns), then
 * the tree in registers with compile-time indices. blockIdx.z picks dweight or dbias. */
__global__ void DARN_LAUNCH_BOUNDS(256) darn_wgrad_pass(darn_gpu_wgrad_args a)
{
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= a.n) return;
    const int which = blockIdx.z;
    float *q = a.partial[which];
    const int64_t first = (int64_t)blockIdx.y * 32;
    float v[32];
#pragma unroll
    for (int i = 0; i < 32; i++) v[i] = first + i < a.count ? q[(first + i) * a.step * a.n + c] : -0.0f;
    /* Small constant loops, fully unrolled (no lambdas: clang-15 kept the nested-lambda form's array in
     * scratch). */
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
#pragma unroll
        for (int i = 0; i < 32; i += 2 * d) v[i] = v[i] + v[i + d];
    }
    if (a.count > 32) {
        q[first * a.step * a.n + c] = v[0];
        return;
    }
    const uint8_t dt = a.dt[which];
    if (dt == DARN_F32) ((float *)a.dst[which])[c] = darn_canonical_f32(v[0]);
    else if (dt == DARN_F16) ((uint16_t *)a.dst[which])[c] = darn_f32_to_f16(v[0]);
    else ((uint16_t *)a.dst[which])[c] = darn_f32_to_bf16(v[0]);
}

/* Zeros of an empty batch (M = 0). */
__global__ void darn_zero_bytes(uint8_t *p, int64_t bytes)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < bytes; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = 0;
}

darn_status darn_launch_bwd(const darn_gpu_bwd_args &a, void *dweight, void *dbias, hipStream_t stream)
{
    const darn_gpu_geom &g = a.geom;
    if (a.m == 0) {
        const int64_t nb = a.n * (a.dt_w == DARN_F32 ? 4 : 2);
        hipLaunchKernelGGL(darn_zero_bytes, dim3(256), dim3(256), 0, stream, (uint8_t *)dweight, nb);
        if (dbias)
            hipLaunchKernelGGL(darn_zero_bytes, dim3(256), dim3(256), 0, stream, (uint8_t *)dbias,
                               a.n * (a.dt_b == DARN_F32 ? 4 : 2));
        return darn_check_launch("darn_bwd");
    }
    const int64_t max_blocks = 65535 * 16;
    if (darn_launch_bwd_fast(a, stream)) {
        /* launched */
    } else if (g.k <= 4 && g.p <= 256) {
        int64_t blocks = (a.chunks + g.rows_per_block - 1) / g.rows_per_block;
        if (blocks > max_blocks) blocks = max_blocks;
        const dim3 grid((unsigned)blocks), block((unsigned)g.block);
        switch (g.k) {
        case 1: hipLaunchKernelGGL(darn_bwd_reg<1>, grid, block, 0, stream, a); break;
        case 2: hipLaunchKernelGGL(darn_bwd_reg<2>, grid, block, 0, stream, a); break;
        case 3: hipLaunchKernelGGL(darn_bwd_reg<3>, grid, block, 0, stream, a); break;
        default: hipLaunchKernelGGL(darn_bwd_reg<4>, grid, block, 0, stream, a); break;
        }
    } else {
        hipLaunchKernelGGL(darn_bwd_stream, dim3((unsigned)a.chunks), dim3((unsigned)g.p), 0, stream, a);
    }
    darn_status s = darn_check_launch("darn_bwd");
    if (s != DARN_OK) return s;
    darn_gpu_wgrad_args w;
    w.partial[0] = a.partial_w;
    w.partial[1] = a.partial_b;
    w.dst[0] = dweight;
    w.dst[1] = dbias;
    w.dt[0] = a.dt_w;
    w.dt[1] = a.dt_b;
    w.n = a.n;
    w.step = 1;
    for (w.count = a.chunks;; w.count = (w.count + 31) / 32, w.step *= 32) {
        const dim3 grid((unsigned)((a.n + 255) / 256), (unsigned)((w.count + 31) / 32), dbias ? 2 : 1);
        hipLaunchKernelGGL(darn_wgrad_pass, grid, dim3(256), 0, stream, w);
        if (w.count <= 32) break;
    }
    return darn_check_launch("darn_bwd");
}
