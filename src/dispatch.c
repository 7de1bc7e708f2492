/* dispatch.c — which GPU kernel a call runs (see dispatch.h). */
#include "dispatch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Every configuration in the forward's numbering: DARN_STATIC_CONFIGS (0 …), the run-time policy, DARN_FP8_CONFIGS,
 * DARN_PAR_CONFIGS, the parallel run-time policy, DARN_INFER_CONFIGS; columns: 5 dtypes, kmax, kind (CFG_* bits). */
enum { CFG_STATIC = 0, CFG_RUNTIME = 1, CFG_PAR = 2, CFG_INFER = 4 };
static const int fwd_cfgs[DARN_N_FWD_CONFIGS][7] = {
#define DARN_X_ROW(X, R, RO, W, O, KMAX) {X, R, RO, W, O, KMAX, CFG_STATIC},
#define DARN_X_PAR_ROW(X, R, RO, W, O, KMAX) {X, R, RO, W, O, KMAX, CFG_PAR},
#define DARN_X_INFER_ROW(X, R, RO, W, O, KMAX) {X, R, RO, W, O, KMAX, CFG_INFER},
    DARN_STATIC_CONFIGS(DARN_X_ROW) {0, 0, 0, 0, 0, DARN_RUNTIME_MAX_K, CFG_RUNTIME}, DARN_FP8_CONFIGS(DARN_X_ROW)
    DARN_PAR_CONFIGS(DARN_X_PAR_ROW) {0, 0, 0, 0, 0, DARN_PAR_RUNTIME_MAX_K, CFG_RUNTIME | CFG_PAR},
    DARN_INFER_CONFIGS(DARN_X_INFER_ROW)
#undef DARN_X_ROW
#undef DARN_X_PAR_ROW
#undef DARN_X_INFER_ROW
};

int darn_static_config_dtypes(int cfg, darn_dtype out[5])
{
    if (cfg < 0 || cfg >= DARN_N_FWD_CONFIGS || (fwd_cfgs[cfg][6] & CFG_RUNTIME)) return 0;
    for (int i = 0; i < 5; i++) out[i] = (darn_dtype)fwd_cfgs[cfg][i];
    return 1;
}

int darn_fwd_kmax(int cfg) { return cfg >= 0 && cfg < DARN_N_FWD_CONFIGS ? fwd_cfgs[cfg][5] : 0; }

int darn_cfg_is_parallel(int cfg) { return cfg >= 0 && cfg < DARN_N_FWD_CONFIGS && (fwd_cfgs[cfg][6] & CFG_PAR); }

int darn_cfg_is_infer(int cfg) { return cfg >= 0 && cfg < DARN_N_FWD_CONFIGS && (fwd_cfgs[cfg][6] & CFG_INFER); }

/* The backward's configurations are the forward's without the fp8 ones. */
int darn_bwd_cfg_fwd(int cfg) { return cfg < DARN_CFG_BWD_PAR ? cfg : cfg - DARN_CFG_BWD_PAR + DARN_CFG_FWD_PAR; }
static int fwd_cfg_bwd(int cfg) { return cfg < DARN_CFG_FWD_PAR ? cfg : cfg - DARN_CFG_FWD_PAR + DARN_CFG_BWD_PAR; }

/* The backward's largest K in registers for a call of that kind (parallel or not). */
static int bwd_kmax_of(int par) { return par ? DARN_PAR_BWD_MAX_K : DARN_BWD_MAX_K; }

int darn_bwd_kmax(int cfg) { return bwd_kmax_of(cfg >= DARN_CFG_BWD_PAR); }

/* A table is rows of kmax(cfg) + 1 variants (K = 1 … kmax, then the re-read one), configurations in order. The row
 * index of (cfg, variant), and its inverse (c untouched for an index past the table). */
static int row_index(int (*kmax)(int), int cfg, int variant)
{
    int e = 0;
    for (int c = 0; c < cfg; c++) e += kmax(c) + 1;
    return e + (variant == DARN_VARIANT_REREAD ? kmax(cfg) : variant);
}
static void row_of_index(int (*kmax)(int), int configs, int index, darn_choice *c)
{
    for (int cfg = 0; cfg < configs; cfg++) {
        const int len = kmax(cfg) + 1;
        if (index < len) {
            c->cfg = cfg;
            c->variant = index == len - 1 ? DARN_VARIANT_REREAD : index;
            return;
        }
        index -= len;
    }
}

int darn_fwd_entry(int cfg, int variant) { return row_index(darn_fwd_kmax, cfg, variant); }

int darn_bwd_entry(int cfg, int variant, int bias) { return row_index(darn_bwd_kmax, cfg, variant) * 2 + bias; }

