/*
 * test_backward.c — darn_bwd (CPU backend) against the fp64 oracle's analytic backward, and a gradcheck.
 *
 * 1. Option grid: five dtype configurations x RMSNorm/LayerNorm x every flag subset x p in {0, 0.3} x
 *    dresidual_out given or not x mask passed or regenerated: dx, dresidual, dweight, dbias within the
 *    oracle's bounds (dweight/dbias bounds scale with the sum of |terms| and the chunk length).
 * 2. Gradcheck: central finite differences (fp64, step 1e-6) of the oracle's loss
 *    L = sum(y * gy) + sum(h * gh) with respect to x, residual, weight and bias, against the oracle's
 *    analytic backward (validates the oracle's formulas) and against darn's backward at all-f32 dtypes
 *    (validates the library's formulas independently of the oracle's).
 * 3. Many wgrad chunks (darn_wgrad_chunks(M, N) > 1, chunks of several rows, a G that is not a power of
 *    two): the chunk + tree reduction of dweight/dbias.
 * 4. Self-checks: deliberately wrong backward oracles are rejected.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "support.h"

/* ---- 1. option grid --------------------------------------------------------------------------------- */
typedef struct dtype_config {
    const char *name;
    darn_dtype x, res, w, b, out;
    int force_rif32; /* always add DARN_FLAG_RESIDUAL_IN_FP32 */
} dtype_config;

static const dtype_config kConfigs[] = {
    {"all-f32", DARN_F32, DARN_F32, DARN_F32, DARN_F32, DARN_F32, 0},
    {"all-bf16", DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, 0},
    {"x-bf16/res-f32/rif32/w-f32", DARN_BF16, DARN_F32, DARN_F32, DARN_F32, DARN_BF16, 1},
    {"f16-mix", DARN_F16, DARN_F32, DARN_BF16, DARN_F16, DARN_F16, 0},
    {"all-f16", DARN_F16, DARN_F16, DARN_F16, DARN_F16, DARN_F16, 0},
};

static void run_grid(const dtype_config *cfg, darn_norm norm)
{
    oracle_worst worst;
    oracle_worst_init(&worst);
    int64_t failures = 0;
    char first[4096] = "";
    char label[160];
    snprintf(label, sizeof label, "backward %s %s", norm == DARN_LAYERNORM ? "LayerNorm" : "RMSNorm", cfg->name);
    for (unsigned k = 0; k < 256; k++) {
        oracle_case c;
        memset(&c, 0, sizeof c);
        darn_desc *d = &c.desc;
        darn_desc_init(d, norm, 9, 133, cfg->x);
        d->residual_dtype = cfg->res;
        d->weight_dtype = cfg->w;
        d->bias_dtype = cfg->b;
        d->out_dtype = cfg->out;
        if (k & 1u) d->flags |= DARN_FLAG_HAS_RESIDUAL;
        if (k & 2u) d->flags |= DARN_FLAG_HAS_BIAS;
        if (k & 4u) d->flags |= DARN_FLAG_HAS_ROWSCALE;
        if (k & 8u) d->flags |= DARN_FLAG_ZERO_CENTERED_WEIGHT;
        if ((k & 16u) || cfg->force_rif32) d->flags |= DARN_FLAG_RESIDUAL_IN_FP32;
        d->dropout_p = (k & 32u) ? 0.3 : 0.0;
        c.bwd_dresidual_out = (k & 64u) != 0;
        c.bwd_regen_mask = (k & 128u) != 0;
        if (k % 4 == 1) d->eps = 1e-2f;
        d->seed = 0xABCDu + k;
        d->offset = 3u * k;
        c.pad = k % 3;
        c.amp = k % 7 == 3 ? 0.01 : 1.0;
        c.data_seed = 0x5EEDu + k * 31u + (unsigned)norm;
        c.backward = 1;
        /* h == x: no residual, no dropout, no rowscale, and h keeps x's dtype */
        const darn_dtype hd = darn_residual_out_dtype(d);
        if (!(d->flags & (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_ROWSCALE)) && d->dropout_p == 0.0 &&
            hd == d->x_dtype && k % 3 == 0)
            c.bwd_h_is_x = 1;
        oracle_result res;
        oracle_run_case(&c, &res);
        oracle_worst_add(&worst, &res);
        if (!res.ok) {
            if (failures == 0) snprintf(first, sizeof first, "%s", res.msg);
            failures++;
        }
    }
    oracle_worst_print(&worst, label);
    cr_assert(failures == 0, "%s: %lld of %lld cases fail; first:\n%s", label, (long long)failures,
              (long long)worst.cases, first);
}

