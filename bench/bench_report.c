/* bench_report.c — stdout tables, JSON and CSV of darn-bench results (see bench_report.h). */
#include "bench_report.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void bench_print_header(FILE *f, int latency)
{
    if (latency)
        fprintf(f, "\n%-10s %6s %6s %-8s %10s %10s\n", "config", "M", "N", "dir", "gpu_us", "host_us");
    else
        fprintf(f, "\n%-10s %8s %6s %-8s %10s %9s %8s\n", "config", "M", "N", "dir", "ms", "GB/s", "%copy");
}

void bench_print_result(FILE *f, const bench_result *r)
{
    if (r->latency)
        fprintf(f, "%-10s %6lld %6lld %-8s ", r->config, (long long)r->rows, (long long)r->cols, bench_dir_name(r->dir));
    else
        fprintf(f, "%-10s %8lld %6lld %-8s ", r->config, (long long)r->rows, (long long)r->cols, bench_dir_name(r->dir));
    if (r->error[0]) fprintf(f, "error: %s\n", r->error);
    else if (r->latency) fprintf(f, "%10.2f %10.2f\n", r->gpu_us, r->host_us);
    else fprintf(f, "%10.4f %9.1f %7.1f%%\n", r->ms, r->gbps, r->pct);
    fflush(f);
}

/* A JSON string literal (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; ++s) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* A JSON number, or null for NaN / infinity (which JSON cannot hold). */
static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

static void json_result(FILE *f, const bench_result *r, int calls)
{
    fputs("    {\"config\": ", f);
    json_str(f, r->config);
    fprintf(f, ", \"M\": %lld, \"N\": %lld, \"dir\": ", (long long)r->rows, (long long)r->cols);
    json_str(f, bench_dir_name(r->dir));
    if (r->error[0]) {
        fputs(", \"error\": ", f);
        json_str(f, r->error);
    } else if (r->latency) {
        fputs(", \"gpu_us\": ", f);
        json_num(f, r->gpu_us);
        fputs(", \"host_us\": ", f);
        json_num(f, r->host_us);
        fprintf(f, ", \"calls\": %d", calls);
    } else {
        fputs(", \"ms\": ", f);
        json_num(f, r->ms);
        fputs(", \"GBps\": ", f);
        json_num(f, r->gbps);
        fputs(", \"pct\": ", f);
        json_num(f, r->pct);
        fputs(", \"bytes\": ", f);
        fprintf(f, "%.0f", r->bytes);
    }
    fputc('}', f);
}

static void json_list(FILE *f, const char *name, const bench_result *res, int count, int latency, int calls)
{
    fprintf(f, "  \"%s\": [", name);
    int first = 1;
    for (int i = 0; i < count; ++i) {
        if (res[i].latency != latency) continue;
        fputs(first ? "\n" : ",\n", f);
        json_result(f, &res[i], calls);
        first = 0;
    }
    fputs(first ? "],\n" : "\n  ],\n", f);
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) fprintf(stderr, "darn-bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path)
{
    const int bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "darn-bench: error writing %s\n", path);
        return -1;
    }
    return 0;
}

int bench_write_json(const char *path, const bench_meta *m, const bench_result *res, int count)
{
    FILE *f = open_out(path);
    if (f == NULL) return -1;
    fputs("{\n  \"date\": ", f);
    json_str(f, m->date);
    fputs(",\n  \"gpu\": ", f);
    json_str(f, m->gpu);
    fputs(",\n  \"commit\": ", f);
    json_str(f, m->commit);
    fputs(",\n  \"backend\": ", f);
    json_str(f, m->backend);
    fputs(",\n  \"copy_GBps\": ", f);
    json_num(f, m->copy_gbps);
    fprintf(f, ",\n  \"copy_bytes\": %.0f,\n  \"elems\": %lld,\n  \"reps\": %d,\n  \"warmup\": %d,\n",
            m->copy_bytes, (long long)m->elems, m->reps, m->warmup);
    json_list(f, "rows", res, count, 0, m->calls);
    json_list(f, "latency", res, count, 1, m->calls);
    fputs("  \"peers\": []\n}\n", f);
    return close_out(f, path);
}

/* A CSV field: quoted, with doubled quotes, when it holds a comma, quote or newline. */
static void csv_str(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; ++s) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int bench_write_csv(const char *path, const bench_meta *m, const bench_result *res, int count)
{
    FILE *f = open_out(path);
    if (f == NULL) return -1;
    fputs("table,config,M,N,dir,ms,GBps,pct,bytes,gpu_us,host_us,copy_GBps,gpu,commit,error\n", f);
    for (int i = 0; i < count; ++i) {
        const bench_result *r = &res[i];
        const int ok = r->error[0] == 0;
        fprintf(f, "%s,%s,%lld,%lld,%s,", r->latency ? "latency" : "bw", r->config, (long long)r->rows,
                (long long)r->cols, bench_dir_name(r->dir));
        if (ok && !r->latency) fprintf(f, "%.6g,%.6g,%.6g,%.0f,,,", r->ms, r->gbps, r->pct, r->bytes);
        else if (ok) fprintf(f, ",,,,%.6g,%.6g,", r->gpu_us, r->host_us);
        else fputs(",,,,,,", f);
        fprintf(f, "%.6g,", m->copy_gbps);
        csv_str(f, m->gpu);
        fputc(',', f);
        csv_str(f, m->commit);
        fputc(',', f);
        csv_str(f, r->error);
        fputc('\n', f);
    }
    return close_out(f, path);
}
