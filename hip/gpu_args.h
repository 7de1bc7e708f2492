/* gpu_args.h — kernel arguments (passed by value) and launch geometry shared by launcher and kernels. */
#ifndef DARN_HIP_GPU_ARGS_H
#define DARN_HIP_GPU_ARGS_H

#include <stdint.h>

#define DARN_GPU_MAX_REG_GROUPS 8 /* groups of 8 held in registers per thread; more -> streaming kernel */
#define DARN_GPU_SMALL_BLOCK 256  /* threads of a block that holds several rows (P <= 32) */

/* Row geometry (a function of N alone): P threads per row, each owning lanes t (and, for P = L,
 * groups t, t + P, t + 2P, ...). P = min(L(N), next_pow2(groups)): lanes past the data are empty. */
struct darn_gpu_geom {
    int64_t groups; /* ceil(N / 8) */
    int p;          /* threads per row, power of two, 1..1024 */
    int k;          /* groups per thread, ceil(groups / p) */
    int rows_per_block;
    int block;      /* threads per block */
};

struct darn_gpu_rng {
    uint64_t seed, offset;
    const uint64_t *seed_ptr, *offset_ptr; /* device pointers or NULL */
    uint64_t threshold;
    float scale;
    int dropout;
};

struct darn_gpu_fwd_args {
    const void *x, *res, *w, *b;
    const float *rowscale;
    void *out, *resout;
    uint8_t *mask;
    float *rstd, *mean;
    int64_t m, n, s_x, s_res, s_out, s_resout, mask_row_bytes;
    struct darn_gpu_geom geom;
    struct darn_gpu_rng rng;
    float eps;
    uint8_t dt_x, dt_res, dt_w, dt_b, dt_out, dt_resout;
    uint8_t vec_x, vec_res, vec_w, vec_b, vec_out, vec_resout; /* 16-byte vector path allowed */
    uint8_t layer, has_res, has_bias, has_rowscale, zc;
};

struct darn_gpu_bwd_args {
    const void *dy, *h, *w, *dresout;
    const float *rstd, *mean, *rowscale;
    const uint8_t *mask;
    void *dx, *dres;
    float *partial_w, *partial_b; /* [G][N] chunk partials (workspace) */
    int64_t m, n, s_dy, s_h, s_dresout, s_dx, s_dres, mask_row_bytes;
    int64_t chunk_rows, chunks;
    struct darn_gpu_geom geom;
    struct darn_gpu_rng rng;
    uint8_t dt_dy, dt_h, dt_w, dt_b, dt_dres, dt_dx;
    uint8_t vec_dy, vec_h, vec_w, vec_dresout, vec_dx, vec_dres;
    uint8_t layer, has_rowscale, zc;
};

/* One pass of the dweight/dbias tree (bwd.hip): per column, aligned blocks of 32 of the `count` values
 * q[i * step][c] become one, stored at q[32 i' * step][c]; the last pass (count <= 32) stores dst. */
struct darn_gpu_wgrad_args {
    float *partial[2]; /* [G][N] each (dweight, dbias), summed in place */
    void *dst[2];      /* [N] each */
    uint8_t dt[2];
    int64_t n, count, step;
};

#endif /* DARN_HIP_GPU_ARGS_H */
