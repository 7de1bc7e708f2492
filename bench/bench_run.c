/* bench_run.c — tensor allocation and timed darn calls for darn-bench (see bench_run.h). */
#include "bench_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_fill.h"

static size_t bytes_of(darn_dtype dt, int64_t count) { return darn_dtype_size(dt) * (size_t)count; }

/* Allocates `count` elements of `dt` and, when `seed` != 0, fills them with random values via `host`. */
static int make(bench_dev *d, void **dst, darn_dtype dt, int64_t count, void *host, uint64_t seed)
{
    if (bench_dev_alloc(d, dst, bytes_of(dt, count))) return -1;
    if (seed == 0) return 0;
    bench_fill_random(host, dt, (size_t)count, seed);
    return bench_dev_upload(d, *dst, host, bytes_of(dt, count));
}

int bench_tensors_make(bench_tensors *t, bench_dev *d, const bench_config *cfg, int64_t elems,
                       int64_t max_rows, int64_t max_cols, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    darn_desc desc;
    bench_config_desc(cfg, 1, 1, &desc);
    const darn_dtype hd = darn_residual_out_dtype(&desc);
    const int has_bias = (cfg->flags & DARN_FLAG_HAS_BIAS) != 0;
    const int has_x1 = (cfg->flags & DARN_FLAG_HAS_X1) != 0, has_w1 = (cfg->flags & DARN_FLAG_HAS_WEIGHT1) != 0;
    const int has_b1 = (cfg->flags & DARN_FLAG_HAS_BIAS1) != 0;
    const int64_t vec = max_cols > elems ? max_cols : elems; /* host staging: the largest tensor */
    void *host = malloc(bytes_of(DARN_F32, vec));
    if (host == NULL) {
        snprintf(d->err, sizeof d->err, "out of host memory for input staging");
        return -1;
    }
    /* rows * darn_mask_row_bytes(cols) <= rows * (cols / 8 + 4) <= elems / 8 + 4 * max_rows */
    const int64_t mask_bytes = elems / 8 + 4 * max_rows + 4;
    const int bad =
        make(d, &t->x, cfg->x, elems, host, seed + 1) || make(d, &t->residual, cfg->residual, elems, host, seed + 2) ||
        make(d, &t->weight, cfg->weight, max_cols, host, seed + 3) ||
        (has_bias && make(d, &t->bias, cfg->bias, max_cols, host, seed + 4)) ||
        make(d, &t->out, cfg->out, elems, host, 0) || make(d, &t->h, hd, elems, host, 0) ||
        (cfg->mask && bench_dev_alloc(d, &t->mask, (size_t)mask_bytes)) ||
        (cfg->backward && make(d, &t->rstd, DARN_F32, max_rows, host, 0)) ||
        (cfg->backward && cfg->norm == DARN_LAYERNORM && make(d, &t->mean, DARN_F32, max_rows, host, 0)) ||
        (cfg->amax && bench_dev_alloc(d, (void **)&t->amax, 4)) ||
        (cfg->backward && make(d, &t->dy, bench_config_dy(cfg), elems, host, seed + 5)) ||
        (cfg->backward && make(d, &t->dresidual_out, hd, elems, host, seed + 6)) ||
        (cfg->backward && make(d, &t->dx, cfg->x, elems, host, 0)) ||
        (cfg->backward && make(d, &t->dresidual, cfg->residual, elems, host, 0)) ||
        (cfg->backward && make(d, &t->dweight, cfg->weight, max_cols, host, 0)) ||
        (cfg->backward && has_bias && make(d, &t->dbias, cfg->bias, max_cols, host, 0)) ||
        /* parallel residual */
        (has_x1 && make(d, &t->x1, cfg->x, elems, host, seed + 7)) ||
        (has_w1 && make(d, &t->weight1, cfg->weight, max_cols, host, seed + 8)) ||
        (has_b1 && make(d, &t->bias1, cfg->bias, max_cols, host, seed + 9)) ||
        (has_w1 && make(d, &t->out1, cfg->out, elems, host, 0)) ||
        (has_x1 && cfg->mask && bench_dev_alloc(d, &t->mask1, (size_t)mask_bytes)) ||
        (cfg->backward && has_w1 && make(d, &t->dy1, bench_config_dy(cfg), elems, host, seed + 10)) ||
        (cfg->backward && has_x1 && make(d, &t->dx1, cfg->x, elems, host, 0)) ||
        (cfg->backward && has_w1 && make(d, &t->dweight1, cfg->weight, max_cols, host, 0)) ||
        (cfg->backward && has_b1 && make(d, &t->dbias1, cfg->bias, max_cols, host, 0)) || bench_dev_sync(d);
    free(host);
    if (bad) bench_tensors_free(t, d);
    return bad ? -1 : 0;
}