/* A configuration's dtype `want` matches a call's `got`: equal, or DARN_DT_FP8 and any fp8 dtype. */
static int dt_matches(int want, darn_dtype got) { return want == DARN_DT_FP8 ? darn_dtype_is_fp8(got) : want == (int)got; }

/* The compile-time configuration of these dtypes among those of the call's kind (parallel or not; fp8 ones for
 * the forward only; inference ones first for a forward with `infer`), else that kind's run-time policy; forward
 * numbering. */
static int config_of(int forward, int par, int infer, darn_dtype x, darn_dtype r, darn_dtype ro, darn_dtype w,
                     darn_dtype o)
{
    const int kinds[2] = {CFG_INFER, par ? CFG_PAR : CFG_STATIC};
    for (int pass = forward && infer && !par ? 0 : 1; pass < 2; pass++) {
        for (int i = 0; i < DARN_N_FWD_CONFIGS; i++) {
            const int *c = fwd_cfgs[i];
            if (c[6] != kinds[pass] || (!forward && c[4] == DARN_DT_FP8)) continue;
            if (dt_matches(c[0], x) && dt_matches(c[1], r) && dt_matches(c[2], ro) && dt_matches(c[3], w) &&
                dt_matches(c[4], o))
                return i;
        }
    }
    return par ? DARN_CFG_FWD_PAR_RUNTIME : DARN_CFG_RUNTIME;
}

/* The 16-byte path: absent, or base and every row start 16-byte aligned (8-byte for fp8, whose groups are 8 bytes). */
static int vec_ok(const void *p, int64_t stride, darn_dtype dt)
{
    const int64_t size = (int64_t)darn_dtype_size(dt), align = size == 1 ? 8 : 16;
    return !p || ((uintptr_t)p % (uintptr_t)align == 0 && (stride * size) % align == 0);
}

/* A tuning knob for measurements (never changes a bit): DARN_GPU_FORCE_K=1..4 prefers that K where the
 * row allows it. Read once. */
static int forced_k(void)
{
    static int k = -1;
    if (k < 0) {
        const char *e = getenv("DARN_GPU_FORCE_K");
        const int v = e ? atoi(e) : 0;
        k = v >= 1 && v <= DARN_MAX_K ? v : 0;
    }
    return k;
}

static int64_t next_pow2(int64_t v)
{
    int64_t p = 1;
    while (p < v) p *= 2;
    return p;
}

/* P threads per row and K groups per thread, from N and the width of h: among K = 1 … 4 (P =
 * next_pow2(ceil(groups / K)) <= 512) the ones that leave the fewest idle group slots; of those the
 * largest K up to `cap`, else the smallest. A larger K spreads each row's fixed work (the sums, rstd, the
 * loop) over more elements; `cap` keeps the registers of rows with fp32 h within one block's limit
 * (H200, 2026-12-02: train and bwd best at K = 2, all-16-bit inference at K = 4). Rows of more than
 * 4 · 512 groups are re-read with P = 512. */
void darn_row_geometry(int64_t n, int cap, int kmax, int *p, int *k, int *variant)
{
    const int64_t groups = darn_groups_for(n);
    int best_k = 0;
    int64_t best_p = 0;
    double best_util = -1.0;
    for (int kk = 1; kk <= kmax; kk++) {
        const int64_t pp = next_pow2((groups + kk - 1) / kk);
        if (pp > DARN_MAX_P_REG) continue;
        const double util = (double)groups / (double)(pp * kk);
        if (kk == forced_k()) { /* the knob wins where the row allows that K */
            best_k = kk, best_p = pp;
            break;
        }
        const bool better = util > best_util + 1e-9;
        const bool tie_up = util > best_util - 1e-9 && kk <= cap; /* equal, larger and within the cap */
        if (better || tie_up) best_util = util > best_util ? util : best_util, best_k = kk, best_p = pp;
    }
    if (best_k) {
        *p = (int)best_p;
        *k = best_k;
        *variant = best_k - 1;
        return;
    }
    *p = DARN_REREAD_P;
    const int64_t per_thread = (groups + DARN_REREAD_P - 1) / DARN_REREAD_P; /* reported only: the kernel loops */
    *k = per_thread > INT32_MAX ? INT32_MAX : (int)per_thread;
    *variant = DARN_VARIANT_REREAD;
}

#ifndef DARN_BWD_MIN_UTIL
#define DARN_BWD_MIN_UTIL 0.0 /* (an experiment's knob, run 12: backward rows in registers that keep fewer than this
                                 fraction of their P * K group slots busy are re-read instead; 0: never) */
#endif

