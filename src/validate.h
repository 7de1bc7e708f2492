/*
 * validate.h — argument checking for darn_fwd / darn_bwd, and the resolved "plan" every backend runs.
 *
 * Validation happens once, in one place, before any backend touches memory: a call that fails here
 * has written nothing. The plan carries the facts derived from the descriptor (residual-out dtype,
 * resolved strides, dropout threshold and scale) so backends never re-derive them.
 */
#ifndef DARN_VALIDATE_H
#define DARN_VALIDATE_H

#include <stdbool.h>

#include "contract.h"
#include "darn/darn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct darn_plan {
    darn_desc desc;
    int64_t m, n;
    darn_dtype resout_dtype; /* dtype of h (residual-out) */
    darn_dtype dy_dtype;     /* backward: dy's dtype, DARN_DTYPE_SAME_AS_OUT resolved (darn_validate_bwd) */
    bool fp8_out;            /* out_dtype is an fp8 dtype (docs/numerics.md §9) */
    bool layer, has_res, has_bias, has_rowscale, zero_centered;
    bool has_x1, has_w1, has_b1; /* parallel residual: x1, the second output y1 (weight1), its bias1 */
    bool dropout;            /* p > 0: the keep bit is computed (and may drop) */
    bool mask_read;          /* backward: keep bits come from t->mask (given, and 0 < p < 1; §6) */
    bool mask1_read;         /* backward: x1's keep bits come from t->mask1 (likewise) */
    darn_dropout drop;       /* threshold and scale (scale = 1 when p = 0) */
    uint32_t opt;            /* DARN_OPT_* (contract.h): the options as the kernels and the CPU see them */
    int64_t groups;          /* ceil(N / 8): leaves of the row-sum tree (docs/numerics.md §5) */
    int64_t wgrad_rows;      /* R(M, N) rows per dweight chunk */
    int64_t wgrad_chunks;    /* G(M, N) */
    /* resolved row strides in elements (0 in the tensors struct means N) */
    int64_t s_x, s_res, s_out, s_resout, s_x1, s_out1;        /* forward */
    int64_t s_dy, s_h, s_dresout, s_dx, s_dres, s_dy1, s_dx1; /* backward */
    int64_t row0;            /* a row block of a larger batch (darn_fwd_rows, darn_bwd_partials): the global
                                index of row 0, for dropout's element index (row0 + r) * N + c; else 0 */
    int64_t col0, row_n;     /* a column slice (cols.c): n is the slice's width, row_n the whole row's N, col0
                                the slice's first column (dropout's index (row0 + r) * row_n + col0 + c, nf =
                                row_n); else 0 and n */
} darn_plan;

/* Dropout's element index (§3) of element (r, c) of the plan's tensors. */
static inline uint64_t darn_plan_index(const darn_plan *pl, int64_t r, int64_t c)
{
    return (uint64_t)((pl->row0 + r) * pl->row_n + pl->col0 + c);
}

/* A checked column split (cols.c): rank `rank` of `ranks` holds columns [bounds[rank], bounds[rank + 1]); `slots`
 * node values per row and statistic in the exchange. */
typedef struct darn_cols_plan {
    const int64_t *bounds;
    int64_t ranks, rank, slots;
} darn_cols_plan;

/* A column slice for the validators (cols.c): the slice's place in its row, and the exchange buffers the
 * call reads or writes, checked for overlap with the tensors (NULL p: absent). */
typedef struct darn_slice_bufs {
    int64_t col0, row_n;
    struct { const char *name; const void *p; uint64_t bytes; bool output; } b[3];
} darn_slice_bufs;

/* Records the message returned by darn_last_error() (printf format) and returns `status`. */
darn_status darn_fail(darn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif /* __GNUC__ */
    ;
void darn_clear_error(void);

/* 1 for the fp8 dtypes (output only), 0 otherwise. */
bool darn_dtype_is_fp8(darn_dtype d);
/* "f32", "f16", "bf16", "fp8_e4m3fn", ...; "?" for anything else (messages). */
const char *darn_dtype_name(darn_dtype d);

/* Fill *plan from desc (shared checks of fwd and bwd): enums, shape, eps, p, rng pointers, the fp8 scale. */
darn_status darn_plan_init(darn_plan *plan, const darn_desc *desc, const char *fn);

darn_status darn_validate_fwd(darn_plan *plan, const darn_desc *desc, const darn_fwd_tensors *t);
/* darn_validate_fwd / darn_validate_bwd of a column slice: `slice_desc` has the slice's width as cols; the plan
 * gets the slice's place and the whole row's dweight chunks. `fn` names the entry in messages. */
darn_status darn_validate_fwd_slice(darn_plan *plan, const darn_desc *slice_desc, const darn_fwd_tensors *t,
                                    const darn_slice_bufs *slice, const char *fn);
darn_status darn_validate_bwd_slice(darn_plan *plan, const darn_desc *slice_desc, const darn_bwd_tensors *t,
                                    const void *workspace, const darn_slice_bufs *slice, const char *fn);
/* `workspace` (may be NULL) is checked not to overlap any tensor: the bytes darn_bwd uses of it on the GPU
 * (gpu != 0) or the CPU backend (dispatch.h: darn_bwd_workspace_layout). */
darn_status darn_validate_bwd(darn_plan *plan, const darn_desc *desc, const darn_bwd_tensors *t, const void *workspace,
                              int gpu);

/* darn_validate_bwd for darn_bwd_partials (src/rows.c): the plan of the block (m = its rows), with
 * dweight / dbias replaced by the [chunks, N] fp32 partial buffers (t->dweight / t->dbias must be NULL). */
darn_status darn_validate_bwd_partials(darn_plan *plan, const darn_desc *block_desc, const darn_bwd_tensors *t,
                                       const float *dweight_partials, const float *dbias_partials, int64_t chunks,
                                       const void *workspace, int gpu, const char *fn);

/* The entry points' shared checks (api.c): `backend` is a darn_backend that is available; a workspace of
 * `have` bytes at `ws` holds `need` bytes and is 16-byte aligned. */
darn_status darn_check_backend(darn_backend backend, const char *fn);
darn_status darn_check_workspace(size_t need, const void *ws, size_t have, const char *fn);

/* Workspace of the backward on every backend: the G * N dweight chunk partials (and again for dbias, dweight1
 * and dbias1, in that order, each present one after the last). */
darn_status darn_bwd_partials_workspace(const darn_plan *plan, size_t *bytes);
/* The number of [G, N] partial sets of the backward: 1 + has_bias + has_w1 + has_b1. */
int darn_wgrad_parts(const darn_plan *plan);
/* Whether partial set k (0 dweight, 1 dbias, 2 dweight1, 3 dbias1) exists for the plan. */
bool darn_wgrad_has(const darn_plan *plan, int k);
/* The sets q[0 … 3] laid out in a backward workspace from its start, in that order (NULL where absent, or when the
 * workspace is NULL: M = 0). */
void darn_wgrad_sets(const darn_plan *plan, void *workspace, float *q[4]);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_VALIDATE_H */
