/* bench_dev.c — backend memory, flush and timers for darn-bench (see bench_dev.h). */
#include "bench_dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(bench_dev *d, const char *what)
{
    snprintf(d->err, sizeof d->err, "%s: %s", what, darn_last_error());
    return -1;
}

static int is_gpu(const bench_dev *d) { return d->backend == DARN_BACKEND_GPU; }

int bench_dev_open(bench_dev *d, darn_backend backend)
{
    memset(d, 0, sizeof *d);
    d->backend = backend;
    if (!darn_backend_available(backend)) {
        snprintf(d->err, sizeof d->err, "the %s backend is not available (%s)",
                 backend == DARN_BACKEND_GPU ? "GPU" : "CPU",
                 backend == DARN_BACKEND_GPU ? "library built with DARN_GPU=none, or no device" : "?");
        return -1;
    }
    if (is_gpu(d) && (darn_event_create(&d->ev_start) != DARN_OK || darn_event_create(&d->ev_stop) != DARN_OK))
        return fail(d, "darn_event_create");
    return 0;
}

int bench_dev_set_flush(bench_dev *d, size_t flush_bytes)
{
    bench_dev_free(d, d->flush_buf);
    d->flush_buf = NULL;
    d->flush_bytes = 0;
    if (flush_bytes == 0) return 0;
    if (bench_dev_alloc(d, &d->flush_buf, flush_bytes) != 0) return -1;
    d->flush_bytes = flush_bytes;
    return 0;
}

void bench_dev_close(bench_dev *d)
{
    bench_dev_free(d, d->flush_buf);
    if (d->ev_start) darn_event_destroy(d->ev_start);
    if (d->ev_stop) darn_event_destroy(d->ev_stop);
    d->flush_buf = NULL;
    d->ev_start = d->ev_stop = NULL;
}

void bench_dev_name(const bench_dev *d, char *name, size_t len)
{
    if (!is_gpu(d) || darn_device_info(name, len, NULL) != DARN_OK) snprintf(name, len, "cpu");
}

int bench_dev_alloc(bench_dev *d, void **ptr, size_t bytes)
{
    *ptr = NULL;
    if (bytes == 0) bytes = 256;
    if (is_gpu(d)) return darn_device_malloc(ptr, bytes) == DARN_OK ? 0 : fail(d, "darn_device_malloc");
    *ptr = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (*ptr == NULL) {
        snprintf(d->err, sizeof d->err, "out of host memory (%zu bytes)", bytes);
        return -1;
    }
    return 0;
}

void bench_dev_free(bench_dev *d, void *ptr)
{
    if (ptr == NULL) return;
    if (is_gpu(d)) darn_device_free(ptr);
    else free(ptr);
}

int bench_dev_upload(bench_dev *d, void *dst, const void *host, size_t bytes)
{
    if (bytes == 0) return 0;
    if (!is_gpu(d)) {
        memcpy(dst, host, bytes);
        return 0;
    }
    return darn_device_memcpy(dst, host, bytes, DARN_COPY_HOST_TO_DEVICE) == DARN_OK ? 0 : fail(d, "upload");
}

int bench_dev_copy(bench_dev *d, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0) return 0;
    if (!is_gpu(d)) {
        memcpy(dst, src, bytes);
        return 0;
    }
    return darn_device_memcpy(dst, src, bytes, DARN_COPY_DEVICE_TO_DEVICE) == DARN_OK ? 0 : fail(d, "device copy");
}

int bench_dev_sync(bench_dev *d)
{
    return !is_gpu(d) || darn_device_synchronize() == DARN_OK ? 0 : fail(d, "darn_device_synchronize");
}

int bench_dev_flush(bench_dev *d)
{
    static int byte;
    if (d->flush_buf == NULL) return 0;
    byte = (byte + 1) & 0xFF; /* a new value every time, so no level of the memory system can skip it */
    if (!is_gpu(d)) {
        memset(d->flush_buf, byte, d->flush_bytes);
        return 0;
    }
    return darn_device_memset(d->flush_buf, byte, d->flush_bytes) == DARN_OK ? 0 : fail(d, "flush memset");
}

int bench_timer_start(bench_dev *d)
{
    if (!is_gpu(d)) {
        d->host_t0 = darn_now_ms();
        return 0;
    }
    return darn_event_record(d->ev_start, NULL) == DARN_OK ? 0 : fail(d, "darn_event_record");
}

int bench_timer_stop(bench_dev *d, double *ms)
{
    if (!is_gpu(d)) {
        *ms = darn_now_ms() - d->host_t0;
        return 0;
    }
    float f = 0.0f;
    if (darn_event_record(d->ev_stop, NULL) != DARN_OK || darn_event_elapsed_ms(&f, d->ev_start, d->ev_stop) != DARN_OK)
        return fail(d, "darn_event_elapsed_ms");
    *ms = (double)f;
    return 0;
}

int bench_copy_bandwidth(bench_dev *d, size_t bytes, int reps, double *gbps)
{
    void *a = NULL, *b = NULL;
    double *t = calloc((size_t)(reps > 0 ? reps : 1), sizeof *t);
    int rc = -1;
    if (t == NULL || bench_dev_alloc(d, &a, bytes) || bench_dev_alloc(d, &b, bytes)) goto done;
    /* Touch both buffers first: first-touch page mapping is not bandwidth. */
    if (is_gpu(d)) {
        if (darn_device_memset(a, 0x5A, bytes) != DARN_OK || darn_device_memset(b, 0xA5, bytes) != DARN_OK) {
            fail(d, "memset");
            goto done;
        }
    } else {
        memset(a, 0x5A, bytes);
        memset(b, 0xA5, bytes);
    }
    if (bench_dev_copy(d, b, a, bytes) || bench_dev_sync(d)) goto done;
    for (int i = 0; i < reps; ++i)
        if (bench_timer_start(d) || bench_dev_copy(d, b, a, bytes) || bench_timer_stop(d, &t[i])) goto done;
    const double ms = darn_median(t, reps);
    *gbps = ms > 0.0 ? 2.0 * (double)bytes / (ms * 1e6) : 0.0;
    rc = 0;
done:
    free(t);
    bench_dev_free(d, a);
    bench_dev_free(d, b);
    return rc;
}
