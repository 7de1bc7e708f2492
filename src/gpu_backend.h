/* gpu_backend.h — the HIP backend (hip/), built with DARN_GPU=amd|nvidia. Arguments are validated. */
#ifndef DARN_GPU_BACKEND_H
#define DARN_GPU_BACKEND_H

#include "dispatch.h"
#include "validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a device is present and usable. */
int darn_gpu_available(void);
darn_status darn_gpu_fwd_workspace(const darn_plan *plan, size_t *bytes);
darn_status darn_gpu_bwd_workspace(const darn_plan *plan, size_t *bytes);
/* Enqueue on `stream` (hipStream_t); never synchronizes, never allocates. */
darn_status darn_gpu_fwd(const darn_plan *plan, const darn_fwd_tensors *t, void *workspace, void *stream);
darn_status darn_gpu_bwd(const darn_plan *plan, const darn_bwd_tensors *t, void *workspace, void *stream);
/* The two halves of darn_gpu_bwd (src/rows.c): the backward kernels, which write dx, dresidual and the
 * plan's [wgrad_chunks, N] chunk partials to pw / pb (pb NULL without a bias; M > 0), `rowsums` holding
 * darn_gpu_bwd_rowsum_bytes(plan) bytes (dispatch.h; 16-byte aligned, may be NULL when that is 0); and the
 * passes of the tree over the plan's chunk partials (summed in place) into dweight / dbias (+0 for M = 0). */
darn_status darn_gpu_bwd_partials(const darn_plan *plan, const darn_bwd_tensors *t, float *pw, float *pb,
                                  void *rowsums, void *stream);
darn_status darn_gpu_wgrad_reduce(const darn_plan *plan, float *pw, float *pb, void *dweight, void *dbias,
                                  void *stream);
/* Blocks the launcher starts for a choice on the current device (at most what stays resident at once). */
int64_t darn_gpu_grid(int backward, const darn_choice *c);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_GPU_BACKEND_H */
