/* cpu_bwd.c — the CPU reference backward: docs/numerics.md §6. */
#include "cpu_backend.h"
#include "cpu_rows.h"

typedef struct bwd_row {
    const darn_plan *pl;
    const darn_bwd_tensors *t;
    uint64_t seed, offset;
    int64_t r;
    float rstd, mean;
} bwd_row;

/* xhat, gy = dy, gy1 = dy1 (with a second output) and g = dy * w' [+ dy1 * w1'] for columns [c0, c0 + cnt)
 * of row b->r. */
static void bwd_terms(const bwd_row *b, int64_t c0, int64_t cnt, float *xhat, float *gy, float *gy1, float *g)
{
    const darn_plan *pl = b->pl;
    const darn_bwd_tensors *t = b->t;
    float w1[DARN_CPU_TILE];
    cpu_load_tile(xhat, cpu_at(t->h, pl->resout_dtype, b->r, pl->s_h, c0), pl->resout_dtype, cnt);
    for (int64_t k = 0; k < cnt; k++) xhat[k] = darn_xhat(xhat[k], b->mean, b->rstd, pl->opt);
    cpu_load_tile(gy, cpu_at(t->dy, pl->dy_dtype, b->r, pl->s_dy, c0), pl->dy_dtype, cnt);
    cpu_load_weight_tile(g, pl, t->weight, c0, cnt);
    if (pl->has_w1) {
        cpu_load_tile(gy1, cpu_at(t->dy1, pl->dy_dtype, b->r, pl->s_dy1, c0), pl->dy_dtype, cnt);
        cpu_load_weight_tile(w1, pl, t->weight1, c0, cnt);
    }
    for (int64_t k = 0; k < cnt; k++)
        g[k] = darn_bwd_g(gy[k], g[k], pl->has_w1 ? gy1[k] : 0.0f, pl->has_w1 ? w1[k] : 0.0f, pl->opt);
}

/* keep[k] for columns [c0, c0 + cnt) of x (x1 = 0) or x1 (x1 = 1): from the packed mask when it is read
 * (§6), else regenerated (same bits). Only called with dropout on. */
static void bwd_keep(const bwd_row *b, int64_t c0, int64_t cnt, uint8_t *keep, int x1)
{
    const darn_plan *pl = b->pl;
    if (x1 ? pl->mask1_read : pl->mask_read) {
        const uint8_t *row = (x1 ? b->t->mask1 : b->t->mask) + b->r * darn_mask_row_bytes(pl->n);
        for (int64_t k = 0; k < cnt; k++) keep[k] = (row[(c0 + k) / 8] >> ((c0 + k) % 8)) & 1u;
    } else {
        const uint64_t i0 = darn_plan_index(pl, b->r, c0);
        cpu_keep_tile(keep, b->seed, b->offset, pl->drop.threshold, x1 ? i0 + DARN_X1_INDEX : i0, cnt);
    }
}

/* A row's tiles: one set per calling thread, shared by both passes (darn.h promises about 12 KB of stack per call). */
typedef struct bwd_tiles {
    float xhat[DARN_CPU_TILE], gy[DARN_CPU_TILE], gy1[DARN_CPU_TILE], g[DARN_CPU_TILE], term[DARN_CPU_TILE];
} bwd_tiles;

/* Pass 1 of a row: its sums of xhat * g and (LayerNorm) g into s[0], s[1]; with `nodes` (a column slice) the slice's
 * nodes of them instead, to nodes[0 … slots) and (LayerNorm) nodes[slots … 2 slots). */
static void bwd_row_sums(const bwd_row *b, bwd_tiles *tl, float s[2], float *nodes, int64_t slots)
{
    const darn_plan *pl = b->pl;
    const int64_t n = pl->n;
    float *xhat = tl->xhat, *gy = tl->gy, *gy1 = tl->gy1, *g = tl->g, *term = tl->term;
    cpu_rowsum s1, s2;
    cpu_slicesum n1 = {.k = 0}, n2 = {.k = 0}; /* (set only for a slice) */
    cpu_rowsum_reset(&s1);
    cpu_rowsum_reset(&s2);
    if (nodes) {
        const int64_t a = pl->col0 / DARN_GROUP, e = darn_groups_for(pl->col0 + n);
        cpu_slicesum_reset(&n1, a, e, nodes);
        cpu_slicesum_reset(&n2, a, e, nodes + slots);
    }
    for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        bwd_terms(b, c0, cnt, xhat, gy, gy1, g);
        for (int64_t k = 0; k < cnt; k++) term[k] = darn_bwd_term(xhat[k], g[k]);
        if (nodes) {
            cpu_slicesum_add(&n1, term, cnt);
            if (pl->layer) cpu_slicesum_add(&n2, g, cnt);
        } else {
            cpu_rowsum_add(&s1, term, cnt);
            if (pl->layer) cpu_rowsum_add(&s2, g, cnt);
        }
    }
    s[0] = cpu_rowsum_total(&s1);
    s[1] = cpu_rowsum_total(&s2);
}

