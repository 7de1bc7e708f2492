/* mem_gpu.c — darn_mem over the GPU backend's device memory and events (darn/device.h). */
#include <stdio.h>

#include <darn/device.h>

#include "job.h"

typedef struct gpu_ctx {
    darn_event *start, *stop;
    char err[256];
} gpu_ctx;

static int fail(gpu_ctx *g, const char *what)
{
    snprintf(g->err, sizeof g->err, "%s: %s", what, darn_last_error());
    return 1;
}

static void *g_alloc(void *ctx, size_t bytes)
{
    void *p = NULL;
    if (darn_device_malloc(&p, bytes ? bytes : 64) != DARN_OK) {
        fail(ctx, "alloc");
        return NULL;
    }
    return p;
}
static void g_release(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr) darn_device_free(ptr);
}
static int g_to_device(void *ctx, void *dst, const void *src, size_t bytes)
{
    return bytes && darn_device_memcpy(dst, src, bytes, DARN_COPY_HOST_TO_DEVICE) != DARN_OK ? fail(ctx, "to_device") : 0;
}
static int g_to_host(void *ctx, void *dst, const void *src, size_t bytes)
{
    return bytes && darn_device_memcpy(dst, src, bytes, DARN_COPY_DEVICE_TO_HOST) != DARN_OK ? fail(ctx, "to_host") : 0;
}
static int g_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    return bytes && darn_device_memcpy(dst, src, bytes, DARN_COPY_DEVICE_TO_DEVICE) != DARN_OK ? fail(ctx, "copy") : 0;
}
static int g_sync(void *ctx) { return darn_device_synchronize() != DARN_OK ? fail(ctx, "sync") : 0; }
static int g_timer_start(void *ctx)
{
    gpu_ctx *g = ctx;
    if (!g->start && (darn_event_create(&g->start) != DARN_OK || darn_event_create(&g->stop) != DARN_OK))
        return fail(g, "event create");
    return darn_event_record(g->start, NULL) != DARN_OK ? fail(g, "event record") : 0;
}
static int g_timer_stop(void *ctx, double *ms)
{
    gpu_ctx *g = ctx;
    float f = 0.0f;
    if (darn_event_record(g->stop, NULL) != DARN_OK || darn_event_elapsed_ms(&f, g->start, g->stop) != DARN_OK)
        return fail(g, "event elapsed");
    *ms = f;
    return 0;
}
static const char *g_error(void *ctx) { return ((gpu_ctx *)ctx)->err; }

const darn_mem *darn_mem_gpu(void)
{
    static gpu_ctx ctx;
    static const darn_mem mem = {"gpu",   DARN_BACKEND_GPU, &ctx,          NULL,         g_alloc, g_release, g_to_device,
                                 g_to_host, g_copy,         g_sync,        g_timer_start, g_timer_stop, g_error};
    return darn_backend_available(DARN_BACKEND_GPU) ? &mem : NULL;
}
