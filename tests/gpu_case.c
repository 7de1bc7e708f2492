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
    c.want_fwd_entry = c.want_bwd_entry = -1;
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

/* Tensor slots; the parallel residual's (X1 … DB1) exist only with DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1. */
enum {
    X, RES, W, B, RS, OUT, RESOUT, MASK, RSTD, MEAN, DY, DRO, DX, DRES, DW, DB, WS, AMAX,
    X1, W1, B1, OUT1, MASK1, DY1, DX1, DW1, DB1, NT
};
static const char *const names[NT] = {"x",  "residual", "weight", "bias", "rowscale", "out", "residual_out", "mask",
                                      "rstd", "mean",   "dy",     "dresidual_out", "dx", "dresidual", "dweight",
                                      "dbias", "workspace", "amax", "x1", "weight1", "bias1", "out1", "mask1",
                                      "dy1", "dx1", "dweight1", "dbias1"};

/* dy's dtype: desc->dy_dtype, or out_dtype by default. */
static darn_dtype dy_dtype_of(const darn_desc *d) { return d->dy_dtype == DARN_DTYPE_SAME_AS_OUT ? d->out_dtype : d->dy_dtype; }
static bool fp8_out(const darn_desc *d) { return darn_dtype_size(d->out_dtype) == 1; }

/* The dtype of every tensor slot of the case. */
static void slot_dtypes(const darn_desc *d, darn_dtype dts[NT])
{
    for (int i = 0; i < NT; i++) dts[i] = DARN_F32;
    dts[X] = d->x_dtype; dts[RES] = d->residual_dtype; dts[W] = d->weight_dtype; dts[B] = d->bias_dtype;
    dts[OUT] = d->out_dtype; dts[RESOUT] = darn_residual_out_dtype(d); dts[DY] = dy_dtype_of(d);
    dts[DRO] = dts[RESOUT]; dts[DX] = d->x_dtype; dts[DRES] = d->residual_dtype;
    dts[DW] = d->weight_dtype; dts[DB] = d->bias_dtype;
    dts[X1] = dts[DX1] = d->x_dtype; dts[W1] = dts[DW1] = d->weight_dtype; dts[B1] = dts[DB1] = d->bias_dtype;
    dts[OUT1] = d->out_dtype; dts[DY1] = dts[DY];
}

/* Slots whose device pointer is not shifted by `misalign` (byte-addressed or workspace). */
static bool unshifted(int slot) { return slot == WS || slot == MASK || slot == MASK1; }

/* The call's tensors from one pointer per slot: the same function builds the real calls and the dry runs
 * that find which kernel a case reaches (gpu_case_for_entry). */
static darn_fwd_tensors fwd_tensors(const gpu_case *c, void *const p[NT])
{
    const darn_desc *d = &c->desc;
    const int64_t s = d->cols + c->stride_pad;
    const bool res = d->flags & DARN_FLAG_HAS_RESIDUAL, bias = d->flags & DARN_FLAG_HAS_BIAS,
               rsc = d->flags & DARN_FLAG_HAS_ROWSCALE, layer = d->norm == DARN_LAYERNORM;
    const bool x1 = d->flags & DARN_FLAG_HAS_X1, w1 = d->flags & DARN_FLAG_HAS_WEIGHT1,
               b1 = d->flags & DARN_FLAG_HAS_BIAS1;
    return (darn_fwd_tensors){.x = p[X], .x_stride = s, .residual = res ? p[RES] : NULL, .residual_stride = s,
                              .rowscale = rsc ? p[RS] : NULL, .weight = p[W], .bias = bias ? p[B] : NULL,
                              .out = p[OUT], .out_stride = s, .residual_out = p[RESOUT], .residual_out_stride = s,
                              .mask = c->mask ? p[MASK] : NULL, .rstd = p[RSTD], .mean = layer ? p[MEAN] : NULL,
                              .amax = fp8_out(d) ? p[AMAX] : NULL, .x1 = x1 ? p[X1] : NULL, .x1_stride = s,
                              .weight1 = w1 ? p[W1] : NULL, .bias1 = b1 ? p[B1] : NULL, .out1 = w1 ? p[OUT1] : NULL,
                              .out1_stride = s, .mask1 = c->mask && x1 ? p[MASK1] : NULL};
}

