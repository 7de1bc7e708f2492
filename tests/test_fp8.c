/*
 * test_fp8.c — fp8 outputs (docs/numerics.md §9), on the CPU backend:
 *   - the four encodings' decoders over all 256 codes against an independent ldexp formula, known answers;
 *   - encode(decode(c)) == c for every finite code; inf and NaN codes per encoding;
 *   - the encoders against an independent nearest-value search (RNE ties to the even code, saturation),
 *     over every exponent x 8 leading mantissa bits x sticky patterns, and named boundary cases;
 *   - darn_fwd with an fp8 out equals encode(y_f32 * scale) of the f32-out run element by element, amax is
 *     max |y| (NaN if a y is NaN, +0 for M = 0), scale by value and by pointer give the same bits;
 *   - dy's dtype decoupled from out_dtype in the backward;
 *   - validation: each bad input has its status and a message naming it, and writes nothing.
 */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <darn/darn.h>

#include "contract.h" /* fp8.h, and darn_f16_to_f32 */
#include "support.h"

/* ---- the formats, described independently of src/fp8.h ------------------------------------------ */
typedef struct fmt {
    const char *name;
    darn_dtype dt;
    int e, m, bias;
    int ocp;      /* 1: OCP (signed zero), 0: FNUZ (0x80 is the only NaN, no -0) */
    int has_inf;  /* e5m2 only */
    double max;   /* largest finite */
    uint8_t max_code, nan_code;
    uint8_t (*enc)(float);
    float (*dec)(uint8_t);
} fmt;

static const fmt FMTS[4] = {
    {"e4m3fn", DARN_FP8_E4M3FN, 4, 3, 7, 1, 0, 448.0, 0x7E, 0x7F, darn_f32_to_e4m3fn, darn_e4m3fn_to_f32},
    {"e5m2", DARN_FP8_E5M2, 5, 2, 15, 1, 1, 57344.0, 0x7B, 0x7E, darn_f32_to_e5m2, darn_e5m2_to_f32},
    {"e4m3fnuz", DARN_FP8_E4M3FNUZ, 4, 3, 8, 0, 0, 240.0, 0x7F, 0x80, darn_f32_to_e4m3fnuz, darn_e4m3fnuz_to_f32},
    {"e5m2fnuz", DARN_FP8_E5M2FNUZ, 5, 2, 16, 0, 0, 57344.0, 0x7F, 0x80, darn_f32_to_e5m2fnuz, darn_e5m2fnuz_to_f32},
};

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static unsigned efield(const fmt *f, unsigned c) { return (c >> f->m) & ((1u << f->e) - 1u); }
static unsigned mfield(const fmt *f, unsigned c) { return c & ((1u << f->m) - 1u); }
static int ref_is_nan(const fmt *f, unsigned c)
{
    if (!f->ocp) return c == 0x80u;
    if (f->has_inf) return efield(f, c) == (1u << f->e) - 1u && mfield(f, c) != 0u;
    return (c & 0x7Fu) == 0x7Fu;
}
static int ref_is_inf(const fmt *f, unsigned c) { return f->has_inf && efield(f, c) == (1u << f->e) - 1u && mfield(f, c) == 0u; }
/* value of a finite code: (-1)^s * 2^(1 - bias - m) * mf (subnormal) or 2^(e - bias - m) * (2^m + mf) */
static double ref_value(const fmt *f, unsigned c)
{
    const double s = (c & 0x80u) ? -1.0 : 1.0;
    const unsigned ef = efield(f, c), mf = mfield(f, c);
    if (ef == 0) return s * ldexp((double)mf, 1 - f->bias - f->m);
    return s * ldexp((double)((1u << f->m) + mf), (int)ef - f->bias - f->m);
}

/* Independent encoder: the nearest of the finite non-negative magnitudes (codes 0 .. 0x7F that are finite),
 * ties to the even code, |x| >= max -> max; then the sign per encoding. */
static uint8_t ref_encode(const fmt *f, float x)
{
    if (isnan(x)) return f->nan_code;
    const double a = fabs((double)x);
    unsigned best = 0;
    if (a >= f->max) best = f->max_code;
    else {
        double bd = INFINITY;
        for (unsigned c = 0; c <= f->max_code; c++) {
            const double d = fabs(ref_value(f, c) - a);
            if (d < bd || (d == bd && (c & 1u) == 0u)) bd = d, best = c;
        }
    }
    if (best == 0) return (f->ocp && signbit(x)) ? 0x80u : 0x00u;
    return (uint8_t)(best | (signbit(x) ? 0x80u : 0u));
}

