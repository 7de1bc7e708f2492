/* rows.c — sequence parallelism: a block of consecutive rows of a larger batch (darn.h, "Sequence
 * parallelism"; docs/numerics.md §6, "Row blocks"). darn_fwd_rows and darn_bwd_partials run the rows of
 * one block with the whole batch's dropout index and dweight chunks; darn_wgrad_reduce applies the tree
 * over the chunk partials of all blocks. */
#include "cpu_backend.h"
#include "dispatch.h"

#include <string.h>
#ifdef DARN_HAVE_GPU
#include "gpu_backend.h"
#endif /* DARN_HAVE_GPU */

#define TRY(expr)                                                                                                \
    do {                                                                                                          \
        darn_status s_ = (expr);                                                                                  \
        if (s_ != DARN_OK) return s_;                                                                             \
    } while (0)

/* The split checks of darn_wgrad_split, with `fn` in the messages. */
static darn_status split_check(int64_t m, int64_t n, int64_t row0, int64_t rows, int64_t *first, int64_t *chunks,
                               const char *fn)
{
    if (n < 1) return darn_fail(DARN_ERR_BAD_SHAPE, "%s: cols (N) = %lld, must be >= 1", fn, (long long)n);
    if (m < 0) return darn_fail(DARN_ERR_BAD_SHAPE, "%s: total rows (M) = %lld, must be >= 0", fn, (long long)m);
    if (m > 0 && n > INT64_MAX / m)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: M * N (%lld * %lld) overflows int64", fn, (long long)m, (long long)n);
    if (row0 < 0 || rows < 0 || row0 > m - rows)
        return darn_fail(DARN_ERR_BAD_SHAPE, "%s: rows [row0, row0 + rows) = [%lld, %lld + %lld) is not a block of "
                         "the batch's M = %lld rows", fn, (long long)row0, (long long)row0, (long long)rows,
                         (long long)m);
    const int64_t r = darn_wgrad_chunk_rows_for(m, n);
    if (row0 % r != 0 && row0 != m)
        return darn_fail(DARN_ERR_CHUNK_SPLIT, "%s: row0 = %lld is not on a dweight chunk boundary: chunks of M = %lld, "
                         "N = %lld have R = %lld rows (darn_wgrad_chunk_rows), so row0 must be a multiple of %lld",
                         fn, (long long)row0, (long long)m, (long long)n, (long long)r, (long long)r);
    if (rows % r != 0 && row0 + rows != m)
        return darn_fail(DARN_ERR_CHUNK_SPLIT, "%s: the block [%lld, %lld) ends inside a dweight chunk: chunks of "
                         "M = %lld, N = %lld have R = %lld rows, so rows = %lld must be a multiple of %lld or "
                         "row0 + rows must be M", fn, (long long)row0, (long long)(row0 + rows), (long long)m,
                         (long long)n, (long long)r, (long long)rows, (long long)r);
    if (first) *first = row0 / r + (row0 % r != 0); /* row0 = M off a boundary: the chunk count G */
    if (chunks) *chunks = rows / r + (rows % r != 0);
    return DARN_OK;
}

darn_status darn_wgrad_split(int64_t total_rows, int64_t cols, int64_t row0, int64_t rows, int64_t *first_chunk,
                             int64_t *chunks)
{
    TRY(split_check(total_rows, cols, row0, rows, first_chunk, chunks, "darn_wgrad_split"));
    darn_clear_error();
    return DARN_OK;
}

/* desc (the whole batch) is valid and [row0, row0 + rows) is a block of it; *block = desc with M = rows. */
static darn_status block_desc(const darn_desc *desc, int64_t row0, int64_t rows, darn_desc *block, const char *fn)
{
    darn_plan whole;
    TRY(darn_plan_init(&whole, desc, fn));
    if (row0 < 0 || rows < 0 || row0 > desc->rows - rows)
        return darn_fail(DARN_ERR_BAD_SHAPE, "%s: rows [row0, row0 + rows) = [%lld, %lld + %lld) is not a block of "
                         "desc->rows (M) = %lld", fn, (long long)row0, (long long)row0, (long long)rows,
                         (long long)desc->rows);
    *block = *desc;
    block->rows = rows;
    return DARN_OK;
}

