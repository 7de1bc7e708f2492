/* cols.c — tensor parallelism: one slice of the columns of every row (darn.h, "Tensor parallelism";
 * docs/numerics.md §5, "Column slices"). The split is checked here, each call is validated as a call on
 * the slice's columns with the whole row's place (dropout's index, nf, the dweight chunks), and the row
 * sums travel between the ranks as the nodes of the §5 tree that each slice covers. */
#include "cpu_backend.h"

#define TRY(expr)                                                                                                \
    do {                                                                                                          \
        darn_status s_ = (expr);                                                                                  \
        if (s_ != DARN_OK) return s_;                                                                             \
    } while (0)

/* The split checks of darn_col_split_slots, with `fn` in the messages. */
static darn_status split_check(int64_t n, const darn_col_split *split, darn_cols_plan *cp, const char *fn)
{
    if (!split) return darn_fail(DARN_ERR_NULL_POINTER, "%s: split is NULL", fn);
    if (!split->bounds) return darn_fail(DARN_ERR_NULL_POINTER, "%s: split->bounds is NULL", fn);
    if (n < 1) return darn_fail(DARN_ERR_BAD_SHAPE, "%s: cols (N) = %lld, must be >= 1", fn, (long long)n);
    const int64_t W = split->ranks;
    if (W < 1 || W > n)
        return darn_fail(DARN_ERR_COL_SPLIT, "%s: split->ranks = %lld, must be in [1, N = %lld]", fn, (long long)W,
                         (long long)n);
    if (split->rank < 0 || split->rank >= W)
        return darn_fail(DARN_ERR_COL_SPLIT, "%s: split->rank = %lld, must be in [0, ranks = %lld)", fn,
                         (long long)split->rank, (long long)W);
    const int64_t *b = split->bounds;
    if (b[0] != 0 || b[W] != n)
        return darn_fail(DARN_ERR_COL_SPLIT, "%s: split->bounds[0] = %lld and bounds[%lld] = %lld must be 0 and N = %lld",
                         fn, (long long)b[0], (long long)W, (long long)b[W], (long long)n);
    int64_t slots = 0;
    for (int64_t k = 0; k < W; k++) {
        if (b[k + 1] <= b[k])
            return darn_fail(DARN_ERR_COL_SPLIT, "%s: split->bounds[%lld] = %lld, bounds[%lld] = %lld: every slice "
                             "needs at least one column", fn, (long long)k, (long long)b[k], (long long)(k + 1),
                             (long long)b[k + 1]);
        if (k > 0 && b[k] % DARN_GROUP != 0)
            return darn_fail(DARN_ERR_COL_SPLIT, "%s: split->bounds[%lld] = %lld is not a multiple of %d: a slice must "
                             "start on a row-sum group (docs/numerics.md §5)", fn, (long long)k, (long long)b[k],
                             DARN_GROUP);
        const int64_t s = darn_slice_nodes(b[k] / DARN_GROUP, darn_groups_for(b[k + 1]));
        if (s > slots) slots = s;
    }
    if (cp) *cp = (darn_cols_plan){b, W, split->rank, slots};
    return DARN_OK;
}

darn_status darn_col_split_slots(int64_t cols, const darn_col_split *split, int64_t *slots)
{
    const char *fn = "darn_col_split_slots";
    darn_cols_plan cp;
    if (!slots) return darn_fail(DARN_ERR_NULL_POINTER, "%s: slots is NULL", fn);
    TRY(split_check(cols, split, &cp, fn));
    *slots = cp.slots;
    darn_clear_error();
    return DARN_OK;
}

/* desc (the whole problem) is valid and the split fits it: *slice = desc with the rank's column count, the
 * exchange buffers' sizes (nodes [M, stats, slots], gathered [ranks, M, stats, slots]) checked. */
typedef struct cols_call {
    darn_cols_plan cp;
    darn_desc slice;
    darn_slice_bufs bufs;
} cols_call;