/* ---- decode -------------------------------------------------------------------------------------- */
Test(fp8, decode_all_256_codes)
{
    for (int k = 0; k < 4; k++) {
        const fmt *f = &FMTS[k];
        int nans = 0;
        for (unsigned c = 0; c < 256; c++) {
            const float v = f->dec((uint8_t)c);
            if (ref_is_nan(f, c)) {
                nans++;
                cr_expect_eq(bits(v), 0x7FC00000u, "%s 0x%02x: NaN code decodes to 0x%08x", f->name, c, bits(v));
            } else if (ref_is_inf(f, c)) {
                cr_expect(isinf(v) && (signbit(v) != 0) == ((c & 0x80u) != 0), "%s 0x%02x: inf", f->name, c);
            } else {
                const double want = ref_value(f, c);
                cr_expect((double)v == want && (signbit(v) != 0) == (signbit(want) != 0 || (f->ocp && c == 0x80u)),
                          "%s 0x%02x: %a, want %a", f->name, c, (double)v, want);
            }
        }
        cr_expect_eq(nans, f->ocp ? (f->has_inf ? 6 : 2) : 1, "%s has %d NaN codes", f->name, nans);
        cr_expect_eq((double)f->dec(f->max_code), f->max, "%s max", f->name);
        cr_expect_eq((double)f->dec((uint8_t)(f->max_code | 0x80u)), -f->max, "%s -max", f->name);
    }
    /* known answers */
    cr_expect_eq(darn_e4m3fn_to_f32(0x01), 0x1p-9f);
    cr_expect_eq(darn_e4m3fn_to_f32(0x08), 0x1p-6f);
    cr_expect_eq(darn_e4m3fn_to_f32(0x38), 1.0f);
    cr_expect_eq(darn_e4m3fn_to_f32(0x7E), 448.0f);
    cr_expect_eq(bits(darn_e4m3fn_to_f32(0x80)), 0x80000000u);
    cr_expect_eq(darn_e5m2_to_f32(0x01), 0x1p-16f);
    cr_expect_eq(darn_e5m2_to_f32(0x3C), 1.0f);
    cr_expect_eq(darn_e5m2_to_f32(0x7B), 57344.0f);
    cr_expect_eq(darn_e5m2_to_f32(0x7C), INFINITY);
    cr_expect_eq(darn_e5m2_to_f32(0xFC), -INFINITY);
    cr_expect_eq(darn_e4m3fnuz_to_f32(0x01), 0x1p-10f);
    cr_expect_eq(darn_e4m3fnuz_to_f32(0x40), 1.0f);
    cr_expect_eq(darn_e4m3fnuz_to_f32(0x7F), 240.0f);
    cr_expect_eq(darn_e4m3fnuz_to_f32(0xFF), -240.0f);
    cr_expect_eq(darn_e5m2fnuz_to_f32(0x01), 0x1p-17f);
    cr_expect_eq(darn_e5m2fnuz_to_f32(0x40), 1.0f);
    cr_expect_eq(darn_e5m2fnuz_to_f32(0x7F), 57344.0f);
    /* e5m2 is the top byte of an f16 */
    for (unsigned c = 0; c < 256; c++)
        if (!ref_is_nan(&FMTS[1], c))
            cr_expect_eq(bits(darn_e5m2_to_f32((uint8_t)c)), bits(darn_f16_to_f32((uint16_t)(c << 8))), "e5m2 0x%02x", c);
}

Test(fp8, encode_decode_round_trip)
{
    for (int k = 0; k < 4; k++) {
        const fmt *f = &FMTS[k];
        for (unsigned c = 0; c < 256; c++) {
            const uint8_t got = f->enc(f->dec((uint8_t)c));
            if (ref_is_nan(f, c)) cr_expect_eq(got, f->nan_code, "%s NaN 0x%02x -> 0x%02x", f->name, c, got);
            else if (ref_is_inf(f, c))
                cr_expect_eq(got, (uint8_t)(f->max_code | (c & 0x80u)), "%s inf 0x%02x saturates: 0x%02x", f->name, c, got);
            else cr_expect_eq(got, (uint8_t)c, "%s 0x%02x -> %a -> 0x%02x", f->name, c, (double)f->dec((uint8_t)c), got);
        }
    }
}

/* ---- encode against the independent search ------------------------------------------------------- */
Test(fp8, encode_matches_reference_search)
{
    static const uint32_t low[] = {0x0000u, 0x0001u, 0x3FFFu, 0x4000u, 0x4001u, 0x7FFFu}; /* the low 15 bits */
    for (int k = 0; k < 4; k++) {
        const fmt *f = &FMTS[k];
        long bad = 0;
        for (uint32_t e = 0; e < 256; e++)
            for (uint32_t top = 0; top < 256; top++)
                for (size_t l = 0; l < sizeof low / sizeof low[0]; l++)
                    for (uint32_t s = 0; s < 2; s++) {
                        const float x = fbits((s << 31) | (e << 23) | (top << 15) | low[l]);
                        const uint8_t got = f->enc(x), want = ref_encode(f, x);
                        if (got != want && bad++ < 5)
                            cr_expect_eq(got, want, "%s(%a = 0x%08x) = 0x%02x, want 0x%02x", f->name, (double)x, bits(x),
                                         got, want);
                    }
        cr_expect_eq(bad, 0, "%s: %ld mismatches", f->name, bad);
        /* and arbitrary bit patterns */
        sup_rng g = sup_rng_make(0xF8F8u + (uint64_t)k);
        for (int i = 0; i < 200000; i++) {
            const float x = fbits((uint32_t)sup_rng_u64(&g));
            const uint8_t got = f->enc(x), want = ref_encode(f, x);
            if (got != want && bad++ < 5)
                cr_expect_eq(got, want, "%s(0x%08x) = 0x%02x, want 0x%02x", f->name, bits(x), got, want);
        }
    }
}

