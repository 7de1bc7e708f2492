/*
 * fwd.hip — the forward (docs/numerics.md §4, §5): one body, darn_fwd<Dt, K, REREAD, PAR, NODROP>, and its row of the
 * dispatch table per dtype configuration.
 *
 * P threads own a row, thread t groups t, t + P, … (src/dispatch.c picks P and K from N). Variation is
 * in types only: Dt is the dtype policy (group8.h), K the groups a thread holds in registers, REREAD the
 * rows too wide for that: their h is written to residual_out (or recomputed) and read back for the later
 * passes, B groups at a time; PAR adds flash-attn's parallel residual (x1 with its own keep bits, the second
 * output y1), each part under its run-time option bit; NODROP (dispatch.h's DARN_INFER_CONFIGS) takes only calls
 * without dropout and rowscale, so that its registers are not sized by the Philox path. The arithmetic is
 * contract.h's, element by element, in every instance.
 *
 * Blocks walk rows (grid-stride; the launcher starts at most one resident wave of blocks), and with the
 * row in registers a thread issues the loads of its next row before the current row's sums, so the row
 * reduction and stores overlap the next row's memory traffic (DARN_FWD_PREFETCH=0 turns that off).
 */
#include "kernels.h"

#ifndef DARN_FWD_PREFETCH
#define DARN_FWD_PREFETCH 1
#endif /* DARN_FWD_PREFETCH */

#define DARN_REREAD_BATCH 2 /* groups in flight per thread and step in the re-read rows */

template <int K, bool REREAD> __host__ __device__ constexpr int darn_fwd_bound() { return 512; }

/* x1's raw words of a group (x's type) in the PAR kernels. */
template <class Dt, bool PAR> using darn_raw_x1 = darn_raw_if<Dt, DARN_ROLE_X, PAR>;

/* Whether h of inference calls (a residual, no dropout, no rowscale) is its own compile-time case: for
 * rows of 16-bit h only (H200, 2026-12-02: +22 points of copy for bf16 inference; with fp32 h the extra
 * case made the compiler schedule the training rows worse, f32 fwd 89 -> 73 %). */
template <class Dt> __device__ constexpr bool darn_fwd_infer_case()
{
    if constexpr (Dt::is_static) return Dt::template dt<DARN_ROLE_RO>() != DARN_F32;
    else return false;
}

/* h (§4) of a group from its raw x and residual and its keep bits, rounded to the residual-out dtype. */
template <class Dt, bool PAR, bool NODROP>
__device__ __forceinline__ void fwd_group_h(const darn_fwd_args &a, const typename Dt::template raw<DARN_ROLE_X> &rx,
                                            const typename Dt::template raw<DARN_ROLE_R> &rr, const darn_raw_x1<Dt, PAR> &rx1,
                                            uint32_t bits, uint32_t bits1, float rs, float (&h)[8])
{
    float x[8], res[8];
    /* NODROP kernels run only calls without dropout and rowscale (dispatch.h): those bits are known off */
    const uint32_t opt = NODROP ? a.opt & ~(DARN_OPT_DROPOUT | DARN_OPT_ROWSCALE) : a.opt;
    Dt::template cvt<DARN_ROLE_X>(x, rx, a.x);
    Dt::template cvt<DARN_ROLE_R>(res, rr, a.res);
    if constexpr (PAR) { /* x1 (never read when absent) with its own keep bits; training's options as constants */
        float x1[8];
        Dt::template cvt<DARN_ROLE_X>(x1, rx1, a.x1);
        constexpr uint32_t opts = DARN_OPT_ROWSCALE | DARN_OPT_DROPOUT | DARN_OPT_RESIDUAL | DARN_OPT_X1;
        constexpr uint32_t train = DARN_OPT_DROPOUT | DARN_OPT_RESIDUAL | DARN_OPT_X1;
        if ((opt & opts) == train) {
#pragma unroll
            for (int e = 0; e < 8; e++)
                h[e] = darn_fwd_h(x[e], x1[e], res[e], rs, (bits >> e) & 1u, (bits1 >> e) & 1u, a.rng.scale, train);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                h[e] = darn_fwd_h(x[e], x1[e], res[e], rs, (bits >> e) & 1u, (bits1 >> e) & 1u, a.rng.scale, opt);
        }
    } else {
        /* The options as compile-time constants where the call's are the common ones, training (dropout and a
         * residual) and inference (a residual): a warp-uniform branch; the compiler drops the dead steps
         * instead of issuing them predicated off. */
        constexpr uint32_t opts = DARN_OPT_ROWSCALE | DARN_OPT_DROPOUT | DARN_OPT_RESIDUAL;
        constexpr uint32_t train = DARN_OPT_DROPOUT | DARN_OPT_RESIDUAL, infer = DARN_OPT_RESIDUAL;
        if ((opt & opts) == train) {
#pragma unroll
            for (int e = 0; e < 8; e++) h[e] = darn_fwd_h(x[e], 0.0f, res[e], rs, (bits >> e) & 1u, 1u, a.rng.scale, train);
        } else if (darn_fwd_infer_case<Dt>() && (opt & opts) == infer) {
#pragma unroll
            for (int e = 0; e < 8; e++) h[e] = darn_fwd_h(x[e], 0.0f, res[e], rs, 1u, 1u, a.rng.scale, infer);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) h[e] = darn_fwd_h(x[e], 0.0f, res[e], rs, (bits >> e) & 1u, 1u, a.rng.scale, opt);
        }
    }
    Dt::template round<DARN_ROLE_RO>(h, a.resout);
}

