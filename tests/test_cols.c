/*
 * test_cols.c — tensor parallelism in one process (darn.h, "Tensor parallelism"; docs/numerics.md §5,
 * "Column slices"): the columns of a batch are split over W = 1, 2, 3, 4, 8 "ranks" (even, power-of-two and
 * random splits on group boundaries, a short last group); each rank runs the column-slice phases on its
 * columns alone, reading the inputs through strided views of the whole tensors and writing into buffers of
 * its own, the nodes are laid end to end as an all_gather would, and every output must equal the one-call
 * darn_fwd / darn_bwd bit for bit. Bad splits fail with DARN_ERR_COL_SPLIT and write nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>

#include "support.h"

#define RES DARN_FLAG_HAS_RESIDUAL
#define BIAS DARN_FLAG_HAS_BIAS
#define RS DARN_FLAG_HAS_ROWSCALE
#define FP32 DARN_FLAG_RESIDUAL_IN_FP32
#define ZC DARN_FLAG_ZERO_CENTERED_WEIGHT
#define X1 DARN_FLAG_HAS_X1
#define W1 DARN_FLAG_HAS_WEIGHT1
#define B1 DARN_FLAG_HAS_BIAS1

typedef struct ccfg {
    const char *name;
    darn_norm norm;
    int64_t m, n;
    darn_dtype x, res, w, out;
    uint32_t flags;
    double p;
    int use_mask; /* the backward reads the forward's masks (else regenerates them) */
} ccfg;

/* R = max(1, floor(M N / 2^21)) is 1 except for the 2100 x 2056 LayerNorm (R = 2, a short last chunk). */
static const ccfg CFGS[] = {
    {"rms_f32_n100", DARN_RMSNORM, 37, 100, DARN_F32, DARN_F32, DARN_F32, DARN_F32, RES, 0.0, 0},
    {"layer_bf16_bias_drop", DARN_LAYERNORM, 45, 72, DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16, RES | BIAS | FP32, 0.1,
     0},
    {"rms_f16_rowscale_mask_n33", DARN_RMSNORM, 29, 33, DARN_F16, DARN_F16, DARN_F32, DARN_F16, RES | RS | ZC, 0.25, 1},
    {"layer_parallel_residual", DARN_LAYERNORM, 23, 1030, DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16,
     RES | BIAS | FP32 | X1 | W1 | B1, 0.2, 1},
    {"rms_fp8_out", DARN_RMSNORM, 19, 520, DARN_BF16, DARN_BF16, DARN_BF16, DARN_FP8_E4M3FN, RES, 0.1, 0},
    {"rms_no_residual", DARN_RMSNORM, 11, 4096, DARN_BF16, DARN_BF16, DARN_F32, DARN_BF16, 0, 0.0, 0},
    {"layer_f16_R2", DARN_LAYERNORM, 2100, 2056, DARN_F16, DARN_F16, DARN_F16, DARN_F16, RES | BIAS, 0.1, 0},
};

/* ---- the whole batch: inputs, and the one call's outputs ------------------------------------------ */
enum { T_X, T_RES, T_X1, T_W, T_B, T_W1, T_B1, T_DY, T_DY1, T_DRO, T_RS, N_IN };
enum { O_OUT, O_OUT1, O_H, O_MASK, O_MASK1, O_RSTD, O_MEAN, O_DX, O_DX1, O_DRES, O_DW, O_DB, O_DW1, O_DB1, O_AMAX,
       N_OUT };
static const char *OUT_NAMES[N_OUT] = {"out", "out1", "h", "mask", "mask1", "rstd", "mean", "dx", "dx1", "dresidual",
                                       "dweight", "dbias", "dweight1", "dbias1", "amax"};

typedef struct batch {
    const ccfg *c;
    darn_desc d;
    darn_dtype dt[N_OUT]; /* element dtype of the [M, N] / [N] outputs; DARN_F32 for the rest */
    void *in[N_IN], *out[N_OUT];
} batch;

static darn_dtype dy_dtype(const darn_desc *d)
{
    return darn_dtype_size(d->out_dtype) == 1 ? DARN_BF16 : d->out_dtype;
}

