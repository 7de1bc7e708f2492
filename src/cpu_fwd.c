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

/* An OpenMP loop over rows that also reduces the rows' amax bits (a uint32 max: exact in any order, §9). */
#if defined(_OPENMP)
#define DARN_OMP_FOR_AMAX _Pragma("omp parallel for schedule(dynamic, 1) if(parallel) reduction(max: amax)")
#else
#define DARN_OMP_FOR_AMAX
#endif /* _OPENMP */

/* The mask bytes of columns [c0, c0 + cnt) of one row from the keep bits (NULL: all kept, p = 0). */
static void cpu_store_mask_tile(uint8_t *row, int64_t c0, int64_t cnt, const uint8_t *keep)
{
    uint8_t bytes[DARN_CPU_TILE / 8];
    const int64_t nb = (cnt + 7) / 8;
    memset(bytes, 0, (size_t)nb);
    for (int64_t k = 0; k < cnt; k++)
        if (!keep || keep[k]) bytes[k / 8] |= (uint8_t)(1u << (k % 8));
    memcpy(row + c0 / 8, bytes, (size_t)nb);
}

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
    float x[DARN_CPU_TILE], res[DARN_CPU_TILE], x1[DARN_CPU_TILE];
    uint8_t keep[DARN_CPU_TILE], keep1[DARN_CPU_TILE];
    const uint64_t i0 = darn_plan_index(pl, f->r, c0);
    cpu_load_tile(x, cpu_at(t->x, d->x_dtype, f->r, pl->s_x, c0), d->x_dtype, cnt);
    if (pl->has_res) cpu_load_tile(res, cpu_at(t->residual, d->residual_dtype, f->r, pl->s_res, c0), d->residual_dtype, cnt);
    if (pl->has_x1) cpu_load_tile(x1, cpu_at(t->x1, d->x_dtype, f->r, pl->s_x1, c0), d->x_dtype, cnt);
    if (pl->dropout) cpu_keep_tile(keep, f->seed, f->offset, pl->drop.threshold, i0, cnt);
    if (pl->dropout && pl->has_x1) cpu_keep_tile(keep1, f->seed, f->offset, pl->drop.threshold, i0 + DARN_X1_INDEX, cnt);
    for (int64_t k = 0; k < cnt; k++)
        hn[k] = darn_fwd_h(x[k], pl->has_x1 ? x1[k] : 0.0f, pl->has_res ? res[k] : 0.0f, f->rs, pl->dropout ? keep[k] : 1u,
                           pl->dropout && pl->has_x1 ? keep1[k] : 1u, pl->drop.scale, pl->opt);
    cpu_round_tile(hn, pl->resout_dtype, cnt); /* the norm reads h as stored */
    if (!first) return;
    if (t->residual_out)
        cpu_store_tile(cpu_at_mut(t->residual_out, pl->resout_dtype, f->r, pl->s_resout, c0), hn, pl->resout_dtype, cnt);
    if (t->mask) cpu_store_mask_tile(t->mask + f->r * darn_mask_row_bytes(pl->n), c0, cnt, pl->dropout ? keep : NULL);
    if (t->mask1) cpu_store_mask_tile(t->mask1 + f->r * darn_mask_row_bytes(pl->n), c0, cnt, pl->dropout ? keep1 : NULL);
}

/* One pass over the row: the sum of darn_fwd_term(pass) over the row (§5), after hn; with `nodes` (a column slice:
 * the plan's columns are part of the row) the slice's nodes of that sum written there instead (returns -0). */
static float fwd_row_sum(const fwd_row *f, int pass, float mean, float *nodes)
{
    const darn_plan *pl = f->pl;
    float hn[DARN_CPU_TILE], term[DARN_CPU_TILE];
    cpu_rowsum sum;
    cpu_slicesum slice = {.k = 0}; /* (set only for a slice) */
    cpu_rowsum_reset(&sum);
    if (nodes) cpu_slicesum_reset(&slice, pl->col0 / DARN_GROUP, darn_groups_for(pl->col0 + pl->n), nodes);
    for (int64_t c0 = 0; c0 < pl->n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = pl->n - c0 < DARN_CPU_TILE ? pl->n - c0 : DARN_CPU_TILE;
        fwd_h_tile(f, c0, cnt, hn, pass == 0);
        for (int64_t k = 0; k < cnt; k++) term[k] = darn_fwd_term(hn[k], mean, pass, pl->opt);
        if (nodes)
            cpu_slicesum_add(&slice, term, cnt);
        else
            cpu_rowsum_add(&sum, term, cnt);
    }
    return nodes ? -0.0f : cpu_rowsum_total(&sum);
}

