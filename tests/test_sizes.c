/*
 * test_sizes.c — forward + backward against the fp64 oracle for N from 1 to 2^20, so that every element
 * is in every reduction (lane assignment, partial groups, partial lane sets, tails) and nothing is
 * written outside the tensors: every [M, N] output has a row stride > N with sentinel gaps between rows,
 * and every output buffer has sentinel guard bytes before and after it (checked by the harness).
 *
 * Per N, four configurations: all-f32 and all-bf16, RMSNorm and LayerNorm, dense random data and
 * "spike" data (tiny noise plus large values at the row's tail, at group and lane boundaries and at
 * random columns; for large N a dropped element is invisible in dense data at fp32 accuracy, but a
 * dropped spike moves rstd, y and the backward by whole percents).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "oracle.h"

static const int64_t kSizes[] = {1,    2,    3,    7,    8,    9,     31,    63,    64,     65,     100,    127,
                                 255,  256,  257,  511,  1000, 1023,  1024,  1025,  2047,   2048,   4095,   4096,
                                 4097, 5120, 8191, 8192, 12288, 16384, 32768, 65536, 65537, 131071, 1048576};

static int64_t rows_for(int64_t n) { return n <= 8192 ? 3 : n <= 65537 ? 2 : 1; }

typedef struct size_config {
    const char *name;
    darn_dtype dt;
    darn_norm norm;
    oracle_data data;
    uint32_t flags;
    double p;
    int64_t pad;
    int dro;
} size_config;

static const size_config kConfigs[] = {
    {"f32 RMS uniform", DARN_F32, DARN_RMSNORM, ORACLE_DATA_UNIFORM, DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS,
     0.0, 3, 1},
    {"bf16 LN uniform", DARN_BF16, DARN_LAYERNORM, ORACLE_DATA_UNIFORM,
     DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE, 0.3, 5, 0},
    {"f32 LN spikes", DARN_F32, DARN_LAYERNORM, ORACLE_DATA_SPIKES, DARN_FLAG_HAS_RESIDUAL, 0.0, 8, 1},
    {"bf16 RMS spikes", DARN_BF16, DARN_RMSNORM, ORACLE_DATA_SPIKES,
     DARN_FLAG_HAS_BIAS | DARN_FLAG_ZERO_CENTERED_WEIGHT, 0.0, 1, 0},
};

static void run_size(int64_t m, int64_t n, const size_config *cfg, uint64_t serial, oracle_worst *worst)
{
    oracle_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, cfg->norm, m, n, cfg->dt);
    c.desc.flags = cfg->flags;
    c.desc.dropout_p = cfg->p;
    c.desc.seed = 0x51CEu + serial;
    c.desc.offset = serial;
    c.pad = cfg->pad;
    c.data = cfg->data;
    c.data_seed = 0xC0FFEEu + serial * 13u;
    c.backward = 1;
    c.bwd_dresidual_out = cfg->dro;
    c.bwd_regen_mask = (int)(serial & 1u);
    oracle_result res;
    oracle_run_case(&c, &res);
    oracle_worst_add(worst, &res);
    cr_assert(res.ok, "N=%lld config %s:\n%s", (long long)n, cfg->name, res.msg);
}

static void run_sizes(int64_t lo, int64_t hi, const char *label)
{
    oracle_worst worst;
    oracle_worst_init(&worst);
    uint64_t serial = 0;
    for (size_t i = 0; i < sizeof kSizes / sizeof kSizes[0]; i++) {
        const int64_t n = kSizes[i];
        if (n < lo || n > hi) continue;
        for (size_t k = 0; k < sizeof kConfigs / sizeof kConfigs[0]; k++)
            run_size(rows_for(n), n, &kConfigs[k], serial++, &worst);
    }
    oracle_worst_print(&worst, label);
    cr_assert(worst.cases > 0, "%s: no sizes ran", label);
}

Test(sizes, small_up_to_1025) { run_sizes(1, 1025, "sizes N<=1025"); }
Test(sizes, medium_up_to_16384) { run_sizes(1026, 16384, "sizes 1025<N<=16384"); }
Test(sizes, large_32768_to_131071) { run_sizes(16385, 131071, "sizes 16384<N<=131071"); }
Test(sizes, huge_2_pow_20) { run_sizes(131072, INT64_C(1) << 20, "sizes N=2^20"); }

/* Every N from 1 to 300, alternating the configurations: all tail shapes of the first lane sets. */
Test(sizes, every_n_to_300)
{
    oracle_worst worst;
    oracle_worst_init(&worst);
    for (int64_t n = 1; n <= 300; n++)
        run_size(2, n, &kConfigs[n % 4], (uint64_t)n, &worst);
    oracle_worst_print(&worst, "sizes every N<=300");
}

/* The spike data makes a single dropped column visible even at N = 2^20 and 131071: an oracle that
 * leaves out the last column must be rejected, in the forward and in the backward alone. */
static void expect_skip_detected(int64_t n, darn_norm norm, int backward_only)
{
    oracle_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, norm, 1, n, DARN_F32);
    c.desc.flags = DARN_FLAG_HAS_RESIDUAL;
    c.data = ORACLE_DATA_SPIKES;
    c.data_seed = (uint64_t)n;
    c.backward = 1;
    c.mutation = ORACLE_MUT_SKIP_LAST_COL;
    c.mutate_backward_only = backward_only;
    oracle_result res;
    oracle_run_case(&c, &res);
    cr_assert(!res.ok, "N=%lld %s: an oracle skipping column N-1 was not detected", (long long)n,
              backward_only ? "backward" : "forward");
    if (backward_only) cr_assert(res.rep[ORACLE_REP_Y].bad == 0, "N=%lld: forward should be unaffected", (long long)n);
}

Test(sizes_selfcheck, dropped_tail_column_detected_at_large_n)
{
    expect_skip_detected(INT64_C(1) << 20, DARN_RMSNORM, 0);
    expect_skip_detected(INT64_C(1) << 20, DARN_LAYERNORM, 1);
    expect_skip_detected(131071, DARN_LAYERNORM, 0);
    expect_skip_detected(131071, DARN_RMSNORM, 1);
}
