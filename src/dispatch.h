/*
 * dispatch.h — the GPU dispatch table as data: every kernel the GPU backend has, and which one a call
 * runs. Plain C, compiled into every build, so the CPU-only build can test that each entry is reachable
 * (tests/test_dispatch.c) and darn_debug_*_kernel can answer without a device; hip/launch.hip holds the
 * matching kernel pointers, built from the same lists.
 *
 * An entry is (dtype configuration, row variant[, bias]):
 * - dtype configuration: one of DARN_STATIC_CONFIGS or (forward only) DARN_FP8_CONFIGS and DARN_INFER_CONFIGS (dtypes are
 *   template parameters of the kernel: the fast path, which needs N % 8 == 0 and every [M, N] tensor and
 *   vector 16-byte aligned), or the run-time-dtype policy (anything else, same arithmetic); calls with a
 *   parallel residual take DARN_PAR_CONFIGS or their run-time policy instead.
 * - row variant: K = 1 … kmax groups of 8 per thread with the row held in registers (kmax: the
 *   configuration's, at most DARN_MAX_K), or "re-read" for rows too wide for that (the row is read again
 *   from memory after its sums).
 * The launch shape (P threads per row, rows per block) is a function of N alone.
 */
#ifndef DARN_DISPATCH_H
#define DARN_DISPATCH_H

#include <stdint.h>

#include "validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(x, residual, residual-out, weight (= bias), out, kmax). Without a residual, the residual's column is
 * matched as the residual-out dtype; in the backward the same columns are (dx, dresidual, h, dweight, dy).
 * kmax: the forward's largest K (groups per thread in registers): 3 for rows of fp32 h, whose K = 4 kernels
 * spill on NVIDIA (bench/RESULTS.md, run 12), else DARN_MAX_K. The backward holds K <= DARN_BWD_MAX_K. */
#define DARN_STATIC_CONFIGS(X)                                                                        \
    X(DARN_F32, DARN_F32, DARN_F32, DARN_F32, DARN_F32, 3)       /* f32 everywhere */                 \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, 4)  /* bf16 everywhere (inference) */    \
    X(DARN_F16, DARN_F16, DARN_F16, DARN_F16, DARN_F16, 4)       /* f16 everywhere */                 \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_BF16, DARN_BF16, 3)    /* bf16 with an fp32 residual stream */ \
    X(DARN_F16, DARN_F32, DARN_F32, DARN_F16, DARN_F16, 3)       /* f16 with an fp32 residual stream */ \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_F32, DARN_BF16, 4)   /* bf16, fp32 weights (autocast) */  \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_F32, DARN_BF16, 3)     /* both */
#define DARN_N_STATIC_CONFIGS 7
#define DARN_CFG_RUNTIME DARN_N_STATIC_CONFIGS /* the run-time-dtype policy */
#define DARN_N_CONFIGS (DARN_N_STATIC_CONFIGS + 1)
/* Forward-only configurations with an fp8 out (docs/numerics.md §9): DARN_DT_FP8 in the out column stands for
 * any of the four fp8 encodings, which the kernel reads from the out view (one kernel per row variant, not four).
 * They follow the run-time policy in the forward's configuration numbers: DARN_N_CONFIGS + i. */
#define DARN_DT_FP8 100
#define DARN_FP8_CONFIGS(X)                                                                            \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_BF16, DARN_DT_FP8, 3)  /* fp8 training: an fp32 residual stream */ \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_DT_FP8, 4) /* fp8 training: a bf16 residual stream */
#define DARN_N_FP8_CONFIGS 2
/* Parallel-residual configurations (flash-attn's x1 / weight1 / bias1: DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1): the
 * bodies with PAR = true, which also carry x1, its keep bits, the second output y1 and their gradients; x1 and dx1
 * take the x column, weight1 and bias1 the weight column, out1 and dy1 the out column. Two compile-time
 * configurations (training in bf16 with an fp32 or a bf16 residual stream), then a run-time-dtype one for every
 * other call. kmax 2: x1's words and the second output's registers on top of the first's. In the forward's
 * numbering they follow the fp8 configurations, in the backward's the run-time policy. */
