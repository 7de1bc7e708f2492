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
};

/* One pass of the dweight/dbias tree: per column, aligned blocks of 32 of the `count` values
 * q[i * step][c] become one, stored at q[32 i' * step][c]; the last pass (count <= 32) stores dst. */
struct darn_wgrad_args {
    float *partial[2]; /* [G][N] each (dweight, dbias), summed in place */
    void *dst[2];      /* [N] each */
    int32_t dt[2];
    int32_t parts;     /* 1 or 2 */
    int64_t n, count, step, col_blocks;
};

#endif /* DARN_HIP_ARGS_H */
