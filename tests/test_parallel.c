/*
 * test_parallel.c — flash-attn's parallel residual (DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1, contract 4) on the
 * CPU backend against the fp64 oracle (tests/oracle.h):
 *
 *   h = dropout(x * rowscale) + dropout1(x1) + residual,  y = xhat * w' + b,  y1 = xhat * w1' + b1
 *   g = dy * w' + dy1 * w1',  dx1 = keep1 * dh * s,  dweight1 = sum(dy1 * xhat),  dbias1 = sum(dy1)
 *
 * 1. Option grid: x1 alone, weight1 without x1, weight1 + bias1 (with and without the first bias), all
 *    three; both norms; p in {0, 0.1, 1}; four dtype configurations; residual, bias, rowscale (x only),
 *    zero-centered weights (both weights), residual_in_fp32, dresidual_out, mask / mask1 read or
 *    regenerated, padded strides (x1, out1, dy1 and dx1 with a stride of their own): every output within
 *    the oracle's bound, h and both masks bit for bit, guards, stride gaps and inputs untouched.
 * 2. Named cases (one feature each), M = 0, and the chunked dweight1 / dbias1 reduction (R >= 2 rows per chunk).
 * 3. Masks: mask1 is the Philox rule at index r*N + c + 2^63, independent of mask; the backward gives the same
 *    bits with the masks read or regenerated, and it reads mask1 for dx1 (and mask for dx), not the other one.
 * 4. Gradcheck: finite differences of L = sum(y gy) + sum(y1 gy1) + sum(h gh) w.r.t. x, x1, weight, weight1,
 *    bias1 against the oracle's analytic backward and darn's.
 * 5. Self-checks: each parallel-residual oracle mutation (x1 not added, x1 sharing x's keep bits, weight1
 *    replaced by weight, dy1 ignored) makes the comparison fail.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/philox.h>

#include "oracle.h"
#include "support.h"

#define X1 DARN_FLAG_HAS_X1
#define W1 DARN_FLAG_HAS_WEIGHT1
#define B1 DARN_FLAG_HAS_BIAS1

/* ---- 1. option grid --------------------------------------------------------------------------------- */
typedef struct dtype_config {
    const char *name;
    darn_dtype x, res, w, b, out;
} dtype_config;

static const dtype_config kConfigs[] = {
    {"all-f32", DARN_F32, DARN_F32, DARN_F32, DARN_F32, DARN_F32},
    {"all-bf16", DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16},
    {"x-bf16/res-f32/w-bf16", DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16, DARN_BF16},
    {"f16-mix", DARN_F16, DARN_F32, DARN_BF16, DARN_F16, DARN_F16},
};

/* The parallel flag sets: x1 alone, weight1 without x1, weight1 + bias1 without the first bias, weight1 +
 * bias1 with it, all three. */
static const uint32_t kParSets[5] = {X1, W1, W1 | B1, W1 | B1, X1 | W1 | B1};
static const double kPs[3] = {0.0, 0.1, 1.0};

static void init_case(oracle_case *c, darn_norm norm, int64_t m, int64_t n, const dtype_config *cfg)
{
    memset(c, 0, sizeof *c);
    darn_desc_init(&c->desc, norm, m, n, cfg->x);
    c->desc.residual_dtype = cfg->res;
    c->desc.weight_dtype = cfg->w;
    c->desc.bias_dtype = cfg->b;
    c->desc.out_dtype = cfg->out;
    c->backward = 1;
}

