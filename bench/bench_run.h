/*
 * bench_run.h — the tensors of one config on the backend, and the timed runs of one shape and direction.
 *
 * bench_tensors_make allocates every tensor once for the largest shape the run will use (capacity
 * elements and rows, widest row) and fills the inputs with random values (bench_fill.h), copied in
 * once. Smaller shapes use the leading part of each buffer. Workspaces grow on demand, outside timing.
 */
#ifndef DARN_BENCH_RUN_H
#define DARN_BENCH_RUN_H

#include <stdint.h>

#include "bench_config.h"
#include "bench_dev.h"

typedef struct bench_tensors {
    const bench_config *cfg;
    void *x, *residual, *weight, *bias;                /* forward inputs */
    void *out, *h, *mask, *rstd, *mean;                /* forward outputs (h = residual_out) */
    void *dy, *dresidual_out;                          /* backward inputs besides h, weight, stats, mask */
    float *amax;                                       /* fp8 configs with amax: [1] */
    void *dx, *dresidual, *dweight, *dbias;            /* backward outputs */
    /* parallel residual (configs with DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1), else NULL */
    void *x1, *weight1, *bias1;                        /* forward inputs */
    void *out1, *mask1;                                /* forward outputs (mask1: configs that write the mask) */
    void *dy1;                                         /* backward input */
    void *dx1, *dweight1, *dbias1;                     /* backward outputs */
    void *ws;                                          /* workspace, shared by fwd and bwd */
    size_t ws_bytes;
} bench_tensors;

/* Capacity: M * N <= elems for every shape, M <= max_rows, N <= max_cols. 0 or -1 (d->err set). */
int bench_tensors_make(bench_tensors *t, bench_dev *d, const bench_config *cfg, int64_t elems,
                       int64_t max_rows, int64_t max_cols, uint64_t seed);
void bench_tensors_free(bench_tensors *t, bench_dev *d);

/* Timing settings of one measurement. */
typedef struct bench_timing {
    int warmup;        /* untimed calls first */
    int reps;          /* timed samples; the median is reported */
    int flush;         /* 1: overwrite the flush buffer before every call (outside the timed region) */
    int calls;         /* latency: back-to-back calls per sample */
} bench_timing;

/* Throughput: median milliseconds of one call of `dir` at M x N. Returns 0, or -1 with `err` set
 * (a darn error at this shape is reported, not fatal to the run). */
int bench_time_call(bench_tensors *t, bench_dev *d, int64_t rows, int64_t cols, bench_dir dir,
                    const bench_timing *tm, double *ms, char *err, size_t err_len);

/* Latency: `calls` back-to-back calls per sample, no flush. gpu_us is the device time per call
 * (timer around all calls / calls), host_us the host wall time per call spent inside the C API call
 * (argument checks + launch), both medians over the samples. Returns 0 or -1 with `err` set. */
int bench_time_latency(bench_tensors *t, bench_dev *d, int64_t rows, int64_t cols, bench_dir dir,
                       const bench_timing *tm, double *gpu_us, double *host_us, char *err, size_t err_len);

#endif /* DARN_BENCH_RUN_H */
