/* tests/oracle.c — see oracle.h. Nothing here includes src/ headers: the oracle's conversions, keep
 * threshold, lane count and chunking (the latter two only size error bounds) are written from
 * docs/numerics.md independently of src/contract.h. */
#include "oracle.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/philox.h>

#include "support.h"

#define U32 0x1.0p-24 /* unit roundoff of binary32 */

/* ---- conversions ------------------------------------------------------------------------------- */
static int dt_prec(darn_dtype d) { return d == DARN_F16 ? 11 : d == DARN_BF16 ? 8 : 24; }
static int dt_emin(darn_dtype d) { return d == DARN_F16 ? -14 : -126; }
static double dt_max(darn_dtype d)
{
    return d == DARN_F16 ? 65504.0 : d == DARN_BF16 ? ldexp(255.0, 120) : (double)FLT_MAX;
}
static size_t dt_size(darn_dtype d) { return d == DARN_F32 ? 4 : 2; }

double oracle_decode(darn_dtype dtype, uint32_t bits)
{
    if (dtype == DARN_F32) {
        float f;
        memcpy(&f, &bits, 4);
        return (double)f;
    }
    const int mbits = dtype == DARN_F16 ? 10 : 7, ebits = dtype == DARN_F16 ? 5 : 8;
    const int bias = (1 << (ebits - 1)) - 1;
    const uint32_t mant = bits & ((1u << mbits) - 1u);
    const uint32_t ex = (bits >> mbits) & ((1u << ebits) - 1u);
    const double sign = (bits >> 15) & 1u ? -1.0 : 1.0;
    if (ex == (1u << ebits) - 1u) return mant ? NAN : sign * INFINITY;
    if (ex == 0) return sign * ldexp((double)mant, 1 - bias - mbits);
    return sign * ldexp((double)((1u << mbits) + mant), (int)ex - bias - mbits);
}

double oracle_round(darn_dtype dtype, double v)
{
    if (isnan(v) || isinf(v) || v == 0.0) return v;
    int e;
    (void)frexp(v, &e); /* |v| in [2^(e-1), 2^e) */
    int ex = e - 1;
    if (ex < dt_emin(dtype)) ex = dt_emin(dtype);
    const double q = ldexp(1.0, ex - (dt_prec(dtype) - 1)); /* spacing of dtype around v */
    double r = nearbyint(v / q) * q;                         /* ties to even (default rounding mode) */
    if (fabs(r) > dt_max(dtype)) r = copysign(INFINITY, v);
    return r;
}

uint32_t oracle_encode(darn_dtype dtype, double v)
{
    if (dtype == DARN_F32) {
        if (isnan(v)) return 0x7FC00000u;
        const float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
    }
    const int mbits = dtype == DARN_F16 ? 10 : 7, ebits = dtype == DARN_F16 ? 5 : 8;
    const int bias = (1 << (ebits - 1)) - 1;
    if (isnan(v)) return dtype == DARN_F16 ? 0x7E00u : 0x7FC0u;
    const uint32_t sign = signbit(v) ? 0x8000u : 0u;
    if (isinf(v)) return sign | (((1u << ebits) - 1u) << mbits);
    const double a = fabs(v);
    if (a == 0.0) return sign;
    int e;
    (void)frexp(a, &e);
    const int ex = e - 1;
    if (ex < dt_emin(dtype)) return sign | (uint32_t)ldexp(a, -(dt_emin(dtype) - mbits));
    const uint32_t m = (uint32_t)(ldexp(a, -(ex - mbits)) - (double)(1u << mbits));
    return sign | ((uint32_t)(ex + bias) << mbits) | m;
}

double oracle_unit_roundoff(darn_dtype dtype) { return ldexp(1.0, -dt_prec(dtype)); }
double oracle_half_tiny(darn_dtype dtype) { return ldexp(1.0, dt_emin(dtype) - dt_prec(dtype)); }

double oracle_get(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c)
{
    return oracle_decode(dtype, sup_get_bits(buf, dtype, stride, r, c));
}

/* ---- shape facts used only to size error bounds (docs/numerics.md §5, §6) ------------------------ */
static double ilog2_ceil(int64_t v)
{
    double k = 0;
    for (int64_t p = 1; p < v; p *= 2) k += 1;
    return k;
}

/* Longest sequential chain of one row sum (§5): a group of 8, then the depth of the tree over the groups. */
static double k_row(int64_t n)
{
    const int64_t groups = (n + 7) / 8;
    return (double)(n < 8 ? n : 8) + ilog2_ceil(groups);
}

/* Same for the chunked dweight/dbias sum over m rows (§6): R rows in order, then the tree over G chunks. */
static double k_wgrad(int64_t m, int64_t n)
{
    if (m <= 0) return 0;
    int64_t rows = m * n / (INT64_C(1) << 21);
    if (rows < 1) rows = 1;
    const int64_t g = (m + rows - 1) / rows;
    return (double)rows + ilog2_ceil(g);
}

/* ---- problem ------------------------------------------------------------------------------------- */
static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p) {
        fprintf(stderr, "oracle: out of memory\n");
        abort();
    }
    return p;
}

static darn_dtype h_dtype_of(const darn_desc *d)
{
    if (d->flags & DARN_FLAG_RESIDUAL_IN_FP32) return DARN_F32;
    if (d->flags & DARN_FLAG_HAS_RESIDUAL) return d->residual_dtype;
    return d->x_dtype;
}

void oracle_load(oracle_problem *p, const darn_desc *d, const darn_fwd_tensors *t)
{
    memset(p, 0, sizeof *p);
    p->desc = *d;
    p->m = d->rows;
    p->n = d->cols;
    p->mutate_skip_col = -1;
    p->h_dtype = h_dtype_of(d);
    const int64_t m = p->m, n = p->n;
    const size_t mn = (size_t)(m * n);
    p->x = xcalloc(mn, sizeof(double));
    const int64_t sx = sup_stride(n, t->x_stride);
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) p->x[r * n + c] = oracle_get(t->x, d->x_dtype, sx, r, c);
    if (d->flags & DARN_FLAG_HAS_RESIDUAL) {
        p->residual = xcalloc(mn, sizeof(double));
        const int64_t sr = sup_stride(n, t->residual_stride);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++)
                p->residual[r * n + c] = oracle_get(t->residual, d->residual_dtype, sr, r, c);
    }
    if (d->flags & DARN_FLAG_HAS_ROWSCALE) {
        p->rowscale = xcalloc((size_t)m, sizeof(double));
        for (int64_t r = 0; r < m; r++) p->rowscale[r] = (double)t->rowscale[r];
    }
    p->weight = xcalloc((size_t)n, sizeof(double));
    for (int64_t c = 0; c < n; c++) p->weight[c] = oracle_get(t->weight, d->weight_dtype, n, 0, c);
    if (d->flags & DARN_FLAG_HAS_BIAS) {
        p->bias = xcalloc((size_t)n, sizeof(double));
        for (int64_t c = 0; c < n; c++) p->bias[c] = oracle_get(t->bias, d->bias_dtype, n, 0, c);
    }
    p->seed = d->rng_seed_ptr ? *d->rng_seed_ptr : d->seed;
    p->offset = d->rng_offset_ptr ? *d->rng_offset_ptr + d->offset : d->offset;
    /* threshold = floor(p * 2^32), 2^32 for p = 1; keep iff word >= threshold */
    const uint64_t threshold = (uint64_t)floor(ldexp(d->dropout_p, 32));
    p->drop_scale = d->dropout_p < 1.0 ? (double)(float)(1.0 / (1.0 - d->dropout_p)) : 0.0;
    p->keep = xcalloc(mn, 1);
    for (size_t i = 0; i < mn; i++) p->keep[i] = (uint64_t)darn_philox_word(p->seed, p->offset, i) >= threshold;
    /* parallel residual: x1 (x_dtype) with its own keep bits at element index i + 2^63 (darn.h), weight1
     * (weight_dtype) and bias1 (bias_dtype) */
    if (d->flags & DARN_FLAG_HAS_X1) {
        p->x1 = xcalloc(mn, sizeof(double));
        const int64_t s1 = sup_stride(n, t->x1_stride);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) p->x1[r * n + c] = oracle_get(t->x1, d->x_dtype, s1, r, c);
        p->keep1 = xcalloc(mn, 1);
        for (size_t i = 0; i < mn; i++)
            p->keep1[i] =
                (uint64_t)darn_philox_word(p->seed, p->offset, (uint64_t)i + (UINT64_C(1) << 63)) >= threshold;
    }
    if (d->flags & DARN_FLAG_HAS_WEIGHT1) {
        p->weight1 = xcalloc((size_t)n, sizeof(double));
        for (int64_t c = 0; c < n; c++) p->weight1[c] = oracle_get(t->weight1, d->weight_dtype, n, 0, c);
    }
    if (d->flags & DARN_FLAG_HAS_BIAS1) {
        p->bias1 = xcalloc((size_t)n, sizeof(double));
        for (int64_t c = 0; c < n; c++) p->bias1[c] = oracle_get(t->bias1, d->bias_dtype, n, 0, c);
    }
}