static void run_grid(darn_norm norm)
{
    static const int64_t ns[] = {133, 7, 64, 1000};
    oracle_worst worst;
    oracle_worst_init(&worst);
    int64_t failures = 0;
    char first[4096] = "";
    const char *label = norm == DARN_LAYERNORM ? "parallel LayerNorm" : "parallel RMSNorm";
    unsigned k = 0;
    for (int ci = 0; ci < 4; ci++)
        for (int pi = 0; pi < 3; pi++)
            for (int si = 0; si < 5; si++)
                for (int rep = 0; rep < 4; rep++, k++) {
                    sup_rng g = sup_rng_make(0xB1A5u + 7919u * k + (unsigned)norm);
                    const uint64_t bits = sup_rng_u64(&g);
                    oracle_case c;
                    init_case(&c, norm, 9, ns[(k / 3) % 4], &kConfigs[ci]);
                    darn_desc *d = &c.desc;
                    d->flags = kParSets[si];
                    if (bits & 1u) d->flags |= DARN_FLAG_HAS_RESIDUAL;
                    if ((bits & 2u) || si == 3) d->flags |= DARN_FLAG_HAS_BIAS;
                    if (si == 2) d->flags &= ~DARN_FLAG_HAS_BIAS; /* bias1 without the first bias */
                    if (bits & 4u) d->flags |= DARN_FLAG_HAS_ROWSCALE;
                    if (bits & 8u) d->flags |= DARN_FLAG_ZERO_CENTERED_WEIGHT;
                    if (bits & 16u) d->flags |= DARN_FLAG_RESIDUAL_IN_FP32;
                    d->dropout_p = kPs[pi];
                    d->seed = 0xC0FFEEu + k;
                    d->offset = 5u * k;
                    if (k % 5 == 2) d->eps = 1e-2f;
                    c.bwd_dresidual_out = (bits & 32u) != 0;
                    c.bwd_regen_mask = (bits & 64u) != 0;
                    c.bwd_regen_mask1 = (bits & 128u) != 0;
                    c.pad = (int64_t)((bits >> 8) % 3);
                    c.pad1 = (int64_t)((bits >> 10) % 3) * 3; /* 0 (pad's stride), 3, 6 */
                    c.data = (bits >> 12) % 4 == 0 ? ORACLE_DATA_SPIKES : ORACLE_DATA_UNIFORM;
                    c.amp = (bits >> 14) % 7 == 3 ? 0.01 : 1.0;
                    c.data_seed = 0x5EEDu + 31u * k + (unsigned)norm;
                    oracle_result res;
                    oracle_run_case(&c, &res);
                    oracle_worst_add(&worst, &res);
                    /* the parallel outputs were compared (a report with no elements would pass vacuously) */
                    const oracle_report *rp = res.rep;
                    const int seen_y1 = rp[ORACLE_REP_Y1].count > 0 && rp[ORACLE_REP_DW1].count > 0;
                    const int seen_x1 = rp[ORACLE_REP_DX1].count > 0 && rp[ORACLE_REP_MASK1].count > 0;
                    const int seen = (!(d->flags & W1) || seen_y1) && (!(d->flags & X1) || seen_x1) &&
                                     (!(d->flags & B1) || rp[ORACLE_REP_DB1].count > 0);
                    if (!res.ok || !seen) {
                        if (failures == 0) {
                            if (seen) snprintf(first, sizeof first, "%s", res.msg);
                            else oracle_case_describe(&c, first, sizeof first);
                        }
                        failures++;
                    }
                }
    oracle_worst_print(&worst, label);
    cr_assert(failures == 0, "%s: %lld of %lld cases fail (or left a parallel output unchecked); first:\n%s", label,
              (long long)failures, (long long)worst.cases, first);
}

Test(parallel, grid_rmsnorm) { run_grid(DARN_RMSNORM); }
Test(parallel, grid_layernorm) { run_grid(DARN_LAYERNORM); }

/* ---- 2. named cases ----------------------------------------------------------------------------------- */
static void expect_ok(const oracle_case *c, const char *what)
{
    oracle_result res;
    oracle_run_case(c, &res);
    cr_expect(res.ok, "%s:\n%s", what, res.msg);
}

Test(parallel, named_cases)
{
    const uint32_t all = X1 | W1 | B1 | DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    for (int norm = 0; norm < 2; norm++) {
        const darn_norm nm = norm ? DARN_LAYERNORM : DARN_RMSNORM;
        oracle_case c;
        /* rowscale scales x only: h (exact bits) and dx1 (no rowscale) would show it on x1 */
        init_case(&c, nm, 11, 257, &kConfigs[0]);
        c.desc.flags = all | DARN_FLAG_HAS_ROWSCALE;
        c.desc.dropout_p = 0.1;
        c.desc.seed = 3;
        expect_ok(&c, "rowscale (x only)");
        /* residual_in_fp32 with bf16 x / x1 and residual */
        init_case(&c, nm, 11, 257, &kConfigs[1]);
        c.desc.flags = all | DARN_FLAG_RESIDUAL_IN_FP32;
        c.desc.dropout_p = 0.1;
        c.bwd_dresidual_out = 1;
        expect_ok(&c, "residual_in_fp32");
        /* strided: x1 / out1 / dy1 / dx1 with a stride of their own (odd: misaligned too), the rest another */
        init_case(&c, nm, 6, 100, &kConfigs[2]);
        c.desc.flags = all;
        c.desc.dropout_p = 0.1;
        c.pad = 4;
        c.pad1 = 7;
        expect_ok(&c, "strided x1/out1/dy1/dx1");
        c.pad = 0;
        c.pad1 = 2;
        expect_ok(&c, "strided x1/out1/dy1/dx1 only");
        /* zero-centered weights: w' = 1 + w and w1' = 1 + w1 */
        init_case(&c, nm, 7, 133, &kConfigs[0]);
        c.desc.flags = all | DARN_FLAG_ZERO_CENTERED_WEIGHT;
        expect_ok(&c, "zero-centered weight and weight1");
        /* p = 1: everything dropped, h = residual, dx = dx1 = 0 */
        init_case(&c, nm, 5, 40, &kConfigs[1]);
        c.desc.flags = all;
        c.desc.dropout_p = 1.0;
        expect_ok(&c, "p = 1");
        /* the masks: read, regenerated, one of each */
        for (int regen = 0; regen < 4; regen++) {
            init_case(&c, nm, 7, 300, &kConfigs[3]);
            c.desc.flags = all;
            c.desc.dropout_p = 0.3;
            c.desc.seed = 77;
            c.bwd_regen_mask = regen & 1;
            c.bwd_regen_mask1 = regen >> 1;
            expect_ok(&c, "mask / mask1 read or regenerated");
        }
        /* forward only, optional outputs off (out1 is still required) */
        init_case(&c, nm, 4, 50, &kConfigs[1]);
        c.desc.flags = all;
        c.desc.dropout_p = 0.1;
        c.backward = 0;
        c.skip_optional = 1;
        expect_ok(&c, "forward, out and out1 only");
    }
}

