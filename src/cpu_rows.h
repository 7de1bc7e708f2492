/*
 * cpu_rows.h — building blocks of the CPU backend: typed tile loads/stores, the keep bits of a tile,
 * and the row sum of docs/numerics.md §5 (group sums, then the pairwise tree over the groups).
 *
 * The backend works on tiles of DARN_CPU_TILE consecutive columns of one row held in fp32 stack
 * buffers (a few KB per calling thread): the dtype switch happens once per tile, never per element,
 * and no call allocates. The arithmetic is contract.h's, element by element.
 */
#ifndef DARN_CPU_ROWS_H
#define DARN_CPU_ROWS_H

#include <string.h>

#include "validate.h"

#define DARN_CPU_TILE 512 /* columns per tile: a multiple of 32 (mask words) and of 8 (groups) */

/* Parallel over rows (chunks, column tiles) only when there is enough work to pay for the threads:
 * small calls stay on the caller's thread (spinning OpenMP workers cost more than they save there).
 * Results never depend on this: each row/chunk/tile is computed by exactly one thread. */
#define DARN_OMP_MIN_WORK (INT64_C(1) << 18)
#if defined(_OPENMP)
#define DARN_OMP_FOR_IF_PARALLEL _Pragma("omp parallel for schedule(dynamic, 1) if(parallel)") /* reads the local int `parallel` */
#else
#define DARN_OMP_FOR_IF_PARALLEL
#endif /* _OPENMP */

/* fp8 codes <-> fp32 (docs/numerics.md §9): out_dtype only, so only stores happen in a call; the loads serve
 * round trips and the tests. */
static inline float cpu_fp8_load(uint8_t c, darn_dtype dt)
{
    return dt == DARN_FP8_E4M3FN  ? darn_e4m3fn_to_f32(c)
           : dt == DARN_FP8_E5M2  ? darn_e5m2_to_f32(c)
           : dt == DARN_FP8_E4M3FNUZ ? darn_e4m3fnuz_to_f32(c)
                                     : darn_e5m2fnuz_to_f32(c);
}
static inline uint8_t cpu_fp8_store(float v, darn_dtype dt) { return darn_f32_to_fp8(v, (int)dt); }

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
    case DARN_FP8_E4M3FN:
    case DARN_FP8_E5M2:
    case DARN_FP8_E4M3FNUZ:
    case DARN_FP8_E5M2FNUZ: {
        const uint8_t *s = (const uint8_t *)src;
        for (int64_t k = 0; k < cnt; k++) dst[k] = cpu_fp8_load(s[k], dt);
        break;
    }
    case DARN_DTYPE_SAME_AS_OUT: break; /* resolved by the plan, never a tensor's dtype */
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
    case DARN_FP8_E4M3FN:
    case DARN_FP8_E5M2:
    case DARN_FP8_E4M3FNUZ:
    case DARN_FP8_E5M2FNUZ: { /* src holds y * scale (§9) */
        uint8_t *d = (uint8_t *)dst;
        for (int64_t k = 0; k < cnt; k++) d[k] = cpu_fp8_store(src[k], dt);
        break;
    }
    case DARN_DTYPE_SAME_AS_OUT: break;
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
    case DARN_FP8_E4M3FN:
    case DARN_FP8_E5M2:
    case DARN_FP8_E4M3FNUZ:
    case DARN_FP8_E5M2FNUZ:
        for (int64_t k = 0; k < cnt; k++) v[k] = cpu_fp8_load(cpu_fp8_store(v[k], dt), dt);
        break;
    case DARN_DTYPE_SAME_AS_OUT: break;
    }
}

static inline const void *cpu_at(const void *base, darn_dtype dt, int64_t row, int64_t stride, int64_t col)
{
    return (const char *)base + (size_t)(row * stride + col) * darn_dtype_size(dt);
}
static inline void *cpu_at_mut(void *base, darn_dtype dt, int64_t row, int64_t stride, int64_t col)
{
    return (char *)base + (size_t)(row * stride + col) * darn_dtype_size(dt);
}