void bench_tensors_free(bench_tensors *t, bench_dev *d)
{
    void *all[] = {t->x,  t->residual, t->weight, t->bias,      t->out,      t->h,
                   t->mask, t->rstd,   t->mean,   t->dy,        t->dresidual_out,
                   t->dx, t->dresidual, t->dweight, t->dbias,   t->ws,       t->amax,
                   t->x1, t->weight1,   t->bias1,   t->out1,    t->mask1,    t->dy1,
                   t->dx1, t->dweight1, t->dbias1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) bench_dev_free(d, all[i]);
    memset(t, 0, sizeof *t);
}

/* One prepared call: the descriptor and the tensors of the forward and the backward at one shape. */
typedef struct call {
    darn_desc desc;
    darn_fwd_tensors f;
    darn_bwd_tensors b;
    darn_backend backend;
} call;

static void call_init(call *c, const bench_tensors *t, const bench_dev *d, int64_t rows, int64_t cols, bench_dir dir)
{
    const bench_config *cfg = t->cfg;
    memset(c, 0, sizeof *c);
    bench_config_desc(cfg, rows, cols, &c->desc);
    c->backend = d->backend;
    c->f.x = t->x;
    c->f.residual = t->residual;
    c->f.weight = t->weight;
    c->f.bias = t->bias;
    c->f.out = t->out;
    c->f.residual_out = t->h;
    c->f.mask = t->mask; /* NULL unless the config writes the mask */
    c->f.rstd = t->rstd; /* NULL for forward-only configs */
    c->f.mean = t->mean;
    c->f.amax = t->amax; /* NULL unless the config writes it */
    c->f.x1 = t->x1;     /* parallel residual: all NULL unless the config has it */
    c->f.weight1 = t->weight1;
    c->f.bias1 = t->bias1;
    c->f.out1 = t->out1;
    c->f.mask1 = t->mask1;
    c->b.dy = t->dy;
    c->b.h = t->h;
    c->b.weight = t->weight;
    c->b.rstd = t->rstd;
    c->b.mean = t->mean;
    c->b.dresidual_out = t->dresidual_out;
    c->b.mask = dir == BENCH_BWD_MASK ? t->mask : NULL; /* NULL: regenerated from seed/offset */
    c->b.dx = t->dx;
    c->b.dresidual = t->dresidual;
    c->b.dweight = t->dweight;
    c->b.dbias = t->dbias;
    c->b.dy1 = t->dy1;
    c->b.weight1 = t->weight1;
    c->b.mask1 = dir == BENCH_BWD_MASK ? t->mask1 : NULL;
    c->b.dx1 = t->dx1;
    c->b.dweight1 = t->dweight1;
    c->b.dbias1 = t->dbias1;
}

static darn_status run_fwd(const call *c, const bench_tensors *t)
{
    return darn_fwd(&c->desc, &c->f, t->ws, t->ws_bytes, c->backend, NULL);
}

static darn_status run_bwd(const call *c, const bench_tensors *t)
{
    return darn_bwd(&c->desc, &c->b, t->ws, t->ws_bytes, c->backend, NULL);
}

static darn_status run_dir(const call *c, const bench_tensors *t, bench_dir dir)
{
    return dir == BENCH_FWD ? run_fwd(c, t) : run_bwd(c, t);
}

static int darn_err(char *err, size_t len, const char *what, darn_status st)
{
    snprintf(err, len, "%s: %s (%s)", what, darn_status_string(st), darn_last_error());
    return -1;
}

static int dev_err(char *err, size_t len, const bench_dev *d)
{
    snprintf(err, len, "%s", d->err);
    return -1;
}

