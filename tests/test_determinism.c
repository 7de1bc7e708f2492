/*
 * test_determinism.c — bit-identical results (docs/numerics.md §7): across repeated runs, across OpenMP
 * thread counts (the chunk order of the dweight/dbias reduction then varies), across row strides and
 * base-pointer offsets; and dweight/dbias equal the §6 chunked reduction recomputed here from the
 * backward's own inputs.
 *
 * Thread counts: with the test compiled with -fopenmp, omp.h is used directly; otherwise (GCC/Clang) the
 * OpenMP runtime is reached through weak symbols, present when the library links it. Without either,
 * the thread-count test only checks repeated runs and logs that threads were not varied.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>

#include "support.h"

#if defined(_OPENMP)
#include <omp.h>
static void (*const set_threads)(int) = omp_set_num_threads;
static int (*const max_threads)(void) = omp_get_max_threads;
#elif defined(__GNUC__)
extern void omp_set_num_threads(int) __attribute__((weak));
extern int omp_get_max_threads(void) __attribute__((weak));
#define set_threads omp_set_num_threads
#define max_threads omp_get_max_threads
#else
static void (*const set_threads)(int) = NULL;
static int (*const max_threads)(void) = NULL;
#endif /* _OPENMP */

typedef struct cfg {
    darn_norm norm;
    int64_t m, n;
    darn_dtype x, res, w, out;
    uint32_t flags;
    double p;
} cfg;

typedef struct layout {
    int64_t pad;
    size_t shift; /* in elements */
} layout;

/* Everything one fwd + bwd produces, copied out contiguously. */
typedef struct result {
    void *out, *resout, *dx, *dres, *dw, *db;
    uint8_t *mask;
    float *rstd, *mean;
} result;

static void result_free(result *r)
{
    void *ps[9] = {r->out, r->resout, r->dx, r->dres, r->dw, r->db, r->mask, r->rstd, r->mean};
    for (int i = 0; i < 9; ++i) sup_free(ps[i]);
}

typedef struct inputs {
    void *x, *res, *w, *b, *dy, *dro;
    float *rs;
} inputs;

static void desc_of(const cfg *c, darn_desc *d)
{
    darn_desc_init(d, c->norm, c->m, c->n, c->x);
    d->residual_dtype = c->res;
    d->weight_dtype = d->bias_dtype = c->w;
    d->out_dtype = c->out;
    d->flags = c->flags;
    d->dropout_p = c->p;
    d->seed = UINT64_C(0xfeedface12345678);
    d->offset = 99;
}

