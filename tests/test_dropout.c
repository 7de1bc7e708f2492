/*
 * test_dropout.c — dropout per docs/numerics.md §3/§4: the keep rate, the mask bits against the rule
 * recomputed here from darn_philox_word, mask layout and padding, h = dropout(x * rs) + res exactly,
 * p = 0 and p = 1, stride independence, mask vs regeneration in the backward, the graph-safe pointers.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>
#include <darn/philox.h>

#include "support.h"

/* floor(p * 2^32), recomputed here: exact power-of-two scaling, then floor. */
static uint64_t test_threshold(double p) { return (uint64_t)floor(ldexp(p, 32)); }

static int test_keep(uint64_t seed, uint64_t offset, uint64_t i, uint64_t t)
{
    return (uint64_t)darn_philox_word(seed, offset, i) >= t;
}

static int mask_bit(const uint8_t *mask, int64_t n, int64_t r, int64_t c)
{
    return (mask[r * darn_mask_row_bytes(n) + c / 8] >> (c % 8)) & 1;
}

/* ---- running a forward with a chosen memory layout ---------------------------------------------- */

enum x_mode { X_RANDOM, X_ZERO, X_SPECIALS };

typedef struct layout {
    int64_t pad;  /* row stride = N + pad for every [M, N] tensor (0 = contiguous) */
    size_t shift; /* base pointers moved by this many elements from a 64-byte boundary */
} layout;

/* Results copied out contiguously, so different layouts compare directly. */
typedef struct fres {
    void *out, *resout;
    uint8_t *mask;
    float *rstd, *mean;
} fres;

static void fres_free(fres *r)
{
    sup_free(r->out);
    sup_free(r->resout);
    sup_free(r->mask);
    sup_free(r->rstd);
    sup_free(r->mean);
}

typedef struct fwd_in {
    void *x, *res, *w, *b;
    float *rs;
} fwd_in;

