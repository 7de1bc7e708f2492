/* kernels.h — what the kernel files (fwd.hip, bwd.hip) offer the launcher (gpu_backend.hip). */
#ifndef DARN_HIP_KERNELS_H
#define DARN_HIP_KERNELS_H

#include "compat.h" /* first: it sets how darn/philox.h multiplies */
#include "dispatch.h"
#include "reduce.h"

/* The dispatch table: kernel darn_fwd_table[darn_fwd_entry(cfg, variant)] takes a darn_fwd_args,
 * darn_bwd_table[darn_bwd_entry(cfg, variant, bias)] a darn_bwd_args (src/dispatch.h gives the order). */
extern const void *const darn_fwd_table[DARN_N_FWD_ENTRIES];
extern const void *const darn_bwd_table[DARN_N_BWD_ENTRIES];
/* The row sums of the re-read backward, per dtype configuration (darn_bwd_rowsums<Dt>, a darn_bwd_args). */
extern const void *const darn_bwd_rowsums_table[DARN_N_BWD_CONFIGS];
/* One pass of the dweight/dbias tree over chunk partials (bwd.hip). */
extern const void *const darn_wgrad_pass_kernel;

#endif /* DARN_HIP_KERNELS_H */
