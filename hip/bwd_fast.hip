/*
 * bwd_fast.hip — the backward for the common case (docs/numerics.md §6): dtypes fixed at compile time
 * (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned, at most 4 groups per thread.
 *
 * Same chunk walk and same bits as darn_bwd_reg (bwd.hip): a slot of P threads takes whole chunks and
 * adds each row's dweight (dbias) terms to register partials in row order. Per row, the loads of h, dy
 * and mask bytes are all issued before the first use and the dropout bits are regenerated while they
 * are in flight; dresidual_out is loaded after the row's all-reduce, so that little is live across it.
 */
#include "fast_configs.h"

/* xhat, gy and g = gy * w' of group j (§6) from the raw h and dy; `gy` may alias `g` when only g is
 * wanted. */
template <class C>
__device__ __forceinline__ void bwd_fast_terms(const darn_gpu_bwd_args &a, const darn_raw8<C::RO> &rh,
                                               const darn_raw8<C::O> &rdy, int64_t j, float mean, float rstd,
                                               float (&xhat)[8], float (&gy)[8], float (&g)[8])
{
    darn_raw8<C::W> rw;
    darn_load8(rw, a.w, j);
    float w[8];
    darn_cvt8(xhat, rh);
    darn_cvt8(gy, rdy);
    darn_cvt8(w, rw);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float d = a.layer ? xhat[e] - mean : xhat[e];
        xhat[e] = d * rstd;
        const float wv = a.zc ? w[e] + 1.0f : w[e];
        g[e] = gy[e] * wv;
    }
}

template <class C, int K, int MAXT, bool BIAS>
__global__ void DARN_LAUNCH_BOUNDS(MAXT) darn_bwd_fast(darn_gpu_bwd_args a)
{
    __shared__ float smem[64];
    const int p = a.geom.p;
    const int slot = threadIdx.x / p, t = threadIdx.x % p;
    const int rpb = a.geom.rows_per_block;
    const int64_t groups = a.geom.groups;
    const float nf = (float)a.n;
    const bool regen = !a.mask && a.rng.dropout;
    uint64_t seed = 0, offset = 0;
    if (regen) darn_rng_state(a.rng, seed, offset);

    /* Loops are uniform across the block: idle slots shadow row 0 and store nothing. */
    for (int64_t g0 = (int64_t)blockIdx.x * rpb; g0 < a.chunks; g0 += (int64_t)gridDim.x * rpb) {
        const int64_t gch = g0 + slot;
        const bool chunk_on = gch < a.chunks;
        const int64_t rbeg = gch * a.chunk_rows;
        float pw[K][8], pb[BIAS ? K : 1][8];
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                pw[k][e] = -0.0f;
                if constexpr (BIAS) pb[k][e] = -0.0f;
            }
        });
        for (int64_t i = 0; i < a.chunk_rows; i++) {
            const bool on = chunk_on && rbeg + i < a.m;
            const int64_t r = on ? rbeg + i : 0;

            /* 1. Loads of h and dy (and mask bytes); keep bits regenerated meanwhile. */
            darn_raw8<C::O> rdy[K] = {};
            darn_raw8<C::RO> rh[K] = {};
            uint32_t bits[K];
            const void *dyrow = darn_row_t<C::O>(a.dy, r, a.s_dy);
            const void *hrow = darn_row_t<C::RO>(a.h, r, a.s_h);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                bits[k] = 0xFFu;
                if (j < groups) {
                    darn_load8(rh[k], hrow, j);
                    darn_load8(rdy[k], dyrow, j);
                    if (a.mask) bits[k] = DARN_LDG(a.mask + r * a.mask_row_bytes + j);
                }
            });
            const float rstd = DARN_LDG(a.rstd + r), mean = a.layer ? DARN_LDG(a.mean + r) : 0.0f;
            const float rs = a.has_rowscale ? DARN_LDG(a.rowscale + r) : 1.0f;
            if (regen) {
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) bits[k] = darn_keep8_aligned(seed, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
                });
            }

            /* 2. The row's two sums. Only the raw h and dy stay live across the all-reduce; xhat, gy
             * and g are recomputed from them afterwards (the weight is re-read from L1). */
            float acc[2] = {-0.0f, -0.0f};
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) {
                    float xhat[8], g[8];
                    bwd_fast_terms<C>(a, rh[k], rdy[k], j, mean, rstd, xhat, g, g);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float tt = xhat[e] * g[e];
                        acc[0] = acc[0] + tt;
                        acc[1] = acc[1] + g[e];
                    }
                }
            });
            darn_row_allreduce<2>(acc, p, smem);
            if (!on) continue;
            const float c1 = acc[0] / nf, c2 = a.layer ? acc[1] / nf : 0.0f;

            /* 3. dh -> dresidual, dx; dweight (dbias) terms. */
            const void *drrow = a.dresout ? darn_row_t<C::RO>(a.dresout, r, a.s_dresout) : nullptr;
            darn_raw8<C::RO> rdr[K] = {};
            if (drrow) {
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) darn_load8(rdr[k], drrow, j);
                });
            }
            void *dresrow = a.dres ? darn_row_mut_t<C::R>(a.dres, r, a.s_dres) : nullptr;
            void *dxrow = darn_row_mut_t<C::X>(a.dx, r, a.s_dx);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) {
                    float xhat[8], gy[8], g[8], dh[8], v[8];
                    bwd_fast_terms<C>(a, rh[k], rdy[k], j, mean, rstd, xhat, gy, g);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float xc = xhat[e] * c1;
                        const float inner = a.layer ? xc + c2 : xc;
                        dh[e] = (g[e] - inner) * rstd;
                    }
                    if (drrow) {
                        darn_cvt8(v, rdr[k]);
#pragma unroll
                        for (int e = 0; e < 8; e++) dh[e] = dh[e] + v[e];
                    }
                    if (dresrow) darn_store8<C::R>(dresrow, j, dh);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float u = (bits[k] >> e) & 1u ? dh[e] * a.rng.scale : 0.0f;
                        if (a.has_rowscale) u = u * rs;
                        v[e] = u;
                        const float tw = gy[e] * xhat[e];
                        pw[k][e] = pw[k][e] + tw;
                        if constexpr (BIAS) pb[k][e] = pb[k][e] + gy[e];
                    }
                    darn_store8<C::X>(dxrow, j, v);
                }
            });
        }
        if (!chunk_on) continue;
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
            const int64_t j = t + (int64_t)k * p;
            if (j < groups) {
                darn_store8<DARN_F32>(a.partial_w + gch * a.n, j, pw[k]);
                if constexpr (BIAS) darn_store8<DARN_F32>(a.partial_b + gch * a.n, j, pb[k]);
            }
        });
    }
}