/* Logical inputs, row-major, from `seed` (identical whatever the layout). */
static fwd_in make_inputs(const darn_desc *d, uint64_t seed, enum x_mode xm)
{
    const int64_t m = d->rows, n = d->cols;
    sup_rng g = sup_rng_make(seed);
    fwd_in in;
    in.x = sup_alloc(sup_tensor_bytes(d->x_dtype, m, n, 0), 64);
    in.res = sup_alloc(sup_tensor_bytes(d->residual_dtype, m, n, 0), 64);
    in.w = sup_alloc((size_t)n * 4, 64);
    in.b = sup_alloc((size_t)n * 4, 64);
    in.rs = sup_alloc((size_t)(m > 0 ? m : 1) * 4, 64);
    sup_fill_uniform(in.x, d->x_dtype, m, n, 0, &g, -3.0f, 3.0f);
    if (xm == X_ZERO)
        for (int64_t r = 0; r < m; ++r)
            for (int64_t c = 0; c < n; ++c) sup_set(in.x, d->x_dtype, n, r, c, 0.0f);
    if (xm == X_SPECIALS) /* inf and NaN in x: a dropped element must still give +0 */
        for (int64_t r = 0; r < m; ++r)
            for (int64_t c = (r * 7) % 5; c < n; c += 5)
                sup_set(in.x, d->x_dtype, n, r, c, (c / 5) % 3 == 0 ? INFINITY : (c / 5) % 3 == 1 ? -INFINITY : NAN);
    sup_fill_uniform(in.res, d->residual_dtype, m, n, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(in.w, d->weight_dtype, 1, n, 0, &g, 0.5f, 1.5f);
    sup_fill_uniform(in.b, d->bias_dtype, 1, n, 0, &g, -0.5f, 0.5f);
    sup_fill_f32(in.rs, m, &g, 0.25f, 2.0f);
    return in;
}

static void free_inputs(fwd_in *in)
{
    sup_free(in->x);
    sup_free(in->res);
    sup_free(in->w);
    sup_free(in->b);
    sup_free(in->rs);
}

/* A strided copy of a contiguous [m, n] tensor at `shift` elements past an aligned base. */
static void *place(const void *src, darn_dtype dt, int64_t m, int64_t n, layout L, void **base)
{
    const size_t es = darn_dtype_size(dt);
    *base = sup_alloc(sup_tensor_bytes(dt, m, n, n + L.pad) + (L.shift + 1) * es, 64);
    unsigned char *p = (unsigned char *)*base + L.shift * es;
    if (src) sup_copy(p, n + L.pad, src, n, dt, m, n);
    return p;
}

static fres run_fwd(const darn_desc *d, const fwd_in *in, layout L, int want_mask)
{
    const int64_t m = d->rows, n = d->cols, s = n + L.pad;
    const darn_dtype ro = darn_residual_out_dtype(d);
    const int has_res = (d->flags & DARN_FLAG_HAS_RESIDUAL) != 0;
    void *bx, *bres, *bout, *bresout;
    darn_fwd_tensors t;
    memset(&t, 0, sizeof t);
    t.x = place(in->x, d->x_dtype, m, n, L, &bx);
    t.x_stride = s;
    t.residual = has_res ? place(in->res, d->residual_dtype, m, n, L, &bres) : NULL;
    if (!has_res) bres = NULL;
    t.residual_stride = s;
    t.rowscale = (d->flags & DARN_FLAG_HAS_ROWSCALE) ? in->rs : NULL;
    t.weight = in->w;
    t.bias = (d->flags & DARN_FLAG_HAS_BIAS) ? in->b : NULL;
    t.out = place(NULL, d->out_dtype, m, n, L, &bout);
    t.out_stride = s;
    t.residual_out = place(NULL, ro, m, n, L, &bresout);
    t.residual_out_stride = s;
    fres R;
    const size_t mask_bytes = (size_t)(m * darn_mask_row_bytes(n));
    R.mask = sup_alloc(mask_bytes + 64, 64); /* 64 sentinel bytes past the end */
    R.rstd = sup_alloc((size_t)m * 4, 64);
    R.mean = sup_alloc((size_t)m * 4, 64);
    t.mask = want_mask ? R.mask : NULL;
    t.rstd = R.rstd;
    t.mean = d->norm == DARN_LAYERNORM ? R.mean : NULL;
    const darn_status st = darn_fwd(d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
    cr_assert_eq(st, DARN_OK, "darn_fwd (M %lld N %lld pad %lld shift %zu): %s", (long long)m, (long long)n,
                 (long long)L.pad, L.shift, darn_last_error());
    cr_assert_lt(sup_first_touched(R.mask + mask_bytes, 64), 0, "mask written past M * row_bytes");
    R.out = sup_alloc(sup_tensor_bytes(d->out_dtype, m, n, 0), 64);
    R.resout = sup_alloc(sup_tensor_bytes(ro, m, n, 0), 64);
    sup_copy(R.out, n, t.out, s, d->out_dtype, m, n);
    sup_copy(R.resout, n, t.residual_out, s, ro, m, n);
    sup_free(bx);
    sup_free(bres);
    sup_free(bout);
    sup_free(bresout);
    return R;
}

static void expect_same_fwd(const darn_desc *d, const fres *a, const fres *b, const char *what)
{
    const int64_t m = d->rows, n = d->cols;
    const int64_t o = sup_compare(a->out, 0, b->out, 0, d->out_dtype, m, n, 0);
    cr_expect_lt(o, 0, "%s: out differs at element %lld", what, (long long)o);
    const int64_t h = sup_compare(a->resout, 0, b->resout, 0, darn_residual_out_dtype(d), m, n, 0);
    cr_expect_lt(h, 0, "%s: residual_out differs at element %lld", what, (long long)h);
    cr_expect_eq(memcmp(a->mask, b->mask, (size_t)(m * darn_mask_row_bytes(n))), 0, "%s: mask differs", what);
    cr_expect_lt(sup_compare_f32(a->rstd, b->rstd, m, 0), 0, "%s: rstd differs", what);
    if (d->norm == DARN_LAYERNORM) cr_expect_lt(sup_compare_f32(a->mean, b->mean, m, 0), 0, "%s: mean differs", what);
}

/* ---- keep rate ------------------------------------------------------------------------------------ */

Test(dropout, keep_rate_within_6_sigma)
{
    const double ps[] = {0.0, 0.1, 0.5, 0.9, 1.0, 1e-9, 1.0 - 1e-9};
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, 1000, 1000, DARN_F16);
    d.seed = UINT64_C(0x5eed5eed12345678);
    d.offset = 3;
    fwd_in in = make_inputs(&d, 1, X_RANDOM);
    const double total = 1e6;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; ++k) {
        d.dropout_p = ps[k];
        const layout L = {0, 0};
        fres R = run_fwd(&d, &in, L, 1);
        int64_t kept = 0;
        const int64_t rb = darn_mask_row_bytes(d.cols);
        for (int64_t r = 0; r < d.rows; ++r)
            for (int64_t c = 0; c < d.cols; ++c) kept += (R.mask[r * rb + c / 8] >> (c % 8)) & 1;
        const double q = 1.0 - (double)test_threshold(ps[k]) / 4294967296.0; /* P(keep) */
        const double sigma = sqrt(total * q * (1.0 - q));
        const double dev = fabs((double)kept - total * q);
        cr_expect(dev <= 6.0 * sigma + 1.0, "p = %.17g: kept %lld of 1e6, expected %.3f +- 6 * %.3f", ps[k],
                  (long long)kept, total * q, sigma);
        if (ps[k] == 0.0) cr_expect_eq(kept, (int64_t)total, "p = 0 dropped something");
        if (ps[k] == 1.0) cr_expect_eq(kept, 0, "p = 1 kept something");
        fres_free(&R);
    }
    free_inputs(&in);
}