/* Named cases: ties (RNE), saturation boundaries, inf, NaN, -0, subnormals. */
Test(fp8, ties_saturation_and_specials)
{
    for (int k = 0; k < 4; k++) {
        const fmt *f = &FMTS[k];
        const uint8_t neg = 0x80u, mx = f->max_code;
        const double prev = ref_value(f, mx - 1u), ulp = f->max - prev;
        const float next_would_be_mid = (float)(f->max + ulp / 2); /* midpoint of max and the next binade step */
        const float cases[][2] = {
            {(float)f->max, mx},
            {nextafterf((float)f->max, INFINITY), mx},
            {nextafterf((float)f->max, 0.0f), mx},
            {next_would_be_mid, mx},
            {nextafterf(next_would_be_mid, INFINITY), mx},
            {(float)(f->max + ulp), mx},
            {FLT_MAX, mx},
            {INFINITY, mx},
            {(float)((f->max + prev) / 2), (float)((mx & 1u) ? mx - 1u : mx)}, /* tie below max: the even code */
            {nextafterf((float)((f->max + prev) / 2), INFINITY), mx},
            {nextafterf((float)((f->max + prev) / 2), 0.0f), (float)(mx - 1u)},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const float x = cases[i][0];
            const uint8_t want = (uint8_t)cases[i][1];
            cr_expect_eq(f->enc(x), want, "%s(%a) = 0x%02x, want 0x%02x", f->name, (double)x, f->enc(x), want);
            cr_expect_eq(f->enc(-x), (uint8_t)(want | neg), "%s(-%a) = 0x%02x", f->name, (double)x, f->enc(-x));
        }
        /* NaN: any sign and payload -> the canonical code */
        const uint32_t nans[] = {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7FA12345u};
        for (size_t i = 0; i < 5; i++)
            cr_expect_eq(f->enc(fbits(nans[i])), f->nan_code, "%s(NaN 0x%08x)", f->name, nans[i]);
        /* zeros */
        cr_expect_eq(f->enc(0.0f), 0x00u, "%s(+0)", f->name);
        cr_expect_eq(f->enc(-0.0f), f->ocp ? 0x80u : 0x00u, "%s(-0)", f->name);
        /* subnormals: unit = smallest subnormal */
        const double unit = ldexp(1.0, 1 - f->bias - f->m);
        const struct { double v; unsigned code; } sub[] = {
            {unit / 2, 0},                            /* tie between 0 and 1: even, 0 */
            {(double)nextafterf((float)(unit / 2), 1.0f), 1},
            {(double)nextafterf((float)(unit / 2), 0.0f), 0},
            {unit, 1},
            {1.5 * unit, 2},                          /* tie between 1 and 2: 2 */
            {2.5 * unit, 2},                          /* tie between 2 and 3: 2 */
            {((1u << f->m) - 0.5) * unit, 1u << f->m}, /* tie between the largest subnormal and the smallest normal */
            {ldexp(1.0, -130), 0},                    /* an fp32 subnormal */
        };
        for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
            const float x = (float)sub[i].v;
            cr_assert_eq((double)x, sub[i].v, "case %zu not exact in fp32", i);
            cr_expect_eq(f->enc(x), sub[i].code, "%s(%a) = 0x%02x, want 0x%02x", f->name, (double)x, f->enc(x), sub[i].code);
            const unsigned nz = sub[i].code ? (sub[i].code | 0x80u) : (f->ocp ? 0x80u : 0x00u);
            cr_expect_eq(f->enc(-x), nz, "%s(-%a) = 0x%02x, want 0x%02x", f->name, (double)x, f->enc(-x), nz);
        }
        cr_expect_eq(f->enc(fbits(0x00000001u)), 0x00u, "%s(smallest fp32 subnormal)", f->name);
        cr_expect_eq(f->enc(fbits(0x80000001u)), f->ocp ? 0x80u : 0x00u, "%s(-smallest fp32 subnormal)", f->name);
    }
    /* a tie in the normal range: e4m3fn 1 + 1/16 lies between 1 (0x38) and 1.125 (0x39): even -> 0x38 */
    cr_expect_eq(darn_f32_to_e4m3fn(1.0625f), 0x38);
    cr_expect_eq(darn_f32_to_e4m3fn(1.1875f), 0x3A); /* between 0x39 and 0x3A: 0x3A */
    cr_expect_eq(darn_f32_to_e5m2(1.125f), 0x3C);    /* between 1 and 1.25: even 0x3C */
    cr_expect_eq(darn_f32_to_e5m2(1.375f), 0x3E);    /* between 1.25 and 1.5: even 0x3E */
    cr_expect_eq(darn_f32_to_e4m3fn(464.0f), 0x7E);  /* midpoint of 448 and the would-be 480 */
    cr_expect_eq(darn_f32_to_e5m2(61440.0f), 0x7B);  /* midpoint of 57344 and the would-be 65536 (e5m2's inf) */
    cr_expect_eq(darn_f32_to_e4m3fnuz(248.0f), 0x7F);
}

Test(fp8, amax_term_order)
{
    cr_expect_eq(darn_amax_term(-3.0f), bits(3.0f));
    cr_expect_eq(darn_amax_term(-0.0f), 0u);
    cr_expect_eq(darn_amax_term(-INFINITY), 0x7F800000u);
    cr_expect_eq(darn_amax_term(fbits(0xFFC12345u)), 0x7FC00000u);
    cr_expect(darn_amax_combine(darn_amax_term(INFINITY), darn_amax_term(NAN)) == 0x7FC00000u);
    cr_expect(darn_amax_combine(darn_amax_term(2.0f), darn_amax_term(-2.5f)) == bits(2.5f));
}