/* Loads of group j of row r (x, the residual when there is one, x1 when there is one). */
template <class Dt, bool PAR, int MODE = DARN_LD_RO>
__device__ __forceinline__ void fwd_group_load(const darn_fwd_args &a, int64_t r, int64_t j,
                                               typename Dt::template raw<DARN_ROLE_X> &rx,
                                               typename Dt::template raw<DARN_ROLE_R> &rr, darn_raw_x1<Dt, PAR> &rx1)
{
    Dt::template load<DARN_ROLE_X, MODE>(rx, a.x, r, j, a.n);
    if (a.opt & DARN_OPT_RESIDUAL) Dt::template load<DARN_ROLE_R, MODE>(rr, a.res, r, j, a.n);
    if constexpr (PAR)
        if (a.opt & DARN_OPT_X1) Dt::template load<DARN_ROLE_X, MODE>(rx1, a.x1, r, j, a.n);
}

/* Keep bits of group j of row r: x's, or (x1 = true) x1's, at element index + DARN_X1_INDEX (§3). */
template <class Dt, bool NODROP = false>
__device__ __forceinline__ uint32_t fwd_group_bits(const darn_fwd_args &a, uint64_t seed, uint64_t offset, int64_t r,
                                                   int64_t j, bool x1 = false)
{
    if (NODROP || !(a.opt & DARN_OPT_DROPOUT)) return 0xFFu;
    const uint64_t i0 = (uint64_t)(r * a.n + j * 8) + a.rng.index0;
    return Dt::keep8(seed, offset, x1 ? i0 + DARN_X1_INDEX : i0, a.rng);
}
/* x1's keep bits (PAR kernels with x1 only; else unused). */
template <class Dt, bool PAR>
__device__ __forceinline__ uint32_t fwd_group_bits1(const darn_fwd_args &a, uint64_t seed, uint64_t offset, int64_t r,
                                                    int64_t j)
{
    if constexpr (PAR)
        if (a.opt & DARN_OPT_X1) return fwd_group_bits<Dt>(a, seed, offset, r, j, true);
    return 0xFFu;
}

/* Pass-one outputs of group j: residual_out and the mask bytes (bits past N are 0). */
template <class Dt, bool PAR>
__device__ __forceinline__ void fwd_group_outputs(const darn_fwd_args &a, int64_t r, int64_t j, const float (&h)[8],
                                                  uint32_t bits, uint32_t bits1)
{
    if (a.resout.p) Dt::template store<DARN_ROLE_RO>(a.resout, r, j, a.n, h);
    const int valid = Dt::valid(j, a.n);
    if (a.mask) a.mask[r * a.mask_row_bytes + j] = (uint8_t)(bits & ((1u << valid) - 1u));
    if constexpr (PAR)
        if (a.mask1) a.mask1[r * a.mask_row_bytes + j] = (uint8_t)(bits1 & ((1u << valid) - 1u));
}