void oracle_free(oracle_problem *p)
{
    free(p->x);
    free(p->residual);
    free(p->rowscale);
    free(p->weight);
    free(p->bias);
    free(p->keep);
    free(p->x1);
    free(p->keep1);
    free(p->weight1);
    free(p->bias1);
    memset(p, 0, sizeof *p);
}

double oracle_wprime(const oracle_problem *p, int64_t c)
{
    return (p->desc.flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) ? 1.0 + p->weight[c] : p->weight[c];
}

double oracle_wprime1(const oracle_problem *p, int64_t c)
{
    const double w1 = p->mutate_parallel == ORACLE_MUT_W1_IS_W ? p->weight[c] : p->weight1[c];
    return (p->desc.flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) ? 1.0 + w1 : w1;
}

/* x1's keep bit of element i (x's under the ORACLE_MUT_X1_SAME_KEEP mutation). */
static int keep1_of(const oracle_problem *p, size_t i)
{
    return p->mutate_parallel == ORACLE_MUT_X1_SAME_KEEP ? p->keep[i] : p->keep1[i];
}

/* Single fp32 operations; the volatile store keeps any compiler from fusing or widening them. */
static float mul32(float a, float b)
{
    volatile float r = a * b;
    return r;
}
static float add32(float a, float b)
{
    volatile float r = a + b;
    return r;
}

static double form_h(const oracle_problem *p, oracle_h_mode mode, int64_t r, int64_t c)
{
    const size_t i = (size_t)(r * p->n + c);
    const int keep = p->keep[i];
    const int with_x1 = p->x1 != NULL && p->mutate_parallel != ORACLE_MUT_NO_X1;
    if (mode == ORACLE_H_EXACT) {
        double v = p->x[i];
        if (p->rowscale) v *= p->rowscale[r];
        v = keep ? v * p->drop_scale : 0.0;
        if (with_x1) v += keep1_of(p, i) ? p->x1[i] * p->drop_scale : 0.0;
        if (p->residual) v += p->residual[i];
        return v;
    }
    float v = (float)p->x[i];
    if (p->rowscale) v = mul32(v, (float)p->rowscale[r]);
    v = keep ? mul32(v, (float)p->drop_scale) : 0.0f;
    if (with_x1) { /* flash-attn's order: (x' + x1') + residual */
        const float u = keep1_of(p, i) ? mul32((float)p->x1[i], (float)p->drop_scale) : 0.0f;
        v = add32(v, u);
    }
    if (p->residual) v = add32(v, (float)p->residual[i]);
    return oracle_round(p->h_dtype, (double)v);
}

/* Row statistics of h in double, and the bound on the error of the contract's fp32 mean. */
typedef struct row_stats {
    double mean, rstd, dmean, rstd_err;
} row_stats;

static row_stats stats_of(const oracle_problem *p, const double *h)
{
    const int64_t n = p->n, skip = p->mutate_skip_col;
    const int layer = p->desc.norm == DARN_LAYERNORM;
    const double k = k_row(n);
    double s = 0, sa = 0;
    for (int64_t c = 0; c < n; c++) {
        if (c == skip) continue;
        s += h[c];
        sa += fabs(h[c]);
    }
    row_stats st;
    st.mean = layer ? s / (double)n : 0.0;
    double q = 0;
    for (int64_t c = 0; c < n; c++) {
        if (c == skip) continue;
        const double d = h[c] - st.mean;
        q += d * d;
    }
    st.rstd = 1.0 / sqrt(q / (double)n + (double)p->desc.eps);
    st.dmean = layer ? (k + 2) * U32 * sa / (double)n + U32 * fabs(st.mean) : 0.0;
    const double second = st.rstd * st.dmean;
    st.rstd_err = (k / 2 + 8) * U32 * st.rstd + st.rstd * second * second;
    return st;
}

/* Bound on the fp32 error of xhat given the exact xhat. */
static double xhat_err(const row_stats *st, double k, double xhat)
{
    return st->rstd * st->dmean + (k / 2 + 8) * U32 * fabs(xhat);
}

void oracle_fwd_alloc(oracle_fwd *f, int64_t m, int64_t n)
{
    const size_t mn = (size_t)(m * n);
    f->m = m;
    f->n = n;
    f->h = xcalloc(mn, sizeof(double));
    f->y = xcalloc(mn, sizeof(double));
    f->y_err = xcalloc(mn, sizeof(double));
    f->mean = xcalloc((size_t)m, sizeof(double));
    f->rstd = xcalloc((size_t)m, sizeof(double));
    f->mean_err = xcalloc((size_t)m, sizeof(double));
    f->rstd_err = xcalloc((size_t)m, sizeof(double));
    f->y1 = xcalloc(mn, sizeof(double));
    f->y1_err = xcalloc(mn, sizeof(double));
}

void oracle_fwd_free(oracle_fwd *f)
{
    free(f->h);
    free(f->y);
    free(f->y_err);
    free(f->mean);
    free(f->rstd);
    free(f->mean_err);
    free(f->rstd_err);
    free(f->y1);
    free(f->y1_err);
    memset(f, 0, sizeof *f);
}

