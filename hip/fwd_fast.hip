/*
 * fwd_fast.hip — the forward for the common case (docs/numerics.md §4, §5): dtypes fixed at compile
 * time (fast_configs.h), N % 8 == 0, every tensor 16-byte aligned. darn_fwd_fast: at most 4 groups per
 * thread, the row in registers; darn_fwd_wide: rows of 1024 lanes, any length.
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
    const void *rrow = a.has_res ? darn_row_t<C::R>(a.res, r, a.s_res) : nullptr;
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
    void *rorow = a.resout ? darn_row_mut_t<C::RO>(a.resout, r, a.s_resout) : nullptr;
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

/* Rows of 1024 lanes (N > 16384): one row per block of 1024 threads (blocks stride over rows), the
 * thread's groups t, t + 1024, ... taken two at a time with all their loads in flight. h does not fit
 * in registers: it is written to residual_out on the first pass and read back (from L2) by the later
 * ones, or recomputed from x and the residual when residual_out is not requested. */
template <class C>
__device__ __forceinline__ void wide_h(const darn_gpu_fwd_args &a, int64_t r, int64_t j, uint64_t seed,
                                       uint64_t offset, float rs, const darn_raw8<C::X> &rx,
                                       const darn_raw8<C::R> &rr, float (&h)[8], uint32_t &bits)
{
    darn_cvt8(h, rx);
    if (a.has_rowscale) {
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] * rs;
    }
    bits = 0xFFu;
    if (a.rng.dropout) {
        uint32_t s_lo = (uint32_t)seed, s_hi = (uint32_t)(seed >> 32);
        DARN_TO_VGPR(s_lo); /* the round keys stay in the loop, on the vector unit (compat.h) */
        DARN_TO_VGPR(s_hi);
        bits = darn_keep8_aligned(((uint64_t)s_hi << 32) | s_lo, offset, (uint64_t)(r * a.n + j * 8), a.rng.threshold);
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = (bits >> e) & 1u ? h[e] * a.rng.scale : 0.0f;
    }
    if (a.has_res) {
        float v[8];
        darn_cvt8(v, rr);
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = h[e] + v[e];
    }
    darn_round8_t<C::RO>(h);
}

/* h of the B groups j0, j0 + P, ... (those < groups) of row r: read back from residual_out, or
 * recomputed. */
template <class C, int B>
__device__ __forceinline__ void wide_h_again(const darn_gpu_fwd_args &a, int64_t r, int64_t j0, uint64_t seed,
                                             uint64_t offset, float rs, float (&h)[B][8])
{
    const int p = a.geom.p;
    if (a.resout) {
        darn_raw8<C::RO> rh[B] = {};
        const void *row = darn_row_t<C::RO>(a.resout, r, a.s_resout);
        darn_unroll<B>([&](auto bb) {
            constexpr int b = decltype(bb)::value;
            if (j0 + (int64_t)b * p < a.geom.groups) darn_load8_rw(rh[b], row, j0 + (int64_t)b * p);
        });
        darn_unroll<B>([&](auto bb) {
            constexpr int b = decltype(bb)::value;
            darn_cvt8(h[b], rh[b]);
        });
        return;
    }
    darn_raw8<C::X> rx[B] = {};
    darn_raw8<C::R> rr[B] = {};
    darn_unroll<B>([&](auto bb) {
        constexpr int b = decltype(bb)::value;
        const int64_t j = j0 + (int64_t)b * p;
        if (j < a.geom.groups) {
            darn_load8(rx[b], darn_row_t<C::X>(a.x, r, a.s_x), j);
            if (a.has_res) darn_load8(rr[b], darn_row_t<C::R>(a.res, r, a.s_res), j);
        }
    });
    darn_unroll<B>([&](auto bb) {
        constexpr int b = decltype(bb)::value;
        uint32_t bits;
        wide_h<C>(a, r, j0 + (int64_t)b * p, seed, offset, rs, rx[b], rr[b], h[b], bits);
    });
}

