/*
 * test_forward.c — darn_fwd (CPU backend) against the fp64 oracle (tests/oracle.h).
 *
 * Every (x, residual, weight, bias, out) dtype combination in {f32, f16, bf16}^5, each with a rotating
 * set of options (RMSNorm/LayerNorm, residual, bias, rowscale, zero-centered weight, residual_in_fp32,
 * p in {0, 0.3}, strides, eps and data amplitude), at M = 7, N = 133 (a tail group, a partial lane set).
 * Checked per case: y within the oracle's error bound plus the out dtype's rounding; residual_out and
 * the mask bit for bit; rstd and mean within their bounds; guard bytes and stride gaps untouched;
 * inputs unchanged. The self-check tests prove the bounds are tight: deliberately wrong oracles
 * (a dropped column, no eps, the other norm, no dropout scale, no zero-centering) must be rejected.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "oracle.h"

static const darn_dtype kDtypes[3] = {DARN_F32, DARN_F16, DARN_BF16};

/* Option set number `k` (0..63) of a case: norm is fixed by the test, the 5 flags and p vary. */
static void apply_options(darn_desc *d, unsigned k)
{
    d->flags = 0;
    if (k & 1u) d->flags |= DARN_FLAG_HAS_RESIDUAL;
    if (k & 2u) d->flags |= DARN_FLAG_HAS_BIAS;
    if (k & 4u) d->flags |= DARN_FLAG_HAS_ROWSCALE;
    if (k & 8u) d->flags |= DARN_FLAG_ZERO_CENTERED_WEIGHT;
    if (k & 16u) d->flags |= DARN_FLAG_RESIDUAL_IN_FP32;
    d->dropout_p = (k & 32u) ? 0.3 : 0.0;
}

/* All 81 (residual, weight, bias, out) combinations for one x dtype and one norm, each with 64 option
 * sets in the full cross product where the dtype matters (residual dtype only with a residual, bias
 * dtype only with a bias); amplitude, eps, strides and seeds rotate with the case number. */
