/*
 * bwd_wide.hip — the fast backward for rows of 1024 lanes (N > 16384; docs/numerics.md §6, §7): dtypes
 * fixed at compile time (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned.
 *
 * One chunk per block of 1024 threads. A row does not fit in registers, so it is read twice: once for
 * its two sums, once for dx / dresidual and its dweight (dbias) terms. The chunk partials live in the
 * workspace; each thread re-reads and re-writes its own columns. Rows are taken Q at a time: the sums
 * of Q rows share one all-reduce, and the second pass adds the Q rows' terms of a group to the partial
 * one after the other (row order, as §7 says) between one read and one write of it — the partials'
 * traffic, as large as a row's h and dx together, drops Q-fold.
 */
#include "bwd_terms.h"
#include "fast_configs.h"

template <class C, bool BIAS>
__global__ void DARN_LAUNCH_BOUNDS(DARN_WIDE_LANES) darn_bwd_wide(darn_gpu_bwd_args a)
{
    constexpr int Q = 4, B = 2; /* Q rows per pass over the partials */
    __shared__ float smem[2 * Q * 32];
    __shared__ float row_c[2][Q]; /* c1, c2 of the Q rows, read in the second pass (not held in registers) */
    constexpr int p = DARN_WIDE_LANES; /* a compile-time constant: no run-time tests of it */
    const int t = threadIdx.x;
    /* The dbias partial of the thread's current group, element e at pb[e * p]: in shared memory, as a
     * 1024-thread block may hold only 128 VGPRs a thread on AMD (64 registers on NVIDIA). */
    __shared__ float pb_s[BIAS ? 8 * p : 1];
    float *const pb = pb_s + (BIAS ? t : 0);
    const int64_t groups = a.geom.groups;
    const float nf = (float)a.n;
    const int64_t gch = blockIdx.x;
    const int64_t rbeg = gch * a.chunk_rows;
    const int64_t rend = rbeg + a.chunk_rows < a.m ? rbeg + a.chunk_rows : a.m;
    for (int64_t r0_u = rbeg; r0_u < rend; r0_u += Q) {
        /* The first row as a vector value: row pointers then live in VGPRs, not AMD's scarce SGPRs. */
        const int64_t r0 = (int64_t)darn_to_vgpr64((uint64_t)r0_u);
        const int nq = rend - r0_u < Q ? (int)(rend - r0_u) : Q; /* rows of this pass */

        /* 1. The two sums of each row; one all-reduce for all of them. */
        float acc[2 * Q];
#pragma unroll
        for (int q = 0; q < 2 * Q; q++) acc[q] = -0.0f;
#pragma unroll
        for (int q = 0; q < Q; q++) {
            if (q >= nq) continue; /* (not break: the loop must unroll, acc stays in registers) */
            const darn_gpu_bwd_args &A = darn_args_again(a);
            const int64_t r = r0 + q;
            const bool layer = A.layer, zc = A.zc;
            const float rstd = DARN_LDG(DARN_GLOBAL(A.rstd) + r), mean = layer ? DARN_LDG(DARN_GLOBAL(A.mean) + r) : 0.0f;
            const void *hrow = darn_row_t<C::RO>(DARN_GLOBAL(A.h), r, A.s_h);
            const void *dyrow = darn_row_t<C::O>(DARN_GLOBAL(A.dy), r, A.s_dy);
            for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B * p) {
                darn_raw8<C::RO> rh[B] = {};
                darn_raw8<C::O> rdy[B] = {};
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = j0 + (int64_t)b * p;
                    if (j < groups) {
                        darn_load8(rh[b], hrow, j);
                        darn_load8(rdy[b], dyrow, j);
                    }
                });
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = j0 + (int64_t)b * p;
                    if (j < groups) {
                        float xhat[8], g[8];
                        darn_bwd_terms<C>(DARN_GLOBAL(A.w), layer, zc, rh[b], rdy[b], j, mean, rstd, xhat, g, g);
#pragma unroll
                        for (int e = 0; e < 8; e++) {
                            const float tt = xhat[e] * g[e];
                            acc[2 * q] = acc[2 * q] + tt;
                            acc[2 * q + 1] = acc[2 * q + 1] + g[e];
                        }
                    }
                });
            }
        }
        darn_row_allreduce<2 * Q>(acc, p, smem);
        if (t == 0) { /* every thread holds the sums; one writes c1, c2 */
#pragma unroll
            for (int q = 0; q < Q; q++) {
                row_c[0][q] = acc[2 * q] / nf;
                row_c[1][q] = a.layer ? acc[2 * q + 1] / nf : 0.0f;
            }
        }
        __syncthreads();

        /* 2. Per group: the partials once, then the rows' dh -> dresidual, dx and terms in row order. */
        for (int64_t j = t; j < groups; j += p) {
            const darn_gpu_bwd_args &Ag = darn_args_again(a);
            float *pw_row = DARN_GLOBAL(Ag.partial_w) + gch * Ag.n;
            float *pb_row = BIAS ? DARN_GLOBAL(Ag.partial_b) + gch * Ag.n : nullptr;
            float pw[8], pb0[8];
            if (r0 != rbeg) {
                darn_raw8<DARN_F32> rpw, rpb = {};
                darn_load8_rw(rpw, pw_row, j);
                if constexpr (BIAS) darn_load8_rw(rpb, pb_row, j);
                darn_cvt8(pw, rpw);
                darn_cvt8(pb0, rpb);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) pw[e] = pb0[e] = -0.0f;
            }
            if constexpr (BIAS) {
#pragma unroll
                for (int e = 0; e < 8; e++) pb[e * p] = pb0[e];
            }