static darn_status cols_setup(const darn_desc *desc, const darn_col_split *split, darn_backend backend, int stats,
                              cols_call *c, const char *fn)
{
    darn_plan whole;
    TRY(darn_check_backend(backend, fn));
    if (!desc) return darn_fail(DARN_ERR_NULL_POINTER, "%s: desc is NULL", fn);
    TRY(darn_plan_init(&whole, desc, fn));
    TRY(split_check(desc->cols, split, &c->cp, fn));
    c->slice = *desc;
    c->slice.cols = c->cp.bounds[c->cp.rank + 1] - c->cp.bounds[c->cp.rank];
    c->bufs = (darn_slice_bufs){.col0 = c->cp.bounds[c->cp.rank], .row_n = desc->cols};
    /* [ranks, M, stats, slots] fp32: slots <= 126 and ranks <= N, so only M * N-sized products need a check */
    const uint64_t row = (uint64_t)stats * (uint64_t)c->cp.slots * 4u, m = (uint64_t)desc->rows;
    if (m > 0 && (uint64_t)c->cp.ranks > (uint64_t)INT64_MAX / row / m)
        return darn_fail(DARN_ERR_OVERFLOW, "%s: the gathered nodes' byte size overflows", fn);
    return DARN_OK;
}

/* The exchange buffers of a call: `nodes` written (M rows), `gathered` read (ranks * M rows), each 4-byte aligned and
 * required when rows exist. */
static darn_status cols_bufs(cols_call *c, int stats, const float *nodes, const char *nodes_name, const float *gathered,
                             const char *gathered_name, const float *gathered1, const char *gathered1_name,
                             const char *fn)
{
    const uint64_t row = (uint64_t)stats * (uint64_t)c->cp.slots * 4u, m = (uint64_t)c->slice.rows;
    const struct { const char *name; const float *p; uint64_t bytes; bool out; } b[3] = {
        {nodes_name, nodes, m * row, true},
        {gathered_name, gathered, (uint64_t)c->cp.ranks * m * row, false},
        {gathered1_name, gathered1, (uint64_t)c->cp.ranks * m * row, false}};
    for (int k = 0; k < 3; k++) {
        if (!b[k].name) continue;
        if (m > 0 && !b[k].p) return darn_fail(DARN_ERR_NULL_POINTER, "%s: %s is NULL", fn, b[k].name);
        if ((uintptr_t)b[k].p % 4)
            return darn_fail(DARN_ERR_MISALIGNED, "%s: %s = %p is not 4-byte aligned", fn, b[k].name,
                             (const void *)b[k].p);
        if (b[k].p && (uintptr_t)b[k].p + b[k].bytes < (uintptr_t)b[k].p)
            return darn_fail(DARN_ERR_OVERFLOW, "%s: %s: address range wraps around", fn, b[k].name);
        c->bufs.b[k].name = b[k].name;
        c->bufs.b[k].p = m > 0 ? b[k].p : NULL;
        c->bufs.b[k].bytes = b[k].bytes;
        c->bufs.b[k].output = b[k].out;
    }
    return DARN_OK;
}

static darn_status cols_gpu(const char *fn)
{
    return darn_fail(DARN_ERR_UNSUPPORTED_ON_GPU, "%s: the column-slice phases have no GPU kernels yet; run them on "
                     "DARN_BACKEND_CPU (docs/numerics.md §5, \"Column slices\")", fn);
}

darn_status darn_fwd_cols_sums(const darn_desc *desc, const darn_col_split *split, int pass, const float *gathered,
                               const darn_fwd_tensors *t, float *nodes, darn_backend backend, void *stream)
{
    const char *fn = "darn_fwd_cols_sums";
    cols_call c = {0};
    darn_plan pl;
    (void)stream;
    TRY(cols_setup(desc, split, backend, 1, &c, fn));
    if (pass != 0 && pass != 1)
        return darn_fail(DARN_ERR_BAD_ENUM, "%s: pass = %d, must be 0 or 1", fn, pass);
    if (pass == 1 && desc->norm != DARN_LAYERNORM)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: pass 1 is LayerNorm's (the sum of squared deviations); RMSNorm "
                         "has one pass", fn);
    if (pass == 0 && gathered)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: gathered is set for pass 0, which reads no nodes", fn);
    TRY(cols_bufs(&c, 1, nodes, "nodes", gathered, pass == 1 ? "gathered" : NULL, NULL, NULL, fn));
    TRY(darn_validate_fwd_slice(&pl, &c.slice, t, &c.bufs, fn));
    if (backend == DARN_BACKEND_GPU) return cols_gpu(fn);
    darn_clear_error();
    if (pl.m > 0) darn_cpu_fwd_cols_sums(&pl, t, &c.cp, pass, gathered, nodes);
    return DARN_OK;
}