/* The row's statistics and the mask bytes past its groups (thread t == 0 of the row). */
__device__ __forceinline__ void fwd_row_tail(const darn_fwd_args &a, int64_t r, float mean, float rstd)
{
    if (a.rstd) a.rstd[r] = darn_canonical_f32(rstd);
    if (a.mean) a.mean[r] = darn_canonical_f32(mean);
    for (int64_t q = a.groups; q < a.mask_row_bytes; q++) {
        if (a.mask) a.mask[r * a.mask_row_bytes + q] = 0;
        if (a.mask1) a.mask1[r * a.mask_row_bytes + q] = 0;
    }
}

/* The group's sum of darn_fwd_term(pass). */
template <class Dt>
__device__ __forceinline__ float fwd_group_term_sum(const darn_fwd_args &a, int64_t j, const float (&h)[8], float mean,
                                                    int pass)
{
    float t[8];
#pragma unroll
    for (int e = 0; e < 8; e++) t[e] = darn_fwd_term(h[e], mean, pass, a.opt);
    return darn_group_sum(t, Dt::valid(j, a.n));
}

/* Whether out is fp8 (§9): a compile-time fact of the fp8 configurations, the out view's dtype otherwise. */
template <class Dt> __device__ __forceinline__ bool fwd_fp8_out(const darn_fwd_args &a)
{
    if constexpr (Dt::is_static) return Dt::template dt<DARN_ROLE_O>() == DARN_DT_FP8;
    else return darn_is_fp8(a.out.dt);
}

/* fp8 out: the amax terms of the group's elements (those before N) into amax, then y * scale, which the store
 * rounds to fp8. */
template <class Dt>
__device__ __forceinline__ void fwd_group_fp8(const darn_fwd_args &a, int64_t j, float (&y)[8], uint32_t &amax, float scale)
{
    if (fwd_fp8_out<Dt>(a)) {
        const int valid = Dt::valid(j, a.n);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            if (e < valid) amax = darn_amax_combine(amax, darn_amax_term(y[e]));
            y[e] = darn_fp8_scaled(y[e], scale);
        }
    }
}

/* The thread's amax terms into *a.amax (zeroed before the kernel): the maximum over the wave, then one atomic per
 * wave. A uint32 maximum, so the result is the same in any order (§9). Every thread of the block calls it. */
template <class Dt> __device__ __forceinline__ void fwd_amax_flush(const darn_fwd_args &a, uint32_t amax)
{
    if (fwd_fp8_out<Dt>(a)) {
        if (!a.amax) return; /* uniform */
#pragma unroll
        for (int d = 1; d < DARN_WAVE; d *= 2) amax = darn_amax_combine(amax, darn_f32_bits(darn_shfl_xor(darn_bits_f32(amax), d)));
        if ((int)threadIdx.x % DARN_WAVE == 0 && amax) atomicMax(a.amax, amax);
    }
}

/* y of group j (fp8 out: see fwd_group_fp8). */
template <class Dt, bool STREAM = false>
__device__ __forceinline__ void fwd_group_y(const darn_fwd_args &a, int64_t r, int64_t j, const float (&h)[8], float mean,
                                            float rstd, const typename Dt::template raw<DARN_ROLE_W> &rw,
                                            const typename Dt::template raw<DARN_ROLE_W> &rb, uint32_t &amax,
                                            float scale)
{
    float w[8], b[8], y[8];
    Dt::template cvt<DARN_ROLE_W>(w, rw, a.w);
    Dt::template cvt<DARN_ROLE_W>(b, rb, a.b);
    if ((a.opt & (DARN_OPT_LAYER | DARN_OPT_BIAS | DARN_OPT_ZC)) == 0) { /* RMSNorm, plain weight (see fwd_group_h) */
#pragma unroll
        for (int e = 0; e < 8; e++) y[e] = darn_fwd_y(h[e], mean, rstd, darn_weight(w[e], 0u), b[e], 0u);
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) y[e] = darn_fwd_y(h[e], mean, rstd, darn_weight(w[e], a.opt), b[e], a.opt);
    }
    fwd_group_fp8<Dt>(a, j, y, amax, scale);
    Dt::template store<DARN_ROLE_O, STREAM>(a.out, r, j, a.n, y);
}