/* ---- the mask bits are the contract's rule -------------------------------------------------------- */

static void check_mask_rule(int64_t m, int64_t n, double p, uint64_t seed, uint64_t offset, const char *what)
{
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, m, n, DARN_BF16);
    d.dropout_p = p;
    d.seed = seed;
    d.offset = offset;
    fwd_in in = make_inputs(&d, seed ^ 99, X_RANDOM);
    const layout L = {0, 0};
    fres R = run_fwd(&d, &in, L, 1);
    const uint64_t t = test_threshold(p);
    const int64_t rb = darn_mask_row_bytes(n);
    int64_t bad = 0;
    for (int64_t r = 0; r < m && bad < 5; ++r) {
        for (int64_t c = 0; c < n; ++c) {
            const int want = test_keep(seed, offset, (uint64_t)(r * n + c), t);
            if (mask_bit(R.mask, n, r, c) != want && bad++ < 5)
                cr_expect_fail("%s: mask bit (%lld, %lld) = %d, rule says %d", what, (long long)r, (long long)c,
                               mask_bit(R.mask, n, r, c), want);
        }
        for (int64_t c = n; c < rb * 8; ++c)
            if (((R.mask[r * rb + c / 8] >> (c % 8)) & 1) && bad++ < 5)
                cr_expect_fail("%s: padding bit %lld of row %lld is set", what, (long long)c, (long long)r);
    }
    fres_free(&R);
    free_inputs(&in);
}

Test(dropout, mask_bits_follow_the_rule)
{
    const int64_t ns[] = {1, 7, 31, 32, 33, 64, 100, 257, 2100};
    const double ps[] = {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 0x1p-33, 0x1p-32, 1.0 - 0x1p-53, 0.3333333333333333};
    const uint64_t seeds[] = {0, 42, UINT64_C(0x123456789abcdef0)};
    const uint64_t offsets[] = {0, 7, UINT64_C(0x1ffffffff)};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; ++a)
        for (size_t b = 0; b < sizeof ps / sizeof ps[0]; ++b) {
            const size_t s = (a + b) % 3, o = (a * 2 + b) % 3;
            const int64_t m = ns[a] > 1000 ? 3 : 11;
            char what[160];
            snprintf(what, sizeof what, "M %lld N %lld p %.17g seed %llx offset %llx", (long long)m,
                     (long long)ns[a], ps[b], (unsigned long long)seeds[s], (unsigned long long)offsets[o]);
            check_mask_rule(m, ns[a], ps[b], seeds[s], offsets[o], what);
        }
    /* thresholds recomputed here, spelled out */
    cr_expect_eq(test_threshold(0.5), UINT64_C(0x80000000));
    cr_expect_eq(test_threshold(1.0), UINT64_C(0x100000000));
    cr_expect_eq(test_threshold(0x1p-33), 0, "p = 2^-33 drops nothing");
    cr_expect_eq(test_threshold(1.0 - 0x1p-53), UINT64_C(0xFFFFFFFF));
}