Test(backward, rms_all_f32) { run_grid(&kConfigs[0], DARN_RMSNORM); }
Test(backward, ln_all_f32) { run_grid(&kConfigs[0], DARN_LAYERNORM); }
Test(backward, rms_all_bf16) { run_grid(&kConfigs[1], DARN_RMSNORM); }
Test(backward, ln_all_bf16) { run_grid(&kConfigs[1], DARN_LAYERNORM); }
Test(backward, rms_bf16_res_f32) { run_grid(&kConfigs[2], DARN_RMSNORM); }
Test(backward, ln_bf16_res_f32) { run_grid(&kConfigs[2], DARN_LAYERNORM); }
Test(backward, rms_f16_mix) { run_grid(&kConfigs[3], DARN_RMSNORM); }
Test(backward, ln_f16_mix) { run_grid(&kConfigs[3], DARN_LAYERNORM); }
Test(backward, rms_all_f16) { run_grid(&kConfigs[4], DARN_RMSNORM); }
Test(backward, ln_all_f16) { run_grid(&kConfigs[4], DARN_LAYERNORM); }

/* ---- 2. gradcheck ----------------------------------------------------------------------------------- */
/* Loss of rows [r0, r1) of the exact (fp64) forward at the problem's current inputs. */
static double loss_rows(const oracle_problem *p, oracle_fwd *f, const double *gy, const double *gh, int64_t r0,
                        int64_t r1)
{
    oracle_forward_rows(p, ORACLE_H_EXACT, r0, r1, f);
    return oracle_loss(f, gy, gh, r0, r1);
}

/* Central difference of the loss w.r.t. *v (an input of rows [r0, r1)). */
static double central_diff(const oracle_problem *p, oracle_fwd *f, const double *gy, const double *gh, double *v,
                           int64_t r0, int64_t r1)
{
    const double h = 1e-6, keep = *v;
    *v = keep + h;
    const double lp = loss_rows(p, f, gy, gh, r0, r1);
    *v = keep - h;
    const double lm = loss_rows(p, f, gy, gh, r0, r1);
    *v = keep;
    return (lp - lm) / (2 * h);
}

/* Compares one gradient tensor: fd vs the oracle's analytic value (tight) and vs darn's (fp32 level). */
typedef struct grad_cmp {
    const char *what;
    double scale;             /* max |fd| over the tensor */
    double worst_oracle, worst_darn; /* max |diff| / scale */
    int64_t at_oracle, at_darn;
} grad_cmp;

static void grad_compare(grad_cmp *g, const char *what, const double *fd, const double *ana, const double *got,
                         int64_t count)
{
    memset(g, 0, sizeof *g);
    g->what = what;
    for (int64_t i = 0; i < count; i++)
        if (fabs(fd[i]) > g->scale) g->scale = fabs(fd[i]);
    const double sc = g->scale > 0 ? g->scale : 1.0;
    g->at_oracle = g->at_darn = -1;
    for (int64_t i = 0; i < count; i++) {
        const double eo = fabs(ana[i] - fd[i]) / sc, ed = fabs(got[i] - fd[i]) / sc;
        if (!(eo <= g->worst_oracle)) {
            g->worst_oracle = eo;
            g->at_oracle = i;
        }
        if (!(ed <= g->worst_darn)) {
            g->worst_darn = ed;
            g->at_darn = i;
        }
    }
}

