/* kernels.h — what the kernel files (fwd.hip, bwd.hip) offer the launcher (launch.hip). */
#ifndef DARN_HIP_KERNELS_H
#define DARN_HIP_KERNELS_H

#include "dispatch.h"
#include "reduce.h"

/* The dispatch table: kernel darn_fwd_table[darn_fwd_entry(cfg, variant)] takes a darn_fwd_args,
 * darn_bwd_table[darn_bwd_entry(cfg, variant, bias)] a darn_bwd_args (src/dispatch.h gives the order). */
extern const void *const darn_fwd_table[DARN_N_FWD_ENTRIES];
extern const void *const darn_bwd_table[DARN_N_BWD_ENTRIES];
/* The row sums of the re-read backward, per dtype configuration (darn_bwd_rowsums<Dt>, a darn_bwd_args). */
extern const void *const darn_bwd_rowsums_table[DARN_N_CONFIGS];
#if DARN_CLUSTER
/* Groups per thread of the cluster forward's blocks for h and weight dtypes ro, w: 2 with fp32 h or fp32 weights
 * (K = 4 spilled them), else 4. The kernels (hip/fwd.hip) and the launcher (gpu_backend.hip) slice rows by it. */
__host__ __device__ constexpr int darn_fwd_cluster_k(int ro, int w) { return ro == DARN_F32 || w == DARN_F32 ? 2 : 4; }
/* The cluster backward's kernels (an experiment, hip/bwd.hip): [cfg][2 * log2(CL / 2) + bias]. */
extern const void *const darn_bwd_cluster_table[DARN_N_STATIC_CONFIGS][6];
/* The cluster forward's kernels: [cfg][log2(CL / 2)]. */
extern const void *const darn_fwd_cluster_table[DARN_N_STATIC_CONFIGS][3];
#endif
/* One pass of the dweight/dbias tree over chunk partials (bwd.hip). */
extern const void *const darn_wgrad_pass_kernel;

#endif /* DARN_HIP_KERNELS_H */