template <class C>
__global__ void DARN_LAUNCH_BOUNDS(1024) darn_fwd_wide(darn_gpu_fwd_args a)
{
    /* Groups per batch: x, residual and h of two 16-bit groups fit 64 registers (NVIDIA) / 128 VGPRs
     * (AMD wave64 at 1024 threads); fp32 x takes one group at a time. */
    constexpr int B = C::X == DARN_F32 ? 1 : 2;
    __shared__ float smem[32];
    const int p = a.geom.p, t = threadIdx.x;
    const int64_t groups = a.geom.groups;
    const float nf = (float)a.n;
    uint64_t seed = 0, offset = 0;
    if (a.rng.dropout) darn_rng_state(a.rng, seed, offset);
    for (int64_t r = blockIdx.x; r < a.m; r += gridDim.x) {
        const float rs = a.has_rowscale ? a.rowscale[r] : 1.0f;
        float acc[1] = {-0.0f};
        /* Pass 1: h, residual_out, mask, lane sums (hn^2 or hn). */
        for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B * p) {
            darn_raw8<C::X> rx[B] = {};
            darn_raw8<C::R> rr[B] = {};
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    darn_load8(rx[b], darn_row_t<C::X>(a.x, r, a.s_x), j);
                    if (a.has_res) darn_load8(rr[b], darn_row_t<C::R>(a.res, r, a.s_res), j);
                }
            });
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    float h[8];
                    uint32_t bits;
                    wide_h<C>(a, r, j, seed, offset, rs, rx[b], rr[b], h, bits);
                    if (a.resout) darn_store8<C::RO>(darn_row_mut_t<C::RO>(a.resout, r, a.s_resout), j, h);
                    if (a.mask) a.mask[r * a.mask_row_bytes + j] = (uint8_t)bits;
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[0] = acc[0] + (a.layer ? h[e] : h[e] * h[e]);
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
                float h[B][8];
                wide_h_again<C, B>(a, r, j0, seed, offset, rs, h);
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
        for (int64_t j0 = t; j0 < groups; j0 += (int64_t)B * p) {
            float h[B][8];
            darn_raw8<C::W> rw[B] = {}, rb[B] = {};
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    darn_load8(rw[b], a.w, j);
                    if (a.has_bias) darn_load8(rb[b], a.b, j);
                }
            });
            wide_h_again<C, B>(a, r, j0, seed, offset, rs, h);
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = j0 + (int64_t)b * p;
                if (j < groups) {
                    float w[8], y[8];
                    darn_cvt8(w, rw[b]);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float wv = a.zc ? w[e] + 1.0f : w[e];
                        const float d = a.layer ? h[b][e] - mean : h[b][e];
                        const float xhat = d * rstd;
                        y[e] = xhat * wv;
                    }
                    if (a.has_bias) {
                        darn_cvt8(w, rb[b]);
#pragma unroll
                        for (int e = 0; e < 8; e++) y[e] = y[e] + w[e];
                    }
                    darn_store8<C::O>(darn_row_mut_t<C::O>(a.out, r, a.s_out), j, y);
                }
            });
        }
        if (t == 0) {
            if (a.rstd) a.rstd[r] = darn_canonical_f32(rstd);
            if (a.mean) a.mean[r] = darn_canonical_f32(mean);
        }
        __syncthreads(); /* smem is reused by the next row */
    }
}

template <class C> static void launch(const darn_gpu_fwd_args &a, dim3 grid, dim3 block, hipStream_t s)
{
    if (a.geom.p == 1024) {
        const unsigned blocks = (unsigned)(a.m < 65535 * 16 ? a.m : 65535 * 16);
        hipLaunchKernelGGL((darn_fwd_wide<C>), dim3(blocks), dim3(1024), 0, s, a);
        return;
    }
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
    if (!(darn_fast_geometry_ok(g) || g.p == 1024) || a.n % 8 != 0 || a.m == 0) return false;
    if (!(a.vec_x && a.vec_w && a.vec_out && (!a.has_res || a.vec_res) && (!a.resout || a.vec_resout) &&
          (!a.has_bias || (a.vec_b && a.dt_b == a.dt_w))))
        return false;
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