/* One row: dx, dresidual (dx1), and its terms added to the chunk partials q[0 … 3] = dweight, dbias, dweight1,
 * dbias1 ([N] each, NULL where absent). The row's sums are its own, or with `gathered` (a column slice) those of
 * every slice's nodes. */
static void bwd_one_row(const darn_plan *pl, const darn_bwd_tensors *t, uint64_t seed, uint64_t offset, int64_t r,
                        float *const q[4], const darn_cols_plan *cp, const float *gathered)
{
    float *pw = q[0], *pb = q[1], *pw1 = q[2], *pb1 = q[3];
    const darn_desc *d = &pl->desc;
    const int64_t n = pl->n;
    const float nf = (float)pl->row_n;
    const bwd_row b = {pl, t, seed, offset, r, t->rstd[r], pl->layer ? t->mean[r] : 0.0f};
    bwd_tiles tl;
    float *xhat = tl.xhat, *gy = tl.gy, *gy1 = tl.gy1, *g = tl.g, *term = tl.term;
    float s[2];
    if (gathered) {
        const int stats = 1 + pl->layer;
        s[0] = darn_cols_total(cp->bounds, cp->ranks, gathered, pl->m, r, 0, stats, cp->slots);
        s[1] = pl->layer ? darn_cols_total(cp->bounds, cp->ranks, gathered, pl->m, r, 1, stats, cp->slots) : -0.0f;
    } else {
        bwd_row_sums(&b, &tl, s, NULL, 0);
    }
    const float c1 = darn_row_mean(s[0], nf);
    const float c2 = pl->layer ? darn_row_mean(s[1], nf) : 0.0f;
    const float rs = pl->has_rowscale ? t->rowscale[r] : 1.0f;

    /* pass 2: dh, dresidual, dx, weight-gradient terms */
    for (int64_t c0 = 0; c0 < n; c0 += DARN_CPU_TILE) {
        const int64_t cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        float *dh = term;
        uint8_t keep[DARN_CPU_TILE];
        bwd_terms(&b, c0, cnt, xhat, gy, gy1, g);
        for (int64_t k = 0; k < cnt; k++) dh[k] = darn_bwd_dh(g[k], xhat[k], c1, c2, b.rstd, pl->opt);
        if (t->dresidual_out) {
            float dro[DARN_CPU_TILE];
            cpu_load_tile(dro, cpu_at(t->dresidual_out, pl->resout_dtype, r, pl->s_dresout, c0), pl->resout_dtype,
                          cnt);
            for (int64_t k = 0; k < cnt; k++) dh[k] = dh[k] + dro[k];
        }
        if (t->dresidual)
            cpu_store_tile(cpu_at_mut(t->dresidual, d->residual_dtype, r, pl->s_dres, c0), dh, d->residual_dtype, cnt);
        for (int64_t k = 0; k < cnt; k++) pw[c0 + k] = pw[c0 + k] + darn_wgrad_term(gy[k], xhat[k]);
        if (pb)
            for (int64_t k = 0; k < cnt; k++) pb[c0 + k] = pb[c0 + k] + gy[k];
        if (pw1)
            for (int64_t k = 0; k < cnt; k++) pw1[c0 + k] = pw1[c0 + k] + darn_wgrad_term(gy1[k], xhat[k]);
        if (pb1)
            for (int64_t k = 0; k < cnt; k++) pb1[c0 + k] = pb1[c0 + k] + gy1[k];
        if (pl->has_x1) {
            float dx1[DARN_CPU_TILE];
            if (pl->dropout) bwd_keep(&b, c0, cnt, keep, 1);
            for (int64_t k = 0; k < cnt; k++) dx1[k] = darn_bwd_dx1(dh[k], pl->dropout ? keep[k] : 1u, pl->drop.scale, pl->opt);
            cpu_store_tile(cpu_at_mut(t->dx1, d->x_dtype, r, pl->s_dx1, c0), dx1, d->x_dtype, cnt);
        }
        if (pl->dropout) bwd_keep(&b, c0, cnt, keep, 0);
        for (int64_t k = 0; k < cnt; k++) dh[k] = darn_bwd_dx(dh[k], pl->dropout ? keep[k] : 1u, pl->drop.scale, rs, pl->opt);
        cpu_store_tile(cpu_at_mut(t->dx, d->x_dtype, r, pl->s_dx, c0), dh, d->x_dtype, cnt);
    }
}