#define DARN_PAR_CONFIGS(X)                                                                            \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_BF16, DARN_BF16, 2)     /* bf16 with an fp32 residual stream */ \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, 2)   /* bf16 everywhere */
#define DARN_N_PAR_CONFIGS 2
#define DARN_PAR_RUNTIME_MAX_K 2
#define DARN_CFG_FWD_PAR (DARN_N_CONFIGS + DARN_N_FP8_CONFIGS) /* the first parallel configuration, forward */
#define DARN_CFG_BWD_PAR DARN_N_CONFIGS                        /* … backward */
#define DARN_CFG_FWD_PAR_RUNTIME (DARN_CFG_FWD_PAR + DARN_N_PAR_CONFIGS)
#define DARN_CFG_BWD_PAR_RUNTIME (DARN_CFG_BWD_PAR + DARN_N_PAR_CONFIGS)
/* Forward-only inference configurations: calls without dropout and rowscale (p = 0, a residual or not) of these
 * dtypes, not parallel, take kernels built for exactly that (NODROP in hip/fwd.hip): without the Philox path,
 * its state and the keep bits, their registers (and so their occupancy) are the inference rows' own. Rows of
 * 16-bit h only (bf16 / f16 everywhere, bf16 with fp32 weights); the other dtypes' inference runs the training
 * kernels. They follow the parallel run-time policy in the forward's numbering. */
#define DARN_INFER_CONFIGS(X)                                                                       \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, 4) /* bf16 everywhere */               \
    X(DARN_F16, DARN_F16, DARN_F16, DARN_F16, DARN_F16, 4)      /* f16 everywhere */                \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_F32, DARN_BF16, 4)  /* bf16, fp32 weights */
#define DARN_N_INFER_CONFIGS 3
#define DARN_CFG_FWD_INFER (DARN_CFG_FWD_PAR_RUNTIME + 1) /* the first inference configuration */
#define DARN_N_FWD_CONFIGS (DARN_CFG_FWD_INFER + DARN_N_INFER_CONFIGS)
#define DARN_N_BWD_CONFIGS (DARN_CFG_BWD_PAR_RUNTIME + 1)

#define DARN_MAX_K 4                  /* groups per thread with the row in registers */
#define DARN_VARIANT_REREAD DARN_MAX_K /* variants 0 … 3: K = v + 1 in registers; 4: re-read */
#define DARN_MAX_P_REG 512            /* register kernels are built for blocks of up to 512 threads (so that a
                                         thread may hold 128 registers on NVIDIA) */
#define DARN_SMALL_BLOCK 256          /* rows of fewer threads share blocks of this many */
#define DARN_REREAD_P 512             /* threads per re-read row (one row per block) */

/* The run-time-dtype policy has K = 1, 2 and the re-read variant only (its K = 3 / 4 bodies did not fit AMD's
 * registers: scratch on gfx90a, tools/amd-resource-check 2026-12-02); rows it cannot hold with K <= 2 are
 * re-read. */
#define DARN_RUNTIME_MAX_K 2
#define DARN_N_RUNTIME_VARIANTS (DARN_RUNTIME_MAX_K + 1)
#define DARN_X_FWD_ROW_LEN(X, R, RO, W, O, KMAX) +(KMAX + 1)
/* Forward entries: per configuration K = 1 … kmax and the re-read variant, configurations in their order (static,
 * run-time, fp8, parallel, parallel run-time, inference). */
#define DARN_N_FWD_ENTRIES                                                                                    \
    (0 DARN_STATIC_CONFIGS(DARN_X_FWD_ROW_LEN) + DARN_N_RUNTIME_VARIANTS DARN_FP8_CONFIGS(DARN_X_FWD_ROW_LEN) \
         DARN_PAR_CONFIGS(DARN_X_FWD_ROW_LEN) + (DARN_PAR_RUNTIME_MAX_K + 1) DARN_INFER_CONFIGS(DARN_X_FWD_ROW_LEN))
/* The backward holds at most K = 2 groups per thread (its dweight/dbias partials take 8 K registers each;
 * K = 3 / 4 needed all 256 VGPRs and spilled to scratch on gfx942 and gfx90a, tools/amd-resource-check
 * 2026-12-02): K = 1, 2 and the re-read variant for every configuration. */
