/*
 * cpu_rows.h — building blocks of the CPU backend: typed tile loads/stores, the keep bits of a tile,
 * and the canonical row sum of docs/numerics.md §5 (lane sums + adjacent-pair tree).
 *
 * The backend works on tiles of DARN_CPU_TILE consecutive columns of one row held in fp32 stack
 * buffers: the dtype switch happens once per tile, never per element, and no call allocates.
 */
#ifndef DARN_CPU_ROWS_H
#define DARN_CPU_ROWS_H

#include <string.h>

#include "validate.h"

#define DARN_CPU_TILE 2048 /* columns per tile: a multiple of 32, so mask words never straddle tiles */

/* Parallel over rows (chunks, column tiles) only when there is enough work to pay for the threads:
 * small calls stay on the caller's thread (spinning OpenMP workers cost more than they save there).
 * Results never depend on this: each row/chunk/tile is computed by exactly one thread. */
#define DARN_OMP_MIN_WORK (INT64_C(1) << 18)
#if defined(_OPENMP)
#define DARN_OMP_FOR_IF_PARALLEL _Pragma("omp parallel for schedule(dynamic, 1) if(parallel)") /* reads the local int `parallel` */
#else
#define DARN_OMP_FOR_IF_PARALLEL
#endif /* _OPENMP */

/* dst[k] = load(src[k]) for k < cnt; src points at the tile's first element. */
static inline void cpu_load_tile(float *dst, const void *src, darn_dtype dt, int64_t cnt)
{
    switch (dt) {
    case DARN_F32: memcpy(dst, src, (size_t)cnt * 4); break;
    case DARN_F16: {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t k = 0; k < cnt; k++) dst[k] = darn_f16_to_f32(s[k]);
        break;
    }
    case DARN_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t k = 0; k < cnt; k++) dst[k] = darn_bf16_to_f32(s[k]);
        break;
    }
    }
}

/* dst[k] = store(src[k], dt) for k < cnt. */
static inline void cpu_store_tile(void *dst, const float *src, darn_dtype dt, int64_t cnt)
{
    switch (dt) {
    case DARN_F32: {
        float *d = (float *)dst;
        for (int64_t k = 0; k < cnt; k++) d[k] = darn_canonical_f32(src[k]);
        break;
    }
    case DARN_F16: {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t k = 0; k < cnt; k++) d[k] = darn_f32_to_f16(src[k]);
        break;
    }
    case DARN_BF16: {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t k = 0; k < cnt; k++) d[k] = darn_f32_to_bf16(src[k]);
        break;
    }
    }
}

/* v[k] = load(store(v[k], dt)): the value as it reads back from a dt buffer. */
static inline void cpu_round_tile(float *v, darn_dtype dt, int64_t cnt)
{
    switch (dt) {
    case DARN_F32:
        for (int64_t k = 0; k < cnt; k++) v[k] = darn_canonical_f32(v[k]);
        break;
    case DARN_F16:
        for (int64_t k = 0; k < cnt; k++) v[k] = darn_f16_to_f32(darn_f32_to_f16(v[k]));
        break;
    case DARN_BF16:
        for (int64_t k = 0; k < cnt; k++) v[k] = darn_bf16_to_f32(darn_f32_to_bf16(v[k]));
        break;
    }
}

static inline const void *cpu_at(const void *base, darn_dtype dt, int64_t row, int64_t stride, int64_t col)
{
    return (const char *)base + (size_t)(row * stride + col) * darn_dtype_size(dt);
}

/* w'[k] for columns [c0, c0 + cnt): the weight, plus 1 for zero-centered weights. */
static inline void cpu_load_weight_tile(float *w, const darn_plan *pl, const void *weight, int64_t c0, int64_t cnt)
{
    cpu_load_tile(w, cpu_at(weight, pl->desc.weight_dtype, 0, 0, c0), pl->desc.weight_dtype, cnt);
    if (pl->zero_centered)
        for (int64_t k = 0; k < cnt; k++) w[k] = w[k] + 1.0f;
}

/* keep[k] = keep bit of element index i0 + k (docs/numerics.md §3), one Philox block per 4 indices. */
static inline void cpu_keep_tile(uint8_t *keep, uint64_t seed, uint64_t offset, uint64_t threshold, uint64_t i0,
                                 int64_t cnt)
{
    darn_philox_ctr blk = darn_philox_block(seed, offset, i0 >> 2);
    for (int64_t k = 0; k < cnt; k++) {
        const uint64_t i = i0 + (uint64_t)k;
        if (k > 0 && (i & 3) == 0) blk = darn_philox_block(seed, offset, i >> 2);
        keep[k] = (uint8_t)darn_keep(blk.v[i & 3], threshold);
    }
}

/* The (seed, offset) a call runs with: the values, or read through the graph-safe pointers. */
static inline void cpu_rng(const darn_plan *pl, uint64_t *seed, uint64_t *offset)
{
    if (pl->desc.rng_seed_ptr) {
        *seed = *pl->desc.rng_seed_ptr;
        *offset = *pl->desc.rng_offset_ptr + pl->desc.offset;
    } else {
        *seed = pl->desc.seed;
        *offset = pl->desc.offset;
    }
}

/* ---- canonical row sum (§5) ---------------------------------------------------------------------- */
typedef struct cpu_lanes {
    float a[DARN_LANES_MAX];
    int64_t mask; /* L - 1 */
} cpu_lanes;

static inline void cpu_lanes_reset(cpu_lanes *s, int64_t lanes)
{
    s->mask = lanes - 1;
    for (int64_t l = 0; l < lanes; l++) s->a[l] = -0.0f;
}

/* Add term[k] (column c0 + k) to its lane; tiles arrive in increasing column order. */
static inline void cpu_lanes_add(cpu_lanes *s, const float *term, int64_t c0, int64_t cnt)
{
    for (int64_t k = 0; k < cnt; k++) {
        const int64_t l = ((c0 + k) / DARN_GROUP) & s->mask;
        s->a[l] = s->a[l] + term[k];
    }
}

/* Balanced adjacent-pair tree over values a[0..count): level d = 1, 2, 4, ...: a[i] = a[i] + a[i + d]
 * for i multiple of 2d; a missing right partner passes the value through. Destroys a. */
static inline float cpu_pair_tree(float *a, int64_t count)
{
    for (int64_t d = 1; d < count; d *= 2)
        for (int64_t i = 0; i + d < count; i += 2 * d) a[i] = a[i] + a[i + d];
    return a[0];
}

static inline float cpu_lanes_total(cpu_lanes *s) { return cpu_pair_tree(s->a, s->mask + 1); }

#endif /* DARN_CPU_ROWS_H */