/* ---- darn_fwd with an fp8 out ---------------------------------------------------------------------- */
enum { FM = 37, FN = 300 };

typedef struct fwd_case {
    darn_desc d;
    void *x, *res, *w, *b;
    float *rowscale;
} fwd_case;

static void case_make(fwd_case *c, darn_norm norm, uint32_t flags, double p, uint64_t seed, float amp)
{
    darn_desc_init(&c->d, norm, FM, FN, DARN_BF16);
    c->d.residual_dtype = DARN_F32;
    c->d.weight_dtype = c->d.bias_dtype = DARN_F32;
    c->d.flags = flags;
    c->d.dropout_p = p;
    c->d.seed = seed;
    c->d.offset = 3;
    sup_rng g = sup_rng_make(seed);
    c->x = sup_alloc(sup_tensor_bytes(DARN_BF16, FM, FN, 0), 16);
    c->res = sup_alloc(sup_tensor_bytes(DARN_F32, FM, FN, 0), 16);
    c->w = sup_alloc(4 * FN, 16);
    c->b = sup_alloc(4 * FN, 16);
    c->rowscale = sup_alloc(4 * FM, 16);
    sup_fill_uniform(c->x, DARN_BF16, FM, FN, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(c->res, DARN_F32, FM, FN, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(c->w, DARN_F32, 1, FN, 0, &g, -amp, amp); /* wide weights: y reaches past the fp8 max */
    sup_fill_uniform(c->b, DARN_F32, 1, FN, 0, &g, -0.5f, 0.5f);
    sup_fill_f32(c->rowscale, FM, &g, 0.5f, 1.5f);
}

static void case_free(fwd_case *c)
{
    sup_free(c->x); sup_free(c->res); sup_free(c->w); sup_free(c->b); sup_free(c->rowscale);
}

typedef struct fwd_out {
    void *out, *resout;
    uint8_t *mask;
    float *rstd, *mean, amax;
} fwd_out;

static darn_status run_fwd(const fwd_case *c, const darn_desc *d, fwd_out *o, int want_amax)
{
    const size_t es = darn_dtype_size(d->out_dtype);
    o->out = sup_alloc((size_t)FM * FN * es, 16);
    o->resout = sup_alloc(sup_tensor_bytes(darn_residual_out_dtype(d), FM, FN, 0), 16);
    o->mask = sup_alloc((size_t)FM * (size_t)darn_mask_row_bytes(FN), 16);
    o->rstd = sup_alloc(4 * FM, 16);
    o->mean = sup_alloc(4 * FM, 16);
    memset(&o->amax, 0xA5, 4);
    darn_fwd_tensors t = {0};
    t.x = c->x;
    t.residual = (d->flags & DARN_FLAG_HAS_RESIDUAL) ? c->res : NULL;
    t.rowscale = (d->flags & DARN_FLAG_HAS_ROWSCALE) ? c->rowscale : NULL;
    t.weight = c->w;
    t.bias = (d->flags & DARN_FLAG_HAS_BIAS) ? c->b : NULL;
    t.out = o->out;
    t.residual_out = o->resout;
    t.mask = o->mask;
    t.rstd = o->rstd;
    t.mean = d->norm == DARN_LAYERNORM ? o->mean : NULL;
    t.amax = want_amax ? &o->amax : NULL;
    return darn_fwd(d, &t, NULL, 0, DARN_BACKEND_CPU, NULL);
}

static void out_free(fwd_out *o)
{
    sup_free(o->out); sup_free(o->resout); sup_free(o->mask); sup_free(o->rstd); sup_free(o->mean);
}

static void check_fp8_forward(darn_norm norm, uint32_t flags, double p, float amp, int nan_row)
{
    fwd_case c;
    case_make(&c, norm, flags, p, 1000u + flags, amp);
    if (nan_row) sup_set(c.x, DARN_BF16, FN, 5, 17, NAN); /* row 5: y is NaN (the row's sums are) */
    fwd_out ref;
    darn_desc d32 = c.d;
    d32.out_dtype = DARN_F32;
    cr_assert_eq(run_fwd(&c, &d32, &ref, 0), DARN_OK, "%s", darn_last_error());
    uint32_t amax_ref = 0;
    for (int64_t i = 0; i < (int64_t)FM * FN; i++) amax_ref = darn_amax_combine(amax_ref, darn_amax_term(((float *)ref.out)[i]));
    if (nan_row) cr_assert_eq(amax_ref, 0x7FC00000u);
    static const float scales[] = {1.0f, 0.3712f, 100.0f, 3.0e4f, 0x1p-20f};
    for (int k = 0; k < 4; k++) {
        const fmt *f = &FMTS[k];
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            for (int by_ptr = 0; by_ptr < 2; by_ptr++) {
                darn_desc d = c.d;
                d.out_dtype = f->dt;
                float *sp = sup_alloc(4, 16);
                *sp = scales[si];
                if (by_ptr) {
                    d.out_scale = NAN; /* ignored with a pointer */
                    d.out_scale_ptr = sp;
                } else {
                    d.out_scale = scales[si];
                }
                fwd_out o;
                cr_assert_eq(run_fwd(&c, &d, &o, 1), DARN_OK, "%s: %s", f->name, darn_last_error());
                long bad = 0, sat = 0;
                for (int64_t i = 0; i < (int64_t)FM * FN; i++) {
                    const float y = ((float *)ref.out)[i];
                    const uint8_t want = f->enc(y * scales[si]), got = ((uint8_t *)o.out)[i];
                    sat += (want & 0x7Fu) == f->max_code;
                    if (got != want && bad++ < 3)
                        cr_expect_eq(got, want, "%s scale %g elem %lld: y %a: 0x%02x, want 0x%02x", f->name,
                                     (double)scales[si], (long long)i, (double)y, got, want);
                }
                cr_expect_eq(bad, 0, "%s scale %g ptr %d: %ld codes differ", f->name, (double)scales[si], by_ptr, bad);
                if (scales[si] == 3.0e4f) cr_expect(sat > 0, "%s: the case reaches no saturation", f->name);
                cr_expect_eq(bits(o.amax), amax_ref, "%s: amax 0x%08x, want 0x%08x", f->name, bits(o.amax), amax_ref);
                const darn_dtype rd = darn_residual_out_dtype(&d);
                cr_expect_eq(sup_compare(o.resout, 0, ref.resout, 0, rd, FM, FN, 0), -1, "%s: residual_out differs", f->name);
                cr_expect_eq(memcmp(o.mask, ref.mask, (size_t)FM * (size_t)darn_mask_row_bytes(FN)), 0, "mask");
                cr_expect_eq(memcmp(o.rstd, ref.rstd, 4 * FM), 0, "%s: rstd differs", f->name);
                if (norm == DARN_LAYERNORM) cr_expect_eq(memcmp(o.mean, ref.mean, 4 * FM), 0, "mean");
                out_free(&o);
                sup_free(sp);
            }
        }
    }
    out_free(&ref);
    case_free(&c);
}

Test(fp8, forward_rms_equals_cast_of_f32_path) { check_fp8_forward(DARN_RMSNORM, DARN_FLAG_HAS_RESIDUAL, 0.0, 40.0f, 0); }
Test(fp8, forward_layer_dropout_bias_rowscale)
{
    check_fp8_forward(DARN_LAYERNORM, DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE, 0.25, 40.0f, 0);
}
Test(fp8, forward_nan_row_gives_nan_amax) { check_fp8_forward(DARN_RMSNORM, DARN_FLAG_HAS_RESIDUAL, 0.0, 3.0f, 1); }

/* Enough work for the OpenMP rows loop (M·N >= 2^18): amax is reduced over threads, and stays exact. */
Test(fp8, forward_amax_over_threads)
{
    enum { BM = 1024, BN = 512 };
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, BM, BN, DARN_F32);
    float *x = sup_alloc(4u * BM * BN, 16), *w = sup_alloc(4u * BN, 16), *y = sup_alloc(4u * BM * BN, 16);
    uint8_t *y8 = sup_alloc((size_t)BM * BN, 16);
    sup_rng g = sup_rng_make(11);
    sup_fill_uniform(x, DARN_F32, BM, BN, 0, &g, -2.0f, 2.0f);
    sup_fill_uniform(w, DARN_F32, 1, BN, 0, &g, -3.0f, 3.0f);
    x[777 * BN + 5] = 1e4f; /* one row with a large |y| */
    darn_fwd_tensors t = {0};
    t.x = x;
    t.weight = w;
    t.out = y;
    cr_assert_eq(darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    uint32_t want = 0;
    for (int64_t i = 0; i < (int64_t)BM * BN; i++) want = darn_amax_combine(want, darn_amax_term(y[i]));
    float amax;
    d.out_dtype = DARN_FP8_E5M2;
    d.out_scale = 0.5f;
    t.out = y8;
    t.amax = &amax;
    for (int rep = 0; rep < 3; rep++) {
        memset(&amax, 0xA5, 4);
        cr_assert_eq(darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
        cr_expect_eq(bits(amax), want, "amax 0x%08x, want 0x%08x", bits(amax), want);
    }
    for (int64_t i = 0; i < (int64_t)BM * BN; i += 997) cr_expect_eq(y8[i], darn_f32_to_e5m2(y[i] * 0.5f), "elem %lld", (long long)i);
    sup_free(x); sup_free(w); sup_free(y); sup_free(y8);
}

Test(fp8, forward_m0_writes_amax_zero)
{
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, 0, 8, DARN_F32);
    d.out_dtype = DARN_FP8_E4M3FN;
    float amax;
    memset(&amax, 0xA5, 4);
    darn_fwd_tensors t = {0};
    t.amax = &amax;
    cr_assert_eq(darn_fwd(&d, &t, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(bits(amax), 0u, "amax of no elements is +0, got 0x%08x", bits(amax));
    /* a row block of no rows (darn_fwd_rows) likewise: its amax is that of no elements */
    d.rows = 40;
    memset(&amax, 0xA5, 4);
    cr_assert_eq(darn_fwd_rows(&d, 16, 0, &t, NULL, 0, DARN_BACKEND_CPU, NULL), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(bits(amax), 0u, "darn_fwd_rows: amax of no rows is +0, got 0x%08x", bits(amax));
}

/* ---- the backward's dy dtype ------------------------------------------------------------------------ */
typedef struct bwd_res { void *dx, *dres; float *dw; } bwd_res;

static darn_status run_bwd(const darn_desc *d, const void *dy, const void *h, const void *w, const float *rstd,
                           bwd_res *o)
{
    o->dx = sup_alloc(sup_tensor_bytes(d->x_dtype, FM, FN, 0), 16);
    o->dres = sup_alloc(sup_tensor_bytes(d->residual_dtype, FM, FN, 0), 16);
    o->dw = sup_alloc(4 * FN, 16);
    size_t ws_bytes = 0;
    darn_status st = darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &ws_bytes);
    if (st != DARN_OK) return st;
    void *ws = sup_alloc(ws_bytes, 16);
    darn_bwd_tensors t = {0};
    t.dy = dy;
    t.h = h;
    t.weight = w;
    t.rstd = rstd;
    t.dx = o->dx;
    t.dresidual = o->dres;
    t.dweight = o->dw;
    st = darn_bwd(d, &t, ws, ws_bytes, DARN_BACKEND_CPU, NULL);
    sup_free(ws);
    return st;
}

Test(fp8, backward_dy_dtype_decoupled)
{
    fwd_case c;
    case_make(&c, DARN_RMSNORM, DARN_FLAG_HAS_RESIDUAL, 0.1, 77, 2.0f);
    fwd_out fo;
    cr_assert_eq(run_fwd(&c, &c.d, &fo, 0), DARN_OK, "%s", darn_last_error());
    /* dy values that bf16 holds exactly, once as bf16 and once as f32 */
    void *dy16 = sup_alloc(sup_tensor_bytes(DARN_BF16, FM, FN, 0), 16);
    void *dy32 = sup_alloc(sup_tensor_bytes(DARN_F32, FM, FN, 0), 16);
    sup_rng g = sup_rng_make(5);
    sup_fill_uniform(dy16, DARN_BF16, FM, FN, 0, &g, -1.0f, 1.0f);
    for (int64_t r = 0; r < FM; r++)
        for (int64_t col = 0; col < FN; col++) sup_set(dy32, DARN_F32, FN, r, col, sup_get(dy16, DARN_BF16, FN, r, col));
    const void *h = fo.resout;
    bwd_res a, b, e;
    /* reference: out bf16, dy bf16 (DARN_DTYPE_SAME_AS_OUT) */
    cr_assert_eq(run_bwd(&c.d, dy16, h, c.w, fo.rstd, &a), DARN_OK, "%s", darn_last_error());
    /* out bf16, dy f32 with the same values */
    darn_desc d = c.d;
    d.dy_dtype = DARN_F32;
    cr_assert_eq(run_bwd(&d, dy32, h, c.w, fo.rstd, &b), DARN_OK, "%s", darn_last_error());
    /* out fp8 (with a scale the backward ignores), dy bf16 given explicitly */
    d = c.d;
    d.out_dtype = DARN_FP8_E4M3FNUZ;
    d.out_scale = 7.0f;
    d.dy_dtype = DARN_BF16;
    cr_assert_eq(run_bwd(&d, dy16, h, c.w, fo.rstd, &e), DARN_OK, "%s", darn_last_error());
    const bwd_res *others[2] = {&b, &e};
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(sup_compare(others[k]->dx, 0, a.dx, 0, DARN_BF16, FM, FN, 0), -1, "dx differs (%d)", k);
        cr_expect_eq(sup_compare(others[k]->dres, 0, a.dres, 0, DARN_F32, FM, FN, 0), -1, "dresidual differs (%d)", k);
        cr_expect_eq(memcmp(others[k]->dw, a.dw, 4 * FN), 0, "dweight differs (%d)", k);
    }
    bwd_res *all[3] = {&a, &b, &e};
    for (int k = 0; k < 3; k++) { sup_free(all[k]->dx); sup_free(all[k]->dres); sup_free(all[k]->dw); }
    sup_free(dy16);
    sup_free(dy32);
    out_free(&fo);
    case_free(&c);
}

/* ---- validation: status, message, nothing written -------------------------------------------------- */
#define VM 4
#define VN 16
#define VREG 256
enum { V_X, V_RES, V_W, V_B, V_OUT, V_RESOUT, V_RSTD, V_MEAN, V_AMAX, V_SCALE, V_DY, V_DX, V_DRES, V_DW, V_DB, V_WS,
       V_COUNT };
#define VARENA ((size_t)V_COUNT * VREG)

typedef struct vfx {
    darn_desc d;
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    unsigned char *arena;
} vfx;

static unsigned char *vreg(const vfx *F, int k) { return F->arena + (size_t)k * VREG; }

/* LayerNorm, residual and bias, f32 inputs, e4m3fn out with amax and a scale pointer; dy f32. */
static void vfx_init(vfx *F)
{
    memset(F, 0, sizeof *F);
    darn_desc_init(&F->d, DARN_LAYERNORM, VM, VN, DARN_F32);
    F->d.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    F->d.out_dtype = DARN_FP8_E4M3FN;
    F->d.dy_dtype = DARN_F32;
    F->arena = sup_alloc(VARENA, 64);
    F->d.out_scale_ptr = (const float *)(const void *)vreg(F, V_SCALE);
    F->f.x = vreg(F, V_X);
    F->f.residual = vreg(F, V_RES);
    F->f.weight = vreg(F, V_W);
    F->f.bias = vreg(F, V_B);
    F->f.out = vreg(F, V_OUT);
    F->f.residual_out = vreg(F, V_RESOUT);
    F->f.rstd = (float *)(void *)vreg(F, V_RSTD);
    F->f.mean = (float *)(void *)vreg(F, V_MEAN);
    F->f.amax = (float *)(void *)vreg(F, V_AMAX);
    F->b.dy = vreg(F, V_DY);
    F->b.h = vreg(F, V_RESOUT);
    F->b.weight = vreg(F, V_W);
    F->b.rstd = F->f.rstd;
    F->b.mean = F->f.mean;
    F->b.dx = vreg(F, V_DX);
    F->b.dresidual = vreg(F, V_DRES);
    F->b.dweight = vreg(F, V_DW);
    F->b.dbias = vreg(F, V_DB);
}

static void expect_fail(const vfx *F, darn_status got, darn_status want, const char *id, const char *what)
{
    cr_expect_eq(got, want, "%s: status %d (%s), want %d (%s)", what, (int)got, darn_status_string(got), (int)want,
                 darn_status_string(want));
    const char *msg = darn_last_error();
    cr_expect(msg[0] != '\0' && strstr(msg, id) != NULL, "%s: message \"%s\" does not name %s", what, msg, id);
    const int64_t a = sup_first_touched(F->arena, VARENA);
    cr_expect(a < 0, "%s: arena byte %lld (region %lld) was written", what, (long long)a, (long long)(a / VREG));
}

static darn_status vfwd(const vfx *F, const darn_desc *d, const darn_fwd_tensors *t)
{
    (void)F;
    return darn_fwd(d, t, NULL, 0, DARN_BACKEND_CPU, NULL);
}
static darn_status vbwd(const vfx *F, const darn_desc *d, const darn_bwd_tensors *t)
{
    return darn_bwd(d, t, vreg(F, V_WS), VREG, DARN_BACKEND_CPU, NULL);
}

Test(fp8_errors, dtypes)
{
    vfx F;
    vfx_init(&F);
    darn_desc d;
    static const char *ids[4] = {"x_dtype", "residual_dtype", "weight_dtype", "bias_dtype"};
    for (int k = 0; k < 4; k++) {
        d = F.d;
        darn_dtype *p = k == 0 ? &d.x_dtype : k == 1 ? &d.residual_dtype : k == 2 ? &d.weight_dtype : &d.bias_dtype;
        *p = DARN_FP8_E5M2;
        expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_UNSUPPORTED, ids[k], "fp8 input dtype (fwd)");
        expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_UNSUPPORTED, ids[k], "fp8 input dtype (bwd)");
    }
    d = F.d; d.dy_dtype = DARN_FP8_E4M3FN;
    expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_UNSUPPORTED, "dy_dtype", "fp8 dy");
    d = F.d; d.dy_dtype = (darn_dtype)7;
    expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_BAD_ENUM, "dy_dtype", "dy_dtype 7");
    expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_BAD_ENUM, "dy_dtype", "dy_dtype 7 (fwd: the desc is shared)");
    /* fp8 out needs an explicit 16/32-bit dy in the backward */
    d = F.d; d.dy_dtype = DARN_DTYPE_SAME_AS_OUT;
    expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_UNSUPPORTED, "dy_dtype", "fp8 out, dy same as out");
    sup_free(F.arena);
}

