/* device_api.hip — darn/device.h over the HIP runtime. */
#include "compat.h"
#include "darn/device.h"
#include "gpu_backend.h"

static darn_status hip_status(hipError_t e, const char *fn)
{
    if (e == hipSuccess) return DARN_OK;
    return darn_fail(DARN_ERR_DEVICE, "%s: %s (%s)", fn, hipGetErrorName(e), hipGetErrorString(e));
}

static darn_status need_device(const char *fn)
{
    if (darn_gpu_available()) return DARN_OK;
    return darn_fail(DARN_ERR_BACKEND_UNAVAILABLE, "%s: no GPU device is present", fn);
}

#define DARN_DEVICE_CALL(fn, call)                                                                     \
    do {                                                                                                 \
        darn_status s_ = need_device(fn);                                                                \
        if (s_ != DARN_OK) return s_;                                                                    \
        return hip_status((call), fn);                                                                   \
    } while (0)

extern "C" darn_status darn_device_malloc(void **ptr, size_t bytes)
{
    if (!ptr) return darn_fail(DARN_ERR_NULL_POINTER, "darn_device_malloc: ptr is NULL");
    DARN_DEVICE_CALL("darn_device_malloc", hipMalloc(ptr, bytes));
}

extern "C" darn_status darn_device_free(void *ptr) { DARN_DEVICE_CALL("darn_device_free", hipFree(ptr)); }

extern "C" darn_status darn_device_memcpy(void *dst, const void *src, size_t bytes, darn_copy_kind kind)
{
    hipMemcpyKind k = hipMemcpyHostToDevice;
    switch (kind) {
    case DARN_COPY_HOST_TO_DEVICE: k = hipMemcpyHostToDevice; break;
    case DARN_COPY_DEVICE_TO_HOST: k = hipMemcpyDeviceToHost; break;
    case DARN_COPY_DEVICE_TO_DEVICE: k = hipMemcpyDeviceToDevice; break;
    default: return darn_fail(DARN_ERR_BAD_ENUM, "darn_device_memcpy: kind = %d is not a darn_copy_kind", (int)kind);
    }
    DARN_DEVICE_CALL("darn_device_memcpy", hipMemcpy(dst, src, bytes, k));
}

extern "C" darn_status darn_device_memset(void *ptr, int byte, size_t bytes)
{
    DARN_DEVICE_CALL("darn_device_memset", hipMemset(ptr, byte, bytes));
}

extern "C" darn_status darn_device_synchronize(void)
{
    DARN_DEVICE_CALL("darn_device_synchronize", hipDeviceSynchronize());
}

extern "C" darn_status darn_device_info(char *name, size_t name_bytes, size_t *total_mem)
{
    darn_status s = need_device("darn_device_info");
    if (s != DARN_OK) return s;
    hipDeviceProp_t prop;
    s = hip_status(hipGetDeviceProperties(&prop, 0), "darn_device_info");
    if (s != DARN_OK) return s;
    if (name && name_bytes) {
        size_t i = 0;
        for (; i + 1 < name_bytes && prop.name[i]; i++) name[i] = prop.name[i];
        name[i] = '\0';
    }
    if (total_mem) *total_mem = prop.totalGlobalMem;
    return DARN_OK;
}

struct darn_event {
    hipEvent_t e;
};

extern "C" darn_status darn_event_create(darn_event **ev)
{
    if (!ev) return darn_fail(DARN_ERR_NULL_POINTER, "darn_event_create: ev is NULL");
    darn_status s = need_device("darn_event_create");
    if (s != DARN_OK) return s;
    darn_event *e = new darn_event;
    s = hip_status(hipEventCreate(&e->e), "darn_event_create");
    if (s != DARN_OK) {
        delete e;
        return s;
    }
    *ev = e;
    return DARN_OK;
}

extern "C" darn_status darn_event_destroy(darn_event *ev)
{
    if (!ev) return DARN_OK;
    darn_status s = hip_status(hipEventDestroy(ev->e), "darn_event_destroy");
    delete ev;
    return s;
}

extern "C" darn_status darn_event_record(darn_event *ev, void *stream)
{
    if (!ev) return darn_fail(DARN_ERR_NULL_POINTER, "darn_event_record: ev is NULL");
    return hip_status(hipEventRecord(ev->e, (hipStream_t)stream), "darn_event_record");
}

extern "C" darn_status darn_event_elapsed_ms(float *ms, darn_event *start, darn_event *stop)
{
    if (!ms || !start || !stop) return darn_fail(DARN_ERR_NULL_POINTER, "darn_event_elapsed_ms: NULL argument");
    darn_status s = hip_status(hipEventSynchronize(stop->e), "darn_event_elapsed_ms");
    if (s != DARN_OK) return s;
    return hip_status(hipEventElapsedTime(ms, start->e, stop->e), "darn_event_elapsed_ms");
}
