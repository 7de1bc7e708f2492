/* bench_opts.h — darn-bench's command line (usage text in bench_opts.c). */
#ifndef DARN_BENCH_OPTS_H
#define DARN_BENCH_OPTS_H

#include <stdint.h>

#include "bench_config.h"

#define BENCH_MAX_LIST 32

typedef struct bench_opts {
    const bench_config *configs[BENCH_MAX_LIST];
    int n_configs;
    int64_t n[BENCH_MAX_LIST];      /* row lengths of the throughput table */
    int n_n;
    int64_t elems;                  /* M * N of every throughput shape */
    int64_t lat_m[BENCH_MAX_LIST];  /* latency table rows; n_lat_m = 0: no latency table */
    int n_lat_m;
    int64_t lat_n[BENCH_MAX_LIST];
    int n_lat_n;
    int reps, warmup, calls;
    int64_t copy_mib;               /* size of the bandwidth-reference copy */
    int64_t cache_mib;              /* last-level cache size assumed for flushing; 0 = from the device */
    darn_backend backend;
    const char *json, *csv, *commit;
    uint64_t seed;
} bench_opts;

/* Parses argv into o (defaults first; --quick switches the defaults to a fast smoke run, explicit
 * options still win). Returns 0 to run, 1 after --help, 2 on a usage error (message on stderr). */
int bench_opts_parse(bench_opts *o, int argc, char **argv);

#endif /* DARN_BENCH_OPTS_H */
