/*
 * test_gpu.c — the GPU backend against the CPU reference, bit for bit (docs/numerics.md), over a sweep
 * of N (1 .. 2^20), M, dtypes, options, strides and misaligned bases. Skips without a GPU.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include <darn/device.h>

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

/* Every entry of both dispatch tables (docs/numerics.md §7), bit for bit against the CPU, with the kernel
 * the GPU runs checked against the entry. rows(N) picks the call's M for the entry's row length. */
static void walk_dispatch_table(int64_t (*rows)(int64_t n))
{
    for (int bwd = 0; bwd < 2; bwd++) {
        for (int e = 0; e < darn_debug_kernel_count(bwd); e++) {
            gpu_case probe;
            cr_assert_eq(gpu_case_for_entry(bwd, e, 1, &probe), 0, "no case for %s entry %d", bwd ? "bwd" : "fwd", e);
            gpu_case c;
            cr_assert_eq(gpu_case_for_entry(bwd, e, rows(probe.desc.cols), &c), 0);
            if (bwd) c.want_bwd_entry = e;
            else c.want_fwd_entry = e;
            darn_kernel_info info;
            darn_debug_kernel_entry(bwd, e, &info);
            run_or_fail(&c, info.name);
        }
    }
}

/* About 5 Mi elements per case: dweight chunks of 2 rows and a last chunk of one. */
static int64_t rows_chunked(int64_t n) { return ((INT64_C(5) << 20) / n) | 1; }
static int64_t rows_three(int64_t n) { (void)n; return 3; }

Test(gpu, every_dispatch_entry, .timeout = 1800)
{
    need_gpu();
    walk_dispatch_table(rows_chunked);
}

/* The same walk with small calls: the set tests/device/run-on-gpu runs under compute-sanitizer's memcheck,
 * racecheck and initcheck (every kernel family: static and run-time dtypes, rows in registers and
 * re-read, forward and backward, mask read and regenerated, with and without bias, the dweight pass). */