static int has(const batch *B, uint32_t f) { return (B->c->flags & f) != 0; }

/* The inputs' dtypes; every [M, N] input is contiguous in the batch. */
static darn_dtype in_dtype(const batch *B, int i)
{
    const darn_desc *d = &B->d;
    switch (i) {
    case T_X: case T_X1: return d->x_dtype;
    case T_RES: return d->residual_dtype;
    case T_W: case T_W1: return d->weight_dtype;
    case T_B: case T_B1: return d->bias_dtype;
    case T_DY: case T_DY1: return dy_dtype(d);
    case T_DRO: return darn_residual_out_dtype(d);
    }
    return DARN_F32;
}

static void tensors_of(const batch *B, void *const *in, void *const *out, int64_t col0, int64_t stride, int64_t mrb,
                       darn_fwd_tensors *f, darn_bwd_tensors *b);

static batch make_batch(const ccfg *c)
{
    batch B;
    memset(&B, 0, sizeof B);
    B.c = c;
    darn_desc_init(&B.d, c->norm, c->m, c->n, c->x);
    B.d.residual_dtype = c->res;
    B.d.weight_dtype = B.d.bias_dtype = c->w;
    B.d.out_dtype = c->out;
    B.d.dy_dtype = dy_dtype(&B.d);
    B.d.flags = c->flags;
    B.d.dropout_p = c->p;
    B.d.seed = UINT64_C(0xfeedface12345678);
    B.d.offset = 11;
    if (darn_dtype_size(c->out) == 1) B.d.out_scale = 3.0f;
    const int64_t m = c->m, n = c->n;
    sup_rng g = sup_rng_make(0xc015u + (uint64_t)m * 977u + (uint64_t)n);
    for (int i = 0; i < N_IN; i++) {
        const int vec = i == T_W || i == T_B || i == T_W1 || i == T_B1;
        const darn_dtype dt = in_dtype(&B, i);
        B.in[i] = sup_alloc(i == T_RS ? (size_t)m * 4 : sup_tensor_bytes(dt, vec ? 1 : m, n, 0), 64);
        if (i == T_RS) sup_fill_f32((float *)B.in[i], m, &g, 0.5f, 1.5f);
        else sup_fill_uniform(B.in[i], dt, vec ? 1 : m, n, 0, &g, i == T_DRO ? -0.25f : -2.0f, i == T_DRO ? 0.25f : 2.0f);
    }
    const darn_dtype ro = darn_residual_out_dtype(&B.d);
    const darn_dtype dts[N_OUT] = {c->out, c->out, ro, DARN_F32, DARN_F32, DARN_F32, DARN_F32, c->x, c->x, c->res,
                                   c->w, c->w, c->w, c->w, DARN_F32};
    memcpy(B.dt, dts, sizeof dts);
    for (int i = 0; i < N_OUT; i++) {
        size_t bytes = 4;
        if (i == O_MASK || i == O_MASK1) bytes = (size_t)m * (size_t)darn_mask_row_bytes(n);
        else if (i == O_RSTD || i == O_MEAN) bytes = (size_t)m * 4;
        else if (i >= O_DW && i <= O_DB1) bytes = sup_tensor_bytes(B.dt[i], 1, n, 0);
        else if (i != O_AMAX) bytes = sup_tensor_bytes(B.dt[i], m, n, 0);
        B.out[i] = sup_alloc(bytes, 64);
    }
    /* the one call */
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    tensors_of(&B, B.in, B.out, 0, n, darn_mask_row_bytes(n), &f, &b);
    cr_assert_eq(darn_fwd(&B.d, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s: %s", c->name, darn_last_error());
    size_t ws = 0;
    cr_assert_eq(darn_bwd_workspace_size(&B.d, DARN_BACKEND_CPU, &ws), DARN_OK);
    void *w = sup_alloc(ws, 64);
    cr_assert_eq(darn_bwd(&B.d, &b, w, ws, DARN_BACKEND_CPU, NULL), DARN_OK, "%s: %s", c->name, darn_last_error());
    sup_free(w);
    return B;
}

static void batch_free(batch *B)
{
    for (int i = 0; i < N_IN; i++) sup_free(B->in[i]);
    for (int i = 0; i < N_OUT; i++) sup_free(B->out[i]);
}

static void *at(void *base, darn_dtype dt, int64_t col0) { return (char *)base + (size_t)col0 * darn_dtype_size(dt); }

/* Tensors of the columns from col0 on: inputs (whole-batch buffers) as views of row stride N; outputs in out[]
 * with row stride `stride` (N for the one call, the slice's width for a rank), masks of `mrb` bytes per row. */
static void tensors_of(const batch *B, void *const *in, void *const *out, int64_t col0, int64_t stride, int64_t mrb,
                       darn_fwd_tensors *f, darn_bwd_tensors *b)
{
    const int64_t n = B->d.cols;
    const int ln = B->d.norm == DARN_LAYERNORM, drop = B->d.dropout_p > 0;
    const darn_dtype ro = darn_residual_out_dtype(&B->d);
    (void)mrb;
    memset(f, 0, sizeof *f);
    f->x = at(in[T_X], in_dtype(B, T_X), col0);
    f->x_stride = n;
    f->residual = has(B, RES) ? at(in[T_RES], in_dtype(B, T_RES), col0) : NULL;
    f->residual_stride = n;
    f->rowscale = has(B, RS) ? (const float *)in[T_RS] : NULL;
    f->weight = at(in[T_W], in_dtype(B, T_W), col0);
    f->bias = has(B, BIAS) ? at(in[T_B], in_dtype(B, T_B), col0) : NULL;
    f->out = out[O_OUT];
    f->out_stride = stride;
    f->residual_out = out[O_H];
    f->residual_out_stride = stride;
    f->mask = drop ? (uint8_t *)out[O_MASK] : NULL;
    f->rstd = (float *)out[O_RSTD];
    f->mean = ln ? (float *)out[O_MEAN] : NULL;
    f->amax = darn_dtype_size(B->d.out_dtype) == 1 ? (float *)out[O_AMAX] : NULL;
    if (has(B, X1)) {
        f->x1 = at(in[T_X1], in_dtype(B, T_X1), col0);
        f->x1_stride = n;
        f->mask1 = drop ? (uint8_t *)out[O_MASK1] : NULL;
    }
    if (has(B, W1)) {
        f->weight1 = at(in[T_W1], in_dtype(B, T_W1), col0);
        f->out1 = out[O_OUT1];
        f->out1_stride = stride;
    }
    if (has(B, B1)) f->bias1 = at(in[T_B1], in_dtype(B, T_B1), col0);
    memset(b, 0, sizeof *b);
    b->dy = at(in[T_DY], in_dtype(B, T_DY), col0);
    b->dy_stride = n;
    b->h = out[O_H];
    b->h_stride = stride;
    b->weight = f->weight;
    b->rstd = f->rstd;
    b->mean = f->mean;
    b->rowscale = f->rowscale;
    b->dresidual_out = at(in[T_DRO], ro, col0);
    b->dresidual_out_stride = n;
    b->mask = B->c->use_mask ? f->mask : NULL;
    b->dx = out[O_DX];
    b->dx_stride = stride;
    b->dresidual = has(B, RES) ? out[O_DRES] : NULL;
    b->dresidual_stride = stride;
    b->dweight = out[O_DW];
    b->dbias = has(B, BIAS) ? out[O_DB] : NULL;
    if (has(B, X1)) {
        b->mask1 = B->c->use_mask ? f->mask1 : NULL;
        b->dx1 = out[O_DX1];
        b->dx1_stride = stride;
    }
    if (has(B, W1)) {
        b->dy1 = at(in[T_DY1], in_dtype(B, T_DY1), col0);
        b->dy1_stride = n;
        b->weight1 = f->weight1;
        b->dweight1 = out[O_DW1];
    }
    if (has(B, B1)) b->dbias1 = out[O_DB1];
}

static int present(const batch *B, int i)
{
    const int drop = B->d.dropout_p > 0;
    switch (i) {
    case O_OUT1: case O_DW1: return has(B, W1);
    case O_MASK: return drop;
    case O_MASK1: return drop && has(B, X1);
    case O_MEAN: return B->d.norm == DARN_LAYERNORM;
    case O_DX1: return has(B, X1);
    case O_DRES: return has(B, RES);
    case O_DB: return has(B, BIAS);
    case O_DB1: return has(B, B1);
    case O_AMAX: return darn_dtype_size(B->d.out_dtype) == 1;
    }
    return 1;
}

/* The split bounds[0 … w] over ranks, then every phase rank by rank, then every output against the one call. */
static void run_split(const batch *B, const int64_t *bounds, int w, const char *what)
{
    const darn_desc *d = &B->d;
    const int64_t m = d->rows, n = d->cols;
    const int ln = d->norm == DARN_LAYERNORM;
    darn_col_split sp = {bounds, w, 0};
    int64_t S = -1;
    cr_assert_eq(darn_col_split_slots(n, &sp, &S), DARN_OK, "%s: %s", what, darn_last_error());
    cr_assert(S >= 1 && S <= 126, "%s: slots %lld", what, (long long)S);
    const size_t fstride = (size_t)m * (size_t)S, bstride = (size_t)m * (size_t)(1 + ln) * (size_t)S;
    float *g0 = sup_alloc((size_t)w * fstride * 4, 64), *g1 = sup_alloc((size_t)w * fstride * 4, 64);
    float *gb = sup_alloc((size_t)w * bstride * 4, 64);
    void *out[8][N_OUT];
    darn_fwd_tensors f[8];
    darn_bwd_tensors b[8];
    for (int k = 0; k < w; k++) {
        const int64_t nk = bounds[k + 1] - bounds[k], mrb = darn_mask_row_bytes(nk);
        for (int i = 0; i < N_OUT; i++) {
            size_t bytes = 4;
            if (i == O_MASK || i == O_MASK1) bytes = (size_t)m * (size_t)mrb;
            else if (i == O_RSTD || i == O_MEAN) bytes = (size_t)m * 4;
            else if (i >= O_DW && i <= O_DB1) bytes = sup_tensor_bytes(B->dt[i], 1, nk, 0);
            else if (i != O_AMAX) bytes = sup_tensor_bytes(B->dt[i], m, nk, 0);
            out[k][i] = sup_alloc(bytes, 64);
        }
        tensors_of(B, B->in, out[k], bounds[k], nk, mrb, &f[k], &b[k]);
    }
    /* forward: pass 0 (all ranks), the exchange, LayerNorm's pass 1, the exchange, the outputs */
    for (int k = 0; k < w; k++) {
        sp.rank = k;
        cr_assert_eq(darn_fwd_cols_sums(d, &sp, 0, NULL, &f[k], g0 + k * fstride, DARN_BACKEND_CPU, NULL), DARN_OK,
                     "%s rank %d: %s", what, k, darn_last_error());
    }
    if (ln)
        for (int k = 0; k < w; k++) {
            sp.rank = k;
            cr_assert_eq(darn_fwd_cols_sums(d, &sp, 1, g0, &f[k], g1 + k * fstride, DARN_BACKEND_CPU, NULL), DARN_OK,
                         "%s rank %d: %s", what, k, darn_last_error());
        }
    for (int k = 0; k < w; k++) {
        sp.rank = k;
        cr_assert_eq(darn_fwd_cols(d, &sp, g0, ln ? g1 : NULL, &f[k], DARN_BACKEND_CPU, NULL), DARN_OK,
                     "%s rank %d: %s", what, k, darn_last_error());
    }
    /* backward */
    for (int k = 0; k < w; k++) {
        sp.rank = k;
        cr_assert_eq(darn_bwd_cols_sums(d, &sp, &b[k], gb + k * bstride, DARN_BACKEND_CPU, NULL), DARN_OK,
                     "%s rank %d: %s", what, k, darn_last_error());
    }
    for (int k = 0; k < w; k++) {
        sp.rank = k;
        size_t ws = 0;
        cr_assert_eq(darn_bwd_cols_workspace_size(d, &sp, DARN_BACKEND_CPU, &ws), DARN_OK, "%s", darn_last_error());
        void *wsp = sup_alloc(ws, 64);
        if (ws > 0 && m > 0)
            cr_assert_eq(darn_bwd_cols(d, &sp, gb, &b[k], wsp, ws - 1, DARN_BACKEND_CPU, NULL), DARN_ERR_WORKSPACE);
        cr_assert_eq(darn_bwd_cols(d, &sp, gb, &b[k], wsp, ws, DARN_BACKEND_CPU, NULL), DARN_OK, "%s rank %d: %s", what,
                     k, darn_last_error());
        sup_free(wsp);
    }
    /* every output of every rank against the one call's columns */
    uint32_t amax = 0;
    for (int k = 0; k < w; k++) {
        const int64_t c0 = bounds[k], nk = bounds[k + 1] - c0, mrb = darn_mask_row_bytes(nk);
        for (int i = 0; i < N_OUT; i++) {
            if (!present(B, i)) continue;
            int64_t bad = -1;
            if (i == O_MASK || i == O_MASK1) {
                const uint8_t *got = out[k][i], *want = B->out[i];
                const int64_t wrb = darn_mask_row_bytes(n);
                for (int64_t r = 0; r < m && bad < 0; r++) {
                    for (int64_t c = 0; c < mrb * 8 && bad < 0; c++) {
                        const int gb_ = (got[r * mrb + c / 8] >> (c % 8)) & 1;
                        const int wb = c < nk ? (want[r * wrb + (c0 + c) / 8] >> ((c0 + c) % 8)) & 1 : 0;
                        if (gb_ != wb) bad = r * mrb * 8 + c;
                    }
                }
            } else if (i == O_RSTD || i == O_MEAN) {
                bad = sup_compare_f32(out[k][i], B->out[i], m, 0);
            } else if (i == O_AMAX) {
                uint32_t a;
                memcpy(&a, out[k][i], 4);
                if (a > amax) amax = a;
                continue;
            } else if (i >= O_DW && i <= O_DB1) {
                bad = sup_compare(out[k][i], 0, at(B->out[i], B->dt[i], c0), 0, B->dt[i], 1, nk, 0);
            } else {
                bad = sup_compare(out[k][i], nk, at(B->out[i], B->dt[i], c0), n, B->dt[i], m, nk, 0);
            }
            cr_expect_eq(bad, -1, "%s rank %d: %s differs from the one call at element %lld", what, k, OUT_NAMES[i],
                         (long long)bad);
        }
    }
    if (present(B, O_AMAX)) {
        uint32_t want;
        memcpy(&want, B->out[O_AMAX], 4);
        cr_expect_eq(amax, want, "%s: the ranks' largest amax %08x, the one call's %08x", what, amax, want);
    }
    for (int k = 0; k < w; k++)
        for (int i = 0; i < N_OUT; i++) sup_free(out[k][i]);
    sup_free(g0);
    sup_free(g1);
    sup_free(gb);
}

static const int WORLDS[] = {1, 2, 3, 4, 8};

/* bounds[0 … w] for split `kind` of n columns (groups of 8): 0 even over the groups, 1 powers of two where they
 * fit (every slice 2^k groups at a multiple of its size, the rest on the last), 2 random group boundaries.
 * Returns 0 when the row has fewer groups than ranks. */
static int make_split(int64_t n, int w, int kind, sup_rng *g, int64_t *bounds)
{
    const int64_t G = (n + 7) / 8;
    if (G < w) return 0;
    bounds[0] = 0;
    bounds[w] = n;
    if (kind == 0 || kind == 1) {
        int64_t q = G / w;
        if (kind == 1) {
            int64_t p = 1;
            while (p * 2 <= q) p *= 2;
            q = p;
        }
        for (int k = 1; k < w; k++) bounds[k] = 8 * k * q;
    } else {
        /* w - 1 distinct cuts among the groups 1 … G - 1 */
        for (int k = 1; k < w; k++) {
            int64_t c;
            int dup;
            do {
                c = 1 + (int64_t)(sup_rng_u64(g) % (uint64_t)(G - 1));
                dup = 0;
                for (int j = 1; j < k; j++) dup |= bounds[j] == 8 * c;
            } while (dup);
            bounds[k] = 8 * c;
        }
        for (int k = 2; k < w; k++)
            for (int j = k; j > 1 && bounds[j - 1] > bounds[j]; j--) {
                const int64_t t = bounds[j];
                bounds[j] = bounds[j - 1];
                bounds[j - 1] = t;
            }
    }
    return 1;
}

Test(cols, splits_match_one_call, .timeout = 600)
{
    for (size_t ci = 0; ci < sizeof CFGS / sizeof CFGS[0]; ci++) {
        const ccfg *c = &CFGS[ci];
        batch B = make_batch(c);
        sup_rng g = sup_rng_make(4242 + ci);
        for (size_t wi = 0; wi < sizeof WORLDS / sizeof WORLDS[0]; wi++)
            for (int kind = 0; kind < 3; kind++) {
                const int w = WORLDS[wi];
                if (w == 1 && kind > 0) continue;
                if (c->m * c->n > (INT64_C(1) << 21) && kind != 2 && w != 8) continue; /* CI time */
                int64_t bounds[9];
                if (!make_split(c->n, w, kind, &g, bounds)) continue;
                char what[160];
                snprintf(what, sizeof what, "%s W=%d %s", c->name, w,
                         kind == 0 ? "even" : kind == 1 ? "powers of two" : "random");
                run_split(&B, bounds, w, what);
            }
        batch_free(&B);
    }
}

/* The node count of a split: 1 for power-of-two slices at multiples of their size, more otherwise. */
Test(cols, slots)
{
    int64_t S = -1;
    const int64_t even[] = {0, 1024, 2048, 3072, 4096};
    darn_col_split sp = {even, 4, 0};
    cr_expect_eq(darn_col_split_slots(4096, &sp, &S), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(S, 1);
    const int64_t one[] = {0, 100};
    sp = (darn_col_split){one, 1, 0};
    cr_expect_eq(darn_col_split_slots(100, &sp, &S), DARN_OK); /* 13 groups = 8 + 4 + 1 */
    cr_expect_eq(S, 3);
    const int64_t odd[] = {0, 24, 100}; /* [0, 3) = 2 + 1, [3, 13) = 1 + 4 + 4 + 1 */
    sp = (darn_col_split){odd, 2, 1};
    cr_expect_eq(darn_col_split_slots(100, &sp, &S), DARN_OK);
    cr_expect_eq(S, 4);
    cr_expect_str_empty(darn_last_error());
}

/* Bad splits and arguments: a specific status, a message naming the call, and nothing written. */
Test(cols, errors_write_nothing)
{
    const ccfg *c = &CFGS[1]; /* LayerNorm, N = 72: 9 groups */
    batch B = make_batch(c);
    const int64_t m = c->m, n = c->n;
    void *out[N_OUT];
    for (int i = 0; i < N_OUT; i++) out[i] = sup_alloc((size_t)m * (size_t)n * 4 + 64, 64);
    float *nodes = sup_alloc((size_t)m * 16 * 4, 64);
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    tensors_of(&B, B.in, out, 0, 32, darn_mask_row_bytes(32), &f, &b);
    const darn_backend cpu = DARN_BACKEND_CPU;
    struct { int64_t bounds[4]; int w, rank; darn_status want; const char *text; } bad[] = {
        {{0, 30, 72}, 2, 0, DARN_ERR_COL_SPLIT, "not a multiple of 8"},
        {{0, 32, 32, 72}, 3, 0, DARN_ERR_COL_SPLIT, "at least one column"},
        {{0, 32, 64}, 2, 0, DARN_ERR_COL_SPLIT, "must be 0 and N"},
        {{8, 32, 72}, 2, 0, DARN_ERR_COL_SPLIT, "must be 0 and N"},
        {{0, 32, 72}, 2, 2, DARN_ERR_COL_SPLIT, "split->rank"},
        {{0, 32, 72}, 0, 0, DARN_ERR_COL_SPLIT, "split->ranks"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        darn_col_split sp = {bad[k].bounds, bad[k].w, bad[k].rank};
        int64_t S = 0;
        cr_expect_eq(darn_col_split_slots(n, &sp, &S), bad[k].want, "case %zu", k);
        cr_expect(strstr(darn_last_error(), bad[k].text) != NULL, "case %zu: %s", k, darn_last_error());
        cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, nodes, cpu, NULL), bad[k].want, "case %zu", k);
        cr_expect(strstr(darn_last_error(), "darn_fwd_cols_sums: ") == darn_last_error(), "%s", darn_last_error());
    }
    const int64_t good[] = {0, 32, 72};
    darn_col_split sp = {good, 2, 0};
    cr_expect_eq(darn_fwd_cols_sums(&B.d, NULL, 0, NULL, &f, nodes, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, NULL, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, (float *)((char *)nodes + 2), cpu, NULL),
                 DARN_ERR_MISALIGNED);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 2, NULL, &f, nodes, cpu, NULL), DARN_ERR_BAD_ENUM);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, nodes, &f, nodes, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 1, NULL, &f, nodes, cpu, NULL), DARN_ERR_NULL_POINTER);
    /* the nodes may not overlap a tensor, nor the gathered nodes */
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, (float *)f.residual_out, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 1, nodes, &f, nodes + 8, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(darn_fwd_cols(&B.d, &sp, nodes, NULL, &f, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_fwd_cols(&B.d, &sp, (const float *)f.out, nodes, &f, cpu, NULL), DARN_ERR_ALIASING);
    /* the wrong slice width: the tensors' strides are checked against it (32 columns for rank 0; rank 1 has 40) */
    sp.rank = 1;
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, nodes, cpu, NULL), DARN_ERR_BAD_STRIDE);
    sp.rank = 0;
    /* RMSNorm has one forward pass and one backward statistic */
    darn_desc rd = B.d;
    rd.norm = DARN_RMSNORM;
    darn_fwd_tensors rf = f;
    rf.mean = NULL;
    cr_expect_eq(darn_fwd_cols_sums(&rd, &sp, 1, nodes, &rf, nodes + 256, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(darn_fwd_cols(&rd, &sp, nodes, nodes + 256, &rf, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(darn_bwd_cols_sums(&B.d, &sp, &b, NULL, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_bwd_cols(&B.d, &sp, NULL, &b, NULL, 0, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, nodes, (darn_backend)9, NULL), DARN_ERR_BAD_ENUM);
    if (darn_backend_available(DARN_BACKEND_GPU)) {
        cr_expect_eq(darn_fwd_cols_sums(&B.d, &sp, 0, NULL, &f, nodes, DARN_BACKEND_GPU, NULL),
                     DARN_ERR_UNSUPPORTED_ON_GPU);
        cr_expect(strstr(darn_last_error(), "no GPU kernels") != NULL, "%s", darn_last_error());
    }
    for (int i = 0; i < N_OUT; i++) {
        cr_expect_eq(sup_first_touched(out[i], (size_t)m * (size_t)n * 4 + 64), -1, "%s written", OUT_NAMES[i]);
        sup_free(out[i]);
    }
    cr_expect_eq(sup_first_touched(nodes, (size_t)m * 16 * 4), -1, "nodes written");
    sup_free(nodes);
    batch_free(&B);
}

/* M = 0: nothing is read; dweight / dbias of the slice are +0. */
Test(cols, empty_batch)
{
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, 0, 40, DARN_BF16);
    d.flags = BIAS;
    const int64_t bounds[] = {0, 16, 40};
    darn_col_split sp = {bounds, 2, 1};
    uint16_t dw[24], db[24];
    memset(dw, 0xA5, sizeof dw);
    memset(db, 0xA5, sizeof db);
    darn_bwd_tensors b = {0};
    b.dweight = dw;
    b.dbias = db;
    darn_fwd_tensors f = {0};
    cr_expect_eq(darn_fwd_cols_sums(&d, &sp, 0, NULL, &f, NULL, DARN_BACKEND_CPU, NULL), DARN_OK, "%s",
                 darn_last_error());
    cr_expect_eq(darn_fwd_cols(&d, &sp, NULL, NULL, &f, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(darn_bwd_cols_sums(&d, &sp, &b, NULL, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(darn_bwd_cols(&d, &sp, NULL, &b, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    for (int c = 0; c < 24; c++) cr_expect(dw[c] == 0 && db[c] == 0);
}
