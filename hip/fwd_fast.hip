/*
 * fwd_fast.hip — the forward for the common case (docs/numerics.md §4, §5): dtypes fixed at compile
 * time (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned: at most 4 groups per thread, the row
 * in registers. Rows of 1024 lanes go to fwd_wide.hip.
 *
 * Same geometry and same bits as darn_fwd_reg (fwd.hip); what differs is the order of work. Every
 * load of the thread (x, residual, weight, bias of all its groups) is issued before the first one is
 * used, and no branch on a dtype separates them, so a thread has all its bytes in flight at once. The
 * run-time dtype kernels cannot do that: each load sits behind dtype branches, the compiler keeps loads
 * inside their blocks and a thread waits for every group in turn (about a quarter of copy bandwidth).
 */
#include "fast_configs.h"

template <class C, int K, int MAXT>
__global__ void DARN_LAUNCH_BOUNDS(MAXT) darn_fwd_fast(darn_gpu_fwd_args a)
{
    __shared__ float smem[32];
    const int p = a.geom.p;
    const int slot = threadIdx.x / p, t = threadIdx.x % p;
    const int64_t r0 = (int64_t)blockIdx.x * a.geom.rows_per_block + slot;
    const bool active = r0 < a.m;
    const int64_t r = active ? r0 : 0; /* idle slots shadow row 0 so every lane joins the shuffles */
    const int64_t groups = a.geom.groups;

    /* 1. All loads. */
    darn_raw8<C::X> rx[K] = {};
    darn_raw8<C::R> rr[K] = {};
    darn_raw8<C::W> rw[K] = {}, rb[K] = {};
    const void *xrow = darn_row_t<C::X>(a.x, r, a.s_x);
    /* A select with nullptr makes the pointer generic on AMD (flat_* loads): DARN_GLOBAL marks it again. */
    const void *rrow = DARN_GLOBAL(a.has_res ? darn_row_t<C::R>(a.res, r, a.s_res) : nullptr);
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        if (j < groups) {
            darn_load8(rx[k], xrow, j);
            if (a.has_res) darn_load8(rr[k], rrow, j);
        }
    });
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        if (j < groups) {
            darn_load8(rw[k], a.w, j);
            if (a.has_bias) darn_load8(rb[k], a.b, j);
        }
    });
    const float rs = a.has_rowscale ? a.rowscale[r] : 1.0f;

    /* 2. Keep bits, computed while the loads are in flight. */
    uint32_t bits[K];
    uint64_t seed = 0, offset = 0;
    if (a.rng.dropout) darn_rng_state(a.rng, seed, offset);
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        bits[k] = 0xFFu;
        if (a.rng.dropout && j < groups) bits[k] = darn_keep8_aligned(seed, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
    });

    /* 3. h (§4), residual-out and mask stores, lane sums. */
    float h[K][8];
    float acc[1] = {-0.0f};
    void *rorow = DARN_GLOBAL(a.resout ? darn_row_mut_t<C::RO>(a.resout, r, a.s_resout) : nullptr);
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        darn_cvt8(h[k], rx[k]);
        if (a.has_rowscale) {
#pragma unroll
            for (int e = 0; e < 8; e++) h[k][e] = h[k][e] * rs;
        }
        if (a.rng.dropout) {
#pragma unroll
            for (int e = 0; e < 8; e++) h[k][e] = (bits[k] >> e) & 1u ? h[k][e] * a.rng.scale : 0.0f;
        }
        if (a.has_res) {
            float v[8];
            darn_cvt8(v, rr[k]);
#pragma unroll
            for (int e = 0; e < 8; e++) h[k][e] = h[k][e] + v[e];
        }
        darn_round8_t<C::RO>(h[k]);
        if (j < groups) {
            if (active && rorow) darn_store8<C::RO>(rorow, j, h[k]);
            if (active && a.mask) a.mask[r * a.mask_row_bytes + j] = (uint8_t)bits[k];
#pragma unroll
            for (int e = 0; e < 8; e++) acc[0] = acc[0] + (a.layer ? h[k][e] : h[k][e] * h[k][e]);
        }
    });
    if (active && a.mask && t == 0) darn_fwd_mask_padding(a, r);
    darn_row_allreduce<1>(acc, p, smem);
    const float nf = (float)a.n;
    float mean = 0.0f;
    if (a.layer) {
        mean = acc[0] / nf;
        acc[0] = -0.0f;
        darn_unroll<K>([&](auto kk) {
            constexpr int k = decltype(kk)::value;
            if (t + (int64_t)k * p < groups) {
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float d = h[k][e] - mean;
                    acc[0] = acc[0] + d * d;
                }
            }
        });
        darn_row_allreduce<1>(acc, p, smem);
    }
    const float rstd = 1.0f / sqrtf(acc[0] / nf + a.eps);
    if (!active) return;

    /* 4. y = ((hn - mean) * rstd) * w' [+ b]. */
    void *orow = darn_row_mut_t<C::O>(a.out, r, a.s_out);
    darn_unroll<K>([&](auto kk) {
        constexpr int k = decltype(kk)::value;
        const int64_t j = t + (int64_t)k * p;
        if (j < groups) {
            float w[8], y[8];
            darn_cvt8(w, rw[k]);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float wv = a.zc ? w[e] + 1.0f : w[e];
                const float d = a.layer ? h[k][e] - mean : h[k][e];
                const float xhat = d * rstd;
                y[e] = xhat * wv;
            }
            if (a.has_bias) {
                darn_cvt8(w, rb[k]);
#pragma unroll
                for (int e = 0; e < 8; e++) y[e] = y[e] + w[e];
            }
            darn_store8<C::O>(orow, j, y);
        }
    });
    if (t == 0) {
        if (a.rstd) a.rstd[r] = darn_canonical_f32(rstd);
        if (a.mean) a.mean[r] = darn_canonical_f32(mean);
    }
}

