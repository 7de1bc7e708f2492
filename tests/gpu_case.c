/* gpu_case.c — see gpu_case.h. Host buffers come from tests/support.c; device ones from darn/device.h. */
#include "gpu_case.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <darn/device.h>

#include "support.h"

gpu_case gpu_case_make(darn_norm norm, int64_t m, int64_t n, darn_dtype dtype)
{
    gpu_case c;
    memset(&c, 0, sizeof c);
    darn_desc_init(&c.desc, norm, m, n, dtype);
    return c;
}

/* A host tensor and its device twin (device pointer shifted by `misalign` elements). */
typedef struct twin {
    void *host, *dev_base, *dev;
    size_t bytes, shift;
} twin;

static int twin_make(twin *t, size_t bytes, size_t shift)
{
    memset(t, 0, sizeof *t);
    t->bytes = bytes;
    t->shift = shift;
    t->host = sup_alloc(bytes, 64);
    if (darn_device_malloc(&t->dev_base, bytes + shift + 64) != DARN_OK) return 1;
    t->dev = (char *)t->dev_base + shift;
    return 0;
}

static int twin_up(const twin *t) { return darn_device_memcpy(t->dev, t->host, t->bytes, DARN_COPY_HOST_TO_DEVICE) != DARN_OK; }

/* Device buffer pre-filled with the sentinel, so unwritten bytes show up as differences. */
static int twin_poison(const twin *t) { return darn_device_memset(t->dev, SUP_SENTINEL, t->bytes) != DARN_OK; }

static int twin_down(const twin *t, void *dst) { return darn_device_memcpy(dst, t->dev, t->bytes, DARN_COPY_DEVICE_TO_HOST) != DARN_OK; }

static void twin_free(twin *t)
{
    if (t->dev_base) darn_device_free(t->dev_base);
    sup_free(t->host);
    memset(t, 0, sizeof *t);
}

enum { X, RES, W, B, RS, OUT, RESOUT, MASK, RSTD, MEAN, DY, DRO, DX, DRES, DW, DB, WS, NT };
static const char *const names[NT] = {"x",  "residual", "weight", "bias", "rowscale", "out", "residual_out", "mask",
                                      "rstd", "mean",   "dy",     "dresidual_out", "dx", "dresidual", "dweight",
                                      "dbias", "workspace"};