/* Column-wise pairwise tree over the G chunk partials q[g * N + c] (§6), then the store. */
static void wgrad_finish(const darn_plan *pl, float *q, void *dst, darn_dtype dt)
{
    const int64_t n = pl->n, G = pl->wgrad_chunks;
    const int64_t tiles = (n + DARN_CPU_TILE - 1) / DARN_CPU_TILE;
    const int parallel = G * n >= DARN_OMP_MIN_WORK;
    (void)parallel;
    DARN_OMP_FOR_IF_PARALLEL
    for (int64_t ti = 0; ti < tiles; ti++) {
        const int64_t c0 = ti * DARN_CPU_TILE, cnt = n - c0 < DARN_CPU_TILE ? n - c0 : DARN_CPU_TILE;
        for (int64_t dist = 1; dist < G; dist *= 2)
            for (int64_t i = 0; i + dist < G; i += 2 * dist) {
                float *a = q + i * n + c0;
                const float *b = q + (i + dist) * n + c0;
                for (int64_t k = 0; k < cnt; k++) a[k] = a[k] + b[k];
            }
        cpu_store_tile((char *)dst + (size_t)c0 * darn_dtype_size(dt), q + c0, dt, cnt);
    }
}

/* dx, dresidual (dx1) and the partials of the plan's chunks (R = pl->wgrad_rows rows each, pl->wgrad_chunks of
 * them, the last one possibly shorter) into q[0 … 3] = dweight, dbias, dweight1, dbias1 ([chunks, N] each; NULL
 * where absent). */
static void bwd_chunks(const darn_plan *pl, const darn_bwd_tensors *t, float *const q[4], const darn_cols_plan *cp,
                       const float *gathered)
{
    const int64_t n = pl->n, m = pl->m, G = pl->wgrad_chunks, R = pl->wgrad_rows;
    uint64_t seed, offset;
    cpu_rng(pl, &seed, &offset);
    /* Each chunk is summed in row order by one thread; which thread does not matter. */
    const int parallel = m * n >= DARN_OMP_MIN_WORK;
    (void)parallel;
    DARN_OMP_FOR_IF_PARALLEL
    for (int64_t g = 0; g < G; g++) {
        float *p[4];
        for (int k = 0; k < 4; k++) {
            p[k] = q[k] ? q[k] + g * n : NULL;
            if (p[k])
                for (int64_t c = 0; c < n; c++) p[k][c] = -0.0f;
        }
        const int64_t r_end = R < m - g * R ? (g + 1) * R : m;
        for (int64_t r = g * R; r < r_end; r++) bwd_one_row(pl, t, seed, offset, r, p, cp, gathered);
    }
}

void darn_cpu_bwd_chunks(const darn_plan *pl, const darn_bwd_tensors *t, float *const q[4])
{
    bwd_chunks(pl, t, q, NULL, NULL);
}

void darn_cpu_wgrad_reduce(const darn_plan *pl, float *qw, float *qb, void *dweight, void *dbias)
{
    const darn_desc *d = &pl->desc;
    if (pl->m == 0) { /* the gradient of an empty batch */
        memset(dweight, 0, (size_t)pl->n * darn_dtype_size(d->weight_dtype));
        if (dbias) memset(dbias, 0, (size_t)pl->n * darn_dtype_size(d->bias_dtype));
        return;
    }
    wgrad_finish(pl, qw, dweight, d->weight_dtype);
    if (dbias) wgrad_finish(pl, qb, dbias, d->bias_dtype);
}

static void bwd(const darn_plan *pl, const darn_bwd_tensors *t, void *workspace, const darn_cols_plan *cp,
                const float *gathered)
{
    float *q[4]; /* workspace is NULL when m == 0: its size is then 0 */
    darn_wgrad_sets(pl, workspace, q);
    if (pl->m > 0) bwd_chunks(pl, t, q, cp, gathered);
    darn_cpu_wgrad_reduce(pl, q[0], q[1], t->dweight, t->dbias);
    if (pl->has_w1) darn_cpu_wgrad_reduce(pl, q[2], q[3], t->dweight1, t->dbias1);
}

darn_status darn_cpu_bwd(const darn_plan *pl, const darn_bwd_tensors *t, void *workspace)
{
    bwd(pl, t, workspace, NULL, NULL);
    return DARN_OK;
}

/* ---- a column slice (cols.c; docs/numerics.md §5, "Column slices") ------------------------------------ */
void darn_cpu_bwd_cols_sums(const darn_plan *pl, const darn_bwd_tensors *t, const darn_cols_plan *cp, float *nodes)
{
    const int64_t m = pl->m, S = cp->slots, stats = 1 + pl->layer;
    uint64_t seed, offset;
    cpu_rng(pl, &seed, &offset);
    const int parallel = m * pl->n >= DARN_OMP_MIN_WORK;
    (void)parallel;
    DARN_OMP_FOR_IF_PARALLEL
    for (int64_t r = 0; r < m; r++) {
        const bwd_row b = {pl, t, seed, offset, r, t->rstd[r], pl->layer ? t->mean[r] : 0.0f};
        float *out = nodes + r * stats * S, s[2];
        bwd_tiles tl;
        for (int64_t k = 0; k < stats * S; k++) out[k] = -0.0f;
        bwd_row_sums(&b, &tl, s, out, S);
    }
}

void darn_cpu_bwd_cols(const darn_plan *pl, const darn_bwd_tensors *t, const darn_cols_plan *cp, const float *gathered,
                       void *workspace)
{
    bwd(pl, t, workspace, cp, gathered);
}
