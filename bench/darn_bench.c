/*
 * darn_bench.c — darn-bench: throughput of darn_fwd / darn_bwd against the device-to-device copy
 * bandwidth measured in the same run, and the per-call latency at small M. Public API only
 * (darn/darn.h, darn/device.h). See bench/README.md for the method and the byte formulas.
 *
 *   darn-bench                                   every config and shape on the GPU
 *   darn-bench --config train --n 4096,8192 --json out.json
 *   darn-bench --backend cpu --quick             smoke test on the CPU backend
 *
 * Exit status: 0 all measurements succeeded, 1 some failed (recorded as "error"), 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_dev.h"
#include "bench_opts.h"
#include "bench_report.h"
#include "bench_run.h"

#define MIB (1024.0 * 1024.0)

/* Last-level cache size in MiB from the device name, for deciding when to flush (--cache-mib wins). */
static int64_t guess_cache_mib(darn_backend backend, const char *name)
{
    if (backend == DARN_BACKEND_CPU) return 32;
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "H800") || strstr(name, "GH200")) return 50;
    if (strstr(name, "A100") || strstr(name, "A800")) return 40;
    if (strstr(name, "MI300") || strstr(name, "MI325")) return 256; /* Infinity Cache */
    return 128;
}

typedef struct results {
    bench_result *v;
    int n, cap;
} results;