int gpu_case_run(const gpu_case *c, char *why, size_t why_bytes)
{
    const darn_desc *d = &c->desc;
    const int64_t m = d->rows, n = d->cols, s = n + c->stride_pad;
    const darn_dtype rd = darn_residual_out_dtype(d);
    const bool res = d->flags & DARN_FLAG_HAS_RESIDUAL, bias = d->flags & DARN_FLAG_HAS_BIAS,
               rsc = d->flags & DARN_FLAG_HAS_ROWSCALE, layer = d->norm == DARN_LAYERNORM;
    size_t bytes[NT] = {0};
    darn_dtype dts[NT];
    for (int i = 0; i < NT; i++) dts[i] = DARN_F32;
    dts[X] = d->x_dtype; dts[RES] = d->residual_dtype; dts[W] = d->weight_dtype; dts[B] = d->bias_dtype;
    dts[OUT] = d->out_dtype; dts[RESOUT] = rd; dts[DY] = d->out_dtype; dts[DRO] = rd; dts[DX] = d->x_dtype;
    dts[DRES] = d->residual_dtype; dts[DW] = d->weight_dtype; dts[DB] = d->bias_dtype;
    const int mats[] = {X, RES, OUT, RESOUT, DY, DRO, DX, DRES};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) bytes[mats[i]] = sup_tensor_bytes(dts[mats[i]], m, n, s);
    bytes[W] = bytes[B] = bytes[DW] = bytes[DB] = (size_t)n * 4;
    bytes[RS] = bytes[RSTD] = bytes[MEAN] = (size_t)(m > 0 ? m : 1) * 4;
    bytes[MASK] = (size_t)(m > 0 ? m : 1) * (size_t)darn_mask_row_bytes(n);
    size_t ws_cpu = 0, ws_gpu = 0;
    if (darn_bwd_workspace_size(d, DARN_BACKEND_CPU, &ws_cpu) != DARN_OK ||
        darn_bwd_workspace_size(d, DARN_BACKEND_GPU, &ws_gpu) != DARN_OK) {
        snprintf(why, why_bytes, "workspace query: %s", darn_last_error());
        return 1;
    }
    bytes[WS] = (ws_gpu > ws_cpu ? ws_gpu : ws_cpu) + 16;
    for (int i = 0; i < NT; i++)
        if (bytes[i] == 0) bytes[i] = 16;

    twin t[NT];
    memset(t, 0, sizeof t);
    int fail = 0;
    for (int i = 0; i < NT && !fail; i++) {
        const size_t shift = (i == WS || i == MASK) ? 0 : (size_t)c->misalign * darn_dtype_size(dts[i]);
        fail = twin_make(&t[i], bytes[i], shift);
    }
    if (fail) {
        snprintf(why, why_bytes, "device allocation failed: %s", darn_last_error());
        goto done;
    }
    sup_rng g = sup_rng_make((uint64_t)n * 1000003u + (uint64_t)m * 7u + d->flags);
    sup_fill_uniform(t[X].host, dts[X], m, n, s, &g, -3.0f, 3.0f);
    sup_fill_uniform(t[RES].host, dts[RES], m, n, s, &g, -2.0f, 2.0f);
    sup_fill_uniform(t[W].host, dts[W], 1, n, 0, &g, 0.5f, 1.5f);
    sup_fill_uniform(t[B].host, dts[B], 1, n, 0, &g, -0.5f, 0.5f);
    sup_fill_f32(t[RS].host, m > 0 ? m : 1, &g, 0.25f, 2.0f);
    sup_fill_uniform(t[DY].host, dts[DY], m, n, s, &g, -1.0f, 1.0f);
    sup_fill_uniform(t[DRO].host, dts[DRO], m, n, s, &g, -1.0f, 1.0f);
    const int ins[] = {X, RES, W, B, RS, DY, DRO};
    for (size_t i = 0; i < sizeof ins / sizeof ins[0] && !fail; i++) fail = twin_up(&t[ins[i]]);
    const int outs[] = {OUT, RESOUT, MASK, RSTD, MEAN, DX, DRES, DW, DB};

    /* CPU reference: host outputs start as sentinels too. */
    void *cpu[NT] = {0};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) cpu[outs[i]] = sup_alloc(bytes[outs[i]], 64);
    void *ws_host = sup_alloc(bytes[WS], 64);
    darn_fwd_tensors ft = {0};
    darn_bwd_tensors bt = {0};
    for (int pass = 0; pass < (c->check_repeat ? 3 : 2) && !fail; pass++) {
        const bool gpu = pass > 0;
        void *p[NT];
        for (int i = 0; i < NT; i++) p[i] = gpu ? t[i].dev : t[i].host;
        if (!gpu)
            for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) p[outs[i]] = cpu[outs[i]];
        if (!gpu) p[WS] = ws_host;
        if (gpu)
            for (size_t i = 0; i < sizeof outs / sizeof outs[0] && !fail; i++) fail = twin_poison(&t[outs[i]]);
        ft = (darn_fwd_tensors){.x = p[X], .x_stride = s, .residual = res ? p[RES] : NULL, .residual_stride = s,
                                .rowscale = rsc ? p[RS] : NULL, .weight = p[W], .bias = bias ? p[B] : NULL,
                                .out = p[OUT], .out_stride = s, .residual_out = p[RESOUT], .residual_out_stride = s,
                                .mask = c->mask ? p[MASK] : NULL, .rstd = p[RSTD], .mean = layer ? p[MEAN] : NULL};
        const darn_backend be = gpu ? DARN_BACKEND_GPU : DARN_BACKEND_CPU;
        darn_status st = darn_fwd(d, &ft, NULL, 0, be, NULL);
        if (st == DARN_OK) {
            bt = (darn_bwd_tensors){.dy = p[DY], .dy_stride = s, .h = p[RESOUT], .h_stride = s, .weight = p[W],
                                    .rstd = p[RSTD], .mean = layer ? p[MEAN] : NULL, .rowscale = rsc ? p[RS] : NULL,
                                    .dresidual_out = c->dresout ? p[DRO] : NULL, .dresidual_out_stride = s,
                                    .mask = c->mask ? p[MASK] : NULL, .dx = p[DX], .dx_stride = s,
                                    .dresidual = res ? p[DRES] : NULL, .dresidual_stride = s, .dweight = p[DW],
                                    .dbias = bias ? p[DB] : NULL};
            st = darn_bwd(d, &bt, p[WS], bytes[WS] - 16, be, NULL);
        }
        if (st == DARN_OK && gpu) st = darn_device_synchronize();
        if (st != DARN_OK) {
            snprintf(why, why_bytes, "%s backend: %s: %s", gpu ? "GPU" : "CPU", darn_status_string(st), darn_last_error());
            fail = 1;
            break;
        }
        if (!gpu) continue;
        for (size_t i = 0; i < sizeof outs / sizeof outs[0] && !fail; i++) {
            const int o = outs[i];
            void *got = sup_alloc(bytes[o], 64);
            if (twin_down(&t[o], got)) {
                snprintf(why, why_bytes, "download of %s failed: %s", names[o], darn_last_error());
                fail = 1;
            } else if (memcmp(got, cpu[o], bytes[o]) != 0) {
                size_t k = 0;
                while (((const uint8_t *)got)[k] == ((const uint8_t *)cpu[o])[k]) k++;
                snprintf(why, why_bytes, "GPU %s differs from CPU at byte %zu of %zu (gpu %02x cpu %02x)%s", names[o],
                         k, bytes[o], ((const uint8_t *)got)[k], ((const uint8_t *)cpu[o])[k],
                         pass == 2 ? " on the repeated run" : "");
                fail = 1;
            }
            sup_free(got);
        }
    }
    for (int i = 0; i < NT; i++) sup_free(cpu[i]);
    sup_free(ws_host);
done:
    for (int i = 0; i < NT; i++) twin_free(&t[i]);
    return fail;
}
