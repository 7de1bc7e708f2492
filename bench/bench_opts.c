/* bench_opts.c — darn-bench's command-line parsing. */
#include "bench_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_commit.h" /* DARN_BENCH_COMMIT, generated at build time by commit_stamp.cmake */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: darn-bench [options]\n"
            "Times darn_fwd / darn_bwd per config, shape and direction against the device-to-device copy\n"
            "bandwidth measured in the same run, plus a small-M latency table (see bench/README.md).\n"
            "\n"
            "  --config LIST     configs, comma-separated: train,infer,f32,layernorm,mask,fp8,parallel (default: all)\n"
            "  --n LIST          row lengths N (default 256,512,768,1024,2048,4096,5120,8192,12288,16384,32768,65536)\n"
            "  --elems E         M * N of every shape (default 64Mi; suffixes Ki, Mi, Gi)\n"
            "  --reps R          timed runs per measurement, median reported (default 30; >= 20 for results)\n"
            "  --warmup W        untimed runs first (default 5)\n"
            "  --latency-m LIST  rows of the latency table (default 1,4,16,64; 'none' skips the table)\n"
            "  --latency-n LIST  row lengths of the latency table (default 4096,8192)\n"
            "  --calls C         back-to-back calls per latency sample (default 200)\n"
            "  --copy-mib S      size of the reference device-to-device copy in MiB (default 1024)\n"
            "  --cache-mib S     last-level cache size for flushing (default: from the GPU name; 50 for H100)\n"
            "  --backend B       gpu (default) or cpu (smoke tests with tiny sizes; times are host times)\n"
            "  --json FILE       write all results as JSON\n"
            "  --csv FILE        write all results as CSV\n"
            "  --commit STR      commit recorded in the JSON (default: git HEAD at build time, %s)\n"
            "  --seed S          seed of the random inputs (default 1)\n"
            "  --quick           smoke-test defaults: elems 256Ki, N 256,1024,4096, reps 3, warmup 1,\n"
            "                    latency M 1,16 at N 4096, calls 10, copy 32 MiB\n"
            "  --help\n",
            DARN_BENCH_COMMIT);
}

/* An integer with an optional binary suffix (Ki, Mi, Gi); -1 when not a positive number. */
static int64_t parse_size(const char *s)
{
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0) return -1;
    int64_t mul = 1;
    if (strcmp(end, "Ki") == 0) mul = 1LL << 10;
    else if (strcmp(end, "Mi") == 0) mul = 1LL << 20;
    else if (strcmp(end, "Gi") == 0) mul = 1LL << 30;
    else if (*end != '\0') return -1;
    if (v > INT64_MAX / mul) return -1;
    return (int64_t)v * mul;
}

/* A comma-separated list of sizes >= min_value into out; the count, or -1 on a bad item. */
static int parse_list(const char *s, int64_t *out, int64_t min_value)
{
    char buf[512];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        const int64_t v = parse_size(tok);
        if (v < min_value || n == BENCH_MAX_LIST) return -1;
        out[n++] = v;
    }
    return n;
}

static int parse_configs(bench_opts *o, const char *s)
{
    char buf[512];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    o->n_configs = 0;
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        const bench_config *c = bench_config_find(tok);
        if (c == NULL || o->n_configs == BENCH_MAX_LIST) {
            fprintf(stderr, "darn-bench: unknown config '%s' (train, infer, f32, layernorm, mask, fp8, parallel)\n", tok);
            return -1;
        }
        o->configs[o->n_configs++] = c;
    }
    return o->n_configs > 0 ? 0 : -1;
}

static void set_defaults(bench_opts *o, int quick)
{
    static const int64_t k_n[] = {256, 512, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384, 32768, 65536};
    static const int64_t k_quick_n[] = {256, 1024, 4096};
    memset(o, 0, sizeof *o);
    int count;
    const bench_config *all = bench_configs(&count);
    for (int i = 0; i < count; ++i) o->configs[i] = &all[i];
    o->n_configs = count;
    const int64_t *n = quick ? k_quick_n : k_n;
    o->n_n = quick ? 3 : 12;
    memcpy(o->n, n, sizeof(int64_t) * (size_t)o->n_n);
    o->elems = quick ? 256LL << 10 : 64LL << 20;
    o->n_lat_m = quick ? parse_list("1,16", o->lat_m, 1) : parse_list("1,4,16,64", o->lat_m, 1);
    o->n_lat_n = quick ? parse_list("4096", o->lat_n, 1) : parse_list("4096,8192", o->lat_n, 1);
    o->reps = quick ? 3 : 30;
    o->warmup = quick ? 1 : 5;
    o->calls = quick ? 10 : 200;
    o->copy_mib = quick ? 32 : 1024;
    o->backend = DARN_BACKEND_GPU;
    o->commit = DARN_BENCH_COMMIT;
    o->seed = 1;
}

int bench_opts_parse(bench_opts *o, int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; ++i) quick |= strcmp(argv[i], "--quick") == 0;
    set_defaults(o, quick);
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--quick") == 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "darn-bench: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int64_t x = 0;
        int ok = 1;
        if (strcmp(a, "--config") == 0) ok = parse_configs(o, v) == 0;
        else if (strcmp(a, "--n") == 0) ok = (o->n_n = parse_list(v, o->n, 1)) > 0;
        else if (strcmp(a, "--elems") == 0) ok = (o->elems = parse_size(v)) >= 1;
        else if (strcmp(a, "--latency-m") == 0) {
            if (strcmp(v, "none") == 0) o->n_lat_m = 0;
            else ok = (o->n_lat_m = parse_list(v, o->lat_m, 1)) > 0;
        } else if (strcmp(a, "--latency-n") == 0) ok = (o->n_lat_n = parse_list(v, o->lat_n, 1)) > 0;
        else if (strcmp(a, "--reps") == 0) ok = (x = parse_size(v)) >= 1 && x <= 100000 && (o->reps = (int)x);
        else if (strcmp(a, "--warmup") == 0) ok = (x = parse_size(v)) >= 0 && x <= 100000 && ((o->warmup = (int)x), 1);
        else if (strcmp(a, "--calls") == 0) ok = (x = parse_size(v)) >= 1 && x <= 100000 && (o->calls = (int)x);
        else if (strcmp(a, "--copy-mib") == 0) ok = (o->copy_mib = parse_size(v)) >= 1;
        else if (strcmp(a, "--cache-mib") == 0) ok = (o->cache_mib = parse_size(v)) >= 0;
        else if (strcmp(a, "--backend") == 0) {
            if (strcmp(v, "gpu") == 0) o->backend = DARN_BACKEND_GPU;
            else if (strcmp(v, "cpu") == 0) o->backend = DARN_BACKEND_CPU;
            else ok = 0;
        } else if (strcmp(a, "--json") == 0) o->json = v;
        else if (strcmp(a, "--csv") == 0) o->csv = v;
        else if (strcmp(a, "--commit") == 0) o->commit = v;
        else if (strcmp(a, "--seed") == 0) ok = (x = parse_size(v)) >= 0 && ((o->seed = (uint64_t)x), 1);
        else {
            fprintf(stderr, "darn-bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "darn-bench: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (o->reps < 20) fprintf(stderr, "darn-bench: note: --reps %d < 20, fine for smoke tests, not for results\n", o->reps);
    return 0;
}