static void run_grid(darn_norm norm, darn_dtype xdt, const char *label)
{
    oracle_worst worst;
    oracle_worst_init(&worst);
    int64_t failures = 0;
    char first[4096] = "";
    unsigned serial = 0;
    for (int ir = 0; ir < 3; ir++)
        for (int iw = 0; iw < 3; iw++)
            for (int ib = 0; ib < 3; ib++)
                for (int io = 0; io < 3; io++)
                    for (unsigned k = 0; k < 64; k++) {
                        darn_desc d;
                        darn_desc_init(&d, norm, 7, 133, xdt);
                        d.residual_dtype = kDtypes[ir];
                        d.weight_dtype = kDtypes[iw];
                        d.bias_dtype = kDtypes[ib];
                        d.out_dtype = kDtypes[io];
                        apply_options(&d, k);
                        /* the residual / bias dtype is irrelevant without the flag: one of three suffices */
                        if (!(d.flags & DARN_FLAG_HAS_RESIDUAL) && ir != (int)(k % 3)) continue;
                        if (!(d.flags & DARN_FLAG_HAS_BIAS) && ib != (int)((k / 3) % 3)) continue;
                        serial++;
                        if (serial % 4 == 1) d.eps = 1e-2f; /* eps large enough to move every output */
                        d.seed = 0x1234u + serial;
                        d.offset = serial * 7u;
                        oracle_case c;
                        memset(&c, 0, sizeof c);
                        c.desc = d;
                        c.pad = serial % 3;
                        c.amp = serial % 5 == 2 ? 0.01 : 1.0;
                        c.data_seed = 0xF0F0u + serial;
                        c.skip_optional = serial % 17 == 0;
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
    cr_assert(worst.cases > 2000, "%s: only %lld cases ran", label, (long long)worst.cases);
}

Test(forward, rms_x_f32) { run_grid(DARN_RMSNORM, DARN_F32, "forward RMSNorm x=f32"); }
Test(forward, rms_x_f16) { run_grid(DARN_RMSNORM, DARN_F16, "forward RMSNorm x=f16"); }
Test(forward, rms_x_bf16) { run_grid(DARN_RMSNORM, DARN_BF16, "forward RMSNorm x=bf16"); }
Test(forward, ln_x_f32) { run_grid(DARN_LAYERNORM, DARN_F32, "forward LayerNorm x=f32"); }
Test(forward, ln_x_f16) { run_grid(DARN_LAYERNORM, DARN_F16, "forward LayerNorm x=f16"); }
Test(forward, ln_x_bf16) { run_grid(DARN_LAYERNORM, DARN_BF16, "forward LayerNorm x=bf16"); }

/* Shapes around the lane and group edges, one row and many rows, with every flag and dropout. */
Test(forward, shapes_all_flags)
{
    static const int64_t shapes[][2] = {{1, 1},   {1, 7},   {3, 8},   {2, 9},   {5, 64},  {4, 255},
                                        {2, 256}, {3, 257}, {2, 511}, {2, 512}, {1, 513}, {17, 100}};
    oracle_worst worst;
    oracle_worst_init(&worst);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int norm = 0; norm < 2; norm++)
            for (int dt = 0; dt < 3; dt++) {
                oracle_case c;
                memset(&c, 0, sizeof c);
                darn_desc_init(&c.desc, norm ? DARN_LAYERNORM : DARN_RMSNORM, shapes[i][0], shapes[i][1],
                               kDtypes[dt]);
                c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE;
                c.desc.dropout_p = 0.25;
                c.desc.seed = 99 + i;
                c.pad = (int64_t)(i % 4) * 3;
                c.data_seed = 1000 + i * 6 + (size_t)(norm * 3 + dt);
                oracle_result res;
                oracle_run_case(&c, &res);
                oracle_worst_add(&worst, &res);
                cr_assert(res.ok, "%s", res.msg);
            }
    oracle_worst_print(&worst, "forward shapes");
}

/* Dropout extremes: p = 1 drops everything (h = residual, or 0 -> y = b), tiny p, p = 0.5; and the
 * graph-safe seed/offset pointers give the mask of seed = *ptr, offset = *ptr + desc.offset. */
Test(forward, dropout_extremes_and_rng_pointers)
{
    static const double ps[] = {1.0, 1e-9, 0.5, 0.9};
    const uint64_t seed = 0xDEADBEEFCAFEull, base = 1000;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        for (int norm = 0; norm < 2; norm++)
            for (int ptrs = 0; ptrs < 2; ptrs++) {
                oracle_case c;
                memset(&c, 0, sizeof c);
                darn_desc_init(&c.desc, norm ? DARN_LAYERNORM : DARN_RMSNORM, 5, 77, DARN_BF16);
                c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
                c.desc.residual_dtype = DARN_F32;
                c.desc.dropout_p = ps[i];
                if (ptrs) {
                    c.desc.rng_seed_ptr = &seed;
                    c.desc.rng_offset_ptr = &base;
                    c.desc.offset = 17;
                } else {
                    c.desc.seed = seed;
                    c.desc.offset = base + 17;
                }
                c.data_seed = 77 + i;
                oracle_result res;
                oracle_run_case(&c, &res);
                cr_assert(res.ok, "%s", res.msg);
            }
}

/* ---- self-checks: the comparison must reject a wrong reference ------------------------------------ */
static void expect_rejected(oracle_mutation mut, darn_norm norm, uint32_t flags, double p, float eps,
                            darn_dtype dt, const char *what)
{
    oracle_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, norm, 7, 133, dt);
    c.desc.flags = flags;
    c.desc.dropout_p = p;
    c.desc.eps = eps;
    c.desc.seed = 5;
    c.data_seed = 4242;
    /* the same case with the true oracle passes ... */
    oracle_result res;
    oracle_run_case(&c, &res);
    cr_assert(res.ok, "%s: unmutated case fails:\n%s", what, res.msg);
    /* ... and with the mutated one fails */
    c.mutation = mut;
    oracle_run_case(&c, &res);
    cr_assert(!res.ok, "%s: a wrong oracle was not detected (bounds too loose)", what);
}