/* The backward's row geometry: darn_row_geometry, or the re-read rows below DARN_BWD_MIN_UTIL. */
static void bwd_geometry(int64_t n, darn_dtype h_dtype, int kmax, int *p, int *k, int *variant)
{
    darn_row_geometry(n, h_dtype == DARN_F32 ? 2 : DARN_MAX_K, kmax, p, k, variant);
    if (*variant != DARN_VARIANT_REREAD && (double)darn_groups_for(n) < DARN_BWD_MIN_UTIL * (double)*p * (double)*k) {
        *p = DARN_REREAD_P;
        *k = (int)((darn_groups_for(n) + DARN_REREAD_P - 1) / DARN_REREAD_P);
        *variant = DARN_VARIANT_REREAD;
    }
}

/* The forward's cap on K (darn_row_geometry): 2 for rows of fp32 h, 1 for the inference kernels (their K = 1 rows
 * hold about 60 registers, twice the occupancy of K = 2 … 4; measured in bench/RESULTS.md, runs 18-19), else
 * DARN_MAX_K. */
static int fwd_cap(int cfg, darn_dtype h_dtype)
{
    return darn_cfg_is_infer(cfg) ? 1 : h_dtype == DARN_F32 ? 2 : DARN_MAX_K;
}

/* backward: bwd_geometry with K <= -kmax; forward: darn_row_geometry with `cap` */
static void shape(darn_choice *c, int64_t n, darn_dtype h_dtype, int cap, int kmax, int64_t units)
{
    if (kmax < 0) bwd_geometry(n, h_dtype, -kmax, &c->p, &c->k, &c->variant);
    else darn_row_geometry(n, cap, kmax, &c->p, &c->k, &c->variant);
    c->rows_per_block = c->p < DARN_SMALL_BLOCK ? DARN_SMALL_BLOCK / c->p : 1;
    c->block = c->p * c->rows_per_block;
    c->units = units;
    c->blocks = (units + c->rows_per_block - 1) / c->rows_per_block;
}

void darn_choose_fwd(const darn_plan *pl, const darn_fwd_tensors *t, darn_choice *c)
{
    const darn_desc *d = &pl->desc;
    const darn_dtype ro = pl->resout_dtype;
    const int par = (pl->opt & DARN_OPT_PARALLEL) != 0;
    const int infer = !pl->dropout && !pl->has_rowscale;
    int cfg = config_of(1, par, infer, d->x_dtype, pl->has_res ? d->residual_dtype : ro, ro, d->weight_dtype,
                        d->out_dtype);
    const int vec = pl->n % 8 == 0 && vec_ok(t->x, pl->s_x, d->x_dtype) && vec_ok(t->residual, pl->s_res, d->residual_dtype) &&
                    vec_ok(t->weight, 0, d->weight_dtype) && vec_ok(t->bias, 0, d->bias_dtype) &&
                    vec_ok(t->out, pl->s_out, d->out_dtype) && vec_ok(t->residual_out, pl->s_resout, ro) &&
                    vec_ok(t->x1, pl->s_x1, d->x_dtype) && vec_ok(t->weight1, 0, d->weight_dtype) &&
                    vec_ok(t->bias1, 0, d->bias_dtype) && vec_ok(t->out1, pl->s_out1, d->out_dtype) &&
                    (!(pl->has_bias || pl->has_b1) || d->bias_dtype == d->weight_dtype);
    if (!vec) cfg = par ? DARN_CFG_FWD_PAR_RUNTIME : DARN_CFG_RUNTIME;
    shape(c, pl->n, ro, fwd_cap(cfg, ro), darn_fwd_kmax(cfg), pl->m);
    c->cfg = cfg;
    c->bias = pl->has_bias;
    c->entry = darn_fwd_entry(cfg, c->variant);
}

