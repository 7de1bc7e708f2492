/* bench_config.c — the config table and the byte formulas (see bench_config.h). */
#include "bench_config.h"

#include <string.h>

#define TRAIN_FLAGS (DARN_FLAG_HAS_RESIDUAL | DARN_FLAG_RESIDUAL_IN_FP32)
/* flash-attn's parallel block (GPT-J / NeoX style: attention and MLP read norms of the same h): x1, weight1 */
#define PARALLEL_FLAGS (TRAIN_FLAGS | DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1)

static const bench_config k_configs[] = {
    /* name        norm            x          residual   weight     bias       out        flags                          p    bwd mask amax */
    {"train",     DARN_RMSNORM,   DARN_BF16, DARN_F32,  DARN_BF16, DARN_BF16, DARN_BF16, TRAIN_FLAGS,                   0.1, 1,  0, 0},
    {"infer",     DARN_RMSNORM,   DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_FLAG_HAS_RESIDUAL,        0.0, 0,  0, 0},
    {"f32",       DARN_RMSNORM,   DARN_F32,  DARN_F32,  DARN_F32,  DARN_F32,  DARN_F32,  DARN_FLAG_HAS_RESIDUAL,        0.1, 1,  0, 0},
    {"layernorm", DARN_LAYERNORM, DARN_BF16, DARN_F32,  DARN_BF16, DARN_BF16, DARN_BF16, TRAIN_FLAGS | DARN_FLAG_HAS_BIAS, 0.1, 1, 0, 0},
    {"mask",      DARN_RMSNORM,   DARN_BF16, DARN_F32,  DARN_BF16, DARN_BF16, DARN_BF16, TRAIN_FLAGS,                   0.1, 1,  1, 0},
    /* train with an fp8 (E4M3) y, scale 0.5 and amax: the output of fp8 training's norm */
    {"fp8",       DARN_RMSNORM,   DARN_BF16, DARN_F32,  DARN_BF16, DARN_BF16, DARN_FP8_E4M3FN, TRAIN_FLAGS,             0.1, 1,  0, 1},
    /* train plus the parallel residual: a second input x1 (bf16, its own keep bits) and a second output y1 with
     * its own weight1 (bf16); backward with dy1, dx1, dweight1 */
    {"parallel",  DARN_RMSNORM,   DARN_BF16, DARN_F32,  DARN_BF16, DARN_BF16, DARN_BF16, PARALLEL_FLAGS,                0.1, 1,  0, 0},
};

darn_dtype bench_config_dy(const bench_config *cfg)
{
    return darn_dtype_size(cfg->out) == 1 ? cfg->x : cfg->out;
}

const bench_config *bench_configs(int *count)
{
    *count = (int)(sizeof k_configs / sizeof k_configs[0]);
    return k_configs;
}

const bench_config *bench_config_find(const char *name)
{
    int n;
    const bench_config *c = bench_configs(&n);
    for (int i = 0; i < n; ++i)
        if (strcmp(c[i].name, name) == 0) return &c[i];
    return NULL;
}

int bench_config_dirs(const bench_config *cfg, bench_dir dirs[BENCH_DIRS])
{
    int n = 0;
    dirs[n++] = BENCH_FWD;
    if (cfg->backward && cfg->mask) dirs[n++] = BENCH_BWD_MASK;
    if (cfg->backward) dirs[n++] = BENCH_BWD;
    return n;
}

const char *bench_dir_name(bench_dir dir)
{
    switch (dir) {
    case BENCH_FWD: return "fwd";
    case BENCH_BWD_MASK: return "bwd_mask";
    case BENCH_BWD: return "bwd";
    default: return "?";
    }
}

void bench_config_desc(const bench_config *cfg, int64_t rows, int64_t cols, darn_desc *desc)
{
    darn_desc_init(desc, cfg->norm, rows, cols, cfg->x);
    desc->residual_dtype = cfg->residual;
    desc->weight_dtype = cfg->weight;
    desc->bias_dtype = cfg->bias;
    desc->out_dtype = cfg->out;
    desc->flags = cfg->flags;
    desc->dropout_p = cfg->p;
    desc->seed = 1234;
    desc->offset = 0;
    if (darn_dtype_size(cfg->out) == 1) { /* fp8 out */
        desc->dy_dtype = bench_config_dy(cfg);
        desc->out_scale = 0.5f;
    }
}

double bench_config_bytes(const bench_config *cfg, int64_t rows, int64_t cols, bench_dir dir)
{
    darn_desc d;
    bench_config_desc(cfg, rows, cols, &d);
    const double m = (double)rows, n = (double)cols, mn = m * n;
    const double sx = (double)darn_dtype_size(cfg->x), sr = (double)darn_dtype_size(cfg->residual);
    const double sw = (double)darn_dtype_size(cfg->weight), so = (double)darn_dtype_size(cfg->out);
    const double sdy = (double)darn_dtype_size(bench_config_dy(cfg));
    const double sh = (double)darn_dtype_size(darn_residual_out_dtype(&d));
    const double sb = (cfg->flags & DARN_FLAG_HAS_BIAS) ? (double)darn_dtype_size(cfg->bias) : 0.0;
    const double stats = cfg->backward ? 4.0 * m * (cfg->norm == DARN_LAYERNORM ? 2.0 : 1.0) : 0.0;
    const double mask = m * (double)darn_mask_row_bytes(cols);
    /* parallel residual: x1 [M, N] x dtype with its own mask1; weight1 (+ bias1) [N] with a second output y1 */
    const double x1 = (cfg->flags & DARN_FLAG_HAS_X1) ? 1.0 : 0.0, w1 = (cfg->flags & DARN_FLAG_HAS_WEIGHT1) ? 1.0 : 0.0;
    const double sb1 = (cfg->flags & DARN_FLAG_HAS_BIAS1) ? (double)darn_dtype_size(cfg->bias) : 0.0;
    const double masks = mask * (1.0 + x1); /* mask (+ mask1) */
    if (dir == BENCH_FWD)
        return mn * (sx + sr) + n * (sw + sb)        /* reads x, residual, weight, bias */
               + x1 * mn * sx + w1 * n * sw + n * sb1 /* reads x1, weight1, bias1 */
               + mn * (so + sh) + stats + (cfg->mask ? masks : 0.0) + (cfg->amax ? 4.0 : 0.0) /* writes */
               + w1 * mn * so;                       /* writes y1 */
    return mn * (sdy + sh) + n * sw + stats + mn * sh /* reads dy, h, weight, rstd/mean, dresidual_out */
           + w1 * (mn * sdy + n * sw)                /* reads dy1, weight1 */
           + (dir == BENCH_BWD_MASK ? masks : 0.0)
           + mn * (sx + sr) + n * (sw + sb)          /* writes dx, dresidual, dweight, dbias */
           + x1 * mn * sx + w1 * n * sw + n * sb1;   /* writes dx1, dweight1, dbias1 */
}