void oracle_forward_rows(const oracle_problem *p, oracle_h_mode mode, int64_t r0, int64_t r1, oracle_fwd *f)
{
    const int64_t n = p->n;
    const double k = k_row(n);
    for (int64_t r = r0; r < r1; r++) {
        double *h = f->h + r * n;
        for (int64_t c = 0; c < n; c++) h[c] = form_h(p, mode, r, c);
        const row_stats st = stats_of(p, h);
        f->mean[r] = st.mean;
        f->rstd[r] = st.rstd;
        f->mean_err[r] = st.dmean;
        f->rstd_err[r] = st.rstd_err;
        for (int64_t c = 0; c < n; c++) {
            const size_t i = (size_t)(r * n + c);
            const double xh = (h[c] - st.mean) * st.rstd, wp = oracle_wprime(p, c);
            const double b = p->bias ? p->bias[c] : 0.0;
            f->y[i] = xh * wp + b;
            f->y_err[i] = fabs(wp) * xhat_err(&st, k, xh) + 3 * U32 * fabs(xh * wp) + U32 * fabs(b) +
                          U32 * fabs(f->y[i]);
            if (p->weight1 && f->y1) { /* the second output: the same xhat, its own weight and bias */
                const double wp1 = oracle_wprime1(p, c), b1 = p->bias1 ? p->bias1[c] : 0.0;
                f->y1[i] = xh * wp1 + b1;
                f->y1_err[i] = fabs(wp1) * xhat_err(&st, k, xh) + 3 * U32 * fabs(xh * wp1) + U32 * fabs(b1) +
                               U32 * fabs(f->y1[i]);
            }
        }
    }
}

void oracle_forward(const oracle_problem *p, oracle_h_mode mode, oracle_fwd *f)
{
    oracle_forward_rows(p, mode, 0, p->m, f);
}

double oracle_loss(const oracle_fwd *f, const double *gy, const double *gh, int64_t r0, int64_t r1)
{
    double l = 0;
    for (int64_t i = r0 * f->n; i < r1 * f->n; i++) {
        l += f->y[i] * gy[i];
        if (gh) l += f->h[i] * gh[i];
    }
    return l;
}

/* ---- backward ------------------------------------------------------------------------------------ */
void oracle_backward(const oracle_problem *p, const double *h, const double *dy, const double *dro,
                     oracle_bwd *b)
{
    oracle_backward_parallel(p, h, dy, NULL, dro, b);
}

/* One body for both: g = dy * w' [+ dy1 * w1'] in the row terms. The error terms that scaled with |g| scale
 * with ga = |dy * w'| + |dy1 * w1'| (the fp32 error of the sum of the two products is relative to the
 * products, not to a possibly cancelled g); without dy1, ga = |g| and the bounds are the single-output ones. */
void oracle_backward_parallel(const oracle_problem *p, const double *h, const double *dy, const double *dy1,
                              const double *dro, oracle_bwd *b)
{
    const int64_t m = p->m, n = p->n, skip = p->mutate_skip_col;
    const size_t mn = (size_t)(m * n);
    const int layer = p->desc.norm == DARN_LAYERNORM;
    const int has_y1 = p->weight1 != NULL && dy1 != NULL;
    const int g_y1 = has_y1 && p->mutate_parallel != ORACLE_MUT_NO_DY1; /* dy1 enters g */
    const int with_x1 = p->x1 != NULL && p->mutate_parallel != ORACLE_MUT_NO_X1;
    const double k = k_row(n), kw = k_wgrad(m, n);
    memset(b, 0, sizeof *b);
    b->m = m;
    b->n = n;
    b->dh = xcalloc(mn, sizeof(double));
    b->dx = xcalloc(mn, sizeof(double));
    b->dh_err = xcalloc(mn, sizeof(double));
    b->dx_err = xcalloc(mn, sizeof(double));
    b->dweight = xcalloc((size_t)n, sizeof(double));
    b->dbias = xcalloc((size_t)n, sizeof(double));
    b->dw_err = xcalloc((size_t)n, sizeof(double));
    b->db_err = xcalloc((size_t)n, sizeof(double));
    if (p->x1) {
        b->dx1 = xcalloc(mn, sizeof(double));
        b->dx1_err = xcalloc(mn, sizeof(double));
    }
    if (has_y1) {
        b->dweight1 = xcalloc((size_t)n, sizeof(double));
        b->dw1_err = xcalloc((size_t)n, sizeof(double));
        if (p->bias1) {
            b->dbias1 = xcalloc((size_t)n, sizeof(double));
            b->db1_err = xcalloc((size_t)n, sizeof(double));
        }
    }
    double *dw_abs = xcalloc((size_t)n, sizeof(double)), *dw_x = xcalloc((size_t)n, sizeof(double));
    double *db_abs = xcalloc((size_t)n, sizeof(double));
    double *dw1_abs = xcalloc((size_t)n, sizeof(double)), *dw1_x = xcalloc((size_t)n, sizeof(double));
    double *db1_abs = xcalloc((size_t)n, sizeof(double));
    double *xh = xcalloc((size_t)n, sizeof(double)), *g = xcalloc((size_t)n, sizeof(double));
    double *ga = xcalloc((size_t)n, sizeof(double)), *xe = xcalloc((size_t)n, sizeof(double));

    for (int64_t r = 0; r < m; r++) {
        const double *hr = h + r * n, *gy = dy + r * n, *gy1 = has_y1 ? dy1 + r * n : NULL;
        const row_stats st = stats_of(p, hr);
        double c1 = 0, c1a = 0, c2 = 0, c2a = 0, gx = 0;
        for (int64_t c = 0; c < n; c++) {
            xh[c] = (hr[c] - st.mean) * st.rstd;
            const double g0 = gy[c] * oracle_wprime(p, c), g1 = g_y1 ? gy1[c] * oracle_wprime1(p, c) : 0.0;
            g[c] = g0 + g1;
            ga[c] = fabs(g0) + fabs(g1);
            xe[c] = xhat_err(&st, k, xh[c]);
            if (c == skip) continue;
            c1 += xh[c] * g[c];
            c1a += fabs(xh[c]) * ga[c];
            c2 += g[c];
            c2a += ga[c];
            gx += ga[c] * xe[c];
        }
        c1 /= (double)n;
        c2 = layer ? c2 / (double)n : 0.0;
        const double dc1 = (k + 5) * U32 * c1a / (double)n + gx / (double)n;
        const double dc2 = layer ? (k + 4) * U32 * c2a / (double)n : 0.0;
        const double rs = p->rowscale ? p->rowscale[r] : 1.0;
        for (int64_t c = 0; c < n; c++) {
            const size_t i = (size_t)(r * n + c);
            const double dhn = (g[c] - xh[c] * c1 - c2) * st.rstd;
            double err = st.rstd * (5 * U32 * ga[c] + fabs(c1) * xe[c] + fabs(xh[c]) * dc1 + dc2 +
                                    3 * U32 * (fabs(xh[c] * c1) + fabs(c2))) +
                         (k / 2 + 10) * U32 * fabs(dhn);
            double dh = dhn;
            if (dro) {
                dh += dro[i];
                err += U32 * fabs(dh);
            }
            b->dh[i] = dh;
            b->dh_err[i] = err;
            const double sc = p->keep[i] ? p->drop_scale * rs : 0.0;
            b->dx[i] = dh * sc;
            b->dx_err[i] = fabs(sc) * err + 2 * U32 * fabs(b->dx[i]);
            if (b->dx1) { /* dx1 = keep1 * dh * s: x1 is not rowscaled */
                const double sc1 = with_x1 && keep1_of(p, i) ? p->drop_scale : 0.0;
                b->dx1[i] = dh * sc1;
                b->dx1_err[i] = sc1 * err + U32 * fabs(b->dx1[i]);
            }
            b->dweight[c] += gy[c] * xh[c];
            dw_abs[c] += fabs(gy[c] * xh[c]);
            dw_x[c] += fabs(gy[c]) * xe[c];
            b->dbias[c] += gy[c];
            db_abs[c] += fabs(gy[c]);
            if (has_y1) {
                b->dweight1[c] += gy1[c] * xh[c];
                dw1_abs[c] += fabs(gy1[c] * xh[c]);
                dw1_x[c] += fabs(gy1[c]) * xe[c];
                if (b->dbias1) b->dbias1[c] += gy1[c];
                db1_abs[c] += fabs(gy1[c]);
            }
        }
    }
    for (int64_t c = 0; c < n; c++) {
        b->dw_err[c] = (kw + 1) * U32 * dw_abs[c] + dw_x[c];
        b->db_err[c] = kw * U32 * db_abs[c];
        if (b->dw1_err) b->dw1_err[c] = (kw + 1) * U32 * dw1_abs[c] + dw1_x[c];
        if (b->db1_err) b->db1_err[c] = kw * U32 * db1_abs[c];
    }
    free(dw_abs);
    free(dw_x);
    free(db_abs);
    free(dw1_abs);
    free(dw1_x);
    free(db1_abs);
    free(xh);
    free(g);
    free(ga);
    free(xe);
}