darn_status darn_fwd_cols(const darn_desc *desc, const darn_col_split *split, const float *gathered0,
                          const float *gathered1, const darn_fwd_tensors *t, darn_backend backend, void *stream)
{
    const char *fn = "darn_fwd_cols";
    cols_call c = {0};
    darn_plan pl;
    (void)stream;
    TRY(cols_setup(desc, split, backend, 1, &c, fn));
    const bool layer = desc->norm == DARN_LAYERNORM;
    if (!layer && gathered1)
        return darn_fail(DARN_ERR_UNSUPPORTED, "%s: gathered1 is set but RMSNorm has one pass (NULL)", fn);
    TRY(cols_bufs(&c, 1, NULL, NULL, gathered0, "gathered0", gathered1, layer ? "gathered1" : NULL, fn));
    TRY(darn_validate_fwd_slice(&pl, &c.slice, t, &c.bufs, fn));
    if (backend == DARN_BACKEND_GPU) return cols_gpu(fn);
    darn_clear_error();
    if (pl.m > 0 || t->amax) darn_cpu_fwd_cols(&pl, t, &c.cp, gathered0, gathered1);
    return DARN_OK;
}

darn_status darn_bwd_cols_sums(const darn_desc *desc, const darn_col_split *split, const darn_bwd_tensors *t,
                               float *nodes, darn_backend backend, void *stream)
{
    const char *fn = "darn_bwd_cols_sums";
    cols_call c = {0};
    darn_plan pl;
    (void)stream;
    const int stats = desc && desc->norm == DARN_LAYERNORM ? 2 : 1;
    TRY(cols_setup(desc, split, backend, stats, &c, fn));
    TRY(cols_bufs(&c, stats, nodes, "nodes", NULL, NULL, NULL, NULL, fn));
    /* the sums write nothing of t: its outputs are checked as darn_bwd_cols will use them */
    TRY(darn_validate_bwd_slice(&pl, &c.slice, t, NULL, &c.bufs, fn));
    if (backend == DARN_BACKEND_GPU) return cols_gpu(fn);
    darn_clear_error();
    if (pl.m > 0) darn_cpu_bwd_cols_sums(&pl, t, &c.cp, nodes);
    return DARN_OK;
}

darn_status darn_bwd_cols_workspace_size(const darn_desc *desc, const darn_col_split *split, darn_backend backend,
                                         size_t *bytes)
{
    const char *fn = "darn_bwd_cols_workspace_size";
    cols_call c = {0};
    darn_plan pl;
    if (!bytes) return darn_fail(DARN_ERR_NULL_POINTER, "%s: bytes is NULL", fn);
    TRY(cols_setup(desc, split, backend, 1, &c, fn));
    TRY(darn_plan_init(&pl, &c.slice, fn));
    pl.wgrad_chunks = darn_wgrad_chunks_for(desc->rows, desc->cols);
    TRY(darn_bwd_partials_workspace(&pl, bytes));
    darn_clear_error();
    return DARN_OK;
}

darn_status darn_bwd_cols(const darn_desc *desc, const darn_col_split *split, const float *gathered,
                          const darn_bwd_tensors *t, void *workspace, size_t workspace_bytes, darn_backend backend,
                          void *stream)
{
    const char *fn = "darn_bwd_cols";
    cols_call c = {0};
    darn_plan pl;
    size_t need = 0;
    (void)stream;
    const int stats = desc && desc->norm == DARN_LAYERNORM ? 2 : 1;
    TRY(cols_setup(desc, split, backend, stats, &c, fn));
    TRY(cols_bufs(&c, stats, NULL, NULL, gathered, "gathered", NULL, NULL, fn));
    TRY(darn_validate_bwd_slice(&pl, &c.slice, t, workspace, &c.bufs, fn));
    TRY(darn_bwd_partials_workspace(&pl, &need));
    TRY(darn_check_workspace(need, workspace, workspace_bytes, fn));
    if (backend == DARN_BACKEND_GPU) return cols_gpu(fn);
    darn_clear_error();
    darn_cpu_bwd_cols(&pl, t, &c.cp, gathered, workspace);
    return DARN_OK;
}
