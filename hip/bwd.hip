/*
 * bwd.hip — the backward (docs/numerics.md §6): one body for rows in registers, darn_bwd<Dt, K, BIAS, PAR>, the
 * two kernels of re-read rows (darn_bwd_rowsums, darn_bwd_cols), the pass of the dweight/dbias tree, and the
 * backward rows of the dispatch table. PAR adds flash-attn's parallel residual: dy1 and weight1 in g, dx1 with
 * x1's keep bits, the dweight1 / dbias1 partials, each part under its run-time option bit.
 *
 * Rows come in the chunks of §6 (a function of M and N only). A slot (the P threads of a row) takes whole
 * chunks and walks their rows in order, adding each row's dweight (dbias) terms to the partial of its
 * columns, so each column's chunk partial is the sequential sum §6 names, whichever slot, block or SM
 * computes it. Partials go to the workspace; darn_wgrad_pass applies the pairwise tree over chunks.
 * With the row in registers (K <= 4 groups per thread) a thread issues the loads of its next row's first
 * groups before the current row's sums and reads those groups of the current row again (cache hits) for
 * its outputs, so the sums and stores overlap the next row's memory traffic (DARN_BWD_PREFETCH=0 keeps
 * the row instead). Re-read rows: see darn_bwd_rowsums below.
 */
#include "kernels.h"

#ifndef DARN_BWD_PREFETCH
#define DARN_BWD_PREFETCH 1
#endif /* DARN_BWD_PREFETCH */

#ifndef DARN_PAR_BWD_PREFETCH
#define DARN_PAR_BWD_PREFETCH 1 /* 1: the parallel backward (K = 1) gets the prefetch and the held row of the others
                                   instead of loading each row twice (0 spills; A/B in bench/RESULTS.md, run 15) */
#endif /* DARN_PAR_BWD_PREFETCH */

#define DARN_BWD_REREAD_BATCH 2 /* groups per thread and step in the re-read rows (compile-time dtypes; 1 otherwise) */


/* The PAR kernels' raw groups of dy1 (dy's type) and weight1 (weight's). */
template <class Dt, bool PAR> using darn_raw_dy1 = darn_raw_if<Dt, DARN_ROLE_O, PAR>;
template <class Dt, bool PAR> using darn_raw_w1 = darn_raw_if<Dt, DARN_ROLE_W, PAR>;

/* The PAR kernels' parallel-residual rows of a group: dy1 and weight1 (with a second output), as raw words. */
template <class Dt, bool PAR> struct bwd_par_raw {
    darn_raw_dy1<Dt, PAR> dy1;
    darn_raw_w1<Dt, PAR> w1;
};

/* xhat, gy (gy1 = dy1 with a second output) and g = gy * w' [+ gy1 * w1'] of a group (§6). */
template <class Dt, bool PAR>
__device__ __forceinline__ void bwd_group_terms(const darn_bwd_args &a, const typename Dt::template raw<DARN_ROLE_RO> &rh,
                                                const typename Dt::template raw<DARN_ROLE_O> &rdy,
                                                const typename Dt::template raw<DARN_ROLE_W> &rw,
                                                const bwd_par_raw<Dt, PAR> &rp, float mean, float rstd,
                                                float (&xhat)[8], float (&gy)[8], float (&gy1)[8], float (&g)[8])
{
    float w[8];
    Dt::template cvt<DARN_ROLE_RO>(xhat, rh, a.h);
    Dt::template cvt<DARN_ROLE_O>(gy, rdy, a.dy);
    Dt::template cvt<DARN_ROLE_W>(w, rw, a.w);
    if constexpr (PAR) {
        float w1[8];
        Dt::template cvt<DARN_ROLE_O>(gy1, rp.dy1, a.dy1);
        Dt::template cvt<DARN_ROLE_W>(w1, rp.w1, a.w1);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            xhat[e] = darn_xhat(xhat[e], mean, rstd, a.opt);
            g[e] = darn_bwd_g(gy[e], darn_weight(w[e], a.opt), gy1[e], darn_weight(w1[e], a.opt), a.opt);
        }
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) {
            xhat[e] = darn_xhat(xhat[e], mean, rstd, a.opt);
            g[e] = darn_bwd_g(gy[e], darn_weight(w[e], a.opt), 0.0f, 0.0f, 0u);
            gy1[e] = 0.0f;
        }
    }
}

/* dy1 (with a second output) of group j of row r into rp (PAR kernels; else nothing). */
template <class Dt, bool PAR>
__device__ __forceinline__ void bwd_load_dy1(const darn_bwd_args &a, int64_t r, int64_t j, bwd_par_raw<Dt, PAR> &rp)
{
    if constexpr (PAR)
        if (a.opt & DARN_OPT_Y1) Dt::template load<DARN_ROLE_O>(rp.dy1, a.dy1, r, j, a.n);
}
template <class Dt, bool PAR>
__device__ __forceinline__ void bwd_load_w1(const darn_bwd_args &a, int64_t j, bwd_par_raw<Dt, PAR> &rp)
{
    if constexpr (PAR)
        if (a.opt & DARN_OPT_Y1) Dt::template load<DARN_ROLE_W>(rp.w1, a.w1, 0, j, a.n);
}

