/*
 * fast_configs.h — which calls get the compile-time-dtype kernels (fwd_fast.hip, bwd_fast.hip) and
 * the geometry those handle. Everything else runs the generic kernels (fwd.hip, bwd.hip), which give
 * the same bits. A configuration is (x, residual, residual-out, weight = bias, out); without a
 * residual, the residual column is read as the residual-out dtype.
 */
#ifndef DARN_HIP_FAST_CONFIGS_H
#define DARN_HIP_FAST_CONFIGS_H

#include "kernels.h"
#include "vec8.h"

/* X(x, residual, residual-out, weight, out): same dtype everywhere; 16-bit activations with an fp32
 * residual stream (residual_in_fp32); each of those with fp32 weights (autocast keeps them fp32). */
#ifndef DARN_FAST_CONFIGS /* a build may narrow the list, e.g. for resource experiments */
#define DARN_FAST_CONFIGS(X)                                                  \
    X(DARN_F32, DARN_F32, DARN_F32, DARN_F32, DARN_F32)                       \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16, DARN_BF16)                  \
    X(DARN_F16, DARN_F16, DARN_F16, DARN_F16, DARN_F16)                       \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_BF16, DARN_BF16)                    \
    X(DARN_F16, DARN_F32, DARN_F32, DARN_F16, DARN_F16)                       \
    X(DARN_BF16, DARN_BF16, DARN_BF16, DARN_F32, DARN_BF16)                   \
    X(DARN_F16, DARN_F16, DARN_F16, DARN_F32, DARN_F16)                       \
    X(DARN_BF16, DARN_F32, DARN_F32, DARN_F32, DARN_BF16)                     \
    X(DARN_F16, DARN_F32, DARN_F32, DARN_F32, DARN_F16)
#endif /* DARN_FAST_CONFIGS */

/* Groups per thread are instantiated for 1, 2, 3 and 4. The
 * launch bound is the block size class, 256 or 512 threads (a row of 512 threads always has K >= 3;
 * rows of 1024 threads go to the wide kernels), so that a thread may use 255 or 128 registers on
 * NVIDIA: a bound of 1024 would cap it at 64 and spill the row to the stack. */
inline bool darn_fast_geometry_ok(const darn_gpu_geom &g) { return g.k <= 4 && g.block <= 512; }

/* Launch the fast kernel and return true, or return false (nothing launched) when the call is not a
 * fast configuration. */
bool darn_launch_fwd_fast(const darn_gpu_fwd_args &a, hipStream_t stream);
bool darn_launch_bwd_fast(const darn_gpu_bwd_args &a, hipStream_t stream);
/* The same for rows of DARN_WIDE_LANES lanes, one thread each (fwd_wide.hip, bwd_wide.hip); called by
 * the two above. */
#define DARN_WIDE_LANES 1024
bool darn_launch_fwd_wide(const darn_gpu_fwd_args &a, hipStream_t stream);
bool darn_launch_bwd_wide(const darn_gpu_bwd_args &a, hipStream_t stream);

#endif /* DARN_HIP_FAST_CONFIGS_H */