#define DARN_BWD_MAX_K 2
/* The parallel-residual backward holds K = 1 only (dy1, weight1 and the dweight1 / dbias1 partials: K = 2 spilled
 * on NVIDIA, 344-1932 bytes per thread, and on AMD; ptxas -v and tools/amd-resource-check 2026-12-03). */
#define DARN_PAR_BWD_MAX_K 1
/* Backward entries: per configuration K = 1 … its kmax (darn_bwd_kmax) and the re-read variant, each without and
 * with a bias. */
#define DARN_N_BWD_ENTRIES \
    ((DARN_CFG_BWD_PAR * (DARN_BWD_MAX_K + 1) + (DARN_N_PAR_CONFIGS + 1) * (DARN_PAR_BWD_MAX_K + 1)) * 2)

/* The forward's largest K in registers for configuration cfg (the run-time policy: DARN_RUNTIME_MAX_K). */
int darn_fwd_kmax(int cfg);
/* Entry index of a forward (cfg, variant) and of a backward (cfg, variant, bias). */
int darn_fwd_entry(int cfg, int variant);
int darn_bwd_entry(int cfg, int variant, int bias);
/* The backward's largest K in registers for (backward) configuration cfg. */
int darn_bwd_kmax(int cfg);

/* What the launcher needs to know of a call, and what darn_debug_*_kernel reports. */
typedef struct darn_choice {
    int entry;          /* forward or backward table index */
    int cfg, variant, bias;
    int p;              /* threads per row (a power of two) */
    int k;              /* groups of 8 per thread (for the re-read variant: per pass over the row) */
    int rows_per_block; /* slots per block: P < DARN_SMALL_BLOCK share a block */
    int block;          /* threads per block = p * rows_per_block */
    int64_t units;      /* rows (forward) or chunk slots (backward) the grid walks */
    int64_t blocks;     /* blocks the units need: ceil(units / rows_per_block) */
} darn_choice;

/* The choice for a validated call; `t` are the call's tensors (alignment decides the static path). */
void darn_choose_fwd(const darn_plan *pl, const darn_fwd_tensors *t, darn_choice *c);
void darn_choose_bwd(const darn_plan *pl, const darn_bwd_tensors *t, darn_choice *c);

/* Human-readable name of a table entry ("fwd bf16/f32/f32/bf16/bf16 K=2", "bwd runtime re-read bias"). */
void darn_entry_name(int backward, int entry, char *buf, size_t bytes);
/* The fields of an entry (cfg, variant, bias) without a call; p/k/blocks are 0. */
void darn_entry_choice(int backward, int entry, darn_choice *c);
/* dtypes of a compile-time configuration (x, residual, residual-out, weight, out; DARN_DT_FP8 for the fp8
 * configurations' out), forward numbering; 0 when cfg is a run-time policy or out of range. */
int darn_static_config_dtypes(int cfg, darn_dtype out[5]);
/* The forward's number of backward configuration cfg (the same dtypes and kind). */
int darn_bwd_cfg_fwd(int cfg);
/* Whether forward configuration cfg is a parallel-residual one (PAR kernels); an inference one (NODROP kernels). */
int darn_cfg_is_parallel(int cfg);
int darn_cfg_is_infer(int cfg);

/* The row geometry of N: P, K and the variant; `cap` is the largest K preferred on ties, `kmax` the largest
 * K at all (dispatch.c). */
void darn_row_geometry(int64_t n, int cap, int kmax, int *p, int *k, int *variant);

/* Whether the backward of the plan re-reads its rows (N too wide for K <= darn_bwd_kmax in registers: the same
 * for every dtype configuration of the plan's kind, parallel or not). */
int darn_bwd_rereads(const darn_plan *pl);
/* Workspace bytes the GPU backward needs beyond the chunk partials: the (c1, c2) pair of each of the plan's m
 * rows when they are re-read (darn_bwd_rowsums), else 0. */
size_t darn_gpu_bwd_rowsum_bytes(const darn_plan *pl);
/* darn_bwd's workspace on the GPU (gpu != 0) or the CPU: the chunk partials (darn_bwd_partials_workspace), then,
 * from *rowsums_at (a 16-byte boundary), darn_gpu_bwd_rowsum_bytes; *total bytes in all. */
darn_status darn_bwd_workspace_layout(const darn_plan *pl, int gpu, size_t *rowsums_at, size_t *total);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_DISPATCH_H */