#pragma unroll 1 /* one row's loads at a time: they are all in flight before its first use anyway */
            for (int q = 0; q < nq; q++) {
                const darn_gpu_bwd_args &A = darn_args_again(a); /* nothing of it held across rows (AMD) */
                uint32_t fl = (uint32_t)A.layer | (uint32_t)A.zc << 1 | (uint32_t)A.has_rowscale << 2 |
                              (uint32_t)(A.dresout != nullptr) << 3 | (uint32_t)(A.dres != nullptr) << 4 |
                              (uint32_t)(A.mask != nullptr) << 5 | (uint32_t)(A.rng.dropout != 0) << 6;
                DARN_TO_VGPR(fl); /* the options as one vector value, not a lane mask each (compat.h) */
                const bool layer = fl & 1u, zc = fl & 2u, has_rs = fl & 4u, has_dr = fl & 8u, has_dres = fl & 16u,
                           has_mask = fl & 32u, regen = !has_mask && (fl & 64u);
                const int64_t r = r0 + q;
                darn_raw8<C::RO> rh, rdr = {};
                darn_raw8<C::O> rdy;
                /* Plain loads and stores: streaming ones (compat.h) measured 2 % slower here (H200, 2026-11-25). */
                darn_load8(rh, darn_row_t<C::RO>(DARN_GLOBAL(A.h), r, A.s_h), j);
                darn_load8(rdy, darn_row_t<C::O>(DARN_GLOBAL(A.dy), r, A.s_dy), j);
                if (has_dr) darn_load8(rdr, darn_row_t<C::RO>(DARN_GLOBAL(A.dresout), r, A.s_dresout), j);
                const float rstd = DARN_LDG(DARN_GLOBAL(A.rstd) + r), mean = layer ? DARN_LDG(DARN_GLOBAL(A.mean) + r) : 0.0f;
                const float rs = has_rs ? DARN_LDG(DARN_GLOBAL(A.rowscale) + r) : 1.0f;
                uint32_t bits = 0xFFu;
                if (has_mask) bits = DARN_LDG(DARN_GLOBAL(A.mask) + r * A.mask_row_bytes + j);
                else if (regen) {
                    uint64_t seed, offset;
                    darn_rng_state(A.rng, seed, offset);
                    /* the seed in VGPRs: the round keys on the vector unit (compat.h) */
                    bits = darn_keep8_aligned(darn_to_vgpr64(seed), offset, (uint64_t)(r * A.n + j * 8),
                                              A.rng.threshold);
                }
                const float c1 = row_c[0][q], c2 = row_c[1][q];
                float xhat[8], gy[8], g[8], dh[8], v[8];
                darn_bwd_terms<C>(DARN_GLOBAL(A.w), layer, zc, rh, rdy, j, mean, rstd, xhat, gy, g);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float xc = xhat[e] * c1;
                    const float inner = layer ? xc + c2 : xc;
                    dh[e] = (g[e] - inner) * rstd;
                }
                if (has_dr) {
                    darn_cvt8(v, rdr);
#pragma unroll
                    for (int e = 0; e < 8; e++) dh[e] = dh[e] + v[e];
                }
                if (has_dres) darn_store8<C::R>(darn_row_mut_t<C::R>(DARN_GLOBAL(A.dres), r, A.s_dres), j, dh);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float u = (bits >> e) & 1u ? dh[e] * A.rng.scale : 0.0f;
                    if (has_rs) u = u * rs;
                    v[e] = u;
                    const float tw = gy[e] * xhat[e];
                    pw[e] = pw[e] + tw;
                    if constexpr (BIAS) pb[e * p] = pb[e * p] + gy[e];
                }
                darn_store8<C::X>(darn_row_mut_t<C::X>(DARN_GLOBAL(A.dx), r, A.s_dx), j, v);
            }
            darn_store8<DARN_F32>(pw_row, j, pw);
            if constexpr (BIAS) {
                float b[8];
#pragma unroll
                for (int e = 0; e < 8; e++) b[e] = pb[e * p];
                darn_store8<DARN_F32>(pb_row, j, b);
            }
        }
        __syncthreads(); /* row_c is rewritten by the next pass */
    }
}

bool darn_launch_bwd_wide(const darn_gpu_bwd_args &a, hipStream_t s)
{
    const int res_dt = a.dres ? a.dt_dres : a.dt_h; /* without a dresidual only h's dtype counts */
#define DARN_WIDE_CASE(X, R, RO, W, O)                                                                      \
    if (a.dt_dx == X && res_dt == R && a.dt_h == RO && a.dt_w == W && a.dt_dy == O) {                   \
        if (a.partial_b) hipLaunchKernelGGL((darn_bwd_wide<darn_cfg<X, R, RO, W, O>, true>), dim3((unsigned)a.chunks), dim3(DARN_WIDE_LANES), 0, s, a); \
        else hipLaunchKernelGGL((darn_bwd_wide<darn_cfg<X, R, RO, W, O>, false>), dim3((unsigned)a.chunks), dim3(DARN_WIDE_LANES), 0, s, a); \
        return true;                                                                                        \
    }
    DARN_FAST_CONFIGS(DARN_WIDE_CASE)
#undef DARN_WIDE_CASE
    return false;
}