template <class C> static void launch(const darn_gpu_fwd_args &a, dim3 grid, dim3 block, hipStream_t s)
{
    if (a.geom.block > 256) { /* then K is 3 or 4 */
        if (a.geom.k == 3) hipLaunchKernelGGL((darn_fwd_fast<C, 3, 512>), grid, block, 0, s, a);
        else hipLaunchKernelGGL((darn_fwd_fast<C, 4, 512>), grid, block, 0, s, a);
        return;
    }
    switch (a.geom.k) {
    case 1: hipLaunchKernelGGL((darn_fwd_fast<C, 1, 256>), grid, block, 0, s, a); break;
    case 2: hipLaunchKernelGGL((darn_fwd_fast<C, 2, 256>), grid, block, 0, s, a); break;
    case 3: hipLaunchKernelGGL((darn_fwd_fast<C, 3, 256>), grid, block, 0, s, a); break;
    default: hipLaunchKernelGGL((darn_fwd_fast<C, 4, 256>), grid, block, 0, s, a); break;
    }
}

bool darn_launch_fwd_fast(const darn_gpu_fwd_args &a, hipStream_t stream)
{
    const darn_gpu_geom &g = a.geom;
    if (!(darn_fast_geometry_ok(g) || g.p == DARN_WIDE_LANES) || a.n % 8 != 0 || a.m == 0) return false;
    if (!(a.vec_x && a.vec_w && a.vec_out && (!a.has_res || a.vec_res) && (!a.resout || a.vec_resout) &&
          (!a.has_bias || (a.vec_b && a.dt_b == a.dt_w))))
        return false;
    if (g.p == DARN_WIDE_LANES) return darn_launch_fwd_wide(a, stream);
    const int res_dt = a.has_res ? a.dt_res : a.dt_resout; /* without a residual only its out dtype counts */
    const dim3 grid((unsigned)((a.m + g.rows_per_block - 1) / g.rows_per_block)), block((unsigned)g.block);
#define DARN_FAST_CASE(X, R, RO, W, O)                                                                      \
    if (a.dt_x == X && res_dt == R && a.dt_resout == RO && a.dt_w == W && a.dt_out == O) {                 \
        launch<darn_cfg<X, R, RO, W, O>>(a, grid, block, stream);                                           \
        return true;                                                                                        \
    }
    DARN_FAST_CONFIGS(DARN_FAST_CASE)
#undef DARN_FAST_CASE
    return false;
}
