/*
 * gpu_backend.hip — host side of the HIP backend: device discovery, the kernel arguments of a call, the
 * grid, and the launches behind darn_fwd / darn_bwd on DARN_BACKEND_GPU. Which kernel runs is decided by
 * src/dispatch.c (darn_choose_fwd / darn_choose_bwd); this file only looks the kernel up in the table.
 */
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels.h" /* first: compat.h sets how darn/philox.h multiplies */
#include "gpu_backend.h"

extern "C" int darn_gpu_available(void)
{
    int count = 0;
    return hipGetDeviceCount(&count) == hipSuccess && count > 0;
}

static darn_status device_error(const char *fn, const char *what, hipError_t e)
{
    return darn_fail(DARN_ERR_DEVICE, "%s: %s failed: %s (%s)", fn, what, hipGetErrorName(e), hipGetErrorString(e));
}

/* ---- grid: at most the blocks that are resident at once (the kernels walk rows / chunks) ------------ */
#define DARN_MAX_DEVICES 64
static std::atomic<int> sm_count[DARN_MAX_DEVICES];                               /* 0: not asked yet */
static std::atomic<int> fwd_occ[DARN_MAX_DEVICES][DARN_N_FWD_ENTRIES][2];       /* blocks per SM, by block class */
static std::atomic<int> bwd_occ[DARN_MAX_DEVICES][DARN_N_BWD_ENTRIES][2];
static std::atomic<int> rowsums_occ[DARN_MAX_DEVICES][DARN_N_BWD_CONFIGS];

static int block_class(int block) { return block > DARN_SMALL_BLOCK ? 1 : 0; }

/* Resident blocks of `kernel` at `block` threads on the current device (cached; >= 1). */
static int64_t resident_blocks(const void *kernel, std::atomic<int> *occ_slot, int block)
{
    int dev = 0;
    if (hipGetDevice(&dev) != hipSuccess || dev < 0 || dev >= DARN_MAX_DEVICES) return INT64_MAX;
    int sms = sm_count[dev].load(std::memory_order_relaxed);
    if (sms == 0) {
        if (hipDeviceGetAttribute(&sms, hipDeviceAttributeMultiprocessorCount, dev) != hipSuccess || sms < 1) sms = 1;
        sm_count[dev].store(sms, std::memory_order_relaxed);
    }
    int occ = occ_slot->load(std::memory_order_relaxed);
    if (occ == 0) {
        if (hipOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, block, 0) != hipSuccess || occ < 1) occ = 1;
        occ_slot->store(occ, std::memory_order_relaxed);
    }
    return (int64_t)sms * occ;
}

/* A measurement knob (never changes a bit): DARN_GPU_GRID=full launches every block the rows need instead of
 * at most one resident wave that walks them. Read once. */
static bool full_grid()
{
    static const int v = [] {
        const char *e = getenv("DARN_GPU_GRID");
        return e && strcmp(e, "full") == 0 ? 1 : 0;
    }();
    return v != 0;
}

static int64_t grid_of(int backward, const darn_choice &c)
{
    if (full_grid()) return c.blocks;
    int dev = 0;
    if (hipGetDevice(&dev) != hipSuccess || dev < 0 || dev >= DARN_MAX_DEVICES) dev = 0;
    const int cls = block_class(c.block);
    const int64_t cap = backward ? resident_blocks(darn_bwd_table[c.entry], &bwd_occ[dev][c.entry][cls], c.block)
                                 : resident_blocks(darn_fwd_table[c.entry], &fwd_occ[dev][c.entry][cls], c.block);
    return c.blocks < cap ? c.blocks : cap;
}

extern "C" int64_t darn_gpu_grid(int backward, const darn_choice *c) { return grid_of(backward, *c); }