static darn_bwd_tensors bwd_tensors(const gpu_case *c, void *const p[NT])
{
    const darn_desc *d = &c->desc;
    const int64_t s = d->cols + c->stride_pad;
    const bool res = d->flags & DARN_FLAG_HAS_RESIDUAL, bias = d->flags & DARN_FLAG_HAS_BIAS,
               rsc = d->flags & DARN_FLAG_HAS_ROWSCALE, layer = d->norm == DARN_LAYERNORM;
    const bool x1 = d->flags & DARN_FLAG_HAS_X1, w1 = d->flags & DARN_FLAG_HAS_WEIGHT1,
               b1 = d->flags & DARN_FLAG_HAS_BIAS1;
    return (darn_bwd_tensors){.dy = p[DY], .dy_stride = s, .h = p[RESOUT], .h_stride = s, .weight = p[W],
                              .rstd = p[RSTD], .mean = layer ? p[MEAN] : NULL, .rowscale = rsc ? p[RS] : NULL,
                              .dresidual_out = c->dresout ? p[DRO] : NULL, .dresidual_out_stride = s,
                              .mask = c->mask ? p[MASK] : NULL, .dx = p[DX], .dx_stride = s,
                              .dresidual = res ? p[DRES] : NULL, .dresidual_stride = s, .dweight = p[DW],
                              .dbias = bias ? p[DB] : NULL, .dy1 = w1 ? p[DY1] : NULL, .dy1_stride = s,
                              .weight1 = w1 ? p[W1] : NULL, .mask1 = c->mask && x1 ? p[MASK1] : NULL,
                              .dx1 = x1 ? p[DX1] : NULL, .dx1_stride = s, .dweight1 = w1 ? p[DW1] : NULL,
                              .dbias1 = b1 ? p[DB1] : NULL};
}

int gpu_case_entries(const gpu_case *c, int *fwd_entry, int *bwd_entry)
{
    /* Pointers as darn_device_malloc returns them (256-byte aligned, far apart), shifted like the real run. */
    void *p[NT];
    const darn_desc *d = &c->desc;
    darn_dtype dts[NT];
    slot_dtypes(d, dts);
    for (int i = 0; i < NT; i++) {
        const size_t shift = unshifted(i) ? 0 : (size_t)c->misalign * darn_dtype_size(dts[i]);
        p[i] = (void *)((uintptr_t)(i + 1) * ((uintptr_t)1 << 40) + shift);
    }
    darn_fwd_tensors ft = fwd_tensors(c, p);
    darn_bwd_tensors bt = bwd_tensors(c, p);
    darn_kernel_info fi, bi;
    if (darn_debug_fwd_kernel(d, &ft, &fi) != DARN_OK || darn_debug_bwd_kernel(d, &bt, &bi) != DARN_OK) return 1;
    *fwd_entry = fi.entry;
    *bwd_entry = bi.entry;
    return 0;
}

/* A case for every (direction, entry): the dtypes of the entry's configuration (a non-static combination
 * for the run-time policy), then the first row length and options whose call reaches the entry. The calls
 * without the parallel residual come first (so the entries they reach keep their cases), then the same calls
 * with x1 / weight1 / bias1 in a few combinations, for the entries only a parallel call reaches; all of it with
 * dropout first, then without. */