/* The group's sums of xhat * g and of g. */
template <class Dt>
__device__ __forceinline__ void bwd_group_sums(const darn_bwd_args &a, int64_t j, const float (&xhat)[8],
                                               const float (&g)[8], float &s1, float &s2)
{
    float t[8];
#pragma unroll
    for (int e = 0; e < 8; e++) t[e] = darn_bwd_term(xhat[e], g[e]);
    const int valid = Dt::valid(j, a.n);
    s1 = darn_group_sum(t, valid);
    s2 = darn_group_sum(g, valid);
}

/* Keep bits of group j of row r: x's, or (x1 = true) x1's: the mask's (mask1's) byte when it is read, else
 * regenerated (x1's at element index + DARN_X1_INDEX, §3), or all kept. */
template <class Dt>
__device__ __forceinline__ uint32_t bwd_group_bits(const darn_bwd_args &a, uint64_t seed, uint64_t offset, int64_t r,
                                                   int64_t j, bool x1 = false)
{
    if (x1 ? a.mask1_read : a.mask_read) return DARN_LDG((x1 ? a.mask1 : a.mask) + r * a.mask_row_bytes + j);
    if (!(a.opt & DARN_OPT_DROPOUT)) return 0xFFu;
    const uint64_t i0 = (uint64_t)(r * a.n + j * 8) + a.rng.index0;
    return Dt::keep8(seed, offset, x1 ? i0 + DARN_X1_INDEX : i0, a.rng);
}
/* x1's keep bits (PAR kernels with x1 only; else unused). */
template <class Dt, bool PAR>
__device__ __forceinline__ uint32_t bwd_group_bits1(const darn_bwd_args &a, uint64_t seed, uint64_t offset, int64_t r,
                                                    int64_t j)
{
    if constexpr (PAR)
        if (a.opt & DARN_OPT_X1) return bwd_group_bits<Dt>(a, seed, offset, r, j, true);
    return 0xFFu;
}

/* dh -> dresidual, dx (and dx1) of group j, and the group's dweight (dbias; dweight1, dbias1) terms added to pw
 * (pb; pw1, pb1). */
template <class Dt, bool BIAS, bool PAR>
__device__ __forceinline__ void bwd_group_out(const darn_bwd_args &a, int64_t r, int64_t j, const float (&xhat)[8],
                                              const float (&gy)[8], const float (&gy1)[8], const float (&g)[8], float c1,
                                              float c2, float rstd, float rs, uint32_t bits, uint32_t bits1,
                                              const typename Dt::template raw<DARN_ROLE_RO> &rdr, float (&pw)[8],
                                              float (&pb)[8], float (&pw1)[8], float (&pb1)[8])
{
    float dh[8], dro[8];
#pragma unroll
    for (int e = 0; e < 8; e++) dh[e] = darn_bwd_dh(g[e], xhat[e], c1, c2, rstd, a.opt);
    if (a.dresout.p) {
        Dt::template cvt<DARN_ROLE_RO>(dro, rdr, a.dresout);
#pragma unroll
        for (int e = 0; e < 8; e++) dh[e] = dh[e] + dro[e];
    }
    if (a.dres.p) Dt::template store<DARN_ROLE_R>(a.dres, r, j, a.n, dh);
    float dx[8];
#pragma unroll
    for (int e = 0; e < 8; e++) {
        dx[e] = darn_bwd_dx(dh[e], (bits >> e) & 1u, a.rng.scale, rs, a.opt);
        pw[e] = pw[e] + darn_wgrad_term(gy[e], xhat[e]);
        if constexpr (BIAS) pb[e] = pb[e] + gy[e];
    }
    Dt::template store<DARN_ROLE_X>(a.dx, r, j, a.n, dx);
    if constexpr (PAR) {
        if (a.opt & DARN_OPT_X1) {
            float dx1[8];
#pragma unroll
            for (int e = 0; e < 8; e++) dx1[e] = darn_bwd_dx1(dh[e], (bits1 >> e) & 1u, a.rng.scale, a.opt);
            Dt::template store<DARN_ROLE_X>(a.dx1, r, j, a.n, dx1);
        }
        if (a.opt & DARN_OPT_Y1) {
            const bool b1 = a.opt & DARN_OPT_BIAS1;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                pw1[e] = pw1[e] + darn_wgrad_term(gy1[e], xhat[e]);
                if (b1) pb1[e] = pb1[e] + gy1[e];
            }
        }
    }
}