/* The masks' padding bytes of row r (bits past N inside the last byte are already 0). */
static void fwd_mask_padding(const darn_plan *pl, const darn_fwd_tensors *t, int64_t r)
{
    const int64_t used = (pl->n + 7) / 8, rb = darn_mask_row_bytes(pl->n);
    if (t->mask) memset(t->mask + r * rb + used, 0, (size_t)(rb - used));
    if (t->mask1) memset(t->mask1 + r * rb + used, 0, (size_t)(rb - used));
}

/* The last pass of a row: y (fp8 out: its amax term, then y * scale, which the store rounds to fp8; §9), y1, rstd
 * and mean; returns the row's amax bits (the uint32 max of darn_amax_term(y)), 0 without an fp8 out. */
static uint32_t fwd_row_y(const fwd_row *f, float mean, float rstd, float out_scale)
{
    const darn_plan *pl = f->pl;
    const darn_fwd_tensors *t = f->t;
    const darn_desc *d = &pl->desc;
    const int64_t n = pl->n, r = f->r;
    uint32_t amax = 0;
    for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        float hn[DARN_CPU_TILE], w[DARN_CPU_TILE], b[DARN_CPU_TILE], y[DARN_CPU_TILE];
        fwd_h_tile(f, c0, cnt, hn, false);
        cpu_load_weight_tile(w, pl, t->weight, c0, cnt);
        if (pl->has_bias) cpu_load_tile(b, cpu_at(t->bias, d->bias_dtype, 0, 0, c0), d->bias_dtype, cnt);
        for (int64_t k = 0; k < cnt; k++) y[k] = darn_fwd_y(hn[k], mean, rstd, w[k], pl->has_bias ? b[k] : 0.0f, pl->opt);
        if (pl->fp8_out)
            for (int64_t k = 0; k < cnt; k++) {
                amax = darn_amax_combine(amax, darn_amax_term(y[k]));
                y[k] = darn_fp8_scaled(y[k], out_scale);
            }
        cpu_store_tile(cpu_at_mut(t->out, d->out_dtype, r, pl->s_out, c0), y, d->out_dtype, cnt);
        if (pl->has_w1) { /* the second output (never fp8: validate.c) */
            cpu_load_weight_tile(w, pl, t->weight1, c0, cnt);
            if (pl->has_b1) cpu_load_tile(b, cpu_at(t->bias1, d->bias_dtype, 0, 0, c0), d->bias_dtype, cnt);
            for (int64_t k = 0; k < cnt; k++)
                y[k] = darn_fwd_y1(hn[k], mean, rstd, w[k], pl->has_b1 ? b[k] : 0.0f, pl->opt);
            cpu_store_tile(cpu_at_mut(t->out1, d->out_dtype, r, pl->s_out1, c0), y, d->out_dtype, cnt);
        }
    }
    if (t->rstd) t->rstd[r] = darn_canonical_f32(rstd);
    if (t->mean) t->mean[r] = darn_canonical_f32(mean);
    return amax;
}

/* One row; returns the row's amax bits (fwd_row_y). */
static uint32_t fwd_one_row(const darn_plan *pl, const darn_fwd_tensors *t, uint64_t seed, uint64_t offset, int64_t r,
                            float out_scale)
{
    const float nf = (float)pl->row_n;
    const fwd_row f = {pl, t, seed, offset, r, pl->has_rowscale ? t->rowscale[r] : 1.0f};
    /* pass 1: h, residual_out, mask, and the first sum (hn^2, or hn for LayerNorm) */
    float sum = fwd_row_sum(&f, 0, 0.0f, NULL);
    fwd_mask_padding(pl, t, r);
    float mean = 0.0f;
    if (pl->layer) { /* pass 2 (LayerNorm): the sum of squared deviations */
        mean = darn_row_mean(sum, nf);
        sum = fwd_row_sum(&f, 1, mean, NULL);
    }
    return fwd_row_y(&f, mean, darn_row_rstd(sum, nf, pl->desc.eps), out_scale);
}