/* p chosen so that floor(p * 2^32) lands exactly on an element's word: word == threshold is kept,
 * word == threshold - 1 is dropped, and the threshold is a floor (not a rounding) of p * 2^32. */
Test(dropout, threshold_boundary_is_exact)
{
    const int64_t m = 3, n = 50;
    const uint64_t seed = 2024, offset = 11;
    const int64_t probes[] = {0, 17, 49, 77, 149};
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; ++k) {
        const int64_t i = probes[k], r = i / n, c = i % n;
        const uint32_t w = darn_philox_word(seed, offset, (uint64_t)i);
        if (w < 2) continue; /* (cannot happen for these probes, but keep the arithmetic valid) */
        const struct { double p; int kept; const char *why; } cases[] = {
            {ldexp((double)w, -32), 1, "t == word"},
            {ldexp((double)w + 0.5, -32), 1, "p * 2^32 = word + 1/2: floor gives word"},
            {ldexp((double)w + 0.999, -32), 1, "p * 2^32 just below word + 1"},
            {ldexp((double)w + 1.0, -32), 0, "t == word + 1"},
            {ldexp((double)w - 0.5, -32), 1, "t == word - 1"},
        };
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; ++j) {
            darn_desc d;
            darn_desc_init(&d, DARN_RMSNORM, m, n, DARN_F32);
            d.dropout_p = cases[j].p;
            d.seed = seed;
            d.offset = offset;
            fwd_in in = make_inputs(&d, 6, X_RANDOM);
            const layout L = {0, 0};
            fres R = run_fwd(&d, &in, L, 1);
            cr_expect_eq(mask_bit(R.mask, n, r, c), cases[j].kept, "element %lld word %08x p %.17g (%s): bit %d",
                         (long long)i, w, cases[j].p, cases[j].why, mask_bit(R.mask, n, r, c));
            cr_expect_eq(test_keep(seed, offset, (uint64_t)i, test_threshold(cases[j].p)), cases[j].kept,
                         "test rule disagrees on %s", cases[j].why);
            fres_free(&R);
            free_inputs(&in);
        }
    }
}

Test(dropout, p_zero_keeps_all_with_zero_padding)
{
    const int64_t ns[] = {1, 5, 32, 40, 95};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; ++k) {
        darn_desc d;
        darn_desc_init(&d, DARN_RMSNORM, 9, ns[k], DARN_F32);
        d.seed = 77;
        fwd_in in = make_inputs(&d, 5, X_RANDOM);
        const layout L = {0, 0};
        fres R = run_fwd(&d, &in, L, 1);
        const int64_t rb = darn_mask_row_bytes(ns[k]);
        for (int64_t r = 0; r < d.rows; ++r)
            for (int64_t c = 0; c < rb * 8; ++c) {
                const int bit = (R.mask[r * rb + c / 8] >> (c % 8)) & 1;
                cr_assert_eq(bit, c < ns[k], "N %lld: bit (%lld, %lld) = %d", (long long)ns[k], (long long)r,
                             (long long)c, bit);
            }
        fres_free(&R);
        free_inputs(&in);
    }
}

/* p = 1: every element is +0 before the residual, whatever x holds (inf, NaN): the same bits as x = +0
 * with p = 0; the mask is all zero. */