void oracle_bwd_free(oracle_bwd *b)
{
    free(b->dh);
    free(b->dx);
    free(b->dweight);
    free(b->dbias);
    free(b->dh_err);
    free(b->dx_err);
    free(b->dw_err);
    free(b->db_err);
    free(b->dx1);
    free(b->dx1_err);
    free(b->dweight1);
    free(b->dw1_err);
    free(b->dbias1);
    free(b->db1_err);
    memset(b, 0, sizeof *b);
}

/* ---- reports ------------------------------------------------------------------------------------- */
void oracle_report_init(oracle_report *rep, const char *what)
{
    memset(rep, 0, sizeof *rep);
    rep->what = what;
    rep->worst = -1.0;
    rep->worst_r = rep->worst_c = -1;
}

static void report_note(oracle_report *rep, double ratio, double got, double ref, double tol, int64_t r,
                        int64_t c)
{
    rep->count++;
    if (!(ratio <= 1.0)) rep->bad++;
    if (!(ratio <= rep->worst)) { /* NaN ratios (never produced) would also be recorded */
        rep->worst = ratio;
        rep->worst_got = got;
        rep->worst_ref = ref;
        rep->worst_tol = tol;
        rep->worst_r = r;
        rep->worst_c = c;
    }
}

void oracle_report_add(oracle_report *rep, double got, double ref, double tol, int64_t r, int64_t c)
{
    double ratio;
    if (isnan(ref) || isnan(got)) ratio = (isnan(ref) && isnan(got)) ? 0.0 : INFINITY;
    else if (isinf(ref) || isinf(got)) ratio = got == ref ? 0.0 : INFINITY;
    else {
        const double err = fabs(got - ref);
        ratio = err == 0.0 ? 0.0 : (tol > 0.0 ? err / tol : INFINITY);
    }
    report_note(rep, ratio, got, ref, tol, r, c);
}

void oracle_report_exact(oracle_report *rep, uint32_t got_bits, uint32_t ref_bits, double got, double ref,
                         int64_t r, int64_t c)
{
    report_note(rep, got_bits == ref_bits ? 0.0 : INFINITY, got, ref, 0.0, r, c);
}

void oracle_report_format(const oracle_report *rep, char *buf, size_t size)
{
    const size_t used = strlen(buf);
    if (used >= size) return;
    if (rep->count == 0) {
        snprintf(buf + used, size - used, "  %s: not checked\n", rep->what);
        return;
    }
    snprintf(buf + used, size - used,
             "  %s: %lld/%lld over bound; worst err/bound %.3g at (r=%lld, c=%lld): got %.9g ref %.9g "
             "|err| %.3g bound %.3g\n",
             rep->what, (long long)rep->bad, (long long)rep->count, rep->worst, (long long)rep->worst_r,
             (long long)rep->worst_c, rep->worst_got, rep->worst_ref, fabs(rep->worst_got - rep->worst_ref),
             rep->worst_tol);
}

/* ---- harness --------------------------------------------------------------------------------------- */
enum {
    REP_Y = ORACLE_REP_Y, REP_RESOUT = ORACLE_REP_RESOUT, REP_MASK = ORACLE_REP_MASK, REP_RSTD = ORACLE_REP_RSTD,
    REP_MEAN = ORACLE_REP_MEAN, REP_DX = ORACLE_REP_DX, REP_DRES = ORACLE_REP_DRES, REP_DW = ORACLE_REP_DW,
    REP_DB = ORACLE_REP_DB, REP_GUARD = ORACLE_REP_GUARD
};
enum {
    REP_Y1 = ORACLE_REP_Y1, REP_MASK1 = ORACLE_REP_MASK1, REP_DX1 = ORACLE_REP_DX1, REP_DW1 = ORACLE_REP_DW1,
    REP_DB1 = ORACLE_REP_DB1
};
static const char *const rep_names[ORACLE_NREP] = {"y",  "residual_out", "mask",    "rstd",  "mean",
                                                   "dx", "dresidual",    "dweight", "dbias", "guards",
                                                   "y1", "mask1",        "dx1",     "dweight1", "dbias1"};

#define GUARD_BYTES 64

/* A buffer with sentinel guard bytes before and after its span. */
typedef struct gbuf {
    unsigned char *base;
    size_t front, bytes;
    void *p;
} gbuf;

static void *gbuf_alloc(gbuf *g, size_t bytes, size_t front_extra)
{
    g->front = GUARD_BYTES + front_extra;
    g->bytes = bytes;
    g->base = sup_alloc(g->front + bytes + GUARD_BYTES, 64);
    g->p = g->base + g->front;
    return g->p;
}

static void gbuf_free(gbuf *g)
{
    if (g->base) sup_free(g->base);
    memset(g, 0, sizeof *g);
}

static void guard_note(oracle_result *res, const char *what, const char *where, int64_t byte)
{
    const size_t used = strlen(res->guard_msg);
    if (used + 1 < sizeof res->guard_msg)
        snprintf(res->guard_msg + used, sizeof res->guard_msg - used, "  %s: %s written (byte %lld of it)\n", what,
                 where, (long long)byte);
}

/* Checks the guards and, for a strided [m, n] tensor of element size es (stride > n), the row gaps. */
static void gbuf_check(const gbuf *g, oracle_result *res, const char *what, int64_t m, int64_t n, int64_t stride,
                       size_t es)
{
    if (!g->base) return;
    oracle_report *rep = &res->rep[ORACLE_REP_GUARD];
    const int64_t front = sup_first_touched(g->base, g->front);
    oracle_report_exact(rep, front < 0 ? 0u : 1u, 0u, (double)front, -1.0, -1, -1);
    if (front >= 0) guard_note(res, what, "guard before the buffer", front);
    const int64_t back = sup_first_touched((unsigned char *)g->p + g->bytes, GUARD_BYTES);
    oracle_report_exact(rep, back < 0 ? 0u : 1u, 0u, (double)back, -1.0, -1, -1);
    if (back >= 0) guard_note(res, what, "guard after the last row", back);
    if (stride > n)
        for (int64_t r = 0; r + 1 < m; r++) {
            const unsigned char *gap = (const unsigned char *)g->p + (size_t)(r * stride + n) * es;
            const int64_t t = sup_first_touched(gap, (size_t)(stride - n) * es);
            oracle_report_exact(rep, t < 0 ? 0u : 1u, 0u, (double)t, -1.0, r, -1);
            if (t >= 0) {
                char where[64];
                snprintf(where, sizeof where, "stride gap after row %lld", (long long)r);
                guard_note(res, what, where, t);
            }
        }
}