/* A chunk's partials of group j (the PAR kernels' dweight1 / dbias1 too) into the workspace. */
template <bool BIAS, bool PAR>
__device__ __forceinline__ void bwd_partials_store(const darn_bwd_args &a, int64_t g, int64_t j, const float (&pw)[8],
                                                   const float (&pb)[8], const float (&pw1)[8], const float (&pb1)[8]);

/* 8 floats of a [G][N] partial row at group j: 16-byte accesses when N % 4 == 0 (workspace rows are then
 * 16-byte aligned), element accesses (up to N) otherwise. */
__device__ __forceinline__ void partial_load(const float *row, int64_t j, int64_t n, float (&v)[8])
{
    const int64_t c0 = j * 8;
    if (n % 4 == 0 && c0 + 8 <= n) {
        const float4 x = ((const float4 *)(row + c0))[0], y = ((const float4 *)(row + c0))[1];
        v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = c0 + e < n ? row[c0 + e] : -0.0f;
}
__device__ __forceinline__ void partial_store(float *row, int64_t j, int64_t n, const float (&v)[8])
{
    const int64_t c0 = j * 8;
    if (n % 4 == 0 && c0 + 8 <= n) {
        ((float4 *)(row + c0))[0] = make_float4(v[0], v[1], v[2], v[3]);
        ((float4 *)(row + c0))[1] = make_float4(v[4], v[5], v[6], v[7]);
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (c0 + e < n) row[c0 + e] = v[e];
}

template <bool BIAS, bool PAR>
__device__ __forceinline__ void bwd_partials_store(const darn_bwd_args &a, int64_t g, int64_t j, const float (&pw)[8],
                                                   const float (&pb)[8], const float (&pw1)[8], const float (&pb1)[8])
{
    partial_store(a.partial_w + g * a.n, j, a.n, pw);
    if constexpr (BIAS) partial_store(a.partial_b + g * a.n, j, a.n, pb);
    if constexpr (PAR) {
        if (a.partial_w1) partial_store(a.partial_w1 + g * a.n, j, a.n, pw1);
        if (a.partial_b1) partial_store(a.partial_b1 + g * a.n, j, a.n, pb1);
    }
}

/* Row i of chunk g of the chunk walk, or row 0 (a shadow: loads only) past the chunk's or the call's end.
 * (Functions, not lambdas: a lambda the AMD compiler does not inline keeps the arguments in scratch.) */
__device__ __forceinline__ int64_t bwd_walk_row(const darn_bwd_args &a, int64_t g, int64_t i, bool &on)
{
    const int64_t r = g * a.chunk_rows + i;
    on = g < a.chunks && i < a.chunk_rows && r < a.m;
    return on ? r : (int64_t)0;
}

/* h, dy (dy1), and the mask byte (mask1's), when it is read, of the thread's group k of row r. */
template <class Dt, bool PAR, int K, int k>
__device__ __forceinline__ void bwd_load_group(const darn_bwd_args &a, int t, int64_t r,
                                               typename Dt::template raw<DARN_ROLE_RO> (&rh)[K],
                                               typename Dt::template raw<DARN_ROLE_O> (&rdy)[K],
                                               bwd_par_raw<Dt, PAR> (&rp)[K], uint32_t (&mbits)[K], uint32_t (&mbits1)[K])
{
    const int64_t j = t + (int64_t)k * a.p;
    mbits[k] = mbits1[k] = 0xFFu;
    if (j < a.groups) {
        Dt::template load<DARN_ROLE_RO>(rh[k], a.h, r, j, a.n);
        Dt::template load<DARN_ROLE_O>(rdy[k], a.dy, r, j, a.n);
        bwd_load_dy1<Dt, PAR>(a, r, j, rp[k]);
        if (a.mask_read) mbits[k] = DARN_LDG(a.mask + r * a.mask_row_bytes + j);
        if (PAR && a.mask1_read) mbits1[k] = DARN_LDG(a.mask1 + r * a.mask_row_bytes + j);
    }
}

template <class Dt, bool PAR, int K, int k>
__device__ __forceinline__ void bwd_load_w(const darn_bwd_args &a, int t, typename Dt::template raw<DARN_ROLE_W> (&rw)[K],
                                           bwd_par_raw<Dt, PAR> (&rp)[K])
{
    const int64_t j = t + (int64_t)k * a.p;
    if (j < a.groups) {
        Dt::template load<DARN_ROLE_W>(rw[k], a.w, 0, j, a.n);
        bwd_load_w1<Dt, PAR>(a, j, rp[k]);
    }
}

/* The backward with the row in registers. */
template <class Dt, int K, bool BIAS, bool PAR>
__global__ void DARN_LAUNCH_BOUNDS(DARN_MAX_P_REG, (K > 2 ? 2 : 8)) darn_bwd(const darn_bwd_args a)
{
    using RH = typename Dt::template raw<DARN_ROLE_RO>;
    using RDY = typename Dt::template raw<DARN_ROLE_O>;
    using RW = typename Dt::template raw<DARN_ROLE_W>;
    __shared__ float smem[2 * 2 * K * 32]; /* darn_row_allreduce's two halves of 2 * K values */
    int phase = 0;
    const int block = (int)blockIdx.x, blocks = (int)gridDim.x;
    /* t: the thread's first group in the row */
    const int p = a.p, slot = threadIdx.x / p, t = threadIdx.x % p;
    const int64_t groups = a.groups, R = a.chunk_rows;
    const int64_t slot_stride = (int64_t)blocks * a.rows_per_block;
    const float nf = (float)a.n;
    const bool layer = a.opt & DARN_OPT_LAYER;
    uint64_t seed = 0, offset = 0;
    if ((a.opt & DARN_OPT_DROPOUT) && !a.mask_read) darn_rng_state(a.rng, seed, offset);

    {
        /* What stays in registers across a row's sums decides the order of work: the next row's first
         * PFK groups are loaded before this row's sums (this row's are read again afterwards: cache hits);
         * the weight stays in registers across rows only for K = 1; dresidual_out is loaded after the
         * sums. */
        /* K > 2, or PAR without DARN_PAR_BWD_PREFETCH (dy1, weight1 and two more partials): the registers are spent
         * (AMD spilled at K = 2), so nothing is prefetched and the row's groups are loaded again after the sums
         * (cache hits) */
        constexpr bool PAR_NO_PF = PAR && !DARN_PAR_BWD_PREFETCH;
        constexpr int PFK = DARN_BWD_PREFETCH && K <= 2 && !PAR_NO_PF ? K : 0;
        constexpr bool RELOAD = K > 2 || PAR_NO_PF;
        constexpr bool KEEP_W = K == 1 && !PAR;
        RW rw[K] = {};
        bwd_par_raw<Dt, PAR> rp[K] = {}; /* dy1 and weight1 */
        if (KEEP_W) darn_unroll<K>([&](auto kk) { bwd_load_w<Dt, PAR, K, decltype(kk)::value>(a, t, rw, rp); });
        RH rh[K] = {};
        RDY rdy[K] = {};
        uint32_t mbits[K], mbits1[K]; /* mask (mask1) bytes, loaded with the row when the mask is read */
        bool first_on;
        if (PFK > 0) {
            const int64_t r1 = bwd_walk_row(a, (int64_t)block * a.rows_per_block + slot, 0, first_on);
            darn_unroll<PFK>(
                [&](auto kk) { bwd_load_group<Dt, PAR, K, decltype(kk)::value>(a, t, r1, rh, rdy, rp, mbits, mbits1); });
        }
        for (int64_t gb = (int64_t)block * a.rows_per_block; gb < a.chunks; gb += slot_stride) { /* uniform */
            const int64_t g = gb + slot;
            float pw[K][8], pb[BIAS ? K : 1][8], pw1[PAR ? K : 1][8], pb1[PAR ? K : 1][8];
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    pw[k][e] = -0.0f;
                    if constexpr (BIAS) pb[k][e] = -0.0f;
                    if constexpr (PAR) pw1[k][e] = pb1[k][e] = -0.0f;
                }
            });
            for (int64_t i = 0; i < R; i++) {
                bool on;
                const int64_t r = bwd_walk_row(a, g, i, on);
                darn_unroll<K>([&](auto kk) { /* the groups not prefetched */
                    if constexpr (decltype(kk)::value >= PFK)
                        bwd_load_group<Dt, PAR, K, decltype(kk)::value>(a, t, r, rh, rdy, rp, mbits, mbits1);
                });
                if (!KEEP_W) darn_unroll<K>([&](auto kk) { bwd_load_w<Dt, PAR, K, decltype(kk)::value>(a, t, rw, rp); });
                const float rstd = a.rstd[r];
                const float mean = layer ? a.mean[r] : 0.0f;
                const float rs = (a.opt & DARN_OPT_ROWSCALE) ? a.rowscale[r] : 1.0f;
                uint32_t bits[K], bits1[K];
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    bits[k] = mbits[k];
                    if (j < groups && !a.mask_read && (a.opt & DARN_OPT_DROPOUT))
                        bits[k] = bwd_group_bits<Dt>(a, seed, offset, r, j);
                    bits1[k] = mbits1[k];
                    if (j < groups && !a.mask1_read) bits1[k] = bwd_group_bits1<Dt, PAR>(a, seed, offset, r, j);
                });
                /* The row's two sums. */
                float acc[2 * K];
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    acc[k] = acc[K + k] = -0.0f;
                    if (j < groups) {
                        float xhat[8], gy[8], gy1[8], gg[8];
                        bwd_group_terms<Dt, PAR>(a, rh[k], rdy[k], rw[k], rp[k], mean, rstd, xhat, gy, gy1, gg);
                        bwd_group_sums<Dt>(a, j, xhat, gg, acc[k], acc[K + k]);
                    }
                });
                if (PFK > 0 && (i + 1 < R || gb + slot_stride < a.chunks)) {
                    /* the next row of this slot: in this chunk, else the slot's next chunk */
                    bool on_next;
                    const int64_t rn = i + 1 < R ? bwd_walk_row(a, g, i + 1, on_next) : bwd_walk_row(a, g + slot_stride, 0, on_next);
                    darn_unroll<PFK>([&](auto kk) {
                        bwd_load_group<Dt, PAR, K, decltype(kk)::value>(a, t, rn, rh, rdy, rp, mbits, mbits1);
                    });
                }
                float c1, c2 = 0.0f;
                if (layer) {
                    darn_row_allreduce<2 * K>(acc, p, smem, phase);
                    float s1[K], s2[K];
#pragma unroll
                    for (int k = 0; k < K; k++) s1[k] = acc[k], s2[k] = acc[K + k];
                    c1 = darn_row_mean(darn_tree_k<K>(s1), nf);
                    c2 = darn_row_mean(darn_tree_k<K>(s2), nf);
                } else {
                    float s1[K];
#pragma unroll
                    for (int k = 0; k < K; k++) s1[k] = acc[k];
                    c1 = darn_row_mean(darn_row_sum<K>(s1, p, smem, phase), nf);
                }
                if (!on) continue;
                /* dh -> dresidual, dx; dweight (dbias) terms. */
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) {
                        float xhat[8], gy[8], gy1[8], gg[8];
                        RH rdr = {};
                        if (a.dresout.p) Dt::template load<DARN_ROLE_RO>(rdr, a.dresout, r, j, a.n);
                        if constexpr (k < PFK || RELOAD) { /* this row again: its first loads made it a cache hit
                                                            * (RELOAD: nothing of the row is held across the sums) */
                            RH h2;
                            RDY dy2;
                            bwd_par_raw<Dt, PAR> rp2;
                            Dt::template load<DARN_ROLE_RO>(h2, a.h, r, j, a.n);
                            Dt::template load<DARN_ROLE_O>(dy2, a.dy, r, j, a.n);
                            bwd_load_dy1<Dt, PAR>(a, r, j, rp2);
                            bwd_load_w1<Dt, PAR>(a, j, rp2);
                            bwd_group_terms<Dt, PAR>(a, h2, dy2, rw[k], rp2, mean, rstd, xhat, gy, gy1, gg);
                        } else {
                            bwd_group_terms<Dt, PAR>(a, rh[k], rdy[k], rw[k], rp[k], mean, rstd, xhat, gy, gy1, gg);
                        }
                        bwd_group_out<Dt, BIAS, PAR>(a, r, j, xhat, gy, gy1, gg, c1, c2, rstd, rs, bits[k], bits1[k], rdr,
                                                     pw[k], pb[BIAS ? k : 0], pw1[PAR ? k : 0], pb1[PAR ? k : 0]);
                    }
                });
            }
            if (g < a.chunks) {
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups)
                        bwd_partials_store<BIAS, PAR>(a, g, j, pw[k], pb[BIAS ? k : 0], pw1[PAR ? k : 0], pb1[PAR ? k : 0]);
                });
            }
        }
    }
}

