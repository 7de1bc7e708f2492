/*
 * bwd_fast.hip — the backward for the common case (docs/numerics.md §6): dtypes fixed at compile time
 * (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned: at most 4 groups per thread. Rows of
 * 1024 lanes go to bwd_wide.hip.
 *
 * Same chunk walk and same bits as darn_bwd_reg (bwd.hip): a slot of P threads takes whole chunks and
 * adds each row's dweight (dbias) terms to register partials in row order. Per row, the loads of h, dy
 * and mask bytes are all issued before the first use and the dropout bits are regenerated while they
 * are in flight; dresidual_out is loaded after the row's all-reduce, so that little is live across it.
 */
#include "bwd_terms.h"
#include "fast_configs.h"

/* Row r of a tensor of dtype DT (null where !on) as a global pointer (compat.h, DARN_GLOBAL): the
 * kernels read their arguments through darn_args_again. */
template <int DT>
__device__ __forceinline__ const void *bwd_row(const void *base, int64_t r, int64_t stride, bool on = true)
{
    return DARN_GLOBAL(on ? darn_row_t<DT>(base, r, stride) : nullptr);
}
template <int DT>
__device__ __forceinline__ void *bwd_row_mut(void *base, int64_t r, int64_t stride, bool on = true)
{
    return DARN_GLOBAL(on ? darn_row_mut_t<DT>(base, r, stride) : nullptr);
}