darn_status darn_fwd_rows(const darn_desc *desc, int64_t row0, int64_t rows, const darn_fwd_tensors *t,
                          void *workspace, size_t workspace_bytes, darn_backend backend, void *stream)
{
    const char *fn = "darn_fwd_rows";
    darn_desc bd;
    darn_plan pl;
    size_t need = 0;
    TRY(darn_check_backend(backend, fn));
    TRY(block_desc(desc, row0, rows, &bd, fn));
    TRY(darn_validate_fwd(&pl, &bd, t));
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) TRY(darn_gpu_fwd_workspace(&pl, &need));
#endif /* DARN_HAVE_GPU */
    TRY(darn_check_workspace(need, workspace, workspace_bytes, fn));
    pl.row0 = row0;
    darn_clear_error();
    if (pl.m == 0 && !t->amax) return DARN_OK; /* (amax is written for no rows too: +0, as darn_fwd) */
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_fwd(&pl, t, workspace, stream);
#endif /* DARN_HAVE_GPU */
    (void)stream;
    return darn_cpu_fwd(&pl, t);
}

darn_status darn_bwd_partials_workspace_size(const darn_desc *desc, int64_t row0, int64_t rows, darn_backend backend,
                                             size_t *bytes)
{
    const char *fn = "darn_bwd_partials_workspace_size";
    darn_desc bd;
    if (!bytes) return darn_fail(DARN_ERR_NULL_POINTER, "%s: bytes is NULL", fn);
    TRY(darn_check_backend(backend, fn));
    TRY(block_desc(desc, row0, rows, &bd, fn));
    TRY(split_check(desc->rows, desc->cols, row0, rows, NULL, NULL, fn));
    darn_plan pl;
    TRY(darn_plan_init(&pl, &bd, fn));
    /* the partials go straight to the caller's buffers on every backend; the GPU's re-read rows need their
     * (c1, c2) pairs */
    *bytes = backend == DARN_BACKEND_GPU ? darn_gpu_bwd_rowsum_bytes(&pl) : 0;
    darn_clear_error();
    return DARN_OK;
}

darn_status darn_bwd_partials(const darn_desc *desc, int64_t row0, int64_t rows, const darn_bwd_tensors *t,
                              float *dweight_partials, float *dbias_partials, void *workspace, size_t workspace_bytes,
                              darn_backend backend, void *stream)
{
    const char *fn = "darn_bwd_partials";
    darn_desc bd;
    darn_plan pl;
    int64_t chunks = 0;
    TRY(darn_check_backend(backend, fn));
    TRY(block_desc(desc, row0, rows, &bd, fn));
    TRY(split_check(desc->rows, desc->cols, row0, rows, NULL, &chunks, fn));
    const int gpu = backend == DARN_BACKEND_GPU;
    TRY(darn_validate_bwd_partials(&pl, &bd, t, dweight_partials, dbias_partials, chunks, workspace, gpu, fn));
    TRY(darn_check_workspace(gpu ? darn_gpu_bwd_rowsum_bytes(&pl) : 0, workspace, workspace_bytes, fn));
    /* the whole batch's chunks, as many as the block covers; dropout's index of the whole batch */
    pl.wgrad_rows = darn_wgrad_chunk_rows_for(desc->rows, desc->cols);
    pl.wgrad_chunks = chunks;
    pl.row0 = row0;
    darn_clear_error();
    if (pl.m == 0) return DARN_OK;
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU) return darn_gpu_bwd_partials(&pl, t, dweight_partials, dbias_partials, workspace, stream);
#endif /* DARN_HAVE_GPU */
    (void)stream;
    float *const q[4] = {dweight_partials, pl.has_bias ? dbias_partials : NULL, NULL, NULL}; /* no weight1: validated */
    darn_cpu_bwd_chunks(&pl, t, q);
    return DARN_OK;
}

/* [a, a + na) and [b, b + nb) share a byte (both present). */
static int spans_meet(const void *a, uint64_t na, const void *b, uint64_t nb)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return a && b && na && nb && pa < pb + nb && pb < pa + na;
}