Test(dropout, p_one_equals_zero_input)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int k = 0; k < 3; ++k)
        for (int norm = 0; norm < 2; ++norm) {
            darn_desc d;
            darn_desc_init(&d, norm ? DARN_LAYERNORM : DARN_RMSNORM, 13, 70, dts[k]);
            d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE;
            d.seed = 9;
            d.dropout_p = 1.0;
            fwd_in in = make_inputs(&d, 21, X_SPECIALS);
            const layout L = {0, 0};
            fres A = run_fwd(&d, &in, L, 1);
            for (int64_t i = 0; i < d.rows * darn_mask_row_bytes(d.cols); ++i)
                cr_assert_eq(A.mask[i], 0, "p = 1: mask byte %lld nonzero", (long long)i);
            fwd_in z = make_inputs(&d, 21, X_ZERO);
            darn_desc d0 = d;
            d0.dropout_p = 0.0;
            fres B = run_fwd(&d0, &z, L, 1);
            memcpy(A.mask, B.mask, (size_t)(d.rows * darn_mask_row_bytes(d.cols))); /* masks differ by design */
            char what[64];
            snprintf(what, sizeof what, "dtype %d norm %d", (int)dts[k], norm);
            expect_same_fwd(&d, &A, &B, what);
            /* and h is exactly the residual, rounded to the residual-out dtype */
            const darn_dtype ro = darn_residual_out_dtype(&d);
            for (int64_t r = 0; r < d.rows; ++r)
                for (int64_t c = 0; c < d.cols; ++c) {
                    const float want = sup_round(ro, sup_get(in.res, d.residual_dtype, d.cols, r, c));
                    const float got = sup_get(A.resout, ro, d.cols, r, c);
                    cr_assert(memcmp(&want, &got, 4) == 0, "%s: h(%lld, %lld) = %a, residual %a", what, (long long)r,
                              (long long)c, (double)got, (double)want);
                }
            fres_free(&A);
            fres_free(&B);
            free_inputs(&in);
            free_inputs(&z);
        }
}

/* ---- h = (keep ? (x * rs) * s : +0) + res, exactly ------------------------------------------------ */

static float mul(float a, float b)
{
    volatile float r = a * b; /* one rounding, never fused */
    return r;
}

static float add(float a, float b)
{
    volatile float r = a + b;
    return r;
}

Test(dropout, residual_out_is_h_exactly)
{
    const double ps[] = {0.1, 0.5, 0.9, 0.37};
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (size_t a = 0; a < sizeof ps / sizeof ps[0]; ++a)
        for (int k = 0; k < 3; ++k)
            for (int variant = 0; variant < 4; ++variant) {
                darn_desc d;
                darn_desc_init(&d, DARN_LAYERNORM, 17, 77, dts[k]);
                d.dropout_p = ps[a];
                d.seed = 1000 + a;
                d.offset = (uint64_t)variant;
                d.flags = (variant & 1 ? DARN_FLAG_HAS_RESIDUAL : 0u) | (variant & 2 ? DARN_FLAG_HAS_ROWSCALE : 0u);
                if (variant == 3) {
                    d.flags |= DARN_FLAG_RESIDUAL_IN_FP32;
                    d.residual_dtype = dts[(k + 1) % 3];
                }
                fwd_in in = make_inputs(&d, 55 + a, variant == 1 ? X_SPECIALS : X_RANDOM);
                const layout L = {3, 1};
                fres R = run_fwd(&d, &in, L, 1);
                const float s = (float)(1.0 / (1.0 - ps[a]));
                const uint64_t t = test_threshold(ps[a]);
                const darn_dtype ro = darn_residual_out_dtype(&d);
                int fails = 0;
                for (int64_t r = 0; r < d.rows; ++r)
                    for (int64_t c = 0; c < d.cols; ++c) {
                        float v = sup_get(in.x, d.x_dtype, d.cols, r, c);
                        if (d.flags & DARN_FLAG_HAS_ROWSCALE) v = mul(v, in.rs[r]);
                        v = test_keep(d.seed, d.offset, (uint64_t)(r * d.cols + c), t) ? mul(v, s) : 0.0f;
                        if (d.flags & DARN_FLAG_HAS_RESIDUAL) v = add(v, sup_get(in.res, d.residual_dtype, d.cols, r, c));
                        const float want = sup_round(ro, v);
                        const uint32_t wb = sup_get_bits(&want, DARN_F32, 1, 0, 0);
                        const float got = sup_get(R.resout, ro, d.cols, r, c);
                        const uint32_t gb = sup_get_bits(&got, DARN_F32, 1, 0, 0);
                        if (wb != gb && fails++ < 5)
                            cr_expect_fail("p %g dtype %d variant %d: h(%lld, %lld) = %a (%08x), want %a (%08x)",
                                           ps[a], (int)dts[k], variant, (long long)r, (long long)c, (double)got, gb,
                                           (double)want, wb);
                    }
                fres_free(&R);
                free_inputs(&in);
            }
    /* the scale itself: (float)(1 / (1 - p)) */
    cr_expect_eq((float)(1.0 / (1.0 - 0.1)), 0x1.1c71c8p+0f);
    cr_expect_eq((float)(1.0 / (1.0 - 0.5)), 2.0f);
}