static const char *dt_name(darn_dtype d) { return d == DARN_F32 ? "f32" : d == DARN_F16 ? "f16" : "bf16"; }

void oracle_case_describe(const oracle_case *c, char *buf, size_t size)
{
    const darn_desc *d = &c->desc;
    snprintf(buf, size,
             "%s M=%lld N=%lld x=%s res=%s w=%s b=%s out=%s flags=%s%s%s%s%s%s%s%s eps=%g p=%g seed=%llu off=%llu "
             "pad=%lld pad1=%lld data=%s%s%s%s%s%s",
             d->norm == DARN_LAYERNORM ? "LN" : "RMS", (long long)d->rows, (long long)d->cols, dt_name(d->x_dtype),
             dt_name(d->residual_dtype), dt_name(d->weight_dtype), dt_name(d->bias_dtype), dt_name(d->out_dtype),
             (d->flags & DARN_FLAG_HAS_RESIDUAL) ? "R" : "-", (d->flags & DARN_FLAG_HAS_BIAS) ? "B" : "-",
             (d->flags & DARN_FLAG_HAS_ROWSCALE) ? "S" : "-", (d->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) ? "Z" : "-",
             (d->flags & DARN_FLAG_RESIDUAL_IN_FP32) ? "F" : "-", (d->flags & DARN_FLAG_HAS_X1) ? "X" : "-",
             (d->flags & DARN_FLAG_HAS_WEIGHT1) ? "W" : "-", (d->flags & DARN_FLAG_HAS_BIAS1) ? "b" : "-",
             (double)d->eps, d->dropout_p, (unsigned long long)d->seed, (unsigned long long)d->offset,
             (long long)c->pad, (long long)c->pad1, c->data == ORACLE_DATA_SPIKES ? "spikes" : "uniform",
             c->backward ? " +bwd" : "", c->bwd_dresidual_out ? " dro" : "", c->bwd_regen_mask ? " regen" : "",
             c->bwd_regen_mask1 ? " regen1" : "", c->bwd_h_is_x ? " h=x" : "");
}

static double unif(sup_rng *g, double lo, double hi) { return lo + (hi - lo) * sup_rng_unit(g); }

/* Fills an [m, n] typed tensor. UNIFORM: values in [lo, hi). SPIKES: noise in +-1e-3 * hi plus spikes of
 * magnitude (1..3) * hi at the row's tail, at group and tree-half boundaries and at random columns, different
 * per row (so a reduction that drops any of those columns is off by a large fraction). */
static void fill_matrix(void *buf, darn_dtype dt, int64_t m, int64_t n, int64_t stride, sup_rng *g,
                        oracle_data data, double lo, double hi)
{
    const int64_t s = sup_stride(n, stride);
    if (data == ORACLE_DATA_UNIFORM) {
        sup_fill_uniform(buf, dt, m, n, stride, g, (float)lo, (float)hi);
        return;
    }
    int64_t half = 1; /* the first column of the row tree's right half (§5): 8 * 2^(ceil(log2 groups) - 1) */
    while (2 * half < (n + 7) / 8) half *= 2;
    const int64_t l8 = 8 * half;
    for (int64_t r = 0; r < m; r++) {
        for (int64_t c = 0; c < n; c++) sup_set(buf, dt, s, r, c, (float)(hi * unif(g, -1e-3, 1e-3)));
        const int64_t pos[] = {n - 1 - r,    r,          n - 8 + r,   l8 - 1 + r,   l8 + r,
                               2 * l8 - 1,   n / 2 + r,  7 + 8 * r,   8 + 8 * r,    n - 9 - r,
                               (int64_t)(sup_rng_u64(g) % (uint64_t)n), (int64_t)(sup_rng_u64(g) % (uint64_t)n)};
        for (size_t j = 0; j < sizeof pos / sizeof pos[0]; j++) {
            if (pos[j] < 0 || pos[j] >= n) continue;
            const double mag = hi * unif(g, 1.0, 3.0) * (sup_rng_u64(g) & 1 ? 1.0 : -1.0);
            sup_set(buf, dt, s, r, pos[j], (float)mag);
        }
    }
}

static size_t mask_row_bytes(int64_t n) { return (size_t)(4 * ((n + 31) / 32)); }

static void result_finish(oracle_result *res, const oracle_case *c)
{
    res->ok = 1;
    res->msg[0] = '\0';
    for (int i = 0; i < res->nrep; i++)
        if (res->rep[i].bad > 0) res->ok = 0;
    if (res->ok) return;
    oracle_case_describe(c, res->msg, sizeof res->msg);
    size_t used = strlen(res->msg);
    if (used + 1 < sizeof res->msg) snprintf(res->msg + used, sizeof res->msg - used, "\n%s", res->guard_msg);
    for (int i = 0; i < res->nrep; i++)
        if (res->rep[i].count > 0 && i != REP_GUARD) oracle_report_format(&res->rep[i], res->msg, sizeof res->msg);
}

static void fail_status(oracle_result *res, const oracle_case *c, const char *fn, darn_status st)
{
    res->ok = 0;
    char d[512];
    oracle_case_describe(c, d, sizeof d);
    snprintf(res->msg, sizeof res->msg, "%s\n  %s returned %d (%s): %s\n", d, fn, (int)st, darn_status_string(st),
             darn_last_error());
}

/* Fingerprint of an input's bytes (FNV-1a, 64-bit), to prove darn did not write its inputs without
 * keeping a copy of multi-megabyte tensors. */
typedef struct snap {
    const void *p;
    size_t bytes;
    uint64_t hash;
} snap;

static uint64_t fnv1a(const void *p, size_t bytes)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < bytes; i++) h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void snap_take(snap *s, const void *p, size_t bytes)
{
    s->p = p;
    s->bytes = bytes;
    s->hash = p ? fnv1a(p, bytes) : 0;
}

static void snap_check(const snap *s, oracle_result *res, const char *what)
{
    if (!s->p) return;
    const int same = fnv1a(s->p, s->bytes) == s->hash;
    oracle_report_exact(&res->rep[ORACLE_REP_GUARD], same ? 0u : 1u, 0u, 0.0, 0.0, -1, -1);
    if (!same) guard_note(res, what, "input (read-only)", 0);
}

static void apply_mutation(oracle_problem *p, oracle_mutation mut)
{
    switch (mut) {
    case ORACLE_MUT_NONE: break;
    case ORACLE_MUT_SKIP_LAST_COL: p->mutate_skip_col = p->n - 1; break;
    case ORACLE_MUT_NO_EPS: p->desc.eps = 0.0f; break;
    case ORACLE_MUT_SWAP_NORM:
        p->desc.norm = p->desc.norm == DARN_LAYERNORM ? DARN_RMSNORM : DARN_LAYERNORM;
        break;
    case ORACLE_MUT_NO_DROP_SCALE: p->drop_scale = 1.0; break;
    case ORACLE_MUT_NOT_CENTERED: p->desc.flags &= ~DARN_FLAG_ZERO_CENTERED_WEIGHT; break;
    case ORACLE_MUT_NO_X1:
    case ORACLE_MUT_X1_SAME_KEEP:
    case ORACLE_MUT_W1_IS_W:
    case ORACLE_MUT_NO_DY1: p->mutate_parallel = (int)mut; break;
    }
}

