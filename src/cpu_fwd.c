/* cpu_fwd.c — the CPU reference forward: docs/numerics.md §4, row by row, tile by tile. */
#include "cpu_backend.h"
#include "cpu_rows.h"

typedef struct fwd_row {
    const darn_plan *pl;
    const darn_fwd_tensors *t;
    uint64_t seed, offset;
    int64_t r;
    float rs; /* rowscale[r] */
} fwd_row;

/* hn for columns [c0, c0 + cnt) of row f->r (§4, per element). On the first pass (`first`) it also
 * writes residual_out and the mask bytes; later passes read hn back from residual_out when it exists
 * (it may alias the residual), else recompute it, with identical bits either way. */
static void fwd_h_tile(const fwd_row *f, int64_t c0, int64_t cnt, float *hn, bool first)
{
    const darn_plan *pl = f->pl;
    const darn_fwd_tensors *t = f->t;
    const darn_desc *d = &pl->desc;
    if (!first && t->residual_out) {
        cpu_load_tile(hn, cpu_at(t->residual_out, pl->resout_dtype, f->r, pl->s_resout, c0), pl->resout_dtype, cnt);
        return;
    }
    float tmp[DARN_CPU_TILE];
    uint8_t keep[DARN_CPU_TILE];
    cpu_load_tile(hn, cpu_at(t->x, d->x_dtype, f->r, pl->s_x, c0), d->x_dtype, cnt);
    if (pl->has_rowscale)
        for (int64_t k = 0; k < cnt; k++) hn[k] = hn[k] * f->rs;
    if (pl->dropout) {
        cpu_keep_tile(keep, f->seed, f->offset, pl->drop.threshold, (uint64_t)(f->r * pl->n + c0), cnt);
        for (int64_t k = 0; k < cnt; k++) hn[k] = keep[k] ? hn[k] * pl->drop.scale : 0.0f;
    }
    if (pl->has_res) {
        cpu_load_tile(tmp, cpu_at(t->residual, d->residual_dtype, f->r, pl->s_res, c0), d->residual_dtype, cnt);
        for (int64_t k = 0; k < cnt; k++) hn[k] = hn[k] + tmp[k];
    }
    cpu_round_tile(hn, pl->resout_dtype, cnt); /* the norm reads h as stored */
    if (!first) return;
    if (t->residual_out)
        cpu_store_tile((char *)t->residual_out + (size_t)(f->r * pl->s_resout + c0) * darn_dtype_size(pl->resout_dtype),
                       hn, pl->resout_dtype, cnt);
    if (t->mask) {
        uint8_t *row = t->mask + f->r * darn_mask_row_bytes(pl->n);
        uint8_t bytes[DARN_CPU_TILE / 8];
        const int64_t nb = (cnt + 7) / 8;
        memset(bytes, 0, (size_t)nb);
        for (int64_t k = 0; k < cnt; k++)
            if (!pl->dropout || keep[k]) bytes[k / 8] |= (uint8_t)(1u << (k % 8));
        memcpy(row + c0 / 8, bytes, (size_t)nb);
    }
}

static void fwd_one_row(const darn_plan *pl, const darn_fwd_tensors *t, uint64_t seed, uint64_t offset, int64_t r)
{
    const darn_desc *d = &pl->desc;
    const int64_t n = pl->n;
    const float nf = (float)n;
    fwd_row f = {pl, t, seed, offset, r, pl->has_rowscale ? t->rowscale[r] : 1.0f};
    float hn[DARN_CPU_TILE], term[DARN_CPU_TILE];
    cpu_lanes lanes;

    /* pass 1: h, residual_out, mask; RMSNorm sums hn^2, LayerNorm sums hn */
    cpu_lanes_reset(&lanes, pl->lanes);
    for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        fwd_h_tile(&f, c0, cnt, hn, true);
        if (pl->layer) {
            cpu_lanes_add(&lanes, hn, c0, cnt);
        } else {
            for (int64_t k = 0; k < cnt; k++) term[k] = hn[k] * hn[k];
            cpu_lanes_add(&lanes, term, c0, cnt);
        }
    }
    if (t->mask) { /* zero the row's padding bytes (bits past N inside the last byte are already 0) */
        const int64_t used = (n + 7) / 8, rb = darn_mask_row_bytes(n);
        memset(t->mask + r * rb + used, 0, (size_t)(rb - used));
    }
    float mean = 0.0f, var;
    if (pl->layer) {
        mean = cpu_lanes_total(&lanes) / nf;
        /* pass 2 (LayerNorm): sum of squared deviations */
        cpu_lanes_reset(&lanes, pl->lanes);
        for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
            const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
            fwd_h_tile(&f, c0, cnt, hn, false);
            for (int64_t k = 0; k < cnt; k++) {
                const float dv = hn[k] - mean;
                term[k] = dv * dv;
            }
            cpu_lanes_add(&lanes, term, c0, cnt);
        }
    }
    var = cpu_lanes_total(&lanes) / nf;
    const float rstd = 1.0f / sqrtf(var + d->eps);

    /* last pass: y = ((hn [- mean]) * rstd) * w' [+ b] */
    for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        float w[DARN_CPU_TILE];
        fwd_h_tile(&f, c0, cnt, hn, false);
        cpu_load_weight_tile(w, pl, t->weight, c0, cnt);
        if (pl->layer)
            for (int64_t k = 0; k < cnt; k++) hn[k] = hn[k] - mean;
        for (int64_t k = 0; k < cnt; k++) {
            const float xhat = hn[k] * rstd;
            term[k] = xhat * w[k];
        }
        if (pl->has_bias) {
            cpu_load_tile(w, cpu_at(t->bias, d->bias_dtype, 0, 0, c0), d->bias_dtype, cnt);
            for (int64_t k = 0; k < cnt; k++) term[k] = term[k] + w[k];
        }
        cpu_store_tile((char *)t->out + (size_t)(r * pl->s_out + c0) * darn_dtype_size(d->out_dtype), term,
                       d->out_dtype, cnt);
    }
    if (t->rstd) t->rstd[r] = darn_canonical_f32(rstd);
    if (t->mean) t->mean[r] = darn_canonical_f32(mean);
}

darn_status darn_cpu_fwd(const darn_plan *pl, const darn_fwd_tensors *t)
{
    uint64_t seed, offset;
    cpu_rng(pl, &seed, &offset);
    const int64_t m = pl->m;
    const int parallel = m * pl->n >= DARN_OMP_MIN_WORK;
    (void)parallel;
    DARN_OMP_FOR_IF_PARALLEL
    for (int64_t r = 0; r < m; r++) fwd_one_row(pl, t, seed, offset, r);
    return DARN_OK;
}
