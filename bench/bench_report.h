/*
 * bench_report.h — darn-bench results: the stdout tables, the JSON file and the CSV file.
 *
 * JSON (the schema of issue 5; the same one bench/compare_torch.py writes and bench/plot.py reads):
 *   {"date", "gpu", "commit", "backend", "copy_GBps", "copy_bytes", "elems", "reps", "warmup",
 *    "rows":    [{"config","M","N","dir","ms","GBps","pct","bytes"} or {..., "error"}],
 *    "latency": [{"config","M","N","dir","gpu_us","host_us","calls"} or {..., "error"}],
 *    "peers":   []}
 * CSV: one header line, then one line per result with a "table" column ("bw" or "latency").
 */
#ifndef DARN_BENCH_REPORT_H
#define DARN_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench_config.h"

typedef struct bench_result {
    const char *config;
    int64_t rows, cols;
    bench_dir dir;
    int latency;             /* 0: throughput row (ms, GBps, pct); 1: latency row (gpu_us, host_us) */
    double bytes;            /* minimal bytes of one call */
    double ms, gbps, pct;    /* throughput: median ms, bytes / ms, % of copy_GBps */
    double gpu_us, host_us;  /* latency: device and host time per call */
    char error[320];         /* non-empty: this measurement failed (the numbers are unset) */
} bench_result;

typedef struct bench_meta {
    char date[32];           /* ISO 8601 UTC */
    char gpu[256];
    const char *commit;
    const char *backend;     /* "gpu" or "cpu" */
    double copy_gbps;        /* (read + written) bytes / s of the device-to-device copy, in 1e9 */
    double copy_bytes;
    int64_t elems;
    int reps, warmup, calls;
} bench_meta;

/* Table lines on `f`: the header of each table, then one line per result as it is measured. */
void bench_print_header(FILE *f, int latency);
void bench_print_result(FILE *f, const bench_result *r);

/* Write every result; 0 or -1 (message on stderr). */
int bench_write_json(const char *path, const bench_meta *meta, const bench_result *res, int count);
int bench_write_csv(const char *path, const bench_meta *meta, const bench_result *res, int count);

#endif /* DARN_BENCH_REPORT_H */