Test(fp8_errors, scale)
{
    vfx F;
    vfx_init(&F);
    darn_desc d;
    const float bad[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, -1.0f};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = F.d; d.out_scale_ptr = NULL; d.out_scale = bad[i];
        char what[64];
        snprintf(what, sizeof what, "out_scale %g", (double)bad[i]);
        expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_BAD_SCALE, "out_scale", what);
        expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_BAD_SCALE, "out_scale", what);
        size_t bytes;
        expect_fail(&F, darn_fwd_workspace_size(&d, DARN_BACKEND_CPU, &bytes), DARN_ERR_BAD_SCALE, "out_scale", what);
    }
    /* the value is not looked at without an fp8 out (a zero-filled desc has out_scale 0) */
    d = F.d; d.out_scale_ptr = NULL; d.out_scale = 0.0f; d.out_dtype = DARN_BF16;
    darn_fwd_tensors t = F.f;
    t.amax = NULL;
    darn_fwd_tensors t2 = t;
    unsigned char *own = sup_alloc(VARENA, 64);
    t2.out = own; /* a run that succeeds writes; keep it outside the arena */
    t2.residual_out = own + VREG;
    t2.rstd = (float *)(void *)(own + 2 * VREG);
    t2.mean = (float *)(void *)(own + 3 * VREG);
    cr_expect_eq(vfwd(&F, &d, &t2), DARN_OK, "%s", darn_last_error());
    sup_free(own);
    /* pointer: misaligned, without fp8, overlapping an output */
    d = F.d; d.out_scale_ptr = (const float *)(const void *)(vreg(&F, V_SCALE) + 2);
    expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_MISALIGNED, "out_scale_ptr", "misaligned scale pointer");
    expect_fail(&F, vbwd(&F, &d, &F.b), DARN_ERR_MISALIGNED, "out_scale_ptr", "misaligned scale pointer (bwd)");
    d = F.d; d.out_dtype = DARN_F16;
    expect_fail(&F, vfwd(&F, &d, &t), DARN_ERR_UNSUPPORTED, "out_scale_ptr", "scale pointer without fp8");
    static const int outs[] = {V_OUT, V_RESOUT, V_RSTD, V_MEAN, V_AMAX};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        d = F.d; d.out_scale_ptr = (const float *)(const void *)vreg(&F, outs[i]);
        expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_ALIASING, "out_scale_ptr", "scale pointer into an output");
    }
    sup_free(F.arena);
}