/* The second output y1 of group j (PAR kernels with weight1): weight1 / bias1 loaded here (cache hits after the
 * first row), stored to out1 (never fp8: validation). */
template <class Dt, bool PAR, bool STREAM = false>
__device__ __forceinline__ void fwd_group_y1(const darn_fwd_args &a, int64_t r, int64_t j, const float (&h)[8], float mean,
                                             float rstd)
{
    if constexpr (PAR) {
        if (!(a.opt & DARN_OPT_Y1)) return;
        typename Dt::template raw<DARN_ROLE_W> rw1 = {}, rb1 = {};
        Dt::template load<DARN_ROLE_W>(rw1, a.w1, 0, j, a.n);
        if (a.opt & DARN_OPT_BIAS1) Dt::template load<DARN_ROLE_W>(rb1, a.b1, 0, j, a.n);
        float w1[8], b1[8], y1[8];
        Dt::template cvt<DARN_ROLE_W>(w1, rw1, a.w1);
        Dt::template cvt<DARN_ROLE_W>(b1, rb1, a.b1);
#pragma unroll
        for (int e = 0; e < 8; e++) y1[e] = darn_fwd_y1(h[e], mean, rstd, darn_weight(w1[e], a.opt), b1[e], a.opt);
        Dt::template store<DARN_ROLE_O, STREAM>(a.out1, r, j, a.n, y1);
    }
}