/* ---- kernel arguments ------------------------------------------------------------------------------ */
static darn_view view(const void *p, int64_t stride, darn_dtype dt)
{
    darn_view v;
    v.p = p;
    v.stride = stride;
    v.dt = (int32_t)dt;
    v.vec = p && (uintptr_t)p % 16 == 0 && (stride * (int64_t)darn_dtype_size(dt)) % 16 == 0;
    return v;
}

static darn_rng_args rng_of(const darn_plan *pl)
{
    darn_rng_args g;
    g.seed = pl->desc.seed;
    g.offset = pl->desc.offset;
    g.seed_ptr = pl->desc.rng_seed_ptr;
    g.offset_ptr = pl->desc.rng_offset_ptr;
    g.threshold = pl->drop.threshold;
    g.threshold32 = pl->drop.threshold < (UINT64_C(1) << 32) ? (uint32_t)pl->drop.threshold : 0u;
    g.keep_mask = pl->drop.threshold < (UINT64_C(1) << 32) ? 0xFFu : 0u;
    g.scale = pl->drop.scale;
    g.index0 = (uint64_t)(pl->row0 * pl->n); /* a row block of a larger batch: its first element's index */
    return g;
}

extern "C" darn_status darn_gpu_fwd_workspace(const darn_plan *pl, size_t *bytes)
{
    (void)pl;
    *bytes = 0;
    return DARN_OK;
}

extern "C" darn_status darn_gpu_bwd_workspace(const darn_plan *pl, size_t *bytes)
{
    size_t at = 0;
    return darn_bwd_workspace_layout(pl, 1, &at, bytes);
}

static darn_status launch(const void *kernel, int64_t grid, int block, void *args, hipStream_t stream, const char *fn)
{
    void *params[] = {args};
    const hipError_t e = hipLaunchKernel(kernel, dim3((unsigned)grid), dim3((unsigned)block), params, 0, stream);
    return e == hipSuccess ? DARN_OK : device_error(fn, "kernel launch", e);
}

extern "C" darn_status darn_gpu_fwd(const darn_plan *pl, const darn_fwd_tensors *t, void *workspace, void *stream)
{
    (void)workspace;
    const darn_desc &d = pl->desc;
    darn_choice c;
    darn_choose_fwd(pl, t, &c);
    darn_fwd_args a;
    a.x = view(t->x, pl->s_x, d.x_dtype);
    a.res = view(t->residual, pl->s_res, d.residual_dtype);
    a.w = view(t->weight, 0, d.weight_dtype);
    a.b = view(t->bias, 0, d.bias_dtype);
    a.out = view(t->out, pl->s_out, d.out_dtype);
    a.resout = view(t->residual_out, pl->s_resout, pl->resout_dtype);
    a.rowscale = t->rowscale;
    a.mask = t->mask;
    a.rstd = t->rstd;
    a.mean = t->mean;
    a.m = pl->m;
    a.n = pl->n;
    a.groups = pl->groups;
    a.mask_row_bytes = darn_mask_row_bytes(pl->n);
    a.rng = rng_of(pl);
    a.eps = d.eps;
    a.opt = pl->opt;
    a.p = c.p;
    a.rows_per_block = c.rows_per_block;
    a.out_scale = d.out_scale;
    a.out_scale_ptr = d.out_scale_ptr;
    a.amax = (uint32_t *)t->amax; /* the amax's bits: a uint32 maximum (§9) */
    a.x1 = view(pl->has_x1 ? t->x1 : nullptr, pl->s_x1, d.x_dtype);
    a.w1 = view(pl->has_w1 ? t->weight1 : nullptr, 0, d.weight_dtype);
    a.b1 = view(pl->has_b1 ? t->bias1 : nullptr, 0, d.bias_dtype);
    a.out1 = view(pl->has_w1 ? t->out1 : nullptr, pl->s_out1, d.out_dtype);
    a.mask1 = pl->has_x1 ? t->mask1 : nullptr;
    if (t->amax) { /* +0 (also the result for M = 0), then the kernel's atomic maxima */
        const hipError_t e = hipMemsetAsync(t->amax, 0, 4, (hipStream_t)stream);
        if (e != hipSuccess) return device_error("darn_fwd", "hipMemsetAsync", e);
        if (pl->m == 0) return DARN_OK;
    }
    return launch(darn_fwd_table[c.entry], grid_of(0, c), c.block, &a, (hipStream_t)stream, "darn_fwd");
}