/* M = 0 through the harness, and dweight1 / dbias1 of an empty batch are +0 bits (like dweight / dbias). */
Test(parallel, empty_batch)
{
    for (int norm = 0; norm < 2; norm++) {
        oracle_case c;
        init_case(&c, norm ? DARN_LAYERNORM : DARN_RMSNORM, 0, 37, &kConfigs[1]);
        c.desc.flags = X1 | W1 | B1 | DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
        c.desc.dropout_p = 0.1;
        expect_ok(&c, "M = 0");
    }
    static const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; k++) {
        darn_desc d;
        darn_desc_init(&d, DARN_LAYERNORM, 0, 37, dts[k]);
        d.flags = X1 | W1 | B1 | DARN_FLAG_HAS_BIAS;
        const size_t bytes = 37 * darn_dtype_size(dts[k]), guard = 64;
        unsigned char *v[4];
        for (int i = 0; i < 4; i++) v[i] = sup_alloc(bytes + guard, 64);
        darn_bwd_tensors tb;
        memset(&tb, 0, sizeof tb);
        tb.dweight = v[0];
        tb.dbias = v[1];
        tb.dweight1 = v[2];
        tb.dbias1 = v[3];
        size_t wsb = 0;
        cr_assert(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &wsb) == DARN_OK, "%s", darn_last_error());
        void *ws = sup_alloc(wsb, 64);
        const darn_status st = darn_bwd(&d, &tb, ws, wsb, DARN_BACKEND_CPU, NULL);
        cr_assert(st == DARN_OK, "M=0 darn_bwd: %s", darn_last_error());
        static const char *const what[4] = {"dweight", "dbias", "dweight1", "dbias1"};
        for (int i = 0; i < 4; i++) {
            for (size_t b = 0; b < bytes; b++)
                cr_assert(v[i][b] == 0, "dtype %d: %s byte %zu = 0x%02x, want +0", k, what[i], b, v[i][b]);
            cr_assert(sup_first_touched(v[i] + bytes, guard) < 0, "dtype %d: written past %s", k, what[i]);
            sup_free(v[i]);
        }
        sup_free(ws);
    }
}

/* dweight1 / dbias1 over many chunks of R >= 2 rows (docs/numerics.md §6), and R = 1 with a long tree. */
static void chunked(darn_norm norm, int64_t m, int64_t n, int64_t want_rows, const dtype_config *cfg, double p)
{
    const int64_t chunks = darn_wgrad_chunks(m, n);
    const int64_t rows = (m + chunks - 1) / chunks;
    cr_assert(chunks > 1 && rows >= want_rows, "M=%lld N=%lld: %lld chunks of %lld rows", (long long)m, (long long)n,
              (long long)chunks, (long long)rows);
    oracle_case c;
    init_case(&c, norm, m, n, cfg);
    c.desc.flags = X1 | W1 | B1 | DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    c.desc.dropout_p = p;
    c.desc.seed = (uint64_t)(m * 31 + n);
    c.data_seed = (uint64_t)(m + n);
    c.bwd_dresidual_out = 1;
    oracle_result res;
    oracle_run_case(&c, &res);
    fprintf(stderr,
            "[oracle] parallel wgrad M=%lld N=%lld G=%lld %s: dweight1 %.3g dbias1 %.3g dweight %.3g dx1 %.3g\n",
            (long long)m, (long long)n, (long long)chunks, cfg->name, res.rep[ORACLE_REP_DW1].worst,
            res.rep[ORACLE_REP_DB1].worst, res.rep[ORACLE_REP_DW].worst, res.rep[ORACLE_REP_DX1].worst);
    cr_assert(res.ok, "%s", res.msg);
}

/* R = 2, G = 516 */
Test(parallel, wgrad1_chunks_of_two_rows) { chunked(DARN_LAYERNORM, 1031, 4096, 2, &kConfigs[1], 0.1); }
/* R = 1, G = 3000 */
Test(parallel, wgrad1_one_row_chunks) { chunked(DARN_RMSNORM, 3000, 64, 1, &kConfigs[0], 0.0); }

/* ---- 3. masks ----------------------------------------------------------------------------------------- */
/* Every tensor of a parallel call, allocated for the desc's dtypes (contiguous). */
typedef struct direct {
    darn_desc d;
    int64_t m, n;
    size_t rb;
    void *x, *res, *x1, *w, *b, *w1, *b1, *out, *out1, *ro, *dy, *dy1, *dro;
    void *dx, *dres, *dx1, *dw, *db, *dw1, *db1;
    float *rs, *rstd, *mean;
    uint8_t *mask, *mask1;
    void *ws;
    size_t wsb;
} direct;

static void *mat(const direct *D, darn_dtype dt) { return sup_alloc(sup_tensor_bytes(dt, D->m, D->n, 0), 64); }
static void *vec(const direct *D, darn_dtype dt) { return sup_alloc((size_t)D->n * darn_dtype_size(dt), 64); }