template <class Dt, int K, bool REREAD, bool PAR, bool NODROP = false>
__global__ void DARN_LAUNCH_BOUNDS((darn_fwd_bound<K, REREAD>()), 8) darn_fwd(const darn_fwd_args a)
{
    using RX = typename Dt::template raw<DARN_ROLE_X>;
    using RR = typename Dt::template raw<DARN_ROLE_R>;
    using RX1 = darn_raw_x1<Dt, PAR>;
    using RW = typename Dt::template raw<DARN_ROLE_W>;
    using RH = typename Dt::template raw<DARN_ROLE_RO>;
    constexpr int B = REREAD ? (Dt::is_static ? DARN_REREAD_BATCH : 1) : K;
    __shared__ float smem[2 * B * 32]; /* darn_row_allreduce's two halves */
    int phase = 0;
    __shared__ float stack[REREAD ? DARN_STREAM_LEVELS + 1 : 1];
    /* t: the thread's first group in the row (t == 0 in one thread per row) */
    const int p = a.p, slot = threadIdx.x / p, t = threadIdx.x % p;
    const int64_t groups = a.groups, stride_rows = (int64_t)gridDim.x * a.rows_per_block;
    const float nf = (float)a.n;
    const bool layer = a.opt & DARN_OPT_LAYER;
    uint64_t seed = 0, offset = 0;
    if (!NODROP && (a.opt & DARN_OPT_DROPOUT)) darn_rng_state(a.rng, seed, offset);
    const int64_t r_first = (int64_t)blockIdx.x * a.rows_per_block;
    uint32_t amax = 0; /* fp8 out: the thread's amax terms (+0: none yet) */
    float scale = 1.0f;
    if (fwd_fp8_out<Dt>(a)) scale = a.out_scale_ptr ? *a.out_scale_ptr : a.out_scale;

    if constexpr (!REREAD) {
        /* Registers decide two orders of work: the weights (and bias) of the thread's groups stay in
         * registers across rows when they are few, else they are loaded again per row (cache hits); the
         * next row's loads are issued before this row's sums when their raw words are few enough. */
        constexpr bool KEEP_W = K * sizeof(RW) <= 32;
        constexpr bool PF = DARN_FWD_PREFETCH && K * (sizeof(RX) + sizeof(RR) + (PAR ? sizeof(RX) : 0)) <= 192;
        RW rw[K] = {}, rb[K] = {};
        auto load_w = [&]() {
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) {
                    Dt::template load<DARN_ROLE_W>(rw[k], a.w, 0, j, a.n);
                    if (a.opt & DARN_OPT_BIAS) Dt::template load<DARN_ROLE_W>(rb[k], a.b, 0, j, a.n);
                }
            });
        };
        if (KEEP_W) load_w();
        RX rx[K] = {};
        RR rr[K] = {};
        RX1 rx1[K] = {};
        auto load_row = [&](int64_t r) {
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                if (j < groups) fwd_group_load<Dt, PAR>(a, r, j, rx[k], rr[k], rx1[k]);
            });
        };
        if (PF && r_first < a.m) load_row(r_first + slot < a.m ? r_first + slot : 0);
        for (int64_t r0 = r_first; r0 < a.m; r0 += stride_rows) { /* uniform across the block */
            const bool active = r0 + slot < a.m;
            const int64_t r = active ? r0 + slot : 0; /* idle slots shadow row 0: every lane joins the sums */
            const int64_t r_next = r0 + stride_rows + slot < a.m ? r0 + stride_rows + slot : 0;
            if (!PF) load_row(r);
            const float rs = (!NODROP && (a.opt & DARN_OPT_ROWSCALE)) ? a.rowscale[r] : 1.0f;
            uint32_t bits[K], bits1[K];
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                bits[k] = j < groups ? fwd_group_bits<Dt, NODROP>(a, seed, offset, r, j) : 0xFFu;
                bits1[k] = j < groups ? fwd_group_bits1<Dt, PAR>(a, seed, offset, r, j) : 0xFFu;
            });
            /* Pass one: h, residual_out, mask, the first sums. */
            float h[K][8], acc[K];
            darn_unroll<K>([&](auto kk) {
                constexpr int k = decltype(kk)::value;
                const int64_t j = t + (int64_t)k * p;
                fwd_group_h<Dt, PAR, NODROP>(a, rx[k], rr[k], rx1[k], bits[k], bits1[k], rs, h[k]);
                acc[k] = -0.0f;
                if (j < groups) {
                    if (active) fwd_group_outputs<Dt, PAR>(a, r, j, h[k], bits[k], bits1[k]);
                    acc[k] = fwd_group_term_sum<Dt>(a, j, h[k], 0.0f, 0);
                }
            });
            if (PF && r0 + stride_rows < a.m) load_row(r_next); /* in flight during this row's sums */
            float sum = darn_row_sum<K>(acc, p, smem, phase);
            float mean = 0.0f;
            if (layer) {
                mean = darn_row_mean(sum, nf);
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    acc[k] = j < groups ? fwd_group_term_sum<Dt>(a, j, h[k], mean, 1) : -0.0f;
                });
                sum = darn_row_sum<K>(acc, p, smem, phase);
            }
            const float rstd = darn_row_rstd(sum, nf, a.eps);
            if (active) {
                if (!KEEP_W) load_w();
                darn_unroll<K>([&](auto kk) {
                    constexpr int k = decltype(kk)::value;
                    const int64_t j = t + (int64_t)k * p;
                    if (j < groups) {
                        fwd_group_y<Dt>(a, r, j, h[k], mean, rstd, rw[k], rb[k], amax, scale);
                        fwd_group_y1<Dt, PAR>(a, r, j, h[k], mean, rstd);
                    }
                });
                if (t == 0) fwd_row_tail(a, r, mean, rstd);
            }
        }
    } else {
        /* Re-read rows: one row per block (P = DARN_REREAD_P), B groups per thread per step. */
        const int64_t kr = (groups + p - 1) / p; /* columns of groups [kP, (k + 1)P) */
        /* h of columns kb … kb + B - 1: from residual_out when it was written, else recomputed. */
        auto h_again = [&](int64_t r, int64_t kb, float rs, float (&h)[B][8], bool last) {
            if (a.resout.p) {
                RH rh[B] = {};
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = t + (kb + b) * p;
                    if (j < groups) {
                        if (last) Dt::template load<DARN_ROLE_RO, DARN_LD_LAST>(rh[b], a.resout, r, j, a.n);
                        else Dt::template load<DARN_ROLE_RO, DARN_LD_RW>(rh[b], a.resout, r, j, a.n);
                    }
                });
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    Dt::template cvt<DARN_ROLE_RO>(h[b], rh[b], a.resout);
                });
                return;
            }
            RX rx[B] = {};
            RR rr[B] = {};
            RX1 rx1[B] = {};
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = t + (kb + b) * p;
                if (j < groups) fwd_group_load<Dt, PAR, DARN_LD_LAST>(a, r, j, rx[b], rr[b], rx1[b]);
            });
            darn_unroll<B>([&](auto bb) {
                constexpr int b = decltype(bb)::value;
                const int64_t j = t + (kb + b) * p;
                const bool in = j < groups;
                fwd_group_h<Dt, PAR, NODROP>(a, rx[b], rr[b], rx1[b], in ? fwd_group_bits<Dt, NODROP>(a, seed, offset, r, j) : 0xFFu,
                                     in ? fwd_group_bits1<Dt, PAR>(a, seed, offset, r, j) : 0xFFu, rs, h[b]);
            });
        };
        /* The column sums of one pass, B at a time, into the tree over columns. */
        auto finish_columns = [&](int64_t kb, float (&acc)[B]) {
            darn_row_allreduce<B>(acc, p, smem, phase);
            if (t == 0) {
#pragma unroll
                for (int b = 0; b < B; b++)
                    if (kb + b < kr) darn_stream_push(stack, kb + b, acc[b]);
            }
        };
        auto row_total = [&]() {
            __syncthreads();
            if (t == 0) stack[DARN_STREAM_LEVELS] = darn_stream_total(stack, kr);
            __syncthreads();
            const float s = stack[DARN_STREAM_LEVELS];
            __syncthreads(); /* the stack is rewritten by the next pass */
            return s;
        };
        for (int64_t r = blockIdx.x; r < a.m; r += gridDim.x) {
            const float rs = (!NODROP && (a.opt & DARN_OPT_ROWSCALE)) ? a.rowscale[r] : 1.0f;
            for (int64_t kb = 0; kb < kr; kb += B) { /* pass one: h, residual_out, mask, first sums */
                uint32_t bits[B], bits1[B];
                RX rx[B] = {};
                RR rr[B] = {};
                RX1 rx1[B] = {};
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = t + (kb + b) * p;
                    bits[b] = j < groups ? fwd_group_bits<Dt, NODROP>(a, seed, offset, r, j) : 0xFFu;
                    bits1[b] = j < groups ? fwd_group_bits1<Dt, PAR>(a, seed, offset, r, j) : 0xFFu;
                    if (j < groups) fwd_group_load<Dt, PAR, DARN_LD_LAST>(a, r, j, rx[b], rr[b], rx1[b]);
                });
                float acc[B];
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = t + (kb + b) * p;
                    float h[8];
                    fwd_group_h<Dt, PAR, NODROP>(a, rx[b], rr[b], rx1[b], bits[b], bits1[b], rs, h);
                    acc[b] = -0.0f;
                    if (j < groups) {
                        fwd_group_outputs<Dt, PAR>(a, r, j, h, bits[b], bits1[b]);
                        acc[b] = fwd_group_term_sum<Dt>(a, j, h, 0.0f, 0);
                    }
                });
                finish_columns(kb, acc);
            }
            float sum = row_total();
            float mean = 0.0f;
            if (layer) {
                mean = darn_row_mean(sum, nf);
                for (int64_t kb = 0; kb < kr; kb += B) {
                    float h[B][8], acc[B];
                    h_again(r, kb, rs, h, false);
                    darn_unroll<B>([&](auto bb) {
                        constexpr int b = decltype(bb)::value;
                        const int64_t j = t + (kb + b) * p;
                        acc[b] = j < groups ? fwd_group_term_sum<Dt>(a, j, h[b], mean, 1) : -0.0f;
                    });
                    finish_columns(kb, acc);
                }
                sum = row_total();
            }
            const float rstd = darn_row_rstd(sum, nf, a.eps);
            for (int64_t kb = 0; kb < kr; kb += B) { /* the last pass: y */
                RW rw[B] = {}, rb[B] = {};
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = t + (kb + b) * p;
                    if (j < groups) {
                        Dt::template load<DARN_ROLE_W>(rw[b], a.w, 0, j, a.n);
                        if (a.opt & DARN_OPT_BIAS) Dt::template load<DARN_ROLE_W>(rb[b], a.b, 0, j, a.n);
                    }
                });
                float h[B][8];
                h_again(r, kb, rs, h, true);
                darn_unroll<B>([&](auto bb) {
                    constexpr int b = decltype(bb)::value;
                    const int64_t j = t + (kb + b) * p;
                    if (j < groups) {
                        fwd_group_y<Dt, true>(a, r, j, h[b], mean, rstd, rw[b], rb[b], amax, scale);
                        fwd_group_y1<Dt, PAR, true>(a, r, j, h[b], mean, rstd);
                    }
                });
            }
            if (t == 0) fwd_row_tail(a, r, mean, rstd);
        }
    }
    fwd_amax_flush<Dt>(a, amax);
}

