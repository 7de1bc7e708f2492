/*
 * test_partials.c — sequence parallelism in one process (darn.h, "Sequence parallelism"; docs/numerics.md
 * §6, "Row blocks"): the rows of a batch are split over W = 1, 2, 3, 4, 8 "ranks" on dweight chunk
 * boundaries (even and uneven splits, ranks without rows); each rank runs darn_fwd_rows and
 * darn_bwd_partials on its block alone, the partials are laid end to end as an all_gather would, and
 * darn_wgrad_reduce turns them into dweight / dbias. Every output must equal the one-call darn_fwd /
 * darn_bwd on the CPU bit for bit, on the CPU backend and (when a device is present) the GPU backend.
 * Blocks off the chunk boundaries must fail with DARN_ERR_CHUNK_SPLIT and write nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>
#include <darn/device.h>

#include "support.h"

typedef struct pcfg {
    const char *name;
    darn_norm norm;
    int64_t m, n;
    darn_dtype x, res, w, out;
    uint32_t flags;
    double p;
    int use_mask; /* the backward reads the forward's mask (else regenerates it) */
} pcfg;

#define RES DARN_FLAG_HAS_RESIDUAL
#define BIAS DARN_FLAG_HAS_BIAS
#define RS DARN_FLAG_HAS_ROWSCALE
#define FP32 DARN_FLAG_RESIDUAL_IN_FP32
#define ZC DARN_FLAG_ZERO_CENTERED_WEIGHT

/* R = max(1, floor(M N / 2^21)): R = 1 for the small ones; R = 2 (4099 x 1024: G = 2050, a short last
 * chunk), R = 3 (1000 x 8200: G = 334, last chunk of 1 row) and R = 5 (2053 x 5120) for the large ones. */
static const pcfg CFGS[] = {
    {"rms_f32_small", DARN_RMSNORM, 37, 100, DARN_F32, DARN_F32, DARN_F32, DARN_F32, RES, 0.0, 0},
    {"layer_bf16_bias_drop", DARN_LAYERNORM, 45, 72, DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16, RES | BIAS | FP32,
     0.1, 0},
    {"rms_f16_rowscale_mask", DARN_RMSNORM, 29, 33, DARN_F16, DARN_F16, DARN_F32, DARN_F16, RES | RS | ZC, 0.25, 1},
    {"rms_bf16_R2", DARN_RMSNORM, 4099, 1024, DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16, RES | FP32, 0.1, 0},
    {"layer_f16_bias_R3", DARN_LAYERNORM, 1000, 8200, DARN_F16, DARN_F16, DARN_F16, DARN_F16, RES | BIAS, 0.0, 0},
    {"layer_bf16_bias_mask_R5", DARN_LAYERNORM, 2053, 5120, DARN_BF16, DARN_BF16, DARN_F32, DARN_BF16,
     RES | BIAS | RS, 0.1, 1},
    {"rms_tiny_W8", DARN_RMSNORM, 5, 3, DARN_F32, DARN_F32, DARN_F32, DARN_F32, BIAS, 0.5, 0},
};

static void desc_of(const pcfg *c, darn_desc *d)
{
    darn_desc_init(d, c->norm, c->m, c->n, c->x);
    d->residual_dtype = c->res;
    d->weight_dtype = d->bias_dtype = c->w;
    d->out_dtype = c->out;
    d->flags = c->flags;
    d->dropout_p = c->p;
    d->seed = UINT64_C(0x0123456789abcdef);
    d->offset = 7;
}