/* AMD occupancy floors: as many waves per SIMD as every configuration reaches without spilling. */
template <class C, int K, int MAXT, bool BIAS>
__global__ void DARN_LAUNCH_BOUNDS_OCC(MAXT, MAXT == 256 && !BIAS ? 2 : 1, K == 4 ? 1 : K == 3 ? 3 : 4) darn_bwd_fast(darn_gpu_bwd_args a0)
{
    __shared__ float smem[64];
    const int slot = threadIdx.x / a0.geom.p, t = threadIdx.x % a0.geom.p;
    const bool regen = !a0.mask && a0.rng.dropout;
    uint64_t seed = 0, offset = 0;
    if (regen) darn_rng_state(a0.rng, seed, offset);

    /* One chunk per slot (G <= 4096 chunks always fit one grid). The row loop is uniform across the
     * block: idle slots shadow row 0 and store nothing. AMD: each row takes the arguments anew, and again
     * after the all-reduce (darn_args_again), so that no argument or value derived from one is held in
     * SGPRs across rows or across the all-reduce. */
    {
        const int64_t gch = (int64_t)blockIdx.x * a0.geom.rows_per_block + slot;
        const bool chunk_on = gch < a0.chunks;
        /* The first row as a vector value: the row loop's pointer arithmetic then runs on AMD's vector
         * unit instead of holding 64-bit temporaries in scarce SGPRs (see DARN_TO_VGPR). */
        const int64_t rbeg = (int64_t)darn_to_vgpr64((uint64_t)(gch * a0.chunk_rows));
        float pw[K][8], pb[BIAS ? K : 1][8];
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                pw[k][e] = -0.0f;
                if constexpr (BIAS) pb[k][e] = -0.0f;
            }
        });
        for (int64_t i = 0; i < a0.chunk_rows; i++) {
            const darn_gpu_bwd_args &a = darn_args_again(a0);
            const int p = a.geom.p;
            const int64_t groups = a.geom.groups;
            const bool on = chunk_on && rbeg + i < a.m;
            const int64_t r = on ? rbeg + i : 0;
            /* The options as one vector value per row: AMD would otherwise keep each as a 64-bit lane
             * mask in SGPRs across the whole row (compat.h, DARN_TO_VGPR). */
            uint32_t fl = (uint32_t)a.layer | (uint32_t)a.zc << 1 | (uint32_t)a.has_rowscale << 2 |
                          (uint32_t)(a.dresout != nullptr) << 3 | (uint32_t)(a.dres != nullptr) << 4 |
                          (uint32_t)(a.mask != nullptr) << 5;
            DARN_TO_VGPR(fl);
            const bool layer = fl & 1u, zc = fl & 2u, has_rs = fl & 4u, has_dr = fl & 8u, has_dres = fl & 16u,
                       has_mask = fl & 32u;

            /* 1. Loads of h and dy (and mask bytes); keep bits regenerated meanwhile. */
            darn_raw8<C::O> rdy[K] = {};
            darn_raw8<C::RO> rh[K] = {};
            uint32_t bits[K];
            const void *dyrow = bwd_row<C::O>(a.dy, r, a.s_dy);
            const void *hrow = bwd_row<C::RO>(a.h, r, a.s_h);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                bits[k] = 0xFFu;
                if (j < groups) {
                    darn_load8(rh[k], hrow, j);
                    darn_load8(rdy[k], dyrow, j);
                    if (has_mask) bits[k] = DARN_LDG(DARN_GLOBAL_UNIFORM(a.mask) + r * a.mask_row_bytes + j);
                }
            });
            const float rstd = DARN_LDG(DARN_GLOBAL_UNIFORM(a.rstd) + r);
            const float mean = layer ? DARN_LDG(DARN_GLOBAL_UNIFORM(a.mean) + r) : 0.0f;
            const float rs = has_rs ? DARN_LDG(DARN_GLOBAL_UNIFORM(a.rowscale) + r) : 1.0f;
            if (regen) {
                const uint64_t row_seed = darn_to_vgpr64(seed);
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) bits[k] = darn_keep8_aligned(row_seed, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
                });
            }

            /* 2. The row's two sums. Nothing of the row but its keep bits stays live across the
             * all-reduce: step 3 loads h, dy and w again, group by group (cache hits), and recomputes
             * xhat, gy and g, so a thread needs about half the registers and twice as many rows fit on
             * an SM/CU. Only dresidual_out, read once from memory, is loaded for all groups at once. */
            float acc[2] = {-0.0f, -0.0f};
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) {
                    float xhat[8], g[8];
                    darn_bwd_terms<C>(DARN_GLOBAL_UNIFORM(a.w), layer, zc, rh[k], rdy[k], j, mean, rstd, xhat, g, g);
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

            /* 3. dh -> dresidual, dx; dweight (dbias) terms. */
            const darn_gpu_bwd_args &a3 = darn_args_again(a0);
            const float nf = (float)a3.n;
            const float c1 = acc[0] / nf, c2 = layer ? acc[1] / nf : 0.0f;
            const void *drrow = bwd_row<C::RO>(a3.dresout, r, a3.s_dresout, has_dr);
            darn_raw8<C::RO> rdr[K] = {};
            if (drrow) {
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < a3.geom.groups) darn_load8(rdr[k], drrow, j);
                });
            }
            const void *dyrow3 = bwd_row<C::O>(a3.dy, r, a3.s_dy); /* again: fewer registers across the all-reduce */
            const void *hrow3 = bwd_row<C::RO>(a3.h, r, a3.s_h);
            void *dresrow = bwd_row_mut<C::R>(a3.dres, r, a3.s_dres, has_dres);
            void *dxrow = bwd_row_mut<C::X>(a3.dx, r, a3.s_dx);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < a3.geom.groups) {
                    float xhat[8], gy[8], g[8], dh[8], v[8];
                    darn_load8(rh[k], hrow3, j);
                    darn_load8(rdy[k], dyrow3, j);
                    darn_bwd_terms<C>(DARN_GLOBAL_UNIFORM(a3.w), layer, zc, rh[k], rdy[k], j, mean, rstd, xhat, gy, g);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float xc = xhat[e] * c1;
                        const float inner = layer ? xc + c2 : xc;
                        dh[e] = (g[e] - inner) * rstd;
                    }
                    if (has_dr) {
                        darn_cvt8(v, rdr[k]);
#pragma unroll
                        for (int e = 0; e < 8; e++) dh[e] = dh[e] + v[e];
                    }
                    if (has_dres) darn_store8<C::R>(dresrow, j, dh);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float u = (bits[k] >> e) & 1u ? dh[e] * a3.rng.scale : 0.0f;
                        if (has_rs) u = u * rs;
                        v[e] = u;
                        const float tw = gy[e] * xhat[e];
                        pw[k][e] = pw[k][e] + tw;
                        if constexpr (BIAS) pb[k][e] = pb[k][e] + gy[e];
                    }
                    darn_store8<C::X>(dxrow, j, v);
                }
            });
        }
        if (!chunk_on) return;
        const darn_gpu_bwd_args &a = darn_args_again(a0);
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
            const int64_t j = t + (int64_t)k * a.geom.p;
            if (j < a.geom.groups) {
                darn_store8<DARN_F32>(DARN_GLOBAL_UNIFORM(a.partial_w) + gch * a.n, j, pw[k]);
                if constexpr (BIAS) darn_store8<DARN_F32>(DARN_GLOBAL_UNIFORM(a.partial_b) + gch * a.n, j, pb[k]);
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
    if (a.geom.block > 256) { /* then K is 3 or 4 */
        if (a.geom.k == 3) launch_k<C, 3, 512>(a, grid, block, s);
        else launch_k<C, 4, 512>(a, grid, block, s);
        return;
    }
    switch (a.geom.k) {
    case 1: launch_k<C, 1, 256>(a, grid, block, s); break;
    case 2: launch_k<C, 2, 256>(a, grid, block, s); break;
    case 3: launch_k<C, 3, 256>(a, grid, block, s); break;
    default: launch_k<C, 4, 256>(a, grid, block, s); break;
    }
}

bool darn_launch_bwd_fast(const darn_gpu_bwd_args &a, hipStream_t stream)
{
    const darn_gpu_geom &g = a.geom;
    if (!(darn_fast_geometry_ok(g) || g.p == DARN_WIDE_LANES) || a.n % 8 != 0 || a.m == 0) return false;
    if (!(a.vec_dy && a.vec_h && a.vec_w && a.vec_dx && (!a.dresout || a.vec_dresout) && (!a.dres || a.vec_dres)))
        return false;
    if (a.partial_b && a.dt_b != a.dt_w) return false;
    if (g.p == DARN_WIDE_LANES) return darn_launch_bwd_wide(a, stream);
    const int64_t blocks = (a.chunks + g.rows_per_block - 1) / g.rows_per_block; /* <= 4096 */
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
