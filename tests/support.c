/* tests/support.c — see support.h. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

void *sup_alloc(size_t bytes, size_t align)
{
    if (align < 16) align = 16;
    size_t rounded = bytes == 0 ? align : bytes;
    rounded = (rounded + align - 1) / align * align;
    void *p = aligned_alloc(align, rounded);
    if (p == NULL) {
        fprintf(stderr, "sup_alloc: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    memset(p, (int)SUP_SENTINEL, rounded);
    return p;
}

void sup_free(void *p) { free(p); }

sup_rng sup_rng_make(uint64_t seed)
{
    sup_rng g;
    g.state = seed;
    return g;
}

uint64_t sup_rng_u64(sup_rng *g)
{
    uint64_t z = (g->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

double sup_rng_unit(sup_rng *g) { return (double)(sup_rng_u64(g) >> 11) * 0x1.0p-53; }

int64_t sup_stride(int64_t cols, int64_t stride) { return stride == 0 ? cols : stride; }

size_t sup_tensor_bytes(darn_dtype dtype, int64_t rows, int64_t cols, int64_t stride)
{
    if (rows <= 0 || cols <= 0) return 0;
    const int64_t s = sup_stride(cols, stride);
    return (size_t)((rows - 1) * s + cols) * darn_dtype_size(dtype);
}

static size_t elem_offset(int64_t stride, int64_t r, int64_t c) { return (size_t)(r * stride + c); }

uint32_t sup_get_bits(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c)
{
    const size_t i = elem_offset(stride, r, c);
    if (dtype == DARN_F32) {
        uint32_t u;
        memcpy(&u, (const unsigned char *)buf + 4 * i, 4);
        return u;
    }
    if (darn_dtype_size(dtype) == 1) /* fp8 codes */
        return ((const unsigned char *)buf)[i];
    uint16_t h;
    memcpy(&h, (const unsigned char *)buf + 2 * i, 2);
    return h;
}

float sup_get(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c)
{
    const uint32_t b = sup_get_bits(buf, dtype, stride, r, c);
    switch (dtype) {
    case DARN_F16: return darn_f16_to_f32((uint16_t)b);
    case DARN_BF16: return darn_bf16_to_f32((uint16_t)b);
    default: return darn_bits_f32(b);
    }
}

void sup_set(void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c, float v)
{
    const size_t i = elem_offset(stride, r, c);
    if (dtype == DARN_F32) {
        const float f = darn_canonical_f32(v);
        memcpy((unsigned char *)buf + 4 * i, &f, 4);
        return;
    }
    const uint16_t h = dtype == DARN_F16 ? darn_f32_to_f16(v) : darn_f32_to_bf16(v);
    memcpy((unsigned char *)buf + 2 * i, &h, 2);
}

float sup_round(darn_dtype dtype, float v)
{
    switch (dtype) {
    case DARN_F16: return darn_f16_to_f32(darn_f32_to_f16(v));
    case DARN_BF16: return darn_bf16_to_f32(darn_f32_to_bf16(v));
    default: return darn_canonical_f32(v);
    }
}

static float uniform(sup_rng *g, float lo, float hi)
{
    return (float)((double)lo + ((double)hi - (double)lo) * sup_rng_unit(g));
}

void sup_fill_uniform(void *buf, darn_dtype dtype, int64_t rows, int64_t cols, int64_t stride, sup_rng *g,
                      float lo, float hi)
{
    const int64_t s = sup_stride(cols, stride);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) sup_set(buf, dtype, s, r, c, uniform(g, lo, hi));
}

void sup_fill_f32(float *v, int64_t n, sup_rng *g, float lo, float hi)
{
    for (int64_t i = 0; i < n; ++i) v[i] = uniform(g, lo, hi);
}

void sup_copy(void *dst, int64_t dst_stride, const void *src, int64_t src_stride, darn_dtype dtype,
              int64_t rows, int64_t cols)
{
    const size_t es = darn_dtype_size(dtype);
    const int64_t ds = sup_stride(cols, dst_stride), ss = sup_stride(cols, src_stride);
    for (int64_t r = 0; r < rows; ++r)
        memcpy((unsigned char *)dst + (size_t)(r * ds) * es, (const unsigned char *)src + (size_t)(r * ss) * es,
               (size_t)cols * es);
}

void sup_sentinel_fill(void *buf, size_t bytes)
{
    if (bytes > 0) memset(buf, (int)SUP_SENTINEL, bytes);
}

int64_t sup_first_touched(const void *buf, size_t bytes)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < bytes; ++i)
        if (p[i] != SUP_SENTINEL) return (int64_t)i;
    return -1;
}

static int is_nan_bits(darn_dtype dtype, uint32_t b)
{
    switch (dtype) {
    case DARN_F16: return (b & 0x7FFFu) > 0x7C00u;
    case DARN_BF16: return (b & 0x7FFFu) > 0x7F80u;
    default: return (b & 0x7FFFFFFFu) > 0x7F800000u;
    }
}

int64_t sup_compare(const void *a, int64_t a_stride, const void *b, int64_t b_stride, darn_dtype dtype,
                    int64_t rows, int64_t cols, int nan_any)
{
    const int64_t as = sup_stride(cols, a_stride), bs = sup_stride(cols, b_stride);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const uint32_t x = sup_get_bits(a, dtype, as, r, c), y = sup_get_bits(b, dtype, bs, r, c);
            if (x == y) continue;
            if (nan_any && is_nan_bits(dtype, x) && is_nan_bits(dtype, y)) continue;
            return r * cols + c;
        }
    return -1;
}

int64_t sup_compare_f32(const float *a, const float *b, int64_t n, int nan_any)
{
    return sup_compare(a, n, b, n, DARN_F32, 1, n, nan_any);
}