static bench_result *results_add(results *r)
{
    if (r->n == r->cap) {
        const int cap = r->cap ? 2 * r->cap : 64;
        bench_result *v = realloc(r->v, sizeof *v * (size_t)cap);
        if (v == NULL) return NULL;
        r->v = v;
        r->cap = cap;
    }
    bench_result *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void now_iso(char *buf, size_t len)
{
    const time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Largest shape any measurement of this run uses, as tensor capacity. */
static void capacity(const bench_opts *o, int64_t *elems, int64_t *max_rows, int64_t *max_cols)
{
    *elems = o->elems;
    *max_rows = 1;
    *max_cols = 1;
    for (int i = 0; i < o->n_n; ++i) {
        if (o->n[i] > *max_cols) *max_cols = o->n[i];
        if (o->elems / o->n[i] > *max_rows) *max_rows = o->elems / o->n[i];
    }
    for (int i = 0; i < o->n_lat_m; ++i)
        for (int j = 0; j < o->n_lat_n; ++j) {
            if (o->lat_m[i] * o->lat_n[j] > *elems) *elems = o->lat_m[i] * o->lat_n[j];
            if (o->lat_m[i] > *max_rows) *max_rows = o->lat_m[i];
            if (o->lat_n[j] > *max_cols) *max_cols = o->lat_n[j];
        }
}

/* Every measurement of one config: the throughput rows (printed as they come), then the latency rows. */
static int run_config(const bench_opts *o, const bench_config *cfg, bench_dev *d, double copy_gbps,
                      double flush_below, results *res)
{
    int64_t elems, max_rows, max_cols;
    capacity(o, &elems, &max_rows, &max_cols);
    bench_tensors t;
    if (bench_tensors_make(&t, d, cfg, elems, max_rows, max_cols, o->seed * 1000u)) {
        fprintf(stderr, "darn-bench: %s: %s\n", cfg->name, d->err);
        return -1;
    }
    bench_dir dirs[BENCH_DIRS];
    const int n_dirs = bench_config_dirs(cfg, dirs);
    bench_timing tm = {o->warmup, o->reps, 0, o->calls};
    int failed = 0;
    for (int i = 0; i < o->n_n; ++i) {
        const int64_t cols = o->n[i], rows = o->elems / cols;
        for (int k = 0; k < n_dirs; ++k) {
            bench_result *r = results_add(res);
            if (r == NULL) return -1;
            r->config = cfg->name;
            r->rows = rows;
            r->cols = cols;
            r->dir = dirs[k];
            r->bytes = bench_config_bytes(cfg, rows, cols, dirs[k]);
            tm.flush = r->bytes < flush_below;
            if (rows < 1) snprintf(r->error, sizeof r->error, "elems %lld < N", (long long)o->elems);
            else if (bench_time_call(&t, d, rows, cols, dirs[k], &tm, &r->ms, r->error, sizeof r->error) == 0) {
                r->gbps = r->bytes / (r->ms * 1e6);
                r->pct = 100.0 * r->gbps / copy_gbps;
            }
            failed |= r->error[0] != 0;
            bench_print_result(stdout, r);
        }
    }
    for (int j = 0; j < o->n_lat_n; ++j)
        for (int i = 0; i < o->n_lat_m; ++i)
            for (int k = 0; k < n_dirs; ++k) {
                bench_result *r = results_add(res);
                if (r == NULL) return -1;
                r->config = cfg->name;
                r->rows = o->lat_m[i];
                r->cols = o->lat_n[j];
                r->dir = dirs[k];
                r->latency = 1;
                r->bytes = bench_config_bytes(cfg, r->rows, r->cols, dirs[k]);
                bench_time_latency(&t, d, r->rows, r->cols, dirs[k], &tm, &r->gpu_us, &r->host_us, r->error,
                                   sizeof r->error);
                failed |= r->error[0] != 0;
            }
    bench_tensors_free(&t, d);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    const int prc = bench_opts_parse(&o, argc, argv);
    if (prc != 0) return prc == 1 ? 0 : 2;

    bench_dev d;
    bench_meta meta = {0};
    if (bench_dev_open(&d, o.backend)) {
        fprintf(stderr, "darn-bench: %s\n", d.err);
        return 1;
    }
    bench_dev_name(&d, meta.gpu, sizeof meta.gpu);
    const int64_t cache_mib = o.cache_mib > 0 ? o.cache_mib : guess_cache_mib(o.backend, meta.gpu);
    /* Flush with twice the cache; flush only calls whose minimal bytes are under 3x the cache (larger
     * working sets stream through it and leave nothing of their start behind). */
    if (bench_dev_set_flush(&d, (size_t)(2.0 * (double)cache_mib * MIB))) {
        fprintf(stderr, "darn-bench: %s\n", d.err);
        bench_dev_close(&d);
        return 1;
    }
    const double flush_below = 3.0 * (double)cache_mib * MIB;

    now_iso(meta.date, sizeof meta.date);
    meta.commit = o.commit;
    meta.backend = o.backend == DARN_BACKEND_GPU ? "gpu" : "cpu";
    meta.copy_bytes = (double)o.copy_mib * MIB;
    meta.elems = o.elems;
    meta.reps = o.reps;
    meta.warmup = o.warmup;
    meta.calls = o.calls;
    if (bench_copy_bandwidth(&d, (size_t)meta.copy_bytes, o.reps, &meta.copy_gbps) || meta.copy_gbps <= 0.0) {
        fprintf(stderr, "darn-bench: copy bandwidth: %s\n", d.err);
        bench_dev_close(&d);
        return 1;
    }
    printf("darn-bench: %s, darn %s, commit %s, %s\n", meta.gpu, darn_version_string(), meta.commit, meta.date);
    printf("copy bandwidth: %.1f GB/s ((read + written) bytes / time, %lld MiB device-to-device copy, median of %d)\n",
           meta.copy_gbps, (long long)o.copy_mib, o.reps);
    printf("M*N = %lld, median of %d runs after %d warm-up, cache %lld MiB (flush below %.0f MiB moved)\n",
           (long long)o.elems, o.reps, o.warmup, (long long)cache_mib, flush_below / MIB);

    results res = {0};
    int failed = 0;
    bench_print_header(stdout, 0);
    for (int c = 0; c < o.n_configs; ++c) {
        const int rc = run_config(&o, o.configs[c], &d, meta.copy_gbps, flush_below, &res);
        if (rc < 0) {
            failed = 1;
            break;
        }
        failed |= rc;
    }
    if (o.n_lat_m > 0) {
        printf("\nlatency: %d back-to-back calls per sample, median of %d; gpu_us = device time per call, "
               "host_us = host time inside the C API call\n", o.calls, o.reps);
        bench_print_header(stdout, 1);
        for (int i = 0; i < res.n; ++i)
            if (res.v[i].latency) bench_print_result(stdout, &res.v[i]);
    }
    if (o.json && bench_write_json(o.json, &meta, res.v, res.n)) failed = 1;
    if (o.csv && bench_write_csv(o.csv, &meta, res.v, res.n)) failed = 1;
    free(res.v);
    bench_dev_close(&d);
    return failed ? 1 : 0;
}