static void gradcheck(darn_norm norm, uint32_t flags, double p, int with_dro, int64_t m, int64_t n, uint64_t seed)
{
    darn_desc d;
    darn_desc_init(&d, norm, m, n, DARN_F32);
    d.flags = flags;
    d.dropout_p = p;
    d.seed = seed;
    d.eps = 1e-3f;
    const size_t mn = (size_t)(m * n);
    const int has_res = (flags & DARN_FLAG_HAS_RESIDUAL) != 0, has_bias = (flags & DARN_FLAG_HAS_BIAS) != 0;
    const int has_rs = (flags & DARN_FLAG_HAS_ROWSCALE) != 0, zc = (flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) != 0;
    sup_rng g = sup_rng_make(seed * 977u + 1);
    float *x = sup_alloc(mn * 4, 64), *res = sup_alloc(mn * 4, 64), *w = sup_alloc((size_t)n * 4, 64);
    float *b = sup_alloc((size_t)n * 4, 64), *rs = sup_alloc((size_t)m * 4, 64);
    float *out = sup_alloc(mn * 4, 64), *hout = sup_alloc(mn * 4, 64), *rstd = sup_alloc((size_t)m * 4, 64);
    float *mean = sup_alloc((size_t)m * 4, 64), *dy = sup_alloc(mn * 4, 64), *dro = sup_alloc(mn * 4, 64);
    float *dx = sup_alloc(mn * 4, 64), *dres = sup_alloc(mn * 4, 64), *dw = sup_alloc((size_t)n * 4, 64);
    float *db = sup_alloc((size_t)n * 4, 64);
    sup_fill_f32(x, (int64_t)mn, &g, -1.0f, 2.0f);
    sup_fill_f32(res, (int64_t)mn, &g, -1.0f, 1.0f);
    sup_fill_f32(w, n, &g, zc ? -0.5f : -1.5f, zc ? 0.5f : 1.5f);
    sup_fill_f32(b, n, &g, -1.0f, 1.0f);
    sup_fill_f32(rs, m, &g, 0.5f, 2.0f);
    sup_fill_f32(dy, (int64_t)mn, &g, -1.0f, 1.0f);
    sup_fill_f32(dro, (int64_t)mn, &g, -0.5f, 0.5f);

    darn_fwd_tensors t;
    memset(&t, 0, sizeof t);
    t.x = x;
    t.residual = has_res ? res : NULL;
    t.rowscale = has_rs ? rs : NULL;
    t.weight = w;
    t.bias = has_bias ? b : NULL;
    t.out = out;
    t.residual_out = hout;
    t.rstd = rstd;
    t.mean = norm == DARN_LAYERNORM ? mean : NULL;
    darn_status st = darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
    cr_assert(st == DARN_OK, "darn_fwd: %s", darn_last_error());
    darn_bwd_tensors tb;
    memset(&tb, 0, sizeof tb);
    tb.dy = dy;
    tb.h = hout;
    tb.weight = w;
    tb.rstd = rstd;
    tb.mean = t.mean;
    tb.rowscale = t.rowscale;
    tb.dresidual_out = with_dro ? dro : NULL;
    tb.dx = dx;
    tb.dresidual = has_res ? dres : NULL;
    tb.dweight = dw;
    tb.dbias = has_bias ? db : NULL;
    size_t wsb = 0;
    st = darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &wsb);
    cr_assert(st == DARN_OK, "darn_bwd_workspace_size: %s", darn_last_error());
    void *ws = sup_alloc(wsb, 64);
    st = darn_bwd(&d, &tb, ws, wsb, DARN_BACKEND_CPU, NULL);
    cr_assert(st == DARN_OK, "darn_bwd: %s", darn_last_error());

    oracle_problem pr;
    oracle_load(&pr, &d, &t);
    double *gy = calloc(mn, sizeof(double)), *gh = calloc(mn, sizeof(double));
    cr_assert(gy && gh);
    for (size_t i = 0; i < mn; i++) {
        gy[i] = dy[i];
        gh[i] = dro[i];
    }
    const double *ghp = with_dro ? gh : NULL;
    oracle_fwd f;
    oracle_fwd_alloc(&f, m, n);
    oracle_forward(&pr, ORACLE_H_EXACT, &f);
    oracle_bwd ob;
    oracle_backward(&pr, f.h, gy, ghp, &ob);

    /* finite differences */
    double *fdx = calloc(mn, sizeof(double)), *fdr = calloc(mn, sizeof(double));
    double *fdw = calloc((size_t)n, sizeof(double)), *fdb = calloc((size_t)n, sizeof(double));
    double *gdx = calloc(mn, sizeof(double)), *gdr = calloc(mn, sizeof(double));
    double *gdw = calloc((size_t)n, sizeof(double)), *gdb = calloc((size_t)n, sizeof(double));
    cr_assert(fdx && fdr && fdw && fdb && gdx && gdr && gdw && gdb);
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            const size_t i = (size_t)(r * n + c);
            fdx[i] = central_diff(&pr, &f, gy, ghp, &pr.x[i], r, r + 1);
            if (has_res) fdr[i] = central_diff(&pr, &f, gy, ghp, &pr.residual[i], r, r + 1);
            gdx[i] = dx[i];
            gdr[i] = dres[i];
        }
    for (int64_t c = 0; c < n; c++) {
        fdw[c] = central_diff(&pr, &f, gy, ghp, &pr.weight[c], 0, m);
        if (has_bias) fdb[c] = central_diff(&pr, &f, gy, ghp, &pr.bias[c], 0, m);
        gdw[c] = dw[c];
        gdb[c] = db[c];
    }
    grad_cmp cmp[4];
    int ncmp = 0;
    grad_compare(&cmp[ncmp++], "dx", fdx, ob.dx, gdx, (int64_t)mn);
    if (has_res) grad_compare(&cmp[ncmp++], "dresidual", fdr, ob.dh, gdr, (int64_t)mn);
    grad_compare(&cmp[ncmp++], "dweight", fdw, ob.dweight, gdw, n);
    if (has_bias) grad_compare(&cmp[ncmp++], "dbias", fdb, ob.dbias, gdb, n);
    for (int i = 0; i < ncmp; i++) {
        fprintf(stderr,
                "[gradcheck] %s flags=0x%x p=%g dro=%d M=%lld N=%lld %s: scale %.3g, |oracle-fd|/scale %.3g, "
                "|darn-fd|/scale %.3g\n",
                norm == DARN_LAYERNORM ? "LN" : "RMS", flags, p, with_dro, (long long)m, (long long)n, cmp[i].what,
                cmp[i].scale, cmp[i].worst_oracle, cmp[i].worst_darn);
        cr_expect(cmp[i].scale > 1e-3, "%s: gradient is trivially zero", cmp[i].what);
        /* fp64 FD with step 1e-6 is good to ~1e-8 of the scale (observed <= 1e-8) */
        cr_expect(cmp[i].worst_oracle < 1e-7,
                  "gradcheck %s flags=0x%x p=%g dro=%d: oracle analytic %s off FD by %.3g of scale %.3g at %lld",
                  norm == DARN_LAYERNORM ? "LN" : "RMS", flags, p, with_dro, cmp[i].what, cmp[i].worst_oracle,
                  cmp[i].scale, (long long)cmp[i].at_oracle);
        /* darn is fp32 (h rounded to fp32 in the forward): a few tens of units of 2^-24 (observed ~2.5) */
        cr_expect(cmp[i].worst_darn < 2e-6,
                  "gradcheck %s flags=0x%x p=%g dro=%d: darn %s off FD by %.3g of scale %.3g at %lld",
                  norm == DARN_LAYERNORM ? "LN" : "RMS", flags, p, with_dro, cmp[i].what, cmp[i].worst_darn,
                  cmp[i].scale, (long long)cmp[i].at_darn);
    }
    free(fdx); free(fdr); free(fdw); free(fdb);
    free(gdx); free(gdr); free(gdw); free(gdb);
    free(gy); free(gh);
    oracle_bwd_free(&ob);
    oracle_fwd_free(&f);
    oracle_free(&pr);
    sup_free(ws);
    sup_free(x); sup_free(res); sup_free(w); sup_free(b); sup_free(rs); sup_free(out); sup_free(hout);
    sup_free(rstd); sup_free(mean); sup_free(dy); sup_free(dro); sup_free(dx); sup_free(dres);
    sup_free(dw); sup_free(db);
}