/* ---- memory of a backend -------------------------------------------------------------------------- */
static void *bk_alloc(darn_backend be, size_t bytes)
{
    if (be == DARN_BACKEND_CPU) return sup_alloc(bytes, 64);
    void *p = NULL;
    cr_assert_eq(darn_device_malloc(&p, bytes ? bytes : 16), DARN_OK, "%s", darn_last_error());
    cr_assert_eq(darn_device_memset(p, SUP_SENTINEL, bytes ? bytes : 16), DARN_OK);
    return p;
}
static void bk_free(darn_backend be, void *p)
{
    if (be == DARN_BACKEND_CPU) sup_free(p);
    else darn_device_free(p);
}
static void *bk_upload(darn_backend be, const void *src, size_t bytes)
{
    void *p = bk_alloc(be, bytes);
    if (be == DARN_BACKEND_CPU) memcpy(p, src, bytes);
    else if (bytes) cr_assert_eq(darn_device_memcpy(p, src, bytes, DARN_COPY_HOST_TO_DEVICE), DARN_OK);
    return p;
}
static void *bk_download(darn_backend be, const void *src, size_t bytes)
{
    void *p = sup_alloc(bytes, 64);
    if (be == DARN_BACKEND_CPU) memcpy(p, src, bytes);
    else if (bytes) cr_assert_eq(darn_device_memcpy(p, src, bytes, DARN_COPY_DEVICE_TO_HOST), DARN_OK);
    return p;
}
static void bk_copy(darn_backend be, void *dst, const void *src, size_t bytes)
{
    if (be == DARN_BACKEND_CPU) memcpy(dst, src, bytes);
    else if (bytes) cr_assert_eq(darn_device_memcpy(dst, src, bytes, DARN_COPY_DEVICE_TO_DEVICE), DARN_OK);
}

/* ---- the whole batch: inputs and the one-call outputs (CPU) ---------------------------------------- */
enum { T_X, T_RES, T_W, T_B, T_DY, T_DRO, T_RS, N_IN };
enum { O_OUT, O_H, O_MASK, O_RSTD, O_MEAN, O_DX, O_DRES, O_DW, O_DB, N_OUT };

typedef struct batch {
    darn_desc d;
    size_t in_bytes[N_IN], out_bytes[N_OUT];
    void *in[N_IN];
    void *out[N_OUT]; /* host */
} batch;

static size_t row_bytes(const batch *B, int which)
{
    const int64_t n = B->d.cols;
    const darn_dtype ro = darn_residual_out_dtype(&B->d);
    switch (which) {
    case T_X: return (size_t)n * darn_dtype_size(B->d.x_dtype);
    case T_RES: return (size_t)n * darn_dtype_size(B->d.residual_dtype);
    case T_DY: return (size_t)n * darn_dtype_size(B->d.out_dtype);
    case T_DRO: return (size_t)n * darn_dtype_size(ro);
    case T_RS: return 4;
    }
    return 0;
}
static size_t out_row_bytes(const batch *B, int which)
{
    const int64_t n = B->d.cols;
    switch (which) {
    case O_OUT: return (size_t)n * darn_dtype_size(B->d.out_dtype);
    case O_H: return (size_t)n * darn_dtype_size(darn_residual_out_dtype(&B->d));
    case O_MASK: return (size_t)darn_mask_row_bytes(n);
    case O_RSTD:
    case O_MEAN: return 4;
    case O_DX: return (size_t)n * darn_dtype_size(B->d.x_dtype);
    case O_DRES: return (size_t)n * darn_dtype_size(B->d.residual_dtype);
    }
    return 0;
}

