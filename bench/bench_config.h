/*
 * bench_config.h — the benchmark configurations (train, infer, f32, layernorm, mask, fp8, parallel), their
 * timed directions and the minimal bytes each direction moves.
 *
 * Every config is prenorm with a residual: the forward writes residual_out (h), the backward takes
 * dresidual_out (the gradient flowing into h) and writes dresidual. "Minimal bytes" are the reads and
 * writes no implementation can avoid (each tensor once; workspace and re-reads are not counted):
 *
 *   fwd      reads  x, residual, weight (+ bias)
 *            writes out, residual_out (+ packed mask) (+ rstd, + mean: 4 B per row, when a backward follows)
 *   bwd      reads  dy, residual_out (h), weight, rstd (+ mean), dresidual_out
 *            writes dx, dresidual, dweight (+ dbias)
 *   bwd_mask bwd + reads the packed mask (instead of regenerating it from seed/offset)
 *
 * With the parallel residual (flags DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1, the `parallel` config):
 *   fwd      + reads x1 (x's dtype), weight1 (+ bias1); writes out1 (out's dtype) (+ packed mask1 with the mask)
 *   bwd      + reads dy1 (dy's dtype), weight1 (+ mask1 in bwd_mask); writes dx1 (x's dtype), dweight1 (+ dbias1)
 */
#ifndef DARN_BENCH_CONFIG_H
#define DARN_BENCH_CONFIG_H

#include <stdint.h>

#include <darn/darn.h>

typedef enum bench_dir { BENCH_FWD = 0, BENCH_BWD_MASK, BENCH_BWD, BENCH_DIRS } bench_dir;

typedef struct bench_config {
    const char *name;
    darn_norm norm;
    darn_dtype x, residual, weight, bias, out;
    uint32_t flags;   /* DARN_FLAG_*; HAS_RESIDUAL always; HAS_X1 / HAS_WEIGHT1 / HAS_BIAS1: parallel residual */
    double p;         /* dropout probability */
    int backward;     /* 1: rstd (+ mean) are written and the backward is timed */
    int mask;         /* 1: the forward writes the packed mask; bwd_mask is timed too */
    int amax;         /* 1 (fp8 out only): the forward writes amax */
} bench_config;

/* dy's dtype: out's, or x's when out is fp8 (dy then arrives in 16 bits, desc.dy_dtype). */
darn_dtype bench_config_dy(const bench_config *cfg);

/* The configs in their default order; `count` receives their number. */
const bench_config *bench_configs(int *count);
/* The config named `name`, or NULL. */
const bench_config *bench_config_find(const char *name);

/* Fills `dirs` (capacity BENCH_DIRS) with the directions timed for `cfg`, in run order; returns the count. */
int bench_config_dirs(const bench_config *cfg, bench_dir dirs[BENCH_DIRS]);
const char *bench_dir_name(bench_dir dir); /* "fwd", "bwd_mask", "bwd" */

/* darn_desc of `cfg` at shape M x N (seed/offset fixed; they do not change the speed). */
void bench_config_desc(const bench_config *cfg, int64_t rows, int64_t cols, darn_desc *desc);
/* Minimal bytes one call of `dir` reads + writes at shape M x N (see the table above). */
double bench_config_bytes(const bench_config *cfg, int64_t rows, int64_t cols, bench_dir dir);

#endif /* DARN_BENCH_CONFIG_H */