template <class C, int K, int MAXT>
static void launch_k(const darn_gpu_bwd_args &a, dim3 grid, dim3 block, hipStream_t s)
{
    if (a.partial_b) hipLaunchKernelGGL((darn_bwd_fast<C, K, MAXT, true>), grid, block, 0, s, a);
    else hipLaunchKernelGGL((darn_bwd_fast<C, K, MAXT, false>), grid, block, 0, s, a);
}

template <class C> static void launch(const darn_gpu_bwd_args &a, dim3 grid, dim3 block, hipStream_t s)
{
    if (a.geom.block > 256) {
        launch_k<C, 4, 512>(a, grid, block, s);
        return;
    }
    switch (darn_fast_k(a.geom.k)) {
    case 1: launch_k<C, 1, 256>(a, grid, block, s); break;
    case 2: launch_k<C, 2, 256>(a, grid, block, s); break;
    default: launch_k<C, 4, 256>(a, grid, block, s); break;
    }
}

bool darn_launch_bwd_fast(const darn_gpu_bwd_args &a, hipStream_t stream)
{
    const darn_gpu_geom &g = a.geom;
    if (!darn_fast_geometry_ok(g) || a.n % 8 != 0 || a.m == 0) return false;
    if (!(a.vec_dy && a.vec_h && a.vec_w && a.vec_dx && (!a.dresout || a.vec_dresout) && (!a.dres || a.vec_dres)))
        return false;
    if (a.partial_b && a.dt_b != a.dt_w) return false;
    int64_t blocks = (a.chunks + g.rows_per_block - 1) / g.rows_per_block;
    if (blocks > 65535 * 16) blocks = 65535 * 16;
    const dim3 grid((unsigned)blocks), block((unsigned)g.block);
    const int res_dt = a.dres ? a.dt_dres : a.dt_h; /* without a dresidual only h's dtype counts */
#define DARN_FAST_CASE(X, R, RO, W, O)                                                                      \
    if (a.dt_dx == X && res_dt == R && a.dt_h == RO && a.dt_w == W && a.dt_dy == O) {                   \
        launch<darn_cfg<X, R, RO, W, O>>(a, grid, block, stream);                                           \
        return true;                                                                                        \
    }
    DARN_FAST_CONFIGS(DARN_FAST_CASE)
#undef DARN_FAST_CASE
    return false;
}