/* w'[k] for columns [c0, c0 + cnt): darn_weight of the loaded weight. */
static inline void cpu_load_weight_tile(float *w, const darn_plan *pl, const void *weight, int64_t c0, int64_t cnt)
{
    cpu_load_tile(w, cpu_at(weight, pl->desc.weight_dtype, 0, 0, c0), pl->desc.weight_dtype, cnt);
    for (int64_t k = 0; k < cnt; k++) w[k] = darn_weight(w[k], pl->opt);
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

/* ---- row sum (§5) -------------------------------------------------------------------------------
 * Group sums arrive in group order; the pairwise tree over them is built as they come: s[] holds the
 * complete subtrees so far (largest first). Leaf i closes one subtree per trailing 1 bit of i; at the
 * end the open subtrees are added right to left, which is the tree with missing partners passed
 * through. 64 levels cover any int64 group count. */
typedef struct cpu_rowsum {
    float s[64];
    int top;
    int64_t leaves;
} cpu_rowsum;

static inline void cpu_rowsum_reset(cpu_rowsum *t)
{
    t->top = 0;
    t->leaves = 0;
}

static inline void cpu_rowsum_push(cpu_rowsum *t, float v)
{
    for (int64_t i = t->leaves++; i & 1; i >>= 1) v = t->s[--t->top] + v; /* left subtree + right subtree */
    t->s[t->top++] = v;
}

static inline float cpu_rowsum_total(cpu_rowsum *t)
{
    if (t->top == 0) return -0.0f;
    float v = t->s[--t->top];
    while (t->top > 0) v = t->s[--t->top] + v;
    return v;
}

/* Adds the terms of columns [c0, c0 + cnt) (c0 a multiple of 8; cnt a multiple of 8 except at the
 * row's end): each group's sum from -0.0 in increasing column, then the group into the tree. */
static inline void cpu_rowsum_add(cpu_rowsum *t, const float *term, int64_t cnt)
{
    for (int64_t k0 = 0; k0 < cnt; k0 += DARN_GROUP) {
        float a = -0.0f;
        const int64_t e = cnt - k0 < DARN_GROUP ? cnt - k0 : DARN_GROUP;
        for (int64_t k = 0; k < e; k++) a = a + term[k0 + k];
        cpu_rowsum_push(t, a);
    }
}

/* ---- a column slice's row sum: its nodes (contract.h, darn_slice_node_len) -------------------------
 * Group sums arrive in order; each node's tree (cpu_rowsum over the node's groups: an aligned power-of-two run is a
 * subtree, §5) is written to out[k++] when the node's last group is in. */
typedef struct cpu_slicesum {
    cpu_rowsum node;
    int64_t g, b, end; /* next group, the slice's end, the current node's end (groups of the whole row) */
    float *out;
    int64_t k;
} cpu_slicesum;

/* The slice of groups [a, b) (a < b), its nodes to out. */
static inline void cpu_slicesum_reset(cpu_slicesum *s, int64_t a, int64_t b, float *out)
{
    cpu_rowsum_reset(&s->node);
    s->g = a;
    s->b = b;
    s->end = a + darn_slice_node_len(a, b);
    s->out = out;
    s->k = 0;
}

/* As cpu_rowsum_add, for the slice. */
static inline void cpu_slicesum_add(cpu_slicesum *s, const float *term, int64_t cnt)
{
    for (int64_t k0 = 0; k0 < cnt; k0 += DARN_GROUP) {
        float a = -0.0f;
        const int64_t e = cnt - k0 < DARN_GROUP ? cnt - k0 : DARN_GROUP;
        for (int64_t k = 0; k < e; k++) a = a + term[k0 + k];
        cpu_rowsum_push(&s->node, a);
        if (++s->g == s->end) {
            s->out[s->k++] = cpu_rowsum_total(&s->node);
            cpu_rowsum_reset(&s->node);
            if (s->g < s->b) s->end = s->g + darn_slice_node_len(s->g, s->b);
        }
    }
}

#endif /* DARN_CPU_ROWS_H */