#define ALLF (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE | DARN_FLAG_ZERO_CENTERED_WEIGHT)

Test(gradcheck, rms_plain) { gradcheck(DARN_RMSNORM, 0, 0.0, 0, 4, 37, 1); }
Test(gradcheck, ln_plain) { gradcheck(DARN_LAYERNORM, 0, 0.0, 0, 4, 37, 2); }
Test(gradcheck, rms_all_options) { gradcheck(DARN_RMSNORM, ALLF, 0.3, 1, 5, 70, 3); }
Test(gradcheck, ln_all_options) { gradcheck(DARN_LAYERNORM, ALLF, 0.3, 1, 5, 70, 4); }
Test(gradcheck, ln_residual_bias) { gradcheck(DARN_LAYERNORM, DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS, 0.0, 0, 3, 133, 5); }
Test(gradcheck, rms_rowscale_dropout) { gradcheck(DARN_RMSNORM, DARN_FLAG_HAS_ROWSCALE | DARN_FLAG_HAS_BIAS, 0.5, 1, 3, 133, 6); }

/* ---- 3. many wgrad chunks ---------------------------------------------------------------------------- */
static void many_chunks(darn_norm norm, int64_t m, int64_t n, darn_dtype dt, double p)
{
    const int64_t chunks = darn_wgrad_chunks(m, n);
    cr_assert(chunks > 1, "M=%lld N=%lld: expected several wgrad chunks, got %lld", (long long)m, (long long)n,
              (long long)chunks);
    oracle_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, norm, m, n, dt);
    c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    c.desc.dropout_p = p;
    c.desc.seed = (uint64_t)(m * 31 + n);
    c.data_seed = (uint64_t)(m + n);
    c.backward = 1;
    c.bwd_dresidual_out = 1;
    oracle_result res;
    oracle_run_case(&c, &res);
    fprintf(stderr, "[oracle] wgrad M=%lld N=%lld G=%lld %s: dweight err/bound %.3g, dbias err/bound %.3g, dx %.3g\n",
            (long long)m, (long long)n, (long long)chunks, dt == DARN_F32 ? "f32" : "bf16",
            res.rep[ORACLE_REP_DW].worst, res.rep[ORACLE_REP_DB].worst, res.rep[ORACLE_REP_DX].worst);
    cr_assert(res.ok, "%s", res.msg);
}

