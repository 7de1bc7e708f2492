/* api.c — the public entry points: version, status text, descriptor helpers, and dispatch of validated
 * calls to the CPU or GPU backend. */
#include "cpu_backend.h"
#include "dispatch.h"
#include "validate.h"

#include <stdio.h>
#ifdef DARN_HAVE_GPU
#include "gpu_backend.h"
#endif /* DARN_HAVE_GPU */

#define DARN_STR2(x) #x
#define DARN_STR(x) DARN_STR2(x)

int darn_version(void) { return DARN_VERSION_NUMBER; }
const char *darn_version_string(void)
{
    return DARN_STR(DARN_VERSION_MAJOR) "." DARN_STR(DARN_VERSION_MINOR) "." DARN_STR(DARN_VERSION_PATCH);
}
int darn_contract_version(void) { return DARN_CONTRACT_VERSION; }

const char *darn_status_string(darn_status status)
{
    switch (status) {
#define DARN_X_CASE(name, value, text) \
    case name: return #name ": " text;
        DARN_STATUS_LIST(DARN_X_CASE)
#undef DARN_X_CASE
    }
    return "unknown status";
}

size_t darn_dtype_size(darn_dtype dtype)
{
    switch (dtype) {
    case DARN_F32: return 4;
    case DARN_F16:
    case DARN_BF16: return 2;
    case DARN_FP8_E4M3FN:
    case DARN_FP8_E5M2:
    case DARN_FP8_E4M3FNUZ:
    case DARN_FP8_E5M2FNUZ: return 1;
    case DARN_DTYPE_SAME_AS_OUT: return 0;
    }
    return 0;
}

int darn_backend_available(darn_backend backend)
{
    switch (backend) {
    case DARN_BACKEND_CPU: return 1;
    case DARN_BACKEND_GPU:
#ifdef DARN_HAVE_GPU
        return darn_gpu_available();
#else
        return 0;
#endif /* DARN_HAVE_GPU */
    }
    return 0;
}

void darn_desc_init(darn_desc *desc, darn_norm norm, int64_t rows, int64_t cols, darn_dtype dtype)
{
    if (!desc) return;
    *desc = (darn_desc){0};
    desc->norm = norm;
    desc->rows = rows;
    desc->cols = cols;
    desc->x_dtype = desc->residual_dtype = desc->weight_dtype = desc->bias_dtype = desc->out_dtype = dtype;
    desc->eps = norm == DARN_LAYERNORM ? 1e-5f : 1e-6f;
    desc->dy_dtype = DARN_DTYPE_SAME_AS_OUT;
    desc->out_scale = 1.0f;
}

darn_dtype darn_residual_out_dtype(const darn_desc *d)
{
    if (!d) return (darn_dtype)-1;
    if (d->flags & DARN_FLAG_RESIDUAL_IN_FP32) return DARN_F32;
    return (d->flags & DARN_FLAG_HAS_RESIDUAL) ? d->residual_dtype : d->x_dtype;
}

int64_t darn_mask_row_bytes(int64_t cols) { return cols <= 0 ? 0 : 4 * (cols / 32 + (cols % 32 != 0)); }
int64_t darn_wgrad_chunks(int64_t rows, int64_t cols) { return cols <= 0 ? 0 : darn_wgrad_chunks_for(rows, cols); }
int64_t darn_wgrad_chunk_rows(int64_t rows, int64_t cols) { return rows <= 0 || cols <= 0 ? 0 : darn_wgrad_chunk_rows_for(rows, cols); }
int64_t darn_row_groups(int64_t cols) { return cols <= 0 ? 0 : darn_groups_for(cols); }

