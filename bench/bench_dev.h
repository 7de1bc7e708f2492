/*
 * bench_dev.h — the memory and clocks of the backend under test, so one benchmark runs on the GPU
 * (darn/device.h: device memory, HIP events) and, for smoke tests with tiny sizes, on the CPU backend
 * (host memory, the monotonic clock). Everything is ordered on the default stream (NULL).
 */
#ifndef DARN_BENCH_DEV_H
#define DARN_BENCH_DEV_H

#include <stddef.h>

#include <darn/device.h>

#include "darn_timing.h"

typedef struct bench_dev {
    darn_backend backend;
    darn_event *ev_start, *ev_stop; /* GPU only */
    double host_t0;                 /* CPU timer start */
    void *flush_buf;                /* overwritten between runs to evict the last-level cache */
    size_t flush_bytes;
    char err[512];                  /* why the last failing call failed */
} bench_dev;

/* Opens `backend`. 0 or -1 (err set). */
int bench_dev_open(bench_dev *d, darn_backend backend);
/* Allocates the cache-eviction buffer of bench_dev_flush. 0 or -1 (err set). */
int bench_dev_set_flush(bench_dev *d, size_t flush_bytes);
void bench_dev_close(bench_dev *d);
/* Device name (darn_device_info, or "cpu") into name. */
void bench_dev_name(const bench_dev *d, char *name, size_t len);

/* Memory of the backend. All return 0 or -1 with d->err set. */
int bench_dev_alloc(bench_dev *d, void **ptr, size_t bytes); /* at least 256-byte aligned */
void bench_dev_free(bench_dev *d, void *ptr);                 /* NULL-safe */
int bench_dev_upload(bench_dev *d, void *dst, const void *host, size_t bytes);
int bench_dev_copy(bench_dev *d, void *dst, const void *src, size_t bytes); /* device to device */
int bench_dev_sync(bench_dev *d);
/* Overwrites the flush buffer (outside any timed region): data of the previous run leaves the cache. */
int bench_dev_flush(bench_dev *d);

/* Timer around work queued on the default stream: GPU events, or the host clock on the CPU backend
 * (whose calls are synchronous). stop waits for the work and returns the elapsed milliseconds. */
int bench_timer_start(bench_dev *d);
int bench_timer_stop(bench_dev *d, double *ms);

/* The host clock and the median: darn_now_ms() and darn_median() of darn_timing.h (apps/common). */

/* Device-to-device copy bandwidth: median over `reps` copies of `bytes` (after one warm-up), in GB/s
 * counted as (bytes read + bytes written) / time = 2 * bytes / t. Returns 0, or -1 with d->err set. */
int bench_copy_bandwidth(bench_dev *d, size_t bytes, int reps, double *gbps);

#endif /* DARN_BENCH_DEV_H */