#ifndef DARN_NO_TABLE /* (experiments compile single instances of the body) */
/* The forward row of the dispatch table for each dtype configuration, in dispatch.h's order: K = 1 … kmax, then
 * the re-read variant. */
#define DARN_FWD_K(K, PAR, ND, ...) (const void *)darn_fwd<__VA_ARGS__, K, false, PAR, ND>,
#define DARN_FWD_RR(PAR, ND, ...) (const void *)darn_fwd<__VA_ARGS__, 1, true, PAR, ND>,
#define DARN_FWD_ROW_2(PAR, ND, ...) DARN_FWD_K(1, PAR, ND, __VA_ARGS__) DARN_FWD_K(2, PAR, ND, __VA_ARGS__) \
                                     DARN_FWD_RR(PAR, ND, __VA_ARGS__)
#define DARN_FWD_ROW_3(PAR, ND, ...) DARN_FWD_K(1, PAR, ND, __VA_ARGS__) DARN_FWD_K(2, PAR, ND, __VA_ARGS__) \
                                     DARN_FWD_K(3, PAR, ND, __VA_ARGS__) DARN_FWD_RR(PAR, ND, __VA_ARGS__)
#define DARN_FWD_ROW_4(PAR, ND, ...) DARN_FWD_K(1, PAR, ND, __VA_ARGS__) DARN_FWD_K(2, PAR, ND, __VA_ARGS__) \
                                     DARN_FWD_K(3, PAR, ND, __VA_ARGS__) DARN_FWD_K(4, PAR, ND, __VA_ARGS__) \
                                     DARN_FWD_RR(PAR, ND, __VA_ARGS__)