int gpu_case_for_entry(int backward, int entry, int64_t rows_hint, gpu_case *out)
{
    static const int64_t ns[] = {8, 16, 40, 256, 768, 1024, 2048, 3072, 4096, 5120, 6144, 8192, 10240, 12288, 14336, 16384,
                                 20480, 24576, 40000, 65536, 1000, 4104};
    darn_kernel_info want;
    if (darn_debug_kernel_entry(backward, entry, &want) != DARN_OK) return 1;
    /* fp8 outs (DARN_FP8_CONFIGS and the run-time policy): bf16 x and weights, an fp32 or bf16 residual, f32 x;
     * the four encodings in turn */
    static const darn_dtype fp8s[4] = {DARN_FP8_E4M3FN, DARN_FP8_E5M2, DARN_FP8_E4M3FNUZ, DARN_FP8_E5M2FNUZ};
    static const uint32_t pars[] = {0,
                                    DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1,
                                    DARN_FLAG_HAS_X1,
                                    DARN_FLAG_HAS_WEIGHT1 | DARN_FLAG_HAS_BIAS1,
                                    DARN_FLAG_HAS_X1 | DARN_FLAG_HAS_WEIGHT1,
                                    DARN_FLAG_HAS_WEIGHT1};
    /* p = 0.1, then p = 0 (the entries only calls without dropout reach: DARN_INFER_CONFIGS) */
    for (int drop = 0; drop < 2; drop++)
    for (size_t pi = 0; pi < sizeof pars / sizeof pars[0]; pi++) {
        for (int cfgi = 0; cfgi <= 84; cfgi++) {
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                for (int bias = 0; bias < 2; bias++) {
                    gpu_case c = gpu_case_make(bias ? DARN_LAYERNORM : DARN_RMSNORM, 1, ns[ni], DARN_F32);
                    /* static configs by their dtypes (x, residual, residual-out, weight, out); then mixtures */
                    const darn_dtype all[3] = {DARN_F32, DARN_F16, DARN_BF16};
                    darn_dtype x = all[cfgi % 3], r = all[(cfgi / 3) % 3], w = all[(cfgi / 9) % 3], o = all[(cfgi / 27) % 3];
                    if (cfgi == 81) x = DARN_F16, r = DARN_BF16, w = DARN_F32, o = DARN_F16; /* run-time policy */
                    if (cfgi >= 82) {
                        x = cfgi == 84 ? DARN_F32 : DARN_BF16, r = cfgi == 83 ? DARN_BF16 : DARN_F32, w = x;
                        o = fp8s[(entry + (int)ni) % 4];
                        c.desc.dy_dtype = DARN_BF16;
                        c.desc.out_scale = 0.75f;
                    }
                    c.desc.x_dtype = x;
                    c.desc.residual_dtype = r;
                    c.desc.weight_dtype = c.desc.bias_dtype = w;
                    c.desc.out_dtype = o;
                    c.desc.flags = DARN_FLAG_HAS_RESIDUAL | (bias ? DARN_FLAG_HAS_BIAS : 0) | pars[pi];
                    c.desc.dropout_p = drop == 0 ? 0.1 : 0.0;
                    c.desc.seed = (uint64_t)entry * 7919u + 1;
                    c.mask = entry % 2 == 0;
                    c.dresout = entry % 3 != 0;
                    c.misalign = ns[ni] % 8 != 0 ? 0 : (cfgi == 81 && ni % 2);
                    int64_t m = rows_hint > 0 ? rows_hint : 3;
                    c.desc.rows = m;
                    int fe, be;
                    if (gpu_case_entries(&c, &fe, &be)) continue;
                    if ((backward ? be : fe) == entry) {
                        *out = c;
                        return 0;
                    }
                }
            }
        }
    }
    return 1;
}

/* The forward's outputs but residual_out (a fwd_no_resout case writes only these). */
static bool forward_output(int slot)
{
    return slot == OUT || slot == MASK || slot == RSTD || slot == MEAN || slot == AMAX || slot == OUT1 || slot == MASK1;
}