void darn_choose_bwd(const darn_plan *pl, const darn_bwd_tensors *t, darn_choice *c)
{
    const darn_desc *d = &pl->desc;
    const darn_dtype ro = pl->resout_dtype;
    const int par = (pl->opt & DARN_OPT_PARALLEL) != 0;
    int cfg = config_of(0, par, 0, d->x_dtype, t->dresidual ? d->residual_dtype : ro, ro, d->weight_dtype, pl->dy_dtype);
    const int vec = pl->n % 8 == 0 && vec_ok(t->dy, pl->s_dy, pl->dy_dtype) && vec_ok(t->h, pl->s_h, ro) &&
                    vec_ok(t->weight, 0, d->weight_dtype) && vec_ok(t->dresidual_out, pl->s_dresout, ro) &&
                    vec_ok(t->dx, pl->s_dx, d->x_dtype) && vec_ok(t->dresidual, pl->s_dres, d->residual_dtype) &&
                    vec_ok(t->dy1, pl->s_dy1, pl->dy_dtype) && vec_ok(t->weight1, 0, d->weight_dtype) &&
                    vec_ok(t->dx1, pl->s_dx1, d->x_dtype) &&
                    (!(pl->has_bias || pl->has_b1) || d->bias_dtype == d->weight_dtype);
    if (!vec) cfg = par ? DARN_CFG_FWD_PAR_RUNTIME : DARN_CFG_RUNTIME;
    cfg = fwd_cfg_bwd(cfg);
    shape(c, pl->n, ro, 0, -darn_bwd_kmax(cfg), pl->wgrad_chunks); /* (< 0: bwd_geometry) a slot walks one chunk at a time */
    if (c->variant == DARN_VARIANT_REREAD) { /* darn_bwd_cols: a thread per (chunk, group), blocks of 256 */
        c->rows_per_block = 1;
        c->block = DARN_SMALL_BLOCK;
        c->units = pl->wgrad_chunks * ((pl->groups + DARN_SMALL_BLOCK - 1) / DARN_SMALL_BLOCK);
        c->blocks = c->units;
    }
    c->cfg = cfg;
    c->bias = pl->has_bias;
    c->entry = darn_bwd_entry(cfg, c->variant, c->bias);
}

void darn_entry_choice(int backward, int entry, darn_choice *c)
{
    *c = (darn_choice){0};
    c->entry = entry;
    if (backward) {
        c->bias = entry % 2;
        row_of_index(darn_bwd_kmax, DARN_N_BWD_CONFIGS, entry / 2, c);
    } else {
        row_of_index(darn_fwd_kmax, DARN_N_FWD_CONFIGS, entry, c);
    }
}

static const char *dt_name(darn_dtype d)
{
    return (int)d == DARN_DT_FP8 ? "fp8" : d == DARN_F32 ? "f32" : d == DARN_F16 ? "f16" : "bf16";
}

void darn_entry_name(int backward, int entry, char *buf, size_t bytes)
{
    darn_choice c;
    darn_entry_choice(backward, entry, &c);
    char cfg[40], var[16];
    darn_dtype dts[5];
    const int fcfg = backward ? darn_bwd_cfg_fwd(c.cfg) : c.cfg;
    const char *par = darn_cfg_is_parallel(fcfg) ? "parallel " : darn_cfg_is_infer(fcfg) ? "infer " : "";
    if (darn_static_config_dtypes(fcfg, dts))
        snprintf(cfg, sizeof cfg, "%s%s/%s/%s/%s/%s", par, dt_name(dts[0]), dt_name(dts[1]), dt_name(dts[2]),
                 dt_name(dts[3]), dt_name(dts[4]));
    else
        snprintf(cfg, sizeof cfg, "%sruntime", par);
    if (c.variant == DARN_VARIANT_REREAD) snprintf(var, sizeof var, "re-read");
    else snprintf(var, sizeof var, "K=%d", c.variant + 1);
    snprintf(buf, bytes, "darn_%s %s %s%s", backward ? "bwd" : "fwd", cfg, var, backward && c.bias ? " bias" : "");
}

int darn_bwd_rereads(const darn_plan *pl)
{
    int p, k, variant;
    bwd_geometry(pl->n, pl->resout_dtype, bwd_kmax_of((pl->opt & DARN_OPT_PARALLEL) != 0), &p, &k, &variant);
    return variant == DARN_VARIANT_REREAD;
}

size_t darn_gpu_bwd_rowsum_bytes(const darn_plan *pl)
{
    /* 8 bytes per row, rounded up to 16 (what follows it in a workspace stays 16-byte aligned); m * 8 cannot
     * overflow: validation bounds m * n * (element size) */
    return darn_bwd_rereads(pl) ? ((size_t)pl->m * 8 + 15) / 16 * 16 : 0;
}

darn_status darn_bwd_workspace_layout(const darn_plan *pl, int gpu, size_t *rowsums_at, size_t *total)
{
    size_t partials = 0;
    const darn_status st = darn_bwd_partials_workspace(pl, &partials);
    if (st != DARN_OK) return st;
    const size_t rs = gpu ? darn_gpu_bwd_rowsum_bytes(pl) : 0, at = rs ? (partials + 15) / 16 * 16 : partials;
    if (at < partials || at > SIZE_MAX - rs)
        return darn_fail(DARN_ERR_OVERFLOW, "darn_bwd_workspace_size: the workspace size overflows size_t");
    *rowsums_at = at;
    *total = at + rs;
    return DARN_OK;
}