/* ---- re-read rows (rows too wide for a slot's registers): two kernels --------------------------------
 * A row's c1 / c2 need the whole row, and a chunk's dweight partial needs its rows in order; one block
 * per chunk doing both left a grid of G = ceil(M / R) blocks (32 at N = 65536, M·N = 2^26). So the sums
 * come first, one row per block (darn_bwd_rowsums: P = DARN_REREAD_P threads, B groups per thread and
 * step, the column sums into the stream tree of reduce.h), into the workspace as (c1, c2) per row; then
 * darn_bwd_cols gives each thread one group of one chunk: it walks the chunk's rows in order (the §6
 * sequential sum, in registers) and writes their dresidual / dx, its loads DARN_BWD_COLS_AHEAD rows ahead.
 * G · ceil(N / 8) threads: 2^18 and more once M·N >= 2^21 (§6). h and dy are read twice. */

/* c1, c2 (the row means of §6's two sums) of row r into rowc[2r], rowc[2r + 1]. */
template <class Dt, bool PAR>
__global__ void DARN_LAUNCH_BOUNDS(DARN_REREAD_P, 2) darn_bwd_rowsums(const darn_bwd_args a)
{
    using RH = typename Dt::template raw<DARN_ROLE_RO>;
    using RDY = typename Dt::template raw<DARN_ROLE_O>;
    using RW = typename Dt::template raw<DARN_ROLE_W>;
    constexpr int B = Dt::is_static ? DARN_BWD_REREAD_BATCH : 1;
    __shared__ float smem[2 * 2 * B * 32]; /* darn_row_allreduce's two halves of 2 * B values */
    int phase = 0;
    __shared__ float stack[2 * DARN_STREAM_LEVELS]; /* thread 0's (shared memory: indexed at run time) */
    float *const st1 = stack, *const st2 = stack + DARN_STREAM_LEVELS;
    const int p = DARN_REREAD_P, t = threadIdx.x;
    const int64_t groups = a.groups, kr = (groups + p - 1) / p;
    const float nf = (float)a.n;
    const bool layer = a.opt & DARN_OPT_LAYER;
    for (int64_t r = blockIdx.x; r < a.m; r += gridDim.x) {
        const float rstd = a.rstd[r];
        const float mean = layer ? a.mean[r] : 0.0f;
        for (int64_t kb = 0; kb < kr; kb += B) {
            RH rh[B] = {};
            RDY rdy[B] = {};
            RW rw[B] = {};
            bwd_par_raw<Dt, PAR> rp[B] = {};
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = t + (kb + b) * p;
                if (j < groups) {
                    Dt::template load<DARN_ROLE_RO>(rh[b], a.h, r, j, a.n);
                    Dt::template load<DARN_ROLE_O>(rdy[b], a.dy, r, j, a.n);
                    Dt::template load<DARN_ROLE_W>(rw[b], a.w, 0, j, a.n);
                    bwd_load_dy1<Dt, PAR>(a, r, j, rp[b]);
                    bwd_load_w1<Dt, PAR>(a, j, rp[b]);
                }
            });
            float acc[2 * B];
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = t + (kb + b) * p;
                acc[b] = acc[B + b] = -0.0f;
                if (j < groups) {
                    float xhat[8], gy[8], gy1[8], gg[8];
                    bwd_group_terms<Dt, PAR>(a, rh[b], rdy[b], rw[b], rp[b], mean, rstd, xhat, gy, gy1, gg);
                    bwd_group_sums<Dt>(a, j, xhat, gg, acc[b], acc[B + b]);
                }
            });
            darn_row_allreduce<2 * B>(acc, p, smem, phase);
            if (t == 0) {
#pragma unroll
                for (int b = 0; b < B; b++)
                    if (kb + b < kr) {
                        darn_stream_push(st1, kb + b, acc[b]);
                        darn_stream_push(st2, kb + b, acc[B + b]);
                    }
            }
        }
        if (t == 0) {
            a.rowc[2 * r] = darn_row_mean(darn_stream_total(st1, kr), nf);
            a.rowc[2 * r + 1] = layer ? darn_row_mean(darn_stream_total(st2, kr), nf) : 0.0f;
        }
    }
}