void oracle_run_case(const oracle_case *cs, oracle_result *res)
{
    memset(res, 0, sizeof *res);
    res->nrep = ORACLE_NREP;
    for (int i = 0; i < ORACLE_NREP; i++) oracle_report_init(&res->rep[i], rep_names[i]);
    const darn_desc *d = &cs->desc;
    const int64_t m = d->rows, n = d->cols;
    const int64_t stride = cs->pad > 0 ? n + cs->pad : 0, s = sup_stride(n, stride);
    const int layer = d->norm == DARN_LAYERNORM, has_res = (d->flags & DARN_FLAG_HAS_RESIDUAL) != 0;
    const int has_bias = (d->flags & DARN_FLAG_HAS_BIAS) != 0, has_rs = (d->flags & DARN_FLAG_HAS_ROWSCALE) != 0;
    const int zc = (d->flags & DARN_FLAG_ZERO_CENTERED_WEIGHT) != 0;
    const darn_dtype hd = h_dtype_of(d);
    const size_t odd = (size_t)(cs->pad % 2); /* odd pads also shift pointers off 16-byte alignment */
    /* parallel residual: x1, out1, dy1 and dx1 take their own stride when pad1 is set */
    const int has_x1 = (d->flags & DARN_FLAG_HAS_X1) != 0, has_w1 = (d->flags & DARN_FLAG_HAS_WEIGHT1) != 0;
    const int has_b1 = (d->flags & DARN_FLAG_HAS_BIAS1) != 0;
    const int64_t stride1 = cs->pad1 > 0 ? n + cs->pad1 : stride, s1 = sup_stride(n, stride1);
    const size_t odd1 = (size_t)((cs->pad1 > 0 ? cs->pad1 : cs->pad) % 2);
    sup_rng g = sup_rng_make(cs->data_seed);
    oracle_problem p;
    oracle_fwd f;
    memset(&p, 0, sizeof p);
    memset(&f, 0, sizeof f);

    /* ---- inputs ---- */
    gbuf bx = {0}, bres = {0}, bw = {0}, bb = {0}, brs = {0};
    gbuf bout = {0}, bro = {0}, bmask = {0}, brstd = {0}, bmean = {0};
    gbuf bx1 = {0}, bw1 = {0}, bb1 = {0}, bout1 = {0}, bmask1 = {0};
    void *x = gbuf_alloc(&bx, sup_tensor_bytes(d->x_dtype, m, n, s), odd * dt_size(d->x_dtype));
    const double amp = cs->amp > 0.0 ? cs->amp : 1.0;
    fill_matrix(x, d->x_dtype, m, n, s, &g, cs->data, -1.0 * amp, 2.0 * amp);
    void *resid = NULL;
    if (has_res) {
        resid = gbuf_alloc(&bres, sup_tensor_bytes(d->residual_dtype, m, n, s), 0);
        fill_matrix(resid, d->residual_dtype, m, n, s, &g, cs->data == ORACLE_DATA_SPIKES ? ORACLE_DATA_SPIKES
                                                                                               : ORACLE_DATA_UNIFORM,
                    -1.0 * amp, 1.0 * amp);
    }
    void *w = gbuf_alloc(&bw, (size_t)n * dt_size(d->weight_dtype), 0);
    sup_fill_uniform(w, d->weight_dtype, 1, n, n, &g, zc ? -0.5f : -1.5f, zc ? 0.5f : 1.5f);
    void *bias = NULL;
    if (has_bias) {
        bias = gbuf_alloc(&bb, (size_t)n * dt_size(d->bias_dtype), 0);
        sup_fill_uniform(bias, d->bias_dtype, 1, n, n, &g, -1.0f, 1.0f);
    }
    float *rs = NULL;
    if (has_rs) {
        rs = gbuf_alloc(&brs, (size_t)m * 4, 0);
        sup_fill_f32(rs, m, &g, 0.5f, 2.0f);
    }
    /* x1 like x, weight1 like weight, bias1 like bias (drawn after them: cases without the flags keep their data) */
    void *x1 = NULL, *w1 = NULL, *bias1 = NULL;
    if (has_x1) {
        x1 = gbuf_alloc(&bx1, sup_tensor_bytes(d->x_dtype, m, n, s1), odd1 * dt_size(d->x_dtype));
        fill_matrix(x1, d->x_dtype, m, n, s1, &g, cs->data, -1.0 * amp, 2.0 * amp);
    }
    if (has_w1) {
        w1 = gbuf_alloc(&bw1, (size_t)n * dt_size(d->weight_dtype), 0);
        sup_fill_uniform(w1, d->weight_dtype, 1, n, n, &g, zc ? -0.5f : -1.5f, zc ? 0.5f : 1.5f);
    }
    if (has_b1) {
        bias1 = gbuf_alloc(&bb1, (size_t)n * dt_size(d->bias_dtype), 0);
        sup_fill_uniform(bias1, d->bias_dtype, 1, n, n, &g, -1.0f, 1.0f);
    }

    /* ---- forward ---- */
    const int want_all = !cs->skip_optional || cs->backward;
    darn_fwd_tensors t = {0};
    t.x = x;
    t.x_stride = stride;
    t.residual = resid;
    t.residual_stride = stride;
    t.rowscale = rs;
    t.weight = w;
    t.bias = bias;
    t.out = gbuf_alloc(&bout, sup_tensor_bytes(d->out_dtype, m, n, s), odd * dt_size(d->out_dtype));
    t.out_stride = stride;
    if (want_all) {
        t.residual_out = gbuf_alloc(&bro, sup_tensor_bytes(hd, m, n, s), 0);
        t.residual_out_stride = stride;
        t.mask = gbuf_alloc(&bmask, (size_t)m * mask_row_bytes(n), 0);
        t.rstd = gbuf_alloc(&brstd, (size_t)m * 4, 0);
        if (layer) t.mean = gbuf_alloc(&bmean, (size_t)m * 4, 0);
        if (has_x1) t.mask1 = gbuf_alloc(&bmask1, (size_t)m * mask_row_bytes(n), 0);
    }
    t.x1 = x1;
    t.x1_stride = stride1;
    t.weight1 = w1;
    t.bias1 = bias1;
    if (has_w1) {
        t.out1 = gbuf_alloc(&bout1, sup_tensor_bytes(d->out_dtype, m, n, s1), odd1 * dt_size(d->out_dtype));
        t.out1_stride = stride1;
    }
    snap sn_in[8];
    snap_take(&sn_in[0], x, bx.bytes);
    snap_take(&sn_in[1], resid, bres.bytes);
    snap_take(&sn_in[2], w, bw.bytes);
    snap_take(&sn_in[3], bias, bb.bytes);
    snap_take(&sn_in[4], rs, brs.bytes);
    snap_take(&sn_in[5], x1, bx1.bytes);
    snap_take(&sn_in[6], w1, bw1.bytes);
    snap_take(&sn_in[7], bias1, bb1.bytes);

    size_t wsb = 0;
    darn_status st = darn_fwd_workspace_size(d, DARN_BACKEND_CPU, &wsb);
    void *ws = NULL;
    if (st == DARN_OK) {
        ws = wsb ? sup_alloc(wsb, 64) : NULL;
        st = darn_fwd(d, &t, ws, wsb, DARN_BACKEND_CPU, NULL);
    }
    if (st != DARN_OK) {
        fail_status(res, cs, "darn_fwd", st);
        goto out_fwd;
    }

    oracle_load(&p, d, &t);
    oracle_problem pb = p; /* the backward's view: shares the arrays, may carry its own mutation */
    apply_mutation(cs->mutate_backward_only ? &pb : &p, cs->mutation);
    if (!cs->mutate_backward_only) pb = p;
    oracle_fwd_alloc(&f, m, n);
    oracle_forward(&p, ORACLE_H_CONTRACT, &f);

    const double uo = oracle_unit_roundoff(d->out_dtype), to = oracle_half_tiny(d->out_dtype);
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            const size_t i = (size_t)(r * n + c);
            const double got = oracle_get(t.out, d->out_dtype, s, r, c);
            oracle_report_add(&res->rep[REP_Y], got, f.y[i], f.y_err[i] * (1 + uo) + uo * fabs(f.y[i]) + to, r, c);
            if (t.residual_out)
                oracle_report_exact(&res->rep[REP_RESOUT], sup_get_bits(t.residual_out, hd, s, r, c),
                                    oracle_encode(hd, f.h[i]), oracle_get(t.residual_out, hd, s, r, c), f.h[i], r, c);
        }
    if (t.out1)
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) {
                const size_t i = (size_t)(r * n + c);
                const double got = oracle_get(t.out1, d->out_dtype, s1, r, c);
                oracle_report_add(&res->rep[REP_Y1], got, f.y1[i], f.y1_err[i] * (1 + uo) + uo * fabs(f.y1[i]) + to,
                                  r, c);
            }
    if (t.mask1) { /* x1's keep bits: the Philox word of index r*N + c + 2^63 (oracle_load), pad bits 0 */
        const size_t rb = mask_row_bytes(n);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < (int64_t)rb * 8; c++) {
                const uint32_t bit = (t.mask1[(size_t)r * rb + (size_t)c / 8] >> (c % 8)) & 1u;
                const uint32_t want = c < n ? (uint32_t)keep1_of(&p, (size_t)(r * n + c)) : 0u;
                oracle_report_exact(&res->rep[REP_MASK1], bit, want, bit, want, r, c);
            }
    }
    if (t.mask) {
        const size_t rb = mask_row_bytes(n);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < (int64_t)rb * 8; c++) {
                const uint32_t bit = (t.mask[(size_t)r * rb + (size_t)c / 8] >> (c % 8)) & 1u;
                const uint32_t want = c < n ? p.keep[r * n + c] : 0u;
                oracle_report_exact(&res->rep[REP_MASK], bit, want, bit, want, r, c);
            }
    }
    for (int64_t r = 0; r < m; r++) {
        if (t.rstd) oracle_report_add(&res->rep[REP_RSTD], t.rstd[r], f.rstd[r], f.rstd_err[r], r, -1);
        if (t.mean) oracle_report_add(&res->rep[REP_MEAN], t.mean[r], f.mean[r], f.mean_err[r], r, -1);
    }
    gbuf_check(&bout, res, "out", m, n, s, dt_size(d->out_dtype));
    gbuf_check(&bro, res, "residual_out", m, n, s, dt_size(hd));
    gbuf_check(&bmask, res, "mask", 1, 0, 0, 1);
    gbuf_check(&brstd, res, "rstd", 1, 0, 0, 4);
    gbuf_check(&bmean, res, "mean", 1, 0, 0, 4);
    gbuf_check(&bout1, res, "out1", m, n, s1, dt_size(d->out_dtype));
    gbuf_check(&bmask1, res, "mask1", 1, 0, 0, 1);

    if (cs->backward) {
        gbuf bdy = {0}, bdro = {0}, bdx = {0}, bdres = {0}, bdw = {0}, bdb = {0};
        gbuf bdy1 = {0}, bdx1 = {0}, bdw1 = {0}, bdb1 = {0};
        void *dy = gbuf_alloc(&bdy, sup_tensor_bytes(d->out_dtype, m, n, s), 0);
        fill_matrix(dy, d->out_dtype, m, n, s, &g, cs->data, -1.0, 1.0);
        void *dro = NULL;
        if (cs->bwd_dresidual_out) {
            dro = gbuf_alloc(&bdro, sup_tensor_bytes(hd, m, n, s), 0);
            fill_matrix(dro, hd, m, n, s, &g, ORACLE_DATA_UNIFORM, -0.5, 0.5);
        }
        void *dy1 = NULL;
        if (has_w1) {
            dy1 = gbuf_alloc(&bdy1, sup_tensor_bytes(d->out_dtype, m, n, s1), 0);
            fill_matrix(dy1, d->out_dtype, m, n, s1, &g, cs->data, -1.0, 1.0);
        }
        darn_bwd_tensors tb = {0};
        tb.dy = dy;
        tb.dy_stride = stride;
        if (cs->bwd_h_is_x) {
            tb.h = x;
            tb.h_stride = stride;
        } else {
            tb.h = t.residual_out;
            tb.h_stride = stride;
        }
        tb.weight = w;
        tb.rstd = t.rstd;
        tb.mean = t.mean;
        tb.rowscale = rs;
        tb.dresidual_out = dro;
        tb.dresidual_out_stride = stride;
        tb.mask = cs->bwd_regen_mask ? NULL : t.mask;
        tb.dx = gbuf_alloc(&bdx, sup_tensor_bytes(d->x_dtype, m, n, s), odd * dt_size(d->x_dtype));
        tb.dx_stride = stride;
        if (has_res) {
            tb.dresidual = gbuf_alloc(&bdres, sup_tensor_bytes(d->residual_dtype, m, n, s), 0);
            tb.dresidual_stride = stride;
        }
        tb.dweight = gbuf_alloc(&bdw, (size_t)n * dt_size(d->weight_dtype), 0);
        if (has_bias) tb.dbias = gbuf_alloc(&bdb, (size_t)n * dt_size(d->bias_dtype), 0);
        tb.dy1 = dy1;
        tb.dy1_stride = stride1;
        tb.weight1 = w1;
        tb.mask1 = cs->bwd_regen_mask1 ? NULL : t.mask1;
        if (has_x1) {
            tb.dx1 = gbuf_alloc(&bdx1, sup_tensor_bytes(d->x_dtype, m, n, s1), odd1 * dt_size(d->x_dtype));
            tb.dx1_stride = stride1;
        }
        if (has_w1) tb.dweight1 = gbuf_alloc(&bdw1, (size_t)n * dt_size(d->weight_dtype), 0);
        if (has_b1) tb.dbias1 = gbuf_alloc(&bdb1, (size_t)n * dt_size(d->bias_dtype), 0);
        snap sn_b[8];
        snap_take(&sn_b[0], dy, bdy.bytes);
        snap_take(&sn_b[1], dro, bdro.bytes);
        snap_take(&sn_b[2], tb.h, sup_tensor_bytes(hd, m, n, s));
        snap_take(&sn_b[3], tb.rstd, (size_t)m * 4);
        snap_take(&sn_b[4], tb.mean, (size_t)m * 4);
        snap_take(&sn_b[5], tb.mask, (size_t)m * mask_row_bytes(n));
        snap_take(&sn_b[6], dy1, bdy1.bytes);
        snap_take(&sn_b[7], tb.mask1, (size_t)m * mask_row_bytes(n));

        size_t wsb2 = 0;
        st = darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &wsb2);
        void *ws2 = NULL;
        if (st == DARN_OK) {
            ws2 = wsb2 ? sup_alloc(wsb2, 64) : NULL;
            st = darn_bwd(d, &tb, ws2, wsb2, DARN_BACKEND_CPU, NULL);
        }
        if (st != DARN_OK) {
            fail_status(res, cs, "darn_bwd", st);
        } else {
            const size_t mn = (size_t)(m * n);
            double *hh = xcalloc(mn, sizeof(double)), *gy = xcalloc(mn, sizeof(double));
            double *gro = dro ? xcalloc(mn, sizeof(double)) : NULL;
            double *gy1 = dy1 ? xcalloc(mn, sizeof(double)) : NULL;
            for (int64_t r = 0; r < m; r++)
                for (int64_t c = 0; c < n; c++) {
                    hh[r * n + c] = oracle_get(tb.h, cs->bwd_h_is_x ? d->x_dtype : hd, s, r, c);
                    gy[r * n + c] = oracle_get(dy, d->out_dtype, s, r, c);
                    if (gro) gro[r * n + c] = oracle_get(dro, hd, s, r, c);
                    if (gy1) gy1[r * n + c] = oracle_get(dy1, d->out_dtype, s1, r, c);
                }
            oracle_bwd ob;
            oracle_backward_parallel(&pb, hh, gy, gy1, gro, &ob);
            const double ux = oracle_unit_roundoff(d->x_dtype), tx = oracle_half_tiny(d->x_dtype);
            const double ur = oracle_unit_roundoff(d->residual_dtype), tr = oracle_half_tiny(d->residual_dtype);
            for (int64_t r = 0; r < m; r++)
                for (int64_t c = 0; c < n; c++) {
                    const size_t i = (size_t)(r * n + c);
                    oracle_report_add(&res->rep[REP_DX], oracle_get(tb.dx, d->x_dtype, s, r, c), ob.dx[i],
                                      ob.dx_err[i] * (1 + ux) + ux * fabs(ob.dx[i]) + tx, r, c);
                    if (tb.dresidual)
                        oracle_report_add(&res->rep[REP_DRES], oracle_get(tb.dresidual, d->residual_dtype, s, r, c),
                                          ob.dh[i], ob.dh_err[i] * (1 + ur) + ur * fabs(ob.dh[i]) + tr, r, c);
                    if (tb.dx1)
                        oracle_report_add(&res->rep[REP_DX1], oracle_get(tb.dx1, d->x_dtype, s1, r, c), ob.dx1[i],
                                          ob.dx1_err[i] * (1 + ux) + ux * fabs(ob.dx1[i]) + tx, r, c);
                }
            const double uw = oracle_unit_roundoff(d->weight_dtype), tw = oracle_half_tiny(d->weight_dtype);
            const double ub = oracle_unit_roundoff(d->bias_dtype), tbi = oracle_half_tiny(d->bias_dtype);
            for (int64_t c = 0; c < n; c++) {
                oracle_report_add(&res->rep[REP_DW], oracle_get(tb.dweight, d->weight_dtype, n, 0, c), ob.dweight[c],
                                  ob.dw_err[c] * (1 + uw) + uw * fabs(ob.dweight[c]) + tw, -1, c);
                if (tb.dbias)
                    oracle_report_add(&res->rep[REP_DB], oracle_get(tb.dbias, d->bias_dtype, n, 0, c), ob.dbias[c],
                                      ob.db_err[c] * (1 + ub) + ub * fabs(ob.dbias[c]) + tbi, -1, c);
                if (tb.dweight1)
                    oracle_report_add(&res->rep[REP_DW1], oracle_get(tb.dweight1, d->weight_dtype, n, 0, c),
                                      ob.dweight1[c], ob.dw1_err[c] * (1 + uw) + uw * fabs(ob.dweight1[c]) + tw, -1, c);
                if (tb.dbias1)
                    oracle_report_add(&res->rep[REP_DB1], oracle_get(tb.dbias1, d->bias_dtype, n, 0, c), ob.dbias1[c],
                                      ob.db1_err[c] * (1 + ub) + ub * fabs(ob.dbias1[c]) + tbi, -1, c);
            }
            oracle_bwd_free(&ob);
            free(hh);
            free(gy);
            free(gro);
            free(gy1);
            gbuf_check(&bdx, res, "dx", m, n, s, dt_size(d->x_dtype));
            gbuf_check(&bdres, res, "dresidual", m, n, s, dt_size(d->residual_dtype));
            gbuf_check(&bdw, res, "dweight", 1, 0, 0, 1);
            gbuf_check(&bdb, res, "dbias", 1, 0, 0, 1);
            gbuf_check(&bdx1, res, "dx1", m, n, s1, dt_size(d->x_dtype));
            gbuf_check(&bdw1, res, "dweight1", 1, 0, 0, 1);
            gbuf_check(&bdb1, res, "dbias1", 1, 0, 0, 1);
            static const char *const bn[8] = {"dy", "dresidual_out", "h", "rstd (bwd input)", "mean (bwd input)",
                                              "mask (bwd input)", "dy1", "mask1 (bwd input)"};
            for (int i = 0; i < 8; i++) snap_check(&sn_b[i], res, bn[i]);
        }
        if (ws2) sup_free(ws2);
        gbuf_free(&bdy);
        gbuf_free(&bdro);
        gbuf_free(&bdx);
        gbuf_free(&bdres);
        gbuf_free(&bdw);
        gbuf_free(&bdb);
        gbuf_free(&bdy1);
        gbuf_free(&bdx1);
        gbuf_free(&bdw1);
        gbuf_free(&bdb1);
    }
    static const char *const fn[8] = {"x", "residual", "weight", "bias", "rowscale", "x1", "weight1", "bias1"};
    for (int i = 0; i < 8; i++) snap_check(&sn_in[i], res, fn[i]);
    if (res->msg[0] == '\0') result_finish(res, cs);

