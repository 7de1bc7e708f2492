/* args.h — kernel arguments (passed by value), built once per call by gpu_backend.hip. */
#ifndef DARN_HIP_ARGS_H
#define DARN_HIP_ARGS_H

#include <stdint.h>

/* One [M, N] tensor or [N] vector: pointer, row stride in elements, dtype (darn_dtype), 16-byte path ok. */
struct darn_view {
    const void *p;
    int64_t stride;
    int32_t dt;
    int32_t vec;
};

struct darn_rng_args {
    uint64_t seed, offset;
    const uint64_t *seed_ptr, *offset_ptr; /* device pointers or NULL (graph-safe state) */
    uint64_t threshold;
    uint32_t threshold32; /* threshold as 32 bits (p < 1) ... */
    uint32_t keep_mask;   /* ... and 0xFF, or 0 for p = 1 (nothing kept: threshold = 2^32) */
    float scale;
    uint64_t index0;      /* added to every element index r * N + c: row0 * N for a row block (src/rows.c), else 0 */
};

struct darn_fwd_args {
    darn_view x, res, w, b, out, resout; /* out / resout are written */
    const float *rowscale;               /* [M] */
    uint8_t *mask;                       /* [M][mask_row_bytes] */
    float *rstd, *mean;                  /* [M] */
    int64_t m, n, groups, mask_row_bytes;
    darn_rng_args rng;
    float eps;
    uint32_t opt; /* DARN_OPT_* */
    int32_t p, rows_per_block;
    /* fp8 out (a.out.dt one of them; run-time-dtype kernels only): y8 = fp8(y * scale), scale = *out_scale_ptr
     * when given, else out_scale; amax (or NULL): the uint32 max of the amax terms (numerics.md §9), zeroed by
     * the launcher before the kernel */
    float out_scale;
    const float *out_scale_ptr;
    uint32_t *amax;
    /* parallel residual (the PAR kernels only; views with p = NULL where absent): x1 (x's dtype), weight1 / bias1,
     * out1 (written, out's dtype), mask1 (x1's keep bits, written) */
    darn_view x1, w1, b1, out1;
    uint8_t *mask1;
};

struct darn_bwd_args {
    darn_view dy, h, w, dresout, dx, dres; /* dx / dres are written */
    const float *rstd, *mean, *rowscale;   /* [M] */
    const uint8_t *mask;                   /* [M][mask_row_bytes], read when mask_read */
    float *partial_w, *partial_b;          /* [G][N] chunk partials (workspace) */
    float *rowc;                           /* [M][2] (c1, c2) of re-read rows (workspace; darn_bwd_rowsums) */
    int64_t m, n, groups, mask_row_bytes, chunk_rows, chunks;
    darn_rng_args rng;
    uint32_t opt;
    int32_t mask_read;
    int32_t p, rows_per_block;
    /* parallel residual (the PAR kernels only): dy1 (dy's dtype), weight1, dx1 (written, x's dtype), mask1 (x1's
     * keep bits, read when mask1_read), the dweight1 / dbias1 chunk partials */
    darn_view dy1, w1, dx1;
    const uint8_t *mask1;
    int32_t mask1_read;
    float *partial_w1, *partial_b1;
};

/* One pass of the dweight/dbias tree: per column, aligned blocks of 32 of the `count` values
 * q[i * step][c] become one, stored at q[32 i' * step][c]; the last pass (count <= 32) stores dst. */
#define DARN_WGRAD_MAX_PARTS 4
struct darn_wgrad_args {
    float *partial[DARN_WGRAD_MAX_PARTS]; /* [G][N] each (dweight, dbias, dweight1, dbias1: those present), summed in place */
    void *dst[DARN_WGRAD_MAX_PARTS];      /* [N] each */
    int32_t dt[DARN_WGRAD_MAX_PARTS];
    int32_t parts;                        /* 1 … 4 (grid.y) */
    int64_t n, count, step, col_blocks;
};

#endif /* DARN_HIP_ARGS_H */