/* G(M, N) and rows per chunk R from docs/numerics.md §6: R = max(1, floor(M * N / 2^21)), G = ceil(M / R). */
Test(wgrad_chunks, one_row_chunks_m3000_n64) { many_chunks(DARN_RMSNORM, 3000, 64, DARN_F32, 0.0); }       /* R=1 G=3000 */
Test(wgrad_chunks, three_row_chunks_m100000_n64) { many_chunks(DARN_LAYERNORM, 100000, 64, DARN_BF16, 0.1); } /* R=3 G=33334 */
Test(wgrad_chunks, five_row_chunks_m219000_n48) { many_chunks(DARN_RMSNORM, 219000, 48, DARN_BF16, 0.2); }  /* R=5 G=43800 */
Test(wgrad_chunks, uneven_chunks_m390_n16384) { many_chunks(DARN_LAYERNORM, 390, 16384, DARN_F32, 0.0); }  /* R=3 G=130 */

/* ---- 4. self-checks ---------------------------------------------------------------------------------- */
static void expect_bwd_rejected(oracle_mutation mut, darn_norm norm, uint32_t flags, double p, darn_dtype dt,
                                const char *what)
{
    oracle_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, norm, 9, 133, dt);
    c.desc.flags = flags;
    c.desc.dropout_p = p;
    c.desc.eps = 1e-3f;
    c.desc.seed = 11;
    c.data_seed = 777;
    c.backward = 1;
    oracle_result res;
    oracle_run_case(&c, &res);
    cr_assert(res.ok, "%s: unmutated case fails:\n%s", what, res.msg);
    c.mutation = mut;
    c.mutate_backward_only = 1;
    oracle_run_case(&c, &res);
    cr_assert(!res.ok, "%s: a wrong backward oracle was not detected (bounds too loose)", what);
    cr_assert(res.rep[ORACLE_REP_Y].bad == 0, "%s: the forward should be unaffected", what);
}