Test(gpu, every_dispatch_entry_small, .timeout = 1800)
{
    need_gpu();
    walk_dispatch_table(rows_three);
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

/* flash-attn's parallel residual (x1, weight1, bias1): out1, mask1, dx1, dweight1 and dbias1 bit for bit with
 * the rest, over both norms x {x1, w1, w1+b1, x1+w1+b1} x p in {0, 0.1} x mask on/off x N x {bf16, f32} x
 * residual or not (bf16: an fp32 residual stream on every other case), strides and misaligned bases on some;
 * then a few calls of many rows (dweight1 / dbias1 over chunks of several rows). */
Test(gpu, parallel_residual, .timeout = 1200)
{
    need_gpu();
    static const uint32_t sets[4] = {DARN_FLAG_HAS_X1, DARN_FLAG_HAS_WEIGHT1, DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1,
                                     DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1};
    static const char *const set_names[4] = {"x1", "w1", "w1+b1", "x1+w1+b1"};
    static const int64_t ns[] = {7, 100, 1000, 4096, 12289};
    static const darn_dtype dts[2] = {DARN_BF16, DARN_F32};
    char label[96];
    unsigned k = 0;
    for (int norm = 0; norm < 2; norm++)
        for (int si = 0; si < 4; si++)
            for (int pi = 0; pi < 2; pi++)
                for (int mask = 0; mask < 2; mask++)
                    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                        for (int di = 0; di < 2; di++)
                            for (int res = 0; res < 2; res++, k++) {
                                const int64_t n = ns[ni];
                                gpu_case c = gpu_case_make(norm ? DARN_LAYERNORM : DARN_RMSNORM, n >= 4096 ? 9 : 37, n,
                                                           dts[di]);
                                c.desc.flags = sets[si] | (res ? DARN_FLAG_HAS_RESIDUAL : 0) |
                                               (norm && k % 3 != 0 ? DARN_FLAG_HAS_BIAS : 0) |
                                               (k % 5 == 3 ? DARN_FLAG_HAS_ROWSCALE : 0) |
                                               (k % 7 == 4 ? DARN_FLAG_ZERO_CENTERED_WEIGHT : 0);
                                if (res && dts[di] == DARN_BF16 && k % 4 < 2) c.desc.residual_dtype = DARN_F32;
                                c.desc.dropout_p = pi ? 0.1 : 0.0;
                                c.desc.seed = 1000u + k;
                                c.desc.offset = 3u * k;
                                c.mask = mask;
                                c.dresout = k % 3 == 1;
                                c.stride_pad = k % 6 == 5 ? 3 : k % 6 == 2 ? 8 : 0;
                                c.misalign = k % 4 == 3;
                                c.check_repeat = k % 8 == 0;
                                snprintf(label, sizeof label, "parallel %s %s %s p=%g mask=%d res=%d", norm ? "LN" : "RMS",
                                         set_names[si], dts[di] == DARN_BF16 ? "bf16" : "f32", c.desc.dropout_p, mask, res);
                                run_or_fail(&c, label);
                            }
    /* many rows: the chunk partials and their tree */
    for (int si = 0; si < 4; si += 3)
        for (size_t ni = 2; ni < 4; ni++) {
            gpu_case c = make_cfg(TRAIN, rows_chunked(ns[ni]), ns[ni]);
            c.desc.flags |= sets[si];
            snprintf(label, sizeof label, "parallel train %s many rows", set_names[si]);
            run_or_fail(&c, label);
        }
}

/* Bad arguments on the GPU backend: the specific status, and not one device output byte written. */
Test(gpu, bad_arguments_leave_device_outputs_untouched, .timeout = 120)
{
    need_gpu();
    const int64_t m = 8, n = 300;
    const size_t mat = (size_t)(m * n * 4);
    void *x = NULL, *w = NULL, *out = NULL, *ro = NULL, *rstd = NULL, *dx = NULL, *dw = NULL, *ws = NULL;
    void **bufs[] = {&x, &w, &out, &ro, &rstd, &dx, &dw, &ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        cr_assert_eq(darn_device_malloc(bufs[i], mat), DARN_OK, "%s", darn_last_error());
        cr_assert_eq(darn_device_memset(*bufs[i], 0x5A, mat), DARN_OK);
    }
    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, m, n, DARN_F32);
    darn_fwd_tensors ft = {.x = x, .weight = w, .out = out, .residual_out = ro, .rstd = rstd};
    darn_bwd_tensors bt = {.dy = x, .h = ro, .weight = w, .rstd = rstd, .dx = dx, .dweight = dw};
    struct { const char *what; darn_status want; int bwd; darn_desc d; darn_fwd_tensors f; darn_bwd_tensors b; } cases[9];
    for (int i = 0; i < 9; i++) { cases[i].d = d; cases[i].f = ft; cases[i].b = bt; cases[i].bwd = 0; }
    cases[0].what = "eps 0"; cases[0].want = DARN_ERR_BAD_EPS; cases[0].d.eps = 0.0f;
    cases[1].what = "p 2"; cases[1].want = DARN_ERR_BAD_DROPOUT; cases[1].d.dropout_p = 2.0;
    cases[2].what = "x NULL"; cases[2].want = DARN_ERR_NULL_POINTER; cases[2].f.x = NULL;
    cases[3].what = "out overlaps x"; cases[3].want = DARN_ERR_ALIASING; cases[3].f.out = (char *)x + 4;
    cases[4].what = "misaligned out"; cases[4].want = DARN_ERR_MISALIGNED; cases[4].f.out = (char *)out + 2;
    cases[5].what = "stride < N"; cases[5].want = DARN_ERR_BAD_STRIDE; cases[5].f.out_stride = n - 1;
    cases[6].what = "bwd rstd NULL"; cases[6].want = DARN_ERR_NULL_POINTER; cases[6].bwd = 1; cases[6].b.rstd = NULL;
    cases[7].what = "bwd dx overlaps h"; cases[7].want = DARN_ERR_ALIASING; cases[7].bwd = 1; cases[7].b.dx = ro;
    cases[8].what = "bwd workspace overlaps dx"; cases[8].want = DARN_ERR_ALIASING; cases[8].bwd = 2;
    size_t need = 0;
    cr_assert_eq(darn_bwd_workspace_size(&d, DARN_BACKEND_GPU, &need), DARN_OK);
    uint8_t *host = malloc(mat);
    for (int i = 0; i < 9; i++) {
        const darn_status s = cases[i].bwd ? darn_bwd(&cases[i].d, &cases[i].b, cases[i].bwd == 2 ? dx : ws, need,
                                                      DARN_BACKEND_GPU, NULL)
                                           : darn_fwd(&cases[i].d, &cases[i].f, NULL, 0, DARN_BACKEND_GPU, NULL);
        cr_expect_eq(s, cases[i].want, "%s: got %s (%s)", cases[i].what, darn_status_string(s), darn_last_error());
        cr_expect(darn_last_error()[0] != '\0', "%s: no message", cases[i].what);
        cr_assert_eq(darn_device_synchronize(), DARN_OK);
        void *outs[] = {out, ro, rstd, dx, dw, ws};
        for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
            cr_assert_eq(darn_device_memcpy(host, outs[k], mat, DARN_COPY_DEVICE_TO_HOST), DARN_OK);
            size_t j = 0;
            while (j < mat && host[j] == 0x5A) j++;
            cr_expect_eq(j, mat, "%s: device output %zu written at byte %zu", cases[i].what, k, j);
        }
    }
    free(host);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) darn_device_free(*bufs[i]);
}