#ifndef DARN_BWD_COLS_AHEAD
#define DARN_BWD_COLS_AHEAD 1 /* rows whose loads are in flight while a row is computed (1 beat 2: run 12) */
#endif /* DARN_BWD_COLS_AHEAD */

/* What a thread of darn_bwd_cols loads of row r for its group j. */
template <class Dt, bool PAR> struct bwd_col_row {
    typename Dt::template raw<DARN_ROLE_RO> h, dro;
    typename Dt::template raw<DARN_ROLE_O> dy;
    darn_raw_dy1<Dt, PAR> dy1;
    uint32_t mbits, mbits1;
    float rstd, mean, rs, c1, c2;
};

template <class Dt, bool PAR>
__device__ __forceinline__ void bwd_col_load(const darn_bwd_args &a, int64_t r, int64_t j, bool on, bwd_col_row<Dt, PAR> &v)
{
    v.h = {};
    v.dro = {};
    v.dy = {};
    v.dy1 = {};
    v.mbits = v.mbits1 = 0xFFu;
    v.rstd = v.mean = v.c1 = v.c2 = 0.0f;
    v.rs = 1.0f;
    if (!on) return;
    Dt::template load<DARN_ROLE_RO>(v.h, a.h, r, j, a.n);
    Dt::template load<DARN_ROLE_O>(v.dy, a.dy, r, j, a.n);
    if (a.dresout.p) Dt::template load<DARN_ROLE_RO>(v.dro, a.dresout, r, j, a.n);
    if (a.mask_read) v.mbits = DARN_LDG(a.mask + r * a.mask_row_bytes + j);
    if constexpr (PAR) {
        if (a.opt & DARN_OPT_Y1) Dt::template load<DARN_ROLE_O>(v.dy1, a.dy1, r, j, a.n);
        if (a.mask1_read) v.mbits1 = DARN_LDG(a.mask1 + r * a.mask_row_bytes + j);
    }
    v.rstd = a.rstd[r];
    if (a.opt & DARN_OPT_LAYER) v.mean = a.mean[r];
    if (a.opt & DARN_OPT_ROWSCALE) v.rs = a.rowscale[r];
    v.c1 = a.rowc[2 * r];
    v.c2 = a.rowc[2 * r + 1];
}