darn_status darn_wgrad_reduce(const darn_desc *desc, float *dweight_partials, float *dbias_partials, void *dweight,
                              void *dbias, darn_backend backend, void *stream)
{
    const char *fn = "darn_wgrad_reduce";
    darn_plan pl;
    TRY(darn_check_backend(backend, fn));
    TRY(darn_plan_init(&pl, desc, fn));
    if (pl.has_w1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: desc->flags has DARN_FLAG_HAS_WEIGHT1: the row-block reduction takes "
                         "the partials of one weight (and bias) only", fn);
    if (!dweight) return darn_fail(DARN_ERR_NULL_POINTER, "%s: dweight is NULL", fn);
    if (dbias && !pl.has_bias)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: dbias is set but desc->flags lacks DARN_FLAG_HAS_BIAS", fn);
    if (dbias_partials && !pl.has_bias)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: dbias_partials is set but desc->flags lacks DARN_FLAG_HAS_BIAS", fn);
    if (pl.has_bias && !dbias) return darn_fail(DARN_ERR_NULL_POINTER, "%s: dbias is NULL but desc->flags has DARN_FLAG_HAS_BIAS", fn);
    const uint64_t n = (uint64_t)pl.n, g = (uint64_t)pl.wgrad_chunks;
    const uint64_t ws = darn_dtype_size(desc->weight_dtype), bs = darn_dtype_size(desc->bias_dtype);
    if ((uintptr_t)dweight % ws)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: dweight = %p is not aligned to its %u-byte elements", fn, dweight,
                         (unsigned)ws);
    if (dbias && (uintptr_t)dbias % bs)
        return darn_fail(DARN_ERR_MISALIGNED, "%s: dbias = %p is not aligned to its %u-byte elements", fn, dbias,
                         (unsigned)bs);
    uint64_t pbytes = 0;
    if (g > 0) {
        if (!dweight_partials) return darn_fail(DARN_ERR_NULL_POINTER, "%s: dweight_partials is NULL", fn);
        if (pl.has_bias && !dbias_partials)
            return darn_fail(DARN_ERR_NULL_POINTER, "%s: dbias_partials is NULL but desc->flags has DARN_FLAG_HAS_BIAS",
                             fn);
        if (n > (uint64_t)INT64_MAX / 4 / g)
            return darn_fail(DARN_ERR_OVERFLOW, "%s: G * N * 4 bytes of the partials overflow", fn);
        pbytes = g * n * 4;
        for (int k = 0; k < 2; k++) {
            const float *q = k ? dbias_partials : dweight_partials;
            if (q && (uintptr_t)q % 16)
                return darn_fail(DARN_ERR_MISALIGNED, "%s: %s = %p must be 16-byte aligned", fn,
                                 k ? "dbias_partials" : "dweight_partials", (const void *)q);
            if (q && (uintptr_t)q + pbytes < (uintptr_t)q)
                return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: address range wraps around", fn,
                                 k ? "dbias_partials" : "dweight_partials");
        }
    } else {
        dweight_partials = dbias_partials = NULL; /* M = 0: nothing is read */
    }
    const struct { const char *name; const void *p; uint64_t bytes; } b[4] = {
        {"dweight", dweight, n * ws}, {"dbias", dbias, dbias ? n * bs : 0},
        {"dweight_partials", dweight_partials, pbytes}, {"dbias_partials", dbias_partials, pbytes}};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (spans_meet(b[i].p, b[i].bytes, b[j].p, b[j].bytes))
                return darn_fail(DARN_ERR_ALIASING, "%s: %s and %s overlap", fn, b[i].name, b[j].name);
    darn_clear_error();
#ifdef DARN_HAVE_GPU
    if (backend == DARN_BACKEND_GPU)
        return darn_gpu_wgrad_reduce(&pl, dweight_partials, dbias_partials, dweight, dbias, stream);
#endif /* DARN_HAVE_GPU */
    (void)stream;
    darn_cpu_wgrad_reduce(&pl, dweight_partials, dbias_partials, dweight, dbias);
    return DARN_OK;
}