/* The scale of an fp8 out, read once, when the work runs (§9); 1 otherwise. */
static float fwd_out_scale(const darn_plan *pl)
{
    return !pl->fp8_out ? 1.0f : pl->desc.out_scale_ptr ? *pl->desc.out_scale_ptr : pl->desc.out_scale;
}

darn_status darn_cpu_fwd(const darn_plan *pl, const darn_fwd_tensors *t)
{
    const int64_t m = pl->m;
    uint32_t amax = 0; /* +0: the amax of no elements (M = 0) */
    if (m > 0) {
        uint64_t seed, offset;
        cpu_rng(pl, &seed, &offset);
        const float out_scale = fwd_out_scale(pl);
        const int parallel = m * pl->n >= DARN_OMP_MIN_WORK;
        (void)parallel;
        DARN_OMP_FOR_AMAX
        for (int64_t r = 0; r < m; r++) {
            const uint32_t a = fwd_one_row(pl, t, seed, offset, r, out_scale);
            amax = darn_amax_combine(amax, a);
        }
    }
    if (t->amax) *t->amax = darn_bits_f32(amax);
    return DARN_OK;
}

/* ---- a column slice (cols.c; docs/numerics.md §5, "Column slices") ------------------------------------ */
void darn_cpu_fwd_cols_sums(const darn_plan *pl, const darn_fwd_tensors *t, const darn_cols_plan *cp, int pass,
                            const float *gathered, float *nodes)
{
    const int64_t m = pl->m, S = cp->slots;
    const float nf = (float)pl->row_n;
    uint64_t seed, offset;
    cpu_rng(pl, &seed, &offset);
    const int parallel = m * pl->n >= DARN_OMP_MIN_WORK;
    (void)parallel;
    DARN_OMP_FOR_IF_PARALLEL
    for (int64_t r = 0; r < m; r++) {
        const fwd_row f = {pl, t, seed, offset, r, pl->has_rowscale ? t->rowscale[r] : 1.0f};
        float *out = nodes + r * S;
        for (int64_t k = 0; k < S; k++) out[k] = -0.0f;
        if (pass == 0) {
            fwd_row_sum(&f, 0, 0.0f, out);
            fwd_mask_padding(pl, t, r);
        } else {
            const float mean = darn_row_mean(darn_cols_total(cp->bounds, cp->ranks, gathered, m, r, 0, 1, S), nf);
            fwd_row_sum(&f, 1, mean, out);
        }
    }
}

void darn_cpu_fwd_cols(const darn_plan *pl, const darn_fwd_tensors *t, const darn_cols_plan *cp,
                       const float *gathered0, const float *gathered1)
{
    const int64_t m = pl->m, S = cp->slots;
    const float nf = (float)pl->row_n;
    uint32_t amax = 0;
    if (m > 0) {
        uint64_t seed, offset;
        cpu_rng(pl, &seed, &offset);
        const float out_scale = fwd_out_scale(pl);
        const int parallel = m * pl->n >= DARN_OMP_MIN_WORK;
        (void)parallel;
        DARN_OMP_FOR_AMAX
        for (int64_t r = 0; r < m; r++) {
            const fwd_row f = {pl, t, seed, offset, r, pl->has_rowscale ? t->rowscale[r] : 1.0f};
            const float s0 = darn_cols_total(cp->bounds, cp->ranks, gathered0, m, r, 0, 1, S);
            const float mean = pl->layer ? darn_row_mean(s0, nf) : 0.0f;
            const float s1 = pl->layer ? darn_cols_total(cp->bounds, cp->ranks, gathered1, m, r, 0, 1, S) : s0;
            amax = darn_amax_combine(amax, fwd_row_y(&f, mean, darn_row_rstd(s1, nf, pl->desc.eps), out_scale));
        }
    }
    if (t->amax) *t->amax = darn_bits_f32(amax);
}