static batch make_batch(const pcfg *c)
{
    batch B;
    memset(&B, 0, sizeof B);
    desc_of(c, &B.d);
    const int64_t m = c->m, n = c->n;
    sup_rng g = sup_rng_make(0x5eed0000u + (uint64_t)m * 131u + (uint64_t)n);
    for (int i = 0; i < N_IN; i++) {
        B.in_bytes[i] = i == T_W || i == T_B ? (size_t)n * 4 : (size_t)m * row_bytes(&B, i);
        B.in[i] = sup_alloc(B.in_bytes[i], 64);
    }
    const darn_dtype ro = darn_residual_out_dtype(&B.d);
    sup_fill_uniform(B.in[T_X], B.d.x_dtype, m, n, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(B.in[T_RES], B.d.residual_dtype, m, n, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(B.in[T_W], B.d.weight_dtype, 1, n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(B.in[T_B], B.d.bias_dtype, 1, n, 0, &g, -0.5f, 0.5f);
    sup_fill_uniform(B.in[T_DY], B.d.out_dtype, m, n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(B.in[T_DRO], ro, m, n, 0, &g, -0.25f, 0.25f);
    sup_fill_f32((float *)B.in[T_RS], m, &g, 0.5f, 1.5f);
    for (int i = 0; i < N_OUT; i++) {
        B.out_bytes[i] = i == O_DW   ? (size_t)n * darn_dtype_size(B.d.weight_dtype)
                         : i == O_DB ? (size_t)n * darn_dtype_size(B.d.bias_dtype)
                                     : (size_t)m * out_row_bytes(&B, i);
        B.out[i] = sup_alloc(B.out_bytes[i], 64);
    }
    return B;
}

static void batch_free(batch *B)
{
    for (int i = 0; i < N_IN; i++) sup_free(B->in[i]);
    for (int i = 0; i < N_OUT; i++) sup_free(B->out[i]);
}

/* Pointers of every tensor of the block starting at row0 (in[] / out[] are whole-batch buffers). */
static void block_tensors(const batch *B, const pcfg *c, void *const *in, void *const *out, int64_t row0,
                          darn_fwd_tensors *f, darn_bwd_tensors *b)
{
    const int has_res = (c->flags & RES) != 0, has_bias = (c->flags & BIAS) != 0, has_rs = (c->flags & RS) != 0;
    const int ln = c->norm == DARN_LAYERNORM;
#define AT(buf, bytes_per_row) ((void *)((char *)(buf) + (size_t)row0 * (bytes_per_row)))
    memset(f, 0, sizeof *f);
    f->x = AT(in[T_X], row_bytes(B, T_X));
    f->residual = has_res ? AT(in[T_RES], row_bytes(B, T_RES)) : NULL;
    f->rowscale = has_rs ? (const float *)AT(in[T_RS], 4) : NULL;
    f->weight = in[T_W];
    f->bias = has_bias ? in[T_B] : NULL;
    f->out = AT(out[O_OUT], out_row_bytes(B, O_OUT));
    f->residual_out = AT(out[O_H], out_row_bytes(B, O_H));
    f->mask = c->p > 0 ? (uint8_t *)AT(out[O_MASK], out_row_bytes(B, O_MASK)) : NULL;
    f->rstd = (float *)AT(out[O_RSTD], 4);
    f->mean = ln ? (float *)AT(out[O_MEAN], 4) : NULL;
    memset(b, 0, sizeof *b);
    b->dy = AT(in[T_DY], row_bytes(B, T_DY));
    b->h = f->residual_out;
    b->weight = in[T_W];
    b->rstd = f->rstd;
    b->mean = f->mean;
    b->rowscale = f->rowscale;
    b->dresidual_out = AT(in[T_DRO], row_bytes(B, T_DRO));
    b->mask = c->use_mask ? f->mask : NULL;
    b->dx = AT(out[O_DX], out_row_bytes(B, O_DX));
    b->dresidual = has_res ? AT(out[O_DRES], out_row_bytes(B, O_DRES)) : NULL;
    b->dweight = out[O_DW];
    b->dbias = has_bias ? out[O_DB] : NULL;
#undef AT
}

/* The one-call forward + backward on the CPU into B->out. */
static void one_call(batch *B, const pcfg *c)
{
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    block_tensors(B, c, B->in, B->out, 0, &f, &b);
    cr_assert_eq(darn_fwd(&B->d, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s: %s", c->name, darn_last_error());
    size_t ws = 0;
    cr_assert_eq(darn_bwd_workspace_size(&B->d, DARN_BACKEND_CPU, &ws), DARN_OK);
    void *w = sup_alloc(ws, 64);
    cr_assert_eq(darn_bwd(&B->d, &b, w, ws, DARN_BACKEND_CPU, NULL), DARN_OK, "%s: %s", c->name, darn_last_error());
    sup_free(w);
}

static const char *OUT_NAMES[N_OUT] = {"out", "h", "mask", "rstd", "mean", "dx", "dresidual", "dweight", "dbias"};

/* Rows split over `w` ranks at the chunk boundaries in cut[0 … w] (rows; cut[0] = 0, cut[w] = M): forward
 * and backward per rank on `be`, partials end to end, darn_wgrad_reduce; every output against the one call. */
static void run_split(const batch *B, const pcfg *c, darn_backend be, const int64_t *cut, int w, const char *what)
{
    const int64_t n = c->n, G = darn_wgrad_chunks(c->m, n);
    const int has_bias = (c->flags & BIAS) != 0;
    void *in[N_IN], *out[N_OUT];
    for (int i = 0; i < N_IN; i++) in[i] = bk_upload(be, B->in[i], B->in_bytes[i]);
    for (int i = 0; i < N_OUT; i++) out[i] = bk_alloc(be, B->out_bytes[i]);
    const size_t gbytes = (size_t)G * (size_t)n * 4;
    float *qw = (float *)bk_alloc(be, gbytes), *qb = has_bias ? (float *)bk_alloc(be, gbytes) : NULL;

    int64_t next_chunk = 0;
    for (int k = 0; k < w; k++) {
        const int64_t row0 = cut[k], rows = cut[k + 1] - cut[k];
        darn_fwd_tensors f;
        darn_bwd_tensors b;
        block_tensors(B, c, in, out, row0, &f, &b);
        cr_assert_eq(darn_fwd_rows(&B->d, row0, rows, &f, NULL, 0, be, NULL), DARN_OK, "%s rank %d: %s", what, k,
                     darn_last_error());
        int64_t g0 = -1, cnt = -1;
        cr_assert_eq(darn_wgrad_split(c->m, n, row0, rows, &g0, &cnt), DARN_OK, "%s rank %d: %s", what, k,
                     darn_last_error());
        cr_assert_eq(g0, next_chunk, "%s rank %d: first chunk %lld, expected %lld", what, k, (long long)g0,
                     (long long)next_chunk);
        next_chunk += cnt;
        size_t ws = 99;
        cr_assert_eq(darn_bwd_partials_workspace_size(&B->d, row0, rows, be, &ws), DARN_OK, "%s", darn_last_error());
        /* the CPU needs none; the GPU the (c1, c2) pairs of re-read rows, 8 bytes per row of the block */
        if (be == DARN_BACKEND_CPU) cr_assert_eq(ws, 0);
        else cr_assert(ws == 0 || ws == ((size_t)rows * 8 + 15) / 16 * 16, "%s rank %d: workspace %zu", what, k, ws);
        void *wsp = ws ? bk_alloc(be, ws) : NULL;
        /* the rank's own partial buffers (as a rank would send them), then "gathered" in chunk order */
        const size_t pbytes = (size_t)cnt * (size_t)n * 4;
        float *pw = (float *)bk_alloc(be, pbytes), *pb = has_bias ? (float *)bk_alloc(be, pbytes) : NULL;
        b.dweight = b.dbias = NULL;
        if (ws && rows > 0) /* too small: refused */
            cr_assert_eq(darn_bwd_partials(&B->d, row0, rows, &b, pw, pb, wsp, ws - 1, be, NULL), DARN_ERR_WORKSPACE);
        cr_assert_eq(darn_bwd_partials(&B->d, row0, rows, &b, pw, pb, wsp, ws, be, NULL), DARN_OK, "%s rank %d: %s",
                     what, k, darn_last_error());
        if (wsp) bk_free(be, wsp);
        bk_copy(be, qw + g0 * n, pw, pbytes);
        if (has_bias) bk_copy(be, qb + g0 * n, pb, pbytes);
        bk_free(be, pw);
        if (pb) bk_free(be, pb);
    }
    cr_assert_eq(next_chunk, G, "%s: the blocks cover %lld chunks of %lld", what, (long long)next_chunk, (long long)G);
    cr_assert_eq(darn_wgrad_reduce(&B->d, qw, qb, out[O_DW], has_bias ? out[O_DB] : NULL, be, NULL), DARN_OK, "%s: %s",
                 what, darn_last_error());
    if (be == DARN_BACKEND_GPU) cr_assert_eq(darn_device_synchronize(), DARN_OK);

    for (int i = 0; i < N_OUT; i++) {
        const int present = !(i == O_MASK && c->p == 0) && !(i == O_MEAN && c->norm != DARN_LAYERNORM) &&
                            !(i == O_DRES && !(c->flags & RES)) && !(i == O_DB && !has_bias);
        if (!present) continue;
        unsigned char *got = (unsigned char *)bk_download(be, out[i], B->out_bytes[i]);
        const unsigned char *want = (const unsigned char *)B->out[i];
        size_t at = 0;
        while (at < B->out_bytes[i] && got[at] == want[at]) at++;
        cr_expect_eq(at, B->out_bytes[i], "%s: %s differs from the one call at byte %zu of %zu", what, OUT_NAMES[i], at,
                     B->out_bytes[i]);
        sup_free(got);
    }
    for (int i = 0; i < N_IN; i++) bk_free(be, in[i]);
    for (int i = 0; i < N_OUT; i++) bk_free(be, out[i]);
    bk_free(be, qw);
    if (qb) bk_free(be, qb);
}

static const int WORLDS[] = {1, 2, 3, 4, 8};

/* cut[0 … w] for split `kind`: 0 even over the chunks (rank k: chunks [k G / w, (k + 1) G / w)), 1 uneven
 * (random chunk boundaries, ranks without rows allowed), 2 everything on the last rank. */
static void make_cut(int64_t m, int64_t n, int w, int kind, sup_rng *g, int64_t *cut)
{
    const int64_t G = darn_wgrad_chunks(m, n), R = darn_wgrad_chunk_rows(m, n);
    int64_t cg[9];
    cg[0] = 0;
    cg[w] = G;
    for (int k = 1; k < w; k++) {
        if (kind == 0) cg[k] = (int64_t)k * G / w;
        else if (kind == 1) cg[k] = (int64_t)(sup_rng_u64(g) % (uint64_t)(G + 1));
        else cg[k] = 0;
    }
    for (int k = 1; k < w; k++) /* sort (insertion) */
        for (int j = k; j > 1 && cg[j - 1] > cg[j]; j--) {
            const int64_t t = cg[j];
            cg[j] = cg[j - 1];
            cg[j - 1] = t;
        }
    for (int k = 0; k <= w; k++) cut[k] = cg[k] * R < m ? cg[k] * R : m;
}

static void run_all_splits(darn_backend be)
{
    for (size_t ci = 0; ci < sizeof CFGS / sizeof CFGS[0]; ci++) {
        const pcfg *c = &CFGS[ci];
        batch B = make_batch(c);
        one_call(&B, c);
        sup_rng g = sup_rng_make(1000 + ci);
        for (size_t wi = 0; wi < sizeof WORLDS / sizeof WORLDS[0]; wi++)
            for (int kind = 0; kind < 3; kind++) {
                const int w = WORLDS[wi];
                if (w == 1 && kind > 0) continue;
                /* the large shapes (R > 1): every W evenly, uneven splits for W = 3 and 8 (CI time) */
                if (c->m * c->n > (INT64_C(1) << 21) && (kind == 2 || (kind == 1 && w != 3 && w != 8))) continue;
                int64_t cut[9];
                make_cut(c->m, c->n, w, kind, &g, cut);
                char what[160];
                snprintf(what, sizeof what, "%s (%s) W=%d %s", c->name, be == DARN_BACKEND_CPU ? "cpu" : "gpu", w,
                         kind == 0 ? "even" : kind == 1 ? "uneven" : "all on the last rank");
                run_split(&B, c, be, cut, w, what);
            }
        batch_free(&B);
    }
}

Test(partials, splits_match_one_call_cpu, .timeout = 600)
{
    run_all_splits(DARN_BACKEND_CPU);
}

Test(partials, splits_match_one_call_gpu, .timeout = 600)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) cr_skip_test("no GPU backend or device");
    run_all_splits(DARN_BACKEND_GPU);
}

/* The forward takes any block: rows [row0, row0 + rows) off the chunk boundaries give the one call's rows. */
Test(partials, forward_takes_any_block)
{
    const pcfg *c = &CFGS[3]; /* R = 2 */
    batch B = make_batch(c);
    one_call(&B, c);
    void *out[N_OUT];
    for (int i = 0; i < N_OUT; i++) out[i] = sup_alloc(B.out_bytes[i], 64);
    const int64_t cut[] = {0, 1, 2, 1001, 1002, 4000, 4099};
    for (int k = 0; k + 1 < (int)(sizeof cut / sizeof cut[0]); k++) {
        darn_fwd_tensors f;
        darn_bwd_tensors b;
        block_tensors(&B, c, B.in, out, cut[k], &f, &b);
        cr_assert_eq(darn_fwd_rows(&B.d, cut[k], cut[k + 1] - cut[k], &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK,
                     "%s", darn_last_error());
    }
    for (int i = O_OUT; i <= O_RSTD; i++)
        cr_expect_eq(memcmp(out[i], B.out[i], B.out_bytes[i]), 0, "%s differs", OUT_NAMES[i]);
    for (int i = 0; i < N_OUT; i++) sup_free(out[i]);
    batch_free(&B);
}

Test(partials, split_query)
{
    int64_t g0 = -1, cnt = -1;
    /* M = 4099, N = 1024: R = 2, G = 2050 */
    cr_expect_eq(darn_wgrad_chunk_rows(4099, 1024), 2);
    cr_expect_eq(darn_wgrad_chunks(4099, 1024), 2050);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 0, 4099, &g0, &cnt), DARN_OK);
    cr_expect(g0 == 0 && cnt == 2050);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 2000, 2099, &g0, &cnt), DARN_OK);
    cr_expect(g0 == 1000 && cnt == 1050, "g0 %lld cnt %lld", (long long)g0, (long long)cnt);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 2000, 100, &g0, &cnt), DARN_OK);
    cr_expect(g0 == 1000 && cnt == 50);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 4099, 0, &g0, &cnt), DARN_OK); /* empty block at the end */
    cr_expect(g0 == 2050 && cnt == 0);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 10, 0, NULL, NULL), DARN_OK);
    cr_expect_eq(darn_wgrad_split(4099, 1024, 1, 2, &g0, &cnt), DARN_ERR_CHUNK_SPLIT);
    cr_expect(strstr(darn_last_error(), "row0 = 1") != NULL && strstr(darn_last_error(), "R = 2") != NULL, "%s",
              darn_last_error());
    cr_expect_eq(darn_wgrad_split(4099, 1024, 0, 3, NULL, NULL), DARN_ERR_CHUNK_SPLIT);
    cr_expect(strstr(darn_last_error(), "ends inside a dweight chunk") != NULL, "%s", darn_last_error());
    cr_expect_eq(darn_wgrad_split(4099, 1024, 4000, 100, NULL, NULL), DARN_ERR_BAD_SHAPE);
    cr_expect_eq(darn_wgrad_split(4099, 1024, -2, 2, NULL, NULL), DARN_ERR_BAD_SHAPE);
    cr_expect_eq(darn_wgrad_split(4099, 0, 0, 1, NULL, NULL), DARN_ERR_BAD_SHAPE);
    cr_expect_eq(darn_wgrad_split(INT64_MAX, 2, 0, 1, NULL, NULL), DARN_ERR_OVERFLOW);
    cr_expect_eq(darn_wgrad_split(0, 8, 0, 0, &g0, &cnt), DARN_OK);
    cr_expect(g0 == 0 && cnt == 0);
    cr_expect_str_empty(darn_last_error());
}

