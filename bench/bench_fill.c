/* bench_fill.c — random finite inputs as raw dtype bits (see bench_fill.h). */
#include "bench_fill.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One element of a binary float format with `mant` mantissa bits, `expo` exponent bits and bias
 * `bias`: random sign, exponent bias-3 .. bias, random mantissa. */
static uint32_t random_element(uint64_t r, int mant, int expo, uint32_t bias)
{
    const uint32_t sign = (uint32_t)(r & 1u);
    const uint32_t exp = bias - 3u + (uint32_t)((r >> 1) & 3u);
    const uint32_t man = (uint32_t)(r >> 3) & ((1u << mant) - 1u);
    return (sign << (mant + expo)) | (exp << mant) | man;
}

void bench_fill_random(void *dst, darn_dtype dtype, size_t count, uint64_t seed)
{
    uint64_t state = seed * 0xD1342543DE82EF95ull + 1u;
    if (dtype == DARN_F32) {
        uint32_t *p = dst;
        for (size_t i = 0; i < count; ++i) p[i] = random_element(splitmix64(&state), 23, 8, 127u);
    } else if (dtype == DARN_F16) {
        uint16_t *p = dst;
        for (size_t i = 0; i < count; ++i) p[i] = (uint16_t)random_element(splitmix64(&state), 10, 5, 15u);
    } else { /* DARN_BF16 */
        uint16_t *p = dst;
        for (size_t i = 0; i < count; ++i) p[i] = (uint16_t)random_element(splitmix64(&state), 7, 8, 127u);
    }
}
