/* kernels.h — what the kernel files (fwd.hip, bwd.hip) offer the host launcher (gpu_backend.hip). */
#ifndef DARN_HIP_KERNELS_H
#define DARN_HIP_KERNELS_H

#include "device_common.h"

/* DARN_OK, or DARN_ERR_DEVICE with the runtime's message when the last launch failed. */
darn_status darn_check_launch(const char *fn);

darn_status darn_launch_fwd(const darn_gpu_fwd_args &a, hipStream_t stream);
darn_status darn_launch_bwd(const darn_gpu_bwd_args &a, void *dweight, void *dbias, hipStream_t stream);

#endif /* DARN_HIP_KERNELS_H */