Test(fp8_errors, amax)
{
    vfx F;
    vfx_init(&F);
    darn_desc d = F.d;
    darn_fwd_tensors t;
    d.out_dtype = DARN_BF16;
    d.out_scale_ptr = NULL;
    expect_fail(&F, vfwd(&F, &d, &F.f), DARN_ERR_UNSUPPORTED, "amax", "amax without fp8");
    t = F.f; t.amax = (float *)(void *)(vreg(&F, V_AMAX) + 1);
    expect_fail(&F, vfwd(&F, &F.d, &t), DARN_ERR_MISALIGNED, "amax", "misaligned amax");
    static const int others[] = {V_OUT, V_RESOUT, V_RSTD, V_MEAN, V_X, V_W, V_SCALE};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        t = F.f; t.amax = (float *)(void *)(vreg(&F, others[i]) + 8);
        if (others[i] == V_SCALE) t.amax = (float *)(void *)vreg(&F, V_SCALE);
        expect_fail(&F, vfwd(&F, &F.d, &t), DARN_ERR_ALIASING, "amax", "amax overlapping a tensor");
    }
    /* M = 0: amax is still written, so it is still checked */
    d = F.d; d.rows = 0;
    t = F.f; t.amax = (float *)(void *)vreg(&F, V_SCALE);
    expect_fail(&F, vfwd(&F, &d, &t), DARN_ERR_ALIASING, "amax", "M = 0, amax on the scale");
    t = F.f; t.amax = (float *)(void *)(vreg(&F, V_AMAX) + 2);
    expect_fail(&F, vfwd(&F, &d, &t), DARN_ERR_MISALIGNED, "amax", "M = 0, misaligned amax");
    sup_free(F.arena);
}