/* Row r of a darn_bwd_cols thread's group j: dresidual / dx (dx1), and its terms added to the partials. */
template <class Dt, bool BIAS, bool PAR>
__device__ __forceinline__ void bwd_col_step(const darn_bwd_args &a, const bwd_col_row<Dt, PAR> &v, int64_t r, int64_t j,
                                             const typename Dt::template raw<DARN_ROLE_W> &rw, bwd_par_raw<Dt, PAR> &rp,
                                             uint64_t seed, uint64_t offset, float (&pw)[8], float (&pb)[8],
                                             float (&pw1)[8], float (&pb1)[8])
{
    float xhat[8], gy[8], gy1[8], gg[8];
    if constexpr (PAR) rp.dy1 = v.dy1;
    bwd_group_terms<Dt, PAR>(a, v.h, v.dy, rw, rp, v.mean, v.rstd, xhat, gy, gy1, gg);
    uint32_t bits = v.mbits, bits1 = v.mbits1;
    if (!a.mask_read && (a.opt & DARN_OPT_DROPOUT)) bits = bwd_group_bits<Dt>(a, seed, offset, r, j);
    if (!a.mask1_read) bits1 = bwd_group_bits1<Dt, PAR>(a, seed, offset, r, j);
    bwd_group_out<Dt, BIAS, PAR>(a, r, j, xhat, gy, gy1, gg, v.c1, v.c2, v.rstd, v.rs, bits, bits1, v.dro, pw, pb, pw1,
                                 pb1);
}