/* A backward block off the chunk boundaries: DARN_ERR_CHUNK_SPLIT, and not a byte written. */
Test(partials, off_boundary_block_is_an_error)
{
    const pcfg *c = &CFGS[3]; /* R = 2 */
    batch B = make_batch(c);
    one_call(&B, c);
    const int64_t n = c->n;
    const int64_t bad[][2] = {{1, 2}, {0, 3}, {2, 5}, {4097, 2}, {4095, 3}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        void *out[N_OUT];
        for (int i = 0; i < N_OUT; i++) out[i] = sup_alloc(B.out_bytes[i], 64);
        darn_fwd_tensors f;
        darn_bwd_tensors b;
        block_tensors(&B, c, B.in, out, bad[k][0], &f, &b);
        /* h, rstd from the one call */
        b.h = (char *)B.out[O_H] + (size_t)bad[k][0] * out_row_bytes(&B, O_H);
        b.rstd = (float *)B.out[O_RSTD] + bad[k][0];
        b.dweight = b.dbias = NULL;
        float *pw = sup_alloc((size_t)8 * (size_t)n * 4, 64);
        cr_expect_eq(darn_bwd_partials(&B.d, bad[k][0], bad[k][1], &b, pw, NULL, NULL, 0, DARN_BACKEND_CPU, NULL),
                     DARN_ERR_CHUNK_SPLIT, "[%lld, +%lld)", (long long)bad[k][0], (long long)bad[k][1]);
        cr_expect(strstr(darn_last_error(), "darn_bwd_partials: ") == darn_last_error(), "%s", darn_last_error());
        cr_expect(strstr(darn_last_error(), "R = 2") != NULL, "%s", darn_last_error());
        size_t ws = 0;
        cr_expect_eq(darn_bwd_partials_workspace_size(&B.d, bad[k][0], bad[k][1], DARN_BACKEND_CPU, &ws),
                     DARN_ERR_CHUNK_SPLIT);
        cr_expect_eq(sup_first_touched(pw, (size_t)8 * (size_t)n * 4), -1);
        for (int i = 0; i < N_OUT; i++) {
            cr_expect_eq(sup_first_touched(out[i], B.out_bytes[i]), -1, "%s written", OUT_NAMES[i]);
            sup_free(out[i]);
        }
        sup_free(pw);
    }
    batch_free(&B);
}

