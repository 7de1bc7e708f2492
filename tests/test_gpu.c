/*
 * test_gpu.c — the GPU backend against the CPU reference, bit for bit (docs/numerics.md), over a sweep
 * of N (1 .. 2^20), M, dtypes, options, strides and misaligned bases. Skips without a GPU.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "gpu_case.h"

static void need_gpu(void)
{
    if (!darn_backend_available(DARN_BACKEND_GPU)) cr_skip_test("no GPU backend or device in this build/machine");
}

static const int64_t sweep_n[] = {1,    2,    3,    7,     8,     31,    64,    100,   127,  256,    1000,
                                  1024, 1536, 2048, 4095,  4096,  5120,  8192,  12288, 16384, 32768, 65536,
                                  65537, 1 << 20};

/* Rows for a sweep shape: 1, a few, and "large" (about 2^22 elements, at least a few chunks of §6). */
static int64_t rows_large(int64_t n)
{
    int64_t m = ((int64_t)1 << 22) / n;
    return m < 3 ? 3 : m > 20000 ? 20000 : m;
}

enum cfg { TRAIN, INFER, F32_LN, F16_ALL, MIXED, BF16_REGEN, NCFG };
static const char *const cfg_names[NCFG] = {"train", "infer", "f32-layernorm", "f16", "mixed", "bf16-regen"};

static gpu_case make_cfg(int cfg, int64_t m, int64_t n)
{
    gpu_case c;
    switch (cfg) {
    case TRAIN: /* x bf16, residual fp32, residual_in_fp32, weight bf16, p = 0.1, mask */
        c = gpu_case_make(DARN_RMSNORM, m, n, DARN_BF16);
        c.desc.residual_dtype = DARN_F32;
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32;
        c.desc.dropout_p = 0.1;
        c.desc.seed = 42;
        c.desc.offset = 7;
        c.mask = true;
        c.dresout = true;
        break;
    case INFER:
        c = gpu_case_make(DARN_RMSNORM, m, n, DARN_BF16);
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL;
        break;
    case F32_LN:
        c = gpu_case_make(DARN_LAYERNORM, m, n, DARN_F32);
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | DARN_FLAG_HAS_ROWSCALE |
                       DARN_FLAG_ZERO_CENTERED_WEIGHT;
        c.desc.dropout_p = 0.3;
        c.desc.seed = 0x123456789abcdefULL;
        c.desc.offset = 3;
        c.mask = true;
        break;
    case F16_ALL:
        c = gpu_case_make(DARN_LAYERNORM, m, n, DARN_F16);
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL;
        c.dresout = true;
        break;
    case MIXED:
        c = gpu_case_make(DARN_LAYERNORM, m, n, DARN_F16);
        c.desc.residual_dtype = DARN_BF16;
        c.desc.weight_dtype = DARN_F32;
        c.desc.bias_dtype = DARN_F16;
        c.desc.out_dtype = DARN_F32;
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS;
        c.desc.dropout_p = 0.5;
        c.desc.seed = 9;
        c.mask = true;
        break;
    default: /* BF16_REGEN: no residual, dropout regenerated in backward */
        c = gpu_case_make(DARN_RMSNORM, m, n, DARN_BF16);
        c.desc.flags = DARN_FLAG_ZERO_CENTERED_WEIGHT | DARN_FLAG_HAS_ROWSCALE;
        c.desc.dropout_p = 0.5;
        c.desc.seed = 1;
        c.desc.offset = 1u << 20;
        c.dresout = false;
        break;
    }
    c.check_repeat = true;
    return c;
}

static void run_or_fail(const gpu_case *c, const char *label)
{
    char why[512] = "";
    const int bad = gpu_case_run(c, why, sizeof why);
    cr_expect_eq(bad, 0, "%s M=%lld N=%lld pad=%lld misalign=%d: %s", label, (long long)c->desc.rows,
                 (long long)c->desc.cols, (long long)c->stride_pad, c->misalign, why);
}

Test(gpu, sweep_every_n_every_config, .timeout = 1800)
{
    need_gpu();
    for (size_t i = 0; i < sizeof sweep_n / sizeof sweep_n[0]; i++) {
        const int64_t n = sweep_n[i];
        const int64_t ms[] = {1, 3, rows_large(n)};
        for (int cfg = 0; cfg < NCFG; cfg++)
            for (size_t k = 0; k < 3; k++) {
                gpu_case c = make_cfg(cfg, ms[k], n);
                run_or_fail(&c, cfg_names[cfg]);
            }
    }
}

Test(gpu, strides_and_misaligned_bases, .timeout = 900)
{
    need_gpu();
    const int64_t ns[] = {1, 7, 100, 1000, 1024, 4096, 5120, 65536, 100003};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int cfg = 0; cfg < NCFG; cfg++)
            for (int variant = 0; variant < 3; variant++) {
                gpu_case c = make_cfg(cfg, ns[i] > 10000 ? 5 : 67, ns[i]);
                c.stride_pad = variant == 0 ? 3 : variant == 1 ? 8 : 0;
                c.misalign = variant == 0 ? 0 : 1;
                run_or_fail(&c, cfg_names[cfg]);
            }
}

Test(gpu, every_dtype_combination, .timeout = 900)
{
    need_gpu();
    const darn_dtype dt[3] = {DARN_F32, DARN_F16, DARN_BF16};
    for (int combo = 0; combo < 243; combo++) {
        int q = combo;
        gpu_case c = gpu_case_make(combo % 2 ? DARN_LAYERNORM : DARN_RMSNORM, 33, 1000 + combo % 5, DARN_F32);
        c.desc.x_dtype = dt[q % 3]; q /= 3;
        c.desc.residual_dtype = dt[q % 3]; q /= 3;
        c.desc.weight_dtype = dt[q % 3]; q /= 3;
        c.desc.bias_dtype = dt[q % 3]; q /= 3;
        c.desc.out_dtype = dt[q % 3];
        c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_HAS_BIAS | (combo % 4 == 0 ? DARN_FLAG_RESIDUAL_IN_FP32 : 0);
        c.desc.dropout_p = combo % 3 ? 0.2 : 0.0;
        c.desc.seed = (uint64_t)combo;
        c.mask = combo % 2;
        c.dresout = combo % 5 == 0;
        run_or_fail(&c, "dtype-combo");
    }
}

Test(gpu, edge_probabilities_and_empty_batch, .timeout = 300)
{
    need_gpu();
    const double ps[] = {0.0, 1e-9, 0.5, 1.0 - 1e-9, 1.0};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        gpu_case c = make_cfg(TRAIN, 17, 777);
        c.desc.dropout_p = ps[i];
        run_or_fail(&c, "edge-p");
    }
    gpu_case z = make_cfg(F32_LN, 0, 300); /* M = 0: dweight / dbias become +0 on both backends */
    run_or_fail(&z, "empty-batch");
}