/* ---- dispatch ------------------------------------------------------------------------------------ */
darn_status darn_check_backend(darn_backend backend, const char *fn)
{
    if (backend != DARN_BACKEND_CPU && backend != DARN_BACKEND_GPU)
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: backend = %d is not a darn_backend", fn, (int)backend);
    if (!darn_backend_available(backend))
        return darn_fail(DARN_ERR_BACKEND_UNAVAILABLE, "%s: backend GPU is %s", fn,
#ifdef DARN_HAVE_GPU
                         "built in but no GPU device is usable"
#else
                         "not built into this library (configure with -DDARN_GPU=amd or nvidia)"
#endif /* DARN_HAVE_GPU */
        );
    return DARN_OK;
}

darn_status darn_check_workspace(size_t need, const void *ws, size_t have, const char *fn)
{
    if (need == 0) return DARN_OK;
    if (!ws) return darn_fail(DARN_ERR_WORKSPACE, "%s: workspace is NULL but %zu bytes are needed", fn, need);
    if (have < need)
        return darn_fail(DARN_ERR_WORKSPACE, "%s: workspace_bytes = %zu, need %zu", fn, have, need);
    if ((uintptr_t)ws % 16)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: workspace = %p must be 16-byte aligned", fn, ws);
    return DARN_OK;
}

static darn_status fwd_workspace(const darn_plan *pl, darn_backend backend, size_t *bytes)
{
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_fwd_workspace(pl, bytes);
#endif /* DARN_HAVE_GPU */
    (void)pl;
    (void)backend;
    *bytes = 0;
    return DARN_OK;
}

static darn_status bwd_workspace(const darn_plan *pl, darn_backend backend, size_t *bytes)
{
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_bwd_workspace(pl, bytes);
#endif /* DARN_HAVE_GPU */
    (void)backend;
    return darn_bwd_partials_workspace(pl, bytes);
}

darn_status darn_fwd_workspace_size(const darn_desc *desc, darn_backend backend, size_t *bytes)
{
    const char *fn = "darn_fwd_workspace_size";
    darn_plan pl;
    darn_status s;
    if (!bytes) return darn_fail(DARN_ERR_NULL_POINTER, "%s: bytes is NULL", fn);
    if ((s = darn_check_backend(backend, fn)) != DARN_OK || (s = darn_plan_init(&pl, desc, fn)) != DARN_OK ||
        (s = fwd_workspace(&pl, backend, bytes)) != DARN_OK)
        return s;
    darn_clear_error();
    return DARN_OK;
}

darn_status darn_bwd_workspace_size(const darn_desc *desc, darn_backend backend, size_t *bytes)
{
    const char *fn = "darn_bwd_workspace_size";
    darn_plan pl;
    darn_status s;
    if (!bytes) return darn_fail(DARN_ERR_NULL_POINTER, "%s: bytes is NULL", fn);
    if ((s = darn_check_backend(backend, fn)) != DARN_OK || (s = darn_plan_init(&pl, desc, fn)) != DARN_OK ||
        (s = bwd_workspace(&pl, backend, bytes)) != DARN_OK)
        return s;
    darn_clear_error();
    return DARN_OK;
}

darn_status darn_fwd(const darn_desc *desc, const darn_fwd_tensors *t, void *workspace, size_t workspace_bytes,
                     darn_backend backend, void *stream)
{
    const char *fn = "darn_fwd";
    darn_plan pl;
    size_t need = 0;
    darn_status s;
    if ((s = darn_check_backend(backend, fn)) != DARN_OK || (s = darn_validate_fwd(&pl, desc, t)) != DARN_OK ||
        (s = fwd_workspace(&pl, backend, &need)) != DARN_OK ||
        (s = darn_check_workspace(need, workspace, workspace_bytes, fn)) != DARN_OK)
        return s;
    darn_clear_error();
    if (pl.m == 0 && !t->amax) return DARN_OK; /* (amax is written for M = 0 too: +0) */
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_fwd(&pl, t, workspace, stream);
#endif /* DARN_HAVE_GPU */
    (void)stream;
    return darn_cpu_fwd(&pl, t);
}