int gpu_case_run(const gpu_case *c, char *why, size_t why_bytes)
{
    const darn_desc *d = &c->desc;
    const int64_t m = d->rows, n = d->cols, s = n + c->stride_pad;
    size_t bytes[NT] = {0};
    darn_dtype dts[NT];
    slot_dtypes(d, dts);
    const bool has_x1 = d->flags & DARN_FLAG_HAS_X1, has_w1 = d->flags & DARN_FLAG_HAS_WEIGHT1,
               has_b1 = d->flags & DARN_FLAG_HAS_BIAS1;
    const int mats[] = {X, RES, OUT, RESOUT, DY, DRO, DX, DRES};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) bytes[mats[i]] = sup_tensor_bytes(dts[mats[i]], m, n, s);
    bytes[W] = bytes[B] = bytes[DW] = bytes[DB] = (size_t)n * 4;
    bytes[RS] = bytes[RSTD] = bytes[MEAN] = (size_t)(m > 0 ? m : 1) * 4;
    bytes[MASK] = (size_t)(m > 0 ? m : 1) * (size_t)darn_mask_row_bytes(n);
    /* the parallel residual's tensors (16-byte placeholders without their flags) */
    if (has_x1) {
        bytes[X1] = bytes[DX1] = sup_tensor_bytes(d->x_dtype, m, n, s);
        bytes[MASK1] = bytes[MASK];
    }
    if (has_w1) {
        bytes[OUT1] = sup_tensor_bytes(dts[OUT1], m, n, s);
        bytes[DY1] = sup_tensor_bytes(dts[DY1], m, n, s);
        bytes[W1] = bytes[DW1] = (size_t)n * 4;
    }
    if (has_b1) bytes[B1] = bytes[DB1] = (size_t)n * 4;
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
        const size_t shift = unshifted(i) ? 0 : (size_t)c->misalign * darn_dtype_size(dts[i]);
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
    /* after the others, so a case without the parallel flags keeps its data */
    if (has_x1) sup_fill_uniform(t[X1].host, dts[X1], m, n, s, &g, -3.0f, 3.0f);
    if (has_w1) {
        sup_fill_uniform(t[W1].host, dts[W1], 1, n, 0, &g, -1.5f, -0.5f); /* apart from weight's range */
        sup_fill_uniform(t[DY1].host, dts[DY1], m, n, s, &g, -1.0f, 1.0f);
    }
    if (has_b1) sup_fill_uniform(t[B1].host, dts[B1], 1, n, 0, &g, -0.5f, 0.5f);
    const int ins[] = {X, RES, W, B, RS, DY, DRO, X1, W1, B1, DY1};
    for (size_t i = 0; i < sizeof ins / sizeof ins[0] && !fail; i++) fail = twin_up(&t[ins[i]]);
    const int outs[] = {OUT, RESOUT, MASK, RSTD, MEAN, DX, DRES, DW, DB, AMAX, OUT1, MASK1, DX1, DW1, DB1};

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
        ft = fwd_tensors(c, p);
        const darn_backend be = gpu ? DARN_BACKEND_GPU : DARN_BACKEND_CPU;
        if (gpu && (c->want_fwd_entry >= 0 || c->want_bwd_entry >= 0)) {
            darn_bwd_tensors bq = bwd_tensors(c, p);
            darn_kernel_info fi, bi;
            if (darn_debug_fwd_kernel(d, &ft, &fi) != DARN_OK || darn_debug_bwd_kernel(d, &bq, &bi) != DARN_OK ||
                (c->want_fwd_entry >= 0 && fi.entry != c->want_fwd_entry) ||
                (c->want_bwd_entry >= 0 && bi.entry != c->want_bwd_entry)) {
                snprintf(why, why_bytes, "the GPU ran %s / %s, the case wants entries %d / %d", fi.name, bi.name,
                         c->want_fwd_entry, c->want_bwd_entry);
                fail = 1;
                break;
            }
        }
        if (c->fwd_no_resout) ft.residual_out = NULL;
        darn_status st = darn_fwd(d, &ft, NULL, 0, be, NULL);
        if (st == DARN_OK && !c->fwd_no_resout) {
            bt = bwd_tensors(c, p);
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
            if (c->fwd_no_resout && !forward_output(o)) continue; /* not written by either backend */
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
