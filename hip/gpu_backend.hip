/*
 * gpu_backend.hip — host side of the HIP backend: device discovery, launch geometry (a function of N
 * alone), vector-path eligibility, and the calls behind darn_fwd / darn_bwd on DARN_BACKEND_GPU.
 */
#include "gpu_backend.h"
#include "kernels.h"

extern "C" int darn_gpu_available(void)
{
    int count = 0;
    return hipGetDeviceCount(&count) == hipSuccess && count > 0;
}

darn_status darn_check_launch(const char *fn)
{
    const hipError_t e = hipGetLastError();
    if (e == hipSuccess) return DARN_OK;
    return darn_fail(DARN_ERR_DEVICE, "%s: kernel launch failed: %s (%s)", fn, hipGetErrorName(e),
                     hipGetErrorString(e));
}

/* P = min(L(N), next_pow2(groups)), K = ceil(groups / P); rows share a 256-thread block when P <= 32. */
static darn_gpu_geom geometry(int64_t n)
{
    darn_gpu_geom g;
    g.groups = (n + DARN_GROUP - 1) / DARN_GROUP;
    const int64_t lanes = darn_lanes_for(n);
    int64_t p = 1;
    while (p < g.groups && p < lanes) p *= 2;
    g.p = (int)p;
    g.k = (int)((g.groups + p - 1) / p);
    g.rows_per_block = p <= 32 ? DARN_GPU_SMALL_BLOCK / g.p : 1;
    g.block = p <= 32 ? DARN_GPU_SMALL_BLOCK : g.p;
    return g;
}

/* The 16-byte path: base 16-byte aligned and every row start too. */
static uint8_t vec_ok(const void *p, int64_t stride, darn_dtype dt)
{
    return p && (uintptr_t)p % 16 == 0 && (stride * (int64_t)darn_dtype_size(dt)) % 16 == 0;
}

static darn_gpu_rng rng_of(const darn_plan *pl)
{
    darn_gpu_rng g;
    g.seed = pl->desc.seed;
    g.offset = pl->desc.offset;
    g.seed_ptr = pl->desc.rng_seed_ptr;
    g.offset_ptr = pl->desc.rng_offset_ptr;
    g.threshold = pl->drop.threshold;
    g.scale = pl->drop.scale;
    g.dropout = pl->dropout;
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
    return darn_bwd_partials_workspace(pl, bytes);
}

extern "C" darn_status darn_gpu_fwd(const darn_plan *pl, const darn_fwd_tensors *t, void *workspace, void *stream)
{
    (void)workspace;
    const darn_desc &d = pl->desc;
    darn_gpu_fwd_args a;
    a.x = t->x;
    a.res = t->residual;
    a.w = t->weight;
    a.b = t->bias;
    a.rowscale = t->rowscale;
    a.out = t->out;
    a.resout = t->residual_out;
    a.mask = t->mask;
    a.rstd = t->rstd;
    a.mean = t->mean;
    a.m = pl->m;
    a.n = pl->n;
    a.s_x = pl->s_x;
    a.s_res = pl->s_res;
    a.s_out = pl->s_out;
    a.s_resout = pl->s_resout;
    a.mask_row_bytes = darn_mask_row_bytes(pl->n);
    a.geom = geometry(pl->n);
    a.rng = rng_of(pl);
    a.eps = d.eps;
    a.dt_x = (uint8_t)d.x_dtype;
    a.dt_res = (uint8_t)d.residual_dtype;
    a.dt_w = (uint8_t)d.weight_dtype;
    a.dt_b = (uint8_t)d.bias_dtype;
    a.dt_out = (uint8_t)d.out_dtype;
    a.dt_resout = (uint8_t)pl->resout_dtype;
    a.vec_x = vec_ok(t->x, pl->s_x, d.x_dtype);
    a.vec_res = vec_ok(t->residual, pl->s_res, d.residual_dtype);
    a.vec_w = vec_ok(t->weight, 0, d.weight_dtype);
    a.vec_b = vec_ok(t->bias, 0, d.bias_dtype);
    a.vec_out = vec_ok(t->out, pl->s_out, d.out_dtype);
    a.vec_resout = vec_ok(t->residual_out, pl->s_resout, pl->resout_dtype);
    a.layer = pl->layer;
    a.has_res = pl->has_res;
    a.has_bias = pl->has_bias;
    a.has_rowscale = pl->has_rowscale;
    a.zc = pl->zero_centered;
    return darn_launch_fwd(a, (hipStream_t)stream);
}

extern "C" darn_status darn_gpu_bwd(const darn_plan *pl, const darn_bwd_tensors *t, void *workspace, void *stream)
{
    const darn_desc &d = pl->desc;
    darn_gpu_bwd_args a;
    a.dy = t->dy;
    a.h = t->h;
    a.w = t->weight;
    a.dresout = t->dresidual_out;
    a.rstd = t->rstd;
    a.mean = t->mean;
    a.rowscale = t->rowscale;
    a.mask = t->mask;
    a.dx = t->dx;
    a.dres = t->dresidual;
    a.m = pl->m;
    a.n = pl->n;
    a.partial_w = (float *)workspace;
    a.partial_b = pl->has_bias && workspace ? (float *)workspace + pl->wgrad_chunks * pl->n : nullptr;
    a.s_dy = pl->s_dy;
    a.s_h = pl->s_h;
    a.s_dresout = pl->s_dresout;
    a.s_dx = pl->s_dx;
    a.s_dres = pl->s_dres;
    a.mask_row_bytes = darn_mask_row_bytes(pl->n);
    a.chunk_rows = pl->wgrad_rows;
    a.chunks = pl->wgrad_chunks;
    a.geom = geometry(pl->n);
    a.rng = rng_of(pl);
    a.dt_dy = (uint8_t)d.out_dtype;
    a.dt_h = (uint8_t)pl->resout_dtype;
    a.dt_w = (uint8_t)d.weight_dtype;
    a.dt_b = (uint8_t)d.bias_dtype;
    a.dt_dres = (uint8_t)d.residual_dtype;
    a.dt_dx = (uint8_t)d.x_dtype;
    a.vec_dy = vec_ok(t->dy, pl->s_dy, d.out_dtype);
    a.vec_h = vec_ok(t->h, pl->s_h, pl->resout_dtype);
    a.vec_w = vec_ok(t->weight, 0, d.weight_dtype);
    a.vec_dresout = vec_ok(t->dresidual_out, pl->s_dresout, pl->resout_dtype);
    a.vec_dx = vec_ok(t->dx, pl->s_dx, d.x_dtype);
    a.vec_dres = vec_ok(t->dresidual, pl->s_dres, d.residual_dtype);
    a.layer = pl->layer;
    a.has_rowscale = pl->has_rowscale;
    a.zc = pl->zero_centered;
    return darn_launch_bwd(a, t->dweight, t->dbias, (hipStream_t)stream);
}