static void direct_init(direct *D, const darn_desc *d, uint64_t data_seed)
{
    memset(D, 0, sizeof *D);
    D->d = *d;
    D->m = d->rows;
    D->n = d->cols;
    D->rb = (size_t)darn_mask_row_bytes(d->cols);
    const darn_dtype hd = darn_residual_out_dtype(d);
    D->x = mat(D, d->x_dtype); D->x1 = mat(D, d->x_dtype); D->res = mat(D, d->residual_dtype);
    D->w = vec(D, d->weight_dtype); D->w1 = vec(D, d->weight_dtype);
    D->b = vec(D, d->bias_dtype); D->b1 = vec(D, d->bias_dtype);
    D->rs = sup_alloc((size_t)D->m * 4, 64);
    D->out = mat(D, d->out_dtype); D->out1 = mat(D, d->out_dtype); D->ro = mat(D, hd);
    D->rstd = sup_alloc((size_t)D->m * 4, 64); D->mean = sup_alloc((size_t)D->m * 4, 64);
    D->mask = sup_alloc((size_t)D->m * D->rb, 64); D->mask1 = sup_alloc((size_t)D->m * D->rb, 64);
    D->dy = mat(D, d->out_dtype); D->dy1 = mat(D, d->out_dtype); D->dro = mat(D, hd);
    D->dx = mat(D, d->x_dtype); D->dx1 = mat(D, d->x_dtype); D->dres = mat(D, d->residual_dtype);
    D->dw = vec(D, d->weight_dtype); D->dw1 = vec(D, d->weight_dtype);
    D->db = vec(D, d->bias_dtype); D->db1 = vec(D, d->bias_dtype);
    cr_assert(darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &D->wsb) == DARN_OK, "%s", darn_last_error());
    D->ws = sup_alloc(D->wsb, 64);
    sup_rng g = sup_rng_make(data_seed);
    sup_fill_uniform(D->x, d->x_dtype, D->m, D->n, 0, &g, -1.0f, 2.0f);
    sup_fill_uniform(D->x1, d->x_dtype, D->m, D->n, 0, &g, -2.0f, 1.0f);
    sup_fill_uniform(D->res, d->residual_dtype, D->m, D->n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(D->w, d->weight_dtype, 1, D->n, 0, &g, -1.5f, 1.5f);
    sup_fill_uniform(D->w1, d->weight_dtype, 1, D->n, 0, &g, -1.5f, 1.5f);
    sup_fill_uniform(D->b, d->bias_dtype, 1, D->n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(D->b1, d->bias_dtype, 1, D->n, 0, &g, -1.0f, 1.0f);
    sup_fill_f32(D->rs, D->m, &g, 0.5f, 2.0f);
    sup_fill_uniform(D->dy, d->out_dtype, D->m, D->n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(D->dy1, d->out_dtype, D->m, D->n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(D->dro, hd, D->m, D->n, 0, &g, -0.5f, 0.5f);
}

static void direct_free(direct *D)
{
    void *all[] = {D->x, D->res, D->x1, D->w, D->b, D->w1, D->b1, D->out, D->out1, D->ro, D->dy, D->dy1, D->dro,
                   D->dx, D->dres, D->dx1, D->dw, D->db, D->dw1, D->db1, D->rs, D->rstd, D->mean, D->mask,
                   D->mask1, D->ws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sup_free(all[i]);
}

static darn_fwd_tensors direct_fwd_tensors(const direct *D)
{
    const uint32_t f = D->d.flags;
    darn_fwd_tensors t;
    memset(&t, 0, sizeof t);
    t.x = D->x;
    t.residual = (f & DARN_FLAG_HAS_RESIDUAL) ? D->res : NULL;
    t.rowscale = (f & DARN_FLAG_HAS_ROWSCALE) ? D->rs : NULL;
    t.weight = D->w;
    t.bias = (f & DARN_FLAG_HAS_BIAS) ? D->b : NULL;
    t.out = D->out;
    t.residual_out = D->ro;
    t.mask = D->mask;
    t.rstd = D->rstd;
    t.mean = D->d.norm == DARN_LAYERNORM ? D->mean : NULL;
    t.x1 = (f & X1) ? D->x1 : NULL;
    t.weight1 = (f & W1) ? D->w1 : NULL;
    t.bias1 = (f & B1) ? D->b1 : NULL;
    t.out1 = (f & W1) ? D->out1 : NULL;
    t.mask1 = (f & X1) ? D->mask1 : NULL;
    return t;
}

static void direct_fwd(direct *D)
{
    const darn_fwd_tensors t = direct_fwd_tensors(D);
    const darn_status st = darn_fwd(&D->d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
    cr_assert(st == DARN_OK, "darn_fwd: %s", darn_last_error());
}

/* The backward with mask / mask1 given (or NULL: regenerated). */
static void direct_bwd(direct *D, const uint8_t *mask, const uint8_t *mask1)
{
    const uint32_t f = D->d.flags;
    darn_bwd_tensors t;
    memset(&t, 0, sizeof t);
    t.dy = D->dy;
    t.h = D->ro;
    t.weight = D->w;
    t.rstd = D->rstd;
    t.mean = D->d.norm == DARN_LAYERNORM ? D->mean : NULL;
    t.rowscale = (f & DARN_FLAG_HAS_ROWSCALE) ? D->rs : NULL;
    t.dresidual_out = D->dro;
    t.mask = mask;
    t.dx = D->dx;
    t.dresidual = (f & DARN_FLAG_HAS_RESIDUAL) ? D->dres : NULL;
    t.dweight = D->dw;
    t.dbias = (f & DARN_FLAG_HAS_BIAS) ? D->db : NULL;
    t.dy1 = (f & W1) ? D->dy1 : NULL;
    t.weight1 = (f & W1) ? D->w1 : NULL;
    t.mask1 = (f & X1) ? mask1 : NULL;
    t.dx1 = (f & X1) ? D->dx1 : NULL;
    t.dweight1 = (f & W1) ? D->dw1 : NULL;
    t.dbias1 = (f & B1) ? D->db1 : NULL;
    const darn_status st = darn_bwd(&D->d, &t, D->ws, D->wsb, DARN_BACKEND_CPU, NULL);
    cr_assert(st == DARN_OK, "darn_bwd: %s", darn_last_error());
}

enum { G_DX, G_DRES, G_DX1, G_DW, G_DB, G_DW1, G_DB1, NG };
static const char *const kGradNames[NG] = {"dx", "dresidual", "dx1", "dweight", "dbias", "dweight1", "dbias1"};

/* Copies of the backward's outputs. */
typedef struct grads {
    void *v[NG];
    size_t bytes[NG];
} grads;

static void grads_take(grads *g, const direct *D)
{
    const darn_desc *d = &D->d;
    void *src[NG] = {D->dx, D->dres, D->dx1, D->dw, D->db, D->dw1, D->db1};
    const size_t mx = sup_tensor_bytes(d->x_dtype, D->m, D->n, 0);
    const size_t mr = sup_tensor_bytes(d->residual_dtype, D->m, D->n, 0);
    const size_t vw = (size_t)D->n * darn_dtype_size(d->weight_dtype), vb = (size_t)D->n * darn_dtype_size(d->bias_dtype);
    const size_t bytes[NG] = {mx, mr, mx, vw, vb, vw, vb};
    for (int i = 0; i < NG; i++) {
        g->bytes[i] = bytes[i];
        g->v[i] = malloc(bytes[i] ? bytes[i] : 1);
        cr_assert(g->v[i] != NULL);
        memcpy(g->v[i], src[i], bytes[i]);
    }
}

static void grads_free(grads *g)
{
    for (int i = 0; i < NG; i++) free(g->v[i]);
}

static int grads_same(const grads *a, const grads *b, int i) { return memcmp(a->v[i], b->v[i], a->bytes[i]) == 0; }

static int mask_bit(const uint8_t *mask, size_t rb, int64_t r, int64_t c)
{
    return (mask[(size_t)r * rb + (size_t)c / 8] >> (c % 8)) & 1;
}

/* mask1 is x1's Philox rule (index r*N + c + 2^63, keep iff word >= floor(p 2^32)) and differs from mask about
 * as two independent streams do (a fraction 2 p (1 - p) of the bits); padding bits are 0. */
Test(parallel, mask1_is_its_own_philox_stream)
{
    const double ps[] = {0.1, 0.5};
    for (size_t pi = 0; pi < 2; pi++) {
        darn_desc d;
        darn_desc_init(&d, DARN_RMSNORM, 37, 1000, DARN_BF16);
        d.flags = X1 | W1 | DARN_FLAG_HAS_RESIDUAL;
        d.dropout_p = ps[pi];
        d.seed = 0x9E3779B97F4A7C15ull;
        d.offset = 12345;
        direct D;
        direct_init(&D, &d, 99);
        direct_fwd(&D);
        const uint64_t thr = (uint64_t)floor(ldexp(d.dropout_p, 32));
        int64_t wrong1 = 0, wrong0 = 0, differ = 0, pad_set = 0;
        for (int64_t r = 0; r < D.m; r++) {
            for (int64_t c = 0; c < D.n; c++) {
                const uint64_t i = (uint64_t)(r * D.n + c);
                const int k0 = darn_philox_word(d.seed, d.offset, i) >= thr;
                const int k1 = darn_philox_word(d.seed, d.offset, i + (UINT64_C(1) << 63)) >= thr;
                const int b0 = mask_bit(D.mask, D.rb, r, c), b1 = mask_bit(D.mask1, D.rb, r, c);
                wrong0 += b0 != k0;
                wrong1 += b1 != k1;
                differ += b0 != b1;
            }
            for (int64_t c = D.n; c < (int64_t)D.rb * 8; c++) pad_set += mask_bit(D.mask1, D.rb, r, c);
        }
        const double total = (double)(D.m * D.n), expect = 2 * d.dropout_p * (1 - d.dropout_p) * total;
        cr_expect(wrong0 == 0, "p=%g: %lld mask bits off x's Philox rule", d.dropout_p, (long long)wrong0);
        cr_expect(wrong1 == 0, "p=%g: %lld mask1 bits off the rule at index + 2^63", d.dropout_p, (long long)wrong1);
        cr_expect(pad_set == 0, "p=%g: %lld mask1 padding bits set", d.dropout_p, (long long)pad_set);
        /* 37000 elements: the count of differing bits is within a few percent of its mean */
        cr_expect(fabs((double)differ - expect) < 0.1 * expect,
                  "p=%g: mask and mask1 differ in %lld bits, want about %.0f", d.dropout_p, (long long)differ, expect);
        direct_free(&D);
    }
}

/* The backward gives the same bits whether it reads mask / mask1 or regenerates them, and the masks it reads
 * are the right ones: a mask1 with every bit set changes dx1 and nothing else, a mask with every bit set changes
 * dx (and not dx1). */
Test(parallel, masks_read_or_regenerated)
{
    for (int norm = 0; norm < 2; norm++)
        for (int cfg = 0; cfg < 2; cfg++) {
            darn_desc d;
            darn_desc_init(&d, norm ? DARN_LAYERNORM : DARN_RMSNORM, 13, cfg ? 1000 : 133, cfg ? DARN_BF16 : DARN_F32);
            d.flags = X1 | W1 | B1 | DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE;
            d.dropout_p = 0.3;
            d.seed = 4242u + (unsigned)cfg;
            d.offset = 17;
            direct D;
            direct_init(&D, &d, 7u + (unsigned)norm);
            direct_fwd(&D);
            grads ref, g;
            direct_bwd(&D, D.mask, D.mask1);
            grads_take(&ref, &D);
            const uint8_t *variants[3][2] = {{NULL, NULL}, {D.mask, NULL}, {NULL, D.mask1}};
            for (int v = 0; v < 3; v++) {
                sup_sentinel_fill(D.dx, ref.bytes[G_DX]); /* outputs start as sentinels again */
                sup_sentinel_fill(D.dx1, ref.bytes[G_DX1]);
                direct_bwd(&D, variants[v][0], variants[v][1]);
                grads_take(&g, &D);
                for (int i = 0; i < NG; i++)
                    cr_expect(grads_same(&ref, &g, i), "%s cfg %d: %s differs between the masks read and variant %d "
                              "(mask %s, mask1 %s)", norm ? "LN" : "RMS", cfg, kGradNames[i], v,
                              variants[v][0] ? "read" : "regenerated", variants[v][1] ? "read" : "regenerated");
                grads_free(&g);
            }
            /* a mask1 keeping everything: dx1 changes (it is read), dx and the rest do not */
            uint8_t *ones = sup_alloc((size_t)D.m * D.rb, 64);
            memset(ones, 0xFF, (size_t)D.m * D.rb);
            direct_bwd(&D, D.mask, ones);
            grads_take(&g, &D);
            cr_expect(!grads_same(&ref, &g, G_DX1), "mask1 given as all ones: dx1 unchanged (mask1 not read)");
            for (int i = 0; i < NG; i++)
                if (i != G_DX1)
                    cr_expect(grads_same(&ref, &g, i), "mask1 given as all ones: %s changed", kGradNames[i]);
            grads_free(&g);
            /* a mask keeping everything: dx changes, dx1 does not (the masks are not swapped) */
            direct_bwd(&D, ones, D.mask1);
            grads_take(&g, &D);
            cr_expect(!grads_same(&ref, &g, G_DX), "mask given as all ones: dx unchanged (mask not read)");
            cr_expect(grads_same(&ref, &g, G_DX1), "mask given as all ones: dx1 changed (x1 read x's mask)");
            grads_free(&g);
            sup_free(ones);
            grads_free(&ref);
            direct_free(&D);
        }
}

/* ---- 4. gradcheck --------------------------------------------------------------------------------------- */
/* L over rows [r0, r1) of the exact forward: sum(y gy) + sum(y1 gy1) + sum(h gh). */
static double loss_rows(const oracle_problem *p, oracle_fwd *f, const double *gy, const double *gy1, const double *gh,
                        int64_t r0, int64_t r1)
{
    oracle_forward_rows(p, ORACLE_H_EXACT, r0, r1, f);
    double l = oracle_loss(f, gy, gh, r0, r1);
    if (p->weight1)
        for (int64_t i = r0 * f->n; i < r1 * f->n; i++) l += f->y1[i] * gy1[i];
    return l;
}

static double central_diff(const oracle_problem *p, oracle_fwd *f, const double *gy, const double *gy1,
                           const double *gh, double *v, int64_t r0, int64_t r1)
{
    const double h = 1e-6, keep = *v;
    *v = keep + h;
    const double lp = loss_rows(p, f, gy, gy1, gh, r0, r1);
    *v = keep - h;
    const double lm = loss_rows(p, f, gy, gy1, gh, r0, r1);
    *v = keep;
    return (lp - lm) / (2 * h);
}

/* max |a - fd| / max |fd| */
static double rel_dev(const double *fd, const double *a, int64_t count, double *scale)
{
    double sc = 0, w = 0;
    for (int64_t i = 0; i < count; i++) sc = fmax(sc, fabs(fd[i]));
    for (int64_t i = 0; i < count; i++) w = fmax(w, fabs(a[i] - fd[i]));
    *scale = sc;
    return sc > 0 ? w / sc : w;
}

static void gradcheck(darn_norm norm, uint32_t flags, double p, int64_t m, int64_t n, uint64_t seed)
{
    darn_desc d;
    darn_desc_init(&d, norm, m, n, DARN_F32);
    d.flags = flags;
    d.dropout_p = p;
    d.seed = seed;
    d.eps = 1e-3f;
    direct D;
    direct_init(&D, &d, seed * 977u + 1);
    if (flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) { /* small w, w1: w' = 1 + w around 1 */
        sup_rng g = sup_rng_make(seed);
        sup_fill_f32(D.w, n, &g, -0.5f, 0.5f);
        sup_fill_f32(D.w1, n, &g, -0.5f, 0.5f);
    }
    direct_fwd(&D);
    direct_bwd(&D, D.mask, D.mask1);
    const darn_fwd_tensors t = direct_fwd_tensors(&D);
    oracle_problem pr;
    oracle_load(&pr, &d, &t);
    const size_t mn = (size_t)(m * n);
    double *gy = calloc(mn, sizeof(double)), *gy1 = calloc(mn, sizeof(double)), *gh = calloc(mn, sizeof(double));
    cr_assert(gy && gy1 && gh);
    for (size_t i = 0; i < mn; i++) {
        gy[i] = ((const float *)D.dy)[i];
        gy1[i] = ((const float *)D.dy1)[i];
        gh[i] = ((const float *)D.dro)[i];
    }
    oracle_fwd f;
    oracle_fwd_alloc(&f, m, n);
    oracle_forward(&pr, ORACLE_H_EXACT, &f);
    oracle_bwd ob;
    oracle_backward_parallel(&pr, f.h, gy, (flags & W1) ? gy1 : NULL, gh, &ob);

    enum { DX, DXONE, DW, DWONE, DBONE, N5 };
    static const char *const names[N5] = {"dx", "dx1", "dweight", "dweight1", "dbias1"};
    const int present[N5] = {1, (flags & X1) != 0, 1, (flags & W1) != 0, (flags & B1) != 0};
    const int64_t counts[N5] = {(int64_t)mn, (int64_t)mn, n, n, n};
    const double *ana[N5] = {ob.dx, ob.dx1, ob.dweight, ob.dweight1, ob.dbias1};
    const float *got32[N5] = {D.dx, D.dx1, D.dw, D.dw1, D.db1};
    double *const base[N5] = {pr.x, pr.x1, pr.weight, pr.weight1, pr.bias1}; /* the inputs the FD moves */
    for (int k = 0; k < N5; k++) {
        if (!present[k]) continue;
        cr_assert(ana[k] != NULL, "%s: the oracle computed no %s", "gradcheck", names[k]);
        double *fd = calloc((size_t)counts[k], sizeof(double)), *got = calloc((size_t)counts[k], sizeof(double));
        cr_assert(fd && got);
        for (int64_t i = 0; i < counts[k]; i++) {
            got[i] = got32[k][i];
            const int64_t r = k == DX || k == DXONE ? i / n : -1; /* a row's element, or a weight's (all rows) */
            fd[i] = central_diff(&pr, &f, gy, gy1, gh, &base[k][i], r < 0 ? 0 : r, r < 0 ? m : r + 1);
        }
        double scale;
        const double eo = rel_dev(fd, ana[k], counts[k], &scale), ed = rel_dev(fd, got, counts[k], &scale);
        fprintf(stderr,
                "[gradcheck] parallel %s flags=0x%x p=%g %s: scale %.3g, |oracle-fd|/scale %.3g, |darn-fd|/scale %.3g\n",
                norm == DARN_LAYERNORM ? "LN" : "RMS", flags, p, names[k], scale, eo, ed);
        cr_expect(scale > 1e-3, "%s: gradient is trivially zero", names[k]);
        /* as in test_backward.c: fp64 FD is good to ~1e-8 of the scale, darn (fp32) to a few 1e-7 */
        cr_expect(eo < 1e-7, "gradcheck flags=0x%x p=%g: oracle %s off FD by %.3g of %.3g", flags, p, names[k], eo,
                  scale);
        cr_expect(ed < 2e-6, "gradcheck flags=0x%x p=%g: darn %s off FD by %.3g of %.3g", flags, p, names[k], ed,
                  scale);
        free(fd);
        free(got);
    }
    oracle_bwd_free(&ob);
    oracle_fwd_free(&f);
    oracle_free(&pr);
    free(gy);
    free(gy1);
    free(gh);
    direct_free(&D);
}

#define ALLF (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE)
Test(parallel_gradcheck, rms_x1_w1_b1) { gradcheck(DARN_RMSNORM, X1 | W1 | B1 | ALLF, 0.3, 4, 37, 1); }
Test(parallel_gradcheck, ln_x1_w1_b1_zero_centered)
{
    gradcheck(DARN_LAYERNORM, X1 | W1 | B1 | ALLF | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.3, 4, 37, 2);
}
Test(parallel_gradcheck, ln_w1_only) { gradcheck(DARN_LAYERNORM, W1 | DARN_FLAG_HAS_RESIDUAL, 0.0, 3, 70, 3); }
Test(parallel_gradcheck, rms_x1_only) { gradcheck(DARN_RMSNORM, X1 | DARN_FLAG_HAS_ROWSCALE, 0.5, 3, 70, 4); }

/* ---- 5. self-checks ------------------------------------------------------------------------------------ */
/* The case passes with the true oracle and fails with the mutated one (in the forward and backward, or with
 * bwd_only in the backward's oracle alone: then the forward's reports must stay clean). */
static void expect_rejected(oracle_mutation mut, int bwd_only, darn_norm norm, uint32_t flags, double p,
                            const char *what)
{
    oracle_case c;
    init_case(&c, norm, 9, 133, &kConfigs[bwd_only ? 0 : 1]);
    c.desc.flags = flags;
    c.desc.dropout_p = p;
    c.desc.seed = 11;
    c.data_seed = 777;
    oracle_result res;
    oracle_run_case(&c, &res);
    cr_assert(res.ok, "%s: unmutated case fails:\n%s", what, res.msg);
    c.mutation = mut;
    c.mutate_backward_only = bwd_only;
    oracle_run_case(&c, &res);
    cr_assert(!res.ok, "%s: a wrong oracle was not detected (bounds too loose)", what);
    if (bwd_only) {
        const int fwd_reps[] = {ORACLE_REP_Y, ORACLE_REP_RESOUT, ORACLE_REP_MASK, ORACLE_REP_RSTD,
                                ORACLE_REP_MEAN, ORACLE_REP_Y1, ORACLE_REP_MASK1};
        for (size_t i = 0; i < sizeof fwd_reps / sizeof fwd_reps[0]; i++)
            cr_assert(res.rep[fwd_reps[i]].bad == 0, "%s: the forward's %s should be unaffected", what,
                      res.rep[fwd_reps[i]].what);
    }
}

Test(parallel_selfcheck, wrong_references_are_rejected)
{
    const uint32_t all = X1 | W1 | B1 | DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    for (int norm = 0; norm < 2; norm++) {
        const darn_norm nm = norm ? DARN_LAYERNORM : DARN_RMSNORM;
        /* x1 not added to h */
        expect_rejected(ORACLE_MUT_NO_X1, 0, nm, X1 | DARN_FLAG_HAS_RESIDUAL, 0.0, "h without x1");
        expect_rejected(ORACLE_MUT_NO_X1, 1, nm, all, 0.1, "dx1 = 0 (x1 ignored by the backward)");
        /* x1 dropped with x's keep bits */
        expect_rejected(ORACLE_MUT_X1_SAME_KEEP, 0, nm, X1 | DARN_FLAG_HAS_RESIDUAL, 0.1, "x1 with x's keep bits");
        expect_rejected(ORACLE_MUT_X1_SAME_KEEP, 1, nm, all, 0.1, "dx1 with x's keep bits");
        /* y1 and g with weight instead of weight1 */
        expect_rejected(ORACLE_MUT_W1_IS_W, 0, nm, W1 | B1, 0.0, "y1 = xhat * w'");
        expect_rejected(ORACLE_MUT_W1_IS_W, 0, nm, W1 | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.0, "y1 = xhat * (1 + w)");
        expect_rejected(ORACLE_MUT_W1_IS_W, 1, nm, all, 0.0, "g = dy w' + dy1 w'");
        /* dy1 left out of g */
        expect_rejected(ORACLE_MUT_NO_DY1, 1, nm, all, 0.1, "g = dy w' only");
        expect_rejected(ORACLE_MUT_NO_DY1, 1, nm, W1, 0.0, "g = dy w' only, no x1");
        /* the single-output mutations still bite with a second output */
        expect_rejected(ORACLE_MUT_SKIP_LAST_COL, 1, nm, all, 0.0, "dropped column with y1");
        expect_rejected(ORACLE_MUT_NO_DROP_SCALE, 1, nm, all, 0.3, "missing 1/(1-p) in dx and dx1");
    }
}

/* The mutation that only x1's keep bits reveal shows up in dx1 and mask1, and only there. */
Test(parallel_selfcheck, same_keep_mutation_hits_mask1_and_dx1)
{
    oracle_case c;
    init_case(&c, DARN_RMSNORM, 9, 133, &kConfigs[0]);
    c.desc.flags = X1 | W1;
    c.desc.dropout_p = 0.3;
    c.desc.seed = 5;
    c.mutation = ORACLE_MUT_X1_SAME_KEEP;
    oracle_result res;
    oracle_run_case(&c, &res);
    cr_assert(!res.ok);
    cr_expect(res.rep[ORACLE_REP_MASK1].bad > 0, "mask1 matched x's keep bits");
    cr_expect(res.rep[ORACLE_REP_RESOUT].bad > 0, "h matched a sum with x's keep bits on x1");
    cr_expect(res.rep[ORACLE_REP_MASK].bad == 0, "mask should be unaffected");
}
