/*
 * darn/device.h — minimal device-memory and timing helpers for C programs that use the GPU backend
 * without a HIP/CUDA toolchain of their own (darn's tests, darn-demo, darn-bench, ctypes bindings).
 * They wrap the HIP runtime the library was built with (CUDA through HIP on NVIDIA). Every function
 * returns DARN_ERR_BACKEND_UNAVAILABLE in a library built with DARN_GPU=none or with no device present,
 * and DARN_ERR_DEVICE (message in darn_last_error()) when the runtime fails.
 */
#ifndef DARN_DEVICE_H
#define DARN_DEVICE_H

#include "darn/darn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum darn_copy_kind {
    DARN_COPY_HOST_TO_DEVICE = 0,
    DARN_COPY_DEVICE_TO_HOST = 1,
    DARN_COPY_DEVICE_TO_DEVICE = 2
} darn_copy_kind;

DARN_API darn_status darn_device_malloc(void **ptr, size_t bytes); /* 256-byte aligned */
DARN_API darn_status darn_device_free(void *ptr);
/* Synchronous with respect to the host (the default stream), like hipMemcpy. */
DARN_API darn_status darn_device_memcpy(void *dst, const void *src, size_t bytes, darn_copy_kind kind);
DARN_API darn_status darn_device_memset(void *ptr, int byte, size_t bytes);
DARN_API darn_status darn_device_synchronize(void);
/* Name of device 0 (e.g. "NVIDIA H100 80GB HBM3"), its memory size in bytes (either may be NULL). */
DARN_API darn_status darn_device_info(char *name, size_t name_bytes, size_t *total_mem);

/* Events for timing work on a stream (NULL = default stream). */
typedef struct darn_event darn_event;
DARN_API darn_status darn_event_create(darn_event **ev);
DARN_API darn_status darn_event_destroy(darn_event *ev);
DARN_API darn_status darn_event_record(darn_event *ev, void *stream);
/* Waits for `stop`, then the milliseconds between the two recorded events. */
DARN_API darn_status darn_event_elapsed_ms(float *ms, darn_event *start, darn_event *stop);

/* The GPU kernels' conversions between fp32 and the 16-bit floats (vendor instructions where a vendor has
 * them, hip/compat.h) checked on device 0 against the contract's (docs/numerics.md §2) for every input:
 * checks 0, 1: fp32 -> bf16 / f16 stores (all 2^32 inputs, bits equal, canonical NaNs); 2, 3: the bf16 / f16
 * round trips of §4's hn (bits equal but for NaNs, which must stay NaN); 4: bf16 and f16 -> fp32 (all 2^16);
 * 5, 6: fp32 -> e4m3fn / e5m2 through NVIDIA's cvt.rn.satfinite (sm_89 and later; all 2^32 inputs against
 * docs/numerics.md §9, bits equal; on other devices nothing is checked and they read 0, with hw_fp8 = 0).
 * Takes about a second. mismatches[k] counts failing inputs, first[k] is the smallest (UINT32_MAX: none). */
#define DARN_CVT_CHECKS 7
#define DARN_CVT_CHECK_HW_E4M3FN 5
#define DARN_CVT_CHECK_HW_E5M2 6
typedef struct darn_conversion_report {
    uint64_t mismatches[DARN_CVT_CHECKS];
    uint32_t first[DARN_CVT_CHECKS];
    int32_t hw_fp8; /* 1: the device has the fp8 hardware stores and checks 5, 6 ran */
} darn_conversion_report;
DARN_API darn_status darn_device_check_conversions(darn_conversion_report *r);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_DEVICE_H */