/* ---- layouts ------------------------------------------------------------------------------------- */

Test(dropout, independent_of_strides_and_base_alignment)
{
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    const layout Ls[] = {{0, 0}, {1, 1}, {5, 3}, {64, 7}, {0, 5}};
    for (int k = 0; k < 3; ++k)
        for (int norm = 0; norm < 2; ++norm) {
            darn_desc d;
            darn_desc_init(&d, norm ? DARN_LAYERNORM : DARN_RMSNORM, 23, 90, dts[k]);
            d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE;
            d.residual_dtype = dts[(k + 2) % 3];
            d.dropout_p = 0.3;
            d.seed = 4242;
            d.offset = 17;
            fwd_in in = make_inputs(&d, 8, X_RANDOM);
            fres ref = run_fwd(&d, &in, Ls[0], 1);
            for (size_t l = 1; l < sizeof Ls / sizeof Ls[0]; ++l) {
                fres R = run_fwd(&d, &in, Ls[l], 1);
                char what[96];
                snprintf(what, sizeof what, "dtype %d norm %d pad %lld shift %zu", (int)dts[k], norm,
                         (long long)Ls[l].pad, Ls[l].shift);
                expect_same_fwd(&d, &ref, &R, what);
                fres_free(&R);
            }
            fres_free(&ref);
            free_inputs(&in);
        }
}

/* ---- seeds and offsets ---------------------------------------------------------------------------- */

Test(dropout, seeds_and_offsets_change_the_mask)
{
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, 8, 256, DARN_F16);
    d.dropout_p = 0.5;
    fwd_in in = make_inputs(&d, 3, X_RANDOM);
    const layout L = {0, 0};
    const struct { uint64_t seed, offset; } cfg[] = {
        {1, 0}, {2, 0}, {1, 1}, {1, UINT64_C(1) << 32}, {UINT64_C(1) << 32 | 1, 0}, {1, 2048}};
    const size_t nc = sizeof cfg / sizeof cfg[0];
    const size_t bytes = (size_t)(d.rows * darn_mask_row_bytes(d.cols));
    fres R[6];
    for (size_t i = 0; i < nc; ++i) {
        d.seed = cfg[i].seed;
        d.offset = cfg[i].offset;
        R[i] = run_fwd(&d, &in, L, 1);
    }
    for (size_t i = 0; i < nc; ++i)
        for (size_t j = 0; j < i; ++j)
            cr_expect(memcmp(R[i].mask, R[j].mask, bytes) != 0, "(seed %llx, offset %llx) and (%llx, %llx) agree",
                      (unsigned long long)cfg[i].seed, (unsigned long long)cfg[i].offset,
                      (unsigned long long)cfg[j].seed, (unsigned long long)cfg[j].offset);
    /* the same (seed, offset) twice gives the same mask */
    d.seed = cfg[0].seed;
    d.offset = cfg[0].offset;
    fres again = run_fwd(&d, &in, L, 1);
    cr_expect_eq(memcmp(again.mask, R[0].mask, bytes), 0, "same seed and offset, different mask");
    fres_free(&again);
    for (size_t i = 0; i < nc; ++i) fres_free(&R[i]);
    free_inputs(&in);
}