/* The forward without residual_out: rows the kernels re-read (N beyond their registers) recompute h from x, the
 * residual and x1 instead of reading it back. Both norms, with and without dropout and the parallel residual. */
Test(gpu, forward_without_residual_out, .timeout = 600)
{
    need_gpu();
    static const int64_t ns[] = {7, 1000, 4096, 8200, 16384, 16392, 20480, 65536};
    static const uint32_t pars[] = {0, DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int layer = 0; layer < 2; layer++)
            for (int pi = 0; pi < 2; pi++)
                for (int drop = 0; drop < 2; drop++) {
                    gpu_case c = gpu_case_make(layer ? DARN_LAYERNORM : DARN_RMSNORM, 5, ns[ni], DARN_BF16);
                    c.desc.residual_dtype = DARN_F32;
                    c.desc.flags = DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32 | DARN_FLAG_HAS_BIAS | pars[pi];
                    c.desc.dropout_p = drop ? 0.1 : 0.0;
                    c.desc.seed = 77 + ni;
                    c.mask = drop;
                    c.fwd_no_resout = true;
                    char why[512];
                    cr_expect_eq(gpu_case_run(&c, why, sizeof why), 0, "N = %lld, %s, parallel %d, p = %g: %s",
                                 (long long)ns[ni], layer ? "layer" : "rms", pi, c.desc.dropout_p, why);
                }
}

/* The kernels' fp32 <-> 16-bit conversions (vendor instructions on NVIDIA, hip/compat.h) against the
 * contract's for every input (darn/device.h). */
Test(gpu, conversions_exhaustive, .timeout = 300)
{
    need_gpu();
    static const char *const what[DARN_CVT_CHECKS] = {"fp32 -> bf16 store",  "fp32 -> f16 store", "bf16 round trip",
                                                      "f16 round trip",      "16-bit -> fp32",
                                                      "fp32 -> e4m3fn (hw)", "fp32 -> e5m2 (hw)"};
    darn_conversion_report r;
    cr_assert_eq(darn_device_check_conversions(&r), DARN_OK, "%s", darn_last_error());
    cr_log_info("fp8 hardware stores checked: %s", r.hw_fp8 ? "yes (sm_89+)" : "no (not on this device)");
    for (int k = 0; k < DARN_CVT_CHECKS; k++)
        cr_expect_eq(r.mismatches[k], 0, "%s: %llu inputs differ from the contract, the first 0x%08x", what[k],
                     (unsigned long long)r.mismatches[k], r.first[k]);
}