/* One thread per (chunk, group): blockIdx walks units u = g * col_blocks + column block. */
template <class Dt, bool BIAS, bool PAR>
__global__ void DARN_LAUNCH_BOUNDS(DARN_SMALL_BLOCK, 4) darn_bwd_cols(const darn_bwd_args a)
{
    constexpr int D = DARN_BWD_COLS_AHEAD;
    /* The run-time-dtype PAR kernel holds 8 floats per tensor and group: one row ahead does not fit AMD's registers
     * (scratch on gfx90a / gfx940, tools/amd-resource-check 2026-12-03), so it loads each row when it needs it. */
    constexpr bool AHEAD = !(PAR && !Dt::is_static);
    const int64_t col_blocks = (a.groups + DARN_SMALL_BLOCK - 1) / DARN_SMALL_BLOCK, R = a.chunk_rows;
    uint64_t seed = 0, offset = 0;
    if ((a.opt & DARN_OPT_DROPOUT) && !a.mask_read) darn_rng_state(a.rng, seed, offset);
    for (int64_t u = blockIdx.x; u < a.chunks * col_blocks; u += gridDim.x) { /* no barriers inside */
        const int64_t g = u / col_blocks, j = (u - g * col_blocks) * DARN_SMALL_BLOCK + threadIdx.x;
        if (j >= a.groups) continue;
        const int64_t r0 = g * R, r1 = r0 + R < a.m ? r0 + R : a.m;
        typename Dt::template raw<DARN_ROLE_W> rw;
        Dt::template load<DARN_ROLE_W>(rw, a.w, 0, j, a.n);
        bwd_par_raw<Dt, PAR> rp = {}; /* weight1 here, dy1 per row */
        bwd_load_w1<Dt, PAR>(a, j, rp);
        float pw[8], pb[8], pw1[8], pb1[8];
#pragma unroll
        for (int e = 0; e < 8; e++) pw[e] = pb[e] = pw1[e] = pb1[e] = -0.0f;
        if constexpr (AHEAD) {
            bwd_col_row<Dt, PAR> ring[D];
            darn_unroll<D>([&](auto dd) {
                constexpr int d = decltype(dd)::value;
                bwd_col_load<Dt, PAR>(a, r0 + d, j, r0 + d < r1, ring[d]);
            });
            for (int64_t r = r0; r < r1; r += D) {
                darn_unroll<D>([&](auto dd) { /* rows r + d in order: the partial's sequential sum */
                    constexpr int d = decltype(dd)::value;
                    if (r + d < r1) {
                        const bwd_col_row<Dt, PAR> v = ring[d];
                        bwd_col_load<Dt, PAR>(a, r + d + D, j, r + d + D < r1, ring[d]); /* D rows ahead */
                        bwd_col_step<Dt, BIAS, PAR>(a, v, r + d, j, rw, rp, seed, offset, pw, pb, pw1, pb1);
                    }
                });
            }
        } else {
            for (int64_t r = r0; r < r1; r++) {
                bwd_col_row<Dt, PAR> v;
                bwd_col_load<Dt, PAR>(a, r, j, true, v);
                bwd_col_step<Dt, BIAS, PAR>(a, v, r, j, rw, rp, seed, offset, pw, pb, pw1, pb1);
            }
        }
        bwd_partials_store<BIAS, PAR>(a, g, j, pw, pb, pw1, pb1);
    }
}

