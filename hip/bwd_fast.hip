/*
 * bwd_fast.hip — the backward for the common case (docs/numerics.md §6): dtypes fixed at compile time
 * (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned. darn_bwd_fast: at most 4 groups per
 * thread; darn_bwd_wide: rows of 1024 lanes, any length.
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
__device__ __forceinline__ void bwd_fast_terms(const darn_gpu_bwd_args &a, bool layer, bool zc, const darn_raw8<C::RO> &rh,
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
        const float d = layer ? xhat[e] - mean : xhat[e];
        xhat[e] = d * rstd;
        const float wv = zc ? w[e] + 1.0f : w[e];
        g[e] = gy[e] * wv;
    }
}

template <class C, int K, int MAXT, bool BIAS>
__global__ void DARN_LAUNCH_BOUNDS_OCC(MAXT, MAXT == 256 && !BIAS ? 2 : 1, K >= 3 ? 1 : K == 2 ? 3 : 4) darn_bwd_fast(darn_gpu_bwd_args a)
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

    /* One chunk per slot (G <= 4096 chunks always fit one grid). The row loop is uniform across the
     * block: idle slots shadow row 0 and store nothing. */
    {
        const int64_t gch = (int64_t)blockIdx.x * rpb + slot;
        const bool chunk_on = gch < a.chunks;
        /* The first row as a vector value: the row loop's pointer arithmetic then runs on AMD's vector
         * unit instead of holding 64-bit temporaries in scarce SGPRs (see DARN_TO_VGPR). */
        uint32_t rb_lo = (uint32_t)(gch * a.chunk_rows), rb_hi = (uint32_t)((uint64_t)(gch * a.chunk_rows) >> 32);
        DARN_TO_VGPR(rb_lo);
        DARN_TO_VGPR(rb_hi);
        const int64_t rbeg = (int64_t)(((uint64_t)rb_hi << 32) | rb_lo);
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
            /* The options as one vector value per row: AMD would otherwise keep each as a 64-bit lane
             * mask in SGPRs across the whole loop (compat.h, DARN_TO_VGPR). */
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
            const void *dyrow = darn_row_t<C::O>(a.dy, r, a.s_dy);
            const void *hrow = darn_row_t<C::RO>(a.h, r, a.s_h);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                bits[k] = 0xFFu;
                if (j < groups) {
                    darn_load8(rh[k], hrow, j);
                    darn_load8(rdy[k], dyrow, j);
                    if (has_mask) bits[k] = DARN_LDG(a.mask + r * a.mask_row_bytes + j);
                }
            });
            const float rstd = DARN_LDG(a.rstd + r), mean = layer ? DARN_LDG(a.mean + r) : 0.0f;
            const float rs = has_rs ? DARN_LDG(a.rowscale + r) : 1.0f;
            if (regen) {
                uint32_t s_lo = (uint32_t)seed, s_hi = (uint32_t)(seed >> 32);
                DARN_TO_VGPR(s_lo);
                DARN_TO_VGPR(s_hi);
                const uint64_t row_seed = ((uint64_t)s_hi << 32) | s_lo;
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
                    bwd_fast_terms<C>(a, layer, zc, rh[k], rdy[k], j, mean, rstd, xhat, g, g);
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
            const float c1 = acc[0] / nf, c2 = layer ? acc[1] / nf : 0.0f;

            /* 3. dh -> dresidual, dx; dweight (dbias) terms. */
            const void *drrow = has_dr ? darn_row_t<C::RO>(a.dresout, r, a.s_dresout) : nullptr;
            darn_raw8<C::RO> rdr[K] = {};
            if (drrow) {
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) darn_load8(rdr[k], drrow, j);
                });
            }
            void *dresrow = has_dres ? darn_row_mut_t<C::R>(a.dres, r, a.s_dres) : nullptr;
            void *dxrow = darn_row_mut_t<C::X>(a.dx, r, a.s_dx);
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) {
                    float xhat[8], gy[8], g[8], dh[8], v[8];
                    darn_load8(rh[k], hrow, j);
                    darn_load8(rdy[k], dyrow, j);
                    bwd_fast_terms<C>(a, layer, zc, rh[k], rdy[k], j, mean, rstd, xhat, gy, g);
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
                        float u = (bits[k] >> e) & 1u ? dh[e] * a.rng.scale : 0.0f;
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

/* Rows of 1024 lanes (N > 16384): one chunk per block of 1024 threads. The row's two sums take the
 * thread's groups two at a time; the second pass takes them one at a time (h, dy, dresidual_out,
 * weight and the chunk partial of a group all in flight together) and keeps the dweight (dbias)
 * partials in the workspace, each thread re-reading and re-writing its own columns row after row. */
template <class C, bool BIAS>
__global__ void DARN_LAUNCH_BOUNDS(1024) darn_bwd_wide(darn_gpu_bwd_args a)
{
    constexpr int B = 2;
    __shared__ float smem[64];
    const int p = a.geom.p, t = threadIdx.x;
    const int64_t groups = a.geom.groups;
    const float nf = (float)a.n;
    const bool regen = !a.mask && a.rng.dropout;
    uint64_t seed = 0, offset = 0;
    if (regen) darn_rng_state(a.rng, seed, offset);
    const int64_t gch = blockIdx.x;
    const int64_t rbeg = gch * a.chunk_rows;
    const int64_t rend = rbeg + a.chunk_rows < a.m ? rbeg + a.chunk_rows : a.m;
    float *pw_row = a.partial_w + gch * a.n;
    float *pb_row = BIAS ? a.partial_b + gch * a.n : nullptr;
    for (int64_t r_u = rbeg; r_u < rend; r_u++) {
        /* The row as a vector value: its pointers then live in VGPRs, not in AMD's scarce SGPRs. */
        uint32_t r_lo = (uint32_t)r_u, r_hi = (uint32_t)((uint64_t)r_u >> 32);
        DARN_TO_VGPR(r_lo);
        DARN_TO_VGPR(r_hi);
        const int64_t r = (int64_t)(((uint64_t)r_hi << 32) | r_lo);
        uint32_t fl = (uint32_t)a.layer | (uint32_t)a.zc << 1 | (uint32_t)a.has_rowscale << 2 |
                      (uint32_t)(a.dresout != nullptr) << 3 | (uint32_t)(a.dres != nullptr) << 4 |
                      (uint32_t)(a.mask != nullptr) << 5; /* options in a vector register, as above */
        DARN_TO_VGPR(fl);
        const bool layer = fl & 1u, zc = fl & 2u, has_rs = fl & 4u, has_dr = fl & 8u, has_dres = fl & 16u;
        const float rstd = DARN_LDG(a.rstd + r), mean = layer ? DARN_LDG(a.mean + r) : 0.0f;
        const float rs = has_rs ? DARN_LDG(a.rowscale + r) : 1.0f;
        const void *hrow = darn_row_t<C::RO>(a.h, r, a.s_h);
        const void *dyrow = darn_row_t<C::O>(a.dy, r, a.s_dy);
        float acc[2] = {-0.0f, -0.0f};
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
                    bwd_fast_terms<C>(a, layer, zc, rh[b], rdy[b], j, mean, rstd, xhat, g, g);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float tt = xhat[e] * g[e];
                        acc[0] = acc[0] + tt;
                        acc[1] = acc[1] + g[e];
                    }
                }
            });
        }
        darn_row_allreduce<2>(acc, p, smem);
        const float c1 = acc[0] / nf, c2 = layer ? acc[1] / nf : 0.0f;
        const void *drrow = has_dr ? darn_row_t<C::RO>(a.dresout, r, a.s_dresout) : nullptr;
        void *dresrow = has_dres ? darn_row_mut_t<C::R>(a.dres, r, a.s_dres) : nullptr;
        void *dxrow = darn_row_mut_t<C::X>(a.dx, r, a.s_dx);
        for (int64_t j = t; j < groups; j += p) {
            uint32_t flj = fl; /* per group again: nothing of it hoisted out of this loop */
            DARN_TO_VGPR(flj);
            const bool layer = flj & 1u, zc = flj & 2u, has_rs = flj & 4u, has_dr = flj & 8u, has_dres = flj & 16u,
                       has_mask = flj & 32u;
            darn_raw8<C::RO> rh, rdr = {};
            darn_raw8<C::O> rdy;
            darn_raw8<DARN_F32> rpw = {}, rpb = {};
            darn_load8(rh, hrow, j);
            darn_load8(rdy, dyrow, j);
            if (has_dr) darn_load8(rdr, drrow, j);
            if (r_u != rbeg) {
                darn_load8_rw(rpw, pw_row, j);
                if constexpr (BIAS) darn_load8_rw(rpb, pb_row, j);
            }
            uint32_t bits = 0xFFu;
            if (has_mask) bits = DARN_LDG(a.mask + r * a.mask_row_bytes + j);
            else if (regen) {
                uint32_t s_lo = (uint32_t)seed, s_hi = (uint32_t)(seed >> 32);
                DARN_TO_VGPR(s_lo); /* see compat.h */
                DARN_TO_VGPR(s_hi);
                bits = darn_keep8_aligned(((uint64_t)s_hi << 32) | s_lo, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
            }
            float xhat[8], gy[8], g[8], dh[8], v[8], pw[8], pb[8];
            bwd_fast_terms<C>(a, layer, zc, rh, rdy, j, mean, rstd, xhat, gy, g);
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
            if (has_dres) darn_store8<C::R>(dresrow, j, dh);
            if (r_u != rbeg) {
                darn_cvt8(pw, rpw);
                darn_cvt8(pb, rpb);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) pw[e] = pb[e] = -0.0f;
            }
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float u = (bits >> e) & 1u ? dh[e] * a.rng.scale : 0.0f;
                if (has_rs) u = u * rs;
                v[e] = u;
                const float tw = gy[e] * xhat[e];
                pw[e] = pw[e] + tw;
                pb[e] = pb[e] + gy[e];
            }
            darn_store8<C::X>(dxrow, j, v);
            darn_store8<DARN_F32>(pw_row, j, pw);
            if constexpr (BIAS) darn_store8<DARN_F32>(pb_row, j, pb);
        }
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
    if (a.geom.p == 1024) {
        if (a.partial_b) hipLaunchKernelGGL((darn_bwd_wide<C, true>), dim3((unsigned)a.chunks), dim3(1024), 0, s, a);
        else hipLaunchKernelGGL((darn_bwd_wide<C, false>), dim3((unsigned)a.chunks), dim3(1024), 0, s, a);
        return;
    }
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
    if (!(darn_fast_geometry_ok(g) || g.p == 1024) || a.n % 8 != 0 || a.m == 0) return false;
    if (!(a.vec_dy && a.vec_h && a.vec_w && a.vec_dx && (!a.dresout || a.vec_dresout) && (!a.dres || a.vec_dres)))
        return false;
    if (a.partial_b && a.dt_b != a.dt_w) return false;
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