Test(forward_selfcheck, wrong_references_are_rejected)
{
    const uint32_t rb = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
    /* a tail element left out of the reductions, at N = 133 */
    expect_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_RMSNORM, rb, 0.0, 1e-6f, DARN_F32, "RMS f32 dropped column");
    expect_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_LAYERNORM, rb, 0.0, 1e-5f, DARN_F32, "LN f32 dropped column");
    expect_rejected(ORACLE_MUT_SKIP_LAST_COL, DARN_LAYERNORM, rb, 0.0, 1e-5f, DARN_BF16, "LN bf16 dropped column");
    /* eps forgotten, at the LayerNorm default eps and a larger one */
    expect_rejected(ORACLE_MUT_NO_EPS, DARN_LAYERNORM, rb, 0.0, 1e-5f, DARN_F32, "LN default eps missing");
    expect_rejected(ORACLE_MUT_NO_EPS, DARN_RMSNORM, rb, 0.0, 1e-3f, DARN_F32, "RMS eps 1e-3 missing");
    expect_rejected(ORACLE_MUT_NO_EPS, DARN_RMSNORM, rb, 0.0, 1e-2f, DARN_BF16, "RMS bf16 eps 1e-2 missing");
    /* mean subtraction vs root mean square */
    expect_rejected(ORACLE_MUT_SWAP_NORM, DARN_RMSNORM, rb, 0.0, 1e-6f, DARN_BF16, "RMS computed as LN");
    expect_rejected(ORACLE_MUT_SWAP_NORM, DARN_LAYERNORM, rb, 0.0, 1e-5f, DARN_BF16, "LN computed as RMS");
    /* dropout scale and zero-centered weights */
    expect_rejected(ORACLE_MUT_NO_DROP_SCALE, DARN_RMSNORM, rb, 0.3, 1e-6f, DARN_F32, "missing 1/(1-p)");
    expect_rejected(ORACLE_MUT_NOT_CENTERED, DARN_LAYERNORM, rb | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.0, 1e-5f,
                    DARN_BF16, "w' = w instead of 1 + w");
}

/* The conversions of the oracle agree with the exhaustive truth for every 16-bit pattern: decode then
 * encode is the identity (NaNs: canonical), and rounding a decoded value is exact. */
Test(forward_selfcheck, oracle_conversions_roundtrip)
{
    for (int dt = 1; dt < 3; dt++)
        for (uint32_t b = 0; b < 65536u; b++) {
            const double v = oracle_decode(kDtypes[dt], b);
            const uint32_t e = oracle_encode(kDtypes[dt], v);
            if (v != v) {
                cr_assert(e == (dt == 1 ? 0x7E00u : 0x7FC0u), "dtype %d bits 0x%04x: NaN not canonical", dt, b);
                continue;
            }
            cr_assert(e == b, "dtype %d bits 0x%04x: decode/encode gives 0x%04x", dt, b, e);
            cr_assert(oracle_round(kDtypes[dt], v) == v, "dtype %d bits 0x%04x: round not exact", dt, b);
        }
    /* ties go to even, overflow to inf */
    cr_assert(oracle_round(DARN_F16, 65519.99) == 65504.0);
    cr_assert(oracle_round(DARN_F16, 65520.0) == INFINITY);
    cr_assert(oracle_round(DARN_BF16, 1.0 + 0x1.0p-8) == 1.0);
    cr_assert(oracle_round(DARN_BF16, 1.0 + 3 * 0x1.0p-8) == 1.0 + 0x1.0p-6);
    cr_assert(oracle_round(DARN_F16, 0x1.0p-25) == 0.0);
    cr_assert(oracle_round(DARN_F16, 0x1.8p-25) == 0x1.0p-24);
}