#define DARN_FWD_STATIC_ROW(X, R, RO, W, O, KMAX) DARN_FWD_ROW_##KMAX(false, false, darn_dt_static<X, R, RO, W, O>)
#define DARN_FWD_PAR_ROW(X, R, RO, W, O, KMAX) DARN_FWD_ROW_##KMAX(true, false, darn_dt_static<X, R, RO, W, O>)
#define DARN_FWD_INFER_ROW(X, R, RO, W, O, KMAX) DARN_FWD_ROW_##KMAX(false, true, darn_dt_static<X, R, RO, W, O>)
const void *const darn_fwd_table[] = {DARN_STATIC_CONFIGS(DARN_FWD_STATIC_ROW) DARN_FWD_ROW_2(false, false, darn_dt_runtime)
                                          DARN_FP8_CONFIGS(DARN_FWD_STATIC_ROW) DARN_PAR_CONFIGS(DARN_FWD_PAR_ROW)
                                              DARN_FWD_ROW_2(true, false, darn_dt_runtime) DARN_INFER_CONFIGS(DARN_FWD_INFER_ROW)};
static_assert(sizeof darn_fwd_table / sizeof darn_fwd_table[0] == DARN_N_FWD_ENTRIES, "one kernel per entry");
static_assert(DARN_RUNTIME_MAX_K == 2 && DARN_PAR_RUNTIME_MAX_K == 2,
              "the run-time rows list K = 1, 2 and the re-read variant");
#endif /* DARN_NO_TABLE */