/* dweight (dbias) per column: the pairwise tree of §6 over the G chunk partials, in passes. The levels
 * d = 1 … 16 of the tree stay inside aligned blocks of 32 partials, so one pass turns each block into
 * its subtree sum (a missing partner is −0.0, which passes a value through unchanged), and the next pass
 * does the same to those sums at step 32, then 1024, …. A thread owns one column of one block: 32
 * independent loads (coalesced across the columns), then the tree in registers with compile-time
 * indices. blockIdx.x = column block + col_blocks * chunk block; blockIdx.y picks dweight or dbias. */
__global__ void __launch_bounds__(256) darn_wgrad_pass(const darn_wgrad_args a)
{
    const int64_t cb = (int64_t)blockIdx.x % a.col_blocks, qb = (int64_t)blockIdx.x / a.col_blocks;
    const int64_t c = cb * 256 + threadIdx.x;
    if (c >= a.n) return;
    const int which = blockIdx.y;
    float *q = a.partial[which];
    const int64_t first = qb * 32;
    float v[32];
#pragma unroll
    for (int i = 0; i < 32; i++) v[i] = first + i < a.count ? q[(first + i) * a.step * a.n + c] : -0.0f;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
#pragma unroll
        for (int i = 0; i < 32; i += 2 * d) v[i] = v[i] + v[i + d];
    }
    if (a.count > 32) {
        q[first * a.step * a.n + c] = v[0];
        return;
    }
    const int dt = a.dt[which];
    if (dt == DARN_F32) ((float *)a.dst[which])[c] = darn_canonical_f32(v[0]);
    else if (dt == DARN_F16) ((uint16_t *)a.dst[which])[c] = darn_f32_to_f16(v[0]);
    else ((uint16_t *)a.dst[which])[c] = darn_f32_to_bf16(v[0]);
}
const void *const darn_wgrad_pass_kernel = (const void *)darn_wgrad_pass;

#ifndef DARN_NO_TABLE /* (experiments compile single instances of the body) */
/* The backward rows of the dispatch table for each dtype configuration, in dispatch.h's order; the re-read
 * entries name darn_bwd_cols, whose row sums darn_bwd_rowsums_table[cfg] computes first. */
#define DARN_BWD_VARIANT(K, PAR, ...) \
    (const void *)darn_bwd<__VA_ARGS__, K, false, PAR>, (const void *)darn_bwd<__VA_ARGS__, K, true, PAR>,
#define DARN_BWD_ROW(PAR, ...)                                                                  \
    DARN_BWD_VARIANT(1, PAR, __VA_ARGS__) DARN_BWD_VARIANT(2, PAR, __VA_ARGS__)                 \
    (const void *)darn_bwd_cols<__VA_ARGS__, false, PAR>, (const void *)darn_bwd_cols<__VA_ARGS__, true, PAR>,
#define DARN_BWD_PAR_ROW_1(...)                      \
    DARN_BWD_VARIANT(1, true, __VA_ARGS__)           \
    (const void *)darn_bwd_cols<__VA_ARGS__, false, true>, (const void *)darn_bwd_cols<__VA_ARGS__, true, true>,
#define DARN_BWD_STATIC_ROW(X, R, RO, W, O, KMAX) DARN_BWD_ROW(false, darn_dt_static<X, R, RO, W, O>)
#define DARN_BWD_PAR_ROW(X, R, RO, W, O, KMAX) DARN_BWD_PAR_ROW_1(darn_dt_static<X, R, RO, W, O>)
const void *const darn_bwd_table[] = {DARN_STATIC_CONFIGS(DARN_BWD_STATIC_ROW) DARN_BWD_ROW(false, darn_dt_runtime)
                                          DARN_PAR_CONFIGS(DARN_BWD_PAR_ROW) DARN_BWD_PAR_ROW_1(darn_dt_runtime)};
static_assert(sizeof darn_bwd_table / sizeof darn_bwd_table[0] == DARN_N_BWD_ENTRIES, "one kernel per entry");
static_assert(DARN_BWD_MAX_K == 2 && DARN_PAR_BWD_MAX_K == 1,
              "darn_bwd_table rows list K = 1, 2 (parallel: K = 1) and the re-read variant");
#define DARN_BWD_ROWSUMS(X, R, RO, W, O, KMAX) (const void *)darn_bwd_rowsums<darn_dt_static<X, R, RO, W, O>, false>,
#define DARN_BWD_PAR_ROWSUMS(X, R, RO, W, O, KMAX) (const void *)darn_bwd_rowsums<darn_dt_static<X, R, RO, W, O>, true>,
const void *const darn_bwd_rowsums_table[DARN_N_BWD_CONFIGS] = {
    DARN_STATIC_CONFIGS(DARN_BWD_ROWSUMS)(const void *) darn_bwd_rowsums<darn_dt_runtime, false>,
    DARN_PAR_CONFIGS(DARN_BWD_PAR_ROWSUMS)(const void *) darn_bwd_rowsums<darn_dt_runtime, true>};
#endif /* DARN_NO_TABLE */