/* The backward kernels: dx, dresidual (dx1) and the chunk partials into q[0 … 3] = dweight, dbias, dweight1, dbias1
 * (NULL where absent; M > 0); re-read rows first get their (c1, c2) into rowc. */
static darn_status bwd_kernel(const darn_plan *pl, const darn_bwd_tensors *t, float *const q[4], float *rowc,
                              hipStream_t s, const char *fn)
{
    const darn_desc &d = pl->desc;
    darn_choice c;
    darn_choose_bwd(pl, t, &c);
    darn_bwd_args a;
    a.dy = view(t->dy, pl->s_dy, pl->dy_dtype);
    a.h = view(t->h, pl->s_h, pl->resout_dtype);
    a.w = view(t->weight, 0, d.weight_dtype);
    a.dresout = view(t->dresidual_out, pl->s_dresout, pl->resout_dtype);
    a.dx = view(t->dx, pl->s_dx, d.x_dtype);
    a.dres = view(t->dresidual, pl->s_dres, d.residual_dtype);
    a.rstd = t->rstd;
    a.mean = t->mean;
    a.rowscale = t->rowscale;
    a.mask = pl->mask_read ? t->mask : nullptr;
    a.partial_w = q[0];
    a.partial_b = q[1];
    a.partial_w1 = q[2];
    a.partial_b1 = q[3];
    a.dy1 = view(pl->has_w1 ? t->dy1 : nullptr, pl->s_dy1, pl->dy_dtype);
    a.w1 = view(pl->has_w1 ? t->weight1 : nullptr, 0, d.weight_dtype);
    a.dx1 = view(pl->has_x1 ? t->dx1 : nullptr, pl->s_dx1, d.x_dtype);
    a.mask1 = pl->mask1_read ? t->mask1 : nullptr;
    a.mask1_read = pl->mask1_read;
    a.m = pl->m;
    a.n = pl->n;
    a.groups = pl->groups;
    a.mask_row_bytes = darn_mask_row_bytes(pl->n);
    a.chunk_rows = pl->wgrad_rows;
    a.chunks = pl->wgrad_chunks;
    a.rng = rng_of(pl);
    a.opt = pl->opt;
    a.mask_read = pl->mask_read;
    a.p = c.p;
    a.rows_per_block = c.rows_per_block;
    a.rowc = rowc;
    if (c.variant == DARN_VARIANT_REREAD) {
        int dev = 0;
        if (hipGetDevice(&dev) != hipSuccess || dev < 0 || dev >= DARN_MAX_DEVICES) dev = 0;
        const void *sums = darn_bwd_rowsums_table[c.cfg];
        const int64_t cap = resident_blocks(sums, &rowsums_occ[dev][c.cfg], DARN_REREAD_P);
        const darn_status st = launch(sums, full_grid() || pl->m < cap ? pl->m : cap, DARN_REREAD_P, &a, s, fn);
        if (st != DARN_OK) return st;
    }
    return launch(darn_bwd_table[c.entry], grid_of(1, c), c.block, &a, s, fn);
}

/* The passes of the tree over the plan's chunk partials q[0 … 3] (in place; NULL where absent) into dst[0 … 3] =
 * dweight, dbias, dweight1, dbias1; +0 for M = 0. */