darn_status darn_bwd(const darn_desc *desc, const darn_bwd_tensors *t, void *workspace, size_t workspace_bytes,
                     darn_backend backend, void *stream)
{
    const char *fn = "darn_bwd";
    darn_plan pl;
    size_t need = 0;
    darn_status s;
    if ((s = darn_check_backend(backend, fn)) != DARN_OK || (s = darn_validate_bwd(&pl, desc, t, workspace, backend == DARN_BACKEND_GPU)) != DARN_OK ||
        (s = bwd_workspace(&pl, backend, &need)) != DARN_OK ||
        (s = darn_check_workspace(need, workspace, workspace_bytes, fn)) != DARN_OK)
        return s;
    darn_clear_error();
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_bwd(&pl, t, workspace, stream);
#endif /* DARN_HAVE_GPU */
    (void)stream;
    return darn_cpu_bwd(&pl, t, workspace);
}

/* ---- debugging: the dispatch table ---------------------------------------------------------------- */
static void kernel_info(int backward, const darn_choice *c, darn_kernel_info *info)
{
    *info = (darn_kernel_info){0};
    info->entry = c->entry;
    darn_entry_name(backward, c->entry, info->name, sizeof info->name);
    info->threads_per_row = c->p;
    info->groups_per_thread = c->k;
    info->rows_per_block = c->rows_per_block;
    info->block_threads = c->block;
    info->grid = c->blocks;
#ifdef DARN_HAVE_GPU
    if (c->blocks > 0 && darn_gpu_available()) info->grid = darn_gpu_grid(backward, c);
#endif /* DARN_HAVE_GPU */
}

darn_status darn_debug_fwd_kernel(const darn_desc *desc, const darn_fwd_tensors *t, darn_kernel_info *info)
{
    const char *fn = "darn_debug_fwd_kernel";
    darn_plan pl;
    darn_status s;
    if (!info) return darn_fail(DARN_ERR_NULL_POINTER, "%s: info is NULL", fn);
    if ((s = darn_validate_fwd(&pl, desc, t)) != DARN_OK)
        return s;
    darn_clear_error();
    darn_choice c;
    darn_choose_fwd(&pl, t, &c);
    kernel_info(0, &c, info);
    if (pl.m == 0) {
        info->entry = -1;
        info->grid = 0;
        snprintf(info->name, sizeof info->name, "none (M = 0)");
    }
    return DARN_OK;
}

darn_status darn_debug_bwd_kernel(const darn_desc *desc, const darn_bwd_tensors *t, darn_kernel_info *info)
{
    const char *fn = "darn_debug_bwd_kernel";
    darn_plan pl;
    darn_status s;
    if (!info) return darn_fail(DARN_ERR_NULL_POINTER, "%s: info is NULL", fn);
    if ((s = darn_validate_bwd(&pl, desc, t, NULL, 1)) != DARN_OK) return s;
    darn_clear_error();
    darn_choice c;
    darn_choose_bwd(&pl, t, &c);
    kernel_info(1, &c, info);
    if (pl.m == 0) {
        info->entry = -1;
        info->grid = 0;
        snprintf(info->name, sizeof info->name, "none (M = 0: dweight/dbias set to +0)");
    }
    return DARN_OK;
}

int darn_debug_kernel_count(int backward) { return backward ? DARN_N_BWD_ENTRIES : DARN_N_FWD_ENTRIES; }

darn_status darn_debug_kernel_entry(int backward, int entry, darn_kernel_info *info)
{
    if (!info) return darn_fail(DARN_ERR_NULL_POINTER, "darn_debug_kernel_entry: info is NULL");
    if (entry < 0 || entry >= darn_debug_kernel_count(backward))
        return darn_fail(DARN_ERR_BAD_ENUM, "darn_debug_kernel_entry: entry = %d, the %s table has %d entries", entry,
                         backward ? "backward" : "forward", darn_debug_kernel_count(backward));
    darn_clear_error();
    darn_choice c;
    darn_entry_choice(backward, entry, &c);
    *info = (darn_kernel_info){0};
    info->entry = entry;
    darn_entry_name(backward, entry, info->name, sizeof info->name);
    return DARN_OK;
}