static inputs make_inputs(const darn_desc *d, uint64_t seed)
{
    const int64_t m = d->rows, n = d->cols;
    const darn_dtype ro = darn_residual_out_dtype(d);
    sup_rng g = sup_rng_make(seed);
    inputs in;
    in.x = sup_alloc(sup_tensor_bytes(d->x_dtype, m, n, 0), 64);
    in.res = sup_alloc(sup_tensor_bytes(d->residual_dtype, m, n, 0), 64);
    in.w = sup_alloc((size_t)n * 4, 64);
    in.b = sup_alloc((size_t)n * 4, 64);
    in.dy = sup_alloc(sup_tensor_bytes(d->out_dtype, m, n, 0), 64);
    in.dro = sup_alloc(sup_tensor_bytes(ro, m, n, 0), 64);
    in.rs = sup_alloc((size_t)m * 4, 64);
    sup_fill_uniform(in.x, d->x_dtype, m, n, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(in.res, d->residual_dtype, m, n, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(in.w, d->weight_dtype, 1, n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(in.b, d->bias_dtype, 1, n, 0, &g, -0.5f, 0.5f);
    sup_fill_uniform(in.dy, d->out_dtype, m, n, 0, &g, -1.0f, 1.0f);
    sup_fill_uniform(in.dro, ro, m, n, 0, &g, -0.25f, 0.25f);
    sup_fill_f32(in.rs, m, &g, 0.5f, 1.5f);
    return in;
}

static void inputs_free(inputs *in)
{
    void *ps[7] = {in->x, in->res, in->w, in->b, in->dy, in->dro, in->rs};
    for (int i = 0; i < 7; ++i) sup_free(ps[i]);
}

/* A strided copy (or an empty strided buffer) of a [m, n] tensor, `shift` elements past a 64-byte base. */
static unsigned char *place(const void *src, darn_dtype dt, int64_t m, int64_t n, layout L, void **base)
{
    const size_t es = darn_dtype_size(dt);
    *base = sup_alloc(sup_tensor_bytes(dt, m, n, n + L.pad) + (L.shift + 1) * es, 64);
    unsigned char *p = (unsigned char *)*base + L.shift * es;
    if (src) sup_copy(p, n + L.pad, src, n, dt, m, n);
    return p;
}

static void *gather(const void *src, darn_dtype dt, int64_t m, int64_t n, int64_t stride)
{
    void *dst = sup_alloc(sup_tensor_bytes(dt, m, n, 0), 64);
    sup_copy(dst, n, src, stride, dt, m, n);
    return dst;
}

/* Forward, then backward on the forward's h / rstd / mean / mask, every [M, N] tensor in layout L. */
static result run_all(const darn_desc *d, const inputs *in, layout L)
{
    const int64_t m = d->rows, n = d->cols, s = n + L.pad;
    const darn_dtype ro = darn_residual_out_dtype(d);
    const int has_res = (d->flags & DARN_FLAG_HAS_RESIDUAL) != 0, has_bias = (d->flags & DARN_FLAG_HAS_BIAS) != 0;
    const int ln = d->norm == DARN_LAYERNORM;
    void *bases[9];
    result R;
    memset(&R, 0, sizeof R);
    R.mask = sup_alloc((size_t)(m * darn_mask_row_bytes(n)), 64);
    R.rstd = sup_alloc((size_t)m * 4, 64);
    R.mean = sup_alloc((size_t)m * 4, 64);
    R.dw = sup_alloc((size_t)n * 4, 64);
    R.db = sup_alloc((size_t)n * 4, 64);

    darn_fwd_tensors f;
    memset(&f, 0, sizeof f);
    f.x = place(in->x, d->x_dtype, m, n, L, &bases[0]);
    f.residual = place(in->res, d->residual_dtype, m, n, L, &bases[1]);
    if (!has_res) f.residual = NULL;
    f.rowscale = (d->flags & DARN_FLAG_HAS_ROWSCALE) ? in->rs : NULL;
    f.weight = in->w;
    f.bias = has_bias ? in->b : NULL;
    f.out = place(NULL, d->out_dtype, m, n, L, &bases[2]);
    f.residual_out = place(NULL, ro, m, n, L, &bases[3]);
    f.x_stride = f.residual_stride = f.out_stride = f.residual_out_stride = s;
    f.mask = R.mask;
    f.rstd = R.rstd;
    f.mean = ln ? R.mean : NULL;
    cr_assert_eq(darn_fwd(d, &f, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "darn_fwd: %s", darn_last_error());

    darn_bwd_tensors b;
    memset(&b, 0, sizeof b);
    b.dy = place(in->dy, d->out_dtype, m, n, L, &bases[4]);
    b.h = f.residual_out;
    b.weight = in->w;
    b.rstd = R.rstd;
    b.mean = ln ? R.mean : NULL;
    b.rowscale = f.rowscale;
    b.dresidual_out = place(in->dro, ro, m, n, L, &bases[5]);
    b.mask = R.mask;
    b.dx = place(NULL, d->x_dtype, m, n, L, &bases[6]);
    b.dresidual = has_res ? place(NULL, d->residual_dtype, m, n, L, &bases[7]) : NULL;
    if (!has_res) bases[7] = NULL;
    b.dweight = R.dw;
    b.dbias = has_bias ? R.db : NULL;
    b.dy_stride = b.h_stride = b.dresidual_out_stride = b.dx_stride = b.dresidual_stride = s;
    size_t ws_bytes = 0;
    cr_assert_eq(darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &ws_bytes), DARN_OK, "%s", darn_last_error());
    void *ws = sup_alloc(ws_bytes, 64);
    bases[8] = ws;
    cr_assert_eq(darn_bwd(d, &b, ws, ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK, "darn_bwd: %s", darn_last_error());

    R.out = gather(f.out, d->out_dtype, m, n, s);
    R.resout = gather(f.residual_out, ro, m, n, s);
    R.dx = gather(b.dx, d->x_dtype, m, n, s);
    R.dres = has_res ? gather(b.dresidual, d->residual_dtype, m, n, s) : NULL;
    for (int i = 0; i < 9; ++i) sup_free(bases[i]);
    return R;
}

static void expect_same(const darn_desc *d, const result *a, const result *b, const char *what)
{
    const int64_t m = d->rows, n = d->cols;
    int64_t k;
    k = sup_compare(a->out, 0, b->out, 0, d->out_dtype, m, n, 0);
    cr_expect_lt(k, 0, "%s: out differs at %lld", what, (long long)k);
    k = sup_compare(a->resout, 0, b->resout, 0, darn_residual_out_dtype(d), m, n, 0);
    cr_expect_lt(k, 0, "%s: residual_out differs at %lld", what, (long long)k);
    cr_expect_eq(memcmp(a->mask, b->mask, (size_t)(m * darn_mask_row_bytes(n))), 0, "%s: mask differs", what);
    k = sup_compare_f32(a->rstd, b->rstd, m, 0);
    cr_expect_lt(k, 0, "%s: rstd differs at row %lld", what, (long long)k);
    if (d->norm == DARN_LAYERNORM) {
        k = sup_compare_f32(a->mean, b->mean, m, 0);
        cr_expect_lt(k, 0, "%s: mean differs at row %lld", what, (long long)k);
    }
    k = sup_compare(a->dx, 0, b->dx, 0, d->x_dtype, m, n, 0);
    cr_expect_lt(k, 0, "%s: dx differs at %lld", what, (long long)k);
    if (d->flags & DARN_FLAG_HAS_RESIDUAL) {
        k = sup_compare(a->dres, 0, b->dres, 0, d->residual_dtype, m, n, 0);
        cr_expect_lt(k, 0, "%s: dresidual differs at %lld", what, (long long)k);
    }
    k = sup_compare(a->dw, 0, b->dw, 0, d->weight_dtype, 1, n, 0);
    cr_expect_lt(k, 0, "%s: dweight differs at column %lld", what, (long long)k);
    if (d->flags & DARN_FLAG_HAS_BIAS) {
        k = sup_compare(a->db, 0, b->db, 0, d->bias_dtype, 1, n, 0);
        cr_expect_lt(k, 0, "%s: dbias differs at column %lld", what, (long long)k);
    }
}

#define ALLF (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE)

/* Shapes with one and several rows per dweight chunk (R = max(1, floor(M * N / 2^21))), rows of several
 * CPU tiles, N not a multiple of 8 or 32, group counts that are not powers of two. */
static const cfg CFGS[] = {
    {DARN_LAYERNORM, 1500, 3000, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, ALLF, 0.1},     /* R = 2, G = 750 */
    {DARN_RMSNORM, 257, 100, DARN_F32, DARN_F32, DARN_F32, DARN_F32, ALLF, 0.0},            /* R = 1 */
    {DARN_LAYERNORM, 5000, 33, DARN_F16, DARN_F32, DARN_F16, DARN_BF16,
     ALLF | DARN_FLAG_RESIDUAL_IN_FP32 | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.5},               /* R = 1 */
    {DARN_RMSNORM, 330, 20000, DARN_F16, DARN_F16, DARN_F32, DARN_F16, DARN_FLAG_HAS_BIAS, 0.25}, /* R = 3, G = 110 */
};
#define NCFG (sizeof CFGS / sizeof CFGS[0])

static void cfg_name(const cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s M %lld N %lld dtypes %d/%d/%d/%d flags 0x%x p %g", c->norm ? "LN" : "RMS",
             (long long)c->m, (long long)c->n, (int)c->x, (int)c->res, (int)c->w, (int)c->out, c->flags, c->p);
}

Test(determinism, repeated_runs, .timeout = 120)
{
    for (size_t i = 0; i < NCFG; ++i) {
        darn_desc d;
        desc_of(&CFGS[i], &d);
        inputs in = make_inputs(&d, 100 + i);
        const layout L = {0, 0};
        result a = run_all(&d, &in, L);
        result b = run_all(&d, &in, L);
        char what[160];
        cfg_name(&CFGS[i], what, sizeof what);
        expect_same(&d, &a, &b, what);
        result_free(&a);
        result_free(&b);
        inputs_free(&in);
    }
}

Test(determinism, thread_counts, .timeout = 120)
{
    if (!set_threads || !max_threads) {
        cr_log_warn("no OpenMP runtime linked: thread counts not varied (library built without OpenMP?)");
        return;
    }
    const int counts[] = {1, 2, 3, 7};
    const int saved = max_threads();
    cr_log_info("OpenMP thread counts 1, 2, 3, 7 (runtime default %d)", saved);
    for (size_t i = 0; i < NCFG; ++i) {
        darn_desc d;
        desc_of(&CFGS[i], &d);
        inputs in = make_inputs(&d, 200 + i);
        const layout L = {0, 0};
        set_threads(1);
        result ref = run_all(&d, &in, L);
        for (size_t k = 1; k < sizeof counts / sizeof counts[0]; ++k) {
            set_threads(counts[k]);
            cr_assert_eq(max_threads(), counts[k], "omp_set_num_threads(%d) did not take", counts[k]);
            result r = run_all(&d, &in, L);
            char what[192];
            char name[160];
            cfg_name(&CFGS[i], name, sizeof name);
            snprintf(what, sizeof what, "%s, %d threads vs 1", name, counts[k]);
            expect_same(&d, &ref, &r, what);
            result_free(&r);
        }
        result_free(&ref);
        inputs_free(&in);
    }
    set_threads(saved);
}

Test(determinism, strides_and_offsets, .timeout = 120)
{
    const layout Ls[] = {{1, 1}, {8, 0}, {3, 5}, {100, 2}};
    for (size_t i = 0; i < NCFG; ++i) {
        if (CFGS[i].m * CFGS[i].n > 1000000) continue; /* the big shapes are covered by the other tests */
        darn_desc d;
        desc_of(&CFGS[i], &d);
        inputs in = make_inputs(&d, 300 + i);
        const layout L0 = {0, 0};
        result ref = run_all(&d, &in, L0);
        for (size_t l = 0; l < sizeof Ls / sizeof Ls[0]; ++l) {
            result r = run_all(&d, &in, Ls[l]);
            char name[160], what[220];
            cfg_name(&CFGS[i], name, sizeof name);
            snprintf(what, sizeof what, "%s, pad %lld shift %zu", name, (long long)Ls[l].pad, Ls[l].shift);
            expect_same(&d, &ref, &r, what);
            result_free(&r);
        }
        result_free(&ref);
        inputs_free(&in);
    }
}

/* ---- dweight / dbias: §6 recomputed from the backward's inputs ----------------------------------- */

static float mul(float a, float b)
{
    volatile float r = a * b; /* one rounding, never fused */
    return r;
}

static float sub(float a, float b)
{
    volatile float r = a - b;
    return r;
}

static float add(float a, float b)
{
    volatile float r = a + b;
    return r;
}

/* The §6 reduction of per-row terms term(r, c) over rows: chunks of R rows summed from -0.0 in row order,
 * then the pairwise tree over the G partials. Chunking recomputed from the text:
 * R = max(1, floor(M * N / 2^21)), G = ceil(M / R) (small shapes here: M * N cannot overflow). */
static void section6_reduce(const float *terms, int64_t m, int64_t n, float *outv)
{
    int64_t R = m * n / 2097152;
    if (R < 1) R = 1;
    const int64_t G = (m + R - 1) / R;
    float *q = sup_alloc((size_t)(G * n) * 4, 64);
    for (int64_t g = 0; g < G; ++g)
        for (int64_t c = 0; c < n; ++c) {
            float p = -0.0f;
            for (int64_t r = g * R; r < (g + 1) * R && r < m; ++r) p = add(p, terms[r * n + c]);
            q[g * n + c] = p;
        }
    for (int64_t dd = 1; dd < G; dd *= 2)
        for (int64_t i = 0; i + dd < G; i += 2 * dd)
            for (int64_t c = 0; c < n; ++c) q[i * n + c] = add(q[i * n + c], q[(i + dd) * n + c]);
    memcpy(outv, q, (size_t)n * 4);
    sup_free(q);
}

Test(determinism, wgrad_is_the_section6_reduction, .timeout = 120)
{
    for (size_t i = 0; i < NCFG; ++i) {
        const cfg *c = &CFGS[i];
        darn_desc d;
        desc_of(c, &d);
        inputs in = make_inputs(&d, 400 + i);
        const layout L = {0, 0};
        result res = run_all(&d, &in, L);
        const int64_t m = d.rows, n = d.cols;
        const darn_dtype ro = darn_residual_out_dtype(&d);
        float *tw = sup_alloc((size_t)(m * n) * 4, 64), *tb = sup_alloc((size_t)(m * n) * 4, 64);
        for (int64_t r = 0; r < m; ++r)
            for (int64_t k = 0; k < n; ++k) {
                const float hn = sup_get(res.resout, ro, n, r, k);
                const float xhat = d.norm == DARN_LAYERNORM ? mul(sub(hn, res.mean[r]), res.rstd[r]) : mul(hn, res.rstd[r]);
                const float gy = sup_get(in.dy, d.out_dtype, n, r, k);
                tw[r * n + k] = mul(gy, xhat);
                tb[r * n + k] = gy;
            }
        float *ew = sup_alloc((size_t)n * 4, 64), *eb = sup_alloc((size_t)n * 4, 64);
        section6_reduce(tw, m, n, ew);
        section6_reduce(tb, m, n, eb);
        char name[160];
        cfg_name(c, name, sizeof name);
        int fails = 0;
        for (int64_t k = 0; k < n && fails < 5; ++k) {
            uint32_t buf;
            sup_set(&buf, d.weight_dtype, 1, 0, 0, ew[k]);
            const uint32_t want_w = sup_get_bits(&buf, d.weight_dtype, 1, 0, 0);
            const uint32_t got_w = sup_get_bits(res.dw, d.weight_dtype, n, 0, k);
            if (want_w != got_w && fails++ < 5)
                cr_expect_fail("%s: dweight[%lld] bits %x, section 6 gives %x (%a)", name, (long long)k, got_w, want_w,
                               (double)ew[k]);
            if (d.flags & DARN_FLAG_HAS_BIAS) {
                sup_set(&buf, d.bias_dtype, 1, 0, 0, eb[k]);
                const uint32_t want_b = sup_get_bits(&buf, d.bias_dtype, 1, 0, 0);
                const uint32_t got_b = sup_get_bits(res.db, d.bias_dtype, n, 0, k);
                if (want_b != got_b && fails++ < 5)
                    cr_expect_fail("%s: dbias[%lld] bits %x, section 6 gives %x (%a)", name, (long long)k, got_b,
                                   want_b, (double)eb[k]);
            }
        }
        sup_free(tw);
        sup_free(tb);
        sup_free(ew);
        sup_free(eb);
        result_free(&res);
        inputs_free(&in);
    }
}

/* ---- §5 recomputed from the text: group sums, then the pairwise tree over the groups ---------------- */
static float tree_of(const float *v, int64_t lo, int64_t hi, int64_t count)
{
    /* the subtree over the aligned power-of-two range [lo, hi); slots past `count` are -0.0 */
    if (lo >= count) return -0.0f;
    if (hi - lo == 1) return v[lo];
    const int64_t mid = lo + (hi - lo) / 2;
    return add(tree_of(v, lo, mid, count), tree_of(v, mid, hi, count));
}

static float section5_sum(const float *e, int64_t n)
{
    const int64_t groups = (n + 7) / 8;
    float *gs = sup_alloc((size_t)groups * 4, 64);
    for (int64_t j = 0; j < groups; ++j) {
        float a = -0.0f;
        for (int64_t c = 8 * j; c < 8 * j + 8 && c < n; ++c) a = add(a, e[c]);
        gs[j] = a;
    }
    int64_t slots = 1;
    while (slots < groups) slots *= 2;
    const float s = tree_of(gs, 0, slots, groups);
    sup_free(gs);
    return s;
}

static float divf(float a, float b)
{
    volatile float r = a / b;
    return r;
}

/* rstd (and mean) of every row equal §4 over §5, recomputed from the forward's own h. */
Test(determinism, row_sums_are_section5, .timeout = 120)
{
    for (size_t i = 0; i < NCFG; ++i) {
        const cfg *c = &CFGS[i];
        darn_desc d;
        desc_of(c, &d);
        inputs in = make_inputs(&d, 500 + i);
        const layout L = {0, 0};
        result res = run_all(&d, &in, L);
        const int64_t m = d.rows, n = d.cols;
        const darn_dtype ro = darn_residual_out_dtype(&d);
        const float nf = (float)n;
        float *e = sup_alloc((size_t)n * 4, 64);
        char name[160];
        cfg_name(c, name, sizeof name);
        int fails = 0;
        for (int64_t r = 0; r < m && fails < 5; ++r) {
            float mean = 0.0f;
            if (d.norm == DARN_LAYERNORM) {
                for (int64_t k = 0; k < n; ++k) e[k] = sup_get(res.resout, ro, n, r, k);
                mean = divf(section5_sum(e, n), nf);
                for (int64_t k = 0; k < n; ++k) {
                    const float dv = sub(sup_get(res.resout, ro, n, r, k), mean);
                    e[k] = mul(dv, dv);
                }
            } else {
                for (int64_t k = 0; k < n; ++k) {
                    const float h = sup_get(res.resout, ro, n, r, k);
                    e[k] = mul(h, h);
                }
            }
            volatile float q = divf(section5_sum(e, n), nf) + d.eps;
            const float rstd = divf(1.0f, sqrtf(q));
            if (memcmp(&rstd, &res.rstd[r], 4) != 0 && fails++ < 5)
                cr_expect_fail("%s: rstd[%lld] = %a, §5 gives %a", name, (long long)r, (double)res.rstd[r], (double)rstd);
            if (d.norm == DARN_LAYERNORM && memcmp(&mean, &res.mean[r], 4) != 0 && fails++ < 5)
                cr_expect_fail("%s: mean[%lld] = %a, §5 gives %a", name, (long long)r, (double)res.mean[r], (double)mean);
        }
        sup_free(e);
        result_free(&res);
        inputs_free(&in);
    }
}

/* Batch invariance (§8): a row's outputs depend on that row alone, not on M or on its position. Without
 * dropout (the keep bits are a function of the logical index r * N + c, so they move with the position),
 * row r of an M-row problem equals the same row placed at position r2 of an M2-row problem. */
static void copy_row(void *dst, int64_t rd, const void *src, int64_t rs, darn_dtype dt, int64_t n)
{
    const size_t es = darn_dtype_size(dt);
    memcpy((char *)dst + (size_t)(rd * n) * es, (const char *)src + (size_t)(rs * n) * es, (size_t)n * es);
}

Test(determinism, batch_invariance, .timeout = 120)
{
    static const int64_t ns[] = {1000, 4097, 20000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; ++i) {
        for (int norm = 0; norm < 2; ++norm) {
            const cfg c1 = {(darn_norm)norm, 40, ns[i], DARN_BF16, DARN_F32, DARN_BF16, DARN_BF16,
                            ALLF | DARN_FLAG_RESIDUAL_IN_FP32, 0.0};
            cfg c2 = c1;
            c2.m = 230; /* more rows: another chunking, other neighbours */
            darn_desc d1, d2;
            desc_of(&c1, &d1);
            desc_of(&c2, &d2);
            inputs a = make_inputs(&d1, 600 + i), b = make_inputs(&d2, 700 + i);
            const darn_dtype ro = darn_residual_out_dtype(&d1);
            const int64_t n = ns[i], ra = 17, rb = 201;
            copy_row(b.x, rb, a.x, ra, d1.x_dtype, n);
            copy_row(b.res, rb, a.res, ra, d1.residual_dtype, n);
            copy_row(b.dy, rb, a.dy, ra, d1.out_dtype, n);
            copy_row(b.dro, rb, a.dro, ra, ro, n);
            b.rs[rb] = a.rs[ra];
            memcpy(b.w, a.w, (size_t)n * 4);
            memcpy(b.b, a.b, (size_t)n * 4);
            const layout L = {0, 0};
            result A = run_all(&d1, &a, L), B = run_all(&d2, &b, L);
            const struct { const char *name; const void *pa, *pb; darn_dtype dt; } t[] = {
                {"out", A.out, B.out, d1.out_dtype}, {"residual_out", A.resout, B.resout, ro},
                {"dx", A.dx, B.dx, d1.x_dtype}, {"dresidual", A.dres, B.dres, d1.residual_dtype}};
            for (size_t k = 0; k < sizeof t / sizeof t[0]; ++k) {
                const size_t es = darn_dtype_size(t[k].dt);
                cr_expect_eq(memcmp((const char *)t[k].pa + (size_t)(ra * n) * es,
                                    (const char *)t[k].pb + (size_t)(rb * n) * es, (size_t)n * es), 0,
                             "N = %lld, %s: %s of the row differs at another M and position", (long long)n,
                             norm ? "LN" : "RMS", t[k].name);
            }
            cr_expect_eq(memcmp(&A.rstd[ra], &B.rstd[rb], 4), 0, "N = %lld: rstd differs", (long long)n);
            if (norm) cr_expect_eq(memcmp(&A.mean[ra], &B.mean[rb], 4), 0, "N = %lld: mean differs", (long long)n);
            result_free(&A);
            result_free(&B);
            inputs_free(&a);
            inputs_free(&b);
        }
    }
}