static darn_status wgrad_passes(const darn_plan *pl, float *const q[4], void *const dst[4], hipStream_t s, const char *fn)
{
    const darn_desc &d = pl->desc;
    const darn_dtype dts[4] = {d.weight_dtype, d.bias_dtype, d.weight_dtype, d.bias_dtype};
    if (pl->m == 0) { /* the gradient of an empty batch: +0 is all-zero bytes in every dtype */
        for (int k = 0; k < 4; k++) {
            if (!darn_wgrad_has(pl, k) || !dst[k]) continue;
            const hipError_t e = hipMemsetAsync(dst[k], 0, (size_t)pl->n * darn_dtype_size(dts[k]), s);
            if (e != hipSuccess) return device_error(fn, "hipMemsetAsync", e);
        }
        return DARN_OK;
    }
    darn_wgrad_args w;
    w.parts = 0;
    for (int k = 0; k < 4; k++) {
        if (!darn_wgrad_has(pl, k)) continue;
        w.partial[w.parts] = q[k];
        w.dst[w.parts] = dst[k];
        w.dt[w.parts] = (int32_t)dts[k];
        w.parts++;
    }
    w.n = pl->n;
    w.col_blocks = (pl->n + 255) / 256;
    w.step = 1;
    for (w.count = pl->wgrad_chunks;; w.count = (w.count + 31) / 32, w.step *= 32) {
        void *params[] = {&w};
        const dim3 grid((unsigned)(w.col_blocks * ((w.count + 31) / 32)), (unsigned)w.parts);
        const hipError_t e = hipLaunchKernel(darn_wgrad_pass_kernel, grid, dim3(256), params, 0, s);
        if (e != hipSuccess) return device_error(fn, "kernel launch", e);
        if (w.count <= 32) break;
    }
    return DARN_OK;
}

extern "C" darn_status darn_gpu_bwd(const darn_plan *pl, const darn_bwd_tensors *t, void *workspace, void *stream)
{
    const hipStream_t s = (hipStream_t)stream;
    float *q[4];
    darn_wgrad_sets(pl, workspace, q);
    size_t at = 0, total = 0;
    darn_status st = darn_bwd_workspace_layout(pl, 1, &at, &total); /* (checked by darn_bwd: cannot fail here) */
    float *rowc = total > at ? (float *)((char *)workspace + at) : nullptr;
    /* Everything that can be computed is computed before the first launch; what can still fail after it
     * is the device itself (darn.h: a DARN_ERR_DEVICE status may leave outputs written). */
    if (st == DARN_OK && pl->m > 0) st = bwd_kernel(pl, t, q, rowc, s, "darn_bwd");
    void *const dst[4] = {t->dweight, t->dbias, t->dweight1, t->dbias1};
    return st == DARN_OK ? wgrad_passes(pl, q, dst, s, "darn_bwd") : st;
}

/* The caller's buffers get one partial per chunk, as the kernel writes them today. A kernel that stores the sum of
 * an aligned pair of chunks (numerics.md §7 allows it for the tree's first level) must not do so here: a block may
 * start at an odd global chunk, and the caller reduces per-chunk partials. (No parallel residual: validation.) */
extern "C" darn_status darn_gpu_bwd_partials(const darn_plan *pl, const darn_bwd_tensors *t, float *pw, float *pb,
                                             void *rowsums, void *stream)
{
    float *const q[4] = {pw, pl->has_bias ? pb : nullptr, nullptr, nullptr};
    return bwd_kernel(pl, t, q, (float *)rowsums, (hipStream_t)stream, "darn_bwd_partials");
}

extern "C" darn_status darn_gpu_wgrad_reduce(const darn_plan *pl, float *pw, float *pb, void *dweight, void *dbias,
                                             void *stream)
{
    float *const q[4] = {pw, pl->has_bias ? pb : nullptr, nullptr, nullptr};
    void *const dst[4] = {dweight, dbias, nullptr, nullptr};
    return wgrad_passes(pl, q, dst, (hipStream_t)stream, "darn_wgrad_reduce");
}