Test(backward_selfcheck, wrong_references_are_rejected)
{
    const uint32_t rb = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    expect_bwd_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_RMSNORM, rb, 0.0, DARN_F32, "RMS dropped column");
    expect_bwd_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_LAYERNORM, rb, 0.0, DARN_F32, "LN dropped column");
    expect_bwd_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_LAYERNORM, rb, 0.0, DARN_BF16, "LN bf16 dropped column");
    expect_bwd_rejected(ORACLE_MUT_NO_EPS, DARN_LAYERNORM, rb, 0.0, DARN_F32, "LN eps missing");
    expect_bwd_rejected(ORACLE_MUT_SWAP_NORM, DARN_RMSNORM, rb, 0.0, DARN_BF16, "RMS backward as LN");
    expect_bwd_rejected(ORACLE_MUT_SWAP_NORM, DARN_LAYERNORM, rb, 0.0, DARN_BF16, "LN backward as RMS");
    expect_bwd_rejected(ORACLE_MUT_NO_DROP_SCALE, DARN_RMSNORM, rb, 0.3, DARN_BF16, "missing 1/(1-p) in dx");
    expect_bwd_rejected(ORACLE_MUT_NOT_CENTERED, DARN_LAYERNORM, rb | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.0, DARN_BF16,
                        "g = dy * w instead of dy * (1 + w)");
}

/* M = 0: the gradient of an empty batch is +0 in every dweight/dbias element (bits, not just value),
 * in every dtype, and nothing past the vectors is written. */
Test(backward, empty_batch_gives_positive_zero)
{
    static const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; k++)
        for (int norm = 0; norm < 2; norm++) {
            darn_desc d;
            darn_desc_init(&d, norm ? DARN_LAYERNORM : DARN_RMSNORM, 0, 37, dts[k]);
            d.flags = DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_RESIDUAL;
            const size_t es = darn_dtype_size(dts[k]), bytes = 37 * es, guard = 64;
            unsigned char *dw = sup_alloc(bytes + guard, 64), *db = sup_alloc(bytes + guard, 64);
            darn_bwd_tensors tb;
            memset(&tb, 0, sizeof tb);
            tb.dweight = dw;
            tb.dbias = db;
            size_t wsb = 0;
            cr_assert(darn_bwd_workspace_size(&d, DARN_BACKEND_CPU, &wsb) == DARN_OK, "%s", darn_last_error());
            void *ws = sup_alloc(wsb, 64);
            const darn_status st = darn_bwd(&d, &tb, ws, wsb, DARN_BACKEND_CPU, NULL);
            cr_assert(st == DARN_OK, "M=0 darn_bwd: %s", darn_last_error());
            for (size_t i = 0; i < bytes; i++) {
                cr_assert(dw[i] == 0, "dtype %d: dweight byte %zu = 0x%02x, want +0", k, i, dw[i]);
                cr_assert(db[i] == 0, "dtype %d: dbias byte %zu = 0x%02x, want +0", k, i, db[i]);
            }
            cr_assert(sup_first_touched(dw + bytes, guard) < 0 && sup_first_touched(db + bytes, guard) < 0,
                      "dtype %d: written past dweight/dbias", k);
            sup_free(ws);
            sup_free(dw);
            sup_free(db);
        }
}