out_fwd:
    oracle_fwd_free(&f);
    oracle_free(&p);
    if (ws) sup_free(ws);
    gbuf_free(&bx);
    gbuf_free(&bres);
    gbuf_free(&bw);
    gbuf_free(&bb);
    gbuf_free(&brs);
    gbuf_free(&bout);
    gbuf_free(&bro);
    gbuf_free(&bmask);
    gbuf_free(&brstd);
    gbuf_free(&bmean);
    gbuf_free(&bx1);
    gbuf_free(&bw1);
    gbuf_free(&bb1);
    gbuf_free(&bout1);
    gbuf_free(&bmask1);
}

/* ---- running maxima ------------------------------------------------------------------------------- */
void oracle_worst_init(oracle_worst *w)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < ORACLE_NREP; i++) {
        w->v[i] = -1.0;
        w->name[i] = rep_names[i];
    }
}

void oracle_worst_add(oracle_worst *w, const oracle_result *res)
{
    w->cases++;
    for (int i = 0; i < res->nrep && i < ORACLE_NREP; i++)
        if (res->rep[i].count > 0 && !(res->rep[i].worst <= w->v[i])) w->v[i] = res->rep[i].worst;
}

void oracle_worst_print(const oracle_worst *w, const char *label)
{
    char line[512];
    int k = snprintf(line, sizeof line, "[oracle] %s: %lld cases; worst err/bound:", label, (long long)w->cases);
    for (int i = 0; i < ORACLE_NREP && k > 0 && (size_t)k < sizeof line; i++)
        if (w->v[i] >= 0.0 && i != REP_GUARD)
            k += snprintf(line + k, sizeof line - (size_t)k, " %s=%.3g", w->name[i], w->v[i]);
    fprintf(stderr, "%s\n", line);
}
