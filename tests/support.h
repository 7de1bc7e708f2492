/*
 * tests/support.h — small helpers shared by darn's Criterion tests (compiled into a support library
 * linked into every tests/test_*.c executable).
 *
 * Conventions: typed buffers are row-major [rows, cols] with a row stride in elements (0 = cols, as in
 * darn.h); element (r, c) lives at element offset r * stride + c. Values go through the contract's
 * conversions (src/contract.h): reads are exact widenings, writes round to nearest even.
 * Nothing here calls darn_fwd/darn_bwd, so expected values built with these helpers never come from the
 * code under test.
 */
#ifndef DARN_TESTS_SUPPORT_H
#define DARN_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <darn/darn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory --------------------------------------------------------------------------------------- */
/* `bytes` bytes (0 is allowed and still returns a unique non-NULL pointer) aligned to `align` (a power of
 * two; <= 16 gives 16), filled with the sentinel byte. Aborts the process on out-of-memory. Free with
 * sup_free(). */
void *sup_alloc(size_t bytes, size_t align);
void sup_free(void *p);

/* ---- deterministic generator (SplitMix64; same sequence on every platform) ---------------------- */
typedef struct sup_rng { uint64_t state; } sup_rng;
sup_rng sup_rng_make(uint64_t seed);
uint64_t sup_rng_u64(sup_rng *g);
/* Uniform double in [0, 1) with 53 random bits. */
double sup_rng_unit(sup_rng *g);

/* ---- typed strided buffers ----------------------------------------------------------------------- */
/* Row stride actually used: `stride` or `cols` when stride == 0. */
int64_t sup_stride(int64_t cols, int64_t stride);
/* Bytes spanned by a [rows, cols] tensor of `dtype` with `stride`: ((rows-1)*stride + cols) * size,
 * 0 for rows == 0. */
size_t sup_tensor_bytes(darn_dtype dtype, int64_t rows, int64_t cols, int64_t stride);

/* Element (r, c) of a typed strided buffer, widened exactly to float. */
float sup_get(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c);
/* Stores v (rounded to nearest even, NaN -> canonical) into element (r, c). */
void sup_set(void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c, float v);
/* Raw bits of element (r, c): 16-bit dtypes in the low half, fp8 codes in the low byte. */
uint32_t sup_get_bits(const void *buf, darn_dtype dtype, int64_t stride, int64_t r, int64_t c);
/* v rounded to `dtype` and widened back (what a store-then-load gives). */
float sup_round(darn_dtype dtype, float v);

/* Fills the logical [rows, cols] elements with values uniform in [lo, hi) from `g` (each rounded to the
 * dtype); bytes between rows (stride padding) are left as they are. Row-major order, so the same seed
 * gives the same logical data whatever the stride. */
void sup_fill_uniform(void *buf, darn_dtype dtype, int64_t rows, int64_t cols, int64_t stride, sup_rng *g,
                      float lo, float hi);
/* Same for a float vector of n elements. */
void sup_fill_f32(float *v, int64_t n, sup_rng *g, float lo, float hi);
/* Copies the logical elements from one strided buffer to another of the same dtype. */
void sup_copy(void *dst, int64_t dst_stride, const void *src, int64_t src_stride, darn_dtype dtype,
              int64_t rows, int64_t cols);

/* ---- sentinels ------------------------------------------------------------------------------------ */
#define SUP_SENTINEL 0xA5u /* 0xA5A5 is a finite f16/bf16, 0xA5A5A5A5 a finite f32: never produced by accident */
void sup_sentinel_fill(void *buf, size_t bytes);
/* Index of the first byte that is not the sentinel, or -1 when all `bytes` bytes are untouched. */
int64_t sup_first_touched(const void *buf, size_t bytes);

/* ---- comparison ----------------------------------------------------------------------------------- */
/* Compares the logical [rows, cols] elements of two typed buffers bit for bit. With nan_any != 0 any two
 * NaNs compare equal (whatever sign/payload); with nan_any == 0 NaNs must match bitwise too.
 * Returns the logical index r * cols + c of the first mismatch, or -1 when equal. */
int64_t sup_compare(const void *a, int64_t a_stride, const void *b, int64_t b_stride, darn_dtype dtype,
                    int64_t rows, int64_t cols, int nan_any);
/* Same for float vectors (rstd, mean). */
int64_t sup_compare_f32(const float *a, const float *b, int64_t n, int nan_any);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DARN_TESTS_SUPPORT_H */