/* Sizes the shared workspace for both directions at this shape (grows only; outside timing), then
 * runs the forward once so that h, rstd, mean and the mask hold this shape's values for the backward. */
static int prepare(call *c, bench_tensors *t, bench_dev *d, int64_t rows, int64_t cols, bench_dir dir,
                   char *err, size_t len)
{
    call_init(c, t, d, rows, cols, dir);
    size_t wf = 0, wb = 0;
    darn_status st = darn_fwd_workspace_size(&c->desc, c->backend, &wf);
    if (st != DARN_OK) return darn_err(err, len, "darn_fwd_workspace_size", st);
    if (t->cfg->backward && (st = darn_bwd_workspace_size(&c->desc, c->backend, &wb)) != DARN_OK)
        return darn_err(err, len, "darn_bwd_workspace_size", st);
    const size_t need = wf > wb ? wf : wb;
    if (need > t->ws_bytes) {
        bench_dev_free(d, t->ws);
        t->ws = NULL;
        t->ws_bytes = 0;
        if (bench_dev_alloc(d, &t->ws, need)) return dev_err(err, len, d);
        t->ws_bytes = need;
    }
    if ((st = run_fwd(c, t)) != DARN_OK) return darn_err(err, len, "darn_fwd", st);
    return bench_dev_sync(d) ? dev_err(err, len, d) : 0;
}

int bench_time_call(bench_tensors *t, bench_dev *d, int64_t rows, int64_t cols, bench_dir dir,
                    const bench_timing *tm, double *ms, char *err, size_t err_len)
{
    call c;
    if (prepare(&c, t, d, rows, cols, dir, err, err_len)) return -1;
    double *samples = calloc((size_t)tm->reps, sizeof *samples);
    if (samples == NULL) {
        snprintf(err, err_len, "out of host memory");
        return -1;
    }
    int rc = -1;
    for (int i = -tm->warmup; i < tm->reps; ++i) {
        if (tm->flush && bench_dev_flush(d)) goto device_error;
        double t_ms = 0.0;
        if (bench_timer_start(d)) goto device_error;
        const darn_status st = run_dir(&c, t, dir);
        if (st != DARN_OK) {
            darn_err(err, err_len, dir == BENCH_FWD ? "darn_fwd" : "darn_bwd", st);
            goto done;
        }
        if (bench_timer_stop(d, &t_ms)) goto device_error;
        if (i >= 0) samples[i] = t_ms;
    }
    *ms = darn_median(samples, tm->reps);
    rc = 0;
    goto done;
device_error:
    dev_err(err, err_len, d);
done:
    free(samples);
    return rc;
}

int bench_time_latency(bench_tensors *t, bench_dev *d, int64_t rows, int64_t cols, bench_dir dir,
                       const bench_timing *tm, double *gpu_us, double *host_us, char *err, size_t err_len)
{
    call c;
    if (prepare(&c, t, d, rows, cols, dir, err, err_len)) return -1;
    double *dev = calloc((size_t)tm->reps, sizeof *dev), *host = calloc((size_t)tm->reps, sizeof *host);
    int rc = -1;
    if (dev == NULL || host == NULL) {
        snprintf(err, err_len, "out of host memory");
        goto done;
    }
    for (int i = -tm->warmup; i < tm->reps; ++i) {
        double dev_ms = 0.0;
        if (bench_timer_start(d)) goto device_error;
        const double h0 = darn_now_ms();
        for (int k = 0; k < tm->calls; ++k) {
            const darn_status st = run_dir(&c, t, dir);
            if (st != DARN_OK) {
                darn_err(err, err_len, dir == BENCH_FWD ? "darn_fwd" : "darn_bwd", st);
                goto done;
            }
        }
        const double h1 = darn_now_ms();
        if (bench_timer_stop(d, &dev_ms)) goto device_error;
        if (i >= 0) {
            dev[i] = dev_ms * 1e3 / tm->calls;
            host[i] = (h1 - h0) * 1e3 / tm->calls;
        }
    }
    *gpu_us = darn_median(dev, tm->reps);
    *host_us = darn_median(host, tm->reps);
    rc = 0;
    goto done;
device_error:
    dev_err(err, err_len, d);
done:
    free(dev);
    free(host);
    return rc;
}