Test(partials, argument_errors)
{
    const pcfg *c = &CFGS[1]; /* LayerNorm with a bias, M = 45, N = 72, R = 1 */
    batch B = make_batch(c);
    one_call(&B, c);
    const int64_t n = c->n, G = darn_wgrad_chunks(c->m, n);
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    void *out[N_OUT];
    for (int i = 0; i < N_OUT; i++) out[i] = sup_alloc(B.out_bytes[i], 64);
    block_tensors(&B, c, B.in, out, 0, &f, &b);
    b.h = B.out[O_H];
    b.rstd = B.out[O_RSTD];
    b.mean = B.out[O_MEAN];
    const size_t pbytes = (size_t)G * (size_t)n * 4;
    float *pw = sup_alloc(pbytes + 16, 64), *pb = sup_alloc(pbytes + 16, 64);
    const darn_backend cpu = DARN_BACKEND_CPU;

    /* dweight given: the call returns partials instead */
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw, pb, NULL, 0, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect(strstr(darn_last_error(), "darn_wgrad_reduce") != NULL, "%s", darn_last_error());
    b.dweight = b.dbias = NULL;
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, NULL, pb, NULL, 0, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw, NULL, NULL, 0, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw + 1, pb, NULL, 0, cpu, NULL), DARN_ERR_MISALIGNED);
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw, pw + 4, NULL, 0, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m + 1, &b, pw, pb, NULL, 0, cpu, NULL), DARN_ERR_BAD_SHAPE);
    cr_expect_eq(darn_bwd_partials(&B.d, -1, 1, &b, pw, pb, NULL, 0, cpu, NULL), DARN_ERR_BAD_SHAPE);
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw, pb, NULL, 0, (darn_backend)7, NULL), DARN_ERR_BAD_ENUM);
    /* a partial buffer overlapping dx */
    cr_expect_eq(darn_bwd_partials(&B.d, 0, c->m, &b, (float *)b.dx, pb, NULL, 0, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(sup_first_touched(pw, pbytes), -1);
    cr_expect_eq(sup_first_touched(out[O_DX], B.out_bytes[O_DX]), -1);
    /* the good call, then the reduce's errors */
    cr_assert_eq(darn_bwd_partials(&B.d, 0, c->m, &b, pw, pb, NULL, 0, cpu, NULL), DARN_OK, "%s", darn_last_error());
    void *dw = out[O_DW], *db = out[O_DB];
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pb, NULL, db, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pb, dw, NULL, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, NULL, dw, db, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_wgrad_reduce(&B.d, NULL, pb, dw, db, cpu, NULL), DARN_ERR_NULL_POINTER);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw + 2, pb, dw, db, cpu, NULL), DARN_ERR_MISALIGNED);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pb, (char *)dw + 1, db, cpu, NULL), DARN_ERR_MISALIGNED);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pb, pw + 8, db, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pb, dw, dw, cpu, NULL), DARN_ERR_ALIASING);
    cr_expect_eq(darn_wgrad_reduce(&B.d, pw, pw, dw, db, cpu, NULL), DARN_ERR_ALIASING);
    darn_desc nb = B.d;
    nb.flags &= ~BIAS;
    cr_expect_eq(darn_wgrad_reduce(&nb, pw, NULL, dw, db, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(darn_wgrad_reduce(&nb, pw, pb, dw, NULL, cpu, NULL), DARN_ERR_UNSUPPORTED);
    cr_expect_eq(sup_first_touched(dw, B.out_bytes[O_DW]), -1);
    cr_expect_eq(sup_first_touched(db, B.out_bytes[O_DB]), -1);
    cr_assert_eq(darn_wgrad_reduce(&B.d, pw, pb, dw, db, cpu, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(memcmp(dw, B.out[O_DW], B.out_bytes[O_DW]), 0);
    cr_expect_eq(memcmp(db, B.out[O_DB], B.out_bytes[O_DB]), 0);
    for (int i = 0; i < N_OUT; i++) sup_free(out[i]);
    sup_free(pw);
    sup_free(pb);
    batch_free(&B);
}

/* M = 0: the reduce gives +0 and reads no partials; an empty block of a batch writes nothing. */
Test(partials, empty)
{
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, 0, 10, DARN_BF16);
    d.flags = BIAS;
    uint16_t dw[10], db[10];
    memset(dw, 0xA5, sizeof dw);
    memset(db, 0xA5, sizeof db);
    cr_expect_eq(darn_wgrad_reduce(&d, NULL, NULL, dw, db, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    for (int c = 0; c < 10; c++) cr_expect(dw[c] == 0 && db[c] == 0);
    darn_bwd_tensors b = {0};
    cr_expect_eq(darn_bwd_partials(&d, 0, 0, &b, NULL, NULL, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s",
                 darn_last_error());
    d.rows = 100;
    cr_expect_eq(darn_bwd_partials(&d, 50, 0, &b, NULL, NULL, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s",
                 darn_last_error());
    darn_fwd_tensors f = {0};
    cr_expect_eq(darn_fwd_rows(&d, 100, 0, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
}