/* rng_seed_ptr / rng_offset_ptr (host memory on the CPU backend): seed = *ptr, offset = *ptr + desc.offset
 * (uint64 wrap-around), and desc.seed is ignored. */
Test(dropout, graph_safe_pointers)
{
    darn_desc d;
    darn_desc_init(&d, DARN_LAYERNORM, 9, 100, DARN_BF16);
    d.dropout_p = 0.4;
    d.flags = DARN_FLAG_HAS_RESIDUAL;
    fwd_in in = make_inputs(&d, 4, X_RANDOM);
    const layout L = {0, 0};
    const struct { uint64_t seed, base, add; } cfg[] = {
        {123, 0, 0}, {123, 1000, 24}, {UINT64_C(0xdeadbeefcafef00d), UINT64_C(0xfffffffffffffffe), 5},
        {7, UINT64_C(0xffffffff), 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; ++i) {
        darn_desc a = d;
        a.seed = cfg[i].seed;
        a.offset = cfg[i].base + cfg[i].add; /* wraps */
        fres A = run_fwd(&a, &in, L, 1);
        darn_desc b = d;
        const uint64_t sp = cfg[i].seed, op = cfg[i].base;
        b.seed = ~cfg[i].seed; /* must be ignored */
        b.offset = cfg[i].add;
        b.rng_seed_ptr = &sp;
        b.rng_offset_ptr = &op;
        fres B = run_fwd(&b, &in, L, 1);
        char what[96];
        snprintf(what, sizeof what, "pointer config %zu", i);
        expect_same_fwd(&d, &A, &B, what);
        fres_free(&A);
        fres_free(&B);
    }
    free_inputs(&in);
}

/* ---- backward: packed mask vs regeneration -------------------------------------------------------- */

typedef struct bres {
    void *dx, *dres, *dw, *db;
} bres;

static void bres_free(bres *b)
{
    sup_free(b->dx);
    sup_free(b->dres);
    sup_free(b->dw);
    sup_free(b->db);
}

static bres run_bwd(const darn_desc *d, const fwd_in *in, const fres *F, const void *dy, const void *dro,
                    const uint8_t *mask)
{
    const int64_t m = d->rows, n = d->cols;
    const int has_res = (d->flags & DARN_FLAG_HAS_RESIDUAL) != 0, has_bias = (d->flags & DARN_FLAG_HAS_BIAS) != 0;
    bres B;
    B.dx = sup_alloc(sup_tensor_bytes(d->x_dtype, m, n, 0), 64);
    B.dres = sup_alloc(sup_tensor_bytes(d->residual_dtype, m, n, 0), 64);
    B.dw = sup_alloc((size_t)n * 4, 64);
    B.db = sup_alloc((size_t)n * 4, 64);
    darn_bwd_tensors t;
    memset(&t, 0, sizeof t);
    t.dy = dy;
    t.h = F->resout;
    t.weight = in->w;
    t.rstd = F->rstd;
    t.mean = d->norm == DARN_LAYERNORM ? F->mean : NULL;
    t.rowscale = (d->flags & DARN_FLAG_HAS_ROWSCALE) ? in->rs : NULL;
    t.dresidual_out = dro;
    t.mask = mask;
    t.dx = B.dx;
    t.dresidual = has_res ? B.dres : NULL;
    t.dweight = B.dw;
    t.dbias = has_bias ? B.db : NULL;
    size_t ws_bytes = 0;
    cr_assert_eq(darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &ws_bytes), DARN_OK, "%s", darn_last_error());
    void *ws = sup_alloc(ws_bytes, 64);
    cr_assert_eq(darn_bwd(d, &t, ws, ws_bytes, DARN_BACKEND_CPU, NULL), DARN_OK, "darn_bwd: %s", darn_last_error());
    sup_free(ws);
    return B;
}