Test(fp8_api, gpu_forward_kernel_choice)
{
    /* f32 in with an fp8 out is no compile-time configuration: the run-time-dtype kernels store it (bits: test_golden's
     * fp8 jobs on the GPU, against the same digests as the CPU; the dispatch-table walk) */
    vfx F;
    vfx_init(&F);
    darn_kernel_info info;
    cr_assert_eq(darn_debug_fwd_kernel(&F.d, &F.f, &info), DARN_OK, "%s", darn_last_error());
    cr_expect(strstr(info.name, "runtime") != NULL, "fp8 forward runs %s", info.name);
    /* bf16 x and weights with an fp32 residual stream is one of DARN_FP8_CONFIGS, for every fp8 encoding */
    static const darn_dtype fp8s[4] = {DARN_FP8_E4M3FN, DARN_FP8_E5M2, DARN_FP8_E4M3FNUZ, DARN_FP8_E5M2FNUZ};
    for (int i = 0; i < 4; i++) {
        darn_desc d8 = F.d;
        d8.x_dtype = d8.weight_dtype = d8.bias_dtype = DARN_BF16;
        d8.out_dtype = fp8s[i];
        cr_assert_eq(darn_debug_fwd_kernel(&d8, &F.f, &info), DARN_OK, "%s", darn_last_error());
        cr_expect(strstr(info.name, "bf16/f32/f32/bf16/fp8") != NULL, "fp8 dtype %d: forward runs %s", (int)fp8s[i],
                  info.name);
    }
    size_t bytes = 99;
    if (darn_backend_available(DARN_BACKEND_GPU)) {
        cr_expect_eq(darn_fwd_workspace_size(&F.d, DARN_BACKEND_GPU, &bytes), DARN_OK, "%s", darn_last_error());
        cr_expect_eq(bytes, 0);
    } else {
        expect_fail(&F, darn_fwd(&F.d, &F.f, NULL, 0, DARN_BACKEND_GPU, NULL), DARN_ERR_BACKEND_UNAVAILABLE, "GPU",
                    "darn_fwd on the GPU");
    }
    /* the backward of an fp8 layer has nothing fp8 in it: its kernel choice is the dy dtype's */
    darn_kernel_info a, b;
    cr_expect_eq(darn_debug_bwd_kernel(&F.d, &F.b, &a), DARN_OK, "%s", darn_last_error());
    darn_desc d = F.d;
    d.out_dtype = DARN_F32;
    d.dy_dtype = DARN_DTYPE_SAME_AS_OUT;
    d.out_scale_ptr = NULL;
    cr_expect_eq(darn_debug_bwd_kernel(&d, &F.b, &b), DARN_OK, "%s", darn_last_error());
    cr_expect_eq(a.entry, b.entry, "backward entry %d vs %d", a.entry, b.entry);
    sup_free(F.arena);
}

Test(fp8_api, desc_init_defaults_and_names)
{
    darn_desc d;
    memset(&d, 0x5A, sizeof d);
    darn_desc_init(&d, DARN_RMSNORM, 2, 3, DARN_BF16);
    cr_expect_eq(d.dy_dtype, DARN_DTYPE_SAME_AS_OUT);
    cr_expect_eq(d.out_scale, 1.0f);
    cr_expect_eq(d.out_scale_ptr, NULL);
    cr_expect_eq(DARN_CONTRACT_VERSION, 4);
    cr_expect(strstr(darn_status_string(DARN_ERR_BAD_SCALE), "DARN_ERR_BAD_SCALE") != NULL);
}