static void expect_same_bwd(const darn_desc *d, const bres *a, const bres *b, const char *what)
{
    const int64_t m = d->rows, n = d->cols;
    cr_expect_lt(sup_compare(a->dx, 0, b->dx, 0, d->x_dtype, m, n, 0), 0, "%s: dx differs", what);
    if (d->flags & DARN_FLAG_HAS_RESIDUAL)
        cr_expect_lt(sup_compare(a->dres, 0, b->dres, 0, d->residual_dtype, m, n, 0), 0, "%s: dresidual differs",
                     what);
    cr_expect_lt(sup_compare(a->dw, 0, b->dw, 0, d->weight_dtype, 1, n, 0), 0, "%s: dweight differs", what);
    if (d->flags & DARN_FLAG_HAS_BIAS)
        cr_expect_lt(sup_compare(a->db, 0, b->db, 0, d->bias_dtype, 1, n, 0), 0, "%s: dbias differs", what);
}

Test(dropout, backward_mask_equals_regeneration)
{
    const double ps[] = {0.0, 0.2, 0.5, 0.95, 1.0};
    const darn_dtype dts[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (size_t a = 0; a < sizeof ps / sizeof ps[0]; ++a)
        for (int k = 0; k < 3; ++k)
            for (int norm = 0; norm < 2; ++norm) {
                darn_desc d;
                darn_desc_init(&d, norm ? DARN_LAYERNORM : DARN_RMSNORM, 31, 130, dts[k]);
                d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE;
                d.dropout_p = ps[a];
                d.seed = 31337 + (uint64_t)k;
                d.offset = UINT64_C(0xfffffffff0) + a;
                fwd_in in = make_inputs(&d, 90 + a, X_RANDOM);
                const layout L = {0, 0};
                fres F = run_fwd(&d, &in, L, 1);
                const darn_dtype ro = darn_residual_out_dtype(&d);
                sup_rng g = sup_rng_make(1 + a);
                void *dy = sup_alloc(sup_tensor_bytes(d.out_dtype, d.rows, d.cols, 0), 64);
                void *dro = sup_alloc(sup_tensor_bytes(ro, d.rows, d.cols, 0), 64);
                sup_fill_uniform(dy, d.out_dtype, d.rows, d.cols, 0, &g, -1.0f, 1.0f);
                sup_fill_uniform(dro, ro, d.rows, d.cols, 0, &g, -1.0f, 1.0f);
                char what[96];
                snprintf(what, sizeof what, "p %g dtype %d norm %d", ps[a], (int)dts[k], norm);
                bres A = run_bwd(&d, &in, &F, dy, dro, F.mask);
                bres B = run_bwd(&d, &in, &F, dy, dro, NULL);
                expect_same_bwd(&d, &A, &B, what);
                /* dropped elements get dx = +0 exactly */
                for (int64_t r = 0; r < d.rows; ++r)
                    for (int64_t c = 0; c < d.cols; ++c)
                        if (!mask_bit(F.mask, d.cols, r, c))
                            cr_assert_eq(sup_get_bits(A.dx, d.x_dtype, d.cols, r, c), 0u,
                                         "%s: dropped (%lld, %lld) has dx bits %x", what, (long long)r, (long long)c,
                                         sup_get_bits(A.dx, d.x_dtype, d.cols, r, c));
                /* and with the graph-safe pointers, regenerating gives the same bits again */
                darn_desc dp = d;
                const uint64_t sp = d.seed, op = d.offset - 5;
                dp.seed = 0;
                dp.offset = 5;
                dp.rng_seed_ptr = &sp;
                dp.rng_offset_ptr = &op;
                bres C = run_bwd(&dp, &in, &F, dy, dro, NULL);
                expect_same_bwd(&d, &A, &C, what);
                bres_free(&A);
                bres_free(&B);
                bres_free(&C);
                sup_free(dy);
                sup_free(dro);
                fres_free(&F);
                free_inputs(&in);
            }
}
